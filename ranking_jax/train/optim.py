"""Optimizers and learning-rate schedules built from ``config.optimizer`` through optax.

``config.optimizer`` fields (defaults in ``configs/base.py``):

* ``name``: ``"sgd"`` (with ``momentum``, ``nesterov``), ``"adam"`` (``b1``, ``b2``, ``eps``) or
  ``"adamw"`` (decoupled weight decay);
* ``learning_rate``: the base rate;
* ``weight_decay``: for ``sgd``/``adam`` the coupled L2 term ``g + wd * w`` of PyTorch's ``SGD``/``Adam``
  (what "5e-4 weight decay" means in the papers); for ``adamw`` the decoupled decay;
* ``grad_clip_norm``: clip the gradient to this global norm (None: no clipping);
* ``schedule.name``: ``"constant"``, ``"step"`` (multiply by ``decay_factor`` at each of
  ``boundaries_epochs`` or ``boundaries_steps``: IDE RankNet's ÷10), ``"halving"`` (multiply by
  ``decay_factor`` every ``every_epochs`` / ``every_steps``: SoDeep's halving with ``decay_factor=0.5``)
  or ``"cosine"`` (linear warm-up over ``warmup_steps``, then cosine decay to
  ``final_fraction * learning_rate`` at the last step).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import optax

from ranking_jax.train import config as config_lib
from ranking_jax.errors import ConfigValueError

Array = jax.Array


def _epochs_or_steps(config: Any, stem: str, steps_per_epoch: int) -> Any:
  """``<stem>_steps``, or ``<stem>_epochs`` converted to steps; refuses a config that sets both."""
  is_set = lambda v: v is not None and (not isinstance(v, (tuple, list)) or len(v) > 0)
  epochs, steps = config.get(f"{stem}_epochs", None), config.get(f"{stem}_steps", None)
  if is_set(epochs) and is_set(steps):
    raise ConfigValueError(f"optimizer.schedule.{stem}_epochs={epochs} and {stem}_steps={steps} are both set; "
                     "give one.")
  if is_set(epochs):
    if isinstance(epochs, (tuple, list)):
      return [config_lib.epochs_to_steps(e, steps_per_epoch) for e in epochs]
    return config_lib.epochs_to_steps(epochs, steps_per_epoch)
  return steps


def learning_rate_schedule(config: Any, *, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  """The learning rate as a function of the step, from ``config`` (= ``config.optimizer``).

  >>> import ml_collections
  >>> cfg = ml_collections.ConfigDict(dict(learning_rate=1e-3, schedule=dict(
  ...     name="step", boundaries_epochs=(2, 3), decay_factor=0.1)))
  >>> lr = learning_rate_schedule(cfg, steps_per_epoch=10, total_steps=40)
  >>> [float(lr(s)) for s in (0, 19, 20, 29, 30)]
  [0.001, 0.001, 0.0001, 0.0001, 1e-05]
  """
  base = float(config.learning_rate)
  schedule = config.get("schedule", None)
  name = schedule.name if schedule is not None else "constant"
  if name == "constant":
    return optax.constant_schedule(base)
  if name == "step":
    boundaries = _epochs_or_steps(schedule, "boundaries", steps_per_epoch) or []
    if list(boundaries) != sorted(boundaries):
      raise ConfigValueError(f"Learning-rate boundaries must be increasing, got {list(boundaries)}.")
    factor = float(schedule.decay_factor)
    # piecewise_constant_schedule multiplies scales of repeated boundaries; a dict would merge them.
    scales: dict[int, float] = {}
    for b in boundaries:
      scales[int(b)] = scales.get(int(b), 1.0) * factor
    return optax.piecewise_constant_schedule(base, scales)
  if name == "halving":
    every = _epochs_or_steps(schedule, "every", steps_per_epoch)
    if not every or every < 1:
      raise ConfigValueError("schedule 'halving' needs optimizer.schedule.every_epochs or every_steps >= 1, got "
                       f"{every!r}.")
    return optax.exponential_decay(base, transition_steps=int(every), decay_rate=float(schedule.decay_factor),
                                   staircase=True)
  if name == "cosine":
    warmup = int(schedule.get("warmup_steps", 0) or 0)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0 if warmup else base, peak_value=base, warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1), end_value=base * float(schedule.get("final_fraction", 0.0)))
  raise ConfigValueError(f"Unknown optimizer.schedule.name {name!r}; expected 'constant', 'step', 'halving' or "
                   "'cosine'.")


def make_optimizer(config: Any, *, steps_per_epoch: int, total_steps: int,
                   weight_decay_mask: Optional[Any] = None
                   ) -> tuple[optax.GradientTransformation, Callable[[Array], Array]]:
  """Returns ``(tx, learning_rate_fn)`` for ``config`` (= ``config.optimizer``).

  Args:
    config: the optimizer config (see the module docstring).
    steps_per_epoch: used to convert epoch boundaries into steps.
    total_steps: the length of training (for ``cosine``).
    weight_decay_mask: pytree of booleans (or a callable returning one) selecting the parameters that
      are decayed; the trainer passes one that excludes the learned loss weights.

  >>> import ml_collections, jax.numpy as jnp
  >>> cfg = ml_collections.ConfigDict(dict(name="sgd", learning_rate=0.1, momentum=0.0, nesterov=False,
  ...     weight_decay=0.0, grad_clip_norm=None, schedule=dict(name="constant")))
  >>> tx, lr = make_optimizer(cfg, steps_per_epoch=1, total_steps=1)
  >>> params = {"w": jnp.ones(2)}
  >>> updates, _ = tx.update({"w": jnp.array([1.0, -2.0])}, tx.init(params), params)
  >>> updates["w"]
  Array([-0.1,  0.2], dtype=float32)
  """
  lr = learning_rate_schedule(config, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
  name = config.name
  weight_decay = float(config.get("weight_decay", 0.0) or 0.0)
  parts = []
  clip = config.get("grad_clip_norm", None)
  if clip is not None:
    if clip <= 0:
      raise ConfigValueError(f"optimizer.grad_clip_norm must be positive or None, got {clip}.")
    parts.append(optax.clip_by_global_norm(float(clip)))
  if name in ("sgd", "adam") and weight_decay:
    parts.append(optax.add_decayed_weights(weight_decay, mask=weight_decay_mask))
  if name == "sgd":
    momentum = float(config.get("momentum", 0.0) or 0.0)
    parts.append(optax.sgd(lr, momentum=momentum or None, nesterov=bool(config.get("nesterov", False))))
  elif name == "adam":
    parts.append(optax.adam(lr, b1=float(config.b1), b2=float(config.b2), eps=float(config.eps)))
  elif name == "adamw":
    parts.append(optax.adamw(lr, b1=float(config.b1), b2=float(config.b2), eps=float(config.eps),
                             weight_decay=weight_decay, mask=weight_decay_mask))
  else:
    raise ConfigValueError(f"Unknown optimizer.name {name!r}; expected 'sgd', 'adam' or 'adamw'.")
  return optax.chain(*parts), lr
