"""Tests of SoDeep's Recall@K task (Table 3): configs, losses against loops, COCO path, smoke runs."""

from __future__ import annotations

import json
import pathlib
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))

from configs import sodeep_recall as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.data.errors import DataNotFoundError  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.projects.sodeep import sodeep_recall as task_lib  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_variants_configs_and_paper_rows():
  for variant in config_lib.VARIANTS:
    config = config_lib.get_config(variant)
    assert config.batch_size <= 100 and config.eval.fold_size * 5 == config.data.num_test
    smoke = config_lib.get_config(variant + ",smoke")
    assert smoke.total_steps == 2 and smoke.batch_size % 4 == 0
  triplet = config_lib.get_config("triplet_hard")
  assert triplet.loss.name == "triplet_hard" and triplet.loss.margin == 0.2
  assert dict(triplet.multitask.weights) == {"triplet_hard": 1.0}
  lstm = config_lib.get_config("recall_lstm")
  assert lstm.loss.name == "recall" and lstm.loss.rank_fn == "lstm_h64_d100"
  soft = config_lib.get_config("recall_soft_ranks").loss
  assert soft.rank_fn == "soft_ranks" and soft.standardize and not lstm.loss.standardize
  coco = config_lib.get_config("recall_lstm,coco")
  assert coco.data.name == "coco_captions" and coco.eval.fold_size == 1000
  assert coco.model.kwargs.backbone == "resnet152"
  assert task_lib.PAPER_RESULTS["recall_lstm"][0][0] == 71.5
  assert task_lib.PAPER_RESULTS["triplet_hard"][0][0] == 69.8


def _max_of_hinges_loop(s, margin):
  n = len(s)
  total = 0.0
  for i in range(n):
    total += max(max(0.0, margin - s[i, i] + s[i, j]) for j in range(n) if j != i)  # captions
    total += max(max(0.0, margin - s[i, i] + s[j, i]) for j in range(n) if j != i)  # images
  return total / n


def test_max_of_hinges_matches_a_loop():
  rng = np.random.default_rng(0)
  s = rng.uniform(-1, 1, size=(6, 6))
  got = float(task_lib.max_of_hinges_loss(jnp.asarray(s), margin=0.3))
  assert got == pytest.approx(_max_of_hinges_loop(s, 0.3), rel=1e-5)
  assert float(task_lib.max_of_hinges_loss(jnp.eye(4), margin=0.5)) == 0.0


def test_sum_of_hinges_matches_a_loop_and_the_warmup_schedules_it():
  rng = np.random.default_rng(1)
  s = rng.uniform(-1, 1, size=(5, 5))
  loop = sum(max(0.0, 0.3 - s[i, i] + s[i, j]) + max(0.0, 0.3 - s[i, i] + s[j, i])
             for i in range(5) for j in range(5) if j != i) / 5
  assert float(task_lib.sum_of_hinges_loss(jnp.asarray(s), margin=0.3)) == pytest.approx(loop, rel=1e-5)
  assert config_lib.get_config("triplet_hard_warmup").loss.warmup_epochs == 2.0
  assert config_lib.get_config("triplet_hard").loss.warmup_epochs == 0
  config = config_lib.get_config("triplet_hard_warmup,smoke")
  config.loss.warmup_epochs = 2.0
  source = _ArraySource({"image": np.zeros((32, 4, 4, 3), np.float32),
                         "captions": np.ones((32, 5, 3), np.int64), "caption_lengths": np.full((32, 5), 3)})
  task = task_lib.make_task(config, {"train": source, "validation": source, "test": source, "vocab_size": 9})
  assert set(task.loss_terms) == {"triplet_hard", "triplet_sum"}
  # 32 images / batch 16 = 2 steps per epoch: 4 warm-up steps of the sum, then the max alone.
  weights = [{k: float(v) for k, v in task.schedule(jnp.int32(step)).items()} for step in (3, 4)]
  assert weights == [{"triplet_sum": 1.0, "triplet_hard": 0.0}, {"triplet_sum": 0.0, "triplet_hard": 1.0}]


def test_recall_term_uses_both_directions():
  from ranking_jax import ranks  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config("recall_soft_ranks")
  config.loss.rank_fn = "soft_ranks"
  config.loss.regularization_strength = 1e-4  # ~ exact ranks
  term = task_lib.make_loss_terms(config.loss)["recall"]
  image = np.eye(3, dtype=np.float32)
  caption = np.array([[1, 0, 0], [0, 0.2, 1], [0, 1, 0.1]], np.float32)  # captions 1 and 2 swapped-ish
  caption /= np.linalg.norm(caption, axis=1, keepdims=True)
  s = image @ caption.T
  exact = ranks.hard_ranks(jnp.asarray(s))
  # Loop over eq. 10 with margin 1 in rank positions, rows then columns.
  def eq10(matrix):
    r = np.asarray(ranks.hard_ranks(jnp.asarray(matrix)))
    return np.mean([max(max(0.0, 1 + r[i, i] - r[i, c]) for c in range(3) if c != i) for i in range(3)])
  got = float(term({"image_embedding": jnp.asarray(image), "caption_embedding": jnp.asarray(caption)}, {}))
  assert exact.shape == (3, 3)
  assert got == pytest.approx(eq10(s) + eq10(s.T), abs=1e-2)
  assert got > 0


def test_recall_metrics_fold_count_and_nonfinite():
  rng = np.random.default_rng(2)
  images = rng.normal(size=(20, 4))
  images /= np.linalg.norm(images, axis=-1, keepdims=True)  # unit vectors: dot = cosine, as the model's
  captions = images[:, None, :] + 0.01 * rng.normal(size=(20, 5, 4))
  captions /= np.linalg.norm(captions, axis=-1, keepdims=True)
  out = task_lib.recall_metrics({"image_embedding": images, "caption_embedding": captions}, None,
                                fold_size=10)
  assert out["num_folds"] == 2 and out["caption_retrieval/R@1"] == 1.0 and out["image_retrieval/R@1"] == 1.0
  bad = task_lib.recall_metrics({"image_embedding": images * np.nan, "caption_embedding": captions}, None,
                                fold_size=10)
  assert np.isnan(bad["caption_retrieval/R@1"]) and bad["num_nonfinite"] > 0


def test_train_batches_draw_one_caption_per_image_deterministically():
  config = config_lib.get_config("triplet_hard,smoke")
  captions = np.arange(32 * 5 * 3).reshape(32, 5, 3)
  source = _ArraySource({"image": np.zeros((32, 4, 4, 3), np.float32), "captions": captions,
                         "caption_lengths": np.full((32, 5), 3)})
  splits = {"train": source, "validation": source, "test": source, "vocab_size": 500}
  task = task_lib.make_task(config, splits)
  fresh = task.make_train_iterator(0, 0, 1)
  batches = [next(fresh) for _ in range(4)]
  resumed = next(task.make_train_iterator(3, 0, 1))
  np.testing.assert_array_equal(resumed["inputs"]["captions"], batches[3]["inputs"]["captions"])
  rows = batches[0]["inputs"]["captions"]
  assert rows.shape == (16, 3)
  for row in rows:  # each is one of the five captions of its image
    image, k = divmod(int(row[0]) // 3, 5)
    np.testing.assert_array_equal(row, captions[image, k])
  picks = np.concatenate([(b["inputs"]["captions"][:, 0] // 3) % 5 for b in batches])
  assert len(set(picks.tolist())) > 1
  evals = next(task.evaluators["test"].make_iterator())
  assert evals["inputs"]["captions"].shape == (16, 5, 3)


class _ArraySource:

  def __init__(self, arrays):
    self.arrays = arrays

  def __len__(self):
    return len(next(iter(self.arrays.values())))

  def __getitem__(self, indices):
    return {k: v[np.asarray(indices)] for k, v in self.arrays.items()}


def test_coco_path_on_mock_data_and_missing_data(tmp_path):
  sys.path.insert(0, str(pathlib.Path(__file__).parent))  # the sibling test module that writes the fixture
  from test_sodeep_retrieval_data import write_coco_captions_metadata  # pylint: disable=g-import-not-at-top
  from ranking_jax.projects.sodeep import coco_captions  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config("recall_lstm,coco")
  config.data.image_size = 16
  config.data.tfds_data_dir = str(tmp_path / "missing")
  with pytest.raises(DataNotFoundError, match="tfds build coco_captions"):
    task_lib.make_splits(config.data)
  metadata_dir = write_coco_captions_metadata(tmp_path / "meta")
  config.data.tfds_data_dir = ""
  with tfds.testing.mock_data(num_examples=6, data_dir=metadata_dir,
                              policy=tfds.testing.MockPolicy.USE_FILES):
    vocabulary = coco_captions.build_coco_vocabulary(min_count=1, skip_image_decoding=False)
    original = coco_captions.build_coco_vocabulary
    try:  # the task builds the default (min_count 4) vocabulary; mock captions are random words
      coco_captions.build_coco_vocabulary = lambda *a, **k: vocabulary
      splits = task_lib.make_splits(config.data)
    finally:
      coco_captions.build_coco_vocabulary = original
    batch = task_lib.to_eval_batch(splits["test"][np.arange(3)])
  assert splits["vocab_size"] == len(vocabulary)
  assert [len(splits[k]) for k in ("train", "validation", "test")] == [12, 6, 6]
  assert batch["inputs"]["image"].shape == (3, 16, 16, 3) and batch["inputs"]["captions"].shape[:2] == (3, 5)


@pytest.mark.parametrize("variant", ["recall_lstm"])
def test_smoke_run(variant, tmp_path):
  """Two steps on 32x32 captioned scenes: the loss term, both evaluators and the report.

  ``recall_soft_ranks`` differs from ``recall_lstm`` only in the rank function and ``triplet_hard`` only in
  its loss term (tested against a loop above; a compilation costs ~20 s), so one variant runs.
  """
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config(f"{variant},smoke")
  config.async_checkpointing = False
  result = train.train_and_evaluate(config, str(tmp_path), task_lib.make_task(config))
  results = result.results
  assert results["step"] == 2 and results["complete"]
  test = result.predictions["test"]
  assert test.outputs["caption_embedding"].shape == (16, 5, 8)
  np.testing.assert_allclose(np.linalg.norm(test.outputs["image_embedding"], axis=-1), 1.0, rtol=1e-5)
  assert results["eval"]["test"]["num_folds"] == 2 and results["eval"]["test"]["num_nonfinite"] == 0
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  name = config.loss.name
  for record in [r for r in records if r["split"] == "train"]:
    assert record["loss"] == pytest.approx(record[f"loss/{name}"], rel=1e-6) and record["loss"] > 0
  report = results["report"]
  assert report["paper"]["row"] == task_lib.PAPER_RESULTS[variant][1]
  assert "Table 3" in (tmp_path / "results.md").read_text()
