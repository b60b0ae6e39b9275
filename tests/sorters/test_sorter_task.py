"""The SoDeep sorter experiment: its config, its task on the shared trainer, export and reload."""

import json
import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ranking_jax import train
from ranking_jax.sorters import evaluation
from ranking_jax.sorters import models
from ranking_jax.sorters import pretrained
from ranking_jax.sorters import synthetic
from ranking_jax.sorters import task as sorter_task

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from configs import sorter as sorter_config  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_l1_loss_and_metric_match_eq1_loops():
  rng = np.random.default_rng(0)
  out, target = rng.random((3, 5)), rng.random((3, 5))
  where = rng.random((3, 5)) > 0.3
  expected = sum(abs(out[i, j] - target[i, j]) for i in range(3) for j in range(5) if where[i, j]) / where.sum()
  got = sorter_task.l1_loss(jnp.asarray(out), {"targets": jnp.asarray(target), "where": jnp.asarray(where)})
  assert float(got) == pytest.approx(expected, rel=1e-5)
  assert sorter_task.l1_metrics(out, {"targets": target})["l1"] == pytest.approx(np.abs(out - target).mean())
  # A fully masked batch gives 0, not NaN.
  assert float(sorter_task.l1_loss(jnp.ones((2, 3)), {"targets": jnp.zeros((2, 3)),
                                                      "where": jnp.zeros((2, 3), bool)})) == 0.0


def test_config_variants_start_from_base_and_follow_the_paper():
  for variant in sorter_config.VARIANTS:
    for arg in (variant, f"{variant},smoke"):
      config = sorter_config.get_config(arg)
      assert config.model.name == "sorter" and config.max_train_seconds is None
      models.build_sorter(**{"architecture": "lstm", **dict(config.model.kwargs)})
  config = sorter_config.get_config("cnn")  # the paper's halving: 100 epochs of 100 000 pairs
  assert (config.optimizer.name, config.optimizer.learning_rate) == ("adam", 1e-3)
  assert (config.optimizer.schedule.name, config.optimizer.schedule.every_epochs,
          config.optimizer.schedule.decay_factor) == ("halving", 100.0, 0.5)
  lr = train.learning_rate_schedule(config.optimizer, steps_per_epoch=100_000 // 128, total_steps=10)
  np.testing.assert_allclose([lr(0), lr(100 * 781 - 1), lr(100 * 781)], [1e-3, 1e-3, 5e-4], rtol=1e-6)
  default = sorter_config.get_config(None)
  assert default.variant == "lstm" and default.total_steps == 1500  # fixed steps, no wall-time stop
  with pytest.raises(ValueError, match="variant"):
    sorter_config.get_config("nope")


def test_train_iterator_is_deterministic_in_the_step():
  task = sorter_task.make_task(sorter_config.get_config("lstm,smoke"))
  from_zero = task.make_train_iterator(0, 0, 1)
  batches = [next(from_zero) for _ in range(3)]
  resumed = next(task.make_train_iterator(2, 0, 1))
  np.testing.assert_array_equal(resumed["inputs"]["scores"], batches[2]["inputs"]["scores"])
  assert not np.array_equal(batches[0]["inputs"]["scores"], batches[1]["inputs"]["scores"])
  # targets are the normalised ranks of the valid items (rank 1 = highest), checked with a loop.
  scores, where, targets = batches[0]["inputs"]["scores"][0], batches[0]["where"][0], batches[0]["targets"][0]
  valid = scores[where]
  expected = [(1 + sum(v > x for v in valid)) / len(valid) for x in valid]
  np.testing.assert_allclose(targets[where], expected, rtol=1e-6)


def test_short_run_beats_untrained_exports_and_reloads(tmp_path):
  config = sorter_config.get_config("lstm,smoke")
  config.total_steps = 150
  config.eval.size = 300
  config.eval.mixtures = ("authors",)
  config.eval_every_steps = 0
  config.export_pretrained = "smoke_test"
  config.export_dir = str(tmp_path / "pretrained")
  scores, targets = synthetic.test_set(config.eval.seed, 300, 10, mixture="authors")
  task = sorter_task.make_task(config)
  module = sorter_task.sorter_module(config)
  variables = module.init(jax.random.key(0), jnp.zeros((2, 10)), jnp.ones((2, 10), bool))
  untrained = pretrained.SorterRankFn(module, variables, max_length=10)
  untrained_l1 = evaluation.l1_error(untrained, scores, targets)
  result = train.train_and_evaluate(config, str(tmp_path / "run"), task)
  l1 = result.results["eval"]["test/authors"]["l1"]
  assert l1 < 0.5 * untrained_l1, (l1, untrained_l1)
  assert result.results["report"]["l1/authors"] == l1
  assert "0.0350" in (tmp_path / "run" / "results.md").read_text()
  with open(tmp_path / "run" / "results.json", encoding="utf-8") as f:
    on_disk = json.load(f)
  assert on_disk["fingerprint"] == result.results["fingerprint"] and on_disk["complete"]

  directory = str(tmp_path / "pretrained")
  assert pretrained.available_pretrained(directory) == ["smoke_test"]
  loaded = pretrained.load_pretrained("smoke_test", directory)
  assert evaluation.l1_error(loaded, scores, targets) == pytest.approx(l1, rel=1e-5)
  assert pretrained.pretrained_metadata("smoke_test", directory)["steps"] == 150
  with pytest.raises(ValueError, match="Unknown pretrained"):
    pretrained.load_pretrained("nope", directory)
  with open(os.path.join(directory, "smoke_test.msgpack"), "ab") as f:
    f.write(b"corrupt")
  with pytest.raises(ValueError, match="SHA-256"):
    pretrained.load_pretrained("smoke_test", directory)
