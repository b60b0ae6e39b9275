"""Multi-task attribute-driven ranking losses for fine-grained sketch-based image retrieval.

From *Deep Multi-task Attribute-driven Ranking for Fine-grained Sketch-based Image Retrieval* (Song,
Song, Xiang, Hospedales, Ruan, BMVC 2016), eq. 1-6: a triplet ranking loss on deep features (eq. 1),
attribute prediction (eq. 2), attribute-level ranking (eq. 3-4), their weighted sum (eq. 5) and the
test-time distance fusing feature and attribute distances (eq. 6).

Conventions: features and attribute logits lie on the last axis; the leading axes index triplets (or
samples), and ``where``/``weights`` of the triplet losses have that leading shape. A triplet whose
inputs hold a non-finite value counts as masked (loss 0, zero gradients). Attribute predictions are
passed as logits and all cross-entropies are computed from logits, so they stay finite for saturated
predictions. Inputs may be boolean, integer or floating; computations run in float32 (float64 for
float64 inputs), also for bfloat16 inputs. Zero triplets (or zero attributes) give 0, like a fully masked
batch. Finite features and logits beyond :func:`ranking_jax.utils.magnitude_bound` (2**48 in float32)
count as that bound, with zero gradient, so that no squared distance or cross-entropy overflows (also in
:func:`fused_distance`).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp

from ranking_jax import utils

Array = jax.Array

# Task weights of eq. 5 as set in the paper (Sec. 3.1): lambda = (lambda_a, lambda_s, lambda_p+,
# lambda_p-) = (1, 0.01, 0.01, 0.01) and weight decay lambda_theta = 0.0005; the main task has weight 1.
SBIR_TASK_WEIGHTS: Mapping[str, float] = {
    "triplet": 1.0,
    "attribute_ranking": 1.0,
    "sketch_attributes": 0.01,
    "positive_attributes": 0.01,
    "negative_attributes": 0.01,
    "weight_decay": 0.0005,
}

_ATTRIBUTE_RANKING_FORMS = ("similarity", "triplet")


def _row_mask(where: Optional[Array], leading_shape: Tuple[int, ...], *arrays: Array) -> Array:
  """Mask over the leading axes: ``where`` (broadcast) and rows of ``arrays`` that are all finite."""
  mask = jnp.ones(leading_shape, dtype=bool)
  for x in arrays:
    mask = mask & jnp.all(jnp.isfinite(x), axis=-1)
  if where is not None:
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
      raise TypeError(f"`where` must be boolean, got dtype {where.dtype}.")
    try:
      mask = mask & jnp.broadcast_to(where, leading_shape)
    except ValueError as e:
      raise ValueError(f"`where` of shape {where.shape} must broadcast to the leading (triplet) shape "
                       f"{leading_shape}.") from e
  return mask


def _sanitize_rows(x: Array, mask: Array) -> Array:
  # Clipped too (utils.clip_magnitude): squared distances and cross-entropies of finite rows stay finite.
  return utils.clip_magnitude(jnp.where(mask[..., None], x, jnp.zeros_like(x)))


def _apply_weights(values: Array, weights: Optional[Array]) -> Array:
  if weights is None:
    return values
  return values * jnp.broadcast_to(utils.as_float(weights), values.shape).astype(values.dtype)


def _squared_distance(a: Array, b: Array) -> Array:
  """Squared Euclidean distance along the last axis (the paper's D)."""
  return jnp.sum((a - b) ** 2, axis=-1)


def _attribute_cross_entropy(target_logits: Array, predicted_logits: Array) -> Array:
  r"""Mean over attributes of :math:`H(\sigma(a), \sigma(b))`, computed from logits.

  Uses :math:`-\log\sigma(b) = \mathrm{softplus}(-b)` and :math:`-\log(1-\sigma(b)) =
  \mathrm{softplus}(b)`, finite for any finite logits.
  """
  target = jax.nn.sigmoid(target_logits)
  terms = target * jax.nn.softplus(-predicted_logits) + (1.0 - target) * jax.nn.softplus(predicted_logits)
  # Zero attributes: 0 (not the 0/0 of a mean), like a fully masked attribute set.
  return jnp.sum(terms, axis=-1) / max(terms.shape[-1], 1)


def _check_triplet(names: Tuple[str, ...], *arrays: Array) -> None:
  utils.check_rank_at_least(names[0], arrays[0], 1)
  for name, x in zip(names[1:], arrays[1:]):
    utils.check_same_shape(names[0], arrays[0], name, x)


def triplet_ranking_loss(anchor: Array, positive: Array, negative: Array, *, margin: float = 1.0,
                         where: Optional[Array] = None, weights: Optional[Array] = None,
                         reduce_fn: utils.ReduceFn = jnp.mean) -> Array:
  r"""Triplet ranking loss on squared Euclidean feature distances (eq. 1).

  From *Deep Multi-task Attribute-driven Ranking for Fine-grained Sketch-based Image Retrieval* (Song
  et al., BMVC 2016). For an anchor sketch :math:`s`, a positive photo :math:`p^+` and a negative photo
  :math:`p^-` with features :math:`f_\theta`,

  .. math::

     L_\theta(s, p^+, p^-) = \max\big(0,\; \Delta + D(f_\theta(s), f_\theta(p^+))
       - D(f_\theta(s), f_\theta(p^-))\big), \qquad D(x, y) = \lVert x - y \rVert_2^2 .

  Args:
    anchor: anchor (sketch) features ``[..., d]``; the leading axes index triplets.
    positive: positive photo features, same shape.
    negative: negative photo features, same shape.
    margin: :math:`\Delta` (1 in the paper).
    where: optional boolean mask of valid triplets, broadcast to ``anchor.shape[:-1]``. A triplet
      with any non-finite feature is masked too.
    weights: optional per-triplet weights.
    reduce_fn: reduction over the valid triplets (``None``: per-triplet losses).

  Returns:
    The reduced loss (0 if no triplet is valid) or per-triplet losses of shape ``anchor.shape[:-1]``.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if the features are 0-D or of different shapes, or ``where``/``weights``
      do not broadcast to the triplets' leading shape.

  >>> import jax.numpy as jnp
  >>> sketch = jnp.array([[0.0, 0.0], [0.0, 0.0]])
  >>> photo_pos = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> photo_neg = jnp.array([[3.0, 0.0], [0.5, 0.0]])
  >>> triplet_ranking_loss(sketch, photo_pos, photo_neg, margin=1.0, reduce_fn=None)
  Array([0.  , 1.75], dtype=float32)
  """
  anchor, positive, negative = utils.as_float(anchor), utils.as_float(positive), utils.as_float(negative)
  _check_triplet(("anchor", "positive", "negative"), anchor, positive, negative)
  mask = _row_mask(where, anchor.shape[:-1], anchor, positive, negative)
  anchor, positive, negative = (_sanitize_rows(x, mask) for x in (anchor, positive, negative))
  values = jax.nn.relu(margin + _squared_distance(anchor, positive)
                       - _squared_distance(anchor, negative))
  return utils.reduce_loss(_apply_weights(values, weights), reduce_fn, where=mask)


def attribute_prediction_loss(logits: Array, attributes: Array, *, where: Optional[Array] = None,
                              weights: Optional[Array] = None,
                              reduce_fn: utils.ReduceFn = jnp.mean) -> Array:
  r"""Multi-label attribute prediction loss: sigmoid cross-entropy averaged over attributes (eq. 2).

  From *Deep Multi-task Attribute-driven Ranking for Fine-grained Sketch-based Image Retrieval* (Song
  et al., BMVC 2016). With :math:`N` attributes, labels :math:`t_n` and predictions
  :math:`f^{ap}_{\theta,n}(s) = \sigma(z_n)` from logits :math:`z`,

  .. math::

     L_p(s, t^s) = -\frac{1}{N}\sum_{n=1}^{N} \big[t_n \log \sigma(z_n)
       + (1 - t_n) \log(1 - \sigma(z_n))\big]
     = \frac{1}{N}\sum_{n=1}^{N} \big[\mathrm{softplus}(z_n) - t_n z_n\big],

  the right-hand form being the numerically stable one used here (finite for any finite logit).

  Args:
    logits: attribute logits ``[..., N]``; the leading axes index samples (sketches or photos).
    attributes: targets in ``[0, 1]`` (binary labels or probabilities), same shape.
    where: optional boolean mask of annotated attributes, broadcast to ``logits.shape``; the mean runs
      over the valid ones. Non-finite logits or targets are masked too.
    weights: optional per-attribute weights multiplying each term (the normaliser stays the number of
      valid attributes).
    reduce_fn: reduction over the samples with at least one valid attribute (``None``: per-sample).

  Returns:
    The reduced loss or per-sample losses of shape ``logits.shape[:-1]``.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if ``logits`` is 0-D, ``attributes`` has another shape, or
      ``where``/``weights`` do not broadcast to it.

  >>> import jax.numpy as jnp
  >>> attribute_prediction_loss(jnp.array([[0.0, 100.0]]), jnp.array([[1.0, 0.0]]))
  Array(50.34657, dtype=float32)
  """
  logits, attributes = utils.as_float(logits), utils.as_float(attributes)
  utils.check_rank_at_least("logits", logits, 1)
  utils.check_same_shape("logits", logits, "attributes", attributes)
  mask = utils.valid_mask(logits, where) & jnp.isfinite(attributes)
  safe_logits = utils.clip_magnitude(utils.sanitize(logits, mask))
  safe_targets = utils.sanitize(attributes, mask)
  terms = jax.nn.softplus(safe_logits) - safe_targets * safe_logits
  terms = jnp.where(mask, _apply_weights(terms, weights), 0.0)
  count = jnp.sum(mask, axis=-1).astype(logits.dtype)
  per_sample = utils.safe_divide(jnp.sum(terms, axis=-1), count)
  return utils.reduce_loss(per_sample, reduce_fn, where=count > 0)


def attribute_similarity_loss(anchor_logits: Array, positive_logits: Array,
                              negative_logits: Optional[Array] = None, *, margin: float = 1.0,
                              where: Optional[Array] = None, weights: Optional[Array] = None,
                              reduce_fn: utils.ReduceFn = jnp.mean) -> Array:
  r"""Attribute-level ranking loss: cross-entropy similarity (eq. 4) or its triplet form (eq. 3).

  From *Deep Multi-task Attribute-driven Ranking for Fine-grained Sketch-based Image Retrieval* (Song
  et al., BMVC 2016). The attribute predictions :math:`f^{ap}_\theta = \sigma(z)` of the branches are
  compared by the cross-entropy :math:`H(a, b) = -\frac{1}{N}\sum_n [a_n \log b_n + (1-a_n)\log(1-b_n)]`
  (averaged over the :math:`N` attributes, as eq. 2), the sketch's prediction acting as the target:

  .. math::

     L_a(s, p^+, p^-) = H\big(f^{ap}_\theta(s), f^{ap}_\theta(p^+)\big)
     \quad\text{(eq. 4, the paper's choice, if ``negative_logits`` is None)}

  .. math::

     L_a(s, p^+, p^-) = \max\big(0,\; \Delta + H(f^{ap}_\theta(s), f^{ap}_\theta(p^+))
       - H(f^{ap}_\theta(s), f^{ap}_\theta(p^-))\big)
     \quad\text{(eq. 3, if ``negative_logits`` is given).}

  Note that :math:`H(a, a)` is the entropy of :math:`a`, not 0: eq. 4 also rewards confident,
  agreeing predictions. Gradients flow into both arguments.

  Args:
    anchor_logits: attribute logits of the sketches ``[..., N]``; leading axes index triplets.
    positive_logits: attribute logits of the positive photos, same shape.
    negative_logits: attribute logits of the negative photos (selects eq. 3), or None (eq. 4).
    margin: :math:`\Delta` of eq. 3 (unused by eq. 4).
    where: optional boolean mask of valid triplets, broadcast to ``anchor_logits.shape[:-1]``; a
      triplet with a non-finite logit is masked too.
    weights: optional per-triplet weights.
    reduce_fn: reduction over valid triplets (``None``: per-triplet losses).

  Returns:
    The reduced loss or per-triplet losses of shape ``anchor_logits.shape[:-1]``.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: if the logits are 0-D or of different shapes, or ``where``/``weights``
      do not broadcast to the triplets' leading shape.

  >>> import jax.numpy as jnp
  >>> sketch = jnp.array([[20.0, -20.0]])   # confident: attribute 0 present, 1 absent
  >>> attribute_similarity_loss(sketch, jnp.array([[20.0, -20.0]])).round(4)
  Array(0., dtype=float32)
  >>> attribute_similarity_loss(sketch, jnp.array([[0.0, 0.0]])).round(4)  # log 2
  Array(0.6931, dtype=float32)
  """
  arrays = [utils.as_float(anchor_logits), utils.as_float(positive_logits)]
  names = ["anchor_logits", "positive_logits"]
  if negative_logits is not None:
    arrays.append(utils.as_float(negative_logits))
    names.append("negative_logits")
  _check_triplet(tuple(names), *arrays)
  mask = _row_mask(where, arrays[0].shape[:-1], *arrays)
  arrays = [_sanitize_rows(x, mask) for x in arrays]
  positive_entropy = _attribute_cross_entropy(arrays[0], arrays[1])
  if negative_logits is None:
    values = positive_entropy
  else:
    values = jax.nn.relu(margin + positive_entropy - _attribute_cross_entropy(arrays[0], arrays[2]))
  return utils.reduce_loss(_apply_weights(values, weights), reduce_fn, where=mask)


def _squared_norm_of_tree(params: Any) -> Array:
  leaves = [jnp.sum(utils.as_float(x) ** 2) for x in jax.tree_util.tree_leaves(params)]
  return sum(leaves, jnp.zeros((), jnp.float32))


def sbir_multitask_loss(
    sketch: Array, positive: Array, negative: Array, *, sketch_logits: Array, positive_logits: Array,
    negative_logits: Array, sketch_attributes: Array, positive_attributes: Array,
    negative_attributes: Array, margin: float = 1.0,
    task_weights: Optional[Mapping[str, Any]] = None, attribute_ranking: str = "similarity",
    params: Any = None, attribute_where: Optional[Array] = None, where: Optional[Array] = None,
    weights: Optional[Array] = None, reduce_fn: utils.ReduceFn = jnp.mean,
) -> Tuple[Array, Dict[str, Array]]:
  r"""The multi-task SBIR objective (eq. 5): triplet ranking + attribute ranking + attribute prediction.

  From *Deep Multi-task Attribute-driven Ranking for Fine-grained Sketch-based Image Retrieval* (Song
  et al., BMVC 2016):

  .. math::

     L(s, p^+, p^-) = L_\theta(s, p^+, p^-) + \lambda_a L_a(s, p^+, p^-) + \lambda_s L_p(s, t^s)
       + \lambda_{p^+} L_p(p^+, t^{p^+}) + \lambda_{p^-} L_p(p^-, t^{p^-})
       + \lambda_\theta \lVert\theta\rVert_2^2,

  with :math:`L_\theta` from :func:`triplet_ranking_loss` (eq. 1), :math:`L_a` from
  :func:`attribute_similarity_loss` (eq. 4, or eq. 3 with ``attribute_ranking="triplet"``) and
  :math:`L_p` from :func:`attribute_prediction_loss` (eq. 2). The paper uses
  :math:`(\lambda_a, \lambda_s, \lambda_{p^+}, \lambda_{p^-}) = (1, 0.01, 0.01, 0.01)`,
  :math:`\lambda_\theta = 0.0005` and :math:`\Delta = 1` (:data:`SBIR_TASK_WEIGHTS`). The weight-decay
  term is only added when ``params`` is given (leave it out when the optimizer applies weight decay).

  Args:
    sketch, positive, negative: deep features ``[..., d]`` of the three branches; leading axes index
      triplets.
    sketch_logits, positive_logits, negative_logits: attribute logits ``[..., N]`` of the branches.
    sketch_attributes, positive_attributes, negative_attributes: attribute targets in ``[0, 1]``.
    margin: :math:`\Delta`, shared by eq. 1 and eq. 3.
    task_weights: mapping from term names (keys of :data:`SBIR_TASK_WEIGHTS`) to weights, overriding
      the paper's defaults; values may be traced arrays (e.g. from a :data:`ranking_jax.types.Schedule`).
    attribute_ranking: ``"similarity"`` (eq. 4, the paper's choice) or ``"triplet"`` (eq. 3).
    params: optional parameter pytree for the :math:`\lambda_\theta\lVert\theta\rVert_2^2` term.
    attribute_where: optional boolean mask of annotated attributes, broadcast to the logits' shape.
    where: optional boolean mask of valid triplets, broadcast to ``sketch.shape[:-1]``.
    weights: optional per-triplet weights, applied to every term.
    reduce_fn: reduction over valid triplets; ``None`` returns per-triplet values (then ``params``
      must be None, since weight decay is not a per-triplet quantity).

  Returns:
    ``(total, terms)``: the weighted sum and a dict of the *unweighted* terms ``"triplet"``,
    ``"attribute_ranking"``, ``"sketch_attributes"``, ``"positive_attributes"``,
    ``"negative_attributes"`` and ``"weight_decay"`` (:math:`\lVert\theta\rVert_2^2`, 0 without
    ``params``), for logging.

  Raises:
    TypeError: if ``where`` is not boolean.
    ValueError: on inconsistent shapes, an unknown ``attribute_ranking`` or task weight, or
      ``params`` given with ``reduce_fn=None``.

  >>> import jax.numpy as jnp
  >>> features = jnp.zeros((2, 4))
  >>> logits = jnp.zeros((2, 3))
  >>> attributes = jnp.ones((2, 3))
  >>> total, terms = sbir_multitask_loss(
  ...     features, features, features + 1.0, sketch_logits=logits, positive_logits=logits,
  ...     negative_logits=logits, sketch_attributes=attributes, positive_attributes=attributes,
  ...     negative_attributes=attributes)
  >>> total.round(4), terms["triplet"], terms["attribute_ranking"].round(4)
  (Array(0.7139, dtype=float32), Array(0., dtype=float32), Array(0.6931, dtype=float32))
  """
  if attribute_ranking not in _ATTRIBUTE_RANKING_FORMS:
    raise ValueError(f"`attribute_ranking` must be one of {_ATTRIBUTE_RANKING_FORMS}, got "
                     f"{attribute_ranking!r}.")
  unknown = set(task_weights or {}) - set(SBIR_TASK_WEIGHTS)
  if unknown:
    raise ValueError(f"Unknown task weight(s) {sorted(unknown)}; expected keys among "
                     f"{sorted(SBIR_TASK_WEIGHTS)}.")
  if reduce_fn is None and params is not None:
    raise ValueError("`params` (weight decay) needs a reduced loss: pass a `reduce_fn`, or apply "
                     "weight decay in the optimizer.")
  lambdas = {**SBIR_TASK_WEIGHTS, **(task_weights or {})}
  utils.check_rank_at_least("sketch", sketch, 1)
  leading = jnp.shape(sketch)[:-1]
  for name, x in (("sketch_logits", sketch_logits), ("positive_logits", positive_logits),
                  ("negative_logits", negative_logits)):
    if jnp.shape(x)[:-1] != leading:
      raise ValueError(f"`{name}` must have the triplets' leading shape {leading} (features "
                       f"{jnp.shape(sketch)}), got {jnp.shape(x)}.")
  triplet_mask = _row_mask(where, leading, *map(utils.as_float, (sketch, positive, negative, sketch_logits,
                                                                   positive_logits, negative_logits)))
  item_weights = None if weights is None else jnp.broadcast_to(utils.as_float(weights), leading)[..., None]
  shared = dict(where=triplet_mask, weights=weights, reduce_fn=reduce_fn)
  terms = {
      "triplet": triplet_ranking_loss(sketch, positive, negative, margin=margin, **shared),
      "attribute_ranking": attribute_similarity_loss(
          sketch_logits, positive_logits,
          negative_logits if attribute_ranking == "triplet" else None, margin=margin, **shared),
  }
  for name, logits, targets in (("sketch_attributes", sketch_logits, sketch_attributes),
                                ("positive_attributes", positive_logits, positive_attributes),
                                ("negative_attributes", negative_logits, negative_attributes)):
    attribute_mask = triplet_mask[..., None]
    if attribute_where is not None:
      attribute_mask = attribute_mask & jnp.asarray(attribute_where, dtype=bool)
    attribute_mask = jnp.broadcast_to(attribute_mask, jnp.shape(logits))
    terms[name] = attribute_prediction_loss(logits, targets, where=attribute_mask,
                                            weights=item_weights, reduce_fn=reduce_fn)
  terms["weight_decay"] = (jnp.zeros((), jnp.float32) if params is None
                           else _squared_norm_of_tree(params))
  total = sum(lambdas[name] * value for name, value in terms.items())
  return total, terms


def fused_distance(sketch_features: Array, photo_features: Array, sketch_logits: Array,
                   photo_logits: Array, *, attribute_weight: float = 1.0) -> Array:
  r"""Test-time sketch-to-photo distance fusing features and attributes (eq. 6), for every pair.

  From *Deep Multi-task Attribute-driven Ranking for Fine-grained Sketch-based Image Retrieval* (Song
  et al., BMVC 2016):

  .. math::

     R_s(s, p) = D\big(f_\theta(s), f_\theta(p)\big)
       + \lambda_a H\big(f^{ap}_\theta(s), f^{ap}_\theta(p)\big),

  with :math:`D` the squared Euclidean distance and :math:`H` the attribute cross-entropy of
  :func:`attribute_similarity_loss` (mean over attributes, from logits). Although the paper calls
  :math:`R_s` a similarity it is a distance: retrieve photos by *increasing* value (e.g. pass
  ``-fused_distance(...)`` as scores to ranking metrics).

  Args:
    sketch_features: query features ``[..., Q, d]``.
    photo_features: gallery features ``[..., G, d]`` (leading axes broadcast with the sketches').
    sketch_logits: query attribute logits ``[..., Q, N]``.
    photo_logits: gallery attribute logits ``[..., G, N]``.
    attribute_weight: :math:`\lambda_a` (1 in the paper).

  Returns:
    Distances ``[..., Q, G]``. A pair involving a non-finite feature or logit gets ``+inf`` (never
    retrieved first); gradients stay finite.

  Raises:
    ValueError: if an input has fewer than 2 dimensions, the feature sizes or attribute
      counts differ, or logits and features of one side have different leading shapes.

  >>> import jax.numpy as jnp
  >>> sketches = jnp.array([[0.0, 0.0]])
  >>> photos = jnp.array([[1.0, 0.0], [0.0, 2.0]])
  >>> fused_distance(sketches, photos, jnp.zeros((1, 1)), jnp.zeros((2, 1)), attribute_weight=0.0)
  Array([[1., 4.]], dtype=float32)
  """
  sketch_features, photo_features = utils.as_float(sketch_features), utils.as_float(photo_features)
  sketch_logits, photo_logits = utils.as_float(sketch_logits), utils.as_float(photo_logits)
  for name, x in (("sketch_features", sketch_features), ("photo_features", photo_features),
                  ("sketch_logits", sketch_logits), ("photo_logits", photo_logits)):
    utils.check_rank_at_least(name, x, 2)
  if sketch_features.shape[-1] != photo_features.shape[-1]:
    raise ValueError(f"Feature sizes differ: sketches {sketch_features.shape}, photos "
                     f"{photo_features.shape}.")
  if sketch_logits.shape[-1] != photo_logits.shape[-1]:
    raise ValueError(f"Attribute counts differ: sketches {sketch_logits.shape}, photos "
                     f"{photo_logits.shape}.")
  if sketch_logits.shape[:-1] != sketch_features.shape[:-1]:
    raise ValueError(f"`sketch_logits` {sketch_logits.shape} must have the leading shape of "
                     f"`sketch_features` {sketch_features.shape}.")
  if photo_logits.shape[:-1] != photo_features.shape[:-1]:
    raise ValueError(f"`photo_logits` {photo_logits.shape} must have the leading shape of "
                     f"`photo_features` {photo_features.shape}.")
  sketch_valid = _row_mask(None, sketch_features.shape[:-1], sketch_features, sketch_logits)
  photo_valid = _row_mask(None, photo_features.shape[:-1], photo_features, photo_logits)
  sketch_features, sketch_logits = (_sanitize_rows(x, sketch_valid)
                                    for x in (sketch_features, sketch_logits))
  photo_features, photo_logits = (_sanitize_rows(x, photo_valid) for x in (photo_features, photo_logits))
  highest = jax.lax.Precision.HIGHEST
  # One matmul instead of a [Q, G, d] difference tensor, on centred features (translation invariant).
  squared = utils.squared_distances(sketch_features, photo_features, x_where=sketch_valid,
                                    y_where=photo_valid)
  target = jax.nn.sigmoid(sketch_logits)
  num_attributes = sketch_logits.shape[-1]
  entropy = (jnp.einsum("...qn,...gn->...qg", target, jax.nn.softplus(-photo_logits), precision=highest)
             + jnp.einsum("...qn,...gn->...qg", 1.0 - target, jax.nn.softplus(photo_logits),
                          precision=highest)) / max(num_attributes, 1)
  distance = squared + attribute_weight * entropy
  valid = sketch_valid[..., :, None] & photo_valid[..., None, :]
  return jnp.where(valid, distance, jnp.inf)
