"""Datasets by globally unique name: ``build_splits(config.data)`` instead of per-task if/elif.

A dataset is a function ``builder(data_config) -> {"train", "validation", "test"}`` of sources (any
object with ``__len__``/``__getitem__``; see :mod:`ranking_jax.data.sources`) registered under one name::

    @registry.register_dataset("scene_attributes")
    def scene_attributes(data_config): ...

    splits = registry.build_splits(config.data)           # config.data.name == "scene_attributes"

Shared datasets register in :mod:`ranking_jax.data`; a paper's private datasets register when its project
package is imported (its task imports them), so core code never imports a project. A task passes the
names it can train on as ``accepted``, and a name outside them is a :class:`ConfigValueError` listing
them (one usage line from the experiment mains, before any data work).
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Mapping, Optional, Sequence

from ranking_jax.errors import ConfigValueError

Builder = Callable[[Any], Mapping[str, Any]]
DATASETS: dict[str, Builder] = {}


def register_dataset(name: str) -> Callable[[Builder], Builder]:
  """Decorator registering ``builder(data_config) -> {split: source}`` under ``name``.

  Raises:
    ValueError: ``name`` is already registered to another function (names are global).
  """
  def decorate(builder: Builder) -> Builder:
    known = DATASETS.get(name)
    if known is not None and known.__qualname__ != builder.__qualname__:
      raise ValueError(f"dataset {name!r} is already registered by {known.__module__}.{known.__qualname__}.")
    DATASETS[name] = builder
    return builder
  return decorate


def check_dataset_name(name: str, accepted: Optional[Sequence[str]] = None) -> None:
  """Raises :class:`ConfigValueError` unless ``name`` is registered (and in ``accepted`` when given)."""
  choices = tuple(accepted) if accepted is not None else tuple(sorted(DATASETS))
  if name in choices:
    return
  close = difflib.get_close_matches(str(name), choices, n=2, cutoff=0.5)
  raise ConfigValueError(f"config.data.name must be one of {', '.join(map(repr, choices))}, got {name!r}"
                         + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else "") + ".")


def build_splits(data_config: Any, accepted: Optional[Sequence[str]] = None) -> dict[str, Any]:
  """The ``{"train", "validation", "test"}`` sources of the dataset named ``data_config.name``.

  Args:
    data_config: the experiment's ``config.data`` (a ``ConfigDict``); the builder reads its other fields.
    accepted: the dataset names the calling task can use (default: every registered name).

  Raises:
    ConfigValueError: an unknown name, or one the task does not accept.
    DataNotFoundError: the dataset's files are missing (raised by its builder).
  """
  name = data_config.name
  check_dataset_name(name, accepted)
  if name not in DATASETS:
    raise ConfigValueError(f"dataset {name!r} is accepted but not registered (import the module that "
                           "registers it).")
  return dict(DATASETS[name](data_config))
