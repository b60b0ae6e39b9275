"""experiments.tables: one entry point; incomplete runs left out or marked, schedules kept apart, no writes."""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from experiments import tables

REPO = pathlib.Path(__file__).resolve().parents[1]


def _write(folder, name, *, variant, seed, complete=True, total_steps=100, tau=0.3, task=None):
  (folder / name).mkdir(parents=True)
  report = {"variant": variant, "data": "scenes_difficulty", "model": "resnet18", "steps": total_steps,
            "mse": 0.25, "kendall_tau": tau}
  (folder / name / "results.json").write_text(json.dumps({
      "report": report, "complete": complete, "step": total_steps if complete else 7,
      "total_steps": total_steps, "config": {"seed": seed, "variant": variant},
      **({"task": task} if task else {})}))


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
  # kept and marked, in the section of the step it reached (7), never averaged with the 100-step seeds
  assert "INCOMPLETE, included" in marked and "Runs of 7 steps" in marked


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


def test_runs_of_another_experiment_and_repeated_seeds():
  import tempfile  # pylint: disable=g-import-not-at-top
  from ranking_jax import reporting  # pylint: disable=g-import-not-at-top
  folder = pathlib.Path(tempfile.mkdtemp())
  _write(folder, "mse_s0", variant="mse", seed=0, task="ranking_jax.projects.ide_ranknet.image_difficulty")
  _write(folder, "mse_s0_copy", variant="mse", seed=0, tau=0.5)
  _write(folder, "ap", variant="map_lstm", seed=0, task="ranking_jax.projects.sodeep.sodeep_synthetic_ap")
  text = tables.tables_text("image_difficulty", reporting.collect_runs(f"{folder}/*"))
  assert "left out (a run of sodeep_synthetic_ap, not image_difficulty)" in text
  assert "WARNING: mse seed 0 appear(s) in several runs" in text
  # Different variants sharing a seed are not repeats.
  _write(folder, "kendall_s0", variant="kendall", seed=0)
  shutil.rmtree(folder / "mse_s0_copy")
  assert "WARNING" not in tables.tables_text("image_difficulty", reporting.collect_runs(f"{folder}/*"))
  # An old run without a task name whose report lacks the table's fields: one clear error, no KeyError.
  (folder / "old").mkdir()
  (folder / "old" / "results.json").write_text(json.dumps({"report": {"variant": "x"}, "complete": True,
                                                           "step": 100, "total_steps": 100}))
  with pytest.raises(FileNotFoundError, match="not a complete image_difficulty run"):
    tables.tables_text("image_difficulty", reporting.collect_runs(f"{folder}/old"))


def test_image_difficulty_tables_put_the_selected_checkpoint_beside_the_final_step(tmp_path):
  from ranking_jax import reporting  # pylint: disable=g-import-not-at-top
  taus = {("mse", 0): 0.30, ("mse", 1): 0.34, ("alternating", 0): 0.40, ("alternating", 1): 0.30}
  for (variant, seed), tau in taus.items():
    _write(tmp_path, f"{variant}_s{seed}", variant=variant, seed=seed, tau=tau)
    path = tmp_path / f"{variant}_s{seed}" / "results.json"
    run = json.loads(path.read_text())
    # alternating seed 1: no step satisfied the rule (step None); the others chose step 40 with tau + 0.01.
    chosen = None if (variant, seed) == ("alternating", 1) else 40
    run["selected"] = {"step": chosen, "eval": None if chosen is None else
                       {"test": {"mse": 0.2, "kendall_tau": tau + 0.01}}}
    path.write_text(json.dumps(run))
  text = tables.tables_text("image_difficulty", reporting.collect_runs(f"{tmp_path}/*"))
  # final: alternating 0.35 ± 0.0707; selected: 1 of 2 seeds (0.41 alone); mse selected 0.33 ± 0.0283
  assert "0.3500 ± 0.0707 (2 seeds)" in text and "1 of 2 seeds (steps 40)" in text and "| 0.4100 |" in text
  assert "WARNING" not in text  # two variants sharing seeds 0 and 1 are no repeats
  assert "0.3300 ± 0.0283 (2 seeds)" in text
  # paired alternating - mse: final (0.10, -0.04) -> 0.03 ± 0.099, 1 of 2 ahead; selected: seed 0 only
  assert "| alternating - mse |" in text and "0.0300 ± 0.0990 (2 seeds)" in text and "1 of 2" in text
  assert "1 of 1" in text
