"""Helpers shared by several test files (importable because conftest.py puts tests/ on sys.path)."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
import types

import jax
import numpy as np

TRAIN_TASK_FILE = pathlib.Path(__file__).with_name("test_train_task.py")
REPO = pathlib.Path(__file__).resolve().parents[1]
# The real datasets beside the repository (../shared/data); a user's clone lacks them and their tests skip.
SHARED_DATA = pathlib.Path(os.environ.get("RANKING_JAX_SHARED_DATA", str(REPO.parent / "shared" / "data")))


def train_task_module() -> types.ModuleType:
  """The tiny MLP task of ``test_train_task.py`` (also run as a main by the subprocess tests), loaded once."""
  name = "ranking_jax_test_train_task"
  if name not in sys.modules:
    spec = importlib.util.spec_from_file_location(name, TRAIN_TASK_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
  return sys.modules[name]


def jitted(fn):
  """``fn`` under ``jax.jit``: array arguments traced, every other keyword static (one compile per
  shape and option set, cheaper than op-by-op dispatch on a small test machine)."""
  cache = {}

  def wrapper(*args, **kwargs):
    static = {k: v for k, v in kwargs.items() if not isinstance(v, (np.ndarray, jax.Array))}
    dynamic = {k: v for k, v in kwargs.items() if k not in static}
    key = tuple(sorted(static.items()))
    if key not in cache:
      cache[key] = jax.jit(lambda *a, **kw: fn(*a, **kw, **static))
    return cache[key](*args, **dynamic)

  return wrapper
