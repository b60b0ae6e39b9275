"""Tests of the Class Rectification experiment: configs, loss terms and baselines against numpy loops,
metrics against sklearn, the tables and Figure 5, the real-data paths, and smoke runs on the shared trainer.

The CRL losses themselves (binary and multi-valued, |Z_j| > 2) are tested against numpy loops in
tests/test_losses_rectification.py and tests/test_losses_rectification_multivalued.py."""

from __future__ import annotations

import json
import math
import pathlib
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.metrics

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from configs import class_rectification as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.projects.class_rectification import scene_attributes as sa  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.data.errors import DataNotFoundError  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.losses import rectification  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.projects.class_rectification import class_rectification as task_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

NAMES = ("red", "cluttered", "tiny_count", "visible_count")
NUM_VALUES = (2, 2, 6, 9)


def _random_split(n, size=32, seed=0):
  rng = np.random.default_rng(seed)
  labels = np.stack([rng.choice(v, size=n, p=np.r_[0.7, np.full(v - 1, 0.3 / (v - 1))]) for v in NUM_VALUES], 1)
  return sa.RenderedAttributes({"image": rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8),
                                "attributes": labels.astype(np.int32)}, sa.select_attributes(NAMES))


def _splits():
  return {"train": _random_split(32, seed=0), "validation": _random_split(12, seed=1),
          "test": _random_split(12, seed=2)}


# ---------------------------------------------------------------------------------------------- configs


def test_every_variant_has_a_config():
  assert config_lib.VARIANTS == task_lib.VARIANTS and len(config_lib.VARIANTS) == 11
  for variant in config_lib.VARIANTS:
    config = config_lib.get_config(variant)
    smoke = config_lib.get_config(variant + ",smoke,seed=2")
    assert config.variant == variant and smoke.total_steps == 2 and smoke.seed == 2 and smoke.data.seed == 0
    assert smoke.batch_size % 4 == 0
    crl = variant.startswith("crl_")
    assert dict(config.multitask.weights) == ({"ce": 1.0, "crl": 1.0} if crl else {"ce": 1.0})
    assert config.model.kwargs.l2_normalize_features == variant.endswith("distribution")
  config = config_lib.get_config("ce")
  assert (config.data.name, config.data.num_train, config.batch_size, config.model.kwargs.size) == (
      "scene_attributes", 4000, 128, "small")
  assert (config.loss.top_k, config.loss.relative_margin, config.loss.absolute_margin, config.loss.num_bins) == (
      5, None, 1.0, 201)
  celeba = config_lib.get_config("crl_instance_relative,celeba")
  assert (celeba.data.name, tuple(celeba.data.image_size), celeba.model.kwargs.size, celeba.total_epochs) == (
      "celeba", (55, 47), "paper", 200.0)
  assert (celeba.optimizer.learning_rate, celeba.optimizer.momentum, celeba.optimizer.weight_decay) == (
      1e-3, 0.9, 5e-4)
  assert config_lib.get_config("ce,xdomain").data.name == "attribute_csv"
  for bad in ("crl", "ce,tpu", "ce,celeba,xdomain", "ce,seed=x"):
    with pytest.raises(ValueError):
      config_lib.get_config(bad)


# ------------------------------------------------------------------------------------- losses, baselines


def _ce_loop(logits, labels, weights=None):
  """Eq. 2 as loops: sum over annotated labels of -log softmax over the |Z_j| real classes, / images."""
  total, images = 0.0, 0
  for i in range(labels.shape[0]):
    images += any(labels[i] >= 0)
    for j, n in enumerate(NUM_VALUES):
      if labels[i, j] < 0:
        continue
      z = logits[i, j, :n].astype(np.float64)
      term = -(z[labels[i, j]] - np.log(np.sum(np.exp(z))))
      total += term * (1.0 if weights is None else weights[i, j])
  return total / max(images, 1)


@pytest.fixture(scope="module")
def loss_inputs():
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(10, 4, 9)).astype(np.float32)
  for j, n in enumerate(NUM_VALUES):
    logits[:, j, n:] = -1e9  # the model's padding
  labels = np.stack([rng.integers(0, n, size=10) for n in NUM_VALUES], 1).astype(np.int32)
  labels[2, 1] = -1  # not annotated
  features = np.abs(rng.normal(size=(10, 4, 5))).astype(np.float32)
  return logits, labels, features


def test_cross_entropy_cost_sensitive_and_logit_adjusted_vs_loops(loss_inputs):
  logits, labels, _ = loss_inputs
  train = _random_split(40).labels()
  weights = task_lib.class_weights(train, NUM_VALUES)
  prior = task_lib.log_priors(train, NUM_VALUES)
  outputs, batch = {"logits": jnp.asarray(logits)}, {"attributes": jnp.asarray(labels)}
  ce = task_lib.make_loss_terms("ce", NUM_VALUES)
  assert set(ce) == {"ce"}
  assert float(ce["ce"](outputs, batch)) == pytest.approx(_ce_loop(logits, labels), rel=1e-5)
  cost = task_lib.make_loss_terms("cost_sensitive", NUM_VALUES, class_weight_table=weights)
  per_label = np.array([[weights[j, max(labels[i, j], 0)] for j in range(4)] for i in range(10)])
  assert float(cost["ce"](outputs, batch)) == pytest.approx(_ce_loop(logits, labels, per_label), rel=1e-5)
  adjusted = task_lib.make_loss_terms("logit_adjusted", NUM_VALUES, log_prior_table=prior, logit_adjust_tau=0.5)
  assert float(adjusted["ce"](outputs, batch)) == pytest.approx(_ce_loop(logits + 0.5 * prior, labels), rel=1e-5)
  with pytest.raises(ValueError, match="class_weight_table"):
    task_lib.make_loss_terms("cost_sensitive", NUM_VALUES)


def test_class_weights_priors_and_sampling_vs_counts():
  labels = np.array([[0, 0], [0, 1], [0, 1], [1, 2], [-1, 1]])
  weights = task_lib.class_weights(labels, (2, 4), max_weight=50.0)
  # 1 / (|Z| p): attribute 0 has counts 3, 1 of 4; attribute 1 counts 1, 3, 1, 0 of 5 (value 3 absent).
  np.testing.assert_allclose(weights, [[4 / 6, 4 / 2, 0, 0], [5 / 4, 5 / 12, 5 / 4, 50.0]], rtol=1e-6)
  np.testing.assert_allclose(np.exp(task_lib.log_priors(labels, (2, 4)))[1], np.array([1.5, 3.5, 1.5, 0.5]) / 7,
                             rtol=1e-6)
  per_image = task_lib.image_weights(labels, weights)
  assert per_image[4] == pytest.approx(5 / 12)  # the unannotated label is skipped
  assert per_image[3] == pytest.approx((2 + 5 / 4) / 2)
  big = _random_split(400).labels()
  table = task_lib.class_weights(big, NUM_VALUES)
  kept = task_lib.downsample_indices(big, table, seed=0)
  w = task_lib.image_weights(big, table)
  assert set(np.flatnonzero(w >= np.median(w))) <= set(kept) and 0.5 * len(w) <= len(kept) < len(w)
  ratios_before = sa.imbalance_ratios(big, NUM_VALUES)
  ratios_after = sa.imbalance_ratios(big[kept], NUM_VALUES)
  assert np.mean(ratios_after[:2]) < np.mean(ratios_before[:2])  # binary attributes become more balanced


def test_crl_term_is_eq8_minus_cross_entropy(loss_inputs):
  logits, labels, features = loss_inputs
  outputs = {"logits": jnp.asarray(logits), "features": jnp.asarray(features)}
  batch = {"attributes": jnp.asarray(labels)}
  for variant, kind, level, margin in (("crl_instance_relative", "relative", "instance", None),
                                       ("crl_class_absolute", "absolute", "class", 0.7)):
    terms = task_lib.make_loss_terms(variant, NUM_VALUES, top_k=2, absolute_margin=0.7)
    total = rectification.class_rectification_loss(
        jnp.asarray(logits), jnp.asarray(labels), features=jnp.asarray(features), kind=kind, level=level,
        top_k=2, margin=margin, num_classes=NUM_VALUES)
    assert float(terms["ce"](outputs, batch) + terms["crl"](outputs, batch)) == pytest.approx(float(total),
                                                                                              rel=1e-5)
    if level == "instance":  # the library's CE (regulariser off) is eq. 2 as well
      zero = rectification.class_rectification_loss(
          jnp.asarray(logits), jnp.asarray(labels), features=jnp.asarray(features), kind=kind, level=level,
          top_k=2, margin=margin, num_classes=NUM_VALUES, regularizer_weight=0.0)
      assert float(zero) == pytest.approx(_ce_loop(logits, labels), rel=1e-5)


def test_oversampling_iterator_is_deterministic_and_weighted():
  config = config_lib.get_config("oversampling,smoke")
  splits = _splits()
  task = task_lib.make_task(config, splits)
  first = [next(task.make_train_iterator(0, 0, 1)) for _ in range(1)][0]
  again = task.make_train_iterator(0, 0, 1)
  np.testing.assert_array_equal(next(again)["inputs"], first["inputs"])
  fifth = [b for _, b in zip(range(5), task.make_train_iterator(0, 0, 1))][4]
  np.testing.assert_array_equal(next(task.make_train_iterator(4, 0, 1))["attributes"], fifth["attributes"])
  halves = [next(task.make_train_iterator(4, p, 2)) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([h["attributes"] for h in halves]), fifth["attributes"])
  # Expected draw frequency of each image vs the mean balancing weight: rare images are drawn more often.
  labels = splits["train"].labels()
  w = task_lib.image_weights(labels, task_lib.class_weights(labels, NUM_VALUES))
  rng_counts = np.zeros(len(w))
  for step in range(200):
    rng = np.random.default_rng([config.seed, 9001, step])
    rng_counts += np.bincount(rng.choice(len(w), size=16, p=w / w.sum()), minlength=len(w))
  assert np.corrcoef(rng_counts, w)[0, 1] > 0.8


# ---------------------------------------------------------------------------------------------- metrics


def test_attribute_metrics_vs_sklearn():
  rng = np.random.default_rng(5)
  labels = np.stack([rng.integers(0, n, size=50) for n in NUM_VALUES], 1)
  labels[:5, 3] = -1
  logits = rng.normal(size=(50, 4, 9))
  for j, n in enumerate(NUM_VALUES):
    logits[:, j, n:] = -1e9
  ratios = [1.0, 30.0, 500.0, 2.0]
  out = task_lib.attribute_metrics({"logits": logits}, {"attributes": labels}, names=NAMES, ratios=ratios)
  expected = []
  for j, name in enumerate(NAMES):
    keep = labels[:, j] >= 0
    expected.append(100 * sklearn.metrics.balanced_accuracy_score(labels[keep, j], logits[keep, j].argmax(-1)))
    assert out[f"cba/{name}"] == pytest.approx(expected[-1])
  assert out["mean_cba"] == pytest.approx(np.mean(expected))
  assert out["mean_cba_imbalanced_half"] == pytest.approx((expected[1] + expected[2]) / 2)
  assert task_lib.imbalanced_half([3.0, 1.0, math.inf, 2.0, 5.0]).tolist() == [0, 2, 4]


def test_cross_variant_tables_and_figure(tmp_path):
  base = {"names": list(NAMES), "num_values": list(NUM_VALUES), "imbalance": [1.0, 30.0, 500.0, 2.0]}
  reports = [
      {**base, "variant": "ce", "seed": 0, "cba": [80, 60, 40, 70], "mean_cba": 62.5,
       "mean_cba_imbalanced_half": 50.0},
      {**base, "variant": "ce", "seed": 1, "cba": [82, 62, 42, 72], "mean_cba": 64.5,
       "mean_cba_imbalanced_half": 52.0},
      {**base, "variant": "crl_instance_relative", "seed": 0, "cba": [81, 70, 50, 71], "mean_cba": 68.0,
       "mean_cba_imbalanced_half": 60.0}]
  text = task_lib.cross_variant_tables(reports)
  lines = text.splitlines()
  rows = [l for l in lines if l.startswith("| ")]
  assert rows[1].startswith("| red | 2 | 1.0 | 81.0 | 81.0 |")  # sorted by imbalance: red, visible_count, ...
  assert rows[4].startswith("| tiny_count | 6 | 500.0 | 41.0 | 50.0 |")
  assert "| **average, 2 most imbalanced** | - | - | 51.0 | 60.0 |" in lines
  assert "63.50 ± 1.41 (2 seeds)" in text
  gain = [l for l in lines if l.startswith("| crl_instance_relative | +")][0]
  assert gain.startswith("| crl_instance_relative | +4.50 | +9.00 | 1 | 5.85 | 6.13 |")
  task_lib.plot_gain_vs_imbalance(reports, str(tmp_path / "fig5.png"))
  assert (tmp_path / "fig5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="'ce'"):
    task_lib.plot_gain_vs_imbalance(reports[2:], str(tmp_path / "x.png"))


# -------------------------------------------------------------------------------------------- real data


def test_celeba_path_on_mock_data_and_missing_errors(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  config = config_lib.get_config("ce,celeba")
  with tfds.testing.mock_data(num_examples=3):
    splits = task_lib.make_splits(config.data)
    batch = splits["test"][np.arange(2)]
  assert batch["image"].shape == (2, 55, 47, 3) and batch["attributes"].shape == (2, 40)
  assert splits["train"].num_values == (2,) * 40
  config.data.data_dir = str(tmp_path / "tfds")
  with pytest.raises(DataNotFoundError, match="celeb_a"):
    task_lib.make_splits(config.data)


def test_csv_path_and_missing_errors(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  (tmp_path / "img").mkdir()
  for k in range(3):
    Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(tmp_path / "img" / f"{k}.png")
  (tmp_path / "train.csv").write_text("image,colour,collar\n0.png,4,1\n1.png,0,\n2.png,2,0\n")
  (tmp_path / "test.csv").write_text("image,colour,collar\n2.png,1,1\n")
  config = config_lib.get_config("crl_instance_relative,xdomain")
  config.data.update(image_dir=str(tmp_path / "img"), train_csv=str(tmp_path / "train.csv"),
                     test_csv=str(tmp_path / "test.csv"))
  splits = task_lib.make_splits(config.data)
  assert splits["train"].num_values == (5, 2) and splits["validation"] is splits["test"]
  assert splits["train"][np.arange(3)]["attributes"].tolist() == [[4, 1], [0, -1], [2, 0]]
  config.data.test_csv = ""
  with pytest.raises(DataNotFoundError, match="config.data.test_csv"):
    task_lib.make_splits(config.data)


# --------------------------------------------------------------------------------- smoke runs (tiny model)


@pytest.mark.parametrize("variant", ["oversampling", "crl_instance_relative"])
def test_smoke_run(variant, tmp_path):
  """Two steps of the `smoke` config on random images: loss terms and weights, evaluators and the report.

  Families: a sampling baseline (its own iterator; cost_sensitive / logit_adjusted only change the CE term
  and downsampling the source, tested above) and CRL (eq. 8's two terms; the other CRL variants differ in
  the loss options tested above and in tests/test_losses_rectification*.py, and the distribution ones
  in l2_normalize_features, tested in tests/projects/class_rectification/test_class_rectification_data.py)."""
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config(f"{variant},smoke")
  config.async_checkpointing = False
  result = train.train_and_evaluate(config, str(tmp_path), task_lib.make_task(config, _splits()))
  results = result.results
  assert results["step"] == 2 and results["complete"] and results["train_step_compilations"] == 1
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train_records = [r for r in records if r["split"] == "train"]
  assert len(train_records) == 2
  for record in train_records:
    expected = record["loss/ce"] + (record["loss/crl"] if variant.startswith("crl") else 0.0)
    assert np.isfinite(record["loss"]) and record["loss"] == pytest.approx(expected, rel=1e-5)
    if variant.startswith("crl"):
      assert record["loss/crl"] >= 0.0 and record["weight/crl"] == 1.0
  test = results["eval"]["test"]
  assert 0.0 <= test["mean_cba"] <= 100.0 and set(f"cba/{n}" for n in NAMES) <= set(test)
  report = results["report"]
  assert report["variant"] == variant and report["cba"] == [test[f"cba/{n}"] for n in NAMES]
  assert len(report["imbalance"]) == 4
  text = (tmp_path / "results.md").read_text()
  assert "| **average, all** |" in text and "imbalance 1:x" in text
