"""Aggregates IDE RankNet runs: test MSE and Kendall tau_a per variant over seeds, beside the paper's Table 2.

  python -m experiments.tables image_difficulty --runs='/tmp/rj-runs/image_difficulty/*'
"""

from __future__ import annotations

from typing import Any, Sequence

from ranking_jax import reporting
from ranking_jax.projects.ide_ranknet import image_difficulty


def make_tables(runs: Sequence[dict[str, Any]], out: str = "") -> str:
  """One row per (variant, data, model): mean ± std over seeds (one seed: the value alone)."""
  groups: dict[tuple, list[dict[str, Any]]] = {}
  for run in runs:
    report = run["report"]
    variant = report.get("variant", run.get("config", {}).get("variant"))
    groups.setdefault((variant, report.get("data"), report.get("model")), []).append(
        {**report, "seed": run.get("config", {}).get("seed")})
  rows = []
  for (variant, data, model), reports in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
    cell = lambda key: (reporting.mean_pm_std([r[key] for r in reports], ".4f") if len(reports) > 1
                        else reports[0][key])
    rows.append({"variant": variant, "data": data, "model": model, "steps": reports[0].get("steps"),
                 "mse": cell("mse"), "kendall_tau": cell("kendall_tau")})
  text = image_difficulty.results_table(rows)
  if out:
    reporting.write_markdown(out, "# IDE RankNet: all runs\n\n" + text, name="tables.md")
  return text
