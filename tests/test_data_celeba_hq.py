"""Tests of the CelebA-HQ loader on generated fixtures in the official layouts and on the shared files.

References are independent: labels written by the test (and numpy.loadtxt of the shared annotation file),
image identity encoded in each fixture image's colour, set arithmetic for the splits, and the positive
rates stated in ../shared/data/README.md.
"""

from __future__ import annotations

import io
import os
import pathlib
import pickle
import zipfile

import ml_collections
import numpy as np
import pytest
from PIL import Image

from ranking_jax.data import celeba_hq
from ranking_jax.data.errors import DataNotFoundError

SHARED_DATA = pathlib.Path(os.environ.get("RANKING_JAX_SHARED_DATA",
                                          pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))
SHARED_CELEBA_HQ = SHARED_DATA / "celeba_hq"
needs_shared = pytest.mark.skipif(not (SHARED_CELEBA_HQ / celeba_hq.ANNOTATION_FILE).exists() or
                                  not (SHARED_CELEBA_HQ / "CelebA-HQ-img-64.zip").exists(),
                                  reason="shared CelebA-HQ files not available")
NUM = 20


def colour(i: int) -> tuple[int, int, int]:
  """A distinct flat colour per image id: survives JPEG and resizing (flat images stay flat)."""
  return (10 * i + 5, 250 - 10 * i, 128)


def jpeg(i: int, side: int) -> bytes:
  buffer = io.BytesIO()
  Image.new("RGB", (side, side), colour(i)).save(buffer, format="JPEG", quality=95)
  return buffer.getvalue()


def write_fixture(folder: pathlib.Path, *, folder_side: int = 0, zip_side: int = 0, num: int = NUM,
                  seed: int = 0) -> np.ndarray:
  """The official layout with ``num`` images; returns the {0,1} labels written, int [num, 40]."""
  folder.mkdir(parents=True, exist_ok=True)
  labels = np.random.default_rng(seed).integers(0, 2, (num, 40))
  lines = [str(num), " ".join(celeba_hq.ATTRIBUTE_NAMES)]
  lines += [f"{i}.jpg  " + " ".join("1" if v else "-1" for v in labels[i]) for i in range(num)]
  (folder / celeba_hq.ANNOTATION_FILE).write_text("\n".join(lines) + "\n")
  if folder_side:
    (folder / "CelebA-HQ-img").mkdir()
    for i in range(num):
      (folder / "CelebA-HQ-img" / f"{i}.jpg").write_bytes(jpeg(i, folder_side))
  if zip_side:
    with zipfile.ZipFile(folder / f"CelebA-HQ-img-{zip_side}.zip", "w") as z:
      z.writestr(f"CelebA-HQ-img-{zip_side}/", b"")
      for i in range(num):
        z.writestr(f"CelebA-HQ-img-{zip_side}/{i}.jpg", jpeg(i, zip_side))
  return labels


def check_images(batch: dict[str, np.ndarray]) -> None:
  for image, i in zip(batch["image"], batch["index"]):
    np.testing.assert_allclose(image.mean(axis=(0, 1)), np.array(colour(int(i))) / 255.0, atol=3 / 255)


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_fixture_labels_images_and_split(tmp_path, form):
  labels = write_fixture(tmp_path, folder_side=24 if form == "folder" else 0, zip_side=16 if form == "zip" else 0)
  splits = celeba_hq.build_splits({"data_dir": str(tmp_path), "image_size": 8, "seed": 3})
  assert {k: len(v) for k, v in splits.items()} == {"train": 16, "validation": 2, "test": 2}
  ids = {k: set(v.ids.tolist()) for k, v in splits.items()}
  assert not ids["train"] & ids["validation"] and not ids["train"] & ids["test"] and not (
      ids["validation"] & ids["test"])
  assert set().union(*ids.values()) == set(range(NUM))
  for source in splits.values():
    batch = source[np.arange(len(source))]
    assert batch["image"].shape == (len(source), 8, 8, 3) and batch["image"].dtype == np.float32
    np.testing.assert_array_equal(batch["attributes"], labels[batch["index"]])
    np.testing.assert_array_equal(source.labels(), labels[source.ids])
    assert source.names == celeba_hq.ATTRIBUTE_NAMES and source.num_values == (2,) * 40
    check_images(batch)
  assert splits["train"].files.kind == form
  example = splits["test"][0]
  assert example["image"].shape == (8, 8, 3) and example["attributes"].shape == (40,)


def test_preload_equals_lazy_reads_and_config_dict(tmp_path):
  write_fixture(tmp_path, zip_side=16)
  config = ml_collections.ConfigDict({"data_dir": str(tmp_path), "image_size": (12, 10), "preload": False})
  lazy = celeba_hq.build_splits(config)["train"]
  eager = celeba_hq.build_splits({"data_dir": str(tmp_path), "image_size": (12, 10)})["train"]
  assert lazy.images is None and eager.images.shape == (16, 12, 10, 3)
  indices = np.array([3, 0, -1])
  a, b = lazy[indices], eager[indices]
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  np.testing.assert_array_equal(lazy[2:5]["index"], eager.ids[2:5])
  with pytest.raises(IndexError):
    eager[np.array([16])]
  copy = pickle.loads(pickle.dumps(lazy))  # a copy (e.g. in another process) opens its own zip handle
  np.testing.assert_array_equal(copy[indices]["image"], a["image"])


def test_seeded_determinism_and_max_examples(tmp_path):
  write_fixture(tmp_path, zip_side=8, num=40)
  config = {"data_dir": str(tmp_path), "image_size": 8, "seed": 1, "preload": False}
  first, again = celeba_hq.build_splits(config), celeba_hq.build_splits(config)
  other = celeba_hq.build_splits({**config, "seed": 2})
  for split in celeba_hq.SPLITS:
    np.testing.assert_array_equal(first[split].ids, again[split].ids)
  assert any(set(first[s].ids) != set(other[s].ids) for s in celeba_hq.SPLITS)
  small = celeba_hq.build_splits({**config, "max_examples": 10})
  assert {k: len(v) for k, v in small.items()} == {"train": 8, "validation": 1, "test": 1}
  for split in celeba_hq.SPLITS:  # a small run's splits are subsets of the full run's same splits
    assert set(small[split].ids) <= set(first[split].ids)
  custom = celeba_hq.build_splits({**config, "validation_fraction": 0.25, "test_fraction": 0.0})
  assert {k: len(v) for k, v in custom.items()} == {"train": 30, "validation": 10, "test": 0}


def test_seeded_split_is_a_seeded_permutation():
  splits = celeba_hq.seeded_split(100, seed=7, validation_fraction=0.2, test_fraction=0.1)
  order = np.random.default_rng(7).permutation(100)  # the documented construction, written out
  np.testing.assert_array_equal(splits["test"], np.sort(order[:10]))
  np.testing.assert_array_equal(splits["validation"], np.sort(order[10:30]))
  np.testing.assert_array_equal(splits["train"], np.sort(order[30:]))
  with pytest.raises(ValueError, match="fraction"):
    celeba_hq.seeded_split(10, seed=0, validation_fraction=0.5, test_fraction=0.5)


def test_attribute_subset_and_bad_names(tmp_path):
  labels = write_fixture(tmp_path, zip_side=8)
  splits = celeba_hq.build_splits({"data_dir": str(tmp_path), "image_size": 8, "attributes": "Young, Bald"})
  source = splits["train"]
  assert source.names == ("Young", "Bald") and source.num_values == (2, 2)
  columns = [celeba_hq.ATTRIBUTE_NAMES.index("Young"), celeba_hq.ATTRIBUTE_NAMES.index("Bald")]
  np.testing.assert_array_equal(source.labels(), labels[source.ids][:, columns])
  with pytest.raises(ValueError, match="config.data.attributes"):
    celeba_hq.build_splits({"data_dir": str(tmp_path), "attributes": "Bold"})


def test_picks_the_smallest_large_enough_image_copy(tmp_path):
  write_fixture(tmp_path, folder_side=20, zip_side=8)
  small = celeba_hq.build_splits({"data_dir": str(tmp_path), "image_size": 8, "preload": False})["train"]
  large = celeba_hq.build_splits({"data_dir": str(tmp_path), "image_size": 16, "preload": False})["train"]
  assert small.files.path.endswith("CelebA-HQ-img-8.zip")
  assert large.files.path.endswith("CelebA-HQ-img")  # no suffix: the official 1024 px
  chosen = celeba_hq.build_splits({"data_dir": str(tmp_path), "image_size": 8, "preload": False,
                                   "images": str(tmp_path / "CelebA-HQ-img")})["train"]
  assert chosen.files.kind == "folder"
  check_images(chosen[np.arange(4)])


def test_missing_files_give_one_clear_error(tmp_path):
  with pytest.raises(DataNotFoundError) as error:
    celeba_hq.build_splits({"data_dir": str(tmp_path)})
  message = str(error.value)
  assert celeba_hq.ANNOTATION_FILE in message and celeba_hq.SOURCE_URL in message
  assert "config.data.data_dir" in message and "CelebA-HQ-img" in message
  with pytest.raises(DataNotFoundError, match="config.data.data_dir"):
    celeba_hq.build_splits({})
  write_fixture(tmp_path)  # annotation only, no images
  with pytest.raises(DataNotFoundError, match="image folder or zip"):
    celeba_hq.build_splits({"data_dir": str(tmp_path)})
  with zipfile.ZipFile(tmp_path / "CelebA-HQ-img-8.zip", "w") as z:  # one listed image missing
    for i in range(NUM - 1):
      z.writestr(f"CelebA-HQ-img-8/{i}.jpg", jpeg(i, 8))
  with pytest.raises(DataNotFoundError, match=f"1 of the {NUM} .*{NUM - 1}.jpg"):
    celeba_hq.build_splits({"data_dir": str(tmp_path)})


def test_malformed_annotation_names_the_line(tmp_path):
  write_fixture(tmp_path, zip_side=8)
  path = tmp_path / celeba_hq.ANNOTATION_FILE
  lines = path.read_text().splitlines()
  path.write_text("\n".join(lines[:4] + [lines[4].replace(" 1", " 2", 1).replace(" -1", " 2", 1)] + lines[5:]))
  with pytest.raises(ValueError, match=":5:"):
    celeba_hq.build_splits({"data_dir": str(tmp_path)})
  path.write_text("\n".join(["21"] + lines[1:]))
  with pytest.raises(ValueError, match="21 images but 20 rows"):
    celeba_hq.build_splits({"data_dir": str(tmp_path)})


def test_corrupt_image_names_the_file(tmp_path):
  write_fixture(tmp_path, folder_side=8)
  (tmp_path / "CelebA-HQ-img" / "0.jpg").write_bytes(b"not a jpeg")
  source = celeba_hq.build_splits({"data_dir": str(tmp_path), "preload": False, "seed": 0})
  split = next(s for s in source.values() if 0 in s.ids)
  with pytest.raises(ValueError, match="0.jpg"):
    split[int(np.flatnonzero(split.ids == 0)[0])]


@needs_shared
def test_shared_files_counts_rates_and_split():
  annotation = SHARED_CELEBA_HQ / celeba_hq.ANNOTATION_FILE
  reference = np.loadtxt(annotation, skiprows=2, usecols=range(1, 41), dtype=np.int64)  # independent parse
  names, file_names, labels = celeba_hq.read_annotations(annotation)
  assert names == celeba_hq.ATTRIBUTE_NAMES and len(file_names) == 30000 == celeba_hq.NUM_IMAGES
  assert file_names[:2] == ("0.jpg", "1.jpg")
  np.testing.assert_array_equal(labels, (reference == 1).astype(np.int32))
  rates = dict(zip(names, labels.mean(axis=0)))
  assert abs(rates["Blurry"] - 0.004) < 0.001 and abs(rates["Bald"] - 0.024) < 0.001
  assert abs(rates["No_Beard"] - 0.81) < 0.005
  per_image = labels.sum(axis=1)
  assert per_image.min() == 2 and per_image.max() == 20 and abs(per_image.mean() - 9.9) < 0.05
  splits = celeba_hq.build_splits({"data_dir": str(SHARED_CELEBA_HQ), "image_size": 64, "preload": False})
  assert {k: len(v) for k, v in splits.items()} == {"train": 24000, "validation": 3000, "test": 3000}
  assert splits["train"].files.path.endswith("CelebA-HQ-img-64.zip")
  ids = [set(v.ids.tolist()) for v in splits.values()]
  assert sum(map(len, ids)) == len(set().union(*ids)) == 30000
  again = celeba_hq.build_splits({"data_dir": str(SHARED_CELEBA_HQ), "preload": False})
  np.testing.assert_array_equal(again["test"].ids, splits["test"].ids)
  batch = splits["test"][np.arange(4)]
  assert batch["image"].shape == (4, 64, 64, 3) and 0.05 < batch["image"].mean() < 0.95
  np.testing.assert_array_equal(batch["attributes"], labels[batch["index"]])
