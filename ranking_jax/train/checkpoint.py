"""Orbax checkpoints of the train state: periodic and final saves, keep-N, resume from the latest.

Atomicity: Orbax writes a step into ``<dir>/<step>.orbax-checkpoint-tmp-<n>`` and renames it to
``<dir>/<step>`` only once every file is written (on file systems without atomic rename it writes a
``commit_success.txt`` marker instead). ``latest_step()`` only lists finalised steps, so a run killed in
the middle of a save restarts from the previous complete checkpoint; left-over temporary directories are
ignored (and cleaned up by Orbax). ``tests/test_train_checkpoint.py`` checks both behaviours.

Orbax lists every directory named ``<step>`` as a finalised checkpoint (on a local file system it takes
the rename as the commit and does not require its ``commit_success.txt``), so a step directory that was
damaged afterwards -- an empty or half-copied ``<step>/`` left by copying a work directory -- is listed
and its restore fails. :meth:`Checkpointer.restore` therefore tries the steps newest first: an
unreadable step newer than a readable one is moved aside to ``<step>.damaged`` (which Orbax ignores; a
relaunch then saves that step afresh) and reported in :attr:`Checkpointer.skipped`; when no step can be
read it raises :class:`CheckpointReadError` naming the directories.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from ranking_jax.train.state import TrainState


class CheckpointReadError(RuntimeError):
  """No checkpoint step under the directory can be read (damaged, or written for other parameters)."""


@dataclasses.dataclass(frozen=True)
class SkippedCheckpoint:
  """An unreadable step directory newer than the restored one: ``path`` was moved to ``moved_to``."""

  step: int
  path: str
  moved_to: Optional[str]
  error: str


def _first_line(error: BaseException, limit: int = 200) -> str:
  text = (str(error).strip().splitlines() or [""])[0]
  text = f"{type(error).__name__}: {text}" if text else type(error).__name__
  return text if len(text) <= limit else text[:limit - 3] + "..."


class _FailedReadNoiseFilter(logging.Filter):
  """Drops asyncio's "Future exception was never retrieved" records about reads under ``path``."""

  def __init__(self, path: str):
    super().__init__()
    self.path = path

  def filter(self, record: logging.LogRecord) -> bool:
    text = record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
    return not ("never retrieved" in text and self.path in text)


def _closed_loop_hook(previous):
  def hook(unraisable):
    if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
      return
    previous(unraisable)
  hook.ranking_jax_closed_loop = True
  return hook


def _silence_failed_read(path: str) -> None:
  """Silences the after-effects of an Orbax read of ``path`` that failed half-way, for the rest of the process.

  Its other tensorstore reads still complete: asyncio logs each one's error when the future is collected
  ("Future exception was never retrieved"), and their callbacks find Orbax's event loop closed
  ("RuntimeError: Event loop is closed", an unraisable exception with a traceback). Both repeat a read
  error the caller reports in one line; only those two messages are dropped.
  """
  logging.getLogger("asyncio").addFilter(_FailedReadNoiseFilter(path))
  if not getattr(sys.unraisablehook, "ranking_jax_closed_loop", False):
    sys.unraisablehook = _closed_loop_hook(sys.unraisablehook)


class Checkpointer:
  """Saves and restores a host (unreplicated) :class:`TrainState` under ``directory``.

  Args:
    directory: where the step directories live (created if missing).
    max_to_keep: number of most recent checkpoints kept.
    async_save: write in a background thread (training continues meanwhile).
  """

  def __init__(self, directory: str, *, max_to_keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=async_save)
    # One item, declared: without it Orbax infers the layout from the newest step directory, and an empty one
    # makes it refuse every step.
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_handlers=ocp.StandardCheckpointHandler())
    self.skipped: list[SkippedCheckpoint] = []

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, state: TrainState, *, force: bool = False) -> bool:
    """Saves ``state`` (host arrays) under its step; returns whether a save was started."""
    tree = serialization.to_state_dict(jax.device_get(state))
    step = int(np.asarray(state.step))
    if step in self._manager.all_steps():
      return False
    return self._manager.save(step, args=ocp.args.StandardSave(tree), force=force)

  def restore(self, template: TrainState, step: Optional[int] = None, *, set_aside_damaged: bool = True
              ) -> tuple[TrainState, Optional[int]]:
    """Restores ``step`` (default: the newest readable one) into the structure of ``template``.

    With ``step=None`` the steps are tried newest first; each unreadable one newer than the restored step
    is recorded in :attr:`skipped` and, with ``set_aside_damaged``, moved aside to ``<step>.damaged`` by
    process 0 (so that the run can save that step again).

    Returns ``(state, step)``; ``(template, None)`` when there is no checkpoint yet.

    Raises:
      CheckpointReadError: no listed step (or the requested ``step``) can be read; the message names the
        step directories and the first line of each read error.
    """
    self.skipped = []
    steps = sorted(self.all_steps(), reverse=True) if step is None else [int(step)]
    if not steps:
      return template, None
    target = serialization.to_state_dict(jax.device_get(template))
    abstract = jax.tree_util.tree_map(np.asarray, target)
    failures = []
    for candidate in steps:
      try:
        restored = self._manager.restore(candidate, args=ocp.args.StandardRestore(abstract))
      except Exception as error:  # pylint: disable=broad-except (Orbax raises many types for bad files)
        _silence_failed_read(self._step_path(candidate))
        failures.append((candidate, _first_line(error)))
        continue
      state = serialization.from_state_dict(template, restored)
      self.skipped = [SkippedCheckpoint(s, self._step_path(s), None, e) for s, e in failures]
      if failures and set_aside_damaged:
        self._set_aside([s.step for s in self.skipped])
      return state, candidate
    listing = "; ".join(f"{self._step_path(s)}: {e}" for s, e in failures)
    raise CheckpointReadError(
        f"no checkpoint under {self.directory} can be read ({listing}). The step directories are damaged "
        "(e.g. half-copied) or hold another configuration's parameters: restore them from a copy, or move "
        "them away to start that run from scratch.")

  def _step_path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def _set_aside(self, steps: list[int]) -> None:
    """Renames the unreadable ``steps`` to ``<step>.damaged[-n]`` (process 0; all processes then re-list)."""
    moved = {}
    if jax.process_index() == 0:
      for step in steps:
        source = self._step_path(step)
        target, n = f"{source}.damaged", 1
        while os.path.exists(target):
          target, n = f"{source}.damaged-{n}", n + 1
        os.rename(source, target)
        moved[step] = target
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices("ranking_jax_checkpoint_set_aside")
    self._manager.reload()
    self.skipped = [dataclasses.replace(s, moved_to=moved.get(s.step)) for s in self.skipped]

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
