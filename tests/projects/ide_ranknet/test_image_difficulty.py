"""Tests of the IDE RankNet image-difficulty task, its configs, and smoke runs on the shared trainer."""

from __future__ import annotations

import json
import pathlib
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from configs import image_difficulty as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.data import scenes  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.projects.ide_ranknet import image_difficulty as task_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

VSD_CSV = REPO.parent / "shared" / "data" / "vsd" / "VSD_dataset.csv"


def _tau_a_loop(x, y):
  """Kendall's tau_a from its definition: (concordant - discordant) / (n (n - 1) / 2)."""
  n, total = len(x), 0.0
  for i in range(n):
    for j in range(i):
      total += np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
  return total / (n * (n - 1) / 2)


def _rank_loss_loop(s, y):
  """IDE RankNet eq. 2 with hardtanh on the score differences, written as a double loop."""
  n, total = len(s), 0.0
  for i in range(n):
    for j in range(i):
      total += np.sign(y[i] - y[j]) * np.clip(s[i] - s[j], -1.0, 1.0)
  return 1.0 - total / (n * (n - 1) / 2)


# ---------------------------------------------------------------------------------------- configs


FIGURE3 = tuple(f"lambda={lam:g}" for lam in (0.0, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9))


def test_every_variant_has_a_config_and_a_paper_row():
  assert len(config_lib.VARIANTS + FIGURE3) == 16
  for variant in config_lib.VARIANTS + FIGURE3:
    assert variant in task_lib.PAPER_RESULTS
    assert config_lib.get_config(variant).variant == variant
    assert config_lib.get_config(variant + ",smoke").total_steps == 2


@pytest.mark.parametrize("variant,rank,mse", [("mse", 0.0, 1.0), ("kendall", 1.0, 0.0), ("weighted", 0.7, 0.3),
                                             ("lambda=0.2", 0.2, 0.8), ("lambda=0.9", 0.9, 0.1),
                                             ("resnet152", 0.0, 1.0)])
def test_weighted_variants_follow_eq5(variant, rank, mse):
  config = config_lib.get_config(variant)
  assert config.multitask.name == "weighted"
  assert config.multitask.weights.rank == pytest.approx(rank)
  assert config.multitask.weights.mse == pytest.approx(mse)


def test_alternating_is_algorithm_1_with_f3_over_epochs_and_the_paper_optimizer():
  config = config_lib.get_config("alternating")
  assert (config.multitask.name, config.multitask.main, config.multitask.auxiliary) == (
      "alternating", "rank", "mse")
  assert (config.multitask.frequency, config.multitask.unit) == (3, "epochs")
  assert config.loss_scope == "global"
  assert (config.optimizer.name, config.optimizer.momentum, config.optimizer.weight_decay) == ("sgd", 0.9, 5e-4)
  assert config.batch_size == 200
  # The run ends on an MSE epoch (t % 3 == 0), as the paper's 280... epochs schedule is scaled down.
  assert config.total_epochs % 3 == 0


def test_embedded_default_and_voc_sizes():
  config = config_lib.get_config("alternating")
  assert (config.data.name, config.data.image_size) == ("scenes_difficulty", 64)
  # The default trunk: ImageNet EfficientNet-Lite0, last block + head conv fine-tuned on cached maps,
  # which cannot be augmented; Table 1's rows compare backbones from scratch.
  assert config.model.trunk == "finetune:1" and config.data.augment is False
  scratch = config_lib.get_config("vgg16")
  assert scratch.model.trunk == "scratch" and scratch.data.augment is False  # Table 1 precedes augmentation
  voc = config_lib.get_config("alternating,voc")
  assert (voc.data.name, voc.data.image_size, voc.model.trunk) == ("voc2012_vsd", 224, "finetune:16")
  assert voc.data.augment is True  # the whole network trains on images: the paper's augmentation applies
  assert voc.model.kwargs.backbone == "resnet152" and not voc.model.kwargs.backbone_kwargs  # for trunk=scratch
  assert voc.optimizer.learning_rate == 1e-3
  assert tuple(voc.optimizer.schedule.boundaries_epochs) == (200, 240)
  # The authors' checkpoint rule everywhere: their absolute cap on VSD, the same fraction of the label
  # variance on the scenes (0.235 / 0.491^2).
  assert voc.selection.constraint == "mse <= 0.235"
  assert config.selection.constraint == "relative_mse <= 0.975" and 0.235 / 0.491 ** 2 == pytest.approx(0.975, abs=5e-4)
  assert (config.selection.metric, config.selection.mode, config.selection.split) == ("kendall_tau", "max", "validation")


@pytest.mark.parametrize("arg,epochs", [("alternating,paper", 30), ("alternating,voc,paper", 210)])
def test_paper_modifier_ends_on_a_rank_epoch_with_the_authors_settings(arg, epochs):
  """The authors' train.py: `for epoch in range(E): lamba = 0 (MSE) if epoch % 3 == 0 else 1 (rank)`."""
  from ranking_jax.train import schedules  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config(arg)
  assert config.total_epochs == epochs and config.optimizer.learning_rate == 1e-3
  assert (config.optimizer.momentum, config.optimizer.weight_decay) == (0.9, 5e-4)
  assert config.loss.label_diff == "hardtanh"  # kendallLoss.py: hardtanh on both differences
  assert config.eval_every_epochs == 1.0  # their val() runs after every epoch
  steps_per_epoch = 3
  weighting = schedules.from_config(config.multitask, ("rank", "mse"), steps_per_epoch=steps_per_epoch)
  used = []
  for epoch in range(epochs):
    _, weights = weighting.combine(jnp.int32(epoch * steps_per_epoch + 1), {"rank": 1.0, "mse": 1.0}, {})
    used.append("mse" if float(weights["mse"]) == 1.0 else "rank")
  assert used == ["mse" if epoch % 3 == 0 else "rank" for epoch in range(epochs)]
  assert used[0] == "mse" and used[-1] == "rank" and used[-2] == "rank"  # the rank epoch LAST
  assert max(config.optimizer.schedule.boundaries_epochs) < epochs
  # Without `paper`, the embedded alternating run is Algorithm 1 over 15 epochs: it ends on an MSE epoch.
  plain = config_lib.get_config("alternating")
  assert plain.multitask.first_unit == 1 and plain.total_epochs % 3 == 0 and plain.loss.label_diff == "sgn"


def test_label_transform_hardtanh_is_the_authors_kendall_loss():
  """kendallLoss.py: 1 - 2 sum_{j<i} hardtanh(p_i - p_j) hardtanh(t_i - t_j) / (n (n - 1)), as a loop."""
  rng = np.random.default_rng(3)
  targets = np.round(rng.normal(3.3, 0.5, 40), 1)  # many label gaps < 1 (and ties)
  predict = rng.normal(3.3, 0.4, 40)
  num = 0.0
  for i in range(1, len(targets)):
    for j in range(i):
      num += np.clip(predict[i] - predict[j], -1, 1) * np.clip(targets[i] - targets[j], -1, 1)
  expected = 1 - 2 * num / (len(targets) * (len(targets) - 1))
  batch = {"difficulty": jnp.asarray(targets, jnp.float32)}
  got = float(task_lib.make_loss_terms("hardtanh")["rank"](jnp.asarray(predict, jnp.float32), batch))
  assert got == pytest.approx(expected, rel=1e-5)
  # sgn weighs a gap of 0.1 like a gap of 2: a different loss on these labels.
  assert float(task_lib.make_loss_terms("sgn")["rank"](jnp.asarray(predict, jnp.float32), batch)) != pytest.approx(
      expected, rel=1e-3)


@pytest.mark.parametrize("arg", ["msee", "lambda=1.5", "lambda=x", "mse,tpu"])
def test_bad_variants_raise(arg):
  with pytest.raises(ValueError, match="variant|lambda|modifier"):
    config_lib.get_config(arg)


def test_lambda_option_and_config_imports():
  config = config_lib.get_config("lambda=0.25")
  assert config.variant == "lambda=0.25" and config.multitask.weights.rank == 0.25
  with pytest.raises(ValueError):
    config_lib.get_config("lambda=-0.1")



# ------------------------------------------------------------------------------- losses and metrics


def test_loss_terms_match_equation_loops():
  rng = np.random.default_rng(0)
  scores = rng.normal(3.3, 0.6, size=23)
  labels = rng.normal(3.3, 0.5, size=23)
  terms = task_lib.make_loss_terms()
  batch = {"difficulty": jnp.asarray(labels, jnp.float32)}
  assert float(terms["rank"](jnp.asarray(scores, jnp.float32), batch)) == pytest.approx(
      _rank_loss_loop(scores, labels), abs=1e-5)
  assert float(terms["mse"](jnp.asarray(scores, jnp.float32), batch)) == pytest.approx(
      sklearn.metrics.mean_squared_error(labels, scores), rel=1e-5)
  with pytest.raises(ValueError, match="label_diff"):
    task_lib.make_loss_terms("sign")


def test_difficulty_metrics_match_references_with_ties():
  rng = np.random.default_rng(1)
  labels = np.round(rng.normal(3.3, 0.5, size=60), 1)  # ties in the labels
  predictions = np.round(labels + rng.normal(0, 0.4, size=60), 1)  # and in the predictions
  out = task_lib.difficulty_metrics(predictions, {"difficulty": labels})
  assert out["kendall_tau"] == pytest.approx(_tau_a_loop(predictions, labels), abs=1e-12)
  assert out["mse"] == pytest.approx(sklearn.metrics.mean_squared_error(labels, predictions), rel=1e-12)
  assert out["num_examples"] == 60
  # tau_a <= tau_b in magnitude when there are ties (scipy's default is tau_b).
  assert abs(out["kendall_tau"]) <= abs(scipy.stats.kendalltau(predictions, labels).statistic) + 1e-12


def test_difficulty_metrics_edge_cases():
  diverged = task_lib.difficulty_metrics(np.array([1.0, np.nan, np.inf]), {"difficulty": np.arange(3.0)})
  assert np.isnan(diverged["mse"]) and np.isnan(diverged["kendall_tau"]) and diverged["num_nonfinite"] == 2
  with pytest.raises(ValueError, match="predictions"):
    task_lib.difficulty_metrics(np.zeros(3), {"difficulty": np.zeros(2)})
  tied = task_lib.difficulty_metrics(np.ones(4), {"difficulty": np.arange(4.0)})
  assert tied["kendall_tau"] == 0.0


def test_least_squares_line_matches_scipy():
  rng = np.random.default_rng(2)
  x = rng.normal(size=50)
  y = 0.6 * x + 1.3 + rng.normal(0, 0.2, size=50)
  fit = scipy.stats.linregress(x, y)
  slope, intercept = task_lib.least_squares_line(x, y)
  assert (slope, intercept) == pytest.approx((fit.slope, fit.intercept), rel=1e-9)
  assert task_lib.least_squares_line(np.ones(3), np.arange(3.0)) == (0.0, 1.0)  # constant x: flat line


def test_results_table_puts_the_paper_beside_each_row():
  table = task_lib.results_table([{"variant": "kendall", "mse": 9.5, "kendall_tau": 0.4},
                                  {"variant": "lambda=0.8", "mse": 0.3, "kendall_tau": 0.2},
                                  {"variant": "custom", "mse": 0.3, "kendall_tau": 0.2}])
  lines = table.splitlines()
  assert "17.040 | 0.464" in lines[2]
  assert "0.328 | 0.428 | Figure 3 (lambda = 0.8)" in lines[3]
  assert lines[4].endswith("- | - | - |")


def test_plot_writes_a_png(tmp_path):
  path = tmp_path / "fig.png"
  slope, _ = task_lib.plot_predicted_vs_true(np.array([3.0, 3.5, 4.2]), np.array([3.1, 3.4, 4.0]), str(path))
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert slope > 0


# ------------------------------------------------------------------------------------------- data


def test_rendered_scenes_match_the_generator_and_the_cache(tmp_path):
  from ranking_jax.data import rendered  # pylint: disable=g-import-not-at-top
  source = scenes.ScenesSource(5, seed=3, offset=7, image_size=16)
  once = rendered.render(source, keys=("image", "difficulty"), chunk_size=2, cache_dir=str(tmp_path),
                         cache_key=["scenes", 3, 7, 5, 16], name="scenes")
  expected = source[np.arange(5)]
  batch = once[np.array([4, 0])]
  np.testing.assert_allclose(batch["image"], expected["image"][[4, 0]], atol=0.5 / 255 + 1e-6)
  np.testing.assert_array_equal(batch["difficulty"], expected["difficulty"][[4, 0]])
  assert len(list(tmp_path.iterdir())) == 1
  cached = rendered.render(source, cache_dir=str(tmp_path), cache_key=["scenes", 3, 7, 5, 16], name="scenes")
  np.testing.assert_array_equal(cached.arrays["image"], once.arrays["image"])
  with pytest.raises(ValueError, match="same length"):
    rendered.ArraySource({"image": np.zeros((2, 4, 4, 3), np.uint8), "difficulty": np.zeros(3)})


def _random_splits(num_train=16, num_eval=6, size=32, seed=0):
  rng = np.random.default_rng(seed)
  from ranking_jax.data import rendered  # pylint: disable=g-import-not-at-top
  make = lambda n: rendered.ArraySource({
      "image": rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8),
      "difficulty": rng.normal(3.3, 0.5, size=n).astype(np.float32)})
  return {"train": make(num_train), "validation": make(num_eval), "test": make(num_eval)}


def test_train_iterator_is_deterministic_in_the_step_and_tiles_processes():
  config = config_lib.get_config("mse")
  config.model.trunk = "scratch"
  config.batch_size = 4
  config.eval_batch_size = 4
  splits = _random_splits()
  task = task_lib.make_task(config, splits)
  fresh = task.make_train_iterator(0, 0, 1)
  batches = [next(fresh) for _ in range(6)]
  resumed = next(task.make_train_iterator(5, 0, 1))
  np.testing.assert_array_equal(resumed["inputs"], batches[5]["inputs"])
  assert set(resumed) == {"inputs", "difficulty"}
  halves = [next(task.make_train_iterator(5, p, 2)) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([h["difficulty"] for h in halves]), batches[5]["difficulty"])
  evals = list(task.evaluators["test"].make_iterator())
  assert [len(b["difficulty"]) for b in evals] == [4, 2] and "mask" not in evals[-1]
  assert not task.evaluators["test"].periodic and task.evaluators["validation"].periodic


def test_device_loss_scope_is_rejected():
  config = config_lib.get_config("kendall")
  config.loss_scope = "device"
  with pytest.raises(ValueError, match="global"):
    task_lib.make_task(config, _random_splits())


def test_voc_without_csv_says_what_to_do(tmp_path):
  from ranking_jax.projects.ide_ranknet import voc_difficulty  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config("alternating,voc")
  with pytest.raises(voc_difficulty.DataNotFoundError, match="VSD_dataset.csv"):
    task_lib.make_splits(config.data)
  config.data.csv_path = str(tmp_path / "missing.csv")
  with pytest.raises(voc_difficulty.DataNotFoundError):
    task_lib.make_splits(config.data)


@pytest.mark.skipif(not VSD_CSV.exists(), reason="real VSD CSV not in ../shared/data")
def test_voc_with_the_real_csv_but_no_dataset_says_how_to_prepare_it(tmp_path):
  from ranking_jax.projects.ide_ranknet import voc_difficulty  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config("mse,voc")
  config.data.csv_path = str(VSD_CSV)
  config.data.tfds_data_dir = str(tmp_path)
  with pytest.raises(voc_difficulty.DataNotFoundError, match="tfds build voc/2012"):
    task_lib.make_splits(config.data)


# ----------------------------------------------------------------------------- smoke runs (tiny models)


@pytest.mark.parametrize("variant", ["alternating", "resnet152", "mobilenet", "vgg16"])
def test_smoke_run(variant, tmp_path):
  """Two steps of the `smoke` config on random images: losses, weights, evaluators and the report.

  With the ``scratch`` trunk. Every variant of Table 2 / Figure 3 differs only in its loss weights (checked
  on the configs above), so one of them runs here (and on the pretrained trunk, the default, in
  test_pretrained_trunk_smoke_run); the Table 1 backbones run at their full depth, slimmed (width 4, alpha 0.25, VGG / 16).
  """
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config(f"{variant},smoke")
  config.model.trunk = "scratch"  # the pretrained trunk's path: test_pretrained_trunk_smoke_run
  config.async_checkpointing = False
  if variant == "resnet152":
    config.model.kwargs.backbone_kwargs.stage_sizes = (1, 1, 1, 1)  # the bottleneck block type, shallow
  splits = _random_splits(num_train=16, num_eval=6)
  config.batch_size, config.eval_batch_size = 8, 8
  result = train.train_and_evaluate(config, str(tmp_path), task_lib.make_task(config, splits))
  results = result.results
  assert results["step"] == 2 and results["complete"] and results["train_step_compilations"] == 1
  for split in ("validation", "test"):
    # Finite for every backbone, the deep ResNets included (their residual branches start at zero).
    assert results["eval"][split]["num_nonfinite"] == 0 and results["eval"][split]["num_examples"] == 6
  test = result.predictions["test"]
  assert results["eval"]["test"]["mse"] == pytest.approx(
      np.mean((test.outputs - test.targets["difficulty"]) ** 2), rel=1e-5)
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train_records = [r for r in records if r["split"] == "train"]
  assert len(train_records) == 2
  expected = ({"rank": 1.0, "mse": 0.0} if variant == "alternating"  # epoch 1 trains the rank loss
              else dict(config.multitask.weights))
  for record in train_records:
    assert np.isfinite(record["loss"])
    assert {k: record[f"weight/{k}"] for k in expected} == pytest.approx(expected)
    assert record["loss"] == pytest.approx(
        expected["rank"] * record["loss/rank"] + expected["mse"] * record["loss/mse"], rel=1e-5, abs=1e-6)
  report = results["report"]
  assert report["steps"] == 2 and report["kendall_tau"] == results["eval"]["test"]["kendall_tau"]
  assert report["paper"]["row"] == task_lib.PAPER_RESULTS[variant][2]
  assert (tmp_path / "figure4.png").exists() and "paper" in (tmp_path / "results.md").read_text()


def test_pretrained_backbone_weights_initialise_the_run(tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  from ranking_jax import models  # pylint: disable=g-import-not-at-top
  from ranking_jax.models import weights as weights_lib  # pylint: disable=g-import-not-at-top
  from ranking_jax.train import trainer  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config("mse,smoke")
  config.model.trunk = "scratch"
  config.batch_size, config.eval_batch_size = 8, 8
  splits = _random_splits(num_train=16, num_eval=6)
  model = models.build_model(config.model.name, **config.model.kwargs.to_dict())
  # "Converted" weights: a differently seeded initialisation, written in the documented .npz format.
  stored = model.init(jax.random.key(123), jnp.zeros((1, 32, 32, 3)), train=False)
  path = tmp_path / "backbone.npz"
  weights_lib.save_backbone_weights(path, stored)

  def backbone_leaves(variables):
    return jax.tree_util.tree_leaves(variables["params"]["backbone"])

  random_init = trainer._set_up(config, task_lib.make_task(config, splits)).state  # pylint: disable=protected-access
  config.model.pretrained_weights = str(path)
  loaded = trainer._set_up(config, task_lib.make_task(config, splits)).state  # pylint: disable=protected-access
  for got, want in zip(backbone_leaves({"params": loaded.params["model"]}), backbone_leaves(stored)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  assert any(not np.array_equal(a, b) for a, b in zip(backbone_leaves({"params": random_init.params["model"]}),
                                                      backbone_leaves(stored)))
  config.model.pretrained_weights = str(tmp_path / "missing.npz")
  with pytest.raises(FileNotFoundError, match="missing.npz"):
    trainer._set_up(config, task_lib.make_task(config, splits))  # pylint: disable=protected-access


# ------------------------------------------------------------------------ the pretrained trunk (default)


def _keyed(splits):
  """Random image splits with the cache_key_fields() the feature cache needs."""
  import functools  # pylint: disable=g-import-not-at-top
  for name, source in splits.items():
    source.cache_key_fields = functools.partial(dict, {"dataset": "random", "split": name, "n": len(source),
                                                       "image_size": 32})
  return splits


def test_pretrained_trunk_smoke_run(tmp_path):
  """`alternating,paper,smoke` on the default trunk: the maps entering block 15 cached once, block 15 + the
  head convolution fine-tuned from their ImageNet weights, the selection recorded beside the final step."""
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  from ranking_jax.models import pretrained_trunk  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config("alternating,paper,smoke")
  assert config.model.trunk == "finetune:1"
  config.data.feature_cache_dir = str(tmp_path / "features")
  config.async_checkpointing = False
  config.batch_size, config.eval_batch_size = 8, 8
  task = task_lib.make_task(config, _keyed(_random_splits(num_train=16, num_eval=6)))
  assert isinstance(task.model, task_lib.TrunkRegressor) and task.model.start_block == 15
  assert next(task.make_train_iterator(0, 0, 1))["inputs"].shape == (8, 1, 1, 192)  # 32 px / 32, block 15's input
  config.optimizer.learning_rate = 0.0  # the parameters stay those initialised: ImageNet's in the trunk
  result = train.train_and_evaluate(config, str(tmp_path / "run"), task)
  import jax  # pylint: disable=g-import-not-at-top
  _, imagenet = pretrained_trunk.imagenet_trunk(start_block=15)  # reference: pretrained_trunk's own tail
  trunk = result.state.params["model"]["trunk"]
  assert jax.tree_util.tree_structure(trunk) == jax.tree_util.tree_structure(imagenet["params"])
  for got, want in zip(jax.tree_util.tree_leaves(trunk), jax.tree_util.tree_leaves(imagenet["params"])):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  results = result.results
  assert results["complete"] and results["step"] == 2 and np.isfinite(results["eval"]["test"]["mse"])
  report, selected = results["report"], results["selected"]
  assert report["model"] == "efficientnet_lite0 imagenet finetune:1"
  assert selected["rule"] == "max validation kendall_tau subject to validation relative_mse <= 0.975"
  assert selected["candidates"] == 1  # smoke: no periodic evaluation, only the final one
  if selected["step"] is None:
    assert report["selected_kendall_tau"] is None and selected["eval"] is None
  else:
    assert report["selected_kendall_tau"] == selected["eval"]["test"]["kendall_tau"]
  assert "selected step" in (tmp_path / "run" / "results.md").read_text()


def test_voc_path_takes_the_pretrained_trunk():
  """`,voc` fine-tunes the whole ImageNet EfficientNet-Lite0 on augmented images (no VOC images here: random
  stand-ins for the VOC sources), and the VOC sources key a feature cache by their rows."""
  from ranking_jax.projects.ide_ranknet import voc_difficulty  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config("alternating,voc,paper,smoke")
  assert config.model.trunk == "finetune:16" and config.data.augment
  task = task_lib.make_task(config, _random_splits(num_train=16, num_eval=6))
  assert isinstance(task.model, task_lib.TrunkRegressor) and task.model.start_block == 0
  assert next(task.make_train_iterator(0, 0, 1))["inputs"].shape == (16, 32, 32, 3)
  rows = [("train", 0, "2008_000002", 3.7), ("validation", 4, "2008_000003", 3.6)]
  key = voc_difficulty.VocDifficultySource(rows, image_size=224).cache_key_fields()
  assert key["dataset"] == "voc2012_vsd" and key["image_size"] == 224
  assert voc_difficulty.VocDifficultySource(rows[:1], image_size=224).cache_key_fields() != key
  assert voc_difficulty.VocDifficultySource(rows, image_size=96).cache_key_fields() != key


@pytest.mark.parametrize("trunk,augment,weights,match", [
    ("finetune:0", False, "", "finetune"), ("finetune:17", False, "", "finetune"), ("imagenet", False, "", "trunk"),
    ("finetune:1", True, "", "cannot be augmented"), ("frozen", False, "x.npz", "pretrained_weights")])
def test_bad_trunk_settings_raise(trunk, augment, weights, match):
  config = config_lib.get_config("mse,smoke")
  config.model.trunk, config.data.augment, config.model.pretrained_weights = trunk, augment, weights
  with pytest.raises(task_lib.ConfigValueError, match=match):
    task_lib.make_task(config, _random_splits(num_train=16, num_eval=6))
