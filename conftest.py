"""pytest set-up (tests and doctests): four fake CPU devices for data-parallel tests, set before JAX starts."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib
import sys

# Test files share helpers through tests/testing_utils.py (pytest's importlib mode adds no test folder).
sys.path.insert(0, str(pathlib.Path(__file__).parent / "tests"))
