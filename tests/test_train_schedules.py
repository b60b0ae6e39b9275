"""Multi-task schedules: checked against loops written from IDE RankNet Algorithm 1 and the formulas."""

from __future__ import annotations

import hypothesis
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ranking_jax.train import schedules


def algorithm1_losses(num_units: int, frequency: int) -> list[str]:
  """IDE RankNet Algorithm 1, verbatim: for t = 1..T: loss = mse if t % f == 0 else rank."""
  chosen = []
  for t in range(1, num_units + 1):
    if t % frequency == 0:
      chosen.append("mse")
    else:
      chosen.append("rank")
  return chosen


@hypothesis.settings(max_examples=25, deadline=None, derandomize=True)
@hypothesis.given(frequency=st.integers(1, 5), steps_per_unit=st.integers(1, 4))
def test_alternating_follows_algorithm_1(frequency, steps_per_unit):
  schedule = jax.jit(schedules.alternating("rank", "mse", frequency=frequency, steps_per_unit=steps_per_unit))
  units = algorithm1_losses(4 * frequency, frequency)
  for step in range(len(units) * steps_per_unit):
    weights = schedule(jnp.int32(step))
    expected = units[step // steps_per_unit]
    assert float(weights[expected]) == 1.0
    assert float(weights["rank" if expected == "mse" else "mse"]) == 0.0


def test_alternating_paper_setting_two_rank_epochs_then_one_mse_epoch():
  schedule = schedules.alternating("rank", "mse", frequency=3, steps_per_unit=10)
  mse_epochs = [e for e in range(9) if float(schedule(jnp.int32(10 * e + 5))["mse"]) == 1.0]
  assert mse_epochs == [2, 5, 8]


def authors_losses(num_epochs: int, frequency: int) -> list[str]:
  """The authors' train.py loop, verbatim: for epoch in range(E): lamba = 0 (mse) if epoch % 3 == 0 else 1."""
  return ["mse" if epoch % frequency == 0 else "rank" for epoch in range(num_epochs)]


@pytest.mark.parametrize("num_epochs", [210, 30, 31])
def test_alternating_first_unit_0_is_the_authors_loop_and_210_epochs_end_on_rank(num_epochs):
  steps_per_epoch = 3
  schedule = jax.jit(schedules.alternating("rank", "mse", frequency=3, steps_per_unit=steps_per_epoch,
                                           first_unit=0))
  steps = jnp.arange(num_epochs * steps_per_epoch)
  mse = np.asarray(jax.vmap(lambda s: schedule(s)["mse"])(steps))
  expected = authors_losses(num_epochs, 3)
  assert [("mse" if w == 1.0 else "rank") for w in mse[::steps_per_epoch]] == expected
  assert np.all(mse.reshape(num_epochs, steps_per_epoch) == mse[::steps_per_epoch, None])  # whole epochs
  # The last epoch: rank for 210 and 30 epochs (the authors' setting), MSE for 31 (31 - 1 = 30 = 0 mod 3).
  assert expected[-1] == ("mse" if num_epochs == 31 else "rank")
  # Algorithm 1 (first_unit=1) over 210 epochs would end on an MSE epoch instead.
  assert algorithm1_losses(210, 3)[-1] == "mse"
  with pytest.raises(schedules.ConfigValueError, match="first_unit"):
    schedules.alternating("rank", "mse", frequency=3, first_unit=2)


def test_schedules_trace_once_over_all_steps():
  traces = []

  def count(step):
    traces.append(1)  # Python side effect: runs at trace time only
    weighting = schedules.as_weighting(
        schedules.alternating("rank", "mse", frequency=3, steps_per_unit=2), ["rank", "mse"])
    return weighting.combine(step, {"rank": jnp.float32(1.0), "mse": jnp.float32(2.0)}, {})[0]

  fn = jax.jit(count)
  totals = [float(fn(jnp.int32(s))) for s in range(12)]
  assert len(traces) == 1
  assert totals == [1.0 if (s // 2 + 1) % 3 else 2.0 for s in range(12)]


def test_weighted_is_eq5():
  lam = 0.7
  weighting = schedules.as_weighting(schedules.weighted({"rank": lam, "mse": 1 - lam}), ["rank", "mse"])
  total, weights = weighting.combine(jnp.int32(3), {"rank": jnp.float32(0.4), "mse": jnp.float32(2.0)}, {})
  assert float(total) == pytest.approx(lam * 0.4 + (1 - lam) * 2.0, rel=1e-6)
  assert float(weights["mse"]) == pytest.approx(0.3, rel=1e-6)


def test_piecewise_matches_a_loop():
  boundaries, sets = [3, 5], [{"a": 1.0}, {"a": 0.5, "b": 2.0}, {"b": 1.0}]
  schedule = jax.jit(schedules.piecewise(boundaries, sets))
  for step in range(8):
    index = sum(step >= b for b in boundaries)
    for name in ("a", "b"):
      assert float(schedule(jnp.int32(step))[name]) == sets[index].get(name, 0.0)


def test_uncertainty_matches_the_formula_and_its_gradient():
  with jax.enable_x64(True):
    weighting = schedules.uncertainty(["rank", "mse"])
    losses = {"rank": jnp.float64(0.3), "mse": jnp.float64(2.5)}
    params = {"rank": jnp.float64(0.2), "mse": jnp.float64(-0.4)}
    total, _ = weighting.combine(0, losses, params)
    expected = sum(0.5 * np.exp(-params[k]) * losses[k] + 0.5 * params[k] for k in losses)
    assert float(total) == pytest.approx(float(expected), rel=1e-12)
    grad = jax.grad(lambda p: weighting.combine(0, losses, p)[0])(params)
    eps = 1e-6
    for k in params:
      up = dict(params, **{k: params[k] + eps})
      down = dict(params, **{k: params[k] - eps})
      fd = (weighting.combine(0, losses, up)[0] - weighting.combine(0, losses, down)[0]) / (2 * eps)
      assert float(grad[k]) == pytest.approx(float(fd), rel=1e-6)
    # The optimum log-variance of a term is log(L_k): its gradient vanishes there.
    at_optimum = {k: jnp.log(v) for k, v in losses.items()}
    grad = jax.grad(lambda p: weighting.combine(0, losses, p)[0])(at_optimum)
    assert all(abs(float(g)) < 1e-12 for g in grad.values())


def test_unknown_and_missing_names_fail_clearly():
  weighting = schedules.as_weighting(schedules.weighted({"rnak": 1.0}), ["rank", "mse"])
  with pytest.raises(ValueError, match="rnak"):
    weighting.combine(0, {"rank": jnp.float32(1), "mse": jnp.float32(1)}, {})
  with pytest.raises(ValueError, match="frequency"):
    schedules.alternating("rank", "mse", frequency=0)
  with pytest.raises(ValueError, match="boundaries"):
    schedules.piecewise([1, 2], [{"a": 1.0}])


def _multitask_config(**overrides):
  config = ml_collections.ConfigDict(dict(name="weighted", weights={}, main="rank", auxiliary="mse",
                                          frequency=3, unit="epochs", init_log_variance=0.0))
  config.update(overrides)
  return config


def test_from_config_builds_each_schedule():
  names = ["rank", "mse"]
  losses = {"rank": jnp.float32(1.0), "mse": jnp.float32(4.0)}
  weighted = schedules.from_config(_multitask_config(weights={"rank": 0.7}), names, steps_per_epoch=5)
  assert float(weighted.combine(0, losses, {})[0]) == pytest.approx(0.7 + 4.0)
  alternating = schedules.from_config(_multitask_config(name="alternating"), names, steps_per_epoch=5)
  assert float(alternating.combine(jnp.int32(10), losses, {})[0]) == 4.0  # epoch 3 -> MSE
  assert float(alternating.combine(jnp.int32(9), losses, {})[0]) == 1.0
  learned = schedules.from_config(_multitask_config(name="uncertainty", init_log_variance=1.0), names,
                                  steps_per_epoch=5)
  assert set(learned.init_params()) == {"rank", "mse"}
  with pytest.raises(ValueError, match="Unknown config.multitask.name"):
    schedules.from_config(_multitask_config(name="alternate"), names, steps_per_epoch=5)
  with pytest.raises(ValueError, match="not a loss term"):
    schedules.from_config(_multitask_config(name="alternating", auxiliary="l1"), names, steps_per_epoch=5)
  with pytest.raises(ValueError, match="not loss terms"):
    schedules.from_config(_multitask_config(weights={"l1": 1.0}), names, steps_per_epoch=5)
