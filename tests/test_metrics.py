"""Tests of ranking_jax.metrics against independent references (scipy.stats, sklearn.metrics, numpy loops)."""

from __future__ import annotations

import itertools
import json
import os
import warnings

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from ranking_jax import metrics

SHOES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "qmul_shoes",
                     "shoes_annotation.json")

VSD = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "vsd", "VSD_dataset.csv")

SETTINGS = hypothesis.settings(max_examples=40, deadline=None, derandomize=True)


# ----------------------------------------------------------------------------------------------------------
# Plain references written from the definitions.


def kendall_loop(x, y, variant):
  """Kendall tau from its definition: O(n^2) loop over pairs."""
  n = len(x)
  concordant = discordant = tied_x = tied_y = 0
  for i, j in itertools.combinations(range(n), 2):
    dx = np.sign(x[i] - x[j])
    dy = np.sign(y[i] - y[j])
    tied_x += dx == 0
    tied_y += dy == 0
    if dx * dy > 0:
      concordant += 1
    elif dx * dy < 0:
      discordant += 1
  pairs = n * (n - 1) / 2
  if variant == "a":
    return (concordant - discordant) / pairs
  return (concordant - discordant) / np.sqrt((pairs - tied_x) * (pairs - tied_y))


def inversions_loop(values):
  return sum(1 for i, j in itertools.combinations(range(len(values)), 2) if values[i] > values[j])


def ap_loop(scores, relevant):
  """AP = mean over relevant items i of precision among items scoring >= s_i."""
  relevant_scores = [s for s, r in zip(scores, relevant) if r]
  if not relevant_scores:
    return float("nan")
  total = 0.0
  for s_i in relevant_scores:
    at_least = [r for s, r in zip(scores, relevant) if s >= s_i]
    total += sum(at_least) / len(at_least)
  return total / len(relevant_scores)


def voc07_ap_loop(scores, relevant):
  """The PASCAL VOC 2007 devkit's 11-point AP (voc_ap(use_07_metric=True)) for untied scores."""
  order = np.argsort(-np.asarray(scores))
  hits = np.cumsum(np.asarray(relevant)[order])
  precision = hits / np.arange(1, len(scores) + 1)
  ap = 0.0
  for level in range(11):  # t = level / 10; recall >= t compared exactly: 10 hits >= level |R|
    reached = 10 * hits >= level * hits[-1]
    p = np.max(precision[reached]) if np.sum(reached) > 0 else 0.0
    ap += p / 11.0
  return ap


def first_relevant_rank_loop(scores, relevant, ties):
  """Sort each row (ties: non-relevant first if pessimistic) and find the first relevant position."""
  ranks = []
  for s, r in zip(scores, relevant):
    if not any(r):
      continue
    tie_key = r if ties == "pessimistic" else ~r
    order = np.lexsort((tie_key, -s))  # by decreasing score, then tie_key (False first)
    ranks.append(int(np.flatnonzero(r[order])[0]) + 1)
  return np.asarray(ranks)


# ----------------------------------------------------------------------------------------------------------
# Kendall tau.


@pytest.mark.parametrize("n", [2, 3, 7, 40, 300])
@pytest.mark.parametrize("num_values", [2, 5, None])
def test_kendall_tau_b_matches_scipy(n, num_values):
  rng = np.random.default_rng(n)
  for _ in range(5):
    if num_values is None:
      x, y = rng.normal(size=n), rng.normal(size=n)
    else:
      x, y = rng.integers(0, num_values, n), rng.integers(0, num_values, n).astype(np.float32)
    expected = scipy.stats.kendalltau(x, y).statistic
    if np.isnan(expected):  # a constant input: documented 0.0 here
      assert metrics.kendall_tau(x, y) == 0.0
    else:
      assert metrics.kendall_tau(x, y) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("variant", ["a", "b"])
def test_kendall_tau_matches_pair_loop(variant):
  rng = np.random.default_rng(1)
  for n in (2, 5, 30):
    x = rng.integers(0, 4, n).astype(float)
    y = x + rng.integers(-2, 3, n)
    if variant == "b" and (np.ptp(x) == 0 or np.ptp(y) == 0):
      continue
    assert metrics.kendall_tau(x, y, variant=variant) == pytest.approx(kendall_loop(x, y, variant), abs=1e-12)


def test_kendall_tau_a_counts_ties_as_neither():
  # 6 pairs; x ties (0, 1); y ties (2, 3); concordant: (0,2),(0,3),(1,2),(1,3) -> tau_a = 4/6.
  assert metrics.kendall_tau([1, 1, 2, 3], [1, 2, 3, 3], variant="a") == pytest.approx(4 / 6)


def test_kendall_tau_large_with_ties_matches_scipy():
  rng = np.random.default_rng(2)
  x = rng.integers(0, 300, 20_000)
  y = x // 3 + rng.integers(0, 50, 20_000)
  assert metrics.kendall_tau(x, y) == pytest.approx(scipy.stats.kendalltau(x, y).statistic, abs=1e-12)
  x = rng.normal(size=50_000)
  y = -x + rng.normal(size=50_000)
  assert metrics.kendall_tau(x, y) == pytest.approx(scipy.stats.kendalltau(x, y).statistic, abs=1e-12)


@pytest.mark.skipif(not os.path.exists(VSD), reason="shared VSD difficulty scores not available")
def test_rank_correlations_on_vsd_scores_with_real_ties():
  with open(VSD, encoding="utf-8") as f:
    rows = [line.strip().split(",") for line in f if line.strip()]
  scores = np.array([float(score) for name, score in rows if name != "name"])
  assert scores.size == 11_540
  rng = np.random.default_rng(0)
  noisy = np.round(scores + rng.normal(scale=0.3, size=scores.size), 1)  # many ties on both sides
  for variant in ("a", "b"):
    expected = (kendall_loop(scores[:300], noisy[:300], "a") if variant == "a"
                else scipy.stats.kendalltau(scores, noisy).statistic)
    x, y = (scores[:300], noisy[:300]) if variant == "a" else (scores, noisy)
    assert metrics.kendall_tau(x, y, variant=variant) == pytest.approx(expected, abs=1e-12)
  assert metrics.spearman_rho(scores, noisy) == pytest.approx(scipy.stats.spearmanr(scores, noisy)[0], abs=1e-12)


def test_count_inversions_matches_loop():
  rng = np.random.default_rng(3)
  for n in (1, 2, 3, 10, 64, 100):
    for num_values in (1, 2, 7, 1000):
      values = rng.integers(0, num_values, n)
      num_bits = max(1, int(values.max()).bit_length())
      assert metrics._count_inversions(values, num_bits) == inversions_loop(values)


def test_kendall_tau_extremes_and_infinities():
  x = np.arange(10.0)
  assert metrics.kendall_tau(x, x) == 1.0
  assert metrics.kendall_tau(x, -x, variant="a") == -1.0
  x_inf = np.array([-np.inf, 0.0, 1.0, np.inf, np.inf])
  y = np.array([0.0, 1.0, 1.0, 2.0, 3.0])
  assert metrics.kendall_tau(x_inf, y) == pytest.approx(scipy.stats.kendalltau(x_inf, y).statistic)


def test_kendall_tau_constant_input_is_zero():
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    assert np.isnan(scipy.stats.kendalltau([1, 1, 1], [1, 2, 3]).statistic)
  assert metrics.kendall_tau([1, 1, 1], [1, 2, 3]) == 0.0
  assert metrics.kendall_tau([1, 2, 3], [5, 5, 5], variant="a") == 0.0


def test_kendall_tau_accepts_jax_arrays():
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  x = jnp.array([0.3, 0.1, 0.2, 0.9])
  y = jnp.array([1.0, 0.0, 3.0, 4.0])
  assert metrics.kendall_tau(x, y) == pytest.approx(scipy.stats.kendalltau(np.asarray(x), np.asarray(y))[0])
  assert metrics.spearman_rho(x, y) == pytest.approx(scipy.stats.spearmanr(np.asarray(x), np.asarray(y))[0])


@pytest.mark.parametrize("fn", [metrics.kendall_tau, metrics.spearman_rho])
def test_rank_correlation_errors(fn):
  with pytest.raises(ValueError, match="at least 2"):
    fn([1.0], [2.0])
  with pytest.raises(ValueError, match="at least 2"):
    fn([], [])
  with pytest.raises(ValueError, match="NaN"):
    fn([1.0, np.nan, 2.0], [1.0, 2.0, 3.0])
  with pytest.raises(ValueError, match="same shape"):
    fn([1.0, 2.0, 3.0], [1.0, 2.0])
  if fn is metrics.kendall_tau:  # spearman_rho takes lists on the last axis
    with pytest.raises(ValueError, match="1-D"):
      fn(np.ones((2, 3)), np.ones((2, 3)))
  with pytest.raises(TypeError, match="real numbers"):
    fn(["a", "b"], ["c", "d"])


def test_kendall_tau_rejects_unknown_variant():
  with pytest.raises(ValueError, match="variant"):
    metrics.kendall_tau([1, 2], [1, 2], variant="c")


_int_lists = st.integers(2, 30).flatmap(
    lambda n: st.tuples(hnp.arrays(np.int64, n, elements=st.integers(-5, 5)),
                        hnp.arrays(np.int64, n, elements=st.integers(-5, 5))))


def _increasing(v):
  return v**3 + 2 * v + 1.5  # strictly increasing on integers, exact in float64


@SETTINGS
@hypothesis.given(_int_lists, st.sampled_from(["a", "b"]))
def test_kendall_tau_properties(xy, variant):
  x, y = xy
  tau = metrics.kendall_tau(x, y, variant=variant)
  assert -1.0 <= tau <= 1.0
  assert metrics.kendall_tau(y, x, variant=variant) == pytest.approx(tau, abs=1e-12)
  assert metrics.kendall_tau(_increasing(x), y, variant=variant) == pytest.approx(tau, abs=1e-12)
  assert metrics.kendall_tau(x, _increasing(y), variant=variant) == pytest.approx(tau, abs=1e-12)
  assert metrics.kendall_tau(x, -y, variant=variant) == pytest.approx(-tau, abs=1e-12)
  permutation = np.random.default_rng(len(x)).permutation(len(x))
  assert metrics.kendall_tau(x[permutation], y[permutation], variant=variant) == pytest.approx(tau, abs=1e-12)


# ----------------------------------------------------------------------------------------------------------
# Spearman rho.


def test_average_ranks_matches_scipy():
  rng = np.random.default_rng(4)
  values = rng.integers(0, 6, 50)
  np.testing.assert_allclose(metrics.average_ranks(values), scipy.stats.rankdata(values))
  # Lists on the last axis, each ranked on its own; exact for integers beyond 2**53 (no float conversion).
  values = rng.integers(0, 4, (3, 5, 7))
  np.testing.assert_array_equal(metrics.average_ranks(values), scipy.stats.rankdata(values, axis=-1))
  big = np.array([2 ** 62 + 1, 2 ** 62, 2 ** 62 + 1], np.int64)
  np.testing.assert_array_equal(metrics.average_ranks(big), [2.5, 1.0, 2.5])
  assert metrics.average_ranks(np.zeros((2, 0))).shape == (2, 0)


def test_spearman_rho_per_list_matches_scipy():
  rng = np.random.default_rng(0)
  x = np.round(rng.normal(size=(5, 30)), 1)  # with ties
  y = rng.normal(size=(5, 30))
  want = [scipy.stats.spearmanr(a, b).statistic for a, b in zip(x, y)]
  np.testing.assert_allclose(metrics.spearman_rho(x, y), want, rtol=1e-12)
  np.testing.assert_array_equal(metrics.spearman_rho([[1, 2, 3], [2, 2, 2]], [[3, 2, 1], [1, 2, 3]]),
                                [-1.0, 0.0])


@pytest.mark.parametrize("num_values", [3, 10, None])
def test_spearman_rho_matches_scipy(num_values):
  rng = np.random.default_rng(5)
  for n in (2, 3, 20, 500):
    if num_values is None:
      x = rng.normal(size=n)
      y = x + rng.normal(size=n)
    else:
      x, y = rng.integers(0, num_values, n), rng.integers(0, num_values, n)
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      expected = scipy.stats.spearmanr(x, y).statistic
    assert metrics.spearman_rho(x, y) == (0.0 if np.isnan(expected) else pytest.approx(expected, abs=1e-12))


def test_spearman_rho_without_ties_is_sodeep_eq_2():
  rng = np.random.default_rng(6)
  x, y = rng.normal(size=40), rng.normal(size=40)
  rank_x, rank_y = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
  eq_2 = 1 - 6 * np.sum((rank_x - rank_y)**2) / (40 * (40**2 - 1))
  assert metrics.spearman_rho(x, y) == pytest.approx(eq_2, abs=1e-12)


def test_spearman_rho_constant_input_is_zero():
  assert metrics.spearman_rho([2, 2, 2, 2], [1, 2, 3, 4]) == 0.0


@SETTINGS
@hypothesis.given(_int_lists)
def test_spearman_rho_properties(xy):
  x, y = xy
  rho = metrics.spearman_rho(x, y)
  assert -1.0 - 1e-12 <= rho <= 1.0 + 1e-12
  assert metrics.spearman_rho(y, x) == pytest.approx(rho, abs=1e-12)
  assert metrics.spearman_rho(_increasing(x), y) == pytest.approx(rho, abs=1e-12)
  assert metrics.spearman_rho(x, _increasing(y)) == pytest.approx(rho, abs=1e-12)
  assert metrics.spearman_rho(x, -y) == pytest.approx(-rho, abs=1e-12)


# ----------------------------------------------------------------------------------------------------------
# Average precision.


@pytest.mark.parametrize("num_values", [3, None])
def test_average_precision_matches_sklearn_and_loop(num_values):
  rng = np.random.default_rng(7)
  scores = rng.normal(size=(6, 25)) if num_values is None else rng.integers(0, num_values, (6, 25)) / 2
  relevant = rng.random((6, 25)) < 0.3
  relevant[:, 0] = True
  ap = metrics.average_precision(scores, relevant)
  assert ap.shape == (6,)
  for q in range(6):
    assert ap[q] == pytest.approx(sklearn.metrics.average_precision_score(relevant[q], scores[q]), abs=1e-12)
    assert ap[q] == pytest.approx(ap_loop(scores[q], relevant[q]), abs=1e-12)
    assert metrics.average_precision(scores[q], relevant[q]) == pytest.approx(ap[q])


def test_average_precision_voc07_matches_devkit_loop():
  rng = np.random.default_rng(8)
  for n in (1, 2, 5, 40):
    scores = rng.normal(size=n)
    relevant = rng.random(n) < 0.4
    relevant[-1] = True
    assert (metrics.average_precision(scores, relevant, interpolation="voc07")
            == pytest.approx(voc07_ap_loop(scores, relevant), abs=1e-12))


def test_average_precision_voc07_recall_level_is_exact():
  # 10 relevant items, the first 3 on top: recall 3/10 reaches the level 0.3 (precision 1 up to there).
  scores = -np.arange(20.0)
  relevant = np.zeros(20, bool)
  relevant[:3] = True
  relevant[10:17] = True
  # Levels 0-0.3: precision 1; levels 0.4-1: the best later precision is 10/17 (all 10 found at rank 17).
  # The devkit's float levels would drop level 0.3 to 10/17 as well: (3 + 8 * 10 / 17) / 11.
  expected = (4 * 1.0 + 7 * 10 / 17) / 11
  assert metrics.average_precision(scores, relevant, interpolation="voc07") == pytest.approx(expected)


def test_metrics_accept_bfloat16_jax_arrays():
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  scores = jnp.array([[0.5, 0.25, 1.0]], dtype=jnp.bfloat16)
  labels = np.array([[True, False, False]])
  assert metrics.average_precision(scores, labels)[0] == pytest.approx(0.5)
  assert metrics.recall_at_k(scores, labels, 2) == 1.0
  assert metrics.kendall_tau(scores[0], jnp.array([2.0, 1.0, 3.0])) == 1.0


def test_average_precision_no_relevant_and_all_ties():
  assert np.isnan(metrics.average_precision([0.3, 0.2], [False, False]))
  # All tied: one threshold, precision = fraction relevant.
  assert metrics.average_precision([1.0, 1.0, 1.0, 1.0], [1, 0, 0, 1]) == pytest.approx(0.5)
  assert metrics.average_precision([0.5], [True]) == 1.0
  assert metrics.average_precision([-np.inf, np.inf], [True, False]) == pytest.approx(0.5)


def test_mean_average_precision_skips_lists_without_relevant_items():
  rng = np.random.default_rng(9)
  scores = rng.normal(size=(30, 5))
  labels = rng.random((30, 5)) < 0.2
  labels[:, 3] = False  # class 3 has no positive: skipped
  labels[0, [0, 1, 2, 4]] = True
  expected = np.mean([sklearn.metrics.average_precision_score(labels[:, c], scores[:, c])
                      for c in (0, 1, 2, 4)])
  assert metrics.mean_average_precision(scores, labels, axis=0) == pytest.approx(expected, abs=1e-12)
  # Over queries (rows): the same as the columns of the transpose.
  assert metrics.mean_average_precision(scores.T, labels.T) == pytest.approx(expected, abs=1e-12)
  with pytest.raises(ValueError, match="No list has a relevant item"):
    metrics.mean_average_precision(scores, np.zeros_like(labels))
  with pytest.raises(ValueError, match="axis"):
    metrics.mean_average_precision(scores, labels, axis=2)


def test_mean_average_precision_over_queries_is_sklearn_lrap():
  # Label ranking average precision is the tie-aware AP of each row, averaged over rows (all with a positive).
  rng = np.random.default_rng(16)
  scores = rng.integers(0, 6, (25, 10)).astype(float)
  labels = rng.random((25, 10)) < 0.3
  labels[:, 4] = True
  expected = sklearn.metrics.label_ranking_average_precision_score(labels, scores)
  assert metrics.mean_average_precision(scores, labels) == pytest.approx(expected, abs=1e-12)


def test_average_precision_errors():
  with pytest.raises(ValueError, match="NaN"):
    metrics.average_precision([0.1, np.nan], [True, False])
  with pytest.raises(ValueError, match="same shape"):
    metrics.average_precision([0.1, 0.2], [True])
  with pytest.raises(ValueError, match="at least one item"):
    metrics.average_precision(np.zeros((3, 0)), np.zeros((3, 0), bool))
  with pytest.raises(ValueError, match="only 0 and 1"):
    metrics.average_precision([0.1, 0.2], [2, 0])
  with pytest.raises(ValueError, match="interpolation"):
    metrics.average_precision([0.1, 0.2], [1, 0], interpolation="voc12")


@SETTINGS
@hypothesis.given(st.integers(1, 25).flatmap(
    lambda n: st.tuples(hnp.arrays(np.int64, n, elements=st.integers(-4, 4)),
                        hnp.arrays(np.bool_, n))))
def test_average_precision_properties(case):
  scores, relevant = case
  hypothesis.assume(relevant.any())
  ap = metrics.average_precision(scores, relevant)
  assert 0.0 < ap <= 1.0
  assert metrics.average_precision(_increasing(scores), relevant) == pytest.approx(ap, abs=1e-12)
  assert metrics.average_precision(np.exp(scores / 3.0), relevant) == pytest.approx(ap, abs=1e-12)
  permutation = np.random.default_rng(len(scores)).permutation(len(scores))
  assert metrics.average_precision(scores[permutation], relevant[permutation]) == pytest.approx(ap, abs=1e-12)
  voc07 = metrics.average_precision(scores, relevant, interpolation="voc07")
  assert metrics.average_precision(_increasing(scores), relevant, interpolation="voc07") == pytest.approx(voc07)


# ----------------------------------------------------------------------------------------------------------
# Retrieval.


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
def test_recall_at_k_and_median_rank_match_sorting_loop(ties):
  rng = np.random.default_rng(10)
  scores = rng.integers(0, 4, (40, 12)).astype(float)  # many ties
  relevant = rng.random((40, 12)) < 0.15
  relevant[:3] = False  # queries without a relevant item: skipped
  relevant[3:, 0] |= ~relevant[3:].any(axis=1)
  ranks = first_relevant_rank_loop(scores, relevant, ties)
  assert ranks.size == 37
  ks = [1, 2, 5, 12]
  np.testing.assert_allclose(metrics.recall_at_k(scores, relevant, ks, ties=ties),
                             [np.mean(ranks <= k) for k in ks])
  assert metrics.recall_at_k(scores, relevant, 5, ties=ties) == pytest.approx(np.mean(ranks <= 5))
  assert metrics.median_rank(scores, relevant, ties=ties) == np.floor(np.median(ranks - 1)) + 1


def test_recall_at_k_constant_scores_pessimistic_vs_optimistic():
  scores = np.zeros((2, 4))
  relevant = np.eye(2, 4, dtype=bool)
  assert metrics.recall_at_k(scores, relevant, 1) == 0.0
  assert metrics.recall_at_k(scores, relevant, 4) == 1.0
  assert metrics.recall_at_k(scores, relevant, 1, ties="optimistic") == 1.0
  assert metrics.median_rank(scores, relevant) == 4.0


def test_median_rank_even_number_of_queries_uses_floor_convention():
  # 1-based ranks 1 and 2: median of 0-based ranks is 0.5, floor + 1 = 1.
  scores = np.array([[0.9, 0.1], [0.9, 0.1]])
  relevant = np.array([[True, False], [False, True]])
  assert metrics.median_rank(scores, relevant) == 1.0


def test_retrieval_accuracy_at_k_matches_sklearn_top_k_accuracy():
  rng = np.random.default_rng(11)
  distances = rng.random((50, 50)) + 0.3 * (1 - np.eye(50))  # the diagonal tends to be closer
  for k in (1, 5, 10):
    expected = sklearn.metrics.top_k_accuracy_score(np.arange(50), -distances, k=k, labels=np.arange(50))
    assert metrics.retrieval_accuracy_at_k(-distances, k) == pytest.approx(expected)
  true_match = rng.permutation(50)
  expected = sklearn.metrics.top_k_accuracy_score(true_match, -distances, k=10, labels=np.arange(50))
  assert metrics.retrieval_accuracy_at_k(-distances, 10, true_match=true_match) == pytest.approx(expected)


def test_retrieval_errors():
  scores = np.zeros((3, 4))
  relevant = np.eye(3, 4, dtype=bool)
  with pytest.raises(ValueError, match=r"\[1, 4\]"):
    metrics.recall_at_k(scores, relevant, 0)
  with pytest.raises(ValueError, match=r"\[1, 4\]"):
    metrics.recall_at_k(scores, relevant, [1, 5])
  with pytest.raises(ValueError, match="positive int"):
    metrics.recall_at_k(scores, relevant, 1.5)
  with pytest.raises(ValueError, match="2-D"):
    metrics.recall_at_k(scores[0], relevant[0], 1)
  with pytest.raises(ValueError, match="ties"):
    metrics.median_rank(scores, relevant, ties="random")
  with pytest.raises(ValueError, match="No query has a relevant"):
    metrics.median_rank(scores, np.zeros_like(relevant))
  with pytest.raises(ValueError, match="NaN"):
    metrics.recall_at_k(np.full((3, 4), np.nan), relevant, 1)
  with pytest.raises(ValueError, match="at least one query"):
    metrics.recall_at_k(np.zeros((0, 4)), np.zeros((0, 4), bool), 1)
  with pytest.raises(ValueError, match="as many photos as sketches"):
    metrics.retrieval_accuracy_at_k(np.zeros((4, 3)), 1)
  with pytest.raises(ValueError, match="true_match"):
    metrics.retrieval_accuracy_at_k(scores, 1, true_match=[0, 1, 4])


def test_triplet_accuracy_matches_loop():
  rng = np.random.default_rng(12)
  distances = rng.integers(0, 5, (6, 8)).astype(float)  # ties count as wrong
  triplets = np.stack([rng.integers(0, 6, 200), rng.integers(0, 8, 200), rng.integers(0, 8, 200)], axis=1)
  expected = np.mean([distances[s, p] < distances[s, n] for s, p, n in triplets])
  assert metrics.triplet_accuracy(distances, triplets) == pytest.approx(expected)


def test_triplet_accuracy_errors():
  distances = np.zeros((2, 3))
  with pytest.raises(ValueError, match="empty"):
    metrics.triplet_accuracy(distances, np.zeros((0, 3), int))
  with pytest.raises(ValueError, match=r"\[num_triplets, 3\]"):
    metrics.triplet_accuracy(distances, [[0, 1]])
  with pytest.raises(ValueError, match="Sketch indices"):
    metrics.triplet_accuracy(distances, [[2, 0, 1]])
  with pytest.raises(ValueError, match="Photo indices"):
    metrics.triplet_accuracy(distances, [[0, 0, 3]])
  with pytest.raises(ValueError, match="NaN"):
    metrics.triplet_accuracy(np.full((2, 3), np.nan), [[0, 0, 1]])


# ----------------------------------------------------------------------------------------------------------
# Class-balanced accuracy and top-k annotation.


def test_class_balanced_accuracy_matches_sklearn():
  rng = np.random.default_rng(13)
  labels = np.stack([rng.random(300) < 0.1, rng.integers(0, 6, 300), rng.integers(0, 2, 300)], axis=1)
  predictions = np.where(rng.random((300, 3)) < 0.7, labels, rng.integers(0, 7, (300, 3)))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # sklearn warns about predicted classes absent from y_true
    expected = [sklearn.metrics.balanced_accuracy_score(labels[:, j], predictions[:, j]) for j in range(3)]
  np.testing.assert_allclose(metrics.class_balanced_accuracy(predictions, labels, per_attribute=True),
                             expected)
  assert metrics.class_balanced_accuracy(predictions, labels) == pytest.approx(np.mean(expected))
  assert metrics.class_balanced_accuracy(predictions[:, 1], labels[:, 1]) == pytest.approx(expected[1])
  # Bool inputs (binary attributes).
  binary_labels, binary_predictions = labels[:, 2] == 1, predictions[:, 2] == 1
  assert (metrics.class_balanced_accuracy(binary_predictions, binary_labels)
          == pytest.approx(sklearn.metrics.balanced_accuracy_score(binary_labels, binary_predictions)))


def test_class_balanced_accuracy_where_mask():
  rng = np.random.default_rng(14)
  labels = rng.integers(0, 4, (100, 2))
  predictions = rng.integers(0, 4, (100, 2))
  where = rng.random((100, 2)) < 0.6
  where[:, 1] = False  # attribute 1 never annotated: skipped
  expected = sklearn.metrics.balanced_accuracy_score(labels[where[:, 0], 0], predictions[where[:, 0], 0])
  per_attribute = metrics.class_balanced_accuracy(predictions, labels, where=where, per_attribute=True)
  assert per_attribute[0] == pytest.approx(expected)
  assert np.isnan(per_attribute[1])
  assert metrics.class_balanced_accuracy(predictions, labels, where=where) == pytest.approx(expected)
  with pytest.raises(ValueError, match="No attribute"):
    metrics.class_balanced_accuracy(predictions, labels, where=np.zeros((100, 2), bool))


def test_class_balanced_accuracy_errors():
  with pytest.raises(ValueError, match="argmax"):  # float class values must be whole numbers
    metrics.class_balanced_accuracy(np.full(3, 0.5), np.zeros(3, int))
  with pytest.raises(TypeError, match="argmax"):
    metrics.class_balanced_accuracy(np.array(["a", "b", "c"]), np.zeros(3, int))
  with pytest.raises(ValueError, match="same shape"):
    metrics.class_balanced_accuracy(np.zeros(3, int), np.zeros(4, int))
  with pytest.raises(ValueError, match=r"\[n, n_attr\]"):
    metrics.class_balanced_accuracy(np.zeros((2, 2, 2), int), np.zeros((2, 2, 2), int))
  with pytest.raises(TypeError, match="boolean"):
    metrics.class_balanced_accuracy(np.zeros(3, int), np.zeros(3, int), where=np.ones(3))
  # All one class, perfectly predicted: 1.0.
  assert metrics.class_balanced_accuracy([2, 2, 2], [2, 2, 2]) == 1.0


@pytest.mark.parametrize("k", [1, 3, 5])
def test_annotation_precision_recall_matches_sklearn(k):
  rng = np.random.default_rng(15 + k)
  num_images, num_classes = 60, 9
  scores = rng.integers(0, 5, (num_images, num_classes)).astype(float)  # ties: lower class index first
  labels = rng.random((num_images, num_classes)) < 0.25
  labels[:, 8] = False  # a class without ground truth: recall 0
  predicted = np.zeros_like(labels)
  for i in range(num_images):
    top = sorted(range(num_classes), key=lambda c: (-scores[i, c], c))[:k]
    predicted[i, top] = True
  precision, recall, _, _ = sklearn.metrics.precision_recall_fscore_support(
      labels, predicted, average=None, zero_division=0)
  micro_p, micro_r, _, _ = sklearn.metrics.precision_recall_fscore_support(
      labels, predicted, average="micro", zero_division=0)
  result = metrics.annotation_precision_recall(scores, labels, k)
  np.testing.assert_allclose(result.precision_by_class, precision)
  np.testing.assert_allclose(result.recall_by_class, recall)
  assert result.per_class_precision == pytest.approx(precision.mean())
  assert result.per_class_recall == pytest.approx(recall.mean())
  assert result.overall_precision == pytest.approx(micro_p)
  assert result.overall_recall == pytest.approx(micro_r)
  assert result.n_plus == np.count_nonzero(recall > 0)
  assert result.n_plus <= 8


def test_annotation_precision_recall_perfect_scores_and_errors():
  labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], bool)
  result = metrics.annotation_precision_recall(labels.astype(float), labels, 1)
  assert (result.per_class_precision, result.per_class_recall, result.n_plus) == (1.0, 1.0, 3)
  no_labels = metrics.annotation_precision_recall(np.ones((3, 3)), np.zeros((3, 3), bool), 2)
  assert (no_labels.overall_recall, no_labels.overall_precision, no_labels.n_plus) == (0.0, 0.0, 0)
  with pytest.raises(ValueError, match=r"\[1, 3\]"):
    metrics.annotation_precision_recall(np.ones((3, 3)), labels, 4)
  with pytest.raises(ValueError, match=r"\[1, 3\]"):
    metrics.annotation_precision_recall(np.ones((3, 3)), labels, True)
  with pytest.raises(ValueError, match="NaN"):
    metrics.annotation_precision_recall(np.full((3, 3), np.nan), labels, 1)
  with pytest.raises(ValueError, match="2-D"):
    metrics.annotation_precision_recall(np.ones(3), labels[0], 1)


# ----------------------------------------------------------------------------------------------------------
# Issue 9: integer scores and zero-size inputs.


def test_integer_scores_are_ordered_exactly():
  # Beyond 2**53 a cast to float64 ties 2**62 + 1 with 2**62; unsigned scores must not wrap when negated.
  big = np.array([[2 ** 62 + 1, 2 ** 62, 0]], np.int64)
  relevant = np.array([[False, True, False]])
  assert metrics.recall_at_k(big, relevant, 1, ties="optimistic") == 0.0  # exact: the relevant item is 2nd
  assert metrics.average_precision(big[0], relevant[0]) == 0.5
  np.testing.assert_array_equal(metrics.annotation_precision_recall(big, relevant, 1).precision_by_class,
                                [0.0, 0.0, 0.0])
  small = np.array([0, 1, 2, 3], np.uint8)
  first = np.array([True, False, False, False])
  want = sklearn.metrics.average_precision_score(first, [0, 1, 2, 3])
  assert metrics.average_precision(small, first) == want
  assert metrics.average_precision(np.array([True, False, True]), [True, False, False]) == 0.5  # tied top 2
  assert metrics.median_rank(small[None], first[None]) == 4.0


def test_zero_size_inputs_raise_a_clear_error_where_no_value_is_defined():
  empty = np.zeros((0, 3))
  cases = [
      (lambda: metrics.kendall_tau([], []), "at least 2"),
      (lambda: metrics.spearman_rho(np.zeros((4, 0)), np.zeros((4, 0))), "at least 2"),
      (lambda: metrics.average_precision(np.zeros((2, 0)), np.zeros((2, 0), bool)), "at least one item"),
      (lambda: metrics.mean_average_precision(empty, empty), "undefined"),
      (lambda: metrics.recall_at_k(empty, empty, 1), "at least one query"),
      (lambda: metrics.recall_at_k(np.zeros((3, 0)), np.zeros((3, 0)), 1), "at least one query"),
      (lambda: metrics.median_rank(empty, empty), "at least one query"),
      (lambda: metrics.retrieval_accuracy_at_k(empty, 1), "at least one query"),
      (lambda: metrics.triplet_accuracy(np.zeros((2, 2)), np.zeros((0, 3), int)), "empty"),
      (lambda: metrics.triplet_accuracy(np.zeros((0, 2)), [[0, 0, 1]]), "Sketch indices"),
      (lambda: metrics.class_balanced_accuracy(np.zeros(0, int), np.zeros(0, int)), "undefined"),
      (lambda: metrics.class_balanced_accuracy(np.zeros((5, 0), int), np.zeros((5, 0), int)), "undefined"),
      (lambda: metrics.annotation_precision_recall(empty, empty, 1), "at least one image"),
  ]
  for fn, message in cases:
    with pytest.raises(ValueError, match=message):
      fn()
  # Where a value is defined it is returned: no list gives no AP, an empty list has empty ranks.
  assert metrics.average_precision(np.zeros((0, 3)), np.zeros((0, 3), bool)).shape == (0,)
  assert metrics.class_balanced_accuracy(np.zeros((5, 0), int), np.zeros((5, 0), int),
                                         per_attribute=True).shape == (0,)


# ----------------------------------------------------------------------------------------------------------
# Issue 29, item 8: relevance, labels, class values and indices of every dtype the README lists (bfloat16
# jax.Array included), for every metric, against sklearn / scipy / a loop on the float64 or bool values.

LABEL_DTYPES = ["bool", "uint8", "int32", "float16", "float32", "float64", "jax_bfloat16", "jax_int32",
                "jax_float32", "jax_bool"]


def _in_dtype(values, dtype):
  """``values`` (whole numbers) as an array of ``dtype``: numpy, or a jax.Array for the ``jax_`` ones."""
  values = np.asarray(values)
  if dtype.startswith("jax_"):
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    return jnp.asarray(values, getattr(jnp, dtype[4:]))
  return values.astype(dtype)


def _binary_relevance(rng, shape):
  relevant = rng.random(shape) < 0.3
  relevant[..., 0] = True  # every list has a relevant item ...
  relevant[..., 1] = False  # ... and an irrelevant one
  return relevant


def _check_average_precision(rng, dtype):
  scores = rng.normal(size=(4, 9))
  relevant = _binary_relevance(rng, scores.shape)
  want = [sklearn.metrics.average_precision_score(r, s) for s, r in zip(scores, relevant)]
  np.testing.assert_allclose(metrics.average_precision(scores, _in_dtype(relevant, dtype)), want)
  assert metrics.mean_average_precision(scores, _in_dtype(relevant, dtype)) == pytest.approx(np.mean(want))


def _check_mean_average_precision(rng, dtype):
  scores = rng.integers(0, 3, size=(9, 4)).astype(float)  # ties; classes on axis 0
  relevant = _binary_relevance(rng, (4, 9)).T
  want = np.mean([sklearn.metrics.average_precision_score(relevant[:, c], scores[:, c]) for c in range(4)])
  assert metrics.mean_average_precision(scores, _in_dtype(relevant, dtype), axis=0) == pytest.approx(want)


def _check_recall_at_k(rng, dtype):
  scores = rng.integers(0, 4, size=(6, 10)).astype(float)
  relevant = _binary_relevance(rng, scores.shape)
  ranks = first_relevant_rank_loop(scores, relevant, "pessimistic")
  np.testing.assert_allclose(metrics.recall_at_k(scores, _in_dtype(relevant, dtype), [1, 3]),
                             [np.mean(ranks <= 1), np.mean(ranks <= 3)])


def _check_median_rank(rng, dtype):
  scores = rng.normal(size=(7, 10))
  relevant = _binary_relevance(rng, scores.shape)
  ranks = first_relevant_rank_loop(scores, relevant, "optimistic")
  assert (metrics.median_rank(scores, _in_dtype(relevant, dtype), ties="optimistic")
          == np.floor(np.median(ranks - 1)) + 1)


def _check_annotation_precision_recall(rng, dtype):
  scores = rng.normal(size=(12, 5))
  labels = rng.random(scores.shape) < 0.4
  predicted = np.zeros_like(labels)
  np.put_along_axis(predicted, np.argsort(-scores, axis=1)[:, :2], True, axis=1)
  precision, recall, _, _ = sklearn.metrics.precision_recall_fscore_support(labels, predicted, average=None,
                                                                            zero_division=0)
  result = metrics.annotation_precision_recall(scores, _in_dtype(labels, dtype), 2)
  np.testing.assert_allclose(result.precision_by_class, precision)
  np.testing.assert_allclose(result.recall_by_class, recall)


def _check_class_balanced_accuracy(rng, dtype):
  top = 2 if "bool" in dtype else 4
  labels, predictions = rng.integers(0, top, size=(2, 30, 2))
  labels[:top, :] = np.arange(top)[:, None]  # every class occurs
  want = [sklearn.metrics.balanced_accuracy_score(labels[:, j], predictions[:, j]) for j in range(2)]
  got = metrics.class_balanced_accuracy(_in_dtype(predictions, dtype), _in_dtype(labels, dtype),
                                        where=_in_dtype(np.ones((30, 2), bool), "jax_bool"), per_attribute=True)
  np.testing.assert_allclose(got, want)


def _check_retrieval_accuracy_at_k(rng, dtype):
  if "bool" in dtype:
    return  # indices: booleans are refused (a TypeError), tested below
  scores = rng.normal(size=(8, 9))
  true_match = rng.integers(0, 9, size=8)
  want = sklearn.metrics.top_k_accuracy_score(true_match, scores, k=3, labels=np.arange(9))
  assert metrics.retrieval_accuracy_at_k(scores, 3, true_match=_in_dtype(true_match, dtype)) == pytest.approx(want)


def _check_triplet_accuracy(rng, dtype):
  if "bool" in dtype:
    return  # indices, as above
  distances = rng.normal(size=(4, 6))
  triplets = np.stack([rng.integers(0, 4, 20), rng.integers(0, 6, 20), rng.integers(0, 6, 20)], axis=1)
  want = np.mean([distances[s, p] < distances[s, n] for s, p, n in triplets])
  assert metrics.triplet_accuracy(distances, _in_dtype(triplets, dtype)) == pytest.approx(want)


def _check_kendall_tau(rng, dtype):
  x = rng.normal(size=15)
  y = rng.integers(0, 2 if "bool" in dtype else 4, size=15)
  y[:2] = [0, 1]
  assert metrics.kendall_tau(x, _in_dtype(y, dtype)) == pytest.approx(scipy.stats.kendalltau(x, y)[0])


def _check_spearman_rho(rng, dtype):
  x = rng.normal(size=15)
  y = rng.integers(0, 2 if "bool" in dtype else 4, size=15)
  y[:2] = [0, 1]
  assert metrics.spearman_rho(x, _in_dtype(y, dtype)) == pytest.approx(scipy.stats.spearmanr(x, y)[0])


def _check_average_ranks(rng, dtype):
  values = rng.integers(0, 2 if "bool" in dtype else 4, size=(3, 10))
  np.testing.assert_array_equal(metrics.average_ranks(_in_dtype(values, dtype)),
                                scipy.stats.rankdata(values, axis=-1))


# Every public metric: how it is checked with labels of each dtype, or why it takes no labels.
LABEL_CHECKS = {
    "average_precision": _check_average_precision,
    "mean_average_precision": _check_mean_average_precision,
    "recall_at_k": _check_recall_at_k,
    "median_rank": _check_median_rank,
    "annotation_precision_recall": _check_annotation_precision_recall,
    "class_balanced_accuracy": _check_class_balanced_accuracy,
    "retrieval_accuracy_at_k": _check_retrieval_accuracy_at_k,
    "triplet_accuracy": _check_triplet_accuracy,
    "kendall_tau": _check_kendall_tau,  # the second variable in the role of labels
    "spearman_rho": _check_spearman_rho,
    "average_ranks": _check_average_ranks,
}
WITHOUT_LABELS = {"cross_modal_recall": "embeddings only (relevance is implied by the layout)",
                  "AnnotationMetrics": "a result type"}


def test_every_public_metric_is_checked_with_every_label_dtype():
  public = {name for name, value in vars(metrics).items()
            if not name.startswith("_") and callable(value) and getattr(value, "__module__", "") == metrics.__name__}
  assert public == set(LABEL_CHECKS) | set(WITHOUT_LABELS)


@pytest.mark.parametrize("dtype", LABEL_DTYPES)
@pytest.mark.parametrize("name", sorted(LABEL_CHECKS))
def test_metrics_accept_labels_of_every_dtype(name, dtype):
  """bfloat16 0/1 relevance used to raise a TypeError (issue 29, item 8); values match the references."""

  @hypothesis.settings(max_examples=4, deadline=None, derandomize=True)
  @hypothesis.given(st.integers(0, 2**32 - 1))
  def check(seed):
    LABEL_CHECKS[name](np.random.default_rng(seed), dtype)

  check()


def test_labels_of_other_values_are_refused_clearly():
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  scores = np.array([0.3, 0.1, 0.2])
  with pytest.raises(ValueError, match="only 0 and 1"):
    metrics.average_precision(scores, jnp.asarray([1.0, 0.5, 0.0], jnp.bfloat16))
  with pytest.raises(ValueError, match="whole numbers"):
    metrics.retrieval_accuracy_at_k(np.eye(2), 1, true_match=jnp.asarray([0.5, 1.0], jnp.bfloat16))
  with pytest.raises(TypeError, match="int values"):
    metrics.triplet_accuracy(np.eye(2), np.ones((1, 3), bool))
