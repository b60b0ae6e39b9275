r"""One entry point for every experiment's tables: aggregates finished runs over seeds, beside the paper.

  python -m experiments.tables <experiment> --runs=GLOB[,GLOB...] [--out=DIR] [--include_incomplete]

``<experiment>`` is one of the experiments (``class_rectification``, ``image_difficulty``,
``multilabel_annotation``, ``sketch_retrieval``, ``sodeep_map``, ``sodeep_recall``, ``sodeep_spearman``,
``sodeep_synthetic_ap``); ``--runs`` globs their work directories (default
``/tmp/rj-runs/<experiment>/*``). Rules every experiment's tables follow:

* a run stopped early (``complete: false`` in ``results.json``, e.g. by ``max_train_seconds``) or one
  without a report is left out and named on a ``left out`` line; ``--include_incomplete`` keeps the
  incomplete ones, marked ``INCOMPLETE`` in a line above the table;
* runs of different schedules (``total_steps``: a ``smoke`` run beside default-size seeds) are never
  averaged together: each schedule gets its own section;
* nothing is written unless ``--out`` names a folder (tables.md and the figures go there), so running
  this from the repository root never changes a tracked file.
"""

from __future__ import annotations

import collections
import importlib
import inspect
import os
import sys
from typing import Any, Sequence

from absl import app
from absl import flags

# Each experiment's task module: the name its runs record in results.json (``"task"``).
_TASK_MODULES = {
    "class_rectification": "ranking_jax.projects.class_rectification.class_rectification",
    "image_difficulty": "ranking_jax.projects.ide_ranknet.image_difficulty",
    "multilabel_annotation": "ranking_jax.projects.multilabel_annotation.multilabel_annotation",
    "sketch_retrieval": "ranking_jax.projects.sketch_retrieval.sketch_retrieval",
    "sodeep_map": "ranking_jax.projects.sodeep.sodeep_map",
    "sodeep_recall": "ranking_jax.projects.sodeep.sodeep_recall",
    "sodeep_spearman": "ranking_jax.projects.sodeep.sodeep_spearman",
    "sodeep_synthetic_ap": "ranking_jax.projects.sodeep.sodeep_synthetic_ap",
}
_EXPERIMENTS = tuple(_TASK_MODULES)
_RUNS = flags.DEFINE_string("runs", None, "Glob(s) of the runs' work directories, comma-separated "
                            "(default: /tmp/rj-runs/<experiment>/*).")
_OUT = flags.DEFINE_string("out", "", "Folder for tables.md and the figures ('' = print only, write nothing).")
_INCLUDE_INCOMPLETE = flags.DEFINE_bool("include_incomplete", False,
                                        "Keep runs stopped early (marked INCOMPLETE) instead of leaving them out.")
_BASELINE = flags.DEFINE_string("baseline", "ce", "class_rectification only: the variant gains are measured against.")


def select_runs(runs: Sequence[dict[str, Any]], include_incomplete: bool = False,
                experiment: str = "") -> tuple[list[dict[str, Any]], list[str]]:
  """``(kept runs, notes)``: runs of another experiment (``results["task"]``) and runs without a report are
  dropped; incomplete ones dropped or kept; each noted."""
  kept, notes = [], []
  for run in runs:
    task = run.get("task")
    if experiment and task and task != _TASK_MODULES.get(experiment):
      notes.append(f"left out (a run of {task.rsplit('.', 1)[-1]}, not {experiment}): {run['workdir']}")
    elif not isinstance(run.get("report"), dict):
      notes.append(f"left out (no report): {run['workdir']}")
    elif not run.get("complete", True):
      if include_incomplete:
        kept.append(run)
        notes.append(f"INCOMPLETE, included: {run['workdir']} (step {run.get('step')} of {run.get('total_steps')})")
      else:
        notes.append(f"left out (incomplete, step {run.get('step')} of {run.get('total_steps')}; "
                     f"--include_incomplete keeps it): {run['workdir']}")
    else:
      kept.append(run)
  return kept, notes


def by_schedule(runs: Sequence[dict[str, Any]]) -> dict[Any, list[dict[str, Any]]]:
  """The runs grouped by the step they reached (their budget when complete), smallest first."""
  groups: dict[Any, list[dict[str, Any]]] = collections.defaultdict(list)
  for run in runs:
    groups[run.get("step", run.get("total_steps"))].append(run)
  return dict(sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))


def tables_text(experiment: str, runs: Sequence[dict[str, Any]], out: str = "", *,
                include_incomplete: bool = False, **options: Any) -> str:
  """The tables of ``experiment`` over ``runs`` (``results.json`` dicts with ``workdir``), as markdown.

  Raises:
    FileNotFoundError: no run is left to tabulate.
    ValueError: an unknown experiment.
  """
  if experiment not in _EXPERIMENTS:
    raise ValueError(f"unknown experiment {experiment!r}; choose one of {', '.join(_EXPERIMENTS)}.")
  module = importlib.import_module(f"experiments.{experiment}_tables")
  kept, notes = select_runs(runs, include_incomplete, experiment)
  if not kept:
    raise FileNotFoundError("no complete run with a report among the matched runs"
                            + (" (" + "; ".join(notes) + ")" if notes else "") + ".")
  accepted = inspect.signature(module.make_tables).parameters
  options = {k: v for k, v in options.items() if k in accepted}
  schedules = by_schedule(kept)
  parts = [f"- {note}" for note in notes]
  for steps, group in schedules.items():
    folder = out if (not out or len(schedules) == 1) else os.path.join(out, f"steps_{steps}")
    if len(schedules) > 1:
      parts.append(f"\n## Runs of {steps} steps ({len(group)} runs; schedules are never averaged together)\n")
    # A repeat is the same variant with the same seed (different variants share seeds by design).
    seeds = collections.Counter((str(run.get("report", {}).get("variant")), run.get("config", {}).get("seed"))
                                for run in group)
    repeated = sorted(f"{variant} seed {seed}" for (variant, seed), count in seeds.items()
                      if count > 1 and seed is not None)
    if repeated:
      parts.append(f"- WARNING: {', '.join(repeated)} appear(s) in several runs of this schedule; each "
                   "run counts once in the spread (narrow --runs to one run per variant and seed).")
    try:
      parts.append(module.make_tables(group, folder, **options))
    except (KeyError, TypeError, IndexError) as error:
      # A run made before results.json named its task, by another experiment: say which field is missing.
      raise FileNotFoundError(f"a run under --runs is not a complete {experiment} run (its report lacks "
                              f"{error}); narrow --runs to this experiment's work directories.") from None
  return "\n".join(parts)


def main(argv: Sequence[str]) -> None:
  if len(argv) != 2 or argv[1] not in _EXPERIMENTS:
    print(f"tables: error: name one experiment: python -m experiments.tables <experiment> --runs=GLOB, "
          f"one of {', '.join(_EXPERIMENTS)} (got {' '.join(argv[1:]) or 'none'}).", file=sys.stderr)
    sys.exit(2)
  from ranking_jax import reporting  # pylint: disable=g-import-not-at-top
  experiment = argv[1]
  pattern = _RUNS.value or f"/tmp/rj-runs/{experiment}/*"
  try:
    runs = reporting.collect_runs(pattern)
    print(tables_text(experiment, runs, _OUT.value, include_incomplete=_INCLUDE_INCOMPLETE.value,
                      baseline=_BASELINE.value))
  except FileNotFoundError as error:
    print(f"tables: error: {error} Check --runs.", file=sys.stderr)
    sys.exit(2)
  if _OUT.value:
    print(f"wrote the tables and figures into {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
