"""Gathers Class Rectification runs into the Table 2/3 and Table 4 tables and Figure 5.

  python -m experiments.class_rectification_tables --runs='/tmp/rj-runs/class_rectification/*' \
      --out=/tmp/rj-runs/class_rectification_tables

Reads the ``results.json`` of every matching work directory (``reporting.collect_runs``), averages the
runs of each variant over their seeds, and writes ``tables.md`` (per-attribute class-balanced accuracy
sorted by imbalance, the seed spread, and each variant's gain over ``ce`` with the paper's Table 4 gains
beside) and ``figure5.png`` (gain over ``ce`` against the imbalance ratio) into ``--out``.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from experiments import tables_lib

from ranking_jax import reporting
from ranking_jax.projects.class_rectification import class_rectification

FLAGS = flags.FLAGS
flags.DEFINE_string("runs", "/tmp/rj-runs/class_rectification/*",
                          "Glob(s) of the runs' work directories, comma-separated.")
flags.DEFINE_string("out", "", "Output directory (default: the parent of the runs).")
flags.DEFINE_string("baseline", "ce", "Variant the gains are measured against.")


def main(argv) -> None:
  del argv
  runs = reporting.collect_runs(FLAGS.runs)
  reports = [r["report"] for r in runs if r.get("report") and r.get("complete", True)]
  if not reports:
    raise app.UsageError(f"no complete run with a report under {FLAGS.runs!r}.")
  out = FLAGS.out or os.path.dirname(os.path.abspath(runs[0]["workdir"]))
  text = class_rectification.cross_variant_tables(reports, baseline=FLAGS.baseline)
  print(text)
  path = reporting.write_markdown(out, "# Class Rectification: all runs\n\n" + text, name="tables.md")
  print(f"wrote {path}")
  if any(r["variant"] == FLAGS.baseline for r in reports):
    figure = os.path.join(out, "figure5.png")
    class_rectification.plot_gain_vs_imbalance(reports, figure, baseline=FLAGS.baseline)
    print(f"wrote {figure}")


if __name__ == "__main__":
  tables_lib.run_tables(main)
