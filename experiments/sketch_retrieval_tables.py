r"""Tables 1-4 of the FG-SBIR multi-task ranking paper from finished runs of ``experiments.sketch_retrieval``.

  python -m experiments.tables sketch_retrieval --runs='/tmp/rj-runs/sketch_retrieval/*' [--out=tables.md]

Reads ``results.json`` of every run directory matching ``--runs`` (several globs: comma-separated) with
:func:`ranking_jax.reporting.collect_runs`, groups the runs by (variant, data) and writes, per table of the
paper, one row per group: acc@1, acc@10 and triplet accuracy in % (``mean ± std (n seeds)`` when several
seeds ran) beside the paper's figures (QMUL-Shoe, or QMUL-Chair for ``qmul_chairs`` runs). Variants not
run are listed as ``not run``.
"""

from __future__ import annotations

import collections
from typing import Any, Mapping, Sequence


from configs import sketch_retrieval as config_lib
from ranking_jax import reporting
from ranking_jax.projects.sketch_retrieval import sketch_retrieval


TABLES = (
    ("Table 1: comparison with the triplet baseline", ("triplet", "mtl")),
    ("Table 2: contribution of the attribute side tasks", ("no_ap_ar", "no_ar", "no_ap", "mtl")),
    ("Table 3: triplet generation and sampling",
     ("auto_exhaustive", "auto_hard", "human_optimised_exhaustive", "human_optimised_hard",
      "human_original")),
    ("Table 4: triplet difficulty", ("easy", "medium", "hard")),
)
# Rows that are the same model as ``mtl`` (the paper repeats its MTL row in Tables 3 and 4).
ALIASES = {"auto_hard": "mtl", "hard": "mtl"}
_METRICS = ("acc_at_1", "acc_at_10", "triplet_accuracy")
_COLUMNS = (
    reporting.Column("variant"), reporting.Column("data"), reporting.Column("trunk"), reporting.Column("steps"),
    reporting.Column("runs"),
    reporting.Column("acc_at_1", "acc@1 %"), reporting.Column("acc_at_10", "acc@10 %"),
    reporting.Column("triplet_accuracy", "triplet acc %"),
    reporting.Column("paper_acc_at_1", "paper acc@1 %", ".2f"),
    reporting.Column("paper_acc_at_10", "paper acc@10 %", ".2f"),
    reporting.Column("paper_triplet_accuracy", "paper triplet %", ".2f"), reporting.Column("notes"))


def _cell(values: Sequence[float]) -> str:
  percent = [100.0 * v for v in values]
  return reporting.mean_pm_std(percent, ".2f") if len(percent) > 1 else f"{percent[0]:.2f}"


def build_tables(runs: Sequence[Mapping[str, Any]]) -> str:
  """The markdown of Tables 1-4 from run results (each with ``report``: variant, data, metrics).

  Runs are grouped by (variant, data, steps, trunk): a smoke run, a shorter schedule or the other network
  (``trunk``: ``pretrained`` or ``scratch``, the small network; runs before the field existed are
  ``scratch``) gets its own row instead of being averaged with the default-size seeds.
  """
  groups: dict[tuple[str, str, int], list[Mapping[str, Any]]] = collections.defaultdict(list)
  for run in runs:
    row = run.get("report") or {}
    if "variant" in row:
      steps = int(row.get("steps", run.get("step", 0)) or 0)
      groups[(row["variant"], row.get("data", "embedded"), (steps, str(row.get("trunk", "scratch"))))].append(row)
  datasets = sorted({data for _, data, _ in groups}) or ["embedded"]
  parts = []
  for title, variants in TABLES:
    rows = []
    for data in datasets:
      category = "chairs" if data.endswith("chairs") else "shoes"
      for variant in variants:
        paper = sketch_retrieval.paper_figures(variant, category) or {}
        source = variant if any(v == variant and d == data for v, d, _ in groups) else ALIASES.get(variant, "")
        schedules = sorted(steps for v, d, steps in groups if v == source and d == data)
        if not schedules:
          row: dict[str, Any] = {"variant": variant, "data": data, "runs": "not run", **paper}
          if data.startswith("qmul") and config_lib.VARIANT_SPECS[variant][0] == "auto":
            row["notes"] = "automatic triplets need attribute labels (--config.data.attributes_file)"
          rows.append(row)
        for steps, trunk in schedules:
          members = groups[(source, data, (steps, trunk))]
          row = {"variant": variant, "data": data, "steps": steps, "trunk": trunk, **paper}
          row["runs"] = (f"{len(members)} (seeds {sorted(int(m.get('seed', 0)) for m in members)})"
                         + ("" if source == variant else f" = {source}"))
          row.update({k: _cell([float(m[k]) for m in members]) for k in _METRICS})
          row["notes"] = "; ".join(sorted({m["notes"] for m in members if m.get("notes")})) or None
          rows.append(row)
    parts.append(f"## {title}\n\n{reporting.markdown_table(rows, _COLUMNS)}\n")
  return ("Paper figures: QMUL-Shoe (QMUL-Chair for qmul_chairs rows); embedded rows are a different "
          "benchmark.\n\n" + "\n".join(parts))


def make_tables(runs: Sequence[Mapping[str, Any]], out: str = "") -> str:
  """Tables 1-4 of ``runs``; with ``out``, also written to ``<out>/tables.md``."""
  text = build_tables(runs)
  if out:
    reporting.write_markdown(out, text, name="tables.md")
  return text
