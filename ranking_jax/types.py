"""Protocols shared across the library: what a rank function, a loss and a metric look like."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Protocol

import jax

Array = jax.Array


class RankFn(Protocol):
  """``rank_fn(scores[..., n], *, where=None) -> ranks[..., n]``: 1-based, rank 1 = highest score.

  Masked items get rank 0 and do not change the ranks of the valid ones.
  """

  def __call__(self, scores: Array, *, where: Optional[Array] = None) -> Array:
    ...


class LossFn(Protocol):
  """``loss(scores, labels, *, where=None, weights=None, reduce_fn=jnp.mean, **options) -> Array``."""

  def __call__(self, scores: Array, labels: Array, *, where: Optional[Array] = None,
               weights: Optional[Array] = None, reduce_fn: Optional[Callable[..., Array]] = ...,
               **options: Any) -> Array:
    ...


class MetricFn(Protocol):
  """A metric computed on host over a whole evaluation set: ``metric(scores, labels, **options)``."""

  def __call__(self, scores: Any, labels: Any, **options: Any) -> Any:
    ...


# A multi-task schedule maps the (traced) global step to a weight for each named loss term.
Schedule = Callable[[Array], Mapping[str, Array]]
