"""Exact evaluation metrics, computed on host (numpy) over a whole evaluation set.

Every function accepts numpy arrays, Python sequences or ``jax.Array`` (converted with ``np.asarray``), checks
shapes and dtypes and says what it expects, and refuses NaN scores with a ``ValueError`` (``+-inf`` are
ordinary, orderable values). Nothing here is differentiable or jittable: use the losses of
:mod:`ranking_jax.losses` for training and these functions to report results.

Conventions shared by the ranking metrics:

* **Scores**: larger means more relevant / more similar. For distances pass ``-distances``.
* **Query x gallery matrices** (``recall_at_k``, ``median_rank``, ``retrieval_accuracy_at_k``): one row per
  query, one column per gallery item.
* **Ties** in scores are never broken by position. Rank-based retrieval metrics count tied non-relevant
  items *ahead* of the relevant one by default (``ties="pessimistic"``), so that a constant scorer gets the
  worst, not the best, result; ``ties="optimistic"`` counts only strictly higher scores. Average precision
  treats a block of tied scores as one threshold (as ``sklearn.metrics.average_precision_score`` does).
* **Lists or queries with no relevant item** have no defined AP / rank: they are *skipped* in the means
  (``mean_average_precision``, ``recall_at_k``, ``median_rank``); a ``ValueError`` is raised if every one
  of them is skipped.
* **Correlations of a constant vector** (``kendall_tau`` variant b, ``spearman_rho``) are 0/0: they return
  ``0.0`` here, where ``scipy.stats`` returns NaN.
* **Dtypes**: bool, integer and floating scores (bfloat16 ``jax.Array`` included) are accepted; integers
  are ordered exactly in their own dtype (never negated, which wraps unsigned types, nor cast to float64,
  which rounds beyond 2**53). Relevance and labels take the same dtypes: 0/1 numbers (bfloat16 included)
  for relevance, whole numbers for class values and indices (``_to_numpy`` converts every input, so a
  bfloat16 array is never refused for its dtype). Results are Python floats or float64 arrays.
* **Zero-size inputs** raise a ``ValueError`` naming what is missing wherever no value is defined (no item,
  no query, fewer than 2 observations, no triplet, no annotated sample); where a value is defined it is
  returned (e.g. ``average_precision`` of zero lists is an empty array).
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np

ArrayLike = Any
KSpec = Union[int, Sequence[int]]

_TIES = ("pessimistic", "optimistic")


# ----------------------------------------------------------------------------------------------------------
# Input checks.


def _to_numpy(x: ArrayLike) -> np.ndarray:
  """``x`` (numpy array, sequence, ``jax.Array``) as a numpy array; every input of a metric goes through it.

  ml_dtypes floats (bfloat16, float8, ...: what ``np.asarray`` makes of a bfloat16 ``jax.Array``) are not
  numpy floats (their dtype kind is ``"V"``) and become float32, which holds each of their values exactly.
  """
  array = np.asarray(x)
  if array.dtype.kind == "V" and array.dtype.name.startswith(("bfloat16", "float8", "float6", "float4")):
    array = array.astype(np.float32)
  return array


def _as_numeric(name: str, x: ArrayLike, *, allow_nan: bool = False) -> np.ndarray:
  """``x`` as a numpy array of booleans, integers or floats; raises on other dtypes and on NaN."""
  array = _to_numpy(x)
  if array.dtype.kind not in "biuf":
    raise TypeError(f"`{name}` must hold real numbers (bool, int or float), got dtype {array.dtype}.")
  if not allow_nan and array.dtype.kind == "f" and np.isnan(array).any():
    raise ValueError(f"`{name}` contains NaN; metrics need orderable scores (+-inf are allowed).")
  return array


def _as_bool(name: str, x: ArrayLike) -> np.ndarray:
  """``x`` as a boolean array; integer or float arrays (bfloat16 included) must hold only 0 and 1."""
  array = _to_numpy(x)
  if array.dtype == np.bool_:
    return array
  if array.dtype.kind not in "iuf":
    raise TypeError(f"`{name}` must be boolean (or 0/1 numbers), got dtype {array.dtype}.")
  if not np.isin(array, (0, 1)).all():
    raise ValueError(f"`{name}` must be boolean or hold only 0 and 1.")
  return array.astype(bool)


def _as_whole_numbers(name: str, x: ArrayLike, *, allow_bool: bool, hint: str = "") -> np.ndarray:
  """``x`` as an integer (or boolean) array: class values or indices.

  Floating inputs (bfloat16 included) are accepted when every value is a whole number (exact in float64,
  so at most 2**53 in magnitude) and converted to int64; other values raise a ValueError (``hint`` says
  what to do instead), other dtypes a TypeError.
  """
  array = _to_numpy(x)
  if array.dtype.kind == "f":
    values = array.astype(np.float64)
    whole = np.isfinite(values) & (np.abs(values) <= 2.0 ** 53)
    whole[whole] = values[whole] == np.round(values[whole])
    if not whole.all():
      raise ValueError(f"`{name}` must hold whole numbers{hint}, got non-integer values.")
    return values.astype(np.int64)
  if array.dtype.kind not in ("biu" if allow_bool else "iu"):
    raise TypeError(f"`{name}` must hold {'int or bool' if allow_bool else 'int'} values{hint}, got dtype "
                    f"{array.dtype}.")
  return array


def _decreasing_order(scores: np.ndarray) -> np.ndarray:
  """Stable order of each list (last axis) by decreasing score, exact in the scores' own dtype.

  Integers and booleans are ordered by their bitwise complement, which reverses the order without
  overflow (negation wraps for unsigned types and the most negative signed value, and a cast to float64
  rounds integers beyond 2**53).
  """
  keys = -scores if scores.dtype.kind == "f" else np.invert(scores)
  return np.argsort(keys, axis=-1, kind="stable")


def _lowest(dtype: np.dtype) -> Any:
  """The smallest value of ``dtype`` (-inf for floats), the identity of a maximum."""
  if dtype.kind == "f":
    return -np.inf
  if dtype.kind == "b":
    return False
  return np.iinfo(dtype).min


def _check_same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
  if a.shape != b.shape:
    raise ValueError(f"`{name_a}` and `{name_b}` must have the same shape, got {a.shape} and {b.shape}.")


def _check_ndim(name: str, x: np.ndarray, ndim: int, what: str) -> None:
  if x.ndim != ndim:
    raise ValueError(f"`{name}` must be {ndim}-D ({what}), got shape {x.shape}.")


def _check_ties(ties: str) -> None:
  if ties not in _TIES:
    raise ValueError(f"`ties` must be one of {_TIES}, got {ties!r}.")


def _check_ks(k: KSpec, upper: int, what: str) -> tuple[np.ndarray, bool]:
  """Validates ``k`` (an int or a sequence of ints in [1, upper]); returns them and whether k was scalar."""
  scalar = np.ndim(k) == 0
  ks = np.atleast_1d(np.asarray(k))
  if ks.size == 0 or ks.ndim != 1 or ks.dtype.kind not in "iu":
    raise ValueError(f"`k` must be a positive int or a sequence of them, got {k!r}.")
  if ks.min() < 1 or ks.max() > upper:
    raise ValueError(f"`k` must lie in [1, {upper}] ({what}), got {k!r}.")
  return ks.astype(np.int64), scalar


# ----------------------------------------------------------------------------------------------------------
# Rank correlations.


def _run_starts(sorted_values: np.ndarray) -> np.ndarray:
  """Boolean flags marking the first element of each run of equal values in a sorted array."""
  new = np.empty(sorted_values.size, dtype=bool)
  new[:1] = True
  np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
  return new


def _tied_pairs(run_starts: np.ndarray) -> int:
  """Number of tied pairs, sum over runs of t (t - 1) / 2, from the run-start flags."""
  if run_starts.all():
    return 0
  starts = np.flatnonzero(run_starts)
  lengths = np.diff(np.append(starts, run_starts.size)).astype(np.int64)
  return int(np.sum(lengths * (lengths - 1) // 2))


_SMALL_GROUP = 8  # group size below which _count_inversions finishes by direct comparisons


def _count_inversions(values: np.ndarray, num_bits: int) -> int:
  """Number of pairs j < i with values[j] > values[i], for non-negative integers below 2**num_bits.

  Radix-style, from the most significant bit down, O(n num_bits): before the pass on bit b the array is
  stably ordered by ``value >> (b + 1)`` (groups of equal prefix, original order kept inside each group).
  A pair that first differs at bit b is an inversion iff the 1 comes before the 0; each 0 therefore
  contributes the number of 1s before it in its group, which is exactly how far it moves left when the
  group is stably partitioned by bit b (zeros first) for the next pass. The partition is computed with one
  cumulative sum, without re-sorting. Once every group holds at most ``_SMALL_GROUP`` items, the inversions
  left inside the groups are counted by comparing each item with its next few neighbours. All counts are
  exact integers.
  """
  n = values.size
  # int32 halves the memory traffic; 2 * n must fit for the position arithmetic below.
  dtype = np.int32 if n < 2**30 else np.int64
  current = values.astype(dtype)
  scratch = np.empty_like(current)
  key = np.empty_like(current)
  bit = np.empty_like(current)
  is_zero = np.empty(n, dtype=bool)
  zeros_upto = np.zeros(n + 1, dtype=dtype)  # zeros_upto[i] = number of zero bits among positions < i
  zeros_incl = zeros_upto[1:]
  new_position = np.empty_like(current)
  positions = np.arange(n, dtype=dtype)
  bounds = np.array([0, n], dtype=np.int64)  # group boundaries, 0 first and n last
  total = 0
  for b in range(num_bits - 1, -1, -1):
    group_sizes = np.diff(bounds)
    largest = int(group_sizes.max())
    if largest <= _SMALL_GROUP:
      # Tiny groups (the last passes when values are distinct): compare each item with the next few
      # items of its group directly, instead of paying per-group bookkeeping on ~n groups per pass.
      np.right_shift(current, b + 1, out=key)
      for shift in range(1, largest):
        same_group = key[shift:] == key[:-shift]
        total += int(np.count_nonzero(same_group & (current[:-shift] > current[shift:])))
      break
    np.right_shift(current, b, out=key)  # key = 2 * group prefix + bit
    np.bitwise_and(key, 1, out=bit)
    np.equal(bit, 0, out=is_zero)
    np.cumsum(is_zero, dtype=dtype, out=zeros_incl)
    zeros_at_bounds = zeros_upto[bounds].astype(np.int64)
    zeros = np.diff(zeros_at_bounds)
    ones = group_sizes - zeros
    ones_before_group = np.cumsum(ones) - ones
    total_zeros = int(zeros_at_bounds[-1])
    # sum over zeros of (old position - new position); sum_zeros i = n Z - sum_i zeros_incl[i].
    sum_zero_positions = n * total_zeros - int(np.sum(zeros_incl, dtype=np.int64))
    sum_zero_new_positions = int(np.dot(zeros, ones_before_group)) + total_zeros * (total_zeros - 1) // 2
    total += sum_zero_positions - sum_zero_new_positions
    # New position: a zero goes to (ones in earlier groups) + (zeros up to and including it) - 1, a one to
    # (zeros up to the end of its group) + (ones before it anywhere) = zeros_through_group + i - zeros_incl[i].
    base = np.empty(2 * zeros.size, dtype=dtype)
    base[0::2] = ones_before_group - 1
    base[1::2] = zeros_at_bounds[1:]
    np.multiply(zeros_incl, 2, out=new_position)
    np.subtract(positions, new_position, out=new_position)
    np.multiply(new_position, bit, out=new_position)
    np.add(new_position, zeros_incl, out=new_position)
    new_position += np.take(base, key)
    scratch[new_position] = current
    current, scratch = scratch, current
    # Each group splits into its zeros and its ones.
    split = np.empty(2 * zeros.size + 1, dtype=np.int64)
    split[0] = 0
    split[1::2] = bounds[:-1] + zeros
    split[2::2] = bounds[1:]
    bounds = split
  return total


def _check_pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
  x = _as_numeric("x", x)
  y = _as_numeric("y", y)
  _check_same_shape("x", x, "y", y)
  _check_ndim("x", x, 1, "one observation per entry")
  if x.size < 2:
    raise ValueError(f"A rank correlation needs at least 2 observations, got {x.size}.")
  return x, y


def kendall_tau(x: ArrayLike, y: ArrayLike, *, variant: str = "b") -> float:
  r"""Kendall rank correlation :math:`\tau_a` or :math:`\tau_b`, exact, in O(n log n).

  With :math:`n_0 = n(n-1)/2` pairs, :math:`n_c` concordant and :math:`n_d` discordant pairs, :math:`n_1`
  pairs tied in ``x`` and :math:`n_2` pairs tied in ``y``:

  .. math::

     \tau_a = \frac{n_c - n_d}{n_0}, \qquad
     \tau_b = \frac{n_c - n_d}{\sqrt{(n_0 - n_1)(n_0 - n_2)}}

  :math:`\tau_a` is the quantity IDE RankNet's Kendall RankLoss relaxes ("IDE RankNet: Estimating the
  difficulty of visual search in an image", eq. 1). :math:`\tau_b` is ``scipy.stats.kendalltau``'s
  default. Pairs tied in ``x`` or in ``y`` are neither concordant nor discordant.

  Algorithm: sort by (x, then y), replace y by dense integer ranks and count the discordant pairs as the
  inversions of those ranks bit by bit (see ``_count_inversions``); the tie counts come from run lengths.
  All counts are exact int64.

  Args:
    x: 1-D array of n >= 2 real numbers (no NaN).
    y: 1-D array of the same shape.
    variant: ``"a"`` or ``"b"``.

  Returns:
    tau as a Python float. If ``x`` or ``y`` is constant, :math:`\tau_b` is 0/0 and ``0.0`` is returned
    (scipy returns NaN); :math:`\tau_a` is then 0 as well.

  >>> kendall_tau([1, 2, 3, 4], [1, 3, 2, 4], variant="a")
  0.666...
  >>> round(kendall_tau([1, 1, 2, 3], [1, 2, 2, 3]), 6)
  0.8
  """
  if variant not in ("a", "b"):
    raise ValueError(f"`variant` must be 'a' or 'b', got {variant!r}.")
  x, y = _check_pair(x, y)
  n = x.size
  order_y = np.argsort(y)
  y_starts = _run_starts(y[order_y])
  dense_y = np.empty(n, dtype=np.int32 if n < 2**31 else np.int64)
  dense_y[order_y] = np.cumsum(y_starts, dtype=dense_y.dtype) - 1
  num_y_values = int(np.count_nonzero(y_starts))
  order_x = np.argsort(x)
  x_starts = _run_starts(x[order_x])
  tied_x = _tied_pairs(x_starts)
  tied_y = _tied_pairs(y_starts)
  y_ranks = dense_y[order_x]
  tied_xy = 0
  if tied_x:
    # Inside a block of tied x, order by y: those pairs must not count as inversions.
    joint_key = (np.cumsum(x_starts, dtype=np.int64) - 1) * num_y_values + y_ranks
    order_xy = np.argsort(joint_key)
    y_ranks = y_ranks[order_xy]
    tied_xy = _tied_pairs(_run_starts(joint_key[order_xy]))
  discordant = _count_inversions(y_ranks, max(1, (num_y_values - 1).bit_length()))
  pairs = n * (n - 1) // 2
  concordant = pairs - tied_x - tied_y + tied_xy - discordant
  if variant == "a":
    return (concordant - discordant) / pairs
  if tied_x == pairs or tied_y == pairs:
    return 0.0
  return (concordant - discordant) / math.sqrt(float(pairs - tied_x) * float(pairs - tied_y))


def average_ranks(values: ArrayLike) -> np.ndarray:
  r"""1-based ranks in increasing order, ties sharing the average of the ranks they span (float64).

  .. math:: \operatorname{rank}(v)_i = \#\{j : v_j < v_i\} + \tfrac{1}{2}\big(1 + \#\{j : v_j = v_i\}\big)

  This is ``scipy.stats.rankdata(values, method="average", axis=-1)``: each list on the last axis is
  ranked on its own, and an empty list gives an empty result. Note the direction: rank 1 is the
  *smallest* value (statistics convention), unlike :mod:`ranking_jax.ranks` where rank 1 is the highest
  score. Integers are compared exactly (never converted or negated).

  Args:
    values: array ``[..., n]`` of real numbers (no NaN), at least 1-D.

  Returns:
    float64 ranks of the same shape.

  >>> average_ranks([10, 30, 20, 20])
  array([1. , 4. , 2.5, 2.5])
  """
  values = _as_numeric("values", values)
  if values.ndim < 1:
    raise ValueError(f"`values` must have at least 1 dimension (lists on the last axis), got shape "
                     f"{values.shape}.")
  n = values.shape[-1]
  order = np.argsort(values, axis=-1, kind="stable")
  sorted_values = np.take_along_axis(values, order, axis=-1)
  # Runs of equal values: each item's run spans [first, last] of the sorted positions.
  starts = np.ones(values.shape, dtype=bool)
  np.not_equal(sorted_values[..., 1:], sorted_values[..., :-1], out=starts[..., 1:])
  ends = np.ones(values.shape, dtype=bool)
  ends[..., :-1] = starts[..., 1:]
  position = np.broadcast_to(np.arange(n), values.shape)
  first = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
  last = np.minimum.accumulate(np.where(ends, position, n - 1)[..., ::-1], axis=-1)[..., ::-1]
  ranks = np.empty(values.shape, dtype=np.float64)
  np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=-1)
  return ranks


def spearman_rho(x: ArrayLike, y: ArrayLike) -> Union[float, np.ndarray]:
  r"""Spearman rank correlation: Pearson correlation of the average ranks of ``x`` and ``y``.

  .. math::

     \rho = \frac{\sum_i (r_i - \bar r)(s_i - \bar s)}{\sqrt{\sum_i (r_i - \bar r)^2 \sum_i (s_i - \bar s)^2}}

  with :math:`r = \operatorname{rank}(x)`, :math:`s = \operatorname{rank}(y)` average ranks (ties share
  their mean rank). Without ties this is SoDeep's eq. 2, :math:`1 - 6 \sum_i (r_i - s_i)^2 / (n(n^2-1))`
  ("SoDeep: a Sorting Deep net to learn ranking loss surrogates"); with ties it equals
  ``scipy.stats.spearmanr``. Each pair of lists on the last axis gives one correlation.

  Args:
    x: array ``[..., n]`` of real numbers (no NaN) with n >= 2.
    y: array of the same shape.

  Returns:
    rho as a Python float for 1-D input, else a float64 array ``[...]``; ``0.0`` for a list where ``x``
    or ``y`` is constant (0/0; scipy returns NaN).

  Raises:
    ValueError: on shapes that differ, fewer than 2 observations per list, or NaN.

  >>> spearman_rho([1, 2, 3, 4], [10, 20, 40, 30])
  0.8
  >>> spearman_rho([[1, 2, 3], [1, 2, 3]], [[1, 2, 3], [3, 2, 1]])
  array([ 1., -1.])
  """
  x = _as_numeric("x", x)
  y = _as_numeric("y", y)
  _check_same_shape("x", x, "y", y)
  if x.ndim < 1 or x.shape[-1] < 2:
    raise ValueError(f"A rank correlation needs at least 2 observations per list (last axis), got shape "
                     f"{x.shape}.")
  rank_x = average_ranks(x)
  rank_y = average_ranks(y)
  rank_x -= rank_x.mean(axis=-1, keepdims=True)
  rank_y -= rank_y.mean(axis=-1, keepdims=True)
  denominator = np.sqrt(np.sum(rank_x * rank_x, axis=-1) * np.sum(rank_y * rank_y, axis=-1))
  numerator = np.sum(rank_x * rank_y, axis=-1)
  rho = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
  return float(rho) if rho.ndim == 0 else rho


# ----------------------------------------------------------------------------------------------------------
# Average precision.


def _scores_and_relevance(scores: ArrayLike, relevant: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
  scores = _as_numeric("scores", scores)
  relevant = _as_bool("relevant", relevant)
  _check_same_shape("scores", scores, "relevant", relevant)
  if scores.ndim < 1 or scores.shape[-1] == 0:
    raise ValueError(f"`scores` must have at least one item on its last axis, got shape {scores.shape}.")
  return scores, relevant


def average_precision(scores: ArrayLike, relevant: ArrayLike, *,
                      interpolation: str = "step") -> Union[float, np.ndarray]:
  r"""Average precision of each ranked list (lists on the last axis), tie-aware.

  Items are ranked by decreasing score; with :math:`R` the relevant items and :math:`P(s)` the precision
  among the items scoring at least :math:`s`,

  .. math:: \mathrm{AP} = \frac{1}{|R|} \sum_{i \in R} P(s_i), \qquad
            P(s) = \frac{\#\{j \in R : s_j \ge s\}}{\#\{j : s_j \ge s\}}

  which is SoDeep's eq. 5-6 ("SoDeep: a Sorting Deep net to learn ranking loss surrogates") with a block
  of tied scores treated as a single threshold, so the value does not depend on the order of ties; it
  equals ``sklearn.metrics.average_precision_score``. ``interpolation="voc07"`` gives the PASCAL VOC 2007
  11-point interpolated AP on the same precision-recall points,

  .. math:: \mathrm{AP}_{11} = \frac{1}{11} \sum_{t \in \{0, 0.1, \dots, 1\}}
            \max_{\text{recall} \ge t} \text{precision} \quad (\max \emptyset = 0),

  with the recall levels compared exactly (the VOC devkit's ``np.arange(0, 1.1, 0.1)`` makes e.g. a recall
  of 3/10 miss the level 0.30000000000000004).

  Args:
    scores: float array ``[..., n]`` (no NaN), larger is more relevant.
    relevant: boolean (or 0/1) array of the same shape.
    interpolation: ``"step"`` (exact AP, default) or ``"voc07"``.

  Returns:
    AP per list, shape ``[...]`` (a Python float for a 1-D input). A list without relevant items has no
    AP: its value is NaN (``mean_average_precision`` skips it).

  >>> average_precision([0.9, 0.8, 0.7, 0.6], [True, False, True, False])
  0.833...
  >>> average_precision([0.9, 0.8, 0.7, 0.6], [True, False, True, False], interpolation="voc07")
  0.848...
  """
  if interpolation not in ("step", "voc07"):
    raise ValueError(f"`interpolation` must be 'step' or 'voc07', got {interpolation!r}.")
  scores, relevant = _scores_and_relevance(scores, relevant)
  n = scores.shape[-1]
  order = _decreasing_order(scores)
  sorted_scores = np.take_along_axis(scores, order, axis=-1)
  sorted_relevant = np.take_along_axis(relevant, order, axis=-1)
  hits = np.cumsum(sorted_relevant, axis=-1)
  num_relevant = hits[..., -1]
  # Position of the last item of each block of tied scores: precision is read there for the whole block.
  block_end = np.ones(scores.shape, dtype=bool)
  block_end[..., :-1] = sorted_scores[..., 1:] != sorted_scores[..., :-1]
  positions = np.broadcast_to(np.arange(n), scores.shape)
  last_of_block = np.minimum.accumulate(np.where(block_end, positions, n)[..., ::-1], axis=-1)[..., ::-1]
  hits_at_threshold = np.take_along_axis(hits, last_of_block, axis=-1)
  precision = hits_at_threshold / (last_of_block + 1.0)
  with np.errstate(invalid="ignore", divide="ignore"):
    if interpolation == "step":
      ap = np.sum(np.where(sorted_relevant, precision, 0.0), axis=-1) / num_relevant
    else:
      # Interpolated precision: the best precision at this recall or any higher one.
      best_from_here = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]
      # First point whose recall reaches each level t = l / 10 (recall is non-decreasing along the list),
      # compared exactly in integers: hits / relevant >= l / 10.
      levels = np.arange(11)
      reached = 10 * hits_at_threshold[..., None, :] >= levels[:, None] * num_relevant[..., None, None]
      first = np.argmax(reached, axis=-1)
      values = np.take_along_axis(best_from_here, first, axis=-1)
      ap = np.mean(np.where(np.any(reached, axis=-1), values, 0.0), axis=-1)
  ap = np.where(num_relevant > 0, ap, np.nan)
  return float(ap) if ap.ndim == 0 else ap


def mean_average_precision(scores: ArrayLike, relevant: ArrayLike, *, axis: int = -1,
                           interpolation: str = "step") -> float:
  r"""Mean of the average precision over the lists (queries or classes) that have a relevant item.

  .. math:: \mathrm{mAP} = \frac{1}{|Q^+|} \sum_{q \in Q^+} \mathrm{AP}_q, \qquad
            Q^+ = \{q : \text{list } q \text{ has at least one relevant item}\}

  Lists without any relevant item are **skipped** (their AP is undefined); see
  :func:`average_precision` for AP, ties and ``interpolation``.

  Args:
    scores: float array, at least 1-D (no NaN).
    relevant: boolean (or 0/1) array of the same shape.
    axis: the axis along which the items of one list lie. For a query x gallery matrix use the default
      ``-1`` (mAP over queries); for multilabel classification scores ``[images, classes]`` use ``axis=0``
      (each class ranks the images: mAP over classes, as in SoDeep's eq. 7).
    interpolation: ``"step"`` or ``"voc07"``.

  Returns:
    mAP as a Python float.

  Raises:
    ValueError: if no list has a relevant item.

  >>> scores = [[0.9, 0.1], [0.8, 0.7], [0.2, 0.6]]   # 3 images x 2 classes
  >>> labels = [[1, 0], [0, 0], [1, 1]]
  >>> mean_average_precision(scores, labels, axis=0)  # class 0: AP 5/6, class 1: AP 1/2
  0.666...
  """
  scores, relevant = _scores_and_relevance(scores, relevant)
  if not -scores.ndim <= axis < scores.ndim:
    raise ValueError(f"`axis` {axis} is out of range for scores of shape {scores.shape}.")
  ap = np.atleast_1d(average_precision(np.moveaxis(scores, axis, -1), np.moveaxis(relevant, axis, -1),
                                       interpolation=interpolation))
  defined = ~np.isnan(ap)
  if not defined.any():
    raise ValueError("No list has a relevant item: the mean average precision is undefined.")
  return float(np.mean(ap[defined]))


# ----------------------------------------------------------------------------------------------------------
# Retrieval on query x gallery matrices.


def _query_gallery(scores: ArrayLike, relevant: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
  scores = _as_numeric("scores", scores)
  relevant = _as_bool("relevant", relevant)
  _check_ndim("scores", scores, 2, "queries x gallery")
  _check_same_shape("scores", scores, "relevant", relevant)
  if scores.shape[0] == 0 or scores.shape[1] == 0:
    raise ValueError(f"`scores` needs at least one query and one gallery item, got shape {scores.shape}.")
  return scores, relevant


def _first_relevant_rank(scores: np.ndarray, relevant: np.ndarray, ties: str) -> np.ndarray:
  """1-based rank of the best-scored relevant item of each query (0 for queries without one)."""
  _check_ties(ties)
  best = np.max(scores, axis=-1, keepdims=True, where=relevant, initial=_lowest(scores.dtype))
  if ties == "pessimistic":
    ahead = (scores >= best) & ~relevant
  else:
    ahead = scores > best
  rank = 1 + np.count_nonzero(ahead, axis=-1)
  return np.where(relevant.any(axis=-1), rank, 0)


def _valid_ranks(ranks: np.ndarray) -> np.ndarray:
  ranks = ranks[ranks > 0]
  if ranks.size == 0:
    raise ValueError("No query has a relevant gallery item: the metric is undefined.")
  return ranks


def recall_at_k(scores: ArrayLike, relevant: ArrayLike, k: KSpec, *,
                ties: str = "pessimistic") -> Union[float, np.ndarray]:
  r"""Recall at K (R@K): fraction of queries with at least one relevant item among the top K.

  .. math:: R@K = \frac{1}{|Q^+|} \sum_{q \in Q^+} \mathbb{1}\big[\operatorname{rank}_q \le K\big]

  where :math:`\operatorname{rank}_q` is the 1-based rank of the best-ranked relevant item of query
  :math:`q` (the cross-modal retrieval R@K of "SoDeep: a Sorting Deep net to learn ranking loss
  surrogates", eq. 9, and of its Table 3: a caption query succeeds if any of its images is in the top K).
  Queries without a relevant item (:math:`\notin Q^+`) are skipped.

  Args:
    scores: float array ``[queries, gallery]`` (no NaN), larger is more similar.
    relevant: boolean (or 0/1) array of the same shape.
    k: an int in ``[1, gallery]`` or a sequence of them.
    ties: ``"pessimistic"`` (default: non-relevant items tied with the best relevant one rank ahead of it)
      or ``"optimistic"`` (only strictly higher scores rank ahead).

  Returns:
    R@K as a Python float, or a float array with one value per entry of ``k``.

  >>> scores = [[0.9, 0.5, 0.1], [0.2, 0.8, 0.7]]
  >>> relevant = [[False, True, False], [False, False, True]]
  >>> recall_at_k(scores, relevant, [1, 2])
  array([0., 1.])
  """
  scores, relevant = _query_gallery(scores, relevant)
  ks, scalar = _check_ks(k, scores.shape[1], "gallery size")
  ranks = _valid_ranks(_first_relevant_rank(scores, relevant, ties))
  recalls = np.mean(ranks[:, None] <= ks[None, :], axis=0)
  return float(recalls[0]) if scalar else recalls


def median_rank(scores: ArrayLike, relevant: ArrayLike, *, ties: str = "pessimistic") -> float:
  r"""Median over queries of the rank of the first relevant item ("Med. r"), lower is better.

  .. math:: \operatorname{MedR} = \big\lfloor \operatorname{median}_{q \in Q^+}(\operatorname{rank}_q - 1)
            \big\rfloor + 1

  with :math:`\operatorname{rank}_q` as in :func:`recall_at_k`. The floor of the median of the 0-based
  ranks, plus one, is the convention of the VSE/DSVE evaluation code behind SoDeep's Table 3, so with an
  even number of queries the result is an integer, not a half. Queries without a relevant item are skipped.

  Args:
    scores: float array ``[queries, gallery]`` (no NaN), larger is more similar.
    relevant: boolean (or 0/1) array of the same shape.
    ties: ``"pessimistic"`` or ``"optimistic"`` (see :func:`recall_at_k`).

  Returns:
    The median rank as a Python float.

  >>> median_rank([[0.9, 0.5, 0.1], [0.2, 0.8, 0.7]], [[False, True, False], [False, False, True]])
  2.0
  """
  scores, relevant = _query_gallery(scores, relevant)
  ranks = _valid_ranks(_first_relevant_rank(scores, relevant, ties))
  return float(np.floor(np.median(ranks - 1)) + 1)


def retrieval_accuracy_at_k(scores: ArrayLike, k: KSpec, *, true_match: Optional[ArrayLike] = None,
                            ties: str = "pessimistic") -> Union[float, np.ndarray]:
  r"""Top-K retrieval accuracy (acc.@K) of fine-grained sketch-based image retrieval.

  .. math:: \mathrm{acc}@K = \frac{1}{|Q|} \sum_{q \in Q} \mathbb{1}\big[\operatorname{rank}_q(m_q) \le K\big]

  the fraction of query sketches whose single true-match photo :math:`m_q` is ranked within the top K
  ("Deep Multi-task Attribute-driven Ranking for Fine-grained Sketch-based Image Retrieval", Sec. 3,
  K = 1 and 10). This is :func:`recall_at_k` with one relevant photo per query.

  Args:
    scores: float array ``[sketches, photos]`` (no NaN), larger is more similar: pass ``-distances`` for
      the paper's (fused) Euclidean distances.
    k: an int in ``[1, photos]`` or a sequence of them.
    true_match: int array ``[sketches]`` with the index of each sketch's photo; default ``arange(sketches)``
      (photo i is the match of sketch i, as in QMUL-Shoe).
    ties: ``"pessimistic"`` (default) or ``"optimistic"`` (see :func:`recall_at_k`).

  Returns:
    acc@K as a Python float, or a float array with one value per entry of ``k``.

  >>> distances = [[0.1, 0.5, 0.9], [0.3, 0.4, 0.2], [0.8, 0.1, 0.5]]
  >>> retrieval_accuracy_at_k(-np.asarray(distances), [1, 2])
  array([0.333..., 0.666...])
  """
  scores = _as_numeric("scores", scores)
  _check_ndim("scores", scores, 2, "sketches x photos")
  num_queries, num_gallery = scores.shape
  if num_queries == 0 or num_gallery == 0:
    raise ValueError(f"`scores` needs at least one query and one photo, got shape {scores.shape}.")
  if true_match is None:
    if num_gallery < num_queries:
      raise ValueError(f"Without `true_match` photo i matches sketch i, so `scores` needs at least as many "
                       f"photos as sketches; got shape {scores.shape}.")
    true_match = np.arange(num_queries)
  true_match = _as_whole_numbers("true_match", true_match, allow_bool=False)
  if true_match.shape != (num_queries,) or true_match.dtype.kind not in "iu":
    raise ValueError(f"`true_match` must be an int array of shape ({num_queries},), got "
                     f"{true_match.dtype} {true_match.shape}.")
  if true_match.size and (true_match.min() < 0 or true_match.max() >= num_gallery):
    raise ValueError(f"`true_match` indices must lie in [0, {num_gallery}).")
  relevant = np.zeros(scores.shape, dtype=bool)
  relevant[np.arange(num_queries), true_match] = True
  return recall_at_k(scores, relevant, k, ties=ties)


def triplet_accuracy(distances: ArrayLike, triplets: ArrayLike) -> float:
  r"""Fraction of annotated triplets whose order the distances reproduce ("% correctly ranked triplets").

  .. math:: \mathrm{acc}_{\text{triplet}} = \frac{1}{|T|} \sum_{(s, p, n) \in T}
            \mathbb{1}\big[d(s, p) < d(s, n)\big]

  for human-annotated triplets "photo p is more similar to sketch s than photo n" ("Deep Multi-task
  Attribute-driven Ranking for Fine-grained Sketch-based Image Retrieval", Sec. 3; QMUL-Shoe annotations,
  see :func:`load_sketch_triplets`). A tie :math:`d(s, p) = d(s, n)` counts as wrong.

  Args:
    distances: float array ``[sketches, photos]`` (no NaN), smaller is more similar.
    triplets: int array ``[num_triplets, 3]`` of (sketch, positive photo, negative photo) indices.

  Returns:
    The accuracy as a Python float.

  >>> distances = [[0.1, 0.5, 0.9], [0.3, 0.4, 0.2]]
  >>> triplet_accuracy(distances, [[0, 0, 1], [0, 2, 1], [1, 2, 0]])
  0.666...
  """
  distances = _as_numeric("distances", distances)
  _check_ndim("distances", distances, 2, "sketches x photos")
  triplets = _as_whole_numbers("triplets", triplets, allow_bool=False)
  if triplets.ndim != 2 or triplets.shape[1] != 3 or triplets.dtype.kind not in "iu":
    raise ValueError(f"`triplets` must be an int array of shape [num_triplets, 3] (sketch, positive, "
                     f"negative), got {triplets.dtype} {triplets.shape}.")
  if triplets.shape[0] == 0:
    raise ValueError("`triplets` is empty: the triplet accuracy is undefined.")
  sketch, positive, negative = triplets.T
  if sketch.min() < 0 or sketch.max() >= distances.shape[0]:
    raise ValueError(f"Sketch indices in `triplets` must lie in [0, {distances.shape[0]}).")
  if min(positive.min(), negative.min()) < 0 or max(positive.max(), negative.max()) >= distances.shape[1]:
    raise ValueError(f"Photo indices in `triplets` must lie in [0, {distances.shape[1]}).")
  return float(np.mean(distances[sketch, positive] < distances[sketch, negative]))


# ----------------------------------------------------------------------------------------------------------
# Classification and annotation.


def class_balanced_accuracy(predictions: ArrayLike, labels: ArrayLike, *, where: Optional[ArrayLike] = None,
                            per_attribute: bool = False) -> Union[float, np.ndarray]:
  r"""Class-balanced accuracy (mean sensitivity), averaged over attributes.

  For attribute :math:`j` with the classes :math:`Z_j` present in its labels, the per-class sensitivity
  (recall) is averaged over classes, then over the attributes:

  .. math:: \mathrm{acc}_j = \frac{1}{|Z_j|} \sum_{c \in Z_j}
            \frac{\#\{i : \hat a_{i,j} = c,\ a_{i,j} = c\}}{\#\{i : a_{i,j} = c\}}, \qquad
            \mathrm{acc} = \frac{1}{n_{\text{attr}}} \sum_j \mathrm{acc}_j

  the metric of "Class Rectification Hard Mining for Imbalanced Deep Learning" (Tables 2-3: "class-balanced
  accuracy, i.e. mean sensitivity"). For a binary attribute it is (TPR + TNR) / 2, i.e.
  ``sklearn.metrics.balanced_accuracy_score``. Predicted classes that never occur in the labels count
  against the true classes but add no class of their own (as in sklearn).

  Args:
    predictions: int or bool array ``[n]`` (one attribute) or ``[n, n_attr]``: predicted class values
      (e.g. ``logits.argmax(-1)`` per attribute, or ``probability > 0.5`` for binary ones); a float array
      (bfloat16 included) is accepted if it holds whole numbers only.
    labels: int, bool or whole-number float array of the same shape: true class values.
    where: optional boolean array of the same shape marking the annotated entries (e.g. X-Domain images
      carry at most 9 of their attributes); other entries are ignored.
    per_attribute: return the per-attribute accuracies ``[n_attr]`` instead of their mean.

  Returns:
    The mean over attributes as a Python float, or the per-attribute array. An attribute without any
    annotated sample is skipped in the mean (NaN in the per-attribute array).

  Raises:
    TypeError: if ``predictions`` or ``labels`` are not numbers, or ``where`` is not boolean.
    ValueError: on mismatched shapes, float class values that are not whole numbers, or if no attribute
      has an annotated sample.

  >>> labels = [[1, 0], [1, 2], [0, 2], [1, 1]]
  >>> predictions = [[1, 0], [1, 2], [1, 1], [0, 1]]
  >>> class_balanced_accuracy(predictions, labels, per_attribute=True)  # (2/3 + 0)/2, (1 + 1 + 1/2)/3
  array([0.333..., 0.833...])
  """
  hint = " (class values; take the argmax / threshold of scores first)"
  predictions = _as_whole_numbers("predictions", predictions, allow_bool=True, hint=hint)
  labels = _as_whole_numbers("labels", labels, allow_bool=True, hint=hint)
  _check_same_shape("predictions", predictions, "labels", labels)
  if labels.ndim not in (1, 2):
    raise ValueError(f"`labels` must be [n] or [n, n_attr], got shape {labels.shape}.")
  if where is None:
    mask = np.ones(labels.shape, dtype=bool)
  else:
    mask = _to_numpy(where)
    if mask.dtype != np.bool_:
      raise TypeError(f"`where` must be boolean, got dtype {mask.dtype}.")
    _check_same_shape("where", mask, "labels", labels)
  single = labels.ndim == 1
  predictions, labels, mask = (np.atleast_2d(a.T).T if single else a for a in (predictions, labels, mask))
  accuracies = np.full(labels.shape[1], np.nan)
  for j in range(labels.shape[1]):
    truth = labels[mask[:, j], j].astype(np.int64)
    guess = predictions[mask[:, j], j].astype(np.int64)
    if truth.size == 0:
      continue
    classes, class_index, class_size = np.unique(truth, return_inverse=True, return_counts=True)
    correct = np.bincount(class_index, weights=(guess == truth), minlength=classes.size)
    accuracies[j] = np.mean(correct / class_size)
  if per_attribute:
    return accuracies
  if np.isnan(accuracies).all():
    raise ValueError("No attribute has an annotated sample: the class-balanced accuracy is undefined.")
  return float(np.nanmean(accuracies))


class AnnotationMetrics(NamedTuple):
  """Top-k annotation results, named after the columns of Gong et al.'s NUS-WIDE tables."""
  per_class_precision: float  # mean over classes of the per-class precision
  per_class_recall: float  # mean over classes of the per-class recall
  overall_precision: float  # correct annotations / all annotations (n k)
  overall_recall: float  # correct annotations / all ground-truth labels
  n_plus: int  # N+: number of classes with recall > 0 (the paper reports n_plus / classes in %)
  precision_by_class: np.ndarray  # [classes]; 0 for a class that is never predicted
  recall_by_class: np.ndarray  # [classes]; 0 for a class without ground-truth images


def annotation_precision_recall(scores: ArrayLike, labels: ArrayLike, k: int) -> AnnotationMetrics:
  r"""Per-class and overall precision and recall, and N+, of top-k image annotation.

  Each image is annotated with its k highest-scoring labels (ties broken by the lower class index). With
  :math:`\mathrm{TP}_c` the images correctly annotated with class c, :math:`\mathrm{Pred}_c` the images
  annotated with c and :math:`\mathrm{Pos}_c` the images whose ground truth has c:

  .. math::

     P_c = \frac{\mathrm{TP}_c}{\mathrm{Pred}_c}, \quad R_c = \frac{\mathrm{TP}_c}{\mathrm{Pos}_c}, \quad
     P_{\text{overall}} = \frac{\sum_c \mathrm{TP}_c}{\sum_c \mathrm{Pred}_c}, \quad
     R_{\text{overall}} = \frac{\sum_c \mathrm{TP}_c}{\sum_c \mathrm{Pos}_c}, \quad
     N_+ = \#\{c : R_c > 0\}

  and per-class precision/recall are the means of :math:`P_c` and :math:`R_c` over all classes ("Deep
  Convolutional Ranking for Multilabel Image Annotation", Tables 1-2 with k = 3 and 5). A class never
  predicted has :math:`P_c = 0` and a class without ground-truth images :math:`R_c = 0`, as sklearn's
  ``precision_recall_fscore_support(..., zero_division=0)``; both still count in the per-class means.

  Args:
    scores: float array ``[images, classes]`` (no NaN).
    labels: boolean (or 0/1) array of the same shape: ground-truth tags.
    k: number of labels given to each image, in ``[1, classes]``.

  Returns:
    An :class:`AnnotationMetrics`.

  >>> scores = [[0.9, 0.8, 0.1], [0.2, 0.7, 0.6]]
  >>> labels = [[1, 0, 0], [0, 1, 1]]
  >>> result = annotation_precision_recall(scores, labels, k=1)
  >>> result.overall_precision, result.overall_recall, result.n_plus
  (1.0, 0.666..., 2)
  """
  scores = _as_numeric("scores", scores)
  labels = _as_bool("labels", labels)
  _check_ndim("scores", scores, 2, "images x classes")
  _check_same_shape("scores", scores, "labels", labels)
  num_images, num_classes = scores.shape
  if num_images == 0 or num_classes == 0:
    raise ValueError(f"`scores` needs at least one image and one class, got shape {scores.shape}.")
  if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= num_classes:
    raise ValueError(f"`k` must be an int in [1, {num_classes}] (number of classes), got {k!r}.")
  top = _decreasing_order(scores)[:, :k]
  predicted = np.zeros(scores.shape, dtype=bool)
  np.put_along_axis(predicted, top, True, axis=1)
  true_positives = np.count_nonzero(predicted & labels, axis=0)
  predicted_count = np.count_nonzero(predicted, axis=0)
  positive_count = np.count_nonzero(labels, axis=0)
  precision = np.divide(true_positives, predicted_count, out=np.zeros(num_classes),
                        where=predicted_count > 0)
  recall = np.divide(true_positives, positive_count, out=np.zeros(num_classes), where=positive_count > 0)
  total_positives = int(positive_count.sum())
  return AnnotationMetrics(
      per_class_precision=float(precision.mean()),
      per_class_recall=float(recall.mean()),
      overall_precision=float(true_positives.sum() / predicted_count.sum()),
      overall_recall=float(true_positives.sum() / total_positives) if total_positives else 0.0,
      n_plus=int(np.count_nonzero(recall > 0)),
      precision_by_class=precision,
      recall_by_class=recall,
  )


# ----------------------------------------------------------------------------------------------------------
# Cross-modal (image <-> caption) retrieval.


def cross_modal_recall(image_embeddings: ArrayLike, caption_embeddings: ArrayLike, *,
                       captions_per_image: int = 5, ks: Sequence[int] = (1, 5, 10), num_folds: int = 5,
                       ties: str = "pessimistic") -> dict[str, float]:
  r"""R@K and median rank of caption retrieval and image retrieval, averaged over folds of the test set.

  The protocol of SoDeep's Table 3 ("SoDeep: a Sorting Deep net to learn ranking loss surrogates", §4.2.3,
  after VSE/DSVE): the test images are cut into ``num_folds`` consecutive folds (5 x 1 000 of the 5 000
  COCO test images; scaled: sizes differ by at most one), and within each fold

  * *caption retrieval* (image query, the fold's captions as gallery): a hit at K when **any** of the
    image's ``captions_per_image`` captions ranks in the top K (:func:`recall_at_k`, eq. 8, with five
    relevant items), and the median rank of its best-ranked caption (:func:`median_rank`);
  * *image retrieval* (caption query, the fold's images as gallery): the rank of the caption's image.

  Similarities are dot products ``image . caption`` (cosine similarities for unit vectors); the metrics
  are then averaged over the folds.

  Args:
    image_embeddings: float ``[N, D]``.
    caption_embeddings: float ``[N * captions_per_image, D]`` (captions of image ``i`` at rows
      ``i * captions_per_image ...``) or ``[N, captions_per_image, D]``.
    captions_per_image: captions of each image.
    ks: the K of R@K, each at most the number of images of the smallest fold.
    num_folds: folds of the test images (1 = the whole set at once).
    ties: ``"pessimistic"`` (default) or ``"optimistic"`` (see :func:`recall_at_k`).

  Returns:
    ``{"caption_retrieval/R@K": ..., "caption_retrieval/median_rank": ..., "image_retrieval/R@K": ...,
    "image_retrieval/median_rank": ...}``: recalls as fractions in ``[0, 1]`` (the paper prints percent),
    median ranks 1-based.

  Raises:
    ValueError: mismatched shapes, NaN, too many folds, or a K larger than a fold's gallery.

  >>> images = np.eye(4)
  >>> captions = np.repeat(np.eye(4), 2, axis=0)  # two exact captions per image
  >>> result = cross_modal_recall(images, captions, captions_per_image=2, ks=(1,), num_folds=2)
  >>> result["caption_retrieval/R@1"], result["image_retrieval/median_rank"]
  (1.0, 1.0)
  """
  images = _as_numeric("image_embeddings", image_embeddings)
  captions = _as_numeric("caption_embeddings", caption_embeddings)
  _check_ties(ties)
  if captions_per_image < 1:
    raise ValueError(f"`captions_per_image` must be >= 1, got {captions_per_image}.")
  _check_ndim("image_embeddings", images, 2, "images x dimensions")
  if captions.ndim == 3:
    captions = captions.reshape(-1, captions.shape[-1])
  num_images, dim = images.shape
  if captions.shape != (num_images * captions_per_image, dim):
    raise ValueError(f"`caption_embeddings` must have shape [{num_images} * {captions_per_image}, {dim}] (or "
                     f"[{num_images}, {captions_per_image}, {dim}]), got {np.shape(caption_embeddings)}.")
  if not 1 <= num_folds <= num_images:
    raise ValueError(f"`num_folds` must lie in [1, {num_images}] (the number of images), got {num_folds}.")
  folds = np.array_split(np.arange(num_images), num_folds)
  ks_array, _ = _check_ks(list(ks), min(len(f) for f in folds), "images in the smallest fold")
  totals: dict[str, float] = {}
  for fold in folds:
    fold_captions = captions[fold[0] * captions_per_image:(fold[-1] + 1) * captions_per_image]
    scores = images[fold].astype(np.float64) @ fold_captions.astype(np.float64).T  # [n, n * c]
    relevant = np.repeat(np.eye(len(fold), dtype=bool), captions_per_image, axis=1)
    for name, s, r in (("caption_retrieval", scores, relevant), ("image_retrieval", scores.T, relevant.T)):
      recalls = recall_at_k(s, r, ks_array, ties=ties)
      for k, value in zip(ks_array, recalls):
        totals[f"{name}/R@{k}"] = totals.get(f"{name}/R@{k}", 0.0) + float(value)
      totals[f"{name}/median_rank"] = totals.get(f"{name}/median_rank", 0.0) + median_rank(s, r, ties=ties)
  return {key: value / len(folds) for key, value in totals.items()}
