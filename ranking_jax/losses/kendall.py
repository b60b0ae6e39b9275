"""IDE RankNet losses: the Kendall RankLoss (a 1 - tau surrogate) and the MSE it alternates with.

From *IDE RankNet: Estimating the difficulty of visual search in an image* (Ma, Zhang, Sun), section III.B.
There the "list" is the whole mini-batch of images, so a 1-D ``scores`` array of shape ``[B]`` is one list;
any leading axes are independent lists, as everywhere in :mod:`ranking_jax.losses`. Scores and labels of any
real dtype are computed in float32 (float64 for float64 scores); zero-size lists or batches give 0.
:func:`mse_loss` clips finite scores and labels to :func:`ranking_jax.utils.magnitude_bound` (2**48 in
float32; zero gradient beyond), so its squares cannot overflow; the Kendall loss is bounded as it is.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from ranking_jax import utils
from ranking_jax.losses import pairs

Array = jax.Array

_LABEL_DIFFS = ("sgn", "hardtanh")


def _valid_items(scores: Array, labels: Array, where: Optional[Array]) -> Array:
  mask = utils.valid_mask(scores, where)
  if jnp.issubdtype(labels.dtype, jnp.inexact):
    mask = mask & jnp.isfinite(labels)
  return mask


def kendall_rank_loss(scores: Array, labels: Array, *, where: Optional[Array] = None,
                      weights: Optional[Array] = None,
                      reduce_fn: Optional[Callable[..., Array]] = jnp.mean,
                      label_diff: str = "sgn", block_size: Optional[int] = None) -> Array:
  r"""Kendall RankLoss of IDE RankNet: one minus a Kendall-tau surrogate over all pairs of a list.

  Eq. (1)-(2) of *IDE RankNet: Estimating the difficulty of visual search in an image*, with the
  paper's relaxation of the sign of the score differences to ``hardtanh``:

  .. math::

     \mathcal{L} = 1 - \frac{\sum_{i} \sum_{j < i} g(y_i - y_j)\,
       \operatorname{hardtanh}(s_i - s_j)}{n (n - 1) / 2},
     \qquad \operatorname{hardtanh}(x) = \max(-1, \min(1, x)),

  where :math:`g = \operatorname{sgn}` (``label_diff="sgn"``, the paper's eq. 1) or
  :math:`g = \operatorname{hardtanh}` (``label_diff="hardtanh"``, as in the authors' code). The sums
  run over the valid items of the list and :math:`n` is their number, so the loss lies in
  :math:`[0, 2]`. When every valid pair has :math:`|s_i - s_j| \ge 1` (and, for ``"hardtanh"``,
  :math:`|y_i - y_j| \ge 1` or :math:`= 0`) it equals :math:`1 - \tau_a` exactly. Gradients flow
  only through pairs with :math:`|s_i - s_j| < 1`, as the paper notes.

  With ``weights`` a pair counts with weight :math:`w_i w_j` in both sums (a weighted tau; weight 0
  removes an item, like a mask). The pair sums are computed blockwise
  (:func:`ranking_jax.losses.pairs.pairwise_sum`), never materialising ``[..., n, n]``.

  Edge cases: a list with fewer than two valid items (fully masked, one element, all scores
  non-finite) has no pair; its loss is 0 with zero gradients and it is left out of ``reduce_fn``
  (a batch without any pair reduces to 0). All-tied labels give :math:`\tau = 0`, i.e. a loss of 1 with
  zero gradients. Non-finite scores or labels count as masked.

  Args:
    scores: predicted scores ``[..., n]``; lists on the last axis (``[B]`` = one mini-batch list).
    labels: ground-truth values ``[..., n]`` (e.g. difficulty scores); only their order matters for
      ``"sgn"``.
    where: optional boolean mask ``[..., n]`` of valid items.
    weights: optional non-negative per-item weights broadcastable to ``[..., n]``.
    reduce_fn: reduction over lists (``jnp.mean``, ``jnp.sum``) or ``None`` for per-list losses.
    label_diff: ``"sgn"`` or ``"hardtanh"``, applied to the label differences.
    block_size: rows per block of the pair computation; ``None`` chooses it from the shape.

  Returns:
    The reduced loss, or per-list losses of shape ``scores.shape[:-1]`` if ``reduce_fn`` is ``None``;
    float32 for any input dtype but float64 (then float64).

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``scores`` is 0-D, ``labels`` has another shape, ``where``/``weights`` do
      not broadcast to it, ``label_diff`` is unknown or ``block_size`` < 1.

  >>> import jax.numpy as jnp
  >>> labels = jnp.array([1.0, 2.0, 3.0, 4.0])
  >>> kendall_rank_loss(jnp.array([10.0, 20.0, 30.0, 40.0]), labels)  # same order: tau = 1
  Array(0., dtype=float32)
  >>> kendall_rank_loss(jnp.array([40.0, 30.0, 20.0, 10.0]), labels)  # reversed: tau = -1
  Array(2., dtype=float32)
  >>> # tau = (0.5 + 0.25 + 1 - 0.25 + 1 + 1) / 6: close pairs count by their clipped difference
  >>> kendall_rank_loss(jnp.array([0.0, 0.5, 0.25, 3.0]), labels)
  Array(0.4166667, dtype=float32)
  """
  scores = jnp.asarray(scores)
  labels = jnp.asarray(labels)
  utils.check_listwise_inputs(scores, labels, weights)
  if label_diff not in _LABEL_DIFFS:
    raise ValueError(f"`label_diff` must be one of {_LABEL_DIFFS}, got {label_diff!r}.")
  dtype = utils.float_dtype(scores.dtype)
  mask = _valid_items(scores, labels, where)
  items = {"s": scores.astype(dtype), "y": labels.astype(dtype)}
  if weights is not None:
    items["w"] = jnp.broadcast_to(jnp.asarray(weights), scores.shape).astype(dtype)
  label_fn = jnp.sign if label_diff == "sgn" else jax.nn.hard_tanh

  def pair_fn(row, col):
    agreement = label_fn(row["y"] - col["y"]) * jax.nn.hard_tanh(row["s"] - col["s"])
    return row["w"] * col["w"] * agreement if "w" in row else agreement

  # Ordered pairs i != j count every unordered pair twice, in both sums, so the ratio is unchanged.
  agreement = pairs.pairwise_sum(pair_fn, items, where=mask, block_size=block_size)
  # sum_{i != j} w_i w_j = (sum_i w_i)^2 - sum_i w_i^2 over the valid items (m (m - 1) unweighted).
  item_weight = utils.sanitize(items["w"], mask) if "w" in items else mask.astype(dtype)
  total_weight = jnp.square(jnp.sum(item_weight, axis=-1)) - jnp.sum(jnp.square(item_weight), axis=-1)
  has_pairs = total_weight > 0
  tau = utils.safe_divide(agreement, total_weight)
  loss = jnp.where(has_pairs, 1.0 - tau, jnp.zeros_like(tau))
  return utils.reduce_loss(loss, reduce_fn, where=has_pairs)


def mse_loss(scores: Array, labels: Array, *, where: Optional[Array] = None,
             weights: Optional[Array] = None,
             reduce_fn: Optional[Callable[..., Array]] = jnp.mean) -> Array:
  r"""Mean squared error between scores and labels, IDE RankNet's auxiliary loss (Algorithm 1, eq. 5).

  *IDE RankNet: Estimating the difficulty of visual search in an image*:

  .. math:: \mathcal{L}_{mse} = \frac{1}{|V|} \sum_{i \in V} w_i\,(s_i - y_i)^2

  over the valid items :math:`V` (``where`` and finite score and label). This is a pointwise loss:
  as in ``rax.pointwise_mse_loss``, ``reduce_fn`` reduces over the valid *items* of all lists (so the
  default is the plain MSE of the batch) and ``reduce_fn=None`` returns the per-item values
  ``[..., n]`` (0 at masked items). A batch with no valid item gives 0 and zero gradients.

  Args:
    scores: predictions ``[..., n]``.
    labels: targets ``[..., n]``.
    where: optional boolean mask of valid items.
    weights: optional per-item weights broadcastable to ``[..., n]``.
    reduce_fn: reduction over the valid items, or ``None``.

  Returns:
    The reduced loss, or per-item losses; float32 for any input dtype but float64 (then float64).

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``scores`` is 0-D, ``labels`` has another shape, or ``where``/``weights`` do
      not broadcast to it.

  >>> import jax.numpy as jnp
  >>> mse_loss(jnp.array([2.0, 4.0, 3.0]), jnp.array([2.0, 3.0, 4.0]))
  Array(0.6666667, dtype=float32)
  >>> mse_loss(jnp.array([2.0, 4.0, jnp.nan]), jnp.array([2.0, 3.0, 4.0]))  # NaN score is masked
  Array(0.5, dtype=float32)
  """
  scores = jnp.asarray(scores)
  labels = jnp.asarray(labels)
  utils.check_listwise_inputs(scores, labels, weights)
  dtype = utils.float_dtype(scores.dtype)
  mask = _valid_items(scores, labels, where)
  # Clipped inputs: the square of any finite difference stays finite (utils.clip_magnitude).
  diff = (utils.clip_magnitude(utils.sanitize(scores.astype(dtype), mask))
          - utils.clip_magnitude(utils.sanitize(labels.astype(dtype), mask)))
  values = jnp.square(diff)
  if weights is not None:
    values = values * jnp.broadcast_to(jnp.asarray(weights), scores.shape).astype(dtype)
  return utils.reduce_loss(values, reduce_fn, where=mask)
