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

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))

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


def test_normalized_map_term_on_the_transposed_scores():
  from ranking_jax import ranks  # pylint: disable=g-import-not-at-top
  logits = np.array([[2.0, -1.0], [1.0, 0.5], [-1.0, 3.0], [0.0, 0.0]])
  labels = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], np.float32)
  term = task_lib.make_loss_terms(ranks.hard_ranks, form="normalized_rank_sum", reduce="mean")["map"]
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


# ------------------------------------------------------------------------------------------------ CelebA-HQ


def test_celeba_configs_use_eq7_as_written_and_the_finetune_protocol():
  base = config_lib.get_config("soft_margin,celeba")
  assert base.data.name == "celeba_hq_classes" and base.model.name == "sodeep_map_feature_head"
  assert base.batch_size == 100 and not base.finetune and base.model.init_from == ""
  assert base.optimizer.schedule.name == "step"
  for variant in ("soft_margin_map_lstm", "soft_margin_map_soft_ranks"):
    config = config_lib.get_config(f"{variant},celeba,finetune,seed=1")
    assert (config.loss.form, config.loss.reduce) == ("rank_sum", "sum") and config.finetune
    assert 0.0 < config.multitask.weights.map < 1.0 and config.optimizer.schedule.name == "constant"
  finetune = [config_lib.get_config(f"{v},celeba,finetune") for v in config_lib.VARIANTS]
  # Every variant gets the same extra steps at the same learning rate.
  assert len({(c.total_epochs, c.total_steps, c.optimizer.learning_rate) for c in finetune}) == 1
  # The embedded scenes keep the normalised form of their recorded rows; VOC 2007 uses eq. 7.
  assert config_lib.get_config("soft_margin_map_lstm").loss.form == "normalized_rank_sum"
  assert config_lib.get_config("soft_margin_map_lstm,voc2007").loss.reduce == "sum"
  with pytest.raises(ValueError, match="finetune goes with celeba"):
    config_lib.get_config("soft_margin,finetune")
  with pytest.raises(ValueError, match="one of the modifiers"):
    config_lib.get_config("soft_margin,celeba,voc2007")


def test_map_term_forms_and_reductions():
  from ranking_jax import ranks  # pylint: disable=g-import-not-at-top
  logits = jnp.asarray([[2.0, -1.0], [1.0, 0.5], [-1.0, 3.0], [0.0, 0.0]])
  labels = jnp.asarray([[1, 0], [0, 1], [1, 1], [0, 0]], jnp.float32)
  eq7 = task_lib.make_loss_terms(ranks.hard_ranks)["map"]
  # Eq. 7: class 0's positives rank 1 and 4, class 1's rank 2 and 1; summed over positives and classes.
  assert float(eq7(logits, {"labels": labels})) == pytest.approx(1 + 4 + 2 + 1)
  mean = task_lib.make_loss_terms(ranks.hard_ranks, reduce="mean")["map"]
  assert float(mean(logits, {"labels": labels})) == pytest.approx((5 + 3) / 2)
  with pytest.raises(ValueError, match="config.loss.reduce"):
    task_lib.make_loss_terms(ranks.hard_ranks, reduce="max")


def _write_celeba_fixture(folder, num=40, side=8):
  """The official CelebA-HQ layout (annotation file + a zip of flat-colour JPEGs); returns the labels."""
  import io  # pylint: disable=g-import-not-at-top
  import zipfile  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from ranking_jax.data import celeba_hq  # pylint: disable=g-import-not-at-top
  labels = np.random.default_rng(0).integers(0, 2, (num, 40))
  lines = [str(num), " ".join(celeba_hq.ATTRIBUTE_NAMES)]
  lines += [f"{i}.jpg  " + " ".join("1" if v else "-1" for v in labels[i]) for i in range(num)]
  (folder / celeba_hq.ANNOTATION_FILE).write_text("\n".join(lines) + "\n")
  with zipfile.ZipFile(folder / f"CelebA-HQ-img-{side}.zip", "w") as z:
    for i in range(num):
      buffer = io.BytesIO()
      Image.new("RGB", (side, side), (5 * i, 250 - 5 * i, 128)).save(buffer, format="JPEG", quality=95)
      z.writestr(f"CelebA-HQ-img-{side}/{i}.jpg", buffer.getvalue())
  return labels


def test_celeba_path_caches_trunk_features_of_the_seeded_split(tmp_path, monkeypatch):
  """The registry path: CelebA-HQ's seeded split -> cached trunk features (a stand-in trunk: the mean
  colour) -> trainer batches of features and the 40 attributes."""
  from ranking_jax.data import feature_cache  # pylint: disable=g-import-not-at-top
  from ranking_jax.models import pretrained_trunk  # pylint: disable=g-import-not-at-top
  labels = _write_celeba_fixture(tmp_path)
  calls = []

  def fake_trunk_features(source, *, cache_dir, **kwargs):
    del kwargs
    calls.append(cache_dir)
    key = {**source.cache_key_fields(), "backbone": "mean_colour", "weights": "none", "preprocessing": "none"}
    return feature_cache.compute_feature_cache(
        source, lambda images: np.asarray(images).mean(axis=(1, 2)), cache_dir=cache_dir, key_fields=key,
        batch_size=8)

  monkeypatch.setattr(pretrained_trunk, "trunk_features", fake_trunk_features)
  config = config_lib.get_config("soft_margin,celeba,smoke")
  config.data.update(data_dir=str(tmp_path), image_size=8, feature_cache_dir=str(tmp_path / "features"))
  splits = task_lib.make_splits(config.data)
  assert [len(splits[k]) for k in ("train", "validation", "test")] == [32, 4, 4]
  assert calls == [str(tmp_path / "features")] * 3
  batch = task_lib.to_trainer_batch(splits["test"][np.arange(4)])
  assert batch["inputs"].shape == (4, 3) and batch["labels"].shape == (4, 40)
  np.testing.assert_array_equal(batch["labels"], labels[splits["test"][np.arange(4)]["index"]])
  assert not batch["difficult"].any()
  assert task_lib.class_names(config.data)[0] == "5_o_Clock_Shadow"


def test_celeba_smoke_finetune_starts_from_the_given_variables(tmp_path):
  """Two fine-tuning steps (soft ranks) on stand-in features, from a saved set of variables: the task loads
  them, the run writes its own final_variables.npz, and eq. 7's value is the unnormalised rank sum."""
  import jax  # pylint: disable=g-import-not-at-top
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  from ranking_jax.data import feature_cache  # pylint: disable=g-import-not-at-top
  from ranking_jax.models import weights as weights_lib  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)

  def split(n):
    return feature_cache.FeatureSource({"features": rng.normal(size=(n, 6)).astype(np.float32),
                                        "attributes": (rng.random((n, 40)) < 0.3).astype(np.int32),
                                        "index": np.arange(n)})

  splits = {"train": split(32), "validation": split(16), "test": split(16)}
  config = config_lib.get_config("soft_margin_map_soft_ranks,celeba,finetune,smoke")
  config.async_checkpointing = False
  with pytest.raises(ValueError, match="init_from"):
    task_lib.make_task(config, splits=splits)
  model = task_lib.FeatureHead(num_classes=40, hidden_sizes=(8,))
  start = model.init(jax.random.key(7), np.zeros((1, 6), np.float32))
  saved = tmp_path / "start.npz"
  weights_lib.save_backbone_weights(saved, start, backbone="")
  config.model.init_from = str(saved)
  task = task_lib.make_task(config, splits=splits)
  loaded = task.initialize_variables(model.init(jax.random.key(5), np.zeros((1, 6), np.float32)))
  for layer, value in start["params"].items():
    np.testing.assert_array_equal(loaded["params"][layer]["kernel"], value["kernel"])
  result = train.train_and_evaluate(config, str(tmp_path / "finetune"), task)
  assert result.results["step"] == 2 and result.results["report"]["finetune"]
  assert (tmp_path / "finetune" / task_lib.FINAL_VARIABLES).exists()
  records = [json.loads(line) for line in (tmp_path / "finetune" / "metrics.jsonl").read_text().splitlines()]
  weight = config.multitask.weights.map
  for record in [r for r in records if r["split"] == "train"]:
    assert record["loss"] == pytest.approx(record["loss/soft_margin"] + weight * record["loss/map"], rel=1e-4)
    assert record["loss/map"] > 40.0  # the unnormalised sum of ranks over the 40 classes, not a mean in [0, 1]


def test_tables_pair_each_rank_variant_with_the_baseline_of_the_same_seed_and_schedule():
  from experiments import sodeep_map_tables  # pylint: disable=g-import-not-at-top

  def run(variant, seed, value, finetune=True):
    return {"config": {"seed": seed}, "report": {"variant": variant, "data": "celeba_hq_classes", "steps": 240,
                                                 "finetune": finetune, "map_voc07": value, "map": value}}

  runs = [run("soft_margin", 0, 0.60), run("soft_margin", 1, 0.62), run("soft_margin_map_lstm", 1, 0.625),
          run("soft_margin_map_lstm", 0, 0.598), run("soft_margin_map_lstm", 2, 0.70),  # seed 2: no baseline
          run("soft_margin", 0, 0.10, finetune=False)]  # another schedule: never paired
  (row,) = sodeep_map_tables.paired_rows(runs)
  assert row["seeds"] == "1, 0" and row["map_voc07_per_seed"] == "+0.50 / -0.20"
  assert row["map_voc07"].startswith("+0.15 ± 0.49") and row["map_voc07_wins"] == "1 of 2"
  assert "Paired by seed" in sodeep_map_tables.make_tables(runs)
