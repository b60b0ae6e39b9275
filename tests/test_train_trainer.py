"""The trainer in-process on the 4 fake CPU devices of the root conftest."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
import scipy.stats

from ranking_jax import train
from ranking_jax.train import checkpoint as checkpoint_lib
from ranking_jax.train import optim
from ranking_jax.train import parallel
from ranking_jax.train import schedules
from ranking_jax.train import state as state_lib
from ranking_jax.train import trainer

import testing_utils

tt = testing_utils.train_task_module()
pytestmark = pytest.mark.skipif(jax.local_device_count() != 4, reason="needs the 4 fake devices of conftest.py")


def _records(workdir, split="train"):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [r for r in map(json.loads, f) if r["split"] == split]


@pytest.fixture(scope="module")
def alternating_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("alternating"))
  config = tt.small_config()
  results = trainer.train_and_evaluate(config, workdir, tt.make_task)
  return config, workdir, results


def test_alternating_schedule_picks_the_right_loss_each_step(alternating_run):
  _, workdir, results = alternating_run
  records = _records(workdir)
  assert [r["step"] for r in records] == list(range(1, 13))
  for record in records:
    # The record of step k was computed by the k-th update (t = k in Algorithm 1, unit = steps, f = 3).
    use_mse = record["step"] % 3 == 0
    assert record["weight/mse"] == float(use_mse) and record["weight/rank"] == float(not use_mse)
    assert record["loss"] == pytest.approx(record["loss/mse"] if use_mse else record["loss/rank"])
  assert results["train_step_compilations"] == 1  # the schedule never recompiles the step


def test_results_json_checkpoint_and_eval(alternating_run):
  config, workdir, results = alternating_run
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    on_disk = json.load(f)
  assert on_disk["fingerprint"] == results["fingerprint"] and on_disk["step"] == 12
  assert on_disk["config"]["batch_size"] == 16
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  assert [r["step"] for r in _records(workdir, "validation")] == [6, 12]
  # The final checkpoint holds exactly the fingerprinted parameters.
  checkpointer = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
  assert checkpointer.all_steps() == [6, 9, 12]  # keep_checkpoints=3 of 3, 6, 9, 12
  task = tt.make_task(config)
  restored = trainer.load_state(config, workdir, task)
  assert state_lib.fingerprint(restored.params) == results["fingerprint"]
  # Eval metrics (padded, masked, gathered path) equal scipy on a plain host forward pass.
  data = {k: np.concatenate([b[k] for b in tt.make_eval_iterator()]) for k in ("inputs", "label")}
  variables = {"params": restored.params["model"], **restored.model_state}
  predictions = np.asarray(task.model.apply(variables, data["inputs"], train=False))
  assert results["eval"]["validation"]["num_examples"] == 37 == len(data["label"])
  tau = scipy.stats.kendalltau(predictions, data["label"]).statistic
  assert results["eval"]["validation"]["kendall_tau"] == pytest.approx(tau, abs=1e-6)
  assert results["eval"]["validation"]["mse"] == pytest.approx(np.mean((predictions - data["label"]) ** 2), rel=1e-5)


def _train(weighting, steps, devices, config=None):
  """Runs the per-device train step under pmap over `devices` on the task's global batches."""
  config = config or tt.small_config()
  task = tt.make_task(config)
  tx, lr = optim.make_optimizer(config.optimizer, steps_per_epoch=4, total_steps=steps)
  iterator = task.make_train_iterator(0, 0, 1)
  state = state_lib.create_train_state(task.model, tx, np.zeros((4, tt.NUM_FEATURES), np.float32),
                                       jax.random.PRNGKey(0), weighting.init_params())
  counter = parallel.TraceCounter()
  step_fn = jax.pmap(parallel.make_train_step(task.model, task.loss_terms, weighting, tx, lr, counter=counter),
                     axis_name=parallel.AXIS_NAME, devices=devices)
  n = len(devices)
  replicated = parallel.replicate(state, devices=devices)
  losses = []
  for _ in range(steps):
    batch = jax.tree_util.tree_map(lambda x: x.reshape((n, -1) + x.shape[1:]), next(iterator))
    replicated, metrics = step_fn(replicated, batch)
    losses.append(float(jax.block_until_ready(metrics["loss"])[0]))
  return np.asarray(losses), jax.device_get(jax.tree_util.tree_map(lambda x: x[0], replicated)), counter


def test_alternating_update_equals_training_each_selected_loss_alone():
  names = ["rank", "mse"]
  alternating = schedules.as_weighting(schedules.alternating("rank", "mse", frequency=3), names)
  _, final, _ = _train(alternating, 6, jax.devices())
  # Reference: a separate step function per loss, chosen on the host by Algorithm 1.
  config = tt.small_config()
  task = tt.make_task(config)
  tx, lr = optim.make_optimizer(config.optimizer, steps_per_epoch=4, total_steps=6)
  only = {k: schedules.as_weighting(schedules.weighted({k: 1.0}), names) for k in names}
  steps = {k: jax.pmap(parallel.make_train_step(task.model, task.loss_terms, w, tx, lr),
                       axis_name=parallel.AXIS_NAME) for k, w in only.items()}
  state = state_lib.create_train_state(task.model, tx, np.zeros((4, tt.NUM_FEATURES), np.float32),
                                       jax.random.PRNGKey(0), {})
  replicated = jax.tree_util.tree_map(lambda x: np.broadcast_to(np.asarray(x), (4,) + np.shape(x)), state)
  iterator = task.make_train_iterator(0, 0, 1)
  for t in range(1, 7):
    batch = jax.tree_util.tree_map(lambda x: x.reshape((4, -1) + x.shape[1:]), next(iterator))
    replicated, metrics = steps["mse" if t % 3 == 0 else "rank"](replicated, batch)
    jax.block_until_ready(metrics["loss"])
  reference = jax.device_get(jax.tree_util.tree_map(lambda x: x[0], replicated))
  for a, b in zip(jax.tree_util.tree_leaves(final.params), jax.tree_util.tree_leaves(reference.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_one_and_four_devices_give_the_same_loss_curve():
  # Global loss scope + BatchNorm synced over the pmap axis: the 4-device run is the 1-device run.
  weighting = schedules.as_weighting(schedules.weighted({"rank": 0.7, "mse": 0.3}), ["rank", "mse"])
  curve4, final4, counter = _train(weighting, 8, jax.devices())
  curve1, final1, _ = _train(weighting, 8, jax.devices()[:1])
  assert counter.count == 1
  np.testing.assert_allclose(curve4, curve1, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(final4), jax.tree_util.tree_leaves(final1)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  assert curve4[-1] < curve4[0]


def test_uncertainty_weights_are_learned_without_weight_decay(tmp_path):
  config = tt.small_config()
  config.multitask.name = "uncertainty"
  config.total_steps = 4
  config.optimizer.weight_decay = 1e-2
  results = trainer.train_and_evaluate(config, str(tmp_path), tt.make_task)
  restored = trainer.load_state(config, str(tmp_path), tt.make_task)
  log_variances = restored.params["loss_weights"]
  # Reference: SGD with momentum 0.9 (no weight decay) on s_k, with d/ds_k = 0.5 - 0.5 exp(-s_k) L_k
  # evaluated on the logged per-term losses.
  records = _records(str(tmp_path))
  for name in ("rank", "mse"):
    s, buf = 0.0, None
    for record in records:
      assert record[f"weight/{name}"] == pytest.approx(0.5 * np.exp(-s), rel=1e-5)
      grad = 0.5 - 0.5 * np.exp(-s) * record[f"loss/{name}"]
      buf = grad if buf is None else 0.9 * buf + grad
      s -= config.optimizer.learning_rate * buf
    assert float(log_variances[name]) == pytest.approx(s, rel=1e-4, abs=1e-6)
  assert results["train_metrics"]["weight/mse"] != 0.5


def test_wrong_batch_size_fails_clearly(tmp_path):
  config = tt.small_config()
  config.batch_size = 18
  with pytest.raises(ValueError, match="not divisible by the 4 local devices"):
    trainer.train_and_evaluate(config, str(tmp_path), tt.make_task)


def test_relaunching_a_finished_run_changes_nothing(alternating_run):
  config, workdir, results = alternating_run
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    before_results = f.read()
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    before_records = f.read()
  again = trainer.train_and_evaluate(config, workdir, tt.make_task)
  assert again.results["fingerprint"] == results["fingerprint"] and again.predictions == {}
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    assert f.read() == before_results
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    assert f.read() == before_records


def test_final_evaluation_is_not_appended_twice_when_results_are_missing(tmp_path):
  config = tt.small_config()
  config.total_steps = 3
  trainer.train_and_evaluate(config, str(tmp_path), tt.make_task)
  os.remove(os.path.join(tmp_path, "results.json"))  # killed after the final checkpoint, before results
  again = trainer.train_and_evaluate(config, str(tmp_path), tt.make_task)
  assert again.results["step"] == 3 and again.results["complete"]
  assert [r["step"] for r in _records(tmp_path, "validation")] == [3]
  assert [r["step"] for r in _records(tmp_path)] == [1, 2, 3]


def test_workdir_of_another_configuration_is_refused(alternating_run):
  _, workdir, _ = alternating_run
  config = tt.small_config()
  task = tt.make_task(config)
  task.model = tt.Scorer(hidden=32)  # other parameter shapes than the run in workdir
  with pytest.raises(trainer.WorkdirMismatchError, match="another configuration.*new --workdir"):
    trainer.train_and_evaluate(config, workdir, task)


def test_wall_time_budget_stops_early_and_says_so(tmp_path, capsys):
  config = tt.small_config()
  config.max_train_seconds = 1e-9
  result = trainer.train_and_evaluate(config, str(tmp_path), tt.make_task)
  assert result.results["step"] == 1 and not result.results["complete"]
  assert "max_train_seconds" in result.results["stopped_early"]
  assert "STOPPED EARLY" in capsys.readouterr().out
  # Relaunching without the budget finishes the run.
  config.max_train_seconds = None
  finished = trainer.train_and_evaluate(config, str(tmp_path), tt.make_task)
  assert finished.results["step"] == 12 and finished.results["complete"]


def test_both_units_of_a_duration_are_refused(tmp_path):
  config = tt.small_config()
  config.total_epochs = 2.0  # total_steps is 12 too
  with pytest.raises(ValueError, match="total_steps=12 and config.total_epochs=2.0 are both set"):
    trainer.train_and_evaluate(config, str(tmp_path), tt.make_task)


def test_validation_and_test_evaluators():
  calls = []
  evaluators = train.validation_and_test(lambda split: calls.append(split) or iter(()),
                                         {"validation": "v", "test": "t"}, metrics_fn=dict)
  assert evaluators["validation"].periodic and not evaluators["test"].periodic
  evaluators["test"].make_iterator()
  evaluators["validation"].make_iterator()
  assert calls == ["t", "v"]
