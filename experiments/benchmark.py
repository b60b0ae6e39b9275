r"""Benchmarks that print the figures of the README's performance table.

Usage::

  python -m experiments.benchmark                 # losses + rank functions, batch 32, n = 100, 1k, 10k
  python -m experiments.benchmark losses --sizes=100,1000 --batch=32
  python -m experiments.benchmark kendall_tau --n=1000000
  python -m experiments.benchmark annotation      # sampled vs exact WARP vs pairwise: 32 x 81, 1024 x 1000
  python -m experiments.benchmark sorters [...]   # SoDeep sorter figures (experiments/benchmark_sorters.py)
  python -m experiments.benchmark all
  python -m experiments.benchmark class_rectification [--repeats=3]   # CRL train step and loss times

Times are medians over repeats after compilation; peak memory is XLA's buffer assignment for the compiled
forward+backward program. Figures depend on the machine: the README's were measured on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from ranking_jax import benchmarking


def _losses(args) -> None:
  sizes = [int(s) for s in args.sizes.split(",")]
  cases = benchmarking.default_cases()
  if args.only:
    cases = [c for c in cases if any(word in c.name for word in args.only.split(","))]
  print(f"# losses and rank functions: batch {args.batch}, list lengths {sizes}", flush=True)

  def progress(r):
    fwd = "–" if r.forward_ms is None else f"{r.forward_ms:.2f} ms"
    bwd = "–" if r.backward_ms is None else f"{r.backward_ms:.2f} ms"
    peak = "–" if r.peak_bytes is None else f"{r.peak_bytes / 1e6:.0f} MB"
    print(f"  {r.name:40s} n={r.n:<6d} fwd {fwd:>12s}  fwd+bwd {bwd:>12s}  peak {peak:>9s}  {r.note}",
          flush=True)

  results = benchmarking.run_cases(cases, sizes, args.batch, progress=progress,
                                   memory_limit_bytes=args.memory_limit_gb * 1e9)
  print()
  print(benchmarking.markdown_table(results))
  baseline = {r.n: r.forward_ms for r in results if r.name.startswith("argsort(argsort")}
  for r in results:
    if r.name.startswith("soft_ranks") and r.backward_ms and baseline.get(r.n):
      print(f"{r.name} fwd+bwd / argsort(argsort) fwd at n={r.n}: "
            f"{r.backward_ms / baseline[r.n]:.2f}x (target <= 2x)")
  if args.json:
    with open(args.json, "w") as f:
      json.dump([r.__dict__ for r in results], f, indent=1)


def _kendall(args) -> None:
  print(f"# kendall_tau (tau-b) at n = {args.n}", flush=True)
  out = benchmarking.time_kendall_tau(args.n)
  print(f"  ranking_jax.metrics.kendall_tau: {out['ranking_jax_s'] * 1e3:.0f} ms "
        f"(tau = {out['ranking_jax_tau']:.6f})")
  if "scipy_s" in out:
    print(f"  scipy.stats.kendalltau:          {out['scipy_s'] * 1e3:.0f} ms "
          f"(tau = {out['scipy_tau']:.6f})")
    print(f"  ratio: {out['ranking_jax_s'] / out['scipy_s']:.2f}x (target <= 2x)")


def _class_rectification(args) -> None:
  print("# Class Rectification: train step of the default model (ce and the six CRL variants), CRL loss time",
        flush=True)
  variants = [v for v in ("ce", "crl_class_relative", "crl_class_absolute", "crl_class_distribution",
                          "crl_instance_relative", "crl_instance_absolute", "crl_instance_distribution")
              if v == "ce" or not args.only or any(word in v for word in args.only.split(","))]
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  from configs import class_rectification as crl_config  # pylint: disable=g-import-not-at-top
  out = benchmarking.time_class_rectification(crl_config.get_config, repeats=args.repeats,
                                              variants=variants)
  print("\n| variant | batch | train step (ms) | / ce |\n|---|---|---|---|")
  for r in out["train_step"]:
    print(f"| {r['variant']} | {r['batch']} | {r['ms']:.1f} | {r['ratio_to_ce']:.2f} |")
  print("\n| CRL term (instance, relative), fwd+bwd | batch | ms | ms per 128 examples |\n|---|---|---|---|")
  for r in out["crl_loss"]:
    print(f"| {r['variant']} | {r['batch']} | {r['ms']:.1f} | {r['ms_per_128']:.2f} |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1)


def _annotation(args) -> None:
  print("# annotation losses (Gong et al.): fwd+bwd at (batch, tags) "
        f"{list(benchmarking.ANNOTATION_SHAPES)}, 1-5 positive tags per image", flush=True)
  results = []
  for batch, n in benchmarking.ANNOTATION_SHAPES:
    part = benchmarking.run_cases(benchmarking.annotation_cases(), [n], batch,
                                  memory_limit_bytes=args.memory_limit_gb * 1e9)
    for r in part:
      print(f"  {r.name:28s} {batch:>5d} x {n:<5d} fwd {r.forward_ms or float('nan'):9.2f} ms  "
            f"fwd+bwd {r.backward_ms or float('nan'):9.2f} ms  {r.note}", flush=True)
    print(benchmarking.markdown_table(part))
    results += part
  if args.json:
    with open(args.json, "w") as f:
      json.dump([r.__dict__ for r in results], f, indent=1)


def main(argv=None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  if argv and argv[0] == "sorters":
    from absl import app  # pylint: disable=g-import-not-at-top
    from experiments import benchmark_sorters  # pylint: disable=g-import-not-at-top
    app.run(benchmark_sorters.main, argv=[sys.argv[0]] + list(argv[1:]))
    return
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("what", nargs="?", default="losses",
                      choices=["losses", "kendall_tau", "class_rectification", "annotation", "all"])
  parser.add_argument("--sizes", default="100,1000,10000")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--only", default="", help="comma-separated substrings of case names")
  parser.add_argument("--memory_limit_gb", type=float, default=8.0)
  parser.add_argument("--n", type=int, default=1_000_000, help="length for kendall_tau")
  parser.add_argument("--json", default="", help="also write the loss results to this JSON file")
  parser.add_argument("--repeats", type=int, default=3, help="timed repeats for class_rectification")
  args = parser.parse_args(argv)
  if args.what in ("losses", "all"):
    _losses(args)
  if args.what in ("kendall_tau", "all"):
    _kendall(args)
  if args.what == "annotation":
    _annotation(args)
  if args.what == "class_rectification":
    _class_rectification(args)


if __name__ == "__main__":
  main()
