"""Optimizers, learning-rate schedules and the epoch -> step plan, against numpy loops."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ranking_jax.train import config as config_lib
from ranking_jax.train import optim


def _optimizer_config(**overrides):
  config = ml_collections.ConfigDict(dict(
      name="sgd", learning_rate=0.1, momentum=0.9, nesterov=False, weight_decay=0.0, b1=0.9, b2=0.999,
      eps=1e-8, grad_clip_norm=None,
      schedule=dict(name="constant", boundaries_epochs=(), boundaries_steps=(), decay_factor=0.1,
                    every_epochs=None, every_steps=None, warmup_steps=0, final_fraction=0.0)))
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split(".")
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config


def _lrs(config, steps, steps_per_epoch=1, total_steps=100):
  lr = optim.learning_rate_schedule(config, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
  return [float(lr(s)) for s in steps]


def test_step_decay_divides_by_ten_at_the_given_epochs():
  # IDE RankNet: 1e-3, decayed by 10 at epochs 200 and 240.
  config = _optimizer_config(**{"learning_rate": 1e-3, "schedule.name": "step",
                                "schedule.boundaries_epochs": (200, 240)})
  steps = [0, 199 * 29, 200 * 29 - 1, 200 * 29, 240 * 29 - 1, 240 * 29, 300 * 29]
  expected = [1e-3 * 0.1 ** sum(s >= b * 29 for b in (200, 240)) for s in steps]
  np.testing.assert_allclose(_lrs(config, steps, steps_per_epoch=29), expected, rtol=1e-6)


def test_halving_every_n_epochs():
  # SoDeep: Adam, 1e-3 halved every 100 epochs.
  config = _optimizer_config(**{"name": "adam", "learning_rate": 1e-3, "schedule.name": "halving",
                                "schedule.every_epochs": 100.0, "schedule.decay_factor": 0.5})
  steps = [0, 299, 300, 599, 600, 1000]
  expected = [1e-3 * 0.5 ** (s // 300) for s in steps]
  np.testing.assert_allclose(_lrs(config, steps, steps_per_epoch=3), expected, rtol=1e-6)


def test_cosine_with_warmup_matches_the_formula():
  config = _optimizer_config(**{"schedule.name": "cosine", "schedule.warmup_steps": 10,
                                "schedule.final_fraction": 0.1})
  steps = list(range(0, 101, 5))

  def reference(s):
    if s < 10:
      return 0.1 * s / 10
    progress = (s - 10) / 90
    return 0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

  np.testing.assert_allclose(_lrs(config, steps, total_steps=100), [reference(s) for s in steps],
                             rtol=1e-5, atol=1e-7)


def test_sgd_momentum_weight_decay_matches_pytorch_style_loop():
  config = _optimizer_config(**{"weight_decay": 5e-4, "schedule.name": "step", "schedule.boundaries_steps": (3,)})
  tx, _ = optim.make_optimizer(config, steps_per_epoch=1, total_steps=6)
  rng = np.random.default_rng(0)
  w = rng.normal(size=4)
  grads = rng.normal(size=(6, 4))
  params = {"w": jnp.asarray(w, jnp.float32)}
  opt_state = tx.init(params)
  buf, ref = np.zeros(4), w.copy()
  for t in range(6):
    # torch.optim.SGD: g += wd * w; buf = m * buf + g; w -= lr * buf.
    lr = 0.1 if t < 3 else 0.01
    g = grads[t] + 5e-4 * ref
    buf = 0.9 * buf + g if t else g
    ref = ref - lr * buf
    updates, opt_state = tx.update({"w": jnp.asarray(grads[t], jnp.float32)}, opt_state, params)
    params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
  np.testing.assert_allclose(params["w"], ref, rtol=1e-5)


def test_adam_matches_a_numpy_loop_and_clipping_bounds_the_norm():
  config = _optimizer_config(name="adam", learning_rate=0.01, grad_clip_norm=1.0)
  tx, _ = optim.make_optimizer(config, steps_per_epoch=1, total_steps=5)
  rng = np.random.default_rng(1)
  grads = 10 * rng.normal(size=(5, 3))
  params = {"w": jnp.zeros(3)}
  opt_state = tx.init(params)
  m, v, ref = np.zeros(3), np.zeros(3), np.zeros(3)
  for t in range(1, 6):
    g = grads[t - 1] * min(1.0, 1.0 / np.linalg.norm(grads[t - 1]))
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    ref = ref - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    updates, opt_state = tx.update({"w": jnp.asarray(grads[t - 1], jnp.float32)}, opt_state, params)
    params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
  np.testing.assert_allclose(params["w"], ref, rtol=1e-4, atol=1e-7)


def test_weight_decay_mask_excludes_loss_weights():
  config = _optimizer_config(momentum=0.0, weight_decay=0.5)
  mask = lambda p: {"model": True, "loss_weights": False}
  tx, _ = optim.make_optimizer(config, steps_per_epoch=1, total_steps=1, weight_decay_mask=mask)
  params = {"model": jnp.ones(()), "loss_weights": jnp.ones(())}
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  assert float(updates["model"]) == pytest.approx(-0.05)
  assert float(updates["loss_weights"]) == 0.0


@pytest.mark.parametrize("overrides, match", [
    ({"name": "rmsprop"}, "Unknown optimizer.name"),
    ({"schedule.name": "poly"}, "Unknown optimizer.schedule.name"),
    ({"schedule.name": "halving"}, "every_epochs or every_steps"),
    ({"grad_clip_norm": -1.0}, "grad_clip_norm"),
])
def test_bad_optimizer_configs_fail_clearly(overrides, match):
  with pytest.raises(ValueError, match=match):
    optim.make_optimizer(_optimizer_config(**overrides), steps_per_epoch=1, total_steps=1)


def _plan_config(**overrides):
  config = ml_collections.ConfigDict(dict(
      batch_size=32, total_steps=None, total_epochs=None, log_every_steps=10, log_every_epochs=None,
      eval_every_steps=0, eval_every_epochs=None, checkpoint_every_steps=100, checkpoint_every_epochs=None))
  config.update(overrides)
  return config


def test_epochs_are_converted_once_with_the_dataset_size():
  plan = config_lib.plan_steps(_plan_config(total_epochs=280.0, eval_every_epochs=10.0, eval_every_steps=None,
                                            checkpoint_every_epochs=0.5, checkpoint_every_steps=None),
                               num_train_examples=5770)
  assert plan.steps_per_epoch == 5770 // 32
  assert plan.total_steps == 280 * 180
  assert plan.eval_every == 1800 and plan.checkpoint_every == 90 and plan.log_every == 10


def test_plan_errors():
  with pytest.raises(ValueError, match="total_steps or config.total_epochs"):
    config_lib.plan_steps(_plan_config())
  with pytest.raises(ValueError, match="dataset size"):
    config_lib.plan_steps(_plan_config(total_epochs=2.0))
  with pytest.raises(ValueError, match="not divisible by the 4 local devices"):
    config_lib.per_process_batch_size(18, 1, 4)
  with pytest.raises(ValueError, match="2 processes"):
    config_lib.per_process_batch_size(17, 2, 1)
