r"""The Class Rectification Loss experiment (imbalanced attribute recognition) as a trainer Task.

*Class Rectification Hard Mining for Imbalanced Deep Learning* (Dong, Gong, Zhu, ICCV 2017) trains a
DeepID2-style network with one 64-d feature :math:`\mathbf{x}_{i,j}` and one softmax classifier per
attribute :math:`j` and adds to the cross-entropy the Class Rectification Loss (eq. 8)

.. math:: l_{bln} = l_{ce} + l_{crl},

where :math:`l_{crl}` mines, in each mini-batch and for each attribute, hard positives and negatives of the
batch's minority classes (class level, eq. 4-5, or instance level, eq. 6-7) and compares them with a
relative (triplet, eq. 9), absolute (contrastive, eq. 11) or distribution (histogram, eq. 12-14) loss.
Results are the class-balanced accuracy (mean sensitivity, %) per attribute with its imbalance ratio
(Tables 2-3), the gain of each CRL variant over the cross-entropy baseline (Table 4), and the gain against
the imbalance ratio (Figure 5).

Data (``config.data.name``): ``"scene_attributes"`` (the embedded scene attributes of
:mod:`ranking_jax.projects.class_rectification.scene_attributes`: 24 binary and 4 multi-valued attributes, rendered once with
:func:`ranking_jax.data.rendered.render`), ``"celeba"`` (TFDS ``celeb_a``, :mod:`ranking_jax.projects.class_rectification.celeba`)
or ``"attribute_csv"`` (user files, :mod:`ranking_jax.projects.class_rectification.attribute_csv`). Every batch carries
``"attributes"`` int32 ``[B, A]`` (``-1`` = not annotated).

Baselines on multi-label data (the paper defines them for one label per image only); with
:math:`p_j(c)` the training frequency of value :math:`c` of attribute :math:`j` and the per-label balancing
weight :math:`w_{j}(c) = 1 / (|Z_j|\, p_j(c))` (1 for every value of a balanced attribute):

* ``oversampling``: images drawn with replacement with probability proportional to
  :math:`\bar w_i = \frac{1}{A}\sum_j w_j(a_{i,j})` (so images holding rare values of any attribute are
  repeated);
* ``downsampling``: a fixed subset of the training images, drawn once: an image with
  :math:`\bar w_i \ge \operatorname{median}(\bar w)` is kept, one below it is kept with probability
  :math:`\bar w_i / \operatorname{median}(\bar w)` (majority-heavy images are discarded);
* ``cost_sensitive``: the cross-entropy of label :math:`(i, j)` weighted by :math:`w_j(a_{i,j})`, clipped
  at ``config.loss.max_class_weight``;
* ``logit_adjusted`` (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021, eq. 10, not in
  the paper): the cross-entropy of :math:`f_j(x) + \tau \log p_j`; prediction is the plain argmax.

Entry points: :func:`make_task`, :func:`report` (one run's per-attribute table), and for several runs
:func:`cross_variant_tables` and :func:`plot_gain_vs_imbalance` (used by
``experiments/class_rectification_tables.py``).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, Iterator, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax import metrics as metrics_lib
from ranking_jax import models
from ranking_jax import reporting
from ranking_jax import train
from ranking_jax.data import pipeline
from ranking_jax.data import registry as data_registry
from ranking_jax.projects.class_rectification import scene_attributes as sa
from ranking_jax.data import scenes as scenes_lib
from ranking_jax.losses import rectification
from ranking_jax.errors import ConfigValueError

Batch = dict[str, np.ndarray]

CRL_VARIANTS = tuple(f"crl_{level}_{kind}" for level in ("class", "instance")
                     for kind in ("relative", "absolute", "distribution"))
BASELINES = ("ce", "oversampling", "downsampling", "cost_sensitive", "logit_adjusted")
VARIANTS = BASELINES + CRL_VARIANTS

# The paper's average class-balanced accuracy (%): Table 2 (CelebA, DeepID2 network) and Table 3
# (X-Domain; its non-imbalance baseline is MTCT). CRL(C)/CRL(I) are the relative loss (Table 4's best).
PAPER_AVERAGE: dict[str, tuple[Optional[float], Optional[float]]] = {
    "ce": (81.0, 73.53), "oversampling": (82.0, 74.30), "downsampling": (78.0, 26.29),
    "cost_sensitive": (82.0, 74.49), "crl_class_relative": (85.0, 78.24),
    "crl_instance_relative": (86.0, 79.66),
}
# Table 4: gain in average accuracy (%) over the baseline (DeepID2 on CelebA, MTCT on X-Domain).
PAPER_GAIN: dict[str, tuple[float, float]] = {
    "crl_class_absolute": (5.71, 3.46), "crl_class_relative": (4.23, 4.71),
    "crl_class_distribution": (0.54, 1.20), "crl_instance_absolute": (5.67, 4.92),
    "crl_instance_relative": (5.85, 6.13), "crl_instance_distribution": (2.12, 2.05),
}

_LABEL_KEY = "attributes"


def parse_variant(variant: str) -> tuple[Optional[str], Optional[str]]:
  """``(level, kind)`` of a CRL variant, ``(None, None)`` for a baseline.

  >>> parse_variant("crl_instance_relative"), parse_variant("ce")
  (('instance', 'relative'), (None, None))
  """
  if variant not in VARIANTS:
    raise ConfigValueError(f"unknown variant {variant!r}; choose one of {list(VARIANTS)}.")
  if variant.startswith("crl_"):
    _, level, kind = variant.split("_")
    return level, kind
  return None, None


# ----------------------------------------------------------------------------------------------- data


@data_registry.register_dataset("scene_attributes")
def _scene_attributes_splits(data_config: Any) -> dict[str, Any]:
  """The ``scene_attributes`` dataset (see :func:`make_splits`)."""
  scene_splits = scenes_lib.make_scenes_splits(
      int(data_config.num_train), int(data_config.num_validation), int(data_config.num_test),
      seed=int(data_config.seed), image_size=int(data_config.image_size))
  out = {}
  for split, scenes in scene_splits.items():
    source = sa.SceneAttributesSource(scenes, attributes=data_config.attributes or None)
    out[split] = sa.render_attribute_split(source, cache_dir=data_config.get("cache_dir", "") or "")
  return out


@data_registry.register_dataset("celeba")
def _celeba_splits(data_config: Any) -> dict[str, Any]:
  """The ``celeba`` dataset (see :func:`make_splits`)."""
  from ranking_jax.projects.class_rectification import celeba  # pylint: disable=g-import-not-at-top
  size = tuple(data_config.image_size) if isinstance(data_config.image_size, (tuple, list)) else int(
      data_config.image_size)
  return celeba.make_celeba_splits(data_dir=data_config.data_dir or None, image_size=size,
                                   attributes=data_config.attributes or None)


@data_registry.register_dataset("attribute_csv")
def _attribute_csv_splits(data_config: Any) -> dict[str, Any]:
  """The ``attribute_csv`` dataset (see :func:`make_splits`)."""
  from ranking_jax.projects.class_rectification import attribute_csv  # pylint: disable=g-import-not-at-top
  splits = attribute_csv.make_attribute_csv_splits(
      image_dir=data_config.image_dir, train_csv=data_config.train_csv, test_csv=data_config.test_csv,
      validation_csv=data_config.validation_csv or None, image_size=int(data_config.image_size),
      num_values=tuple(data_config.num_values) or None, attributes=data_config.attributes or None)
  splits.setdefault("validation", splits["test"])  # no validation CSV: monitor on the test split
  return splits


DATASETS = ('scene_attributes', 'celeba', 'attribute_csv', 'celeba_hq',)


def make_splits(data_config: Any) -> dict[str, Any]:
  """``{"train", "validation", "test"}`` sources of ``config.data`` (each with ``names``/``num_values``).

  ``"scene_attributes"``: disjoint ranges of scenes of seed ``data_config.seed`` rendered once into memory (optional
  disk cache ``cache_dir``); ``"celeba"``: the paper's CelebA partition from TFDS (``data_dir``);
  ``"attribute_csv"``: user CSVs (``train_csv``, ``validation_csv``, ``test_csv``, ``image_dir``, ``num_values``).

  ``"celeba_hq"`` (:mod:`ranking_jax.data.celeba_hq`, ``data_dir``): the seeded split's images are replaced
  by the frozen ImageNet EfficientNet-Lite0 trunk's pooled features (:func:`trunk_feature_splits`).

  Raises:
    DataNotFoundError: missing files (the message says which and what to do).
  """
  splits = data_registry.build_splits(data_config, accepted=DATASETS)
  if data_config.name == "celeba_hq":
    return trunk_feature_splits(splits, cache_dir=str(data_config.feature_cache_dir),
                                standardize=bool(data_config.get("standardize_features", True)))
  return splits


def trunk_feature_splits(splits: Mapping[str, Any], *, cache_dir: str, standardize: bool = True
                         ) -> dict[str, Any]:
  """The image sources of ``splits`` as :class:`~ranking_jax.data.FeatureSource` of the frozen trunk.

  The pooled ImageNet EfficientNet-Lite0 features float32 ``[n, 1280]`` are computed once per split and
  cached in ``cache_dir`` (:func:`ranking_jax.models.pretrained_trunk.feature_splits`); each returned
  source yields ``{"features": float32 [n, 1280], "attributes": int32 [n, A], "index": ...}`` and keeps
  ``names`` and ``num_values``. With ``standardize`` every split's features are z-scored with the
  training split's per-dimension mean and standard deviation (a dimension with std 0 is only centred).
  """
  from ranking_jax.data import feature_cache  # pylint: disable=g-import-not-at-top
  from ranking_jax.models import pretrained_trunk  # pylint: disable=g-import-not-at-top
  features = pretrained_trunk.feature_splits(dict(splits), cache_dir=os.path.expanduser(cache_dir))
  arrays = {split: {k: np.asarray(v) for k, v in _source_arrays(source).items()}
            for split, source in features.items()}
  if standardize:
    train_features = arrays["train"]["features"].astype(np.float64)
    mean, std = train_features.mean(axis=0), train_features.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    for split_arrays in arrays.values():
      split_arrays["features"] = ((split_arrays["features"] - mean) / std).astype(np.float32)
  return {split: feature_cache.FeatureSource(arrays[split], names=tuple(splits[split].names),
                                             num_values=tuple(splits[split].num_values))
          for split in features}


def _source_arrays(source: Any) -> dict[str, np.ndarray]:
  """All of a feature source's arrays (its ``arrays`` dict, else one batch of every example)."""
  if hasattr(source, "arrays"):
    return dict(source.arrays)
  return dict(source[np.arange(len(source))])


def train_labels(source: Any) -> np.ndarray:
  """All training labels ``[n, A]`` of a source (its ``labels()``, or the ``attributes`` array of a
  :class:`~ranking_jax.data.FeatureSource`)."""
  if hasattr(source, "labels"):
    return np.asarray(source.labels())
  return np.asarray(source.arrays[_LABEL_KEY])


def class_weights(labels: np.ndarray, num_values: Sequence[int], *, max_weight: float = 100.0
                  ) -> np.ndarray:
  r"""Balancing weights :math:`w_j(c) = 1/(|Z_j| p_j(c))` float32 ``[A, C]`` (C = max |Z_j|), clipped.

  A value absent from ``labels`` gets ``max_weight``; padded slots ``c >= |Z_j|`` get 0.

  >>> class_weights(np.array([[0], [0], [0], [1]]), (2,)).round(3).tolist()
  [[0.667, 2.0]]
  """
  counts = sa.class_counts(labels, num_values)
  out = np.zeros((len(num_values), max(num_values)), np.float32)
  for j, (c, n) in enumerate(zip(counts, num_values)):
    total = max(int(c.sum()), 1)
    with np.errstate(divide="ignore"):
      w = np.where(c > 0, total / (n * np.maximum(c, 1)), max_weight)
    out[j, :n] = np.minimum(w, max_weight)
  return out


def log_priors(labels: np.ndarray, num_values: Sequence[int]) -> np.ndarray:
  """``log p_j(c)`` float32 ``[A, C]`` from training counts (+0.5 smoothing; padded slots 0)."""
  counts = sa.class_counts(labels, num_values)
  out = np.zeros((len(num_values), max(num_values)), np.float32)
  for j, (c, n) in enumerate(zip(counts, num_values)):
    smoothed = c.astype(np.float64) + 0.5
    out[j, :n] = np.log(smoothed / smoothed.sum())
  return out


def image_weights(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """Per-image mean of its labels' balancing weights ``[n]`` (unannotated labels skipped)."""
  labels = np.asarray(labels)
  valid = labels >= 0
  per_label = weights[np.arange(labels.shape[1])[None, :], np.where(valid, labels, 0)]
  return np.sum(np.where(valid, per_label, 0.0), axis=1) / np.maximum(valid.sum(axis=1), 1)


def downsample_indices(labels: np.ndarray, weights: np.ndarray, *, seed: int) -> np.ndarray:
  """Indices of the ``downsampling`` training subset (see the module docstring), sorted."""
  w = image_weights(labels, weights)
  median = float(np.median(w))
  keep_probability = np.minimum(1.0, w / median)
  rng = np.random.default_rng([int(seed), 7177])
  return np.flatnonzero(rng.random(len(w)) < keep_probability)


class _Subset:
  """``source`` restricted to ``indices`` (random access)."""

  def __init__(self, source: Any, indices: np.ndarray):
    self.source, self.indices = source, np.asarray(indices)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: Any) -> Batch:
    return self.source[self.indices[np.asarray(index)]]


def _weighted_iterator(source: Any, probabilities: np.ndarray, batch_size: int, *, seed: int,
                       start_step: int, process_index: int, process_count: int) -> Iterator[Batch]:
  """Batches drawn with replacement with ``probabilities``; step ``t``'s batch depends on ``(seed, t)``."""
  per_process = batch_size // process_count
  step = int(start_step)
  while True:
    rng = np.random.default_rng([int(seed), 9001, step])
    indices = rng.choice(len(probabilities), size=batch_size, p=probabilities)
    yield dict(source[indices[process_index * per_process:(process_index + 1) * per_process]])
    step += 1


def to_trainer_batch(batch: Mapping[str, np.ndarray]) -> Batch:
  """The trainer's layout: images (or cached trunk ``features``) under ``"inputs"``, labels
  ``"attributes"`` int32 (and ``"mask"``).

  >>> sorted(to_trainer_batch({"image": np.zeros((2, 4, 4, 3)), "attributes": np.ones((2, 3)),
  ...                          "index": np.arange(2)}))
  ['attributes', 'inputs']
  """
  out = {"inputs": np.asarray(batch["image"] if "image" in batch else batch["features"], np.float32),
         _LABEL_KEY: np.asarray(batch[_LABEL_KEY], np.int32)}
  if "mask" in batch:
    out["mask"] = np.asarray(batch["mask"], bool)
  return out


# ------------------------------------------------------------------------------------- losses, metrics


def attribute_cross_entropy(logits: jax.Array, labels: jax.Array, *, weights: Optional[jax.Array] = None
                            ) -> jax.Array:
  r"""Eq. 2 of the CRL paper: per-attribute softmax cross-entropy summed over attributes, mean over images.

  Args:
    logits: ``[B, A, C]`` (padded classes hold a large negative finite logit).
    labels: int ``[B, A]``; ``-1`` (not annotated) is masked.
    weights: optional ``[B, A]`` per-label weights (cost-sensitive learning).

  >>> float(attribute_cross_entropy(jnp.zeros((2, 3, 2)), jnp.array([[0, 1, -1], [1, 1, 1]])))
  1.732...
  """
  valid = labels >= 0
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  ce = -jnp.take_along_axis(log_probs, jnp.where(valid, labels, 0)[..., None], axis=-1)[..., 0]
  if weights is not None:
    ce = ce * weights
  images = jnp.maximum(jnp.sum(jnp.any(valid, axis=-1)), 1)
  return jnp.sum(jnp.where(valid, ce, 0.0)) / images


def make_loss_terms(variant: str, num_values: Sequence[int], *, top_k: int = 5,
                    relative_margin: Optional[float] = None, absolute_margin: float = 1.0,
                    num_bins: int = 201, histogram_range: Sequence[float] = (0.0, 2.0),
                    class_weight_table: Optional[np.ndarray] = None,
                    log_prior_table: Optional[np.ndarray] = None, logit_adjust_tau: float = 1.0
                    ) -> dict[str, Any]:
  """``{"ce": ...}`` for a baseline, ``{"ce": eq. 2, "crl": l_crl}`` for a CRL variant (eq. 8 = their sum).

  ``crl`` is :func:`ranking_jax.losses.class_rectification_loss` (which includes the cross-entropy) minus
  the same cross-entropy, so ``config.multitask.weights.crl`` scales :math:`l_{crl}` alone. Margins: eq. 10's
  :math:`2\\pi/|Z_j|` when ``relative_margin`` is None, ``absolute_margin`` (:math:`m_{apc}`) for absolute.

  Raises:
    ValueError: an unknown variant, or a missing weight / prior table for the variant that needs it.
  """
  level, kind = parse_variant(variant)
  num_values = tuple(int(n) for n in num_values)
  if variant == "cost_sensitive":
    if class_weight_table is None:
      raise ValueError("cost_sensitive needs class_weight_table.")
    table = jnp.asarray(class_weight_table)

    def ce(outputs, batch):
      labels = batch[_LABEL_KEY]
      weights = table[jnp.arange(labels.shape[1])[None, :], jnp.where(labels >= 0, labels, 0)]
      return attribute_cross_entropy(outputs["logits"], labels, weights=weights)
    return {"ce": ce}
  if variant == "logit_adjusted":
    if log_prior_table is None:
      raise ValueError("logit_adjusted needs log_prior_table.")
    prior = jnp.asarray(log_prior_table) * float(logit_adjust_tau)
    return {"ce": lambda outputs, batch: attribute_cross_entropy(outputs["logits"] + prior,
                                                                 batch[_LABEL_KEY])}
  terms = {"ce": lambda outputs, batch: attribute_cross_entropy(outputs["logits"], batch[_LABEL_KEY])}
  if level is None:
    return terms
  margin = None if kind == "distribution" else (relative_margin if kind == "relative" else absolute_margin)
  crl = functools.partial(rectification.class_rectification_loss, kind=kind, level=level, top_k=int(top_k),
                          margin=margin, num_classes=num_values, num_bins=int(num_bins),
                          histogram_range=tuple(float(x) for x in histogram_range))

  def crl_term(outputs, batch):
    labels = batch[_LABEL_KEY]
    total = crl(outputs["logits"], labels, features=outputs["features"])
    return total - attribute_cross_entropy(outputs["logits"], labels)
  terms["crl"] = crl_term
  return terms


def imbalanced_half(ratios: Sequence[float]) -> np.ndarray:
  """Indices of the more imbalanced half of the attributes (``ceil(A / 2)`` largest ratios).

  >>> imbalanced_half([1.0, 40.0, 3.0]).tolist()
  [1, 2]
  """
  order = np.argsort(np.asarray(ratios, np.float64), kind="stable")
  return np.sort(order[len(order) - math.ceil(len(order) / 2):])


def attribute_metrics(predictions: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray], *,
                      names: Sequence[str], ratios: Sequence[float]) -> dict[str, float]:
  """Class-balanced accuracy (mean sensitivity, %) per attribute, its mean over all attributes and over the
  more imbalanced half, and the plain accuracy (%). Unannotated labels (``-1``) are skipped."""
  logits = np.asarray(predictions["logits"])
  labels = np.asarray(targets[_LABEL_KEY])
  predicted = logits.argmax(-1).astype(np.int64)
  where = labels >= 0
  per_attribute = 100.0 * metrics_lib.class_balanced_accuracy(predicted, labels, where=where,
                                                              per_attribute=True)
  out = {"mean_cba": float(np.nanmean(per_attribute)),
         "mean_cba_imbalanced_half": float(np.nanmean(per_attribute[imbalanced_half(ratios)])),
         "accuracy": float(100.0 * np.sum((predicted == labels) & where) / max(where.sum(), 1))}
  out.update({f"cba/{name}": float(v) for name, v in zip(names, per_attribute)})
  return out


# ------------------------------------------------------------------------------------------------ task


def requirements(config: Any) -> train.Requirements:
  """CRL variants mine hard examples within the whole mini-batch; ``ce`` has no listwise term."""
  level, _ = parse_variant(str(config.variant))
  return train.Requirements(global_batch="CRL mines within the whole mini-batch" if level else "",
                            pretrained_weights="efficientnet_lite0" if config.data.name == "celeba_hq" else "")


def make_task(config: Any, splits: Optional[Mapping[str, Any]] = None) -> train.Task:
  """The trainer Task of ``config`` (see ``configs/class_rectification.py``); prints the imbalance table."""
  variant = str(config.variant)
  level, kind = parse_variant(variant)
  train.check_requirements(config, requirements(config))
  trunk = str(config.model.get("trunk", "frozen"))
  if config.data.name == "celeba_hq" and trunk != "frozen":
    raise ConfigValueError(f"config.model.trunk={trunk!r}: the celeba_hq path trains the head on cached "
                           "features of the frozen trunk only ('frozen').")
  if splits is None:
    splits = make_splits(config.data)
  train_source = splits["train"]
  names, num_values = tuple(train_source.names), tuple(int(n) for n in train_source.num_values)
  labels = train_labels(train_source)
  ratios = sa.imbalance_ratios(labels, num_values)
  if jax.process_index() == 0:
    specs = [sa.AttributeSpec(n, v, "", tuple(str(c) for c in range(v))) for n, v in zip(names, num_values)]
    print(f"Imbalance of the {len(labels)} training images (largest / smallest value count):\n"
          + sa.imbalance_table(labels, specs), flush=True)
  weights_table = class_weights(labels, num_values, max_weight=float(config.loss.max_class_weight))
  batch_size, seed = int(config.batch_size), int(config.seed)

  sampling_source, probabilities = train_source, None
  if variant == "oversampling":
    w = image_weights(labels, weights_table)
    probabilities = w / w.sum()
  elif variant == "downsampling":
    kept = downsample_indices(labels, weights_table, seed=int(config.data.seed))
    print(f"downsampling: training on {len(kept)} of {len(labels)} images", flush=True)
    sampling_source = _Subset(train_source, kept)

  def make_train_iterator(start_step: int, process_index: int, process_count: int) -> Iterator[Batch]:
    if probabilities is not None:
      batches = _weighted_iterator(train_source, probabilities, batch_size, seed=seed, start_step=start_step,
                                   process_index=process_index, process_count=process_count)
    else:
      batches = pipeline.make_train_iterator(sampling_source, batch_size, seed=seed, start_step=start_step,
                                             process_index=process_index, process_count=process_count)
    return pipeline.prefetch(to_trainer_batch(b) for b in batches)

  def make_eval_iterator(source: Any) -> Iterator[Batch]:
    batches = pipeline.make_eval_iterator(source, int(config.eval_batch_size),
                                          process_index=jax.process_index(),
                                          process_count=jax.process_count())
    return (to_trainer_batch(b) for b in batches)

  metrics_fn = functools.partial(attribute_metrics, names=names, ratios=ratios)
  evaluators = train.validation_and_test(make_eval_iterator, splits, metrics_fn)
  loss = config.loss
  terms = make_loss_terms(variant, num_values, top_k=int(loss.top_k), relative_margin=loss.relative_margin,
                          absolute_margin=float(loss.absolute_margin), num_bins=int(loss.num_bins),
                          histogram_range=tuple(loss.histogram_range), class_weight_table=weights_table,
                          log_prior_table=log_priors(labels, num_values),
                          logit_adjust_tau=float(loss.logit_adjust_tau))
  model = models.build_model(config.model.name, num_values=num_values, **config.model.kwargs.to_dict())
  info = {"names": names, "num_values": num_values, "imbalance": [float(r) for r in ratios],
          "num_train": len(sampling_source)}
  return train.Task(requirements=requirements(config), model=model, loss_terms=terms, make_train_iterator=make_train_iterator,
                    evaluators=evaluators, num_train_examples=len(sampling_source),
                    report=functools.partial(report, config, info))


# --------------------------------------------------------------------------------------------- reports


def attribute_rows(names: Sequence[str], num_values: Sequence[int], ratios: Sequence[float],
                   columns: Mapping[str, Sequence[float]]) -> list[dict[str, Any]]:
  """Rows ``{attribute, values, imbalance, <column>: value...}`` sorted by imbalance, then two averages."""
  order = np.argsort(np.asarray(ratios, np.float64), kind="stable")
  half = imbalanced_half(ratios)
  rows = [{"attribute": names[j], "values": int(num_values[j]), "imbalance": float(ratios[j]),
           **{c: float(v[j]) for c, v in columns.items()}} for j in order]
  rows.append({"attribute": "**average, all**", **{c: float(np.nanmean(v)) for c, v in columns.items()}})
  rows.append({"attribute": f"**average, {len(half)} most imbalanced**",
               **{c: float(np.nanmean(np.asarray(v)[half])) for c, v in columns.items()}})
  return rows


def _attribute_columns(extra: Sequence[str]) -> list[reporting.Column]:
  return [reporting.Column("attribute"), reporting.Column("values", "\\|Z\\|"),
          reporting.Column("imbalance", "imbalance 1:x", ".1f")] + [
              reporting.Column(c, c, ".1f") for c in extra]


def report(config: Any, info: Mapping[str, Any], result: train.TrainResult, workdir: str) -> dict[str, Any]:
  """Writes ``results.md`` (this run's per-attribute class-balanced accuracy, sorted by imbalance, and its
  averages beside the paper's); returns the row that :func:`cross_variant_tables` collects."""
  test = result.predictions["test"].metrics
  variant = str(config.variant)
  names = list(info["names"])
  cba = [test[f"cba/{n}"] for n in names]
  rows = attribute_rows(names, info["num_values"], info["imbalance"], {"class-balanced accuracy %": cba})
  paper = PAPER_AVERAGE.get(variant, (None, None))
  gain = PAPER_GAIN.get(variant)
  incomplete = "" if result.results.get("complete", True) else " (INCOMPLETE run)"
  text = (f"# Class Rectification, {variant}, seed {int(config.seed)}, data {config.data.name}"
          f"{incomplete}\n\n"
          f"Test split, {result.results['step']} steps. Paper's average (Table 2 CelebA / Table 3 X-Domain): "
          f"{paper[0] if paper[0] is not None else '-'} / {paper[1] if paper[1] is not None else '-'}"
          + (f"; paper's gain over the baseline (Table 4, CelebA / X-Domain): {gain[0]} / {gain[1]}" if gain
             else "") + ".\n\n"
          + reporting.markdown_table(rows, _attribute_columns(["class-balanced accuracy %"]))
          + "\n")
  reporting.write_markdown(workdir, text)
  print(f"test ({variant}, seed {config.seed}): mean class-balanced accuracy {test['mean_cba']:.2f} %, "
        f"more imbalanced half {test['mean_cba_imbalanced_half']:.2f} %{incomplete}", flush=True)
  return {"variant": variant, "seed": int(config.seed), "data": str(config.data.name),
          "steps": result.results["step"], "names": names, "num_values": list(info["num_values"]),
          "imbalance": list(info["imbalance"]), "cba": cba, "mean_cba": test["mean_cba"],
          "mean_cba_imbalanced_half": test["mean_cba_imbalanced_half"], "accuracy": test["accuracy"]}


def _group(reports: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
  groups: dict[str, list[Mapping[str, Any]]] = {}
  for r in reports:
    groups.setdefault(str(r["variant"]), []).append(r)
  return {v: groups[v] for v in sorted(groups, key=lambda v: VARIANTS.index(v) if v in VARIANTS else 99)}


def paired_gains(runs: Sequence[Mapping[str, Any]], baseline_by_seed: Mapping[int, Mapping[str, Any]], *,
                 key: str = "mean_cba_imbalanced_half") -> list[float]:
  """``run[key] - baseline[key]`` for every run whose seed has a baseline run (seed-matched differences)."""
  return [float(r[key]) - float(baseline_by_seed[int(r["seed"])][key]) for r in runs
          if int(r["seed"]) in baseline_by_seed]


def signed_mean_pm_std(values: Sequence[float]) -> str:
  """``"+mean ± std (n seeds)"`` of signed differences (``"-"`` for none).

  >>> signed_mean_pm_std([-0.1, 0.3])
  '+0.10 ± 0.28 (2 seeds)'
  """
  if not len(values):
    return "-"
  summary = reporting.seed_summary(values)
  if summary["n"] == 1:
    return f"{summary['mean']:+.2f} (1 seed)"
  return f"{summary['mean']:+.2f} ± {summary['std']:.2f} ({summary['n']} seeds)"


def gain_imbalance_correlation(gains: Sequence[float], ratios: Sequence[float]) -> float:
  """Spearman's rank correlation between per-attribute gains and imbalance ratios (NaN if undefined).

  >>> round(gain_imbalance_correlation([0.0, 1.0, 3.0], [1.5, 10.0, 200.0]), 3)
  1.0
  """
  import scipy.stats  # pylint: disable=g-import-not-at-top
  gains, ratios = np.asarray(gains, np.float64), np.asarray(ratios, np.float64)
  keep = np.isfinite(gains) & np.isfinite(ratios)
  if keep.sum() < 3 or np.ptp(gains[keep]) == 0 or np.ptp(ratios[keep]) == 0:
    return float("nan")
  return float(scipy.stats.spearmanr(gains[keep], ratios[keep]).statistic)


def cross_variant_tables(reports: Sequence[Mapping[str, Any]], *, baseline: str = "ce",
                         split: str = "test") -> str:
  """Markdown: the Table 2/3-style per-attribute table (mean over seeds per variant), the seed spread, and
  the Table 4-style gains over ``baseline`` with the paper's beside.

  ``reports`` are the ``results["report"]`` dicts of runs (:func:`report`), all on the same attributes;
  ``split`` names their split in the heading.
  """
  groups = _group(reports)
  first = reports[0]
  names, num_values, ratios = first["names"], first["num_values"], first["imbalance"]
  means = {v: np.mean([r["cba"] for r in rs], axis=0) for v, rs in groups.items()}
  header = {v: f"{v} ({len(rs)})" for v, rs in groups.items()}
  rows = attribute_rows(names, num_values, ratios, {header[v]: m for v, m in means.items()})
  parts = [f"## Class-balanced accuracy (%) per attribute, {split} split (number of seeds in brackets)\n",
           reporting.markdown_table(rows, _attribute_columns(list(header.values()))), "",
           "## Seed spread (mean over all attributes / more imbalanced half, %)\n"]
  spread_rows = []
  for v, rs in groups.items():
    spread_rows.append({"variant": v, "all": reporting.mean_pm_std([r["mean_cba"] for r in rs], ".2f"),
                        "half": reporting.mean_pm_std([r["mean_cba_imbalanced_half"] for r in rs], ".2f"),
                        "seeds": ", ".join(str(r["seed"]) for r in rs),
                        "paper_celeba": PAPER_AVERAGE.get(v, (None, None))[0],
                        "paper_xdomain": PAPER_AVERAGE.get(v, (None, None))[1]})
  parts.append(reporting.markdown_table(spread_rows, [
      reporting.Column("variant"), reporting.Column("all", "mean, all"),
      reporting.Column("half", "mean, imbalanced half"), reporting.Column("seeds"),
      reporting.Column("paper_celeba", "paper CelebA avg", ".2f"),
      reporting.Column("paper_xdomain", "paper X-Domain avg", ".2f")]))
  if baseline in groups:
    base_all = np.mean([r["mean_cba"] for r in groups[baseline]])
    base_half = np.mean([r["mean_cba_imbalanced_half"] for r in groups[baseline]])
    base_by_seed = {int(r["seed"]): r for r in groups[baseline]}
    base_cba = np.mean([r["cba"] for r in groups[baseline]], axis=0)
    gain_rows = []
    for v, rs in groups.items():
      if v == baseline:
        continue
      paper = PAPER_GAIN.get(v, (None, None))
      paired = paired_gains(rs, base_by_seed)
      gain = np.mean([r["cba"] for r in rs], axis=0) - base_cba
      gain_rows.append({"variant": v, "gain_all": float(np.mean([r["mean_cba"] for r in rs]) - base_all),
                        "gain_half": float(np.mean([r["mean_cba_imbalanced_half"] for r in rs]) - base_half),
                        "seeds": len(rs), "paper_celeba": paper[0], "paper_xdomain": paper[1],
                        "paired_half": signed_mean_pm_std(paired),
                        "positive": f"{sum(p > 0 for p in paired)}/{len(paired)}" if paired else "-",
                        "rho": gain_imbalance_correlation(gain, ratios)})
    parts += ["", f"## Gain over `{baseline}` ({len(groups[baseline])} seeds), percentage points "
              "(Table 4 style)\n",
              "Paired: the gain on the more imbalanced half of each seed over the same seed's "
              f"`{baseline}` run (mean ± std over the matched seeds; `> 0`: how many were positive). "
              "ρ: Spearman correlation over the attributes between the gain (mean over seeds) and the "
              "imbalance ratio (> 0: gains grow with imbalance).\n",
              reporting.markdown_table(gain_rows, [
                  reporting.Column("variant"), reporting.Column("gain_all", "gain, all", "+.2f"),
                  reporting.Column("gain_half", "gain, imbalanced half", "+.2f"), reporting.Column("seeds"),
                  reporting.Column("paper_celeba", "paper CelebA", ".2f"),
                  reporting.Column("paper_xdomain", "paper X-Domain", ".2f"),
                  reporting.Column("paired_half", "paired gain, imbalanced half"),
                  reporting.Column("positive", "> 0"), reporting.Column("rho", "ρ(gain, imbalance)", "+.2f")])]
  return "\n".join(parts) + "\n"


FIGURE5_PANELS = (
    ("baselines", BASELINES),
    ("CRL, class level", tuple(v for v in CRL_VARIANTS if "_class_" in v)),
    ("CRL, instance level", tuple(v for v in CRL_VARIANTS if "_instance_" in v)),
)


def plot_gain_vs_imbalance(reports: Sequence[Mapping[str, Any]], path: str, *, baseline: str = "ce") -> None:
  """Figure 5: per-attribute gain over ``baseline`` (mean over seeds) against the imbalance ratio (log x);
  one panel per family (:data:`FIGURE5_PANELS`: baselines, CRL class level, CRL instance level; at most
  four lines each); the grey bars on the zero line are ``baseline``'s seed spread (± std per
  attribute); PNG at ``path``.

  Raises:
    ValueError: no run of ``baseline``.
  """
  groups = _group(reports)
  if baseline not in groups:
    raise ValueError(f"Figure 5 needs a {baseline!r} run; got variants {list(groups)}.")
  ratios = np.asarray(reports[0]["imbalance"], np.float64)
  order = np.argsort(ratios, kind="stable")
  base_runs = np.asarray([r["cba"] for r in groups[baseline]], np.float64)
  base = base_runs.mean(axis=0)
  spread = base_runs.std(axis=0, ddof=1) if len(base_runs) > 1 else np.zeros_like(base)
  panels = [(title, [v for v in members if v in groups and v != baseline]) for title, members in FIGURE5_PANELS]
  others = [v for v in groups if v != baseline and not any(v in m for _, m in panels)]
  if others:
    panels.append(("other", others))
  panels = [(title, members) for title, members in panels if members] or [("", [])]
  with reporting.figure(path, figsize=(4.2 * len(panels), 3.8), ncols=len(panels)) as (_, axes):
    axes = np.atleast_1d(axes)
    for ax, (title, members) in zip(axes, panels):
      ax.errorbar(ratios[order], np.zeros(len(order)), yerr=spread[order], fmt="none", ecolor="0.7",
                  elinewidth=3, label=f"{baseline} seed spread (± std per attribute)")
      ax.axhline(0.0, color="0.4", linewidth=0.8)
      for v in members:
        gain = np.mean([r["cba"] for r in groups[v]], axis=0) - base
        ax.plot(ratios[order], gain[order], marker="o", markersize=3, linewidth=1,
                label=f"{v} ({len(groups[v])} seeds)")
      ax.set_xscale("log")
      ax.set_xlabel("imbalance ratio 1:x (training split)")
      ax.set_title(title, fontsize=10)
      ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel(f"class-balanced accuracy gain over {baseline} (points)")


def validation_curves(runs: Sequence[Mapping[str, Any]], *, metric: str = "mean_cba"
                      ) -> dict[str, dict[int, list[tuple[int, float]]]]:
  """``{variant: {seed: [(step, value), ...]}}``: the periodic ``validation`` evaluations of each run, read
  from ``<workdir>/metrics.jsonl`` (runs without the file are skipped)."""
  import json  # pylint: disable=g-import-not-at-top
  out: dict[str, dict[int, list[tuple[int, float]]]] = {}
  for run in runs:
    report_ = run.get("report") or {}
    path = os.path.join(str(run.get("workdir", "")), "metrics.jsonl")
    if not report_ or not os.path.exists(path):
      continue
    points = []
    with open(path, encoding="utf-8") as f:
      for line in f:
        record = json.loads(line)
        if record.get("split") == "validation" and metric in record:
          points.append((int(record["step"]), float(record[metric])))
    out.setdefault(str(report_["variant"]), {})[int(report_["seed"])] = sorted(dict(points).items())
  return out


def last_quarter_flatness(points: Sequence[tuple[int, float]]) -> dict[str, float]:
  """How flat a validation curve is over its last quarter of steps: ``{"range", "slope_per_1k"}``
  (max - min of the values there, and the least-squares slope per 1 000 steps)."""
  steps = np.asarray([p[0] for p in points], np.float64)
  values = np.asarray([p[1] for p in points], np.float64)
  last = steps >= steps.max() - 0.25 * steps.max()
  if last.sum() < 2:
    return {"range": float("nan"), "slope_per_1k": float("nan")}
  slope = np.polyfit(steps[last], values[last], 1)[0] * 1000.0
  return {"range": float(np.ptp(values[last])), "slope_per_1k": float(slope)}


def plot_validation_curves(curves: Mapping[str, Mapping[int, Sequence[tuple[int, float]]]], path: str, *,
                           variants: Sequence[str] = ("ce", "crl_class_relative", "crl_instance_relative"),
                           metric_label: str = "validation class-balanced accuracy (%)") -> None:
  """The validation curves (one line per seed) of ``variants``; the last quarter of steps is shaded."""
  shown = [v for v in variants if v in curves]
  with reporting.figure(path, figsize=(6.5, 4.0)) as (_, ax):
    end = 0
    for k, v in enumerate(shown):
      for seed, points in sorted(curves[v].items()):
        steps, values = zip(*points)
        end = max(end, max(steps))
        ax.plot(steps, values, color=f"C{k}", linewidth=1, marker=".", markersize=3,
                label=f"{v}" if seed == min(curves[v]) else None)
    if end:
      ax.axvspan(0.75 * end, end, color="0.9", label="last quarter")
    ax.set_xlabel("training step")
    ax.set_ylabel(metric_label)
    ax.legend(fontsize=8)
