"""Metric logging: a console progress line, TensorBoard summaries and a JSONL file in the workdir.

Only process 0 writes (other processes get a disabled writer). Files:

* ``<workdir>/metrics.jsonl``: one JSON object per record, ``{"step": ..., "split": "train"|"eval",
  "<name>": value, ...}``, appended. A resumed run first drops the records of steps after its restored
  checkpoint (and a line cut short by a kill), so each step appears once;
* ``<workdir>/tensorboard/``: ``train/<name>`` and ``eval/<name>`` scalars (tensorboardX); a resumed run
  writes a purge marker so that TensorBoard hides the superseded events.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Mapping, Optional

from absl import logging
import numpy as np


def _to_float(value: Any) -> float:
  return float(np.asarray(value))


def format_progress(step: int, total_steps: int, examples_per_second: float, eta_seconds: float,
                    metrics: Mapping[str, float], *, unit: str = "ex") -> str:
  """The console progress line; ``unit`` names one example (``"ex"``, ``"pairs"``...).

  >>> format_progress(10, 100, 1234.5, 75.0, {"loss": 0.5, "loss/rank": 0.25})
  'step 10/100 (10.0%) | 1234.5 ex/s | ETA 0:01:15 | loss 0.5000 | loss/rank 0.2500'
  """
  if math.isfinite(eta_seconds):
    hours, rest = divmod(int(round(eta_seconds)), 3600)
    eta = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
  else:
    eta = "?"
  parts = [f"step {step}/{total_steps} ({100.0 * step / max(total_steps, 1):.1f}%)",
           f"{examples_per_second:.1f} {unit}/s", f"ETA {eta}"]
  parts += [f"{k} {v:.4f}" for k, v in metrics.items()]
  return " | ".join(parts)


class MetricWriter:
  """Writes scalars to JSONL + TensorBoard and prints progress; a no-op when ``enabled`` is False."""

  def __init__(self, workdir: str, *, enabled: bool = True, tensorboard: bool = True):
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    self._tb_dir = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")
    self._tb_dir = os.path.join(workdir, "tensorboard") if tensorboard else None
    self._open_tensorboard()

  def _open_tensorboard(self, purge_step: Optional[int] = None) -> None:
    if self._tb_dir is not None:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      # A distinct file name: event files are named by the second, and a reopened writer must not
      # overwrite the file of the first within the same second.
      suffix = "" if purge_step is None else f".resumed_at_{purge_step - 1}"
      self._tb = SummaryWriter(self._tb_dir, purge_step=purge_step, filename_suffix=suffix)

  def write_scalars(self, step: int, scalars: Mapping[str, Any], *, split: str = "train") -> None:
    if not self.enabled:
      return
    values = {k: _to_float(v) for k, v in scalars.items()}
    self._jsonl.write(json.dumps({"step": int(step), "split": split, **values}) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in values.items():
        self._tb.add_scalar(f"{split}/{k}", v, int(step))
      self._tb.flush()

  def discard_after(self, step: int, *, evaluations_at_step: bool = True) -> int:
    """Drops the ``metrics.jsonl`` records of steps after ``step`` (and unreadable lines); returns the count.

    With ``evaluations_at_step=False`` the evaluation records *at* ``step`` are dropped too (a relaunch
    whose final evaluation at ``step`` is about to be recomputed must not append it twice).

    Called on resume: the steps after the restored checkpoint are about to be recomputed. The file is
    rewritten atomically (write + rename). TensorBoard's event files are append-only, so when records were
    dropped the TensorBoard writer is reopened with ``purge_step=step + 1``, which tells TensorBoard to
    hide the old events of the recomputed steps.
    """
    if not self.enabled:
      return 0
    path = self._jsonl.name
    self._jsonl.close()
    kept, dropped = [], 0
    with open(path, encoding="utf-8") as f:
      for line in f:
        try:
          record = json.loads(line)
          keep = int(record["step"]) < step or (int(record["step"]) == step and (
              evaluations_at_step or record.get("split") == "train"))
        except (ValueError, KeyError, TypeError):  # a partial last line from a killed run
          keep = False
        if keep:
          kept.append(line if line.endswith("\n") else line + "\n")
        else:
          dropped += 1
    if dropped:
      with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(kept)
      os.replace(path + ".tmp", path)
    self._jsonl = open(path, "a", encoding="utf-8")
    if dropped and self._tb is not None:  # a fresh run has nothing to purge: keep its one event file
      self._tb.close()
      self._open_tensorboard(purge_step=int(step) + 1)
    return dropped

  def log(self, message: str) -> None:
    if self.enabled:
      logging.info("%s", message)
      print(message, flush=True)

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None


class Throughput:
  """Examples/s and ETA over the steps since the last report (wall clock, host side)."""

  def __init__(self, global_batch_size: int, total_steps: int, start_step: int):
    self.global_batch_size = global_batch_size
    self.total_steps = total_steps
    self._last_step = start_step
    self._last_time = time.perf_counter()

  def report(self, step: int) -> tuple[float, float]:
    """Returns ``(examples_per_second, eta_seconds)`` and starts a new window."""
    now = time.perf_counter()
    steps, seconds = step - self._last_step, now - self._last_time
    self._last_step, self._last_time = step, now
    if steps <= 0 or seconds <= 0:
      return 0.0, math.inf
    return steps * self.global_batch_size / seconds, (self.total_steps - step) * seconds / steps


def jsonable(value: Any) -> Any:
  """Converts numpy scalars/arrays inside nested dicts/lists to plain Python for ``json.dump``."""
  if isinstance(value, Mapping):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if isinstance(value, (np.generic, np.ndarray)):
    return np.asarray(value).tolist()
  return value


def write_json(path: str, payload: Mapping[str, Any]) -> None:
  """Writes JSON atomically (temporary file + rename) so a kill never leaves a truncated file."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(jsonable(payload), f, indent=2, sort_keys=True)
  os.replace(tmp, path)
