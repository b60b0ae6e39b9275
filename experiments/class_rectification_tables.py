"""Gathers Class Rectification runs into the Table 2/3 and Table 4 tables, Figure 5 and the validation curves.

  python -m experiments.tables class_rectification --runs='/tmp/rj-runs/class_rectification/*' \
      --out=/tmp/rj-runs/class_rectification_tables

Reads the ``results.json`` of every matching work directory (``reporting.collect_runs``), averages the
runs of each variant over their seeds, and writes ``tables.md`` (per-attribute class-balanced accuracy
sorted by imbalance, the seed spread, each variant's gain over ``ce`` with the paper's Table 4 gains
beside, the seed-matched gains and their correlation with imbalance, and how flat each variant's
validation curve is over its last quarter), ``figure5.png`` (gain over ``ce`` against the imbalance ratio,
one panel per family) and ``validation_curves.png`` (from each run's ``metrics.jsonl``) into ``--out``.
"""

from __future__ import annotations

import os


from ranking_jax import reporting
from ranking_jax.projects.class_rectification import class_rectification


def convergence_table(curves) -> str:
  """Markdown: per variant, the last quarter's range and slope of the validation curve (mean ± std)."""
  rows = []
  order = class_rectification.VARIANTS
  for variant, by_seed in sorted(curves.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99,
                                                                  kv[0])):
    flat = [class_rectification.last_quarter_flatness(points) for points in by_seed.values() if len(points) > 1]
    if not flat:
      continue
    rows.append({"variant": variant, "evals": len(next(iter(by_seed.values()))),
                 "range": reporting.mean_pm_std([f["range"] for f in flat], ".2f"),
                 "slope": class_rectification.signed_mean_pm_std([f["slope_per_1k"] for f in flat]),
                 "final": reporting.mean_pm_std([points[-1][1] for points in by_seed.values()], ".2f")})
  if not rows:
    return ""
  return ("## Convergence: validation mean class-balanced accuracy over the last quarter of steps\n\n"
          + reporting.markdown_table(rows, [
              reporting.Column("variant"), reporting.Column("evals", "evaluations per run"),
              reporting.Column("range", "max - min, last quarter (points)"),
              reporting.Column("slope", "slope, last quarter (points / 1k steps)"),
              reporting.Column("final", "final validation")]) + "\n")


def make_tables(runs: list[dict], out: str = "", baseline: str = "ce") -> str:
  """Tables 2/3 and 4 of ``runs``; with ``out``, also ``tables.md``, Figure 5 (gain over ``baseline``) and
  the validation curves."""
  reports = [r["report"] for r in runs if r.get("report")]
  text = class_rectification.cross_variant_tables(reports, baseline=baseline)
  curves = class_rectification.validation_curves(runs)
  convergence = convergence_table(curves)
  if convergence:
    text += "\n" + convergence
  if out:
    reporting.write_markdown(out, "# Class Rectification: all runs\n\n" + text, name="tables.md")
    if any(r["variant"] == baseline for r in reports):
      class_rectification.plot_gain_vs_imbalance(reports, os.path.join(out, "figure5.png"), baseline=baseline)
      text += "\n![Figure 5](figure5.png)\n"
    if any(len(points) > 1 for by_seed in curves.values() for points in by_seed.values()):
      class_rectification.plot_validation_curves(curves, os.path.join(out, "validation_curves.png"))
      text += "\n![validation curves](validation_curves.png)\n"
  return text
