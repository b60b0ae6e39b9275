"""Rank functions: exact (`hard_ranks`, `tie_averaged_ranks`), differentiable (`sigmoid_ranks`, `soft_ranks`).

Every rank function shares one contract (see :class:`ranking_jax.types.RankFn`)::

    ranks = rank_fn(scores, *, where=None)

* ``scores``: ``[..., n]`` array of any real dtype (bool, integer, bfloat16/float16, float32, float64);
  lists on the last axis; NaN and +-inf count as masked.
* returns ranks of the same shape, **1-based, rank 1 = highest score**, computed among the valid items of
  each list only; masked items get rank 0 (and zero gradient).
* the ranks are float64 for float64 scores (under ``jax_enable_x64``) and **float32 for everything
  else**: bfloat16 holds integers exactly only up to 256 and float16 up to 2048, float32 up to 2**24, so
  exact ranks stay exact for lists of up to 16.7 million items. Integer and boolean scores are ordered
  exactly in their own dtype (never negated there, where unsigned values and the most negative signed
  value would wrap) and converted to float32 for the differentiable rank functions.
* a zero-size list or batch axis gives an empty result of the same shape.

:func:`soft_sort` follows the same dtype rule. Losses in :mod:`ranking_jax.losses` take any such
``rank_fn`` (including the learned sorters of :mod:`ranking_jax.sorters`), so a user may swap the sorter
without touching the loss.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from ranking_jax import utils

Array = jax.Array


def _descending_order(scores: Array, mask: Array) -> tuple[Array, Array]:
  """Stable order of each list by decreasing score, valid items first; returns (order, sorted keys).

  Floating scores use the key ``-s``; integer and boolean scores use their bitwise complement ``~s``,
  which reverses their order exactly and without overflow (``-s`` wraps for unsigned types and for the
  most negative signed value). Masked items sort last through a leading key, whatever their score.
  """
  if jnp.issubdtype(scores.dtype, jnp.floating):
    keys = -utils.as_float(scores)
  else:
    keys = jnp.invert(scores)
  keys = jax.lax.stop_gradient(jnp.where(mask, keys, jnp.zeros_like(keys)))
  invalid = (~mask).astype(jnp.int32)
  position = jax.lax.broadcasted_iota(jnp.int32, scores.shape, scores.ndim - 1)
  _, sorted_keys, order = jax.lax.sort((invalid, keys, position), dimension=scores.ndim - 1,
                                       num_keys=2, is_stable=True)
  return order, sorted_keys


def _prepare_exact(scores: Array, where: Optional[Array]) -> tuple[Array, Array, jnp.dtype]:
  """The scores as an array (own dtype, for exact ordering), their valid mask and the ranks' dtype."""
  scores = jnp.asarray(scores)
  utils.check_rank_at_least("scores", scores, 1)
  return scores, utils.valid_mask(scores, where), utils.float_dtype(scores.dtype)


def hard_ranks(scores: Array, *, where: Optional[Array] = None) -> Array:
  r"""Exact 1-based ranks, rank 1 = highest score; ties are broken by index (lower index first).

  .. math:: \operatorname{rank}_i = 1 + \#\{j : s_j > s_i \text{ or } (s_j = s_i \wedge j < i)\}

  Not differentiable (its gradient is zero). Masked items get rank 0 and do not affect the others.

  Args:
    scores: ``[..., n]`` scores of any real dtype; integers are compared exactly.
    where: optional boolean mask of the valid items (broadcast); non-finite scores count as masked.

  Returns:
    ``[..., n]`` ranks, float32 (float64 for float64 scores); exact for lists of up to 2**24 items.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``scores`` is 0-D or ``where`` does not broadcast to it.

  >>> import jax.numpy as jnp
  >>> hard_ranks(jnp.array([0.1, 3.0, 0.1, 2.0]))
  Array([3., 1., 4., 2.], dtype=float32)
  >>> hard_ranks(jnp.array([0, 1, 2, 3], jnp.uint8))
  Array([4., 3., 2., 1.], dtype=float32)
  """
  scores, mask, dtype = _prepare_exact(scores, where)
  order, _ = _descending_order(scores, mask)
  positions = jnp.argsort(order, axis=-1, stable=True)
  ranks = (positions + 1).astype(dtype)
  return jnp.where(mask, ranks, jnp.zeros_like(ranks))


def tie_averaged_ranks(values: Array, *, where: Optional[Array] = None) -> Array:
  r"""Exact 1-based ranks (rank 1 = largest value) with ties given the mean of the ranks they span.

  This is the "fractional ranking" used by Spearman's :math:`\rho` with ties (``scipy.stats.rankdata``
  on the negated values). Unlike :func:`hard_ranks` it does not depend on the order of tied items, so
  losses built on it are permutation invariant. O(n log n); masked or non-finite values get rank 0 and
  do not count. Not differentiable (used for targets, e.g. by
  :func:`ranking_jax.losses.spearman_loss`).

  Args:
    values: ``[..., n]`` values of any real dtype; integers are compared exactly.
    where: optional boolean mask of the valid items (broadcast).

  Returns:
    ``[..., n]`` ranks, float32 (float64 for float64 values); exact for lists of up to 2**23 items.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``values`` is 0-D or ``where`` does not broadcast to it.

  >>> import jax.numpy as jnp
  >>> tie_averaged_ranks(jnp.array([0.1, 3.0, 0.1, 2.0]))
  Array([3.5, 1. , 3.5, 2. ], dtype=float32)
  """
  values, mask, dtype = _prepare_exact(values, where)
  last = values.ndim - 1
  n = values.shape[-1]
  order, sorted_keys = _descending_order(values, mask)
  sorted_valid = jnp.take_along_axis(mask, order, axis=-1)
  position = jax.lax.broadcasted_iota(jnp.int32, values.shape, last)
  # A run of equal keys among the valid items forms one tie group; masked items (last) stay apart.
  differs = ((sorted_keys[..., 1:] != sorted_keys[..., :-1])
             | (sorted_valid[..., 1:] != sorted_valid[..., :-1]))
  edge = jnp.ones(values.shape[:-1] + (min(n, 1),), dtype=bool)
  starts = jnp.concatenate([edge, differs], axis=-1)
  ends = jnp.concatenate([differs, edge], axis=-1)
  group_first = jax.lax.cummax(jnp.where(starts, position, 0), axis=last)
  group_last = jax.lax.cummin(jnp.where(ends, position, n - 1), axis=last, reverse=True)
  sorted_ranks = (group_first + group_last).astype(dtype) / 2 + 1
  inverse = jnp.argsort(order, axis=-1, stable=True)
  averaged = jnp.take_along_axis(sorted_ranks, inverse, axis=-1)
  return jnp.where(mask, averaged, jnp.zeros_like(averaged))


def sigmoid_ranks(scores: Array, *, where: Optional[Array] = None, sharpness: float = 10.0,
                  standardize: bool = False) -> Array:
  r"""SoDeep's handcrafted differentiable sorter (Engilberge et al., CVPR 2019, eq. 11-12).

  .. math:: \operatorname{rank}_i = 1 + \sum_{j \ne i} \sigma\big(\lambda\,(s_j - s_i)\big)

  with sharpness :math:`\lambda` (10 in the paper). Costs O(n^2) memory and time per list.

  With ``standardize=True`` the valid scores of each list are first mapped to
  :math:`z = (s - \bar s)/\operatorname{std}(s)` (:func:`ranking_jax.utils.standardize`), so
  :math:`\lambda` is measured in standard deviations and the ranks do not change with the scale or shift
  of the scores, at any magnitude; an all-equal list gets the tie rank :math:`(m + 1)/2` for all its
  ``m`` items. On SoDeep's synthetic test set this moves the accuracy/gradient trade-off: at a one-step
  Spearman gain of 0.25 the standardised sorter has about half the L1 of the raw one (README, "Sorter
  figures").

  Args:
    scores: ``[..., n]`` scores of any real dtype (computed in float32, or float64 for float64).
    where: optional boolean mask of the valid items (broadcast); non-finite scores count as masked.
    sharpness: :math:`\lambda`, in units of the scores (of standard deviations with ``standardize``).
    standardize: standardise each list's valid scores first.

  Returns:
    ``[..., n]`` soft ranks, float32 (float64 for float64 scores); masked items 0.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``scores`` is 0-D or ``where`` does not broadcast to it.

  >>> import jax.numpy as jnp
  >>> sigmoid_ranks(jnp.array([0.0, 10.0]), sharpness=10.0).round(3)
  Array([2., 1.], dtype=float32)
  >>> s = jnp.array([0.1, 0.3, 0.2])
  >>> bool(jnp.allclose(sigmoid_ranks(s, standardize=True), sigmoid_ranks(1e-4 * s - 7, standardize=True),
  ...                   atol=1e-3))
  True
  """
  scores = utils.as_float(scores)
  utils.check_rank_at_least("scores", scores, 1)
  mask = utils.valid_mask(scores, where)
  safe = utils.sanitize(scores, mask)
  if standardize:
    safe = utils.standardize(safe, mask)
  diff = sharpness * (safe[..., None, :] - safe[..., :, None])  # [..., i, j] = lambda (s_j - s_i)
  pair_mask = mask[..., None, :] & mask[..., :, None]
  pair_mask = pair_mask & ~jnp.eye(scores.shape[-1], dtype=bool)
  ranks = 1.0 + jnp.sum(jnp.where(pair_mask, jax.nn.sigmoid(diff), 0.0), axis=-1)
  return jnp.where(mask, ranks, jnp.zeros_like(ranks))


# ---------------------------------------------------------------------------------------------------------
# Soft ranks and soft sort of Blondel, Teboul, Berthet, Djolonga, "Fast Differentiable Sorting and Ranking"
# (ICML 2020): projections onto a permutahedron, computed with one sort and one isotonic regression solved by
# Pool-Adjacent-Violators (PAV).
#
# Gradients. PAV only decides the partition of the sorted list into pooled blocks; the partition is
# piecewise constant in the input, so it is computed without gradient (integers) and the solution is then
# written in closed form per block: l2: v_B = mean_B(s) - mean_B(w), kl: v_B = logsumexp(s_B) -
# log(sum_B e^w). Differentiating that closed form gives exactly the Jacobian of the isotonic solution
# (block-wise averaging for l2, block-wise softmax for kl; Blondel et al., Sec. 5) in O(n), never
# differentiates the while loop, and also serves forward mode and higher orders.
# ---------------------------------------------------------------------------------------------------------

_REGULARIZATIONS = ("l2", "kl")


def _pav_row(first_in: Array, second_in: Array, length: Array, regularization: str) -> tuple[Array, Array]:
  """Pool-Adjacent-Violators on one list for the non-increasing constraint ``v_1 >= ... >= v_m``.

  A stack of pooled blocks is kept; each loop step either merges the two top blocks, if their values
  violate the order, or pushes the next item, so the loop runs at most ``2 m - 1`` steps of scalar work.
  Each block keeps two statistics that merge associatively: ``l2``: (sum of ``s - w``, count), value =
  their ratio; ``kl``: (logsumexp of ``s``, logsumexp of ``w``), value = their difference.

  Args:
    first_in, second_in: ``[n]`` per-item statistics (``l2``: ``s - w`` and 1; ``kl``: ``s`` and ``w``).
    length: number of leading items that take part (the rest is ignored).
    regularization: ``"l2"`` or ``"kl"``.

  Returns:
    ``(num_blocks, sizes)``: block ``b < num_blocks`` covers the next ``sizes[b]`` items (int32);
    entries of ``sizes`` from ``num_blocks`` on are stale.
  """
  n = first_in.shape[0]

  def value(first, second):
    return first / second if regularization == "l2" else first - second

  def violates(top, first, second):
    lower, upper = jnp.maximum(top - 2, 0), jnp.maximum(top - 1, 0)
    # Ties are pooled too: the solution is the same and the partition (hence the Jacobian) is coarser.
    return (top >= 2) & (value(first[lower], second[lower]) <= value(first[upper], second[upper]))

  def body(state):
    item, top, first, second, sizes, merge = state
    lower, upper = jnp.maximum(top - 2, 0), jnp.maximum(top - 1, 0)
    if regularization == "l2":
      merged_first, merged_second = first[lower] + first[upper], second[lower] + second[upper]
    else:
      merged_first = jnp.logaddexp(first[lower], first[upper])
      merged_second = jnp.logaddexp(second[lower], second[upper])
    next_item = jnp.minimum(item, n - 1)
    slot = jnp.where(merge, lower, top)
    first = jax.lax.dynamic_update_index_in_dim(
        first, jnp.where(merge, merged_first, first_in[next_item]), slot, 0)
    second = jax.lax.dynamic_update_index_in_dim(
        second, jnp.where(merge, merged_second, second_in[next_item]), slot, 0)
    sizes = jax.lax.dynamic_update_index_in_dim(
        sizes, jnp.where(merge, sizes[lower] + sizes[upper], 1), slot, 0)
    top = jnp.where(merge, top - 1, top + 1)
    item = jnp.where(merge, item, item + 1)
    return item, top, first, second, sizes, violates(top, first, second)

  def cond(state):
    item, _, _, _, _, merge = state
    return merge | (item < length)

  zero = jnp.zeros((), jnp.int32)
  init = (zero, zero, jnp.zeros_like(first_in), jnp.zeros_like(second_in), jnp.zeros((n,), jnp.int32),
          jnp.zeros((), bool))
  _, top, _, _, sizes, _ = jax.lax.while_loop(cond, body, init)
  return top, sizes


def _pav_blocks_impl(first_in: Array, second_in: Array, lengths: Array, regularization: str):
  """Pooled blocks of ``[rows, n]`` lists: per item, its block id, block start and block size (int32).

  Ids increase along the list; items at or beyond the row's length get id ``n``, start = own position,
  size 1.
  """
  rows, n = first_in.shape
  # One scalar loop per row, rows one after the other: it compiles to tight code on CPU, whereas batching
  # the loop state (plain vmap) turns every step into gathers/scatters and runs 10-100x slower.
  top, sizes = jax.lax.map(lambda row: _pav_row(*row, regularization), (first_in, second_in, lengths))
  positions = jnp.arange(n)
  starts = jnp.cumsum(sizes, axis=-1) - sizes
  starts = jnp.where(positions[None, :] < top[:, None], starts, n)  # stale slots go to the junk column n
  markers = _scatter_add_rows(jnp.ones_like(starts), starts, n + 1)[:, :n]
  # Past the length the count stays at the last block: ids stay non-decreasing (-1 only for empty rows).
  blocks = jnp.maximum(jnp.cumsum(markers, axis=-1) - 1, 0)
  inside = positions[None, :] < lengths[:, None]
  item_starts = jnp.where(inside, _take_rows(starts, blocks, is_sorted=True), positions[None, :])
  item_sizes = jnp.where(inside, _take_rows(sizes, blocks, is_sorted=True), 1)
  return jnp.where(inside, blocks, n), item_starts, item_sizes


def _fold_vmap_rule(blocks_fn):
  """vmap rule: fold the mapped axis into the rows rather than batching the while loop's state."""

  def rule(axis_size, in_batched, first_in, second_in, lengths):
    args = []
    for arg, batched in zip((first_in, second_in, lengths), in_batched):
      if not batched:
        arg = jnp.broadcast_to(arg, (axis_size,) + arg.shape)
      args.append(arg.reshape((-1,) + arg.shape[2:]))
    outs = blocks_fn(*args)
    return tuple(out.reshape((axis_size, -1) + out.shape[1:]) for out in outs), (True, True, True)

  return rule


@jax.custom_batching.custom_vmap
def _pav_blocks_l2(first_in: Array, second_in: Array, lengths: Array):
  return _pav_blocks_impl(first_in, second_in, lengths, "l2")


@jax.custom_batching.custom_vmap
def _pav_blocks_kl(first_in: Array, second_in: Array, lengths: Array):
  return _pav_blocks_impl(first_in, second_in, lengths, "kl")


_pav_blocks_l2.def_vmap(_fold_vmap_rule(_pav_blocks_l2))
_pav_blocks_kl.def_vmap(_fold_vmap_rule(_pav_blocks_kl))


def _pav_blocks(first_in: Array, second_in: Array, lengths: Array, regularization: str):
  """Partition (no gradient) of each sorted row into the pooled blocks of the isotonic solution."""
  blocks_fn = _pav_blocks_l2 if regularization == "l2" else _pav_blocks_kl
  return blocks_fn(jax.lax.stop_gradient(first_in), jax.lax.stop_gradient(second_in), lengths)


def _flat_indices(indices: Array, width: int) -> Array:
  return (indices + width * jnp.arange(indices.shape[0])[:, None]).reshape(-1)


def _take_rows(values: Array, indices: Array, *, is_sorted: bool = False, unique: bool = False) -> Array:
  """``take_along_axis`` on ``[rows, width]`` through a flat gather that can declare sorted/unique indices.

  Declaring them makes XLA's CPU gather, and above all the scatter-add of its transpose, several times
  faster; the flat indices are sorted whenever ``indices`` are non-decreasing along each row.
  """
  flat = _flat_indices(indices, values.shape[-1])
  taken = jnp.take(values.reshape(-1), flat, indices_are_sorted=is_sorted, unique_indices=unique, mode="clip")
  return taken.reshape(indices.shape)


def _scatter_add_rows(values: Array, indices: Array, width: int) -> Array:
  """Per-row ``segment_sum`` of ``values [rows, n]`` into ``[rows, width]``; indices non-decreasing."""
  rows = values.shape[0]
  sums = jax.ops.segment_sum(values.reshape(-1), _flat_indices(indices, width), num_segments=rows * width,
                             indices_are_sorted=True)
  return sums.reshape(rows, width)


def _block_sum(values: Array, blocks: Array) -> Array:
  """Sum of ``values [rows, n]`` over each item's block, per item (ids ``n`` form a junk block)."""
  n = values.shape[-1]
  return _take_rows(_scatter_add_rows(values, blocks, n + 1), blocks, is_sorted=True)


def _check_regularization(regularization: str, regularization_strength) -> None:
  if regularization not in _REGULARIZATIONS:
    raise ValueError(f"`regularization` must be one of {_REGULARIZATIONS}, got {regularization!r}.")
  if jnp.ndim(regularization_strength) != 0:
    raise ValueError("`regularization_strength` must be a scalar, got shape "
                     f"{jnp.shape(regularization_strength)}.")
  if isinstance(regularization_strength, (int, float)) and not regularization_strength > 0:
    raise ValueError(f"`regularization_strength` must be > 0, got {regularization_strength}.")


def _sorted_valid_first(scores: Array, where: Optional[Array]):
  """Flattens to ``[rows, n]`` and sorts each row ascending with masked items last.

  Returns ``(theta, mask, order, lengths)``: sanitized scores in the compute dtype, the valid mask, the
  permutation (``order[k]`` is the index of the item in sorted position ``k``) and the valid count.
  """
  mask = utils.valid_mask(scores, where)
  n = scores.shape[-1]
  theta = utils.sanitize(utils.as_float(scores), mask).reshape(-1, n)
  mask = mask.reshape(-1, n)
  key = jax.lax.stop_gradient(jnp.where(mask, theta, jnp.inf))
  # Ties are pooled into the same block by the projection, so the sort need not be stable.
  order = jnp.argsort(key, axis=-1, stable=False)
  lengths = jnp.sum(mask, axis=-1, dtype=jnp.int32)
  return theta, mask, order, lengths


def soft_ranks(scores: Array, *, where: Optional[Array] = None, regularization_strength: float = 1.0,
               regularization: str = "l2", standardize: bool = False) -> Array:
  r"""Soft ranks of Blondel et al., "Fast Differentiable Sorting and Ranking" (ICML 2020), in O(n log n).

  The soft rank is the projection of :math:`-\theta/\varepsilon` onto the permutahedron
  :math:`\mathcal{P}(\rho)` of :math:`\rho = (m, m-1, \dots, 1)` (``m`` valid items):

  .. math::
    r_{\varepsilon\Psi}(\theta) = P_\Psi(-\theta/\varepsilon, \rho), \qquad
    P_Q(z, w) = z - v_Q(z_\sigma, w)_{\sigma^{-1}}, \qquad
    P_E(z, w) = e^{z - v_E(z_\sigma, \log w)_{\sigma^{-1}}}

  where :math:`\sigma` sorts :math:`z` in decreasing order and :math:`v` solves the isotonic problems

  .. math::
    v_Q(s, w) = \arg\min_{v_1 \ge \dots \ge v_m} \tfrac12 \|v - (s - w)\|^2, \qquad
    v_E(s, w) = \arg\min_{v_1 \ge \dots \ge v_m} \langle e^{s - v}, 1\rangle + \langle e^{w}, v\rangle,

  solved exactly by Pool-Adjacent-Violators; on each pooled block :math:`B`,
  :math:`v_B = \operatorname{mean}_B(s - w)` (``"l2"``, :math:`\Psi = Q`) or
  :math:`v_B = \log\sum_B e^{s} - \log\sum_B e^{w}` (``"kl"``, :math:`\Psi = E`).

  Ranks are 1-based with rank 1 for the highest score. As :math:`\varepsilon \to 0` they tend to
  :func:`hard_ranks` (without ties; tied scores share their average rank for every
  :math:`\varepsilon`), and as :math:`\varepsilon \to \infty` every rank tends to :math:`(m + 1)/2`. The
  valid ranks always sum to :math:`m(m+1)/2`. Gradients are exact (the Jacobian of the isotonic solution is
  a block-wise average, ``"l2"``, or block-wise softmax, ``"kl"``), cost O(n), and work in forward and
  reverse mode; ``"l2"`` ranks are piecewise linear in the scores. Ranks are invariant to shifting the
  scores and to scaling scores and :math:`\varepsilon` together.

  Cost per list: one sort, one Pool-Adjacent-Violators pass (at most ``2m`` scalar loop steps; lists run
  one after the other, also under ``vmap``) and O(n) segment sums. In float32 the ranks are accurate to
  about 1e-6 relative (``n = 10^4``).

  Args:
    scores: ``[..., n]`` scores, lists on the last axis, of any real dtype (computed in float32, or
      float64 for float64 scores).
    where: optional boolean mask (broadcast to ``scores``) of the valid items. Non-finite scores count
      as masked.
    regularization_strength: scalar :math:`\varepsilon > 0`, in units of the scores (in standard
      deviations of each list with ``standardize=True``); may be traced (then its sign is not checked)
      and is differentiable. How to choose it: the ranks move from exact to all-tied as
      :math:`\varepsilon` grows from below the typical gap between neighbouring scores to above the
      list's spread. For ``m`` unit-variance scores the gaps are about :math:`2.5/m`, so
      ``standardize=True`` with :math:`\varepsilon \approx 1/m` to :math:`10/m` (0.001-0.01 for 1 000
      items) keeps ranks close to exact with useful gradients; the default 1.0 on raw unit-variance
      scores of 1 000 items ties nearly everything (ranks 497-505).
    regularization: ``"l2"`` (quadratic, :math:`Q`) or ``"kl"`` (entropic, :math:`E`; ranks stay
      strictly positive).
    standardize: map each list to z-scores first (:func:`ranking_jax.utils.standardize`), so that
      ``regularization_strength`` is scale-free: the ranks are then invariant to any positive scale and
      shift of each list (an all-equal list gets the tie value).

  Returns:
    Ranks with the shape of ``scores``, float32 (float64 for float64 scores); masked items get 0 and
    zero gradient; a zero-size list or batch gives an empty result.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``scores`` is 0-D, ``where`` does not broadcast to it, ``regularization``
      is unknown, or ``regularization_strength`` is not a scalar (or, if a Python number,
      not > 0).

  >>> import jax.numpy as jnp
  >>> soft_ranks(jnp.array([0.1, 3.0, 1.0, 2.0]), regularization_strength=0.1)
  Array([4., 1., 3., 2.], dtype=float32)
  >>> soft_ranks(jnp.array([0.0, 0.5, 2.0]), regularization_strength=1.0)
  Array([2.75, 2.25, 1.  ], dtype=float32)
  >>> soft_ranks(jnp.array([0.0, 0.5, 2.0]), where=jnp.array([True, True, False]))
  Array([1.75, 1.25, 0.  ], dtype=float32)
  >>> print(soft_ranks(jnp.array([0.0, 0.5, 2.0]), regularization="kl", regularization_strength=10.0))
  [2.166 2.060 1.773]
  >>> x = jnp.array([0.1, 3.0, 1.0, 2.0])
  >>> bool(jnp.allclose(soft_ranks(x, standardize=True, regularization_strength=0.1),
  ...                   soft_ranks(1e-4 * x + 7.0, standardize=True, regularization_strength=0.1), atol=1e-4))
  True
  """
  _check_regularization(regularization, regularization_strength)
  scores = jnp.asarray(scores)
  utils.check_rank_at_least("scores", scores, 1)
  if standardize:
    where = utils.valid_mask(scores, where)
    scores = utils.standardize(scores, where)  # masked entries become 0 and stay masked by `where`
  # Jitted even when called eagerly: op-by-op dispatch of the PAV loop and segment sums is very slow.
  return _soft_ranks_jit(scores, where, regularization_strength, regularization)


@functools.partial(jax.jit, static_argnums=(3,))
def _soft_ranks_jit(scores: Array, where: Optional[Array], regularization_strength, regularization: str):
  out_dtype = utils.float_dtype(scores.dtype)
  shape, n = scores.shape, scores.shape[-1]
  if n == 0 or scores.size == 0:
    return jnp.zeros(shape, out_dtype)
  theta, _, order, lengths = _sorted_valid_first(scores, where)
  epsilon = jnp.asarray(regularization_strength, theta.dtype)
  # s = z sorted decreasingly, z = -theta / epsilon: sorting theta increasingly, masked items last.
  theta_sorted = _take_rows(theta, order, unique=True)
  s = -theta_sorted / epsilon
  positions = jnp.arange(n)[None, :]
  lengths_ = lengths[:, None]
  valid_sorted = positions < lengths_
  rho = jnp.where(valid_sorted, lengths_ - positions, 1).astype(theta.dtype)
  if regularization == "l2":
    blocks, starts, sizes = _pav_blocks(s - rho, jnp.ones_like(s), lengths, "l2")
  else:
    blocks, starts, sizes = _pav_blocks(s, jnp.log(rho), lengths, "kl")
  # Block B = [a, a + |B|): sum_B rho = |B| (m - a - (|B| - 1) / 2) exactly, and s is centred on s_a =
  # max_B s, from the unscaled scores, so that small epsilon, large |s| or long blocks lose no precision
  # (a singleton block gives exactly rho_i).
  sizes_f = sizes.astype(theta.dtype)
  mean_rho = (lengths_ - starts).astype(theta.dtype) - (sizes_f - 1.0) / 2.0
  block_theta = _take_rows(theta_sorted, starts, is_sorted=True)
  centred = jnp.where(valid_sorted, (block_theta - theta_sorted) / epsilon, 0.0)
  if regularization == "l2":
    # r_i = s_i - v_B = s_i - mean_B(s) + mean_B(rho).
    ranks_sorted = centred - _block_sum(centred, blocks) / sizes_f + mean_rho
  else:
    # r_i = exp(s_i - v_B) = softmax_B(s)_i * sum_B rho.
    weights = jnp.exp(centred)
    ranks_sorted = weights / _block_sum(weights, blocks) * (sizes_f * mean_rho)
  ranks_sorted = jnp.where(valid_sorted, ranks_sorted, 0.0)
  rows = jnp.arange(order.shape[0])[:, None]
  ranks = jnp.zeros_like(ranks_sorted).at[rows, order].set(ranks_sorted, unique_indices=True)
  return ranks.reshape(shape).astype(out_dtype)


def soft_sort(scores: Array, *, where: Optional[Array] = None,
              regularization_strength: float = 1.0) -> Array:
  r"""Soft sort (decreasing) of Blondel et al., "Fast Differentiable Sorting and Ranking" (ICML 2020).

  The projection of :math:`\rho / \varepsilon` onto the permutahedron of the scores,
  :math:`\rho = (m, \dots, 1)`, with quadratic regularization:

  .. math::
    s_{\varepsilon Q}(\theta) = P_Q(\rho / \varepsilon, \theta)
      = \rho / \varepsilon - v_Q(\rho / \varepsilon, \theta_{\text{desc}}), \qquad
    v_Q(s, w) = \arg\min_{v_1 \ge \dots \ge v_m} \tfrac12 \|v - (s - w)\|^2.

  As :math:`\varepsilon \to 0` it tends to the scores sorted in decreasing order, as
  :math:`\varepsilon \to \infty` every entry tends to their mean; the sum is always preserved.

  Args:
    scores: ``[..., n]`` scores of any real dtype, lists on the last axis.
    where: optional boolean mask of valid items; non-finite scores count as masked.
    regularization_strength: :math:`\varepsilon > 0`, in units of the scores.

  Returns:
    ``[..., n]``, float32 (float64 for float64 scores): the first ``m`` entries of each list hold the
    soft-sorted valid scores (largest first), the remaining ``n - m`` entries are 0.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``scores`` is 0-D, ``where`` does not broadcast to it, or
      ``regularization_strength`` is not a scalar (or, if a Python number, not > 0).

  >>> import jax.numpy as jnp
  >>> soft_sort(jnp.array([0.1, 3.0, 1.0, 2.0]), regularization_strength=0.1)
  Array([3. , 2. , 1. , 0.1], dtype=float32)
  >>> soft_sort(jnp.array([0.0, 0.5, 2.0]), regularization_strength=1.0)
  Array([1.75, 0.75, 0.  ], dtype=float32)
  """
  _check_regularization("l2", regularization_strength)
  scores = jnp.asarray(scores)
  utils.check_rank_at_least("scores", scores, 1)
  return _soft_sort_jit(scores, where, regularization_strength)


@jax.jit
def _soft_sort_jit(scores: Array, where: Optional[Array], regularization_strength):
  out_dtype = utils.float_dtype(scores.dtype)
  shape, n = scores.shape, scores.shape[-1]
  if n == 0 or scores.size == 0:
    return jnp.zeros(shape, out_dtype)
  theta, _, order, lengths = _sorted_valid_first(scores, where)
  epsilon = jnp.asarray(regularization_strength, theta.dtype)
  # Decreasing order: reverse the valid prefix of the increasing order.
  positions = jnp.arange(n)[None, :]
  lengths_ = lengths[:, None]
  valid_sorted = positions < lengths_
  order = jnp.take_along_axis(order, jnp.where(valid_sorted, lengths_ - 1 - positions, positions), axis=-1)
  theta_desc = jnp.where(valid_sorted, _take_rows(theta, order, unique=True), 0.0)
  rho = (lengths_ - positions).astype(theta.dtype)
  blocks, starts, sizes = _pav_blocks(rho / epsilon - theta_desc, jnp.ones_like(theta_desc), lengths, "l2")
  # result_i = rho_i / eps - v_B = (rho_i - mean_B rho) / eps + mean_B(theta), theta centred on the block
  # start; rho_i - mean_B rho = a + (|B| - 1) / 2 - i exactly.
  sizes_f = sizes.astype(theta.dtype)
  block_theta = _take_rows(theta_desc, starts, is_sorted=True)
  mean_theta = block_theta + _block_sum(theta_desc - block_theta, blocks) / sizes_f
  values = (starts.astype(theta.dtype) + (sizes_f - 1.0) / 2.0 - positions) / epsilon + mean_theta
  return jnp.where(valid_sorted, values, 0.0).reshape(shape).astype(out_dtype)


# The one vocabulary for rank-function choices in configs (``config.loss.rank_fn``).
RANK_FN_NAMES = ("soft_ranks", "handcrafted", "handcrafted_standardized", "lstm")
DEFAULT_SORTER = "lstm_h64_d100"  # what "lstm" loads: the shipped SoDeep LSTM sorter


def get_rank_fn(spec: str, *, sharpness: float = 10.0, regularization_strength: float = 1.0,
                standardize: bool = False, pretrained_dir: Optional[str] = None):
  """The differentiable rank function a config names, as a ``rank_fn(scores[..., n], *, where=None)``.

  Args:
    spec: ``"soft_ranks"`` (:func:`soft_ranks` with ``regularization_strength``, on the standardised list
      if ``standardize``); ``"handcrafted"`` / ``"handcrafted_standardized"`` (:func:`sigmoid_ranks`, SoDeep
      eq. 11-12, with ``sharpness``); ``"lstm"`` (the shipped sorter ``lstm_h64_d100``) or the name of any
      shipped sorter (:func:`ranking_jax.sorters.available_pretrained`), loaded frozen.
    sharpness: the sigmoid ranks' slope (SoDeep's lambda).
    regularization_strength: the soft ranks' strength (in standard deviations when ``standardize``).
    standardize: soft ranks of the standardised list (scale-free).
    pretrained_dir: where to look for sorters other than the shipped ones.

  Returns:
    A jittable rank function; a learned sorter's has ``max_length`` (the longest list it serves).

  Raises:
    ranking_jax.errors.ConfigValueError: an unknown ``spec`` (the message lists the choices).

  >>> get_rank_fn("handcrafted")(jnp.array([0.0, 1.0])).round(3)
  Array([2., 1.], dtype=float32)
  """
  from ranking_jax.errors import ConfigValueError  # pylint: disable=g-import-not-at-top
  if spec == "soft_ranks":
    return functools.partial(soft_ranks, regularization_strength=float(regularization_strength),
                             standardize=bool(standardize))
  if spec in ("handcrafted", "handcrafted_standardized"):
    return functools.partial(sigmoid_ranks, sharpness=float(sharpness),
                             standardize=spec == "handcrafted_standardized")
  # Imported here: the sorters' package imports this module.
  from ranking_jax.sorters import pretrained  # pylint: disable=g-import-not-at-top
  name = DEFAULT_SORTER if spec == "lstm" else spec
  if name in pretrained.available_pretrained(pretrained_dir or pretrained.PRETRAINED_DIR):
    return pretrained.load_pretrained(name, pretrained_dir)
  raise ConfigValueError(f"unknown rank function {spec!r}; choose one of {', '.join(RANK_FN_NAMES)} or a "
                         f"shipped sorter ({', '.join(pretrained.available_pretrained())}).")


def max_list_length(rank_fn) -> Optional[int]:
  """The longest list a rank function serves: a learned sorter's ``max_length``, None when unbounded.

  ``rank_fn`` is a rank function or a :func:`get_rank_fn` spec (a sorter's length is read from its
  metadata, without loading the weights); ``""`` (no rank function) is None.

  >>> max_list_length("soft_ranks") is None, max_list_length("lstm")
  (True, 100)
  """
  if isinstance(rank_fn, str):
    if rank_fn in ("", "soft_ranks", "handcrafted", "handcrafted_standardized"):
      return None
    from ranking_jax.sorters import pretrained  # pylint: disable=g-import-not-at-top
    name = DEFAULT_SORTER if rank_fn == "lstm" else rank_fn
    if name not in pretrained.available_pretrained():
      return None  # get_rank_fn reports the unknown name
    return int(pretrained.pretrained_metadata(name)["max_length"])
  length = getattr(rank_fn, "max_length", None)
  return int(length) if length else None
