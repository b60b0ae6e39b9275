"""Trained sorters as frozen rank functions, and the pretrained sorters shipped with the package.

:class:`SorterRankFn` turns a sorter module and its trained variables into a
:class:`ranking_jax.types.RankFn`: ``rank_fn(scores[..., n], *, where=None) -> ranks[..., n]``, 1-based,
rank 1 = highest, masked items 0. Its parameters are constants (no gradient reaches them) and BatchNorm
runs on its stored statistics, so using a sorter inside a loss never changes the sorter.

``load_pretrained(name)`` reads ``ranking_jax/sorters/pretrained/<name>.msgpack`` and its ``.json``
metadata (written by ``python -m experiments.sorter ... --export_pretrained=<name>``); the weights' SHA-256
is checked, and an unknown name or missing file raises instead of returning an untrained sorter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Mapping, Optional

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp

from ranking_jax import utils
from ranking_jax.sorters import models

Array = jax.Array

PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity, so jax.jit(rank_fn) works
class SorterRankFn:
  """A trained sorter as a frozen, jittable ``rank_fn`` (see :class:`ranking_jax.types.RankFn`).

  Attributes:
    module: the sorter (e.g. :class:`ranking_jax.sorters.models.LSTMSorter`).
    variables: its trained variables (``{"params": ..., "batch_stats": ...}``).
    max_length: the longest list it serves (the training length ``d_max``).
    metadata: free-form description (training command, measured L1, ...).

  Lists lie on the last axis with any leading axes; scores of any real dtype are computed, and ranks
  returned, in float32 (float64 for float64 scores). Non-finite scores count as masked; a zero-size
  list or batch gives an empty result. Lists longer than ``max_length`` (or, for fixed-length sorters,
  of any other length) raise a ValueError. Sorters that standardise their inputs (the default) give the
  same ranks for any positive scale and any shift of a list's scores.

  Ties follow the contract of every rank function (README, "Input conventions"), also for the
  position-dependent LSTM and CNN: tied valid scores share the mean of the network's ranks over their
  tie group, and an all-equal list of ``m`` valid items (``m = 1`` included: a lone item ranks 1) gets
  ``(m + 1) / 2`` for each item with zero gradient.

  >>> import jax, jax.numpy as jnp
  >>> from ranking_jax.sorters import models
  >>> module = models.PairwiseSorter()
  >>> x = jnp.zeros((1, 5)); w = jnp.ones((1, 5), bool)
  >>> rank_fn = SorterRankFn(module, module.init(jax.random.key(0), x, w), max_length=5)
  >>> rank_fn(jnp.array([0.3, 2.0, -1.0]), where=jnp.array([True, True, False])).shape
  (3,)
  """
  module: nn.Module
  variables: Any = dataclasses.field(repr=False)
  max_length: int = 0
  metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __call__(self, scores: Array, *, where: Optional[Array] = None) -> Array:
    scores = jnp.asarray(scores)
    utils.check_rank_at_least("scores", scores, 1)
    n = scores.shape[-1]
    fixed = models.fixed_length(self.module)
    if fixed is not None and n != fixed:
      raise ValueError(f"This sorter serves lists of length exactly {fixed}, got shape {scores.shape}.")
    if n > self.max_length:
      raise ValueError(f"This sorter serves lists of length <= {self.max_length}, got shape "
                       f"{scores.shape}.")
    mask = utils.valid_mask(scores, where)
    # Ranks follow the rank-function dtype rule: float32, or float64 for float64 scores.
    dtype = utils.float_dtype(scores.dtype)
    if scores.size == 0:
      return jnp.zeros(scores.shape, dtype)
    flat = utils.sanitize(utils.as_float(scores), mask).reshape(-1, n)
    flat_mask = mask.reshape(-1, n)
    # Frozen: constants for autodiff, and BatchNorm on its running statistics (train=False).
    variables = jax.lax.stop_gradient(self.variables)
    normalised = self.module.apply(variables, flat, flat_mask, train=False)
    count = jnp.sum(flat_mask, axis=-1, keepdims=True).astype(dtype)
    ranks = jnp.where(flat_mask, normalised * count, 0.0).astype(dtype)
    return _share_ties(ranks, flat, flat_mask, count).reshape(scores.shape)


def _share_ties(ranks: Array, scores: Array, mask: Array, count: Array) -> Array:
  """The rank contract on ties, which a position-dependent network (LSTM, CNN) does not honour by itself.

  Items with equal valid scores share the mean of the network's ranks over their tie group (a permutation
  of tied items cannot change the result, and the ranks' sum stays the network's); a list whose valid
  scores are all equal (one valid item included) gets the exact tie value ``(m + 1) / 2``, as every rank
  function does, with zero gradient. ``[rows, n]`` arrays; O(n^2) comparisons per list (n <= max_length).
  """
  same = jax.lax.stop_gradient((scores[:, :, None] == scores[:, None, :]) & mask[:, :, None]
                               & mask[:, None, :])
  group_size = jnp.sum(same, axis=-1).astype(ranks.dtype)
  # A sum over the group rather than a matrix product: exact for untied items, whatever the matmul precision.
  shared = jnp.sum(jnp.where(same, ranks[:, None, :], 0.0), axis=-1) / jnp.maximum(group_size, 1.0)
  all_equal = jnp.all(~mask | (group_size == count), axis=-1, keepdims=True)
  tied = jnp.broadcast_to((count + 1.0) / 2.0, ranks.shape)
  return jnp.where(mask, jnp.where(all_equal, tied, shared), 0.0)


def _metadata_path(name: str, directory: str) -> str:
  return os.path.join(directory, f"{name}.json")


def save_pretrained(name: str, module_name: str, module_kwargs: Mapping[str, Any], variables: Any,
                    max_length: int, metadata: Mapping[str, Any],
                    directory: Optional[str] = None) -> str:
  """Writes ``<name>.msgpack`` (weights) and ``<name>.json`` (architecture, checksum, metadata)."""
  directory = directory or PRETRAINED_DIR
  os.makedirs(directory, exist_ok=True)
  payload = flax.serialization.to_bytes(jax.device_get(variables))
  with open(os.path.join(directory, f"{name}.msgpack"), "wb") as f:
    f.write(payload)
  description = {
      "architecture": module_name,
      "module_kwargs": dict(module_kwargs),
      "max_length": int(max_length),
      "sha256": hashlib.sha256(payload).hexdigest(),
      **dict(metadata),
  }
  with open(_metadata_path(name, directory), "w") as f:
    json.dump(description, f, indent=2, sort_keys=True)
  return os.path.join(directory, f"{name}.msgpack")


def available_pretrained(directory: Optional[str] = None) -> list[str]:
  """Names of the shipped pretrained sorters (each usable with :func:`load_pretrained`)."""
  directory = directory or PRETRAINED_DIR
  if not os.path.isdir(directory):
    return []
  return sorted(f[:-5] for f in os.listdir(directory)
                if f.endswith(".json") and os.path.exists(os.path.join(directory, f[:-5] + ".msgpack")))


def pretrained_metadata(name: str, directory: Optional[str] = None) -> dict[str, Any]:
  """The JSON description of a pretrained sorter (architecture, training command, measured figures)."""
  directory = directory or PRETRAINED_DIR
  if name not in available_pretrained(directory):
    raise ValueError(f"Unknown pretrained sorter {name!r}; available: {available_pretrained(directory)}.")
  with open(_metadata_path(name, directory)) as f:
    return json.load(f)


def load_pretrained(name: str, directory: Optional[str] = None) -> SorterRankFn:
  """Loads a shipped sorter as a frozen, jittable ``rank_fn(scores[..., n], *, where=None)``.

  Raises ValueError for an unknown name, a checksum mismatch or weights that do not fit the stored
  architecture (never returns a randomly initialised sorter).
  """
  directory = directory or PRETRAINED_DIR
  meta = pretrained_metadata(name, directory)
  with open(os.path.join(directory, f"{name}.msgpack"), "rb") as f:
    payload = f.read()
  if hashlib.sha256(payload).hexdigest() != meta["sha256"]:
    raise ValueError(f"Pretrained sorter {name!r}: weights do not match the recorded SHA-256.")
  module = models.build_sorter(meta["architecture"], **meta["module_kwargs"])
  length = meta["max_length"]
  # Shapes only (no compilation, no random weights that could leak out).
  template = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, length)),
                            jnp.ones((1, length), bool))
  # Collections without variables (e.g. an empty "batch_stats") may be stored or not.
  raw = {k: v for k, v in flax.serialization.msgpack_restore(payload).items() if v}
  template = {k: v for k, v in template.items() if v}
  expected = jax.tree.map(lambda x: tuple(x.shape), flax.serialization.to_state_dict(template))
  got = jax.tree.map(lambda x: tuple(x.shape), raw)
  if expected != got:
    raise ValueError(f"Pretrained sorter {name!r}: stored weights do not fit {meta['architecture']} "
                     f"with {meta['module_kwargs']}.")
  variables = flax.serialization.from_state_dict(template, raw)
  variables = jax.tree.map(jnp.asarray, variables)
  return SorterRankFn(module, variables, max_length=length, metadata=meta)
