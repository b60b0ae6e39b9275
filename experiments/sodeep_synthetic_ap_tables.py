"""Aggregates SoDeep synthetic mAP runs: the final-AP table over seeds and Figure 6 (test AP vs. epochs).

  python -m experiments.tables sodeep_synthetic_ap --runs='/tmp/rj-runs/sodeep_synthetic_ap/*' --out=/tmp/rj-tables

Reads every ``results.json`` matching ``--runs`` (``reporting.collect_runs``), prints the markdown table
(mean ± std over seeds of the final test and train AP) and writes ``<out>/sodeep_synthetic_ap_fig6.png``.
"""

from __future__ import annotations

import os


from ranking_jax import reporting
from ranking_jax.projects.sodeep import sodeep_synthetic_ap


def make_tables(runs: list[dict], out: str = "") -> str:
  """The final-AP table of ``runs``; with ``out``, also Figure 6 as ``<out>/sodeep_synthetic_ap_fig6.png``."""
  text = sodeep_synthetic_ap.summary_table(runs)
  if out:
    curves: dict[str, list] = {}
    steps_per_epoch = 100
    for run in sorted(runs, key=lambda r: r["report"]["variant"]):
      report = run["report"]
      steps_per_epoch = int(report.get("steps_per_epoch", steps_per_epoch))
      curves.setdefault(report["variant"], []).append((report["curve_steps"], report["curve_test_ap"]))
    path = os.path.join(out, "sodeep_synthetic_ap_fig6.png")
    sodeep_synthetic_ap.plot_ap_curves(curves, path, steps_per_epoch=steps_per_epoch,
                                       title="SoDeep Fig. 6 (synthetic): mean over seeds, band min-max")
    text += f"\n![Figure 6](sodeep_synthetic_ap_fig6.png) (wrote {path})\n"
  return text
