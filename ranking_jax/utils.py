"""Shared helpers for the dtype, masking and reduction conventions of every loss and rank function.

Conventions (the same as `rax`): lists lie along the last axis, any leading axes are batch axes; ``where``
is a boolean mask of valid items (broadcast to ``scores``); ``weights`` are per-item weights; ``reduce_fn``
reduces the per-list losses (``None`` returns them). A list with no valid item contributes a loss of 0 and
zero gradients, and a batch in which every list is masked, or that has no list or no item at all (a
zero-size axis), reduces to 0, never to NaN.

Dtypes: inputs may be boolean, integer or floating; every computation runs in :func:`as_float`'s dtype,
float32, or float64 for float64 inputs (under ``jax_enable_x64``). bfloat16/float16 inputs are promoted
before anything is summed or ranked, and integers are never negated in their own dtype.

Non-finite scores (NaN, +-inf) at valid positions are treated as masked: the loss stays finite and the
offending items receive zero gradient. Use :func:`jax.experimental.checkify` around the loss if you prefer
an error. Finite inputs too large for a loss's terms are clipped (:func:`clip_magnitude`), so every finite
input gives a finite loss and finite gradients.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

Array = jax.Array
ReduceFn = Optional[Callable[..., Array]]


def float_dtype(dtype) -> jnp.dtype:
  """The compute dtype for inputs of ``dtype``: float64 stays float64, anything else becomes float32."""
  dtype = jnp.dtype(dtype)
  if jnp.issubdtype(dtype, jnp.floating):
    return jnp.promote_types(dtype, jnp.float32)
  return jnp.dtype(jnp.float32)


def as_float(x: Array) -> Array:
  """``x`` in the library's compute dtype (:func:`float_dtype`): float32, or float64 for float64 input.

  bool, integer, bfloat16 and float16 inputs are promoted to float32 so that sums and ranks stay exact
  (float32 holds every integer up to 2**24) and so that negation cannot wrap.

  >>> as_float(jnp.array([1, 2], jnp.uint8)).dtype
  dtype('float32')
  """
  x = jnp.asarray(x)
  return x.astype(float_dtype(x.dtype))


def valid_mask(scores: Array, where: Optional[Array] = None) -> Array:
  """Boolean mask of the items that take part: ``where`` (broadcast) and finite scores."""
  mask = jnp.isfinite(scores)
  if where is not None:
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
      raise TypeError(f"`where` must be boolean, got dtype {where.dtype}.")
    mask = mask & jnp.broadcast_to(where, scores.shape)
  return mask


def magnitude_bound(dtype) -> float:
  """The largest magnitude a loss lets a score, label, logit, feature or distance have: ``2**(e/2 - 16)``.

  ``e`` is the dtype's maximal exponent: 2**48 (2.8e14) for float32 (hence for bfloat16/float16/integer
  inputs), 2**496 for float64. Differences of two such values, their squares (2**98) and sums of up to
  2**29 squares stay finite, so no loss can overflow to inf (and then NaN, as inf - inf or 0 * inf).
  """
  return 2.0 ** (jnp.finfo(float_dtype(dtype)).maxexp // 2 - 16)


def clip_magnitude(x: Array) -> Array:
  """``x`` clipped to ``+-magnitude_bound``: how every loss (but the rank-based ones) saturates.

  A finite input beyond the bound counts as the bound, with zero gradient; below it nothing changes. At
  that magnitude float32 resolves steps of 2**25 only, so a margin or a unit-scale term is meaningless
  there anyway. The rank-based losses (Spearman, mAP, recall, Kendall) do not clip: ranks are defined at
  any magnitude and their terms are bounded.
  """
  bound = magnitude_bound(x.dtype)
  return jnp.clip(x, -bound, bound)


def sanitize(x: Array, mask: Array, fill: float = 0.0) -> Array:
  """Replaces masked entries by ``fill`` so that NaN/inf there cannot reach values or gradients."""
  return jnp.where(mask, x, jnp.asarray(fill, x.dtype))


def standardize(scores: Array, mask: Array) -> Array:
  r"""Per-list z-scores :math:`(s - \bar s) / \operatorname{std}(s)` over the valid items (last axis).

  The mean and the (population) standard deviation are those of the valid items of each list; masked
  entries map to 0. The result is invariant to a positive scale and to a shift of each list's scores up
  to the rounding of the scores themselves (a shift of ``k`` standard deviations costs about ``log2 k``
  bits), at any magnitude: the list is first divided by a power of two near its largest
  magnitude, and the centred list again by a power of two near its largest deviation, so no sum can
  overflow or underflow (scaling by a power of two is exact, so ``standardize(2**k * s) ==
  standardize(s)`` bit for bit). Only an all-equal list (a constant, one element, or none) has no
  spread: it maps to 0, the tie value, with zero gradient (the z-scores are discontinuous there).
  "All-equal" means equal in the compute dtype (float32 or float64, after conversion): the list is
  centred on one of its own items before the mean is taken, so a constant list has deviations of exactly
  0 whatever its value, length or summation order. Two items one ulp apart are not equal: such a list
  is standardised like any other (to about +-1, with gradients of order ``1 / spread``).

  Gradients are exact: the two power-of-two scales are constants for autodiff, which is correct because
  the z-scores do not depend on them.

  Args:
    scores: ``[..., n]`` scores (any real dtype; computed in :func:`as_float`'s dtype).
    mask: boolean mask of the valid items, broadcast to ``scores``.

  Returns:
    ``[..., n]`` z-scores in float32 (float64 for float64 input).

  >>> s = jnp.array([0.1, 0.3, 0.2, 0.25, 0.05])
  >>> m = jnp.ones(5, bool)
  >>> bool(jnp.allclose(standardize(s, m), standardize(1e-4 * s - 3e-4, m), atol=1e-5))
  True
  >>> standardize(jnp.array([7.0, 7.0, 1.0]), jnp.array([True, True, False]))
  Array([0., 0., 0.], dtype=float32)
  """
  scores = as_float(scores)
  mask = jnp.broadcast_to(mask, scores.shape)
  safe = jnp.where(mask, scores, jnp.zeros_like(scores))
  # Divide by 2**e ~ max |s| first, so that the sum of up to n items of magnitude < 2 cannot overflow.
  safe = _divide_by_power_of_two(safe, jnp.max(jnp.abs(safe), axis=-1, keepdims=True, initial=0.0))
  # Centre on one valid item first (the largest): an all-equal list becomes exactly 0, whereas its rounded
  # mean can differ from the common value by an ulp, a residue the scaling below would blow up to +-1.
  # Exact for items within a factor 2 of the reference (Sterbenz), so it also costs no precision.
  reference = jax.lax.stop_gradient(jnp.max(jnp.where(mask, safe, -jnp.inf), axis=-1, keepdims=True,
                                            initial=-jnp.inf))
  safe = jnp.where(mask, safe - jnp.where(jnp.isfinite(reference), reference, 0.0), 0.0)
  count = jnp.maximum(jnp.sum(mask, axis=-1, keepdims=True), 1).astype(scores.dtype)
  mean = jnp.sum(safe, axis=-1, keepdims=True) / count
  centred = jnp.where(mask, safe - mean, 0.0)
  spread = jnp.max(jnp.abs(centred), axis=-1, keepdims=True, initial=0.0)
  constant = spread == 0
  # After this scaling the largest deviation lies in [1, 2): the variance is >= 1/n, never subnormal.
  centred = _divide_by_power_of_two(centred, spread)
  variance = jnp.sum(centred * centred, axis=-1, keepdims=True) / count
  # The guard keeps sqrt's gradient finite on the discarded branch of a constant list.
  std = jnp.sqrt(jnp.where(constant, jnp.ones_like(variance), variance))
  return jnp.where(constant, jnp.zeros_like(centred), centred / std)


def _divide_by_power_of_two(x: Array, magnitude: Array) -> Array:
  """``x / 2**e`` with ``magnitude / 2**e`` in ``[1, 2)`` (``x`` for a zero magnitude); exact.

  The exponent is a constant for autodiff. ``jnp.ldexp`` scales the exponent bits directly: dividing by
  ``2**127`` instead would multiply by its reciprocal, a subnormal that XLA flushes to zero.
  """
  _, exponent = jnp.frexp(jax.lax.stop_gradient(magnitude))  # magnitude = m 2**exponent, m in [1/2, 1)
  return jnp.ldexp(x, jnp.where(magnitude > 0, 1 - exponent, 0))


def squared_distances(x: Array, y: Array, *, x_where: Optional[Array] = None,
                      y_where: Optional[Array] = None) -> Array:
  r"""All-pairs squared Euclidean distances :math:`\lVert x_q - y_g \rVert^2`, translation invariant.

  Computed as :math:`\lVert x' \rVert^2 + \lVert y' \rVert^2 - 2 x' \cdot y'` (one matrix product, no
  ``[..., Q, G, d]`` difference tensor) on features centred on the mean :math:`c` of the valid rows of
  both sets (rounded, per feature, to a multiple of the largest power of two below the features'
  spread, so that integer features stay exact), :math:`x' = x - c`, :math:`y' = y - c`. Centring makes
  the result independent of a common offset of the features: expanding around the origin instead cancels
  catastrophically when the offset is large compared with the distances (1-D features 512695 and 512804
  would give 0, not 109² in float32). The centre is a constant for autodiff, which is exact because
  distances do not depend on it.

  Args:
    x: ``[..., Q, d]`` features (any real dtype; computed in :func:`as_float`'s dtype).
    y: ``[..., G, d]`` features; leading axes broadcast with ``x``'s.
    x_where: optional boolean ``[..., Q]`` mask of the rows of ``x`` that define the centre.
    y_where: optional boolean ``[..., G]`` mask of the rows of ``y`` that define the centre.

  Returns:
    ``[..., Q, G]`` squared distances (>= 0), float32 or float64.

  >>> squared_distances(jnp.array([[512695.0]]), jnp.array([[512804.0]]))
  Array([[11881.]], dtype=float32)
  """
  dtype = jnp.promote_types(as_float(x).dtype, as_float(y).dtype)
  x, y = jnp.asarray(x, dtype), jnp.asarray(y, dtype)

  def row_sums(z, where):
    if where is None:
      return jnp.sum(z, axis=-2, keepdims=True), jnp.asarray(z.shape[-2], dtype)
    where = jnp.broadcast_to(where, z.shape[:-1])
    total = jnp.sum(jnp.where(where[..., None], z, 0.0), axis=-2, keepdims=True)
    return total, jnp.sum(where, axis=-1)[..., None, None].astype(dtype)

  x_sum, x_count = row_sums(x, x_where)
  y_sum, y_count = row_sums(y, y_where)
  centre = jax.lax.stop_gradient(_round_centre(
      (x_sum + y_sum) / jnp.maximum(x_count + y_count, 1.0), (x, x_where), (y, y_where)))
  x, y = x - centre, y - centre
  cross = jnp.einsum("...qd,...gd->...qg", x, y, precision=jax.lax.Precision.HIGHEST)
  squared = (jnp.sum(x * x, axis=-1)[..., :, None] + jnp.sum(y * y, axis=-1)[..., None, :] - 2.0 * cross)
  return jnp.maximum(squared, 0.0)


def _round_centre(centre: Array, *rows: tuple[Array, Optional[Array]]) -> Array:
  """The centre rounded, per feature, to a multiple of the power of two just below the rows' spread.

  The offset stays below half the spread, so nothing cancels, and integer (or coarse dyadic) features keep
  an integer (dyadic) centre, so that their distances stay exact.
  """
  spread = jnp.zeros_like(centre)
  for z, where in rows:
    deviation = jnp.abs(z - centre)
    if where is not None:
      deviation = jnp.where(jnp.broadcast_to(where, z.shape[:-1])[..., None], deviation, 0.0)
    spread = jnp.maximum(spread, jnp.max(deviation, axis=-2, keepdims=True, initial=0.0))
  _, exponent = jnp.frexp(spread)  # the grid 2**(exponent - 1) <= spread
  rounded = jnp.ldexp(jnp.round(jnp.ldexp(centre, 1 - exponent)), exponent - 1)
  return jnp.where(spread > 0, rounded, centre)


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


def check_listwise_inputs(scores: Array, labels: Array, weights: Optional[Array] = None) -> None:
  """The common checks of a list-wise loss: ``scores`` at least 1-D, ``labels`` of its shape, ``weights``
  broadcastable to it; a ValueError naming the argument otherwise (checked at trace time)."""
  check_rank_at_least("scores", scores, 1)
  check_same_shape("scores", scores, "labels", labels)
  if weights is not None:
    try:
      jnp.broadcast_shapes(jnp.shape(weights), jnp.shape(scores))
    except ValueError:
      raise ValueError(f"`weights` must broadcast to the shape of `scores` {jnp.shape(scores)}, got "
                       f"{jnp.shape(weights)}.") from None


def check_rank_at_least(name: str, x: Array, ndim: int) -> None:
  """Raises a ValueError naming ``x`` if it has fewer than ``ndim`` dimensions (checked at trace time)."""
  if jnp.ndim(x) < ndim:
    raise ValueError(f"`{name}` must have at least {ndim} dimension(s) (lists on the last axis), got "
                     f"shape {jnp.shape(x)}.")
