r"""Benchmarks that print the figures of the README's performance table.

Usage::

  python -m experiments.benchmark                 # losses + rank functions, batch 32, n = 100, 1k, 10k
      # (the full table: well over 10 minutes on 2 cores, most of it in the O(n^2) losses at n = 10k;
      #  --sizes=100,1000 gives the first two column groups in a few minutes)
  python -m experiments.benchmark losses --sizes=100,1000 --batch=32
  python -m experiments.benchmark kendall_tau --n=1000000
  python -m experiments.benchmark annotation      # sampled vs exact WARP vs pairwise: 32 x 81, 1024 x 1000
  python -m experiments.benchmark sorters [...]   # SoDeep sorter figures (experiments/benchmark_sorters.py)
  python -m experiments.benchmark all
  python -m experiments.benchmark class_rectification [--repeats=3]   # CRL train step and loss times
  python -m experiments.benchmark efficientnet [--image_sizes=64,128,224 --image_batch=16 --depthwise=auto]
      # EfficientNet-Lite0 forward images/s beside the PyTorch reference (when torch and
      # efficientnet-lite-pytorch are importable), same inputs, same threads

Times are medians over repeats after compilation; peak memory is XLA's buffer assignment for the compiled
forward+backward program. Figures depend on the machine: the README's were measured on a 2-core CPU.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Sequence

from absl import app
from absl import flags

from experiments import benchmark_sorters  # defines the `sorters` subcommand's flags
from ranking_jax import benchmarking

SUBCOMMANDS = ("losses", "kendall_tau", "class_rectification", "annotation", "sorters", "efficientnet", "all")
_SIZES = flags.DEFINE_string("sizes", "100,1000,10000", "List lengths for `losses`, comma-separated.")
_BATCH = flags.DEFINE_integer("batch", 32, "Batch (number of lists) for `losses`.")
_ONLY = flags.DEFINE_string("only", "", "Comma-separated substrings of case / variant names to run.")
_MEMORY_LIMIT_GB = flags.DEFINE_float("memory_limit_gb", 8.0, "Skip cases whose buffers exceed this.")
_N = flags.DEFINE_integer("n", 1_000_000, "Length for `kendall_tau`.")
_JSON = flags.DEFINE_string("json", "", "Also write the results to this JSON file.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats for `class_rectification` "
                               "(`annotation`: 2 x repeats + 1 interleaved rounds of the two WARPs).")
_IMAGE_SIZES = flags.DEFINE_string("image_sizes", "64,128,224", "Image sizes (px) for `efficientnet`.")
_IMAGE_BATCH = flags.DEFINE_integer("image_batch", 16, "Images per forward pass for `efficientnet`.")
_DEPTHWISE = flags.DEFINE_enum("depthwise", "auto", ["auto", "shifted", "xla"],
                               "Depthwise convolution of `efficientnet` (auto: shifted on CPU, XLA's elsewhere).")
_TORCH_THREADS = flags.DEFINE_string("torch_threads", "", "PyTorch thread counts for `efficientnet`, "
                                     "comma-separated (default: 1 and the CPUs usable here).")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 5.0, "Timing time per image size for `efficientnet`.")


def _losses() -> None:
  sizes = [int(s) for s in _SIZES.value.split(",")]
  cases = benchmarking.default_cases()
  if _ONLY.value:
    cases = [c for c in cases if any(word in c.name for word in _ONLY.value.split(","))]
  print(f"# losses and rank functions: batch {_BATCH.value}, list lengths {sizes}", flush=True)

  def progress(r):
    fwd = "–" if r.forward_ms is None else f"{r.forward_ms:.2f} ms"
    bwd = "–" if r.backward_ms is None else f"{r.backward_ms:.2f} ms"
    peak = "–" if r.peak_bytes is None else f"{r.peak_bytes / 1e6:.0f} MB"
    print(f"  {r.name:40s} n={r.n:<6d} fwd {fwd:>12s}  fwd+bwd {bwd:>12s}  peak {peak:>9s}  {r.note}",
          flush=True)

  results = benchmarking.run_cases(cases, sizes, _BATCH.value, progress=progress,
                                   memory_limit_bytes=_MEMORY_LIMIT_GB.value * 1e9)
  print()
  print(benchmarking.markdown_table(results))
  baseline = {r.n: r.forward_ms for r in results if r.name.startswith("argsort(argsort")}
  for r in results:
    if r.name.startswith("soft_ranks") and r.backward_ms and baseline.get(r.n):
      print(f"{r.name} fwd+bwd / argsort(argsort) fwd at n={r.n}: "
            f"{r.backward_ms / baseline[r.n]:.2f}x (target <= 2x)")
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump([r.__dict__ for r in results], f, indent=1)


def _kendall() -> None:
  print(f"# kendall_tau (tau-b) at n = {_N.value}", flush=True)
  out = benchmarking.time_kendall_tau(_N.value)
  print(f"  ranking_jax.metrics.kendall_tau: {out['ranking_jax_s'] * 1e3:.0f} ms "
        f"(tau = {out['ranking_jax_tau']:.6f})")
  if "scipy_s" in out:
    print(f"  scipy.stats.kendalltau:          {out['scipy_s'] * 1e3:.0f} ms "
          f"(tau = {out['scipy_tau']:.6f})")
    print(f"  ratio: {out['ranking_jax_s'] / out['scipy_s']:.2f}x (target <= 2x)")


def _class_rectification() -> None:
  print("# Class Rectification: train step of the default model (ce and the six CRL variants), CRL loss time",
        flush=True)
  variants = [v for v in ("ce", "crl_class_relative", "crl_class_absolute", "crl_class_distribution",
                          "crl_instance_relative", "crl_instance_absolute", "crl_instance_distribution")
              if v == "ce" or not _ONLY.value or any(word in v for word in _ONLY.value.split(","))]
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  from configs import class_rectification as crl_config  # pylint: disable=g-import-not-at-top
  from ranking_jax.projects.class_rectification import benchmark as crl_benchmark  # pylint: disable=g-import-not-at-top
  out = crl_benchmark.time_class_rectification(crl_config.get_config, repeats=_REPEATS.value,
                                               variants=variants)
  print("\n| variant | batch | train step (ms) | / ce |\n|---|---|---|---|")
  for r in out["train_step"]:
    print(f"| {r['variant']} | {r['batch']} | {r['ms']:.1f} | {r['ratio_to_ce']:.2f} |")
  print("\n| CRL term (instance, relative), fwd+bwd | batch | ms | ms per 128 examples |\n|---|---|---|---|")
  for r in out["crl_loss"]:
    print(f"| {r['variant']} | {r['batch']} | {r['ms']:.1f} | {r['ms_per_128']:.2f} |")
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(out, f, indent=1)


def _annotation() -> None:
  print("# annotation losses (Gong et al.): fwd+bwd at (batch, tags) "
        f"{list(benchmarking.ANNOTATION_SHAPES)}, 1-5 positive tags per image", flush=True)
  results = []
  for batch, n in benchmarking.ANNOTATION_SHAPES:
    part = benchmarking.run_cases(benchmarking.annotation_cases(), [n], batch,
                                  memory_limit_bytes=_MEMORY_LIMIT_GB.value * 1e9)
    for r in part:
      print(f"  {r.name:28s} {batch:>5d} x {n:<5d} fwd {r.forward_ms or float('nan'):9.2f} ms  "
            f"fwd+bwd {r.backward_ms or float('nan'):9.2f} ms  {r.note}", flush=True)
    print(benchmarking.markdown_table(part))
    results += part
  batch, n = benchmarking.ANNOTATION_SHAPES[-1]
  warps = [c for c in benchmarking.annotation_cases()
           if c.name.startswith("warp_loss (") or c.name == "warp_loss_exact"]
  print(f"# interleaved fwd+bwd at {batch} x {n} (alternating, {_REPEATS.value * 2 + 1} repeats):", flush=True)
  for name, t in benchmarking.interleaved_backward_ms(warps, batch, n, repeats=_REPEATS.value * 2 + 1).items():
    print(f"  {name:28s} median {t['median']:9.1f} ms  min {t['min']:9.1f} ms", flush=True)
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump([r.__dict__ for r in results], f, indent=1)


def _efficientnet() -> None:
  import os  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  sizes = [int(s) for s in _IMAGE_SIZES.value.split(",")]
  threads = [int(t) for t in _TORCH_THREADS.value.split(",") if t] or None
  load = lambda: ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
  print(f"# EfficientNet-Lite0 forward (1000 classes, float32, jitted): batch {_IMAGE_BATCH.value}, "
        f"sizes {sizes}, jax {jax.__version__} on {jax.default_backend()} "
        f"(XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}), load average before: {load()}", flush=True)
  results = benchmarking.time_efficientnet(sizes, _IMAGE_BATCH.value, depthwise=_DEPTHWISE.value,
                                           torch_threads=threads, min_seconds=_MIN_SECONDS.value)
  torch_threads = list(results[0]["torch_images_per_s"]) if results else []
  try:
    import torch  # pylint: disable=g-import-not-at-top
    reference = f"PyTorch {torch.__version__} (efficientnet-lite-pytorch)"
  except ImportError:
    reference = "PyTorch reference not importable (pip install torch efficientnet-lite-pytorch to compare)"
  print(f"weights: {results[0]['weights']}; depthwise: {results[0]['depthwise']}; reference: {reference}")
  header = ["image px", "batch", "ranking_jax images/s"]
  header += [f"PyTorch {t} thread(s) images/s" for t in torch_threads]
  header += ["ratio to PyTorch's best", "max abs logit diff"]
  print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
  fmt = lambda v, f: "–" if v is None else f.format(v)
  for r in results:
    cells = [str(r["size"]), str(r["batch"]), f"{r['jax_images_per_s']:.1f}"]
    cells += [f"{r['torch_images_per_s'][t]:.1f}" for t in torch_threads]
    cells += [fmt(r["ratio"], "{:.2f}x"), fmt(r["max_abs_logit_diff"], "{:.1e}")]
    print("| " + " | ".join(cells) + " |")
  print(f"load average after: {load()}")
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(results, f, indent=1)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 2 or (len(argv) == 2 and argv[1] not in SUBCOMMANDS):
    # One line and exit status 2 (absl's UsageError would print the whole module docstring first).
    print(f"usage: python -m experiments.benchmark [{'|'.join(SUBCOMMANDS)}] [--flags]; "
          f"got {' '.join(argv[1:])!r}.", file=sys.stderr)
    sys.exit(2)
  what = argv[1] if len(argv) == 2 else "losses"
  if what == "sorters":
    benchmark_sorters.main(argv[:1])
  if what in ("losses", "all"):
    _losses()
  if what in ("kendall_tau", "all"):
    _kendall()
  if what == "annotation":
    _annotation()
  if what == "class_rectification":
    _class_rectification()
  if what == "efficientnet":
    _efficientnet()


if __name__ == "__main__":
  app.run(main)
