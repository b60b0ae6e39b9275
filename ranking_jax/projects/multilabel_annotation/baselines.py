r"""Reference rows of the annotation tables: the upper bound and visual features + kNN tag transfer.

*Deep Convolutional Ranking for Multilabel Image Annotation* (Gong et al.), Tables 1-2, put two rows
beside the CNNs:

* **Upper bound**: the ground truth used as the prediction, with exactly k tags per image. An image with
  more than k true tags keeps k of them, one with fewer is padded with wrong tags, so overall recall is
  :math:`\sum_i \min(|Y_i|, k) / \sum_i |Y_i|` and overall precision :math:`\sum_i \min(|Y_i|, k) / (n k)`:
  the best any top-k annotation can reach. Which true tags are kept and which wrong tags pad is not
  specified; :func:`upper_bound_scores` keeps a random k (``keep="random"``, seeded; the paper's per-class
  recall below 100 % suggests this) or the k rarest (``keep="rarest"``, which maximises the per-class
  recall: it is :math:`\frac{1}{C}\sum_i \sum_{c \text{ kept}} 1 / \mathrm{Pos}_c`, separable per image), and
  pads with random wrong tags.
* **Visual feature + kNN**: tags transferred from the nearest training images in a fixed visual feature
  space, as in Makadia, Pavlovic and Kumar, *A New Baseline for Image Annotation* (ECCV 2008). The paper
  used a combination of classic global features; ours (:func:`visual_features`, 192-d) are two of
  Makadia et al.'s kinds, computed with numpy:

  - a joint HSV colour histogram (8 hue x 3 saturation x 2 value bins; the saturation bins separate the
    vivid objects of the embedded scenes from their pale backgrounds, which a joint RGB histogram of the
    same size mixes up),
  - a HOG-like descriptor: unsigned gradient orientations (central differences on the grey image) in 9
    bins weighted by gradient magnitude, on a 4 x 4 grid of cells,

  each block normalised to sum 1 and square-rooted (the Hellinger map, so Euclidean distance compares
  histograms like the Bhattacharyya coefficient) and weighted equally. Tags are transferred by
  :func:`knn_tag_transfer_scores`. With ``method="makadia"`` (default; Makadia et al.'s greedy transfer as
  we read it) the tags of the nearest neighbour come first, ordered by their training frequency; the
  other tags follow ordered by how many of neighbours 2..K carry them ("local frequency"), then by their
  training co-occurrence with the first neighbour's tags, then by training frequency. With
  ``method="vote"`` tags are ranked by the rank-weighted vote :math:`\sum_{r=1}^K y_{n_r, j} / r`, ties
  by training frequency. Every tag gets a score, so every image gets k tags.

Both return scores ``[images, tags]`` for :func:`ranking_jax.metrics.annotation_precision_recall`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ranking_jax import metrics as metrics_lib
from ranking_jax.data import augment

UPPER_BOUND_KEEP = ("random", "rarest")
KNN_METHODS = ("makadia", "vote")


def _as_labels(labels: np.ndarray) -> np.ndarray:
  on = np.asarray(labels) > 0
  if on.ndim != 2 or 0 in on.shape:
    raise ValueError(f"`labels` must be a non-empty [images, tags] array, got shape {on.shape}.")
  return on


def _scores_from_keys(*keys: np.ndarray) -> np.ndarray:
  """Distinct float64 scores ordering each row lexicographically by ``keys`` (first key most significant,
  larger first); remaining ties go to the lower tag index, as ``annotation_precision_recall`` does."""
  num_tags = keys[0].shape[-1]
  index = np.broadcast_to(np.arange(num_tags), keys[0].shape)
  # lexsort sorts ascending by the last key first: negate the "larger first" keys, index breaks ties.
  order = np.lexsort((index,) + tuple(-np.asarray(k, np.float64) for k in reversed(keys)), axis=-1)
  scores = np.empty(keys[0].shape, np.float64)
  np.put_along_axis(scores, order, np.arange(num_tags, 0, -1, dtype=np.float64)[None, :], axis=-1)
  return scores


def upper_bound_scores(labels: np.ndarray, *, keep: str = "random", seed: int = 0) -> np.ndarray:
  """Scores whose top-k is the ground truth for every k: the upper-bound row of Tables 1-2.

  Each image's true tags score above its wrong ones, so its top-k holds ``min(k, |Y_i|)`` true tags. The
  true tags are in random order (``keep="random"``) or rarest first (``keep="rarest"``, rarity counted in
  ``labels``, random among equals); the wrong tags that pad the top-k are in random order.

  Args:
    labels: multi-hot ``[images, tags]`` (> 0 is a true tag).
    keep: ``"random"`` or ``"rarest"``.
    seed: seed of the random orders.

  Returns:
    float64 ``[images, tags]``, distinct within a row.

  >>> labels = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]])  # tag counts 3, 2, 1, 0
  >>> scores = upper_bound_scores(labels, keep="rarest")
  >>> np.argsort(-scores, axis=1)[[0, 2], :2].tolist()
  [[2, 1], [1, 0]]
  """
  on = _as_labels(labels)
  num_tags = on.shape[1]
  if keep not in UPPER_BOUND_KEEP:
    raise ValueError(f"`keep` must be one of {UPPER_BOUND_KEEP}, got {keep!r}.")
  rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 3])
  jitter = rng.permutation(num_tags * on.shape[0]).reshape(on.shape)  # distinct random tie-breaks
  if keep == "random":
    return _scores_from_keys(on, jitter)
  rarity = -on.sum(axis=0).astype(np.float64)  # larger = rarer
  return _scores_from_keys(on, np.where(on, rarity[None, :], 0.0), jitter)


def upper_bound_row(labels: np.ndarray, k: int, *, keep: str = "random", seed: int = 0
                    ) -> metrics_lib.AnnotationMetrics:
  """:func:`ranking_jax.metrics.annotation_precision_recall` of :func:`upper_bound_scores`."""
  return metrics_lib.annotation_precision_recall(upper_bound_scores(labels, keep=keep, seed=seed),
                                                 _as_labels(labels), k)


def _block(histogram: np.ndarray) -> np.ndarray:
  """L1-normalise the last axis and take the square root (Hellinger map)."""
  total = histogram.sum(axis=-1, keepdims=True)
  return np.sqrt(histogram / np.maximum(total, 1e-12))


def _hsv_histogram(images: np.ndarray, hue_bins: int, saturation_bins: int, value_bins: int) -> np.ndarray:
  """Joint HSV histogram ``[n, hue_bins * saturation_bins * value_bins]`` of images ``[n, h, w, 3]``."""
  hsv = augment.rgb_to_hsv(images.astype(np.float32))
  n = len(images)
  code = np.zeros(hsv.shape[:-1], np.int64)
  for channel, bins in enumerate((hue_bins, saturation_bins, value_bins)):
    code = code * bins + np.minimum((hsv[..., channel] * bins).astype(np.int64), bins - 1)
  size = hue_bins * saturation_bins * value_bins
  offsets = (np.arange(n) * size)[:, None]
  counts = np.bincount((code.reshape(n, -1) + offsets).ravel(), minlength=n * size)
  return counts.reshape(n, size).astype(np.float64)


def _orientation_histograms(images: np.ndarray, bins: int, cells: int) -> np.ndarray:
  """Magnitude-weighted unsigned gradient-orientation histograms ``[n, cells, cells, bins]``."""
  grey = images @ np.array([0.299, 0.587, 0.114])
  gy, gx = np.gradient(grey, axis=(1, 2))
  magnitude = np.hypot(gx, gy)
  angle = np.mod(np.arctan2(gy, gx), np.pi)
  index = np.minimum((angle / np.pi * bins).astype(np.int64), bins - 1)
  n, height, width = grey.shape
  row_cell = np.minimum(np.arange(height) * cells // height, cells - 1)
  col_cell = np.minimum(np.arange(width) * cells // width, cells - 1)
  code = ((row_cell[:, None] * cells + col_cell[None, :]) * bins)[None] + index
  offsets = (np.arange(n) * cells * cells * bins)[:, None, None]
  histogram = np.bincount((code + offsets).ravel(), weights=magnitude.ravel(),
                          minlength=n * cells * cells * bins)
  return histogram.reshape(n, cells, cells, bins)


def visual_features(images: np.ndarray, *, hue_bins: int = 8, saturation_bins: int = 3, value_bins: int = 2,
                    orientation_bins: int = 9, cells: int = 4) -> np.ndarray:
  """Fixed visual features of the kNN baseline (module docstring): float32 ``[n, d]``.

  ``d = hue_bins * saturation_bins * value_bins + cells**2 * orientation_bins`` (48 + 144 = 192 by
  default). Each of the two blocks is L1-normalised and square-rooted, so it has unit Euclidean norm (or 0
  for an empty block, e.g. the gradients of a constant image).

  Args:
    images: ``[n, h, w, 3]`` in ``[0, 1]`` (uint8 images are divided by 255).

  >>> visual_features(np.zeros((2, 8, 8, 3))).shape
  (2, 192)
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"`images` must be [n, h, w, 3], got shape {images.shape}.")
  if min(hue_bins, saturation_bins, value_bins, orientation_bins, cells) < 1:
    raise ValueError("every bin count and `cells` must be >= 1.")
  if images.dtype == np.uint8:
    images = images / 255.0
  images = np.clip(np.asarray(images, np.float64), 0.0, 1.0)
  colour = _block(_hsv_histogram(images, hue_bins, saturation_bins, value_bins))
  gradients = _block(_orientation_histograms(images, orientation_bins, cells).reshape(len(images), -1))
  return np.concatenate([colour, gradients], axis=1).astype(np.float32)


def knn_tag_transfer_scores(train_features: np.ndarray, train_labels: np.ndarray,
                            query_features: np.ndarray, *, num_neighbours: int = 10,
                            method: str = "makadia", exclude_self: bool = False,
                            neighbours: Optional[np.ndarray] = None) -> np.ndarray:
  """Tag scores of query images transferred from their nearest training images (Euclidean distance).

  See the module docstring for ``method``. Scores are distinct within a row and only their order
  matters (the top-k is the transferred annotation).

  Args:
    train_features: ``[n, d]``.
    train_labels: multi-hot ``[n, tags]``.
    query_features: ``[m, d]``.
    num_neighbours: K.
    method: ``"makadia"`` or ``"vote"``.
    exclude_self: drop a neighbour at distance 0 with the query's own index (query = training set,
      leave-one-out).
    neighbours: optional precomputed neighbour indices ``[m, K]`` (nearest first), skipping the search.

  Returns:
    float64 ``[m, tags]``.

  >>> train = np.array([[0.0], [1.0], [5.0]])
  >>> labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
  >>> scores = knn_tag_transfer_scores(train, labels, np.array([[0.9]]), num_neighbours=2)
  >>> np.argsort(-scores[0]).tolist()  # nearest (index 1) first, then the second neighbour's tag
  [1, 0, 2]
  """
  on = _as_labels(train_labels)
  train_features = np.asarray(train_features, np.float64)
  query_features = np.asarray(query_features, np.float64)
  if train_features.ndim != 2 or len(train_features) != len(on):
    raise ValueError(f"`train_features` must be [{len(on)}, d], got {train_features.shape}.")
  if query_features.ndim != 2 or query_features.shape[1] != train_features.shape[1]:
    raise ValueError(f"`query_features` must be [m, {train_features.shape[1]}], got {query_features.shape}.")
  if method not in KNN_METHODS:
    raise ValueError(f"`method` must be one of {KNN_METHODS}, got {method!r}.")
  limit = len(on) - (1 if exclude_self else 0)
  if not 1 <= num_neighbours <= limit:
    raise ValueError(f"`num_neighbours` must be in [1, {limit}], got {num_neighbours}.")
  if neighbours is None:
    neighbours = nearest_neighbours(train_features, query_features, num_neighbours,
                                    exclude_self=exclude_self)
  neighbours = np.asarray(neighbours, np.int64)
  if neighbours.shape != (len(query_features), num_neighbours):
    raise ValueError(f"`neighbours` must be [{len(query_features)}, {num_neighbours}], got "
                     f"{neighbours.shape}.")
  frequency = on.sum(axis=0).astype(np.float64)
  frequency_key = np.broadcast_to(frequency, (len(neighbours), on.shape[1]))
  neighbour_labels = on[neighbours]  # [m, K, tags]
  if method == "vote":
    vote = (neighbour_labels / np.arange(1, num_neighbours + 1)[None, :, None]).sum(axis=1)
    return _scores_from_keys(vote, frequency_key)
  first = neighbour_labels[:, 0]  # [m, tags]
  local = neighbour_labels[:, 1:].sum(axis=1).astype(np.float64)
  # Co-occurrence of each tag with the first neighbour's tags over the training set.
  cooccurrence = on.T.astype(np.float64) @ on.astype(np.float64)  # [tags, tags]
  with_first = first.astype(np.float64) @ cooccurrence
  return _scores_from_keys(first, np.where(first, 0.0, local), np.where(first, 0.0, with_first),
                           frequency_key)


def nearest_neighbours(train_features: np.ndarray, query_features: np.ndarray, num_neighbours: int, *,
                       exclude_self: bool = False) -> np.ndarray:
  """Indices ``[m, K]`` of each query's K nearest training points (Euclidean; sklearn, brute force).

  With ``exclude_self`` the query set is the training set and point i is not its own neighbour.
  """
  from sklearn.neighbors import NearestNeighbors  # pylint: disable=g-import-not-at-top

  search = NearestNeighbors(n_neighbors=num_neighbours + (1 if exclude_self else 0), algorithm="brute")
  search.fit(np.asarray(train_features, np.float64))
  _, indices = search.kneighbors(np.asarray(query_features, np.float64))
  if not exclude_self:
    return indices
  rows = []
  for i, row in enumerate(indices):
    row = row[row != i]
    rows.append(row[:num_neighbours])
  return np.stack(rows)
