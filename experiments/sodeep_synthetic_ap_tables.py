"""Aggregates SoDeep synthetic mAP runs: the final-AP table over seeds and Figure 6 (test AP vs. epochs).

  python -m experiments.sodeep_synthetic_ap_tables --runs='/tmp/rj-runs/sodeep_synthetic_ap/*' --out=docs/results

Reads every ``results.json`` matching ``--runs`` (``reporting.collect_runs``), prints the markdown table
(mean ± std over seeds of the final test and train AP) and writes ``<out>/sodeep_synthetic_ap_fig6.png``.
"""

from __future__ import annotations

import os

from absl import flags

from experiments import tables_lib

from ranking_jax import reporting
from ranking_jax.projects.sodeep import sodeep_synthetic_ap

_RUNS = flags.DEFINE_string("runs", None,
                            "Glob(s) of the runs' work directories, comma-separated.", required=True)
_OUT = flags.DEFINE_string("out", "docs/results", "Folder for the PNG.")


def main(argv) -> None:
  del argv
  runs = [r for r in reporting.collect_runs(_RUNS.value) if "report" in r]
  print(sodeep_synthetic_ap.summary_table(runs))
  curves: dict[str, list] = {}
  steps_per_epoch = 100
  for run in sorted(runs, key=lambda r: r["report"]["variant"]):
    report = run["report"]
    steps_per_epoch = int(report.get("steps_per_epoch", steps_per_epoch))
    curves.setdefault(report["variant"], []).append((report["curve_steps"], report["curve_test_ap"]))
  path = os.path.join(_OUT.value, "sodeep_synthetic_ap_fig6.png")
  sodeep_synthetic_ap.plot_ap_curves(curves, path, steps_per_epoch=steps_per_epoch,
                                     title="SoDeep Fig. 6 (synthetic): mean over seeds, band min-max")
  print(f"wrote {path}")


if __name__ == "__main__":
  tables_lib.run_tables(main)
