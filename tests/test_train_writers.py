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


def _events(path):
  """The Event protos of one TensorBoard event file (TFRecord framing: length, crc, payload, crc)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  events = []
  with open(path, "rb") as f:
    data = f.read()
  offset = 0
  while offset < len(data):
    length = int.from_bytes(data[offset:offset + 8], "little")
    payload = data[offset + 12:offset + 12 + length]
    offset += 12 + length + 4
    event = event_pb2.Event()
    event.ParseFromString(payload)
    events.append(event)
  return events


def test_discard_after_marks_tensorboard_to_purge_the_recomputed_steps(tmp_path):
  writer = writers.MetricWriter(str(tmp_path))
  for step in range(1, 6):
    writer.write_scalars(step, {"loss": 1.0})
  writer.discard_after(3)
  writer.write_scalars(4, {"loss": 0.5})
  writer.close()
  files = sorted(os.listdir(tmp_path / "tensorboard"))
  assert len(files) == 2
  events = [e for name in files for e in _events(tmp_path / "tensorboard" / name)]
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  purges = [e.step for e in events if e.HasField("session_log")
            and e.session_log.status == event_pb2.SessionLog.START]
  assert purges == [4]  # TensorBoard hides the earlier events of steps >= 4
  scalar_steps = [e.step for e in events if e.HasField("summary")]
  assert scalar_steps == [1, 2, 3, 4, 5, 4]


def test_fresh_run_keeps_a_single_tensorboard_file(tmp_path):
  writer = writers.MetricWriter(str(tmp_path))
  assert writer.discard_after(0) == 0  # what the trainer calls on a run with no checkpoint
  writer.write_scalars(1, {"loss": 1.0})
  writer.close()
  assert len(os.listdir(tmp_path / "tensorboard")) == 1
