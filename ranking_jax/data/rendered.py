"""Render a procedural source once into memory (optionally cached on disk), with a progress line.

Procedural sources (the embedded scenes, sketches...) cost milliseconds per image to draw, too slow to
redraw at every training step on a CPU. :func:`render` draws every example once, keeps images as
``uint8`` (4x less memory than float32) and returns an :class:`ArraySource` that converts them back to
float32 in ``[0, 1]`` on read. With ``cache_dir`` the arrays are stored as
``<cache_dir>/<name>_<hash>.npz`` keyed by ``cache_key`` (every option that changes the data) and reused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from typing import Any, Mapping, Optional, Sequence

import numpy as np

IMAGE_KEYS = ("image",)


class ArraySource:
  """An in-memory random-access source over a dict of equally long arrays.

  ``source[indices]`` returns every array indexed by ``indices``; ``uint8`` arrays named in
  ``image_keys`` are returned as float32 in ``[0, 1]`` (the :class:`ranking_jax.data.pipeline.Source`
  protocol).

  >>> src = ArraySource({"image": np.full((3, 2, 2, 3), 255, np.uint8), "y": np.arange(3.0)})
  >>> len(src), src[np.array([2, 0])]["y"].tolist(), float(src[np.array([1])]["image"].max())
  (3, [2.0, 0.0], 1.0)

  Raises:
    ValueError: no arrays, or arrays of different lengths.
  """

  def __init__(self, arrays: Mapping[str, np.ndarray], *, image_keys: Sequence[str] = IMAGE_KEYS):
    if not arrays:
      raise ValueError("ArraySource needs at least one array.")
    self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
    lengths = {k: len(v) for k, v in self.arrays.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"All arrays must have the same length, got {lengths}.")
    self.image_keys = tuple(image_keys)

  def __len__(self) -> int:
    return len(next(iter(self.arrays.values())))

  def __getitem__(self, indices: Any) -> dict[str, np.ndarray]:
    indices = np.asarray(indices)
    out = {}
    for key, array in self.arrays.items():
      value = array[indices]
      if key in self.image_keys and value.dtype == np.uint8:
        value = value.astype(np.float32) / np.float32(255.0)
      out[key] = value
    return out


class Progress:
  """A one-line progress report with ETA for long host-side loops (rendering, caching).

  Prints at most every ``every_seconds`` to ``stream`` (stderr by default) and once at the end.
  """

  def __init__(self, total: int, description: str, *, every_seconds: float = 5.0, stream: Any = None):
    self.total, self.description = int(total), description
    self.every_seconds = every_seconds
    self.stream = stream if stream is not None else sys.stderr
    self.start = self.last = time.perf_counter()

  def update(self, done: int) -> None:
    now = time.perf_counter()
    if done < self.total and now - self.last < self.every_seconds:
      return
    self.last = now
    elapsed = now - self.start
    eta = elapsed / done * (self.total - done) if done else math.inf
    eta_text = "?" if not math.isfinite(eta) else f"{int(eta) // 60}:{int(eta) % 60:02d}"
    print(f"{self.description}: {done}/{self.total} ({100.0 * done / max(self.total, 1):.0f}%), "
          f"{elapsed:.0f} s elapsed, ETA {eta_text}", file=self.stream, flush=True)


def render(source: Any, *, keys: Optional[Sequence[str]] = None, image_keys: Sequence[str] = IMAGE_KEYS,
           chunk_size: int = 250, cache_dir: str = "", cache_key: Any = None, name: str = "data",
           description: str = "") -> ArraySource:
  """Reads every example of ``source`` once into an :class:`ArraySource` (images stored as ``uint8``).

  Args:
    source: a random-access source (``len``, ``source[index_array] -> dict``).
    keys: the entries to keep (default: all).
    image_keys: float entries in ``[0, 1]`` stored as ``uint8`` (rounded; 1/510 maximum error).
    chunk_size: examples drawn per call.
    cache_dir: if given, store/reuse ``<cache_dir>/<name>_<hash of cache_key>.npz``.
    cache_key: JSON-able description of everything that determines the data (needed with ``cache_dir``).
    name: file-name stem of the cache file.
    description: text of the progress line (default: ``"rendering <len> <name>"``).

  Raises:
    ValueError: ``cache_dir`` without ``cache_key``, or an empty ``source``.
  """
  if cache_dir and cache_key is None:
    raise ValueError("render(cache_dir=...) needs a cache_key describing the data.")
  total = len(source)
  if total < 1:
    raise ValueError("render() got an empty source.")
  path = ""
  if cache_dir:
    digest = hashlib.sha256(json.dumps(cache_key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"{name}_{digest}.npz")
    if os.path.exists(path):
      with np.load(path) as cached:
        return ArraySource({k: cached[k] for k in cached.files}, image_keys=image_keys)
  progress = Progress(total, description or f"rendering {total} {name}")
  parts: dict[str, list[np.ndarray]] = {}
  for start in range(0, total, chunk_size):
    batch = source[np.arange(start, min(start + chunk_size, total))]
    for key, value in batch.items():
      if keys is not None and key not in keys:
        continue
      value = np.asarray(value)
      if key in image_keys and value.dtype != np.uint8:
        value = np.round(np.clip(value, 0.0, 1.0) * 255.0).astype(np.uint8)
      parts.setdefault(key, []).append(value)
    progress.update(min(start + chunk_size, total))
  arrays = {k: np.concatenate(v) for k, v in parts.items()}
  if path:
    os.makedirs(cache_dir, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(temporary, **arrays)
    os.replace(temporary, path)  # atomic: concurrent runs never read a partial file
  return ArraySource(arrays, image_keys=image_keys)
