"""Shared plumbing of the ``experiments/*_tables.py`` scripts (they define no --config / --workdir flags)."""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from absl import app


def run_tables(main: Callable[[Sequence[str]], None]) -> None:
  """``absl.app.run(main)``; when ``--runs`` matches no finished run (``FileNotFoundError`` from
  :func:`ranking_jax.reporting.collect_runs`), one error line and exit status 2 instead of a traceback
  (absl's UsageError would print the whole module docstring)."""

  def guarded(argv: Sequence[str]) -> None:
    try:
      main(argv)
    except FileNotFoundError as error:
      print(f"{os.path.basename(sys.argv[0]) if sys.argv else 'tables'}: error: {error} Check --runs.",
            file=sys.stderr)
      sys.exit(2)

  app.run(guarded)
