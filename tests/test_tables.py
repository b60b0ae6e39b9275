"""experiments.tables: one entry point; incomplete runs left out or marked, schedules kept apart, no writes."""

import json
import pathlib
import subprocess
import sys

import pytest

from experiments import tables

REPO = pathlib.Path(__file__).resolve().parents[1]


def _write(folder, name, *, variant, seed, complete=True, total_steps=100, tau=0.3):
  (folder / name).mkdir(parents=True)
  report = {"variant": variant, "data": "scenes_difficulty", "model": "resnet18", "steps": total_steps,
            "mse": 0.25, "kendall_tau": tau}
  (folder / name / "results.json").write_text(json.dumps({
      "report": report, "complete": complete, "step": total_steps if complete else 7,
      "total_steps": total_steps, "config": {"seed": seed, "variant": variant}}))


def test_incomplete_runs_are_left_out_or_marked_and_schedules_kept_apart(tmp_path):
  _write(tmp_path, "mse_s0", variant="mse", seed=0, tau=0.30)
  _write(tmp_path, "mse_s1", variant="mse", seed=1, tau=0.50)
  _write(tmp_path, "mse_s2", variant="mse", seed=2, complete=False, tau=0.99)  # stopped early
  _write(tmp_path, "mse_smoke", variant="mse", seed=0, total_steps=2, tau=0.0)
  from ranking_jax import reporting  # pylint: disable=g-import-not-at-top
  runs = reporting.collect_runs(f"{tmp_path}/*")
  text = tables.tables_text("image_difficulty", runs)
  assert "0.4000 ± 0.1414 (2 seeds)" in text  # seeds 0 and 1 only: the incomplete 0.99 left out
  assert "left out (incomplete" in text and "mse_s2" in text
  assert "Runs of 2 steps" in text and "Runs of 100 steps" in text  # the smoke run has its own section
  marked = tables.tables_text("image_difficulty", runs, include_incomplete=True)
  assert "INCOMPLETE, included" in marked and "(3 seeds)" in marked


def test_the_command_writes_nothing_without_out_and_one_line_errors(tmp_path):
  _write(tmp_path / "runs", "mse_s0", variant="mse", seed=0)
  before = sorted(p.name for p in tmp_path.rglob("*"))
  ok = subprocess.run([sys.executable, "-m", "experiments.tables", "image_difficulty",
                       f"--runs={tmp_path}/runs/*"], cwd=tmp_path, env={**__import__("os").environ,
                       "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=False)
  assert ok.returncode == 0, ok.stderr
  assert "| mse |" in ok.stdout and "±" not in ok.stdout  # one seed: the value alone, no "± 0"
  assert sorted(p.name for p in tmp_path.rglob("*")) == before
  for args in (["image_difficulty", f"--runs={tmp_path}/nothing*"], ["nonsense"], []):
    bad = subprocess.run([sys.executable, "-m", "experiments.tables", *args], cwd=REPO, capture_output=True,
                         text=True, check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) <= 3, bad.stderr


@pytest.mark.parametrize("experiment", tables._EXPERIMENTS)  # pylint: disable=protected-access
def test_every_experiment_has_tables(experiment):
  module = __import__(f"experiments.{experiment}_tables", fromlist=["make_tables"])
  assert callable(module.make_tables)
