"""The CelebA-HQ path of the annotation experiment (40 attributes as tags, a head on frozen trunk features).

The trunk's feature computation and cache have their own tests (test_pretrained_trunk.py,
test_feature_cache.py); here ``pretrained_trunk.feature_splits`` is replaced by features made from the labels
(no EfficientNet pass), on a generated CelebA-HQ folder in the official layout, and the test runs the
experiment end to end: data, head, the paper's two WARP forms, reference rows, report and tables.
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ranking_jax import losses
from ranking_jax import reporting
from ranking_jax import train
from ranking_jax.data import celeba_hq
from ranking_jax.data import feature_cache
from ranking_jax.models import pretrained_trunk
from ranking_jax.projects.multilabel_annotation import multilabel_annotation as task_lib
from ranking_jax.projects.multilabel_annotation import tag_head

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
from configs import multilabel_annotation as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import tables as tables_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from tests import test_data_celeba_hq as celeba_fixture  # pylint: disable=g-import-not-at-top,wrong-import-position

FEATURE_DIM = 24


def _fake_feature_splits(splits, *, cache_dir, **unused):
  """Features = a fixed random projection of the labels + noise, keyed like feature_splits' output."""
  assert cache_dir  # the config's feature_cache_dir reaches the trunk
  projection = np.random.default_rng(0).normal(size=(40, FEATURE_DIM))
  out = {}
  for name, source in splits.items():
    batch = source[np.arange(len(source))]
    noise = np.random.default_rng(len(name)).normal(scale=0.1, size=(len(source), FEATURE_DIM))
    out[name] = feature_cache.FeatureSource(
        {"features": (batch["attributes"] @ projection + noise).astype(np.float32),
         "attributes": batch["attributes"], "index": batch["index"]}, names=source.names)
  return out


@pytest.fixture(scope="module")
def celeba_runs(tmp_path_factory):
  folder = tmp_path_factory.mktemp("celeba_hq")
  celeba_fixture.write_fixture(folder, zip_side=32, num=60)
  runs = {}
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(pretrained_trunk, "feature_splits", _fake_feature_splits)
    for variant in ("warp",):  # one run (~10 s); the other losses' terms are unit-tested
      config = config_lib.get_config(f"{variant},celeba_hq,smoke")
      config.data.data_dir = str(folder)
      config.data.feature_cache_dir = str(tmp_path_factory.mktemp("features"))
      config.async_checkpointing = False
      workdir = tmp_path_factory.mktemp(f"celeba_{variant}_s0")
      result = train.train_and_evaluate(config, str(workdir), task_lib.make_task(config))
      runs[variant] = (config, workdir, result)
  return runs


def test_celeba_hq_config():
  config = config_lib.get_config("softmax,celeba_hq")
  assert config.data.name == "celeba_hq_features" and config.model.name == "tag_head"
  assert config.model.kwargs.num_tags == len(celeba_hq.ATTRIBUTE_NAMES) == 40
  assert config.model.kwargs.num_hidden == 2  # the paper's two hidden FC layers on top
  assert (config.data.image_size, config.data.seed, config.data.test_fraction) == (64, 0, 0.1)
  with pytest.raises(ValueError, match="one dataset modifier"):
    config_lib.get_config("warp,celeba_hq,nuswide")
  with pytest.raises(ValueError, match="fc_width"):
    tag_head.tag_head(num_tags=40, fc_width=0)


def test_celeba_hq_smoke_runs(celeba_runs):
  for variant, (config, workdir, result) in celeba_runs.items():
    results = result.results
    assert results["step"] == 2 and results["complete"], variant
    test = results["eval"]["test"]
    assert test["num_examples"] == 6 and test["num_nonfinite"] == 0  # 10 % of the 60 fixture images
    report = results["report"]
    assert report["tags"] == list(celeba_hq.ATTRIBUTE_NAMES) and report["loss"] == variant
    assert set(report["reference"]) == {"upper_bound", "upper_bound_rarest", "knn"}
    assert "trunk" in report["reference"]["knn"]["description"]
    # The upper bound reads the test labels: every tag an image has (up to k) is recalled.
    assert report["reference"]["upper_bound"]["k5"]["overall_precision"] > 0.5
    assert (workdir / "recall_vs_frequency.png").read_bytes()[:4] == b"\x89PNG"
  pattern = str(pathlib.Path(celeba_runs["warp"][1]).parent / "celeba_warp_s0*")
  text = tables_lib.tables_text("multilabel_annotation", reporting.collect_runs(pattern))
  assert task_lib.ROW_NAMES["warp"] in text and "*paper: CNN + WARP*" in text
  assert "celeba_hq_features, 40 tags" in text and "trunk" in text


def test_single_violator_term_uses_the_step_key():
  # (The paper's warp term runs above and in test_multilabel_annotation.py.)
  rng = np.random.default_rng(0)
  scores = jnp.asarray(rng.normal(size=(4, 12)), jnp.float32)
  labels = jnp.asarray(rng.random((4, 12)) < 0.3, jnp.float32)
  batch = {"labels": labels, "step": jnp.full((4,), 5, jnp.int32)}
  term = task_lib.make_loss_terms("warp_single_violator", seed=2)["warp_single_violator"]
  key = jax.random.fold_in(jax.random.key(2), 5)
  got, expected = jax.jit(lambda s: (term(s, batch), losses.warp_loss_single_violator(s, labels, key=key)))(scores)
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_paired_differences_pair_by_seed():
  from experiments import multilabel_annotation_tables as tables  # pylint: disable=g-import-not-at-top

  def run(loss, seed, recall):
    metrics = {"per_class_recall": recall, "overall_recall": 0.5, "n_plus_percent": 90.0}
    return {"report": {"loss": loss, "seed": seed, "k3": metrics, "k5": metrics}}
  runs = [run("warp", 0, 0.30), run("warp", 1, 0.34), run("softmax", 0, 0.28), run("softmax", 1, 0.31),
          run("softmax", 2, 0.99)]  # seed 2 has no warp run: left out
  text = tables.paired_differences_text(runs)
  # warp - softmax per seed: +2 and +3 points: mean 2.5, sample std 0.71
  assert "| 3 | warp − softmax | 0, 1 | +2.50 ± 0.71 (2) | +0.00 ± 0.00 (2) |" in text
  assert "pairwise" not in text
  assert tables.paired_differences_text(runs[2:]) == ""
