"""Shared reporting for every experiment: tables beside the paper's figures, markdown files, PNG figures.

An experiment's ``Task.report(result, workdir)`` turns the predictions the trainer already computed into
rows (one per variant or per attribute, ...), writes ``results.md`` with :func:`write_markdown` and its
figures with :func:`figure`, and returns a JSON-able dict that the trainer stores under
``results["report"]`` in ``results.json``. :func:`collect_runs` and :func:`seed_summary` gather the
``results.json`` of several runs (variants, seeds) into one table.

>>> print(markdown_table([{"variant": "mse", "tau": 0.25, "paper_tau": 0.405}],
...                      [Column("variant"), Column("tau", "Kendall tau", ".3f"),
...                       Column("paper_tau", "paper", ".3f")]))
| variant | Kendall tau | paper |
|---|---|---|
| mse | 0.250 | 0.405 |
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import math
import os
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Column:
  """One column of a markdown table: the row key, its header and a format spec for numbers."""

  key: str
  header: Optional[str] = None
  fmt: str = ".4f"

  def cell(self, row: Mapping[str, Any]) -> str:
    value = row.get(self.key)
    if value is None:
      return "-"
    if isinstance(value, (bool, np.bool_)):
      return str(bool(value))
    if isinstance(value, (int, np.integer)) and not self.fmt.endswith("%"):
      return str(int(value))
    if isinstance(value, (float, np.floating)):
      return "NaN" if math.isnan(float(value)) else format(float(value), self.fmt)
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
  """A GitHub markdown table of ``rows`` (dicts) with ``columns``; a missing value prints ``-``."""
  header = "| " + " | ".join(c.header or c.key for c in columns) + " |"
  rule = "|" + "---|" * len(columns)
  body = ["| " + " | ".join(c.cell(row) for c in columns) + " |" for row in rows]
  return "\n".join([header, rule, *body])


def write_markdown(workdir: str, text: str, name: str = "results.md") -> str:
  """Writes ``text`` to ``workdir/name`` atomically (temporary file + rename); returns the path."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, name)
  temporary = f"{path}.tmp-{os.getpid()}"
  with open(temporary, "w", encoding="utf-8") as f:
    f.write(text if text.endswith("\n") else text + "\n")
  os.replace(temporary, path)
  return path


@contextlib.contextmanager
def figure(path: str, *, figsize: tuple[float, float] = (5.0, 4.0), nrows: int = 1, ncols: int = 1,
           dpi: int = 100) -> Iterator[tuple[Any, Any]]:
  """``with figure("fig.png") as (fig, axes): ...`` draws with matplotlib (Agg) and saves a PNG on exit."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(nrows, ncols, figsize=figsize, dpi=dpi)
  try:
    yield fig, axes
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
  finally:
    plt.close(fig)


def collect_runs(pattern: str) -> list[dict[str, Any]]:
  """The ``results.json`` of every work directory matching the glob ``pattern`` (several globs:
  comma-separated), with ``workdir`` added; a directory matched twice is read once.

  Raises:
    FileNotFoundError: no directory matching ``pattern`` holds a ``results.json``.
  """
  runs, seen = [], set()
  workdirs = sorted({w for part in pattern.split(",") if part.strip() for w in glob.glob(part.strip())})
  for workdir in workdirs:
    if os.path.realpath(workdir) in seen:  # a run reached through a symbolic link counts once
      continue
    seen.add(os.path.realpath(workdir))
    path = os.path.join(workdir, "results.json")
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        runs.append({"workdir": workdir, **json.load(f)})
  if not runs:
    raise FileNotFoundError(f"no results.json under any directory matching {pattern!r}.")
  return runs


def seed_summary(values: Sequence[float]) -> dict[str, float]:
  """Mean, sample standard deviation (ddof 1; 0 for one seed), min, max and count of per-seed values.

  >>> {k: round(v, 3) for k, v in seed_summary([0.5, 0.7, 0.6]).items()}
  {'mean': 0.6, 'std': 0.1, 'min': 0.5, 'max': 0.7, 'n': 3}

  Raises:
    ValueError: ``values`` is empty.
  """
  array = np.asarray(values, np.float64)
  if array.size == 0:
    raise ValueError("seed_summary needs at least one value.")
  return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if array.size > 1 else 0.0,
          "min": float(array.min()), "max": float(array.max()), "n": int(array.size)}


def mean_pm_std(values: Sequence[float], fmt: str = ".3f") -> str:
  """``"mean ± std (n seeds)"`` for a table cell; one value alone is ``"value (1 seed)"`` (no spread).

  >>> mean_pm_std([0.5, 0.7, 0.6])
  '0.600 ± 0.100 (3 seeds)'
  >>> mean_pm_std([0.5])
  '0.500 (1 seed)'
  """
  summary = seed_summary(values)
  if summary["n"] == 1:
    return f"{format(summary['mean'], fmt)} (1 seed)"
  return f"{format(summary['mean'], fmt)} ± {format(summary['std'], fmt)} ({summary['n']} seeds)"
