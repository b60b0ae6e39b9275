"""End-to-end runs of the absl main in subprocesses: SIGKILL + resume, bad config keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

import testing_utils

tt = testing_utils.train_task_module()


def _run(workdir, *flags, num_devices=4, timeout=120, **env):
  result = subprocess.run(tt.run_command(str(workdir), *flags), env=tt.subprocess_env(num_devices, **env),
                          capture_output=True, text=True, timeout=timeout, cwd=tt.REPO, check=False)
  return result


def _results(workdir):
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    return json.load(f)


def _train_losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    records = [r for r in map(json.loads, f) if r["split"] == "train"]
  steps = [r["step"] for r in records]
  assert steps == sorted(set(steps)), steps  # a resumed run drops the records it recomputes
  return {r["step"]: r["loss"] for r in records}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
  """An uninterrupted 12-step run on 4 devices."""
  workdir = tmp_path_factory.mktemp("reference")
  result = _run(workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


def _finalised_steps(checkpoint_dir):
  if not os.path.isdir(checkpoint_dir):
    return []
  return sorted(int(name) for name in os.listdir(checkpoint_dir) if name.isdigit())


def test_sigkill_then_restart_reproduces_the_uninterrupted_run_bitwise(reference_run, tmp_path):
  workdir = tmp_path / "killed"
  checkpoint_dir = os.path.join(workdir, "checkpoints")
  # Slow the data down so that the kill lands mid-run, after the first checkpoint (step 3).
  process = subprocess.Popen(tt.run_command(str(workdir)), env=tt.subprocess_env(4, **{tt.SLEEP_ENV: "0.25"}),
                             cwd=tt.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 90
    while not _finalised_steps(checkpoint_dir) and time.monotonic() < deadline:
      if process.poll() is not None:
        pytest.fail(f"The run ended (rc={process.returncode}) before its first checkpoint.")
      time.sleep(0.05)
    time.sleep(0.4)  # one or two more steps: the kill falls between (or during) checkpoints
    os.kill(process.pid, signal.SIGKILL)
  finally:
    process.wait(timeout=30)
  assert process.returncode == -signal.SIGKILL
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  killed_at = _finalised_steps(checkpoint_dir)
  assert killed_at and max(killed_at) < 12

  result = _run(workdir)  # the same command again
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Resumed from the checkpoint of step {max(killed_at)}" in result.stdout
  resumed, reference = _results(workdir), _results(reference_run)
  assert resumed["step"] == reference["step"] == 12
  assert resumed["fingerprint"] == reference["fingerprint"]
  assert resumed["eval"]["validation"] == reference["eval"]["validation"]
  assert _train_losses(workdir) == _train_losses(reference_run)


def test_misspelt_config_key_fails_listing_the_valid_keys(tmp_path):
  result = _run(tmp_path, "--config.optimizer.lerning_rate=0.1", timeout=60)
  assert result.returncode != 0
  assert "lerning_rate" in result.stderr and "learning_rate" in result.stderr
  assert "did you mean" in result.stderr and "Traceback" not in result.stderr
  assert not os.path.exists(os.path.join(tmp_path, "results.json"))


def test_config_variant_and_overrides_reach_the_trainer(reference_run):
  config = _results(reference_run)["config"]
  assert config["optimizer"]["learning_rate"] == 0.05 and config["multitask"]["name"] == "alternating"
