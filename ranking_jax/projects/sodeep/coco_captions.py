"""Real data of SoDeep's cross-modal retrieval experiment: MS-COCO 2014 captions with the Karpathy splits.

SoDeep ("SoDeep: a Sorting Deep net to learn ranking loss surrogates", §4.2.3, Table 3) evaluates on
MS-COCO with "the rVal split proposed in [22]" (Karpathy and Fei-Fei, CVPR 2015): about 113k training
images (the 82 783 of COCO train2014 plus the 30 504 "restval" images of val2014), 5 000 validation and
5 000 test images, five captions per image. The test metrics are averaged over five folds of 1 000 images
(:func:`ranking_jax.metrics.cross_modal_recall`).

Here the images and captions come from TFDS ``coco_captions/2014`` (splits ``train``, ``restval``, ``val``,
``test``: the Karpathy splits), read with ``tfds.data_source`` (ArrayRecord random access, no TensorFlow at
read time: the dataset is opened from its prepared files, see :data:`TFDS_NAME`). Preparing it once needs
the ``data`` extra (TensorFlow) and downloads COCO 2014 (about 19 GB) and Karpathy's split file::

    pip install -e ".[data]"
    tfds build coco_captions/2014 --file_format=array_record --data_dir=$HOME/tensorflow_datasets

Captions are tokenised with :func:`ranking_jax.projects.sodeep.scene_captions.tokenize` and encoded with a
:class:`~ranking_jax.projects.sodeep.scene_captions.Vocabulary` built from the training captions (words seen at least
4 times, as VSE++ does); ``tensorflow_datasets`` is imported lazily, inside the functions.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union

import numpy as np

from ranking_jax.projects.sodeep import scene_captions
from ranking_jax.data import sources
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.data.images import resize_image

# The explicit version makes TFDS open the prepared files (a read-only builder) instead of constructing the
# builder class, whose metadata code needs TensorFlow.
TFDS_NAME = "coco_captions/2014:1.1.0"
# Karpathy split(s) of each experiment split: "rVal" trains on train + restval.
KARPATHY_SPLITS = {"train": ("train", "restval"), "validation": ("val",), "test": ("test",)}
DEFAULT_IMAGE_SIZE = 224
DEFAULT_MAX_LEN = 32  # with <bos> and <eos>; longer COCO captions (under 1 %) are cut
DEFAULT_MIN_COUNT = 4

COCO_HELP = (
    "TFDS dataset `coco_captions/2014` (MS-COCO 2014 with the Karpathy splits) is not prepared as "
    "ArrayRecord in {data_dir}. Prepare it once (downloads the COCO 2014 train and val images, about "
    "19 GB, and Karpathy's caption_datasets.zip; TensorFlow is needed for this step only):\n"
    "    pip install -e \".[data]\"   # adds tensorflow-cpu\n"
    "    tfds build coco_captions/2014 --file_format=array_record --data_dir={data_dir}\n"
    "then pass that directory as data_dir (in the experiment config: --config.data.data_dir={data_dir}). "
    "`tfds.data_source` cannot read the default TFRecord format, so `--file_format=array_record` is "
    "required.")


def open_coco_split(split: str, data_dir: Optional[str] = None, *, skip_image_decoding: bool = False) -> Any:
  """``tfds.data_source`` of one Karpathy split (``train``, ``restval``, ``val`` or ``test``).

  Args:
    split: a TFDS split of ``coco_captions/2014``.
    data_dir: TFDS data directory (default: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
    skip_image_decoding: leave ``image`` as JPEG bytes (for reading captions only: much faster).

  Raises:
    DataNotFoundError: the dataset is not prepared there (the message says how to prepare it).
    ValueError: ``split`` is not a split of the dataset.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # lazy: keeps imports TF-free

  known = sorted({s for splits in KARPATHY_SPLITS.values() for s in splits})
  if split not in known:
    raise ValueError(f"unknown coco_captions split {split!r}; choose one of {known}.")
  shown_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  decoders = {"image": tfds.decode.SkipDecoding()} if skip_image_decoding else None
  try:
    return tfds.data_source(TFDS_NAME, split=split, data_dir=data_dir, download=False, decoders=decoders)
  except Exception as error:  # tfds raises several types (ModuleNotFoundError, AssertionError, ...)
    raise DataNotFoundError(COCO_HELP.format(data_dir=shown_dir) + f"\n(tfds said: {error})") from error


def caption_texts(example: dict[str, Any]) -> list[str]:
  """The captions of a ``coco_captions`` example as ``str`` (TFDS gives ``bytes`` or ``str``)."""
  texts = np.asarray(example["captions"]["text"], dtype=object).reshape(-1)
  return [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t) for t in texts]


def five_captions(texts: Sequence[str], captions_per_image: int = scene_captions.CAPTIONS_PER_IMAGE
                  ) -> list[str]:
  """The first ``captions_per_image`` captions; fewer are repeated cyclically, none give empty captions.

  Every Karpathy image has 5 to 7 captions; the evaluation protocol uses 5 per image.

  >>> five_captions(["a", "b", "c", "d", "e", "f"]), five_captions(["a", "b"])
  (['a', 'b', 'c', 'd', 'e'], ['a', 'b', 'a', 'b', 'a'])
  """
  if not texts:
    return [""] * captions_per_image
  return [texts[k % len(texts)] for k in range(captions_per_image)]


def read_coco_captions(split: str, data_dir: Optional[str] = None, *, skip_image_decoding: bool = True
                       ) -> list[list[str]]:
  """All captions of one TFDS split, per image (reads every record once: minutes for ``train``)."""
  source = open_coco_split(split, data_dir, skip_image_decoding=skip_image_decoding)
  return [caption_texts(source[i]) for i in range(len(source))]


def build_coco_vocabulary(data_dir: Optional[str] = None, *, min_count: int = DEFAULT_MIN_COUNT,
                          splits: Sequence[str] = KARPATHY_SPLITS["train"], cache_path: Optional[str] = None,
                          skip_image_decoding: bool = True) -> scene_captions.Vocabulary:
  """The vocabulary of the training captions (words seen ``min_count`` times or more; about 10k on COCO).

  Args:
    data_dir: TFDS data directory.
    min_count: rarer words encode as ``<unk>`` (VSE++ uses 4).
    splits: TFDS splits whose captions count (the Karpathy training images by default).
    cache_path: optional JSON file: read if it exists, else written (reading 113k records takes minutes).
    skip_image_decoding: do not decode the JPEG images while reading (tests on mock data pass False).
  """
  if cache_path and os.path.isfile(cache_path):
    return scene_captions.Vocabulary.load(cache_path)
  texts = (text for split in splits
           for captions in read_coco_captions(split, data_dir, skip_image_decoding=skip_image_decoding)
           for text in captions)
  vocabulary = scene_captions.Vocabulary.from_texts(texts, min_count=min_count)
  if cache_path:
    vocabulary.save(cache_path)
  return vocabulary


class CocoCaptionsSource(sources.ExampleSource):
  """Random-access COCO images with five encoded captions each (one experiment split).

  ``source[index_array]`` returns ``image`` float32 ``[n, S, S, 3]`` in ``[0, 1]`` (resized without keeping
  the aspect ratio), ``captions`` int32 ``[n, 5, max_len]``, ``caption_lengths`` int32 ``[n, 5]`` (as
  :class:`ranking_jax.projects.sodeep.scene_captions.SceneCaptionsSource`) and ``index`` int64; an int index gives
  the same without the leading axis.

  Args:
    tfds_splits: the TFDS splits this source concatenates, in order (e.g. ``("train", "restval")``).
    vocabulary: encodes the captions (built from the training captions).
    data_dir: TFDS data directory.
    image_size: output side ``S``.
    max_len: caption length in tokens with ``<bos>`` and ``<eos>``.
    captions_per_image: captions kept per image (the first ones; see :func:`five_captions`).
  """

  def __init__(self, tfds_splits: Sequence[str], vocabulary: scene_captions.Vocabulary, *,
               data_dir: Optional[str] = None, image_size: int = DEFAULT_IMAGE_SIZE,
               max_len: int = DEFAULT_MAX_LEN, captions_per_image: int = scene_captions.CAPTIONS_PER_IMAGE):
    if isinstance(tfds_splits, str):
      tfds_splits = (tfds_splits,)
    self.tfds_splits = tuple(tfds_splits)
    self.vocabulary = vocabulary
    self.data_dir = data_dir
    self.image_size = int(image_size)
    self.max_len = int(max_len)
    self.captions_per_image = int(captions_per_image)
    vocabulary.encode([""], self.max_len)  # validates max_len
    self._sources = [open_coco_split(split, data_dir) for split in self.tfds_splits]
    self._starts = np.cumsum([0] + [len(s) for s in self._sources])

  def __len__(self) -> int:
    return int(self._starts[-1])

  def __repr__(self) -> str:
    return (f"CocoCaptionsSource(tfds_splits={self.tfds_splits}, num_examples={len(self)}, "
            f"image_size={self.image_size}, max_len={self.max_len})")

  def _record(self, index: int) -> dict[str, Any]:
    index = self.check_index(index)
    part = int(np.searchsorted(self._starts, index, side="right")) - 1
    return self._sources[part][index - int(self._starts[part])]

  def texts(self, index: int) -> list[str]:
    """The captions of example ``index`` as text (those encoded in ``captions``)."""
    return five_captions(caption_texts(self._record(index)), self.captions_per_image)

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    record = self._record(index)
    ids, lengths = self.vocabulary.encode(five_captions(caption_texts(record), self.captions_per_image),
                                          self.max_len)
    return {"image": resize_image(record["image"], self.image_size), "captions": ids,
            "caption_lengths": lengths, "index": np.int64(index)}


def make_coco_captions_splits(data_dir: Optional[str] = None, *,
                              vocabulary: Optional[scene_captions.Vocabulary] = None,
                              vocabulary_path: Optional[str] = None, min_count: int = DEFAULT_MIN_COUNT,
                              image_size: int = DEFAULT_IMAGE_SIZE, max_len: int = DEFAULT_MAX_LEN
                              ) -> dict[str, CocoCaptionsSource]:
  """Train (Karpathy train + restval), validation (val) and test (test) sources sharing one vocabulary.

  Args:
    data_dir: TFDS data directory holding ``coco_captions/2014`` prepared as ArrayRecord.
    vocabulary: the caption vocabulary; by default built from the training captions with ``min_count``
      (cached in ``vocabulary_path`` when given, see :func:`build_coco_vocabulary`).
    vocabulary_path: JSON cache of the vocabulary.
    min_count: see :func:`build_coco_vocabulary`.
    image_size: output image side.
    max_len: caption length in tokens with ``<bos>`` and ``<eos>``.

  Returns:
    ``{"train", "validation", "test"}`` -> :class:`CocoCaptionsSource` (113 287 / 5 000 / 5 000 images with
    the full data).

  Raises:
    DataNotFoundError: the dataset is not prepared (the message says how to prepare it).
  """
  for split in ("test", "val"):  # fail fast, before reading the training captions
    open_coco_split(split, data_dir)
  if vocabulary is None:
    vocabulary = build_coco_vocabulary(data_dir, min_count=min_count, cache_path=vocabulary_path)
  return {name: CocoCaptionsSource(splits, vocabulary, data_dir=data_dir, image_size=image_size,
                                   max_len=max_len)
          for name, splits in KARPATHY_SPLITS.items()}
