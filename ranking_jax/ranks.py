"""Rank functions: exact (`hard_ranks`) and differentiable (`sigmoid_ranks`, `soft_ranks`).

Every rank function shares one contract (see :class:`ranking_jax.types.RankFn`)::

    ranks = rank_fn(scores, *, where=None)

* ``scores``: float array ``[..., n]``; lists on the last axis.
* returns float ranks of the same shape, **1-based, rank 1 = highest score**, computed among the valid
  items of each list only; masked items get rank 0.

Losses in :mod:`ranking_jax.losses` take any such ``rank_fn`` (including the learned sorters of
:mod:`ranking_jax.sorters`), so a user may swap the sorter without touching the loss.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from ranking_jax import utils

Array = jax.Array


def hard_ranks(scores: Array, *, where: Optional[Array] = None) -> Array:
  r"""Exact 1-based ranks, rank 1 = highest score; ties are broken by index (lower index first).

  .. math:: \operatorname{rank}_i = 1 + \#\{j : s_j > s_i \text{ or } (s_j = s_i \wedge j < i)\}

  Not differentiable (its gradient is zero). Masked items get rank 0 and do not affect the others.

  >>> import jax.numpy as jnp
  >>> hard_ranks(jnp.array([0.1, 3.0, 0.1, 2.0]))
  Array([3., 1., 4., 2.], dtype=float32)
  """
  scores = jnp.asarray(scores)
  mask = utils.valid_mask(scores, where)
  # Masked items sort last: they take the largest positions and leave the valid ranks untouched.
  keyed = jnp.where(mask, -scores, jnp.inf)
  order = jnp.argsort(jax.lax.stop_gradient(keyed), axis=-1, stable=True)
  positions = jnp.argsort(order, axis=-1, stable=True)
  dtype = scores.dtype if jnp.issubdtype(scores.dtype, jnp.floating) else jnp.float32
  ranks = (positions + 1).astype(dtype)
  return jnp.where(mask, ranks, jnp.zeros_like(ranks))


def sigmoid_ranks(scores: Array, *, where: Optional[Array] = None, sharpness: float = 10.0) -> Array:
  r"""SoDeep's handcrafted differentiable sorter (Engilberge et al., CVPR 2019, eq. 11-12).

  .. math:: \operatorname{rank}_i = 1 + \sum_{j \ne i} \sigma\big(\lambda\,(s_j - s_i)\big)

  with sharpness :math:`\lambda` (10 in the paper). Costs O(n^2) memory and time per list.

  >>> import jax.numpy as jnp
  >>> sigmoid_ranks(jnp.array([0.0, 10.0]), sharpness=10.0).round(3)
  Array([2., 1.], dtype=float32)
  """
  scores = jnp.asarray(scores)
  mask = utils.valid_mask(scores, where)
  safe = utils.sanitize(scores, mask)
  diff = sharpness * (safe[..., None, :] - safe[..., :, None])  # [..., i, j] = lambda (s_j - s_i)
  pair_mask = mask[..., None, :] & mask[..., :, None]
  pair_mask = pair_mask & ~jnp.eye(scores.shape[-1], dtype=bool)
  ranks = 1.0 + jnp.sum(jnp.where(pair_mask, jax.nn.sigmoid(diff), 0.0), axis=-1)
  return jnp.where(mask, ranks, jnp.zeros_like(ranks)).astype(scores.dtype)
