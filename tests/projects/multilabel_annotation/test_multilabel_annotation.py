"""The multilabel-annotation experiment: config, loss terms, metrics, reference rows, tables and smoke runs."""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ranking_jax import reporting
from ranking_jax import train
from ranking_jax.data import rendered
from ranking_jax.projects.multilabel_annotation import scene_tags
from ranking_jax.projects.multilabel_annotation import multilabel_annotation as task_lib

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
from configs import multilabel_annotation as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import tables as tables_lib  # pylint: disable=g-import-not-at-top,wrong-import-position


# ---------------------------------------------------------------------------------------- configs


def test_variants_and_modifiers():
  assert config_lib.VARIANTS == ("softmax", "pairwise", "warp", "warp_single_violator", "warp_exact")
  for variant in config_lib.VARIANTS:
    config = config_lib.get_config(variant)
    assert config.variant == config.loss.name == variant
    assert dict(config.multitask.weights) == {variant: 1.0}
    # Embedded CPU recipe: Adam, batch norm, no dropout (the paper's SGD recipe killed the ranking runs).
    assert (config.optimizer.name, config.optimizer.learning_rate, config.batch_size) == ("adam", 1e-3, 32)
    assert config.model.kwargs.batch_norm and config.model.kwargs.dropout_rate == 0.0
    assert config.optimizer.schedule.name == "halving"  # a staircase decay
    assert config.data.name == "scene_tags" and config.model.kwargs.num_tags == scene_tags.NUM_TAGS
    assert config_lib.get_config(variant + ",smoke").total_steps == 2
  nuswide = config_lib.get_config("warp,nuswide")
  assert (nuswide.data.name, nuswide.model.kwargs.num_tags, nuswide.model.kwargs.preset) == ("nuswide", 81,
                                                                                             "paper")
  assert (nuswide.data.image_size, nuswide.data.crop_size, nuswide.optimizer.learning_rate) == (256, 220, 0.002)
  assert (nuswide.optimizer.name, nuswide.optimizer.momentum) == ("sgd", 0.9)  # the paper's recipe
  voc = config_lib.get_config("softmax,voc2007")
  assert (voc.data.name, voc.model.kwargs.num_tags) == ("voc2007_multilabel", 20)
  for bad in ("wrap", "warp,nuswide,voc2007", "warp,tpu"):
    with pytest.raises(ValueError):
      config_lib.get_config(bad)


# ------------------------------------------------------------------------------- losses and metrics


def _softmax_loop(s, y):
  total, n = 0.0, 0
  for scores, labels in zip(s, y):
    positives = [j for j in range(len(labels)) if labels[j] > 0]
    if not positives:
      continue
    log_z = np.log(np.sum(np.exp(scores)))
    total += -sum(scores[j] - log_z for j in positives) / len(positives)
    n += 1
  return total / n


def _pairwise_loop(s, y):
  values = []
  for scores, labels in zip(s, y):
    pos = [j for j in range(len(labels)) if labels[j] > 0]
    neg = [j for j in range(len(labels)) if labels[j] <= 0]
    values.append(sum(max(0.0, 1.0 - scores[j] + scores[k]) for j in pos for k in neg))
  return float(np.mean(values))


def _warp_exact_loop(s, y):
  values = []
  for scores, labels in zip(s, y):
    pos = [j for j in range(len(labels)) if labels[j] > 0]
    neg = [j for j in range(len(labels)) if labels[j] <= 0]
    total = 0.0
    for j in pos:
      hinges = [max(0.0, 1.0 - scores[j] + scores[k]) for k in neg]
      rank = sum(h > 0 for h in hinges)
      if rank:
        total += sum(1.0 / i for i in range(1, rank + 1)) / rank * sum(hinges)
    values.append(total)
  return float(np.mean(values))


def test_loss_terms_match_the_paper_formulas_and_warp_key_follows_the_step():
  rng = np.random.default_rng(0)
  scores = rng.normal(size=(5, 12)).astype(np.float32)
  labels = (rng.random((5, 12)) < 0.3).astype(np.float32)
  labels[:, 0] = 1.0
  batch = {"labels": jnp.asarray(labels), "step": jnp.full((5,), 7, jnp.int32)}
  out = jnp.asarray(scores)
  for name, loop in (("softmax", _softmax_loop), ("pairwise", _pairwise_loop), ("warp_exact", _warp_exact_loop)):
    term = task_lib.make_loss_terms(name)[name]
    assert float(term(out, batch)) == pytest.approx(loop(scores, labels), rel=1e-4)
  warp = jax.jit(task_lib.make_loss_terms("warp", seed=3)["warp"])
  same = float(warp(out, batch))
  assert same == float(warp(out, dict(batch)))  # deterministic in (seed, step)
  others = {float(warp(out, {**batch, "step": jnp.full((5,), s, jnp.int32)})) for s in range(8)}
  assert len(others) > 1  # the draws change with the step
  with pytest.raises(KeyError, match="step"):
    task_lib.make_loss_terms("warp")["warp"](out, {"labels": batch["labels"]})
  with pytest.raises(ValueError, match="loss"):
    task_lib.make_loss_terms("hinge")


def _brute_force(scores, labels, k):
  num_tags = labels.shape[1]
  top = [set(np.argsort(-row, kind="stable")[:k].tolist()) for row in scores]
  tp = [sum(c in t and labels[i, c] for i, t in enumerate(top)) for c in range(num_tags)]
  pred = [sum(c in t for t in top) for c in range(num_tags)]
  pos = labels.sum(axis=0)
  recall = [tp[c] / pos[c] if pos[c] else 0.0 for c in range(num_tags)]
  precision = [tp[c] / pred[c] if pred[c] else 0.0 for c in range(num_tags)]
  return {"per_class_recall": np.mean(recall), "per_class_precision": np.mean(precision),
          "overall_recall": sum(tp) / pos.sum(), "overall_precision": sum(tp) / sum(pred),
          "n_plus_percent": 100.0 * sum(r > 0 for r in recall) / num_tags}


def test_annotation_metrics_against_brute_force():
  rng = np.random.default_rng(1)
  labels = rng.random((30, 9)) < 0.25
  labels[np.arange(30), rng.integers(0, 9, 30)] = True
  scores = rng.normal(size=(30, 9))
  out = task_lib.annotation_metrics(scores, {"labels": labels.astype(np.float32)})
  for k in (3, 5):
    expected = _brute_force(scores, labels, k)
    for metric, value in expected.items():
      assert out[f"k{k}/{metric}"] == pytest.approx(value), (k, metric)
  assert out["num_examples"] == 30 and out["num_nonfinite"] == 0


def test_crop_and_batches():
  images = np.arange(2 * 6 * 6 * 3, dtype=np.float32).reshape(2, 6, 6, 3)
  np.testing.assert_array_equal(task_lib.crop(images, 4), images[:, 1:5, 1:5])
  random = task_lib.crop(images, 4, np.random.default_rng(0))
  assert random.shape == (2, 4, 4, 3)
  for image, window in zip(images, random):  # every crop is a window of its own image
    assert any(np.array_equal(image[t:t + 4, l:l + 4], window) for t in range(3) for l in range(3))
  assert task_lib.crop(images, 0) is images


# ----------------------------------------------------------------------------------- reference rows


def _random_splits(num_train=32, num_eval=16, size=32, num_tags=scene_tags.NUM_TAGS, seed=0):
  rng = np.random.default_rng(seed)

  def make(n):
    labels = rng.random((n, num_tags)) < 0.05
    labels[np.arange(n), rng.integers(0, 6, n)] = True
    return rendered.ArraySource({"image": rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8),
                                 "labels": labels.astype(np.float32)})
  return {"train": make(num_train), "validation": make(num_eval), "test": make(num_eval)}


def test_reference_rows_upper_bound_against_brute_force():
  splits = _random_splits()
  rows = task_lib.reference_rows(splits, num_neighbours=3)
  labels = splits["test"].arrays["labels"] > 0
  for k in (3, 5):
    kept = np.minimum(labels.sum(axis=1), k).sum()
    upper = rows["upper_bound"][f"k{k}"]
    assert upper["overall_recall"] == pytest.approx(kept / labels.sum())
    assert upper["overall_precision"] == pytest.approx(kept / (len(labels) * k))
    rarest = rows["upper_bound_rarest"][f"k{k}"]  # the same overall figures, a per-class recall >= random's
    assert rarest["overall_recall"] == pytest.approx(upper["overall_recall"])
    assert rarest["per_class_recall"] >= upper["per_class_recall"] - 1e-12
    assert 0.0 <= rows["knn"][f"k{k}"]["overall_recall"] <= upper["overall_recall"] + 1e-12
  assert len(rows["knn"]["recall_by_tag"]["k3"]) == scene_tags.NUM_TAGS


def test_paper_tables_and_table_rows():
  assert set(task_lib.PAPER_TABLES) == {3, 5}
  rows = task_lib.table_rows([("CNN + WARP (this run)", {"per_class_recall": 0.5, "per_class_precision": 0.25,
                                                          "overall_recall": 0.6, "overall_precision": 0.4,
                                                          "n_plus_percent": 97.5})], 3, ["warp"])
  table = task_lib.annotation_table(rows)
  lines = table.splitlines()
  assert lines[2] == "| CNN + WARP (this run) | 50.00 | 25.00 | 60.00 | 40.00 | 97.50 |"
  assert lines[3] == "| *paper: CNN + WARP* | 35.60 | 31.65 | 60.49 | 48.59 | 96.29 |"


# ------------------------------------------------------------------------------------------- runs


SMOKE_VARIANTS = ("softmax", "pairwise", "warp")


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
  """Two steps of each loss family on random 32x32 images: softmax, the deterministic pair sums (pairwise;
  warp_exact differs only in its loss term, checked against a loop above) and the sampled WARP (which alone
  needs the step in the batch)."""
  runs = {}
  for variant in SMOKE_VARIANTS:
    config = config_lib.get_config(f"{variant},smoke")
    config.async_checkpointing = False
    config.batch_size, config.eval_batch_size = 8, 8
    config.eval.knn_neighbours = 3
    workdir = tmp_path_factory.mktemp(f"{variant}_s0")
    result = train.train_and_evaluate(config, str(workdir), task_lib.make_task(config, _random_splits()))
    runs[variant] = (config, workdir, result)
  return runs


@pytest.mark.parametrize("variant", SMOKE_VARIANTS)
def test_smoke_run(smoke_runs, variant):
  config, workdir, result = smoke_runs[variant]
  results = result.results
  assert results["step"] == 2 and results["complete"] and results["train_step_compilations"] == 1
  for split in ("validation", "test"):
    metrics = results["eval"][split]
    assert metrics["num_examples"] == 16 and metrics["num_nonfinite"] == 0
    assert 0.0 <= metrics["k3/overall_recall"] <= 1.0
  test = result.predictions["test"]
  again = task_lib.annotation_metrics(test.outputs, test.targets)
  assert results["eval"]["test"]["k5/per_class_recall"] == pytest.approx(again["k5/per_class_recall"])
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  train_records = [r for r in records if r["split"] == "train"]
  assert len(train_records) == 2
  for record in train_records:
    assert record[f"weight/{variant}"] == 1.0 and np.isfinite(record["loss"])
    assert record["loss"] == pytest.approx(record[f"loss/{variant}"], rel=1e-6)
  report = results["report"]
  assert report["k3"]["overall_recall"] == results["eval"]["test"]["k3/overall_recall"]
  assert set(report["reference"]) == {"upper_bound", "upper_bound_rarest", "knn"}
  assert len(report["recall_by_tag"]["k3"]) == len(report["tag_frequency"]) == scene_tags.NUM_TAGS
  text = (workdir / "results.md").read_text()
  assert "Table 1: k = 3" in text and "Table 2: k = 5" in text and "*paper: Upper bound*" in text
  assert (workdir / "recall_vs_frequency.png").read_bytes()[:4] == b"\x89PNG"


def test_tables_script_gathers_the_runs(smoke_runs, tmp_path):
  pattern = str(pathlib.Path(smoke_runs["warp"][1]).parent / "*_s00")
  text = tables_lib.tables_text("multilabel_annotation", reporting.collect_runs(pattern), str(tmp_path))
  for variant in SMOKE_VARIANTS:
    assert task_lib.ROW_NAMES[variant] in text
  assert "Table 1" in text and "Table 2" in text and "(1 seed: 0; 2 steps)" in text
  assert (tmp_path / "recall_vs_frequency.png").exists()
  with pytest.raises(FileNotFoundError):
    tables_lib.tables_text("multilabel_annotation", reporting.collect_runs(str(tmp_path / "nothing*")))


def test_missing_real_data_names_the_file(tmp_path):
  from ranking_jax.data.errors import DataNotFoundError  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config("warp,nuswide")
  with pytest.raises(DataNotFoundError, match="data_dir"):
    task_lib.make_splits(config.data)
  config.data.data_dir = str(tmp_path)
  with pytest.raises(DataNotFoundError, match="Concepts81.txt"):
    task_lib.make_splits(config.data)
  voc = config_lib.get_config("warp,voc2007")
  voc.data.data_dir = str(tmp_path)
  with pytest.raises(DataNotFoundError, match="tfds build voc/2007"):
    task_lib.make_splits(voc.data)


def test_annotation_benchmark_cases_run():
  from ranking_jax import benchmarking  # pylint: disable=g-import-not-at-top
  (labels,) = benchmarking._annotation_multihot(np.random.default_rng(0), 50, 81)  # pylint: disable=protected-access
  per_image = np.asarray(labels).sum(axis=1)
  assert per_image.min() >= 1 and per_image.max() <= 5
  assert benchmarking.ANNOTATION_SHAPES == ((32, 81), (1024, 1000))
  cases = benchmarking.annotation_cases()
  assert [c.name for c in cases] == ["multilabel_softmax_loss", "pairwise_ranking_loss", "warp_loss (sampled rank)",
                                     "warp_loss_single_violator", "warp_loss_exact"]
  for case in cases:
    result = benchmarking.run_case(case, 2, 6, min_repeats=1, min_seconds=0.0, max_repeats=1)
    assert result.backward_ms is not None and result.backward_ms > 0 and not result.note
  timed = benchmarking.interleaved_backward_ms(cases[2:], 2, 6, repeats=2)
  assert set(timed) == {c.name for c in cases[2:]}
  assert all(0 < t["min"] <= t["median"] for t in timed.values())


def test_score_spread_flags_a_network_that_ignores_the_image():
  labels = {"labels": np.eye(4)[[0, 1, 2, 3, 0]]}
  prior = np.tile([0.4, 0.3, 0.2, 0.1], (5, 1))  # the same scores for every image
  assert task_lib.annotation_metrics(prior, labels, ks=(1,))["score_spread"] == 0.0
  varied = prior + np.arange(5)[:, None] * np.array([1.0, -1.0, 0.0, 0.0])
  expected = np.mean(np.std(varied, axis=0))  # numpy's population std, per tag, then the mean
  assert task_lib.annotation_metrics(varied, labels, ks=(1,))["score_spread"] == pytest.approx(expected)
