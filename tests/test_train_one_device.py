"""The trainer on 1 device (a subprocess without the fake-device flag) = the trainer on 4 devices."""

from __future__ import annotations

import json
import os
import subprocess

import jax
import numpy as np
import pytest

import testing_utils

tt = testing_utils.train_task_module()
pytestmark = pytest.mark.skipif(jax.local_device_count() != 4, reason="needs the 4 fake devices of conftest.py")


def _train_losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return {r["step"]: r["loss"] for r in map(json.loads, f) if r["split"] == "train"}


def test_one_device_gives_the_same_loss_curve_as_four(tmp_path):
  from ranking_jax.train import trainer  # pylint: disable=g-import-not-at-top
  one_dir, four_dir = tmp_path / "one", tmp_path / "four"
  result = subprocess.run(tt.run_command(str(one_dir)), env=tt.subprocess_env(None), cwd=tt.REPO,
                          capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "1 devices on 1 process(es)" in result.stdout
  four = trainer.train_and_evaluate(tt.small_config(), str(four_dir), tt.make_task)
  one_curve, four_curve = _train_losses(one_dir), _train_losses(four_dir)
  assert sorted(one_curve) == sorted(four_curve) == list(range(1, 13))
  np.testing.assert_allclose([one_curve[s] for s in range(1, 13)], [four_curve[s] for s in range(1, 13)],
                             rtol=1e-5)
  with open(os.path.join(one_dir, "results.json"), encoding="utf-8") as f:
    one = json.load(f)
  assert one["eval"]["validation"]["mse"] == pytest.approx(four["eval"]["validation"]["mse"], rel=1e-4)
