"""SoDeep's rank-based losses: Spearman, mean average precision and recall on a sorter's ranks.

From *SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge, Chevallier, Pérez, Cord,
CVPR 2019), eq. 2-10. Each loss turns scores into ranks with a differentiable sorter ``rank_fn`` and
applies a rank-based objective to them. ``rank_fn`` is any :class:`ranking_jax.types.RankFn`
(``rank_fn(scores, *, where=None)``, 1-based, rank 1 = highest score, masked items rank 0): the
handcrafted :func:`ranking_jax.ranks.sigmoid_ranks` (the default), :func:`ranking_jax.ranks.soft_ranks`,
a learned SoDeep sorter, or :func:`ranking_jax.ranks.hard_ranks` to evaluate the exact metric (its
gradient is zero).

Conventions (see :mod:`ranking_jax.utils`): lists on the last axis, any leading batch axes; ``where``
masks items; non-finite scores or labels count as masked; ``weights`` scale per-item terms;
``reduce_fn`` reduces the per-list losses over the lists that carry information (``None`` returns the
per-list values). Inputs may be boolean, integer or floating; computations run in float32 (float64
for float64 inputs), also for bfloat16 inputs. Zero-size lists or batches reduce to 0.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from ranking_jax import ranks
from ranking_jax import types
from ranking_jax import utils

Array = jax.Array

_MAP_FORMS = ("rank_sum", "normalized_rank_sum", "average_precision")


def _check_lists(name_scores: str, scores: Array, name_labels: str, labels: Array) -> None:
  utils.check_rank_at_least(name_scores, scores, 1)
  utils.check_same_shape(name_scores, scores, name_labels, labels)


def _check_rank_fn(rank_fn: types.RankFn) -> None:
  if not callable(rank_fn):
    raise TypeError(f"`rank_fn` must be callable as rank_fn(scores, *, where=None), got {rank_fn!r}.")


def _apply_rank_fn(rank_fn: types.RankFn, scores: Array, mask: Array) -> Array:
  """Calls ``rank_fn`` on sanitized scores and zeroes masked ranks (a custom sorter may not)."""
  predicted = jnp.asarray(rank_fn(scores, where=mask))
  if predicted.shape != scores.shape:
    raise ValueError(f"`rank_fn` must return ranks of the scores' shape {scores.shape}, got "
                     f"{predicted.shape}.")
  predicted = predicted.astype(scores.dtype)
  return jnp.where(mask, predicted, jnp.zeros_like(predicted))


def _apply_weights(values: Array, weights: Optional[Array]) -> Array:
  if weights is None:
    return values
  return values * jnp.broadcast_to(utils.as_float(weights), values.shape).astype(values.dtype)


def spearman_loss(scores: Array, labels: Array, *, rank_fn: types.RankFn = ranks.sigmoid_ranks,
                  where: Optional[Array] = None, weights: Optional[Array] = None,
                  reduce_fn: utils.ReduceFn = jnp.mean) -> Array:
  r"""SoDeep's Spearman loss (eq. 4): squared distance between the sorter's ranks and the true ranks.

  From *SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019).
  For a list of :math:`n` valid items with scores :math:`\mathbf{y}` and labels :math:`\mathbf{y}^*`,
  with :math:`f` the sorter ``rank_fn`` and :math:`\mathbf{rk}` the exact ranks of the labels,

  .. math::

     \mathcal{L}_{SPR}(\mathbf{y}, \mathbf{y}^*) = \frac{6}{n(n^2 - 1)}
     \sum_{i=1}^{n} w_i \big(f(\mathbf{y})_i - \mathbf{rk}(\mathbf{y}^*)_i\big)^2 .

  Eq. 4 is the unnormalised sum of squares; the factor :math:`6 / (n(n^2-1))` is the one of eq. 2, so
  that losses of lists of different lengths are comparable. With the exact sorter
  (``rank_fn=hard_ranks``), unit weights and no ties in scores nor labels, the loss equals
  :math:`1 - r_s` (Spearman's :math:`\rho`), ranging over :math:`[0, 2]`.

  Tied labels get the mean of the ranks they span (as in Spearman's :math:`\rho` with ties), which keeps
  the loss independent of the order of the items; eq. 2 is then no longer exactly :math:`1 - \rho`.
  With all labels tied every target rank is :math:`(n+1)/2` and the loss with exact, distinct score
  ranks is :math:`1/2`.

  Args:
    scores: predicted scores ``[..., n]``; lists on the last axis.
    labels: ground-truth values ``[..., n]`` whose order the scores should reproduce (higher = rank 1).
    rank_fn: differentiable sorter following :class:`ranking_jax.types.RankFn`.
    where: optional boolean mask of valid items. Non-finite scores or labels are masked too.
    weights: optional per-item weights multiplying each squared rank error.
    reduce_fn: reduction over the lists with at least two valid items (``None``: per-list losses).

  Returns:
    The reduced loss, or per-list losses of shape ``scores.shape[:-1]``. A list with fewer than two
    valid items has loss 0 and is left out of the reduction; its gradient is zero.

  Raises:
    TypeError: if ``rank_fn`` is not callable or ``where`` is not boolean.
    ValueError: if ``scores`` is 0-D, ``labels`` has another shape, ``where``/``weights`` do not
      broadcast to it, or ``rank_fn`` returns ranks of another shape.

  >>> import jax.numpy as jnp
  >>> from ranking_jax.ranks import hard_ranks
  >>> scores = jnp.array([0.1, 0.4, 0.35, 0.8])
  >>> labels = jnp.array([1.0, 2.0, 3.0, 4.0])
  >>> spearman_loss(scores, labels, rank_fn=hard_ranks)  # rho = 0.8
  Array(0.2, dtype=float32)
  >>> spearman_loss(scores, labels).round(3)  # handcrafted sorter, sharpness 10
  Array(0.084, dtype=float32)
  """
  _check_rank_fn(rank_fn)
  scores = utils.as_float(scores)
  labels = utils.as_float(labels)
  _check_lists("scores", scores, "labels", labels)
  mask = utils.valid_mask(scores, where) & jnp.isfinite(labels)
  predicted = _apply_rank_fn(rank_fn, utils.sanitize(scores, mask), mask)
  target = jax.lax.stop_gradient(ranks.tie_averaged_ranks(utils.sanitize(labels, mask), where=mask))
  squared = jnp.where(mask, _apply_weights((predicted - target) ** 2, weights), 0.0)
  count = jnp.sum(mask, axis=-1).astype(scores.dtype)
  per_list = utils.safe_divide(6.0 * jnp.sum(squared, axis=-1), count * (count ** 2 - 1.0))
  return utils.reduce_loss(per_list, reduce_fn, where=count >= 2)


def map_rank_loss(scores: Array, labels: Array, *, rank_fn: types.RankFn = ranks.sigmoid_ranks,
                  form: str = "rank_sum", where: Optional[Array] = None,
                  weights: Optional[Array] = None, reduce_fn: utils.ReduceFn = jnp.mean) -> Array:
  r"""SoDeep's mean-average-precision loss (eq. 5-7) on the sorter's ranks, one list per class.

  From *SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019).
  Each list is one class :math:`c` queried over :math:`n` items (e.g. the images of a batch):
  ``scores[..., c, :]`` are the class scores :math:`\mathbf{y}_c` of the items and
  ``labels[..., c, :]`` their binary relevance :math:`\mathbf{y}^*_c`. For a ``[batch, classes]``
  logit matrix pass ``logits.T`` and ``targets.T``. With :math:`f` the sorter, :math:`P` the positives
  (:math:`|P| = \mathrm{rel}`) and :math:`n_- = n - \mathrm{rel}` the negatives of a class:

  ``form="rank_sum"`` (default) is **eq. 7 as written**, the unnormalised sum of the sorter's ranks of
  the positives, as the authors' code computes it (``MapRankingLoss`` in ``sodeep.py``):

  .. math::

     \mathcal{L}_c = \langle f(\mathbf{y}_c), \mathbf{y}^*_c\rangle = \sum_{j \in P} w_j\, f(\mathbf{y}_c)_j,
     \qquad \mathcal{L}_{mAP} = \sum_{c} \mathcal{L}_c \quad (\texttt{reduce_fn=jnp.sum}).

  Eq. 7 sums over the classes: pass ``reduce_fn=jnp.sum`` for it exactly; the default ``jnp.mean``
  divides that sum by the number of classes with a positive. Every positive of every class has the same
  weight, so a frequent class (many positives) carries more of the loss than a rare one. Ranks are in
  positions (1 = highest score), as :math:`\mathbf{rk}` of eq. 1; the authors' sorters output rank / n
  (``utils.get_rank``), i.e. their loss is this one divided by the list length. With exact ranks the
  minimum is :math:`\mathrm{rel}(\mathrm{rel}+1)/2` per class (every positive above every negative).

  ``form="normalized_rank_sum"`` is eq. 7 shifted by its minimum and normalised per class to
  :math:`[0, 1]` (ours, not the paper's):

  .. math::

     \mathcal{L}_c = \frac{1}{\mathrm{rel}\; n_-} \sum_{j \in P} w_j
     \big(f(\mathbf{y}_c)_j - \mathbf{rk}^{+}_j\big)
     = \frac{1}{\mathrm{rel}\; n_-}\Big(\sum_{j \in P} f(\mathbf{y}_c)_j
       - \frac{\mathrm{rel}(\mathrm{rel}+1)}{2}\Big) \quad (w = 1),

  where :math:`\mathbf{rk}^{+}_j` is the exact rank of :math:`j` among the positives (a constant
  with zero gradient). With exact ranks, each term counts the negatives ranked above a positive and the
  loss is :math:`1 - \mathrm{AUC}` (area under the ROC curve). It equals :math:`1 - \mathrm{AP}` only at
  the ends: both are 0 iff every positive precedes every negative, and 1 resp. :math:`1 - \mathrm{AP}_{\min}`
  when every negative comes first. Its gradient is eq. 7's divided by :math:`\mathrm{rel}\,n_-` per
  class: a rare class's positives get much larger gradients than a frequent class's.

  ``form="average_precision"`` is :math:`1 - \mathrm{AP}` of eq. 5-6 with the sorter's ranks:

  .. math::

     \mathcal{L}_c = \frac{1}{\mathrm{rel}} \sum_{j \in P} w_j \Big(1 -
     \frac{f(\mathbf{y}_c|_P)_j}{f(\mathbf{y}_c)_j}\Big),

  where :math:`f(\mathbf{y}_c|_P)_j` ranks :math:`j` among the positives only (``rank_fn`` with
  ``where`` = positives), i.e. the number of positives ranked at or above :math:`j`. Eq. 6 as printed
  counts only the positives strictly above :math:`j`, which would make a perfect ranking score
  :math:`\mathrm{AP} < 1`; we count :math:`j` itself, as in the usual definition. With exact ranks
  and no tied scores this is exactly ``1 - sklearn.metrics.average_precision_score``; with tied scores
  the exact ranks break ties by index while scikit-learn groups them, and the two differ. Denominators
  below 1 (possible with a learned sorter) are clipped to 1.

  Args:
    scores: class scores ``[..., C, n]`` (any leading axes); the list is the last axis.
    labels: relevance of the same shape; an item is positive iff its label is > 0.
    rank_fn: differentiable sorter following :class:`ranking_jax.types.RankFn`.
    form: ``"rank_sum"`` (eq. 7 as written, default), ``"normalized_rank_sum"`` (eq. 7 per class in
      [0, 1]) or ``"average_precision"`` (eq. 5-6).
    where: optional boolean mask of valid items. Non-finite scores or labels are masked too.
    weights: optional per-item weights multiplying the terms of the positives.
    reduce_fn: reduction over the classes that have at least one valid positive (classes without
      positives are skipped, as in the paper and the authors' code); ``None`` returns per-class losses.
      Eq. 7 is ``jnp.sum``.

  Returns:
    The reduced loss or per-class losses (shape ``scores.shape[:-1]``). A class without positives has
    loss 0 and is skipped. A class without negatives has loss 0 in the normalised and AP forms (it is
    perfectly ranked); in eq. 7 it keeps its rank sum, as written.

  Raises:
    TypeError: if ``rank_fn`` is not callable or ``where`` is not boolean.
    ValueError: if ``form`` is unknown, ``scores`` is 0-D, ``labels`` has another shape,
      ``where``/``weights`` do not broadcast to it, or ``rank_fn`` returns another shape.

  >>> import jax.numpy as jnp
  >>> from ranking_jax.ranks import hard_ranks
  >>> scores = jnp.array([0.9, 0.8, 0.3, 0.1])
  >>> labels = jnp.array([1, 0, 1, 0])
  >>> map_rank_loss(scores, labels, rank_fn=hard_ranks)  # eq. 7: the positives' ranks 1 + 3
  Array(4., dtype=float32)
  >>> map_rank_loss(scores, labels, rank_fn=hard_ranks, form="normalized_rank_sum")  # 1 of 4 pairs misordered
  Array(0.25, dtype=float32)
  >>> map_rank_loss(scores, labels, rank_fn=hard_ranks, form="average_precision")  # AP = 5/6
  Array(0.1667, dtype=float32)
  """
  _check_rank_fn(rank_fn)
  if form not in _MAP_FORMS:
    raise ValueError(f"`form` must be one of {_MAP_FORMS}, got {form!r}.")
  scores = utils.as_float(scores)
  labels = utils.as_float(labels)
  _check_lists("scores", scores, "labels", labels)
  mask = utils.valid_mask(scores, where) & jnp.isfinite(labels)
  positive = mask & (labels > 0)
  safe_scores = utils.sanitize(scores, mask)
  predicted = _apply_rank_fn(rank_fn, safe_scores, mask)
  num_positive = jnp.sum(positive, axis=-1).astype(scores.dtype)
  num_negative = jnp.sum(mask, axis=-1).astype(scores.dtype) - num_positive
  if form == "rank_sum":
    terms = predicted
  elif form == "normalized_rank_sum":
    rank_among_positives = jax.lax.stop_gradient(ranks.hard_ranks(safe_scores, where=positive))
    terms = (predicted - rank_among_positives) / jnp.where(num_negative > 0, num_negative, 1.0)[..., None]
    terms = jnp.where((num_negative > 0)[..., None], terms, 0.0)
  else:
    rank_among_positives = _apply_rank_fn(rank_fn, safe_scores, positive)
    terms = 1.0 - rank_among_positives / jnp.maximum(predicted, 1.0)
  terms = jnp.where(positive, _apply_weights(terms, weights), 0.0)
  per_class = jnp.sum(terms, axis=-1)
  if form != "rank_sum":  # eq. 7 is not divided by the number of positives
    per_class = utils.safe_divide(per_class, num_positive)
  return utils.reduce_loss(per_class, reduce_fn, where=num_positive > 0)


def recall_rank_loss(similarities: Array, relevance: Array, *,
                     rank_fn: types.RankFn = ranks.sigmoid_ranks, margin: float = 1.0, k: int = 1,
                     where: Optional[Array] = None, weights: Optional[Array] = None,
                     reduce_fn: utils.ReduceFn = jnp.mean) -> Array:
  r"""SoDeep's recall loss (eq. 9-10): a hard-negative triplet loss on the ranks of retrieved items.

  From *SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019).
  Row ``similarities[..., i, :]`` holds the similarities of query :math:`i` to the gallery, i.e. the
  paper's column :math:`\mathbf{Y}[i]` (pass ``Y.T`` for the paper's layout; the authors apply the loss
  to both directions of a cross-modal batch, image-to-text and text-to-image). With
  :math:`f = ` ``rank_fn`` applied to the row, :math:`p` a relevant item and :math:`c` an irrelevant
  one, eq. 9 is a triplet loss on ranks with margin :math:`\alpha`, and eq. 10 keeps the hardest
  negative (the highest-ranked one, since the hinge decreases with :math:`f(\mathbf{Y}[i])_c`):

  .. math::

     \mathrm{loss}(\mathbf{Y}[i], p, c) = \max\{0,\; \alpha + f(\mathbf{Y}[i])_p
       - f(\mathbf{Y}[i])_c\}, \qquad
     \mathcal{L}_{REC} = \frac{1}{d} \sum_{i} \max_{c \ne p,\, c \ne i}
       \mathrm{loss}(\mathbf{Y}[i], p, c).

  Generalisations, each reducing to eq. 10 for one positive and ``k=1``: a query with several relevant
  items averages the term over them (``weights`` scale each), and ``k > 1`` averages the hinge over the
  ``k`` hardest negatives (the authors' code sums them, ``nmax``). The paper's :math:`c \ne i` excludes
  the query itself when queries and gallery are the same set: mask it with ``where``. Ranks and
  :math:`\alpha` are in rank positions (the authors' code divides ranks by :math:`n` and uses
  :math:`\alpha = 1/n`, the same loss up to a factor :math:`1/n`): with exact ranks and
  :math:`0 < \alpha \le 1` the loss is 0 iff every relevant item precedes every irrelevant one.

  Args:
    similarities: query x gallery scores ``[..., queries, gallery]``; each row is one ranked list.
    relevance: boolean (or numeric, relevant iff > 0) array of the same shape.
    rank_fn: differentiable sorter following :class:`ranking_jax.types.RankFn`.
    margin: :math:`\alpha`, in rank positions.
    k: number of hardest negatives averaged per relevant item (1 in the paper). If fewer negatives
      exist, all of them are used.
    where: optional boolean mask of valid gallery items per query (non-finite similarities are masked).
    weights: optional per-item weights scaling the term of each relevant item.
    reduce_fn: reduction over the queries that have both a relevant and an irrelevant valid item;
      ``None`` returns per-query losses.

  Returns:
    The reduced loss or per-query losses (shape ``similarities.shape[:-1]``); a query without relevant
    or without irrelevant items has loss 0 and is left out of the reduction.

  Raises:
    TypeError: if ``rank_fn`` is not callable or ``where`` is not boolean.
    ValueError: if ``k`` is not a positive int, ``similarities`` is 0-D, ``relevance`` has
      another shape, ``where``/``weights`` do not broadcast, or ``rank_fn`` returns another
      shape.

  >>> import jax.numpy as jnp
  >>> from ranking_jax.ranks import hard_ranks
  >>> similarities = jnp.array([[0.9, 0.1, 0.5],    # query 0: its match (item 0) ranks first
  ...                           [0.7, 0.2, 0.3]])   # query 1: its match (item 1) ranks third
  >>> relevance = jnp.eye(2, 3, dtype=bool)
  >>> recall_rank_loss(similarities, relevance, rank_fn=hard_ranks, reduce_fn=None)
  Array([0., 3.], dtype=float32)
  """
  _check_rank_fn(rank_fn)
  if not isinstance(k, int) or isinstance(k, bool) or k < 1:
    raise ValueError(f"`k` must be a positive Python int (number of hard negatives), got {k!r}.")
  similarities = utils.as_float(similarities)
  relevance = jnp.asarray(relevance)
  _check_lists("similarities", similarities, "relevance", relevance)
  relevant = relevance if relevance.dtype == jnp.bool_ else utils.as_float(relevance) > 0
  mask = utils.valid_mask(similarities, where)
  positive = mask & relevant
  negative = mask & ~relevant
  predicted = _apply_rank_fn(rank_fn, utils.sanitize(similarities, mask), mask)
  num_hard = min(k, similarities.shape[-1])
  # The hardest negatives have the smallest ranks; pick them on constant keys, then gather their ranks.
  keys = jax.lax.stop_gradient(jnp.where(negative, -predicted, -jnp.inf))
  _, hard_index = jax.lax.top_k(keys, num_hard)
  hard_negative_ranks = jnp.take_along_axis(predicted, hard_index, axis=-1)
  hard_valid = jnp.take_along_axis(negative, hard_index, axis=-1)
  hinge = jax.nn.relu(margin + predicted[..., :, None] - hard_negative_ranks[..., None, :])
  hinge = jnp.where(positive[..., :, None] & hard_valid[..., None, :], hinge, 0.0)
  num_valid_hard = jnp.sum(hard_valid, axis=-1).astype(similarities.dtype)
  per_positive = utils.safe_divide(jnp.sum(hinge, axis=-1), num_valid_hard[..., None])
  per_positive = jnp.where(positive, _apply_weights(per_positive, weights), 0.0)
  num_positive = jnp.sum(positive, axis=-1).astype(similarities.dtype)
  per_query = utils.safe_divide(jnp.sum(per_positive, axis=-1), num_positive)
  return utils.reduce_loss(per_query, reduce_fn, where=(num_positive > 0) & (num_valid_hard > 0))
