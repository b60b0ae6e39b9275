"""soft_ranks(standardize=True): a regularisation strength in standard deviations (scale-free)."""

import functools

import hypothesis

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from ranking_jax import losses
from ranking_jax import ranks


@settings(max_examples=15, deadline=None, derandomize=True)
@given(scale=st.floats(1e-4, 1e4), shift=st.floats(-1e3, 1e3))
def test_standardized_soft_ranks_are_invariant_to_scale_and_shift(scale, shift):
  # Only inputs that float32 can hold: a shift far above the scaled gaps (0.05 x scale) rounds the gaps
  # away in the input itself (e.g. 1e3 + 1e-4 x 0.05), before any ranking happens.
  hypothesis.assume(abs(shift) <= 100.0 * scale)
  x = np.array([0.1, 0.3, 0.2, 0.25, 0.05, -0.4], np.float32)
  base = ranks.soft_ranks(jnp.asarray(x), standardize=True, regularization_strength=0.1)
  moved = ranks.soft_ranks(jnp.asarray(np.float32(scale) * x + np.float32(shift)), standardize=True,
                           regularization_strength=0.1)
  np.testing.assert_allclose(moved, base, atol=2e-3)


def test_quick_start_spearman_loss_is_close_to_the_exact_one_minus_rho():
  x = jax.random.normal(jax.random.key(0), (1000,))
  y = x + jax.random.normal(jax.random.key(1), (1000,))
  soft = functools.partial(ranks.soft_ranks, standardize=True, regularization_strength=1e-3)
  value = float(losses.spearman_loss(x[None], y[None], rank_fn=soft))
  assert value == pytest.approx(1.0 - scipy.stats.spearmanr(x, y).statistic, abs=2e-3)
  # The raw default strength (1.0 in score units) ties nearly every item of this list.
  raw = ranks.soft_ranks(x)
  assert float(raw.max() - raw.min()) < 10.0


def test_masked_and_all_equal_lists():
  out = ranks.soft_ranks(jnp.array([1.0, 2.0, jnp.nan, 3.0]), standardize=True, regularization_strength=0.01)
  np.testing.assert_allclose(out, [3.0, 2.0, 0.0, 1.0], atol=1e-4)
  np.testing.assert_allclose(ranks.soft_ranks(jnp.full(3, 2.0), standardize=True), [2.0, 2.0, 2.0])
