r"""Real memorability data from the user's files: LaMem images and MediaEval 2018 video frames.

*SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019, §4.2.1) trains
on the MediaEval 2018 *Predicting Media Memorability* videos, 7 frames per video, each frame labelled with
its video's short-term memorability, plus the 60 000 (image, memorability) pairs of LaMem; at test time the
predictions of a video's 7 frames are averaged into one score per video. Nothing here downloads: the user
puts the files in place and passes their paths in the config. Images are decoded with PIL and resized
bilinearly to ``image_size`` x ``image_size`` (aspect ratio not kept), float32 in ``[0, 1]``.

**LaMem** (Khosla et al., *Understanding and predicting image memorability at a large scale*, ICCV 2015;
``lamem.tar.gz`` from http://memorability.csail.mit.edu/download.html), unpacked as::

    <lamem_dir>/images/00000001.jpg ...         # 58 741 images
    <lamem_dir>/splits/train_1.txt ... train_5.txt
    <lamem_dir>/splits/val_1.txt ... val_5.txt
    <lamem_dir>/splits/test_1.txt ... test_5.txt

Each split file has one ``<image file name> <score>`` line per image (whitespace-separated, e.g.
``00000001.jpg 0.696629``; further columns are ignored). :func:`make_lamem_splits` reads fold ``k`` as
``train_k`` / ``val_k`` / ``test_k``. Config key: ``--config.data.lamem_dir=...``.

**MediaEval 2018** (Cohendet et al., *MediaEval 2018: Predicting media memorability task*, 2018; the
VideoMem dataset, https://www.interdigital.com/data_sets/video-memorability-dataset): the ground-truth CSV
``dev-set/ground-truth/ground-truth_dev-set.csv`` with the header
``video,short-term_memorability,nb_short-term_annotations,long-term_memorability,nb_long-term_annotations``
(``video`` is e.g. ``video3.webm``), and the frames the user extracts from ``dev-set/sources/*.webm``, in
either layout::

    <frames_dir>/video3/0.jpg ... 6.jpg          # one folder per video (any image names, sorted)
    <frames_dir>/video3_0.jpg ... video3_6.jpg   # or flat: <stem>_<k> or <stem>-<k>, k an integer

for example 7 frames of each 7-second video at one frame per second::

    for v in dev-set/sources/*.webm; do s=$(basename "$v" .webm); mkdir -p frames/"$s"
      ffmpeg -loglevel error -i "$v" -vf fps=1 -frames:v 7 frames/"$s"/%d.jpg; done

When a video has more frames than ``frames_per_video``, evenly spaced ones are used. Config keys:
``--config.data.mediaeval_ground_truth=...`` and ``--config.data.mediaeval_frames_dir=...`` (and, for the
official 2000-video test set once its ground truth is available, ``mediaeval_test_ground_truth`` and
``mediaeval_test_frames_dir``; without them the dev-set videos are split into train / validation / test
*by video*, so no video has frames on both sides).

Every source here yields ``image`` float32 ``[S, S, 3]``, ``memorability`` float32, ``index`` int64 and
``group`` int64: the video of a frame (MediaEval) or the image itself (LaMem). ``source.group_scores[g]``
is the ground truth of group ``g``; average the predictions of a group's frames with
:func:`average_by_group` before computing Spearman's :math:`\rho` against ``group_scores``, as the paper
does.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from ranking_jax.data import sources
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.data.images import resize_image

DEFAULT_IMAGE_SIZE = 224
FRAMES_PER_VIDEO = 7
LAMEM_SPLITS = {"train": "train", "validation": "val", "test": "test"}
MEDIAEVAL_COLUMNS = ("video", "short-term_memorability", "nb_short-term_annotations",
                     "long-term_memorability", "nb_long-term_annotations")
MEDIAEVAL_TARGETS = {"short_term": "short_term", "long_term": "long_term"}
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

LAMEM_HELP = (
    "LaMem (Khosla et al., ICCV 2015) is the archive lamem.tar.gz from "
    "http://memorability.csail.mit.edu/download.html. Unpack it so that <lamem_dir>/images/ holds the "
    "images and <lamem_dir>/splits/ the split files (train_1.txt, val_1.txt, test_1.txt, ...: one "
    "`<image> <score>` line per image), then pass that folder as --config.data.lamem_dir=<lamem_dir>.")
MEDIAEVAL_CSV_HELP = (
    "The MediaEval 2018 memorability ground truth is dev-set/ground-truth/ground-truth_dev-set.csv of the "
    "MediaEval 2018 'Predicting Media Memorability' data (the VideoMem dataset, "
    "https://www.interdigital.com/data_sets/video-memorability-dataset), with the header "
    "`video,short-term_memorability,nb_short-term_annotations,long-term_memorability,"
    "nb_long-term_annotations`. Put it anywhere and pass its path as "
    "--config.data.mediaeval_ground_truth=<csv> (the test set's as "
    "--config.data.mediaeval_test_ground_truth).")
MEDIAEVAL_FRAMES_HELP = (
    "Extract the frames of each video of dev-set/sources/ once, e.g. 7 frames at one per second:\n"
    "    for v in dev-set/sources/*.webm; do s=$(basename \"$v\" .webm); mkdir -p frames/\"$s\"\n"
    "      ffmpeg -loglevel error -i \"$v\" -vf fps=1 -frames:v 7 frames/\"$s\"/%d.jpg; done\n"
    "(layout <frames_dir>/<video stem>/<frame>.jpg, or flat <frames_dir>/<video stem>_<k>.jpg) and pass "
    "--config.data.mediaeval_frames_dir=<frames_dir> (--config.data.mediaeval_test_frames_dir for the test "
    "set).")


def _expand(path: Union[str, os.PathLike]) -> str:
  return os.fspath(os.path.expanduser(path))


def read_lamem_split(path: Union[str, os.PathLike]) -> list[tuple[str, float]]:
  """Reads a LaMem split file of ``<image> <score>`` lines into ``[(image, score), ...]`` (file order).

  Raises :class:`DataNotFoundError` naming the file when it is missing, ``ValueError`` on a malformed line,
  a non-finite score or a repeated image.

  >>> import tempfile
  >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
  ...   _ = f.write("00000001.jpg 0.696629\\n00000002.jpg 0.818182\\n")
  >>> read_lamem_split(f.name)
  [('00000001.jpg', 0.696629), ('00000002.jpg', 0.818182)]
  """
  path = _expand(path)
  if not os.path.isfile(path):
    raise DataNotFoundError(f"LaMem split file not found at {path!r}. {LAMEM_HELP}")
  entries: list[tuple[str, float]] = []
  seen: set[str] = set()
  with open(path) as f:
    for line_number, line in enumerate(f, start=1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) < 2:
        raise ValueError(f"{path}:{line_number}: expected `<image> <score>`, got {line.strip()!r}.")
      try:
        score = float(fields[1])
      except ValueError:
        raise ValueError(f"{path}:{line_number}: score {fields[1]!r} is not a number.") from None
      if not np.isfinite(score):
        raise ValueError(f"{path}:{line_number}: score {fields[1]!r} is not finite.")
      if fields[0] in seen:
        raise ValueError(f"{path}:{line_number}: image {fields[0]!r} appears twice.")
      seen.add(fields[0])
      entries.append((fields[0], score))
  if not entries:
    raise ValueError(f"{path} holds no `<image> <score>` lines. {LAMEM_HELP}")
  return entries


@dataclasses.dataclass(frozen=True)
class MediaEvalVideo:
  """One row of the MediaEval 2018 ground truth (scores in ``[0, 1]``)."""
  video: str
  short_term: float
  num_short_term: int
  long_term: float
  num_long_term: int

  @property
  def stem(self) -> str:
    """The video name without its extension: ``video3.webm`` -> ``video3``."""
    return os.path.splitext(os.path.basename(self.video))[0]


def read_mediaeval_ground_truth(path: Union[str, os.PathLike]) -> list[MediaEvalVideo]:
  """Reads the MediaEval 2018 ground-truth CSV (header :data:`MEDIAEVAL_COLUMNS`) in file order.

  Raises :class:`DataNotFoundError` naming the file when it is missing, ``ValueError`` on a missing column,
  a malformed value or a repeated video.

  >>> import tempfile
  >>> with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
  ...   _ = f.write(",".join(MEDIAEVAL_COLUMNS) + "\\nvideo3.webm,0.924,34,0.846,13\\n")
  >>> read_mediaeval_ground_truth(f.name)
  [MediaEvalVideo(video='video3.webm', short_term=0.924, num_short_term=34, long_term=0.846,
                  num_long_term=13)]
  """
  path = _expand(path)
  if not os.path.isfile(path):
    raise DataNotFoundError(f"MediaEval ground-truth CSV not found at {path!r}. {MEDIAEVAL_CSV_HELP}")
  videos: list[MediaEvalVideo] = []
  seen: set[str] = set()
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [c for c in MEDIAEVAL_COLUMNS if c not in header]
    if missing:
      raise ValueError(f"{path}: missing column(s) {missing}; expected the header "
                       f"{','.join(MEDIAEVAL_COLUMNS)}. {MEDIAEVAL_CSV_HELP}")
    reader.fieldnames = header
    for line_number, row in enumerate(reader, start=2):
      if not any((value or "").strip() for value in row.values()):
        continue
      try:
        video = MediaEvalVideo(
            video=row["video"].strip(), short_term=float(row["short-term_memorability"]),
            num_short_term=int(float(row["nb_short-term_annotations"])),
            long_term=float(row["long-term_memorability"]),
            num_long_term=int(float(row["nb_long-term_annotations"])))
      except (TypeError, ValueError, AttributeError):
        raise ValueError(f"{path}:{line_number}: malformed row {row!r}.") from None
      if not (np.isfinite(video.short_term) and np.isfinite(video.long_term)):
        raise ValueError(f"{path}:{line_number}: non-finite memorability in {row!r}.")
      if video.video in seen:
        raise ValueError(f"{path}:{line_number}: video {video.video!r} appears twice.")
      seen.add(video.video)
      videos.append(video)
  if not videos:
    raise ValueError(f"{path} holds no video rows. {MEDIAEVAL_CSV_HELP}")
  return videos


def _frame_key(name: str) -> tuple[int, str]:
  digits = re.findall(r"\d+", os.path.splitext(name)[0])
  return (int(digits[-1]) if digits else -1, name)


def _evenly_spaced(items: list[str], count: int) -> list[str]:
  if len(items) <= count:
    return items
  return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def find_video_frames(frames_dir: Union[str, os.PathLike], stem: str, *,
                      frames_per_video: int = FRAMES_PER_VIDEO) -> list[str]:
  """Paths of the frames of video ``stem`` (at most ``frames_per_video``, evenly spaced, in frame order).

  Looks for ``<frames_dir>/<stem>/*`` first, then for flat ``<frames_dir>/<stem>_<k>.*`` or
  ``<stem>-<k>.*``; frames are ordered by the last integer in their name. Raises
  :class:`DataNotFoundError` naming the expected paths when there is none.
  """
  frames_dir = _expand(frames_dir)
  folder = os.path.join(frames_dir, stem)
  if os.path.isdir(folder):
    names = [n for n in os.listdir(folder) if n.lower().endswith(_IMAGE_EXTENSIONS)]
    paths = [os.path.join(folder, n) for n in sorted(names, key=_frame_key)]
  else:
    extensions = "|".join(e[1:] for e in _IMAGE_EXTENSIONS)
    pattern = re.compile(re.escape(stem) + r"[_-]\d+\.(?:" + extensions + ")$", re.IGNORECASE)
    names = [n for n in _listdir(frames_dir) if pattern.match(n)]
    paths = [os.path.join(frames_dir, n) for n in sorted(names, key=_frame_key)]
  if not paths:
    raise DataNotFoundError(
        f"No frames of video {stem!r}: expected images in {folder!r} or files "
        f"{os.path.join(frames_dir, stem)}_<k>.jpg. {MEDIAEVAL_FRAMES_HELP}")
  return _evenly_spaced(paths, frames_per_video)


_LISTDIR_CACHE: dict[str, tuple[float, list[str]]] = {}


def _listdir(folder: str) -> list[str]:
  """``os.listdir`` of a flat frames folder, cached by modification time (one listing for all videos)."""
  if not os.path.isdir(folder):
    raise DataNotFoundError(f"MediaEval frames folder not found at {folder!r}. {MEDIAEVAL_FRAMES_HELP}")
  mtime = os.path.getmtime(folder)
  cached = _LISTDIR_CACHE.get(folder)
  if cached is None or cached[0] != mtime:
    cached = (mtime, os.listdir(folder))
    _LISTDIR_CACHE[folder] = cached
  return cached[1]


def load_image(path: str, image_size: int) -> np.ndarray:
  """Decodes an image file to float32 ``[image_size, image_size, 3]`` in ``[0, 1]`` (bilinear resize)."""
  if not os.path.isfile(path):
    raise DataNotFoundError(f"Image file not found at {path!r}.")
  with Image.open(path) as image:
    pixels = np.asarray(image.convert("RGB"))
  return resize_image(pixels, image_size)


class MemorabilityFilesSource(sources.ExampleSource):
  """Random-access (image file, memorability) pairs with a group per item (the video of a frame).

  ``source[i]`` returns ``image`` float32 ``[S, S, 3]`` in ``[0, 1]``, ``memorability`` float32, ``index``
  int64 and ``group`` int64; an index array gives a leading batch axis.

  Args:
    paths: image file of each item.
    scores: memorability of each item (a frame carries its video's score).
    groups: group (video) of each item, integers ``0 .. num_groups - 1``; default: one group per item.
    group_names: name of each group (e.g. the video file); default: the file names.
    image_size: output side ``S``.

  >>> source = MemorabilityFilesSource(["a.jpg", "b.jpg", "c.jpg"], [0.7, 0.8, 0.8], groups=[0, 1, 1])
  >>> len(source), source.num_groups, source.group_scores.round(2).tolist()
  (3, 2, [0.7, 0.8])
  """

  def __init__(self, paths: Sequence[str], scores: Sequence[float], *, groups: Optional[Sequence[int]] = None,
               group_names: Optional[Sequence[str]] = None, image_size: int = DEFAULT_IMAGE_SIZE):
    self.paths = [str(p) for p in paths]
    self.scores = np.asarray(scores, np.float32).reshape(-1)
    if len(self.paths) != len(self.scores):
      raise ValueError(f"got {len(self.paths)} paths and {len(self.scores)} scores.")
    self.groups = (np.arange(len(self.paths), dtype=np.int64) if groups is None
                   else np.asarray(groups, np.int64).reshape(-1))
    if len(self.groups) != len(self.paths):
      raise ValueError(f"got {len(self.groups)} groups for {len(self.paths)} items.")
    self.num_groups = int(self.groups.max()) + 1 if len(self.groups) else 0
    if len(self.groups) and (self.groups.min() < 0 or len(np.unique(self.groups)) != self.num_groups):
      raise ValueError("`groups` must take every value 0 .. num_groups - 1.")
    _, first = np.unique(self.groups, return_index=True)  # first item of each group, groups in order
    self.group_scores = self.scores[first]
    differs = self.scores != self.group_scores[self.groups]
    if np.any(differs):
      raise ValueError(f"the items of group {self.groups[np.argmax(differs)]} have different scores.")
    self.group_names = ([os.path.basename(self.paths[i]) for i in first] if group_names is None
                        else [str(n) for n in group_names])
    if len(self.group_names) != self.num_groups:
      raise ValueError(f"got {len(self.group_names)} group names for {self.num_groups} groups.")
    self.image_size = int(image_size)

  def __len__(self) -> int:
    return len(self.paths)

  def __repr__(self) -> str:
    return (f"MemorabilityFilesSource({len(self)} items in {self.num_groups} groups, "
            f"image_size={self.image_size})")

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    return {"image": load_image(self.paths[index], self.image_size),
            "memorability": np.float32(self.scores[index]), "index": np.int64(index),
            "group": np.int64(self.groups[index])}


def average_by_group(predictions: Union[Sequence[float], np.ndarray],
                     groups: Union[Sequence[int], np.ndarray],
                     num_groups: Optional[int] = None) -> np.ndarray:
  """Mean prediction of each group (e.g. of the 7 frames of each video), float64 ``[num_groups]``.

  A group without items gets NaN.

  >>> average_by_group([0.2, 0.4, 0.9], [1, 1, 0]).tolist()
  [0.9, 0.30000000000000004]
  """
  predictions = np.asarray(predictions, np.float64).reshape(-1)
  groups = np.asarray(groups, np.int64).reshape(-1)
  if predictions.shape != groups.shape:
    raise ValueError(f"`predictions` {predictions.shape} and `groups` {groups.shape} differ in shape.")
  if groups.size and groups.min() < 0:
    raise ValueError("`groups` must be non-negative.")
  size = int(num_groups) if num_groups is not None else (int(groups.max()) + 1 if groups.size else 0)
  sums = np.bincount(groups, weights=predictions, minlength=size)[:size]
  counts = np.bincount(groups, minlength=size)[:size]
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def lamem_split_path(lamem_dir: Union[str, os.PathLike], split: str, fold: int = 1) -> str:
  """``<lamem_dir>/splits/{train,val,test}_<fold>.txt`` for ``split`` in train / validation / test."""
  if split not in LAMEM_SPLITS:
    raise ValueError(f"`split` must be one of {tuple(LAMEM_SPLITS)}, got {split!r}.")
  return os.path.join(_expand(lamem_dir), "splits", f"{LAMEM_SPLITS[split]}_{int(fold)}.txt")


def make_lamem_source(lamem_dir: Union[str, os.PathLike], split: str, *, fold: int = 1,
                      image_size: int = DEFAULT_IMAGE_SIZE) -> MemorabilityFilesSource:
  """One LaMem split (``train`` / ``validation`` / ``test`` of ``fold``) as a source; one group per image.

  Raises :class:`DataNotFoundError` naming the missing split file, image folder, or first missing image.
  """
  lamem_dir = _expand(lamem_dir)
  if not os.path.isdir(lamem_dir):
    raise DataNotFoundError(f"LaMem folder not found at {lamem_dir!r}. {LAMEM_HELP}")
  entries = read_lamem_split(lamem_split_path(lamem_dir, split, fold))
  images_dir = os.path.join(lamem_dir, "images")
  if not os.path.isdir(images_dir):
    raise DataNotFoundError(f"LaMem image folder not found at {images_dir!r}. {LAMEM_HELP}")
  paths = [os.path.join(images_dir, name) for name, _ in entries]
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    raise DataNotFoundError(f"{len(missing)} LaMem image(s) listed in the {split} split are missing, e.g. "
                            f"{missing[0]!r}. {LAMEM_HELP}")
  return MemorabilityFilesSource(paths, [score for _, score in entries], image_size=image_size)


def make_lamem_splits(lamem_dir: Union[str, os.PathLike], *, fold: int = 1,
                      image_size: int = DEFAULT_IMAGE_SIZE) -> dict[str, MemorabilityFilesSource]:
  """LaMem's ``train_k`` / ``val_k`` / ``test_k`` split files (``k`` = ``fold``, 1-5) as sources."""
  return {split: make_lamem_source(lamem_dir, split, fold=fold, image_size=image_size)
          for split in LAMEM_SPLITS}


def make_mediaeval_source(videos: Sequence[MediaEvalVideo], frames_dir: Union[str, os.PathLike], *,
                          target: str = "short_term", frames_per_video: int = FRAMES_PER_VIDEO,
                          image_size: int = DEFAULT_IMAGE_SIZE) -> MemorabilityFilesSource:
  """The frames of ``videos`` as a source: one item per frame, one group per video (in ``videos`` order).

  Each frame carries its video's ``target`` memorability (``short_term``, as in the paper, or
  ``long_term``). Raises :class:`DataNotFoundError` naming the first video without frames.
  """
  if target not in MEDIAEVAL_TARGETS:
    raise ValueError(f"`target` must be one of {tuple(MEDIAEVAL_TARGETS)}, got {target!r}.")
  if frames_per_video < 1:
    raise ValueError(f"`frames_per_video` must be >= 1, got {frames_per_video}.")
  frames_dir = _expand(frames_dir)
  if not os.path.isdir(frames_dir):
    raise DataNotFoundError(f"MediaEval frames folder not found at {frames_dir!r}. {MEDIAEVAL_FRAMES_HELP}")
  paths, scores, groups = [], [], []
  for group, video in enumerate(videos):
    frames = find_video_frames(frames_dir, video.stem, frames_per_video=frames_per_video)
    paths.extend(frames)
    scores.extend([getattr(video, MEDIAEVAL_TARGETS[target])] * len(frames))
    groups.extend([group] * len(frames))
  return MemorabilityFilesSource(paths, scores, groups=groups, group_names=[v.video for v in videos],
                                 image_size=image_size)


def split_videos(num_videos: int, *, validation_fraction: float = 0.1, test_fraction: float = 0.2,
                 seed: int = 0) -> dict[str, np.ndarray]:
  """A seeded partition of ``range(num_videos)`` into train / validation / test video indices (sorted).

  >>> parts = split_videos(10, validation_fraction=0.2, test_fraction=0.2)
  >>> [len(parts[k]) for k in ("train", "validation", "test")]
  [6, 2, 2]
  """
  if validation_fraction < 0 or test_fraction < 0 or validation_fraction + test_fraction >= 1:
    raise ValueError(f"need fractions >= 0 summing below 1, got {validation_fraction}, {test_fraction}.")
  order = np.random.default_rng([int(seed) & 0xFFFFFFFF, 14]).permutation(num_videos)
  num_test = int(round(test_fraction * num_videos))
  num_validation = int(round(validation_fraction * num_videos))
  return {"train": np.sort(order[num_test + num_validation:]),
          "validation": np.sort(order[num_test:num_test + num_validation]),
          "test": np.sort(order[:num_test])}


def make_mediaeval_splits(ground_truth: Union[str, os.PathLike], frames_dir: Union[str, os.PathLike], *,
                          test_ground_truth: Optional[Union[str, os.PathLike]] = None,
                          test_frames_dir: Optional[Union[str, os.PathLike]] = None,
                          validation_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                          target: str = "short_term", frames_per_video: int = FRAMES_PER_VIDEO,
                          image_size: int = DEFAULT_IMAGE_SIZE) -> dict[str, MemorabilityFilesSource]:
  """MediaEval 2018 train / validation / test frame sources, split by video.

  With ``test_ground_truth`` the test split is that CSV's videos (frames in ``test_frames_dir``, default
  ``frames_dir``) and the dev-set videos are split into train and validation (``validation_fraction`` of
  them); otherwise the dev-set videos are split into train / validation / test with
  :func:`split_videos` (the paper: 8000 training and 2000 test videos).
  """
  videos = read_mediaeval_ground_truth(ground_truth)
  options = dict(target=target, frames_per_video=frames_per_video, image_size=image_size)
  if test_ground_truth is not None:
    test_videos = read_mediaeval_ground_truth(test_ground_truth)
    parts = split_videos(len(videos), validation_fraction=validation_fraction, test_fraction=0.0, seed=seed)
    test = make_mediaeval_source(test_videos, test_frames_dir or frames_dir, **options)
  else:
    parts = split_videos(len(videos), validation_fraction=validation_fraction, test_fraction=test_fraction,
                         seed=seed)
    test = make_mediaeval_source([videos[i] for i in parts["test"]], frames_dir, **options)
  return {"train": make_mediaeval_source([videos[i] for i in parts["train"]], frames_dir, **options),
          "validation": make_mediaeval_source([videos[i] for i in parts["validation"]], frames_dir,
                                              **options),
          "test": test}


def concatenate_sources(sources: Sequence[MemorabilityFilesSource]) -> MemorabilityFilesSource:
  """One source holding the items of several (e.g. MediaEval training frames + LaMem training images).

  Groups are renumbered so that groups of different sources stay distinct.

  >>> a = MemorabilityFilesSource(["a.jpg", "b.jpg"], [0.5, 0.5], groups=[0, 0])
  >>> b = MemorabilityFilesSource(["c.jpg"], [0.9])
  >>> both = concatenate_sources([a, b])
  >>> len(both), both.groups.tolist(), both.group_scores.round(2).tolist()
  (3, [0, 0, 1], [0.5, 0.9])
  """
  if not sources:
    raise ValueError("need at least one source.")
  sizes = {s.image_size for s in sources}
  if len(sizes) != 1:
    raise ValueError(f"the sources have different image sizes {sorted(sizes)}.")
  offsets = np.cumsum([0] + [s.num_groups for s in sources])
  return MemorabilityFilesSource(
      [p for s in sources for p in s.paths], np.concatenate([s.scores for s in sources]),
      groups=np.concatenate([s.groups + o for s, o in zip(sources, offsets)]),
      group_names=[n for s in sources for n in s.group_names], image_size=sizes.pop())
