"""Tests of Hinge-AP (SVM-MAP's structured hinge on 1 - AP): exact inference against brute force."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from ranking_jax import losses
from ranking_jax.losses import average_precision

SLOTS = 7  # list length of the brute-force batch; each list masks at least one slot


def _objective(scores: np.ndarray, relevant: np.ndarray, positions: np.ndarray) -> np.ndarray:
  """SVM-MAP's loss-augmented objective of rankings, from Yue et al. 2007 written out directly.

  ``positions[r, a]`` is the 0-based position of item ``a`` in ranking ``r``. Returns
  ``1 - AP(ranking) + <w, Psi(ranking)> - <w, Psi(correct ranking)>`` per ranking (float64).
  """
  pos_items, neg_items = np.flatnonzero(relevant), np.flatnonzero(~relevant)
  num_pos, num_neg = len(pos_items), len(neg_items)
  order = np.argsort(positions, axis=1)  # items by position
  relevant_in_order = relevant[order]
  precision = np.cumsum(relevant_in_order, axis=1) / np.arange(1, len(scores) + 1)
  ap = (precision * relevant_in_order).sum(axis=1) / num_pos
  diff = scores[pos_items][:, None] - scores[neg_items][None, :]  # s_i - s_j
  above = positions[:, pos_items][:, :, None] < positions[:, neg_items][:, None, :]
  y_bar = np.where(above, 1.0, -1.0)
  psi = (y_bar * diff).sum(axis=(1, 2)) / (num_pos * num_neg)
  return 1.0 - ap + psi - diff.sum() / (num_pos * num_neg)


def _brute_force(scores: np.ndarray, relevant: np.ndarray) -> float:
  """Max of the objective over ALL permutations of the items (n! rankings)."""
  n = len(scores)
  positions = np.array(list(itertools.permutations(range(n))))  # every assignment of positions
  return float(_objective(scores, relevant, positions).max())


@pytest.fixture(scope="module")
def tiny_batch():
  """24 lists of 7 slots: 3-6 valid items with both classes, some ties and some extreme scales."""
  rng = np.random.default_rng(20070723)
  scores = np.zeros((24, SLOTS), np.float32)
  relevant = np.zeros((24, SLOTS), bool)
  where = np.zeros((24, SLOTS), bool)
  for row in range(24):
    n = int(rng.integers(3, 7))
    valid = rng.permutation(SLOTS)[:n]
    labels = rng.random(n) < 0.45
    labels[0], labels[1] = True, False  # both classes present
    s = rng.normal(size=n) * [0.05, 1.0, 20.0][row % 3]
    if row % 4 == 0:
      s = np.round(s)  # ties
    scores[row, valid] = s
    relevant[row, valid] = labels
    where[row, valid] = True
    scores[row, ~where[row]] = rng.normal(size=SLOTS - n) * 100  # masked: must not matter
    relevant[row, ~where[row]] = rng.random(SLOTS - n) < 0.5
  loss_fn = jax.jit(lambda s, y, w: (average_precision.hinge_ap_loss(s, y, where=w, reduce_fn=None),
                                     average_precision.most_violating_ranking(s, y, where=w)))
  values, placement = loss_fn(scores, relevant, where)
  return scores, relevant, where, np.asarray(values), np.asarray(placement)


def test_value_equals_brute_force_max_over_all_rankings(tiny_batch):
  scores, relevant, where, values, _ = tiny_batch
  for row in range(len(scores)):
    s, y = scores[row, where[row]].astype(np.float64), relevant[row, where[row]]
    np.testing.assert_allclose(values[row], _brute_force(s, y), rtol=1e-5, atol=1e-5, err_msg=f"row {row}")


def test_most_violating_ranking_attains_the_maximum(tiny_batch):
  scores, relevant, where, values, placement = tiny_batch
  for row in range(len(scores)):
    valid = where[row]
    s, y, k = scores[row, valid].astype(np.float64), relevant[row, valid], placement[row, valid]
    assert np.all(k[y] == -1) and np.all(placement[row, ~valid] == -1)
    num_pos = int(y.sum())
    assert np.all((k[~y] >= 0) & (k[~y] <= num_pos))
    # Build the ranking: positives by decreasing score; negative j after the first k_j positives.
    pos_sorted = np.flatnonzero(y)[np.argsort(-s[y], kind="stable")]
    neg_sorted = np.flatnonzero(~y)[np.argsort(-s[~y], kind="stable")]
    assert np.all(np.diff(k[neg_sorted]) >= 0), "placements must be monotone in the negatives' order"
    keys = np.zeros(len(s))
    keys[pos_sorted] = np.arange(num_pos)
    keys[neg_sorted] = k[neg_sorted] - 0.5 + np.arange(len(neg_sorted)) / (2.0 * len(neg_sorted))
    positions = np.argsort(np.argsort(keys, kind="stable"), kind="stable")[None]
    np.testing.assert_allclose(_objective(s, y, positions)[0], _brute_force(s, y), rtol=1e-5, atol=1e-5)


def test_upper_bounds_one_minus_ap_and_matches_a_quadratic_scan():
  """On longer lists: >= 1 - AP (sklearn) and equal to Yue et al.'s O(|P||N|) per-negative scan."""
  rng = np.random.default_rng(3)
  scores = rng.normal(size=(6, 300))
  relevant = rng.random((6, 300)) < 0.2
  scores = scores + relevant * np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0])[:, None]  # easy to hard lists
  loss_fn = jax.jit(lambda s, y: losses.hinge_ap_loss(s, y, reduce_fn=None))
  values = np.asarray(loss_fn(jnp.asarray(scores, jnp.float32), relevant))
  for row in range(6):
    s, y = scores[row], relevant[row]
    assert values[row] >= 1.0 - average_precision_score(y, s) - 1e-6
    pos, neg = np.sort(s[y])[::-1], np.sort(s[~y])[::-1]
    num_pos, num_neg = len(pos), len(neg)
    i = np.arange(1, num_pos + 1)
    total = 0.0
    for j in range(1, num_neg + 1):  # f_j(k) for every k, in float64
      gain = (i / (i + j - 1) - i / (i + j)) / num_pos - 2.0 / (num_pos * num_neg) * (pos - neg[j - 1])
      total += max(0.0, np.cumsum(gain[::-1]).max())
    np.testing.assert_allclose(values[row], total, rtol=2e-5, atol=2e-6)


@jax.jit
def _values_grads_mean(scores, labels, where, weights):
  """Per-list losses, their gradients and the mean-reduced loss: one compilation for the edge cases."""
  per_list = lambda s: losses.hinge_ap_loss(s, labels, where=where, weights=weights, reduce_fn=None)
  values, vjp = jax.vjp(per_list, scores)
  mean = losses.hinge_ap_loss(scores, labels, where=where, weights=weights)
  return values, vjp(jnp.ones_like(values))[0], mean


@pytest.fixture(scope="module")
def edge_cases():
  """Rows of 5 slots: margins, masks, one-class lists, NaN, and random lists (one shape, one compile)."""
  nan = np.nan
  rows = [  # (scores, labels, where)
      ([5.0, -5.0, 4.0, -4.0, -6.0], [1, 0, 1, 0, 0], [1, 1, 1, 1, 1]),  # 0: separated by a wide margin
      ([0.02, -0.02, 0.01, -0.01, -0.03], [1, 0, 1, 0, 0], [1, 1, 1, 1, 1]),  # 1: ordered, tiny margin
      ([1.0, 2.0, 3.0, 4.0, 5.0], [1, 0, 1, 0, 0], [0, 0, 0, 0, 0]),  # 2: all masked
      ([1.0, 2.0, 3.0, 4.0, 5.0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]),  # 3: no positive
      ([1.0, 2.0, 3.0, 4.0, 5.0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]),  # 4: no negative
      ([1.0, 2.0, 3.0, 4.0, 5.0], [1, 0, 1, 0, 0], [0, 0, 1, 0, 0]),  # 5: one valid item
      ([0.3, 0.5, 0.1, nan, 0.2], [1, 0, 0, 1, 1], [1, 1, 1, 1, 1]),  # 6: a NaN item counts as masked
      ([0.3, 0.5, 0.1, 0.2, 9.0], [1, 0, 0, 1, 0], [1, 1, 1, 1, 0]),  # 7: row 6 without its NaN
  ]
  rng = np.random.default_rng(5)
  for _ in range(4):  # 8-11: random lists with both classes
    rows.append((rng.normal(size=5), [1, 0, 1, 0, 0] if rng.random() < 0.5 else [0, 1, 0, 0, 1],
                 [1, 1, 1, 1, 1]))
  scores = np.array([r[0] for r in rows], np.float32)
  labels = np.array([r[1] for r in rows], np.float32)
  where = np.array([r[2] for r in rows], bool)
  ones = np.ones_like(scores)
  base = [np.asarray(x) for x in _values_grads_mean(scores, labels, where, ones)]
  shift = np.linspace(-3.0, 7.0, len(rows), dtype=np.float32)[:, None]
  shifted = [np.asarray(x) for x in _values_grads_mean(scores + shift, labels, where, ones)]
  list_weights = np.linspace(0.5, 2.0, len(rows), dtype=np.float32)[:, None] * ones
  weighted = [np.asarray(x) for x in _values_grads_mean(scores, labels, where, list_weights)]
  return scores, labels, where, base, shifted, weighted, list_weights[:, 0]


def test_zero_iff_separated_by_a_margin(edge_cases):
  scores, labels, _, (values, _, _), _, _, _ = edge_cases
  assert values[0] == 0.0
  # Correctly ordered with tiny margins: 1 - AP is 0, the hinge is not.
  assert average_precision_score(labels[1], scores[1]) == 1.0 and values[1] > 0.1


def test_gradients_are_finite_sum_to_zero_and_shift_invariant(edge_cases):
  _, labels, where, (values, grads, _), (shifted_values, shifted_grads, _), _, _ = edge_cases
  assert np.all(np.isfinite(values)) and np.all(np.isfinite(grads))
  random_rows = slice(8, 12)
  assert np.all(values[random_rows] > 0)
  # The objective depends on score differences only: shifting a list changes nothing.
  np.testing.assert_allclose(grads.sum(axis=-1), 0.0, atol=1e-6)
  np.testing.assert_allclose(shifted_values, values, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(shifted_grads, grads, atol=1e-6)
  # Positives are pushed up, negatives down.
  assert np.all(np.where(labels > 0, grads <= 0, grads >= 0)[random_rows])


def test_masked_one_class_and_empty_lists_give_zero(edge_cases):
  _, _, _, (values, grads, _), _, _, _ = edge_cases
  for row in (2, 3, 4, 5):  # all masked, no positive, no negative, one valid item
    assert values[row] == 0.0 and np.all(grads[row] == 0.0)
  # A masked (or NaN) item changes nothing and gets no gradient.
  np.testing.assert_allclose(values[6], values[7], rtol=1e-6)
  assert grads[6, 3] == 0.0 and grads[7, 4] == 0.0
  np.testing.assert_allclose(grads[6, [0, 1, 2, 4]], grads[7, [0, 1, 2, 3]], atol=1e-7)
  empty_value, empty_grad = jax.value_and_grad(losses.hinge_ap_loss)(jnp.zeros((0,)), jnp.zeros((0,)))
  assert float(empty_value) == 0.0 and empty_grad.shape == (0,)
  assert losses.hinge_ap_loss(jnp.zeros((2, 0)), jnp.zeros((2, 0)), reduce_fn=None).shape == (2,)


def test_weights_scale_each_list_and_mean_skips_lists_without_positives(edge_cases):
  _, labels, where, (values, _, mean), _, (weighted_values, _, _), list_weights = edge_cases
  has_positive = ((labels > 0) & where).any(axis=-1)
  has_positive[6] = True  # its positives are finite items 0 and 4
  np.testing.assert_allclose(mean, values[has_positive].mean(), rtol=1e-6)
  np.testing.assert_allclose(weighted_values, values * list_weights, rtol=1e-6, atol=1e-7)


def test_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match="same shape"):
    losses.hinge_ap_loss(jnp.zeros(3), jnp.zeros(4))
  with pytest.raises(ValueError, match="broadcast"):
    losses.hinge_ap_loss(jnp.zeros(3), jnp.zeros(3), weights=jnp.ones(2))
