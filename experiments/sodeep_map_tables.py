"""Aggregates SoDeep mAP runs: test mAP per variant (mean ± std over seeds) beside the paper's Table 4.

  python -m experiments.tables sodeep_map --runs='/tmp/rj-runs/sodeep_map/*'

Reads every ``results.json`` matching ``--runs`` (``reporting.collect_runs``); runs of different schedules
(``steps``) are kept apart. Prints the markdown table.
"""

from __future__ import annotations


from ranking_jax import reporting
from ranking_jax.projects.sodeep import sodeep_map


def summary_rows(runs: list[dict]) -> list[dict]:
  """One row per (variant, data, steps): mAP (VOC07 11-point, exact) in % over seeds, and the paper's."""
  groups: dict[tuple, list[dict]] = {}
  for run in runs:
    report = {"seed": run.get("config", {}).get("seed"), **run["report"]}
    groups.setdefault((report["variant"], report["data"], report["steps"]), []).append(report)
  rows = []
  order = list(sodeep_map.PAPER_RESULTS) + ["soft_margin_map_soft_ranks"]
  for (variant, data, steps), reports in sorted(
      groups.items(), key=lambda kv: (kv[0][1], kv[0][2], order.index(kv[0][0]) if kv[0][0] in order else 9)):
    paper = sodeep_map.PAPER_RESULTS.get(variant)
    rows.append({"variant": variant, "data": data, "steps": steps,
                 "seeds": ", ".join(str(r.get("seed", "?")) for r in reports),
                 "map_voc07": reporting.mean_pm_std([100 * r["map_voc07"] for r in reports], ".2f"),
                 "map": reporting.mean_pm_std([100 * r["map"] for r in reports], ".2f"),
                 "paper": None if paper is None else paper[0],
                 "paper_row": None if paper is None else paper[1]})
  return rows


COLUMNS = (reporting.Column("variant"), reporting.Column("data"), reporting.Column("steps"),
           reporting.Column("seeds"), reporting.Column("map_voc07", "test mAP % VOC07 11-pt (mean ± std)"),
           reporting.Column("map", "test mAP % exact AP (mean ± std)"),
           reporting.Column("paper", "paper mAP %", ".1f"), reporting.Column("paper_row", "paper row"))


def make_tables(runs: list[dict], out: str = "") -> str:
  """The markdown table of ``runs`` (``results.json`` dicts with a ``report``); ``out`` is unused."""
  del out
  return reporting.markdown_table(summary_rows(runs), COLUMNS)
