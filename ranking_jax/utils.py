"""Shared helpers for the masking and reduction conventions of every loss.

Conventions (the same as `rax`): lists lie along the last axis, any leading axes are batch axes; ``where``
is a boolean mask of valid items (broadcast to ``scores``); ``weights`` are per-item weights; ``reduce_fn``
reduces the per-list losses (``None`` returns them). A list with no valid item contributes a loss of 0 and
zero gradients, and a batch in which every list is masked reduces to 0, never to NaN.

Non-finite scores (NaN, +-inf) at valid positions are treated as masked: the loss stays finite and the
offending items receive zero gradient. Use :func:`jax.experimental.checkify` around the loss if you prefer
an error.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

Array = jax.Array
ReduceFn = Optional[Callable[..., Array]]


def as_float(x: Array) -> Array:
  """Casts to float32, or keeps float64; bfloat16/float16 inputs are promoted so sums stay exact."""
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.floating):
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))
  return x.astype(jnp.float32)


def valid_mask(scores: Array, where: Optional[Array] = None) -> Array:
  """Boolean mask of the items that take part: ``where`` (broadcast) and finite scores."""
  mask = jnp.isfinite(scores)
  if where is not None:
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
      raise TypeError(f"`where` must be boolean, got dtype {where.dtype}.")
    mask = mask & jnp.broadcast_to(where, scores.shape)
  return mask


def sanitize(x: Array, mask: Array, fill: float = 0.0) -> Array:
  """Replaces masked entries by ``fill`` so that NaN/inf there cannot reach values or gradients."""
  return jnp.where(mask, x, jnp.asarray(fill, x.dtype))


def standardize(scores: Array, mask: Array, eps: float = 1e-6) -> Array:
  """Per-list ``(s - mean) / sqrt(var + eps)`` over the valid items (last axis); masked entries -> 0.

  Ranks are invariant to it, so rank surrogates applied after it are invariant to the scale and shift of
  the scores. The ``eps`` keeps values and gradients finite for constant or one-element lists.
  """
  count = jnp.maximum(jnp.sum(mask, axis=-1, keepdims=True), 1).astype(scores.dtype)
  safe = jnp.where(mask, scores, 0.0)
  mean = jnp.sum(safe, axis=-1, keepdims=True) / count
  centred = jnp.where(mask, safe - mean, 0.0)
  var = jnp.sum(centred * centred, axis=-1, keepdims=True) / count
  return centred / jnp.sqrt(var + eps)


def safe_divide(numerator: Array, denominator: Array) -> Array:
  """``numerator / denominator`` where the denominator is non-zero, else 0 (with a zero gradient)."""
  nonzero = denominator != 0
  safe_den = jnp.where(nonzero, denominator, jnp.ones_like(denominator))
  return jnp.where(nonzero, numerator / safe_den, jnp.zeros_like(numerator / safe_den))


def reduce_loss(values: Array, reduce_fn: ReduceFn, where: Optional[Array] = None) -> Array:
  """Reduces per-list (or per-item) loss ``values`` with ``reduce_fn`` over the valid entries.

  Args:
    values: loss values; entries where ``where`` is False are zeroed.
    reduce_fn: ``None`` (return ``values``) or a function called as ``reduce_fn(values, where=where)``
      such as ``jnp.mean`` or ``jnp.sum``.
    where: optional boolean mask of the entries that count.

  Returns:
    The reduced loss; 0 when no entry counts (``jnp.mean`` alone would return NaN there).
  """
  if where is not None:
    where = jnp.broadcast_to(where, values.shape)
    values = jnp.where(where, values, jnp.zeros_like(values))
  if reduce_fn is None:
    return values
  if where is None:
    return reduce_fn(values)
  any_valid = jnp.any(where)
  # Give reduce_fn at least one valid entry so it never computes 0/0; the result is then discarded.
  safe_where = where | ~any_valid
  reduced = reduce_fn(values, where=safe_where)
  return jnp.where(any_valid, reduced, jnp.zeros_like(reduced))


def check_same_shape(name_a: str, a: Array, name_b: str, b: Array) -> None:
  """Raises a ValueError naming both arguments if their shapes differ (checked at trace time)."""
  if jnp.shape(a) != jnp.shape(b):
    raise ValueError(f"`{name_a}` and `{name_b}` must have the same shape, got {jnp.shape(a)} and "
                     f"{jnp.shape(b)}.")


def check_rank_at_least(name: str, x: Array, ndim: int) -> None:
  if jnp.ndim(x) < ndim:
    raise ValueError(f"`{name}` must have at least {ndim} dimension(s) (lists on the last axis), got "
                     f"shape {jnp.shape(x)}.")
