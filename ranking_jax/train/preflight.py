"""Every check of a config value that needs no data, run before any data work (the experiment mains call it).

A wrong value (an unknown optimizer, schedule, loss scope, dataset or model name; inconsistent durations; a
config that breaks the task's :class:`~ranking_jax.train.Requirements`) is then one usage line within
seconds, instead of a traceback after the data were rendered. The trainer repeats the checks that need
the data (batch size against the number of examples, the first batch's shapes).
"""

from __future__ import annotations

import types as pytypes
from typing import Any, Optional

from ranking_jax.errors import ConfigValueError
from ranking_jax.train import config as config_lib
from ranking_jax.train import optim
from ranking_jax.train import parallel
from ranking_jax.train import requirements as requirements_lib

# Epoch-based durations need the dataset size, unknown here: any size gives the same name checks.
_NOMINAL_EXAMPLES = 1_000_000


def check_config(config: Any, task_module: Optional[pytypes.ModuleType] = None) -> None:
  """Raises :class:`ConfigValueError` for a config value the run cannot use, without touching data.

  Args:
    config: the experiment's config (``configs/<experiment>.py`` + overrides).
    task_module: the experiment's task module; its ``requirements(config)``, ``DATASETS`` (the dataset
      names it accepts) and ``config.model.name`` (a registered model) are checked when present.
  """
  scope = config.get("loss_scope", "global")
  if scope not in parallel.LOSS_SCOPES:
    raise ConfigValueError(f"config.loss_scope must be one of {parallel.LOSS_SCOPES}, got {scope!r}.")
  if int(config.batch_size) < 1:
    raise ConfigValueError(f"config.batch_size must be >= 1, got {config.batch_size}.")
  plan = config_lib.plan_steps(config, num_train_examples=max(_NOMINAL_EXAMPLES, int(config.batch_size)))
  try:
    optim.make_optimizer(config.optimizer, steps_per_epoch=plan.steps_per_epoch, total_steps=plan.total_steps)
  except ConfigValueError:
    raise
  except (ValueError, TypeError, KeyError, AttributeError) as error:
    raise ConfigValueError(f"config.optimizer: {error}") from None
  if task_module is None:
    return
  if hasattr(task_module, "requirements"):
    requirements_lib.check_requirements(config, task_module.requirements(config))
  if hasattr(task_module, "DATASETS") and "data" in config and "name" in config.data:
    from ranking_jax.data import registry  # pylint: disable=g-import-not-at-top
    registry.check_dataset_name(config.data.name, task_module.DATASETS)
  if "model" in config and "name" in config.model:
    from ranking_jax.models import registry as model_registry  # pylint: disable=g-import-not-at-top
    if config.model.name not in model_registry.MODELS:
      raise ConfigValueError(f"unknown config.model.name {config.model.name!r}; registered models: "
                             f"{', '.join(sorted(model_registry.MODELS))}.")
