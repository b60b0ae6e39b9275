r"""CelebA's 40 binary face attributes through TFDS ``celeb_a``: the CRL paper's face benchmark.

"Class Rectification Hard Mining for Imbalanced Deep Learning" (Dong, Gong, Zhu, ICCV 2017, section 3.1)
uses the aligned-and-cropped CelebA images (Liu, Luo, Wang, Tang, "Deep learning face attributes in the
wild", ICCV 2015) with the standard partition: the first 162 770 images for training, the next 19 867
(validation) and the last 19 962 for testing. TFDS ``celeb_a`` (version 2.1.0) has exactly that partition
as its ``train`` / ``validation`` / ``test`` splits; each record holds a 218x178 RGB ``image`` and the 40
``attributes`` as booleans.

Reading uses ``tfds.data_source`` (ArrayRecord random access; no TensorFlow at read time).
``tensorflow_datasets`` is imported lazily, so ``import ranking_jax`` stays light. Preparing the dataset
once needs the ``data`` extra (TensorFlow) and, because Google Drive often refuses the automatic download,
usually the files placed by hand (see :data:`PREPARE_HELP`, which :class:`DataNotFoundError` repeats).
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union

import numpy as np
from PIL import Image

from ranking_jax.data import celeba_hq
from ranking_jax.data import sources
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.errors import ConfigValueError

TFDS_NAME = "celeb_a"
SPLITS = ("train", "validation", "test")
# The paper's partition (= TFDS celeb_a's splits = list_eval_partition.txt's 0 / 1 / 2).
SPLIT_SIZES = {"train": 162770, "validation": 19867, "test": 19962}
IMAGE_SHAPE = (218, 178)
# The attributes in the order of list_attr_celeba.txt (alphabetical), as TFDS stores them (CelebA-HQ's too).
ATTRIBUTE_NAMES = celeba_hq.ATTRIBUTE_NAMES
NUM_ATTRIBUTES = len(ATTRIBUTE_NAMES)
NUM_VALUES = (2,) * NUM_ATTRIBUTES
# The files TFDS's celeb_a builder downloads (names as in its checksums.tsv), which can be placed by hand.
MANUAL_FILES = (
    ("img_align_celeba.zip", "Img/img_align_celeba.zip", "1 443 490 838 bytes, the aligned JPEG images"),
    ("list_eval_partition.txt", "Eval/list_eval_partition.txt", "the train / validation / test partition"),
    ("list_attr_celeba.txt", "Anno/list_attr_celeba.txt", "the 40 attributes"),
    ("list_landmarks_align_celeba.txt", "Anno/list_landmarks_align_celeba.txt", "the landmarks"),
    ("identity_CelebA.txt", "Anno/identity_CelebA.txt", "the identities"),
)
# Centre square of the 218x178 aligned images (the face is in the middle).
CENTRE_SQUARE = (20, 0, 178, 178)

PREPARE_HELP = (
    "TFDS dataset `celeb_a` is not prepared as ArrayRecord in {data_dir}. Prepare it once:\n"
    "  1. pip install -e \".[data]\"   (adds tensorflow-cpu; only this step needs it)\n"
    "  2. Google Drive usually refuses the automatic download, so place the five original CelebA files "
    "(linked from http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html: its Google Drive or Baidu folders Img/, "
    "Anno/ and Eval/; TFDS checks their sizes and checksums, so use these exact files, not re-packed copies "
    "such as Kaggle's) in TFDS's manual directory {manual_dir}/ :\n{files}\n"
    "  3. tfds build celeb_a --file_format=array_record --data_dir={data_dir} --manual_dir={manual_dir}\n"
    "Then set --config.data.data_dir={data_dir} (or the TFDS_DATA_DIR environment variable). "
    "`tfds.data_source` cannot read TFDS's default TFRecord format, so `--file_format=array_record` is "
    "required.")


def prepare_help(data_dir: Optional[str] = None) -> str:
  """The preparation instructions for ``data_dir`` (default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).

  >>> "tfds build celeb_a --file_format=array_record" in prepare_help("/data/tfds")
  True
  """
  shown = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  files = "\n".join(f"       {name}   ({origin} in the CelebA folder: {what})"
                    for name, origin, what in MANUAL_FILES)
  return PREPARE_HELP.format(data_dir=shown, manual_dir=os.path.join(shown, "downloads", "manual"),
                             files=files)


def open_split(split: str, data_dir: Optional[str] = None) -> Any:
  """``tfds.data_source('celeb_a', split=split)``; raises :class:`DataNotFoundError` when not prepared.

  Raises:
    ValueError: ``split`` is not one of :data:`SPLITS`.
    DataNotFoundError: the dataset is not prepared as ArrayRecord in ``data_dir`` (the message says which
      files to place where and the prepare command).
  """
  if split not in SPLITS:
    raise ValueError(f"CelebA split must be one of {SPLITS}, got {split!r}.")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # lazy: keeps imports TF-free
  try:
    return tfds.data_source(TFDS_NAME, split=split, data_dir=data_dir, download=False)
  except Exception as error:  # tfds raises several types (NotImplementedError, AssertionError, ...)
    raise DataNotFoundError(prepare_help(data_dir) + f"\n(tfds said: {error})") from error


def _size(image_size: Union[int, Sequence[int]]) -> tuple[int, int]:
  size = (int(image_size), int(image_size)) if np.ndim(image_size) == 0 else tuple(int(s) for s in image_size)
  if len(size) != 2 or min(size) < 1:
    raise ValueError(f"`image_size` must be an int or (height, width), got {image_size!r}.")
  return size


def crop_and_resize(image: np.ndarray, image_size: Union[int, Sequence[int]],
                    crop: Optional[Sequence[int]] = None) -> np.ndarray:
  """Crops a uint8 ``[H, W, 3]`` image to ``crop = (top, left, height, width)`` and resizes it (bilinear).

  Grey ``[H, W]`` / ``[H, W, 1]`` images are repeated to RGB; an RGBA image drops alpha.

  Args:
    image: uint8 image.
    image_size: output side, or ``(height, width)``.
    crop: optional box in input pixels (clipped to the image).

  Returns:
    float32 ``[height, width, 3]`` in ``[0, 1]``.

  >>> crop_and_resize(np.zeros((218, 178, 3), np.uint8), (55, 47), CENTRE_SQUARE).shape
  (55, 47, 3)
  """
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise ValueError(f"expected an image of shape [H, W, 3], got {image.shape}.")
  image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
  if image.dtype != np.uint8:
    image = np.clip(image, 0, 255).astype(np.uint8)
  if crop is not None:
    top, left, height, width = (int(c) for c in crop)
    image = image[max(top, 0):top + height, max(left, 0):left + width]
    if image.size == 0:
      raise ValueError(f"crop {tuple(crop)} leaves no pixel of the image.")
  height, width = _size(image_size)
  resized = Image.fromarray(np.ascontiguousarray(image)).resize((width, height), resample=Image.BILINEAR)
  return np.asarray(resized, dtype=np.float32) / np.float32(255.0)


class CelebASource(sources.ExampleSource):
  """Random-access CelebA split: ``len(source)``, ``source[i]``, ``source[index_array]``.

  ``source[indices]`` returns ``{"image": float32 [n, height, width, 3] in [0, 1], "attributes": int32
  [n, 40] (0/1, in the order of ATTRIBUTE_NAMES), "index": int64 [n]}``; a scalar index drops the batch
  axis.

  Args:
    split: ``"train"`` (162 770 images), ``"validation"`` (19 867) or ``"test"`` (19 962).
    data_dir: TFDS data directory holding ``celeb_a`` prepared as ArrayRecord (default: TFDS's).
    image_size: output side or ``(height, width)``. 64 (with the default centre-square crop) suits the
      CPU; DeepID2 used 55x47 patches (``image_size=(55, 47), crop=None``).
    crop: ``(top, left, height, width)`` box cropped before resizing (default :data:`CENTRE_SQUARE`, the
      centre 178x178 square of the 218x178 aligned image), or ``None`` for the whole image.
    attributes: which attributes, in which order (default all 40).

  Raises:
    DataNotFoundError: the dataset is not prepared (raised on construction).
  """

  def __init__(self, split: str = "train", *, data_dir: Optional[str] = None,
               image_size: Union[int, Sequence[int]] = 64,
               crop: Optional[Sequence[int]] = CENTRE_SQUARE, attributes: Optional[Sequence[str]] = None):
    self.split = split
    self.data_dir = data_dir
    self.image_size = _size(image_size)
    self.crop = None if crop is None else tuple(int(c) for c in crop)
    if self.crop is not None and len(self.crop) != 4:
      raise ValueError(f"`crop` must be (top, left, height, width) or None, got {crop!r}.")
    names = ATTRIBUTE_NAMES if attributes is None else tuple(attributes)
    unknown = [n for n in names if n not in ATTRIBUTE_NAMES]
    if unknown or not names:
      raise ConfigValueError(f"unknown CelebA attributes {unknown or names!r} (config.data.attributes); choose "
                       f"from {list(ATTRIBUTE_NAMES)}.")
    self.names = names
    self.num_values = (2,) * len(names)
    self._data = open_split(split, data_dir)

  def __len__(self) -> int:
    return len(self._data)

  def _convert(self, record: dict[str, Any], index: int) -> dict[str, np.ndarray]:
    attributes = record["attributes"]
    return {"image": crop_and_resize(record["image"], self.image_size, self.crop),
            "attributes": np.array([bool(attributes[name]) for name in self.names], np.int32),
            "index": np.int64(index)}

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    return self._convert(self._data[index], index)

  def labels(self) -> np.ndarray:
    """All attribute labels ``[len(self), num_attributes]`` int32 (decodes every record once: slow)."""
    return np.stack([np.array([bool(self._data[i]["attributes"][n]) for n in self.names], np.int32)
                     for i in range(len(self))])


def make_celeba_splits(*, data_dir: Optional[str] = None, image_size: Union[int, Sequence[int]] = 64,
                       crop: Optional[Sequence[int]] = CENTRE_SQUARE,
                       attributes: Optional[Sequence[str]] = None) -> dict[str, CelebASource]:
  """The paper's partition: ``{"train", "validation", "test"}`` -> :class:`CelebASource`.

  Raises:
    DataNotFoundError: the dataset is not prepared (the message says what to do).
  """
  return {split: CelebASource(split, data_dir=data_dir, image_size=image_size, crop=crop,
                              attributes=attributes) for split in SPLITS}
