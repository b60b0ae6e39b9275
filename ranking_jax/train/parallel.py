"""Data parallelism: the per-device train/eval steps and everything that knows about devices.

The steps are written pmap-style (per-device code with collectives over :data:`AXIS_NAME`) and launched
with :func:`jax.pmap`. This is the only module that uses ``pmap``, ``lax.pmean``/``all_gather`` or the
``[local_devices, per_device, ...]`` layout, so that moving to ``jax.shard_map`` means rewriting this file
only.

Per step, on each device:

1. ``outputs = model.apply(variables, batch["inputs"], train=True, mutable=[...])`` on the device's slice;
2. with ``loss_scope="global"`` the outputs and the non-input batch entries are ``all_gather``-ed so every
   loss term sees the whole global batch -- a ranking loss over a batch then means the same thing on 1 or
   N devices (PyTorch ``DataParallel`` semantics, used by the papers); with ``"device"`` each device
   computes the losses on its own slice (cheaper; identical for losses that are means of per-example
   or per-list terms);
3. ``total, weights = weighting.combine(step, {name: term(outputs, batch)}, params["loss_weights"])``;
4. gradients, batch statistics (the model's non-param collections) and metrics are ``lax.pmean``-ed.

With the global scope, every device computes the same loss and the transpose of ``all_gather`` sums the
cotangents of all devices, so each local gradient is N times its share; the ``pmean`` then yields exactly
the gradient of the global-batch loss.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ranking_jax.train import schedules as schedules_lib
from ranking_jax.train.state import TrainState
from ranking_jax.errors import ConfigValueError

Array = jax.Array
AXIS_NAME = "batch"
LOSS_SCOPES = ("global", "device")
ALL_FINITE = "all_finite"  # the step's finiteness flag in its metrics (checked by the trainer, not logged)

LossTerm = Callable[[Any, Mapping[str, Array]], Array]


class TraceCounter:
  """Counts how often a step function is traced (a Python side effect that runs at trace time only)."""

  def __init__(self):
    self.count = 0


def _mean_floating(tree: Any, axis_name: str) -> Any:
  return jax.tree_util.tree_map(
      lambda x: jax.lax.pmean(x, axis_name) if jnp.issubdtype(x.dtype, jnp.inexact) else x, tree)


def all_finite(*trees: Any) -> Array:
  """float32 1.0 if every floating-point leaf of ``trees`` is finite (no NaN or inf), else 0.0.

  >>> float(all_finite({"w": jnp.ones(3)}, jnp.float32(2.0))), float(all_finite({"w": jnp.array([1.0, jnp.nan])}))
  (1.0, 0.0)
  """
  flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(trees)
           if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return jnp.all(jnp.stack(flags)).astype(jnp.float32) if flags else jnp.ones((), jnp.float32)


def make_train_step(model: nn.Module, loss_terms: Mapping[str, LossTerm],
                    weighting: schedules_lib.LossWeighting, tx: optax.GradientTransformation,
                    learning_rate_fn: Callable[[Array], Array], *, loss_scope: str = "global",
                    axis_name: str = AXIS_NAME, counter: TraceCounter | None = None
                    ) -> Callable[[TrainState, Mapping[str, Array]], tuple[TrainState, dict[str, Array]]]:
  """The per-device train step ``(state, batch) -> (state, metrics)``; run it under :func:`pmap_train_step`.

  ``metrics`` holds ``loss`` (the combined loss), ``loss/<name>`` and ``weight/<name>`` per term,
  ``grad_norm`` and ``learning_rate``, all averaged over devices, and ``all_finite`` (:data:`ALL_FINITE`):
  1.0 if the loss, the gradients, the updated parameters and batch statistics are all finite on every
  device, else 0.0 (the trainer stops on 0.0; it is not logged).
  """
  if loss_scope not in LOSS_SCOPES:
    raise ConfigValueError(f"loss_scope must be one of {LOSS_SCOPES}, got {loss_scope!r}.")
  if not loss_terms:
    raise ValueError("The task needs at least one loss term.")
  loss_terms = dict(loss_terms)

  def train_step(state: TrainState, batch: Mapping[str, Array]):
    if counter is not None:
      counter.count += 1  # runs while tracing only: counts compilations of the step
    if "inputs" not in batch:
      raise ValueError(f"A training batch must hold the model inputs under 'inputs'; got keys {sorted(batch)}.")
    rng = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), jax.lax.axis_index(axis_name))
    targets = {k: v for k, v in batch.items() if k != "inputs"}
    if loss_scope == "global":
      targets = jax.lax.all_gather(targets, axis_name, tiled=True)
    mutable = sorted(state.model_state)

    def loss_fn(params):
      variables = {"params": params["model"], **state.model_state}
      if mutable:
        outputs, new_model_state = model.apply(variables, batch["inputs"], train=True, mutable=mutable,
                                               rngs={"dropout": rng})
      else:
        outputs = model.apply(variables, batch["inputs"], train=True, rngs={"dropout": rng})
        new_model_state = {}
      if loss_scope == "global":
        outputs = jax.lax.all_gather(outputs, axis_name, tiled=True)
      losses = {}
      for name, term in loss_terms.items():
        value = jnp.asarray(term(outputs, targets))
        if value.shape != ():
          raise ValueError(f"Loss term {name!r} must return a scalar, got shape {value.shape}.")
        losses[name] = value.astype(jnp.float32)
      total, weights = weighting.combine(state.step, losses, params["loss_weights"])
      return total, (losses, weights, new_model_state)

    (total, (losses, weights, new_model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    grads = jax.lax.pmean(grads, axis_name)
    new_model_state = _mean_floating(flax.core.unfreeze(new_model_state), axis_name)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": total, "grad_norm": optax.global_norm(grads),
               "learning_rate": jnp.asarray(learning_rate_fn(state.step), jnp.float32)}
    metrics.update({f"loss/{k}": v for k, v in losses.items()})
    metrics.update({f"weight/{k}": jnp.asarray(v, jnp.float32) for k, v in weights.items()})
    metrics = jax.lax.pmean(metrics, axis_name)
    # Losses count non-finite scores as masked, so a diverged model can show a loss of 0: check the state.
    metrics[ALL_FINITE] = jax.lax.pmin(all_finite(total, grads, params, new_model_state), axis_name)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              model_state={**state.model_state, **new_model_state})
    return new_state, metrics

  return train_step


def make_eval_step(model: nn.Module) -> Callable[[TrainState, Mapping[str, Array]], Any]:
  """The per-device eval step ``(state, batch) -> outputs`` (``train=False``, no collectives)."""

  def eval_step(state: TrainState, batch: Mapping[str, Array]):
    variables = {"params": state.params["model"], **state.model_state}
    return model.apply(variables, batch["inputs"], train=False)

  return eval_step


def pmap_train_step(train_step: Callable, axis_name: str = AXIS_NAME) -> Callable:
  """``jax.pmap`` of a per-device train step; the input state is donated."""
  return jax.pmap(train_step, axis_name=axis_name, donate_argnums=(0,))


def pmap_eval_step(eval_step: Callable, axis_name: str = AXIS_NAME) -> Callable:
  return jax.pmap(eval_step, axis_name=axis_name)


def replicate(tree: Any, axis_name: str = AXIS_NAME, devices: Sequence[jax.Device] | None = None) -> Any:
  """Copies a host pytree onto every local device (leading device axis).

  Goes through a ``pmap``-ed identity rather than ``flax.jax_utils.replicate`` so that the arrays carry
  exactly the sharding of the train step's outputs (a mesh over ``axis_name``): the step then sees the
  same input signature on its first call as on every later one and is compiled once.
  """
  n = len(devices) if devices is not None else jax.local_device_count()
  stacked = jax.tree_util.tree_map(lambda x: np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), tree)
  return jax.pmap(lambda x: x, axis_name=axis_name, devices=devices)(stacked)


def unreplicate(tree: Any) -> Any:
  """The first device's copy of a replicated pytree, fetched to host numpy arrays."""
  return jax.device_get(jax.tree_util.tree_map(lambda x: x[0], tree))


def shard(batch: Any) -> Any:
  """Reshapes a per-process batch ``[b, ...]`` to ``[local_devices, b / local_devices, ...]``."""
  n = jax.local_device_count()

  def reshape(x):
    x = np.asarray(x)
    if x.ndim == 0 or x.shape[0] % n:
      raise ConfigValueError(f"The per-process batch size must be a multiple of the {n} local devices; got an "
                       f"entry of shape {x.shape}.")
    return x.reshape((n, x.shape[0] // n) + x.shape[1:])

  return jax.tree_util.tree_map(reshape, batch)


def unshard(tree: Any) -> Any:
  """Inverse of :func:`shard` on device outputs: ``[devices, per_device, ...] -> [b, ...]`` on host."""
  return jax.tree_util.tree_map(lambda x: np.asarray(x).reshape((-1,) + x.shape[2:]), jax.device_get(tree))


def process_allgather(tree: Any) -> Any:
  """Concatenates a host pytree across processes along the leading axis (identity with one process)."""
  if jax.process_count() == 1:
    return tree
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return jax.tree_util.tree_map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
