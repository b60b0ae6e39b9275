r"""UTKFace faces with age, gender and ethnicity parsed from the file names: a real ranking target (age).

UTKFace (Zhang, Song, Qi, "Age progression/regression by conditional adversarial autoencoder", CVPR 2017,
https://susanqq.github.io/UTKFace/) labels each aligned and cropped 200x200 face in its file name::

    <age>_<gender>_<race>_<date&time>.jpg.chip.jpg     e.g. 26_1_3_20170104235421282.jpg.chip.jpg

age 0-116 (years), gender 0 male / 1 female, race 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others.
Terms: non-commercial research only.

**Files** (``config.data.data_dir``): the ``crop_part1`` part as ``UTKFace-crop_part1.zip`` (members
``crop_part1/<name>``) or the unzipped folder ``crop_part1/``; the whole aligned-and-cropped set as the
folder ``UTKFace/`` or ``UTKFace.zip`` works too (same naming). ``config.data.images`` names another folder
or zip. The first of ``crop_part1/``, ``UTKFace-crop_part1.zip``, ``UTKFace/``, ``UTKFace.zip`` found is
read.

**Malformed names** are skipped and counted, not fatal: a name that does not have the four ``_``-separated
fields above, or with a value outside the ranges above, is left out and listed in :attr:`UTKFaceIndex.skipped`
(also on every split source as ``skipped``, and logged once). crop_part1 (9 780 files) has two such names,
``61_1_20170109142408075.jpg.chip.jpg`` and ``61_3_20170109150557335.jpg.chip.jpg`` (three fields; the second
is the one sometimes described as "gender 3"), so 9 778 faces remain.

**Split.** UTKFace has no official partition: the parsed faces, sorted by file name, are split by
:func:`ranking_jax.data.celeba_hq.seeded_split` (permutation by ``numpy.random.default_rng(seed)``; defaults
0.8 / 0.1 / 0.1 train / validation / test). Identities are not published, so one person can appear in two
splits.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Optional, Union

from absl import logging
import numpy as np

from ranking_jax.data import celeba_hq as image_data
from ranking_jax.data.errors import DataNotFoundError

DATASET_NAME = "utkface"
SPLITS = image_data.SPLITS
IMAGE_CANDIDATES = ("crop_part1", "UTKFace-crop_part1.zip", "UTKFace", "UTKFace.zip")
SOURCE_URL = "https://susanqq.github.io/UTKFace/"
LABEL_NAMES = ("age", "gender", "race")
AGE_RANGE = (0, 116)
NUM_GENDERS = 2
NUM_RACES = 5
GENDER_NAMES = ("male", "female")
RACE_NAMES = ("White", "Black", "Asian", "Indian", "Others")
DEFAULT_CONFIG = {"data_dir": "", "images": "", "image_size": 64, "seed": 0, "validation_fraction": 0.1,
                  "test_fraction": 0.1, "max_examples": 0, "preload": True}
GET_HELP = (f"{SOURCE_URL} (its Google Drive folder: crop_part1.tar.gz, or the aligned&cropped UTKFace.tar.gz; "
            "non-commercial research terms)")
PUT_HELP = "one folder, unpacked as crop_part1/ (or zipped as UTKFace-crop_part1.zip)"
_NAME = re.compile(r"^(\d+)_(\d+)_(\d+)_(\d+)\.jpg(?:\.chip\.jpg)?$")


def parse_name(name: str) -> Union[tuple[int, int, int], str]:
  """``(age, gender, race)`` of a UTKFace file name, or the reason it is malformed (a ``str``).

  >>> parse_name("26_1_3_20170104235421282.jpg.chip.jpg"), parse_name("61_1_20170109142408075.jpg.chip.jpg")
  ((26, 1, 3), 'not <age>_<gender>_<race>_<date&time>.jpg[.chip.jpg]')
  >>> parse_name("30_3_0_20170104235421282.jpg.chip.jpg")
  'gender 3 not in 0..1'
  """
  match = _NAME.match(os.path.basename(name))
  if not match:
    return "not <age>_<gender>_<race>_<date&time>.jpg[.chip.jpg]"
  age, gender, race = (int(g) for g in match.groups()[:3])
  for label, value, low, high in (("age", age, *AGE_RANGE), ("gender", gender, 0, NUM_GENDERS - 1),
                                  ("race", race, 0, NUM_RACES - 1)):
    if not low <= value <= high:
      return f"{label} {value} not in {low}..{high}"
  return age, gender, race


@dataclasses.dataclass(frozen=True)
class UTKFaceIndex:
  """The parsed files of a UTKFace folder or zip.

  Attributes:
    files: the image reader.
    file_names: the parsed files, sorted by name.
    labels: int32 ``[n, 3]``: age (years), gender, race (columns :data:`LABEL_NAMES`).
    skipped: ``(file name, reason)`` of every skipped file, sorted by name.
  """
  files: image_data.ImageFiles
  file_names: tuple[str, ...]
  labels: np.ndarray
  skipped: tuple[tuple[str, str], ...]


def index_files(images: Union[str, os.PathLike]) -> UTKFaceIndex:
  """Lists and parses the files of a UTKFace folder or zip (malformed names skipped and counted).

  Raises:
    DataNotFoundError: ``images`` is not a folder or zip, or holds no parsable UTKFace name.
  """
  files = image_data.ImageFiles(images)
  parsed, skipped = [], []
  for name in files.names:
    result = parse_name(name)
    if isinstance(result, str):
      skipped.append((name, result))
    else:
      parsed.append((name, result))
  if not parsed:
    raise DataNotFoundError(f"No UTKFace image (<age>_<gender>_<race>_<date&time>.jpg.chip.jpg) in "
                            f"{files.path!r} ({len(skipped)} other files). Get the images from {GET_HELP}; "
                            f"put them in {PUT_HELP} and set --config.data.data_dir=... (or "
                            "--config.data.images=<folder or zip>).")
  if skipped:
    logging.warning("utkface: skipped %d of %d files of %s with malformed names or labels: %s", len(skipped),
                    len(files), files.path, "; ".join(f"{n} ({r})" for n, r in skipped[:5]) +
                    (" ..." if len(skipped) > 5 else ""))
  labels = np.array([p[1] for p in parsed], np.int32).reshape(len(parsed), 3)
  return UTKFaceIndex(files, tuple(p[0] for p in parsed), labels, tuple(skipped))


def find_images(data_dir: str) -> Optional[str]:
  """The first of :data:`IMAGE_CANDIDATES` in ``data_dir``, or ``None``."""
  for candidate in IMAGE_CANDIDATES:
    path = os.path.join(data_dir, candidate)
    if os.path.exists(path):
      return path
  return None


class UTKFaceSource(image_data.ImageLabelSource):
  """A UTKFace split (:func:`build_splits`).

  ``source[indices]`` returns ``{"image": float32 [n, h, w, 3] in [0, 1], "age": int32 [n] (years),
  "gender": int32 [n] (0 male, 1 female), "race": int32 [n] (0-4), "index": int64 [n]}``; ``index`` is the
  face's position among all parsed faces sorted by file name.

  Attributes:
    skipped: ``(file name, reason)`` of the dataset's skipped files (the same for every split).
  """

  skipped: tuple[tuple[str, str], ...] = ()

  @property
  def names(self) -> tuple[str, ...]:
    return LABEL_NAMES

  def labels(self) -> np.ndarray:
    """int32 ``[len(self), 3]``: age, gender, race (no image decoding)."""
    return np.stack([self.label_arrays[k] for k in LABEL_NAMES], axis=1)


def build_splits(data_config: Any = None) -> dict[str, UTKFaceSource]:
  """UTKFace ``{"train", "validation", "test"}`` sources (the seeded split of the module docstring).

  Args:
    data_config: a dict or ``ml_collections.ConfigDict`` with (defaults in :data:`DEFAULT_CONFIG`):
      ``data_dir`` (the folder of the files; required unless ``images`` is given), ``images`` (a folder or
      zip of the images), ``image_size`` (int or ``(height, width)``; the files are 200x200), ``seed`` (the
      split's), ``validation_fraction``, ``test_fraction``, ``max_examples`` (0: all) and ``preload``
      (decode all images into memory at once; False: decode at each read).

  Raises:
    DataNotFoundError: no data folder, or no UTKFace images in it (the message says where to get them,
      where to put them and the config key).
    ValueError: malformed config values.
  """
  def get(key: str) -> Any:
    return image_data.config_value(data_config, key, DEFAULT_CONFIG[key])

  data_dir = os.fspath(os.path.expanduser(get("data_dir") or ""))
  images = get("images") or (find_images(data_dir) if data_dir else None)
  if not images:
    where = f"in {data_dir!r}" if data_dir else "(no --config.data.data_dir given)"
    raise DataNotFoundError(f"UTKFace images not found {where}: looked for {', '.join(IMAGE_CANDIDATES)}. "
                            f"Get them from {GET_HELP}; put them in {PUT_HELP} and set "
                            "--config.data.data_dir=... to that folder (or --config.data.images=<folder or zip>).")
  image_size = image_data.image_hw(get("image_size"))
  index = index_files(images)
  logging.info("utkface: %d faces (%d files skipped) from %s", len(index.file_names), len(index.skipped),
               index.files.path)
  seed = int(get("seed"))
  fractions = {"validation_fraction": float(get("validation_fraction")),
               "test_fraction": float(get("test_fraction"))}
  max_examples = int(get("max_examples") or 0)
  out = {}
  for split, rows in image_data.seeded_split(len(index.file_names), seed=seed, max_examples=max_examples,
                                             **fractions).items():
    source = UTKFaceSource(
        index.files, [index.file_names[r] for r in rows],
        {k: index.labels[rows, j] for j, k in enumerate(LABEL_NAMES)}, rows, image_size=image_size,
        name=DATASET_NAME, split=split, fingerprint={"seed": seed, "max_examples": max_examples, **fractions,
                                                     "num_skipped": len(index.skipped)})
    source.skipped = index.skipped
    out[split] = source.preload() if get("preload") else source
  return out

