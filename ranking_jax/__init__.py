"""ranking_jax: ranking-based losses for deep visual learning in JAX/Flax.

>>> import jax.numpy as jnp
>>> import ranking_jax as rj
>>> scores = jnp.array([[2.0, 1.0, 0.0]])
>>> float(rj.losses.kendall_rank_loss(scores, jnp.array([[3.0, 2.0, 1.0]])))
0.0
>>> rj.ranks.hard_ranks(scores)
Array([[1., 2., 3.]], dtype=float32)

The light modules (``losses``, ``ranks``, ``metrics``, ``types``, ``utils``) are imported eagerly; the
heavier ones (``train``, ``sorters``, ``models``, ``data``, ``tasks``, ``reporting``) on first attribute access.
"""

import importlib

from ranking_jax import losses
from ranking_jax import metrics
from ranking_jax import ranks
from ranking_jax import types
from ranking_jax import utils

__version__ = "0.1.0"

_LAZY_SUBMODULES = ("benchmarking", "data", "models", "reporting", "sorters", "tasks", "train")

__all__ = ["losses", "metrics", "ranks", "types", "utils", *_LAZY_SUBMODULES]


def __getattr__(name):
  if name in _LAZY_SUBMODULES:
    return importlib.import_module(f"ranking_jax.{name}")
  raise AttributeError(f"module 'ranking_jax' has no attribute {name!r}")
