"""Tests of SoDeep's Recall@K / mAP library parts: scene captions, COCO captions, cross-modal recall, models.

Each check uses an independent reference: a parser of the generated captions with its own geometry, a
brute-force ranking loop written from the paper's protocol, and a numpy WILDCAT pooling.
"""

from __future__ import annotations

import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ranking_jax import metrics
from ranking_jax.projects.sodeep import coco_captions
from ranking_jax.projects.sodeep import scene_captions as sc
from ranking_jax.data import scenes
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.models import build_model
from ranking_jax.projects.sodeep import joint_embedding
from ranking_jax.projects.sodeep import wildcat

tfds = pytest.importorskip("tensorflow_datasets")

# ----------------------------------------------------------------------------------------------------------
# Scene captions.

SHAPE_OF = {"disk": "disk", "disks": "disk", "circle": "disk", "circles": "disk", "square": "square",
            "squares": "square", "triangle": "triangle", "triangles": "triangle", "cross": "cross",
            "crosses": "cross", "star": "star", "stars": "star"}
COUNT_OF = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
MENTION = re.compile(
    r"\b(?:(?P<count>one|two|three|four|five|many) )?(?:(?P<size>small|little|large|big) )?"
    r"(?:(?P<striped>striped) )?(?P<colour>red|green|blue|yellow) (?P<shape>" + "|".join(SHAPE_OF) + r")\b")
RELATION = re.compile(r"\b(to the left of|to the right of|left of|right of|above|over|below|under|beneath|"
                      r"in front of|behind|next to|near|beside)\b")
RELATION_KIND = {"to the left of": "left", "left of": "left", "to the right of": "right", "right of": "right",
                 "above": "above", "over": "above", "below": "below", "under": "below", "beneath": "below",
                 "in front of": "front", "behind": "behind", "next to": "near", "near": "near",
                 "beside": "near"}
POSITION = re.compile(r"\b(in the top left corner|in the top right corner|in the bottom left corner|"
                      r"in the bottom right corner|at the top|at the bottom|on the left|on the right|"
                      r"in the centre|in the middle)\b")
TOTAL = re.compile(r"\b(one|two|three|four|five|many) (objects|shapes)\b")


def object_matches(obj, mention) -> bool:
  colour = scenes.COLOUR_NAMES[scenes.CLASS_COLOUR[obj.class_id]]
  if colour != mention["colour"] or scenes.SHAPE_NAMES[obj.shape] != SHAPE_OF[mention["shape"]]:
    return False
  if mention["size"] in ("small", "little") and not obj.radius < 0.08:
    return False
  if mention["size"] in ("large", "big") and not obj.radius > 0.17:
    return False
  return not (mention["striped"] and not obj.striped)


def pixel_overlap(a, b, pixels: int = 256) -> bool:
  """Shapes a and b share a pixel of a fine grid over the image (the generator uses a coarser one)."""
  centres = (np.arange(pixels) + 0.5) / pixels
  y, x = np.meshgrid(centres, centres, indexing="ij")
  masks = [scenes._shape_mask(o.shape, *scenes._object_coordinates(o, x, y)) for o in (a, b)]
  return bool((masks[0] & masks[1]).any())


def relation_is_true(scene, i, j, kind) -> bool:
  a, b = scene.objects[i], scene.objects[j]
  dx, dy = b.center[0] - a.center[0], b.center[1] - a.center[1]
  if kind == "left":
    return dx >= 0.05
  if kind == "right":
    return dx <= -0.05
  if kind == "above":  # y points down
    return dy >= 0.05
  if kind == "below":
    return dy <= -0.05
  if kind == "near":
    return math.hypot(dx, dy) - a.radius - b.radius <= 0.05
  in_front = i > j if kind == "front" else i < j  # objects are listed back to front
  return in_front and pixel_overlap(a, b)


def position_is_true(obj, phrase) -> bool:
  x, y = obj.center
  vertical = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else "middle"
  horizontal = "left" if x < 1 / 3 else "right" if x > 2 / 3 else "middle"
  expected = {"in the top left corner": ("top", "left"), "in the top right corner": ("top", "right"),
              "in the bottom left corner": ("bottom", "left"),
              "in the bottom right corner": ("bottom", "right"), "at the top": ("top", "middle"),
              "at the bottom": ("bottom", "middle"), "on the left": ("middle", "left"),
              "on the right": ("middle", "right"), "in the centre": ("middle", "middle"),
              "in the middle": ("middle", "middle")}[phrase]
  return (vertical, horizontal) == expected


def subject_before(caption, mentions, start):
  """The mention right before position `start` of `caption` (only `is` may stand between)."""
  before = [m for m in mentions if m.end() <= start]
  if before and caption[before[-1].end():start].strip() in ("", "is"):
    return before[-1]
  return None


@pytest.fixture(scope="module")
def captioned_scenes():
  seed = 3
  return [(scene, sc.scene_captions(scene, seed))
          for scene in (scenes.make_scene(seed, i) for i in range(160))]


def test_five_distinct_deterministic_captions(captioned_scenes):
  kinds_of_scene = set()
  for scene, captions in captioned_scenes:
    assert len(captions) == 5 and len(set(captions)) == 5, captions
    kinds_of_scene.add(min(len(sc.visible_objects(scene)), 2))
  assert kinds_of_scene == {0, 1, 2}  # empty, single-object and multi-object scenes were all covered
  scene = captioned_scenes[7][0]
  assert sc.scene_captions(scene, 3) == captioned_scenes[7][1]
  assert sc.scene_captions(scene, 4) != captioned_scenes[7][1]  # another seed, other captions
  all_captions = [c for _, captions in captioned_scenes for c in captions]
  assert len(set(all_captions)) > 0.7 * len(all_captions)  # mostly scene-specific, some shared


def test_statements_are_true_of_the_scene(captioned_scenes):
  checked = {"relation": set(), "position": 0, "mention": 0, "count": 0}
  for scene, captions in captioned_scenes:
    visible = sc.visible_objects(scene)
    for caption in captions:
      mentions = list(MENTION.finditer(caption))
      if re.search(r"\b(no objects|empty|nothing but|without any shapes)\b", caption):
        assert not visible, caption
      if re.search(r"\b(a single|only one|just one)\b", caption):
        assert len(visible) == 1, caption
      for m in mentions:
        matching = [i for i in visible if object_matches(scene.objects[i], m)]
        assert matching, (caption, m.group(0))
        if m["count"]:
          n = len([i for i in visible if object_matches(scene.objects[i], {**m.groupdict(), "size": None})])
          assert (n >= 6) if m["count"] == "many" else n == COUNT_OF[m["count"]], (caption, m.group(0))
        checked["mention"] += 1
      for t in TOTAL.finditer(caption):
        assert (len(visible) >= 6) if t[1] == "many" else len(visible) == COUNT_OF[t[1]], caption
        checked["count"] += 1
      for r in RELATION.finditer(caption):
        subject = subject_before(caption, mentions, r.start())
        after = [m for m in mentions if m.start() >= r.end()]
        assert subject is not None and after and caption[r.end():after[0].start()].strip() == "a", caption
        kind = RELATION_KIND[r[1]]
        assert any(relation_is_true(scene, i, j, kind)
                   for i in visible if object_matches(scene.objects[i], subject)
                   for j in visible if j != i and object_matches(scene.objects[j], after[0])), (caption, r[1])
        checked["relation"].add(kind)
      for p in POSITION.finditer(caption):
        subject = subject_before(caption, mentions, p.start())
        assert subject is not None, caption
        assert any(position_is_true(scene.objects[i], p[1]) for i in visible
                   if object_matches(scene.objects[i], subject)), (caption, p[1])
        checked["position"] += 1
  assert checked["relation"] == set(sc.RELATION_PHRASES), checked  # every relation was said and checked
  assert checked["position"] > 50 and checked["mention"] > 300 and checked["count"] > 5, checked


def test_background_words_are_true(captioned_scenes):
  for scene, captions in captioned_scenes:
    _, saturation, value = scene.background_hsv
    for caption in captions:
      if " dark " in f" {caption} ":
        assert value < 0.5
      if " bright " in f" {caption} ":
        assert value > 0.72
      if re.search(r"\bplain\b", caption):
        assert scene.clutter < 0.25
      if re.search(r"\bcluttered\b", caption):
        assert scene.clutter > 0.5
      if re.search(r"\bgrey background\b", caption):
        assert saturation < 0.2


def test_every_word_of_new_captions_is_in_the_training_vocabulary():
  vocabulary = sc.build_scene_vocabulary(300, seed=0)
  assert vocabulary.words[:4] == ("<pad>", "<unk>", "<bos>", "<eos>")
  texts = [t for i in range(300, 400) for t in sc.scene_captions(scenes.make_scene(0, i), 0)]
  ids, lengths = vocabulary.encode(texts, max_len=sc.DEFAULT_MAX_LEN)
  assert not (ids == sc.UNK_ID).any()
  for text, row, length in zip(texts, ids, lengths):
    words = sc.tokenize(text)
    assert length == len(words) + 2 and row[0] == sc.BOS_ID and row[length - 1] == sc.EOS_ID
    assert (row[length:] == sc.PAD_ID).all()
    assert vocabulary.decode(row) == " ".join(words)


def test_vocabulary_counts_truncation_and_round_trip(tmp_path):
  vocabulary = sc.Vocabulary.from_texts(["b a c", "a b", "a d"], min_count=2)
  assert vocabulary.words == ("<pad>", "<unk>", "<bos>", "<eos>", "a", "b")  # by count, rare words out
  ids, lengths = vocabulary.encode(["a b c d a b", ""], max_len=5)
  np.testing.assert_array_equal(ids, [[2, 4, 5, 1, 3], [2, 3, 0, 0, 0]])  # cut, still ends with <eos>
  np.testing.assert_array_equal(lengths, [5, 2])
  ids, lengths = vocabulary.encode(["b a"], max_len=3, add_boundaries=False)
  np.testing.assert_array_equal(ids, [[5, 4, 0]])
  vocabulary.save(tmp_path / "v.json")
  assert sc.Vocabulary.load(tmp_path / "v.json") == vocabulary
  assert len(sc.Vocabulary.from_texts(["a b c d e"], max_size=6)) == 6
  with pytest.raises(ValueError, match="max_len"):
    vocabulary.encode(["a"], max_len=2)
  with pytest.raises(ValueError, match="starts with"):
    sc.Vocabulary(["a", "b"])


def test_scene_captions_source_batches():
  splits = sc.make_scene_captions_splits(12, 2, 4, seed=1, image_size=32, max_len=24)
  test = splits["test"]
  assert test.vocabulary is splits["train"].vocabulary and test.scenes.offset == 14
  batch = test[np.array([3, 0])]
  assert batch["image"].shape == (2, 32, 32, 3) and batch["image"].dtype == np.float32
  assert batch["captions"].shape == (2, 5, 24) and batch["captions"].dtype == np.int32
  assert batch["caption_lengths"].shape == (2, 5) and batch["caption_lengths"].dtype == np.int32
  np.testing.assert_array_equal(batch["index"], [3, 0])
  single = test[3]
  np.testing.assert_array_equal(single["captions"], batch["captions"][0])
  np.testing.assert_array_equal(single["image"], batch["image"][0])
  plain = scenes.ScenesSource(4, seed=1, offset=14, image_size=32)
  np.testing.assert_array_equal(single["image"], plain[3]["image"])
  texts = test.texts(3)
  unk_free = [" ".join(w if w in test.vocabulary else "<unk>" for w in sc.tokenize(t)) for t in texts]
  assert [test.vocabulary.decode(row) for row in single["captions"]] == unk_free


# ----------------------------------------------------------------------------------------------------------
# COCO captions on TFDS mock data.


def write_coco_captions_metadata(root):
  """The metadata files of a prepared `coco_captions/2014:1.1.0` (its features as TFDS defines them)."""
  from tensorflow_datasets.core import dataset_info
  from tensorflow_datasets.core import file_adapters
  from tensorflow_datasets.core import splits as splits_lib
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(encoding_format="jpeg"),
      "image/filename": tfds.features.Text(),
      "image/id": np.int64,
      "objects": tfds.features.Sequence({
          "id": np.int64, "area": np.int64, "bbox": tfds.features.BBoxFeature(),
          "label": tfds.features.ClassLabel(num_classes=80), "is_crowd": np.bool_}),
      "captions": tfds.features.Sequence({"text": np.str_, "id": np.int64}),
  })
  path = root / "coco_captions" / "2014" / "1.1.0"
  path.mkdir(parents=True)
  identity = dataset_info.DatasetIdentity(name="coco_captions", version="1.1.0", config_name="2014",
                                          data_dir=str(path), module_name="coco_captions")
  split_infos = [splits_lib.SplitInfo(name=s, shard_lengths=[6], num_bytes=0, filename_template=None)
                 for s in ("train", "val", "test", "restval")]
  info = dataset_info.DatasetInfo(builder=identity, features=features,
                                  split_dict=splits_lib.SplitDict(split_infos))
  info.set_file_format(file_adapters.FileFormat.ARRAY_RECORD)
  info.write_to_directory(str(path))
  return str(root)


def test_coco_captions_on_mock_data(tmp_path):
  metadata_dir = write_coco_captions_metadata(tmp_path)
  with tfds.testing.mock_data(num_examples=6, data_dir=metadata_dir,
                              policy=tfds.testing.MockPolicy.USE_FILES):
    vocabulary = coco_captions.build_coco_vocabulary(min_count=1, skip_image_decoding=False,
                                                     cache_path=str(tmp_path / "vocabulary.json"))
    assert (tmp_path / "vocabulary.json").exists() and len(vocabulary) > 4
    splits = coco_captions.make_coco_captions_splits(vocabulary=vocabulary, image_size=24, max_len=8)
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [12, 6, 6]  # train = train + restval
    train = splits["train"]
    batch = train[np.array([0, 7, 11])]
    assert batch["image"].shape == (3, 24, 24, 3) and batch["image"].dtype == np.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["captions"].shape == (3, 5, 8) and batch["caption_lengths"].shape == (3, 5)
    restval = coco_captions.open_coco_split("restval")
    raw = coco_captions.caption_texts(restval[1])  # example 7 = restval record 1
    assert len(raw) >= 5  # mock sequences have random lengths (>= 5 here)
    for k in range(5):
      words = sc.tokenize(raw[k])[:6]
      row = batch["captions"][1, k]
      assert batch["caption_lengths"][1, k] == len(words) + 2
      assert vocabulary.decode(row) == " ".join(words)  # every training word is in the vocabulary
    assert train.texts(7) == raw[:5]


def test_five_captions_pads_and_cuts():
  assert coco_captions.five_captions(list("abcdefg")) == list("abcde")
  assert coco_captions.five_captions(["x", "y"]) == ["x", "y", "x", "y", "x"]
  assert coco_captions.five_captions([]) == [""] * 5


def test_missing_coco_error_says_how_to_prepare(tmp_path):
  with pytest.raises(DataNotFoundError) as info:
    coco_captions.make_coco_captions_splits(str(tmp_path / "tfds"))
  message = str(info.value)
  assert "tfds build coco_captions/2014 --file_format=array_record" in message
  assert ".[data]" in message and str(tmp_path / "tfds") in message and "config.data.data_dir" in message
  with pytest.raises(ValueError, match="unknown coco_captions split"):
    coco_captions.open_coco_split("validation")


# ----------------------------------------------------------------------------------------------------------
# Cross-modal Recall@K with folds.


def brute_force_recall(images, captions, per_image, ks, num_folds):
  """The 5-fold protocol written out: rank every gallery item for every query, fold by fold."""
  n = len(images)
  sizes = [n // num_folds + (1 if f < n % num_folds else 0) for f in range(num_folds)]
  results = []
  start = 0
  for size in sizes:
    fold_images = list(range(start, start + size))
    fold_captions = list(range(start * per_image, (start + size) * per_image))
    caption_ranks, image_ranks = [], []
    for i in fold_images:
      sims = [float(np.dot(images[i], captions[c])) for c in fold_captions]
      order = sorted(range(len(fold_captions)), key=lambda t: -sims[t])
      caption_ranks.append(min(order.index(t) for t, c in enumerate(fold_captions) if c // per_image == i))
    for c in fold_captions:
      sims = [float(np.dot(images[i], captions[c])) for i in fold_images]
      order = sorted(range(size), key=lambda t: -sims[t])
      image_ranks.append(order.index(fold_images.index(c // per_image)))
    fold = {}
    for name, ranks in (("caption_retrieval", caption_ranks), ("image_retrieval", image_ranks)):
      for k in ks:
        fold[f"{name}/R@{k}"] = sum(r < k for r in ranks) / len(ranks)
      fold[f"{name}/median_rank"] = math.floor(np.median(ranks)) + 1
    results.append(fold)
    start += size
  return {key: sum(f[key] for f in results) / len(results) for key in results[0]}


@pytest.mark.parametrize("num_images,num_folds", [(30, 3), (23, 5), (12, 1)])
def test_cross_modal_recall_matches_brute_force(num_images, num_folds):
  rng = np.random.default_rng(num_images)
  images = rng.normal(size=(num_images, 6))
  # Captions near their image, so that the recalls are neither 0 nor 1.
  captions = np.repeat(images, 5, axis=0) + 1.5 * rng.normal(size=(num_images * 5, 6))
  result = metrics.cross_modal_recall(images, captions, ks=(1, 2, 4), num_folds=num_folds)
  expected = brute_force_recall(images, captions, 5, (1, 2, 4), num_folds)
  assert result.keys() == expected.keys()
  for key in expected:
    assert result[key] == pytest.approx(expected[key], abs=1e-12), key
  assert 0 < result["caption_retrieval/R@1"] < 1 and result["image_retrieval/median_rank"] >= 1
  nested = metrics.cross_modal_recall(images, captions.reshape(num_images, 5, 6), ks=(1, 2, 4),
                                      num_folds=num_folds)
  assert nested == result


def test_cross_modal_recall_checks_its_inputs():
  images, captions = np.eye(4), np.repeat(np.eye(4), 5, axis=0)
  with pytest.raises(ValueError, match="smallest fold"):
    metrics.cross_modal_recall(images, captions, ks=(1, 5), num_folds=2)  # a fold has 2 images
  with pytest.raises(ValueError, match="caption_embeddings"):
    metrics.cross_modal_recall(images, captions[:-1], ks=(1,), num_folds=1)
  with pytest.raises(ValueError, match="num_folds"):
    metrics.cross_modal_recall(images, captions, ks=(1,), num_folds=5)


# ----------------------------------------------------------------------------------------------------------
# WILDCAT.


def random_variables(model, inputs, seed=0):
  """Variables of `model`'s shapes drawn from N(0, 0.5^2): `init`'s orthogonal GRU kernels compile slowly."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(model.init, jax.random.key(0), inputs)
  return jax.tree_util.tree_map(lambda s: (0.5 * rng.normal(size=s.shape)).astype(np.float32), shapes)


def numpy_wildcat(maps, num_maps, kmax, kmin, alpha):
  """Class-wise mean, then per class: mean of the kmax largest + alpha * mean of the kmin smallest."""
  b, h, w, cm = maps.shape
  n = h * w
  out = np.zeros((b, cm // num_maps))
  for i in range(b):
    for c in range(cm // num_maps):
      values = sorted(maps[i, :, :, c * num_maps:(c + 1) * num_maps].mean(axis=-1).ravel(), reverse=True)
      k_top = kmax if kmax >= 1 else max(1, round(kmax * n))
      k_bottom = kmin if kmin >= 1 else (max(1, round(kmin * n)) if kmin > 0 else 0)
      out[i, c] = np.mean(values[:k_top])
      if k_bottom and alpha:
        out[i, c] += alpha * np.mean(values[n - k_bottom:])
  return out


@pytest.mark.parametrize("kmax,kmin,alpha", [(0.2, None, 0.7), (3, 2, 0.5), (1, 0, 1.0), (0.5, 0.1, -0.3)])
def test_wildcat_pooling_matches_numpy(kmax, kmin, alpha):
  maps = np.random.default_rng(0).normal(size=(2, 4, 5, 3 * 4)).astype(np.float32)
  result = wildcat.wildcat_pooling(wildcat.class_wise_pooling(jnp.asarray(maps), 4), kmax, kmin, alpha)
  expected = numpy_wildcat(maps, 4, kmax, kmax if kmin is None else kmin, alpha)
  np.testing.assert_allclose(np.asarray(result), expected, rtol=1e-5, atol=1e-6)
  halved = wildcat.wildcat_pooling(wildcat.class_wise_pooling(jnp.asarray(maps), 4), kmax, kmin, alpha,
                                   pytorch_scaling=True)
  bottom_on = (kmin is None or kmin > 0) and alpha != 0
  np.testing.assert_allclose(np.asarray(halved), expected / (2 if bottom_on else 1), rtol=1e-5, atol=1e-6)


def test_wildcat_head_matches_numpy_and_has_gradients():
  features = np.random.default_rng(1).normal(size=(2, 3, 3, 5)).astype(np.float32)
  head = wildcat.WildcatHead(num_classes=4, num_maps=2, kmax=2, kmin=1, alpha=0.7)
  variables = random_variables(head, features)
  kernel = np.asarray(variables["params"]["transfer"]["kernel"])[0, 0]
  bias = np.asarray(variables["params"]["transfer"]["bias"])
  expected = numpy_wildcat(features @ kernel + bias, 2, 2, 1, 0.7)
  np.testing.assert_allclose(np.asarray(jax.jit(head.apply)(variables, features)), expected, rtol=1e-5,
                             atol=1e-5)
  grads = jax.jit(jax.grad(lambda v: head.apply(v, features).sum()))(variables)
  assert all(np.isfinite(g).all() and np.abs(g).sum() > 0 for g in jax.tree_util.tree_leaves(grads))


def test_registered_models_output_shapes():
  images = jax.ShapeDtypeStruct((2, 128, 128, 3), jnp.float32)
  model = build_model("wildcat", backbone="resnet18", backbone_kwargs={"width": 8}, num_classes=20, maps=3,
                      return_maps=True)
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  out = jax.eval_shape(model.apply, variables, images)
  assert out["scores"].shape == (2, 20) and out["maps"].shape == (2, 4, 4, 20)
  assert variables["params"]["head"]["transfer"]["kernel"].shape == (1, 1, 64, 60)
  with pytest.raises(ValueError, match="spatial"):
    build_model("wildcat", backbone="mobilenet")
  embedder = build_model("joint_embedding", vocab_size=50, backbone="resnet18", backbone_kwargs={"width": 8},
                         embed_dim=16, word_dim=8, hidden_dim=12)
  inputs = {"image": images, "captions": jax.ShapeDtypeStruct((2, 5, 9), jnp.int32),
            "caption_lengths": jax.ShapeDtypeStruct((2, 5), jnp.int32)}
  variables = jax.eval_shape(embedder.init, jax.random.key(0), inputs)
  out = jax.eval_shape(embedder.apply, variables, inputs)
  assert out["image_embedding"].shape == (2, 16) and out["caption_embedding"].shape == (2, 5, 16)


class MeanColour(nn.Module):
  """A stand-in image encoder (the ResNet path is covered above): mean colour -> [B, 3]."""

  @nn.compact
  def __call__(self, images, *, train=False):
    del train
    return images.mean(axis=(1, 2))


def test_joint_embedding_unit_vectors_and_padding():
  model = joint_embedding.JointEmbedding(MeanColour(), vocab_size=20, embed_dim=8, word_dim=6, hidden_dim=7)
  rng = np.random.default_rng(2)
  tokens = rng.integers(4, 20, size=(3, 2, 6)).astype(np.int32)
  lengths = np.array([[6, 3], [1, 4], [2, 0]], np.int32)
  inputs = {"image": rng.uniform(size=(3, 8, 8, 3)).astype(np.float32), "captions": tokens,
            "caption_lengths": lengths}
  variables = random_variables(model, inputs)
  apply = jax.jit(model.apply)
  out = apply(variables, inputs)
  np.testing.assert_allclose(np.linalg.norm(out["image_embedding"], axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(out["caption_embedding"], axis=-1), 1.0, rtol=1e-5)
  # Tokens after a caption's length do not change its embedding; a length of 0 reads one token.
  repadded = np.where(np.arange(6) < np.maximum(lengths, 1)[..., None], tokens, 0)
  out2 = apply(variables, {**inputs, "captions": repadded})
  np.testing.assert_allclose(out2["caption_embedding"], out["caption_embedding"], atol=1e-6)
  changed = tokens.copy()
  changed[0, 1, 0] = 4 if tokens[0, 1, 0] != 4 else 5
  out3 = apply(variables, {**inputs, "captions": changed})
  assert not np.allclose(out3["caption_embedding"][0, 1], out["caption_embedding"][0, 1])
