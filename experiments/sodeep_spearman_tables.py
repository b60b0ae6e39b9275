"""Aggregates SoDeep Spearman runs: test rho per variant (mean ± std over seeds) beside the paper, the paired
differences per seed, and the validation curves.

  python -m experiments.tables sodeep_spearman --runs='/tmp/rj-runs/sodeep_spearman/*' --out=/tmp/rj-tables

Reads every ``results.json`` matching ``--runs`` (``reporting.collect_runs``), prints the markdown tables and
writes ``<out>/sodeep_spearman_validation_rho.png`` (validation rho against steps, one line per run). Runs of
different data (``memorability_scenes``, ``utkface``, ...) are never averaged together: one section per data.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import numpy as np
import scipy.stats

from ranking_jax import reporting
from ranking_jax.projects.sodeep import sodeep_spearman


_ORDER = ("mse", "l1", "spearman_lstm", "spearman_cnn", "spearman_handcrafted",
          "spearman_handcrafted_standardized", "spearman_soft_ranks")
# (a, b): the paired difference a - b (same seed: same initialisation and batch order) that the paper's
# claims and the questions need.
PAIRS = (("spearman_lstm", "mse"), ("spearman_lstm", "l1"), ("spearman_lstm", "spearman_handcrafted"),
         ("spearman_lstm", "spearman_handcrafted_standardized"), ("spearman_soft_ranks", "spearman_lstm"),
         ("spearman_soft_ranks", "spearman_handcrafted_standardized"), ("spearman_soft_ranks", "mse"),
         ("spearman_handcrafted", "l1"), ("mse", "l1"))


def _by_variant(runs: Sequence[dict]) -> dict[str, list[dict]]:
  """``{variant: [report + predictions_path]}``."""
  by_variant: dict[str, list[dict]] = {}
  for run in runs:
    path = os.path.join(run["workdir"], sodeep_spearman.TEST_PREDICTIONS) if run.get("workdir") else ""
    by_variant.setdefault(run["report"]["variant"], []).append({**run["report"], "predictions_path": path})
  return by_variant


def summary_rows(runs: list[dict]) -> list[dict]:
  """One row per variant: test rho over seeds (mean ± std), the mean standard error of one run's test rho,
  the seeds, the paper's figure, and the CNN note."""
  by_variant = _by_variant(runs)
  rows = []
  for variant in sorted(set(by_variant) | {"spearman_cnn"},
                        key=lambda v: _ORDER.index(v) if v in _ORDER else len(_ORDER)):
    paper = sodeep_spearman.PAPER_RESULTS.get(variant)
    reports = sorted(by_variant.get(variant, []), key=lambda r: r["seed"])
    errors = [r.get("spearman_rho_bootstrap_se", r.get("spearman_rho_se", np.nan)) for r in reports]
    errors = [e for e in errors if np.isfinite(e)]
    rows.append({
        "variant": variant,
        "rho": (reporting.mean_pm_std([r["spearman_rho"] for r in reports], ".4f") if reports
                else sodeep_spearman.CNN_NOTE if variant == "spearman_cnn" else "not run"),
        "se": float(np.mean(errors)) if errors else None,
        "seeds": ", ".join(str(r["seed"]) for r in reports) or "-",
        "per_seed": " / ".join(f"{r['spearman_rho']:.4f}" for r in reports) or "-",
        "steps": reports[0]["steps"] if reports else None,
        "paper": None if paper is None else paper[0] / 100.0,  # the paper prints rho x 100
        "paper_row": None if paper is None else paper[1]})
  return rows


def _rho_rows(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Spearman's rho of each row pair of ``[R, n]`` arrays (average ranks for ties, as scipy)."""
  x = scipy.stats.rankdata(predictions, axis=1)
  y = scipy.stats.rankdata(labels, axis=1)
  x -= x.mean(axis=1, keepdims=True)
  y -= y.mean(axis=1, keepdims=True)
  return np.sum(x * y, axis=1) / np.sqrt(np.sum(x * x, axis=1) * np.sum(y * y, axis=1))


def paired_bootstrap_se(runs_a: Sequence[dict], runs_b: Sequence[dict], *, num_resamples: int = 500,
                        seed: int = 0) -> Optional[float]:
  """Test-set sampling SE of the seed-mean difference rho(a) - rho(b), by a paired bootstrap over the test
  items (the same resampled items for every run); None unless every run saved its test predictions
  (``test_predictions.npz``) on the same test labels.

  >>> import tempfile
  >>> rng = np.random.default_rng(0); y = rng.normal(size=300); folder = tempfile.mkdtemp()
  >>> for name, noise in (("a", 0.5), ("b", 1.0)):
  ...   np.savez(f"{folder}/{name}.npz", predictions=y + noise * rng.normal(size=300), labels=y)
  >>> se = paired_bootstrap_se([{"predictions_path": f"{folder}/a.npz"}], [{"predictions_path": f"{folder}/b.npz"}])
  >>> 0.005 < se < 0.05
  True
  """
  arrays = []
  for run in (*runs_a, *runs_b):
    path = run.get("predictions_path", "")
    if not path or not os.path.exists(path):
      return None
    with np.load(path) as data:
      arrays.append((data["predictions"], data["labels"]))
  labels = arrays[0][1]
  if any(a[1].shape != labels.shape or not np.array_equal(a[1], labels) for a in arrays):
    return None
  rng = np.random.default_rng(seed)
  indices = rng.integers(0, len(labels), size=(int(num_resamples), len(labels)))
  rhos = np.stack([_rho_rows(p[indices], labels[indices]) for p, _ in arrays])  # [runs, resamples]
  k = len(runs_a)
  difference = rhos[:k].mean(axis=0) - rhos[k:].mean(axis=0)
  return float(np.std(difference, ddof=1))


def paired_differences(runs: list[dict], pairs: Sequence[tuple[str, str]] = PAIRS) -> list[dict[str, Any]]:
  """Test-rho differences ``a - b`` over the seeds both variants ran: per seed, mean ± std, and how many
  seeds favour ``a``; a pair with no common seed is left out. With the runs' saved test predictions, also
  the test-set sampling SE of the mean difference (:func:`paired_bootstrap_se`).

  >>> runs = [{"report": {"variant": v, "seed": s, "spearman_rho": r}}
  ...         for v, s, r in (("mse", 0, 0.5), ("mse", 1, 0.6), ("l1", 0, 0.4), ("l1", 1, 0.7))]
  >>> row = paired_differences(runs, [("mse", "l1")])[0]
  >>> row["per_seed"], row["mean"], row["wins"]
  ('+0.1000 / -0.1000', '+0.0000 ± 0.1414 (2 seeds)', '1 of 2')
  """
  reports = {v: {r["seed"]: r for r in rs} for v, rs in _by_variant(runs).items()}
  rows = []
  for a, b in pairs:
    seeds = sorted(set(reports.get(a, {})) & set(reports.get(b, {})))
    if not seeds:
      continue
    diffs = np.array([reports[a][s]["spearman_rho"] - reports[b][s]["spearman_rho"] for s in seeds])
    std = f" ± {np.std(diffs, ddof=1):.4f}" if len(diffs) > 1 else ""
    rows.append({"comparison": f"{a} − {b}", "seeds": ", ".join(str(s) for s in seeds),
                 "per_seed": " / ".join(f"{d:+.4f}" for d in diffs),
                 "mean": f"{np.mean(diffs):+.4f}{std} ({len(diffs)} seed{'s' if len(diffs) > 1 else ''})",
                 "wins": f"{int(np.sum(diffs > 0))} of {len(diffs)}",
                 "bootstrap_se": paired_bootstrap_se([reports[a][s] for s in seeds],
                                                     [reports[b][s] for s in seeds])})
  return rows


def _section(runs: list[dict]) -> str:
  columns = (reporting.Column("variant"), reporting.Column("rho", "test Spearman rho (mean ± std)"),
             reporting.Column("se", "test-set SE of one run's rho"), reporting.Column("per_seed", "per seed"),
             reporting.Column("seeds"), reporting.Column("steps"),
             reporting.Column("paper", "paper rho", ".3f"), reporting.Column("paper_row", "paper row"))
  text = reporting.markdown_table(summary_rows(runs), columns)
  differences = paired_differences(runs)
  if differences:
    text += "\n\nPaired differences of the test rho (same seed: same initialisation and batch order):\n\n"
    text += reporting.markdown_table(differences, (
        reporting.Column("comparison"), reporting.Column("per_seed", "per seed"),
        reporting.Column("mean", "mean ± std over seeds"),
        reporting.Column("bootstrap_se", "test-set SE of the mean (paired bootstrap)"),
        reporting.Column("wins", "seeds > 0"),
        reporting.Column("seeds")))
  return text


def make_tables(runs: list[dict], out: str = "") -> str:
  """The markdown tables of ``runs`` (one section per data); with ``out``, also
  ``<out>/sodeep_spearman_validation_rho.png``."""
  by_data: dict[str, list[dict]] = {}
  for run in runs:
    by_data.setdefault(str(run["report"].get("data", "")), []).append(run)
  if len(by_data) == 1:
    text = _section(runs)
  else:
    text = "\n\n".join(f"### data: {data}\n\n{_section(data_runs)}" for data, data_runs in sorted(by_data.items()))
  if out:
    curves: dict[str, list] = {}
    for run in sorted(runs, key=lambda r: (r["report"]["variant"], r["report"]["seed"])):
      report = run["report"]
      label = report["variant"] if len(by_data) == 1 else f"{report['variant']} ({report.get('data', '')})"
      curves.setdefault(label, []).append((report["validation_steps"], report["validation_rho"]))
    path = os.path.join(out, "sodeep_spearman_validation_rho.png")
    title = "" if len(by_data) != 1 else f"SoDeep Spearman experiment ({next(iter(by_data))}): validation rho"
    sodeep_spearman.plot_validation_curves(curves, path, title=title)
    text += f"\n\n![validation rho](sodeep_spearman_validation_rho.png) (wrote {path})\n"
  return text
