"""Gathers Class Rectification runs into the Table 2/3 and Table 4 tables and Figure 5.

  python -m experiments.tables class_rectification --runs='/tmp/rj-runs/class_rectification/*' \
      --out=/tmp/rj-runs/class_rectification_tables

Reads the ``results.json`` of every matching work directory (``reporting.collect_runs``), averages the
runs of each variant over their seeds, and writes ``tables.md`` (per-attribute class-balanced accuracy
sorted by imbalance, the seed spread, and each variant's gain over ``ce`` with the paper's Table 4 gains
beside) and ``figure5.png`` (gain over ``ce`` against the imbalance ratio) into ``--out``.
"""

from __future__ import annotations

import os


from ranking_jax import reporting
from ranking_jax.projects.class_rectification import class_rectification


def make_tables(runs: list[dict], out: str = "", baseline: str = "ce") -> str:
  """Tables 2/3 and 4 of ``runs``; with ``out``, also ``tables.md`` and Figure 5 (gain over ``baseline``)."""
  reports = [r["report"] for r in runs if r.get("report")]
  text = class_rectification.cross_variant_tables(reports, baseline=baseline)
  if out:
    reporting.write_markdown(out, "# Class Rectification: all runs\n\n" + text, name="tables.md")
    if any(r["variant"] == baseline for r in reports):
      class_rectification.plot_gain_vs_imbalance(reports, os.path.join(out, "figure5.png"), baseline=baseline)
      text += "\n![Figure 5](figure5.png)\n"
  return text
