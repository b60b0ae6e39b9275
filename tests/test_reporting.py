"""reporting.collect_runs: the run finder every *_tables script uses."""

import json

import pytest

from ranking_jax import reporting


def _run(path, value):
  path.mkdir()
  (path / "results.json").write_text(json.dumps({"value": value}))


def test_collect_runs_takes_several_globs_and_reads_each_run_once(tmp_path):
  _run(tmp_path / "a_s0", 1)
  _run(tmp_path / "a_s1", 2)
  _run(tmp_path / "b_s0", 3)
  (tmp_path / "c_s0").mkdir()  # no results.json: a run still going, skipped
  runs = reporting.collect_runs(f"{tmp_path}/a_*, {tmp_path}/a_s0,{tmp_path}/b_s0,")
  assert [r["value"] for r in runs] == [1, 2, 3]
  assert runs[0]["workdir"] == str(tmp_path / "a_s0")
  with pytest.raises(FileNotFoundError, match="no results.json"):
    reporting.collect_runs(f"{tmp_path}/c_*")
