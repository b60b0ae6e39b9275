"""Tests of SoDeep's mAP task (Table 4): configs, labels, loss and metric references, VOC 2007, smoke."""

from __future__ import annotations

import json
import pathlib
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.metrics
import tensorflow_datasets as tfds

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from configs import sodeep_map as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.data import scenes  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.data.errors import DataNotFoundError  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.projects.sodeep import sodeep_map as task_lib  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_variants_configs_and_paper_rows():
  for variant in config_lib.VARIANTS:
    config = config_lib.get_config(variant)
    assert config.batch_size <= 100 and config.loss_scope == "global"  # the shipped sorter's length
    assert config.get_ref("total_epochs").get() == 12.0
    smoke = config_lib.get_config(variant + ",smoke,seed=2")
    assert smoke.total_steps == 2 and smoke.seed == 2 and smoke.batch_size % 4 == 0
  assert config_lib.get_config("soft_margin").loss.rank_fn == ""
  assert dict(config_lib.get_config("soft_margin").multitask.weights) == {"soft_margin": 1.0}
  lstm = config_lib.get_config("soft_margin_map_lstm")
  assert lstm.loss.rank_fn == "lstm_h64_d100" and dict(lstm.multitask.weights) == {"soft_margin": 1.0,
                                                                                   "map": 1.0}
  assert config_lib.get_config("soft_margin_map_soft_ranks").loss.rank_fn == "soft_ranks"
  voc = config_lib.get_config("soft_margin,voc2007")
  assert voc.model.kwargs.backbone == "resnet101" and voc.model.kwargs.num_classes == 20
  assert voc.data.name == "voc2007_classes" and voc.model.kwargs.maps == 8
  assert task_lib.PAPER_RESULTS["soft_margin"][0] == 93.2
  assert task_lib.PAPER_RESULTS["soft_margin_map_lstm"][0] == 94.0
  with pytest.raises(ValueError, match="unknown variant"):
    config_lib.get_config("soft_margin+map")


def test_scene_kinds_merge_the_duplicate_classes():
  matrix, names = task_lib.scene_kind_matrix()
  pairs = list(zip(scenes.CLASS_SHAPE, scenes.CLASS_COLOUR))
  assert len(names) == len(set(pairs)) == 16
  for a in range(20):
    for b in range(20):  # same kind iff same shape and colour
      assert (matrix[a].argmax() == matrix[b].argmax()) == (pairs[a] == pairs[b])
  assert sorted(set(names)) == sorted(set(scenes.CLASS_NAMES))
  labels = np.zeros((2, 20), np.float32)
  labels[0, [0, 16]] = 1.0  # the same kind twice
  labels[1, 19] = 1.0
  out = task_lib.to_trainer_batch({"image": np.zeros((2, 4, 4, 3)), "labels": labels})
  assert out["labels"][0].tolist() == [1.0] + [0.0] * 15
  assert out["labels"][1].nonzero()[0].tolist() == [3]


def test_soft_margin_loss_matches_the_formula():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(5, 7)) * 3
  labels = (rng.random((5, 7)) < 0.4).astype(np.float64)
  p = 1.0 / (1.0 + np.exp(-logits))
  expected = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
  got = float(task_lib.multilabel_soft_margin_loss(jnp.asarray(logits), jnp.asarray(labels)))
  assert got == pytest.approx(expected, rel=1e-5)


def test_map_term_is_eq7_on_the_transposed_scores():
  from ranking_jax import ranks  # pylint: disable=g-import-not-at-top
  logits = np.array([[2.0, -1.0], [1.0, 0.5], [-1.0, 3.0], [0.0, 0.0]])
  labels = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], np.float32)
  term = task_lib.make_loss_terms(ranks.hard_ranks)["map"]
  # Class 0: positives ranked 1 and 4 of 4 -> 2 (pos, neg) pairs misordered of 4; class 1: 0 of 4.
  assert float(term(jnp.asarray(logits), {"labels": jnp.asarray(labels)})) == pytest.approx((2 / 4 + 0) / 2)
  assert set(task_lib.make_loss_terms(None)) == {"soft_margin"}


def test_map_metrics_match_sklearn_with_difficult_images_left_out():
  rng = np.random.default_rng(1)
  scores = rng.normal(size=(30, 4))
  labels = (rng.random((30, 4)) < 0.3).astype(np.float32)
  labels[:, 3] = 0.0  # a class without positives is skipped
  difficult = np.zeros_like(labels)
  difficult[[0, 5, 9], 1] = 1.0
  out = task_lib.map_metrics(scores, {"labels": labels, "difficult": difficult})
  expected = []
  for c in range(3):
    keep = difficult[:, c] == 0
    expected.append(sklearn.metrics.average_precision_score(labels[keep, c], scores[keep, c]))
  assert out["map"] == pytest.approx(np.mean(expected), rel=1e-9)
  assert out["map"] - 0.1 <= out["map_voc07"] <= out["map"] + 0.1
  nan = task_lib.map_metrics(np.full((3, 4), np.nan), {"labels": labels[:3], "difficult": difficult[:3]})
  assert np.isnan(nan["map"]) and nan["num_nonfinite"] == 12


def test_voc2007_path_on_mock_data_and_missing_data(tmp_path):
  config = config_lib.get_config("soft_margin,voc2007")
  config.data.image_size = 16
  config.data.validation_fraction = 0.5
  with tfds.testing.mock_data(num_examples=6):
    splits = task_lib.make_splits(config.data)
    batch = task_lib.to_trainer_batch(splits["test"][np.arange(3)])
  assert [len(splits[k]) for k in ("train", "validation", "test")] == [3, 3, 6]
  assert batch["inputs"].shape == (3, 16, 16, 3) and batch["labels"].shape == (3, 20)
  assert np.all(batch["difficult"] <= batch["labels"])
  config.data.tfds_data_dir = str(tmp_path)
  with pytest.raises(DataNotFoundError, match="tfds build voc/2007"):
    task_lib.make_splits(config.data)


def test_sorter_batch_limit_and_scope_are_checked():
  config = config_lib.get_config("soft_margin_map_lstm")
  config.batch_size = 128
  with pytest.raises(ValueError, match="<= 100"):
    task_lib.make_task(config, splits={})
  config = config_lib.get_config("soft_margin")
  config.loss_scope = "device"
  with pytest.raises(ValueError, match="global"):
    task_lib.make_task(config, splits={})


@pytest.mark.parametrize("variant", ["soft_margin_map_lstm"])
def test_smoke_run(variant, tmp_path):
  """Two steps on 32x32 scenes: both loss terms with their weights, the evaluators and the report.

  The three variants differ only in the rank function of the ``map`` term (none, the LSTM, soft ranks: the
  config test above), so the LSTM variant runs.
  """
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config(f"{variant},smoke")
  config.async_checkpointing = False
  result = train.train_and_evaluate(config, str(tmp_path), task_lib.make_task(config))
  results = result.results
  assert results["step"] == 2 and results["complete"]
  test = result.predictions["test"]
  assert test.outputs.shape == (16, 16) and results["eval"]["test"]["num_nonfinite"] == 0
  assert results["eval"]["test"]["map"] == pytest.approx(
      task_lib.map_metrics(test.outputs, test.targets)["map"])
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  for record in [r for r in records if r["split"] == "train"]:
    assert record["loss"] == pytest.approx(record["loss/soft_margin"] + record["loss/map"], rel=1e-5)
    assert 0.0 <= record["loss/map"] <= 1.0
  report = results["report"]
  assert report["paper"]["map"] == 94.0 and len(report["per_class_ap"]) == 16
  assert "Table 4" in (tmp_path / "results.md").read_text()
