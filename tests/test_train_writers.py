"""MetricWriter's JSONL file: appended records, and the records a resumed run drops."""

import json
import os

from ranking_jax.train import writers


def _steps(path):
  with open(path, encoding="utf-8") as f:
    return [(r["step"], r["split"]) for r in map(json.loads, f)]


def test_discard_after_drops_later_steps_and_a_partial_line(tmp_path):
  writer = writers.MetricWriter(str(tmp_path), tensorboard=False)
  for step in range(1, 6):
    writer.write_scalars(step, {"loss": 1.0 / step})
  writer.write_scalars(4, {"accuracy": 0.5}, split="eval")
  writer.close()
  path = os.path.join(tmp_path, "metrics.jsonl")
  with open(path, "a", encoding="utf-8") as f:
    f.write('{"step": 6, "split": "tr')  # a kill in the middle of a write

  writer = writers.MetricWriter(str(tmp_path), tensorboard=False)
  assert writer.discard_after(3) == 4  # steps 4, 5, the eval at 4 and the partial line
  writer.write_scalars(4, {"loss": 0.2})
  writer.close()
  assert _steps(path) == [(1, "train"), (2, "train"), (3, "train"), (4, "train")]


def test_discard_after_keeps_everything_up_to_the_step_and_disabled_writer_is_a_no_op(tmp_path):
  writer = writers.MetricWriter(str(tmp_path), tensorboard=False)
  writer.write_scalars(1, {"loss": 1.0})
  assert writer.discard_after(1) == 0
  writer.close()
  assert _steps(os.path.join(tmp_path, "metrics.jsonl")) == [(1, "train")]
  disabled = writers.MetricWriter(str(tmp_path / "off"), enabled=False)
  assert disabled.discard_after(0) == 0
  assert not os.path.exists(tmp_path / "off")
