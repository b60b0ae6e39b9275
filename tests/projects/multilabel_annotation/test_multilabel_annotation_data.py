"""Tests of the annotation experiment's library parts: embedded scene tags, NUS-WIDE and VOC 2007 loaders,
the AlexNet-style model and the reference rows (upper bound, visual features + kNN)."""

from __future__ import annotations

import itertools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from ranking_jax.projects.multilabel_annotation import baselines as baselines
from ranking_jax import models
from ranking_jax.projects.multilabel_annotation import nuswide
from ranking_jax.data import rendered
from ranking_jax.projects.multilabel_annotation import scene_tags
from ranking_jax.data import scenes
from ranking_jax.data import voc_multilabel as voc
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.models import alexnet
from ranking_jax.models.heads import count_params

tfds = pytest.importorskip("tensorflow_datasets")

# ------------------------------------------------------------------------------------ embedded tags


@pytest.fixture(scope="module")
def tag_sample():
  # 400 training scenes of seed 0, tags only (no rendering): ~1.5 s.
  return scene_tags.SceneTagsSource(400, seed=0).labels(np.arange(400))


def test_vocabulary_is_nuswide_sized_and_documented():
  assert scene_tags.NUM_TAGS == len(set(scene_tags.TAG_NAMES)) == 80
  assert {spec.group for spec in scene_tags.TAG_SPECS} >= {"count", "kind", "colour", "size", "position",
                                                           "background", "clutter"}
  for name in scene_tags.TAG_NAMES:  # every tag has a line in the module's table
    assert f"``{name}``" in scene_tags.__doc__, name


def test_tag_statistics_of_the_embedded_data(tag_sample):
  stats = scene_tags.tag_statistics(tag_sample)
  on = tag_sample > 0
  # brute-force reference of the statistics
  for j in range(scene_tags.NUM_TAGS):
    assert stats.count[j] == sum(int(row[j]) for row in on)
  per_image = [int(row.sum()) for row in on]
  assert stats.tags_per_image.tolist() == per_image
  assert stats.mean_tags == pytest.approx(sum(per_image) / len(per_image))
  # the shape: every image tagged, typically 2-5 tags, long-tailed frequencies
  assert min(per_image) >= 1 and stats.fraction_untagged == 0.0
  assert 2 <= stats.median_tags <= 5 and stats.fraction_2_to_5 >= 0.6
  assert 3.0 <= stats.mean_tags <= 5.0
  assert stats.frequency.max() >= 0.30
  assert np.sum(stats.frequency <= 0.01) >= 8  # a long tail (<= 0.5 % on 4 000 scenes, see the docstring)
  assert np.sum(stats.frequency >= 0.10) <= 12
  # the six count tags partition the images
  counts = on[:, [scene_tags.TAG_NAMES.index(n) for n in scene_tags._COUNT_TAGS]]
  np.testing.assert_array_equal(counts.sum(axis=1), 1)


def _scene(objects, *, background=(0.5, 0.2, 0.6)):
  measured = scenes._measure(list(objects))
  return scenes.Scene(index=0, clutter=0.0, background_hsv=background, gradient=(1.0, 0.0, 0.0),
                      objects=tuple(measured), distractors=np.zeros((0, 8), np.float32), noise_seed=0,
                      annotator_noise=0.0)


def _object(name, center, radius, rotation=0.0, aspect=1.0, colour=None):
  class_id = scenes.CLASS_NAMES.index(name)
  hue = scenes.COLOUR_HUES[scenes.CLASS_COLOUR[class_id]]
  rgb = colour or tuple(float(c) for c in scenes.augment.hsv_to_rgb(np.array([hue, 0.9, 0.9], np.float32)))
  return scenes.SceneObject(class_id=class_id, shape=scenes.CLASS_SHAPE[class_id], colour=rgb,
                            center=center, radius=radius, rotation=rotation, aspect=aspect, striped=False)


def _tag_set(scene):
  return {scene_tags.TAG_NAMES[j] for j in np.flatnonzero(scene_tags.scene_tags(scene))}


def test_hand_built_scenes_get_the_documented_tags():
  # one big red disk in the middle of a plain background: area pi 0.3^2 = 0.283
  disk = _scene([_object("red disk", (0.5, 0.5), 0.3)])
  assert _tag_set(disk) == {"one_object", "red_disk", "huge_object", "large_object", "large_red", "centred",
                            "plain_background"}
  # the pixels show it: ~28 % strongly red pixels
  image = scenes.ScenesSource(1, image_size=64).render(disk)
  red = (image[..., 0] > 0.6) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)
  assert red.mean() == pytest.approx(math.pi * 0.09, abs=0.02)
  # an upright yellow cross (a plus sign) lying on a big upright green square
  square = _object("green square", (0.5, 0.5), 0.3)
  cross = _object("yellow cross", (0.45, 0.5), 0.08)
  assert _tag_set(_scene([square, cross])) == {
      "two_objects", "green_square", "yellow_cross", "large_object", "large_green", "centred",
      "object_on_object", "plus_sign", "upright_square", "plain_background"}
  # the same cross turned 45 deg is an x; a triangle turned 180 deg points down
  turned = _scene([_object("yellow cross", (0.5, 0.5), 0.1, rotation=math.pi / 4),
                   _object("green triangle", (0.2, 0.8), 0.1, rotation=math.pi)])
  tags = _tag_set(turned)
  assert {"x_sign", "upside_down_triangle", "two_objects"} <= tags
  assert "plus_sign" not in tags and "upright_triangle" not in tags
  # an empty scene on a dark grey background
  assert _tag_set(_scene([], background=(0.2, 0.03, 0.2))) == {
      "no_object", "dark_background", "grey_background", "plain_background"}


def test_source_batches_and_render_cache(tmp_path):
  source = scene_tags.SceneTagsSource(5, seed=3, offset=2, image_size=16)
  batch = source[np.array([4, 1])]
  assert batch["image"].shape == (2, 16, 16, 3) and batch["image"].dtype == np.float32
  assert batch["labels"].shape == (2, 80) and batch["labels"].dtype == np.float32
  np.testing.assert_array_equal(batch["labels"], source.labels(np.array([4, 1])))
  np.testing.assert_array_equal(batch["labels"][0], scene_tags.scene_tags(scenes.make_scene(3, 6)))
  cache_key = ["scene_tags", source.cache_key()]
  memory = rendered.render(source, keys=("image", "labels"), chunk_size=2, cache_dir=str(tmp_path),
                           cache_key=cache_key, name="scene_tags")
  assert len(memory) == 5 and memory.arrays["image"].dtype == np.uint8
  cached = os.listdir(tmp_path)
  assert len(cached) == 1 and cached[0].startswith("scene_tags_")
  again = rendered.render(source, cache_dir=str(tmp_path), cache_key=cache_key, name="scene_tags")
  np.testing.assert_array_equal(again.arrays["image"], memory.arrays["image"])
  read = memory[np.array([4, 1])]
  assert set(read) == {"image", "labels"}
  np.testing.assert_allclose(read["image"], batch["image"], atol=0.5 / 255 + 1e-6)
  np.testing.assert_array_equal(read["labels"], batch["labels"])
  # the cache key changes with every option that changes pixels or tags
  assert scene_tags.SceneTagsSource(5, seed=3, offset=2, image_size=32).cache_key() != source.cache_key()
  assert scene_tags.SceneTagsSource(5, seed=4, offset=2, image_size=16).cache_key() != source.cache_key()


# ------------------------------------------------------------------------------------------ NUS-WIDE

_CONCEPTS = ["airport", "animal", "beach", "bear"]
_TRAIN = [  # (list entry, labels, colour)
    ("actor\\0001_2124494179.jpg", [1, 0, 1, 0], (255, 0, 0)),
    ("actor\\0002_174174086.jpg", [0, 0, 0, 0], (0, 255, 0)),  # untagged: dropped by default
    ("beach\\0003_11.jpg", [0, 1, 0, 0], (0, 0, 255)),
    ("C:\\ImageData\\Flickr\\bear\\0004_12.jpg", [0, 1, 0, 1], (255, 255, 0)),
    ("bear\\0005_13.jpg", [1, 1, 1, 1], (0, 255, 255)),
]
_TEST = [("sky\\0006_14.jpg", [0, 0, 1, 0], (128, 128, 128)), ("sky\\0007_15.jpg", [1, 0, 0, 0], (0, 0, 0))]


def _write_nuswide(root, *, skip_image=None, skip_file=None):
  def write(relative, lines):
    path = root / relative
    if relative == skip_file:
      return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\r\n" for line in lines))

  write("ConceptsList/Concepts81.txt", _CONCEPTS)
  for split, rows in (("Train", _TRAIN), ("Test", _TEST)):
    write(f"ImageList/{split}Imagelist.txt", [entry for entry, _, _ in rows])
    for column, concept in enumerate(_CONCEPTS):
      write(f"Groundtruth/TrainTestLabels/Labels_{concept}_{split}.txt",
            [f"{labels[column]} " for _, labels, _ in rows])
    for entry, _, colour in rows:
      relative = entry.replace("\\", "/").split("Flickr/")[-1]
      if relative == skip_image:
        continue
      path = root / "Flickr" / relative
      path.parent.mkdir(parents=True, exist_ok=True)
      Image.new("RGB", (12, 9), colour).save(path, format="PNG")
  return root


def test_nuswide_loader_on_the_official_layout(tmp_path):
  root = _write_nuswide(tmp_path)
  source = nuswide.NusWideSource(root, "train", image_size=8)
  assert source.concepts == _CONCEPTS
  kept = [0, 2, 3, 4]  # the untagged image is dropped
  assert len(source) == 4 and source.list_positions.tolist() == kept
  assert source.paths[2] == "bear/0004_12.jpg"
  batch = source[np.arange(4)]
  assert batch["image"].shape == (4, 8, 8, 3) and batch["labels"].shape == (4, 4)
  np.testing.assert_array_equal(batch["labels"], [_TRAIN[i][1] for i in kept])
  np.testing.assert_allclose(batch["image"][:, 3, 3], [np.array(_TRAIN[i][2]) / 255 for i in kept], atol=1e-6)
  everything = nuswide.NusWideSource(root, "train", image_size=8, drop_untagged=False)
  assert len(everything) == 5 and everything[1]["labels"].sum() == 0
  splits = nuswide.make_nuswide_splits(root, image_size=8, validation_fraction=0.25, seed=0)
  assert [len(splits[k]) for k in ("train", "validation", "test")] == [3, 1, 2]
  assert sorted(splits["train"].paths + splits["validation"].paths) == sorted(source.paths)
  np.testing.assert_array_equal(splits["test"].label_matrix, [labels for _, labels, _ in _TEST])


def test_nuswide_missing_files_are_named(tmp_path):
  missing_labels = _write_nuswide(tmp_path / "a",
                                  skip_file="Groundtruth/TrainTestLabels/Labels_beach_Test.txt")
  with pytest.raises(DataNotFoundError, match=r"Labels_beach_Test\.txt(.|\n)*config\.data\.data_dir"):
    nuswide.NusWideSource(missing_labels, "test")
  with pytest.raises(DataNotFoundError, match="Concepts81.txt"):
    nuswide.NusWideSource(tmp_path / "nowhere", "train")
  missing_image = _write_nuswide(tmp_path / "b", skip_image="beach/0003_11.jpg")
  with pytest.raises(DataNotFoundError, match=r"0003_11\.jpg(.|\n)*missing_images"):
    nuswide.NusWideSource(missing_image, "train")
  skipped = nuswide.NusWideSource(missing_image, "train", missing_images="skip", image_size=4)
  assert len(skipped) == 3 and skipped.num_missing == 1 and "beach/0003_11.jpg" not in skipped.paths
  with pytest.raises(DataNotFoundError, match="image folder"):
    nuswide.NusWideSource(missing_image, "train", image_dir=tmp_path / "no_images")


# -------------------------------------------------------------------------------------------- VOC 2007


def test_voc2007_on_mock_data():
  with tfds.testing.mock_data(num_examples=6):
    source = voc.VocMultilabelSource(voc.TRAINVAL_SPLIT, image_size=16)
    records = tfds.data_source("voc/2007", split=voc.TRAINVAL_SPLIT)
    batch = source[np.arange(6)]
    assert batch["image"].shape == (6, 16, 16, 3) and batch["image"].dtype == np.float32
    for i in range(6):
      record = records[i]
      expected = np.zeros(20)
      expected[np.asarray(record["labels"])] = 1
      np.testing.assert_array_equal(batch["labels"][i], expected)
      no_difficult = np.zeros(20)
      no_difficult[np.asarray(record["labels_no_difficult"])] = 1
      np.testing.assert_array_equal(batch["labels_no_difficult"][i], no_difficult)
      np.testing.assert_array_equal(batch["difficult"][i], expected * (1 - no_difficult))
    matrix = source.label_matrix()
    np.testing.assert_array_equal(matrix["labels"], batch["labels"])
    splits = voc.make_voc2007_splits(image_size=8, validation_fraction=0.5, seed=1,
                                     label_field="labels_no_difficult")
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [3, 3, 6]
    assert sorted(splits["train"].records.tolist() + splits["validation"].records.tolist()) == list(range(6))
    np.testing.assert_array_equal(splits["test"][0]["labels"], splits["test"][0]["labels_no_difficult"])


def test_voc2007_difficult_only_classes():
  def as_data_source(builder, split, **kwargs):
    del builder, split, kwargs
    return [{"image": np.full((5, 7, 3), 200, np.uint8), "image/filename": b"000001.jpg",
             "labels": np.array([0, 14]), "labels_no_difficult": np.array([14])}]

  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    example = voc.VocMultilabelSource("test", image_size=4)[0]
  assert example["labels"].nonzero()[0].tolist() == [0, 14]  # aeroplane (difficult only), person
  assert example["labels_no_difficult"].nonzero()[0].tolist() == [14]
  assert example["difficult"].nonzero()[0].tolist() == [0]
  np.testing.assert_allclose(example["image"], 200 / 255, atol=1e-6)
  assert voc.VOC_CLASSES[0] == "aeroplane" and voc.VOC_CLASSES[14] == "person"


def test_voc2007_not_prepared_says_what_to_run(tmp_path):
  with pytest.raises(DataNotFoundError, match=r"tfds build voc/2007 --file_format=array_record"):
    voc.VocMultilabelSource("test", data_dir=str(tmp_path))


# ------------------------------------------------------------------------------------------------ model


def test_alexnet_multilabel_shapes_dropout_and_sizes():
  # a narrow model on 32x32 images keeps the compiled convolutions cheap
  model = models.build_model("alexnet_multilabel", num_tags=80, channel_divisor=16, fc_divisor=64)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.uniform(size=(2, 32, 32, 3)), jnp.float32)
  # Random parameters of the right shapes: compiling Flax's truncated-normal initialisers is slow on CPU.
  shapes = jax.eval_shape(model.init, jax.random.key(0), images)
  variables = jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, 0.1, s.shape), s.dtype), shapes)
  apply = jax.jit(model.apply, static_argnames="train")
  scores = apply(variables, images)
  assert scores.shape == (2, 80) and scores.dtype == jnp.float32
  with pytest.raises(Exception, match="dropout"):
    jax.eval_shape(lambda: model.apply(variables, images, train=True))  # training needs a "dropout" rng
  trained = apply(variables, images, train=True, rngs={"dropout": jax.random.key(1)})
  assert trained.shape == (2, 80) and not np.allclose(trained, scores)
  cpu_model = models.build_model("alexnet_multilabel", num_tags=80)
  variables = jax.eval_shape(lambda: cpu_model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3))))
  # parameter counts from the layer sizes (independent arithmetic)
  def expected(channels, kernels, fc, tags, flat):
    inputs = (3,) + channels[:-1]
    convs = sum(k * k * c_in * c_out + c_out for k, c_in, c_out in zip(kernels, inputs, channels))
    return convs + flat * fc + fc + fc * fc + fc + fc * tags + tags

  cpu = (24, 64, 96, 96, 64)
  assert count_params(variables["params"]) == expected(cpu, (11, 9, 5, 5, 5), 256, 80, 3 * 3 * 64)
  paper = models.build_model("alexnet_multilabel", preset="paper", num_tags=81)
  shapes = jax.eval_shape(lambda: paper.init(jax.random.key(0), jnp.zeros((1, 220, 220, 3))))
  assert count_params(shapes["params"]) == expected(alexnet.ALEXNET_CHANNELS, (11, 9, 5, 5, 5), 4096, 81,
                                                    6 * 6 * 256)
  with pytest.raises(ValueError, match="preset"):
    models.build_model("alexnet_multilabel", preset="huge")


# ------------------------------------------------------------------------------------ reference rows


def _brute_force_metrics(annotation, labels):
  """Per-class / overall P and R and N+ of explicit annotation sets, from the definitions."""
  num_tags = labels.shape[1]
  tp, pred, pos = [0] * num_tags, [0] * num_tags, [0] * num_tags
  for chosen, truth in zip(annotation, labels):
    for c in range(num_tags):
      pred[c] += c in chosen
      pos[c] += bool(truth[c])
      tp[c] += c in chosen and bool(truth[c])
  precision = [tp[c] / pred[c] if pred[c] else 0.0 for c in range(num_tags)]
  recall = [tp[c] / pos[c] if pos[c] else 0.0 for c in range(num_tags)]
  return (sum(recall) / num_tags, sum(precision) / num_tags, sum(tp) / sum(pos), sum(tp) / sum(pred),
          sum(r > 0 for r in recall))


def _row(metrics):
  return (metrics.per_class_recall, metrics.per_class_precision, metrics.overall_recall,
          metrics.overall_precision, metrics.n_plus)


def test_upper_bound_row_against_brute_force():
  labels = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 1, 1], [0, 0, 0, 1], [1, 0, 1, 0]])
  k = 2
  every = [list(itertools.combinations(range(4), k))] * len(labels)
  rows = [_brute_force_metrics(choice, labels) for choice in itertools.product(*every)]
  best_recall = max(r[2] for r in rows)
  best_precision = max(r[3] for r in rows)
  best_per_class_recall = max(r[0] for r in rows)
  for keep in ("random", "rarest"):
    for seed in range(3):
      scores = baselines.upper_bound_scores(labels, keep=keep, seed=seed)
      chosen = [set(np.argsort(-row, kind="stable")[:k].tolist()) for row in scores]
      for truth, picked in zip(labels, chosen):  # a valid ground-truth annotation
        true = set(np.flatnonzero(truth).tolist())
        assert picked <= true if len(true) >= k else true <= picked
      row = _row(baselines.upper_bound_row(labels, k, keep=keep, seed=seed))
      np.testing.assert_allclose(row, _brute_force_metrics(chosen, labels))
      assert row[2] == pytest.approx(best_recall) and row[3] == pytest.approx(best_precision)
      if keep == "rarest":
        assert row[0] == pytest.approx(best_per_class_recall)
  # closed forms: sum min(|Y|, k) / sum |Y| and / (n k)
  kept = np.minimum(labels.sum(axis=1), k).sum()
  assert best_recall == pytest.approx(kept / labels.sum())
  assert best_precision == pytest.approx(kept / (len(labels) * k))


def test_knn_tag_transfer_hand_checked():
  train = np.array([[0.0], [1.0], [1.5], [10.0]])
  labels = np.array([[1, 0, 0, 1],   # tag frequencies: 2, 2, 1, 3
                     [0, 1, 0, 1],
                     [1, 1, 1, 0],
                     [0, 0, 0, 1]])
  query = np.array([[0.9], [0.2]])
  # query 0: neighbours 1 (d 0.1), 2 (0.6), 0 (0.9); query 1: 0 (0.2), 1 (0.8), 2 (1.3)
  np.testing.assert_array_equal(baselines.nearest_neighbours(train, query, 3), [[1, 2, 0], [0, 1, 2]])
  scores = baselines.knn_tag_transfer_scores(train, labels, query, num_neighbours=3)
  # makadia: first neighbour's tags by frequency (tie -> lower index), then local count in neighbours 2..K
  # query 0: {1, 3} -> [3, 1]; local counts: tag 0: 2 (rows 2, 0), tag 2: 1 -> [0, 2]
  # query 1: {0, 3} -> [3, 0]; local counts: tag 1: 2 (rows 1, 2), tag 2: 1 -> [1, 2]
  assert np.argsort(-scores, axis=1).tolist() == [[3, 1, 0, 2], [3, 0, 1, 2]]
  votes = baselines.knn_tag_transfer_scores(train, labels, query, num_neighbours=3, method="vote")
  # query 0 votes: tag0 1/2+1/3, tag1 1+1/2, tag2 1/2, tag3 1+1/3 -> [1, 3, 0, 2]
  # query 1 votes: tag0 1+1/3, tag1 1/2+1/3, tag2 1/3, tag3 1+1/2 -> [3, 0, 1, 2]
  assert np.argsort(-votes, axis=1).tolist() == [[1, 3, 0, 2], [3, 0, 1, 2]]
  loo = baselines.nearest_neighbours(train, train, 2, exclude_self=True)
  assert loo.tolist() == [[1, 2], [2, 0], [1, 0], [2, 1]]


def test_nearest_neighbours_and_visual_features():
  rng = np.random.default_rng(0)
  train, query = rng.normal(size=(30, 5)), rng.normal(size=(7, 5))
  distances = ((query[:, None] - train[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(baselines.nearest_neighbours(train, query, 4),
                                np.argsort(distances, axis=1)[:, :4])
  red = np.zeros((1, 8, 8, 3))
  red[..., 0] = 1.0
  features = baselines.visual_features(red)
  assert features.shape == (1, 48 + 144)
  colour = np.zeros(48)
  colour[(0 * 3 + 2) * 2 + 1] = 1.0  # hue 0 (first of 8 bins), saturation 1 and value 1 (last bins)
  np.testing.assert_allclose(features[0, :48], colour)
  np.testing.assert_allclose(features[0, 48:], 0.0)  # no gradients in a constant image
  ramp = np.broadcast_to(np.linspace(0.0, 1.0, 16)[None, None, :, None], (1, 16, 16, 3))
  # intensity changes along x only: horizontal gradients everywhere, orientation bin 0
  orientation = baselines.visual_features(ramp)[0, 48:].reshape(4, 4, 9)
  assert np.all(orientation[..., 0] > 0) and np.allclose(orientation[..., 1:], 0.0)
