r"""CelebA-HQ faces with the 40 binary CelebA attributes of CelebAMask-HQ, from the official files.

CelebA-HQ (Karras et al., "Progressive growing of GANs", ICLR 2018) is a 30 000-image high-quality subset of
CelebA (Liu et al., ICCV 2015); CelebAMask-HQ (Lee et al., "MaskGAN", CVPR 2020,
https://github.com/switchablenorms/CelebAMask-HQ) distributes it with the 40 CelebA attribute labels.
Terms: non-commercial research and education only.

**Files** (one folder, ``config.data.data_dir``)::

    CelebAMask-HQ-attribute-anno.txt    line 1: the count (30000); line 2: the 40 attribute names;
                                        then one row per image: `<i>.jpg  ±1 ... ±1` (1 = present)
    CelebA-HQ-img/<i>.jpg               the official 1024x1024 images, i = 0 ... 29 999, or
    CelebA-HQ-img-64.zip                a re-sized copy as a zip (members `CelebA-HQ-img-64/<i>.jpg`)

Rows are split on whitespace (the official file has two spaces after the file name). The images may be a
folder or a zip of any resolution; the name suffix ``-<side>`` (``CelebA-HQ-img-64``) tells the side, no
suffix means the official 1024. Without ``config.data.images`` (a folder or zip path), the loader takes
the smallest copy at least as large as ``image_size`` (else the largest), so a 64-px run reads the 64-px zip
even when the 1024-px folder is there too. Images are resized (Pillow, antialiased bilinear, after JPEG
draft-mode decoding at the nearest larger power-of-two scale) to ``config.data.image_size``.

**Split.** CelebA-HQ has no official train/validation/test partition. :func:`build_splits` draws one: a
permutation of the rows by ``numpy.random.default_rng(seed)``; the first ``round(N * test_fraction)``
rows are the test split, the next ``round(N * validation_fraction)`` the validation split, the rest the
training split (defaults 0.8 / 0.1 / 0.1: 24 000 / 3 000 / 3 000 images). CelebA-HQ does not publish
identities, so **one person can appear in two splits** (its 30 000 images come from about 6 200 CelebA
identities): test scores are optimistic compared with CelebA's identity-disjoint partition. With
``max_examples`` each split keeps its first ``round(max_examples * fraction)`` rows of that permutation, so
a small run's test images are a subset of the full run's, never training images of it.

The image-folder and zip reader (:class:`ImageFiles`), the seeded split (:func:`seeded_split`) and the
labelled image source (:class:`ImageLabelSource`) are generic; :mod:`ranking_jax.data.utkface` uses them too.
"""

from __future__ import annotations

import io
import os
import re
import time
import zipfile
from typing import Any, Mapping, Optional, Sequence, Union

from absl import logging
import numpy as np
from PIL import Image

from ranking_jax.data import sources
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.data.errors import missing_file_error

DATASET_NAME = "celeba_hq"
SPLITS = ("train", "validation", "test")
ANNOTATION_FILE = "CelebAMask-HQ-attribute-anno.txt"
IMAGE_FOLDER = "CelebA-HQ-img"
NUM_IMAGES = 30000
OFFICIAL_SIDE = 1024
SOURCE_URL = "https://github.com/switchablenorms/CelebAMask-HQ"
# The attribute order of the annotation file's line 2 (= CelebA's list_attr_celeba.txt, alphabetical).
ATTRIBUTE_NAMES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
    "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
    "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young")
DEFAULT_CONFIG = {"data_dir": "", "images": "", "image_size": 64, "seed": 0, "validation_fraction": 0.1,
                  "test_fraction": 0.1, "max_examples": 0, "attributes": "", "preload": True}
GET_HELP = (f"{SOURCE_URL} (CelebAMask-HQ.zip: {ANNOTATION_FILE} and the {IMAGE_FOLDER}/ folder; "
            "non-commercial research terms)")
PUT_HELP = (f"one folder holding {ANNOTATION_FILE} and {IMAGE_FOLDER}/ (or a zip of the images such as "
            "CelebA-HQ-img-64.zip)")

Size = Union[int, Sequence[int]]


# ------------------------------------------------------------------------------------------- generic


def config_value(config: Any, key: str, default: Any) -> Any:
  """``config[key]`` of a dict, ``ml_collections.ConfigDict`` or attribute object; ``default`` if absent."""
  if config is None:
    return default
  if hasattr(config, "get"):
    return config.get(key, default)
  return getattr(config, key, default)


def image_hw(image_size: Size) -> tuple[int, int]:
  """``image_size`` (an int side or ``(height, width)``) as ``(height, width)``; raises ValueError."""
  size = (int(image_size), int(image_size)) if np.ndim(image_size) == 0 else tuple(int(s) for s in image_size)
  if len(size) != 2 or min(size) < 1:
    raise ValueError(f"`image_size` (config.data.image_size) must be a positive int or (height, width), "
                     f"got {image_size!r}.")
  return size


def decode_image(data: bytes, image_size: Size) -> np.ndarray:
  """Decodes an encoded image (any format Pillow reads) to uint8 ``[height, width, 3]`` RGB.

  Grey, palette and RGBA images are converted to RGB. JPEGs are decoded in draft mode at the smallest
  power-of-two reduction that stays at least as large as the target (much faster for 1024 -> 64), then
  resized with Pillow's antialiased bilinear filter; an image already of the target size is not resampled.
  """
  height, width = image_hw(image_size)
  with Image.open(io.BytesIO(data)) as image:
    image.draft("RGB", (width, height))
    image = image.convert("RGB")
    if image.size != (width, height):
      image = image.resize((width, height), resample=Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


class ImageFiles:
  """Reads image files by base name from a folder or a zip archive (members found in any sub-folder).

  Args:
    path: a folder (its files, not sub-folders) or a ``.zip`` file.
    config_key: the config key naming ``path``, for error messages.

  Attributes:
    path: the folder or zip.
    kind: ``"folder"`` or ``"zip"``.
    names: sorted base names of the files (a zip's directory entries excluded).

  Raises:
    DataNotFoundError: ``path`` is neither a folder nor a readable zip.
    ValueError: a zip holds two members with the same base name.
  """

  def __init__(self, path: Union[str, os.PathLike], *, config_key: str = "config.data.images"):
    self.path = os.fspath(os.path.expanduser(path))
    self._zip: Optional[zipfile.ZipFile] = None
    if os.path.isdir(self.path):
      self.kind = "folder"
      self._members = {n: n for n in os.listdir(self.path) if os.path.isfile(os.path.join(self.path, n))}
    elif os.path.isfile(self.path) and zipfile.is_zipfile(self.path):
      self.kind = "zip"
      self._members = {}
      for info in self._open().infolist():
        if info.is_dir():
          continue
        name = info.filename.rsplit("/", 1)[-1]
        if name in self._members:
          raise ValueError(f"{self.path}: members {self._members[name]!r} and {info.filename!r} share the "
                           "file name; give one image folder inside the zip.")
        self._members[name] = info.filename
    else:
      raise DataNotFoundError(f"Image folder or zip {self.path!r} not found (or not a zip file); set "
                              f"--{config_key}=... to the folder or zip of the images.")
    self.names = tuple(sorted(self._members))

  def _open(self) -> zipfile.ZipFile:
    if self._zip is None:  # opened lazily, so a pickled / copied reader opens its own handle
      self._zip = zipfile.ZipFile(self.path)
    return self._zip

  def __getstate__(self) -> dict[str, Any]:
    return {**self.__dict__, "_zip": None}

  def __contains__(self, name: str) -> bool:
    return name in self._members

  def __len__(self) -> int:
    return len(self._members)

  def read_bytes(self, name: str) -> bytes:
    """The encoded bytes of file ``name``; raises DataNotFoundError when absent."""
    if name not in self._members:
      raise DataNotFoundError(f"Image {name!r} not found in {self.path!r}.")
    if self.kind == "zip":
      return self._open().read(self._members[name])  # ZipFile reads are thread-safe (a shared locked file)
    with open(os.path.join(self.path, name), "rb") as f:
      return f.read()

  def read(self, name: str, image_size: Size) -> np.ndarray:
    """Image ``name`` as uint8 ``[height, width, 3]`` (:func:`decode_image`)."""
    try:
      return decode_image(self.read_bytes(name), image_size)
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's errors for truncated / non-image files
      raise ValueError(f"cannot decode image {name!r} of {self.path!r}: {error}") from error


def seeded_split(num_examples: int, *, seed: int, validation_fraction: float = 0.1,
                 test_fraction: float = 0.1, max_examples: Optional[int] = None) -> dict[str, np.ndarray]:
  """A seeded train/validation/test partition of ``range(num_examples)``.

  ``p = numpy.random.default_rng(seed).permutation(num_examples)``; test = ``p[:n_test]``, validation =
  the next ``n_val``, train = the rest, with ``n_test = round(num_examples * test_fraction)`` and ``n_val``
  likewise. ``max_examples`` (``None`` or ``0``: all) keeps the first ``round(max_examples * fraction)``
  of each split in permutation order (train: the remainder), so a smaller run's splits are subsets of the
  full run's. Each split's indices are returned sorted.

  Returns:
    ``{"train", "validation", "test"}`` -> int64 ``[n_split]``, disjoint.

  Raises:
    ValueError: fractions outside ``[0, 1)`` or leaving no training example, or a negative count.

  >>> {k: len(v) for k, v in seeded_split(10, seed=0).items()}
  {'train': 8, 'validation': 1, 'test': 1}
  """
  validation_fraction, test_fraction = float(validation_fraction), float(test_fraction)
  if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1):
    raise ValueError("config.data.validation_fraction and test_fraction must be in [0, 1) with a sum below 1, "
                     f"got {validation_fraction} and {test_fraction}.")
  if num_examples < 0 or (max_examples is not None and max_examples < 0):
    raise ValueError(f"counts must be >= 0, got num_examples={num_examples}, max_examples={max_examples}.")

  def counts(n: int) -> tuple[int, int, int]:
    n_test, n_val = round(n * test_fraction), round(n * validation_fraction)
    return n - n_test - n_val, n_val, n_test

  n_train, n_val, n_test = counts(num_examples)
  if num_examples and n_train < 1:
    raise ValueError(f"the fractions leave no training example of {num_examples}.")
  order = np.random.default_rng(int(seed)).permutation(num_examples)
  splits = {"test": order[:n_test], "validation": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
  if max_examples and max_examples < num_examples:
    m_train, m_val, m_test = counts(int(max_examples))
    splits = {"train": splits["train"][:m_train], "validation": splits["validation"][:m_val],
              "test": splits["test"][:m_test]}
  return {k: np.sort(splits[k]).astype(np.int64) for k in SPLITS}


class ImageLabelSource(sources.ExampleSource):
  """Random-access images from an :class:`ImageFiles` with per-image label arrays.

  ``source[indices]`` returns ``{"image": float32 [n, height, width, 3] in [0, 1], <label key>: [n, ...]
  for each label array, "index": int64 [n]}`` (``index``: the example's id in the whole dataset); a scalar
  index drops the batch axis.

  Args:
    files: the image reader.
    file_names: the file of each example.
    labels: ``{key: array [len(file_names), ...]}``.
    ids: int64 id of each example in the whole dataset (the ``index`` key).
    image_size: output side or ``(height, width)``.
    name: dataset name; split: split name (both for :meth:`cache_key_fields` and messages).
    fingerprint: extra fields that identify the content (split seed, fractions, image source).

  :meth:`preload` decodes every image once into a uint8 ``[n, height, width, 3]`` array (``n * height *
  width * 3`` bytes: 369 MB for 30 000 images at 64 px); later reads index it.
  """

  def __init__(self, files: ImageFiles, file_names: Sequence[str], labels: Mapping[str, np.ndarray],
               ids: np.ndarray, *, image_size: Size, name: str, split: str,
               fingerprint: Optional[Mapping[str, Any]] = None):
    self.files = files
    self.file_names = tuple(file_names)
    self.label_arrays = {k: np.asarray(v) for k, v in labels.items()}
    self.ids = np.asarray(ids, np.int64)
    for key, value in {**self.label_arrays, "index": self.ids}.items():
      if len(value) != len(self.file_names):
        raise ValueError(f"{key!r} has {len(value)} rows for {len(self.file_names)} files.")
    self.image_size = image_hw(image_size)
    self.name = name
    self.split = split
    self.fingerprint = dict(fingerprint or {})
    self.images: Optional[np.ndarray] = None

  def __len__(self) -> int:
    return len(self.file_names)

  def __repr__(self) -> str:
    return (f"{type(self).__name__}(split={self.split!r}, examples={len(self)}, image_size={self.image_size}, "
            f"images={self.files.path!r}, preloaded={self.images is not None})")

  def read_image(self, index: int) -> np.ndarray:
    """uint8 ``[height, width, 3]`` of example ``index`` (checked by the caller)."""
    if self.images is not None:
      return self.images[index]
    return self.files.read(self.file_names[index], self.image_size)

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    example = {"image": self.read_image(index).astype(np.float32) / np.float32(255.0)}
    example.update({k: v[index] for k, v in self.label_arrays.items()})
    example["index"] = self.ids[index]
    return example

  def __getitem__(self, indices: Any) -> dict[str, np.ndarray]:
    if self.images is None or np.ndim(indices) == 0 and not isinstance(indices, slice):
      return super().__getitem__(indices)
    if isinstance(indices, slice):
      indices = np.arange(len(self))[indices]
    indices = np.asarray(indices)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
      raise TypeError(f"indices must be an int or a 1-D integer array, got {indices!r}.")
    if indices.size == 0:
      raise ValueError("cannot build a batch from zero indices.")
    if indices.min() < -len(self) or indices.max() >= len(self):
      raise IndexError(f"indices out of range for {len(self)} examples of {type(self).__name__}.")
    batch = {"image": self.images[indices].astype(np.float32) / np.float32(255.0)}  # vectorised when preloaded
    batch.update({k: v[indices] for k, v in self.label_arrays.items()})
    batch["index"] = self.ids[indices]
    return batch

  def preload(self, *, log_every_s: float = 30.0) -> "ImageLabelSource":
    """Decodes every image into memory once (logs progress); returns ``self``."""
    if self.images is not None or not len(self):
      return self
    images = np.empty((len(self), *self.image_size, 3), np.uint8)
    start = last = time.monotonic()
    for i, file_name in enumerate(self.file_names):
      images[i] = self.files.read(file_name, self.image_size)
      now = time.monotonic()
      if now - last >= log_every_s:
        last = now
        rate = (i + 1) / (now - start)
        logging.info("%s %s: decoded %d/%d images (%.0f/s, ETA %.0f s)", self.name, self.split, i + 1,
                     len(self), rate, (len(self) - i - 1) / rate)
    self.images = images
    logging.info("%s %s: %d images decoded in %.1f s", self.name, self.split, len(self), time.monotonic() - start)
    return self

  def cache_key_fields(self) -> dict[str, Any]:
    """The fields that identify this split's content, for :mod:`ranking_jax.data.feature_cache` keys.

    ``{"dataset", "split", "num_examples", "image_size", "images", ...fingerprint}`` (JSON types only);
    the caller adds the backbone, its weights' hash and the preprocessing. ``images`` is the image folder's
    or zip's base name: replacing its content under the same name needs the cache deleted by hand.
    """
    return {"dataset": self.name, "split": self.split, "num_examples": len(self),
            "image_size": list(self.image_size), "images": os.path.basename(self.files.path.rstrip("/")),
            **self.fingerprint}


def image_source_side(path: str, official_side: int) -> int:
  """The image side a folder or zip name states with a ``-<side>`` suffix, else ``official_side``.

  >>> image_source_side("/d/CelebA-HQ-img-64.zip", 1024), image_source_side("/d/CelebA-HQ-img", 1024)
  (64, 1024)
  """
  match = re.search(r"-(\d+)(\.zip)?$", os.path.basename(path.rstrip("/")))
  return int(match.group(1)) if match else official_side


def pick_images(candidates: Sequence[str], image_size: Size, official_side: int) -> Optional[str]:
  """Of the existing ``candidates``, the smallest whose side is >= ``max(image_size)``, else the largest."""
  existing = [c for c in candidates if os.path.exists(c)]
  if not existing:
    return None
  target = max(image_hw(image_size))
  sides = sorted((image_source_side(c, official_side), i, c) for i, c in enumerate(existing))
  large_enough = [c for side, _, c in sides if side >= target]
  return large_enough[0] if large_enough else sides[-1][2]


def parse_names(value: Any, known: Sequence[str], *, config_key: str) -> tuple[str, ...]:
  """A comma-separated string or sequence of names (``""`` / ``None`` / empty: all ``known``), checked."""
  if not value:
    return tuple(known)
  names = tuple(n.strip() for n in value.split(",")) if isinstance(value, str) else tuple(value)
  unknown = [n for n in names if n not in known]
  if unknown or len(set(names)) != len(names):
    raise ValueError(f"{config_key}: unknown or repeated names {unknown or list(names)}; choose from "
                     f"{list(known)}.")
  return names


# ------------------------------------------------------------------------------------------ CelebA-HQ


def read_annotations(path: Union[str, os.PathLike]) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
  """Reads ``CelebAMask-HQ-attribute-anno.txt``.

  Returns:
    ``(attribute names, file names, labels)``: 40 names, one file name per row (``"0.jpg"``), labels int32
    ``[rows, 40]`` in ``{0, 1}`` (the file's ``-1`` -> 0).

  Raises:
    DataNotFoundError: the file does not exist (the message says where to get it and the config key).
    ValueError: a malformed count, header or row (the message names the line), or a count that disagrees
      with the number of rows.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise missing_file_error(path, what="CelebA-HQ annotation file " + ANNOTATION_FILE, get=GET_HELP,
                             put=PUT_HELP, config_key="config.data.data_dir")
  with open(path, encoding="utf-8") as f:
    lines = [line.split() for line in f]
  while lines and not lines[-1]:
    lines.pop()
  if len(lines) < 2 or len(lines[0]) != 1 or not lines[0][0].isdigit():
    raise ValueError(f"{path}:1: expected the image count on line 1 and the attribute names on line 2.")
  names = tuple(lines[1])
  rows = lines[2:]
  file_names, labels = [], []
  for line, row in enumerate(rows, start=3):
    if len(row) != len(names) + 1:
      raise ValueError(f"{path}:{line}: expected a file name and {len(names)} values, got {len(row)} fields.")
    values = row[1:]
    if any(v not in ("1", "-1") for v in values):
      raise ValueError(f"{path}:{line}: attribute values must be 1 or -1, got {values}.")
    file_names.append(row[0])
    labels.append([v == "1" for v in values])
  if int(lines[0][0]) != len(rows):
    raise ValueError(f"{path}: line 1 says {lines[0][0]} images but {len(rows)} rows follow.")
  return names, tuple(file_names), np.array(labels, np.int32).reshape(len(rows), len(names))


def _image_id(file_name: str) -> int:
  stem = os.path.splitext(file_name)[0]
  return int(stem) if stem.isdigit() else -1


class CelebAHQSource(ImageLabelSource):
  """A CelebA-HQ split (:func:`build_splits`): an :class:`ImageLabelSource` with label key ``attributes``.

  Attributes:
    names: the attribute names, in label-column order.
    num_values: ``(2,) * len(names)`` (binary attributes).
  """

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(self.fingerprint["attributes"])

  @property
  def num_values(self) -> tuple[int, ...]:
    return (2,) * len(self.names)

  def labels(self) -> np.ndarray:
    """All labels int32 ``[len(self), len(names)]`` in ``{0, 1}`` (no image decoding)."""
    return self.label_arrays["attributes"]


def build_splits(data_config: Any = None) -> dict[str, CelebAHQSource]:
  """CelebA-HQ ``{"train", "validation", "test"}`` sources (the seeded split of the module docstring).

  Each source returns ``{"image": float32 [n, h, w, 3] in [0, 1], "attributes": int32 [n, A] in {0, 1},
  "index": int64 [n]}`` (``index``: the image id ``i`` of ``<i>.jpg``) and has ``names`` (the attribute
  names), ``num_values`` (``(2,) * A``) and ``labels()`` (int32 ``[n, A]``, no decoding).

  Args:
    data_config: a dict or ``ml_collections.ConfigDict`` with (defaults in :data:`DEFAULT_CONFIG`):
      ``data_dir`` (the folder of the files; required), ``images`` (a folder or zip of the images; default
      the best of ``data_dir``'s, see the module docstring), ``image_size`` (int or ``(height, width)``),
      ``seed`` (the split's), ``validation_fraction``, ``test_fraction``, ``max_examples`` (0: all),
      ``attributes`` (``""``: all 40, or a comma-separated string / sequence of names, in that order) and
      ``preload`` (decode all images into memory at once; False: decode at each read).

  Raises:
    DataNotFoundError: the annotation file, the images, or some listed image is missing (the message names
      it, where to get it, where to put it and the config key).
    ValueError: malformed files or config values.
  """
  def get(key: str) -> Any:
    return config_value(data_config, key, DEFAULT_CONFIG[key])

  data_dir = os.fspath(os.path.expanduser(get("data_dir") or ""))
  if not data_dir:
    raise DataNotFoundError(f"No CelebA-HQ folder given: set --config.data.data_dir=... to {PUT_HELP}. Get "
                            f"the files from {GET_HELP}.")
  image_size = image_hw(get("image_size"))
  names, file_names, labels = read_annotations(os.path.join(data_dir, ANNOTATION_FILE))
  if len(set(names)) != len(names) or not names:
    raise ValueError(f"{ANNOTATION_FILE}: repeated or no attribute names {names}.")
  chosen = parse_names(get("attributes"), names, config_key="config.data.attributes")
  labels = labels[:, [names.index(n) for n in chosen]]
  images_path = get("images") or pick_images(
      [os.path.join(data_dir, n) for n in sorted(os.listdir(data_dir)) if n.startswith(IMAGE_FOLDER) and (
          n.endswith(".zip") or os.path.isdir(os.path.join(data_dir, n)))], image_size, OFFICIAL_SIDE)
  if not images_path:
    raise missing_file_error(os.path.join(data_dir, IMAGE_FOLDER), what="CelebA-HQ image folder or zip",
                             get=GET_HELP, put=PUT_HELP + " (or set --config.data.images=<folder or zip>)",
                             config_key="config.data.data_dir")
  files = ImageFiles(images_path)
  missing = [n for n in file_names if n not in files]
  if missing:
    raise missing_file_error(os.path.join(files.path, missing[0]),
                             what=f"{len(missing)} of the {len(file_names)} listed CelebA-HQ images, e.g. image",
                             get=GET_HELP, put=f"{files.path} (the images of {ANNOTATION_FILE})",
                             config_key="config.data.images")
  logging.info("celeba_hq: %d annotated images, images from %s", len(file_names), files.path)
  seed = int(get("seed"))
  fractions = {"validation_fraction": float(get("validation_fraction")),
               "test_fraction": float(get("test_fraction"))}
  max_examples = int(get("max_examples") or 0)
  ids = np.array([_image_id(n) for n in file_names], np.int64)
  out = {}
  for split, rows in seeded_split(len(file_names), seed=seed, max_examples=max_examples, **fractions).items():
    source = CelebAHQSource(
        files, [file_names[r] for r in rows], {"attributes": labels[rows]}, ids[rows], image_size=image_size,
        name=DATASET_NAME, split=split, fingerprint={"seed": seed, "max_examples": max_examples,
                                                     "attributes": list(chosen), **fractions})
    out[split] = source.preload() if get("preload") else source
  return out
