"""Protocols shared across the library: what a rank function looks like, and a multi-task schedule."""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Protocol

import jax

Array = jax.Array


class RankFn(Protocol):
  """``rank_fn(scores[..., n], *, where=None) -> ranks[..., n]``: 1-based, rank 1 = highest score.

  Masked (and non-finite) items get rank 0 and do not change the ranks of the valid ones. Scores of any
  real dtype are accepted; ranks are float32, or float64 for float64 scores (see
  :mod:`ranking_jax.ranks`).
  """

  def __call__(self, scores: Array, *, where: Optional[Array] = None) -> Array:
    ...


# A multi-task schedule maps the (traced) global step to a weight for each named loss term.
Schedule = Callable[[Array], Mapping[str, Array]]
