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


def test_a_diverged_run_stops_and_saves_nothing_non_finite(tmp_path):
  config = tt.small_config()
  config.optimizer.learning_rate = 1e30
  config.checkpoint_every_steps = 1
  with pytest.raises(FloatingPointError, match="diverged at step") as raised:
    trainer.train_and_evaluate(config, str(tmp_path), tt.make_task)
  bad_step = int(str(raised.value).split("diverged at step ")[1].split(":")[0])
  assert not os.path.exists(os.path.join(tmp_path, "results.json"))
  # Every checkpoint written holds finite numbers, and none is of the diverged step or later.
  checkpointer = checkpoint_lib.Checkpointer(os.path.join(tmp_path, "checkpoints"), async_save=False)
  steps = checkpointer.all_steps()
  assert all(s < bad_step for s in steps)
  for step in steps:
    restored = trainer.load_state(config, str(tmp_path), tt.make_task, step=step)
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(restored.params))
  # No train record of the diverged step or later (they would be NaN).
  assert all(r["step"] < bad_step for r in _records(tmp_path))


def test_the_step_flags_a_non_finite_state_even_when_the_loss_is_finite():
  """A loss that ignores non-finite scores (as the ranking losses do) reads 0 on a NaN model."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  config = tt.small_config()
  task = tt.make_task(config)
  masked = {"rank": lambda out, batch: jnp.sum(jnp.where(jnp.isfinite(out), out, 0.0)) * 0.0}
  tx, lr = optim.make_optimizer(config.optimizer, steps_per_epoch=4, total_steps=2)
  weighting = schedules.as_weighting(schedules.weighted({"rank": 1.0}), ["rank"])
  state = state_lib.create_train_state(task.model, tx, np.zeros((4, tt.NUM_FEATURES), np.float32),
                                       jax.random.PRNGKey(0), {})
  step_fn = parallel.pmap_train_step(parallel.make_train_step(task.model, masked, weighting, tx, lr))
  batch = parallel.shard(next(task.make_train_iterator(0, 0, 1)))
  _, metrics = step_fn(parallel.replicate(state), batch)
  assert np.all(np.asarray(metrics[parallel.ALL_FINITE]) == 1.0)
  poisoned = state.replace(params=jax.tree_util.tree_map(lambda x: np.full_like(x, np.nan), state.params))
  _, metrics = step_fn(parallel.replicate(poisoned), batch)
  assert np.all(np.asarray(metrics["loss"]) == 0.0)  # the loss alone cannot tell
  assert np.all(np.asarray(metrics[parallel.ALL_FINITE]) == 0.0)


def test_non_finite_eval_outputs_are_an_error_but_padding_is_not():
  def eval_step(state, batch):  # NaN on the padding rows only, or on a real row too when asked
    del state
    out = np.where(batch["mask"], 1.0, np.nan)
    return np.where(batch["poison"], np.nan, out)

  batches = [{"inputs": np.zeros((8, 1)), "poison": np.zeros(8, bool)},
             {"inputs": np.zeros((3, 1)), "poison": np.zeros(3, bool)}]  # padded to 8
  metrics_fn = lambda predictions, targets: {"n": float(len(predictions))}
  assert trainer.evaluate(eval_step, None, batches, metrics_fn).metrics == {"n": 11.0}
  batches[1]["poison"] = np.array([False, True, False])
  with pytest.raises(FloatingPointError, match="1 of 11 model outputs on the test split are NaN"):
    trainer.evaluate(eval_step, None, batches, metrics_fn, "test")


def _leaf_changed(value):
  """Another value of the same JSON kind (None becomes a number)."""
  if isinstance(value, bool):
    return not value
  if isinstance(value, (int, float)):
    return value * 2 + 1
  if isinstance(value, str):
    return value + "_other"
  if isinstance(value, list):
    return value + [1]
  if isinstance(value, dict):  # an empty group
    return {"added": 1.0}
  return 1


def _set(tree, dotted, value):
  *parents, leaf = dotted.split(".")
  for parent in parents:
    tree = tree[parent]
  tree[leaf] = value


def test_every_config_field_is_identity_unless_a_relaunch_may_change_it(tmp_path):
  """Property over every field of an experiment config: a changed field is refused (naming it) unless it
  is one of trainer.RELAUNCH_MAY_CHANGE."""
  import copy  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, str(tt.REPO))
  from configs import image_difficulty  # pylint: disable=g-import-not-at-top
  recorded = image_difficulty.get_config("kendall").to_dict()
  trainer._check_workdir(str(tmp_path), "signature", recorded, True)  # pylint: disable=protected-access
  trainer.check_workdir_config(str(tmp_path), copy.deepcopy(recorded))  # the same config is accepted
  fields = trainer._flatten(json.loads(json.dumps(recorded)))  # pylint: disable=protected-access
  assert len(fields) > 40 and set(trainer.RELAUNCH_MAY_CHANGE) & set(fields)
  for key, value in fields.items():
    changed = copy.deepcopy(recorded)
    _set(changed, key, _leaf_changed(value))
    if key in trainer.RELAUNCH_MAY_CHANGE:
      trainer.check_workdir_config(str(tmp_path), changed)
    else:
      with pytest.raises(trainer.WorkdirMismatchError, match=f"config fields differ: {key} = "):
        trainer.check_workdir_config(str(tmp_path), changed)
  # A field added or removed (another experiment's config) is refused too.
  with pytest.raises(trainer.WorkdirMismatchError, match="extra = 1 here, absent there"):
    trainer.check_workdir_config(str(tmp_path), {**recorded, "extra": 1})
  # Under the cosine schedule the step budget is the schedule's horizon: identity.
  cosine = copy.deepcopy(recorded)
  cosine["optimizer"]["schedule"]["name"] = "cosine"
  trainer._check_workdir(str(tmp_path / "cosine"), "signature", cosine, True)  # pylint: disable=protected-access
  cosine["total_epochs"] = 30.0
  with pytest.raises(trainer.WorkdirMismatchError, match="total_epochs = 30.0 here, 15.0 there"):
    trainer.check_workdir_config(str(tmp_path / "cosine"), cosine)


def test_another_configuration_is_refused_before_the_task_is_built(alternating_run):
  config, workdir, _ = alternating_run
  other = tt.small_config()
  other.optimizer.learning_rate = 0.01
  def make_task(_):
    raise AssertionError("the task (its data) was built before the workdir check")
  with pytest.raises(trainer.WorkdirMismatchError, match=r"optimizer.learning_rate = 0.01 here, 0.05 there"):
    trainer.train_and_evaluate(other, workdir, make_task)
  # A field a relaunch may change is accepted: the finished run is returned unchanged.
  same = tt.small_config()
  same.eval_every_steps, same.keep_checkpoints = 4, 5
  assert trainer.train_and_evaluate(same, workdir, tt.make_task).results["step"] == 12
  del config


def test_run_json_of_an_earlier_version_is_checked_through_its_recorded_config(tmp_path):
  config = tt.small_config()
  with open(os.path.join(tmp_path, "run.json"), "w", encoding="utf-8") as f:
    json.dump({"shape_signature": "x", "variant": None, "config": config.to_dict()}, f)
  trainer.check_workdir_config(str(tmp_path), config)
  config.seed = 7
  with pytest.raises(trainer.WorkdirMismatchError, match="seed = 7 here, 0 there"):
    trainer.check_workdir_config(str(tmp_path), config)


def test_a_checkpoint_past_a_shorter_budget_is_refused_and_results_name_the_task(tmp_path):
  config = tt.small_config()
  config.total_steps = 3
  finished = trainer.train_and_evaluate(config, str(tmp_path), tt.make_task)
  assert finished.results["task"] == tt.make_task.__module__  # tables use it to keep experiments apart
  config.total_steps = 2  # the budget may change on relaunch, but a step-3 run is no 2-step run
  with pytest.raises(trainer.WorkdirMismatchError, match="step 3, past this config's 2 steps"):
    trainer.train_and_evaluate(config, str(tmp_path), tt.make_task)
