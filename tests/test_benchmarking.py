"""The benchmark harness runs every case at a tiny size and formats a table (figures are not asserted)."""

import math

from ranking_jax import benchmarking


def test_every_case_runs_at_a_small_size():
  results = benchmarking.run_cases(benchmarking.default_cases(), [8], 2, min_repeats=1, min_seconds=0.0,
                                   max_repeats=1)
  errors = [f"{r.name}: {r.note}" for r in results if r.note.startswith("error")]
  assert not errors, errors
  for r in results:
    assert r.forward_ms is not None and math.isfinite(r.forward_ms), r
  table = benchmarking.markdown_table(results)
  assert table.count("\n") == len(results) + 1


def test_programs_over_the_memory_limit_are_reported_not_run():
  case = [c for c in benchmarking.default_cases() if c.name.startswith("sigmoid_ranks")]
  (result,) = benchmarking.run_cases(case, [512], 4, memory_limit_bytes=1e3)
  assert result.forward_ms is None and "not run" in result.note and result.peak_bytes > 1e3


def test_efficientnet_throughput_runs_at_a_small_size():
  (result,) = benchmarking.time_efficientnet([32], 2, min_seconds=0.0, min_repeats=1)
  assert result["size"] == 32 and result["batch"] == 2 and result["depthwise"] in ("shifted", "xla")
  assert math.isfinite(result["jax_images_per_s"]) and result["jax_images_per_s"] > 0
  if result["torch_images_per_s"]:  # torch + efficientnet-lite-pytorch importable: same network, same inputs
    assert result["ratio"] > 0 and result["max_abs_logit_diff"] < 1e-3
  else:
    assert result["ratio"] is None and result["max_abs_logit_diff"] is None
