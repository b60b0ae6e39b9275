"""Aggregates SoDeep Recall@K runs: R@K and median rank per variant (mean ± std over seeds) beside Table 3.

  python -m experiments.tables sodeep_recall --runs='/tmp/rj-runs/sodeep_recall/*'

Reads every ``results.json`` matching ``--runs`` (``reporting.collect_runs``); runs of different schedules
(``steps``) are kept apart. Recalls in %, median ranks 1-based. Prints the markdown table.
"""

from __future__ import annotations


from ranking_jax import reporting
from ranking_jax.projects.sodeep import sodeep_recall


def summary_rows(runs: list[dict]) -> list[dict]:
  """One row per (variant, data, steps) with every metric as mean ± std over seeds, then the paper's row."""
  groups: dict[tuple, list[dict]] = {}
  for run in runs:
    report = {"seed": run.get("config", {}).get("seed"), **run["report"]}
    groups.setdefault((report["variant"], report["data"], report["steps"]), []).append(report)
  rows = []
  for (variant, data, steps), reports in sorted(groups.items()):
    row = {"variant": variant, "data": data, "steps": steps,
           "seeds": ", ".join(str(r.get("seed", "?")) for r in reports)}
    for key in sodeep_recall.METRIC_KEYS:
      values = [r[key] for r in reports if key in r]
      scale = 100.0 if "R@" in key else 1.0
      row[key] = reporting.mean_pm_std([scale * v for v in values], ".1f") if values else None
    rows.append(row)
    paper = sodeep_recall.PAPER_RESULTS.get(variant)
    if paper:
      rows.append({"variant": f"paper: {variant}", "data": "COCO 5x1k",
                   **dict(zip(sodeep_recall.METRIC_KEYS, paper[0])), "seeds": paper[1]})
  return rows


COLUMNS = (reporting.Column("variant"), reporting.Column("data"), reporting.Column("steps"),
           reporting.Column("seeds"),
           *(reporting.Column(k, k.replace("caption_retrieval/", "cap ").replace("image_retrieval/", "img ")
                              .replace("median_rank", "med r"), ".1f") for k in sodeep_recall.METRIC_KEYS))


def make_tables(runs: list[dict], out: str = "") -> str:
  """The markdown table of ``runs`` (``results.json`` dicts with a ``report``); ``out`` is unused."""
  del out
  return reporting.markdown_table(summary_rows(runs), COLUMNS)
