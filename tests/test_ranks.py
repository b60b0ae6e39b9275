"""Tests of ranking_jax.ranks against independent references.

* hard_ranks: scipy.stats.rankdata(method="ordinal") of the negated scores.
* sigmoid_ranks: a numpy double loop of eq. 11-12 of "SoDeep: a Sorting Deep net to learn ranking loss
  surrogates".
* soft_ranks / soft_sort: the projection formula of "Fast Differentiable Sorting and Ranking" (Blondel et
  al., Prop. 3) evaluated with a plain-loop Pool-Adjacent-Violators written here (itself checked against
  sklearn's isotonic_regression), a generic constrained solver (scipy SLSQP) on the permutahedron's
  inequalities, and the block-averaging Jacobian; limits, invariances (hypothesis), finite differences in
  float64 and the edge cases (masks, n = 1, all ties, NaN/inf, bfloat16, wrong shapes).
"""

from __future__ import annotations

import itertools
import pathlib

import hypothesis
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import sklearn.isotonic

from ranking_jax import ranks

DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"

# --------------------------------------------------------------------------------------------------------
# Independent numpy references.
# --------------------------------------------------------------------------------------------------------


def pav_l2_decreasing(y):
  """Plain-loop PAV: argmin_{v_1 >= ... >= v_n} 0.5 ||v - y||^2; returns (v, list of block sizes)."""
  blocks = []  # [sum, count]
  for value in y:
    blocks.append([float(value), 1])
    while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] <= blocks[-1][0] / blocks[-1][1]:
      total, count = blocks.pop()
      blocks[-1][0] += total
      blocks[-1][1] += count
  v = np.concatenate([np.full(count, total / count) for total, count in blocks]) if blocks else np.zeros(0)
  return v, [count for _, count in blocks]


def pav_kl_decreasing(s, w):
  """Plain-loop PAV: argmin_{v_1 >= ... >= v_n} <exp(s - v), 1> + <exp(w), v>; returns (v, sizes)."""
  blocks = []  # [logsumexp s, logsumexp w, count]
  for s_i, w_i in zip(s, w):
    blocks.append([float(s_i), float(w_i), 1])
    while len(blocks) > 1 and blocks[-2][0] - blocks[-2][1] <= blocks[-1][0] - blocks[-1][1]:
      ls, lw, count = blocks.pop()
      blocks[-1][0] = np.logaddexp(blocks[-1][0], ls)
      blocks[-1][1] = np.logaddexp(blocks[-1][1], lw)
      blocks[-1][2] += count
  v = np.concatenate([np.full(count, ls - lw) for ls, lw, count in blocks])
  return v, [count for _, _, count in blocks]


def soft_ranks_reference(theta, epsilon, regularization="l2", jacobian=False):
  """r = P(-theta / eps, rho) by Prop. 3 of Blondel et al., float64, one list (and its Jacobian)."""
  theta = np.asarray(theta, np.float64)
  n = theta.shape[0]
  z = -theta / epsilon
  sigma = np.argsort(-z, kind="stable")  # decreasing z
  s = z[sigma]
  rho = np.arange(n, 0, -1).astype(np.float64)
  if regularization == "l2":
    v, sizes = pav_l2_decreasing(s - rho)
    r_sorted = s - v
  else:
    v, sizes = pav_kl_decreasing(s, np.log(rho))
    r_sorted = np.exp(s - v)
  ranks_ = np.empty(n)
  ranks_[sigma] = r_sorted
  if not jacobian:
    return ranks_
  # Jacobian of r_sorted w.r.t. s: l2: I - block average; kl: diag(r) (I - block softmax).
  jac_sorted = np.eye(n)
  start = 0
  for size in sizes:
    block = slice(start, start + size)
    if regularization == "l2":
      jac_sorted[block, block] -= 1.0 / size
    else:
      weights = np.exp(s[block] - np.logaddexp.reduce(s[block]))
      jac_sorted[block, block] -= np.broadcast_to(weights, (size, size))
    start += size
  if regularization == "kl":
    jac_sorted = r_sorted[:, None] * jac_sorted
  jac = np.empty((n, n))
  jac[np.ix_(sigma, sigma)] = jac_sorted
  return ranks_, jac * (-1.0 / epsilon)  # dz/dtheta = -1/eps


def soft_sort_reference(theta, epsilon):
  """P_Q(rho / eps, theta) = rho / eps - v_Q(rho / eps, sort_desc(theta)), float64, one list."""
  theta_desc = np.sort(np.asarray(theta, np.float64))[::-1]
  rho = np.arange(theta_desc.shape[0], 0, -1) / epsilon
  v, _ = pav_l2_decreasing(rho - theta_desc)
  return rho - v


def permutahedron_projection_slsqp(z, w):
  """argmin_{mu in P(w)} ||mu - z||^2 by a generic solver on the permutahedron's 2^n - 1 inequalities."""
  n = len(z)
  w_desc = np.sort(w)[::-1]
  constraints = [{"type": "eq", "fun": lambda mu: np.sum(mu) - np.sum(w)}]
  for size in range(1, n):
    for subset in itertools.combinations(range(n), size):
      idx = list(subset)
      bound = w_desc[:size].sum()  # the |S| largest entries of w bound any |S| coordinates of mu
      constraints.append({"type": "ineq", "fun": lambda mu, idx=idx, bound=bound: bound - mu[idx].sum()})
  result = scipy.optimize.minimize(lambda mu: np.sum((mu - z) ** 2), np.full(n, np.mean(w)),
                                   jac=lambda mu: 2 * (mu - z), constraints=constraints, method="SLSQP",
                                   options={"ftol": 1e-12, "maxiter": 500})
  assert result.success, result.message
  return result.x


def sigmoid_ranks_reference(y, sharpness):
  """1 + f_h(y, i), f_h(y, i) = sum_{j != i} sigma_comp(y_i, y_j), sigma_comp(a, b) = 1/(1+e^{-l(b-a)})."""
  n = len(y)
  out = np.ones(n)
  for i in range(n):
    for j in range(n):
      if j != i:
        out[i] += 1.0 / (1.0 + np.exp(-sharpness * (float(y[j]) - float(y[i]))))
  return out


jit_soft_ranks = jax.jit(ranks.soft_ranks, static_argnames=("regularization",))
jit_soft_sort = jax.jit(ranks.soft_sort)


def distinct_scores(rng, shape, gap=0.05):
  """Scores whose pairwise gaps are all >= gap (no ties, no near-ties)."""
  n = shape[-1]
  base = np.arange(n) * gap + rng.uniform(0, 0.4 * gap, size=shape)
  return rng.permuted(base, axis=-1) * rng.choice([-1, 1])


# --------------------------------------------------------------------------------------------------------
# hard_ranks and sigmoid_ranks.
# --------------------------------------------------------------------------------------------------------


def test_hard_ranks_match_scipy_ordinal_with_ties():
  rng = np.random.default_rng(0)
  scores = rng.integers(0, 5, size=(3, 4, 9)).astype(np.float32)  # many ties
  got = np.asarray(ranks.hard_ranks(jnp.asarray(scores)))
  want = np.apply_along_axis(lambda row: scipy.stats.rankdata(-row, method="ordinal"), -1, scores)
  np.testing.assert_array_equal(got, want)


def test_hard_ranks_mask_and_nonfinite():
  rng = np.random.default_rng(1)
  scores = rng.normal(size=(5, 7)).astype(np.float32)
  where = rng.random((5, 7)) < 0.7
  scores[0, 2] = np.nan
  scores[1, 3] = np.inf
  got = np.asarray(ranks.hard_ranks(jnp.asarray(scores), where=jnp.asarray(where)))
  valid = where & np.isfinite(scores)
  for row in range(5):
    want = np.zeros(7)
    want[valid[row]] = scipy.stats.rankdata(-scores[row, valid[row]], method="ordinal")
    np.testing.assert_array_equal(got[row], want)


def test_sigmoid_ranks_match_sodeep_eq_11_12():
  rng = np.random.default_rng(2)
  scores = rng.normal(size=(3, 6)).astype(np.float32)
  for sharpness in (1.0, 10.0):
    got = np.asarray(ranks.sigmoid_ranks(jnp.asarray(scores), sharpness=sharpness))
    want = np.stack([sigmoid_ranks_reference(row, sharpness) for row in scores])
    np.testing.assert_allclose(got, want, rtol=1e-5)
  where = np.array([[True, False, True, True, False, True]] * 3)
  got = np.asarray(ranks.sigmoid_ranks(jnp.asarray(scores), where=jnp.asarray(where)))
  for row in range(3):
    np.testing.assert_allclose(got[row, where[row]], sigmoid_ranks_reference(scores[row, where[row]], 10.0),
                               rtol=1e-5)
    np.testing.assert_array_equal(got[row, ~where[row]], 0.0)


def test_sigmoid_ranks_standardized_match_loop_on_z_scores():
  rng = np.random.default_rng(21)
  scores = rng.normal(size=(3, 7)) * 5 + 2
  where = rng.random((3, 7)) < 0.8
  where[:, :2] = True
  got = np.asarray(ranks.sigmoid_ranks(jnp.asarray(scores, jnp.float32), where=jnp.asarray(where),
                                       sharpness=3.0, standardize=True))
  for row in range(3):
    valid = scores[row, where[row]]
    z = (valid - valid.mean()) / np.sqrt(valid.var() + 1e-6)  # population std, as numpy's default
    np.testing.assert_allclose(got[row, where[row]], sigmoid_ranks_reference(z, 3.0), rtol=1e-4)
    np.testing.assert_array_equal(got[row, ~where[row]], 0.0)


@hypothesis.settings(deadline=None, max_examples=25)
@hypothesis.given(hnp.arrays(np.float64, (2, 6), elements=st.floats(-3, 3)),
                  st.floats(0.1, 100.0), st.floats(-50.0, 50.0))
def test_sigmoid_ranks_standardized_invariant_to_scale_and_shift(scores, scale, shift):
  hypothesis.assume(np.all(scores.std(-1) > 0.1))
  base = ranks.sigmoid_ranks(jnp.asarray(scores, jnp.float32), sharpness=20.0, standardize=True)
  moved = ranks.sigmoid_ranks(jnp.asarray(scores * scale + shift, jnp.float32), sharpness=20.0,
                              standardize=True)
  np.testing.assert_allclose(np.asarray(moved), np.asarray(base), atol=2e-3)
  np.testing.assert_allclose(np.asarray(base).sum(-1), 6 * 7 / 2, rtol=1e-5)  # ranks still sum to n(n+1)/2


def test_sigmoid_ranks_standardized_edge_cases_are_finite():
  constant = jnp.full((1, 4), 2.5)
  single = jnp.array([[1.0, jnp.nan, 3.0]])
  out = ranks.sigmoid_ranks(constant, standardize=True)
  np.testing.assert_allclose(np.asarray(out), 2.5)  # all ties: the average rank
  out = ranks.sigmoid_ranks(single, where=jnp.array([[True, True, False]]), standardize=True)
  np.testing.assert_array_equal(np.asarray(out), [[1.0, 0.0, 0.0]])
  grad = jax.grad(lambda s: jnp.sum(ranks.sigmoid_ranks(s, standardize=True) ** 2))(constant)
  assert np.all(np.isfinite(np.asarray(grad)))


def test_sigmoid_ranks_standardized_gradient_finite_differences():
  with jax.enable_x64(True):
    rng = np.random.default_rng(22)
    scores = jnp.asarray(rng.normal(size=(2, 5)))
    where = jnp.asarray([[True, True, True, False, True]] * 2)
    check_grads(lambda s: ranks.sigmoid_ranks(s, where=where, sharpness=4.0, standardize=True), (scores,),
                order=1, modes=("rev", "fwd"), eps=1e-6, atol=1e-6, rtol=1e-6)


# --------------------------------------------------------------------------------------------------------
# The numpy reference itself.
# --------------------------------------------------------------------------------------------------------


def test_reference_pav_matches_sklearn_and_generic_projection():
  rng = np.random.default_rng(3)
  for _ in range(20):
    y = rng.normal(size=12) * rng.choice([0.1, 1.0, 10.0])
    np.testing.assert_allclose(pav_l2_decreasing(y)[0],
                               sklearn.isotonic.isotonic_regression(y, increasing=False), atol=1e-12)
  # The full projection formula (sort + PAV) against a generic solver on the permutahedron of rho.
  for epsilon in (0.3, 1.0, 3.0):
    theta = rng.normal(size=5)
    want = permutahedron_projection_slsqp(-theta / epsilon, np.arange(1.0, 6.0))
    np.testing.assert_allclose(soft_ranks_reference(theta, epsilon), want, atol=1e-5)


# --------------------------------------------------------------------------------------------------------
# soft_ranks: values.
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_soft_ranks_match_reference(regularization):
  rng = np.random.default_rng(4)
  spreads = np.array([0.01, 0.1, 1.0, 3.0, 10.0, 100.0])[:, None]
  scores = (rng.normal(size=(6, 40)) * spreads).astype(np.float32)
  scores[5, :10] = scores[5, 10:20]  # exact ties
  for epsilon in (0.01, 0.3, 1.0, 30.0):
    got = np.asarray(jit_soft_ranks(jnp.asarray(scores), regularization_strength=epsilon,
                                    regularization=regularization))
    want = np.stack([soft_ranks_reference(row, epsilon, regularization) for row in scores])
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-4)


def test_soft_ranks_long_lists_match_reference():
  rng = np.random.default_rng(5)
  scores = rng.normal(size=(2, 3000)).astype(np.float32)
  for regularization in ("l2", "kl"):
    got = np.asarray(jit_soft_ranks(jnp.asarray(scores), regularization_strength=0.01,
                                    regularization=regularization))
    want = np.stack([soft_ranks_reference(row, 0.01, regularization) for row in scores])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-2)


def test_soft_ranks_adversarial_orders():
  """Patterns that make PAV pool everything, nothing, or cascade merges."""
  n = 64
  patterns = np.stack([
      np.arange(n, dtype=np.float32),  # sorted
      -np.arange(n, dtype=np.float32),  # reversed
      np.zeros(n, np.float32),  # all tied
      np.where(np.arange(n) % 2 == 0, 1.0, -1.0).astype(np.float32),  # two tied groups
      np.r_[np.full(n - 1, 0.0), 1000.0].astype(np.float32),  # one outlier over a tied mass
      np.cumsum(np.linspace(0.02, 3.0, n)).astype(np.float32),  # growing gaps: many block sizes
  ])
  for regularization in ("l2", "kl"):
    for epsilon in (0.1, 1.0, 10.0):
      got = np.asarray(jit_soft_ranks(jnp.asarray(patterns), regularization_strength=epsilon,
                                      regularization=regularization))
      want = np.stack([soft_ranks_reference(row, epsilon, regularization) for row in patterns])
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
  # All tied: every item shares the average rank, whatever epsilon.
  np.testing.assert_allclose(got[2], (n + 1) / 2, rtol=1e-6)


@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_soft_ranks_limits_and_sum(regularization):
  rng = np.random.default_rng(6)
  scores = jnp.asarray(distinct_scores(rng, (6, 40)), jnp.float32)
  # epsilon -> 0: exact hard ranks (gaps >> epsilon).
  small = jit_soft_ranks(scores, regularization_strength=1e-4, regularization=regularization)
  np.testing.assert_allclose(small, ranks.hard_ranks(scores), atol=1e-3)
  # epsilon -> inf: every rank -> (n + 1) / 2.
  large = jit_soft_ranks(scores, regularization_strength=1e6, regularization=regularization)
  np.testing.assert_allclose(large, 20.5, atol=1e-3)
  # sum of ranks = n (n + 1) / 2 for every epsilon; ranks in [1, n] and order-preserving.
  for epsilon in (0.01, 0.5, 5.0):
    r = np.asarray(jit_soft_ranks(scores, regularization_strength=epsilon, regularization=regularization),
                   np.float64)
    np.testing.assert_allclose(r.sum(-1), 40 * 41 / 2, rtol=1e-5)
    assert np.all(r >= 1 - 1e-4) and np.all(r <= 40 + 1e-4)
    order = np.argsort(-np.asarray(scores), axis=-1)
    assert np.all(np.diff(np.take_along_axis(r, order, -1), axis=-1) >= -1e-4)


# --------------------------------------------------------------------------------------------------------
# soft_ranks: gradients.
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_soft_ranks_jacobian_is_block_averaging(regularization):
  rng = np.random.default_rng(7)
  scores = rng.normal(size=(12,)).astype(np.float32)
  for epsilon in (0.1, 1.0):
    jac = jax.jit(jax.jacrev(lambda x: ranks.soft_ranks(x, regularization_strength=epsilon,
                                                        regularization=regularization)))(scores)
    want = soft_ranks_reference(scores, epsilon, regularization, jacobian=True)[1]
    np.testing.assert_allclose(jac, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_soft_ranks_finite_differences_float64(regularization):
  with jax.enable_x64(True):
    rng = np.random.default_rng(8)
    scores = jnp.asarray(distinct_scores(rng, (2, 9), gap=0.3), jnp.float64)
    where = jnp.asarray(rng.random((2, 9)) < 0.8)
    weights = jnp.asarray(rng.normal(size=(2, 9)))

    def loss(x, epsilon):
      r = ranks.soft_ranks(x, where=where, regularization_strength=epsilon, regularization=regularization)
      return jnp.sum(weights * r ** 2)

    # epsilon is differentiable too. l2: forward mode works as well as reverse mode; kl is smooth inside
    # a partition, so the gradient's own gradient is exact too.
    if regularization == "l2":
      check_grads(jax.jit(loss), (scores, jnp.float64(0.7)), order=1, modes=("rev", "fwd"), eps=1e-6,
                  atol=1e-5, rtol=1e-5)
    else:
      check_grads(jax.jit(loss), (scores, jnp.float64(0.7)), order=2, modes=("rev",), eps=1e-6, atol=1e-5,
                  rtol=1e-5)


# --------------------------------------------------------------------------------------------------------
# soft_ranks: invariances (hypothesis).
# --------------------------------------------------------------------------------------------------------

N_PROPERTY = 8
_list_strategy = hnp.arrays(np.float32, (N_PROPERTY,),
                            elements=st.floats(-50, 50, width=32, allow_nan=False, allow_infinity=False))


@hypothesis.settings(max_examples=30, deadline=None, derandomize=True)
@hypothesis.given(scores=_list_strategy, permutation=st.permutations(range(N_PROPERTY)),
                  epsilon=st.sampled_from([0.05, 1.0, 20.0]), regularization=st.sampled_from(["l2", "kl"]))
def test_soft_ranks_permutation_equivariant(scores, permutation, epsilon, regularization):
  permutation = np.asarray(permutation)
  r = jit_soft_ranks(jnp.asarray(scores), regularization_strength=epsilon, regularization=regularization)
  r_perm = jit_soft_ranks(jnp.asarray(scores[permutation]), regularization_strength=epsilon,
                          regularization=regularization)
  np.testing.assert_allclose(r_perm, np.asarray(r)[permutation], rtol=1e-5, atol=1e-4)
  s = jit_soft_sort(jnp.asarray(scores), regularization_strength=epsilon)
  s_perm = jit_soft_sort(jnp.asarray(scores[permutation]), regularization_strength=epsilon)
  np.testing.assert_allclose(s_perm, s, rtol=1e-5, atol=1e-4)


@hypothesis.settings(max_examples=30, deadline=None, derandomize=True)
@hypothesis.given(scores=_list_strategy, shift=st.floats(-100, 100), scale=st.floats(0.1, 10.0),
                  regularization=st.sampled_from(["l2", "kl"]))
def test_soft_ranks_shift_invariant_and_scale_covariant(scores, shift, scale, regularization):
  x = jnp.asarray(scores, jnp.float32)
  r = jit_soft_ranks(x, regularization_strength=1.0, regularization=regularization)
  # Rank values are O(n); the shifted scores are rounded to float32, hence the absolute tolerance.
  tol = 1e-5 * (abs(shift) + 50.0) * N_PROPERTY
  np.testing.assert_allclose(jit_soft_ranks(x + shift, regularization_strength=1.0,
                                            regularization=regularization), r, atol=tol)
  np.testing.assert_allclose(jit_soft_ranks(x * scale, regularization_strength=scale,
                                            regularization=regularization), r, atol=1e-3)


# --------------------------------------------------------------------------------------------------------
# soft_ranks: masks, edge cases, dtypes, transformations.
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_soft_ranks_mask_ranks_among_valid_items(regularization):
  rng = np.random.default_rng(9)
  scores = rng.normal(size=(5, 10)).astype(np.float32)
  where = rng.random((5, 10)) < 0.6
  where[0] = False  # fully masked list
  where[1] = False
  where[1, 4] = True  # one valid item
  scores[2, 1] = np.nan  # non-finite scores count as masked
  scores[3, 0] = -np.inf
  scores[4, 7] = np.inf
  valid = where & np.isfinite(scores)

  def loss(x):
    return jnp.sum(ranks.soft_ranks(x, where=jnp.asarray(where), regularization_strength=0.5,
                                    regularization=regularization) * jnp.arange(10.0))

  r = np.asarray(ranks.soft_ranks(jnp.asarray(scores), where=jnp.asarray(where), regularization_strength=0.5,
                                  regularization=regularization))
  grad = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(scores)))
  assert np.all(np.isfinite(r)) and np.all(np.isfinite(grad))
  np.testing.assert_array_equal(r[~valid], 0.0)
  np.testing.assert_array_equal(grad[~valid], 0.0)
  np.testing.assert_array_equal(r[0], 0.0)
  np.testing.assert_allclose(r[1, 4], 1.0)
  for row in range(2, 5):
    want = soft_ranks_reference(scores[row, valid[row]], 0.5, regularization)
    np.testing.assert_allclose(r[row, valid[row]], want, rtol=1e-5, atol=1e-5)


def test_soft_ranks_one_element_and_empty():
  # (Fully masked lists and lists with one valid item are covered by the mask test above.)
  one = jnp.array([[3.0], [-1.0]])
  for regularization in ("l2", "kl"):
    value, grad = jax.jit(jax.value_and_grad(
        lambda x: jnp.sum(ranks.soft_ranks(x, regularization=regularization) * x)))(one)
    np.testing.assert_allclose(value, 2.0)  # ranks are exactly 1
    np.testing.assert_array_equal(grad, [[1.0], [1.0]])  # d(r x)/dx = r + x dr/dx, dr/dx = 0
    assert ranks.soft_ranks(jnp.zeros((3, 0)), regularization=regularization).shape == (3, 0)


def test_soft_ranks_bfloat16_and_integer_inputs():
  rng = np.random.default_rng(10)
  scores = jnp.asarray(rng.normal(size=(6, 40)), jnp.bfloat16)
  for regularization in ("l2", "kl"):
    r = jit_soft_ranks(scores, regularization=regularization)
    assert r.dtype == jnp.bfloat16
    want = jit_soft_ranks(scores.astype(jnp.float32), regularization=regularization)
    np.testing.assert_allclose(np.asarray(r, np.float32), want, rtol=2 ** -7)
  grad = jax.jit(jax.grad(lambda x: jnp.sum(ranks.soft_ranks(x, regularization="kl") * jnp.arange(40.0))))(
      scores)
  assert grad.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(grad.astype(jnp.float32))))
  ints = ranks.soft_ranks(jnp.array([3, 1, 2]), regularization_strength=0.01)
  assert ints.dtype == jnp.float32
  np.testing.assert_allclose(ints, [1.0, 3.0, 2.0])


def test_soft_ranks_wrong_inputs_raise():
  with pytest.raises(ValueError, match="at least 1 dimension"):
    ranks.soft_ranks(jnp.float32(1.0))
  with pytest.raises(ValueError, match="regularization"):
    ranks.soft_ranks(jnp.ones(3), regularization="l1")
  with pytest.raises(ValueError, match="> 0"):
    ranks.soft_ranks(jnp.ones(3), regularization_strength=0.0)
  with pytest.raises(ValueError, match="> 0"):
    ranks.soft_sort(jnp.ones(3), regularization_strength=-1.0)
  with pytest.raises(ValueError, match="scalar"):
    ranks.soft_ranks(jnp.ones((2, 3)), regularization_strength=jnp.ones((2, 1)))
  with pytest.raises(TypeError, match="boolean"):
    ranks.soft_ranks(jnp.ones(3), where=jnp.ones(3))
  with pytest.raises(ValueError):
    ranks.soft_ranks(jnp.ones((2, 3)), where=jnp.ones((4,), bool))


def test_soft_ranks_jit_vmap_and_leading_axes():
  rng = np.random.default_rng(11)
  scores = rng.normal(size=(2, 3, 16)).astype(np.float32)
  where = rng.random((2, 3, 16)) < 0.8
  want = np.zeros((2, 3, 16))
  for a, b in itertools.product(range(2), range(3)):
    want[a, b, where[a, b]] = soft_ranks_reference(scores[a, b, where[a, b]], 0.3)
  fn = lambda x, m: ranks.soft_ranks(x, where=m, regularization_strength=0.3)
  np.testing.assert_allclose(fn(scores, where), want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jax.jit(jax.vmap(jax.vmap(fn)))(scores, where), want, rtol=1e-5, atol=1e-5)
  # Unbatched mask with batched scores, and a batched (traced) epsilon.
  shared = np.zeros((2, 16))
  for a in range(2):
    shared[a, where[0, 0]] = soft_ranks_reference(scores[a, 0, where[0, 0]], 0.3)
  np.testing.assert_allclose(jax.vmap(fn, in_axes=(0, None))(scores[:, 0], where[0, 0]), shared, rtol=1e-5,
                             atol=1e-5)
  epsilons = [0.1, 1.0, 10.0]
  by_epsilon = jax.vmap(lambda e: ranks.soft_ranks(scores[0, 0], regularization_strength=e))(
      jnp.asarray(epsilons))
  for i, epsilon in enumerate(epsilons):
    np.testing.assert_allclose(by_epsilon[i], soft_ranks_reference(scores[0, 0], epsilon), rtol=1e-5,
                               atol=1e-5)
  # Gradients under vmap: J^T g with the reference block-averaging Jacobian.
  cotangent = np.arange(16.0)
  grads = jax.jit(jax.vmap(jax.grad(lambda x: jnp.sum(ranks.soft_ranks(x, regularization_strength=0.3)
                                                      * cotangent))))(scores[0])
  for row in range(3):
    jacobian = soft_ranks_reference(scores[0, row], 0.3, jacobian=True)[1]
    np.testing.assert_allclose(grads[row], jacobian.T @ cotangent, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------------------
# soft_sort.
# --------------------------------------------------------------------------------------------------------


def test_soft_sort_matches_reference_limits_and_sum():
  rng = np.random.default_rng(12)
  scores = rng.normal(size=(4, 20)).astype(np.float32)
  for epsilon in (0.01, 0.3, 3.0):
    got = np.asarray(jit_soft_sort(jnp.asarray(scores), regularization_strength=epsilon))
    want = np.stack([soft_sort_reference(row, epsilon) for row in scores])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.sum(-1), scores.sum(-1), atol=1e-4)
  small = jit_soft_sort(jnp.asarray(distinct_scores(rng, (4, 20))), regularization_strength=1e-4)
  assert np.all(np.diff(np.asarray(small), axis=-1) < 0)
  large = jit_soft_sort(jnp.asarray(scores), regularization_strength=1e6)
  np.testing.assert_allclose(large, np.broadcast_to(scores.mean(-1, keepdims=True), (4, 20)), atol=1e-4)
  # Masks: valid items soft-sorted first, zeros after; zero gradient at masked items.
  where = rng.random((4, 20)) < 0.5
  masked = np.asarray(jit_soft_sort(jnp.asarray(scores), where=jnp.asarray(where),
                                    regularization_strength=0.3))
  for row in range(4):
    m = where[row].sum()
    np.testing.assert_allclose(masked[row, :m], soft_sort_reference(scores[row, where[row]], 0.3), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(masked[row, m:], 0.0)
  grad = jax.grad(lambda x: jnp.sum(ranks.soft_sort(x, where=jnp.asarray(where)) * jnp.arange(20.0)))(
      jnp.asarray(scores))
  np.testing.assert_array_equal(np.asarray(grad)[~where], 0.0)


def test_soft_sort_finite_differences_float64():
  with jax.enable_x64(True):
    rng = np.random.default_rng(13)
    scores = jnp.asarray(distinct_scores(rng, (2, 7), gap=0.3), jnp.float64)
    weights = jnp.asarray(rng.normal(size=(2, 7)))
    loss = lambda x, e: jnp.sum(weights * ranks.soft_sort(x, regularization_strength=e) ** 2)
    check_grads(jax.jit(loss), (scores, jnp.float64(0.5)), order=1, modes=("rev",), eps=1e-6, atol=1e-5,
                rtol=1e-5)


# --------------------------------------------------------------------------------------------------------
# Real data: the 11 540 visual-search-difficulty scores of VOC 2012 (5 254 repeated values).
# --------------------------------------------------------------------------------------------------------


def _vsd_scores():
  path = DATA_DIR / "vsd" / "VSD_dataset.csv"
  if not path.exists():
    pytest.skip(f"{path} is absent (real-data samples are not shipped with the project)")
  values = []
  for line in path.read_text().splitlines():
    name, _, score = line.partition(",")
    if name.strip() and name.strip() != "name":
      values.append(float(score))
  return np.asarray(values, np.float32)


def test_ranks_on_real_difficulty_scores():
  scores = _vsd_scores()
  np.testing.assert_array_equal(ranks.hard_ranks(jnp.asarray(scores)),
                                scipy.stats.rankdata(-scores, method="ordinal"))
  soft = np.asarray(ranks.soft_ranks(jnp.asarray(scores), regularization_strength=1e-3))
  want = soft_ranks_reference(scores, 1e-3)
  np.testing.assert_allclose(soft, want, rtol=1e-5, atol=1e-2)
  np.testing.assert_allclose(np.sum(soft, dtype=np.float64), len(scores) * (len(scores) + 1) / 2, rtol=1e-5)
  # Tied difficulty scores always share one soft rank.
  values, counts = np.unique(scores, return_counts=True)
  tied = scores == values[np.argmax(counts)]
  np.testing.assert_allclose(soft[tied], soft[tied][0], rtol=1e-6)
