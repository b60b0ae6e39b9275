"""Tests of the SoDeep Spearman memorability task, its configs, the frozen-backbone stage and smoke runs."""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from configs import sodeep_spearman as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.data import errors  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.data import rendered  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.projects.sodeep import sodeep_spearman as task_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from tests import test_efficientnet  # pylint: disable=g-import-not-at-top,wrong-import-position

_needs_weights = test_efficientnet.needs_weights


def test_configs_follow_the_paper_schedule():
  for variant in config_lib.VARIANTS:
    config = config_lib.get_config(variant)
    assert config.variant == variant and config.batch_size <= 100 and config.loss_scope == "global"
    assert (config.optimizer.name, config.optimizer.learning_rate) == ("adam", 1e-3)
    assert (config.optimizer.schedule.name, config.optimizer.schedule.every_epochs,
            config.optimizer.schedule.decay_factor) == ("halving", 3.0, 0.5)
    assert config.loss.l1_epochs == 1.0 and 0 < config.model.freeze_backbone_epochs < config.total_epochs
    assert config_lib.get_config(variant + ",smoke").total_steps == 4
  assert config_lib.get_config("spearman_handcrafted").loss.sharpness == 10.0
  assert config_lib.get_config("spearman_lstm").data.num_test == 6800  # SE(rho) < 0.01
  real = config_lib.get_config("spearman_lstm,mediaeval")
  assert (real.data.name, real.model.kwargs.backbone, real.model.freeze_backbone_epochs) == (
      "mediaeval", "resnet34", 15.0)
  assert config_lib.get_config("l1,lamem").data.name == "lamem"
  for bad in ("spearman_cnn", "mse,lamem,mediaeval"):
    with pytest.raises(ValueError):
      config_lib.get_config(bad)


def test_schedule_adds_l1_for_the_first_epoch_only():
  loss = config_lib.get_config("spearman_soft_ranks").loss
  schedule = task_lib.make_schedule(loss, steps_per_epoch=40)
  weights = [{k: float(v) for k, v in schedule(jnp.int32(s)).items()} for s in (0, 39, 40, 400)]
  assert weights[0] == weights[1] == {"l1": 1.0, "mse": 0.0, "spearman": 1.0}
  assert weights[2] == weights[3] == {"l1": 0.0, "mse": 0.0, "spearman": 1.0}
  mse = task_lib.make_schedule(config_lib.get_config("mse").loss, 40, ("l1", "mse"))
  assert {k: float(v) for k, v in mse(jnp.int32(0)).items()} == {"l1": 0.0, "mse": 1.0}
  with pytest.raises(ValueError, match="not a loss term"):
    task_lib.make_schedule(loss, 40, ("l1", "mse"))


def test_spearman_term_and_metrics_match_scipy():
  rng = np.random.default_rng(0)
  labels = rng.uniform(0.4, 1.0, 30)
  scores = labels + rng.normal(0, 0.1, 30)
  loss_config = config_lib.get_config("spearman_handcrafted").loss
  loss_config.sharpness = 1e5  # the handcrafted sorter becomes exact: eq. 4 = 1 - rho (no ties)
  term = task_lib.make_loss_terms(loss_config)["spearman"]
  rho = scipy.stats.spearmanr(scores, labels).statistic
  assert float(term(jnp.asarray(scores, jnp.float32), {"memorability": jnp.asarray(labels, jnp.float32)})
               ) == pytest.approx(1 - rho, abs=2e-3)
  assert task_lib.spearman_metrics(scores, {"memorability": labels})["spearman_rho"] == pytest.approx(rho)
  # Frames of one video (group) are averaged before rho, as the paper does at test time.
  groups = np.repeat(np.arange(10), 3)
  frame_labels = np.repeat(labels[:10], 3)
  out = task_lib.spearman_metrics(scores, {"memorability": frame_labels, "group": groups})
  expected = scipy.stats.spearmanr(scores.reshape(10, 3).mean(1), labels[:10]).statistic
  assert out["spearman_rho"] == pytest.approx(expected) and out["num_items"] == 10
  assert np.isnan(task_lib.spearman_metrics(np.array([np.nan, 1.0]), {"memorability": np.ones(2)})["spearman_rho"])


def test_frozen_flag_stops_the_backbone_gradient_only():
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from ranking_jax.projects.sodeep import memorability_model as memorability  # pylint: disable=g-import-not-at-top

  class TinyBackbone(nn.Module):  # a one-layer stand-in: the freezing logic does not depend on the backbone
    @nn.compact
    def __call__(self, x, train=False):
      x = nn.BatchNorm(use_running_average=not train)(x.reshape(x.shape[0], -1))
      return nn.relu(nn.Dense(6)(x))

  model = memorability.MemorabilityRegressor(TinyBackbone(), hidden=8)
  assert isinstance(models.build_model("memorability_regressor", hidden=8), memorability.MemorabilityRegressor)
  images = jax.random.uniform(jax.random.key(0), (4, 4, 4, 3))
  variables = model.init(jax.random.key(1), {"image": images, "freeze_backbone": jnp.zeros(4, bool)})

  def grads(freeze):
    def loss(params):
      out, _ = model.apply({**variables, "params": params}, {"image": images, "freeze_backbone": freeze},
                           train=True, mutable=["batch_stats"])
      return jnp.sum(out ** 2)
    return jax.jit(jax.grad(loss))(variables["params"])  # one compilation instead of op-by-op dispatch

  frozen, free = grads(jnp.ones(4, bool)), grads(jnp.zeros(4, bool))
  norm = lambda tree: float(sum(jnp.sum(x ** 2) for x in jax.tree_util.tree_leaves(tree)))
  assert norm(frozen["backbone"]) == 0.0 and norm(frozen["mlp_hidden"]) > 0
  assert norm(free["backbone"]) > 0
  np.testing.assert_allclose(frozen["mlp_out"]["kernel"], free["mlp_out"]["kernel"], rtol=1e-5)


def test_real_data_without_paths_names_the_config_key(tmp_path):
  config = config_lib.get_config("spearman_lstm,lamem")
  with pytest.raises(errors.DataNotFoundError, match="data.lamem_dir"):
    task_lib.make_splits(config.data)
  config.data.lamem_dir = str(tmp_path / "nowhere")
  with pytest.raises(errors.DataNotFoundError, match="nowhere"):
    task_lib.make_splits(config.data)
  config = config_lib.get_config("mse,mediaeval")
  with pytest.raises(errors.DataNotFoundError, match="data.mediaeval_ground_truth"):
    task_lib.make_splits(config.data)
  config.data.mediaeval_ground_truth = str(tmp_path / "gt.csv")
  with pytest.raises(errors.DataNotFoundError, match="data.mediaeval_frames_dir"):
    task_lib.make_splits(config.data)


def test_lstm_batch_limit_and_results_table():
  config = config_lib.get_config("spearman_lstm,smoke")
  config.batch_size = 128
  with pytest.raises(ValueError, match="100"):
    task_lib.make_task(config, _random_splits())
  lines = task_lib.results_table([{"variant": "spearman_lstm", "spearman_rho": 0.5},
                                  {"variant": "spearman_soft_ranks", "spearman_rho": 0.4}]).splitlines()
  assert "| 0.5000 | 0.494 |" in lines[2] and lines[3].endswith("| - | - |")


def _random_splits(size=16, seed=0):
  rng = np.random.default_rng(seed)
  make = lambda n: rendered.ArraySource({
      "image": rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8),
      "memorability": rng.uniform(0.4, 1.0, n).astype(np.float32)})
  return {"train": make(48), "validation": make(16), "test": make(16)}


@pytest.mark.parametrize("variant", ["mse", "spearman_lstm"])
def test_smoke_run(variant, tmp_path):
  """Four steps (3 frozen + 1 fine-tuning, L1 in the first 3) of the regression and the sorter family.

  The Spearman variants differ only in the rank function (checked above), so the shipped-sorter one runs.
  """
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config(f"{variant},smoke")
  config.async_checkpointing = False
  task = task_lib.make_task(config, _random_splits())
  batches = task.make_train_iterator(0, 0, 1)
  flags = [bool(next(batches)["inputs"]["freeze_backbone"][0]) for _ in range(4)]
  assert flags == [True, True, True, False]
  result = train.train_and_evaluate(config, str(tmp_path), task)
  assert result.results["step"] == 4
  metrics = result.results["train_metrics"]
  main = "mse" if variant == "mse" else "spearman"
  assert metrics[f"weight/{main}"] == 1.0 and np.isfinite(metrics[f"loss/{main}"])
  assert metrics["weight/l1"] == (0.5 if variant != "mse" else 0.0)  # mean over steps 3-4: 1 then 0
  assert set(result.results["eval"]) == {"validation", "test"}
  assert -1 <= result.results["eval"]["test"]["spearman_rho"] <= 1
  report = result.results["report"]
  assert report["validation_steps"] == [2, 4] and report["variant"] == variant
  assert (tmp_path / "validation_rho.png").exists() and variant in (tmp_path / "results.md").read_text()


# ------------------------------------------------------------------ lists of a batch, UTKFace age path


def _eq4_reference(scores, labels):
  """Eq. 4 with exact ranks (rank 1 = highest; tied labels share their mean rank), one numpy list."""
  n = len(scores)
  score_ranks = scipy.stats.rankdata(-np.asarray(scores))
  label_ranks = scipy.stats.rankdata(-np.asarray(labels))
  return 6.0 * np.sum((score_ranks - label_ranks) ** 2) / (n * (n ** 2 - 1))


def test_lists_cut_the_batch_in_consecutive_lists_for_every_rank_function():
  rng = np.random.default_rng(3)
  labels = rng.integers(1, 90, 200) / 100.0  # integer ages / 100: ties, as UTKFace
  scores = labels + rng.normal(0, 0.2, 200) - np.repeat([0.0, 2.0], 100)  # list 2 scored below list 1
  loss_config = config_lib.get_config("spearman_handcrafted,utkface").loss
  assert loss_config.list_size == 100
  loss_config.sharpness = 1e5  # the handcrafted sorter becomes exact
  term = task_lib.make_loss_terms(loss_config)["spearman"]
  batch = {"memorability": jnp.asarray(labels, jnp.float32)}
  got = float(term(jnp.asarray(scores, jnp.float32), batch))
  expected = np.mean([_eq4_reference(scores[i:i + 100], labels[i:i + 100]) for i in (0, 100)])
  assert got == pytest.approx(expected, abs=2e-3)
  assert _eq4_reference(scores, labels) > got + 0.2  # one list of 200 is another loss
  # A masked item leaves its list only.
  mask = np.ones(200, bool)
  mask[150] = False
  keep = np.arange(100, 200) != 150
  got = float(term(jnp.asarray(scores, jnp.float32), {**batch, "mask": jnp.asarray(mask)}))
  expected = np.mean([_eq4_reference(scores[:100], labels[:100]),
                      _eq4_reference(scores[100:][keep], labels[100:][keep])])
  assert got == pytest.approx(expected, abs=2e-3)
  with pytest.raises(ValueError, match="does not split"):
    term(jnp.zeros(150), {"memorability": jnp.zeros(150)})


def test_list_size_requirements():
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  from ranking_jax.train import preflight  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config("spearman_lstm,utkface")
  config.batch_size = 300  # three lists of 100: allowed for the 100-item sorter
  preflight.check_config(config, task_lib)
  assert task_lib.requirements(config).max_list_length is None
  for list_size, batch_size, match in ((128, 256, "at most 100"), (100, 250, "must divide"), (1, 100, ">= 2")):
    config.loss.list_size, config.batch_size = list_size, batch_size
    with pytest.raises(train.ConfigValueError, match=match):
      preflight.check_config(config, task_lib)


def _feature_splits(seed=0):
  rng = np.random.default_rng(seed)
  make = lambda n: rendered.ArraySource({"features": rng.normal(size=(n, 12)).astype(np.float32),
                                         "age": rng.integers(1, 90, n).astype(np.int32)})
  return {"train": make(64), "validation": make(16), "test": make(16)}


def test_every_variant_trains_on_the_same_batches():
  splits = _feature_splits()
  first = {}
  for variant in ("mse", "l1", "spearman_lstm", "spearman_soft_ranks"):
    config = config_lib.get_config(f"{variant},utkface,smoke,seed=2")
    batches = task_lib.make_task(config, splits).make_train_iterator(0, 0, 1)
    first[variant] = [next(batches) for _ in range(5)]
  for variant, batches in first.items():
    for got, want in zip(batches, first["mse"]):
      np.testing.assert_array_equal(got["inputs"]["features"], want["inputs"]["features"])
      np.testing.assert_array_equal(got["memorability"], want["memorability"])
  # The target is age / 100, and the features arrive unchanged.
  batch = first["mse"][0]
  rows = [int(np.flatnonzero((splits["train"].arrays["features"] == f).all(1))[0])
          for f in batch["inputs"]["features"]]
  np.testing.assert_allclose(batch["memorability"], splits["train"].arrays["age"][rows] / 100.0, rtol=1e-6)


def test_utkface_configs():
  for variant in config_lib.VARIANTS:
    config = config_lib.get_config(f"{variant},utkface")
    assert (config.data.name, config.data.target, config.data.target_scale) == ("utkface", "age", 0.01)
    assert config.model.name == "feature_regressor" and config.loss.list_size == 100
    assert config.batch_size % config.loss.list_size == 0 and config.total_epochs == 15.0
  with pytest.raises(ValueError, match="one of the modifiers"):
    config_lib.get_config("mse,utkface,lamem")


def _write_utkface_zip(path, n=60, side=40):
  import io  # pylint: disable=g-import-not-at-top
  import zipfile  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  with zipfile.ZipFile(path, "w") as archive:
    for i in range(n):
      buffer = io.BytesIO()
      Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buffer, format="JPEG")
      archive.writestr(f"crop_part1/{1 + i}_{i % 2}_{i % 5}_20170101{i:09d}.jpg.chip.jpg", buffer.getvalue())


@_needs_weights
def test_utkface_smoke_run(tmp_path):
  """The whole new path: UTKFace files -> cached frozen-trunk features -> the MLP, two lists per batch."""
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  _write_utkface_zip(tmp_path / "UTKFace-crop_part1.zip")
  config = config_lib.get_config("spearman_handcrafted,utkface,smoke")  # the LSTM compiles in test_smoke_run
  config.data.update(data_dir=str(tmp_path), feature_cache_dir=str(tmp_path / "features"))
  config.async_checkpointing = False
  result = train.train_and_evaluate(config, str(tmp_path / "run"), task_lib.make_task(config))
  assert len(list((tmp_path / "features").iterdir())) == 3  # train / validation / test features cached
  assert result.results["step"] == 4 and np.isfinite(result.results["train_metrics"]["loss/spearman"])
  report = result.results["report"]
  assert (report["data"], report["list_size"], report["batch_size"], report["num_items"]) == ("utkface", 8, 16, 6)
  assert -1 <= report["spearman_rho"] <= 1 and report["spearman_rho_se"] > 0
