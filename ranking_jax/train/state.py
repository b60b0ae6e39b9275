"""The train state: parameters, batch statistics, optimizer state, step and RNG in one pytree."""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ranking_jax.models.heads import count_params  # pylint: disable=unused-import (re-exported)

Array = jax.Array


class TrainState(flax.struct.PyTreeNode):
  """Everything that changes during training; a pytree of arrays (checkpointed as a whole).

  Attributes:
    step: int32 scalar, the number of optimizer steps taken.
    params: ``{"model": <the model's "params" collection>, "loss_weights": <learned weighting params>}``.
    model_state: the model's other variable collections (e.g. ``{"batch_stats": ...}``), averaged
      across devices after every step.
    opt_state: the optax state of ``params``.
    rng: a raw ``uint32[2]`` PRNG key; the step's key is ``fold_in(rng, step)`` (then the device index),
      so randomness depends on the step only and a resumed run draws the same numbers.
  """

  step: Array
  params: Any
  model_state: Any
  opt_state: Any
  rng: Array


def create_train_state(model: nn.Module, tx: optax.GradientTransformation, example_inputs: Any,
                       rng: Array, loss_weight_params: Any = None,
                       initialize_variables: Optional[Callable[[Any], Any]] = None) -> TrainState:
  """Initialises the model on ``example_inputs`` (with ``train=False``) and the optimizer.

  Args:
    model: a Linen module called as ``model.apply(variables, inputs, train=bool)``.
    tx: the optimizer.
    example_inputs: inputs with the per-device batch shape (only shapes and dtypes matter).
    rng: raw PRNG key; split into the init key and the training key.
    loss_weight_params: trainable parameters of the loss weighting (``{}`` for fixed schedules).
    initialize_variables: optional ``variables -> variables`` applied to the freshly initialised model
      variables before the optimizer state is built (e.g. loading converted ImageNet weights).
  """
  init_rng, dropout_rng, train_rng = jax.random.split(rng, 3)
  init = jax.jit(lambda r, d: model.init({"params": r, "dropout": d}, example_inputs, train=False))
  if jax.default_backend() == "cpu":
    # Initialisation runs once; XLA:CPU's optimising passes over the initialisers' RNG code cost ~10x
    # more compile time (40 s vs 4 s for a small ResNet) than they could ever save at run time.
    init = init.lower(init_rng, dropout_rng).compile(compiler_options={"xla_backend_optimization_level": 0})
  variables = init(init_rng, dropout_rng)
  variables = flax.core.unfreeze(variables)
  if initialize_variables is not None:
    variables = flax.core.unfreeze(initialize_variables(variables))
  model_params = variables.pop("params", {})
  params = {"model": model_params, "loss_weights": loss_weight_params or {}}
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=variables,
                    opt_state=tx.init(params), rng=train_rng)


def fingerprint(tree: Any) -> str:
  """sha256 of a pytree's bytes, leaf paths and dtypes/shapes included; equal iff bitwise equal.

  >>> fingerprint({"w": np.zeros(2, np.float32)}) == fingerprint({"w": np.zeros(2, np.float32)})
  True
  >>> fingerprint({"w": np.zeros(2, np.float32)}) == fingerprint({"w": np.array([0.0, -0.0], np.float32)})
  False
  """
  digest = hashlib.sha256()
  leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(tree))
  for path, leaf in sorted(leaves, key=lambda kv: jax.tree_util.keystr(kv[0])):
    leaf = np.ascontiguousarray(np.asarray(leaf))
    digest.update(jax.tree_util.keystr(path).encode())
    digest.update(f"{leaf.dtype.str}{leaf.shape}".encode())
    digest.update(leaf.tobytes())
  return digest.hexdigest()
