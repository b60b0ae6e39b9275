"""Tests of the VOC 2012 + visual-search-difficulty path on TFDS mock data (nothing downloads)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from ranking_jax.projects.ide_ranknet import voc_difficulty as voc

tfds = pytest.importorskip("tensorflow_datasets")

VSD_CSV = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "shared", "data", "vsd", "VSD_dataset.csv")


def write_csv(path, rows, header=False):
  with open(path, "w") as f:
    if header:
      f.write("name,score\n")
    for name, score in rows:
      f.write(f"{name},{score:.6f}\n")
  return str(path)


def fake_voc(names_by_split):
  """An `as_data_source_fn` serving fixed examples (VOC-like fields; `objects` omitted)."""

  def as_data_source(builder, split, **kwargs):
    del builder, kwargs
    rng = np.random.default_rng(len(split))
    return [{"image": rng.integers(0, 256, size=(30 + i % 7, 40, 3), dtype=np.uint8),
             "image/filename": f"{name}.jpg".encode(),
             "labels": np.array([i % 20, (3 * i) % 20], np.int64)}
            for i, name in enumerate(names_by_split[split])]

  return as_data_source


def test_join_on_default_mock_data(tmp_path):
  # Default mock: random file names, random images, and `objects` sequence fields of independent random
  # lengths (which is why the reader never re-encodes examples or uses tfds decoders).
  with tfds.testing.mock_data(num_examples=6):
    index = voc.build_voc_index(splits=("train",))
    assert [(s, r) for s, r, _ in index] == [("train", r) for r in range(6)]
    names = [n for _, _, n in index]
    csv_path = write_csv(tmp_path / "scores.csv", [(n, 3.0 + k) for k, n in enumerate(names[:4])],
                         header=True)
    joined = voc.join_by_name(index, voc.read_difficulty_csv(csv_path))
    assert len(joined) == 4
    source = voc.VocDifficultySource(joined, image_size=32)
    batch = source[np.arange(4)]
    assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["labels"].shape == (4, 20)
    expected = dict(zip(names[:4], 3.0 + np.arange(4)))
    np.testing.assert_allclose(batch["difficulty"], [expected[n] for n in source.names])


def test_splits_join_by_name_and_partition_2_1_1(tmp_path):
  train_names = [f"2008_{i:06d}" for i in range(30)]
  val_names = [f"2009_{i:06d}" for i in range(14)]
  rng = np.random.default_rng(0)
  # CSV: every VOC image but two, plus three names VOC does not have; shuffled rows, no header.
  kept = train_names[1:] + val_names[:-1]
  rows = [(n, float(rng.uniform(2.5, 9.5))) for n in kept + ["2010_999999", "2011_1", "x"]]
  rng.shuffle(rows)
  csv_path = write_csv(tmp_path / "vsd.csv", rows)
  scores = dict(rows)
  with tfds.testing.mock_data(as_data_source_fn=fake_voc({"train": train_names, "validation": val_names})):
    splits = voc.make_voc_difficulty_splits(csv_path, seed=0, image_size=24)
    again = voc.make_voc_difficulty_splits(csv_path, seed=0, image_size=24)
    other = voc.make_voc_difficulty_splits(csv_path, seed=1, image_size=24)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sizes == {"train": 21, "validation": 10, "test": 11}  # 42 joined images, 2:1:1
    all_names = sum((splits[k].names for k in splits), [])
    assert sorted(all_names) == sorted(kept)
    for k in splits:
      assert splits[k].names == again[k].names
      np.testing.assert_allclose(splits[k].difficulties, [scores[n] for n in splits[k].names], rtol=1e-6)
    assert splits["train"].names != other["train"].names
    # the example read from TFDS is the one with that file name
    source = splits["validation"]
    for i in range(len(source)):
      split, record, name, _ = source.entries[i]
      names = train_names if split == "train" else val_names
      assert names[record] == name
    ex = source[0]
    assert ex["image"].shape == (24, 24, 3)
    record = source.entries[0][1]
    assert ex["labels"].sum() == len({record % 20, (3 * record) % 20})


def test_index_cache_round_trip(tmp_path):
  names = {"train": ["a1", "a2"], "validation": ["b1"]}
  cache = str(tmp_path / "cache" / "voc_index.json")
  with tfds.testing.mock_data(as_data_source_fn=fake_voc(names)):
    first = voc.build_voc_index(cache_path=cache)
  assert os.path.isfile(cache)
  assert voc.build_voc_index(cache_path=cache) == first  # served from the cache, no TFDS needed


def test_duplicate_names_and_empty_join_are_errors():
  with pytest.raises(ValueError, match="twice"):
    voc.join_by_name([("train", 0, "a"), ("validation", 0, "a")], {"a": 3.0})
  with pytest.raises(ValueError, match="no VOC image name matches"):
    voc.join_by_name([("train", 0, "a")], {"b": 3.0})


def test_csv_parsing(tmp_path):
  with_header = write_csv(tmp_path / "h.csv", [("2008_000002", 3.5), ("2008_000003", 4.25)], header=True)
  without = write_csv(tmp_path / "n.csv", [("2008_000002", 3.5), ("2008_000003", 4.25)])
  assert voc.read_difficulty_csv(with_header) == voc.read_difficulty_csv(without) == {
      "2008_000002": 3.5, "2008_000003": 4.25}
  bad = tmp_path / "bad.csv"
  bad.write_text("2008_000002,3.5\n2008_000003,oops\n")
  with pytest.raises(ValueError, match="not a number"):
    voc.read_difficulty_csv(str(bad))
  bad.write_text("2008_000002,3.5\n2008_000002,3.6\n")
  with pytest.raises(ValueError, match="twice"):
    voc.read_difficulty_csv(str(bad))
  bad.write_text("2008_000002,3.5,1\n")
  with pytest.raises(ValueError, match="expected"):
    voc.read_difficulty_csv(str(bad))


def test_missing_csv_error_says_what_to_download(tmp_path):
  with pytest.raises(voc.DataNotFoundError, match="VSD_dataset.csv") as info:
    voc.make_voc_difficulty_splits(str(tmp_path / "nope.csv"), data_dir=str(tmp_path))
  assert "csv_path" in str(info.value)


def test_missing_dataset_error_says_how_to_prepare(tmp_path):
  csv_path = write_csv(tmp_path / "s.csv", [("2008_000002", 3.5)])
  with pytest.raises(voc.DataNotFoundError) as info:
    voc.make_voc_difficulty_splits(csv_path, data_dir=str(tmp_path / "tfds"))
  message = str(info.value)
  assert "tfds build voc/2012 --file_format=array_record" in message
  assert ".[data]" in message and str(tmp_path / "tfds") in message


def test_real_csv():
  if not os.path.isfile(VSD_CSV):
    pytest.skip("../shared/data/vsd/VSD_dataset.csv not available")
  scores = voc.read_difficulty_csv(VSD_CSV)
  values = np.array(list(scores.values()))
  assert len(scores) == 11540
  assert values.min() == pytest.approx(2.455035) and values.max() == pytest.approx(9.6275)
  assert values.mean() == pytest.approx(3.305, abs=1e-3) and values.std() == pytest.approx(0.491, abs=1e-3)
  assert all(len(n) == 11 and n[4] == "_" for n in scores)
  parts = voc.split_indices(len(scores), seed=0)
  assert [len(parts[k]) for k in ("train", "validation", "test")] == [5770, 2885, 2885]  # as in the paper


def test_real_csv_joins_with_voc_file_names(tmp_path):
  if not os.path.isfile(VSD_CSV):
    pytest.skip("../shared/data/vsd/VSD_dataset.csv not available")
  names = list(voc.read_difficulty_csv(VSD_CSV))
  # TFDS voc/2012 file names are `<id>.jpg`; serve 60 of the real ids from two splits.
  split_names = {"train": names[:40], "validation": names[-20:]}
  with tfds.testing.mock_data(as_data_source_fn=fake_voc(split_names)):
    splits = voc.make_voc_difficulty_splits(VSD_CSV, image_size=16)
  assert sum(len(s) for s in splits.values()) == 60
  assert [len(splits[k]) for k in ("train", "validation", "test")] == [30, 15, 15]


def test_importing_the_package_does_not_import_tensorflow():
  code = ("import sys, ranking_jax, ranking_jax.data, ranking_jax.projects.ide_ranknet.voc_difficulty; "
          "print(any(m.split('.')[0] in ('tensorflow', 'tensorflow_datasets') for m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"
