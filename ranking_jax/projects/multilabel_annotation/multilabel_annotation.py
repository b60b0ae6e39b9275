r"""The multilabel-annotation experiment of Gong et al. as a trainer :class:`~ranking_jax.train.Task`.

*Deep Convolutional Ranking for Multilabel Image Annotation* (Gong, Jia, Leung, Toshev, Ioffe) trains one
AlexNet-style network per loss and annotates every test image with its :math:`k` highest-scoring tags
(Tables 1-2, :math:`k = 3` and :math:`k = 5`). The losses (:mod:`ranking_jax.losses.multilabel`):

* ``softmax``: cross-entropy against the target spread evenly over the :math:`c_+` positive tags;
* ``pairwise``: :math:`\sum_{j \in Y_+} \sum_{k \in Y_-} \max(0, 1 - f_j + f_k)`;
* ``warp`` (the paper's): the same hinges over **all** negatives, weighted by
  :math:`L(r_j) = \sum_{i \le r_j} 1/i` with the rank :math:`r_j` estimated by sampling negatives until
  one violates the margin, :math:`r_j = \lfloor (c - 1) / s \rfloor` (:func:`~ranking_jax.losses.warp_loss`);
* ``warp_single_violator``: WSABIE / LightFM's form, only the one sampled violator's hinge per positive,
  weighted by :math:`L(r_j)` (:func:`~ranking_jax.losses.warp_loss_single_violator`);
* ``warp_exact`` (ours): every violator weighted by :math:`L(r_j)/r_j` with the exact margin rank (no
  sampling; what the single-violator form averages to).

The sampled WARP needs a ``jax.random`` key in the loss term, which sees ``(outputs, batch)`` only: every
training batch therefore carries ``batch["step"]`` (int32, the global step, one entry per example) and the
term uses ``fold_in(key(config.seed), step)``, a deterministic function of the step (a resumed run draws
the same negatives).

Metrics (``validation`` every few epochs, ``test`` at the end): :func:`annotation_metrics`, i.e.
:func:`ranking_jax.metrics.annotation_precision_recall` at each :math:`k` of ``config.eval.ks``: per-class
recall and precision, overall recall and precision, and :math:`N_+`, the number of tags recalled at least
once, which the tables print as a percentage of the tags (as the paper does: 100.00 = all 81 concepts).

Reference rows (no training). The paper's *upper bound* (the ground truth, :math:`k` tags per image) and
*visual feature + kNN* tag transfer (:mod:`ranking_jax.projects.multilabel_annotation.baselines`; our features: a joint HSV
histogram and a 4 x 4 HOG-like grid, Makadia et al.'s greedy transfer from 10 neighbours) are computed by
:func:`reference_rows` in every run's :func:`report` (a few seconds on the embedded data: they depend only
on the data, so every run of one dataset prints the same rows) and read back from any run by
``experiments/multilabel_annotation_tables.py``. They are not variants: a variant trains a network.

Data (``config.data.name``): ``"scene_tags"`` (the embedded scenes with 80 NUS-WIDE-shaped tags,
:mod:`ranking_jax.projects.multilabel_annotation.scene_tags`, rendered once with :func:`ranking_jax.data.rendered.render`),
``"nuswide"`` (the official files, :mod:`ranking_jax.projects.multilabel_annotation.nuswide`) or ``"voc2007_multilabel"`` (TFDS ``voc/2007``,
:mod:`ranking_jax.data.voc_multilabel`). Config: ``configs/multilabel_annotation.py``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Any, Iterator, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax.projects.multilabel_annotation import baselines as baselines
from ranking_jax import metrics as metrics_lib
from ranking_jax import models
from ranking_jax import reporting
from ranking_jax import train
from ranking_jax.data import pipeline
from ranking_jax.data import registry as data_registry
from ranking_jax.data import rendered
from ranking_jax.projects.multilabel_annotation import scene_tags
from ranking_jax.projects.multilabel_annotation import tag_head  # pylint: disable=unused-import (registers "tag_head")
from ranking_jax.losses import multilabel

Batch = dict[str, np.ndarray]
LOSSES = ("softmax", "pairwise", "warp", "warp_single_violator", "warp_exact")
KS = (3, 5)
METRICS = ("per_class_recall", "per_class_precision", "overall_recall", "overall_precision", "n_plus_percent")
METRIC_HEADERS = ("per-class recall", "per-class precision", "overall recall", "overall precision", "N+ (%)")

# The paper's Tables 1 (k = 3) and 2 (k = 5) on NUS-WIDE, in per cent, in METRICS order.
PAPER_TABLES: dict[int, dict[str, tuple[float, ...]]] = {
    3: {"upper_bound": (97.00, 44.87, 82.76, 66.49, 100.00),
        "knn": (19.33, 32.59, 53.44, 42.93, 91.36),
        "svm": (18.79, 21.51, 35.87, 28.82, 82.72),
        "softmax": (31.22, 31.68, 59.52, 47.82, 98.76),
        "pairwise": (26.83, 31.93, 58.00, 46.59, 95.06),
        "warp": (35.60, 31.65, 60.49, 48.59, 96.29)},
    5: {"upper_bound": (99.57, 28.83, 96.40, 46.22, 100.00),
        "knn": (32.14, 22.56, 66.98, 32.29, 95.06),
        "svm": (34.19, 18.79, 47.15, 22.73, 96.30),
        "softmax": (48.24, 21.98, 74.04, 35.69, 98.76),
        "pairwise": (42.48, 22.74, 72.78, 35.08, 97.53),
        "warp": (52.03, 22.31, 75.00, 36.16, 100.00)},
}
PAPER_ROW_NAMES = {"upper_bound": "Upper bound", "upper_bound_rarest": "Upper bound", "knn": "Visual Feature + kNN", "svm": "Visual Feature + SVM",
                   "softmax": "CNN + Softmax", "pairwise": "CNN + Ranking", "warp": "CNN + WARP",
                   "warp_single_violator": "CNN + WARP", "warp_exact": "CNN + WARP"}
# (the paper has one WARP row: it is beside each of our three forms)
REFERENCE_ROWS = ("upper_bound", "upper_bound_rarest", "knn")
ROW_NAMES = {"upper_bound": "upper bound (ground truth, k tags)",
             "upper_bound_rarest": "upper bound, rarest true tags kept", "knn": "visual features + kNN",
             "softmax": "CNN + softmax", "pairwise": "CNN + pairwise ranking",
             "warp": "CNN + WARP (paper: all negatives, sampled rank)",
             "warp_single_violator": "CNN + WARP (single sampled violator)",
             "warp_exact": "CNN + WARP (exact ranks, L(r)/r)"}

# Our rows without a paper row of their own: the paper's closest row goes beside them.
_PAPER_ALIASES = {"upper_bound_rarest": "upper_bound", "warp_exact": "warp",
                  "warp_single_violator": "warp"}
_IMAGE_KEY = "image"
_FEATURE_KEY = "features"  # a frozen trunk's pooled features stand in for the image (celeba_hq_features)
_LABEL_KEY = "labels"


# ----------------------------------------------------------------------------------------------- data


@data_registry.register_dataset("scene_tags")
def _scene_tags_splits(data_config: Any) -> dict[str, Any]:
  """The ``scene_tags`` dataset (see :func:`make_splits`)."""
  sources = scene_tags.make_scene_tags_splits(
      int(data_config.num_train), int(data_config.num_validation), int(data_config.num_test),
      seed=int(data_config.seed), image_size=int(data_config.image_size))
  # Drawing a 64x64 scene and its tags costs ~10 ms: once per run (or per cache_dir).
  return {split: rendered.render(source, keys=(_IMAGE_KEY, _LABEL_KEY),
                                 cache_dir=data_config.get("cache_dir", "") or "",
                                 cache_key=["scene_tags", source.cache_key()], name="scene_tags",
                                 description=f"rendering {len(source)} {split} scenes with tags")
          for split, source in sources.items()}


@data_registry.register_dataset("nuswide")
def _nuswide_splits(data_config: Any) -> dict[str, Any]:
  """The ``nuswide`` dataset (see :func:`make_splits`)."""
  from ranking_jax.projects.multilabel_annotation import nuswide  # pylint: disable=g-import-not-at-top
  if not data_config.data_dir:
    raise nuswide.DataNotFoundError("config.data.data_dir is empty: set "
                                    "--config.data.data_dir=/path/to/NUS-WIDE. " + nuswide._HELP)  # pylint: disable=protected-access
  return nuswide.make_nuswide_splits(
      data_config.data_dir, image_dir=data_config.image_dir or None, image_size=int(data_config.image_size),
      validation_fraction=float(data_config.validation_fraction), seed=int(data_config.seed),
      missing_images=str(data_config.missing_images))


@data_registry.register_dataset("voc2007_multilabel")
def _voc2007_multilabel_splits(data_config: Any) -> dict[str, Any]:
  """The ``voc2007_multilabel`` dataset (see :func:`make_splits`)."""
  from ranking_jax.data import voc_multilabel  # pylint: disable=g-import-not-at-top
  return voc_multilabel.make_voc2007_splits(
      data_config.data_dir or None, image_size=int(data_config.image_size),
      validation_fraction=float(data_config.validation_fraction), seed=int(data_config.seed))


@data_registry.register_dataset("celeba_hq_features")
def _celeba_hq_feature_splits(data_config: Any) -> dict[str, Any]:
  """CelebA-HQ's 40 attributes as tags, each image as the frozen ImageNet EfficientNet-Lite0's pooled
  features (cached in ``data_config.feature_cache_dir``; see :func:`make_splits`)."""
  from ranking_jax.data import celeba_hq  # pylint: disable=g-import-not-at-top
  from ranking_jax.data import feature_cache  # pylint: disable=g-import-not-at-top
  from ranking_jax.models import pretrained_trunk  # pylint: disable=g-import-not-at-top
  image_config = {key: data_config[key] for key in celeba_hq.DEFAULT_CONFIG if key in data_config}
  # Only a cache miss reads images: decode them on demand instead of preloading all 30 000.
  images = celeba_hq.build_splits({**image_config, "preload": False})
  cache_dir = data_config.get("feature_cache_dir", "") or pretrained_trunk.DEFAULT_CACHE_DIR
  features = pretrained_trunk.feature_splits(images, cache_dir=cache_dir)
  return {split: feature_cache.FeatureSource(
      {_FEATURE_KEY: source.arrays[_FEATURE_KEY],
       _LABEL_KEY: np.asarray(source.arrays["attributes"], np.float32)},
      names=tuple(images[split].names)) for split, source in features.items()}


DATASETS = ('scene_tags', 'nuswide', 'voc2007_multilabel', 'celeba_hq_features',)


def make_splits(data_config: Any) -> dict[str, Any]:
  """``{"train", "validation", "test"}`` sources described by ``config.data``.

  ``"scene_tags"``: disjoint scene ranges of one seed (``num_train``, ``num_validation``, ``num_test``,
  ``seed``, ``image_size``), rendered once into memory (optionally cached in ``cache_dir``).
  ``"nuswide"``: the official lists under ``data_dir`` (``image_dir``, ``missing_images``), a seeded
  ``validation_fraction`` of the train list held out. ``"celeba_hq_features"``: the seeded CelebA-HQ split
  of :func:`ranking_jax.data.celeba_hq.build_splits` (``data_dir``, ``image_size``, ``seed``, fractions),
  each image replaced by the frozen ImageNet EfficientNet-Lite0's pooled features (key ``"features"``,
  cached in ``feature_cache_dir`` by :func:`ranking_jax.models.pretrained_trunk.feature_splits`), the 40
  attributes as the tags (key ``"labels"``). ``"voc2007_multilabel"``: TFDS ``voc/2007`` under ``data_dir``
  (trainval minus a hold-out, test). Real images are decoded on demand.

  Raises:
    ranking_jax.data.DataNotFoundError: a file of the real datasets is missing (the message names it).
    ValueError: an unknown ``data_config.name``.
  """
  return data_registry.build_splits(data_config, accepted=DATASETS)


def tag_names(data_config: Any, splits: Mapping[str, Any]) -> tuple[str, ...]:
  """The tag (concept, class) names of the label columns."""
  if data_config.name == "nuswide":
    return tuple(splits["train"].concepts)
  if data_config.name == "celeba_hq_features":
    return tuple(splits["train"].names)
  if data_config.name == "voc2007_multilabel":
    from ranking_jax.data import voc_multilabel  # pylint: disable=g-import-not-at-top
    return voc_multilabel.VOC_CLASSES
  return scene_tags.TAG_NAMES


def crop(images: np.ndarray, size: int, rng: Optional[np.random.Generator] = None) -> np.ndarray:
  """``size`` x ``size`` crops of ``images [n, H, W, C]``: random (one offset per image) with ``rng``,
  central without. ``size`` 0 or >= the image side returns ``images`` unchanged.

  >>> crop(np.arange(16.0).reshape(1, 4, 4, 1), 2)[0, ..., 0].tolist()
  [[5.0, 6.0], [9.0, 10.0]]
  """
  if not size:
    return images
  n, height, width = images.shape[:3]
  if size >= height and size >= width:
    return images
  if rng is None:
    tops = np.full(n, (height - size) // 2)
    lefts = np.full(n, (width - size) // 2)
  else:
    tops = rng.integers(0, height - size + 1, n)
    lefts = rng.integers(0, width - size + 1, n)
  return np.stack([image[t:t + size, l:l + size] for image, t, l in zip(images, tops, lefts)])


def to_trainer_batch(batch: Mapping[str, np.ndarray], crop_size: int = 0) -> Batch:
  """The image under ``"inputs"`` (centre-cropped to ``crop_size``), or a trunk's precomputed
  ``"features"`` when the batch has them, and the multi-hot ``"labels"``.

  >>> out = to_trainer_batch({"image": np.zeros((2, 4, 4, 3)), "labels": np.eye(2), "index": np.arange(2)})
  >>> sorted(out), out["labels"].dtype
  (['inputs', 'labels'], dtype('float32'))
  """
  if _FEATURE_KEY in batch:
    inputs = np.asarray(batch[_FEATURE_KEY], np.float32)
  else:
    inputs = crop(np.asarray(batch[_IMAGE_KEY], np.float32), crop_size)
  out = {"inputs": inputs,
         _LABEL_KEY: np.asarray(batch[_LABEL_KEY], np.float32)}
  if "mask" in batch:
    out["mask"] = np.asarray(batch["mask"], bool)
  return out


# ------------------------------------------------------------------------------------- losses, metrics


def make_loss_terms(loss: str, *, seed: int = 0, warp_num_trials: Optional[int] = None,
                    normalize_pairwise: bool = False) -> dict[str, Any]:
  """``{loss: fn(outputs, batch)}``: the variant's single loss term on ``batch["labels"]``.

  ``"warp"`` and ``"warp_single_violator"`` draw with ``fold_in(key(seed), batch["step"][0])`` (the
  train iterator adds ``"step"``), so the draws are a deterministic function of the global step. A term is NaN when some
  output is not finite (the losses would mask it and return 0), so the trainer stops a diverged run.

  >>> import jax.numpy as jnp
  >>> terms = make_loss_terms("pairwise")
  >>> float(terms["pairwise"](jnp.array([[2.0, 0.5, 1.0, -1.0]]), {"labels": jnp.array([[1, 1, 0, 0]])}))
  1.5
  """
  if loss not in LOSSES:
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
  if loss == "softmax":
    fn = lambda outputs, batch: multilabel.multilabel_softmax_loss(outputs, batch[_LABEL_KEY])
  elif loss == "pairwise":
    fn = lambda outputs, batch: multilabel.pairwise_ranking_loss(outputs, batch[_LABEL_KEY],
                                                                 normalize=normalize_pairwise)
  elif loss == "warp_exact":
    fn = lambda outputs, batch: multilabel.warp_loss_exact(outputs, batch[_LABEL_KEY])
  else:
    base_key = int(seed)

    def fn(outputs, batch):
      if "step" not in batch:
        raise KeyError("the sampled WARP term needs batch['step'] (the global step) to derive its key.")
      key = jax.random.fold_in(jax.random.key(base_key), batch["step"].reshape(-1)[0])
      sampled = multilabel.warp_loss if loss == "warp" else multilabel.warp_loss_single_violator
      return sampled(outputs, batch[_LABEL_KEY], key=key, num_trials=warp_num_trials)

  def checked(outputs, batch):
    # The losses mask non-finite scores (loss 0): a diverged network must stop the run instead.
    return jnp.where(jnp.all(jnp.isfinite(outputs)), fn(outputs, batch), jnp.nan)
  return {loss: checked}


def annotation_metrics(predictions: np.ndarray, targets: Mapping[str, np.ndarray],
                       ks: Sequence[int] = KS) -> dict[str, float]:
  """Tables 1-2's metrics at every ``k`` of ``ks`` as fractions (N+ as a count and as % of the tags).

  Keys ``k<k>/<metric>`` for ``metric`` in :data:`METRICS` and ``k<k>/n_plus`` (the count), and
  ``score_spread``: the mean over tags of the scores' standard deviation across images. 0 means the network
  ignores the image (every image gets the same top k: the tag prior); a dead-ReLU collapse shows here first.

  >>> out = annotation_metrics(np.array([[0.9, 0.8, 0.1], [0.2, 0.7, 0.6]]),
  ...                          {"labels": np.array([[1, 0, 0], [0, 1, 1]])}, ks=(1,))
  >>> out["k1/overall_precision"], out["k1/n_plus"], round(out["k1/n_plus_percent"], 2)
  (1.0, 2.0, 66.67)
  """
  scores = np.asarray(predictions, np.float64)
  labels = np.asarray(targets[_LABEL_KEY]) > 0
  out: dict[str, float] = {}
  for k in ks:
    m = metrics_lib.annotation_precision_recall(np.nan_to_num(scores, nan=-np.inf), labels, int(k))
    out.update({f"k{k}/per_class_recall": m.per_class_recall, f"k{k}/per_class_precision": m.per_class_precision,
                f"k{k}/overall_recall": m.overall_recall, f"k{k}/overall_precision": m.overall_precision,
                f"k{k}/n_plus": float(m.n_plus), f"k{k}/n_plus_percent": 100.0 * m.n_plus / labels.shape[1]})
  out["num_examples"] = float(len(labels))
  out["num_nonfinite"] = float(np.sum(~np.isfinite(scores)))
  finite = np.where(np.isfinite(scores), scores, np.nan)
  out["score_spread"] = float(np.nanmean(np.nanstd(finite, axis=0))) if np.isfinite(finite).any() else 0.0
  return out


# ------------------------------------------------------------------------------------------------ task


def requirements(config: Any) -> train.Requirements:
  """The sampled WARP term draws one key per step for the whole batch."""
  return train.Requirements(global_batch="The sampled WARP term draws one key per step for the whole batch"
                            if config.loss.name in ("warp", "warp_single_violator") else "",
                            pretrained_weights="efficientnet_lite0"
                            if config.data.name == "celeba_hq_features" else "")


def make_task(config: Any, splits: Optional[Mapping[str, Any]] = None) -> train.Task:
  """The trainer :class:`~ranking_jax.train.Task` of ``config`` (``configs/multilabel_annotation.py``).

  Training batches come from ``splits["train"]`` (shuffled per epoch; random ``config.data.crop_size``
  crops when set) with the global step under ``"step"``; the ``validation`` evaluator runs every
  ``config.eval_every_*`` and the ``test`` evaluator at the end (centre crops); :func:`report` then writes
  Tables 1-2 with the reference rows and the paper's beside. ``splits`` defaults to :func:`make_splits`.
  """
  if config.loss.name not in LOSSES:
    raise train.ConfigValueError(f"config.loss.name must be one of {LOSSES}, got {config.loss.name!r}.")
  train.check_requirements(config, requirements(config))
  if splits is None:
    splits = make_splits(config.data)
  train_source = splits["train"]
  batch_size, seed = int(config.batch_size), int(config.seed)
  eval_batch_size = int(config.eval_batch_size)
  crop_size = int(config.data.get("crop_size", 0) or 0)
  transform = None
  if crop_size:
    transform = lambda batch, rng: {**batch, _IMAGE_KEY: crop(np.asarray(batch[_IMAGE_KEY]), crop_size, rng)}

  def make_train_iterator(start_step: int, process_index: int, process_count: int) -> Iterator[Batch]:
    batches = pipeline.make_train_iterator(train_source, batch_size, seed=seed, start_step=start_step,
                                           process_index=process_index, process_count=process_count,
                                           transform=transform)

    def with_step():
      for step, batch in enumerate(batches, start=int(start_step)):
        out = to_trainer_batch(batch)
        out["step"] = np.full(len(out[_LABEL_KEY]), step, np.int32)
        yield out
    return pipeline.prefetch(with_step())

  def make_eval_iterator(source: Any) -> Iterator[Batch]:
    batches = pipeline.make_eval_iterator(source, eval_batch_size, process_index=jax.process_index(),
                                          process_count=jax.process_count())
    return (to_trainer_batch(b, crop_size) for b in batches)

  ks = tuple(int(k) for k in config.eval.ks)
  metrics_fn = functools.partial(annotation_metrics, ks=ks)
  evaluators = {}
  if "validation" in splits:
    evaluators["validation"] = train.Evaluator(functools.partial(make_eval_iterator, splits["validation"]),
                                               metrics_fn)
  evaluators["test"] = train.Evaluator(functools.partial(make_eval_iterator, splits["test"]), metrics_fn,
                                       periodic=False)
  num_trials = config.loss.get("warp_num_trials", None)
  return train.Task(requirements=requirements(config), model=models.build_model(config.model.name, **config.model.kwargs.to_dict()),
                    loss_terms=make_loss_terms(config.loss.name, seed=seed,
                                               warp_num_trials=None if num_trials is None else int(num_trials),
                                               normalize_pairwise=bool(config.loss.normalize_pairwise)),
                    make_train_iterator=make_train_iterator, evaluators=evaluators,
                    num_train_examples=len(train_source),
                    report=functools.partial(report, config, splits), example_name="img")


# ----------------------------------------------------------------------------------- reference rows


def label_matrix(source: Any, chunk_size: int = 500) -> np.ndarray:
  """bool ``[len, tags]``: the labels of a source (its in-memory array when it has one)."""
  arrays = getattr(source, "arrays", None)
  if arrays is not None and _LABEL_KEY in arrays:
    return np.asarray(arrays[_LABEL_KEY]) > 0
  matrix = getattr(source, "label_matrix", None)
  if isinstance(matrix, np.ndarray):
    return matrix > 0
  if callable(matrix):
    return np.asarray(matrix()[_LABEL_KEY]) > 0
  return np.concatenate([np.asarray(source[np.arange(s, min(s + chunk_size, len(source)))][_LABEL_KEY]) > 0
                         for s in range(0, len(source), chunk_size)])


def source_features(source: Any, *, max_examples: int = 0, chunk_size: int = 250, crop_size: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
  """``(visual_features [n, 192], indices [n])`` of the first ``max_examples`` (0 = all) examples.

  A source of precomputed trunk features (key ``"features"``, ``celeba_hq_features``) gives those features
  scaled to unit L2 norm instead (the kNN then compares them by cosine), not the hand-made ones."""
  n = len(source) if not max_examples else min(len(source), int(max_examples))
  indices = np.arange(n)
  arrays = getattr(source, "arrays", None)
  if arrays is not None and _FEATURE_KEY in arrays:
    features = np.asarray(arrays[_FEATURE_KEY][:n], np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12), indices
  features = []
  for start in range(0, n, chunk_size):
    part = indices[start:start + chunk_size]
    if arrays is not None and _IMAGE_KEY in arrays:
      images = arrays[_IMAGE_KEY][part]  # uint8: visual_features divides by 255
    else:
      images = np.asarray(source[part][_IMAGE_KEY])
    features.append(baselines.visual_features(crop(images, crop_size)))
  return np.concatenate(features), indices


def reference_rows(splits: Mapping[str, Any], *, ks: Sequence[int] = KS, num_neighbours: int = 10,
                   knn_method: str = "makadia", knn_max_train: int = 0, upper_bound_keep: str = "random",
                   crop_size: int = 0) -> dict[str, dict[str, Any]]:
  """The reference rows on ``splits["test"]``: ``{name: {"k3": metrics, ...}}`` for ``name`` in
  :data:`REFERENCE_ROWS`: the upper bound keeping a random ``k`` of an image's true tags
  (``upper_bound_keep``, default) and keeping the rarest ones (which maximises the per-class recall; the
  paper does not say which it kept, its 97 % per-class recall at k = 3 is closer to this one), and kNN.

  Metrics are those of :func:`annotation_metrics`; ``knn`` transfers tags from (the first
  ``knn_max_train``, 0 = all) training images in the space of
  :func:`ranking_jax.projects.multilabel_annotation.baselines.visual_features`.
  """
  test_labels = label_matrix(splits["test"])
  train_features, train_indices = source_features(splits["train"], max_examples=knn_max_train,
                                                  crop_size=crop_size)
  train_labels = label_matrix(splits["train"])[train_indices]
  test_features, _ = source_features(splits["test"], crop_size=crop_size)
  knn_scores = baselines.knn_tag_transfer_scores(train_features, train_labels, test_features,
                                                 num_neighbours=num_neighbours, method=knn_method)
  upper_scores = baselines.upper_bound_scores(test_labels, keep=upper_bound_keep)
  rarest_scores = baselines.upper_bound_scores(test_labels, keep="rarest")
  out = {}
  for name, scores in (("upper_bound", upper_scores), ("upper_bound_rarest", rarest_scores),
                       ("knn", knn_scores)):
    metrics = annotation_metrics(scores, {_LABEL_KEY: test_labels}, ks)
    out[name] = {f"k{k}": {m: metrics[f"k{k}/{m}"] for m in METRICS} for k in ks}
    out[name]["recall_by_tag"] = {f"k{k}": metrics_lib.annotation_precision_recall(
        scores, test_labels, int(k)).recall_by_class.tolist() for k in ks}
  space = ("the frozen trunk's L2-normalised features" if _FEATURE_KEY in getattr(splits["train"], "arrays", {})
           else "HSV histogram + HOG-like grid (192-d)")
  out["knn"]["description"] = (f"{knn_method} transfer from {num_neighbours} neighbours among "
                               f"{len(train_labels)} training images; {space}")
  out["upper_bound"]["description"] = f"test ground truth, k tags per image (keep={upper_bound_keep})"
  out["upper_bound_rarest"]["description"] = "test ground truth, k tags per image (keep=rarest)"
  return out


# --------------------------------------------------------------------------------------------- reports


def table_rows(measured: Sequence[tuple[str, Mapping[str, Any]]], k: int,
               paper_keys: Sequence[Optional[str]]) -> list[dict[str, Any]]:
  """Rows for :func:`annotation_table`: each measured ``(name, {metric: fraction or value})`` in per cent,
  followed by the paper's row of the same method (``paper_keys``, ``None`` for none)."""
  rows = []
  for (name, values), paper_key in zip(measured, paper_keys):
    row = {"method": name}
    for metric in METRICS:
      value = values.get(metric)
      if isinstance(value, str) or value is None:
        row[metric] = value
      else:
        row[metric] = float(value) if metric == "n_plus_percent" else 100.0 * float(value)
    rows.append(row)
    lookup = _PAPER_ALIASES.get(paper_key, paper_key)
    if lookup is not None and lookup in PAPER_TABLES[k]:
      rows.append({"method": f"*paper: {PAPER_ROW_NAMES[lookup]}*", **dict(zip(METRICS, PAPER_TABLES[k][lookup]))})
  return rows


def annotation_table(rows: Sequence[Mapping[str, Any]]) -> str:
  """A markdown table in the paper's column order, values in per cent (N+ as % of the tags)."""
  columns = [reporting.Column("method")] + [reporting.Column(m, h, ".2f") for m, h in zip(METRICS,
                                                                                           METRIC_HEADERS)]
  return reporting.markdown_table(rows, columns)


def plot_recall_vs_frequency(curves: Mapping[str, np.ndarray], frequency: np.ndarray, path: str, *,
                             k: int = 3, title: str = "") -> None:
  """Per-tag recall at ``k`` against the tag's training frequency (log axis), one series per method,
  with each method's mean recall over frequency bins (the paper's argument: WARP helps rare tags)."""
  frequency = np.asarray(frequency, np.float64)
  positive = np.maximum(frequency, 1e-4)
  edges = np.quantile(positive, np.linspace(0.0, 1.0, 6))
  with reporting.figure(path, figsize=(6.5, 4.5)) as (_, axes):
    for i, (name, recall) in enumerate(curves.items()):
      recall = np.asarray(recall, np.float64)
      axes.scatter(positive * (1.0 + 0.04 * (i - 1)), recall, s=12, alpha=0.5, color=f"C{i}",
                   edgecolors="none")
      centres, means = [], []
      for low, high in zip(edges[:-1], edges[1:]):
        inside = (positive >= low) & (positive <= high)
        if inside.any():
          centres.append(float(np.exp(np.mean(np.log(positive[inside])))))
          means.append(float(recall[inside].mean()))
      axes.plot(centres, means, "-o", color=f"C{i}", label=f"{name} (mean per frequency bin)")
    axes.set_xscale("log")
    axes.set_xlabel("tag frequency in the training set")
    axes.set_ylabel(f"per-tag recall at k = {k} (test)")
    axes.set_ylim(-0.03, 1.03)
    axes.set_title(title or f"Per-tag recall vs tag frequency (k = {k})")
    axes.legend(loc="upper left", fontsize=8)


def _cached_reference_rows(config: Any, splits: Mapping[str, Any], ks: Sequence[int]) -> dict[str, Any]:
  """:func:`reference_rows` of ``config``'s data, stored as JSON in ``config.data.cache_dir`` (when set)
  under a hash of everything they depend on, so runs of the same data compute them once."""
  options = dict(ks=tuple(ks), num_neighbours=int(config.eval.knn_neighbours),
                 knn_max_train=int(config.eval.knn_max_train),
                 crop_size=int(config.data.get("crop_size", 0) or 0))
  cache_dir = config.data.get("cache_dir", "") or ""
  path = ""
  if cache_dir:
    key = json.dumps([2, config.data.to_dict(), options], sort_keys=True, default=str)
    path = os.path.join(cache_dir, f"annotation_reference_{hashlib.sha256(key.encode()).hexdigest()[:16]}.json")
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        return json.load(f)
  rows = reference_rows(splits, **options)
  if path:
    os.makedirs(cache_dir, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
      json.dump(rows, f)
    os.replace(temporary, path)
  return rows


def report(config: Any, splits: Mapping[str, Any], result: train.TrainResult, workdir: str) -> dict[str, Any]:
  """Tables 1-2 of this run beside the reference rows and the paper's (``results.md``) and
  ``recall_vs_frequency.png``; returns the metrics, per-tag recalls, tag frequencies and reference rows
  (stored under ``results["report"]``)."""
  test = result.predictions["test"]
  variant = str(config.variant)
  loss = str(config.loss.name)
  ks = tuple(int(k) for k in config.eval.ks)
  names = tag_names(config.data, splits)
  train_labels = label_matrix(splits["train"])
  frequency = train_labels.mean(axis=0)
  test_labels = np.asarray(test.targets[_LABEL_KEY]) > 0
  scores = np.nan_to_num(np.asarray(test.outputs, np.float64), nan=-np.inf)
  recall_by_tag = {f"k{k}": metrics_lib.annotation_precision_recall(scores, test_labels, k).recall_by_class
                   .tolist() for k in ks}
  reference = {}
  if config.eval.reference_rows:
    reference = _cached_reference_rows(config, splits, ks)
  incomplete = "" if result.results.get("complete", True) else " (INCOMPLETE run)"
  steps = result.results["step"]
  sections = [f"# Multilabel annotation, {variant}{incomplete}\n",
              f"Data: {config.data.name} ({len(names)} tags, {len(test_labels)} test images); "
              f"model {config.model.name} {dict(config.model.kwargs)}; {steps} steps, seed {config.seed}. "
              "Values in per cent; N+ = tags recalled at least once, as % of the tags. The paper's rows "
              "(NUS-WIDE, 81 concepts) are in italics.\n"]
  out: dict[str, Any] = {"variant": variant, "loss": loss, "data": config.data.name, "steps": steps,
                         "seed": int(config.seed), "tags": list(names), "tag_frequency": frequency.tolist(),
                         "recall_by_tag": recall_by_tag, "reference": reference}
  for k in ks:
    ours = {m: test.metrics[f"k{k}/{m}"] for m in METRICS}
    out[f"k{k}"] = ours
    measured = [(ROW_NAMES[name] + " (ours)", reference[name][f"k{k}"]) for name in REFERENCE_ROWS
                if name in reference]
    paper_keys = [None if name == "upper_bound" else name for name in REFERENCE_ROWS if name in reference]
    measured.append((f"{ROW_NAMES[loss]} (this run)", ours))
    paper_keys.append(loss)
    table_number = {3: "Table 1", 5: "Table 2"}.get(k, "Table")
    sections.append(f"## {table_number}: k = {k}\n\n{annotation_table(table_rows(measured, k, paper_keys))}\n")
  curves = {ROW_NAMES[loss]: np.asarray(recall_by_tag[f"k{ks[0]}"])}
  if "knn" in reference:
    curves[ROW_NAMES["knn"]] = np.asarray(reference["knn"]["recall_by_tag"][f"k{ks[0]}"])
  plot_recall_vs_frequency(curves, frequency, os.path.join(workdir, "recall_vs_frequency.png"), k=ks[0],
                           title=f"{variant}: per-tag recall at k = {ks[0]} vs tag frequency")
  sections.append("![per-tag recall vs tag frequency](recall_vs_frequency.png)\n")
  text = "\n".join(sections)
  reporting.write_markdown(workdir, text)
  print(text, flush=True)
  return out
