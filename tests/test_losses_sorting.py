"""Tests of the SoDeep rank losses against plain numpy loops written from eq. 2-10, scipy and sklearn.

The generic checks of every loss (jit, vmap, bfloat16 and integer inputs, masks, one-item and zero-size lists,
float64 finite differences) are in test_contract.py; the exact target ranks (ranks.tie_averaged_ranks) are
tested in test_ranks.py.
"""

from __future__ import annotations

import pathlib

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from ranking_jax import ranks
from ranking_jax.losses import sorting

import testing_utils

DATA = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SETTINGS = hypothesis.settings(max_examples=25, deadline=None, derandomize=True)


spearman_loss = testing_utils.jitted(sorting.spearman_loss)
map_rank_loss = testing_utils.jitted(sorting.map_rank_loss)
recall_rank_loss = testing_utils.jitted(sorting.recall_rank_loss)
tie_averaged_ranks = testing_utils.jitted(ranks.tie_averaged_ranks)


# ---------------------------------------------------------------------------------------------------
# Independent numpy references, written from the paper's equations.


def np_sigmoid_ranks(scores, sharpness=10.0):
  """Eq. 11-12 plus 1 (1-based): rank_i = 1 + sum_{j != i} 1 / (1 + exp(-lambda (s_j - s_i)))."""
  scores = np.asarray(scores, np.float64)
  out = np.ones(len(scores))
  for i in range(len(scores)):
    for j in range(len(scores)):
      if j != i:
        out[i] += 1.0 / (1.0 + np.exp(-sharpness * (scores[j] - scores[i])))
  return out


def np_exact_ranks(scores):
  """rank 1 = highest score (scores assumed distinct)."""
  return scipy.stats.rankdata(-np.asarray(scores, np.float64), method="ordinal").astype(np.float64)


def np_spearman(scores, labels, mask=None, sorter=np_exact_ranks, weights=None):
  """Eq. 2/4 normalised: 6 sum w (f(y) - rk(y*))^2 / (n (n^2 - 1)) over the valid items."""
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels, np.float64)
  mask = np.ones(len(scores), bool) if mask is None else np.asarray(mask)
  weights = np.ones(len(scores)) if weights is None else np.asarray(weights, np.float64)
  s, y, w = scores[mask], labels[mask], weights[mask]
  n = len(s)
  if n < 2:
    return 0.0
  target = scipy.stats.rankdata(-y, method="average")
  return 6.0 * np.sum(w * (sorter(s) - target) ** 2) / (n * (n ** 2 - 1))


def np_map_eq7(scores, labels, sorter=np_exact_ranks, weights=None):
  """Eq. 7 as written (and as sodeep.py's MapRankingLoss), one class: sum_{j in P} w_j f(y)_j, as a loop."""
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels) > 0
  weights = np.ones(len(scores)) if weights is None else np.asarray(weights, np.float64)
  predicted = sorter(scores)
  total = 0.0
  for j in range(len(scores)):
    if labels[j]:
      total += weights[j] * predicted[j]
  return total


def np_map_rank_sum(scores, labels, sorter=np_exact_ranks):
  """Eq. 7 per class normalised: (sum_{j in P} f(y)_j - rel (rel + 1) / 2) / (rel n_neg)."""
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels) > 0
  rel, n_neg = labels.sum(), (~labels).sum()
  if rel == 0 or n_neg == 0:
    return 0.0
  predicted = sorter(scores)
  return (predicted[labels].sum() - rel * (rel + 1) / 2) / (rel * n_neg)


def np_map_ap(scores, labels, sorter=np_exact_ranks):
  """1 - eq. 5-6 on the sorter's ranks: 1 - mean_{j in P} rank_among_positives(j) / rank(j)."""
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels) > 0
  if labels.sum() == 0:
    return 0.0
  predicted = sorter(scores)
  among_positives = sorter(scores[labels])
  return float(np.mean(1.0 - among_positives / np.maximum(predicted[labels], 1.0)))


def np_recall(similarities, relevance, margin=1.0, k=1, mask=None, sorter=np_exact_ranks):
  """Eq. 9-10 per query: mean over positives p of mean over the k hardest negatives c of
  max(0, alpha + f(Y[i])_p - f(Y[i])_c); the hardest negatives are those of smallest rank."""
  similarities = np.asarray(similarities, np.float64)
  relevance = np.asarray(relevance, bool)
  mask = np.ones_like(relevance) if mask is None else np.asarray(mask, bool)
  out = []
  for row, rel, valid in zip(similarities, relevance, mask):
    idx = np.flatnonzero(valid)
    r = np.zeros(len(row))
    r[idx] = sorter(row[idx])
    pos = [p for p in idx if rel[p]]
    neg = [c for c in idx if not rel[c]]
    if not pos or not neg:
      out.append(0.0)
      continue
    hard = sorted(neg, key=lambda c: r[c])[:k]
    terms = [np.mean([max(0.0, margin + r[p] - r[c]) for c in hard]) for p in pos]
    out.append(float(np.mean(terms)))
  return np.array(out)


def distinct_scores(rng, shape):
  """Continuous random scores: ties have probability 0 (checked)."""
  x = rng.normal(size=shape)
  assert all(len(np.unique(row)) == row.size for row in x.reshape(-1, shape[-1]))
  return x.astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# spearman_loss


def test_spearman_hard_ranks_is_one_minus_scipy_spearmanr():
  rng = np.random.default_rng(1)
  for n in (2, 7, 50):
    scores, labels = distinct_scores(rng, (4, n)), distinct_scores(rng, (4, n))
    got = spearman_loss(scores, labels, rank_fn=ranks.hard_ranks, reduce_fn=None)
    want = [1.0 - scipy.stats.spearmanr(s, y).statistic for s, y in zip(scores, labels)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    mean = spearman_loss(scores, labels, rank_fn=ranks.hard_ranks)
    np.testing.assert_allclose(mean, np.mean(want), atol=1e-5)


def test_spearman_sigmoid_matches_numpy_loop_with_masks_weights_and_tied_labels():
  rng = np.random.default_rng(2)
  scores = distinct_scores(rng, (3, 8))
  labels = rng.integers(0, 3, size=(3, 8)).astype(np.float32)  # many ties
  where = rng.random((3, 8)) > 0.3
  weights = rng.random((3, 8)).astype(np.float32)
  got = spearman_loss(scores, labels, where=where, weights=weights, reduce_fn=None)
  want = [np_spearman(s, y, m, np_sigmoid_ranks, w) for s, y, m, w in zip(scores, labels, where, weights)]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_spearman_real_vsd_scores_with_ties():
  path = DATA / "vsd" / "VSD_dataset.csv"
  if not path.exists():
    pytest.skip("shared data absent")
  rows = [line.split(",") for line in path.read_text().splitlines() if line and line[0].isdigit()]
  labels = np.array([float(r[1]) for r in rows[:400]], np.float32).reshape(4, 100)
  assert any(len(np.unique(row)) < row.size for row in labels)  # real ties
  rng = np.random.default_rng(3)
  scores = labels + rng.normal(scale=0.3, size=labels.shape).astype(np.float32)
  np.testing.assert_allclose(tie_averaged_ranks(labels)[0],
                             scipy.stats.rankdata(-labels[0], method="average"))
  got = spearman_loss(scores, labels, rank_fn=ranks.hard_ranks, reduce_fn=None)
  np.testing.assert_allclose(got, [np_spearman(s, y) for s, y in zip(scores, labels)], atol=1e-5)
  # With ties the normalised eq. 2 is close to, not equal to, 1 - rho (scipy corrects for ties).
  rho = [scipy.stats.spearmanr(s, y).statistic for s, y in zip(scores, labels)]
  np.testing.assert_allclose(got, 1.0 - np.array(rho), atol=2e-2)


def test_spearman_edge_cases():
  scores = jnp.array([[0.3, 0.1, 0.2], [0.3, 0.1, 0.2], [0.5, jnp.nan, 0.1]])
  labels = jnp.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
  where = jnp.array([[False] * 3, [True] * 3, [True] * 3])
  per_list = spearman_loss(scores, labels, rank_fn=ranks.hard_ranks, where=where,
                                   reduce_fn=None)
  # Fully masked -> 0; all labels tied -> 1/2 (documented); NaN item -> masked (2 valid, reversed).
  np.testing.assert_allclose(per_list, [0.0, 0.5, 2.0], atol=1e-6)
  # The NaN item behaves exactly as a masked one.
  masked = spearman_loss(jnp.array([0.5, 0.0, 0.1]), labels[2],
                                 where=jnp.array([True, False, True]))
  np.testing.assert_allclose(spearman_loss(scores[2], labels[2]), masked)


def test_spearman_one_element_lists_are_left_out_of_the_mean():
  scores = jnp.array([[0.1, 0.2], [0.3, 0.0]])
  labels = jnp.array([[1.0, 2.0], [1.0, 2.0]])
  where = jnp.array([[True, True], [True, False]])
  got = spearman_loss(scores, labels, rank_fn=ranks.hard_ranks, where=where)
  np.testing.assert_allclose(got, 0.0, atol=1e-7)  # only list 0 counts, and it is perfectly ranked
  got = spearman_loss(scores[::-1], labels, rank_fn=ranks.hard_ranks, where=where)
  np.testing.assert_allclose(got, 2.0)  # list 0 reversed (rho = -1); list 1 still left out


# ---------------------------------------------------------------------------------------------------
# map_rank_loss


def test_map_average_precision_form_is_one_minus_sklearn_ap():
  rng = np.random.default_rng(4)
  scores = distinct_scores(rng, (6, 15))
  labels = (rng.random((6, 15)) < 0.3).astype(np.int32)
  labels[0] = 0  # a class without positives: skipped
  labels[1, :] = 1  # a class without negatives: AP = 1
  got = map_rank_loss(scores, labels, rank_fn=ranks.hard_ranks, form="average_precision",
                              reduce_fn=None)
  want = [0.0] + [1.0 - sklearn.metrics.average_precision_score(y, s)
                  for s, y in zip(scores[1:], labels[1:])]
  np.testing.assert_allclose(got, want, atol=1e-6)
  mean = map_rank_loss(scores, labels, rank_fn=ranks.hard_ranks, form="average_precision")
  np.testing.assert_allclose(mean, np.mean(want[1:]), atol=1e-6)  # classes without positives skipped


def test_map_normalized_rank_sum_form_is_one_minus_roc_auc_and_coincides_with_ap_only_at_the_ends():
  rng = np.random.default_rng(5)
  scores = distinct_scores(rng, (5, 12))
  labels = (rng.random((5, 12)) < 0.4).astype(np.int32)
  labels[:, 0], labels[:, 1] = 1, 0
  got = map_rank_loss(scores, labels, rank_fn=ranks.hard_ranks, form="normalized_rank_sum", reduce_fn=None)
  want = [1.0 - sklearn.metrics.roc_auc_score(y, s) for s, y in zip(scores, labels)]
  np.testing.assert_allclose(got, want, atol=1e-6)
  # Perfect ranking: both forms 0 (AP = 1); otherwise eq. 7 is not 1 - AP.
  perfect = np.where(labels > 0, 10.0 + scores, scores).astype(np.float32)
  for form in ("normalized_rank_sum", "average_precision"):
    np.testing.assert_allclose(
        map_rank_loss(perfect, labels, rank_fn=ranks.hard_ranks, form=form), 0.0, atol=1e-6)
  ap = [sklearn.metrics.average_precision_score(y, s) for s, y in zip(scores, labels)]
  assert not np.allclose(got, 1.0 - np.array(ap), atol=1e-3)
  # One positive at rank r of n: eq. 7 gives (r - 1) / (n - 1), AP = 1 / r; both order lists alike.
  n = 10
  for r in range(1, n + 1):
    s = -np.arange(n, dtype=np.float32)
    y = np.zeros(n, np.int32)
    y[r - 1] = 1
    np.testing.assert_allclose(map_rank_loss(s, y, rank_fn=ranks.hard_ranks, form="normalized_rank_sum"),
                               (r - 1) / (n - 1), atol=1e-6)
    np.testing.assert_allclose(map_rank_loss(s, y, rank_fn=ranks.hard_ranks), r, atol=1e-6)  # eq. 7
    np.testing.assert_allclose(sklearn.metrics.average_precision_score(y, s), 1.0 / r)


def test_map_eq7_summed_over_classes_is_the_authors_loop():
  """Eq. 7 with reduce_fn=jnp.sum: a loop over the classes of a [batch, C] logit matrix that skips classes
  without positives and sums the sorter's ranks of the positives (sodeep.py's MapRankingLoss, with ranks in
  positions rather than rank / n); the mean divides by the classes with a positive."""
  rng = np.random.default_rng(16)
  logits = distinct_scores(rng, (12, 5))  # [batch, C]
  targets = (rng.random((12, 5)) < 0.35).astype(np.float32)
  targets[:, 2] = 0.0  # a class without positives
  targets[:, 3] = 1.0  # a class without negatives: kept, as written
  targets[0, 0] = 1.0
  weights = rng.uniform(0.5, 2.0, size=(5, 12)).astype(np.float32)
  total, count = 0.0, 0
  for c in range(targets.shape[1]):
    if targets[:, c].sum() == 0:
      continue
    count += 1
    total += np_map_eq7(logits[:, c], targets[:, c], np_sigmoid_ranks, weights=weights[c])
  got = map_rank_loss(logits.T, targets.T, weights=weights, reduce_fn=jnp.sum)
  np.testing.assert_allclose(got, total, rtol=1e-5)
  np.testing.assert_allclose(map_rank_loss(logits.T, targets.T, weights=weights), total / count, rtol=1e-5)


def test_map_eq7_gives_every_positive_the_same_weight_and_the_normalized_form_does_not():
  """The per-class normalisation is what makes a rare class's positive dominate: with the same scores
  pattern, a class of 1 positive in 20 and a class of 10 in 20 give their positives gradients of the same
  size under eq. 7 (each positive's rank term has weight 1), while the normalised form divides by
  rel x n_neg (19 vs 100), i.e. the rare class's positive gets ~5x the gradient."""
  n = 20
  scores = np.tile(np.linspace(1.0, -1.0, n, dtype=np.float32), (2, 1))
  labels = np.zeros((2, n), np.float32)
  labels[0, 10] = 1.0  # rare: one positive, in the middle
  labels[1, 5:15] = 1.0  # frequent: ten positives around the middle
  soft = lambda s, where=None: ranks.soft_ranks(s, where=where, regularization_strength=1.0)
  grads = {}
  for form in ("rank_sum", "normalized_rank_sum"):
    grads[form] = np.asarray(jax.grad(lambda s: sorting.map_rank_loss(
        s, labels, rank_fn=soft, form=form, reduce_fn=jnp.sum))(jnp.asarray(scores)))
  rare = lambda g: abs(g[0, 10])
  frequent = lambda g: np.mean(np.abs(g[1, 5:15]))
  ratio_eq7 = rare(grads["rank_sum"]) / frequent(grads["rank_sum"])
  ratio_normalized = rare(grads["normalized_rank_sum"]) / frequent(grads["normalized_rank_sum"])
  assert 0.5 < ratio_eq7 < 2.0
  assert ratio_normalized > 2.5 * ratio_eq7
  np.testing.assert_allclose(ratio_normalized / ratio_eq7, (10 * 10) / (1 * 19), rtol=1e-5)


def test_map_sigmoid_matches_numpy_loops():
  rng = np.random.default_rng(6)
  scores = distinct_scores(rng, (4, 9))
  labels = (rng.random((4, 9)) < 0.4).astype(np.float32)
  labels[:, 0] = 1.0
  for form, reference in (("rank_sum", np_map_eq7), ("normalized_rank_sum", np_map_rank_sum),
                          ("average_precision", np_map_ap)):
    got = map_rank_loss(scores, labels, form=form, reduce_fn=None)
    want = [reference(s, y, np_sigmoid_ranks) for s, y in zip(scores, labels)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_map_weights_and_masks():
  scores = jnp.array([0.9, 0.8, 0.3, 0.1, 0.5])
  labels = jnp.array([1, 0, 1, 0, 1])
  where = jnp.array([True, True, True, True, False])
  weights = jnp.array([2.0, 1.0, 0.5, 1.0, 7.0])
  got = map_rank_loss(scores, labels, rank_fn=ranks.hard_ranks, where=where, weights=weights,
                      form="normalized_rank_sum")
  # Valid positives: item 0 (no negative above: 0) and item 2 (one of two negatives above: 1/2).
  np.testing.assert_allclose(got, (2.0 * 0.0 + 0.5 * 0.5) / 2)
  # Eq. 7: the weighted ranks of the valid positives, 2 * 1 + 0.5 * 3 (item 4 is masked).
  np.testing.assert_allclose(map_rank_loss(scores, labels, rank_fn=ranks.hard_ranks, where=where,
                                           weights=weights), 2.0 * 1 + 0.5 * 3)
  got = map_rank_loss(scores, labels, rank_fn=ranks.hard_ranks, where=where, weights=weights,
                              form="average_precision")
  np.testing.assert_allclose(got, (2.0 * (1 - 1 / 1) + 0.5 * (1 - 2 / 3)) / 2, rtol=1e-6)


def test_map_edge_cases():
  scores = jnp.array([[0.2, jnp.nan, 0.1], [0.2, 0.3, 0.1]])
  no_positives = jnp.zeros((2, 3))
  labels = jnp.array([[0, 1, 1], [1, 0, 0]])
  for form in ("rank_sum", "normalized_rank_sum", "average_precision"):
    # A class without positives has no AP: 0, left out of the mean, no gradient.
    assert float(map_rank_loss(scores, no_positives, form=form)) == 0.0
    grad = jax.jit(jax.grad(lambda s: map_rank_loss(s, no_positives, form=form)))(scores)
    assert np.all(np.asarray(grad) == 0.0)
    # All scores tied: the sigmoid sorter gives every item the same rank (n + 1) / 2.
    tied = map_rank_loss(jnp.zeros((2, 3)), labels, form=form, reduce_fn=None)
    tied_ranks = lambda s: np.full(len(s), (len(s) + 1) / 2)
    reference = {"rank_sum": np_map_eq7, "normalized_rank_sum": np_map_rank_sum, "average_precision": np_map_ap}[form]
    want = [reference(np.zeros(3), y, tied_ranks) for y in np.asarray(labels)]
    np.testing.assert_allclose(tied, want, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------
# recall_rank_loss


@pytest.mark.parametrize("k", [1, 3])
def test_recall_matches_numpy_loop(k):
  rng = np.random.default_rng(7 + k)
  similarities = distinct_scores(rng, (5, 8))
  relevance = rng.random((5, 8)) < 0.25
  relevance[:, 0] = True
  relevance[4] = False  # a query without relevant item: left out
  where = rng.random((5, 8)) > 0.15
  where[:, 0] = True
  for rank_fn, sorter in ((ranks.hard_ranks, np_exact_ranks), (ranks.sigmoid_ranks, np_sigmoid_ranks)):
    got = recall_rank_loss(similarities, relevance, rank_fn=rank_fn, margin=0.7, k=k,
                                   where=where, reduce_fn=None)
    want = np_recall(similarities, relevance, margin=0.7, k=k, mask=where, sorter=sorter)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    mean = recall_rank_loss(similarities, relevance, rank_fn=rank_fn, margin=0.7, k=k,
                                    where=where)
    np.testing.assert_allclose(mean, np.mean(want[:4]), rtol=1e-5, atol=1e-5)


def test_recall_zero_iff_relevant_items_come_first():
  rng = np.random.default_rng(9)
  similarities = distinct_scores(rng, (6, 7))
  relevance = np.zeros((6, 7), bool)
  relevance[np.arange(6), np.arange(6)] = True
  got = np.asarray(recall_rank_loss(similarities, relevance, rank_fn=ranks.hard_ranks,
                                            reduce_fn=None))
  first = np.argmax(similarities, axis=-1) == np.arange(6)
  np.testing.assert_array_equal(got == 0.0, first)
  # Margin 1 on exact ranks: a match that is not first faces a rank-1 negative, so the loss is its rank.
  match_rank = np.array([np_exact_ranks(row)[i] for i, row in enumerate(similarities)])
  np.testing.assert_allclose(got[~first], match_rank[~first])


def test_recall_edge_cases():
  similarities = jnp.array([[0.5, jnp.inf, 0.1], [0.2, 0.3, 0.4], [0.1, 0.2, 0.3]])
  relevance = jnp.array([[True, False, False], [True, True, True], [False, False, False]])
  per_query = recall_rank_loss(similarities, relevance, reduce_fn=None)
  np.testing.assert_allclose(per_query[1:], 0.0)  # no negatives / no positives
  # The inf item is masked: query 0 is the list [0.5, 0.1] with its match first.
  want = np_recall([[0.5, 0.1]], [[True, False]], sorter=np_sigmoid_ranks)[0]
  np.testing.assert_allclose(per_query[0], want, rtol=1e-5)
  # k larger than the gallery uses every negative.
  a = recall_rank_loss(similarities, relevance, k=10)
  b = recall_rank_loss(similarities, relevance, k=3)
  np.testing.assert_allclose(a, b)
  # Numeric relevance is accepted (relevant iff > 0).
  np.testing.assert_allclose(recall_rank_loss(similarities, relevance.astype(jnp.float32)),
                             recall_rank_loss(similarities, relevance))


# ---------------------------------------------------------------------------------------------------
# Shared properties: errors, invariances, custom sorters.

LOSSES = {
    "spearman": lambda s, y, **kw: sorting.spearman_loss(s, y, **kw),
    "map_rank_sum": lambda s, y, **kw: sorting.map_rank_loss(s, (y > 0.2).astype(jnp.float32), **kw),
    "map_normalized": lambda s, y, **kw: sorting.map_rank_loss(s, (y > 0.2).astype(jnp.float32),
                                                               form="normalized_rank_sum", **kw),
    "map_ap": lambda s, y, **kw: sorting.map_rank_loss(s, (y > 0.2).astype(jnp.float32),
                                                       form="average_precision", **kw),
    "recall": lambda s, y, **kw: sorting.recall_rank_loss(s, y > 0.2, **kw),
    "recall_k2": lambda s, y, **kw: sorting.recall_rank_loss(s, y > 0.2, k=2, **kw),
}


def test_wrong_shapes_and_options_raise():
  s, y = jnp.zeros((2, 3)), jnp.zeros((2, 4))
  with pytest.raises(ValueError, match="same shape"):
    sorting.spearman_loss(s, y)
  with pytest.raises(ValueError, match="same shape"):
    sorting.map_rank_loss(s, y)
  with pytest.raises(ValueError, match="same shape"):
    sorting.recall_rank_loss(s, y)
  with pytest.raises(ValueError, match="at least 1"):
    sorting.spearman_loss(jnp.float32(1.0), jnp.float32(1.0))
  with pytest.raises(ValueError, match="form"):
    sorting.map_rank_loss(s, s, form="ndcg")
  with pytest.raises(ValueError, match="`k`"):
    sorting.recall_rank_loss(s, s, k=0)
  with pytest.raises(TypeError, match="boolean"):
    sorting.spearman_loss(s, s, where=jnp.ones((2, 3)))
  with pytest.raises(ValueError, match="rank_fn"):
    sorting.spearman_loss(s, s, rank_fn=lambda x, where=None: x[..., :1])
  with pytest.raises(TypeError, match="rank_fn"):
    sorting.spearman_loss(s, s, rank_fn=3)


def test_custom_rank_fn_matches_numpy_reference():
  rng = np.random.default_rng(12)
  scores, labels = distinct_scores(rng, (7,)), distinct_scores(rng, (7,))
  soft = lambda s, where=None: ranks.sigmoid_ranks(s, where=where, sharpness=2.0)
  np.testing.assert_allclose(spearman_loss(scores, labels, rank_fn=soft),
                             np_spearman(scores, labels, sorter=lambda s: np_sigmoid_ranks(s, 2.0)),
                             rtol=1e-5)
  # Sharper sigmoid sorters approach the exact ranks.
  sharp = lambda s, where=None: ranks.sigmoid_ranks(s, where=where, sharpness=1e4)
  relevance = labels > np.median(labels)
  for loss in (spearman_loss, map_rank_loss, recall_rank_loss):
    target = relevance if loss is not spearman_loss else labels
    np.testing.assert_allclose(loss(scores, target, rank_fn=sharp),
                               loss(scores, target, rank_fn=ranks.hard_ranks), atol=1e-3)


_JITTED = {name: jax.jit(lambda s, y, loss=loss: loss(s, y, reduce_fn=None)) for name, loss in LOSSES.items()}
_JITTED_HARD = {name: jax.jit(lambda s, y, loss=loss: loss(s, y, rank_fn=ranks.hard_ranks, reduce_fn=None))
                for name, loss in LOSSES.items()}
# No subnormals: XLA on CPU flushes them to zero, which would tie them with 0.
_floats = st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False, width=32)


@SETTINGS
@hypothesis.given(scores=hnp.arrays(np.float32, (2, 6), elements=_floats),
                  labels=hnp.arrays(np.float32, (2, 6), elements=st.floats(0.0, 1.0, width=32)),
                  permutation=st.permutations(range(6)))
def test_permutation_invariance(scores, labels, permutation):
  labels[:, 0], labels[:, 1] = 0.9, 0.0
  for name, loss in _JITTED.items():
    before = loss(scores, labels)
    after = loss(scores[:, permutation], labels[:, permutation])
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4, err_msg=name)


@SETTINGS
@hypothesis.given(scores=hnp.arrays(np.float32, (2, 6), elements=_floats, unique=True),
                  labels=hnp.arrays(np.float32, (2, 6), elements=st.integers(0, 4).map(float)))
def test_invariance_to_strictly_increasing_transforms(scores, labels):
  # Of the labels (small integers, so ties are frequent): the Spearman loss only sees their ranks.
  spearman = _JITTED["spearman"]
  np.testing.assert_allclose(spearman(scores, np.exp(3.0 * labels) - 7.0), spearman(scores, labels),
                             rtol=1e-5, atol=1e-6)
  # Of the scores, with the exact sorter: every loss only sees their ranks.
  labels[:, 0], labels[:, 1] = 0.9, 0.0
  transformed = np.tanh(scores) * 5.0 + scores ** 3
  for name, loss in _JITTED_HARD.items():
    np.testing.assert_allclose(loss(transformed, labels), loss(scores, labels), atol=1e-5, err_msg=name)


def test_soft_ranks_sorter_is_accepted():
  # Blondel et al.'s soft ranks tend to the exact ranks as the regularisation vanishes.
  rng = np.random.default_rng(13)
  scores = distinct_scores(rng, (3, 8)) * 10.0
  labels = distinct_scores(rng, (3, 8))
  relevance = labels > 0.0
  relevance[:, 0], relevance[:, 1] = True, False
  where = np.ones((3, 8), bool)
  where[1, 5:] = False
  soft = lambda s, where=None: ranks.soft_ranks(s, where=where, regularization_strength=1e-3)
  for loss, target in ((spearman_loss, labels), (map_rank_loss, relevance), (recall_rank_loss, relevance)):
    np.testing.assert_allclose(loss(scores, target, rank_fn=soft, where=where),
                               loss(scores, target, rank_fn=ranks.hard_ranks, where=where), atol=1e-3)
  smooth = lambda s, where=None: ranks.soft_ranks(s, where=where, regularization_strength=5.0)
  grad = jax.jit(jax.grad(lambda s: sorting.map_rank_loss(s, relevance, rank_fn=smooth, where=where,
                                                          form="average_precision")))(scores)
  assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[~where] == 0.0)
  assert float(np.abs(grad).max()) > 0.0


def test_losses_on_standardized_ranks_of_a_collapsed_output_have_zero_gradient():
  """Issue 29, item 3: a model whose outputs collapse to one value (here 14.62 on 1000 items, where the
  rounded mean used to leave an ulp that standardisation scaled to +-1) takes no gradient step, not 1e8."""
  rank_fn = lambda s, where=None: ranks.sigmoid_ranks(s, where=where, standardize=True)
  n = 1000
  scores = jnp.full((2, n), 14.62, jnp.float32).at[1].set(-3.3e-7)
  labels = (np.arange(2 * n).reshape(2, n) % 7 == 0)
  losses = {
      "spearman": lambda s: sorting.spearman_loss(s, labels.astype(np.float32) * np.arange(n), rank_fn=rank_fn),
      "map": lambda s: sorting.map_rank_loss(s, labels.astype(np.float32), rank_fn=rank_fn),
      "recall": lambda s: sorting.recall_rank_loss(s, labels, rank_fn=rank_fn, k=2),
  }
  program = jax.jit(lambda s: {name: jax.value_and_grad(fn)(s) for name, fn in losses.items()})
  for name, (value, grad) in program(scores).items():
    assert np.isfinite(float(value)), name
    np.testing.assert_array_equal(grad, 0.0, err_msg=name)
