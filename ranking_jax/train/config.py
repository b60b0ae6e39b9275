"""Reading the shared config fields: epochs converted to steps once, batch sizes checked.

Every experiment config starts from ``configs/base.py:get_base_config()``; the fields read here are
``seed``, ``batch_size`` (global, over all devices and processes), ``total_steps``, ``log_every_steps``,
``eval_every_steps``, ``checkpoint_every_steps`` and their ``*_epochs`` twins. Each duration is given in exactly one unit: a
config sets one field of a twin and leaves the other None (``configs/base.py:set_duration``), a
command-line override of one field replaces its twin (``experiments/main_lib.py``), and a config with
both fields of a twin set is refused here with a ``ValueError`` naming them. An ``*_epochs`` value is
converted with ``steps_per_epoch = num_train_examples // batch_size`` (the last partial batch is dropped)
and rounded to the nearest step (at least 1).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from ranking_jax.errors import ConfigValueError  # re-exported as ranking_jax.train.ConfigValueError

_INTERVALS = ("log_every", "eval_every", "checkpoint_every")


@dataclasses.dataclass(frozen=True)
class StepPlan:
  """The schedule of a run in steps. ``eval_every``/``checkpoint_every`` of 0 mean "only at the end"."""

  steps_per_epoch: int
  total_steps: int
  log_every: int
  eval_every: int
  checkpoint_every: int

  def describe(self) -> str:
    """One line for the progress log, e.g. ``30 steps (10 per epoch); log every 5, eval every 10, ..."""
    every = lambda n: f"every {n}" if n else "at the end"
    return (f"{self.total_steps} steps ({self.steps_per_epoch} per epoch); log every {self.log_every}, "
            f"evaluate {every(self.eval_every)}, checkpoint {every(self.checkpoint_every)}")


def steps_per_epoch(num_train_examples: Optional[int], batch_size: int) -> int:
  """``num_train_examples // batch_size`` (>= 1), or 1 when the dataset size is unknown."""
  if not num_train_examples:
    return 1
  return max(1, int(num_train_examples) // int(batch_size))


def epochs_to_steps(epochs: float, steps_per_epoch: int) -> int:
  """``round(epochs * steps_per_epoch)``, at least 1 for a positive duration (the one conversion).

  >>> epochs_to_steps(2.5, 10), epochs_to_steps(0.01, 10), epochs_to_steps(0, 10)
  (25, 1, 0)
  """
  return max(1, int(round(epochs * steps_per_epoch))) if epochs else 0


def _get(config: Any, name: str) -> Any:
  return config.get(name, None) if hasattr(config, "get") else getattr(config, name, None)


def _steps(config: Any, stem: str, per_epoch: int, known_epochs: bool) -> Optional[int]:
  epochs = _get(config, f"{stem}_epochs")
  if epochs is not None and _get(config, f"{stem}_steps") is not None:
    raise ConfigValueError(f"config.{stem}_steps={_get(config, f'{stem}_steps')} and "
                           f"config.{stem}_epochs={epochs} are both set; give one (on the command line, "
                           f"--config.{stem}_steps=N replaces the epochs and --config.{stem}_epochs=E the "
                           "steps; =None unsets a field).")
  if epochs is not None:
    if not known_epochs:
      raise ConfigValueError(f"config.{stem}_epochs={epochs} needs the dataset size (the task's "
                             "num_train_examples or steps_per_epoch), which is unknown.")
    if epochs < 0:
      raise ConfigValueError(f"config.{stem}_epochs must be >= 0, got {epochs}.")
    return epochs_to_steps(epochs, per_epoch)
  steps = _get(config, f"{stem}_steps")
  if steps is not None and steps < 0:
    raise ConfigValueError(f"config.{stem}_steps must be >= 0, got {steps}.")
  return steps


def plan_steps(config: Any, *, num_train_examples: Optional[int] = None,
               steps_per_epoch_override: Optional[int] = None) -> StepPlan:
  """Converts the config's epoch/step fields into a :class:`StepPlan` (done once, at start).

  >>> import ml_collections
  >>> cfg = ml_collections.ConfigDict(dict(batch_size=10, total_steps=None, total_epochs=3.0,
  ...     log_every_steps=5, eval_every_steps=None, eval_every_epochs=1.0, checkpoint_every_steps=7))
  >>> plan_steps(cfg, num_train_examples=105)
  StepPlan(steps_per_epoch=10, total_steps=30, log_every=5, eval_every=10, checkpoint_every=7)
  """
  batch_size = int(config.batch_size)
  if batch_size < 1:
    raise ConfigValueError(f"config.batch_size must be >= 1, got {batch_size}.")
  known = bool(num_train_examples) or bool(steps_per_epoch_override)
  per_epoch = int(steps_per_epoch_override or steps_per_epoch(num_train_examples, batch_size))
  total = _steps(config, "total", per_epoch, known)
  if not total:
    raise ConfigValueError("Set config.total_steps or config.total_epochs to a positive value.")
  intervals = {}
  for stem in _INTERVALS:
    value = _steps(config, stem, per_epoch, known)
    intervals[stem] = int(value or 0)
  return StepPlan(steps_per_epoch=per_epoch, total_steps=int(total), **intervals)


def per_process_batch_size(global_batch_size: int, process_count: int, local_device_count: int) -> int:
  """The batch each process loads; it must split evenly over processes and then over local devices."""
  if global_batch_size % process_count:
    raise ConfigValueError(f"config.batch_size={global_batch_size} is not divisible by the {process_count} "
                           "processes.")
  per_process = global_batch_size // process_count
  if per_process % local_device_count:
    raise ConfigValueError(f"config.batch_size={global_batch_size} gives {per_process} examples per process, "
                           f"not divisible by the {local_device_count} local devices.")
  return per_process
