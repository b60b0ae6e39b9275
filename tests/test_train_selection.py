"""Best-checkpoint selection (``config.selection``): the rule alone, and in the trainer on the tiny MLP task."""

from __future__ import annotations

import json
import math
import os

import jax
import ml_collections
import pytest

from ranking_jax.errors import ConfigValueError
from ranking_jax.train import selection
from ranking_jax.train import trainer

import testing_utils

tt = testing_utils.train_task_module()


def _reference_best(history, metric, mode, constraint_metric=None, bound=None):
  """The rule written as a plain loop: best finite value among rows with row[c] <= bound, earliest on ties."""
  best = None
  for step, row in history:
    value = row[metric]
    if value != value or (constraint_metric and not row[constraint_metric] <= bound):
      continue
    if best is None or (value > best[1] if mode == "max" else value < best[1]):
      best = (step, value)
  return best


def test_selector_matches_a_loop_with_ties_nans_and_constraints():
  history = [(1, {"tau": 0.1, "mse": 0.2}), (2, {"tau": 0.4, "mse": 0.5}), (3, {"tau": float("nan"), "mse": 0.1}),
             (4, {"tau": 0.3, "mse": 0.23}), (5, {"tau": 0.3, "mse": 0.1}), (6, {"tau": 0.35, "mse": float("nan")}),
             (7, {"tau": 0.25, "mse": 0.235})]
  for mode in ("max", "min"):
    for bound in (0.235, 0.3, 1.0, 0.05):
      selector = selection.Selector(selection.SelectionRule(
          "validation", "tau", mode, selection.parse_constraint(f"mse <= {bound}")))
      for step, row in history:
        selector.offer(step, row)
      expected = _reference_best(history, "tau", mode, "mse", bound)
      assert (selector.best_step, selector.best_value) == (expected if expected else (None, None)), (mode, bound)
  # max tau under mse <= 0.235: step 4 (0.3), not the tie at step 5 nor the excluded step 2.
  selector = selection.Selector(selection.SelectionRule("validation", "tau", "max",
                                                        selection.parse_constraint("mse<=0.235")))
  for step, row in history:
    selector.offer(step, row)
  assert selector.best_step == 4


def test_no_step_satisfies_the_constraint_is_a_documented_result():
  selector = selection.Selector(selection.SelectionRule("validation", "tau", "max",
                                                        selection.parse_constraint("mse <= 0.1")))
  assert not selector.offer(1, {"tau": 0.5, "mse": 3.0})
  assert not selector.offer(2, {"tau": float("nan"), "mse": float("nan")})
  summary = selector.summary()
  assert summary["step"] is None and summary["value"] is None and summary["eval"] is None
  assert summary["candidates"] == 2 and "no evaluated step (of 2) satisfied validation mse <= 0.1" in summary["note"]
  json.dumps(summary, allow_nan=False)  # strict JSON: no NaN anywhere


@pytest.mark.parametrize("text", ["mse < ", "mse == 0.2", "0.2 >= mse", "mse <= nan", "mse <= abc"])
def test_bad_constraints_raise(text):
  with pytest.raises(ConfigValueError, match="constraint"):
    selection.parse_constraint(text)


def test_config_errors():
  config = ml_collections.ConfigDict({"selection": {"metric": "tau", "mode": "best", "constraint": ""}})
  with pytest.raises(ConfigValueError, match="mode"):
    selection.from_config(config)
  assert selection.from_config(ml_collections.ConfigDict({"selection": {"metric": ""}})) is None
  assert selection.from_config(ml_collections.ConfigDict({})) is None
  rule = selection.from_config(ml_collections.ConfigDict(
      {"selection": {"metric": "tau", "mode": "min", "constraint": "loss > -1e3", "split": "val"}}))
  assert rule == selection.SelectionRule("val", "tau", "min", selection.Constraint("loss", ">", -1000.0))
  with pytest.raises(ConfigValueError, match="does not report"):
    selection.Selector(rule).offer(1, {"tau": 0.1})


def _records(workdir, split):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [r for r in map(json.loads, f) if r["split"] == split]


@pytest.mark.skipif(jax.local_device_count() != 4, reason="needs the 4 fake devices of conftest.py")
def test_trainer_records_the_selected_step_beside_the_final_one(tmp_path):
  config = tt.small_config()
  config.eval_every_steps = 2
  config.checkpoint_every_steps = 0
  config.selection = ml_collections.ConfigDict(
      {"split": "validation", "metric": "kendall_tau", "mode": "max", "constraint": "mse <= 1e9"})
  # First: which step had the best validation tau, from the recorded curve (mse <= 1e9 always holds).
  result = trainer.train_and_evaluate(config, str(tmp_path / "a"), tt.make_task)
  curve = [(r["step"], r) for r in _records(str(tmp_path / "a"), "validation")]
  assert [s for s, _ in curve] == [2, 4, 6, 8, 10, 12]
  expected_step, expected_tau = _reference_best(curve, "kendall_tau", "max")
  selected = result["selected"]
  assert selected["step"] == expected_step and selected["value"] == pytest.approx(expected_tau)
  # The selected step's state was kept: re-evaluating it reproduces that step's validation metrics.
  for key in ("kendall_tau", "mse"):
    assert selected["eval"]["validation"][key] == pytest.approx(dict(curve)[expected_step][key], rel=1e-5)
  assert result["eval"]["validation"]["kendall_tau"] == pytest.approx(dict(curve)[12]["kendall_tau"])
  if expected_step != 12:
    assert result.selected_predictions["validation"].metrics["kendall_tau"] == pytest.approx(expected_tau, rel=1e-5)
  with open(tmp_path / "a" / "results.json", encoding="utf-8") as f:
    assert json.load(f)["selected"]["step"] == expected_step

  # Second: a constraint no step satisfies -> step None, eval None, the final figures untouched.
  config.selection.constraint = "mse <= -1"
  result = trainer.train_and_evaluate(config, str(tmp_path / "b"), tt.make_task)
  assert result["selected"]["step"] is None and result["selected"]["eval"] is None
  assert result["selected"]["candidates"] == 6 and "no evaluated step (of 6)" in result["selected"]["note"]
  assert result.selected_predictions == {} and math.isfinite(result["eval"]["validation"]["mse"])


def test_selection_split_must_be_a_periodic_evaluator(tmp_path):
  config = tt.small_config()
  config.selection = ml_collections.ConfigDict({"split": "test", "metric": "kendall_tau", "mode": "max",
                                                "constraint": ""})
  with pytest.raises(ConfigValueError, match="periodic evaluator"):
    trainer.train_and_evaluate(config, str(tmp_path), tt.make_task)
