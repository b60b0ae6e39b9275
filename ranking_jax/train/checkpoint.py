"""Orbax checkpoints of the train state: periodic and final saves, keep-N, resume from the latest.

Atomicity: Orbax writes a step into ``<dir>/<step>.orbax-checkpoint-tmp-<n>`` and renames it to
``<dir>/<step>`` only once every file is written (on file systems without atomic rename it writes a
``commit_success.txt`` marker instead). ``latest_step()`` only lists finalised steps, so a run killed in
the middle of a save restarts from the previous complete checkpoint; left-over temporary directories are
ignored (and cleaned up by Orbax). ``tests/test_train_checkpoint.py`` checks both behaviours.
"""

from __future__ import annotations

import os
from typing import Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from ranking_jax.train.state import TrainState


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
    self._manager = ocp.CheckpointManager(self.directory, options=options)

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

  def restore(self, template: TrainState, step: Optional[int] = None) -> tuple[TrainState, Optional[int]]:
    """Restores ``step`` (default: the latest) into the structure of ``template``.

    Returns ``(state, step)``; ``(template, None)`` when there is no checkpoint yet.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      return template, None
    target = serialization.to_state_dict(jax.device_get(template))
    abstract = jax.tree_util.tree_map(np.asarray, target)
    restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return serialization.from_state_dict(template, restored), step

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
