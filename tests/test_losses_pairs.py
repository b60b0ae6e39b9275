"""Tests of the blockwise all-pairs machinery against plain numpy double loops."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ranking_jax.losses import pairs


def _hinge_pair_fn(row, col):
  return (jnp.maximum(0.0, 1.0 - (row["s"] - col["s"])) * (row["y"] > col["y"]),
          jnp.ones_like(row["s"] - col["s"]))


def _numpy_row_sums(s, y, mask, exclude_diagonal=True):
  """Row sums of the hinge and the pair count, by a double loop over the valid pairs."""
  s, y, mask = np.asarray(s, np.float64), np.asarray(y), np.asarray(mask)
  hinge = np.zeros(s.shape)
  count = np.zeros(s.shape)
  for index in np.ndindex(s.shape[:-1]):
    n = s.shape[-1]
    for i in range(n):
      for j in range(n):
        if not (mask[index][i] and mask[index][j]) or (exclude_diagonal and i == j):
          continue
        if y[index][i] > y[index][j]:
          hinge[index][i] += max(0.0, 1.0 - (s[index][i] - s[index][j]))
        count[index][i] += 1
  return hinge, count


@pytest.mark.parametrize("block_size", [None, 1, 4, 7, 50])
@pytest.mark.parametrize("exclude_diagonal", [True, False])
def test_row_sums_match_numpy_loop(block_size, exclude_diagonal):
  rng = np.random.default_rng(0)
  shape = (2, 3, 11)  # 11 is not divisible by 3, 4 or 7
  s = rng.normal(size=shape).astype(np.float32)
  y = rng.integers(0, 3, size=shape)
  mask = rng.random(shape) < 0.8
  hinge, count = pairs.pairwise_row_sums(_hinge_pair_fn, {"s": s, "y": y}, where=mask,
                                         exclude_diagonal=exclude_diagonal, block_size=block_size)
  expected_hinge, expected_count = _numpy_row_sums(s, y, mask, exclude_diagonal)
  assert hinge.shape == shape and count.shape == shape
  np.testing.assert_allclose(hinge, expected_hinge, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(count, expected_count)


@pytest.mark.parametrize("block_size", [2, 5, 13])
def test_blockwise_equals_unblocked_values_and_gradients(block_size):
  rng = np.random.default_rng(1)
  s = jnp.asarray(rng.normal(size=(4, 13)), jnp.float32)
  y = jnp.asarray(rng.normal(size=(4, 13)), jnp.float32)

  def total(s, block):
    fn = lambda r, c: jnp.tanh(r["s"] - c["s"]) * (r["y"] - c["y"])
    return jnp.sum(pairs.pairwise_sum(fn, {"s": s, "y": y}, block_size=block) ** 2)

  value_full, grad_full = jax.value_and_grad(total)(s, 13)
  value_block, grad_block = jax.value_and_grad(total)(s, block_size)
  np.testing.assert_allclose(value_block, value_full, rtol=1e-5)
  np.testing.assert_allclose(grad_block, grad_full, rtol=1e-4, atol=1e-5)


def test_pairwise_sum_matches_numpy_and_handles_1d_lists():
  s = np.array([0.3, -1.0, 2.0, 0.5, 0.0], np.float32)
  y = np.array([1, 0, 2, 2, 0])
  hinge, count = pairs.pairwise_sum(_hinge_pair_fn, {"s": s, "y": y}, block_size=2)
  expected_hinge, expected_count = _numpy_row_sums(s, y, np.ones(5, bool))
  assert hinge.shape == ()
  np.testing.assert_allclose(hinge, expected_hinge.sum(), rtol=1e-6)
  assert float(count) == expected_count.sum() == 20


def test_masked_nan_items_give_finite_values_and_zero_gradients():
  s = jnp.array([[0.5, jnp.nan, -0.2, jnp.inf, 1.0]])
  mask = jnp.isfinite(s)

  def total(s):
    fn = lambda r, c: jnp.log1p(jnp.exp(c - r))
    return jnp.sum(pairs.pairwise_sum(fn, s, where=jnp.isfinite(s), block_size=2))

  value, grad = jax.value_and_grad(total)(s)
  assert np.isfinite(value)
  assert np.all(np.isfinite(grad))
  np.testing.assert_array_equal(np.asarray(grad)[~np.asarray(mask)], 0.0)
  finite = np.array([0.5, -0.2, 1.0])
  expected = sum(np.log1p(np.exp(b - a)) for a in finite for b in finite) - 3 * np.log(2.0)
  np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_fully_masked_and_empty_lists():
  s = jnp.ones((2, 4))
  fn = lambda r, c: r * c
  out = pairs.pairwise_row_sums(fn, s, where=jnp.zeros((2, 4), bool), block_size=3)
  np.testing.assert_array_equal(out, 0.0)
  empty = pairs.pairwise_sum(fn, jnp.ones((3, 0)))
  assert empty.shape == (3,)
  np.testing.assert_array_equal(empty, 0.0)


def test_jit_and_vmap():
  rng = np.random.default_rng(2)
  s = jnp.asarray(rng.normal(size=(3, 9)), jnp.float32)
  fn = lambda r, c: jax.nn.relu(1.0 - r + c)
  batched = pairs.pairwise_sum(fn, s, block_size=4)
  mapped = jax.jit(jax.vmap(lambda x: pairs.pairwise_sum(fn, x, block_size=4)))(s)
  np.testing.assert_allclose(mapped, batched, rtol=1e-6)


def test_blocked_gradient_does_not_materialise_all_pairs():
  # Compile only (nothing runs): the temporaries of the blocked value-and-grad must stay far below
  # one [batch, n, n] float32 array (8 x 4096^2 x 4 bytes = 537 MB).
  batch, n = 8, 4096
  s = jax.ShapeDtypeStruct((batch, n), jnp.float32)
  fn = lambda r, c: jax.nn.hard_tanh(r - c) * jnp.sign(c - r)
  loss = lambda s: jnp.sum(pairs.pairwise_sum(fn, s))
  compiled = jax.jit(jax.value_and_grad(loss)).lower(s).compile()
  analysis = compiled.memory_analysis()
  if analysis is None:
    pytest.skip("memory_analysis is not available on this backend")
  assert analysis.temp_size_in_bytes < batch * n * n * 4 / 10


def test_auto_block_size():
  assert pairs.auto_block_size(100, 32) == 100  # small problems: one block, no scan, no padding
  for n, batch in [(10_000, 32), (3001, 7), (50_000, 1)]:
    block = pairs.auto_block_size(n, batch)
    assert 1 <= block < n
    assert batch * block * n <= 2 * pairs.DEFAULT_BLOCK_ELEMENTS
    num_blocks = -(-n // block)
    assert num_blocks * block - n < num_blocks  # less than one padding row per block


def test_bad_arguments():
  fn = lambda r, c: r - c
  with pytest.raises(ValueError, match="same shape"):
    pairs.pairwise_sum(lambda r, c: r["a"] - c["b"], {"a": jnp.ones(3), "b": jnp.ones(4)})
  with pytest.raises(ValueError, match="ndim >= 1"):
    pairs.pairwise_sum(fn, jnp.ones(()))
  with pytest.raises(ValueError, match="block_size"):
    pairs.pairwise_sum(fn, jnp.ones(5), block_size=0)
  with pytest.raises(TypeError, match="boolean"):
    pairs.pairwise_sum(fn, jnp.ones(5), where=jnp.ones(5))
  with pytest.raises(ValueError, match="at least one"):
    pairs.pairwise_sum(fn, {})
