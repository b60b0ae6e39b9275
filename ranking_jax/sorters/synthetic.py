"""Seeded, jittable synthetic score vectors and their rank targets for training SoDeep sorters.

SoDeep: a Sorting Deep net to learn ranking loss surrogates (Engilberge et al., CVPR 2019), §3.1.2:
a sorter is trained on pairs ``(y, rk(y))`` drawn on the fly. Two mixtures are provided, selected by
name (the ``mixture`` field of ``configs/sorter.py``):

``"paper"`` -- the four families of the paper's text, one chosen uniformly per vector:
  0. uniform on :math:`[-1, 1]`;
  1. normal :math:`\\mathcal{N}(0, 1)`;
  2. evenly spaced numbers in a uniformly drawn sub-range :math:`[a, b] \\subset [-1, 1]`, in ascending,
     descending or shuffled order (one third each; the text does not say which order);
  3. a random mixture of the previous three: each element independently takes its value from family
     0, 1 or 2 with per-vector proportions drawn from a flat Dirichlet distribution.

``"authors"`` -- the ten equiprobable generators of the authors' released code (``dataset.py``), which is
what their Table 1 was measured on:
  0, 1, 7. uniform on :math:`[-1, 1]` (three generators, so 30 %);
  2. normal :math:`\\mathcal{N}(0, 1)`;
  3. the ascending-in-index run ``a + (b - a) i / d`` with :math:`a, b \\sim U[0, 1]` (so increasing or
     decreasing);
  4. the same run, shuffled;
  5, 6. ``k`` uniform then ``d - k`` normal values, :math:`k \\sim U\\{1..d\\}` (20 %);
  8. a shuffled run of ``k`` evenly spaced values in ``[a, b]`` followed by ``d - k`` uniform values;
  9. the fixed vector ``arange(-1, 1, 2 / d)``.

Targets follow the paper's L1 protocol: the normalised rank ``rk(y)_i / d`` with rank 1 for the largest
value (so the largest element's target is ``1 / d``). With variable lengths (``min_length < length``) each
row has ``n`` valid items in its first ``n`` positions and targets ``rk / n``; padding is masked.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax import ranks as ranks_lib

Array = jax.Array

MIXTURES = ("paper", "authors")
# Number of generators in each mixture (all equiprobable).
NUM_GENERATORS = {"paper": 4, "authors": 10}


def _random_positions(key: Array, length: int, n: Array) -> Array:
  """A uniform random permutation of ``0..n-1`` on the first ``n`` positions (later positions >= n)."""
  keys = jax.random.uniform(key, (length,))
  keys = jnp.where(jnp.arange(length) < n, keys, 2.0 + jnp.arange(length))
  return jnp.argsort(jnp.argsort(keys)).astype(jnp.float32)


def _authors_row(key: Array, n: Array, length: int, generator: Array) -> Array:
  keys = jax.random.split(key, 9)
  index = jnp.arange(length, dtype=jnp.float32)
  nf = n.astype(jnp.float32)
  generator = jnp.where(generator < 0, jax.random.randint(keys[0], (), 0, 10), generator)
  uniform = jax.random.uniform(keys[1], (length,), minval=-1.0, maxval=1.0)
  normal = jax.random.normal(keys[2], (length,))
  a, b = jax.random.uniform(keys[3], (2,))
  run = a + (b - a) * index / nf
  shuffled_run = a + (b - a) * _random_positions(keys[4], length, n) / nf
  split = jax.random.randint(keys[5], (), 1, n + 1)  # k in 1..n inclusive
  splitf = split.astype(jnp.float32)
  head = index < splitf
  short_run = a + (b - a) * _random_positions(keys[6], length, split) / splitf
  candidates = jnp.stack([
      uniform,  # 0
      uniform,  # 1
      normal,  # 2
      run,  # 3
      shuffled_run,  # 4
      jnp.where(head, uniform, normal),  # 5
      jnp.where(head, uniform, normal),  # 6
      uniform,  # 7: k uniform then d - k uniform is uniform
      jnp.where(head, short_run, uniform),  # 8
      -1.0 + 2.0 * index / nf,  # 9
  ])
  return candidates[generator]


def _paper_row(key: Array, n: Array, length: int, generator: Array) -> Array:
  keys = jax.random.split(key, 8)
  index = jnp.arange(length, dtype=jnp.float32)
  nf = n.astype(jnp.float32)
  generator = jnp.where(generator < 0, jax.random.randint(keys[0], (), 0, 4), generator)
  uniform = jax.random.uniform(keys[1], (length,), minval=-1.0, maxval=1.0)
  normal = jax.random.normal(keys[2], (length,))
  lo, hi = jnp.sort(jax.random.uniform(keys[3], (2,), minval=-1.0, maxval=1.0))
  step = (hi - lo) / jnp.maximum(nf - 1.0, 1.0)
  order = jax.random.randint(keys[4], (), 0, 3)
  positions = jnp.stack([index, nf - 1.0 - index, _random_positions(keys[5], length, n)])[order]
  spaced = lo + step * positions
  proportions = jax.random.dirichlet(keys[6], jnp.ones(3))
  family = jax.random.categorical(keys[7], jnp.log(proportions), shape=(length,))
  mixed = jnp.stack([uniform, normal, spaced])[family, jnp.arange(length)]
  return jnp.stack([uniform, normal, spaced, mixed])[generator]


def sample_scores(key: Array, batch_size: int, length: int, *, mixture: str = "authors",
                  min_length: Optional[int] = None, generator: Optional[int] = None
                  ) -> tuple[Array, Array]:
  """Draws ``batch_size`` synthetic score vectors of (maximum) length ``length``.

  Args:
    key: a ``jax.random`` key; the output is a deterministic function of it.
    batch_size: number of vectors.
    length: list length ``d`` (the maximum length when ``min_length`` is given).
    mixture: ``"paper"`` or ``"authors"`` (see the module docstring).
    min_length: if given, each row has ``n ~ U{min_length..length}`` valid items in its first ``n``
      positions; the rest is zero padding with ``where`` False.
    generator: restrict to one generator index of the mixture (as the authors' ``-d`` option).

  Returns:
    ``(scores [batch_size, length] float32, where [batch_size, length] bool)``.

  >>> import jax
  >>> scores, where = sample_scores(jax.random.key(0), 4, 100)
  >>> scores.shape, bool(where.all())
  ((4, 100), True)
  """
  if mixture not in MIXTURES:
    raise ValueError(f"Unknown mixture {mixture!r}; expected one of {MIXTURES}.")
  if length < 1:
    raise ValueError(f"`length` must be >= 1, got {length}.")
  if min_length is not None and not 1 <= min_length <= length:
    raise ValueError(f"`min_length` must lie in [1, {length}], got {min_length}.")
  if generator is not None and not 0 <= generator < NUM_GENERATORS[mixture]:
    raise ValueError(f"`generator` must lie in [0, {NUM_GENERATORS[mixture]}) for mixture {mixture!r}, "
                     f"got {generator}.")
  generator = jnp.asarray(-1 if generator is None else generator, jnp.int32)
  return _sample_scores(key, batch_size, length, mixture, min_length, generator)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _sample_scores(key: Array, batch_size: int, length: int, mixture: str, min_length: Optional[int],
                   generator: Array) -> tuple[Array, Array]:
  """``generator`` < 0 draws a generator per row; it is traced, so one compilation serves them all."""
  # Jitted as a whole: eager dispatch of the vmapped generators costs seconds per call.
  length_key, row_key = jax.random.split(key)
  if min_length is None or min_length == length:
    n = jnp.full((batch_size,), length, jnp.int32)
  else:
    n = jax.random.randint(length_key, (batch_size,), min_length, length + 1)
  row_fn = _authors_row if mixture == "authors" else _paper_row
  scores = jax.vmap(lambda k, m: row_fn(k, m, length, generator))(jax.random.split(row_key, batch_size), n)
  where = jnp.arange(length)[None, :] < n[:, None]
  scores = jnp.where(where, scores, 0.0).astype(jnp.float32)
  return scores, where


def target_ranks(scores: Array, where: Optional[Array] = None) -> Array:
  """Normalised ranks ``rk(y) / n``: 1-based, rank 1 = largest, divided by the number of valid items.

  Masked items get 0.

  >>> import jax.numpy as jnp
  >>> target_ranks(jnp.array([0.5, -1.0, 2.0, 0.0]))
  Array([0.5 , 1.  , 0.25, 0.75], dtype=float32)
  """
  scores = jnp.asarray(scores)
  ranks = ranks_lib.hard_ranks(scores, where=where)
  n = jnp.sum(ranks > 0, axis=-1, keepdims=True).astype(ranks.dtype)
  return jnp.where(ranks > 0, ranks / jnp.maximum(n, 1.0), 0.0)


def sample_batch(key: Array, batch_size: int, length: int, *, mixture: str = "authors",
                 min_length: Optional[int] = None) -> dict[str, Array]:
  """``{"scores", "where", "targets"}`` for one training step (see :func:`sample_scores`)."""
  scores, where = sample_scores(key, batch_size, length, mixture=mixture, min_length=min_length)
  return {"scores": scores, "where": where, "targets": target_ranks(scores, where)}


def test_set(seed: int, size: int = 10_000, length: int = 100, *, mixture: str = "authors",
             chunk: int = 1000) -> tuple[np.ndarray, np.ndarray]:
  """A fixed, seeded evaluation set ``(scores [size, length], targets [size, length])`` as numpy arrays.

  The set depends only on ``(seed, size, length, mixture)`` (it is drawn in chunks of ``chunk`` rows
  from ``jax.random.fold_in(key(seed), chunk_index)``), never on the training run.
  """
  sampler = _test_set_sampler(chunk, length, mixture)
  base = jax.random.key(seed)
  scores, targets = [], []
  for start in range(0, size, chunk):
    batch = sampler(jax.random.fold_in(base, start // chunk))
    scores.append(np.asarray(batch["scores"]))
    targets.append(np.asarray(batch["targets"]))
  return np.concatenate(scores)[:size], np.concatenate(targets)[:size]


@functools.lru_cache(maxsize=16)
def _test_set_sampler(chunk: int, length: int, mixture: str):
  """One compiled sampler per shape, shared by every call of :func:`test_set`."""
  return jax.jit(lambda k: sample_batch(k, chunk, length, mixture=mixture))


test_set.__test__ = False  # a data helper, not a pytest test (when this file is passed to pytest)
