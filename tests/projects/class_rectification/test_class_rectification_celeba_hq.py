"""The CelebA-HQ path of the Class Rectification experiment: the config, the paper's head on trunk features,
and a smoke run on a tiny CelebA-HQ fixture through the frozen ImageNet EfficientNet-Lite0 and its cache.

References are independent: the head's outputs against a numpy forward pass of its parameters, the
standardisation against numpy statistics of the cached features, the labels against those the fixture
wrote."""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from configs import class_rectification as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.errors import ConfigValueError  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.projects.class_rectification import class_rectification as task_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.projects.class_rectification import deepid2  # pylint: disable=g-import-not-at-top,wrong-import-position
from tests import test_data_celeba_hq  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_celeba_hq_config():
  config = config_lib.get_config("crl_instance_relative,celeba_hq,seed=2")
  assert (config.data.name, config.data.image_size, config.data.seed, config.seed) == ("celeba_hq", 64, 0, 2)
  assert (config.data.validation_fraction, config.data.test_fraction, config.data.max_examples) == (0.1, 0.1, 0)
  assert (config.model.name, config.model.trunk, config.model.kwargs.feature_dim) == ("crl_feature_head", "frozen", 64)
  assert config.batch_size == 128 and dict(config.multitask.weights) == {"ce": 1.0, "crl": 1.0}
  # One schedule for every variant.
  schedules = {(c.total_steps, c.optimizer.learning_rate, c.optimizer.schedule.name)
               for c in (config_lib.get_config(f"{v},celeba_hq") for v in config_lib.VARIANTS)}
  assert len(schedules) == 1
  assert all(config_lib.get_config(f"{v},celeba_hq").model.kwargs.l2_normalize_features for v in config_lib.VARIANTS)
  assert (config.loss.relative_margin, config.loss.top_k, config.loss.num_bins) == (0.2, 5, 51)
  with pytest.raises(ValueError, match="choose one"):
    config_lib.get_config("ce,celeba_hq,celeba")


def test_feature_head_vs_numpy_forward_pass():
  head = deepid2.crl_feature_head(num_values=(2, 3, 2), fc1_features=6, feature_dim=4, feature_relu=False)
  x = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
  variables = head.init(jax.random.key(1), x)
  out = jax.tree.map(np.asarray, head.apply(variables, {"inputs": x}))
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
  fc1 = np.maximum(x @ p["fc1"]["kernel"] + p["fc1"]["bias"], 0.0)
  features = np.stack([fc1 @ p["fc2_kernel"][j] + p["fc2_bias"][j] for j in range(3)], axis=1)  # no ReLU
  np.testing.assert_allclose(out["features"], features, rtol=1e-4, atol=1e-5)
  assert (features < 0).any()  # feature_relu=False keeps negative features
  # Attribute 1 has 3 values (classifier3), attributes 0 and 2 have 2 (classifier2, padded).
  np.testing.assert_allclose(out["logits"][:, 1], features[:, 1] @ p["classifier3_kernel"][0]
                             + p["classifier3_bias"][0], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out["logits"][:, 2, :2], features[:, 2] @ p["classifier2_kernel"][1]
                             + p["classifier2_bias"][1], rtol=1e-4, atol=1e-5)
  assert (out["logits"][:, [0, 2], 2] == deepid2.LOGIT_PAD).all()
  with pytest.raises(ValueError, match=r"\[B, D\]"):
    head.apply(variables, np.zeros((2, 3, 7), np.float32))


def test_only_the_frozen_trunk_is_accepted():
  config = config_lib.get_config("ce,celeba_hq,smoke")
  config.model.trunk = "finetune:1"
  with pytest.raises(ConfigValueError, match="frozen"):
    task_lib.make_task(config, splits={})


def _cheap_trunk(stop_block):
  """A stand-in for the ImageNet trunk (tested in tests/test_pretrained_trunk.py): 16 fixed random
  projections of the mean colour, so the smoke run does not compile EfficientNet-Lite0."""
  del stop_block
  projection = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
  return jax.jit(lambda images: images.mean(axis=(1, 2)) @ projection), "cheap-stand-in"


def test_smoke_run_on_a_tiny_celeba_hq_fixture(tmp_path, monkeypatch):
  """Two steps of ``ce,celeba_hq,smoke`` on 40 fixture faces: the trunk features are cached per split,
  standardised with the training split's statistics, and the run reports all 40 attributes."""
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  from ranking_jax.models import pretrained_trunk  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(pretrained_trunk, "_jitted_trunk", _cheap_trunk)
  labels = test_data_celeba_hq.write_fixture(tmp_path / "data", zip_side=32, num=40)
  config = config_lib.get_config("ce,celeba_hq,smoke")
  config.data.data_dir = str(tmp_path / "data")
  config.data.feature_cache_dir = str(tmp_path / "cache")
  config.async_checkpointing = False
  splits = task_lib.make_splits(config.data)
  assert sorted(p.name.split("-")[1] for p in (tmp_path / "cache").iterdir()) == ["test", "train", "validation"]
  # Independent reference: the raw cached features and numpy statistics of the training split.
  images = task_lib.data_registry.build_splits(config.data)
  raw = {s: pretrained_trunk.trunk_features(images[s], cache_dir=str(tmp_path / "cache"))["features"]
         for s in images}
  mean, std = raw["train"].mean(0), raw["train"].std(0)
  for split in ("train", "validation"):
    np.testing.assert_allclose(splits[split].arrays["features"] * std + mean, raw[split], rtol=1e-4, atol=1e-4)
    ids = splits[split].arrays["index"]
    np.testing.assert_array_equal(splits[split].arrays["attributes"], labels[ids])
  assert splits["train"].names == test_data_celeba_hq.celeba_hq.ATTRIBUTE_NAMES
  result = train.train_and_evaluate(config, str(tmp_path / "run"), task_lib.make_task(config, splits))
  results = result.results
  assert results["step"] == 2 and results["complete"]
  report = results["report"]
  assert len(report["cba"]) == 40 and report["data"] == "celeba_hq"
  assert all(0.0 <= c <= 100.0 or np.isnan(c) for c in report["cba"])
  records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records if r["split"] == "validation"] == [1, 2]  # the curve's points


def _average_ranks(x):
  """Ranks 1..n with ties averaged (a loop; independent of scipy)."""
  x = np.asarray(x, np.float64)
  ranks = np.empty(len(x))
  for i, v in enumerate(x):
    ranks[i] = np.sum(x < v) + (np.sum(x == v) + 1) / 2.0
  return ranks


def test_paired_gains_correlation_and_flatness_vs_hand_computed(tmp_path):
  base = {"names": ["a", "b", "c", "d"], "num_values": [2, 2, 2, 2], "imbalance": [1.0, 30.0, 500.0, 2.0]}
  reports = [
      {**base, "variant": "ce", "seed": 0, "cba": [80, 60, 40, 70], "mean_cba": 62.5,
       "mean_cba_imbalanced_half": 50.0},
      {**base, "variant": "ce", "seed": 1, "cba": [82, 62, 42, 72], "mean_cba": 64.5,
       "mean_cba_imbalanced_half": 52.0},
      {**base, "variant": "crl_instance_relative", "seed": 0, "cba": [81, 70, 50, 71], "mean_cba": 68.0,
       "mean_cba_imbalanced_half": 60.0},
      {**base, "variant": "crl_instance_relative", "seed": 1, "cba": [81, 66, 46, 71], "mean_cba": 66.0,
       "mean_cba_imbalanced_half": 56.0}]
  # Seed-matched: 60 - 50 = 10 and 56 - 52 = 4 -> mean 7, sample std sqrt(18) = 4.24.
  row = [l for l in task_lib.cross_variant_tables(reports).splitlines() if l.startswith("| crl_instance_relative | +")][0]
  cells = [c.strip() for c in row.strip("|").split("|")]
  assert cells[6:8] == ["+7.00 ± 4.24 (2 seeds)", "2/2"]
  gain = np.mean([[81, 70, 50, 71], [81, 66, 46, 71]], 0) - np.mean([[80, 60, 40, 70], [82, 62, 42, 72]], 0)
  rho = np.corrcoef(_average_ranks(gain), _average_ranks(base["imbalance"]))[0, 1]
  assert float(cells[8]) == pytest.approx(rho, abs=0.006)
  assert np.isnan(task_lib.gain_imbalance_correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
  # Flatness: values on steps 0..100; the last quarter is steps >= 75.
  points = [(s, 50.0 + 0.1 * s if s < 75 else 60.0 + 0.02 * (s - 75)) for s in range(0, 101, 5)]
  flat = task_lib.last_quarter_flatness(points)
  assert flat["range"] == pytest.approx(0.02 * 25) and flat["slope_per_1k"] == pytest.approx(20.0)
