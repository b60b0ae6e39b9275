"""Tests of the IDE RankNet losses against numpy loops written from eq. (1)-(2) and scipy.stats.kendalltau.

The generic checks of every loss (jit, vmap, bfloat16 and integer inputs, masks, one-item and zero-size lists,
float64 finite differences) are in test_contract.py.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from ranking_jax.losses import kendall

_VSD_CSV = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "vsd",
                        "VSD_dataset.csv")


def _hardtanh(x):
  return float(np.clip(x, -1.0, 1.0))


def numpy_kendall_loss(scores, labels, mask=None, weights=None, label_diff="sgn"):
  """Eq. (2) with hardtanh on the score differences, one list, by a loop over the pairs j < i."""
  scores = np.asarray(scores, np.float64)
  labels = np.asarray(labels, np.float64)
  valid = np.isfinite(scores) & np.isfinite(labels)
  if mask is not None:
    valid &= np.asarray(mask)
  weights = np.ones_like(scores) if weights is None else np.asarray(weights, np.float64)
  label_fn = np.sign if label_diff == "sgn" else _hardtanh
  numerator = denominator = 0.0
  idx = np.flatnonzero(valid)
  for a in range(len(idx)):
    for b in range(a):
      i, j = idx[a], idx[b]
      pair_weight = weights[i] * weights[j]
      numerator += pair_weight * label_fn(labels[i] - labels[j]) * _hardtanh(scores[i] - scores[j])
      denominator += pair_weight
  return 0.0 if denominator == 0 else 1.0 - numerator / denominator


def tau_a_from_scipy(x, y):
  """Kendall tau-a (eq. 1) from scipy tau-b, for y without ties: tau_a = tau_b sqrt(n0 - n1) / sqrt(n0)."""
  x = np.asarray(x, np.float64)
  n = len(x)
  n0 = n * (n - 1) / 2
  _, counts = np.unique(x, return_counts=True)
  n1 = np.sum(counts * (counts - 1) / 2)
  tau_b = scipy.stats.kendalltau(x, y, variant="b").statistic
  return tau_b * np.sqrt((n0 - n1) * n0) / n0


@pytest.mark.parametrize("label_diff", ["sgn", "hardtanh"])
@pytest.mark.parametrize("block_size", [None, 1, 4, 9])
def test_matches_numpy_loop_with_masks_and_weights(label_diff, block_size):
  rng = np.random.default_rng(0)
  shape = (3, 9)
  scores = rng.normal(scale=1.5, size=shape).astype(np.float32)
  labels = rng.normal(scale=1.5, size=shape).astype(np.float32)
  labels[0, :4] = labels[0, 4]  # some ties
  mask = rng.random(shape) < 0.8
  weights = rng.uniform(0.2, 2.0, size=shape).astype(np.float32)
  got = kendall.kendall_rank_loss(scores, labels, where=mask, weights=weights, reduce_fn=None,
                                  label_diff=label_diff, block_size=block_size)
  expected = [numpy_kendall_loss(scores[b], labels[b], mask[b], weights[b], label_diff)
              for b in range(shape[0])]
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  unweighted = kendall.kendall_rank_loss(scores, labels, where=mask, reduce_fn=None,
                                         label_diff=label_diff, block_size=block_size)
  expected = [numpy_kendall_loss(scores[b], labels[b], mask[b], None, label_diff)
              for b in range(shape[0])]
  np.testing.assert_allclose(unweighted, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_equals_one_minus_tau_a_when_score_gaps_are_at_least_one(seed):
  rng = np.random.default_rng(seed)
  n = 40
  scores = rng.permutation(n).astype(np.float32) * rng.uniform(1.0, 3.0)  # all |s_i - s_j| >= 1
  labels = rng.normal(size=n)  # no ties: scipy's tau-b equals tau-a
  tau = scipy.stats.kendalltau(scores, labels).statistic
  loss = kendall.kendall_rank_loss(scores, labels.astype(np.float32), block_size=7)
  np.testing.assert_allclose(loss, 1.0 - tau, rtol=1e-5, atol=1e-6)
  # Tied labels: eq. (1) is tau-a (ties count in the denominator); scipy gives tau-b, converted.
  tied = rng.integers(0, 4, size=n).astype(np.float32)
  for label_diff in ("sgn", "hardtanh"):  # integer label gaps are 0 or >= 1: both modes agree
    loss = kendall.kendall_rank_loss(scores, tied, label_diff=label_diff)
    np.testing.assert_allclose(loss, 1.0 - tau_a_from_scipy(tied, scores), rtol=1e-5, atol=1e-6)


def test_real_vsd_difficulty_scores():
  if not os.path.exists(_VSD_CSV):
    pytest.skip("shared VSD data not available")
  rows = [line.strip().split(",") for line in open(_VSD_CSV) if line.strip()]
  values = np.array([float(r[1]) for r in rows if r[1] != "score"])
  rng = np.random.default_rng(0)
  labels = values[rng.choice(len(values), size=300, replace=False)]
  assert len(np.unique(labels)) < 300  # the file has ties: tau-a differs from tau-b
  # Predictions whose gaps are >= 1 (the exact regime), correlated with the labels.
  noisy = labels + rng.normal(scale=0.5, size=labels.shape)
  scores = scipy.stats.rankdata(noisy, method="ordinal").astype(np.float32)
  loss = kendall.kendall_rank_loss(scores, labels.astype(np.float32))
  np.testing.assert_allclose(loss, 1.0 - tau_a_from_scipy(labels.astype(np.float32), scores),
                             rtol=1e-5, atol=1e-6)
  # A whole IDE RankNet mini-batch (a 1-D list) in the relaxed regime, against the numpy loop.
  batch_scores = (labels[:64] + rng.normal(scale=0.3, size=64)).astype(np.float32)
  np.testing.assert_allclose(kendall.kendall_rank_loss(batch_scores, labels[:64].astype(np.float32)),
                             numpy_kendall_loss(batch_scores, labels[:64].astype(np.float32)),
                             rtol=1e-5)


_N = 8
_jit_loss = jax.jit(kendall.kendall_rank_loss, static_argnames=("label_diff",))
_finite = st.floats(-5.0, 5.0, allow_nan=False, width=32)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(_finite, min_size=_N, max_size=_N), st.lists(_finite, min_size=_N, max_size=_N),
       st.permutations(list(range(_N))))
def test_permutation_invariance(scores, labels, perm):
  scores, labels = np.array(scores, np.float32), np.array(labels, np.float32)
  perm = np.array(perm)
  for label_diff in ("sgn", "hardtanh"):
    a = _jit_loss(scores, labels, label_diff=label_diff)
    b = _jit_loss(scores[perm], labels[perm], label_diff=label_diff)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(_finite, min_size=_N, max_size=_N), st.lists(_finite, min_size=_N, max_size=_N),
       st.floats(0.1, 3.0), st.floats(-3.0, 3.0))
def test_sgn_invariant_to_increasing_label_transforms(scores, labels, scale, shift):
  scores, labels = np.array(scores, np.float32), np.array(labels, np.float64)
  base = _jit_loss(scores, labels.astype(np.float32), label_diff="sgn")
  for transformed in (scale * labels + shift, np.exp(labels / 2), labels ** 3 + shift):
    got = _jit_loss(scores, transformed.astype(np.float32), label_diff="sgn")
    # float32 may merge labels that differ by less than its resolution; skip those draws.
    if len(np.unique(transformed.astype(np.float32))) == len(np.unique(labels.astype(np.float32))):
      np.testing.assert_allclose(got, base, rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(_finite, min_size=_N, max_size=_N), st.lists(_finite, min_size=_N, max_size=_N),
       st.floats(-10.0, 10.0))
def test_score_shift_invariance_and_reversal_symmetry(scores, labels, shift):
  scores, labels = np.array(scores, np.float32), np.array(labels, np.float32)
  base = _jit_loss(scores, labels, label_diff="sgn")
  np.testing.assert_allclose(_jit_loss(scores + np.float32(shift), labels, label_diff="sgn"), base,
                             atol=1e-5)
  # hardtanh is odd: reversing the scores maps tau to -tau, i.e. the loss L to 2 - L.
  np.testing.assert_allclose(_jit_loss(-scores, labels, label_diff="sgn"), 2.0 - base, atol=1e-5)
  assert 0.0 <= float(base) <= 2.0


def test_tied_labels_and_nonfinite_items():
  grad = jax.jit(jax.grad(kendall.kendall_rank_loss), static_argnames=("label_diff",))
  scores = jnp.array([0.3, -0.2, 0.9, 0.1])
  labels = jnp.array([1.0, 2.0, 3.0, 4.0])
  # (Fully masked and one-element lists: test_contract.py.)
  # All-tied labels: tau = 0, loss 1, zero gradient, in both label modes.
  for label_diff in ("sgn", "hardtanh"):
    assert float(kendall.kendall_rank_loss(scores, jnp.ones(4), label_diff=label_diff)) == 1.0
    np.testing.assert_array_equal(grad(scores, jnp.ones(4), label_diff=label_diff), 0.0)
  # NaN/inf scores and NaN labels count as masked (the numpy loop skips non-finite items).
  bad = scores.at[1].set(jnp.nan).at[3].set(jnp.inf)
  np.testing.assert_allclose(kendall.kendall_rank_loss(bad, labels), numpy_kendall_loss(bad, labels),
                             rtol=1e-6)
  nan_label = labels.at[1].set(jnp.nan)
  np.testing.assert_allclose(kendall.kendall_rank_loss(scores, nan_label),
                             numpy_kendall_loss(scores, nan_label), rtol=1e-6)


def test_reductions_skip_lists_without_pairs():
  scores = jnp.array([[0.0, 0.5, 0.2], [1.0, 0.0, 0.0], [0.3, 0.1, 0.0]])
  labels = jnp.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
  where = jnp.array([[True, True, True], [True, False, False], [True, True, True]])
  per_list = kendall.kendall_rank_loss(scores, labels, where=where, reduce_fn=None)
  assert per_list.shape == (3,) and float(per_list[1]) == 0.0
  expected = [numpy_kendall_loss(scores[i], labels[i], where[i]) for i in (0, 2)]
  np.testing.assert_allclose(kendall.kendall_rank_loss(scores, labels, where=where),
                             np.mean(expected), rtol=1e-6)
  np.testing.assert_allclose(kendall.kendall_rank_loss(scores, labels, where=where,
                                                       reduce_fn=jnp.sum), np.sum(expected), rtol=1e-6)
  assert float(kendall.kendall_rank_loss(scores, labels, where=jnp.zeros((3, 3), bool))) == 0.0


def test_wrong_inputs_raise():
  with pytest.raises(ValueError, match="same shape"):
    kendall.kendall_rank_loss(jnp.ones(4), jnp.ones(5))
  with pytest.raises(ValueError, match="at least 1"):
    kendall.kendall_rank_loss(jnp.ones(()), jnp.ones(()))
  with pytest.raises(ValueError, match="label_diff"):
    kendall.kendall_rank_loss(jnp.ones(4), jnp.ones(4), label_diff="tanh")
  with pytest.raises(ValueError, match="weights"):
    kendall.kendall_rank_loss(jnp.ones((2, 4)), jnp.ones((2, 4)), weights=jnp.ones(3))
  with pytest.raises(TypeError, match="boolean"):
    kendall.kendall_rank_loss(jnp.ones(4), jnp.ones(4), where=jnp.ones(4))
  with pytest.raises(ValueError, match="same shape"):
    kendall.mse_loss(jnp.ones((2, 3)), jnp.ones((3, 2)))


def test_mse_matches_numpy_with_masks_and_weights():
  rng = np.random.default_rng(6)
  scores = rng.normal(size=(3, 5)).astype(np.float32)
  labels = rng.normal(size=(3, 5)).astype(np.float32)
  mask = rng.random((3, 5)) < 0.7
  weights = rng.uniform(0.5, 2.0, size=(3, 5)).astype(np.float32)
  scores[0, 0] = np.nan  # masked
  valid = mask & np.isfinite(scores)
  per_item = np.where(valid, weights * (np.nan_to_num(scores) - labels) ** 2, 0.0)
  np.testing.assert_allclose(kendall.mse_loss(scores, labels, where=mask, weights=weights),
                             per_item[valid].mean(), rtol=1e-5)
  np.testing.assert_allclose(kendall.mse_loss(scores, labels, where=mask, weights=weights,
                                              reduce_fn=None), per_item, rtol=1e-5)
  assert float(kendall.mse_loss(scores, labels, where=np.zeros((3, 5), bool))) == 0.0
  # The paper's example (III.C): {2, 4, 3} has the lower MSE, {6, 8, 10} the better ranking.
  truth = jnp.array([2.0, 3.0, 4.0])
  assert kendall.mse_loss(jnp.array([2.0, 4.0, 3.0]), truth) < kendall.mse_loss(
      jnp.array([6.0, 8.0, 10.0]), truth)
  assert kendall.kendall_rank_loss(jnp.array([6.0, 8.0, 10.0]), truth) < kendall.kendall_rank_loss(
      jnp.array([2.0, 4.0, 3.0]), truth)


def test_mse_loss_is_finite_near_the_float32_limit():
  """Issue 29, item 9: (3e38 - 0)**2 overflowed; scores and labels beyond 2**48 count as +-2**48."""
  scores, labels = jnp.array([3e38, 1e10, -3e38]), jnp.array([0.0, 0.0, 3e38])
  value, grad = jax.value_and_grad(kendall.mse_loss)(scores, labels)
  np.testing.assert_allclose(value, (2.0 ** 96 + 1e20 + 2.0 ** 98) / 3, rtol=1e-6)
  np.testing.assert_allclose(grad, [0.0, 2e10 / 3, 0.0], rtol=1e-6)
