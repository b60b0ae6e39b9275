r"""Hinge-AP: the structured hinge upper bound on :math:`1 - \mathrm{AP}` of SVM-MAP, as a JAX loss.

From *A Support Vector Method for Optimizing Average Precision* (Yue, Finley, Radlinski, Joachims, SIGIR
2007), the "Hinge-AP" baseline that *SoDeep: a Sorting Deep net to learn ranking loss surrogates*
(Engilberge et al., CVPR 2019, §4.1.4, Figure 6) compares its mAP loss with, on the synthetic data of
:mod:`ranking_jax.projects.sodeep.teacher_student`.

For one list with positives :math:`P` and negatives :math:`N` and scores :math:`s`, a ranking
:math:`\bar y` is encoded by :math:`\bar y_{ij} = +1` if positive :math:`i` is ranked above negative
:math:`j`, else :math:`-1`. SVM-MAP's joint feature map gives the ranking the score

.. math::

   \langle w, \Psi(x, \bar y)\rangle = \frac{1}{|P|\,|N|} \sum_{i \in P} \sum_{j \in N}
   \bar y_{ij}\,(s_i - s_j),

the correct ranking :math:`y` has :math:`y_{ij} = +1` for every pair, and the loss is the structured hinge

.. math::

   \mathcal L(s) = \max_{\bar y} \Big[\Delta_\mathrm{AP}(y, \bar y)
     + \langle w, \Psi(x, \bar y)\rangle - \langle w, \Psi(x, y)\rangle\Big],
   \qquad \Delta_\mathrm{AP}(y, \bar y) = 1 - \mathrm{AP}(\bar y),

an upper bound on :math:`1 - \mathrm{AP}` of the ranking by :math:`s` (that ranking maximises
:math:`\langle w, \Psi\rangle`), equal to 0 iff every positive beats every negative by a margin that
outweighs the AP loss of any swap. The gradient is that of the bracket at the most violating ranking.

Loss-augmented inference (the max) follows Yue et al.: both terms depend only on how the negatives
interleave with the positives; an optimal ranking keeps the positives and the negatives each in decreasing
score order, and with them sorted, placing negative :math:`j` (1-based, among the negatives) after the first
:math:`k` positives changes the objective by

.. math::

   f_j(k) = \sum_{i = k+1}^{|P|} \Big[\frac{1}{|P|}\Big(\frac{i}{i+j-1} - \frac{i}{i+j}\Big)
      - \frac{2}{|P|\,|N|}\,(s^+_i - s^-_j)\Big],

independently of the other negatives, and the maximisers :math:`k_j = \arg\max_k f_j(k)` are
non-decreasing in :math:`j`, so the greedy choice is a valid ranking and is optimal. Evaluating every
:math:`f_j(k)` costs :math:`O(|P||N|)`; because the :math:`k_j` are monotone we search them by divide and
conquer over the negatives (as in Mohapatra, Jawahar and Kumar, *Efficient Optimization for Average
Precision SVM*, NeurIPS 2014): the median negative is placed by a scan, which bounds the positions of the
negatives on either side, and each of the :math:`\lceil\log_2(n+1)\rceil` levels costs :math:`O(n \log n)`.
The result is exact, jittable, and uses :math:`O(n)` memory per list. Ties among the maximisers are broken
towards the smallest :math:`k` (the most violating choice ranks the negative highest). Finite scores
beyond :func:`ranking_jax.utils.magnitude_bound` (2**48 in float32) count as that bound, with zero
gradient, so that the sums of score differences cannot overflow.
"""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp

from ranking_jax import utils

Array = jax.Array


def _class_masks(scores: Array, labels: Array, where: Optional[Array]) -> tuple[Array, Array]:
  labels = jnp.asarray(labels)
  if labels.dtype == jnp.bool_:
    mask = utils.valid_mask(scores, where)
    relevant = labels
  else:
    labels = utils.as_float(labels)
    mask = utils.valid_mask(scores, where) & jnp.isfinite(labels)
    relevant = labels > 0
  return mask & relevant, mask & ~relevant


def _decreasing_order(scores: Array, member: Array) -> Array:
  """Indices of the members by decreasing score (stable), then the non-members."""
  keys = jnp.where(member, -scores, jnp.inf)
  return jnp.argsort(keys, stable=True)


def _inference_1d(scores: Array, positive: Array, negative: Array) -> tuple[Array, Array, Array]:
  """Most violating interleaving of one list.

  Returns ``(pos_order, neg_order, k)``: the item indices of the positives and of the negatives by
  decreasing score (members first), and for negative slot ``q`` (``q < |N|``) the number ``k[q]`` of
  positives ranked above it; entries of slots ``q >= |N|`` are meaningless.
  """
  n = scores.shape[-1]
  dtype = scores.dtype
  s = jax.lax.stop_gradient(scores)
  num_pos = jnp.sum(positive).astype(jnp.int32)
  num_neg = jnp.sum(negative).astype(jnp.int32)
  pos_order = _decreasing_order(s, positive)
  neg_order = _decreasing_order(s, negative)
  sp = s[pos_order]
  levels = max(1, math.ceil(math.log2(n + 1)))
  n_pad = 2 ** levels - 1  # a complete binary tree over the negative slots
  max_nodes = 2 ** (levels - 1)
  sn = jnp.concatenate([s[neg_order], jnp.zeros((n_pad - n,), dtype)])
  p_float = jnp.maximum(num_pos, 1).astype(dtype)
  pair_scale = 2.0 / (p_float * jnp.maximum(num_neg, 1).astype(dtype))
  slot = jnp.arange(n, dtype=jnp.int32)  # positive slot p holds the positive of rank i = p + 1
  rank = (slot + 1).astype(dtype)
  node = jnp.arange(max_nodes, dtype=jnp.int32)

  def place_level(level: Array, k: Array) -> Array:
    """Places the median negative of every node of tree level ``level`` (fixed shapes for all levels)."""
    step = jnp.left_shift(jnp.int32(1), levels - level)
    num_nodes = jnp.left_shift(jnp.int32(1), level)
    active = node < num_nodes
    median = node * step + step // 2 - 1
    left = node * step - 1
    right = (node + 1) * step - 1
    # The nearest placed negatives on either side bound this node's position (monotone k).
    lo = jnp.where(left >= 0, k[jnp.clip(left, 0, n_pad - 1)], 0)
    hi = jnp.where(right < n_pad, k[jnp.clip(right, 0, n_pad - 1)], num_pos)
    # Positive rank i = p + 1 is a candidate boundary of the node whose range (lo, hi] contains it; the
    # his are non-decreasing, so that node is the number of nodes with hi < i.
    hi_counts = jnp.zeros((n + 2,), jnp.int32).at[jnp.where(active, hi, n + 1)].add(1)
    node_of = jnp.cumsum(hi_counts)[:n]
    owner = jnp.minimum(node_of, num_nodes - 1)
    inside = (slot < num_pos) & (node_of < num_nodes) & (lo[owner] <= slot)
    j = (median[owner] + 1).astype(dtype)
    gain = rank / (p_float * (rank + j - 1.0) * (rank + j)) - pair_scale * (sp - sn[median[owner]])
    gain = jnp.where(inside, gain, 0.0)
    suffix = jnp.concatenate([jnp.cumsum(gain[::-1])[::-1], jnp.zeros((1,), dtype)])
    value = suffix[:n] - suffix[hi[owner]]  # f(k = p) - f(hi), for the node owning p
    segment = jnp.where(inside, owner, max_nodes)
    best = jax.ops.segment_max(jnp.where(inside, value, -jnp.inf), segment, num_segments=max_nodes + 1)
    best = jnp.maximum(best[:max_nodes], 0.0)  # k = hi itself has value 0
    candidate = jnp.where(inside & (value == best[owner]), slot, n + 1)
    first = jax.ops.segment_min(candidate, segment, num_segments=max_nodes + 1)[:max_nodes]
    chosen = jnp.where(first <= n, first, hi)
    chosen = jnp.where(median < num_neg, chosen, hi)  # padding slots sit after every positive
    return k.at[jnp.where(active, median, n_pad)].set(chosen, mode="drop")

  k = jax.lax.fori_loop(0, levels, place_level, jnp.zeros((n_pad,), jnp.int32))
  return pos_order, neg_order, k[:n]


def _hinge_ap_1d(scores: Array, positive: Array, negative: Array) -> Array:
  n = scores.shape[-1]
  dtype = scores.dtype
  pos_order, neg_order, k = _inference_1d(scores, positive, negative)
  num_pos = jnp.sum(positive).astype(jnp.int32)
  num_neg = jnp.sum(negative).astype(jnp.int32)
  slot = jnp.arange(n, dtype=jnp.int32)
  neg_valid = slot < num_neg
  pos_valid = slot < num_pos
  # above[p]: negatives ranked above the positive of rank p + 1 in the most violating ranking.
  counts = jnp.zeros((n + 2,), dtype).at[jnp.where(neg_valid, k, n + 1)].add(1.0)
  above = jnp.cumsum(counts)[:n]
  rank = (slot + 1).astype(dtype)
  p_float = jnp.maximum(num_pos, 1).astype(dtype)
  average_precision = jnp.sum(jnp.where(pos_valid, rank / (rank + above), 0.0)) / p_float
  pair_scale = 2.0 / (p_float * jnp.maximum(num_neg, 1).astype(dtype))
  sp = scores[pos_order]
  sn = scores[neg_order]
  swapped = (jnp.sum(jnp.where(pos_valid, sp * above, 0.0))
             - jnp.sum(jnp.where(neg_valid, sn * (num_pos - k).astype(dtype), 0.0)))
  loss = 1.0 - average_precision - pair_scale * swapped
  return jnp.where((num_pos > 0) & (num_neg > 0), loss, 0.0)


def _per_list(fn, scores: Array, positive: Array, negative: Array, empty: Array) -> Array:
  """Applies a one-list function to every list (last axis); ``empty`` is the result for ``n = 0``."""
  batch_shape = scores.shape[:-1]
  n = scores.shape[-1]
  if n == 0:  # nothing to rank (and a reshape to [-1, 0] is ill-defined)
    return jnp.broadcast_to(empty, batch_shape + jnp.shape(empty))
  flat = [x.reshape((math.prod(batch_shape), n)) for x in (scores, positive, negative)]
  out = jax.vmap(fn)(*flat)
  return out.reshape(batch_shape + out.shape[1:])


def hinge_ap_loss(scores: Array, labels: Array, *, where: Optional[Array] = None,
                  weights: Optional[Array] = None, reduce_fn: utils.ReduceFn = jnp.mean) -> Array:
  r"""Structured hinge upper bound on :math:`1 - \mathrm{AP}` (SVM-MAP, Yue et al. 2007), per list.

  See the module docstring for the definition and the exact loss-augmented inference. Per list, with
  :math:`\bar y` the most violating ranking, the value is
  :math:`1 - \mathrm{AP}(\bar y) - \frac{2}{|P||N|}\sum_{(i, j):\ j \text{ above } i}(s_i - s_j) \ge
  1 - \mathrm{AP}(s)`, and 0 when every positive outscores every negative by enough.

  Args:
    scores: scores ``[..., n]``; lists on the last axis.
    labels: relevance of the same shape; an item is positive iff its label is > 0 (or True).
    where: optional boolean mask of valid items. Non-finite scores or labels are masked too.
    weights: optional non-negative per-item weights broadcastable to ``[..., n]``. The hinge is a property
      of the whole list, so each list's loss is scaled by the mean weight of its valid items (pass
      ``w[..., None]`` to weight list ``w`` exactly).
    reduce_fn: reduction over the lists with at least one valid positive (as
      :func:`ranking_jax.losses.map_rank_loss`); ``None`` returns per-list losses.

  Returns:
    The reduced loss or per-list losses (shape ``scores.shape[:-1]``). A list without positives has loss
    0 and is left out of the reduction; a list without negatives has loss 0 (it is perfectly ranked). The
    gradient w.r.t. positive :math:`i` is :math:`-\frac{2}{|P||N|}` times the number of negatives ranked
    above it in :math:`\bar y`, and w.r.t. negative :math:`j` :math:`\frac{2}{|P||N|}` times the number of
    positives below it: finite everywhere.

  >>> import jax.numpy as jnp
  >>> labels = jnp.array([1, 0, 1, 0])
  >>> hinge_ap_loss(jnp.array([3.0, -3.0, 2.0, -2.0]), labels)  # separated by a wide margin
  Array(0., dtype=float32)
  >>> hinge_ap_loss(jnp.array([0.9, 0.8, 0.3, 0.1]), labels).round(4)  # 1 - AP = 0.1667
  Array(0.6167, dtype=float32)
  """
  scores = utils.as_float(scores)
  utils.check_listwise_inputs(scores, labels, weights)
  positive, negative = _class_masks(scores, labels, where)
  safe = utils.clip_magnitude(utils.sanitize(scores, positive | negative))  # sums of differences stay finite
  per_list = _per_list(_hinge_ap_1d, safe, positive, negative, jnp.zeros((), scores.dtype))
  if weights is not None:
    valid = positive | negative
    w = jnp.broadcast_to(utils.as_float(weights), scores.shape).astype(scores.dtype)
    mean_weight = utils.safe_divide(jnp.sum(jnp.where(valid, w, 0.0), axis=-1),
                                    jnp.sum(valid, axis=-1).astype(scores.dtype))
    per_list = per_list * mean_weight
  return utils.reduce_loss(per_list, reduce_fn, where=jnp.any(positive, axis=-1))


def most_violating_ranking(scores: Array, labels: Array, *, where: Optional[Array] = None) -> Array:
  r"""Hinge-AP's loss-augmented inference: the most violating interleaving of each list.

  Returns an int32 array of the shape of ``scores``: for each valid negative, the number of positives
  ranked above it in the most violating ranking :math:`\bar y` (positives in decreasing score order);
  -1 for positives and masked items. Not differentiable (integer output).

  >>> import jax.numpy as jnp
  >>> most_violating_ranking(jnp.array([0.9, 0.8, 0.3, 0.1]), jnp.array([1, 0, 1, 0]))
  Array([-1,  0, -1,  2], dtype=int32)
  """
  scores = utils.as_float(scores)
  utils.check_listwise_inputs(scores, labels, None)
  positive, negative = _class_masks(scores, labels, where)
  safe = utils.sanitize(scores, positive | negative)
  n = scores.shape[-1]

  def scatter(scores_1d: Array, positive_1d: Array, negative_1d: Array) -> Array:
    _, neg_order, k = _inference_1d(scores_1d, positive_1d, negative_1d)
    valid = jnp.arange(n) < jnp.sum(negative_1d)
    return jnp.full((n,), -1, jnp.int32).at[neg_order].set(jnp.where(valid, k, -1))

  return _per_list(scatter, safe, positive, negative, jnp.zeros((0,), jnp.int32))
