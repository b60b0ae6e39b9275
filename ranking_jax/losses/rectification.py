r"""Class Rectification Loss (CRL): minority-class hard mining for imbalanced multi-attribute learning.

Implements Dong, Gong and Zhu, "Class Rectification Hard Mining for Imbalanced Deep Learning" (ICCV 2017):

* :func:`minority_classes`: per-batch profiling of minority classes (eq. 3 and footnote 1);
* :func:`class_level_hard_mining` (eq. 4-5) and :func:`instance_level_hard_mining` (eq. 6-7): top-K hard
  positives and negatives for every minority-class anchor, padded and masked to fixed shapes;
* building blocks on distances: :func:`triplet_margin_loss` (eq. 9), :func:`contrastive_loss` (eq. 11),
  :func:`histogram_loss` (eq. 12-14, the histogram loss of Ustinova & Lempitsky, "Learning deep
  embeddings with histogram loss", NeurIPS 2016, written on distances);
* :func:`class_rectification_loss`: cross-entropy plus one of the three CRL regularisers (eq. 8).

Everything works on fixed shapes (``jax.lax.top_k`` with padding and validity masks, never boolean
indexing), so it jits and vmaps. Mining is a selection and carries no gradient; the gradients flow through
the L2 distances of the mined pairs and through the cross-entropy.

Layout of the combined loss: ``logits [..., B, A, C]``, ``labels [..., B, A]``, ``features [..., B, A, D]``
(one feature vector :math:`\mathbf{x}_{i,j}` per image ``i`` and attribute ``j``, as in the paper). The batch
axis ``B`` is the "list": CRL profiles and mines within it. Leading axes are independent batches. Scores,
logits, features and distances of any real dtype are computed in float32 (float64 for float64 inputs); a
zero-size batch, attribute, class or pair axis gives the value of a fully masked one (0). Finite logits,
features and distances beyond :func:`ranking_jax.utils.magnitude_bound` (2**48 in float32) count as that
bound, with zero gradient, so that no log-softmax, squared distance or hinge overflows.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp

from ranking_jax import utils

Array = jax.Array
ReduceFn = Optional[Callable[..., Array]]

_KINDS = ("relative", "absolute", "distribution")
_LEVELS = ("class", "instance")


class HardMining(NamedTuple):
  """Mined hard samples for every anchor of a batch (indices index the batch axis).

  Attributes:
    anchors: ``[..., B]`` bool, the valid samples of a minority class (the anchors of the paper).
    positives: ``[..., B, K]`` int32, hard-positive indices of each anchor (hardest first).
    positive_mask: ``[..., B, K]`` bool, which positives exist (False for padding and non-anchors).
    negatives: ``[..., B, K]`` int32, hard-negative indices of each anchor (hardest first).
    negative_mask: ``[..., B, K]`` bool, which negatives exist.
  """
  anchors: Array
  positives: Array
  positive_mask: Array
  negatives: Array
  negative_mask: Array


# ----------------------------------------------------------------------------------------------------------
# Helpers.


def _compute_dtype(*arrays: Optional[Array]) -> jnp.dtype:
  """The joint compute dtype (:func:`ranking_jax.utils.float_dtype`) of several inputs."""
  dtype = jnp.dtype(jnp.float32)
  for x in arrays:
    if x is not None:
      dtype = jnp.promote_types(dtype, utils.float_dtype(jnp.asarray(x).dtype))
  return dtype


def _check_bool(name: str, x: Optional[Array]) -> None:
  if x is not None and jnp.asarray(x).dtype != jnp.bool_:
    raise TypeError(f"`{name}` must be boolean, got dtype {jnp.asarray(x).dtype}.")


def _check_int(name: str, x: Array) -> None:
  if not jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer):
    raise TypeError(f"`{name}` must be an integer class-label array, got dtype {jnp.asarray(x).dtype}.")


def _check_top_k(top_k: int) -> None:
  if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
    raise ValueError(f"`top_k` must be a positive int, got {top_k!r}.")


def _batched(fn: Callable[..., Tuple[Array, ...]], core_ndims: Sequence[int], *args: Array):
  """Applies ``fn`` (written for unbatched args of ``core_ndims`` dims) over shared leading axes."""
  lead = jnp.shape(args[0])[:jnp.ndim(args[0]) - core_ndims[0]]
  # An explicit size, not -1: a zero-size axis would make -1 ambiguous.
  flat = [jnp.reshape(a, (math.prod(lead),) + jnp.shape(a)[len(lead):]) for a in args]
  out = jax.vmap(fn)(*flat)
  return jax.tree_util.tree_map(lambda o: jnp.reshape(o, lead + o.shape[1:]), out)


def _safe_l2(diff: Array) -> Array:
  """L2 norm over the last axis with a zero (not NaN) gradient at zero distance."""
  sq = jnp.sum(diff * diff, axis=-1)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, jnp.ones_like(sq))), jnp.zeros_like(sq))


def _top_k_padded(keys: Array, eligible: Array, k: int) -> Tuple[Array, Array]:
  """Indices of the ``k`` largest eligible ``keys`` (last axis), padded with masked slots when fewer exist."""
  n = keys.shape[-1]
  keys = jnp.where(eligible, keys, -jnp.inf)
  k_eff = min(k, n)
  _, idx = jax.lax.top_k(jax.lax.stop_gradient(keys), k_eff)
  mask = jnp.take_along_axis(eligible, idx, axis=-1)
  if k_eff < k:
    pad = [(0, 0)] * (idx.ndim - 1) + [(0, k - k_eff)]
    idx = jnp.pad(idx, pad)
    mask = jnp.pad(mask, pad)
  idx = jnp.where(mask, idx, jnp.zeros_like(idx)).astype(jnp.int32)
  return idx, mask


# ----------------------------------------------------------------------------------------------------------
# Minority-class profiling (eq. 3).


def _minority_classes_1d(labels: Array, valid: Array, num_classes: int) -> Array:
  onehot = (labels[:, None] == jnp.arange(num_classes)[None, :]) & valid[:, None]
  counts = jnp.sum(onehot, axis=0).astype(jnp.int32)
  n_bs = jnp.sum(valid).astype(jnp.int32)
  # Smallest classes first (ties by class index); a class is minority while the running total stays < n/2.
  order = jnp.argsort(counts, stable=True)
  cumulative = jnp.cumsum(counts[order])
  minority_sorted = 2 * cumulative < n_bs
  minority = jnp.zeros((num_classes,), bool).at[order].set(minority_sorted)
  # Footnote 1: only minority classes with at least two samples in the batch (a triplet needs a pair).
  return minority & (counts >= 2)


@functools.partial(jax.jit, static_argnums=2)
def _minority_classes_batched(labels: Array, valid: Array, num_classes: int) -> Array:
  return _batched(lambda l, v: _minority_classes_1d(l, v, num_classes), (1, 1), labels, valid)


def minority_classes(labels: Array, num_classes: int, *, where: Optional[Array] = None) -> Array:
  r"""Minority classes of a batch for one attribute (batch profiling, eq. 3 of the CRL paper).

  From "Class Rectification Hard Mining for Imbalanced Deep Learning" (Dong, Gong, Zhu, ICCV 2017). With
  :math:`h_k` the number of valid samples of class ``k`` in the batch of :math:`n_{bs}` valid samples, the
  classes are taken smallest first (ties by class index) while

  .. math:: \sum_{k \in C_{\min}} h_k < 0.5\, n_{bs},

  and, following the paper's footnote 1, only minority classes with :math:`h_k \ge 2` are kept (the others
  cannot form a positive pair). Classes with one sample still count towards the half-batch budget.

  Args:
    labels: integer labels ``[..., B]``, the batch on the last axis. Labels outside
      ``[0, num_classes)`` (e.g. ``-1`` for "missing") are ignored.
    num_classes: number of classes :math:`|Z_j|` of the attribute (static int).
    where: optional boolean ``[..., B]`` mask of valid samples.

  Returns:
    Boolean ``[..., num_classes]``: True for the minority classes of each batch. For several attributes
    with labels ``[B, A]`` call ``minority_classes(labels.T, C)`` to get ``[A, C]``.

  Raises:
    TypeError: if ``labels`` is not an integer array or ``where`` is not boolean.
    ValueError: if ``labels`` is 0-D or ``num_classes`` is not a positive int.

  >>> import jax.numpy as jnp
  >>> minority_classes(jnp.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 3]), 4)
  Array([False,  True, False, False], dtype=bool)
  """
  labels = jnp.asarray(labels)
  _check_int("labels", labels)
  _check_bool("where", where)
  utils.check_rank_at_least("labels", labels, 1)
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"`num_classes` must be a positive int, got {num_classes!r}.")
  valid = (labels >= 0) & (labels < num_classes)
  if where is not None:
    valid = valid & jnp.broadcast_to(where, labels.shape)
  return _minority_classes_batched(labels, valid, num_classes)


# ----------------------------------------------------------------------------------------------------------
# Hard mining (eq. 4-7).


def _class_level_mining_1d(scores: Array, labels: Array, valid: Array, top_k: int) -> HardMining:
  num_samples, num_classes = scores.shape
  scores = jax.lax.stop_gradient(scores)
  minority = _minority_classes_1d(labels, valid, num_classes)
  anchors = valid & minority[labels]
  member = (labels[None, :] == jnp.arange(num_classes)[:, None]) & valid[None, :]  # [C, B]
  nonmember = ~member & valid[None, :]
  class_scores = scores.T  # [C, B]: p(y = c | x_i)
  # Eq. 4: hard positives of class c are its samples with the LOWEST score on c.
  pos_idx, pos_mask = _top_k_padded(-class_scores, member, top_k)
  # Eq. 5: hard negatives of class c are other-class samples with the HIGHEST score on c.
  neg_idx, neg_mask = _top_k_padded(class_scores, nonmember, top_k)
  # Every anchor uses the lists of its own class; an anchor is never its own positive.
  positives, positive_mask = pos_idx[labels], pos_mask[labels]
  negatives, negative_mask = neg_idx[labels], neg_mask[labels]
  positive_mask = positive_mask & (positives != jnp.arange(num_samples)[:, None]) & anchors[:, None]
  negative_mask = negative_mask & anchors[:, None]
  return HardMining(anchors, positives, positive_mask, negatives, negative_mask)


def _instance_level_mining_1d(scores: Array, labels: Array, features: Array, valid: Array,
                              top_k: int) -> HardMining:
  num_samples, num_classes = scores.shape
  scores = jax.lax.stop_gradient(scores)
  features = jax.lax.stop_gradient(features)
  minority = _minority_classes_1d(labels, valid, num_classes)
  anchors = valid & minority[labels]
  predicted = jnp.argmax(scores, axis=-1)
  # Ranking by squared distance = ranking by distance; centred, so a common offset cannot cancel it.
  distances = utils.squared_distances(features, features, x_where=valid, y_where=valid)
  same = labels[:, None] == labels[None, :]
  not_self = ~jnp.eye(num_samples, dtype=bool)
  # Eq. 6: same-class samples that the model misclassifies, farthest first.
  pos_eligible = same & not_self & (predicted != labels)[None, :] & valid[None, :] & anchors[:, None]
  # Eq. 7: samples of any other class, closest first.
  neg_eligible = ~same & valid[None, :] & anchors[:, None]
  positives, positive_mask = _top_k_padded(distances, pos_eligible, top_k)
  negatives, negative_mask = _top_k_padded(-distances, neg_eligible, top_k)
  return HardMining(anchors, positives, positive_mask, negatives, negative_mask)


def _mining_inputs(scores: Array, labels: Array, where: Optional[Array]) -> Tuple[Array, Array, Array]:
  # Scores are promoted first: eq. 4 negates them, which would wrap for unsigned integer scores.
  scores = utils.as_float(scores)
  labels = jnp.asarray(labels)
  _check_int("labels", labels)
  _check_bool("where", where)
  utils.check_rank_at_least("scores", scores, 2)
  if scores.shape[:-1] != labels.shape:
    raise ValueError(f"`scores` must be [..., B, C] and `labels` [..., B]; got {scores.shape} and "
                     f"{labels.shape}.")
  num_classes = scores.shape[-1]
  valid = (labels >= 0) & (labels < num_classes) & jnp.all(jnp.isfinite(scores), axis=-1)
  if where is not None:
    valid = valid & jnp.broadcast_to(where, labels.shape)
  labels = jnp.where(valid, labels, 0)
  scores = jnp.where(valid[..., None], scores, jnp.zeros_like(scores))
  return scores, labels, valid


@functools.partial(jax.jit, static_argnums=3)
def _class_level_mining_batched(scores, labels, valid, top_k: int) -> HardMining:
  fn = lambda s, l, v: _class_level_mining_1d(s, l, v, top_k)
  return _batched(fn, (2, 1, 1), scores, labels, valid)


@functools.partial(jax.jit, static_argnums=4)
def _instance_level_mining_batched(scores, labels, features, valid, top_k: int) -> HardMining:
  fn = lambda s, l, x, v: _instance_level_mining_1d(s, l, x, v, top_k)
  return _batched(fn, (2, 1, 2, 1), scores, labels, features, valid)


def class_level_hard_mining(scores: Array, labels: Array, *, top_k: int,
                            where: Optional[Array] = None) -> HardMining:
  r"""Minority class-level top-K hard positives and negatives (eq. 4-5 of the CRL paper).

  From "Class Rectification Hard Mining for Imbalanced Deep Learning" (Dong, Gong, Zhu, ICCV 2017). For a
  minority class :math:`c` (see :func:`minority_classes`):

  .. math::
     \mathcal{P}^{cls}_{c} = \{\mathbf{x}_i \mid a_i = c,\ \text{low } p(y_i = c \mid \mathbf{x}_i)\},
     \qquad
     \mathcal{N}^{cls}_{c} = \{\mathbf{x}_i \mid a_i \ne c,\ \text{high } p(y_i = c \mid \mathbf{x}_i)\},

  keeping the bottom-K (positives) and top-K (negatives) scored on :math:`c`. Every valid sample of a
  minority class is an anchor and uses the lists of its class; an anchor is masked out of its own
  positives. Slots beyond the available samples are padded (index 0) and masked.

  Args:
    scores: ``[..., B, C]`` class scores, e.g. softmax probabilities :math:`p(y = c \mid \mathbf{x})` as in
      the paper (the ranking by probability differs from the ranking by logits). No gradient flows.
    labels: integer ``[..., B]``; labels outside ``[0, C)`` are masked.
    top_k: K, the number of hard positives and of hard negatives per anchor.
    where: optional boolean ``[..., B]`` mask of valid samples; samples with non-finite scores are masked.

  Returns:
    A :class:`HardMining` with ``[..., B]`` anchors and ``[..., B, K]`` indices and masks.

  Raises:
    TypeError: if ``labels`` is not an integer array or ``where`` is not boolean.
    ValueError: if ``top_k`` is not a positive int or the shapes do not match.

  >>> import jax.numpy as jnp
  >>> p1 = jnp.array([.1, .2, .3, .4, .9, .8, .7])  # p(y = 1 | x_i)
  >>> m = class_level_hard_mining(jnp.stack([1 - p1, p1], -1), jnp.array([0, 0, 0, 0, 1, 1, 1]),
  ...                             top_k=2)
  >>> m.anchors
  Array([False, False, False, False,  True,  True,  True], dtype=bool)
  >>> m.positives[4], m.positive_mask[4], m.negatives[4]
  (Array([6, 5], dtype=int32), Array([ True,  True], dtype=bool), Array([3, 2], dtype=int32))
  """
  _check_top_k(top_k)
  scores, labels, valid = _mining_inputs(scores, labels, where)
  return _class_level_mining_batched(scores, labels, valid, top_k)


def instance_level_hard_mining(scores: Array, labels: Array, *, features: Array, top_k: int,
                               where: Optional[Array] = None) -> HardMining:
  r"""Minority instance-level top-K hard positives and negatives (eq. 6-7 of the CRL paper).

  From "Class Rectification Hard Mining for Imbalanced Deep Learning" (Dong, Gong, Zhu, ICCV 2017). For an
  anchor :math:`\mathbf{x}_i` of a minority class :math:`c`:

  .. math::
     \mathcal{P}^{ins}_{i,c} = \{\mathbf{x}_k \mid a_k = c,\ \hat{a}_k \ne c,\
       \text{large } \|\mathbf{x}_i - \mathbf{x}_k\|_2\},
     \qquad
     \mathcal{N}^{ins}_{i,c} = \{\mathbf{x}_k \mid a_k \ne c,\
       \text{small } \|\mathbf{x}_i - \mathbf{x}_k\|_2\},

  keeping the K farthest misclassified positives (:math:`\hat{a}_k = \arg\max_c` ``scores``, the anchor itself
  excluded) and the K closest negatives. Slots beyond the available samples are padded and masked.

  Args:
    scores: ``[..., B, C]`` class scores (logits or probabilities; only their argmax is used).
    labels: integer ``[..., B]``; labels outside ``[0, C)`` are masked.
    features: ``[..., B, D]`` feature vectors of the attribute. No gradient flows through the mining.
    top_k: K, the number of hard positives and of hard negatives per anchor.
    where: optional boolean ``[..., B]`` mask; samples with non-finite scores or features are masked.

  Returns:
    A :class:`HardMining` with ``[..., B]`` anchors and ``[..., B, K]`` indices and masks.

  Raises:
    TypeError: if ``labels`` is not an integer array or ``where`` is not boolean.
    ValueError: if ``top_k`` is not a positive int or the shapes do not match.

  >>> import jax.numpy as jnp
  >>> x = jnp.array([[0.], [1.], [5.], [2.], [3.], [4.], [6.]])
  >>> labels = jnp.array([1, 1, 1, 0, 0, 0, 0])
  >>> scores = jax.nn.one_hot(jnp.array([1, 0, 0, 0, 0, 0, 0]), 2)  # samples 1 and 2 misclassified
  >>> m = instance_level_hard_mining(scores, labels, features=x, top_k=2)
  >>> m.positives[0], m.positive_mask[0], m.negatives[0]
  (Array([2, 1], dtype=int32), Array([ True,  True], dtype=bool), Array([3, 4], dtype=int32))
  """
  _check_top_k(top_k)
  features = utils.as_float(features)
  utils.check_rank_at_least("features", features, 2)
  if features.shape[:-1] != jnp.shape(labels):
    raise ValueError(f"`features` must be [..., B, D] with `labels` [..., B]; got {features.shape} and "
                     f"{jnp.shape(labels)}.")
  finite = jnp.all(jnp.isfinite(features), axis=-1)
  where = finite if where is None else (jnp.broadcast_to(where, finite.shape) & finite)
  scores, labels, valid = _mining_inputs(scores, labels, where)
  features = jnp.where(valid[..., None], features, jnp.zeros_like(features))
  return _instance_level_mining_batched(scores, labels, features, valid, top_k)


# ----------------------------------------------------------------------------------------------------------
# Building blocks on distances.


def _distance_inputs(name: str, distances: Array, where: Optional[Array],
                     where_name: str = "where") -> Tuple[Array, Array]:
  distances = utils.as_float(distances)
  _check_bool(where_name, where)
  mask = utils.valid_mask(distances, where)
  # Finite distances are clipped (utils.clip_magnitude): margin + d_p - d_n and d**2 cannot overflow.
  return utils.clip_magnitude(utils.sanitize(distances, mask)), mask


def triplet_margin_loss(positive_distances: Array, negative_distances: Array, *, margin: float = 1.0,
                        where: Optional[Array] = None, weights: Optional[Array] = None,
                        reduce_fn: ReduceFn = jnp.mean) -> Array:
  r"""Triplet ranking (hinge) loss on anchor-positive and anchor-negative distances (CRL eq. 9).

  From "Class Rectification Hard Mining for Imbalanced Deep Learning" (Dong, Gong, Zhu, ICCV 2017):

  .. math:: l = \frac{1}{|T|}\sum_{T} \max\big(0,\ m + d(\mathbf{x}_a, \mathbf{x}_p) - d(\mathbf{x}_a,
     \mathbf{x}_n)\big)

  Args:
    positive_distances: ``d(a, p)``, any shape, broadcast against ``negative_distances`` (pass
      ``d_ap[..., :, None]`` and ``d_an[..., None, :]`` to form all P x N triplets of an anchor).
    negative_distances: ``d(a, n)``.
    margin: :math:`m`.
    where: optional boolean mask of valid triplets (broadcast); non-finite distances are masked.
    weights: optional per-triplet weights (broadcast) multiplying each hinge term.
    reduce_fn: reduces the per-triplet terms over the valid ones (``jnp.mean`` gives eq. 9); ``None``
      returns them (0 where masked).

  Returns:
    The loss; 0 when no triplet is valid.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if the distances, ``where`` or ``weights`` do not broadcast together.

  >>> import jax.numpy as jnp
  >>> triplet_margin_loss(jnp.array([1.0, 2.0]), jnp.array([3.0, 2.5]), margin=1.0)
  Array(0.25, dtype=float32)
  """
  pos, pos_mask = _distance_inputs("positive_distances", positive_distances, None)
  neg, neg_mask = _distance_inputs("negative_distances", negative_distances, None)
  shape = jnp.broadcast_shapes(pos.shape, neg.shape)
  mask = jnp.broadcast_to(pos_mask, shape) & jnp.broadcast_to(neg_mask, shape)
  if where is not None:
    _check_bool("where", where)
    mask = mask & jnp.broadcast_to(where, shape)
  pos = utils.sanitize(jnp.broadcast_to(pos, shape), mask)
  neg = utils.sanitize(jnp.broadcast_to(neg, shape), mask)
  terms = jax.nn.relu(margin + pos - neg)
  if weights is not None:
    terms = terms * jnp.broadcast_to(jnp.asarray(weights, terms.dtype), shape)
  return utils.reduce_loss(terms, reduce_fn, where=mask)


def contrastive_loss(distances: Array, similar: Array, *, margin: float = 1.0,
                     where: Optional[Array] = None, weights: Optional[Array] = None,
                     reduce_fn: ReduceFn = jnp.mean) -> Array:
  r"""Contrastive loss on pair distances (Hadsell, Chopra, LeCun), the per-pair term of CRL eq. 11.

  .. math:: l_{ij} = \tfrac12\,\big[y_{ij}\, d_{ij}^2 + (1 - y_{ij}) \max(0,\ m - d_{ij})^2\big]

  CRL's absolute comparison (eq. 11 of "Class Rectification Hard Mining for Imbalanced Deep Learning")
  averages the positive and the negative pair sets separately:
  ``contrastive_loss(d_pos, True) + contrastive_loss(d_neg, False)``.

  Args:
    distances: pair distances, any shape.
    similar: boolean :math:`y` (broadcast): True for positive pairs, False for negative pairs.
    margin: :math:`m` (:math:`m_{apc} = 1` in the paper).
    where: optional boolean mask of valid pairs; non-finite distances are masked.
    weights: optional per-pair weights multiplying each term.
    reduce_fn: reduces the per-pair terms over the valid pairs; ``None`` returns them.

  Returns:
    The loss; 0 when no pair is valid.

  Raises:
    TypeError: if ``similar`` or ``where`` is not boolean.
    ValueError: if ``similar``, ``where`` or ``weights`` do not broadcast to ``distances``.

  >>> import jax.numpy as jnp
  >>> contrastive_loss(jnp.array([1.0, 0.5]), jnp.array([True, False]), margin=1.0)
  Array(0.3125, dtype=float32)
  """
  dist, mask = _distance_inputs("distances", distances, where)
  similar = jnp.asarray(similar)
  _check_bool("similar", similar)
  similar = jnp.broadcast_to(similar, dist.shape)
  dist = utils.sanitize(dist, mask)
  terms = 0.5 * jnp.where(similar, dist ** 2, jax.nn.relu(margin - dist) ** 2)
  if weights is not None:
    terms = terms * jnp.broadcast_to(jnp.asarray(weights, terms.dtype), dist.shape)
  return utils.reduce_loss(terms, reduce_fn, where=mask)


def _soft_histogram(distances: Array, mask: Array, weights: Array, num_bins: int,
                    value_range: Tuple[float, float]) -> Array:
  """Weighted, normalised linear-bin histograms ``[..., num_bins]`` of ``distances [..., P]``."""
  low, high = value_range
  step = (high - low) / (num_bins - 1)
  position = (jnp.clip(distances, low, high) - low) / step
  # Eq. 13: each distance splits its weight linearly between the two nearest bin centres; scatter-adding
  # into those two bins costs O(P) instead of O(P * num_bins).
  left = jnp.clip(jnp.floor(jax.lax.stop_gradient(position)), 0, num_bins - 2)
  frac = position - left
  w = jnp.where(mask, weights, jnp.zeros_like(weights))
  total = jnp.sum(w, axis=-1, keepdims=True)

  def one_list(left, frac, w):
    left = left.astype(jnp.int32)
    hist = jnp.zeros((num_bins,), w.dtype)
    return hist.at[left].add(w * (1.0 - frac)).at[left + 1].add(w * frac)

  lead = distances.shape[:-1]
  flat = lambda a: jnp.reshape(a, (math.prod(lead), distances.shape[-1]))
  hist = jax.vmap(one_list)(flat(left), flat(frac), flat(w)).reshape(lead + (num_bins,))
  return utils.safe_divide(hist, total)


def histogram_loss(positive_distances: Array, negative_distances: Array, *,
                   positive_where: Optional[Array] = None, negative_where: Optional[Array] = None,
                   positive_weights: Optional[Array] = None, negative_weights: Optional[Array] = None,
                   num_bins: int = 201, value_range: Tuple[float, float] = (0.0, 2.0),
                   reduce_fn: ReduceFn = jnp.mean) -> Array:
  r"""Histogram loss on distances: the probability that a negative pair is closer than a positive one.

  CRL's distribution comparison (eq. 12-14 of "Class Rectification Hard Mining for Imbalanced Deep
  Learning", after Ustinova & Lempitsky, "Learning deep embeddings with histogram loss"). With
  :math:`\tau` bin centres :math:`b_t` uniformly spaced by :math:`\Delta` over ``value_range``:

  .. math::
     h^+_t = \frac{1}{|P^+|}\sum_{P^+} s_{t}(d), \quad
     s_t(d) = \max\Big(0,\ 1 - \frac{|d - b_t|}{\Delta}\Big), \quad
     l = \sum_{t=1}^{\tau} h^+_t \sum_{k=1}^{t} h^-_k,

  and :math:`h^-` likewise (:math:`s_t` is eq. 13's two linear pieces). Distances outside ``value_range``
  are clipped into the end bins (zero gradient there), so choose the range to cover the distances, e.g.
  ``(0, 2)`` for L2-normalised features.

  Args:
    positive_distances: ``[..., P]`` distances of the positive pairs of each list.
    negative_distances: ``[..., N]`` distances of the negative pairs (same leading axes).
    positive_where: optional boolean ``[..., P]`` mask; non-finite distances are masked.
    negative_where: optional boolean ``[..., N]`` mask.
    positive_weights: optional ``[..., P]`` pair weights (the histogram is the weighted, normalised one).
    negative_weights: optional ``[..., N]`` pair weights.
    num_bins: :math:`\tau` (>= 2). The default spacing is :math:`\Delta = 0.01` over ``(0, 2)``.
    value_range: ``(low, high)`` of the bin centres.
    reduce_fn: reduces the per-list losses over the lists that have a positive and a negative pair;
      ``None`` returns the ``[...]`` per-list losses (0 for lists lacking either).

  Returns:
    The loss in :math:`[0, 1]`.

  Raises:
    TypeError: if a mask is not boolean.
    ValueError: if ``num_bins`` < 2, ``value_range`` is empty, the distances are 0-D or do not
      share their leading axes, or a mask or weights do not broadcast to them.

  >>> import jax.numpy as jnp
  >>> histogram_loss(jnp.array([0.2, 0.4]), jnp.array([1.5, 1.8]), num_bins=5)
  Array(0., dtype=float32)
  >>> histogram_loss(jnp.array([1.5]), jnp.array([0.5]), num_bins=5)
  Array(1., dtype=float32)
  """
  if not isinstance(num_bins, int) or num_bins < 2:
    raise ValueError(f"`num_bins` must be an int >= 2, got {num_bins!r}.")
  low, high = value_range
  if not high > low:
    raise ValueError(f"`value_range` must be (low, high) with high > low, got {value_range!r}.")
  pos, pos_mask = _distance_inputs("positive_distances", positive_distances, positive_where,
                                     "positive_where")
  neg, neg_mask = _distance_inputs("negative_distances", negative_distances, negative_where,
                                     "negative_where")
  utils.check_rank_at_least("positive_distances", pos, 1)
  utils.check_rank_at_least("negative_distances", neg, 1)
  if pos.shape[:-1] != neg.shape[:-1]:
    raise ValueError(f"`positive_distances` [..., P] and `negative_distances` [..., N] must share leading "
                     f"axes, got {pos.shape} and {neg.shape}.")
  dtype = jnp.promote_types(pos.dtype, neg.dtype)
  pos, neg = pos.astype(dtype), neg.astype(dtype)
  pos_w = jnp.ones_like(pos) if positive_weights is None else jnp.broadcast_to(
      jnp.asarray(positive_weights, dtype), pos.shape)
  neg_w = jnp.ones_like(neg) if negative_weights is None else jnp.broadcast_to(
      jnp.asarray(negative_weights, dtype), neg.shape)
  values, has_both = _histogram_loss_values(pos, neg, pos_mask, neg_mask, pos_w, neg_w, num_bins,
                                            (float(low), float(high)))
  return utils.reduce_loss(values, reduce_fn, where=has_both)


@functools.partial(jax.jit, static_argnums=(6, 7))
def _histogram_loss_values(pos, neg, pos_mask, neg_mask, pos_w, neg_w, num_bins, value_range):
  """Per-list eq. 14 values and whether each list has both kinds of pairs."""
  hist_pos = _soft_histogram(utils.sanitize(pos, pos_mask), pos_mask, pos_w, num_bins, value_range)
  hist_neg = _soft_histogram(utils.sanitize(neg, neg_mask), neg_mask, neg_w, num_bins, value_range)
  values = jnp.sum(hist_pos * jnp.cumsum(hist_neg, axis=-1), axis=-1)
  has_both = (jnp.sum(jnp.where(pos_mask, pos_w, 0.0), -1) > 0) & (
      jnp.sum(jnp.where(neg_mask, neg_w, 0.0), -1) > 0)
  return values, has_both


# ----------------------------------------------------------------------------------------------------------
# The combined loss (eq. 8).


def _attribute_terms(logits: Array, labels: Array, features: Array, valid: Array, weights: Array,
                     class_mask: Array, margin: Array, *, kind: str, level: str, top_k: int,
                     num_bins: int, histogram_range: Tuple[float, float]) -> dict:
  """CE and CRL sums (and their counts) of one attribute over one batch."""
  log_probs = jax.nn.log_softmax(logits, axis=-1, where=class_mask)
  log_probs = jnp.where(class_mask, log_probs, -jnp.inf)
  ce = -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]
  ce_sum = jnp.sum(jnp.where(valid, weights * ce, 0.0))
  probs = jnp.exp(log_probs)
  if level == "class":
    mined = _class_level_mining_1d(probs, labels, valid, top_k)
  else:
    mined = _instance_level_mining_1d(probs, labels, features, valid, top_k)
  anchor_features = features[:, None, :]
  d_ap = _safe_l2(anchor_features - features[mined.positives])  # [B, K]
  d_an = _safe_l2(anchor_features - features[mined.negatives])  # [B, K]
  pos_mask, neg_mask = mined.positive_mask, mined.negative_mask
  w = weights[:, None]
  out = {"ce_sum": ce_sum}
  if kind == "relative":
    triplet_mask = pos_mask[:, :, None] & neg_mask[:, None, :]
    terms = triplet_margin_loss(d_ap[:, :, None], d_an[:, None, :], margin=margin, where=triplet_mask,
                                weights=w[:, :, None], reduce_fn=None)
    out["sum"] = jnp.sum(terms)
    out["count"] = jnp.sum(triplet_mask).astype(ce_sum.dtype)
  elif kind == "absolute":
    pos_terms = contrastive_loss(d_ap, True, margin=margin, where=pos_mask, weights=w, reduce_fn=None)
    neg_terms = contrastive_loss(d_an, False, margin=margin, where=neg_mask, weights=w, reduce_fn=None)
    out["pos_sum"], out["neg_sum"] = jnp.sum(pos_terms), jnp.sum(neg_terms)
    out["pos_count"] = jnp.sum(pos_mask).astype(ce_sum.dtype)
    out["neg_count"] = jnp.sum(neg_mask).astype(ce_sum.dtype)
  else:
    flat = lambda a: jnp.reshape(a, (-1,))
    ww = jnp.broadcast_to(w, d_ap.shape)
    out["sum"] = histogram_loss(flat(d_ap), flat(d_an), positive_where=flat(pos_mask),
                                negative_where=flat(neg_mask), positive_weights=flat(ww),
                                negative_weights=flat(ww), num_bins=num_bins,
                                value_range=histogram_range, reduce_fn=None)
    out["count"] = (jnp.any(pos_mask) & jnp.any(neg_mask)).astype(ce_sum.dtype)
  return out


def _crl_one_batch(logits, labels, features, valid, weights, class_masks, margins, regularizer_weight,
                   **options):
  """Eq. 8 for one batch ``[B, A, ...]``: returns (loss, whether any sample is valid)."""
  per_attribute = jax.vmap(
      lambda lo, la, f, v, w, cm, m: _attribute_terms(lo, la, f, v, w, cm, m, **options))(
          jnp.moveaxis(logits, 1, 0), jnp.moveaxis(labels, 1, 0), jnp.moveaxis(features, 1, 0),
          jnp.moveaxis(valid, 1, 0), jnp.moveaxis(weights, 1, 0), class_masks, margins)
  sample_valid = jnp.any(valid, axis=-1)
  n_bs = jnp.sum(sample_valid).astype(logits.dtype)
  # Eq. 2: sum over attributes, mean over the images of the batch.
  l_ce = utils.safe_divide(jnp.sum(per_attribute["ce_sum"]), n_bs)
  kind = options["kind"]
  if kind == "relative":
    # Eq. 9: one mean over all triplets of all anchors and attributes.
    l_crl = utils.safe_divide(jnp.sum(per_attribute["sum"]), jnp.sum(per_attribute["count"]))
  elif kind == "absolute":
    # Eq. 11: positive and negative pair sets averaged separately (the 0.5 is in contrastive_loss).
    l_crl = (utils.safe_divide(jnp.sum(per_attribute["pos_sum"]), jnp.sum(per_attribute["pos_count"]))
             + utils.safe_divide(jnp.sum(per_attribute["neg_sum"]), jnp.sum(per_attribute["neg_count"])))
  else:
    # Eq. 14 per attribute (separate feature spaces), averaged over the attributes that have pairs.
    l_crl = utils.safe_divide(jnp.sum(per_attribute["sum"]), jnp.sum(per_attribute["count"]))
  return l_ce + regularizer_weight * l_crl, jnp.any(sample_valid)


@functools.partial(jax.jit, static_argnames=("num_classes", "margins", "kind", "level", "top_k", "num_bins",
                                             "histogram_range"))
def _crl_batches(logits, labels, features, where, weights, regularizer_weight, *, num_classes, margins,
                 kind, level, top_k, num_bins, histogram_range):
  """Per-batch eq. 8 values ``[...]`` and batch validity; jitted so that eager calls compile once."""
  max_classes = logits.shape[-1]
  dtype = _compute_dtype(logits, features)
  logits, features = logits.astype(dtype), features.astype(dtype)
  class_masks = jnp.arange(max_classes)[None, :] < jnp.asarray(num_classes)[:, None]  # [A, C]
  valid = (labels >= 0) & (labels < jnp.asarray(num_classes))
  valid = valid & jnp.all(jnp.isfinite(logits) | ~class_masks, axis=-1)
  valid = valid & jnp.all(jnp.isfinite(features), axis=-1)

  def per_label(name, x):
    x = jnp.asarray(x)
    if x.shape == labels.shape[:-1]:
      x = x[..., None]
    try:
      return jnp.broadcast_to(x, labels.shape)
    except ValueError:
      raise ValueError(f"`{name}` must be [..., B] or [..., B, A] for labels {labels.shape}, got "
                       f"{x.shape}.") from None

  if where is not None:
    valid = valid & per_label("where", where)
  weights = jnp.ones(labels.shape, dtype) if weights is None else per_label("weights", weights).astype(dtype)
  labels = jnp.where(valid, labels, 0)
  logits = jnp.where(valid[..., None] & class_masks, logits, jnp.zeros_like(logits))
  features = jnp.where(valid[..., None], features, jnp.zeros_like(features))
  # Clipped (utils.clip_magnitude): no log-softmax, feature difference or squared distance overflows.
  logits, features = utils.clip_magnitude(logits), utils.clip_magnitude(features)

  options = dict(kind=kind, level=level, top_k=top_k, num_bins=num_bins, histogram_range=histogram_range)
  fn = lambda lo, la, f, v, w: _crl_one_batch(lo, la, f, v, w, class_masks, jnp.asarray(margins, dtype),
                                              regularizer_weight.astype(dtype), **options)
  return _batched(fn, (3, 2, 3, 2, 2), logits, labels, features, valid, weights)


def class_rectification_loss(logits: Array, labels: Array, *, features: Array,
                             where: Optional[Array] = None, weights: Optional[Array] = None,
                             reduce_fn: ReduceFn = jnp.mean, kind: str = "relative",
                             level: str = "class", top_k: int = 5,
                             margin: Union[None, float, Sequence[float]] = None,
                             num_classes: Union[None, int, Sequence[int]] = None,
                             regularizer_weight: float = 1.0, num_bins: int = 201,
                             histogram_range: Tuple[float, float] = (0.0, 2.0)) -> Array:
  r"""Cross-entropy plus the Class Rectification Loss regulariser (eq. 8 of the CRL paper).

  From "Class Rectification Hard Mining for Imbalanced Deep Learning" (Dong, Gong, Zhu, ICCV 2017):

  .. math:: l_{bln} = l_{crl} + l_{ce}, \qquad
     l_{ce} = -\frac{1}{n_{bs}}\sum_{i=1}^{n_{bs}}\sum_{j=1}^{n_{attr}} \log p(y_{i,j} = a_{i,j} \mid
     \mathbf{x}_{i,j})

  where, per attribute :math:`j`, the minority classes of the batch are profiled (eq. 3,
  :func:`minority_classes`), every valid sample of a minority class is an anchor, its top-K hard positives
  and negatives are mined at the class level (eq. 4-5, by the softmax score of the class) or at the instance
  level (eq. 6-7, by L2 feature distance among misclassified positives and all negatives), and
  :math:`l_{crl}` is, with :math:`d` the L2 distance between the features :math:`\mathbf{x}_{\cdot,j}`:

  * ``kind="relative"`` (eq. 9): :math:`\frac{1}{|T|}\sum_T \max(0, m_j + d(\mathbf{x}_a, \mathbf{x}_p) -
    d(\mathbf{x}_a, \mathbf{x}_n))` over the (at most :math:`K^2` per anchor) triplets of all anchors and
    attributes, with :math:`m_j = 2\pi / |Z_j|` (eq. 10) unless ``margin`` is given;
  * ``kind="absolute"`` (eq. 11): :math:`\frac12\big(\frac{1}{|P^+|}\sum_{P^+} d^2 + \frac{1}{|P^-|}
    \sum_{P^-}\max(m_{apc} - d, 0)^2\big)` with :math:`m_{apc} = 1` unless ``margin`` is given;
  * ``kind="distribution"`` (eq. 12-14): :func:`histogram_loss` of the positive and negative pair distances,
    computed per attribute and averaged over the attributes that have both kinds of pairs.

  A batch without any minority class (or without any mined pair) has :math:`l_{crl} = 0`; the
  cross-entropy still counts. The paper does not give K or the histogram bins: ``top_k=5`` and 201 bins
  over ``(0, 2)`` (:math:`\Delta = 0.01`, as Ustinova & Lempitsky) are this library's defaults. Unlike the
  rest of :mod:`ranking_jax.losses` this loss needs features, so its inputs are not ``(scores, labels)``
  lists; the batch axis ``B`` plays the role of the list.

  Args:
    logits: ``[..., B, A, C]`` class logits of the ``A`` attributes; ``C`` is the largest :math:`|Z_j|`
      (binary attributes use ``C = 2``, i.e. two softmax logits, as eq. 1). Classes ``>= num_classes[j]``
      are excluded from attribute ``j``'s softmax.
    labels: integer ``[..., B, A]`` attribute values :math:`a_{i,j}`; values outside
      ``[0, num_classes[j])`` (e.g. ``-1`` for unlabelled) are masked.
    features: ``[..., B, A, D]`` the per-attribute feature vectors :math:`\mathbf{x}_{i,j}`.
    where: optional boolean ``[..., B]`` (per image) or ``[..., B, A]`` (per label) mask. Labels whose
      logits (first ``num_classes[j]``) or features are non-finite are masked as well.
    weights: optional ``[..., B]`` or ``[..., B, A]`` weights multiplying each label's cross-entropy term
      and the CRL terms anchored at it (normalisers stay counts; histograms are weight-normalised).
    reduce_fn: reduces the per-batch losses over the batches with a valid sample; ``None`` returns the
      ``[...]`` per-batch losses (a scalar without leading axes).
    kind: ``"relative"`` (paper default), ``"absolute"`` or ``"distribution"``.
    level: ``"class"`` or ``"instance"`` hard mining.
    top_k: K, the hard positives and hard negatives per anchor.
    margin: ``None`` for the paper's margins, a float, or one float per attribute. Not used by
      ``"distribution"`` (must be ``None``).
    num_classes: :math:`|Z_j|`: ``None`` (= ``C``), an int, or one int per attribute (static).
    regularizer_weight: multiplies :math:`l_{crl}`. Eq. 8 adds the two terms with equal weight (1); the
      paper defines no imbalance-dependent weight, so any other balance is the user's choice.
    num_bins: histogram bins :math:`\tau` for ``"distribution"``.
    histogram_range: ``(low, high)`` of the histogram bins for ``"distribution"``.

  Returns:
    The loss (float32, or float64 for float64 inputs); 0 for a fully masked batch.

  Raises:
    TypeError: if ``labels`` is not an integer array or ``where`` is not boolean.
    ValueError: on an unknown ``kind``/``level``, a bad ``top_k``, ``num_classes`` or
      ``margin``, or shapes that do not match.

  >>> import jax.numpy as jnp
  >>> labels = jnp.array([0, 0, 0, 0, 0, 0, 1, 1])[:, None]  # [B=8, A=1]: class 1 is the minority
  >>> logits = jnp.zeros((8, 1, 2))  # p = 1/2 everywhere: CE = log 2, every sample predicted as class 0
  >>> features = jnp.array([0., 1., 2., 3., 4., 5., 2.5, 4.]).reshape(8, 1, 1)
  >>> # Anchors 6 and 7 are each other's hard positive (d = 1.5); the closest negatives give the
  >>> # triplet terms 2, 2 (anchor 6) and 2.5, 1.5 (anchor 7): CRL = 2.
  >>> class_rectification_loss(logits, labels, features=features, level="instance", top_k=2,
  ...                          margin=1.0)
  Array(2.6931472, dtype=float32)
  """
  if kind not in _KINDS:
    raise ValueError(f"`kind` must be one of {_KINDS}, got {kind!r}.")
  if level not in _LEVELS:
    raise ValueError(f"`level` must be one of {_LEVELS}, got {level!r}.")
  _check_top_k(top_k)
  logits, labels, features = jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(features)
  _check_int("labels", labels)
  _check_bool("where", where)
  utils.check_rank_at_least("logits", logits, 3)
  if labels.shape != logits.shape[:-1]:
    raise ValueError(f"`labels` must be [..., B, A] matching `logits` [..., B, A, C]; got {labels.shape} "
                     f"and {logits.shape}.")
  if features.ndim != logits.ndim or features.shape[:-1] != labels.shape:
    raise ValueError(f"`features` must be [..., B, A, D] matching `labels` [..., B, A]; got "
                     f"{features.shape} and {labels.shape}.")
  num_attributes, max_classes = logits.shape[-2], logits.shape[-1]
  if max_classes == 0 and num_classes is None:
    # No class at all: every label is out of range, i.e. the batch is fully masked.
    return utils.reduce_loss(jnp.zeros(labels.shape[:-2], _compute_dtype(logits, features)), reduce_fn,
                             where=jnp.zeros(labels.shape[:-2], bool))
  if num_classes is None:
    num_classes = (max_classes,) * num_attributes
  elif isinstance(num_classes, int):
    num_classes = (num_classes,) * num_attributes
  num_classes = tuple(int(c) for c in num_classes)
  if len(num_classes) != num_attributes or any(c < 1 or c > max_classes for c in num_classes):
    raise ValueError(f"`num_classes` must be an int or {num_attributes} ints in [1, {max_classes}], got "
                     f"{num_classes!r}.")
  if kind == "distribution":
    if margin is not None:
      raise ValueError("`margin` is not used by kind='distribution'; leave it None.")
    margins = (0.0,) * num_attributes
  elif margin is None:
    margins = tuple(2 * math.pi / c for c in num_classes) if kind == "relative" else (1.0,) * num_attributes
  elif isinstance(margin, (int, float)):
    margins = (float(margin),) * num_attributes
  else:
    margins = tuple(float(m) for m in margin)
    if len(margins) != num_attributes:
      raise ValueError(f"`margin` must be a float or {num_attributes} floats, got {margin!r}.")

  values, batch_valid = _crl_batches(
      logits, labels, features, where, weights, jnp.asarray(regularizer_weight), num_classes=num_classes,
      margins=margins, kind=kind, level=level, top_k=top_k, num_bins=num_bins,
      histogram_range=tuple(float(x) for x in histogram_range))
  return utils.reduce_loss(values, reduce_fn, where=batch_valid)
