"""Tests of the SoDeep synthetic mAP task (Figure 6), its configs, and smoke runs on the shared trainer."""

from __future__ import annotations

import json
import pathlib
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.metrics

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from configs import sodeep_synthetic_ap as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax import ranks  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.projects.sodeep import sodeep_synthetic_ap as task_lib  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_every_variant_config_follows_the_protocol():
  assert set(config_lib.VARIANTS) == set(config_lib.LEARNING_RATES)
  for variant in config_lib.VARIANTS:
    config = config_lib.get_config(f"{variant},seed=2")
    assert config.seed == 2 and config.data.seed == 0  # the same teacher and split for every seed
    assert (config.data.num_points, config.data.num_train) == (20000, 10000)
    assert len(config.data.teacher_hidden_sizes) == 4 and len(config.model.kwargs.hidden_sizes) == 4
    assert config.batch_size <= 100 and config.loss_scope == "global"
    assert config.optimizer.name == "adam" and config.total_epochs > 0
  assert config_lib.get_config("map_lstm").loss.rank_fn == "lstm"
  assert config_lib.get_config("map_handcrafted").loss.sharpness == 10.0
  assert config_lib.get_config("hinge_ap,lr=0.05").optimizer.learning_rate == 0.05
  with pytest.raises(ValueError, match="variant"):
    config_lib.get_config("map_cnn")


def test_make_task_rejects_long_lists_for_the_lstm_sorter_and_device_scope():
  splits = task_lib.make_splits(config_lib.get_config("map_lstm,smoke").data)
  config = config_lib.get_config("map_lstm,smoke")
  config.batch_size = 120
  with pytest.raises(ValueError, match="100"):
    task_lib.make_task(config, splits)
  config = config_lib.get_config("hinge_ap,smoke")
  config.loss_scope = "device"
  with pytest.raises(ValueError, match="global"):
    task_lib.make_task(config, splits)


def test_ap_metric_and_loss_terms_match_references():
  rng = np.random.default_rng(0)
  labels = (rng.random(50) < 0.2).astype(np.float32)
  labels[:2] = [1, 0]
  scores = np.round(rng.normal(size=50) + labels, 1)  # ties
  assert task_lib.ap_metrics(scores, {"label": labels})["ap"] == pytest.approx(
      sklearn.metrics.average_precision_score(labels, scores), abs=1e-12)
  assert np.isnan(task_lib.ap_metrics(np.array([np.nan, 1.0]), {"label": np.array([1.0, 0.0])})["ap"])
  ce = task_lib.make_loss_terms(config_lib.get_config("cross_entropy").loss)["cross_entropy"]
  probabilities = 1 / (1 + np.exp(-scores))
  assert float(ce(jnp.asarray(scores), {"label": jnp.asarray(labels)})) == pytest.approx(
      sklearn.metrics.log_loss(labels, probabilities), rel=1e-4)
  # eq. 7 with exact ranks is 1 - AUC; the handcrafted sorter at a huge sharpness approaches it.
  loss_config = config_lib.get_config("map_handcrafted").loss
  loss_config.sharpness = 1e4
  mapl = task_lib.make_loss_terms(loss_config)["map"]
  distinct = rng.normal(size=50) + labels
  assert float(mapl(jnp.asarray(distinct), {"label": jnp.asarray(labels)})) == pytest.approx(
      1 - sklearn.metrics.roc_auc_score(labels, distinct), abs=1e-3)
  with pytest.raises(ValueError, match="rank function"):
    task_lib.make_rank_fn("cnn")
  soft = task_lib.make_rank_fn("soft_ranks", regularization_strength=1e-3)
  np.testing.assert_allclose(soft(jnp.array([0.1, 3.0, 1.0])), ranks.hard_ranks(jnp.array([0.1, 3.0, 1.0])))


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
  """Four steps of three loss families (pointwise, structured hinge, sorter-based mAP with the LSTM)."""
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  out = {}
  for variant in ("cross_entropy", "hinge_ap", "map_lstm"):
    config = config_lib.get_config(f"{variant},smoke")
    config.async_checkpointing = False
    workdir = tmp_path_factory.mktemp(variant)
    out[variant] = (train.train_and_evaluate(config, str(workdir), task_lib.make_task(config)), workdir)
  return out


@pytest.mark.parametrize("variant", ["cross_entropy", "hinge_ap", "map_lstm"])
def test_smoke_run_trains_evaluates_and_reports(smoke_runs, variant):
  result, workdir = smoke_runs[variant]
  assert result.results["step"] == 4 and result.results["train_metrics"][f"loss/{config_lib.VARIANT_LOSSES[variant][0]}"] >= 0
  assert set(result.results["eval"]) == {"train_points", "test"}
  assert 0 < result.results["eval"]["test"]["ap"] <= 1 and result.results["eval"]["test"]["num_examples"] == 80
  report = result.results["report"]
  assert report["variant"] == variant and report["curve_steps"] == [2, 4]
  assert report["curve_test_ap"][-1] == pytest.approx(result.results["eval"]["test"]["ap"])
  assert (workdir / "figure6.png").read_bytes()[:4] == b"\x89PNG"
  assert variant in (workdir / "results.md").read_text()


def test_summary_table_and_plot_aggregate_runs(smoke_runs, tmp_path):
  runs = [{"report": {"variant": "a", "test_ap": 0.8, "train_ap": 0.9, "seed": 0}},
          {"report": {"variant": "a", "test_ap": 0.9, "train_ap": 0.95, "seed": 1}},
          {"report": {"variant": "b", "test_ap": 0.95, "train_ap": 0.97, "seed": 0}}]
  lines = task_lib.summary_table(runs).splitlines()
  assert lines[2].startswith("| b | 0.9500 (1 seed) |") and "0.8500 ± 0.0707 (2 seeds)" in lines[3]
  _, workdir = smoke_runs["hinge_ap"]
  steps, values = task_lib.read_curve(str(workdir))
  assert steps.tolist() == [2, 4] and np.all((values > 0) & (values <= 1))
  path = tmp_path / "fig.png"
  task_lib.plot_ap_curves({"hinge": [(steps, values), (steps, values)]}, str(path), steps_per_epoch=3)
  assert path.stat().st_size > 1000
