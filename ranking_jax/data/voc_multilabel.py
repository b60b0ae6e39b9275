"""PASCAL VOC 2007 multi-label classification (20 classes) through TFDS ``voc/2007``.

A second real multi-label set for the annotation experiment and the data of the mAP experiments: train on
``trainval`` (TFDS ``train+validation``, 5 011 images), test on the 4 952-image ``test`` split, with the 20
classes in TFDS / VOC order (:data:`VOC_CLASSES`). Records are read with ``tfds.data_source`` (ArrayRecord
random access, no TensorFlow at read time; ``tensorflow_datasets`` is imported lazily) and images resized
to ``image_size`` squared (bilinear, aspect ratio not kept).

Labels. TFDS gives two class lists per image: ``labels``, the classes of all its annotated objects, and
``labels_no_difficult``, those of its objects not marked *difficult*. The VOC classification protocol
(devkit ``<class>_<split>.txt``: 1 / -1 / 0) counts an image as positive for a class when it has a
non-difficult object of it, negative when it has no object of it, and *ignores* it (0) when its only objects
of the class are difficult. Every example therefore carries

* ``labels``: the multi-hot vector of the field chosen by ``label_field`` (``"labels"`` by default, for
  training; ``"labels_no_difficult"`` gives the protocol's positives),
* ``labels_no_difficult``: the protocol's positives,
* ``difficult``: 1 where the class is present only through difficult objects, the entries the VOC
  protocol leaves out of a class's AP (mask them: ``where = difficult == 0``).

Preparing ``voc/2007`` once needs the ``data`` extra (TensorFlow) and downloads the two VOC 2007 archives
(about 0.9 GB)::

    pip install -e ".[data]"
    tfds build voc/2007 --file_format=array_record --data_dir=$HOME/tensorflow_datasets

then pass ``--config.data.data_dir=$HOME/tensorflow_datasets`` (or set ``TFDS_DATA_DIR``).
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import numpy as np

from ranking_jax.data import sources
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.data.images import resize_image

DATASET_NAME = "voc/2007"
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
NUM_CLASSES = len(VOC_CLASSES)
TRAINVAL_SPLIT = "train+validation"
TEST_SPLIT = "test"
SPLIT_SIZES = {"train": 2501, "validation": 2510, TRAINVAL_SPLIT: 5011, TEST_SPLIT: 4952}
DEFAULT_IMAGE_SIZE = 224
LABEL_FIELDS = ("labels", "labels_no_difficult")

_HELP = (
    "TFDS dataset `voc/2007` is not prepared as ArrayRecord in {data_dir}. Prepare it once (downloads the "
    "two VOC 2007 archives, about 0.9 GB; TensorFlow is needed for this step only):\n"
    "    pip install -e \".[data]\"   # adds tensorflow-cpu\n"
    "    tfds build voc/2007 --file_format=array_record --data_dir={data_dir}\n"
    "then set --config.data.data_dir={data_dir} (or TFDS_DATA_DIR). `tfds.data_source` cannot read the "
    "default TFRecord format, so `--file_format=array_record` is required.")


def open_voc2007(split: str, data_dir: Optional[str] = None) -> Any:
  """``tfds.data_source('voc/2007', split=split)`` with an actionable error when it is not prepared.

  Raises:
    DataNotFoundError: the dataset is not prepared as ArrayRecord under ``data_dir`` (or TFDS' default).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # lazy: keeps imports TF-free

  shown_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  try:
    return tfds.data_source(DATASET_NAME, split=split, data_dir=data_dir, download=False)
  except Exception as error:  # tfds raises several types (NotImplementedError, AssertionError, ...)
    raise DataNotFoundError(_HELP.format(data_dir=shown_dir) + f"\n(tfds said: {error})") from error


def multi_hot(classes: Any, num_classes: int = NUM_CLASSES) -> np.ndarray:
  """float32 ``[num_classes]`` with 1 at every listed class id (out-of-range ids are ignored).

  >>> multi_hot([14, 2, 14], 20).nonzero()[0].tolist()
  [2, 14]
  """
  ids = np.asarray(classes if classes is not None else [], np.int64).reshape(-1)
  out = np.zeros(num_classes, np.float32)
  out[ids[(ids >= 0) & (ids < num_classes)]] = 1.0
  return out


def example_labels(record: Any, label_field: str = "labels") -> dict[str, np.ndarray]:
  """``labels`` (from ``label_field``), ``labels_no_difficult`` and ``difficult`` of one TFDS record.

  >>> out = example_labels({"labels": [0, 5], "labels_no_difficult": [5]})
  >>> out["labels"].nonzero()[0].tolist(), out["difficult"].nonzero()[0].tolist()
  ([0, 5], [0])
  """
  if label_field not in LABEL_FIELDS:
    raise ValueError(f"`label_field` must be one of {LABEL_FIELDS}, got {label_field!r}.")
  every = multi_hot(record.get("labels"))
  no_difficult = multi_hot(record.get("labels_no_difficult"))
  return {"labels": every if label_field == "labels" else no_difficult,
          "labels_no_difficult": no_difficult,
          "difficult": (every * (1.0 - no_difficult)).astype(np.float32)}


class VocMultilabelSource(sources.ExampleSource):
  """Random-access VOC 2007 images with 20-class multi-hot labels (one TFDS split, or part of one).

  ``source[index_array]`` returns ``image`` float32 ``[n, S, S, 3]`` in ``[0, 1]``, ``labels``,
  ``labels_no_difficult`` and ``difficult`` float32 ``[n, 20]`` (see the module docstring) and ``index``
  int64 ``[n]``.

  Args:
    split: a TFDS split string: ``"train+validation"`` (trainval), ``"test"``, ``"train"``, ...
    data_dir: TFDS data directory holding ``voc/2007`` as ArrayRecord (``None``: TFDS' default).
    image_size: output side ``S``.
    label_field: ``"labels"`` or ``"labels_no_difficult"`` for the ``labels`` key.
    records: optional record indices within the split to use (e.g. a validation hold-out).

  Raises:
    DataNotFoundError: (on construction) the dataset is not prepared.
  """

  def __init__(self, split: str = TRAINVAL_SPLIT, *, data_dir: Optional[str] = None,
               image_size: int = DEFAULT_IMAGE_SIZE, label_field: str = "labels",
               records: Optional[Sequence[int]] = None):
    if label_field not in LABEL_FIELDS:
      raise ValueError(f"`label_field` must be one of {LABEL_FIELDS}, got {label_field!r}.")
    if image_size < 1:
      raise ValueError(f"`image_size` must be positive, got {image_size}.")
    self.split = split
    self.data_dir = data_dir
    self.image_size = int(image_size)
    self.label_field = label_field
    self._data = open_voc2007(split, data_dir)
    all_records = np.arange(len(self._data), dtype=np.int64)
    self.records = all_records if records is None else all_records[np.asarray(records, np.int64)]

  def __len__(self) -> int:
    return len(self.records)

  def __repr__(self) -> str:
    return (f"VocMultilabelSource(split={self.split!r}, images={len(self)}, image_size={self.image_size}, "
            f"label_field={self.label_field!r})")

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    record = self._data[int(self.records[index])]
    example = example_labels(record, self.label_field)
    example["image"] = resize_image(record["image"], self.image_size)
    example["index"] = np.int64(index)
    return example

  def label_matrix(self) -> dict[str, np.ndarray]:
    """``labels``, ``labels_no_difficult`` and ``difficult`` of every example, ``[len, 20]``, without
    resizing images (each record is still decoded once)."""
    rows = [example_labels(self._data[int(r)], self.label_field) for r in self.records]
    if not rows:
      return {key: np.zeros((0, NUM_CLASSES), np.float32) for key in ("labels", "labels_no_difficult",
                                                                       "difficult")}
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}


def make_voc2007_splits(data_dir: Optional[str] = None, *, image_size: int = DEFAULT_IMAGE_SIZE,
                        label_field: str = "labels", validation_fraction: float = 0.1, seed: int = 0
                        ) -> dict[str, VocMultilabelSource]:
  """Train / validation / test: trainval minus a seeded hold-out, the hold-out, and the test split.

  ``validation_fraction=0`` trains on all of trainval (5 011 images) and returns no ``"validation"`` key.

  Raises:
    DataNotFoundError: the dataset is not prepared (the message says what to run).
  """
  if not 0.0 <= validation_fraction < 1.0:
    raise ValueError(f"`validation_fraction` must be in [0, 1), got {validation_fraction}.")
  options = dict(data_dir=data_dir, image_size=image_size, label_field=label_field)
  trainval = VocMultilabelSource(TRAINVAL_SPLIT, **options)
  order = np.random.default_rng([int(seed) & 0xFFFFFFFF, 2007]).permutation(len(trainval))
  num_validation = int(round(validation_fraction * len(trainval)))
  splits = {"train": VocMultilabelSource(TRAINVAL_SPLIT, records=np.sort(order[num_validation:]), **options)}
  if num_validation:
    splits["validation"] = VocMultilabelSource(TRAINVAL_SPLIT, records=np.sort(order[:num_validation]),
                                               **options)
  splits["test"] = VocMultilabelSource(TEST_SPLIT, **options)
  return splits
