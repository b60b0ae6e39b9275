"""Tests of the FG-SBIR experiment (configs, task, metrics, report, tables) on the shared trainer.

References are independent: the paper's eq. 6 and the retrieval metrics as numpy loops, the paper's
Tables 1-4 typed from the text, brute-force triplet counts. The library parts (QMUL loader, generator,
sampling, Bradley-Terry, model) are tested in tests/projects/sketch_retrieval/test_sketch_retrieval_data.py.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from configs import sketch_retrieval as config_lib  # pylint: disable=wrong-import-position
from ranking_jax.projects.sketch_retrieval import qmul  # pylint: disable=g-import-not-at-top,wrong-import-position
from ranking_jax.projects.sketch_retrieval import sketch_retrieval as task_lib  # pylint: disable=wrong-import-position


# ---------------------------------------------------------------------------------------------- configs

# (variant, paper acc@1 on shoes, paper acc@1 on chairs), typed from the paper's Tables 1-4.
PAPER_ACC1 = [("mtl", 50.43, 78.35), ("triplet", 39.13, 69.07), ("no_ap_ar", 37.39, 50.52),
              ("no_ar", 45.22, 72.16), ("no_ap", 44.35, 72.16), ("auto_exhaustive", 43.48, 68.04),
              ("human_optimised_exhaustive", 43.48, 71.13), ("human_optimised_hard", 47.83, 77.32),
              ("human_original", 42.61, 71.13), ("easy", 39.13, 69.07), ("medium", 41.74, 68.04),
              ("hard", 50.43, 78.35), ("auto_hard", 50.43, 78.35)]


def test_every_variant_has_a_config_and_the_papers_row():
  assert len(config_lib.VARIANTS) == 13
  assert {v for v, _, _ in PAPER_ACC1} == set(config_lib.VARIANTS)
  for variant, shoes, chairs in PAPER_ACC1:
    config = config_lib.get_config(variant)
    assert config.variant == variant and config.data.name == "shoe_sketches"
    assert task_lib.PAPER_RESULTS[variant]["shoes"][0] == shoes
    assert task_lib.PAPER_RESULTS[variant]["chairs"][0] == chairs
    assert config_lib.get_config(variant + ",smoke").total_steps == 2
  assert config_lib.get_config("triplet,chairs").data.category == "chairs"
  assert config_lib.get_config("triplet,shoes").data.name == "qmul"


def test_weights_follow_eq5_and_the_variants_tables():
  mtl = config_lib.get_config("mtl").multitask.weights
  assert (mtl.triplet, mtl.attribute_ranking, mtl.sketch_attributes, mtl.positive_attributes,
          mtl.negative_attributes) == (1.0, 1.0, 0.01, 0.01, 0.01)
  no_ap = config_lib.get_config("no_ap").multitask.weights
  assert no_ap.attribute_ranking == 1.0 and no_ap.sketch_attributes == 0.0
  no_ar = config_lib.get_config("no_ar").multitask.weights
  assert no_ar.attribute_ranking == 0.0 and no_ar.negative_attributes == 0.01
  for variant in ("no_ap_ar", "triplet"):
    weights = config_lib.get_config(variant).multitask.weights
    assert weights.attribute_ranking == weights.sketch_attributes == 0.0
  expected = {"triplet": ("human", "all"), "human_original": ("human", "all"), "mtl": ("auto", "hard"),
              "human_optimised_exhaustive": ("human_optimised", "exhaustive"), "easy": ("auto", "easy"),
              "medium": ("auto", "medium"), "auto_exhaustive": ("auto", "exhaustive")}
  for variant, (generation, sampling) in expected.items():
    triplets = config_lib.get_config(variant).triplets
    assert (triplets.generation, triplets.sampling) == (generation, sampling)
  config = config_lib.get_config("mtl")
  assert config.loss.margin == 1.0 and config.eval.attribute_weight == 1.0
  assert config.optimizer.weight_decay == 5e-4


@pytest.mark.parametrize("arg", ["mlt", "mtl,voc", "mtl,shoes,chairs"])
def test_bad_arguments_raise(arg):
  with pytest.raises(ValueError, match="variant|modifier|shoes"):
    config_lib.get_config(arg)


def test_schedule_has_two_stages():
  schedule = task_lib.make_schedule({"triplet": 1.0, "attribute_ranking": 1.0, "sketch_attributes": 0.01},
                                    5, ("triplet", "attribute_ranking", "sketch_attributes", "pretrain"))
  early, late = schedule(jnp.int32(4)), schedule(jnp.int32(5))
  assert {k: float(v) for k, v in early.items()} == {"triplet": 0.0, "attribute_ranking": 0.0,
                                                     "sketch_attributes": 0.0, "pretrain": 1.0}
  assert {k: float(v) for k, v in late.items()} == pytest.approx(
      {"triplet": 1.0, "attribute_ranking": 1.0, "sketch_attributes": 0.01, "pretrain": 0.0})
  kept = task_lib.make_schedule({"triplet": 1.0}, 5, ("triplet", "pretrain"), pretrain_weight_after=0.25)
  assert float(kept(jnp.int32(4))["pretrain"]) == 1.0 and float(kept(jnp.int32(5))["pretrain"]) == 0.25
  assert float(kept(jnp.int32(4))["triplet"]) == 0.0


# ------------------------------------------------------------------------------------------------ metrics


def _fused_loop(sketch_features, photo_features, sketch_logits, photo_logits, weight):
  """Eq. 6 written as a double loop: squared distance + weight * mean attribute cross-entropy."""
  out = np.zeros((len(sketch_features), len(photo_features)))
  for i, j in itertools.product(range(len(sketch_features)), range(len(photo_features))):
    target = 1.0 / (1.0 + np.exp(-sketch_logits[i]))
    predicted = 1.0 / (1.0 + np.exp(-photo_logits[j]))
    entropy = -np.mean(target * np.log(predicted) + (1 - target) * np.log(1 - predicted))
    out[i, j] = np.sum((sketch_features[i] - photo_features[j]) ** 2) + weight * entropy
  return out


def test_retrieval_metrics_match_loops_on_shuffled_eval_rows():
  rng = np.random.default_rng(0)
  n = 12
  features = rng.normal(size=(2 * n, 5))
  features[n:] = features[:n] + rng.normal(0, 0.7, size=(n, 5))  # photo i near sketch i
  logits = rng.normal(size=(2 * n, 3))
  is_sketch = np.repeat([True, False], n)
  index = np.tile(np.arange(n), 2)
  order = rng.permutation(2 * n)  # the evaluator may see rows in any order
  outputs = {"embedding": features[order], "attribute_logits": logits[order]}
  targets = {"is_sketch": is_sketch[order], "index": index[order]}
  triplets = np.array([[s, p, q] for s in range(n) for p, q in ((s, (s + 1) % n), ((s + 2) % n, s))])
  got = task_lib.retrieval_metrics(outputs, targets, triplets=triplets, attribute_weight=1.0)
  fused = _fused_loop(features[:n], features[n:], logits[:n], logits[n:], 1.0)
  plain = _fused_loop(features[:n], features[n:], logits[:n], logits[n:], 0.0)
  for suffix, distances in (("", fused), ("_embedding", plain)):
    ranks = [1 + int(np.sum(distances[s] < distances[s, s])) for s in range(n)]
    assert got[f"acc_at_1{suffix}"] == pytest.approx(np.mean([r <= 1 for r in ranks]))
    assert got[f"acc_at_10{suffix}"] == pytest.approx(np.mean([r <= 10 for r in ranks]))
  expected = np.mean([fused[s, p] < fused[s, q] for s, p, q in triplets])
  assert got["triplet_accuracy"] == pytest.approx(expected)
  assert got["num_queries"] == n
  no_head = task_lib.retrieval_metrics({"embedding": features[order]}, targets, triplets=triplets)
  assert no_head["acc_at_1"] == got["acc_at_1_embedding"]


def test_results_table_and_retrieval_figure(tmp_path):
  table = task_lib.results_table([{"variant": "human_original", "acc_at_1": 0.25, "acc_at_10": 0.75,
                                   "triplet_accuracy": 0.6}], "chairs")
  assert "| 25.00 | 75.00 | 60.00 | 71.13 | 100.00 | 73.84 | Table 3, Human original" in table
  distances = np.array([[0.0, 1.0, 2.0], [0.5, 0.4, 0.1], [1.0, 0.5, 2.0]])
  images = np.zeros((3, 8, 8, 1), np.uint8)
  path = tmp_path / "fig.png"
  ranks = task_lib.plot_retrieval_examples(distances, images, images, str(path), queries=(0, 1, 2), top_k=3)
  assert ranks == [1, 2, 3] and path.read_bytes()[:4] == b"\x89PNG"


# -------------------------------------------------------------------------------------------------- data


def test_embedded_triplets_per_variant():
  counts = {}
  for variant in ("mtl", "auto_exhaustive", "medium", "easy", "human_optimised_hard", "triplet"):
    data = task_lib.prepare_data(config_lib.get_config(f"{variant},smoke"))
    counts[variant] = len(data.train_triplets)
    assert len(data.test_triplets) == 45 * 10  # ground-truth top-10 of each of the 10 test sketches
    t = data.train_triplets
    assert t[:, 1:].max() < 12 and np.all(t[:, 1] != t[:, 2])
  assert counts == {"mtl": 12 * 9, "auto_exhaustive": 12 * 45, "medium": 12 * 15, "easy": 12 * 21,
                    "human_optimised_hard": 12 * 9, "triplet": 12 * 3 * 45}
  assert data.num_attributes == 21 and not data.use_ap  # triplet: no AP


def write_qmul_fixture(folder: pathlib.Path, category: str, sizes=(6, 5), side: int = 40) -> None:
  """A tiny QMUL-layout folder: random strokes, every pair of other photos judged, own photo first."""
  rng = np.random.default_rng(len(category))
  annotation = {}
  for split, n in zip(("train", "test"), sizes):
    for kind in ("sketch", "edge"):
      images = np.where(rng.random((n, side, side)) < 0.1, 0, 255).astype(np.uint8)
      scipy.io.savemat(folder / f"{category}_{kind}_db_{split}.mat", {"data": images})
    per_sketch = [[[i, j] for j in range(n) if j != i] for i in range(n)]
    annotation[split] = {"images": [f"{k}.jpg" for k in range(n)], "sketches": [f"{k}.png" for k in range(n)],
                         "triplets": per_sketch}
  (folder / f"{category}_annotation.json").write_text(json.dumps(annotation))


@pytest.mark.parametrize("category", ["shoes", "chairs"])
def test_qmul_missing_files_and_attributes(tmp_path, category):
  config = config_lib.get_config(f"triplet,{category},smoke")
  with pytest.raises(qmul.DataNotFoundError, match="data_dir"):
    task_lib.prepare_data(config)
  config.data.data_dir = str(tmp_path)
  with pytest.raises(qmul.DataNotFoundError, match=f"{category}_sketch_db_train.mat"):
    task_lib.prepare_data(config)
  write_qmul_fixture(tmp_path, category)
  data = task_lib.prepare_data(config)
  assert len(data.train_triplets) == 6 * 5 and len(data.test_triplets) == 5 * 4
  for variant in ("mtl", "no_ap", "easy", "auto_exhaustive"):
    auto = config_lib.get_config(f"{variant},{category},smoke")
    auto.data.data_dir = str(tmp_path)
    with pytest.raises(qmul.AttributesNotFoundError, match="attributes_file"):
      task_lib.prepare_data(auto)
  human = config_lib.get_config(f"human_original,{category},smoke")
  human.data.data_dir = str(tmp_path)
  data = task_lib.prepare_data(human)
  assert not data.use_ap and "AP off" in data.notes[0]
  assert task_lib.head_sizes(human, data)["num_attributes"] == task_lib.PAPER_NUM_ATTRIBUTES[category]


# --------------------------------------------------------------------------------------------- smoke runs


def _check_run(config, task, workdir):
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  result = train.train_and_evaluate(config, str(workdir), task)
  results = result.results
  assert results["step"] == 2 and results["complete"]
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  train_records = [r for r in records if r["split"] == "train"]
  assert len(train_records) == 2
  for step, record in enumerate(train_records):
    terms = {k[len("loss/"):]: v for k, v in record.items() if k.startswith("loss/")}
    weights = {k: record[f"weight/{k}"] for k in terms}
    after = config.pretrain.weight_after
    assert weights["pretrain"] == (1.0 if step == 0 else after)  # stage 1 = the first step in smoke
    if step == 0:
      assert all(weights[k] == 0.0 for k in terms if k != "pretrain")
    else:
      assert weights == pytest.approx({k: config.multitask.weights[k] for k in terms} | {"pretrain": after})
    assert record["loss"] == pytest.approx(sum(weights[k] * terms[k] for k in terms), rel=1e-5, abs=1e-6)
  report = results["report"]
  test = results["eval"]["test"]
  assert report["acc_at_1"] == test["acc_at_1"] and 0.0 <= test["triplet_accuracy"] <= 1.0
  assert (workdir / "retrieval_examples.png").exists() and "paper" in (workdir / "results.md").read_text()
  return terms, report


def test_smoke_run_mtl_embedded(tmp_path):
  """Automatic hard triplets with AP + AR and the pre-training stage (the Table 1-4 MTL family)."""
  config = config_lib.get_config("mtl,smoke")
  config.async_checkpointing = False
  terms, report = _check_run(config, task_lib.make_task(config), tmp_path)
  assert set(terms) == {"triplet", "attribute_ranking", "sketch_attributes", "positive_attributes",
                        "negative_attributes", "pretrain"}
  assert report["paper"]["paper_acc_at_1"] == 50.43 and report["data"] == "embedded"


def test_smoke_run_triplet_baseline_on_a_qmul_fixture(tmp_path):
  """Human triplets, no side tasks, on QMUL-layout files (no attributes needed)."""
  write_qmul_fixture(tmp_path, "shoes")
  config = config_lib.get_config("triplet,shoes,smoke")
  config.async_checkpointing = False
  config.data.data_dir = str(tmp_path)
  terms, report = _check_run(config, task_lib.make_task(config), tmp_path / "run")
  assert set(terms) == {"triplet", "pretrain"}
  assert report["data"] == "qmul_shoes" and report["num_queries"] == 5


def test_tables_script_builds_tables_from_runs(tmp_path):
  for name, variant, seed, acc, steps in (("a", "mtl", 0, 0.5, 600), ("b", "mtl", 1, 0.3, 600),
                                          ("c", "triplet", 0, 0.2, 600), ("d", "easy", 0, 0.1, 600),
                                          ("e", "mtl", 0, 0.9, 2)):  # a smoke run: its own row
    (tmp_path / name).mkdir()
    row = {"variant": variant, "data": "embedded", "seed": seed, "category": "shoes", "acc_at_1": acc,
           "acc_at_10": 0.9, "triplet_accuracy": 0.7, "steps": steps}
    (tmp_path / name / "results.json").write_text(json.dumps({"report": row, "step": steps}))
  out = tmp_path / "out"
  text = subprocess.run([sys.executable, "-m", "experiments.tables", "sketch_retrieval", f"--runs={tmp_path}/*",
                         f"--out={out}"], check=True, cwd=REPO, capture_output=True, text=True).stdout
  # Two schedules (600 and 2 steps): one section each, and one tables.md per schedule under --out.
  assert (out / "steps_600" / "tables.md").exists() and (out / "steps_2" / "tables.md").exists()
  assert "40.00 ± 14.14 (2 seeds)" in text  # mtl acc@1 over two seeds, in %
  assert "## Table 1" in text and "## Table 4" in text
  assert "| triplet | embedded | scratch | 600 | 1 (seeds [0]) | 20.00" in text
  assert "| mtl | embedded | scratch | 2 | 1 (seeds [0]) | 90.00" in text  # not averaged into the 600-step seeds
  assert "| hard | embedded | scratch | 600 | 2 (seeds [0, 1]) = mtl | 40.00 ± 14.14 (2 seeds)" in text
  assert "| medium | embedded | - | - | not run |" in text
  # No finished run under the glob: one error line, exit status 2 (experiments.tables, shared by every experiment).
  empty = subprocess.run([sys.executable, "-m", "experiments.tables", "sketch_retrieval",
                          f"--runs={tmp_path}/nothing*"], cwd=REPO, capture_output=True, text=True, check=False)
  assert empty.returncode == 2 and "no results.json" in empty.stderr and "Traceback" not in empty.stderr
