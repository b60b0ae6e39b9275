"""Real data of the IDE RankNet experiment: PASCAL VOC 2012 images with visual-search-difficulty scores.

The paper ("IDE RankNet: Estimating the difficulty of visual search in an image", section IV.B) uses the
11 540 train+validation images of PASCAL VOC 2012 with the difficulty scores of Ionescu et al. ("How hard
can it be? Estimating the difficulty of visual search in an image", CVPR 2016), split 2:1:1 into train,
validation and test, resized to 224x224.

Here the images come from TFDS ``voc/2012`` (splits ``train`` and ``validation``), read with
``tfds.data_source`` (ArrayRecord random access, decoded with PIL: no TensorFlow at read time), and are
joined by file name with the scores CSV the user provides (``name,score`` per line, ``name`` the VOC image
id without ``.jpg``, with or without a ``name,score`` header). Preparing ``voc/2012`` once needs the
``data`` extra (TensorFlow)::

    pip install 'ranking_jax[data]'
    tfds build voc/2012 --file_format=array_record --data_dir=$HOME/tensorflow_datasets

``tensorflow_datasets`` is imported lazily, inside the functions, so ``import ranking_jax`` stays fast.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from typing import Any, Optional, Sequence, Union

import numpy as np

from ranking_jax.data import sources
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.data.images import resize_image

NUM_VOC_CLASSES = 20
VOC_SPLITS = ("train", "validation")
DEFAULT_IMAGE_SIZE = 224
SPLIT_FRACTIONS = (0.5, 0.25, 0.25)  # train : validation : test = 2 : 1 : 1

CSV_HELP = (
    "The visual-search-difficulty scores are the file `VSD_dataset.csv` published by Ionescu et al. (CVPR "
    "2016, 'How hard can it be? Estimating the difficulty of visual search in an image') with their "
    "image-difficulty package: one `name,score` line per PASCAL VOC 2012 train+val image (11 540 lines, "
    "`name` without `.jpg`, a header line is optional). Download it, put it anywhere (e.g. "
    "~/data/vsd/VSD_dataset.csv) and set --config.data.csv_path=<that path> (the `csv_path` argument "
    "in Python).")
VOC_HELP = (
    "TFDS dataset `voc/2012` is not prepared as ArrayRecord in {data_dir}. Prepare it once (downloads the "
    "~2 GB VOC2012 train+val archive from the PASCAL VOC site; TensorFlow is needed for this step only):\n"
    "    pip install -e '.[data]'   # adds tensorflow-cpu\n"
    "    tfds build voc/2012 --file_format=array_record --data_dir={data_dir}\n"
    "then set --config.data.tfds_data_dir={data_dir} (or TFDS_DATA_DIR). `tfds.data_source` cannot read "
    "the default TFRecord format, so `--file_format=array_record` is required.")


def read_difficulty_csv(path: Union[str, os.PathLike]) -> dict[str, float]:
  """Reads ``name,score`` lines (optional header) into ``{name: score}``.

  Names are stripped of any directory and ``.jpg`` extension. Raises :class:`DataNotFoundError` with
  download instructions when the file is missing and ``ValueError`` on a malformed or duplicated line.

  >>> import tempfile
  >>> with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
  ...   _ = f.write("name,score\\n2008_000002,3.725161\\n2008_000003.jpg,3.682165\\n")
  >>> read_difficulty_csv(f.name)
  {'2008_000002': 3.725161, '2008_000003': 3.682165}
  """
  path = os.fspath(os.path.expanduser(path))
  if not os.path.isfile(path):
    raise DataNotFoundError(f"Difficulty scores CSV not found at {path!r}. {CSV_HELP}")
  scores: dict[str, float] = {}
  with open(path, newline="") as f:
    for line_number, row in enumerate(csv.reader(f), start=1):
      if not row or not "".join(row).strip():
        continue
      if len(row) != 2:
        raise ValueError(f"{path}:{line_number}: expected `name,score`, got {row!r}.")
      name, score = image_name(row[0]), row[1].strip()
      try:
        value = float(score)
      except ValueError:
        if line_number == 1:
          continue  # header line
        raise ValueError(f"{path}:{line_number}: score {score!r} is not a number.") from None
      if not np.isfinite(value):
        raise ValueError(f"{path}:{line_number}: score {score!r} is not finite.")
      if name in scores:
        raise ValueError(f"{path}:{line_number}: image {name!r} appears twice.")
      scores[name] = value
  if not scores:
    raise ValueError(f"{path} holds no `name,score` rows. {CSV_HELP}")
  return scores


def image_name(filename: Union[str, bytes, np.ndarray]) -> str:
  """VOC image id of a TFDS ``image/filename`` or CSV name: ``b'dir/2008_000002.jpg'`` -> ``2008_000002``.

  >>> image_name(b"2008_000002.jpg")
  '2008_000002'
  """
  if isinstance(filename, np.ndarray):
    filename = filename.item()
  if isinstance(filename, bytes):
    filename = filename.decode("utf-8")
  name = os.path.basename(str(filename).strip())
  stem, extension = os.path.splitext(name)
  return stem if extension.lower() in (".jpg", ".jpeg", ".png") else name


def open_voc_split(split: str, data_dir: Optional[str] = None) -> Any:
  """``tfds.data_source('voc/2012', split=split)`` with an actionable error when it is not prepared."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # lazy: keeps imports TF-free

  shown_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  try:
    return tfds.data_source("voc/2012", split=split, data_dir=data_dir, download=False)
  except Exception as error:  # tfds raises several types (NotImplementedError, AssertionError, ...)
    raise DataNotFoundError(VOC_HELP.format(data_dir=shown_dir) + f"\n(tfds said: {error})") from error


def build_voc_index(data_dir: Optional[str] = None, *, cache_path: Optional[str] = None,
                    splits: Sequence[str] = VOC_SPLITS) -> list[tuple[str, int, str]]:
  """``(tfds_split, record_index, image_name)`` of every VOC image, read through ``tfds.data_source``.

  Reading the names decodes every record once (about a minute for 11 540 images on one CPU core); pass
  ``cache_path`` (a JSON file) to keep the result for later runs.
  """
  if cache_path and os.path.isfile(cache_path):
    with open(cache_path) as f:
      return [(str(s), int(i), str(n)) for s, i, n in json.load(f)]
  index = []
  for split in splits:
    source = open_voc_split(split, data_dir)
    for record in range(len(source)):
      index.append((split, record, image_name(source[record]["image/filename"])))
  if cache_path:
    os.makedirs(os.path.dirname(os.path.abspath(cache_path)), exist_ok=True)
    with open(cache_path, "w") as f:
      json.dump(index, f)
  return index


def join_by_name(index: Sequence[tuple[str, int, str]], scores: dict[str, float]
                 ) -> list[tuple[str, int, str, float]]:
  """Inner join of the VOC index with the scores, sorted by image name (independent of TFDS order).

  Raises ``ValueError`` if an image name occurs twice in the index or nothing matches.

  >>> join_by_name([("train", 0, "b"), ("validation", 0, "a"), ("train", 1, "c")], {"a": 3.0, "b": 4.0})
  [('validation', 0, 'a', 3.0), ('train', 0, 'b', 4.0)]
  """
  seen: dict[str, tuple[str, int]] = {}
  for split, record, name in index:
    if name in seen:
      raise ValueError(f"image {name!r} occurs twice in voc/2012 ({seen[name]} and {(split, record)}).")
    seen[name] = (split, record)
  joined = sorted(((split, record, name, scores[name]) for split, record, name in index if name in scores),
                  key=lambda entry: entry[2])
  if not joined:
    raise ValueError(
        f"no VOC image name matches the CSV (e.g. VOC {index[0][2] if index else None!r} vs CSV "
        f"{next(iter(scores), None)!r}). {CSV_HELP}")
  return joined


def split_indices(num_examples: int, *, seed: int = 0, fractions: Sequence[float] = SPLIT_FRACTIONS
                  ) -> dict[str, np.ndarray]:
  """A seeded random partition of ``range(num_examples)`` into train / validation / test (2:1:1 default).

  >>> parts = split_indices(8, seed=0)
  >>> [len(parts[k]) for k in ("train", "validation", "test")]
  [4, 2, 2]
  """
  if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
    raise ValueError(f"`fractions` must be three non-negative numbers summing to 1, got {fractions}.")
  order = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7]).permutation(num_examples)
  num_train = int(round(fractions[0] * num_examples))
  num_validation = int(round(fractions[1] * num_examples))
  return {"train": np.sort(order[:num_train]),
          "validation": np.sort(order[num_train:num_train + num_validation]),
          "test": np.sort(order[num_train + num_validation:])}


class VocDifficultySource(sources.ExampleSource):
  """Random-access VOC 2012 images with difficulty scores (one split of the 2:1:1 partition).

  ``source[i]`` returns ``image`` float32 ``[S, S, 3]`` in ``[0, 1]``, ``difficulty`` float32, ``labels``
  float32 0/1 ``[20]`` (VOC classes present) and ``index`` int64; an index array gives a leading batch axis.
  ``source.names[i]`` is the VOC image id of example ``i``.

  Args:
    entries: ``(tfds_split, record_index, image_name, score)`` rows (see :func:`make_voc_difficulty_splits`).
    data_dir: TFDS data directory.
    image_size: output side ``S`` (224 in the paper).
  """

  def __init__(self, entries: Sequence[tuple[str, int, str, float]], *, data_dir: Optional[str] = None,
               image_size: int = DEFAULT_IMAGE_SIZE):
    self.entries = [(str(s), int(r), str(n), float(v)) for s, r, n, v in entries]
    self.data_dir = data_dir
    self.image_size = int(image_size)
    self._sources: dict[str, Any] = {}

  @property
  def names(self) -> list[str]:
    return [entry[2] for entry in self.entries]

  @property
  def difficulties(self) -> np.ndarray:
    return np.array([entry[3] for entry in self.entries], np.float32)

  def __len__(self) -> int:
    return len(self.entries)

  def cache_key_fields(self) -> dict[str, Any]:
    """What identifies this split's images for a feature cache (:mod:`ranking_jax.models.pretrained_trunk`):
    the dataset, the image size and a hash of the ``(tfds split, record, name, score)`` rows."""
    digest = hashlib.sha256(json.dumps(self.entries).encode("utf-8")).hexdigest()[:16]
    return {"dataset": "voc2012_vsd", "image_size": self.image_size, "num_examples": len(self),
            "entries_sha256": digest}

  def _source(self, split: str) -> Any:
    if split not in self._sources:
      self._sources[split] = open_voc_split(split, self.data_dir)
    return self._sources[split]

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    split, record, _, score = self.entries[index]
    example = self._source(split)[record]
    labels = np.zeros(NUM_VOC_CLASSES, np.float32)
    classes = np.asarray(example.get("labels", []), np.int64).reshape(-1)
    labels[classes[(classes >= 0) & (classes < NUM_VOC_CLASSES)]] = 1.0
    return {"image": resize_image(example["image"], self.image_size), "difficulty": np.float32(score),
            "labels": labels, "index": np.int64(index)}


def make_voc_difficulty_splits(csv_path: Union[str, os.PathLike], *, data_dir: Optional[str] = None,
                               seed: int = 0, image_size: int = DEFAULT_IMAGE_SIZE,
                               index_cache_path: Optional[str] = None) -> dict[str, VocDifficultySource]:
  """Joins TFDS ``voc/2012`` train+validation with the scores CSV and splits it 2:1:1 with ``seed``.

  Args:
    csv_path: the visual-search-difficulty CSV (``name,score``, header optional).
    data_dir: TFDS data directory holding ``voc/2012`` prepared as ArrayRecord.
    seed: split seed (fixed by default, so every run uses the same partition).
    image_size: output image side.
    index_cache_path: optional JSON file caching the VOC file-name index (see :func:`build_voc_index`).

  Returns:
    ``{"train", "validation", "test"}`` -> :class:`VocDifficultySource` (5 770 / 2 885 / 2 885 images
    with the full data).

  Raises:
    DataNotFoundError: the CSV or the prepared dataset is missing (the message says what to do).
  """
  scores = read_difficulty_csv(csv_path)  # check the cheap file first
  joined = join_by_name(build_voc_index(data_dir, cache_path=index_cache_path), scores)
  parts = split_indices(len(joined), seed=seed)
  return {name: VocDifficultySource([joined[i] for i in part], data_dir=data_dir, image_size=image_size)
          for name, part in parts.items()}
