"""Blockwise all-pairs machinery shared by the O(n^2) pairwise losses.

A pairwise loss over a list of ``n`` items needs, for each item ``i`` (a *row*), a sum over the other
items ``j`` (the *columns*) of some function of the pair. Written naively that materialises a
``[batch, n, n]`` array, which at batch 32 x n = 10 000 is 12.8 GB per float32 intermediate, and
reverse-mode differentiation keeps several of them alive.

:func:`pairwise_row_sums` instead processes the rows in blocks of ``block_size`` with
:func:`jax.lax.scan`; the block body is wrapped in :func:`jax.checkpoint`, so the backward pass recomputes
each ``[batch, block_size, n]`` block instead of storing it. Peak memory is then
``O(batch * block_size * n + batch * n)`` in both passes. When the whole ``[batch, n, n]`` problem fits in
one block (small ``n``) no scan, padding or recomputation is used at all.

The block size is chosen from the shape so that one block holds about :data:`DEFAULT_BLOCK_ELEMENTS`
pairs; pass ``block_size`` to override it. Note that under :func:`jax.vmap` the mapped axis is invisible
here, so a block then holds ``vmap_size`` times more pairs.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

Array = jax.Array
PyTree = Any
PairFn = Callable[[PyTree, PyTree], PyTree]

# About 4M pairs per block: ~16 MB per float32 intermediate of the block body.
DEFAULT_BLOCK_ELEMENTS = 1 << 22


def auto_block_size(num_items: int, batch_size: int = 1,
                    block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> int:
  """Row-block size for ``batch_size`` lists of ``num_items`` items: about ``block_elements`` pairs.

  Returns ``num_items`` (a single block, no scan) when everything fits. Otherwise it takes
  ``rows = block_elements // (batch * n)`` rows per block, then spreads the rows evenly over the
  ``ceil(n / rows)`` blocks so that fewer than ``num_blocks`` padding rows are added.

  >>> auto_block_size(100, 32)
  100
  >>> auto_block_size(10_000, 32)
  13
  """
  num_items = max(int(num_items), 1)
  batch_size = max(int(batch_size), 1)
  rows = max(block_elements // (batch_size * num_items), 1)
  if rows >= num_items:
    return num_items
  num_blocks = -(-num_items // rows)
  return -(-num_items // num_blocks)


def _sum_last(tree: PyTree, pair_valid: Array) -> PyTree:
  return jax.tree.map(
      lambda v: jnp.sum(jnp.where(pair_valid, v, jnp.zeros_like(v)), axis=-1), tree)


def pairwise_row_sums(pair_fn: PairFn, items: PyTree, *, where: Optional[Array] = None,
                      exclude_diagonal: bool = True, block_size: Optional[int] = None) -> PyTree:
  r"""Per row ``i``, sums ``pair_fn`` over the valid columns ``j`` without materialising all pairs.

  .. math:: R_i = \sum_{j \,:\, m_i \wedge m_j \wedge (i \ne j)} \mathrm{pair\_fn}(x_i, x_j)

  where :math:`m` is ``where`` and :math:`x_i` is the ``i``-th entry of every leaf of ``items``.

  Args:
    pair_fn: called as ``pair_fn(row, col)`` where ``row`` and ``col`` have the structure of ``items``;
      the leaves of ``row`` have shape ``[..., b, 1]`` (a block of ``b`` rows) and those of ``col``
      ``[..., 1, n]`` (all columns). It returns a pytree of arrays broadcastable to ``[..., b, n]``.
      It is evaluated on masked and padded entries too (their values are replaced by 0 first, so keep
      it finite at 0); those pairs are zeroed before the sum.
    items: pytree of arrays of shape ``[..., n]`` (lists on the last axis, same shape for all leaves).
      Floating leaves are set to 0 where ``where`` is False, so NaN there reaches neither values nor
      gradients.
    where: optional boolean mask ``[..., n]`` of the valid items; ``None`` means all valid.
    exclude_diagonal: drop the pairs ``(i, i)``.
    block_size: rows per block; ``None`` chooses it with :func:`auto_block_size`.

  Returns:
    A pytree with the structure of ``pair_fn``'s output, each leaf of shape ``[..., n]``: the row sums
    (0 for masked rows). Sum over the last axis for per-list totals (:func:`pairwise_sum`).

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``items`` is empty, 0-D or has leaves of different shapes, or
      ``block_size`` < 1.

  Example, the number of discordant pairs of each list (each pair is counted from both ends):

  >>> import jax.numpy as jnp
  >>> s = jnp.array([[3.0, 1.0, 2.0]])
  >>> y = jnp.array([[2.0, 1.0, 0.0]])
  >>> fn = lambda r, c: ((r["s"] - c["s"]) * (r["y"] - c["y"]) < 0).astype(jnp.float32)
  >>> pairwise_row_sums(fn, {"s": s, "y": y}, block_size=2)
  Array([[0., 1., 1.]], dtype=float32)
  """
  leaves = jax.tree.leaves(items)
  if not leaves:
    raise ValueError("`items` must contain at least one array.")
  shape = jnp.shape(leaves[0])
  if len(shape) < 1:
    raise ValueError(f"`items` must have lists on the last axis (ndim >= 1), got shape {shape}.")
  for leaf in leaves:
    if jnp.shape(leaf) != shape:
      raise ValueError(f"All leaves of `items` must have the same shape, got {shape} and "
                       f"{jnp.shape(leaf)}.")
  batch_shape, n = shape[:-1], shape[-1]
  batch = math.prod(batch_shape)
  mask = jnp.ones(shape, bool) if where is None else jnp.broadcast_to(jnp.asarray(where), shape)
  if mask.dtype != jnp.bool_:
    raise TypeError(f"`where` must be boolean, got dtype {mask.dtype}.")

  def clean(x):
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.inexact):
      return jnp.where(mask, x, jnp.zeros_like(x))
    return x

  items = jax.tree.map(clean, items)
  if n == 0 or batch == 0:
    out = jax.eval_shape(
        pair_fn, jax.tree.map(lambda x: x[..., :, None], items),
        jax.tree.map(lambda x: x[..., None, :], items))
    return jax.tree.map(lambda s: jnp.zeros(shape, s.dtype), out)

  if block_size is None:
    block_size = auto_block_size(n, batch)
  block_size = int(block_size)
  if block_size < 1:
    raise ValueError(f"`block_size` must be a positive integer, got {block_size}.")
  block_size = min(block_size, n)

  col = jax.tree.map(lambda x: x[..., None, :], items)
  col_mask = mask[..., None, :]
  col_index = jnp.arange(n)

  def block_sums(row, row_mask, row_index):
    # row leaves [..., b]; returns pytree of [..., b].
    pair_valid = row_mask[..., :, None] & col_mask
    if exclude_diagonal:
      pair_valid = pair_valid & (row_index[:, None] != col_index[None, :])
    values = pair_fn(jax.tree.map(lambda x: x[..., :, None], row), col)
    return _sum_last(values, pair_valid)

  if block_size == n:
    return block_sums(items, mask, col_index)

  num_blocks = -(-n // block_size)
  padded = num_blocks * block_size

  def to_blocks(x):
    # [..., n] -> [num_blocks, ..., block_size]; padding rows are masked out below.
    x = jnp.pad(x, [(0, 0)] * len(batch_shape) + [(0, padded - n)])
    x = x.reshape(batch_shape + (num_blocks, block_size))
    return jnp.moveaxis(x, -2, 0)

  row_blocks = jax.tree.map(to_blocks, items)
  mask_blocks = to_blocks(mask)
  index_blocks = jnp.arange(padded).reshape(num_blocks, block_size)

  # Recompute each block in the backward pass instead of saving num_blocks x [..., b, n] residuals.
  body = jax.checkpoint(block_sums, prevent_cse=False)

  def step(carry, xs):
    row, row_mask, row_index = xs
    return carry, body(row, row_mask, row_index)

  _, sums = jax.lax.scan(step, None, (row_blocks, mask_blocks, index_blocks))

  def from_blocks(x):
    x = jnp.moveaxis(x, 0, -2).reshape(batch_shape + (padded,))
    return x[..., :n]

  return jax.tree.map(from_blocks, sums)


def pairwise_sum(pair_fn: PairFn, items: PyTree, *, where: Optional[Array] = None,
                 exclude_diagonal: bool = True, block_size: Optional[int] = None) -> PyTree:
  r"""Per list, the sum of ``pair_fn`` over all valid ordered pairs ``(i, j)``, computed blockwise.

  .. math:: S = \sum_{i, j \,:\, m_i \wedge m_j \wedge (i \ne j)} \mathrm{pair\_fn}(x_i, x_j)

  Same arguments as :func:`pairwise_row_sums`; each output leaf has shape ``[...]`` (zeros for a
  zero-size list).

  Raises:
    TypeError, ValueError: as :func:`pairwise_row_sums`.

  To also get the number of valid pairs, return it from ``pair_fn``:

  >>> import jax.numpy as jnp
  >>> hinge_and_count = lambda r, c: (jnp.maximum(0.0, 1.0 - (r - c)), jnp.ones_like(r - c))
  >>> pairwise_sum(hinge_and_count, jnp.array([0.0, 2.0, 1.0]))
  (Array(7., dtype=float32), Array(6., dtype=float32))
  >>> s = jnp.array([0.0, 2.0, jnp.nan, 1.0])  # NaN masked out; 2 rows per block
  >>> pairwise_sum(hinge_and_count, s, where=jnp.isfinite(s), block_size=2)
  (Array(7., dtype=float32), Array(6., dtype=float32))
  """
  row_sums = pairwise_row_sums(pair_fn, items, where=where, exclude_diagonal=exclude_diagonal,
                               block_size=block_size)
  return jax.tree.map(lambda x: jnp.sum(x, axis=-1), row_sums)
