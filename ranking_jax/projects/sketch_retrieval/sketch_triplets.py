r"""Triplet generation and sampling for fine-grained sketch-based image retrieval.

From *Deep Multi-task Attribute-driven Ranking for Fine-grained Sketch-based Image Retrieval* (Song,
Song, Xiang, Hospedales, Ruan, BMVC 2016), Sec. 2.3 and 3.2. Every strategy first builds, for each query
sketch, a *ranked list* of 10 photos (``rankings``: int ``[num_sketches, 10]``, best first), then
*samples* (sketch, positive, negative) triplets from pairs of that list, the photo of higher rank being the
positive:

Generation
  * *automatic* (:func:`automatic_rankings`): "use attribute similarity to construct a top-10 candidate
    list of most similar photos given a query sketch", then rank them "by similarity with respect to the
    ground-truth match" with fixed photo features. The paper uses ImageNet CNN features; without ImageNet
    weights the default fixed features here are :func:`edge_hog_features` (a HOG descriptor of the photo
    edge maps, in numpy), and any other fixed feature array can be passed instead.
  * *human* (original): the human triplet annotations themselves (QMUL: ``load_sketch_triplets`` of
    :mod:`ranking_jax.projects.sketch_retrieval.qmul`, 135 per training sketch from three annotators, 45 per test sketch).
  * *human-optimised* (:func:`human_optimised_rankings`): "a globally optimised rank list from the annotated
    pairs using the generalised Bradley-Terry model" (Caron & Doucet 2012), fitted per sketch by
    :func:`fit_bradley_terry` (MAP with a Gamma prior, minorisation-maximisation updates).

Sampling from a list of 10 (:func:`sample_triplets`, :data:`SAMPLING_RANK_GAPS`): *exhaustive* (all
:math:`10 \cdot 9 / 2 = 45` pairs), *hard* (the 9 pairs of neighbouring ranks), *medium* (rank distance 2-3,
15 pairs) and *easy* (rank distance > 3, 21 pairs).

For the embedded generator (:mod:`ranking_jax.projects.sketch_retrieval.sketches`), :func:`ground_truth_rankings` ranks photos
by the generator's true similarity (the evaluation triplets, noise-free) and :func:`simulate_annotators`
produces QMUL-style noisy human triplets from it, so the human variants run on embedded data too.

:class:`TripletSource` turns a pair source and a triplet array into the ``{"anchor", "positive",
"negative"}`` image batches of the three-branch network.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol, Sequence, Union

import numpy as np
import scipy.ndimage
import scipy.spatial.distance

# Inclusive (smallest, largest) rank distance of each sampling strategy; None: no upper bound.
SAMPLING_RANK_GAPS: Mapping[str, tuple[int, Optional[int]]] = {
    "exhaustive": (1, None),
    "hard": (1, 1),
    "medium": (2, 3),
    "easy": (4, None),
}
DEFAULT_LIST_SIZE = 10


# ----------------------------------------------------------------------------------------------------------
# Fixed features.


def edge_hog_features(images: np.ndarray, *, cells: int = 8, orientations: int = 9,
                      blur_sigma: float = 1.0, block_normalize: bool = True) -> np.ndarray:
  """HOG-like descriptor of line drawings / edge maps (the fixed features of automatic ranking).

  Histograms of oriented gradients (Dalal & Triggs, CVPR 2005) in numpy: the image is inverted (strokes
  become 1), blurred with a Gaussian of ``blur_sigma`` pixels at 64-pixel scale (scaled with the image),
  its gradient orientations (unsigned, ``orientations`` bins over 180 degrees, linear interpolation
  between bins) are accumulated with their magnitudes in a ``cells x cells`` grid, and each cell
  histogram is L2-normalised over its 2x2 block neighbourhood (L2-Hys, clipped at 0.2).

  Args:
    images: float ``[N, H, W]`` or ``[N, H, W, C]`` in ``[0, 1]``, white background, dark strokes
      (channels are averaged).
    cells: cells per image side (``H`` and ``W`` need not be multiples: cells are pixel ranges).
    orientations: orientation bins.
    blur_sigma: Gaussian blur before the gradients, in pixels of a 64-pixel image.
    block_normalize: block normalisation (else each cell histogram is L2-normalised on its own).

  Returns:
    float32 ``[N, F]``: ``F = (cells - 1)^2 * 4 * orientations`` with block normalisation, else
    ``cells^2 * orientations``; each row has unit L2 norm (or is all zero for a blank image).

  >>> features = edge_hog_features(np.ones((2, 32, 32, 1)), cells=4)
  >>> features.shape, float(np.abs(features).sum())
  ((2, 324), 0.0)
  """
  images = np.asarray(images, np.float32)
  if images.ndim == 4:
    images = images.mean(axis=-1)
  if images.ndim != 3:
    raise ValueError(f"`images` must be [N, H, W] or [N, H, W, C], got shape {images.shape}.")
  if cells < 2 or orientations < 1:
    raise ValueError(f"need cells >= 2 and orientations >= 1, got {cells}, {orientations}.")
  num, height, width = images.shape
  ink = 1.0 - images
  sigma = blur_sigma * max(height, width) / 64.0
  if sigma > 0:
    ink = scipy.ndimage.gaussian_filter(ink, sigma=(0, sigma, sigma), mode="constant")
  gy = np.zeros_like(ink)
  gx = np.zeros_like(ink)
  gy[:, 1:-1] = ink[:, 2:] - ink[:, :-2]
  gx[:, :, 1:-1] = ink[:, :, 2:] - ink[:, :, :-2]
  magnitude = np.hypot(gx, gy)
  angle = np.mod(np.arctan2(gy, gx), np.pi) / np.pi * orientations  # [0, orientations)
  low = np.floor(angle).astype(np.int64) % orientations
  high = (low + 1) % orientations
  frac = angle - np.floor(angle)
  row_cell = np.minimum((np.arange(height) * cells) // height, cells - 1)
  col_cell = np.minimum((np.arange(width) * cells) // width, cells - 1)
  cell_index = (row_cell[:, None] * cells + col_cell[None, :])[None]  # [1, H, W]
  flat = (np.arange(num)[:, None, None] * cells * cells + cell_index) * orientations
  histogram = np.zeros(num * cells * cells * orientations, np.float64)
  np.add.at(histogram, (flat + low).ravel(), (magnitude * (1.0 - frac)).ravel())
  np.add.at(histogram, (flat + high).ravel(), (magnitude * frac).ravel())
  histogram = histogram.reshape(num, cells, cells, orientations)
  if block_normalize:
    blocks = np.concatenate([histogram[:, :-1, :-1], histogram[:, 1:, :-1], histogram[:, :-1, 1:],
                             histogram[:, 1:, 1:]], axis=-1).reshape(num, -1, 4 * orientations)
    blocks = _l2_hys(blocks)
    features = blocks.reshape(num, -1)
  else:
    features = (histogram / (np.linalg.norm(histogram, axis=-1, keepdims=True) + 1e-6)).reshape(num, -1)
  norm = np.linalg.norm(features, axis=1, keepdims=True)
  return (features / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def _l2_hys(blocks: np.ndarray, clip: float = 0.2) -> np.ndarray:
  blocks = blocks / np.sqrt(np.sum(blocks ** 2, axis=-1, keepdims=True) + 1e-6)
  blocks = np.minimum(blocks, clip)
  return blocks / np.sqrt(np.sum(blocks ** 2, axis=-1, keepdims=True) + 1e-6)


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Squared Euclidean distances between rows, on the host: ``[Na, D] x [Nb, D] -> [Na, Nb]`` float64.

  ``scipy.spatial.distance.cdist(..., "sqeuclidean")``: differences first, so the result does not depend on
  a common offset of the rows (expanding ``|a|^2 + |b|^2 - 2 a.b`` cancels when the offset is large; the
  jitted counterpart is :func:`ranking_jax.utils.squared_distances`).

  Raises:
    ValueError: if ``a`` or ``b`` is not 2-D, the feature sizes differ, or a value is not finite.

  >>> squared_distances(np.array([[512695.0]]), np.array([[512804.0]])).tolist()
  [[11881.0]]
  """
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise ValueError(f"need [N, D] arrays with the same D, got {a.shape} and {b.shape}.")
  if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
    raise ValueError("features contain NaN or inf; distances between them are undefined.")
  if a.size == 0 or b.size == 0:
    return np.zeros((a.shape[0], b.shape[0]), np.float64)
  return scipy.spatial.distance.cdist(a, b, "sqeuclidean")


# ----------------------------------------------------------------------------------------------------------
# Ranked lists.


def _check_true_match(true_match: Optional[np.ndarray], num_sketches: int, num_photos: int) -> np.ndarray:
  if true_match is None:
    if num_photos < num_sketches:
      raise ValueError(f"Without `true_match` photo i matches sketch i: need at least {num_sketches} photos, "
                       f"got {num_photos}.")
    return np.arange(num_sketches)
  true_match = np.asarray(true_match)
  if true_match.shape != (num_sketches,) or true_match.dtype.kind not in "iu":
    raise ValueError(f"`true_match` must be an int array of shape ({num_sketches},), got {true_match.dtype} "
                     f"{true_match.shape}.")
  if num_sketches and (true_match.min() < 0 or true_match.max() >= num_photos):
    raise ValueError(f"`true_match` indices must lie in [0, {num_photos}).")
  return true_match


def automatic_rankings(sketch_attributes: np.ndarray, photo_attributes: np.ndarray,
                       photo_features: np.ndarray, *, true_match: Optional[np.ndarray] = None,
                       list_size: int = DEFAULT_LIST_SIZE, include_true_match: bool = True) -> np.ndarray:
  """Automatic top-10 ranked lists: attribute short list, ordered by photo-photo feature similarity.

  "We first use attribute similarity to construct a top-10 candidate list of most similar photos given a
  query sketch. [Fixed] features are then used to further rank these photos by similarity with respect to
  the ground-truth match" (Song et al., BMVC 2016, Sec. 2.3). Attribute similarity is the number of equal
  binary attributes (Hamming); ties at the cut-off are broken by feature distance to the true match, then
  by photo index. The list is then sorted by squared Euclidean feature distance to the true match, so the
  true match (distance 0) comes first.

  Args:
    sketch_attributes: ``[num_sketches, A]`` 0/1 attributes of the query sketches.
    photo_attributes: ``[num_photos, A]`` 0/1 attributes of the gallery photos.
    photo_features: ``[num_photos, F]`` fixed photo features (e.g. :func:`edge_hog_features`).
    true_match: int ``[num_sketches]`` photo of each sketch; default photo i for sketch i.
    list_size: length of each list (10 in the paper).
    include_true_match: force the true match into the list (it is always in it when the sketch's
      attributes equal its photo's).

  Returns:
    int64 ``[num_sketches, list_size]`` photo indices, best first.

  Raises:
    ValueError: on shape mismatches or fewer than ``list_size`` photos.

  >>> attributes = np.array([[1, 0], [1, 0], [0, 1], [1, 1]])
  >>> features = np.array([[0.0], [1.0], [0.5], [3.0]])
  >>> automatic_rankings(attributes, attributes, features, list_size=3)[:2].tolist()
  [[0, 1, 3], [1, 0, 3]]
  """
  sketch_attributes = np.asarray(sketch_attributes, np.float64)
  photo_attributes = np.asarray(photo_attributes, np.float64)
  photo_features = np.asarray(photo_features, np.float64)
  if sketch_attributes.ndim != 2 or photo_attributes.ndim != 2 or \
      sketch_attributes.shape[1] != photo_attributes.shape[1]:
    raise ValueError(f"attributes must be [N, A] arrays with the same A, got {sketch_attributes.shape} and "
                     f"{photo_attributes.shape}.")
  if photo_features.ndim != 2 or photo_features.shape[0] != photo_attributes.shape[0]:
    raise ValueError(f"`photo_features` must be [num_photos={photo_attributes.shape[0]}, F], got "
                     f"{photo_features.shape}.")
  num_sketches, num_photos = sketch_attributes.shape[0], photo_attributes.shape[0]
  if not 2 <= list_size <= num_photos:
    raise ValueError(f"`list_size` must lie in [2, num_photos={num_photos}], got {list_size}.")
  true_match = _check_true_match(true_match, num_sketches, num_photos)
  mismatches = np.abs(sketch_attributes[:, None, :] - photo_attributes[None, :, :]).sum(-1)  # [S, P]
  feature_distance = squared_distances(photo_features[true_match], photo_features)  # [S, P]
  rankings = np.zeros((num_sketches, list_size), np.int64)
  photos = np.arange(num_photos)
  for s in range(num_sketches):
    # lexsort: last key is primary: fewest attribute mismatches, then closest to the match, then index.
    order = np.lexsort((photos, feature_distance[s], mismatches[s]))
    chosen = order[:list_size]
    if include_true_match and true_match[s] not in chosen:
      chosen = np.concatenate([[true_match[s]], chosen[:list_size - 1]])
    rankings[s] = chosen[np.lexsort((chosen, feature_distance[s, chosen]))]
  return rankings


def ground_truth_rankings(sketch_descriptors: np.ndarray, photo_descriptors: np.ndarray, *,
                          list_size: int = DEFAULT_LIST_SIZE) -> np.ndarray:
  """The ``list_size`` photos nearest to each sketch's instance by true descriptor distance, best first.

  For generated data (:func:`ranking_jax.projects.sketch_retrieval.sketches.descriptor_distances`): the noise-free analogue of
  QMUL's annotated top-10 lists, used for the embedded data's evaluation triplets. Ties are broken by photo
  index.

  Returns:
    int64 ``[num_sketches, list_size]``.

  >>> ground_truth_rankings(np.array([[0.0], [2.0]]), np.array([[0.0], [2.0], [0.5]]), list_size=2).tolist()
  [[0, 2], [1, 2]]
  """
  distances = squared_distances(sketch_descriptors, photo_descriptors)
  if not 2 <= list_size <= distances.shape[1]:
    raise ValueError(f"`list_size` must lie in [2, num_photos={distances.shape[1]}], got {list_size}.")
  photos = np.arange(distances.shape[1])
  return np.stack([np.lexsort((photos, row))[:list_size] for row in distances]).astype(np.int64).reshape(
      distances.shape[0], list_size)


# ----------------------------------------------------------------------------------------------------------
# Sampling.


def rank_pairs(list_size: int, strategy: str) -> np.ndarray:
  """The (higher rank, lower rank) position pairs of a sampling strategy, int64 ``[num_pairs, 2]``.

  >>> rank_pairs(10, "hard")[:3].tolist(), len(rank_pairs(10, "medium")), len(rank_pairs(10, "easy"))
  ([[0, 1], [1, 2], [2, 3]], 15, 21)
  """
  if strategy not in SAMPLING_RANK_GAPS:
    raise ValueError(f"unknown sampling strategy {strategy!r}; choose one of {sorted(SAMPLING_RANK_GAPS)}.")
  smallest, largest = SAMPLING_RANK_GAPS[strategy]
  largest = list_size - 1 if largest is None else largest
  first, second = np.triu_indices(list_size, k=1)
  gap = second - first
  keep = (gap >= smallest) & (gap <= largest)
  return np.stack([first[keep], second[keep]], axis=1).astype(np.int64)


def sample_triplets(rankings: np.ndarray, strategy: str = "hard", *,
                    sketches: Optional[np.ndarray] = None) -> np.ndarray:
  """(sketch, positive, negative) triplets from ranked lists (Song et al., BMVC 2016, Sec. 2.3, 3.2).

  The photo of higher rank in a pair is the positive. With lists of 10: *exhaustive* gives 45 triplets
  per sketch, *hard* the 9 of neighbouring ranks (anchor-R1-R2, ..., anchor-R9-R10), *medium* the 15 of
  rank distance 2-3, *easy* the 21 of rank distance > 3.

  Args:
    rankings: int ``[num_sketches, list_size]`` photo indices, best first.
    strategy: a key of :data:`SAMPLING_RANK_GAPS`.
    sketches: int ``[num_sketches]`` sketch index of each row; default ``arange(num_sketches)``.

  Returns:
    int64 ``[num_sketches * num_pairs, 3]``, grouped by sketch, pairs in rank order.

  >>> sample_triplets(np.array([[5, 3, 4]]), "exhaustive").tolist()
  [[0, 5, 3], [0, 5, 4], [0, 3, 4]]
  """
  rankings = np.asarray(rankings)
  if rankings.ndim != 2 or rankings.dtype.kind not in "iu" or rankings.shape[1] < 2:
    raise ValueError(f"`rankings` must be an int array [num_sketches, list_size >= 2], got {rankings.dtype} "
                     f"{rankings.shape}.")
  num_sketches, list_size = rankings.shape
  sketches = np.arange(num_sketches) if sketches is None else np.asarray(sketches)
  if sketches.shape != (num_sketches,):
    raise ValueError(f"`sketches` must have shape ({num_sketches},), got {sketches.shape}.")
  pairs = rank_pairs(list_size, strategy)
  anchors = np.repeat(sketches, len(pairs))
  positives = rankings[:, pairs[:, 0]].reshape(-1)
  negatives = rankings[:, pairs[:, 1]].reshape(-1)
  return np.stack([anchors, positives, negatives], axis=1).astype(np.int64)


# ----------------------------------------------------------------------------------------------------------
# Human triplets and Bradley-Terry.


def candidate_lists(triplets: np.ndarray, num_sketches: int) -> list[np.ndarray]:
  """The photos each sketch's annotated triplets compare (sorted), one int64 array per sketch."""
  triplets = _check_triplets(triplets)
  lists = []
  for s in range(num_sketches):
    rows = triplets[triplets[:, 0] == s]
    lists.append(np.unique(rows[:, 1:]).astype(np.int64))
  return lists


def _check_triplets(triplets: np.ndarray) -> np.ndarray:
  triplets = np.asarray(triplets)
  if triplets.ndim != 2 or triplets.shape[1] != 3 or (triplets.size and triplets.dtype.kind not in "iu"):
    raise ValueError(f"`triplets` must be an int array [num_triplets, 3] (sketch, positive, negative), got "
                     f"{triplets.dtype} {triplets.shape}.")
  return triplets.astype(np.int64)


def win_matrix(triplets: np.ndarray, sketch: int, candidates: np.ndarray) -> np.ndarray:
  """``wins[i, j]``: how often candidate i was judged more similar to ``sketch`` than candidate j."""
  triplets = _check_triplets(triplets)
  candidates = np.asarray(candidates)
  rows = triplets[triplets[:, 0] == sketch]
  position = {int(p): k for k, p in enumerate(candidates)}
  wins = np.zeros((len(candidates), len(candidates)), np.float64)
  for _, winner, loser in rows:
    if int(winner) in position and int(loser) in position:
      wins[position[int(winner)], position[int(loser)]] += 1.0
  return wins


def fit_bradley_terry(wins: np.ndarray, *, prior_shape: float = 1.5, prior_rate: float = 0.5,
                      max_iterations: int = 10_000, tolerance: float = 1e-9) -> np.ndarray:
  r"""Bradley-Terry strengths from pairwise wins: MAP with a Gamma prior, by minorisation-maximisation.

  The Bradley-Terry model says item i beats item j with probability :math:`\lambda_i / (\lambda_i +
  \lambda_j)`. With independent :math:`\mathrm{Gamma}(a, b)` priors on the strengths (Caron & Doucet,
  "Efficient Bayesian inference for generalized Bradley-Terry models", JCGS 2012, cited by Song et al.
  for the globally optimised human ranking), the MM update (Hunter, Ann. Statist. 2004) of the
  log-posterior

  .. math::

     \lambda_i \leftarrow \frac{a - 1 + w_i}{b + \sum_{j \ne i} n_{ij} / (\lambda_i + \lambda_j)},
     \qquad w_i = \sum_j \mathrm{wins}_{ij},\quad n_{ij} = \mathrm{wins}_{ij} + \mathrm{wins}_{ji}

  increases it monotonically. ``prior_shape=1, prior_rate=0`` is the maximum-likelihood estimate (then
  only defined up to scale: the result is normalised to geometric mean 1 over the positive strengths,
  and an item that never wins gets strength 0). The default prior (mode 1, half a pseudo-win per item)
  keeps every strength positive and finite when an item wins or loses all its comparisons.

  Args:
    wins: float ``[..., n, n]`` non-negative counts (leading axes: independent problems, fitted
      together); the diagonal is ignored.
    prior_shape: :math:`a \ge 1`.
    prior_rate: :math:`b \ge 0`.
    max_iterations: MM iterations at most.
    tolerance: stop when the largest relative change of any strength falls below this.

  Returns:
    float64 ``[..., n]`` strengths :math:`\lambda` (rank items by decreasing strength).

  >>> wins = np.array([[0, 2, 4], [1, 0, 2], [1, 1, 0]])  # consistent with strengths 4 : 2 : 1
  >>> (fit_bradley_terry(wins, prior_shape=1.0, prior_rate=0.0) * 2).round(6).tolist()
  [4.0, 2.0, 1.0]
  """
  wins = np.array(wins, np.float64)
  if wins.ndim < 2 or wins.shape[-1] != wins.shape[-2]:
    raise ValueError(f"`wins` must be square matrices [..., n, n], got shape {wins.shape}.")
  if not np.all(np.isfinite(wins)) or (wins < 0).any():
    raise ValueError("`wins` must hold finite, non-negative counts.")
  if prior_shape < 1.0 or prior_rate < 0.0:
    raise ValueError(f"need prior_shape >= 1 and prior_rate >= 0, got {prior_shape}, {prior_rate}.")
  n = wins.shape[-1]
  wins = wins * (1.0 - np.eye(n))
  games = wins + np.swapaxes(wins, -1, -2)
  numerator = prior_shape - 1.0 + wins.sum(axis=-1)
  strengths = np.ones(wins.shape[:-1])
  for _ in range(max_iterations):
    denominator = prior_rate + np.sum(games / (strengths[..., :, None] + strengths[..., None, :]), axis=-1)
    updated = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), strengths)
    if prior_rate == 0.0:  # scale-free likelihood: pin the geometric mean of the positive strengths
      positive = updated > 0
      log_mean = np.sum(np.log(np.where(positive, updated, 1.0)), -1) / np.maximum(positive.sum(-1), 1)
      updated = updated / np.exp(log_mean)[..., None]
    change = np.max(np.abs(updated - strengths) / np.maximum(strengths, 1e-300), initial=0.0)
    strengths = updated
    if change < tolerance:
      break
  return strengths


def human_optimised_rankings(triplets: np.ndarray, num_sketches: int, *, list_size: Optional[int] = None,
                             **bradley_terry_options: Any) -> np.ndarray:
  """Per-sketch global rankings fitted to human triplets with Bradley-Terry ("human-optimised").

  "We clean human annotations by inferring a globally optimised rank list from the annotated pairs using
  the generalised Bradley-Terry model" (Song et al., BMVC 2016, Sec. 3.2). For each sketch the candidates
  are the photos its triplets compare (10 in QMUL), ranked by decreasing :func:`fit_bradley_terry`
  strength (ties by photo index).

  Args:
    triplets: int ``[N, 3]`` human triplets (sketch, more similar photo, less similar photo).
    num_sketches: number of sketches (rows of the result).
    list_size: expected candidates per sketch; default: the count of sketch 0.
    **bradley_terry_options: passed to :func:`fit_bradley_terry`.

  Returns:
    int64 ``[num_sketches, list_size]``.

  Raises:
    ValueError: a sketch compares a different number of photos than ``list_size``.

  >>> triplets = np.array([[0, 7, 8], [0, 8, 9], [0, 7, 9], [0, 9, 8]])
  >>> human_optimised_rankings(triplets, 1).tolist()
  [[7, 8, 9]]
  """
  lists = candidate_lists(triplets, num_sketches)
  if list_size is None:
    list_size = len(lists[0]) if lists else DEFAULT_LIST_SIZE
  for s, candidates in enumerate(lists):
    if len(candidates) != list_size:
      raise ValueError(f"Sketch {s}'s triplets compare {len(candidates)} photos, expected {list_size}.")
  if not lists:
    return np.zeros((0, list_size), np.int64)
  wins = np.stack([win_matrix(triplets, s, candidates) for s, candidates in enumerate(lists)])
  strengths = fit_bradley_terry(wins, **bradley_terry_options)  # all sketches at once
  return np.stack([candidates[np.lexsort((candidates, -strength))]
                   for candidates, strength in zip(lists, strengths)]).astype(np.int64)


def simulate_annotators(distances: np.ndarray, rankings: np.ndarray, rng: np.random.Generator, *,
                        num_annotators: int = 3, temperature: float = 0.35,
                        pairs: str = "exhaustive") -> np.ndarray:
  r"""Noisy human-style triplets on each sketch's candidate list, in the QMUL annotation's layout.

  Each annotator judges every pair ``(i, j)`` of a sketch's candidates; she calls i more similar with the
  Bradley-Terry probability :math:`\sigma\big((d_j - d_i) / (\tau \bar d)\big)`, where :math:`d` are the true
  distances of the candidates to the sketch and :math:`\bar d` is their mean absolute pairwise difference
  (so ``temperature`` is relative to the list's spread). QMUL-Shoe's training split has three annotators
  (135 triplets per sketch), its test split one set of 45. The default temperature reproduces QMUL-Shoe's
  inter-annotator agreement on the generator's ground-truth top-10 lists: the majority judgement of a pair
  gets 0.89 of its three votes (QMUL-Shoe train: 0.887).

  Args:
    distances: float ``[num_sketches, num_photos]`` true sketch-photo distances (smaller: more similar).
    rankings: int ``[num_sketches, list_size]`` the candidates (any order).
    rng: a seeded ``numpy.random.Generator``.
    num_annotators: judgements per pair.
    temperature: :math:`\tau` (0: noise-free).
    pairs: which pairs are judged (a key of :data:`SAMPLING_RANK_GAPS`; positions in ``rankings``).

  Returns:
    int64 ``[num_sketches * num_annotators * num_pairs, 3]`` (sketch, judged more similar, other).
  """
  distances = np.asarray(distances, np.float64)
  rankings = np.asarray(rankings)
  if distances.ndim != 2 or rankings.ndim != 2 or rankings.shape[0] != distances.shape[0]:
    raise ValueError(f"need distances [S, P] and rankings [S, L] with the same S, got {distances.shape} and "
                     f"{rankings.shape}.")
  if num_annotators < 1 or temperature < 0:
    raise ValueError(f"need num_annotators >= 1 and temperature >= 0, got {num_annotators}, {temperature}.")
  position_pairs = rank_pairs(rankings.shape[1], pairs)
  rows = []
  for s in range(rankings.shape[0]):
    d = distances[s, rankings[s]]
    spread = np.mean(np.abs(d[:, None] - d[None, :])) + 1e-12
    first, second = rankings[s, position_pairs[:, 0]], rankings[s, position_pairs[:, 1]]
    margin = (d[position_pairs[:, 1]] - d[position_pairs[:, 0]]) / spread
    for _ in range(num_annotators):
      if temperature > 0:
        prefer_first = rng.random(len(margin)) < 1.0 / (1.0 + np.exp(-margin / temperature))
      else:
        prefer_first = margin > 0
      winner = np.where(prefer_first, first, second)
      loser = np.where(prefer_first, second, first)
      rows.append(np.stack([np.full(len(margin), s), winner, loser], axis=1))
  return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 3), np.int64)


# ----------------------------------------------------------------------------------------------------------
# Triplet batches.


class PairSource(Protocol):
  """What :class:`TripletSource` needs: sketch i and photo i of a split are a matching pair."""

  def __len__(self) -> int:
    ...

  def sketch_images(self, indices: np.ndarray) -> np.ndarray:
    ...

  def photo_images(self, indices: np.ndarray) -> np.ndarray:
    ...

  @property
  def attributes(self) -> Optional[np.ndarray]:
    ...

  @property
  def sketch_attributes(self) -> Optional[np.ndarray]:
    ...


class TripletSource:
  """Random-access source of (anchor sketch, positive photo, negative photo) image triplets.

  ``source[index_array]`` returns ``anchor``, ``positive``, ``negative`` float32 ``[B, H, W, C]`` and the
  int64 ``triplet`` ``[B, 3]``; with attributes, also ``anchor_attributes``, ``positive_attributes``,
  ``negative_attributes`` float32 ``[B, A]`` (the sketch's own attributes for the anchor).

  Args:
    pairs: a :class:`PairSource` (``SketchPhotoSource``, ``QmulSketchSource``).
    triplets: int ``[N, 3]`` (sketch, positive photo, negative photo) indices into ``pairs``.
    with_attributes: add the attribute keys (default: when ``pairs.attributes`` is not None).

  Raises:
    ValueError: indices out of range, or ``with_attributes=True`` without attributes.

  >>> from ranking_jax.projects.sketch_retrieval.sketches import SketchPhotoSource
  >>> pairs = SketchPhotoSource(4, image_size=16)
  >>> batch = TripletSource(pairs, np.array([[0, 0, 1], [2, 2, 3]]))[np.array([1])]
  >>> batch["anchor"].shape, batch["negative_attributes"].shape, batch["triplet"].tolist()
  ((1, 16, 16, 1), (1, 21), [[2, 2, 3]])
  """

  def __init__(self, pairs: PairSource, triplets: np.ndarray, *, with_attributes: Optional[bool] = None):
    self.pairs = pairs
    self.triplets = _check_triplets(triplets)
    if self.triplets.size and (self.triplets.min() < 0 or self.triplets.max() >= len(pairs)):
      raise ValueError(f"triplet indices must lie in [0, {len(pairs)}).")
    has_attributes = pairs.attributes is not None
    self.with_attributes = has_attributes if with_attributes is None else bool(with_attributes)
    if self.with_attributes and not has_attributes:
      raise ValueError("`with_attributes=True` but the pair source has no attributes (attributes=None).")

  def __len__(self) -> int:
    return len(self.triplets)

  def __getitem__(self, indices: Union[int, Sequence[int], np.ndarray]) -> dict[str, np.ndarray]:
    single = np.ndim(indices) == 0
    indices = np.atleast_1d(np.asarray(indices))
    if indices.dtype.kind not in "iu" or indices.ndim != 1:
      raise TypeError(f"indices must be an int or a 1-D integer array, got {indices!r}.")
    rows = self.triplets[indices]
    batch = {
        "anchor": self.pairs.sketch_images(rows[:, 0]),
        "positive": self.pairs.photo_images(rows[:, 1]),
        "negative": self.pairs.photo_images(rows[:, 2]),
        "triplet": rows,
    }
    if self.with_attributes:
      batch["anchor_attributes"] = np.asarray(self.pairs.sketch_attributes, np.float32)[rows[:, 0]]
      photo_attributes = np.asarray(self.pairs.attributes, np.float32)
      batch["positive_attributes"] = photo_attributes[rows[:, 1]]
      batch["negative_attributes"] = photo_attributes[rows[:, 2]]
    if single:
      batch = {k: v[0] for k, v in batch.items()}
    return batch
