"""Tests of the multilabel annotation losses against numpy loops written from the paper's equations.

The generic checks of every loss (jit, vmap, bfloat16 and integer inputs, masks, one-item and zero-size lists,
float64 finite differences) are in test_contract.py.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads
import scipy.stats

from ranking_jax.losses import multilabel


def _valid(scores, labels, mask):
  valid = np.isfinite(np.asarray(scores, np.float64)) & np.isfinite(np.asarray(labels, np.float64))
  return valid if mask is None else valid & np.asarray(mask)


def numpy_softmax_loss(scores, labels, mask=None, weights=None):
  """-(1/c+) sum_{j positive} w_j log p_j, p = softmax over the valid classes; one image."""
  scores = np.asarray(scores, np.float64)
  valid = _valid(scores, labels, mask)
  positives = [j for j in range(len(scores)) if valid[j] and labels[j] > 0]
  if not positives:
    return 0.0
  v = scores[valid]
  log_norm = v.max() + np.log(np.sum(np.exp(v - v.max())))
  total = 0.0
  for j in positives:
    w = 1.0 if weights is None else float(weights[j])
    total -= w * (scores[j] - log_norm)
  return total / len(positives)


def _positives_negatives(scores, labels, mask):
  valid = _valid(scores, labels, mask)
  pos = [j for j in range(len(scores)) if valid[j] and labels[j] > 0]
  neg = [k for k in range(len(scores)) if valid[k] and not labels[k] > 0]
  return pos, neg


def numpy_pairwise_loss(scores, labels, mask=None, weights=None, margin=1.0, normalize=False):
  """sum_{j in C+} sum_{k in C-} w_j max(0, margin - f_j + f_k); one image."""
  scores = np.asarray(scores, np.float64)
  pos, neg = _positives_negatives(scores, labels, mask)
  if not pos or not neg:
    return 0.0
  total = num_pairs = 0.0
  for j in pos:
    w = 1.0 if weights is None else float(weights[j])
    for k in neg:
      total += w * max(0.0, margin - scores[j] + scores[k])
      num_pairs += w
  return total / num_pairs if normalize else total


def _harmonic(r):
  return sum(1.0 / q for q in range(1, r + 1))


def numpy_warp_exact(scores, labels, mask=None, weights=None, margin=1.0, normalize_by_rank=True):
  """sum_j w_j L(r_j) [/ r_j] sum_{k violating} hinge_jk, r_j = number of violating negatives."""
  scores = np.asarray(scores, np.float64)
  pos, neg = _positives_negatives(scores, labels, mask)
  if not pos or not neg:
    return 0.0
  total = 0.0
  for j in pos:
    hinges = [margin - scores[j] + scores[k] for k in neg]
    hinges = [h for h in hinges if h > 0]
    r = len(hinges)
    if r == 0:
      continue
    weight = _harmonic(r) / r if normalize_by_rank else _harmonic(r)
    total += (1.0 if weights is None else float(weights[j])) * weight * sum(hinges)
  return total


def numpy_warp_single_violator_expectation(scores, labels, mask=None, margin=1.0, num_trials=None):
  """Analytic expectation of the single-violator (WSABIE) WARP loss of one image.

  Negatives are drawn uniformly with replacement; a draw violates with probability p = r / c-, so the
  number of draws to the first violation is geometric, truncated at the budget min(T, c - 1); the
  violator found is uniform over the r violators; the loss is L(floor((c - 1) / s)) times its hinge.
  """
  scores = np.asarray(scores, np.float64)
  valid = _valid(scores, labels, mask)
  pos, neg = _positives_negatives(scores, labels, mask)
  if not pos or not neg:
    return 0.0
  c = int(valid.sum())
  budget = min(len(scores) - 1 if num_trials is None else num_trials, c - 1)
  total = 0.0
  for j in pos:
    hinges = [margin - scores[j] + scores[k] for k in neg]
    hinges = [h for h in hinges if h > 0]
    if not hinges:
      continue
    p = len(hinges) / len(neg)
    expected_weight = sum((1 - p) ** (t - 1) * p * _harmonic((c - 1) // t)
                          for t in range(1, budget + 1))
    total += expected_weight * np.mean(hinges)
  return total


def _random_problem(seed, shape, positive_rate=0.4, mask_rate=0.85):
  rng = np.random.default_rng(seed)
  scores = rng.normal(scale=1.2, size=shape).astype(np.float32)
  labels = (rng.random(shape) < positive_rate).astype(np.int32)
  mask = rng.random(shape) < mask_rate
  weights = rng.uniform(0.3, 2.0, size=shape).astype(np.float32)
  return scores, labels, mask, weights


def _per_image(fn, scores, labels, mask, weights=None, **kw):
  return [fn(scores[b], labels[b], mask[b], None if weights is None else weights[b], **kw)
          for b in range(scores.shape[0])]


def test_softmax_matches_numpy_loop():
  scores, labels, mask, weights = _random_problem(0, (6, 7))
  labels[0] = 0  # an image without positives: 0, not counted
  labels[1] = 1  # all positive: uniform target over all valid classes
  got = multilabel.multilabel_softmax_loss(scores, labels, where=mask, weights=weights, reduce_fn=None)
  expected = _per_image(numpy_softmax_loss, scores, labels, mask, weights)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  mean = multilabel.multilabel_softmax_loss(scores, labels, where=mask)
  unweighted = _per_image(numpy_softmax_loss, scores, labels, mask)
  has_positive = np.any((labels > 0) & mask, axis=-1)
  assert not has_positive[0] and has_positive.sum() >= 3
  np.testing.assert_allclose(mean, np.mean(np.asarray(unweighted)[has_positive]), rtol=1e-5)


@pytest.mark.parametrize("block_size", [None, 3])
@pytest.mark.parametrize("normalize", [False, True])
def test_pairwise_matches_numpy_loop(block_size, normalize):
  scores, labels, mask, weights = _random_problem(1, (5, 7))
  labels[0] = 0
  labels[1] = 1
  got = multilabel.pairwise_ranking_loss(scores, labels, where=mask, weights=weights, reduce_fn=None,
                                         normalize=normalize, block_size=block_size, margin=0.7)
  expected = _per_image(numpy_pairwise_loss, scores, labels, mask, weights, margin=0.7,
                        normalize=normalize)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(got)[:2], 0.0)
  mean = multilabel.pairwise_ranking_loss(scores, labels, where=mask, weights=weights,
                                          normalize=normalize, block_size=block_size, margin=0.7)
  has_pairs = np.any((labels > 0) & mask, axis=-1) & np.any((labels == 0) & mask, axis=-1)
  assert has_pairs.sum() >= 2
  np.testing.assert_allclose(mean, np.mean(np.asarray(expected)[has_pairs]), rtol=1e-5)


@pytest.mark.parametrize("block_size", [None, 2])
@pytest.mark.parametrize("normalize_by_rank", [True, False])
def test_warp_exact_matches_numpy_loop(block_size, normalize_by_rank):
  scores, labels, mask, weights = _random_problem(2, (6, 9))
  labels[0] = 0
  got = multilabel.warp_loss_exact(scores, labels, where=mask, weights=weights, reduce_fn=None,
                                   normalize_by_rank=normalize_by_rank, block_size=block_size)
  expected = _per_image(numpy_warp_exact, scores, labels, mask, weights,
                        normalize_by_rank=normalize_by_rank)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  # key=None: the notes' WARP with the rank counted exactly, L(r_j) (not L(r_j) / r_j).
  none_key = multilabel.warp_loss(scores, labels, key=None, where=mask, weights=weights, reduce_fn=None,
                                  block_size=block_size)
  np.testing.assert_allclose(none_key, _per_image(numpy_warp_exact, scores, labels, mask, weights,
                                                  normalize_by_rank=False), rtol=1e-5, atol=1e-6)
  none_key = multilabel.warp_loss_single_violator(scores, labels, key=None, where=mask, weights=weights,
                                                  reduce_fn=None, block_size=block_size)
  np.testing.assert_allclose(none_key, _per_image(numpy_warp_exact, scores, labels, mask, weights),
                             rtol=1e-5, atol=1e-6)


def _draws_to_first_violator(rng, violates, budget):
  """Negatives drawn uniformly with replacement until one violates: the draw count, or None."""
  for t in range(1, budget + 1):
    if violates[rng.integers(len(violates))]:
      return t
  return None


def numpy_warp_sampled(rng, scores, labels, mask=None, weights=None, margin=1.0, num_trials=None):
  """One draw of the notes' WARP of one image, sampling negatives one at a time (the literal procedure):
  sum_j w_j L(floor((c - 1) / s_j)) sum_{k in C-} max(0, margin - f_j + f_k), 0 if no violator is found."""
  scores = np.asarray(scores, np.float64)
  valid = _valid(scores, labels, mask)
  pos, neg = _positives_negatives(scores, labels, mask)
  if not pos or not neg:
    return 0.0
  c = int(valid.sum())
  budget = min(len(scores) - 1 if num_trials is None else num_trials, c - 1)
  total = 0.0
  for j in pos:
    hinges = [max(0.0, margin - scores[j] + scores[k]) for k in neg]
    s = _draws_to_first_violator(rng, [h > 0 for h in hinges], budget)
    if s is None:
      continue
    total += (1.0 if weights is None else float(weights[j])) * _harmonic((c - 1) // s) * sum(hinges)
  return total


def numpy_warp_expectation(scores, labels, mask=None, weights=None, margin=1.0, num_trials=None):
  """The expectation of numpy_warp_sampled: s_j is geometric with p = r_j / c-, truncated at the budget."""
  scores = np.asarray(scores, np.float64)
  valid = _valid(scores, labels, mask)
  pos, neg = _positives_negatives(scores, labels, mask)
  if not pos or not neg:
    return 0.0
  c = int(valid.sum())
  budget = min(len(scores) - 1 if num_trials is None else num_trials, c - 1)
  total = 0.0
  for j in pos:
    hinges = [max(0.0, margin - scores[j] + scores[k]) for k in neg]
    p = sum(h > 0 for h in hinges) / len(neg)
    expected_weight = sum((1 - p) ** (t - 1) * p * _harmonic((c - 1) // t) for t in range(1, budget + 1))
    total += (1.0 if weights is None else float(weights[j])) * expected_weight * sum(hinges)
  return total


@pytest.mark.parametrize("num_trials", [None, 2])
def test_warp_matches_numpy_sampling_loop_in_distribution(num_trials):
  """The notes' WARP: mean over keys = the analytic expectation = the mean of the literal numpy sampler."""
  scores, labels, mask, weights = _random_problem(3, (4, 6), positive_rate=0.35, mask_rate=0.9)
  labels[:, 0], labels[:, 1] = 1, 0  # every image has a positive and a negative
  mask[:, :2] = True
  num_keys = 3000
  keys = jax.random.split(jax.random.key(0), num_keys)
  sample = jax.jit(jax.vmap(lambda k: multilabel.warp_loss(
      scores, labels, key=k, where=mask, weights=weights, reduce_fn=None, num_trials=num_trials)))
  draws = np.asarray(sample(keys), np.float64)  # [num_keys, 4]
  expected = np.asarray(_per_image(numpy_warp_expectation, scores, labels, mask, weights,
                                   num_trials=num_trials))
  assert np.all(expected > 0)
  standard_error = draws.std(axis=0) / np.sqrt(num_keys)
  np.testing.assert_array_less(np.abs(draws.mean(axis=0) - expected), 4.5 * standard_error + 1e-3)
  rng = np.random.default_rng(0)
  literal = np.array([_per_image(functools.partial(numpy_warp_sampled, rng), scores, labels, mask, weights,
                                 num_trials=num_trials) for _ in range(num_keys)])
  both = np.sqrt(standard_error ** 2 + (literal.std(axis=0) / np.sqrt(num_keys)) ** 2)
  np.testing.assert_array_less(np.abs(draws.mean(axis=0) - literal.mean(axis=0)), 4.5 * both + 1e-3)


def test_warp_draw_counts_follow_the_literal_sampler():
  """One positive, 2 of 8 negatives violating: the rank weights L(floor(8 / s)) of our draws and of the
  numpy loop that draws negatives one at a time have the same distribution (chi-square, 2 x bins)."""
  scores = np.array([0.0, 0.5, 0.2, -3, -3, -3, -3, -3, -3], np.float32)
  labels = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0])
  hinge_sum = 1.5 + 1.2
  num_keys = 4000
  ours = np.asarray(jax.jit(jax.vmap(lambda k: multilabel.warp_loss(scores, labels, key=k)))(
      jax.random.split(jax.random.key(5), num_keys)), np.float64) / hinge_sum
  rng = np.random.default_rng(5)
  literal = np.array([numpy_warp_sampled(rng, scores, labels) for _ in range(num_keys)]) / hinge_sum
  support = sorted({round(_harmonic(8 // t), 6) for t in range(1, 9)} | {0.0})
  assert set(np.round(ours, 5)) <= set(np.round(support, 5))  # every value is some L(floor(8 / s)) or 0
  table = np.array([[np.sum(np.isclose(x, v, atol=1e-5)) for v in support] for x in (ours, literal)])
  table = table[:, table.sum(axis=0) > 0]
  assert table.sum() == 2 * num_keys
  assert scipy.stats.chi2_contingency(table).pvalue > 1e-3


def test_warp_is_deterministic_given_key_and_exact_when_every_draw_violates():
  scores, labels, mask, weights = _random_problem(4, (3, 8))
  labels[:, 0], labels[:, 1] = 1, 0
  fn = jax.jit(functools.partial(multilabel.warp_loss, where=mask, weights=weights, reduce_fn=None))
  a, b = fn(scores, labels, key=jax.random.key(7)), fn(scores, labels, key=jax.random.key(7))
  np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, fn(scores, labels, key=k)) for k in jax.random.split(jax.random.key(8), 5))
  # A positive below every negative: s = 1, r = c - 1 = 4, and ALL the negatives' hinges count (the single-
  # violator form would take one of them); the other positive violates nothing.
  s = jnp.array([-5.0, 1.0, 1.0, 2.0, 0.5])
  y = jnp.array([1, 0, 0, 1, 0])
  expected = _harmonic(4) * (7.0 + 7.0 + 6.5)
  # A budget of one draw that can miss: the positive then contributes 0 (WSABIE: no update).
  y2 = jnp.array([1, 0, 0, 0, 0])
  s2 = jnp.array([0.0, 0.5, -3.0, -3.0, -3.0])  # 1 of 4 negatives violates
  keys = jax.random.split(jax.random.key(1), 400)
  every, budget_one = jax.jit(jax.vmap(lambda k: (multilabel.warp_loss(s, y, key=k),
                                                   multilabel.warp_loss(s2, y2, key=k, num_trials=1))))(keys)
  np.testing.assert_allclose(every, expected, rtol=1e-6)
  assert set(np.round(np.asarray(budget_one), 5)) == {0.0, round(_harmonic(4) * 1.5, 5)}


def test_warp_gradient_flows_through_every_hinge_float64():
  scores, labels, mask, weights = _random_problem(5, (3, 6))
  labels[:, 0], labels[:, 1] = 1, 0
  with jax.enable_x64(True):
    fn = functools.partial(multilabel.warp_loss, labels=labels, where=mask, key=jax.random.key(3),
                           weights=jnp.asarray(weights, jnp.float64))
    check_grads(jax.jit(fn), (jnp.asarray(scores, jnp.float64),), order=1, modes=["rev"], eps=1e-6, atol=1e-6,
                rtol=1e-6)
  # Every negative that violates a positive's margin gets gradient (the single-violator form: one).
  s = jnp.array([0.0, 0.5, 0.2, 0.9, -3.0])
  y = jnp.array([1, 0, 0, 0, 0])
  grad = jax.grad(lambda x: multilabel.warp_loss(x, y, key=jax.random.key(0)))(s)
  assert np.all(np.asarray(grad)[1:4] > 0) and float(grad[4]) == 0.0 and float(grad[0]) < 0


@pytest.mark.parametrize("num_trials,trials_per_step", [(None, None), (2, None), (None, 2)])
def test_warp_single_violator_expectation_matches_analytic(num_trials, trials_per_step):
  scores, labels, mask, _ = _random_problem(3, (4, 6), positive_rate=0.35, mask_rate=0.9)
  labels[:, 0] = 1  # every image has a positive ...
  labels[:, 1] = 0  # ... and a negative
  mask[:, :2] = True
  num_keys = 3000
  keys = jax.random.split(jax.random.key(0), num_keys)
  sample = jax.jit(jax.vmap(lambda k: multilabel.warp_loss_single_violator(
      scores, labels, key=k, where=mask, reduce_fn=None, num_trials=num_trials,
      trials_per_step=trials_per_step)))
  draws = np.asarray(sample(keys), np.float64)  # [num_keys, 4]
  expected = _per_image(lambda *a: numpy_warp_single_violator_expectation(*a[:3], num_trials=num_trials),
                        scores, labels, mask)
  assert np.all(np.asarray(expected) > 0)
  standard_error = draws.std(axis=0) / np.sqrt(num_keys)
  np.testing.assert_array_less(np.abs(draws.mean(axis=0) - expected), 4.5 * standard_error + 1e-3)


def test_warp_single_violator_is_deterministic_given_key_and_respects_budget():
  scores, labels, mask, weights = _random_problem(4, (3, 8))
  labels[:, 0], labels[:, 1] = 1, 0
  key = jax.random.key(7)
  fn = jax.jit(functools.partial(multilabel.warp_loss_single_violator, where=mask, weights=weights,
                                 reduce_fn=None))
  a, b = fn(scores, labels, key=key), fn(scores, labels, key=key)
  np.testing.assert_array_equal(a, b)
  others = [fn(scores, labels, key=k) for k in jax.random.split(jax.random.key(8), 5)]
  assert any(not np.array_equal(a, o) for o in others)
  # Every draw violates for a positive scored below all negatives: s = 1, r = c - 1, hinge from the
  # violator; with two negatives scored equally the loss is deterministic whatever the key.
  s = jnp.array([-5.0, 1.0, 1.0, 2.0])
  y = jnp.array([1, 0, 0, 1])
  value = multilabel.warp_loss_single_violator(s, y, key=jax.random.key(1))
  expected = _harmonic(3) * (1.0 + 5.0 + 1.0)
  np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_single_violator_warp_gradient_through_its_while_loop_float64():
  # (The other gradients: test_contract.py.) One draw per step takes the lax.while_loop path.
  scores, labels, mask, weights = _random_problem(5, (3, 6))
  labels[:, 0], labels[:, 1] = 1, 0
  with jax.enable_x64(True):
    fn = functools.partial(multilabel.warp_loss_single_violator, labels=labels, where=mask,
                           key=jax.random.key(3),
                           weights=jnp.asarray(weights, jnp.float64), trials_per_step=1)
    check_grads(jax.jit(fn), (jnp.asarray(scores, jnp.float64),), order=1, modes=["rev"], eps=1e-6, atol=1e-6,
                rtol=1e-6)


_C = 7
_jit_losses = {
    "softmax": jax.jit(multilabel.multilabel_softmax_loss),
    "pairwise": jax.jit(multilabel.pairwise_ranking_loss),
    "warp_exact": jax.jit(multilabel.warp_loss_exact),
}
# Scores and shifts on a dyadic grid: shifted scores are exact, so a hinge sitting exactly on the margin
# (a discontinuity of WARP's violator count) stays there.
_score = st.integers(-4096, 4096).map(lambda k: k / 1024)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.lists(_score, min_size=_C, max_size=_C), st.lists(st.integers(0, 1), min_size=_C, max_size=_C),
       st.permutations(list(range(_C))), st.integers(-40, 40).map(lambda k: k / 8))
def test_class_permutation_and_score_shift_invariance(scores, labels, perm, shift):
  scores, labels, perm = np.array(scores, np.float32), np.array(labels), np.array(perm)
  for name, fn in _jit_losses.items():
    base = fn(scores, labels)
    np.testing.assert_allclose(fn(scores[perm], labels[perm]), base, rtol=1e-5, atol=1e-5,
                               err_msg=name)
    np.testing.assert_allclose(fn(scores + np.float32(shift), labels), base, rtol=1e-4, atol=1e-4,
                               err_msg=name)
    assert float(base) >= 0.0


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.lists(_score, min_size=_C, max_size=_C), st.lists(st.integers(0, 1), min_size=_C, max_size=_C))
def test_warp_between_pairwise_bounds(scores, labels):
  # With L(r)/r <= 1 per violator, exact WARP never exceeds the pairwise ranking loss, and its
  # un-normalised form (L(r) >= 1) never falls below it.
  scores, labels = np.array(scores, np.float32), np.array(labels)
  pairwise = float(_jit_losses["pairwise"](scores, labels))
  assert float(_jit_losses["warp_exact"](scores, labels)) <= pairwise * (1 + 1e-5) + 1e-5
  literal = float(multilabel.warp_loss_exact(scores, labels, normalize_by_rank=False))
  assert literal >= pairwise * (1 - 1e-5) - 1e-5


def test_images_without_pairs_and_nonfinite_scores():
  key = jax.random.key(0)
  losses = {
      "softmax": (multilabel.multilabel_softmax_loss, numpy_softmax_loss),
      "pairwise": (functools.partial(multilabel.pairwise_ranking_loss, block_size=2), numpy_pairwise_loss),
      "warp_exact": (functools.partial(multilabel.warp_loss_exact, block_size=2), numpy_warp_exact),
      "warp": (functools.partial(multilabel.warp_loss, key=key), None),
      "warp_single_violator": (functools.partial(multilabel.warp_loss_single_violator, key=key), None),
  }
  scores = jnp.array([[0.5, -0.3, 1.2, 0.1],     # no positive
                      [0.5, -0.3, 1.2, 0.1],     # no negative
                      [0.5, jnp.nan, 1.2, jnp.inf]])  # NaN / inf scores: masked classes
  labels = jnp.array([[0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
  for name, (fn, reference) in losses.items():
    per_image = jax.jit(lambda s, y: fn(s, y, reduce_fn=None))(scores, labels)
    assert float(per_image[0]) == 0.0, name
    if name != "softmax":  # softmax has a target when every class is positive; the others have no pair
      assert float(per_image[1]) == 0.0, name
    if reference is not None:  # the numpy loops skip non-finite scores
      np.testing.assert_allclose(per_image[2], reference(np.asarray(scores[2]), np.asarray(labels[2])),
                                 rtol=1e-6, err_msg=name)
    # Images with nothing to rank are left out of the mean.
    np.testing.assert_allclose(jax.jit(fn)(scores[::2], labels[::2]), per_image[2], rtol=1e-6, err_msg=name)


def test_wrong_inputs_raise():
  for fn in (multilabel.multilabel_softmax_loss, multilabel.pairwise_ranking_loss,
             multilabel.warp_loss_exact, functools.partial(multilabel.warp_loss, key=jax.random.key(0)),
             functools.partial(multilabel.warp_loss_single_violator, key=jax.random.key(0))):
    with pytest.raises(ValueError, match="same shape"):
      fn(jnp.ones((2, 4)), jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="at least 1"):
      fn(jnp.ones(()), jnp.ones(()))
    with pytest.raises(ValueError, match="weights"):
      fn(jnp.ones((2, 4)), jnp.ones((2, 4)), weights=jnp.ones(3))
    with pytest.raises(TypeError, match="boolean"):
      fn(jnp.ones(4), jnp.ones(4), where=jnp.ones(4))
  for fn in (multilabel.warp_loss, multilabel.warp_loss_single_violator):
    with pytest.raises(ValueError, match="num_trials"):
      fn(jnp.ones(4), jnp.ones(4), key=jax.random.key(0), num_trials=0)
  with pytest.raises(ValueError, match="trials_per_step"):
    multilabel.warp_loss_single_violator(jnp.ones(4), jnp.ones(4), key=jax.random.key(0), trials_per_step=0)


def test_pairwise_losses_saturate_instead_of_nan_near_the_float32_limit():
  """Issue 29, item 9: scores of +-3e38 made 1 - s_j + s_k overflow to inf and 0 * inf gave NaN.

  Scores beyond 2**48 count as +-2**48 (zero gradient there); below it the hinge is unchanged."""
  labels = jnp.array([[1, 0, 0], [1, 0, 0]])
  scores = jnp.array([[-3e38, 3e38, 0.0], [-1e14, 1e14, 0.0]])
  program = jax.jit(lambda s: {name: jax.value_and_grad(lambda x: fn(x, labels, reduce_fn=None).sum())(s)
                               for name, fn in (("pairwise", multilabel.pairwise_ranking_loss),
                                                ("warp_exact", multilabel.warp_loss_exact))})
  out = program(scores)
  value, grad = out["pairwise"]
  # The positive against the two negatives: (1 + 2 * 2**48) + (1 + 2**48), and (1 + 2e14) + (1 + 1e14).
  np.testing.assert_allclose(value, (2 + 3 * 2.0 ** 48) + (2 + 3e14), rtol=1e-6)
  np.testing.assert_array_equal(grad[0], [0.0, 0.0, 1.0])  # only the unclipped negative moves
  np.testing.assert_array_equal(grad[1], [-2.0, 1.0, 1.0])
  value, grad = out["warp_exact"]  # L(2) / 2 = 3/4 times the same hinges
  np.testing.assert_allclose(value, 0.75 * ((2 + 3 * 2.0 ** 48) + (2 + 3e14)), rtol=1e-6)
  assert np.all(np.isfinite(grad))
  loss = multilabel.multilabel_softmax_loss(jnp.array([-3e38, 3e38, 0.0]), jnp.array([1, 0, 0]))
  np.testing.assert_allclose(loss, 2.0 ** 49, rtol=1e-6)  # -log softmax = 2**48 + 2**48
