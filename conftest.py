"""pytest set-up (tests and doctests): four fake CPU devices for data-parallel tests, set before JAX starts."""

import os

# Optimisation level 0: the tests' programs are tiny and compile-bound; XLA:CPU's optimising passes cost
# far more compile time than they save (e.g. 42 s -> 4 s for a small ResNet's init).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib
import sys

# Test files share helpers through tests/testing_utils.py (pytest's importlib mode adds no test folder).
sys.path.insert(0, str(pathlib.Path(__file__).parent / "tests"))
