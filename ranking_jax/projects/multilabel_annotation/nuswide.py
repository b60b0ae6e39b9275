"""NUS-WIDE (81 concepts) from the user's files in the official layout: the annotation paper's real data.

*Deep Convolutional Ranking for Multilabel Image Annotation* (Gong et al.) trains and tests on NUS-WIDE's
81 manually annotated concepts (the paper reports 150 000 training and 59 347 test images after dropping
the images without any of the 81 concepts; we use the official train/test lists, see below). Nothing
downloads: NUS-WIDE's label files are published by the NUS Lab for Media Search
(https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html: the ``Groundtruth``,
``ImageList`` and ``ConceptsList`` archives), and the images are Flickr photos that the user fetches from
the URL list published there (``NUS-WIDE-urls``) or obtains from the authors on request.

Layout (the official archives unpacked side by side under one root, ``config.data.data_dir``)::

    <data_dir>/
      ConceptsList/Concepts81.txt            81 concept names, one per line ("airport", "animal", ...);
                                             <data_dir>/Concepts81.txt is accepted too
      ImageList/TrainImagelist.txt           161 789 lines, one image each, e.g. "actor\\0001_2124494179.jpg"
      ImageList/TestImagelist.txt            107 859 lines
      Groundtruth/TrainTestLabels/
        Labels_<concept>_Train.txt           one "0" or "1" per line, aligned with TrainImagelist.txt
        Labels_<concept>_Test.txt            aligned with TestImagelist.txt
      Flickr/<folder>/<file>.jpg             the images (another folder: ``config.data.image_dir``)

Image-list entries are Windows paths relative to the ``Flickr`` folder (``actor\\0001_2124494179.jpg``;
some copies carry a prefix such as ``C:\\ImageData\\Flickr\\``, which is stripped). Label files may end
lines with ``\\r\\n`` or trailing blanks.

Images are decoded with PIL and resized to ``image_size`` squared (bilinear, aspect ratio not kept: the
paper resizes to 256 x 256 and trains on 220 x 220 crops). Many Flickr photos are no longer online, so
``missing_images="skip"`` drops list entries whose file is absent (counted in ``num_missing``); the
default ``"error"`` raises :class:`DataNotFoundError` naming the first missing file.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Optional, Sequence, Union

import numpy as np
from PIL import Image

from ranking_jax.data import sources
from ranking_jax.data.errors import DataNotFoundError

NUM_CONCEPTS = 81
SPLIT_FILES = {"train": "Train", "test": "Test"}
CONCEPTS_PATHS = (os.path.join("ConceptsList", "Concepts81.txt"), "Concepts81.txt")
IMAGE_LIST_PATH = os.path.join("ImageList", "{split}Imagelist.txt")
LABELS_PATH = os.path.join("Groundtruth", "TrainTestLabels", "Labels_{concept}_{split}.txt")
DEFAULT_IMAGE_DIR = "Flickr"
DEFAULT_IMAGE_SIZE = 256
NUSWIDE_URL = "https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html"

_HELP = (
    "NUS-WIDE is read from the official files, unpacked under one folder passed as "
    "--config.data.data_dir=/path/to/NUS-WIDE (images under its `Flickr/` folder, or pass "
    "--config.data.image_dir=/path/to/Flickr). The `ConceptsList`, `ImageList` and `Groundtruth` archives "
    f"are on the NUS-WIDE page ({NUSWIDE_URL}); the images are Flickr photos listed there (NUS-WIDE-urls) "
    "or available from the authors on request. Nothing is downloaded automatically. Expected layout: "
    "ConceptsList/Concepts81.txt, ImageList/{Train,Test}Imagelist.txt, "
    "Groundtruth/TrainTestLabels/Labels_<concept>_{Train,Test}.txt, Flickr/<folder>/<file>.jpg.")


def _missing(path: str, what: str) -> DataNotFoundError:
  return DataNotFoundError(f"NUS-WIDE {what} not found: {path!r}. {_HELP}")


def _read_lines(path: str, what: str) -> list[str]:
  if not os.path.isfile(path):
    raise _missing(path, what)
  with open(path, encoding="utf-8", errors="replace") as f:
    return [line.strip() for line in f if line.strip()]


def _check_split(split: str) -> str:
  if split not in SPLIT_FILES:
    raise ValueError(f"`split` must be one of {sorted(SPLIT_FILES)} (NUS-WIDE's official lists), got "
                     f"{split!r}.")
  return SPLIT_FILES[split]


def read_concepts(data_dir: Union[str, os.PathLike]) -> list[str]:
  """The concept names of ``Concepts81.txt`` in file order (the label columns).

  Raises:
    DataNotFoundError: neither ``ConceptsList/Concepts81.txt`` nor ``Concepts81.txt`` exists.
    ValueError: the file holds a repeated name.
  """
  data_dir = os.fspath(os.path.expanduser(data_dir))
  candidates = [os.path.join(data_dir, p) for p in CONCEPTS_PATHS]
  path = next((p for p in candidates if os.path.isfile(p)), candidates[0])
  concepts = _read_lines(path, "concept list")
  if len(set(concepts)) != len(concepts):
    raise ValueError(f"{path}: repeated concept names.")
  return concepts


def normalize_image_path(entry: str) -> str:
  r"""An image-list entry as a path relative to the ``Flickr`` folder, with ``/`` separators.

  >>> normalize_image_path("actor\\0001_2124494179.jpg")
  'actor/0001_2124494179.jpg'
  >>> normalize_image_path("C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg")
  'actor/0001_2124494179.jpg'
  """
  path = entry.strip().replace("\\", "/")
  marker = "Flickr/"
  if marker in path:
    path = path[path.rindex(marker) + len(marker):]
  return path.lstrip("/")


def read_image_list(data_dir: Union[str, os.PathLike], split: str) -> list[str]:
  """The image paths of ``ImageList/<Split>Imagelist.txt`` (relative to the image folder, ``/``-separated)."""
  path = os.path.join(os.fspath(os.path.expanduser(data_dir)),
                      IMAGE_LIST_PATH.format(split=_check_split(split)))
  return [normalize_image_path(line) for line in _read_lines(path, "image list")]


def read_labels(data_dir: Union[str, os.PathLike], split: str, concepts: Sequence[str],
                num_images: int) -> np.ndarray:
  """The 0/1 label matrix uint8 ``[num_images, len(concepts)]`` of one split from the per-concept files.

  Raises:
    DataNotFoundError: a ``Labels_<concept>_<Split>.txt`` file is missing (the message names it).
    ValueError: a file has a value other than 0/1 or a line count different from the image list's.
  """
  data_dir = os.fspath(os.path.expanduser(data_dir))
  split_name = _check_split(split)
  labels = np.zeros((num_images, len(concepts)), np.uint8)
  for column, concept in enumerate(concepts):
    path = os.path.join(data_dir, LABELS_PATH.format(concept=concept, split=split_name))
    values = _read_lines(path, f"label file of concept {concept!r}")
    if len(values) != num_images:
      raise ValueError(f"{path}: {len(values)} labels for the {num_images} images of "
                       f"{IMAGE_LIST_PATH.format(split=split_name)}.")
    bad = sorted(set(values) - {"0", "1"})
    if bad:
      raise ValueError(f"{path}: labels must be 0 or 1, found {bad[:3]}.")
    labels[:, column] = np.asarray(values) == "1"
  return labels


def _resize(image: Image.Image, size: int) -> np.ndarray:
  image = image.convert("RGB").resize((size, size), resample=Image.BILINEAR)
  return np.asarray(image, np.float32) / np.float32(255.0)


class NusWideSource(sources.ExampleSource):
  """Random-access NUS-WIDE images with their 81-concept multi-hot labels (one official split).

  ``source[index_array]`` returns ``image`` float32 ``[n, S, S, 3]`` in ``[0, 1]``, ``labels`` float32
  ``[n, 81]`` (columns in ``Concepts81.txt`` order, :attr:`concepts`) and ``index`` int64 ``[n]``.

  Args:
    data_dir: the root of the official layout (module docstring).
    split: ``"train"`` or ``"test"`` (the official lists).
    image_dir: the image folder; ``None`` is ``<data_dir>/Flickr``.
    image_size: output side ``S``.
    drop_untagged: drop images without any of the 81 concepts (the paper does).
    missing_images: ``"error"`` raises :class:`DataNotFoundError` if a listed (kept) image file is
      absent; ``"skip"`` drops such entries.
    indices: optional positions (after dropping) to keep, e.g. a validation subset.

  Attributes:
    concepts: the concept names; paths: image paths relative to ``image_dir``; label_matrix: uint8
    ``[len, 81]``; list_positions: each example's line in the official image list; num_missing.

  Raises:
    DataNotFoundError: a list, label or concept file, the image folder or (with ``"error"``) an image is
      missing; the message says which, where to get it and which config key to set.
  """

  def __init__(self, data_dir: Union[str, os.PathLike], split: str = "train", *,
               image_dir: Optional[Union[str, os.PathLike]] = None, image_size: int = DEFAULT_IMAGE_SIZE,
               drop_untagged: bool = True, missing_images: str = "error",
               indices: Optional[Sequence[int]] = None):
    if missing_images not in ("error", "skip"):
      raise ValueError(f"`missing_images` must be 'error' or 'skip', got {missing_images!r}.")
    if image_size < 1:
      raise ValueError(f"`image_size` must be positive, got {image_size}.")
    self.data_dir = os.fspath(os.path.expanduser(data_dir))
    self.split = split
    self.image_size = int(image_size)
    self.concepts = read_concepts(self.data_dir)
    paths = read_image_list(self.data_dir, split)
    labels = read_labels(self.data_dir, split, self.concepts, len(paths))
    self.image_dir = os.fspath(os.path.expanduser(image_dir or os.path.join(self.data_dir,
                                                                            DEFAULT_IMAGE_DIR)))
    if not os.path.isdir(self.image_dir):
      raise _missing(self.image_dir, "image folder")
    keep = np.ones(len(paths), bool)
    if drop_untagged:
      keep &= labels.any(axis=1)
    exists = np.array([os.path.isfile(os.path.join(self.image_dir, p)) if k else True
                       for p, k in zip(paths, keep)])
    self.num_missing = int(np.count_nonzero(~exists))
    if self.num_missing and missing_images == "error":
      first = paths[int(np.argmin(exists))]
      raise DataNotFoundError(
          f"NUS-WIDE image not found: {os.path.join(self.image_dir, first)!r} ({self.num_missing} of the "
          f"{int(keep.sum())} listed {split} images are missing). Pass missing_images='skip' "
          f"(--config.data.missing_images=skip) to train on the images you have. {_HELP}")
    positions = np.flatnonzero(keep & exists)
    if indices is not None:
      positions = positions[np.asarray(indices, np.int64)]
    self.list_positions = positions
    self.paths = [paths[i] for i in positions]
    self.label_matrix = labels[positions]

  def subset(self, indices: Sequence[int]) -> "NusWideSource":
    """A source over examples ``indices`` of this one (no files are read again)."""
    indices = np.asarray(indices, np.int64)
    part = copy.copy(self)
    part.list_positions = self.list_positions[indices]
    part.paths = [self.paths[i] for i in indices]
    part.label_matrix = self.label_matrix[indices]
    return part

  def __len__(self) -> int:
    return len(self.paths)

  def __repr__(self) -> str:
    return (f"NusWideSource({self.data_dir!r}, split={self.split!r}, images={len(self)}, "
            f"image_size={self.image_size})")

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    path = os.path.join(self.image_dir, self.paths[index])
    try:
      with Image.open(path) as image:
        pixels = _resize(image, self.image_size)
    except FileNotFoundError:
      raise _missing(path, "image") from None
    return {"image": pixels, "labels": self.label_matrix[index].astype(np.float32),
            "index": np.int64(index)}


def make_nuswide_splits(data_dir: Union[str, os.PathLike], *,
                        image_dir: Optional[Union[str, os.PathLike]] = None,
                        image_size: int = DEFAULT_IMAGE_SIZE, validation_fraction: float = 0.05,
                        seed: int = 0, drop_untagged: bool = True, missing_images: str = "error"
                        ) -> dict[str, NusWideSource]:
  """Train / validation / test sources: the official test list and the official train list, of which a
  seeded ``validation_fraction`` is held out as ``"validation"`` (no such key when it is 0).

  Raises:
    DataNotFoundError: as :class:`NusWideSource`.
  """
  if not 0.0 <= validation_fraction < 1.0:
    raise ValueError(f"`validation_fraction` must be in [0, 1), got {validation_fraction}.")
  options = dict(image_dir=image_dir, image_size=image_size, drop_untagged=drop_untagged,
                 missing_images=missing_images)
  full = NusWideSource(data_dir, "train", **options)
  order = np.random.default_rng([int(seed) & 0xFFFFFFFF, 81]).permutation(len(full))
  num_validation = int(round(validation_fraction * len(full)))
  splits = {"train": full.subset(np.sort(order[num_validation:]))}
  if num_validation:
    splits["validation"] = full.subset(np.sort(order[:num_validation]))
  splits["test"] = NusWideSource(data_dir, "test", **options)
  return splits
