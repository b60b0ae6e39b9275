"""Aggregates SoDeep mAP runs: test mAP per variant (mean ± std over seeds) beside the paper's Table 4, and
each rank variant's paired difference to the soft-margin baseline of the same schedule.

  python -m experiments.tables sodeep_map --runs='/tmp/rj-runs/sodeep_map/*'

Reads every ``results.json`` matching ``--runs`` (``reporting.collect_runs``); runs of different schedules
(``steps``, fine-tuning or not) are kept apart. Prints the markdown tables.
"""

from __future__ import annotations

import numpy as np

from ranking_jax import reporting
from ranking_jax.projects.sodeep import sodeep_map

BASELINE = "soft_margin"


def _groups(runs: list[dict]) -> dict[tuple, list[dict]]:
  groups: dict[tuple, list[dict]] = {}
  for run in runs:
    report = {"seed": run.get("config", {}).get("seed"), **run["report"]}
    key = (report["variant"], report["data"], report["steps"], bool(report.get("finetune", False)))
    groups.setdefault(key, []).append(report)
  return groups


def _order(variant: str) -> int:
  order = list(sodeep_map.PAPER_RESULTS) + ["soft_margin_map_soft_ranks"]
  return order.index(variant) if variant in order else 9


def summary_rows(runs: list[dict]) -> list[dict]:
  """One row per (variant, data, steps, fine-tuning): mAP (VOC07 11-point, exact) in % over seeds, the paper's."""
  rows = []
  for (variant, data, steps, finetune), reports in sorted(
      _groups(runs).items(), key=lambda kv: (kv[0][1], kv[0][3], kv[0][2], _order(kv[0][0]))):
    paper = sodeep_map.PAPER_RESULTS.get(variant)
    rows.append({"variant": variant, "data": data, "steps": f"{steps}{' (fine-tuning)' if finetune else ''}",
                 "seeds": ", ".join(str(r.get("seed", "?")) for r in reports),
                 "map_voc07": reporting.mean_pm_std([100 * r["map_voc07"] for r in reports], ".2f"),
                 "map": reporting.mean_pm_std([100 * r["map"] for r in reports], ".2f"),
                 "paper": None if paper is None else paper[0],
                 "paper_row": None if paper is None else paper[1]})
  return rows


def paired_rows(runs: list[dict]) -> list[dict]:
  """Each rank variant minus the soft-margin baseline of the same (data, steps, fine-tuning), paired by seed
  (same data order and starting point), in mAP points; the paper's difference is +0.8 (94.0 - 93.2)."""
  groups = _groups(runs)
  rows = []
  for (variant, data, steps, finetune), reports in sorted(
      groups.items(), key=lambda kv: (kv[0][1], kv[0][3], kv[0][2], _order(kv[0][0]))):
    baseline = {r.get("seed"): r for r in groups.get((BASELINE, data, steps, finetune), [])}
    pairs = [(r, baseline[r.get("seed")]) for r in reports if r.get("seed") in baseline]
    if variant == BASELINE or not pairs:
      continue
    row = {"variant": variant, "data": data, "steps": f"{steps}{' (fine-tuning)' if finetune else ''}",
           "seeds": ", ".join(str(r.get("seed")) for r, _ in pairs),
           "paper": 94.0 - 93.2 if variant == "soft_margin_map_lstm" else None}
    for metric in ("map_voc07", "map"):
      diffs = [100 * (r[metric] - b[metric]) for r, b in pairs]
      summary = reporting.seed_summary(diffs)
      row[metric] = (f"{summary['mean']:+.2f} (1 seed)" if summary["n"] == 1 else
                     f"{summary['mean']:+.2f} ± {summary['std']:.2f} ({summary['n']} seeds)")
      row[metric + "_per_seed"] = " / ".join(f"{d:+.2f}" for d in diffs)
      row[metric + "_wins"] = f"{int(np.sum(np.asarray(diffs) > 0))} of {len(diffs)}"
    rows.append(row)
  return rows


COLUMNS = (reporting.Column("variant"), reporting.Column("data"), reporting.Column("steps"),
           reporting.Column("seeds"), reporting.Column("map_voc07", "test mAP % VOC07 11-pt (mean ± std)"),
           reporting.Column("map", "test mAP % exact AP (mean ± std)"),
           reporting.Column("paper", "paper mAP %", ".1f"), reporting.Column("paper_row", "paper row"))
PAIRED_COLUMNS = (
    reporting.Column("variant"), reporting.Column("data"), reporting.Column("steps"), reporting.Column("seeds"),
    reporting.Column("map_voc07", "Δ VOC07 mAP pts vs soft_margin (mean ± std)"),
    reporting.Column("map_voc07_per_seed", "Δ VOC07 per seed"), reporting.Column("map_voc07_wins", "VOC07 gains"),
    reporting.Column("map", "Δ exact mAP pts (mean ± std)"), reporting.Column("map_per_seed", "Δ exact per seed"),
    reporting.Column("paper", "paper Δ pts", "+.1f"))


def make_tables(runs: list[dict], out: str = "") -> str:
  """The markdown tables of ``runs`` (``results.json`` dicts with a ``report``); ``out`` is unused."""
  del out
  text = reporting.markdown_table(summary_rows(runs), COLUMNS)
  paired = paired_rows(runs)
  if paired:
    text += "\n\nPaired by seed (rank variant minus soft_margin, same schedule):\n\n"
    text += reporting.markdown_table(paired, PAIRED_COLUMNS)
  return text
