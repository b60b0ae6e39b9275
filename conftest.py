"""pytest set-up (tests and doctests): four fake CPU devices for data-parallel tests, set before JAX starts."""

import os

# The tests' programs are tiny and compile-bound: XLA:CPU's optimising passes cost far more compile time
# than they save (optimisation level 0: 42 s -> 4 s for a small ResNet's init; no expensive LLVM passes and
# the classic loop emitters instead of the fusion emitters: about 3x faster compiles again).
# The four fake devices are threads that meet at every cross-device reduction; on an oversubscribed machine
# one can arrive later than XLA's default termination timeout and the whole worker aborts (seen once under a
# load average of 8 on 2 cores): wait up to 10 minutes instead.
os.environ.setdefault("XLA_FLAGS", " ".join([
    "--xla_force_host_platform_device_count=4", "--xla_backend_optimization_level=0",
    "--xla_llvm_disable_expensive_passes=true", "--xla_cpu_use_fusion_emitters=false",
    "--xla_cpu_collective_call_terminate_timeout_seconds=600"]))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib
import sys

# Test files share helpers through tests/testing_utils.py (pytest's importlib mode adds no test folder).
sys.path.insert(0, str(pathlib.Path(__file__).parent / "tests"))

# Scripts that build test fixtures (they need torch) are not tests.
collect_ignore_glob = ["tests/fixtures/*.py"]
