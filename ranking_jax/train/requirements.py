"""What a task needs from the config, declared once and checked by the trainer before any work.

Listwise losses rank the whole mini-batch, so most tasks need ``config.loss_scope = "global"``; a learned
sorter serves lists of a bounded length, so a batch-as-list task with one needs ``batch_size`` at most that
length. A task states both as a :class:`Requirements`; :func:`check_requirements` refuses a config that
breaks them with :class:`~ranking_jax.errors.ConfigValueError` (one usage line from the experiment mains).
Tasks call it first thing in ``make_task`` (before their data are rendered) and
:func:`~ranking_jax.train.train_and_evaluate` checks ``Task.requirements`` again, for hand-built tasks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from ranking_jax.errors import ConfigValueError


@dataclasses.dataclass(frozen=True)
class Requirements:
  """A task's needs.

  Attributes:
    global_batch: why the loss needs the whole global batch as one list (``""``: it does not); when set,
      ``config.loss_scope`` must be ``"global"``.
    max_list_length: the longest list the loss's rank function serves (a learned sorter's
      ``max_length``), or None; with ``global_batch`` the list is the global batch, so
      ``config.batch_size`` must not exceed it.
    list_length_reason: what bounds the list length (named in the error).
    pretrained_weights: the backbone whose pretrained weights the task loads (``"efficientnet_lite0"``, the
      one shipped as an optional package), or ``""``; checked before any data are read, so a missing
      package stops the run at once instead of after the data are rendered.
  """

  global_batch: str = ""
  max_list_length: Optional[int] = None
  list_length_reason: str = ""
  pretrained_weights: str = ""


def check_requirements(config: Any, requirements: Optional[Requirements]) -> None:
  """Raises :class:`ConfigValueError` when ``config`` breaks ``requirements`` (None: nothing to check), and
  :class:`ranking_jax.models.weights.PretrainedWeightsNotFoundError` when the pretrained weights it names are
  not installed.

  >>> import ml_collections
  >>> config = ml_collections.ConfigDict({"loss_scope": "device", "batch_size": 128})
  >>> check_requirements(config, Requirements(global_batch="Kendall's tau ranks the batch"))
  Traceback (most recent call last):
  ...
  ranking_jax.errors.ConfigValueError: Kendall's tau ranks the batch: config.loss_scope must be 'global', got 'device'.
  """
  if requirements is None:
    return
  if requirements.global_batch and config.get("loss_scope", "global") != "global":
    raise ConfigValueError(f"{requirements.global_batch}: config.loss_scope must be 'global', got "
                           f"{config.loss_scope!r}.")
  if requirements.pretrained_weights:
    if requirements.pretrained_weights != "efficientnet_lite0":
      raise ConfigValueError(f"no pretrained weights are shipped for {requirements.pretrained_weights!r} "
                             "(only 'efficientnet_lite0').")
    from ranking_jax.models import weights  # pylint: disable=g-import-not-at-top  # lazy: numpy-only path
    weights.efficientnet_lite0_checkpoint_path()  # raises PretrainedWeightsNotFoundError with the pip line
  limit = requirements.max_list_length
  if limit is not None and int(config.batch_size) > limit:
    reason = requirements.list_length_reason or "the rank function"
    raise ConfigValueError(f"{reason} serves lists of at most {limit} items and the list is the global "
                           f"batch: config.batch_size must be <= {limit}, got {config.batch_size}.")


def listwise_requirements(reason: str, rank_fn: str = "") -> Requirements:
  """The usual needs of a loss that ranks the global batch with the rank function ``rank_fn``.

  Args:
    reason: why the loss needs the whole global batch (named in the error).
    rank_fn: a :func:`ranking_jax.ranks.get_rank_fn` spec (``""``: none); a learned sorter bounds the
      list length by its ``max_length``.

  >>> listwise_requirements("eq. 4 ranks the batch", "lstm").max_list_length
  100
  """
  from ranking_jax import ranks  # pylint: disable=g-import-not-at-top
  return Requirements(global_batch=reason, max_list_length=ranks.max_list_length(rank_fn or ""),
                      list_length_reason=f"the sorter {rank_fn!r}")
