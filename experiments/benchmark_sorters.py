"""Sorter figures (SoDeep, issue 3): L1 per mixture, one-step Spearman gain, forward+backward time, pairs/s.

  python -m experiments.benchmark_sorters [--size=10000] [--measure_training_steps=20]

For the handcrafted sigmoid sorter at several sharpness values and every shipped pretrained sorter:
L1 on the fixed 10 000-vector test set of each mixture (d = 100, seed of configs/sorter.py), the one-step
Spearman gain (500 lists), and the median forward+backward time to the input at batch 32 x d = 100. The
training throughput is the one recorded when the shipped sorter was trained, and, with
--measure_training_steps > 0, re-measured here for each architecture at its config's batch size. Timings
on a shared CPU are noisy.
"""

from __future__ import annotations

import time
from typing import Sequence

import jax
import numpy as np

from ranking_jax.sorters import evaluation
from ranking_jax.sorters import pretrained
from ranking_jax.sorters import synthetic

AUTHORS_LSTM_MS = 797.0  # the authors' LSTM, forward+backward at batch 32 x d = 100 (issue 3)


def _measure_training(variant: str, steps: int) -> float:
  from configs import sorter as sorter_config  # pylint: disable=g-import-not-at-top
  from ranking_jax.sorters import training  # pylint: disable=g-import-not-at-top
  config = sorter_config.get_config(variant)
  module, _ = training.module_from_config(config)
  state, tx = training._init_state(config, module, jax.random.key(0))  # pylint: disable=protected-access
  step_fn = training.make_train_step(config, module, tx)
  state, metrics = step_fn(state, jax.random.key(1))
  metrics["loss"].block_until_ready()
  start = time.perf_counter()
  for i in range(steps):
    state, metrics = step_fn(state, jax.random.key(2 + i))
    metrics["loss"].block_until_ready()
  return steps * config.batch_size / (time.perf_counter() - start)


def main(argv: Sequence[str] = ()) -> None:
  args = dict(a.lstrip("-").split("=", 1) for a in argv[1:] if "=" in a)
  size = int(args.get("size", 10_000))
  train_steps = int(args.get("measure_training_steps", 0))
  d = 100
  test_sets = {m: synthetic.test_set(1234, size, d, mixture=m) for m in synthetic.MIXTURES}
  rows = []

  def measure(name, rank_fn, pairs_per_s=None):
    l1 = {m: evaluation.l1_error(rank_fn, s, t) for m, (s, t) in test_sets.items()}
    gain = evaluation.spearman_gain(rank_fn)
    ms = evaluation.forward_backward_ms(rank_fn)
    rows.append((name, l1["authors"], l1["paper"], gain, ms, pairs_per_s))
    print(f"{name}: L1 authors {l1['authors']:.4f} paper {l1['paper']:.4f} gain {gain:.3f} "
          f"fwd+bwd {ms:.2f} ms", flush=True)

  for sharpness in (10.0, 50.0, 200.0, 1000.0):
    measure(f"handcrafted lambda={sharpness:g}", evaluation.handcrafted(sharpness))
  for name in pretrained.available_pretrained():
    rank_fn = pretrained.load_pretrained(name)
    if rank_fn.max_length < d:
      continue
    measure(f"pretrained {name}", rank_fn, rank_fn.metadata.get("train_pairs_per_s"))

  print()
  print(f"Sorter figures (d = {d}, {size} test vectors per mixture; shared CPU, timings noisy)")
  print("| sorter | L1 authors' mixture | L1 paper mixture | one-step Spearman gain | fwd+bwd ms (b=32) "
        "| speed-up vs authors' LSTM | training pairs/s |")
  print("|---|---|---|---|---|---|---|")
  for name, l1a, l1p, gain, ms, pps in rows:
    pps_text = "-" if pps is None else f"{pps:.0f}"
    print(f"| {name} | {l1a:.4f} | {l1p:.4f} | {gain:.3f} | {ms:.2f} | {AUTHORS_LSTM_MS / ms:.0f}x | "
          f"{pps_text} |")
  print("| paper Table 1: handcrafted / CNN / LSTM | 0.0350 / 0.0120 / 0.0033 | | | | | |")
  if train_steps > 0:
    for variant in ("lstm", "cnn", "pairwise"):
      print(f"training throughput {variant}: {_measure_training(variant, train_steps):.0f} pairs/s")


if __name__ == "__main__":
  import sys  # pylint: disable=g-import-not-at-top
  main(sys.argv)
