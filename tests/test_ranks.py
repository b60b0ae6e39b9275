"""Tests of ranking_jax.ranks (and utils.standardize) against independent references.

* hard_ranks: scipy.stats.rankdata(method="ordinal") of the negated scores, on exact integers too.
* tie_averaged_ranks: scipy.stats.rankdata(method="average") of the negated values.
* sigmoid_ranks: a numpy double loop of eq. 11-12 of "SoDeep: a Sorting Deep net to learn ranking loss
  surrogates"; standardised scores from numpy float64 z-scores.
* soft_ranks / soft_sort: the projection formula of "Fast Differentiable Sorting and Ranking" (Blondel et
  al., Prop. 3) evaluated with a plain-loop Pool-Adjacent-Violators written here (itself checked against
  sklearn's isotonic_regression), a generic constrained solver (scipy SLSQP) on the permutahedron's
  inequalities, and the block-averaging Jacobian; limits, invariances (hypothesis), masks, gradients in
  the regularization strength and the custom vmap rule.
* Issue 9: integer and low-precision dtypes for every rank function (hypothesis), and scale/shift
  invariance of the standardisation at any magnitude (hypothesis).

The generic checks shared by every rank function (jit, vmap, bfloat16, masks, one-item and zero-size lists,
float64 finite differences) are in test_contract.py.
"""

from __future__ import annotations

import functools
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
import scipy.special
import scipy.stats
import sklearn.isotonic

from ranking_jax import ranks
from ranking_jax import utils

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
        out[i] += scipy.special.expit(sharpness * (float(y[j]) - float(y[i])))
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


def test_tie_averaged_ranks_match_scipy_rankdata():
  rng = np.random.default_rng(0)
  values = rng.integers(0, 4, size=(5, 9)).astype(np.float32)
  program = jax.jit(lambda v, m, w: (ranks.tie_averaged_ranks(v), ranks.tie_averaged_ranks(m, where=w)))
  # Masked and non-finite values rank 0 and do not count.
  masked = jnp.array([3.0, jnp.nan, 1.0, 3.0, 5.0])
  where = jnp.array([True, True, True, True, False])
  got, got_masked = program(values, masked, where)
  np.testing.assert_array_equal(got, scipy.stats.rankdata(-values, method="average", axis=-1))
  np.testing.assert_array_equal(got_masked, [1.5, 0, 3, 1.5, 0])


# Issue 9, faults 1 and 2: integer scores were negated in their own dtype, and ranks were returned in the
# input's low-precision dtype.


def test_integer_scores_are_ranked_exactly():
  cases = [np.array([0, 1, 2, 3], np.uint8),  # -x wrapped: [1, 4, 3, 2] instead of [4, 3, 2, 1]
           np.array([-128, 127, 0, -1, -128], np.int8),  # -(-128) wraps to -128
           np.array([np.iinfo(np.int32).min, np.iinfo(np.int32).max, 0, 1 << 30, (1 << 30) + 1], np.int32),
           np.array([4294967295, 0, 2147483648, 2147483649], np.uint32),
           np.array([True, False, True])]
  program = jax.jit(lambda arrays: [(ranks.hard_ranks(a), ranks.tie_averaged_ranks(a)) for a in arrays])
  for values, (hard, tied) in zip(cases, program([jnp.asarray(c) for c in cases])):
    exact = values.astype(np.int64)  # scipy on exact integers: the independent reference
    assert hard.dtype == tied.dtype == jnp.float32
    np.testing.assert_array_equal(hard, scipy.stats.rankdata(-exact, method="ordinal"), err_msg=str(values))
    np.testing.assert_array_equal(tied, scipy.stats.rankdata(-exact, method="average"), err_msg=str(values))
  np.testing.assert_array_equal(program([jnp.asarray(cases[0])])[0][0], [4.0, 3.0, 2.0, 1.0])  # the issue's
  # The differentiable rank functions return float ranks, not integer-typed ones.
  got = jax.jit(ranks.sigmoid_ranks)(jnp.array([0, 1, 2, 3], jnp.uint8))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, sigmoid_ranks_reference([0.0, 1.0, 2.0, 3.0], 10.0), rtol=1e-6)


def _distinct_values(dtype, n, seed):
  """n distinct values of a low-precision dtype, in random order."""
  rng = np.random.default_rng(seed)
  candidates = np.unique(np.asarray(jnp.asarray(rng.normal(size=20 * n) * 100, dtype), np.float32))
  return jnp.asarray(rng.permutation(rng.choice(candidates, n, replace=False)), dtype)


def test_low_precision_scores_get_exact_float32_ranks():
  # bfloat16 holds integer ranks exactly only up to 256 and float16 up to 2048: ranks must not be rounded.
  program = jax.jit(lambda s: (ranks.hard_ranks(s), ranks.tie_averaged_ranks(s)))
  for dtype, n in ((jnp.bfloat16, 300), (jnp.float16, 3000)):
    scores = _distinct_values(dtype, n, n)
    want = scipy.stats.rankdata(-np.asarray(scores, np.float64), method="ordinal")
    for got in program(scores):
      assert got.dtype == jnp.float32
      np.testing.assert_array_equal(got, want)


RANK_FUNCTIONS = {
    "hard_ranks": ranks.hard_ranks,
    "tie_averaged_ranks": ranks.tie_averaged_ranks,
    "sigmoid_ranks": ranks.sigmoid_ranks,
    "soft_ranks": functools.partial(ranks.soft_ranks, regularization_strength=0.5),
    "soft_sort": ranks.soft_sort,
}
DTYPES = (np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, jnp.float16, jnp.bfloat16)


# Tiny inputs: compile without LLVM's optimisations and XLA's fusion emitters (about 3x faster).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                "xla_cpu_use_fusion_emitters": False}


@functools.lru_cache(maxsize=None)
def _all_dtypes_program(name):
  """One compilation per rank function: every dtype, and the float32 copies stacked on a leading axis."""
  fn = RANK_FUNCTIONS[name]
  # The soft functions compile a loop per dtype; every dtype reaches them through the same conversion, so
  # they take the ones that would wrap or round (uint8, int8, uint32, bfloat16).
  keep = [True] * len(DTYPES) if name in ("hard_ranks", "tie_averaged_ranks", "sigmoid_ranks") else [
      dtype in (np.uint8, np.int8, np.uint32, jnp.bfloat16) for dtype in DTYPES]
  return jax.jit(lambda arrays, float_copies: ([fn(a) if k else None for a, k in zip(arrays, keep)],
                                               fn(float_copies)), compiler_options=FAST_COMPILE)


def _integer_lists(dtype):
  if dtype == np.bool_:
    return hnp.arrays(np.bool_, (2, 7))
  if dtype in (jnp.float16, jnp.bfloat16):  # exactly representable in both: integers up to 256
    return hnp.arrays(np.float32, (2, 7), elements=st.integers(-256, 256).map(float))
  info = np.iinfo(dtype)
  return hnp.arrays(dtype, (2, 7), elements=st.integers(int(info.min), int(info.max)))


@hypothesis.settings(max_examples=15, deadline=None, derandomize=True)
@hypothesis.given(data=st.data())
def test_every_rank_function_accepts_integer_and_low_precision_scores(data):
  arrays = [jnp.asarray(data.draw(_integer_lists(dtype)), dtype) for dtype in DTYPES]
  float_copies = jnp.stack([jnp.asarray(a, jnp.float32) for a in arrays])
  for name in RANK_FUNCTIONS:
    got, from_float32 = _all_dtypes_program(name)(arrays, float_copies)
    for dtype, array, result, expected in zip(DTYPES, arrays, got, from_float32):
      if result is None:
        continue
      assert result.dtype == jnp.float32, (name, dtype)
      if name in ("hard_ranks", "tie_averaged_ranks"):  # exact: scipy on the exact integer values
        exact = np.asarray(array).astype(np.float64 if dtype in (jnp.float16, jnp.bfloat16) else np.int64)
        method = "ordinal" if name == "hard_ranks" else "average"
        np.testing.assert_array_equal(result, scipy.stats.rankdata(-exact, method=method, axis=-1),
                                      err_msg=f"{name} {dtype}")
      else:  # the value of the float32 copy (promotion comes first), never a wrapped or rounded one
        np.testing.assert_allclose(result, expected, rtol=1e-6, err_msg=f"{name} {dtype}")
    if name == "sigmoid_ranks":  # and eq. 11-12 on the values of the small integer types
      for array, result in zip(arrays[:3], got[:3]):
        want = np.stack([sigmoid_ranks_reference(row, 10.0) for row in np.asarray(array, np.float64)])
        np.testing.assert_allclose(result, want, rtol=1e-5)


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
    z = (valid - valid.mean()) / valid.std()  # population std, as numpy's default
    np.testing.assert_allclose(got[row, where[row]], sigmoid_ranks_reference(z, 3.0), rtol=1e-4)
    np.testing.assert_array_equal(got[row, ~where[row]], 0.0)


def zscores(x):
  """numpy float64 reference of utils.standardize on one list: (x - mean) / population std, 0 if constant."""
  x = np.asarray(x, np.float64)
  std = x.std()
  return np.zeros_like(x) if std == 0 else (x - x.mean()) / std


_standardize = jax.jit(utils.standardize)
_standardized_ranks = jax.jit(functools.partial(ranks.sigmoid_ranks, sharpness=10.0, standardize=True))


def test_sigmoid_ranks_standardized_are_scale_invariant_at_any_magnitude():
  """Issue 9, fault 3: an eps added to the variance dominated small scales; large ones overflowed."""
  scores = np.array([0.1, 0.3, 0.2, 0.25, 0.05], np.float32)
  want = sigmoid_ranks_reference(zscores(scores), 10.0)  # about [4, 1, 3, 2, 5]
  np.testing.assert_allclose(want, [4.0, 1.0, 3.0, 2.0, 5.0], atol=0.02)
  scales = np.array([1.0, 1e-4, 1e-30, 1e4, 1e30], np.float32)[:, None]
  constant = jnp.full((4,), 2.5)
  close = jnp.asarray([1.0, np.nextafter(np.float32(1.0), np.float32(2.0))], jnp.float32)

  @jax.jit
  def program(scaled, constant, close, lone):
    tie_grad = jax.grad(lambda s: jnp.sum(_standardized_ranks(s) * jnp.arange(4.0)))(constant)
    lone_ranks = ranks.sigmoid_ranks(lone, where=jnp.array([True, True, False]), standardize=True)
    return (_standardized_ranks(scaled), _standardized_ranks(constant), tie_grad, _standardized_ranks(close),
            lone_ranks)

  scaled, tied, tie_grad, close_ranks, lone = program(scores * scales, constant, close,
                                                      jnp.array([1.0, jnp.nan, 3.0]))
  for got, scale in zip(np.asarray(scaled), scales[:, 0]):  # one list per scale
    np.testing.assert_allclose(got, want, atol=2e-4, err_msg=f"scale {scale}")
  # Only an all-equal list takes the tie value (m + 1) / 2, with zero gradient; one ulp apart is not a tie.
  np.testing.assert_array_equal(tied, 2.5)
  np.testing.assert_array_equal(tie_grad, 0.0)
  np.testing.assert_allclose(close_ranks, sigmoid_ranks_reference([-1.0, 1.0], 10.0), rtol=1e-6)
  # One valid item: the tie value 1; masked items 0.
  np.testing.assert_array_equal(lone, [1.0, 0.0, 0.0])


@hypothesis.settings(deadline=None, max_examples=40, derandomize=True)
@hypothesis.given(scores=hnp.arrays(np.float64, (2, 6), elements=st.floats(-3, 3)),
                  log_scale=st.floats(-30, 30), relative_shift=st.floats(-50, 50))
def test_standardize_is_scale_and_shift_invariant(scores, log_scale, relative_shift):
  hypothesis.assume(np.all(scores.std(-1) > 0.1))
  scale = 10.0 ** log_scale
  moved = (scores * scale + relative_shift * scale).astype(np.float32)  # a shift of up to 50 std
  mask = np.ones(moved.shape, bool)
  want = np.stack([zscores(row) for row in moved.astype(np.float64)])  # of the rounded inputs
  np.testing.assert_allclose(_standardize(moved, mask), want, atol=1e-5 * (1 + abs(relative_shift)))
  # Scaling by a power of two is exact, so the z-scores are bit for bit the same.
  power = np.float32(2.0 ** (17 if log_scale < 0 else -17))
  np.testing.assert_array_equal(_standardize(moved * power, mask), _standardize(moved, mask))
  # The standardised sigmoid ranks follow (eq. 11-12 on the float64 z-scores).
  got = _standardized_ranks(moved)
  np.testing.assert_allclose(got, np.stack([sigmoid_ranks_reference(z, 10.0) for z in want]), atol=1e-3)


def test_standardize_masks_and_tiny_or_huge_lists():
  values = np.array([[3e-38, 5e-38, 4e-38, 7.0], [3e38, -3e38, 1e38, 0.0]], np.float32)
  mask = np.array([[True, True, True, False], [True, True, True, True]])
  got = np.asarray(_standardize(values, mask))
  np.testing.assert_allclose(got[0, :3], zscores(values[0, :3]), rtol=1e-5)
  assert got[0, 3] == 0.0
  np.testing.assert_allclose(got[1], zscores(values[1]), rtol=1e-5)


# Issue 29, item 3: a constant list standardises to exactly 0 with zero gradient, whatever its value and
# length. The rounded mean used to differ from the common value by an ulp, a residue scaled up to +-1
# (14.62 x 1000 in float32 gave 1, in float64 -1, with gradients of 1e5 and more).

_CONSTANT_ROWS, _CONSTANT_LENGTH = 6, 5000


@functools.lru_cache(maxsize=None)
def _constant_program(dtype_name: str):
  """One compilation per dtype: z-scores of ``[6, 5000]`` padded lists and the gradient of their sum."""
  weights = np.random.default_rng(0).normal(size=(_CONSTANT_ROWS, _CONSTANT_LENGTH))

  def program(scores, mask):
    z, grad = jax.value_and_grad(lambda s: jnp.sum(utils.standardize(s, mask) * weights.astype(s.dtype)))(
        scores)
    return utils.standardize(scores, mask), grad

  return jax.jit(program)


def _check_constant_lists(cases, dtype):
  scores = np.zeros((_CONSTANT_ROWS, _CONSTANT_LENGTH), dtype)
  mask = np.zeros(scores.shape, bool)
  for row, (value, length) in enumerate(cases):
    scores[row, :length] = value
    scores[row, length:] = -value  # padding with another value must not matter (it is masked)
    mask[row, :length] = True
  z, grad = _constant_program(np.dtype(dtype).name)(scores, mask)
  assert z.dtype == dtype
  np.testing.assert_array_equal(z, 0.0, err_msg=str(cases))
  np.testing.assert_array_equal(grad, 0.0, err_msg=str(cases))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_standardize_of_a_constant_list_is_zero_with_zero_gradient(dtype):
  with jax.enable_x64(dtype == np.float64):
    # The reported case, unpadded (the residue depends on the length and the summation order) ...
    constant = jnp.full(1000, 14.62, dtype)
    mask = jnp.ones(1000, bool)
    z, grad = jax.jit(jax.value_and_grad(lambda s: utils.standardize(s, mask)[0]))(constant)
    assert float(z) == 0.0
    np.testing.assert_array_equal(grad, 0.0)
    np.testing.assert_array_equal(jax.jit(utils.standardize)(constant, mask), 0.0)
    # ... and a property over values (any finite magnitude, either sign, subnormals) and lengths 1..5000.
    values = st.floats(allow_nan=False, allow_infinity=False, width=np.finfo(dtype).bits)
    cases = st.lists(st.tuples(values, st.integers(1, _CONSTANT_LENGTH)), min_size=1, max_size=_CONSTANT_ROWS)

    @hypothesis.settings(deadline=None, max_examples=25, derandomize=True)
    @hypothesis.example([(14.62, 1000), (0.1, 3), (-3e38, 4999), (1e-30, 5000), (1e6 + 0.1, 77), (7.0, 1)])
    @hypothesis.given(cases)
    def check(cases):
      _check_constant_lists(cases, dtype)

    check()


def test_standardize_one_ulp_apart_is_not_constant():
  """'Constant' means equal in the compute dtype: two values one ulp apart are standardised to -1, +1."""
  one = np.float32(14.62)
  close = np.array([one, np.nextafter(one, np.float32(20.0))] * 3, np.float32)
  np.testing.assert_array_equal(_standardize(close, np.ones(6, bool)), [-1.0, 1.0] * 3)


@pytest.mark.parametrize("rank_fn", [
    functools.partial(ranks.sigmoid_ranks, standardize=True),
    functools.partial(ranks.soft_ranks, standardize=True, regularization_strength=0.01),
    functools.partial(ranks.soft_ranks, standardize=True, regularization="kl", regularization_strength=0.01),
], ids=["sigmoid", "soft_l2", "soft_kl"])
def test_standardized_ranks_of_a_collapsed_output_are_tied_with_zero_gradient(rank_fn):
  """A model whose outputs collapse to one value gets the tie ranks (m + 1) / 2 and no gradient step."""
  lengths = np.array([1, 2, 7, 300, 1000])
  values = np.array([1e6 + 0.1, 0.1, -3e38, 1e-30, 14.62], np.float32)
  scores = np.repeat(values[:, None], 1000, axis=1)
  mask = np.arange(1000)[None, :] < lengths[:, None]
  weights = np.random.default_rng(1).normal(size=scores.shape).astype(np.float32)

  @jax.jit
  def program(s):
    return jax.value_and_grad(lambda x: jnp.sum(rank_fn(x, where=mask) * weights))(s)[1], rank_fn(s, where=mask)

  grad, got = program(scores)
  np.testing.assert_allclose(got, np.where(mask, (lengths[:, None] + 1) / 2, 0.0), rtol=1e-6)  # kl: rounding
  np.testing.assert_array_equal(grad, 0.0)


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
def test_soft_ranks_are_differentiable_in_the_regularization_strength(regularization):
  # (Gradients in the scores: test_contract.py.) The strength may be traced and differentiated.
  with jax.enable_x64(True):
    rng = np.random.default_rng(8)
    scores = jnp.asarray(distinct_scores(rng, (2, 9), gap=0.3), jnp.float64)
    where = jnp.asarray(rng.random((2, 9)) < 0.8)
    weights = jnp.asarray(rng.normal(size=(2, 9)))

    def loss(epsilon):
      r = ranks.soft_ranks(scores, where=where, regularization_strength=epsilon,
                           regularization=regularization)
      return jnp.sum(weights * r ** 2)

    # kl is smooth inside a partition, so the gradient's own gradient is exact too.
    check_grads(jax.jit(loss), (jnp.float64(0.7),), order=1 if regularization == "l2" else 2, modes=("rev",),
                eps=1e-6, atol=1e-5, rtol=1e-5)


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
