r"""Tables 1-2 of the annotation paper over several runs (variants, seeds), and the per-tag recall figure.

  python -m experiments.tables multilabel_annotation --runs='/tmp/rj-runs/multilabel_annotation/*' \
      [--out=DIR]

``--runs`` is a glob (or several, comma-separated) of work directories of
``experiments/multilabel_annotation.py``; :func:`ranking_jax.reporting.collect_runs` reads their
``results.json``. One row per variant (mean ± std over its seeds when there are several, and the seed
count), the reference rows (upper bound, visual features + kNN) from the first run, the paper's row
beside each, for k = 3 (Table 1) and k = 5 (Table 2). Writes ``tables.md`` and
``recall_vs_frequency.png`` (per-tag recall at k = 3 against the tag's training frequency for softmax,
pairwise ranking and WARP, seeds averaged) into ``--out_dir`` (default: the common parent of the runs) and
prints the tables.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np


from ranking_jax import reporting
from ranking_jax.projects.multilabel_annotation import multilabel_annotation as task_lib


ORDER = ("softmax", "pairwise", "warp", "warp_single_violator", "warp_exact")
FIGURE_LOSSES = ("softmax", "pairwise", "warp", "warp_single_violator")


def _cell(values: Sequence[float], scale: float) -> Any:
  if len(values) == 1:
    return scale * values[0]
  return reporting.mean_pm_std([scale * v for v in values], ".2f").replace(" seeds)", ")")


def tables_text(runs: Sequence[dict[str, Any]]) -> str:
  """The markdown of Tables 1-2 over ``runs`` (dicts of ``results.json`` with ``report``)."""
  by_variant: dict[str, list[dict[str, Any]]] = {}
  for run in runs:
    by_variant.setdefault(run["report"]["loss"], []).append(run["report"])
  variants = [v for v in ORDER if v in by_variant] + sorted(set(by_variant) - set(ORDER))
  first = runs[0]["report"]
  reference = first.get("reference", {})
  sections = []
  for k, title in ((3, "Table 1"), (5, "Table 2")):
    measured, paper_keys = [], []
    for name in task_lib.REFERENCE_ROWS:
      if name in reference and f"k{k}" in reference[name]:
        measured.append((task_lib.ROW_NAMES[name] + " (ours)", reference[name][f"k{k}"]))
        paper_keys.append(None if name == "upper_bound" else name)  # the paper's row once, after both
    for variant in variants:
      reports = by_variant[variant]
      seeds = sorted(r["seed"] for r in reports)
      values = {}
      for metric in task_lib.METRICS:
        scale = 1.0 if metric == "n_plus_percent" else 100.0
        values[metric] = _cell([r[f"k{k}"][metric] for r in reports], scale)
      steps = sorted({r["steps"] for r in reports})
      label = (f"{task_lib.ROW_NAMES.get(variant, variant)} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}: "
               f"{', '.join(map(str, seeds))}; {'/'.join(map(str, steps))} steps)")
      # table_rows scales fractions to per cent: hand it pre-formatted cells unchanged
      measured.append((label, {m: (v if isinstance(v, str) else
                                   (v if m == "n_plus_percent" else v / 100.0)) for m, v in values.items()}))
      paper_keys.append(variant)
    rows = task_lib.table_rows(measured, k, paper_keys)
    sections.append(f"## {title}: k = {k} ({first['data']}, {len(first['tags'])} tags)\n\n"
                    f"{task_lib.annotation_table(rows)}\n")
  header = ("# Multilabel annotation: Tables 1-2\n\nValues in per cent (mean ± std over seeds where there "
            "are several); N+ = tags recalled at least once, as % of the tags. Paper rows (NUS-WIDE) in "
            "italics; the paper has no exact-rank WARP, its sampled WARP row is beside ours.\n")
  notes = [f"* {task_lib.ROW_NAMES[name]}: {reference[name]['description']}" for name in task_lib.REFERENCE_ROWS
           if isinstance(reference.get(name), dict) and reference[name].get("description")]
  if notes:
    header += "\nReference rows (no training):\n\n" + "\n".join(notes) + "\n"
  return "\n".join([header] + sections)


# (a, b) pairs compared seed by seed: the paper's claim is WARP ahead of softmax and pairwise ranking.
PAIRS = (("warp", "softmax"), ("warp", "pairwise"), ("warp", "warp_single_violator"), ("warp", "warp_exact"),
         ("softmax", "pairwise"))
PAIRED_METRICS = ("per_class_recall", "overall_recall", "n_plus_percent")


def paired_differences_text(runs: Sequence[dict[str, Any]]) -> str:
  """A markdown table of ``a - b`` per seed (the seeds both variants ran), mean ± std over those seeds, in
  points, for the :data:`PAIRS` present; ``""`` when no pair shares a seed. Runs of one seed share the
  initialisation and the batch order across losses, so the difference is paired."""
  by_key = {(r["report"]["loss"], r["report"]["seed"]): r["report"] for r in runs}
  lines = []
  for k in (3, 5):
    for a, b in PAIRS:
      seeds = sorted(s for (v, s) in by_key if v == a and (b, s) in by_key)
      if not seeds:
        continue
      cells = []
      for metric in PAIRED_METRICS:
        scale = 1.0 if metric == "n_plus_percent" else 100.0
        diffs = [scale * (by_key[(a, s)][f"k{k}"][metric] - by_key[(b, s)][f"k{k}"][metric]) for s in seeds]
        summary = reporting.seed_summary(diffs)
        cells.append(f"{summary['mean']:+.2f}" + (f" ± {summary['std']:.2f}" if summary["n"] > 1 else "")
                     + f" ({summary['n']})")
      lines.append(f"| {k} | {a} − {b} | {', '.join(map(str, seeds))} | " + " | ".join(cells) + " |")
  if not lines:
    return ""
  header = ("## Paired differences (same seed: same initialisation and batch order), in points\n\n"
            "| k | difference | seeds | per-class recall | overall recall | N+ (%) |\n|---|---|---|---|---|---|")
  return header + "\n" + "\n".join(lines) + "\n"


def plot(runs: Sequence[dict[str, Any]], path: str, k: int = 3) -> None:
  """Per-tag recall at ``k`` vs training tag frequency for the three losses (seeds averaged)."""
  curves = {}
  frequency = None
  for loss in FIGURE_LOSSES:
    reports = [r["report"] for r in runs if r["report"]["loss"] == loss]
    if reports:
      curves[task_lib.ROW_NAMES[loss]] = np.mean([r["recall_by_tag"][f"k{k}"] for r in reports], axis=0)
      frequency = np.asarray(reports[0]["tag_frequency"])
  if frequency is None:
    return
  task_lib.plot_recall_vs_frequency(curves, frequency, path, k=k)


def make_tables(runs: Sequence[dict[str, Any]], out: str = "") -> str:
  """Tables 1-2 of ``runs``; with ``out``, also ``tables.md`` and ``recall_vs_frequency.png`` there."""
  runs = [r for r in runs if isinstance(r.get("report"), dict) and "k3" in r["report"]]
  if not runs:
    raise FileNotFoundError("no annotation run (results.json with a report) among the runs.")
  text = tables_text(runs)
  paired = paired_differences_text(runs)
  if paired:
    text += "\n" + paired
  if out:
    plot(runs, os.path.join(out, "recall_vs_frequency.png"))
    text += "\n![per-tag recall vs tag frequency](recall_vs_frequency.png)\n"
    reporting.write_markdown(out, text, name="tables.md")
  return text
