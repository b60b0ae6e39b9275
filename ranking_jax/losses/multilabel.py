"""Multilabel image-annotation losses: softmax, pairwise ranking and WARP.

From *Deep Convolutional Ranking for Multilabel Image Annotation* (Gong, Jia, Leung, Toshev, Ioffe).
Each list is one image: ``scores[..., c]`` are the class scores :math:`f_j(x_i)` and ``labels[..., c]`` are
multi-hot (a label > 0 marks a positive class, any other valid class is a negative). ``where`` masks
classes out; non-finite scores or labels count as masked. An image with no positive (or, for the ranking
losses, no negative) class has nothing to rank: its loss is 0 with zero gradients and it is left out of
``reduce_fn``, so a batch without any such image reduces to 0, as does a zero-size class or image axis.
Scores of any real dtype are computed in float32 (float64 for float64 scores); finite scores beyond
:func:`ranking_jax.utils.magnitude_bound` (2**48 in float32) count as that bound, with zero gradient, so
that no hinge or log-softmax overflows.

The text of the paper is short; where it is silent we follow Weston, Bengio and Usunier, *WSABIE: Scaling
Up to Large Vocabulary Image Annotation* (IJCAI 2011), which it cites for WARP; the docstrings say where.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax import utils
from ranking_jax.losses import pairs

Array = jax.Array


class _Prepared(NamedTuple):
  scores: Array      # accumulation dtype, 0 at masked classes
  valid: Array       # bool [..., c]
  positive: Array    # bool [..., c]
  negative: Array    # bool [..., c]
  weights: Optional[Array]  # accumulation dtype [..., c] or None
  dtype: jnp.dtype


def _prepare(scores: Array, labels: Array, where: Optional[Array],
             weights: Optional[Array]) -> _Prepared:
  scores = jnp.asarray(scores)
  labels = jnp.asarray(labels)
  utils.check_rank_at_least("scores", scores, 1)
  utils.check_same_shape("scores", scores, "labels", labels)
  if weights is not None:
    try:
      weights = jnp.broadcast_to(jnp.asarray(weights), scores.shape)
    except ValueError:
      raise ValueError(f"`weights` must broadcast to the shape of `scores` {scores.shape}, got "
                       f"{jnp.shape(weights)}.") from None
  dtype = utils.float_dtype(scores.dtype)
  valid = utils.valid_mask(scores, where)
  if jnp.issubdtype(labels.dtype, jnp.inexact):
    valid = valid & jnp.isfinite(labels)
  positive = valid & (labels > 0)
  negative = valid & ~(labels > 0)
  # Clipped (utils.clip_magnitude): no hinge, log-softmax or 0 * hinge of finite scores overflows.
  safe_scores = utils.clip_magnitude(utils.sanitize(scores.astype(dtype), valid))
  if weights is not None:
    weights = utils.sanitize(weights.astype(dtype), valid)
  return _Prepared(safe_scores, valid, positive, negative, weights, dtype)


def _harmonic_numbers(num_classes: int, dtype) -> Array:
  """``H[r] = sum_{k=1}^r 1/k`` for ``r = 0..num_classes`` (``H[0] = 0``): WARP's L(r) with alpha_k = 1/k."""
  # A static table, summed in float64 on the host.
  table = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, num_classes + 1, dtype=np.float64))])
  return jnp.asarray(table, dtype)


def multilabel_softmax_loss(scores: Array, labels: Array, *, where: Optional[Array] = None,
                            weights: Optional[Array] = None,
                            reduce_fn: Optional[Callable[..., Array]] = jnp.mean) -> Array:
  r"""Softmax cross-entropy with the target spread evenly over the positive classes.

  *Deep Convolutional Ranking for Multilabel Image Annotation*, "Softmax":

  .. math::

     p_{ij} = \frac{\exp f_j(x_i)}{\sum_{k=1}^{c} \exp f_k(x_i)}, \qquad
     J = -\frac{1}{m} \sum_{i=1}^{m} \sum_{j=1}^{c_+} \frac{1}{c_+} \log p_{ij},

  i.e. the cross-entropy against :math:`\bar p_{ij} = 1/c_+` on the :math:`c_+` positive classes of
  image :math:`i`. (The text's rightmost form prints :math:`\frac{1}{c_+ \log p_{ij}}`, a typesetting
  slip for :math:`\frac{1}{c_+}\log p_{ij}`.) The softmax runs over the valid classes only. With
  ``weights`` the term of positive class :math:`j` is multiplied by :math:`w_j`.

  Args:
    scores: class scores ``[..., c]``.
    labels: multi-hot labels ``[..., c]`` (> 0 is positive).
    where: optional boolean mask of valid classes.
    weights: optional per-class weights broadcastable to ``[..., c]``.
    reduce_fn: reduction over images (``jnp.mean`` gives the paper's :math:`1/m`), or ``None``.

  Returns:
    The reduced loss or per-image losses ``[...]``; images without a positive give 0 and are not counted.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``scores`` is 0-D, ``labels`` has another shape, or
      ``where``/``weights`` do not broadcast to it.

  >>> import jax.numpy as jnp
  >>> multilabel_softmax_loss(jnp.zeros(4), jnp.array([1, 0, 1, 0]))  # -log(1/4)
  Array(1.3862944, dtype=float32)
  """
  prep = _prepare(scores, labels, where, weights)
  s, valid = prep.scores, prep.valid
  any_valid = jnp.any(valid, axis=-1, keepdims=True)
  shift = jax.lax.stop_gradient(jnp.max(jnp.where(valid, s, -jnp.inf), axis=-1, keepdims=True,
                                         initial=-jnp.inf))
  shift = jnp.where(any_valid, shift, jnp.zeros_like(shift))
  exp = jnp.where(valid, jnp.exp(s - shift), jnp.zeros_like(s))
  # A list without valid classes would take log(0); give it log(1) (its loss is zeroed below anyway).
  log_norm = jnp.log(jnp.sum(exp, axis=-1, keepdims=True) + (~any_valid).astype(s.dtype)) + shift
  log_prob = s - log_norm
  target = prep.positive.astype(s.dtype)
  if prep.weights is not None:
    target = target * prep.weights
  num_positive = jnp.sum(prep.positive, axis=-1).astype(s.dtype)
  has_positive = num_positive > 0
  cross_entropy = -jnp.sum(jnp.where(prep.positive, target * log_prob, 0.0), axis=-1)
  loss = utils.safe_divide(cross_entropy, num_positive)
  return utils.reduce_loss(loss, reduce_fn, where=has_positive)


def _has_pairs(prep: _Prepared) -> Array:
  return jnp.any(prep.positive, axis=-1) & jnp.any(prep.negative, axis=-1)


def _pair_items(prep: _Prepared) -> dict:
  items = {"s": prep.scores, "pos": prep.positive.astype(prep.dtype),
           "neg": prep.negative.astype(prep.dtype)}
  if prep.weights is not None:
    items["w"] = prep.weights
  return items


def pairwise_ranking_loss(scores: Array, labels: Array, *, where: Optional[Array] = None,
                          weights: Optional[Array] = None,
                          reduce_fn: Optional[Callable[..., Array]] = jnp.mean, margin: float = 1.0,
                          normalize: bool = False, block_size: Optional[int] = None) -> Array:
  r"""Hinge loss over every (positive, negative) class pair of an image.

  *Deep Convolutional Ranking for Multilabel Image Annotation*, "Pairwise Ranking":

  .. math:: J = \sum_{i=1}^{n} \sum_{j=1}^{c_+} \sum_{k=1}^{c_-} \max\big(0,\ 1 - f_j(x_i) + f_k(x_i)\big)

  with the margin 1 configurable. The per-image value is the double sum (the paper's), or its mean over
  the :math:`c_+ c_-` pairs with ``normalize=True``. With ``weights`` a pair is weighted by its positive
  class, :math:`w_j` (as in rax's pairwise losses). Computed blockwise
  (:func:`ranking_jax.losses.pairs.pairwise_row_sums`): no ``[..., c, c]`` array in either pass.

  Args:
    scores: class scores ``[..., c]``.
    labels: multi-hot labels ``[..., c]`` (> 0 is positive).
    where: optional boolean mask of valid classes.
    weights: optional per-class weights broadcastable to ``[..., c]``.
    reduce_fn: reduction over images, or ``None`` for per-image losses.
    margin: the hinge margin (1 in the paper).
    normalize: divide each image's sum by its (weighted) number of pairs.
    block_size: rows per block of the pair computation; ``None`` chooses it from the shape.

  Returns:
    The reduced loss or per-image losses ``[...]``; images without a positive or a negative give 0 and
    are not counted.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``scores`` is 0-D, ``labels`` has another shape, ``where``/``weights``
      do not broadcast to it, or ``block_size`` < 1.

  >>> import jax.numpy as jnp
  >>> scores = jnp.array([2.0, 0.5, 1.0, -1.0])
  >>> labels = jnp.array([1, 1, 0, 0])
  >>> pairwise_ranking_loss(scores, labels)  # (0 + 0) + (1.5 + 0)
  Array(1.5, dtype=float32)
  """
  prep = _prepare(scores, labels, where, weights)

  def pair_fn(row, col):
    hinge = jax.nn.relu(margin - row["s"] + col["s"])
    pair_weight = row["pos"] * col["neg"]
    if "w" in row:
      pair_weight = pair_weight * row["w"]
    return pair_weight * hinge

  total = pairs.pairwise_sum(pair_fn, _pair_items(prep), where=prep.valid, block_size=block_size)
  has_pairs = _has_pairs(prep)
  if normalize:
    positive_weight = prep.positive.astype(prep.dtype)
    if prep.weights is not None:
      positive_weight = positive_weight * prep.weights
    num_pairs = (jnp.sum(positive_weight, axis=-1) *
                 jnp.sum(prep.negative, axis=-1).astype(prep.dtype))
    total = utils.safe_divide(total, num_pairs)
  loss = jnp.where(has_pairs, total, jnp.zeros_like(total))
  return utils.reduce_loss(loss, reduce_fn, where=has_pairs)


def _violators_and_hinges(prep: _Prepared, margin: float, block_size: Optional[int]) -> tuple[Array, Array]:
  """Per class ``[..., c]``: how many negatives violate the margin against it (no gradient: it only sets
  the rank weight) and the sum of those hinges, in one blockwise pass over the (positive, negative) pairs."""

  def pair_fn(row, col):
    hinge = jax.nn.relu(margin - row["s"] + col["s"])
    is_pair = row["pos"] * col["neg"]
    return is_pair * (hinge > 0).astype(hinge.dtype), is_pair * hinge

  num_violators, hinge_sum = pairs.pairwise_row_sums(
      pair_fn, _pair_items(prep), where=prep.valid, block_size=block_size)
  return jax.lax.stop_gradient(num_violators), hinge_sum


def _rank_weighted_loss(prep: _Prepared, rank_weight: Array, hinge_sum: Array, counted: Array,
                        reduce_fn: Optional[Callable[..., Array]]) -> Array:
  """WARP's per-image sum over the ``counted`` positives of rank weight x (class weight x) hinge sum,
  0 and left out of the reduction for images without a (positive, negative) pair."""
  per_class = rank_weight * hinge_sum
  if prep.weights is not None:
    per_class = per_class * prep.weights
  total = jnp.sum(jnp.where(counted, per_class, 0.0), axis=-1)
  has_pairs = _has_pairs(prep)
  loss = jnp.where(has_pairs, total, jnp.zeros_like(total))
  return utils.reduce_loss(loss, reduce_fn, where=has_pairs)


def warp_loss_exact(scores: Array, labels: Array, *, where: Optional[Array] = None,
                    weights: Optional[Array] = None,
                    reduce_fn: Optional[Callable[..., Array]] = jnp.mean, margin: float = 1.0,
                    normalize_by_rank: bool = True, block_size: Optional[int] = None) -> Array:
  r"""Deterministic WARP: the rank of each positive class is counted exactly instead of sampled.

  *Deep Convolutional Ranking for Multilabel Image Annotation*, "WARP":

  .. math::

     J = \sum_{i=1}^{n} \sum_{j=1}^{c_+} \sum_{k=1}^{c_-} \frac{L(r_j)}{r_j}\,
       \max\big(0,\ 1 - f_j(x_i) + f_k(x_i)\big), \qquad
     L(r) = \sum_{k=1}^{r} \frac{1}{k},

  where :math:`r_j` is the number of negatives that violate the margin for positive :math:`j` (its
  exact margin rank; :math:`L(0)/0 := 0`). The notes print :math:`L(r_j)` without the :math:`1/r_j`;
  we follow WSABIE, whose per-violator weight :math:`L(r)/r` is what the single-violator estimate of
  :func:`warp_loss_single_violator` (one violator, weight :math:`L(r)`) averages to. ``normalize_by_rank=False`` gives
  the notes' formula literally. ``weights`` weight each positive class. Computed blockwise.

  Args:
    scores: class scores ``[..., c]``.
    labels: multi-hot labels ``[..., c]`` (> 0 is positive).
    where: optional boolean mask of valid classes.
    weights: optional per-class weights broadcastable to ``[..., c]``.
    reduce_fn: reduction over images, or ``None`` for per-image losses.
    margin: the hinge margin (1 in the paper).
    normalize_by_rank: weight violators by :math:`L(r)/r` (WSABIE) or by :math:`L(r)` (the notes).
    block_size: rows per block of the pair computation; ``None`` chooses it from the shape.

  Returns:
    The reduced loss or per-image losses ``[...]``; images without a positive or a negative give 0 and
    are not counted.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``scores`` is 0-D, ``labels`` has another shape, ``where``/``weights`` do
      not broadcast to it, or ``block_size`` < 1.

  >>> import jax.numpy as jnp
  >>> scores = jnp.array([2.0, 0.5, 1.0, 0.0])
  >>> labels = jnp.array([1, 1, 0, 0])
  >>> # class 1 has r = 2 violators with hinges 1.5 and 0.5: L(2) / 2 * 2.0 = 1.5
  >>> warp_loss_exact(scores, labels)
  Array(1.5, dtype=float32)
  """
  prep = _prepare(scores, labels, where, weights)

  num_violators, hinge_sum = _violators_and_hinges(prep, margin, block_size)
  rank = jnp.round(num_violators).astype(jnp.int32)
  rank_weight = _harmonic_numbers(scores.shape[-1], prep.dtype)[rank]
  if normalize_by_rank:
    rank_weight = utils.safe_divide(rank_weight, rank.astype(prep.dtype))
  return _rank_weighted_loss(prep, rank_weight, hinge_sum, prep.positive, reduce_fn)


def warp_loss(scores: Array, labels: Array, *, key: Optional[Array],
              where: Optional[Array] = None, weights: Optional[Array] = None,
              reduce_fn: Optional[Callable[..., Array]] = jnp.mean, num_trials: Optional[int] = None,
              margin: float = 1.0, block_size: Optional[int] = None) -> Array:
  r"""WARP as the paper writes it: every negative's hinge, weighted by a sampled rank estimate.

  *Deep Convolutional Ranking for Multilabel Image Annotation*, "WARP" (Section 2.2.3):

  .. math::

     J = \sum_{i=1}^{n} \sum_{j=1}^{c_+} L(r_j) \sum_{k=1}^{c_-} \max\big(0,\ 1 - f_j(x_i) + f_k(x_i)\big),
     \qquad L(r) = \sum_{q=1}^{r} \frac{1}{q}, \qquad r_j = \left\lfloor \frac{c - 1}{s_j} \right\rfloor,

  the rank :math:`r_j` of positive :math:`j` estimated as in WSABIE: negatives are drawn uniformly, with
  replacement, until one violates the margin (:math:`1 - f_j + f_k > 0`), :math:`s_j` being the number of
  draws and :math:`c` the number of valid classes; the draws stop at a fixed budget
  ``min(num_trials, c - 1)`` (WSABIE's :math:`Y - 1` by default). If no violator is found within the
  budget, the positive contributes 0 (WSABIE makes no update). The same form (all negatives, weight
  :math:`L(r_j)` from the sampled rank) is in the public rml-cnn reimplementation (``warp.cc``). The
  one-violator-per-positive form of WSABIE / LightFM is :func:`warp_loss_single_violator`; the exact-rank
  form is :func:`warp_loss_exact`.

  **Sampling, only for the positives.** The loss needs only the draw count :math:`s_j`, not which
  violator ended the search. With :math:`v_j` of the :math:`c_-` negatives violating, each draw violates
  independently with probability :math:`p_j = v_j / c_-`, so :math:`s_j` is geometric:
  it is drawn directly, by inversion of one uniform per positive,
  :math:`s_j = 1 + \lfloor \log u / \log(1 - p_j) \rfloor` (the same distribution as drawing negatives one
  at a time), and :math:`v_j` and the hinge sums come from one blockwise pass over the (positive,
  negative) pairs (:func:`ranking_jax.losses.pairs.pairwise_row_sums`, as :func:`warp_loss_exact`). Cost:
  the exact WARP's plus ``O(batch * c)``. The rank estimate is a constant for the gradient, which flows
  through every hinge.

  Args:
    scores: class scores ``[..., c]``.
    labels: multi-hot labels ``[..., c]`` (> 0 is positive).
    key: a ``jax.random`` key; the result is deterministic given it. Under ``jax.vmap`` pass a split key
      per list, or every list reuses the same draws. ``None`` computes the deterministic counterpart,
      :func:`warp_loss_exact` with ``normalize_by_rank=False`` (:math:`L` of the exact margin rank).
    where: optional boolean mask of valid classes.
    weights: optional per-class weights broadcastable to ``[..., c]``, weighting each positive class.
    reduce_fn: reduction over images, or ``None`` for per-image losses.
    num_trials: the trial budget (static); ``None`` uses ``c - 1``, WSABIE's budget.
    margin: the hinge margin (1 in the paper).
    block_size: rows per block of the pair computation; ``None`` chooses it from the shape.

  Returns:
    The reduced loss or per-image losses ``[...]``; images without a positive or a negative give 0 and
    are not counted.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``scores`` is 0-D, ``labels`` has another shape, ``where``/``weights`` do not
      broadcast to it, ``num_trials`` is not a positive int, or ``block_size`` < 1.

  >>> import jax, jax.numpy as jnp
  >>> scores = jnp.array([-5.0, 1.0, 1.0, 2.0])
  >>> labels = jnp.array([1, 0, 0, 1])
  >>> # class 0: every draw violates, s = 1, r = 3, L(3) = 11/6, hinges 7 + 7; class 3: no violator
  >>> float(warp_loss(scores, labels, key=jax.random.key(0)))  # doctest: +ELLIPSIS
  25.66...
  """
  if key is None:
    return warp_loss_exact(scores, labels, where=where, weights=weights, reduce_fn=reduce_fn,
                           margin=margin, normalize_by_rank=False, block_size=block_size)
  if not isinstance(num_trials, (int, type(None))) or isinstance(num_trials, bool) or (
      num_trials is not None and num_trials < 1):
    raise ValueError(f"`num_trials` must be a positive int, got {num_trials!r}.")
  prep = _prepare(scores, labels, where, weights)
  num_classes = prep.scores.shape[-1]
  if num_trials is None:
    num_trials = max(num_classes - 1, 1)

  num_violators, hinge_sum = _violators_and_hinges(prep, margin, block_size)
  num_negative = jnp.sum(prep.negative, axis=-1, keepdims=True).astype(prep.dtype)
  num_valid = jnp.sum(prep.valid, axis=-1, keepdims=True)
  budget = jnp.minimum(num_trials, num_valid - 1)
  # p = v / c-: the chance that one uniform draw among the negatives violates the margin.
  p = jnp.clip(utils.safe_divide(jnp.round(num_violators), num_negative), 0.0, 1.0)
  # s = the draw of the first violator, geometric(p) on {1, 2, ...}: inversion of u in (0, 1].
  u = 1.0 - jax.random.uniform(key, prep.scores.shape, dtype=prep.dtype)
  log_stay = jnp.log1p(-jnp.where(p < 1.0, p, 0.0))  # log(1 - p) < 0 for 0 < p < 1
  failures = jnp.where(p >= 1.0, 0.0,
                       jnp.where(p > 0.0, jnp.floor(jnp.log(u) / jnp.where(p > 0.0, log_stay, -1.0)),
                                 jnp.inf))
  num_draws = 1.0 + jnp.minimum(failures, budget.astype(prep.dtype))  # budget + 1 = not found
  found = prep.positive & (num_draws <= budget) & (p > 0.0)
  num_draws = jnp.where(found, num_draws, 1.0).astype(jnp.int32)
  rank = jnp.maximum(num_valid - 1, 0) // num_draws
  rank_weight = _harmonic_numbers(num_classes, prep.dtype)[jnp.clip(rank, 0, num_classes)]
  return _rank_weighted_loss(prep, rank_weight, hinge_sum, found, reduce_fn)


def warp_loss_single_violator(scores: Array, labels: Array, *, key: Optional[Array],
              where: Optional[Array] = None, weights: Optional[Array] = None,
              reduce_fn: Optional[Callable[..., Array]] = jnp.mean, num_trials: Optional[int] = None,
              margin: float = 1.0, trials_per_step: Optional[int] = None,
              block_size: Optional[int] = None) -> Array:
  r"""WARP in the WSABIE / LightFM form: one sampled violator per positive (jittable, fixed trial budget).

  Not the notes' loss (that is :func:`warp_loss`, which sums the hinges of **all** negatives): this is the
  stochastic-gradient form of Weston et al.'s WSABIE, where each positive pushes only the one violating
  negative that the rank estimate found. For each positive class :math:`j` of an image, negatives
  :math:`k` are drawn uniformly (with replacement, as in WSABIE) until one violates the margin,
  :math:`1 - f_j + f_k > 0`; with :math:`s` the number of draws,

  .. math::

     r_j = \left\lfloor \frac{c - 1}{s} \right\rfloor, \qquad
     L(r) = \sum_{k=1}^{r} \frac{1}{k}, \qquad
     J_i = \sum_{j=1}^{c_+} L(r_j)\, \max\big(0,\ 1 - f_j(x_i) + f_{k_j}(x_i)\big),

  :math:`k_j` being the violating negative found and :math:`c` the number of valid classes. If no
  violator is found within the budget the positive contributes 0 (WSABIE). The budget is
  ``min(num_trials, c - 1)`` draws. The draws are vectorised: ``trials_per_step`` draws for every
  class at once, keeping the first violator, and further steps (a ``lax.while_loop``) only while some
  positive has not found one, so memory is ``O(batch * c * trials_per_step)``. The random stream depends
  on ``trials_per_step`` (chosen from the shape when ``None``), so fix it to reproduce draws across
  shapes. The estimate :math:`r_j` and the sampling are constants for the gradient, which flows through
  :math:`f_j` and :math:`f_{k_j}`.

  The paper is silent on whether :math:`c - 1` should count the other positives; we follow its formula
  (WSABIE's :math:`(Y - 1)/N` with :math:`Y` labels), which overestimates the rank among the
  :math:`c_-` negatives by :math:`(c - 1)/c_-` on average.

  Args:
    scores: class scores ``[..., c]``.
    labels: multi-hot labels ``[..., c]`` (> 0 is positive).
    key: a ``jax.random`` key; the result is deterministic given it. Under ``jax.vmap`` pass a split key
      per list, or every list reuses the same draws. ``None`` computes :func:`warp_loss_exact` (with
      ``block_size``) instead.
    where: optional boolean mask of valid classes.
    weights: optional per-class weights broadcastable to ``[..., c]``, weighting each positive class.
    reduce_fn: reduction over images, or ``None`` for per-image losses.
    num_trials: the trial budget (static); ``None`` uses ``c - 1``, WSABIE's budget.
    margin: the hinge margin (1 in the paper).
    trials_per_step: draws per class per sampling step (static); ``None`` takes as many as fit in about
      :data:`ranking_jax.losses.pairs.DEFAULT_BLOCK_ELEMENTS` elements, all of them for small ``c``.
    block_size: only used when ``key`` is ``None``.

  Returns:
    The reduced loss or per-image losses ``[...]``; images without a positive or a negative give 0 and
    are not counted.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``scores`` is 0-D, ``labels`` has another shape, ``where``/``weights`` do not
      broadcast to it, or ``num_trials``/``trials_per_step`` is not a positive int.

  >>> import jax, jax.numpy as jnp
  >>> scores = jnp.array([2.0, 0.5, 1.0, 0.0])
  >>> labels = jnp.array([1, 1, 0, 0])
  >>> # class 0 never violates; for class 1 every draw violates: s = 1, r = 3, L(3) = 11/6
  >>> loss = warp_loss_single_violator(scores, labels, key=jax.random.key(0))
  >>> bool(jnp.isclose(loss, 11 / 6 * 1.5) | jnp.isclose(loss, 11 / 6 * 0.5))
  True
  """
  if key is None:
    return warp_loss_exact(scores, labels, where=where, weights=weights, reduce_fn=reduce_fn,
                           margin=margin, block_size=block_size)
  prep = _prepare(scores, labels, where, weights)
  num_classes = prep.scores.shape[-1]
  if num_trials is None:
    num_trials = max(num_classes - 1, 1)
  if not isinstance(num_trials, int) or isinstance(num_trials, bool) or num_trials < 1:
    raise ValueError(f"`num_trials` must be a positive int, got {num_trials!r}.")
  if trials_per_step is not None and (not isinstance(trials_per_step, int) or trials_per_step < 1):
    raise ValueError(f"`trials_per_step` must be a positive int, got {trials_per_step!r}.")
  s = prep.scores
  batch_shape = s.shape[:-1]
  if trials_per_step is None:
    trials_per_step = pairs.DEFAULT_BLOCK_ELEMENTS // max(math.prod(batch_shape) * num_classes, 1)
  trials_per_step = max(1, min(trials_per_step, num_trials))
  num_steps = -(-num_trials // trials_per_step)
  num_negative = jnp.sum(prep.negative, axis=-1)
  num_valid = jnp.sum(prep.valid, axis=-1)
  budget = jnp.minimum(num_trials, num_valid - 1)[..., None, None]
  # Class indices of the negatives first (in index order), then everything else.
  negative_order = jnp.argsort(~prep.negative, axis=-1, stable=True)
  fixed_scores = jax.lax.stop_gradient(s)  # sampling only selects; the gradient flows below
  # Positives that no negative violates can never find one: don't keep drawing for them.
  top_negative = jnp.max(jnp.where(prep.negative, fixed_scores, -jnp.inf), axis=-1, keepdims=True,
                         initial=-jnp.inf)
  searching = prep.positive & (margin - fixed_scores + top_negative > 0)

  def sample_step(step, state):
    """Draws trials_per_step negatives per class; keeps the first violator of classes still searching."""
    found, num_draws, violator = state
    uniform = jax.random.uniform(jax.random.fold_in(key, step),
                                 batch_shape + (num_classes, trials_per_step))
    draw = jnp.floor(uniform * num_negative[..., None, None].astype(uniform.dtype)).astype(jnp.int32)
    draw = jnp.clip(draw, 0, jnp.maximum(num_negative - 1, 0)[..., None, None])
    drawn_class = jnp.take_along_axis(
        negative_order, draw.reshape(batch_shape + (num_classes * trials_per_step,)), axis=-1)
    drawn_class = drawn_class.reshape(batch_shape + (num_classes, trials_per_step))
    drawn_score = jnp.take_along_axis(fixed_scores[..., None, :], drawn_class, axis=-1)
    trial = step * trials_per_step + jnp.arange(1, trials_per_step + 1)
    violates = (margin - fixed_scores[..., :, None] + drawn_score > 0) & (trial <= budget)
    first = jnp.argmax(violates, axis=-1)
    new = jnp.any(violates, axis=-1) & searching & ~found
    first_class = jnp.take_along_axis(drawn_class, first[..., None], axis=-1)[..., 0]
    num_draws = jnp.where(new, (step * trials_per_step + first + 1).astype(jnp.int32), num_draws)
    violator = jnp.where(new, first_class.astype(jnp.int32), violator)
    return found | new, num_draws, violator

  state = (jnp.zeros(s.shape, bool), jnp.ones(s.shape, jnp.int32), jnp.zeros(s.shape, jnp.int32))
  if num_steps == 1:
    found, num_draws, violator = sample_step(0, state)
  else:
    # Stop drawing once every positive has its violator: usually long before the budget is spent.
    def keep_sampling(carry):
      step, (found, _, _) = carry
      return (step < num_steps) & jnp.any(searching & ~found)

    def next_step(carry):
      step, state = carry
      return step + 1, sample_step(step, state)

    _, (found, num_draws, violator) = jax.lax.while_loop(keep_sampling, next_step,
                                                         (jnp.int32(0), state))
  violator_score = jnp.take_along_axis(s, violator, axis=-1)
  rank = jnp.maximum(num_valid[..., None] - 1, 0) // num_draws
  rank_weight = _harmonic_numbers(num_classes, prep.dtype)[jnp.clip(rank, 0, num_classes)]
  per_class = rank_weight * jax.nn.relu(margin - s + violator_score)
  if prep.weights is not None:
    per_class = per_class * prep.weights
  total = jnp.sum(jnp.where(prep.positive & found, per_class, 0.0), axis=-1)
  has_pairs = _has_pairs(prep)
  loss = jnp.where(has_pairs, total, jnp.zeros_like(total))
  return utils.reduce_loss(loss, reduce_fn, where=has_pairs)
