"""Aggregates SoDeep Spearman runs: test rho per variant (mean ± std over seeds) beside the paper, and curves.

  python -m experiments.tables sodeep_spearman --runs='/tmp/rj-runs/sodeep_spearman/*' --out=/tmp/rj-tables

Reads every ``results.json`` matching ``--runs`` (``reporting.collect_runs``), prints the markdown table and
writes ``<out>/sodeep_spearman_validation_rho.png`` (validation rho against steps, one line per run).
"""

from __future__ import annotations

import os


from ranking_jax import reporting
from ranking_jax.projects.sodeep import sodeep_spearman


_ORDER = ("mse", "l1", "spearman_lstm", "spearman_cnn", "spearman_handcrafted",
          "spearman_handcrafted_standardized", "spearman_soft_ranks")


def summary_rows(runs: list[dict]) -> list[dict]:
  """One row per variant: test rho over seeds (mean ± std), the seeds, the paper's figure, and the CNN note."""
  by_variant: dict[str, list[dict]] = {}
  for run in runs:
    by_variant.setdefault(run["report"]["variant"], []).append(run["report"])
  rows = []
  for variant in sorted(set(by_variant) | {"spearman_cnn"},
                        key=lambda v: _ORDER.index(v) if v in _ORDER else len(_ORDER)):
    paper = sodeep_spearman.PAPER_RESULTS.get(variant)
    reports = by_variant.get(variant, [])
    rows.append({
        "variant": variant,
        "rho": (reporting.mean_pm_std([r["spearman_rho"] for r in reports], ".4f") if reports
                else sodeep_spearman.CNN_NOTE if variant == "spearman_cnn" else "not run"),
        "seeds": ", ".join(str(r["seed"]) for r in reports) or "-",
        "steps": reports[0]["steps"] if reports else None,
        "paper": None if paper is None else paper[0] / 100.0,  # the paper prints rho x 100
        "paper_row": None if paper is None else paper[1]})
  return rows


def make_tables(runs: list[dict], out: str = "") -> str:
  """The markdown table of ``runs``; with ``out``, also ``<out>/sodeep_spearman_validation_rho.png``."""
  columns = (reporting.Column("variant"), reporting.Column("rho", "test Spearman rho (mean ± std)"),
             reporting.Column("seeds"), reporting.Column("steps"),
             reporting.Column("paper", "paper rho", ".3f"),
             reporting.Column("paper_row", "paper row"))
  text = reporting.markdown_table(summary_rows(runs), columns)
  if out:
    curves: dict[str, list] = {}
    for run in sorted(runs, key=lambda r: r["report"]["variant"]):
      report = run["report"]
      curves.setdefault(report["variant"], []).append((report["validation_steps"], report["validation_rho"]))
    path = os.path.join(out, "sodeep_spearman_validation_rho.png")
    sodeep_spearman.plot_validation_curves(curves, path)
    text += f"\n![validation rho](sodeep_spearman_validation_rho.png) (wrote {path})\n"
  return text
