"""Tests of the SoDeep experiments' data: teacher/student AP data, the scenes' memorability label, and the
LaMem / MediaEval 2018 loaders on tiny fixtures."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from PIL import Image

from ranking_jax.projects.sodeep import memorability_scenes as memorability
from ranking_jax.projects.sodeep import memorability_files as files
from ranking_jax.data import scenes
from ranking_jax.projects.sodeep import teacher_student
from ranking_jax.data.errors import DataNotFoundError

# ----------------------------------------------------------------------------------------------------------
# Teacher / student synthetic AP data (Song et al. 2016, SoDeep §4.1.4).


@pytest.fixture(scope="module")
def small_ap_data():
  return teacher_student.make_teacher_student_data(7, num_points=2000, num_train=1000)


def _teacher_forward(params, x):
  """Independent forward pass: explicit per-layer ReLU, float64."""
  h = np.asarray(x, np.float64)
  for w, b in params[:-1]:
    h = np.maximum(np.einsum("nd,dh->nh", h, w) + b, 0.0)
  w, b = params[-1]
  return np.einsum("nd,dh->nh", h, w)[:, 0] + b[0]


def test_positives_are_exactly_the_teacher_top_20_percent(small_ap_data):
  data = small_ap_data
  teacher = np.concatenate([data.teacher_train, data.teacher_test])
  labels = np.concatenate([data.y_train, data.y_test])
  assert labels.sum() == 400  # exactly 20 % of 2000
  assert teacher[labels == 1].min() > teacher[labels == 0].max()
  assert data.threshold == teacher[labels == 1].min()
  top = np.argsort(-teacher)[:400]
  assert set(top) == set(np.flatnonzero(labels == 1))
  # The stored teacher scores are the network's: recompute them from the (float32) inputs.
  x = np.concatenate([data.x_train, data.x_test])
  np.testing.assert_allclose(_teacher_forward(data.teacher_params, x), teacher, rtol=1e-4,
                             atol=1e-6 * np.abs(teacher).max())


def test_architecture_shapes_and_split(small_ap_data):
  data = small_ap_data
  assert [w.shape for w, _ in data.teacher_params] == [(10, 64), (64, 64), (64, 64), (64, 64), (64, 1)]
  assert all(b.shape == (w.shape[1],) for w, b in data.teacher_params)
  weights = np.concatenate([w.ravel() for w, _ in data.teacher_params])
  assert abs(weights.mean()) < 0.05 and abs(weights.std() - 1.0) < 0.05  # N(0, 1) weights
  assert data.x_train.shape == (1000, 10) and data.x_test.shape == (1000, 10)
  assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.float32
  assert set(np.unique(data.y_train)) == {0.0, 1.0}
  # A partition of the points: no point in both splits, and the inputs are standard normal.
  both = np.concatenate([data.x_train, data.x_test])
  assert len(np.unique(both, axis=0)) == 2000
  assert abs(both.mean()) < 0.03 and abs(both.std() - 1.0) < 0.03
  assert 0.15 < data.y_train.mean() < 0.25 and 0.15 < data.y_test.mean() < 0.25


def test_deterministic_in_the_seed():
  a = teacher_student.make_teacher_student_data(3, num_points=300, num_train=200, hidden_sizes=(8,) * 4)
  b = teacher_student.make_teacher_student_data(3, num_points=300, num_train=200, hidden_sizes=(8,) * 4)
  c = teacher_student.make_teacher_student_data(4, num_points=300, num_train=200, hidden_sizes=(8,) * 4)
  for field in ("x_train", "y_train", "x_test", "y_test", "teacher_train"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  assert not np.array_equal(a.x_train, c.x_train)
  with pytest.raises(ValueError):
    teacher_student.make_teacher_student_data(0, num_points=10, num_train=10)


def test_default_protocol_sizes():
  data = teacher_student.make_teacher_student_data(0)
  assert len(data.x_train) == 10000 and len(data.x_test) == 10000
  assert data.y_train.sum() + data.y_test.sum() == 4000


def test_student_has_the_teacher_architecture():
  model = teacher_student.ReluMLP(hidden_sizes=(64,) * 4)
  # Shapes only (no compilation): jax.eval_shape traces init and apply abstractly.
  variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, 10)))
  kernels = [leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(variables)
             if "kernel" in jax.tree_util.keystr(path)]
  assert kernels == [(10, 64), (64, 64), (64, 64), (64, 64), (64, 1)]
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=True), variables, jnp.ones((5, 10)))
  assert out.shape == (5,) and out.dtype == jnp.float32


# ----------------------------------------------------------------------------------------------------------
# The scenes' memorability label.


@pytest.fixture(scope="module")
def memorability_sample():
  source = memorability.MemorabilitySource(1000, seed=2024)  # a seed not used for calibration
  sample_scenes = [source.scene(i) for i in range(1000)]
  pairs = np.array([memorability.scene_memorability(s, seed=2024) for s in sample_scenes])
  labels = {"memorability": pairs[:, 0], "memorability_noise_free": pairs[:, 1]}
  np.testing.assert_array_equal(source.labels(np.arange(5))["memorability"], labels["memorability"][:5])
  difficulty = np.array([scenes.scene_difficulty(s) for s in sample_scenes])
  factors = np.stack([memorability.memorability_factors(s) for s in sample_scenes])
  return labels, difficulty, factors


def test_memorability_statistics_are_lamem_like(memorability_sample):
  labels, _, _ = memorability_sample
  for key in ("memorability", "memorability_noise_free"):
    values = labels[key]
    assert values.dtype == np.float32 and np.all((values > 0) & (values < 1))
    stats = memorability.memorability_statistics(values)
    assert abs(stats["mean"] - 0.75) < 0.015, stats
    assert abs(stats["std"] - 0.12) < 0.015, stats
    assert stats["skewness"] < -0.3, stats  # a ceiling: skewed to the left, like LaMem
  noisy = labels["memorability"]
  assert noisy.min() < 0.45 and noisy.max() > 0.93


def test_statistics_function_matches_numpy_and_scipy():
  values = np.random.default_rng(0).beta(9.0, 3.0, size=500)
  stats = memorability.memorability_statistics(values)
  assert stats["count"] == 500
  np.testing.assert_allclose(stats["mean"], np.mean(values))
  np.testing.assert_allclose(stats["std"], np.std(values))
  np.testing.assert_allclose(stats["skewness"], scipy.stats.skew(values))
  np.testing.assert_allclose(stats["q50"], np.median(values))
  assert stats["min"] == values.min() and stats["max"] == values.max()
  with pytest.raises(ValueError):
    memorability.memorability_statistics([])


def test_label_is_noisy_view_of_the_signal_and_distinct_from_difficulty(memorability_sample):
  labels, difficulty, factors = memorability_sample
  noisy, clean = labels["memorability"], labels["memorability_noise_free"]
  ceiling = scipy.stats.spearmanr(noisy, clean)[0]
  assert 0.72 < ceiling < 0.86  # annotator noise 0.75: about 0.79
  # Related to difficulty (clutter, size) but far from determined by it.
  rho_difficulty = scipy.stats.spearmanr(clean, difficulty[:, 1])[0]
  assert -0.6 < rho_difficulty < -0.2
  # Each factor moves the noise-free score in the documented direction, other factors fixed:
  # the least-squares fit of the standardised signal on the factors recovers the weights.
  z = np.log(clean / (1 - clean))
  design = np.concatenate([factors, np.ones((len(z), 1))], axis=1).astype(np.float64)
  coefficients = np.linalg.lstsq(design, z, rcond=None)[0][:-1]
  expected = (np.array(memorability.MEMORABILITY_WEIGHTS) * memorability.LOGIT_SLOPE
              / memorability.SIGNAL_STD)
  np.testing.assert_allclose(coefficients, expected, rtol=1e-3, atol=1e-3)


def test_noise_free_option_and_independent_noise():
  quiet = memorability.MemorabilitySource(20, seed=1, annotator_noise=0.0).labels(np.arange(20))
  np.testing.assert_array_equal(quiet["memorability"], quiet["memorability_noise_free"])
  noise = np.array([memorability.annotator_noise_draw(1, i) for i in range(400)])
  scene_noise = np.array([scenes.make_scene(1, i).annotator_noise for i in range(400)])
  assert abs(np.corrcoef(noise, scene_noise)[0, 1]) < 0.15  # not difficulty's noise
  with pytest.raises(ValueError):
    memorability.MemorabilitySource(5, annotator_noise=-1.0)


def test_source_images_are_the_scenes_images_and_batches_match():
  source = memorability.MemorabilitySource(6, seed=9, offset=3, image_size=32)
  batch = source[np.array([4, 1])]
  assert set(batch) == {"image", "memorability", "memorability_noise_free", "index"}
  assert batch["image"].shape == (2, 32, 32, 3) and batch["image"].dtype == np.float32
  np.testing.assert_array_equal(batch["image"][0], scenes.ScenesSource(10, seed=9, image_size=32)[7]["image"])
  single = source[1]
  for key in batch:
    np.testing.assert_array_equal(batch[key][1], single[key])
  np.testing.assert_array_equal(source.labels(np.array([4, 1]))["memorability"], batch["memorability"])


def test_standard_error_formula_and_test_split_size():
  n, rho = memorability.DEFAULT_NUM_TEST, 0.45
  assert memorability.spearman_standard_error(rho, n) < 0.01
  size = memorability.spearman_test_size(rho)
  assert memorability.spearman_standard_error(rho, size) <= 0.01 < memorability.spearman_standard_error(
      rho, size - 1)
  assert size <= n
  splits = memorability.make_memorability_splits(10, 5)
  assert len(splits["test"]) == n and splits["test"].offset == 15
  # Against a bootstrap of a correlated Gaussian sample (n = 400, rho about 0.5).
  rng = np.random.default_rng(11)
  x = rng.normal(size=400)
  y = x + 1.6 * rng.normal(size=400)
  rho_hat = scipy.stats.spearmanr(x, y)[0]
  boot = [scipy.stats.spearmanr(x[i], y[i])[0] for i in rng.integers(0, 400, size=(300, 400))]
  formula = memorability.spearman_standard_error(rho_hat, 400)
  assert abs(np.std(boot) - formula) < 0.2 * formula


# ----------------------------------------------------------------------------------------------------------
# LaMem and MediaEval 2018 loaders on tiny fixtures.


def _write_image(path, colour, size=(12, 10)):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.new("RGB", size, tuple(int(c) for c in colour)).save(path)


@pytest.fixture()
def lamem_dir(tmp_path):
  root = tmp_path / "lamem"
  rng = np.random.default_rng(0)
  names = [f"{i:08d}.jpg" for i in range(1, 10)]
  colours = {name: rng.integers(0, 256, 3) for name in names}
  for name in names:
    _write_image(str(root / "images" / name), colours[name])
  (root / "splits").mkdir()
  for split, part in [("train", names[:5]), ("val", names[5:7]), ("test", names[7:])]:
    lines = [f"{name} {0.5 + 0.05 * k:.6f}" for k, name in enumerate(part)]
    (root / "splits" / f"{split}_1.txt").write_text("\n".join(lines) + "\n")
  return root, colours


def test_lamem_splits_read_images_and_scores(lamem_dir):
  root, colours = lamem_dir
  splits = files.make_lamem_splits(str(root), image_size=8)
  assert [len(splits[k]) for k in ("train", "validation", "test")] == [5, 2, 2]
  train = splits["train"]
  batch = train[np.array([3, 0])]
  assert set(batch) == {"image", "memorability", "index", "group"}
  assert batch["image"].shape == (2, 8, 8, 3) and batch["image"].dtype == np.float32
  np.testing.assert_allclose(batch["memorability"], [0.65, 0.5], rtol=1e-6)
  np.testing.assert_array_equal(batch["group"], [3, 0])  # one group per image
  expected = colours["00000004.jpg"] / 255.0
  np.testing.assert_allclose(batch["image"][0].mean(axis=(0, 1)), expected, atol=4 / 255)  # JPEG rounding
  assert train.num_groups == 5 and np.allclose(train.group_scores, train.scores)


def test_lamem_missing_files_name_the_file_and_the_config_key(lamem_dir, tmp_path):
  root, _ = lamem_dir
  os.remove(root / "splits" / "val_1.txt")
  with pytest.raises(DataNotFoundError, match="val_1.txt") as error:
    files.make_lamem_splits(str(root))
  assert "config.data.lamem_dir" in str(error.value) and "memorability.csail.mit.edu" in str(error.value)
  os.remove(root / "images" / "00000008.jpg")
  with pytest.raises(DataNotFoundError, match="00000008.jpg"):
    files.make_lamem_source(str(root), "test")
  with pytest.raises(DataNotFoundError, match="LaMem folder"):
    files.make_lamem_splits(str(tmp_path / "nowhere"))
  (root / "splits" / "bad_1.txt").write_text("00000001.jpg\n")
  with pytest.raises(ValueError, match="expected"):
    files.read_lamem_split(root / "splits" / "bad_1.txt")


@pytest.fixture()
def mediaeval(tmp_path):
  """Six videos: four with a folder of 7 frames, one with 9 flat frames, one with 7 flat frames."""
  frames = tmp_path / "frames"
  rows = []
  colours = {}
  for v in range(6):
    stem = f"video{v + 3}"
    rows.append(f"{stem}.webm,{0.6 + 0.05 * v:.3f},{30 + v},{0.5 + 0.04 * v:.3f},{10 + v}")
    count = 9 if v == 4 else 7
    for k in range(count):
      colour = (20 * v, 30 * k, 100)
      colours[(stem, k)] = colour
      name = (f"{stem}/{k}.jpg" if v < 4 else f"{stem}_{k}.jpg")
      _write_image(str(frames / name), colour)
  csv_path = tmp_path / "ground-truth_dev-set.csv"
  csv_path.write_text(",".join(files.MEDIAEVAL_COLUMNS) + "\n" + "\n".join(rows) + "\n")
  return csv_path, frames, colours


def test_mediaeval_ground_truth_reader(mediaeval):
  csv_path, _, _ = mediaeval
  videos = files.read_mediaeval_ground_truth(csv_path)
  assert [v.video for v in videos] == [f"video{v}.webm" for v in range(3, 9)]
  assert videos[2].stem == "video5" and videos[2].short_term == pytest.approx(0.7)
  assert videos[2].num_short_term == 32 and videos[2].long_term == pytest.approx(0.58)
  assert videos[2].num_long_term == 12


def test_mediaeval_frames_grouped_by_video_and_averaged(mediaeval):
  csv_path, frames, colours = mediaeval
  videos = files.read_mediaeval_ground_truth(csv_path)
  source = files.make_mediaeval_source(videos, frames, image_size=4)
  assert len(source) == 6 * 7 and source.num_groups == 6
  np.testing.assert_array_equal(np.bincount(source.groups), [7] * 6)
  np.testing.assert_allclose(source.group_scores, [v.short_term for v in videos], rtol=1e-6)
  assert source.group_names == [v.video for v in videos]
  batch = source[np.arange(len(source))]
  np.testing.assert_allclose(batch["memorability"], source.group_scores[batch["group"]])
  # Frames in frame order; 7 evenly spaced of video7's 9 frames: 0, 1, 3, 4, 5, 7, 8.
  first = batch["image"][np.flatnonzero(batch["group"] == 4)].mean(axis=(1, 2))
  np.testing.assert_allclose(first[:, 1] * 255, [30 * k for k in (0, 1, 3, 4, 5, 7, 8)], atol=5)
  # Averaging the frame predictions per video, as the paper does at test time.
  predictions = np.random.default_rng(0).random(len(source))
  per_video = files.average_by_group(predictions, batch["group"], source.num_groups)
  for g in range(6):
    np.testing.assert_allclose(per_video[g], predictions[batch["group"] == g].mean())
  long_term = files.make_mediaeval_source(videos, frames, target="long_term", image_size=4)
  np.testing.assert_allclose(long_term.group_scores, [v.long_term for v in videos], rtol=1e-6)


def test_mediaeval_splits_are_by_video(mediaeval, tmp_path):
  csv_path, frames, _ = mediaeval
  splits = files.make_mediaeval_splits(csv_path, frames, validation_fraction=1 / 6, test_fraction=2 / 6,
                                       image_size=4)
  names = {k: set(s.group_names) for k, s in splits.items()}
  assert [len(names[k]) for k in ("train", "validation", "test")] == [3, 1, 2]
  assert not (names["train"] & names["test"]) and not (names["train"] & names["validation"])
  assert set.union(*names.values()) == {f"video{v}.webm" for v in range(3, 9)}
  assert all(len(s) == 7 * s.num_groups for s in splits.values())
  # A separate test CSV becomes the test split; the dev-set is split into train and validation.
  test_csv = tmp_path / "test.csv"
  test_csv.write_text(",".join(files.MEDIAEVAL_COLUMNS) + "\nvideo4.webm,0.9,20,0.8,9\n")
  with_test = files.make_mediaeval_splits(csv_path, frames, test_ground_truth=test_csv, image_size=4)
  assert with_test["test"].group_names == ["video4.webm"]
  assert with_test["test"].group_scores.tolist() == [pytest.approx(0.9)]
  assert len(with_test["train"].group_names) + len(with_test["validation"].group_names) == 6
  both = files.concatenate_sources([splits["train"], splits["test"]])
  assert both.num_groups == 5 and len(both) == 35
  np.testing.assert_allclose(both.group_scores, np.concatenate([splits["train"].group_scores,
                                                                splits["test"].group_scores]))


def test_mediaeval_missing_files_name_the_file_and_the_config_key(mediaeval, tmp_path):
  csv_path, frames, _ = mediaeval
  with pytest.raises(DataNotFoundError, match="missing.csv") as error:
    files.read_mediaeval_ground_truth(tmp_path / "missing.csv")
  assert "config.data.mediaeval_ground_truth" in str(error.value)
  with pytest.raises(DataNotFoundError, match="mediaeval_frames_dir"):
    files.make_mediaeval_splits(csv_path, tmp_path / "no_frames")
  for name in os.listdir(frames / "video5"):
    os.remove(frames / "video5" / name)
  with pytest.raises(DataNotFoundError, match="video5") as error:
    files.make_mediaeval_source(files.read_mediaeval_ground_truth(csv_path), frames)
  assert "ffmpeg" in str(error.value)
  bad = tmp_path / "bad.csv"
  bad.write_text("video,score\nvideo3.webm,0.5\n")
  with pytest.raises(ValueError, match="short-term_memorability"):
    files.read_mediaeval_ground_truth(bad)
