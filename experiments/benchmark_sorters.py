"""Sorter figures (SoDeep Table 1 and Figure 5): L1 per mixture, one-step Spearman gain, fwd+bwd time, pairs/s.

  python -m experiments.benchmark sorters [--size=10000] [--measure_training_steps=10] \
      [--figure5=ranking_jax/sorters/figure5.png]
  python -m experiments.benchmark sorters [flags]    (this module holds that subcommand; it has no main)

For the handcrafted sigmoid sorter at several sharpness values (on raw scores as in the paper, and on
per-list standardised scores), every shipped pretrained sorter, and one diagnostic that is not a sorter
(exact ranks forward with the standardised sigmoid's gradient, showing that the gain is set by the
Jacobian alone):
L1 on the fixed 10 000-vector test set of each mixture (d = 100, seed of configs/sorter.py), the one-step
Spearman gain (500 lists), and the median forward+backward time to the input at batch 32 x d = 100 beside
the authors' LSTM (797 ms). The training throughput (pairs/s) is one figure per sorter: re-measured here
(the median of --measure_training_steps compiled train steps of the config variant that trained it, 0 to
skip) with ``ranking_jax.train.measure_train_step``; the figure recorded at training time is in the
sorter's metadata only. Timings on a shared CPU are noisy. With --figure5 the paper's Figure 5
(rank of one element as it sweeps [-1, 1]) is drawn for the handcrafted sorters at lambda = 10 (raw and
standardised) and every shipped sorter.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Sequence

from absl import app
from absl import flags
import jax

from ranking_jax import ranks
from ranking_jax import train
from ranking_jax.sorters import evaluation
from ranking_jax.sorters import pretrained
from ranking_jax.sorters import synthetic
from ranking_jax.sorters import task as sorter_task

_SIZE = flags.DEFINE_integer("size", 10_000, "Test vectors per mixture (Table 1: 10 000).")
_TRAIN_STEPS = flags.DEFINE_integer("measure_training_steps", 10,
                                    "Compiled train steps timed per shipped sorter (0: skip).")
_FIGURE5 = flags.DEFINE_string("figure5", "", "Write the paper's Figure 5 for these sorters to this PNG.")

AUTHORS_LSTM_MS = 797.0  # the authors' PyTorch LSTM, forward+backward at batch 32 x d = 100 (our measure)
AUTHORS_CNN_MS = 32.5  # the authors' CNN, same measure


def _measure_training(variant: str, steps: int) -> float:
  """Training pairs/s of ``configs/sorter.py:<variant>`` (median of ``steps`` compiled steps)."""
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  from configs import sorter as sorter_config  # pylint: disable=g-import-not-at-top
  config = sorter_config.get_config(variant)
  return train.measure_train_step(config, sorter_task.make_task(config), steps)["examples_per_second"]


def _variant(metadata) -> str:
  """The configs/sorter.py variant named in a pretrained sorter's training command."""
  command = metadata.get("command", "")
  if "sorter.py:" in command:
    return command.split("sorter.py:")[1].split()[0]
  return metadata["architecture"]  # each architecture has a variant of its own name


def _straight_through(sharpness: float):
  """Exact ranks forward, the standardised sigmoid sorter's gradient backward (a diagnostic)."""
  surrogate = evaluation.handcrafted(sharpness, standardize=True)

  def rank_fn(scores, *, where=None):
    soft = surrogate(scores, where=where)
    return soft + jax.lax.stop_gradient(ranks.hard_ranks(scores, where=where).astype(soft.dtype) - soft)
  return rank_fn


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  size, train_steps, figure5_path = _SIZE.value, _TRAIN_STEPS.value, _FIGURE5.value
  d = 100
  test_sets = {m: synthetic.test_set(1234, size, d, mixture=m) for m in synthetic.MIXTURES}
  rows = []

  def measure(name, rank_fn, variant=None):
    l1 = {m: evaluation.l1_error(rank_fn, s, t) for m, (s, t) in test_sets.items()}
    gain = evaluation.spearman_gain(rank_fn)
    ms = evaluation.forward_backward_ms(rank_fn)
    pps = _measure_training(variant, train_steps) if variant and train_steps > 0 else None
    rows.append((name, l1["authors"], l1["paper"], gain, ms, pps))
    text = "" if pps is None else f" training {pps:.0f} pairs/s ({variant})"
    print(f"{name}: L1 authors {l1['authors']:.4f} paper {l1['paper']:.4f} gain {gain:.3f} "
          f"fwd+bwd {ms:.2f} ms{text}", flush=True)

  for sharpness in (10.0, 50.0, 200.0, 1000.0):
    measure(f"handcrafted lambda={sharpness:g}", evaluation.handcrafted(sharpness))
  for sharpness in (5.0, 7.0, 10.0, 15.0, 30.0, 40.0, 100.0):
    measure(f"handcrafted standardised lambda={sharpness:g}",
            evaluation.handcrafted(sharpness, standardize=True))
  for sharpness in (10.0, 30.0):
    measure(f"diagnostic: exact forward, standardised lambda={sharpness:g} backward",
            _straight_through(sharpness))
  curves = {"handcrafted (lambda=10)": evaluation.figure5_curve(evaluation.handcrafted(10.0)),
            "handcrafted, standardised (lambda=10)":
                evaluation.figure5_curve(evaluation.handcrafted(10.0, standardize=True))}
  for name in pretrained.available_pretrained():
    rank_fn = pretrained.load_pretrained(name)
    if rank_fn.max_length < d:
      continue
    measure(f"pretrained {name}", rank_fn, _variant(rank_fn.metadata))
    curves[name] = evaluation.figure5_curve(rank_fn)
  if figure5_path:
    evaluation.plot_figure5(curves, figure5_path)
    print(f"Figure 5 written to {figure5_path}")

  def fmt(x, spec):
    return "-" if x is None else format(x, spec)

  print()
  print(f"Sorter figures (d = {d}, {size} test vectors per mixture; shared 2-core CPU, timings noisy)")
  print("| sorter | L1 authors' mixture | L1 paper mixture | one-step Spearman gain | fwd+bwd ms (b=32) "
        "| speed-up vs authors' LSTM (797 ms) | training pairs/s |")
  print("|---|---|---|---|---|---|---|")
  for name, l1a, l1p, gain, ms, now in rows:
    print(f"| {name} | {l1a:.4f} | {l1p:.4f} | {gain:.3f} | {ms:.2f} | {AUTHORS_LSTM_MS / ms:.1f}x | "
          f"{fmt(now, '.0f')} |")
  print(f"| authors' LSTM / CNN (PyTorch, measured here) | paper Table 1: 0.0033 / 0.0120 (handcrafted "
        f"0.0350) | | | {AUTHORS_LSTM_MS:g} / {AUTHORS_CNN_MS:g} | 1x | ~40 / ~620 |")
  print("Goals of the sorter work: LSTM-class L1 <= 0.0033 with gain >= 0.25; CNN-class L1 <= 0.0120; "
        "fwd+bwd <= 40 ms (20x the authors' LSTM) at equal or better L1.")

