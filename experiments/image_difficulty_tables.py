"""Aggregates IDE RankNet runs: test MSE and Kendall tau_a per variant over seeds, beside the paper's Table 2.

  python -m experiments.tables image_difficulty --runs='/tmp/rj-runs/image_difficulty/*'

Two figures per run: the final step's and, when the run had a selection rule (``config.selection``, the
authors' "best validation tau with validation MSE <= 0.235"), the selected checkpoint's; a second table
gives the per-seed paired differences of each variant from ``mse`` (same seed, data and schedule).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ranking_jax import reporting
from ranking_jax.projects.ide_ranknet import image_difficulty

_BASELINE = "mse"


def _selected(run: dict[str, Any]) -> Optional[dict[str, Any]]:
  """``{"step", "mse", "kendall_tau"}`` of the selected checkpoint's test figures; ``{"step": None}`` when the
  rule chose nothing; None for a run without a rule."""
  selected = run.get("selected")
  if not isinstance(selected, dict):
    return None
  test = ((selected.get("eval") or {}).get("test") or {})
  return {"step": selected.get("step"), "mse": test.get("mse"), "kendall_tau": test.get("kendall_tau")}


def _cell(values: Sequence[float]) -> Any:
  if not values:
    return None
  return reporting.mean_pm_std(values, ".4f") if len(values) > 1 else values[0]


def make_tables(runs: Sequence[dict[str, Any]], out: str = "") -> str:
  """One row per (variant, data, model): mean ± std over seeds (one seed: the value alone), final step and
  selected checkpoint side by side; then the paired differences from the ``mse`` variant."""
  groups: dict[tuple, list[dict[str, Any]]] = {}
  for run in runs:
    report = run["report"]
    variant = report.get("variant", run.get("config", {}).get("variant"))
    groups.setdefault((variant, report.get("data"), report.get("model")), []).append(
        {**report, "seed": run.get("config", {}).get("seed"), "selected": _selected(run)})
  rows = []
  for (variant, data, model), reports in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
    row = {"variant": variant, "data": data, "model": model, "steps": reports[0].get("steps"),
           "mse": _cell([r["mse"] for r in reports]), "kendall_tau": _cell([r["kendall_tau"] for r in reports])}
    with_rule = [r["selected"] for r in reports if r["selected"] is not None]
    if with_rule:
      chosen = [s for s in with_rule if s["step"] is not None]
      row["selected_step"] = (f"{len(chosen)} of {len(with_rule)} seeds"
                              + (f" (steps {', '.join(str(s['step']) for s in chosen)})" if chosen else ""))
      row["selected_mse"] = _cell([s["mse"] for s in chosen])
      row["selected_kendall_tau"] = _cell([s["kendall_tau"] for s in chosen])
    rows.append(row)
  text = image_difficulty.results_table(rows)
  differences = paired_differences(groups)
  if differences:
    text += ("\n\nPaired differences from `mse` (same seed; mean ± std over seeds, and how many seeds the "
             "variant is ahead):\n\n" + differences)
  if out:
    reporting.write_markdown(out, "# IDE RankNet: all runs\n\n" + text, name="tables.md")
  return text


def paired_differences(groups: dict[tuple, list[dict[str, Any]]]) -> str:
  """A table of ``variant - mse`` in test tau_a and MSE over the seeds both have (final and selected)."""
  rows = []
  for (variant, data, model), reports in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
    baseline = groups.get((_BASELINE, data, model))
    if variant == _BASELINE or not baseline:
      continue
    by_seed = {r["seed"]: r for r in baseline}
    pairs = [(r, by_seed[r["seed"]]) for r in reports if r["seed"] in by_seed]
    if not pairs:
      continue
    row = {"variant": f"{variant} - {_BASELINE}", "data": data, "model": model, "seeds": len(pairs)}
    for key in ("kendall_tau", "mse"):
      diffs = [a[key] - b[key] for a, b in pairs]
      row[f"final_{key}"] = _cell(diffs)
      if key == "kendall_tau":
        row["final_ahead"] = f"{sum(d > 0 for d in diffs)} of {len(diffs)}"
      chosen = [(a["selected"], b["selected"]) for a, b in pairs
                if a["selected"] and b["selected"] and a["selected"]["step"] is not None
                and b["selected"]["step"] is not None]
      if chosen:
        diffs = [a[key] - b[key] for a, b in chosen]
        row[f"selected_{key}"] = _cell(diffs)
        if key == "kendall_tau":
          row["selected_ahead"] = f"{sum(d > 0 for d in diffs)} of {len(diffs)}"
    rows.append(row)
  if not rows:
    return ""
  columns = (reporting.Column("variant"), reporting.Column("data"), reporting.Column("model"),
             reporting.Column("seeds"), reporting.Column("final_kendall_tau", "final: d tau_a"),
             reporting.Column("final_ahead", "final: seeds ahead in tau"),
             reporting.Column("final_mse", "final: d MSE"),
             reporting.Column("selected_kendall_tau", "selected: d tau_a"),
             reporting.Column("selected_ahead", "selected: seeds ahead in tau"),
             reporting.Column("selected_mse", "selected: d MSE"))
  return reporting.markdown_table(rows, columns)
