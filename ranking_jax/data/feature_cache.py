r"""A frozen trunk's features of a dataset split, computed once, resumable, keyed so any change recomputes.

**Use.** ::

    key = {**source.cache_key_fields(),            # dataset, split, image_size, split seed, image source
           "backbone": "efficientnet_lite0", "weights": params_hash(variables),
           "preprocessing": {"input": "(255 x - 127) / 128"}}
    arrays = compute_feature_cache(source, jax.jit(trunk_apply), cache_dir="~/.cache/ranking_jax/features",
                                   key_fields=key, batch_size=256)
    train_source = FeatureSource(arrays)           # {"features": [n, D], "attributes": ..., "index": ...}

``apply_fn`` is any function from a float32 image batch ``[batch_size, H, W, 3]`` (``source[i][image_key]``)
to features ``[batch_size, ...]`` (e.g. a Flax ``model.apply`` with the trunk's variables bound); nothing
here depends on a particular backbone. The last, short batch is padded (its last image repeated) to
``batch_size`` so a jitted ``apply_fn`` compiles once; the padded rows are dropped.

**Key.** ``key_fields`` must name the dataset, split, backbone, a hash of the weights (:func:`params_hash`),
the resolution (``image_size``) and the preprocessing (:data:`REQUIRED_KEY_FIELDS`), plus anything else
that changes the features (image source, split seed, ``max_examples``). The cache lives in
``<cache_dir>/<dataset>-<split>-<backbone>-<sha256 of the canonical JSON of the fields and the number of
examples>``: a changed field is a different folder, so a change recomputes and never reads old features.

**Files.** The folder holds ``chunk-<c>.npz`` (rows ``[c * rows, (c + 1) * rows)`` of ``features`` and the
passed-through keys of the source's batches: labels, ``index``) and ``manifest.json`` (the key fields, the
chunk size and each complete chunk's row count and SHA-256). A chunk is written to a temporary file and
renamed into place, then the manifest is rewritten the same way, so a killed run leaves only whole chunks
that the manifest lists; the next call computes only the chunks it lacks. On reading, a chunk whose file is
missing, whose SHA-256 differs or whose arrays disagree with the others is logged and recomputed. A
manifest whose key fields differ from the folder's key (a copied or edited folder) is refused
(:class:`FeatureCacheError`); one of another format version is discarded and recomputed. Two processes
filling the same folder at once do not corrupt it (unique temporary names, atomic renames) but may both
compute a chunk.

**Frozen features, fine-tuning the last blocks, or training from scratch** (:func:`parse_trunk_mode`; the
experiments' config knob, e.g. ``config.model.trunk``):

* ``"frozen"``: the whole pretrained trunk is fixed; its pooled features are cached once per split with
  this module and only the head trains, on :class:`FeatureSource` (no image decoding or trunk pass per
  step; random image augmentation is impossible since the features are fixed).
* ``"finetune:<k>"``: the pretrained trunk's last ``k`` blocks (and the head) train. Without random image
  augmentation, the output of the frozen first part (feature maps ``[n, h, w, c]``) can be cached here with
  ``apply_fn`` = the trunk up to block ``num_blocks - k`` (the key must then say so, e.g. ``"backbone":
  "efficientnet_lite0[:-2]"``); with augmentation, the frozen part runs every step under
  ``jax.lax.stop_gradient``.
* ``"scratch"``: random initialisation, everything trains on images; no cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import logging
import numpy as np

from ranking_jax.data import sources

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED_KEY_FIELDS = ("dataset", "split", "backbone", "weights", "image_size", "preprocessing")
TRUNK_MODES = ("frozen", "finetune", "scratch")


class FeatureCacheError(ValueError):
  """A cache folder's manifest does not belong to the requested key (refused, never reused)."""


def params_hash(params: Any) -> str:
  """SHA-256 (hex) of a pytree of arrays: every leaf's path, dtype, shape and bytes.

  Any change of a weight, a BatchNorm statistic, a shape or a parameter name changes the hash.
  """
  import jax  # pylint: disable=g-import-not-at-top  # lazy: the cache itself needs only numpy
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    leaf = np.ascontiguousarray(np.asarray(leaf))
    digest.update(f"{jax.tree_util.keystr(path)}|{leaf.dtype.str}|{leaf.shape}|".encode())
    digest.update(leaf.tobytes())
  return digest.hexdigest()


def _json_default(value: Any) -> Any:
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, (set, frozenset)):
    return sorted(value)
  raise TypeError(f"feature-cache key fields must be JSON values (str, number, bool, None, lists, dicts), "
                  f"got {type(value).__name__}: {value!r}.")


def canonical_key(key_fields: Mapping[str, Any], num_examples: int) -> str:
  """The canonical JSON of the key fields plus the number of examples (sorted keys, no spaces).

  Raises:
    ValueError: a field of :data:`REQUIRED_KEY_FIELDS` is missing or empty.
    TypeError: a value is not JSON-serialisable.
  """
  missing = [k for k in REQUIRED_KEY_FIELDS if key_fields.get(k) in (None, "", [], {})]
  if missing:
    raise ValueError(f"feature-cache key_fields lack {missing}; they must name {list(REQUIRED_KEY_FIELDS)} so "
                     "that a change of any of them invalidates the cache.")
  fields = {**dict(key_fields), "num_examples": int(num_examples)}
  return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=_json_default)


def cache_folder(cache_dir: str, key_fields: Mapping[str, Any], num_examples: int) -> str:
  """``<cache_dir>/<dataset>-<split>-<backbone>-<16 hex digits of the key's SHA-256>``."""
  key = canonical_key(key_fields, num_examples)
  readable = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(key_fields[k]))[:40]
                      for k in ("dataset", "split", "backbone"))
  return os.path.join(os.path.expanduser(os.fspath(cache_dir)),
                      f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:16]}")


def _write_atomic(path: str, write: Callable[[Any], None]) -> None:
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "wb") as f:
    write(f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)  # atomic: readers see the old file or the whole new one


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s" if seconds >= 3600 else (
      f"{seconds // 60}m{seconds % 60:02d}s")


class _Manifest:
  """``manifest.json``: ``{"format", "key", "chunk_rows", "num_examples", "chunks": {c: {rows, sha256}}}``."""

  def __init__(self, folder: str, key: str, num_examples: int, chunk_rows: int):
    self.path = os.path.join(folder, MANIFEST)
    self.data = {"format": FORMAT_VERSION, "key": json.loads(key), "num_examples": num_examples,
                 "chunk_rows": chunk_rows, "chunks": {}}
    if not os.path.exists(self.path):
      return
    try:
      with open(self.path, encoding="utf-8") as f:
        stored = json.load(f)
    except (OSError, ValueError) as error:
      logging.warning("feature cache %s: unreadable manifest (%s); recomputing everything.", folder, error)
      return
    if stored.get("format") != FORMAT_VERSION:
      logging.warning("feature cache %s: manifest format %r, not %d; recomputing everything.", folder,
                      stored.get("format"), FORMAT_VERSION)
      return
    stored_key = json.dumps(stored.get("key"), sort_keys=True, separators=(",", ":"))
    if stored_key != key:
      raise FeatureCacheError(f"feature cache {folder}: its manifest was written for the key {stored_key}, not "
                              f"the requested {key}. The folder was copied or edited; delete it to recompute.")
    if not isinstance(stored.get("chunk_rows"), int) or stored["chunk_rows"] < 1:
      raise FeatureCacheError(f"feature cache {folder}: manifest chunk_rows {stored.get('chunk_rows')!r} is "
                              "not a positive int; delete the folder to recompute.")
    self.data = stored

  @property
  def chunk_rows(self) -> int:
    return self.data["chunk_rows"]

  def entry(self, chunk: int) -> Optional[dict[str, Any]]:
    return self.data["chunks"].get(str(chunk))

  def set(self, chunk: int, entry: Optional[dict[str, Any]]) -> None:
    if entry is None:
      self.data["chunks"].pop(str(chunk), None)
    else:
      self.data["chunks"][str(chunk)] = entry
    _write_atomic(self.path, lambda f: f.write(json.dumps(self.data, indent=1, sort_keys=True).encode()))


def _load_chunk(path: str, entry: Optional[dict[str, Any]], rows: int) -> tuple[Optional[dict], str]:
  """The chunk's arrays, or ``(None, why)`` when absent from the manifest, missing or corrupted."""
  if entry is None:
    return None, "not computed"
  if not os.path.exists(path):
    return None, "file missing"
  if _sha256(path) != entry.get("sha256"):
    return None, "SHA-256 differs from the manifest's"
  with np.load(path, allow_pickle=False) as data:
    arrays = {k: data[k] for k in data.files}
  if "features" not in arrays or any(len(v) != rows for v in arrays.values()):
    return None, f"arrays without features or not of {rows} rows"
  return arrays, ""


def compute_feature_cache(source: Any, apply_fn: Callable[[np.ndarray], Any], *, cache_dir: str,
                          key_fields: Mapping[str, Any], batch_size: int = 256, image_key: str = "image",
                          passthrough: Optional[Sequence[str]] = None, log_every_s: float = 30.0
                          ) -> dict[str, np.ndarray]:
  """The features of every example of ``source``, computed once into ``cache_dir`` (see module docstring).

  Args:
    source: random access ``len(source)``, ``source[int array]`` -> dict of arrays with ``image_key``
      (any :class:`ranking_jax.data.sources.ExampleSource`, e.g. a CelebA-HQ or UTKFace split).
    apply_fn: images ``[batch_size, ...]`` -> features ``[batch_size, ...]`` (numpy or JAX array).
    cache_dir: the root folder of caches (one sub-folder per key).
    key_fields: what identifies the features (JSON values; :data:`REQUIRED_KEY_FIELDS` required).
    batch_size: examples per ``apply_fn`` call and per chunk file (a resumed cache keeps its first run's).
    image_key: the input key of the source's batches.
    passthrough: the other keys stored beside the features (default: every key but ``image_key``).
    log_every_s: seconds between progress lines (absl INFO: done/total, examples/s, ETA).

  Returns:
    ``{"features": float32 [N, ...], <passthrough key>: [N, ...]}``, rows in source order.

  Raises:
    ValueError: missing key fields, ``batch_size < 1``, an empty source, or ``apply_fn`` returning
      non-finite values or a wrong number of rows.
    FeatureCacheError: the folder's manifest belongs to another key.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
  num_examples = len(source)
  if num_examples < 1:
    raise ValueError("cannot cache the features of an empty source.")
  key = canonical_key(key_fields, num_examples)
  folder = cache_folder(cache_dir, key_fields, num_examples)
  os.makedirs(folder, exist_ok=True)
  manifest = _Manifest(folder, key, num_examples, int(batch_size))
  rows_per_chunk = manifest.chunk_rows
  num_chunks = math.ceil(num_examples / rows_per_chunk)
  chunks: list[dict[str, np.ndarray]] = []
  start_time, last_log, computed = time.monotonic(), time.monotonic(), 0
  for chunk in range(num_chunks):
    begin, end = chunk * rows_per_chunk, min((chunk + 1) * rows_per_chunk, num_examples)
    path = os.path.join(folder, f"chunk-{chunk:06d}.npz")
    entry = manifest.entry(chunk)
    arrays, why = _load_chunk(path, entry, end - begin)
    if arrays is None:
      if entry is not None:
        logging.warning("feature cache %s: chunk %d (%s); recomputing it.", folder, chunk, why)
        manifest.set(chunk, None)
      arrays = _compute_chunk(source, apply_fn, np.arange(begin, end), rows_per_chunk, image_key, passthrough)
      _write_atomic(path, lambda f, a=arrays: np.savez(f, **a))
      manifest.set(chunk, {"rows": end - begin, "sha256": _sha256(path)})
      computed += end - begin
      now = time.monotonic()
      if now - last_log >= log_every_s or chunk == num_chunks - 1:
        last_log = now
        rate = computed / max(now - start_time, 1e-9)
        logging.info("feature cache %s: %d/%d examples (%.1f %%), %.1f examples/s, ETA %s",
                     os.path.basename(folder), end, num_examples, 100.0 * end / num_examples, rate,
                     _format_seconds((num_examples - end) / rate))
    if chunks and (set(arrays) != set(chunks[0]) or any(
        arrays[k].shape[1:] != chunks[0][k].shape[1:] for k in arrays)):
      raise FeatureCacheError(f"feature cache {folder}: chunk {chunk} holds {_shapes(arrays)} but chunk 0 "
                              f"{_shapes(chunks[0])}; delete the folder to recompute.")
    chunks.append(arrays)
  if computed:
    logging.info("feature cache %s: computed %d of %d examples in %.1f s", folder, computed, num_examples,
                 time.monotonic() - start_time)
  return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _shapes(arrays: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
  return {k: v.shape[1:] for k, v in sorted(arrays.items())}


def _compute_chunk(source: Any, apply_fn: Callable[[np.ndarray], Any], indices: np.ndarray, rows: int,
                   image_key: str, passthrough: Optional[Sequence[str]]) -> dict[str, np.ndarray]:
  batch = source[indices]
  if image_key not in batch:
    raise KeyError(f"the source's batches have no {image_key!r} key (keys {sorted(batch)}); set image_key.")
  images = np.asarray(batch[image_key])
  if len(indices) < rows:  # repeat the last image: one input shape, so a jitted apply_fn compiles once
    images = np.concatenate([images, np.repeat(images[-1:], rows - len(indices), axis=0)])
  features = np.asarray(apply_fn(images), dtype=np.float32)
  if features.ndim < 1 or len(features) != rows:
    raise ValueError(f"apply_fn returned shape {features.shape} for a batch of {rows} inputs.")
  features = features[:len(indices)]
  if not np.all(np.isfinite(features)):
    raise ValueError(f"apply_fn returned non-finite features for examples {indices[0]}..{indices[-1]}; "
                     "nothing of this chunk was cached.")
  keys = [k for k in batch if k != image_key] if passthrough is None else list(passthrough)
  missing = [k for k in keys if k not in batch]
  if missing:
    raise KeyError(f"passthrough keys {missing} are not in the source's batches (keys {sorted(batch)}).")
  return {"features": features, **{k: np.asarray(batch[k]) for k in keys}}


def cached_features(source: Any, apply_fn: Callable[[np.ndarray], Any], *, cache_dir: str,
                    key_fields: Mapping[str, Any], batch_size: int = 256, **options: Any) -> np.ndarray:
  """float32 ``[N, ...]``: the ``features`` of :func:`compute_feature_cache` (same arguments)."""
  return compute_feature_cache(source, apply_fn, cache_dir=cache_dir, key_fields=key_fields,
                               batch_size=batch_size, **options)["features"]


class FeatureSource(sources.ExampleSource):
  """Random access to in-memory arrays with a common leading axis (e.g. :func:`compute_feature_cache`'s).

  ``source[indices]`` returns ``{key: array[indices]}``, vectorised; a scalar index drops the batch axis.
  Any other attributes given (``names``, ``num_values``) are kept, so the source can stand in for the image
  source it was computed from.

  Raises:
    ValueError: no arrays, or arrays of different lengths.
  """

  def __init__(self, arrays: Mapping[str, np.ndarray], **attributes: Any):
    self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
    lengths = {k: len(v) for k, v in self.arrays.items()}
    if not lengths or len(set(lengths.values())) != 1:
      raise ValueError(f"FeatureSource needs arrays of one common length, got {lengths}.")
    self._length = next(iter(lengths.values()))
    for name, value in attributes.items():
      setattr(self, name, value)

  def __len__(self) -> int:
    return self._length

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in self.arrays.items()}

  def __getitem__(self, indices: Any) -> dict[str, np.ndarray]:
    if np.ndim(indices) == 0 and not isinstance(indices, slice):
      return super().__getitem__(indices)
    indices = np.arange(len(self))[indices] if isinstance(indices, slice) else np.asarray(indices)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
      raise TypeError(f"indices must be an int or a 1-D integer array, got {indices!r}.")
    if indices.size == 0:
      raise ValueError("cannot build a batch from zero indices.")
    if indices.min() < -len(self) or indices.max() >= len(self):
      raise IndexError(f"indices out of range for {len(self)} examples of FeatureSource.")
    return {k: v[indices] for k, v in self.arrays.items()}


@dataclasses.dataclass(frozen=True)
class TrunkMode:
  """How an experiment uses its pretrained trunk (module docstring).

  Attributes:
    kind: ``"frozen"``, ``"finetune"`` or ``"scratch"``.
    trainable_blocks: the trunk's last blocks that train (0 for ``frozen``; ``None`` = all, ``scratch``).
  """
  kind: str
  trainable_blocks: Optional[int]

  @property
  def pretrained(self) -> bool:
    return self.kind != "scratch"


def parse_trunk_mode(value: str, *, num_blocks: Optional[int] = None) -> TrunkMode:
  """Parses ``"frozen"``, ``"finetune:<k>"`` (the last ``k >= 1`` blocks train) or ``"scratch"``.

  Args:
    value: the config string (e.g. ``config.model.trunk``).
    num_blocks: the trunk's number of blocks, to check ``k <= num_blocks``.

  Raises:
    ValueError: any other string, or ``k`` out of range.

  >>> parse_trunk_mode("finetune:2")
  TrunkMode(kind='finetune', trainable_blocks=2)
  """
  value = str(value).strip()
  if value == "frozen":
    return TrunkMode("frozen", 0)
  if value == "scratch":
    return TrunkMode("scratch", None)
  match = re.fullmatch(r"finetune:(\d+)", value)
  if match and int(match.group(1)) >= 1 and (num_blocks is None or int(match.group(1)) <= num_blocks):
    return TrunkMode("finetune", int(match.group(1)))
  limit = f"1..{num_blocks}" if num_blocks is not None else ">= 1"
  raise ValueError(f"trunk mode must be 'frozen', 'finetune:<k>' with k in {limit}, or 'scratch'; got {value!r}.")
