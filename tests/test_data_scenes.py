"""Tests of the procedural scenes generator: determinism, label statistics, rendering."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings, strategies as st

from ranking_jax.data import augment
from ranking_jax.data import scenes

VSD_CSV = "../shared/data/vsd/VSD_dataset.csv"


@pytest.fixture(scope="module")
def label_sample():
  # 1500 scenes of a seed not used for calibration; labels only (no rendering) to stay fast.
  return scenes.ScenesSource(1500, seed=2024).labels(np.arange(1500))


def test_any_example_regenerates_from_seed_and_index():
  a = scenes.ScenesSource(50, seed=7)
  b = scenes.ScenesSource(50, seed=7)
  batch = a[np.array([31, 4, 31])]
  for pos, index in enumerate([31, 4, 31]):
    single = b[index]
    for key, value in single.items():
      np.testing.assert_array_equal(batch[key][pos], value, err_msg=key)
  assert not np.array_equal(a[3]["image"], scenes.ScenesSource(50, seed=8)[3]["image"])
  assert not np.array_equal(a[3]["image"], a[4]["image"])


def test_offset_and_splits_are_disjoint_views_of_one_stream():
  splits = scenes.make_scenes_splits(6, 3, 3, seed=1)
  full = scenes.ScenesSource(12, seed=1)
  np.testing.assert_array_equal(splits["validation"][0]["image"], full[6]["image"])
  np.testing.assert_array_equal(splits["test"][2]["difficulty"], full[11]["difficulty"])


def test_labels_do_not_depend_on_image_size():
  small, large = scenes.ScenesSource(5, image_size=32), scenes.ScenesSource(5, image_size=96)
  assert small[2]["image"].shape == (32, 32, 3) and large[2]["image"].shape == (96, 96, 3)
  for key in ("difficulty", "attributes", "labels", "factors"):
    np.testing.assert_array_equal(small[2][key], large[2][key])


def test_example_types_and_ranges():
  ex = scenes.ScenesSource(3)[np.arange(3)]
  assert ex["image"].dtype == np.float32 and ex["image"].min() >= 0 and ex["image"].max() <= 1
  assert ex["attributes"].shape == (3, scenes.NUM_ATTRIBUTES) and scenes.NUM_ATTRIBUTES >= 20
  assert ex["labels"].shape == (3, scenes.NUM_CLASSES)
  assert ex["object_mask"].shape == (3, scenes.MAX_OBJECTS) and ex["object_mask"].dtype == bool
  assert set(np.unique(ex["attributes"])) <= {0.0, 1.0}
  np.testing.assert_array_equal(ex["index"], [0, 1, 2])
  assert len(scenes.ATTRIBUTE_NAMES) == len(scenes.ATTRIBUTE_THRESHOLDS) == scenes.NUM_ATTRIBUTES


def test_index_errors():
  source = scenes.ScenesSource(4)
  with pytest.raises(IndexError):
    source[4]
  with pytest.raises(IndexError):
    source[np.array([0, 9])]
  with pytest.raises(TypeError):
    source[np.array([0.5])]
  np.testing.assert_array_equal(source[-1]["image"], source[3]["image"])
  with pytest.raises(ValueError):
    scenes.ScenesSource(4, clutter_range=(0.5, 0.2))
  with pytest.raises(ValueError):
    scenes.ScenesSource(4, max_objects=9)


def test_difficulty_distribution_resembles_vsd(label_sample):
  d = label_sample["difficulty"]
  assert 2.45 <= d.min() and d.max() <= 9.63
  assert 3.15 < d.mean() < 3.5
  assert 0.35 < d.std() < 0.7
  assert scipy.stats.skew(d) > 1.5  # long right tail
  assert np.mean(d > 5.0) < 0.05  # few hard images
  assert np.isfinite(d).all()


def test_difficulty_quantile_table_matches_real_csv():
  try:
    raw = np.loadtxt(VSD_CSV, delimiter=",", usecols=1)
  except OSError:
    pytest.skip("../shared/data/vsd/VSD_dataset.csv not available")
  np.testing.assert_allclose(np.quantile(raw, scenes.VSD_LEVELS), scenes.VSD_QUANTILES, atol=0.05)


def test_difficulty_follows_the_documented_formula(label_sample):
  # Independent re-derivation from the returned factors and the documented constants.
  f = label_sample["factors"].astype(np.float64)
  signal = f @ np.array(scenes.DIFFICULTY_WEIGHTS)
  clean_latent = (signal - scenes.SIGNAL_MEAN) / scenes.SIGNAL_STD
  cdf = np.array([0.5 * (1 + math.erf(z / math.sqrt(2))) for z in clean_latent])
  expected = np.interp(cdf, scenes.VSD_LEVELS, scenes.VSD_QUANTILES)
  np.testing.assert_allclose(label_sample["difficulty_noise_free"], expected, rtol=1e-5)
  # Each factor pushes difficulty up (positive rank correlation with the noise-free score).
  for j, name in enumerate(scenes.FACTOR_NAMES):
    rho = scipy.stats.spearmanr(f[:, j], label_sample["difficulty_noise_free"])[0]
    assert rho > 0.1, name
  # Annotator noise: informative but imperfect, as for human scores.
  tau = scipy.stats.kendalltau(label_sample["difficulty"], label_sample["difficulty_noise_free"])[0]
  assert 0.45 < tau < 0.75


def test_annotator_noise_zero_gives_noise_free_scores():
  lab = scenes.ScenesSource(20, annotator_noise=0.0).labels(np.arange(20))
  np.testing.assert_allclose(lab["difficulty"], lab["difficulty_noise_free"], rtol=1e-6)


def test_attribute_imbalance_is_a_power_law_range(label_sample):
  rates = label_sample["attributes"].mean(axis=0)
  assert 0.4 < rates[0] < 0.6  # about 1:1
  assert 0.01 < rates[-1] <= 1 / 30  # about 1:40
  assert (rates > 0).all()
  expected = 0.5 * (2 / 41) ** (np.arange(scenes.NUM_ATTRIBUTES) / (scenes.NUM_ATTRIBUTES - 1))
  np.testing.assert_allclose(np.log(rates), np.log(expected), atol=0.35)
  # log-rate falls linearly with the attribute's rank
  slope, _, r, _, _ = scipy.stats.linregress(np.arange(len(rates)), np.log(rates))
  assert slope < 0 and r < -0.97


def test_object_labels_have_power_law_frequencies(label_sample):
  freq = label_sample["labels"].mean(axis=0)
  assert (freq > 0).all()
  assert freq[0] / freq[-1] > 10
  rho = scipy.stats.spearmanr(np.arange(scenes.NUM_CLASSES), freq)[0]
  assert rho < -0.9
  slope, _, r, _, _ = scipy.stats.linregress(np.log(np.arange(1, 21)), np.log(freq))
  assert -2.0 < slope < -0.6 and r < -0.9


def test_object_list_statistics(label_sample):
  counts = label_sample["object_mask"].sum(axis=1)
  assert counts.min() == 1 and counts.max() == scenes.MAX_OBJECTS
  assert np.bincount(counts)[1] > np.bincount(counts)[4]  # few objects are more common
  mask = label_sample["object_mask"]
  assert (label_sample["object_truncated_fraction"][mask] > 0.05).mean() > 0.1
  assert (label_sample["object_occluded_fraction"][mask] > 0.05).mean() > 0.05
  assert (label_sample["object_visible_fraction"][mask] < 0.15).mean() > 0.0  # some hidden objects
  assert (label_sample["object_radius"][~mask] == 0).all()
  # labels = classes of the sufficiently visible objects
  for i in range(50):
    vis = mask[i] & (label_sample["object_visible_fraction"][i] >= 0.15)
    expected = np.zeros(scenes.NUM_CLASSES)
    expected[label_sample["object_class"][i][vis]] = 1
    np.testing.assert_array_equal(label_sample["labels"][i], expected)


def test_clutter_range_controls_clutter_and_difficulty():
  calm = scenes.ScenesSource(200, seed=5, clutter_range=(0.0, 0.1)).labels(np.arange(200))
  busy = scenes.ScenesSource(200, seed=5, clutter_range=(0.9, 1.0)).labels(np.arange(200))
  assert calm["factors"][:, 0].max() <= 0.1 and busy["factors"][:, 0].min() >= 0.9
  assert busy["difficulty"].mean() > calm["difficulty"].mean()


def test_rendered_object_colour_is_visible():
  # The front-most object's centre pixel, if inside the image, has that object's colour (up to noise).
  source = scenes.ScenesSource(30, image_size=64, clutter_range=(0.0, 0.0))
  checked = 0
  for i in range(30):
    scene = source.scene(i)
    obj = scene.objects[-1]
    cx, cy = obj.center
    if obj.striped or not (0.05 < cx < 0.95 and 0.05 < cy < 0.95):
      continue
    pixel = source.render(scene)[int(cy * 64), int(cx * 64)]
    np.testing.assert_allclose(pixel, np.clip(obj.colour, 0, 1), atol=0.1)
    checked += 1
  assert checked >= 5


def test_hsv_conversions_match_colorsys():
  rng = np.random.default_rng(0)
  rgb = rng.uniform(size=(500, 3)).astype(np.float32)
  expected = np.array([colorsys.rgb_to_hsv(*p) for p in rgb])
  np.testing.assert_allclose(augment.rgb_to_hsv(rgb), expected, atol=1e-5)
  back = np.array([colorsys.hsv_to_rgb(*p) for p in expected])
  np.testing.assert_allclose(augment.hsv_to_rgb(expected), back, atol=1e-5)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(st.integers(0, 2 ** 31 - 1), st.integers(0, 10 ** 9))
def test_scene_generation_is_a_pure_function(seed, index):
  a, b = scenes.make_scene(seed, index), scenes.make_scene(seed, index)
  assert a.objects == b.objects and a.clutter == b.clutter
  np.testing.assert_array_equal(a.distractors, b.distractors)
  assert 1 <= len(a.objects) <= scenes.MAX_OBJECTS
  for o in a.objects:
    assert 0 <= o.visible_fraction <= 1 and 0 <= o.occluded_fraction <= 1 and 0 <= o.truncated_fraction <= 1
