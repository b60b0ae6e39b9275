"""Two processes on one machine over loopback (CPU backend, gloo collectives) = one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import jax
import numpy as np
import pytest

import testing_utils

tt = testing_utils.train_task_module()
pytestmark = pytest.mark.skipif(jax.local_device_count() != 4, reason="needs the 4 fake devices of conftest.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _train_losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [r["loss"] for r in map(json.loads, f) if r["split"] == "train"]


def test_two_processes_over_loopback_match_one_process(tmp_path):
  from ranking_jax.train import state as state_lib  # pylint: disable=g-import-not-at-top
  from ranking_jax.train import trainer  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / "two_processes"
  port = _free_port()
  # Two processes with 2 devices each = the 4 devices of this process, in the same global order.
  processes = [
      subprocess.Popen(tt.run_command(str(workdir), f"--coordinator_address=localhost:{port}",
                                      "--num_processes=2", f"--process_id={i}"),
                       env=tt.subprocess_env(2), cwd=tt.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
      for i in range(2)]
  outputs = []
  try:
    for process in processes:
      outputs.append(process.communicate(timeout=150))
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-3000:]
  assert "4 devices on 2 process(es)" in outputs[0][0]
  assert not outputs[1][0].strip() or "step" not in outputs[1][0]  # only process 0 reports
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    results = json.load(f)
  assert results["step"] == 12

  # The same run in this process (4 local devices, one process).
  reference_dir = tmp_path / "one_process"
  config = tt.small_config()
  reference = trainer.train_and_evaluate(config, str(reference_dir), tt.make_task)
  np.testing.assert_allclose(_train_losses(workdir), _train_losses(reference_dir), rtol=1e-5)
  two = trainer.load_state(config, str(workdir), tt.make_task)
  one = trainer.load_state(config, str(reference_dir), tt.make_task)
  assert state_lib.fingerprint(one.params) == reference["fingerprint"]
  for a, b in zip(jax.tree_util.tree_leaves(two.params), jax.tree_util.tree_leaves(one.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
