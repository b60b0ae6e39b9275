"""End-to-end runs of the absl main in subprocesses: SIGKILL + resume, Ctrl-C + resume, bad config keys,
another configuration's workdir, a damaged checkpoint, a diverged run."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
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


def _one_error_line(stderr):
  """The stderr of a run stopped by an expected error: no traceback, and the message on one line."""
  assert "Traceback" not in stderr, stderr[-3000:]
  return [line for line in stderr.splitlines() if line.startswith(("error:", "interrupted"))]


def test_ctrl_c_saves_the_last_step_and_the_relaunch_resumes_from_it(reference_run, tmp_path):
  workdir = tmp_path / "interrupted"
  metrics = os.path.join(workdir, "metrics.jsonl")
  process = subprocess.Popen(tt.run_command(str(workdir)), env=tt.subprocess_env(4, **{tt.SLEEP_ENV: "0.25"}),
                             cwd=tt.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.monotonic() + 90
    while not (os.path.exists(metrics) and '"split": "train"' in open(metrics, encoding="utf-8").read()):
      if process.poll() is not None or time.monotonic() > deadline:
        pytest.fail(f"no train record before the run ended (rc={process.returncode})")
      time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, stderr = process.communicate(timeout=60)
  finally:
    if process.poll() is None:
      process.kill()
  assert process.returncode == 130, stderr[-3000:]
  (line,) = _one_error_line(stderr)
  match = re.fullmatch(r"interrupted at step (\d+); checkpoint saved; relaunch the same command to resume", line)
  assert match, line
  step = int(match.group(1))
  assert 1 <= step < 12 and max(_finalised_steps(os.path.join(workdir, "checkpoints"))) == step
  assert not os.path.exists(os.path.join(workdir, "results.json"))

  result = _run(workdir)  # the same command again
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Resumed from the checkpoint of step {step}." in result.stdout
  assert _results(workdir)["fingerprint"] == _results(reference_run)["fingerprint"]
  assert _train_losses(workdir) == _train_losses(reference_run)


def test_workdir_of_another_configuration_is_one_line_naming_the_field(reference_run):
  result = _run(reference_run, "--config.seed=3", timeout=60)
  assert result.returncode == 2
  (line,) = _one_error_line(result.stderr)
  assert "holds a run of another configuration (config fields differ: seed = 3 here, 0 there)" in line


@pytest.mark.parametrize("how", ["empty", "half_copied"])
def test_a_damaged_newest_checkpoint_is_skipped_and_named(reference_run, tmp_path, how):
  workdir = tmp_path / "copied"
  shutil.copytree(reference_run, workdir)
  damaged = os.path.join(workdir, "checkpoints", "15")  # what an interrupted copy of a workdir leaves
  if how == "empty":
    os.mkdir(damaged)
  else:  # the last step's files, the array data cut to 0 bytes
    shutil.copytree(os.path.join(workdir, "checkpoints", "12"), damaged)
    for root, _, files in os.walk(damaged):
      for name in files if os.path.basename(root) == "d" else ():
        open(os.path.join(root, name), "wb").close()
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    before = f.read()
  result = _run(workdir, timeout=60)
  assert result.returncode == 0, result.stderr[-3000:]
  # Orbax's failed read leaves no noise either (asyncio futures, its closed event loop).
  assert "Traceback" not in result.stderr and "never retrieved" not in result.stderr, result.stderr[-3000:]
  assert f"skipped the unreadable checkpoint directory {damaged} " in result.stdout
  assert "holds a complete run of 12 steps" in result.stdout and os.path.isdir(damaged + ".damaged")
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    assert f.read() == before


def test_a_diverged_run_fails_in_one_line_and_records_nothing(tmp_path):
  """The issue's case: the model outputs NaN, the Kendall loss masks non-finite scores and reads 0."""
  result = subprocess.run(
      [sys.executable, "-m", "experiments.image_difficulty", "--config=configs/image_difficulty.py:kendall,smoke",
       f"--workdir={tmp_path}", "--config.total_steps=4", "--config.log_every_steps=1",
       "--config.optimizer.learning_rate=1e30", "--config.checkpoint_every_steps=1"],
      env=tt.subprocess_env(None), cwd=tt.REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1, result.stderr[-3000:]
  (line,) = _one_error_line(result.stderr)
  assert re.match(r"error: the run diverged at step \d+: its loss, gradients or parameters are NaN", line), line
  assert not os.path.exists(os.path.join(tmp_path, "results.json"))
  bad_step = int(re.search(r"at step (\d+)", line).group(1))
  assert all(step < bad_step for step in _finalised_steps(os.path.join(tmp_path, "checkpoints")))
