"""Multi-valued attribute data from user files (X-Domain-style): one CSV per split plus an image folder.

"Class Rectification Hard Mining for Imbalanced Deep Learning" (Dong, Gong, Zhu, ICCV 2017, section 3.2)
evaluates on X-Domain clothing attributes: 9 multi-valued (1-in-N) attributes, N from 6 to 55, every image
annotated with at most 9 of them. X-Domain has no public download, so any such data set is read from a
simple format:

**Format** (UTF-8 CSV, comma-separated, one file per split)::

    image,category,colour,collar
    shop/000001.jpg,3,12,0
    shop/000002.jpg,1,0,
    street/000003.png,0,54,-1

* The header row is required. The first column is named ``image``; every further column is one attribute,
  named by its header.
* ``image``: the image path relative to the image folder (``config.data.image_dir``), ``/``-separated; any
  format PIL reads (JPEG, PNG, ...). Grey or RGBA images are converted to RGB.
* Attribute cells: integer class values ``0 .. N_j - 1``. An empty cell or ``-1`` means "not annotated";
  it becomes ``-1`` in the labels, which :func:`ranking_jax.losses.class_rectification_loss` masks and
  which the experiment passes as ``where=labels >= 0`` to
  :func:`ranking_jax.metrics.class_balanced_accuracy`.
* :math:`|Z_j|` (``N_j``): given by ``num_values`` (``config.data.num_values``, one int per attribute), or
  else the largest value in any of the split files plus one.

Splits: ``config.data.train_csv``, ``config.data.test_csv`` and optionally ``config.data.validation_csv``
(X-Domain's partition is a random 165 467 / 80 000 train / test split of its 245 467 images).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from ranking_jax.projects.class_rectification.celeba import crop_and_resize
from ranking_jax.data import sources
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.errors import ConfigValueError

MISSING = -1
FORMAT_HELP = (
    "Expected a UTF-8 CSV with the header `image,<attribute 1>,<attribute 2>,...`, then one row per image: "
    "the image path relative to the image folder (config.data.image_dir) and one integer class value "
    "0..N-1 per attribute (empty or -1 = not annotated). See ranking_jax/projects/class_rectification/attribute_csv.py.")


@dataclasses.dataclass(frozen=True)
class AttributeTable:
  """The content of one attribute CSV.

  Attributes:
    path: the CSV file.
    names: the attribute names (header columns after ``image``).
    images: the image paths, relative to the image folder.
    labels: int32 ``[n, num_attributes]``; ``-1`` where not annotated.
  """
  path: str
  names: tuple[str, ...]
  images: tuple[str, ...]
  labels: np.ndarray


def read_attribute_csv(path: Union[str, os.PathLike], *, config_key: str = "config.data.train_csv"
                       ) -> AttributeTable:
  """Reads an attribute CSV (format in the module docstring).

  Args:
    path: the CSV file.
    config_key: the config key that names this file, quoted in error messages.

  Raises:
    DataNotFoundError: the file does not exist.
    ValueError: a malformed header, row or value (the message names the file and line).

  >>> import tempfile
  >>> with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
  ...   _ = f.write("image,colour,collar\\na.jpg,3,\\nb.jpg,0,1\\n")
  >>> table = read_attribute_csv(f.name)
  >>> table.names, table.images, table.labels.tolist()
  (('colour', 'collar'), ('a.jpg', 'b.jpg'), [[3, -1], [0, 1]])
  """
  path = os.fspath(os.path.expanduser(path))
  if not os.path.isfile(path):
    raise DataNotFoundError(f"Attribute CSV {path!r} not found; set its path with --{config_key}=... "
                            f"{FORMAT_HELP}")
  with open(path, newline="", encoding="utf-8-sig") as f:
    rows = list(csv.reader(f))
  while rows and not "".join(rows[0]).strip():
    rows.pop(0)
  if not rows:
    raise ValueError(f"{path} is empty. {FORMAT_HELP}")
  header = [h.strip() for h in rows[0]]
  if header[0] != "image" or len(header) < 2:
    raise ValueError(f"{path}:1: the header must be `image,<attribute>,...`, got {rows[0]!r}. {FORMAT_HELP}")
  names = tuple(header[1:])
  if len(set(names)) != len(names) or any(not n for n in names):
    raise ValueError(f"{path}:1: attribute columns must have distinct, non-empty names, got {names!r}.")
  images, labels = [], []
  for line, row in enumerate(rows[1:], start=2):
    if not "".join(row).strip():
      continue
    if len(row) != len(header):
      raise ValueError(f"{path}:{line}: expected {len(header)} cells ({','.join(header)}), got {len(row)}.")
    image = row[0].strip()
    if not image:
      raise ValueError(f"{path}:{line}: empty image path.")
    values = []
    for name, cell in zip(names, row[1:]):
      cell = cell.strip()
      try:
        value = MISSING if cell == "" else int(cell)
      except ValueError:
        raise ValueError(f"{path}:{line}: column {name!r} holds {cell!r}, not an integer class value. "
                         f"{FORMAT_HELP}") from None
      if value < MISSING:
        raise ValueError(f"{path}:{line}: column {name!r} holds {value}; class values are 0..N-1 (-1 = not "
                         "annotated).")
      values.append(value)
    images.append(image)
    labels.append(values)
  if not images:
    raise ValueError(f"{path} has a header but no image rows. {FORMAT_HELP}")
  labels = np.array(labels, np.int32).reshape(len(images), len(names))
  return AttributeTable(path, names, tuple(images), labels)


def _select_columns(table: AttributeTable, attributes: Optional[Sequence[str]]) -> AttributeTable:
  if attributes is None:
    return table
  missing = [name for name in attributes if name not in table.names]
  if missing:
    raise ConfigValueError(f"attribute column(s) {missing} (config.data.attributes) not in {table.path}, whose "
                     f"columns are {list(table.names)}.")
  columns = [table.names.index(name) for name in attributes]
  return dataclasses.replace(table, names=tuple(attributes), labels=table.labels[:, columns])


def infer_num_values(tables: Sequence[AttributeTable]) -> tuple[int, ...]:
  """:math:`|Z_j|` as the largest value over ``tables`` plus one (at least 2).

  >>> t = AttributeTable("x.csv", ("a", "b"), ("1.jpg", "2.jpg"), np.array([[0, 4], [2, -1]]))
  >>> infer_num_values([t])
  (3, 5)
  """
  stacked = np.concatenate([t.labels for t in tables], axis=0)
  return tuple(max(int(stacked[:, j].max()) + 1, 2) for j in range(stacked.shape[1]))


class AttributeCSVSource(sources.ExampleSource):
  """Random-access images with multi-valued attributes from an :class:`AttributeTable` and an image folder.

  ``source[indices]`` returns ``{"image": float32 [n, height, width, 3] in [0, 1], "attributes": int32
  [n, num_attributes] (-1 = not annotated), "index": int64 [n]}``; a scalar index drops the batch axis.

  Args:
    table: the split's CSV content (:func:`read_attribute_csv`) or the CSV path.
    image_dir: the folder the image paths are relative to (``config.data.image_dir``).
    image_size: output side or ``(height, width)``.
    crop: optional ``(top, left, height, width)`` box cropped before resizing.
    num_values: :math:`|Z_j|` per attribute (default: :func:`infer_num_values` of this table).
    attributes: which columns, in which order (default all).

  Raises:
    DataNotFoundError: the CSV, the image folder or the first image is missing (other missing images
      raise when read).
    ValueError: a requested column is missing, or a label is ``>= num_values``.
  """

  def __init__(self, table: Union[AttributeTable, str, os.PathLike], image_dir: Union[str, os.PathLike], *,
               image_size: Union[int, Sequence[int]] = 64, crop: Optional[Sequence[int]] = None,
               num_values: Optional[Sequence[int]] = None, attributes: Optional[Sequence[str]] = None):
    if not isinstance(table, AttributeTable):
      table = read_attribute_csv(table)
    table = _select_columns(table, attributes)
    self.table = table
    self.image_dir = os.fspath(os.path.expanduser(image_dir))
    if not os.path.isdir(self.image_dir):
      raise DataNotFoundError(f"Image folder {self.image_dir!r} not found; set --config.data.image_dir=... "
                              f"to the folder the `image` paths of {table.path} are relative to.")
    self.image_size = image_size
    self.crop = crop
    num_values = infer_num_values([table]) if num_values is None else tuple(int(n) for n in num_values)
    if len(num_values) != len(table.names):
      raise ConfigValueError(f"`num_values` (config.data.num_values) must give one |Z_j| per attribute "
                       f"{list(table.names)}, got {num_values}.")
    too_large = [(name, int(table.labels[:, j].max()), n) for j, (name, n) in
                 enumerate(zip(table.names, num_values)) if table.labels[:, j].max() >= n]
    if too_large:
      raise ValueError(f"{table.path}: labels >= num_values (column, largest label, num_values): "
                       f"{too_large}; fix config.data.num_values.")
    self.num_values = num_values
    self._image_path(0)  # fail early when the folder does not hold the images

  @property
  def names(self) -> tuple[str, ...]:
    return self.table.names

  def __len__(self) -> int:
    return len(self.table.images)

  def labels(self) -> np.ndarray:
    """All labels ``[len(self), num_attributes]`` int32 (-1 = not annotated)."""
    return self.table.labels

  def _image_path(self, index: int) -> str:
    path = os.path.join(self.image_dir, *self.table.images[index].split("/"))
    if not os.path.isfile(path):
      raise DataNotFoundError(f"Image {path!r} (row {index + 2} of {self.table.path}) not found; the `image` "
                              f"column is relative to --config.data.image_dir={self.image_dir}.")
    return path

  def read_example(self, index: int) -> dict[str, np.ndarray]:
    with Image.open(self._image_path(index)) as image:
      pixels = np.asarray(image.convert("RGB"))
    return {"image": crop_and_resize(pixels, self.image_size, self.crop),
            "attributes": self.table.labels[index].copy(), "index": np.int64(index)}


def make_attribute_csv_splits(*, image_dir: Union[str, os.PathLike], train_csv: Union[str, os.PathLike],
                              test_csv: Union[str, os.PathLike],
                              validation_csv: Union[None, str, os.PathLike] = None,
                              image_size: Union[int, Sequence[int]] = 64,
                              crop: Optional[Sequence[int]] = None,
                              num_values: Optional[Sequence[int]] = None,
                              attributes: Optional[Sequence[str]] = None) -> dict[str, AttributeCSVSource]:
  """``{"train", ["validation",] "test"}`` -> :class:`AttributeCSVSource` sharing one :math:`|Z_j|` list.

  Every split's CSV must have the same attribute columns (or hold all of ``attributes``). Without
  ``num_values``, :math:`|Z_j|` is the largest value over all the splits plus one.

  Raises:
    DataNotFoundError: a CSV (named with its config key), the image folder or an image is missing.
    ValueError: malformed files, differing columns, or a requested column missing.
  """
  paths = {"train": (train_csv, "config.data.train_csv"), "validation": (validation_csv,
                                                                         "config.data.validation_csv"),
           "test": (test_csv, "config.data.test_csv")}
  tables = {}
  for split, (path, key) in paths.items():
    if path is None or (split == "validation" and not os.fspath(path)):
      continue
    if not os.fspath(path):
      raise DataNotFoundError(f"{key} is empty: set --{key}=<CSV file>. {FORMAT_HELP}")
    tables[split] = _select_columns(read_attribute_csv(path, config_key=key), attributes)
  names = tables["train"].names
  for split, table in tables.items():
    if table.names != names:
      raise ValueError(f"{table.path} has the attribute columns {list(table.names)}, but "
                       f"{tables['train'].path} has {list(names)}; the splits must share their columns (or "
                       "choose common ones with config.data.attributes).")
  num_values = infer_num_values(list(tables.values())) if num_values is None else tuple(num_values)
  return {split: AttributeCSVSource(table, image_dir, image_size=image_size, crop=crop, num_values=num_values)
          for split, table in tables.items()}
