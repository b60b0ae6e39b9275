"""Tests of the sketch-retrieval library parts: QMUL loader, shoe generator, triplets, Bradley-Terry, model.

References are independent: brute-force loops over rank pairs, Python sorting with tuple keys, scipy.optimize
on the Bradley-Terry log-posterior, hand-checked strengths, block means for resizing, exhaustive search over
crop offsets, and layer-by-layer parameter arithmetic.
"""

from __future__ import annotations

import itertools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io
import scipy.optimize

from ranking_jax import losses
from ranking_jax import metrics
from ranking_jax import models
from ranking_jax.projects.sketch_retrieval import qmul
from ranking_jax.projects.sketch_retrieval import sketch_triplets as st
from ranking_jax.projects.sketch_retrieval import sketches as sk
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.projects.sketch_retrieval import sketch_net
import testing_utils

SHARED_DATA = testing_utils.SHARED_DATA
QMUL_SHOES = SHARED_DATA / "qmul_shoes"
needs_qmul_shoes = pytest.mark.skipif(not (QMUL_SHOES / "shoes_annotation.json").exists(),
                                      reason="shared QMUL-Shoe files not available")


# ----------------------------------------------------------------------------------------------------------
# A tiny QMUL-layout fixture, written for any category name.


def write_qmul_fixture(folder: pathlib.Path, category: str, *, sizes=(4, 3), side: int = 256,
                       attributes: bool = False, seed: int = 0) -> dict:
  rng = np.random.default_rng([seed, len(category)])
  content = {}
  annotation = {}
  for split, n in zip(("train", "test"), sizes):
    sketches = np.where(rng.random((n, side, side)) < 0.05, 0, 255).astype(np.uint8)
    photos = np.where(rng.random((n, side, side)) < 0.05, 0, 255).astype(np.uint8)
    scipy.io.savemat(folder / f"{category}_sketch_db_{split}.mat", {"data": sketches})
    scipy.io.savemat(folder / f"{category}_edge_db_{split}.mat", {"data": photos})
    # Every sketch compares all photos of the split, sketch i's own photo winning.
    per_sketch = [[[i, j] for j in range(n) if j != i] + [[j, k] for j, k in itertools.combinations(
        [j for j in range(n) if j != i], 2)] for i in range(n)]
    annotation[split] = {"images": [f"{k}.jpg" for k in range(n)], "sketches": [f"{k}.png" for k in range(n)],
                         "triplets": per_sketch}
    content[split] = (sketches, photos, per_sketch)
  (folder / f"{category}_annotation.json").write_text(json.dumps(annotation))
  if attributes:
    lines = ["split,index,kind,heel,laces"]
    table = {}
    for split, n in zip(("train", "test"), sizes):
      table[split] = rng.integers(0, 2, (n, 2))
      lines += [f"{split},{k},photo,{a},{b}" for k, (a, b) in enumerate(table[split])]
    lines.append("train,1,sketch,1,1")  # sketch 1 of train is labelled on its own
    (folder / f"{category}_attributes.csv").write_text("\n".join(lines) + "\n")
    content["attributes"] = table
  return content


@pytest.mark.parametrize("category", ["shoes", "chairs"])
def test_qmul_loader_on_a_fixture_in_the_qmul_layout(tmp_path, category):
  content = write_qmul_fixture(tmp_path, category, attributes=category == "chairs")
  splits = qmul.make_qmul_splits(str(tmp_path), category)
  for split, n in (("train", 4), ("test", 3)):
    source = splits[split]
    sketches, photos, per_sketch = content[split]
    assert len(source) == n
    batch = source[np.array([2, 0])]
    np.testing.assert_allclose(batch["sketch"][..., 0], sketches[[2, 0]] / 255.0, atol=1e-7)
    np.testing.assert_allclose(batch["photo"][..., 0], photos[[2, 0]] / 255.0, atol=1e-7)
    assert batch["sketch"].shape == (2, 256, 256, 1) and batch["sketch"].dtype == np.float32
    expected = [(i, p, q) for i, pairs in enumerate(per_sketch) for p, q in pairs]
    np.testing.assert_array_equal(source.triplets, expected)
  if category == "chairs":
    table = content["attributes"]
    np.testing.assert_array_equal(splits["test"].attributes, table["test"])
    assert splits["train"].attribute_names == ("heel", "laces")
    expected_sketch = table["train"].copy()
    expected_sketch[1] = (1, 1)
    np.testing.assert_array_equal(splits["train"].sketch_attributes, expected_sketch)
    np.testing.assert_array_equal(splits["train"][np.array([1])]["sketch_attributes"], [[1, 1]])
    assert splits["train"].require_attributes() is splits["train"].attributes
  else:
    assert splits["train"].attributes is None and "attributes" not in splits["train"][np.array([0])]
    with pytest.raises(qmul.AttributesNotFoundError, match=r"mtl needs attribute labels.*attributes_file"):
      splits["train"].require_attributes("mtl")
    with pytest.raises(ValueError, match="no attributes"):
      st.TripletSource(splits["train"], splits["train"].triplets, with_attributes=True)


def test_qmul_resize_is_the_block_mean(tmp_path):
  content = write_qmul_fixture(tmp_path, "shoes")
  source = qmul.QmulSketchSource(str(tmp_path), "shoes", "test", image_size=64)
  reference = content["test"][0].reshape(3, 64, 4, 64, 4).astype(np.float64).mean(axis=(2, 4))
  assert np.abs(source.sketches.astype(np.float64) - reference).max() < 1.0  # PIL truncates to uint8


def test_qmul_missing_files_and_bad_attributes(tmp_path):
  with pytest.raises(DataNotFoundError, match=r"chairs_sketch_db_train\.mat.*Deep_SBIR_tf.*data_dir"):
    qmul.QmulSketchSource(str(tmp_path), "chairs", "train")
  write_qmul_fixture(tmp_path, "shoes")
  with pytest.raises(DataNotFoundError, match=r"nope\.csv.*attributes_file"):
    qmul.QmulSketchSource(str(tmp_path), "shoes", "train", attributes_file=str(tmp_path / "nope.csv"))
  bad = tmp_path / "bad.csv"
  bad.write_text("split,index,heel\ntrain,0,1\ntrain,1,2\ntrain,2,0\ntrain,3,0\n")
  with pytest.raises(ValueError, match="0 or 1"):
    qmul.QmulSketchSource(str(tmp_path), "shoes", "train", attributes_file=str(bad))
  bad.write_text("split,index,heel\ntrain,0,1\ntrain,2,0\ntrain,3,0\n")
  with pytest.raises(ValueError, match=r"1 photo\(s\).*indices \[1\]"):
    qmul.QmulSketchSource(str(tmp_path), "shoes", "train", attributes_file=str(bad))
  npz = tmp_path / "attributes.npz"
  np.savez(npz, train=np.eye(4, 3), test=np.ones((3, 3)), names=np.array(["a", "b", "c"]))
  source = qmul.QmulSketchSource(str(tmp_path), "shoes", "train", attributes_file=str(npz))
  np.testing.assert_array_equal(source.attributes, np.eye(4, 3))
  assert source.attribute_names == ("a", "b", "c")
  with pytest.raises(ValueError, match="`split`"):
    qmul.QmulSketchSource(str(tmp_path), "shoes", "validation")


def test_read_mat_images_refuses_matlab_v73(tmp_path):
  # A MATLAB v7.3 file starts with a 128-byte header whose version field is 0x0200 (then HDF5 data).
  header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116, b" ")
  path = tmp_path / "shoes_sketch_db_train.mat"
  path.write_bytes(header + b"\x00" * 8 + b"\x00\x02" + b"IM" + b"\x00" * 512)
  with pytest.raises(ValueError, match="v7.3"):
    qmul.read_mat_images(str(path))


def test_load_sketch_triplets_synthetic_file(tmp_path):
  path = tmp_path / "annotation.json"
  path.write_text(json.dumps({"train": {"images": ["a", "b", "c"], "sketches": ["a", "b"],
                                        "triplets": [[[1, 2]], [[0, 2], [2, 0]]]}}))
  np.testing.assert_array_equal(qmul.load_sketch_triplets(str(path), "train"),
                                [[0, 1, 2], [1, 0, 2], [1, 2, 0]])
  with pytest.raises(ValueError, match="Split 'test'"):
    qmul.load_sketch_triplets(str(path), "test")
  path.write_text(json.dumps({"train": {"images": ["a"], "sketches": ["a"], "triplets": [[[0, 3]]]}}))
  with pytest.raises(ValueError, match="outside"):
    qmul.load_sketch_triplets(str(path), "train")
  with pytest.raises(DataNotFoundError, match="missing_annotation.json"):
    qmul.load_sketch_triplets(str(tmp_path / "missing_annotation.json"), "train")


# ----------------------------------------------------------------------------------------------------------
# The real QMUL-Shoe files.


@pytest.fixture(scope="module")
def qmul_shoes():
  return qmul.make_qmul_splits(str(QMUL_SHOES), "shoes")


@needs_qmul_shoes
def test_load_sketch_triplets_qmul_shoes():
  path = str(QMUL_SHOES / "shoes_annotation.json")
  with open(path, encoding="utf-8") as f:
    raw = json.load(f)
  for split, num_sketches, per_sketch in (("train", 304, 135), ("test", 115, 45)):
    triplets = qmul.load_sketch_triplets(path, split)
    assert triplets.shape == (num_sketches * per_sketch, 3)
    np.testing.assert_array_equal(triplets[0], [0] + raw[split]["triplets"][0][0])
    assert triplets[:, 1:].max() < num_sketches
    # Distances from each photo's net "more similar" votes: compare with a loop over the triplets.
    wins = np.zeros((num_sketches, num_sketches))
    np.add.at(wins, (triplets[:, 0], triplets[:, 1]), 1)
    np.add.at(wins, (triplets[:, 0], triplets[:, 2]), -1)
    expected = np.mean([-wins[s, p] < -wins[s, n] for s, p, n in triplets])
    assert metrics.triplet_accuracy(-wins, triplets) == pytest.approx(expected)
    assert expected > 0.5
    distances = np.zeros((num_sketches, num_sketches))
    assert metrics.triplet_accuracy(distances, triplets) == 0.0  # all tied: all wrong


@needs_qmul_shoes
def test_qmul_shoes_files(qmul_shoes):
  train, test = qmul_shoes["train"], qmul_shoes["test"]
  assert (len(train), len(test)) == qmul.QMUL_SIZES["shoes"]
  for source, per_sketch in ((train, 135), (test, 45)):
    assert source.sketches.shape == (len(source), 256, 256) and source.photos.dtype == np.uint8
    assert source.triplets.shape == (len(source) * per_sketch, 3)
    lists = st.candidate_lists(source.triplets, len(source))
    assert all(len(c) == 10 and s in c for s, c in enumerate(lists))  # 10 photos, true match among them
    assert source.attributes is None
    for images in (source.sketches, source.photos):
      assert 0.9 < np.mean(images > 128) < 0.999  # white background, dark strokes
  with pytest.raises(qmul.AttributesNotFoundError, match="shoes_attributes.csv"):
    test.require_attributes("auto_hard")
  crops = qmul.make_crop_flip_transform()(
      {"anchor": test.sketch_images(np.arange(2)), "positive": test.photo_images(np.arange(2)),
       "negative": test.photo_images(np.arange(2, 4)), "triplet": np.zeros((2, 3), np.int64)},
      np.random.default_rng(0))
  assert crops["anchor"].shape == (2, 225, 225, 1) and crops["triplet"].shape == (2, 3)


@needs_qmul_shoes
def test_human_optimised_rankings_on_qmul_shoes(qmul_shoes):
  test = qmul_shoes["test"]
  rankings = st.human_optimised_rankings(test.triplets, len(test))
  assert rankings.shape == (115, 10)
  assert np.mean(rankings[:, 0] == np.arange(115)) > 0.8  # the true match wins its comparisons
  # Test triplets are one consistent set per sketch: the fitted order reproduces nearly all of them.
  position = np.full((115, 115), 99)
  for s, row in enumerate(rankings):
    position[s, row] = np.arange(10)
  assert metrics.triplet_accuracy(position, test.triplets) > 0.9
  hard = st.sample_triplets(rankings, "hard")
  assert hard.shape == (115 * 9, 3)


# ----------------------------------------------------------------------------------------------------------
# Sampling, automatic and ground-truth rankings.


def brute_force_triplets(rankings, strategy):
  rows = []
  for s, ranking in enumerate(rankings):
    for i in range(len(ranking)):
      for j in range(i + 1, len(ranking)):
        gap = j - i
        keep = {"exhaustive": True, "hard": gap == 1, "medium": gap in (2, 3), "easy": gap > 3}[strategy]
        if keep:
          rows.append((s, ranking[i], ranking[j]))
  return rows


@pytest.mark.parametrize("strategy,count", [("exhaustive", 45), ("hard", 9), ("medium", 15), ("easy", 21)])
def test_sampling_counts_and_pairs_match_brute_force(strategy, count):
  rng = np.random.default_rng(3)
  rankings = np.stack([rng.permutation(30)[:10] for _ in range(7)])
  triplets = st.sample_triplets(rankings, strategy)
  assert triplets.shape == (7 * count, 3)
  assert sorted(map(tuple, triplets.tolist())) == sorted(brute_force_triplets(rankings, strategy))
  with pytest.raises(ValueError, match="unknown sampling strategy"):
    st.sample_triplets(rankings, "hardest")


def test_sampling_partitions_the_exhaustive_set():
  rankings = np.arange(20).reshape(2, 10)
  parts = [set(map(tuple, st.sample_triplets(rankings, s).tolist())) for s in ("hard", "medium", "easy")]
  assert set().union(*parts) == set(map(tuple, st.sample_triplets(rankings, "exhaustive").tolist()))
  assert sum(len(p) for p in parts) == 90


def test_automatic_rankings_match_a_sorting_reference():
  rng = np.random.default_rng(5)
  photo_attributes = rng.integers(0, 2, (40, 4))  # few attributes: many ties at the cut-off
  sketch_attributes = np.where(rng.random((12, 4)) < 0.15, 1 - photo_attributes[:12], photo_attributes[:12])
  features = rng.normal(size=(40, 6))
  rankings = st.automatic_rankings(sketch_attributes, photo_attributes, features, list_size=10)
  for s in range(12):
    distance = [float(np.sum((features[p] - features[s]) ** 2)) for p in range(40)]
    mismatch = [int(np.sum(sketch_attributes[s] != photo_attributes[p])) for p in range(40)]
    short = sorted(range(40), key=lambda p: (mismatch[p], distance[p], p))[:10]
    if s not in short:
      short = [s] + short[:9]
    assert rankings[s].tolist() == sorted(short, key=lambda p: (distance[p], p))
    assert rankings[s, 0] == s  # the true match is at feature distance 0


def test_ground_truth_rankings_and_simulated_annotators():
  rng = np.random.default_rng(2)
  descriptors = rng.random((25, 5))
  rankings = st.ground_truth_rankings(descriptors, descriptors)
  distances = sk.descriptor_distances(descriptors, descriptors)
  for s in range(25):
    assert rankings[s].tolist() == sorted(range(25), key=lambda p: (distances[s, p], p))[:10]
  exact = st.simulate_annotators(distances, rankings, rng, num_annotators=3, temperature=0.0)
  assert exact.shape == (25 * 3 * 45, 3)
  assert metrics.triplet_accuracy(distances, exact) == 1.0
  noisy = st.simulate_annotators(distances, rankings, np.random.default_rng(0), num_annotators=3)
  assert 0.6 < metrics.triplet_accuracy(distances, noisy) < 0.98
  fitted = st.human_optimised_rankings(noisy, 25)
  # Bradley-Terry over three noisy annotators recovers the order better than one annotator's votes do.
  assert metrics.triplet_accuracy(distances, st.sample_triplets(fitted, "exhaustive")) > \
      metrics.triplet_accuracy(distances, noisy)


# ----------------------------------------------------------------------------------------------------------
# Bradley-Terry.


def test_bradley_terry_hand_checked_cases():
  # wins consistent with strengths 4 : 2 : 1 (w_ij / w_ji = lambda_i / lambda_j): the MLE is exact.
  wins = np.array([[0, 2, 4], [1, 0, 2], [1, 1, 0]])
  strengths = st.fit_bradley_terry(wins, prior_shape=1.0, prior_rate=0.0)
  np.testing.assert_allclose(strengths / strengths[2], [4.0, 2.0, 1.0], rtol=1e-6)
  # Two items, 3 wins to 1: the MLE ratio is 3.
  two = st.fit_bradley_terry(np.array([[0, 3], [1, 0]]), prior_shape=1.0, prior_rate=0.0)
  assert two[0] / two[1] == pytest.approx(3.0, rel=1e-6)
  # Two items, Gamma(2, 1) prior, one game won by item 0. Stationarity of the log-posterior
  # 2 log l0 + log l1 - log(l0 + l1) - (l0 + l1): 2 / l0 = 1 / l1 = 1 + 1 / (l0 + l1), so l0 = 2 l1,
  # 1 / l1 = 1 + 1 / (3 l1), l1 = 2/3, l0 = 4/3.
  pair = st.fit_bradley_terry(np.array([[0, 1], [0, 0]]), prior_shape=2.0, prior_rate=1.0)
  np.testing.assert_allclose(pair, [4.0 / 3.0, 2.0 / 3.0], rtol=1e-7)
  # An item that never wins keeps a positive strength under the default prior.
  shut_out = st.fit_bradley_terry(np.array([[0, 5], [0, 0]]))
  assert shut_out[1] > 0 and shut_out[0] > shut_out[1]


def test_bradley_terry_map_matches_scipy_optimize():
  rng = np.random.default_rng(7)
  wins = rng.integers(0, 4, (3, 6, 6)).astype(float)
  a, b = 1.5, 0.5
  fitted = st.fit_bradley_terry(wins, prior_shape=a, prior_rate=b)
  for k in range(3):
    w = wins[k] * (1 - np.eye(6))

    def negative_log_posterior(theta):
      lam = np.exp(theta)
      pairs = np.log(lam[:, None] + lam[None, :])
      return -(np.sum(w * (theta[:, None] - pairs)) + np.sum((a - 1) * theta - b * lam))

    reference = np.exp(scipy.optimize.minimize(negative_log_posterior, np.zeros(6), method="BFGS",
                                               options={"gtol": 1e-10}).x)
    np.testing.assert_allclose(fitted[k], reference, rtol=1e-4)


def test_human_optimised_rankings_hand_checked():
  # Sketch 0: photo 5 beats 6 and 7 twice; 6 beats 7 twice, 7 beats 6 once -> order 5, 6, 7.
  # Sketch 1: the reverse preferences.
  triplets = np.array([[0, 5, 6], [0, 5, 6], [0, 5, 7], [0, 5, 7], [0, 6, 7], [0, 6, 7], [0, 7, 6],
                       [1, 7, 6], [1, 7, 5], [1, 6, 5]])
  np.testing.assert_array_equal(st.human_optimised_rankings(triplets, 2), [[5, 6, 7], [7, 6, 5]])
  with pytest.raises(ValueError, match="compare 2 photos, expected 3"):
    st.human_optimised_rankings(np.array([[0, 1, 2], [0, 2, 3], [1, 1, 2]]), 2)


# ----------------------------------------------------------------------------------------------------------
# The shoe generator.


@pytest.fixture(scope="module")
def instances():
  return [sk.make_instance(11, i) for i in range(300)]


def test_generator_is_deterministic_and_random_access():
  a = sk.SketchPhotoSource(12, seed=4, image_size=32)
  b = sk.SketchPhotoSource(12, seed=4, image_size=32, cache=False)
  batch = a[np.array([7, 2, 7])]
  for position, index in enumerate([7, 2, 7]):
    single = b[index]
    for key, value in single.items():
      np.testing.assert_array_equal(batch[key][position], value, err_msg=key)
  splits = sk.make_sketch_splits(5, 3, seed=4, image_size=32)
  np.testing.assert_array_equal(splits["test"][1]["sketch"], a[6]["sketch"])
  assert not np.array_equal(a[3]["sketch"], sk.SketchPhotoSource(12, seed=5, image_size=32)[3]["sketch"])
  assert not np.array_equal(a[3]["sketch"], a[3]["photo"])
  with pytest.raises(IndexError):
    a[12]


def test_generator_attribute_statistics(instances):
  attributes = np.stack([s.attributes for s in instances]).astype(float)
  rates = dict(zip(sk.ATTRIBUTE_NAMES, attributes.mean(axis=0)))
  assert all(0.02 < rate < 0.6 for rate in rates.values()), rates
  column = {name: attributes[:, k].astype(bool) for k, name in enumerate(sk.ATTRIBUTE_NAMES)}
  heel = np.array([s.parameters["heel_height"] for s in instances])
  np.testing.assert_array_equal(column["high_heel"], heel >= 0.1)
  assert not np.any(column["ankle_high"] & column["knee_high"])
  assert not np.any(column["stiletto_heel"] & ~column["high_heel"])
  assert not np.any(column["wedge_heel"] & (column["stiletto_heel"] | column["flat_heel"]))
  # Fine-grained: instances share attribute vectors (coarse structure) yet all descriptors differ.
  distinct = len({tuple(row) for row in attributes[:115]})
  assert 30 < distinct < 100
  descriptors = np.stack([s.descriptor for s in instances[:115]])
  distances = sk.descriptor_distances(descriptors, descriptors)
  assert np.min(distances + np.eye(115) * 1e9) > 1e-4
  assert np.all((descriptors[:, sk.NUM_ATTRIBUTES:] >= 0) & (descriptors[:, sk.NUM_ATTRIBUTES:] <= 1))
  strokes = [sk.shoe_strokes(s) for s in instances[:150]]
  assert 15 <= max(len(s) for s in strokes)
  assert {stroke.part for s in strokes for stroke in s} == set(sk.PART_NAMES)


def test_generator_images_and_difficulty():
  source = sk.SketchPhotoSource(30, seed=1, image_size=48)
  batch = source[np.arange(30)]
  for key in ("sketch", "photo"):
    images = batch[key]
    assert images.shape == (30, 48, 48, 1) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    ink = np.mean(images < 0.5, axis=(1, 2, 3))
    assert np.all((ink > 0.005) & (ink < 0.3)), (key, ink)
  # The sketch shows its own shoe: HOG nearest neighbour retrieves its photo far above chance, not always.
  distances = st.squared_distances(st.edge_hog_features(batch["sketch"], cells=4),
                                   st.edge_hog_features(batch["photo"], cells=4))
  top1, top5 = metrics.retrieval_accuracy_at_k(-distances, [1, 5])
  assert top5 > 3 * 5 / 30 and top1 < 0.9
  np.testing.assert_array_equal(source.attributes, batch["attributes"])
  triplets = st.sample_triplets(st.ground_truth_rankings(source.descriptors(), source.descriptors()), "hard")
  triplet_batch = st.TripletSource(source, triplets)[np.array([4, 0])]
  np.testing.assert_array_equal(triplet_batch["negative"], batch["photo"][triplets[[4, 0], 2]])
  np.testing.assert_array_equal(triplet_batch["anchor_attributes"], batch["attributes"][triplets[[4, 0], 0]])


def test_edge_hog_features_orientation():
  image = np.ones((1, 32, 32))
  image[0, :, 8] = 0.0  # a vertical line: its gradient points along x (orientation bin 0)
  histogram = st.edge_hog_features(image, cells=2, orientations=4, block_normalize=False).reshape(2, 2, 4)
  # The line crosses both left cells equally (each holds half the unit-norm vector), all in bin 0.
  np.testing.assert_allclose(histogram[:, 0, 0], [2 ** -0.5] * 2, atol=1e-3)
  assert np.all(histogram[:, 0, 1:] < 0.01)
  assert np.allclose(histogram[:, 1], 0.0)  # the right half is blank
  assert np.allclose(st.edge_hog_features(np.ones((2, 16, 16, 1))), 0.0)


# ----------------------------------------------------------------------------------------------------------
# Crops and flips.


def test_random_crop_flip_takes_a_crop_of_each_image():
  rng = np.random.default_rng(0)
  images = rng.random((5, 12, 12, 1)).astype(np.float32)
  crops = qmul.random_crop_flip(images, np.random.default_rng(1), 9)
  flipped = 0
  for image, crop in zip(images, crops):
    matches = [(top, left, flip) for top in range(4) for left in range(4) for flip in (False, True)
               if np.array_equal(crop, image[top:top + 9, left:left + 9][:, ::-1] if flip else
                                 image[top:top + 9, left:left + 9])]
    assert len(matches) == 1
    flipped += matches[0][2]
  assert 0 < flipped < 5
  np.testing.assert_array_equal(qmul.center_crop(images, 9), images[:, 1:10, 1:10])


@pytest.mark.parametrize("mode", ["shared", "independent", "none", True, False])
def test_crop_flip_transform_modes(mode):
  # Every image is left-right asymmetric, so a crop tells whether it was mirrored.
  images = np.tile(np.arange(12, dtype=np.float32)[None, None, :, None], (40, 12, 1, 1))
  batch = {"anchor": images, "positive": images + 100, "negative": images + 200, "triplet": np.arange(40)}
  out = qmul.make_crop_flip_transform(10, flip=mode)(batch, np.random.default_rng(0))
  flipped = {k: out[k][:, 0, 0, 0] > out[k][:, 0, -1, 0] for k in ("anchor", "positive", "negative")}
  np.testing.assert_array_equal(out["triplet"], np.arange(40))
  if mode in ("none", False):
    assert not any(f.any() for f in flipped.values())
  elif mode == "shared":  # one flip per row, for the sketch and both photos
    assert 5 < flipped["anchor"].sum() < 35
    np.testing.assert_array_equal(flipped["anchor"], flipped["positive"])
    np.testing.assert_array_equal(flipped["anchor"], flipped["negative"])
  else:
    assert (flipped["anchor"] != flipped["positive"]).any()


def test_crop_flip_transform_rejects_unknown_modes():
  with pytest.raises(ValueError, match="flip must be one of"):
    qmul.make_crop_flip_transform(10, flip="sometimes")
  with pytest.raises(ValueError, match="flips"):
    qmul.random_crop_flip(np.zeros((2, 12, 12, 1)), np.random.default_rng(0), 10, flips=np.ones(3, bool))


# ----------------------------------------------------------------------------------------------------------
# The three-branch model.


def conv_params(widths, kernels, channels=1):
  total, previous = 0, channels
  for width, kernel in zip(widths, kernels):
    total += kernel * kernel * previous * width + width
    previous = width
  return total


def test_paper_size_parameter_count():
  model = models.build_model("sketch_triplet_net", size="paper", num_attributes=21)
  x = jnp.zeros((1, 225, 225, 1))
  out, variables = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), x))
  # Sketch-a-Net: 225 -> conv1 71 -> pool 35 -> conv2 31 -> pool 15 -> conv3-5 15 -> pool 7, FC 7x7x256.
  expected = (conv_params((64, 128, 256, 256, 256), (15, 5, 3, 3, 3)) + 7 * 7 * 256 * 512 + 512
              + 512 * 256 + 256 + 512 * 256 + 256 + 256 * 21 + 21)
  assert models.count_params(variables["params"]) == expected == 8_385_813
  assert out["embedding"].shape == (1, 256) and out["attribute_logits"].shape == (1, 21)


def test_three_branch_outputs_and_shared_weights():
  model = models.build_model("sketch_triplet_net", num_attributes=5, num_classes=3)
  rng = np.random.default_rng(0)
  batch = {k: jnp.asarray(rng.random((2, 32, 32, 1)), jnp.float32) for k in sketch_net.BRANCHES}
  # Random parameters of the right shapes: compiling `model.init` (its random initialisers) costs ~10 s of
  # CPU, the forward pass under 1 s.
  shapes = jax.eval_shape(model.init, jax.random.key(0), batch)
  variables = jax.tree.map(lambda x: jnp.asarray(rng.normal(0.0, 0.1, x.shape), x.dtype), shapes)
  # Both paths in one compilation: the three-branch call and the single-branch call on the positives.
  out, single = jax.jit(lambda v, b: (model.apply(v, b), model.apply(v, b["positive"])))(variables, batch)
  for branch in sketch_net.BRANCHES:
    assert out[f"{branch}_embedding"].shape == (2, 128)
    assert out[f"{branch}_attribute_logits"].shape == (2, 5)
    assert out[f"{branch}_class_logits"].shape == (2, 3)
  # The single-branch path on the positives' images is the positive branch: one set of weights.
  for name in ("embedding", "attribute_logits"):  # batch sizes 2 and 6 may round differently
    np.testing.assert_allclose(single[name], out[f"positive_{name}"], rtol=1e-4, atol=1e-5)
  assert not np.allclose(out["anchor_embedding"], out["positive_embedding"])
  trained = jax.jit(lambda v, b, key: model.apply(v, b, train=True, rngs={"dropout": key}))(
      variables, batch, jax.random.key(1))
  assert not np.allclose(trained["anchor_attribute_logits"], out["anchor_attribute_logits"])
  total, _ = losses.sbir_multitask_loss(
      out["anchor_embedding"], out["positive_embedding"], out["negative_embedding"],
      sketch_logits=out["anchor_attribute_logits"], positive_logits=out["positive_attribute_logits"],
      negative_logits=out["negative_attribute_logits"], sketch_attributes=jnp.ones((2, 5)),
      positive_attributes=jnp.ones((2, 5)), negative_attributes=jnp.zeros((2, 5)))
  assert np.isfinite(float(total))


def test_model_options_and_errors():
  plain = sketch_net.build_sketch_triplet_net(num_attributes=0, widths=(4, 4, 8, 8, 8), fc_features=16,
                                              embedding_dim=8)
  rgb = jnp.zeros((3, 32, 32, 3))
  out, variables = jax.eval_shape(lambda: plain.init_with_output(jax.random.key(0), rgb))
  assert set(out) == {"embedding"} and out["embedding"].shape == (3, 8)
  assert "attribute_score" not in variables["params"]
  with pytest.raises(ValueError, match="unknown size"):
    models.build_model("sketch_triplet_net", size="huge")
  with pytest.raises(ValueError, match="unknown size field"):
    sketch_net.build_sketch_triplet_net(depth=3)
  with pytest.raises(ValueError, match="missing"):
    plain.init(jax.random.key(0), {"anchor": jnp.zeros((1, 32, 32, 1))})


def test_normalized_embedding_has_unit_norm_and_survives_a_dead_row():
  model = sketch_net.build_sketch_triplet_net(num_attributes=0, widths=(4, 4, 8, 8, 8), fc_features=16,
                                              embedding_dim=8, normalize_embedding=True, embedding_relu=True)
  images = jnp.asarray(np.random.default_rng(0).random((3, 32, 32, 1)), jnp.float32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), images)
  rng = np.random.default_rng(1)
  variables = jax.tree.map(lambda x: jnp.asarray(rng.normal(0.0, 0.3, x.shape), x.dtype), shapes)
  out = jax.jit(model.apply)(variables, images)["embedding"]
  np.testing.assert_allclose(np.linalg.norm(np.asarray(out), axis=1), 1.0, rtol=1e-5)
  # A negative embedding bias with ReLU kills every unit: the embedding is zero, not NaN.
  dead = jax.tree.map(lambda x: x, variables)
  dead["params"]["embedding_dense"]["bias"] = jnp.full_like(dead["params"]["embedding_dense"]["bias"], -1e6)
  out = jax.jit(model.apply)(dead, images)["embedding"]
  assert np.all(np.isfinite(np.asarray(out))) and np.allclose(out, 0.0)
