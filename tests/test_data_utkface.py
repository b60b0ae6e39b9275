"""Tests of the UTKFace loader on generated fixtures (folder and zip, malformed names) and the shared zip.

References are independent: the labels the test writes into the file names (and a separate regex over the
shared zip's member list), image identity encoded in each fixture image's colour, set arithmetic for the
splits, and the counts stated in ../shared/data/README.md.
"""

from __future__ import annotations

import io
import os
import pathlib
import re
import zipfile

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest
from PIL import Image

from ranking_jax.data import utkface
from ranking_jax.data.errors import DataNotFoundError

SHARED_DATA = pathlib.Path(os.environ.get("RANKING_JAX_SHARED_DATA",
                                          pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))
SHARED_ZIP = SHARED_DATA / "utkface" / "UTKFace-crop_part1.zip"
needs_shared = pytest.mark.skipif(not SHARED_ZIP.exists(), reason="shared UTKFace zip not available")

# (age, gender, race) of the good fixture files; their colour encodes the position in this list.
GOOD = [(1, 0, 0), (26, 1, 3), (116, 0, 4), (45, 1, 2), (8, 0, 1), (60, 1, 0), (33, 0, 3), (71, 1, 1),
        (19, 0, 2), (90, 1, 4)]
MALFORMED = {"61_1_20170109142408075.jpg.chip.jpg": "not <age>",      # three fields (as in crop_part1)
             "61_3_20170109150557335.jpg.chip.jpg": "not <age>",
             "30_3_0_20170104235421282.jpg.chip.jpg": "gender 3",     # out of range values
             "30_0_5_20170104235421282.jpg.chip.jpg": "race 5",
             "117_0_0_20170104235421282.jpg.chip.jpg": "age 117",
             "x_0_0_20170104235421282.jpg.chip.jpg": "not <age>",
             "notes.txt": "not <age>"}


def good_name(i: int) -> str:
  age, gender, race = GOOD[i]
  return f"{age}_{gender}_{race}_2017010{i}120000000.jpg.chip.jpg"


def colour(i: int) -> tuple[int, int, int]:
  return (20 * i + 5, 200 - 15 * i, 60)


def jpeg(i: int, side: int = 20) -> bytes:
  buffer = io.BytesIO()
  Image.new("RGB", (side, side), colour(i)).save(buffer, format="JPEG", quality=95)
  return buffer.getvalue()


def write_fixture(folder: pathlib.Path, form: str) -> None:
  files = {good_name(i): jpeg(i) for i in range(len(GOOD))}
  files.update({name: jpeg(0) for name in MALFORMED})
  if form == "folder":
    (folder / "crop_part1").mkdir(parents=True)
    for name, data in files.items():
      (folder / "crop_part1" / name).write_bytes(data)
  else:
    with zipfile.ZipFile(folder / "UTKFace-crop_part1.zip", "w") as z:
      z.writestr("crop_part1/", b"")
      for name, data in files.items():
        z.writestr(f"crop_part1/{name}", data)


def expected_row(file_name: str) -> int:
  return next(i for i in range(len(GOOD)) if good_name(i) == file_name)


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_fixture_labels_skips_and_split(tmp_path, form):
  write_fixture(tmp_path, form)
  splits = utkface.build_splits({"data_dir": str(tmp_path), "image_size": 8, "seed": 5})
  assert {k: len(v) for k, v in splits.items()} == {"train": 8, "validation": 1, "test": 1}
  skipped = dict(splits["train"].skipped)
  assert len(skipped) == len(MALFORMED) and set(skipped) == set(MALFORMED)
  for name, reason in MALFORMED.items():
    assert skipped[name].startswith(reason), (name, skipped[name])
  ids = [set(s.ids.tolist()) for s in splits.values()]
  assert sum(map(len, ids)) == len(set().union(*ids)) == len(GOOD)
  for source in splits.values():
    batch = source[np.arange(len(source))]
    assert batch["image"].shape == (len(source), 8, 8, 3)
    for k, file_name in enumerate(source.file_names):
      row = expected_row(file_name)
      assert (batch["age"][k], batch["gender"][k], batch["race"][k]) == GOOD[row]
      np.testing.assert_allclose(batch["image"][k].mean(axis=(0, 1)), np.array(colour(row)) / 255, atol=3 / 255)
    np.testing.assert_array_equal(source.labels(), np.stack([batch["age"], batch["gender"], batch["race"]], 1))
    assert batch["age"].dtype == np.int32 and source.names == ("age", "gender", "race")


def test_skips_are_logged_and_the_index_is_sorted(tmp_path, caplog):
  write_fixture(tmp_path, "zip")
  with caplog.at_level("WARNING"):
    index = utkface.index_files(tmp_path / "UTKFace-crop_part1.zip")
  assert f"skipped {len(MALFORMED)} of {len(GOOD) + len(MALFORMED)} files" in caplog.text
  assert list(index.file_names) == sorted(good_name(i) for i in range(len(GOOD)))
  assert index.labels.shape == (len(GOOD), 3) and index.labels.dtype == np.int32


def test_seeded_determinism_and_max_examples(tmp_path):
  write_fixture(tmp_path, "folder")
  config = {"data_dir": str(tmp_path), "image_size": 8, "preload": False, "seed": 11}
  first, again = utkface.build_splits(config), utkface.build_splits(config)
  for split in utkface.SPLITS:
    assert first[split].file_names == again[split].file_names
  small = utkface.build_splits({**config, "max_examples": 5, "validation_fraction": 0.2, "test_fraction": 0.2})
  assert {k: len(v) for k, v in small.items()} == {"train": 3, "validation": 1, "test": 1}


def test_images_key_and_missing_files(tmp_path):
  write_fixture(tmp_path, "zip")
  renamed = tmp_path / "faces.zip"
  (tmp_path / "UTKFace-crop_part1.zip").rename(renamed)
  with pytest.raises(DataNotFoundError) as error:
    utkface.build_splits({"data_dir": str(tmp_path)})
  message = str(error.value)
  assert "UTKFace-crop_part1.zip" in message and utkface.SOURCE_URL in message
  assert "config.data.data_dir" in message and str(tmp_path) in message
  with pytest.raises(DataNotFoundError, match="config.data.data_dir"):
    utkface.build_splits(None)
  assert sum(map(len, utkface.build_splits({"images": str(renamed), "image_size": 8}).values())) == len(GOOD)
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "readme.txt").write_text("no faces")
  with pytest.raises(DataNotFoundError, match="No UTKFace image"):
    utkface.build_splits({"images": str(empty)})


@hypothesis.given(st.integers(0, 116), st.integers(0, 1), st.integers(0, 4), st.integers(0, 10**17))
@hypothesis.settings(max_examples=50, deadline=None)
def test_parse_name_round_trips_in_range_labels(age, gender, race, stamp):
  assert utkface.parse_name(f"{age}_{gender}_{race}_{stamp}.jpg.chip.jpg") == (age, gender, race)
  assert isinstance(utkface.parse_name(f"{age}_{gender + 2}_{race}_{stamp}.jpg.chip.jpg"), str)
  assert isinstance(utkface.parse_name(f"{age}_{gender}_{stamp}.jpg.chip.jpg"), str)


@needs_shared
def test_shared_zip_counts_labels_and_split():
  with zipfile.ZipFile(SHARED_ZIP) as z:
    members = [n for n in z.namelist() if not n.endswith("/")]
  assert len(members) == 9780 and all(n.startswith("crop_part1/") for n in members)
  pattern = re.compile(r"crop_part1/(\d+)_([01])_([0-4])_\d+\.jpg\.chip\.jpg")  # independent parse
  reference = {n.split("/")[1]: tuple(int(g) for g in m.groups()) for n in members if (m := pattern.fullmatch(n))}
  index = utkface.index_files(SHARED_ZIP)
  assert len(index.file_names) == len(reference) == 9778
  assert sorted(n for n, _ in index.skipped) == ["61_1_20170109142408075.jpg.chip.jpg",
                                                 "61_3_20170109150557335.jpg.chip.jpg"]
  np.testing.assert_array_equal(index.labels, np.array([reference[n] for n in index.file_names]))
  ages = index.labels[:, 0]
  assert ages.min() == 1 and ages.max() == 110
  assert abs(np.mean(ages <= 10) - 0.316) < 0.002 and abs(np.mean(ages >= 60) - 0.148) < 0.002
  splits = utkface.build_splits({"data_dir": str(SHARED_DATA / "utkface"), "preload": False})
  assert {k: len(v) for k, v in splits.items()} == {"train": 7822, "validation": 978, "test": 978}
  ids = [set(v.ids.tolist()) for v in splits.values()]
  assert sum(map(len, ids)) == len(set().union(*ids)) == 9778
  again = utkface.build_splits({"data_dir": str(SHARED_DATA / "utkface"), "preload": False})
  np.testing.assert_array_equal(again["validation"].ids, splits["validation"].ids)
  batch = splits["test"][np.arange(3)]
  assert batch["image"].shape == (3, 64, 64, 3) and 0.05 < batch["image"].mean() < 0.95
