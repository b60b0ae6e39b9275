"""A tiny synthetic ranking task for the trainer tests; also a runnable experiment main.

Run as a script (the subprocess tests do)::

    PYTHONPATH=. python tests/test_train_task.py --config=configs/base.py --workdir=/tmp/w \
        --config.total_steps=12

The other trainer test files load this module by path (``testing_utils.train_task_module``).
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

REPO = pathlib.Path(__file__).resolve().parents[1]
NUM_FEATURES = 6
NUM_TRAIN_EXAMPLES = 64
TRUE_WEIGHTS = np.linspace(-1.0, 1.0, NUM_FEATURES).astype(np.float32)
SLEEP_ENV = "RANKING_JAX_TEST_STEP_SLEEP"


class Scorer(nn.Module):
  """MLP with BatchNorm (synced over the pmap axis) regressing one score per example."""

  hidden: int = 16

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.Dense(self.hidden)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name="batch" if train else None)(x)
    x = nn.relu(x)
    return nn.Dense(1)(x)[..., 0]


def _examples(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
  x = rng.normal(size=(n, NUM_FEATURES)).astype(np.float32)
  y = (x @ TRUE_WEIGHTS + 0.1 * rng.normal(size=n)).astype(np.float32)
  return {"inputs": x, "label": y}


def make_train_iterator_fn(global_batch_size: int, seed: int = 0, sleep: float = 0.0):
  """Batches depend on (seed, step) only; each process takes its rows of the same global batch."""

  def make_train_iterator(start_step, process_index, process_count):
    per_process = global_batch_size // process_count
    step = start_step
    while True:
      if sleep:
        time.sleep(sleep)
      batch = _examples(np.random.default_rng([seed, step]), global_batch_size)
      rows = slice(process_index * per_process, (process_index + 1) * per_process)
      yield {k: v[rows] for k, v in batch.items()}
      step += 1

  return make_train_iterator


def make_eval_iterator():
  """Two per-process batches, the last one short (exercises padding + mask)."""
  process_index, process_count = jax.process_index(), jax.process_count()
  data = _examples(np.random.default_rng(12345), 40)
  per_process = 20 // process_count
  for start in (0, 20):
    chunk = {k: v[start:start + 20] for k, v in data.items()}
    rows = slice(process_index * per_process, (process_index + 1) * per_process)
    part = {k: v[rows] for k, v in chunk.items()}
    yield part if start == 0 else {k: v[:max(1, len(v) - 3)] for k, v in part.items()}


def pairwise_hinge(scores, labels):
  """Mean over ordered pairs (y_i > y_j) of max(0, 1 - (s_i - s_j)), over the whole batch."""
  pairs = (labels[:, None] > labels[None, :]).astype(jnp.float32)
  hinge = jax.nn.relu(1.0 - (scores[:, None] - scores[None, :]))
  return jnp.sum(pairs * hinge) / jnp.maximum(jnp.sum(pairs), 1.0)


LOSS_TERMS = {
    "rank": lambda outputs, batch: pairwise_hinge(outputs, batch["label"]),
    "mse": lambda outputs, batch: jnp.mean((outputs - batch["label"]) ** 2),
}


def metrics_fn(predictions, targets):
  return {"kendall_tau": scipy.stats.kendalltau(predictions, targets["label"]).statistic,
          "mse": float(np.mean((predictions - targets["label"]) ** 2)),
          "num_examples": float(len(predictions))}


def make_task(config):
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  return train.Task(model=Scorer(), loss_terms=LOSS_TERMS,
                    make_train_iterator=make_train_iterator_fn(
                        int(config.batch_size), int(config.seed), float(os.environ.get(SLEEP_ENV, 0.0))),
                    evaluators={"validation": train.Evaluator(make_eval_iterator, metrics_fn)},
                    num_train_examples=NUM_TRAIN_EXAMPLES)


def small_config():
  """configs/base.py with the settings the tests use (16 examples per step, 4 steps per epoch)."""
  sys.path.insert(0, str(REPO))
  from configs import base  # pylint: disable=g-import-not-at-top
  config = base.get_config()
  config.batch_size = 16
  config.total_steps = 12
  config.log_every_steps = 1
  config.eval_every_steps = 6
  config.checkpoint_every_steps = 3
  config.optimizer.learning_rate = 0.05
  config.multitask.name = "alternating"
  config.multitask.unit = "steps"
  config.multitask.main = "rank"
  config.multitask.auxiliary = "mse"
  config.async_checkpointing = False
  return config


SMALL_CONFIG_FLAGS = [
    "--config=configs/base.py", "--config.batch_size=16", "--config.total_steps=12",
    "--config.log_every_steps=1", "--config.eval_every_steps=6", "--config.checkpoint_every_steps=3",
    "--config.optimizer.learning_rate=0.05", "--config.multitask.name=alternating",
    "--config.multitask.unit=steps", "--config.multitask.main=rank", "--config.multitask.auxiliary=mse",
]


def run_command(workdir: str, *extra_flags: str) -> list[str]:
  """The command line that trains this task with SMALL_CONFIG_FLAGS in ``workdir``."""
  return [sys.executable, str(pathlib.Path(__file__).resolve()), f"--workdir={workdir}", *SMALL_CONFIG_FLAGS,
          *extra_flags]


def subprocess_env(num_devices: int | None = 4, **extra: str) -> dict[str, str]:
  """Environment of a child run: ``num_devices`` fake CPU devices (None: JAX's default, one device)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO), **extra)
  # The parent's fast-compile flags (conftest.py), with this child's own device count.
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
  env["XLA_FLAGS"] = " ".join(flags)
  if num_devices is not None:
    env["XLA_FLAGS"] += f" --xla_force_host_platform_device_count={num_devices}"
  return env


def test_train_iterator_is_deterministic_in_the_step():
  fresh = make_train_iterator_fn(16)(0, 0, 1)
  batches = [next(fresh) for _ in range(4)]
  resumed = next(make_train_iterator_fn(16)(3, 0, 1))
  np.testing.assert_array_equal(resumed["inputs"], batches[3]["inputs"])


def test_process_slices_tile_the_global_batch():
  full = next(make_train_iterator_fn(16)(5, 0, 1))
  halves = [next(make_train_iterator_fn(16)(5, p, 2)) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([h["label"] for h in halves]), full["label"])


def test_pairwise_hinge_matches_a_loop():
  rng = np.random.default_rng(0)
  s, y = rng.normal(size=7), rng.normal(size=7)
  terms = [max(0.0, 1 - (s[i] - s[j])) for i in range(7) for j in range(7) if y[i] > y[j]]
  assert float(pairwise_hinge(jnp.asarray(s), jnp.asarray(y))) == pytest.approx(np.mean(terms), rel=1e-5)


if __name__ == "__main__":
  sys.path.insert(0, str(REPO))
  from experiments import main_lib  # pylint: disable=g-import-not-at-top
  main_lib.run(make_task)
