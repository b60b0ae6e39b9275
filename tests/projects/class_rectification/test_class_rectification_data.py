"""Data and model of the Class Rectification experiment: scene attributes, CelebA (TFDS mock), user CSVs,
and the DeepID2 attribute network. References are independent loops (finer rasterisation, Counter, PIL)."""

from __future__ import annotations

import collections
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from ranking_jax.projects.class_rectification import attribute_csv
from ranking_jax.projects.class_rectification import celeba
from ranking_jax.projects.class_rectification import scene_attributes as sa
from ranking_jax.data import scenes
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.losses import rectification
from ranking_jax.models import build_model
from ranking_jax.models import count_params
from ranking_jax.projects.class_rectification import deepid2

MULTI = sa.MULTI_VALUED_ATTRIBUTE_NAMES
# The default training split is scenes 0-3999 of seed 0; checking all of it takes ~10 s, so by default the
# statistics are checked on its first 1 200 scenes and the full split only with RANKING_JAX_FULL_DATA_TESTS=1.
FULL = os.environ.get("RANKING_JAX_FULL_DATA_TESTS", "") == "1"


# ----------------------------------------------------------------------------------------- scene attributes


@pytest.fixture(scope="module")
def train_labels():
  return sa.attribute_labels(scenes.ScenesSource(4000 if FULL else 1200, seed=0))


def test_attribute_metadata():
  assert sa.NUM_ATTRIBUTES == 28 and len(set(sa.ATTRIBUTE_NAMES)) == 28
  assert sa.NUM_VALUES[:24] == (2,) * 24 and sa.BINARY_ATTRIBUTE_NAMES == scenes.ATTRIBUTE_NAMES
  multi = [spec.num_values for spec in sa.MULTI_VALUED_ATTRIBUTES]
  assert min(multi) >= 6 and max(multi) <= 50 and len(multi) >= 4
  for spec in sa.ATTRIBUTES:
    assert len(spec.value_names) == spec.num_values and spec.definition
  assert [s.name for s in sa.select_attributes("visible_count,red")] == ["visible_count", "red"]
  assert sa.select_attributes("binary") == sa.BINARY_ATTRIBUTES
  with pytest.raises(ValueError, match="unknown scene attributes"):
    sa.select_attributes(["red", "purple"])


def _fine_masks(scene, cells_per_side=160):
  """In-image masks and whole areas on a grid finer than (and independent of) the scenes' analysis grid."""
  centres = -0.5 + (np.arange(2 * cells_per_side) + 0.5) / cells_per_side
  y, x = np.meshgrid(centres, centres, indexing="ij")
  inside = (x >= 0) & (x <= 1) & (y >= 0) & (y <= 1)
  masks = [scenes._shape_mask(o.shape, *scenes._object_coordinates(o, x, y)) for o in scene.objects]
  return [m & inside for m in masks], [m.sum() for m in masks]


def test_multi_valued_definitions_vs_independent_loops():
  checked_occluders = 0
  for index in range(300):
    if checked_occluders >= 6 and index >= 40:
      break
    scene = scenes.make_scene(7, index)
    got = dict(zip(MULTI, sa.multi_valued_values(scene)))
    visible = [k for k, o in enumerate(scene.objects) if o.visible_fraction >= 0.15]
    assert got["visible_count"] == len(visible)
    assert got["tiny_count"] == min(5, sum(scene.objects[k].visible_area < 0.008 for k in visible))
    if len(visible) < 2:
      assert got["smallest_class_stripes"] == 0
    else:
      areas = [scene.objects[k].visible_area for k in visible]
      smallest = scene.objects[visible[int(np.argmin(areas))]]
      assert got["smallest_class_stripes"] == 1 + 2 * smallest.class_id + smallest.striped
    if len(visible) < 2:
      assert got["occluder_class"] == 0
      continue
    # Occluder: overlap of each visible pair (i behind j) on a 160-cells-per-side grid; skip borderline cases.
    masks, areas = _fine_masks(scene)
    fractions = {(i, j): (masks[i] & masks[j]).sum() / areas[i] for i in visible for j in visible if i < j}
    if any(abs(f - 0.25) < 0.03 for f in fractions.values()):
      continue
    occluders = [j for (i, j), f in fractions.items() if f >= 0.25]
    expected = 1 + scene.objects[max(occluders)].class_id if occluders else 0
    assert got["occluder_class"] == expected, index
    checked_occluders += bool(occluders)
  assert checked_occluders >= 5  # the loop did test some occluders


def test_binary_attributes_match_the_scenes_source():
  source = scenes.ScenesSource(12, seed=3, image_size=16)
  expected = source.labels(np.arange(12))["attributes"]
  got = sa.attribute_labels(source, attributes="binary")
  np.testing.assert_array_equal(got, expected.astype(np.int32))


def test_statistics_of_the_training_split(train_labels):
  n = len(train_labels)
  counts = sa.class_counts(train_labels, sa.NUM_VALUES)
  binary_ratios = sa.imbalance_ratios(train_labels[:, :24], (2,) * 24)
  assert binary_ratios.min() < 1.5 and 25 < binary_ratios.max() < 60  # CelebA-like: 1:1 to about 1:40
  for spec, c in zip(sa.MULTI_VALUED_ATTRIBUTES, counts[24:]):
    assert c.sum() == n
    assert c.max() >= 0.4 * n, spec.name  # one dominant value ...
    present = c[c > 0]
    assert present.max() / present.min() >= (500 if FULL else 50), spec.name  # ... and a long tail
    if FULL:
      assert c.min() >= 1 and c.max() / c.min() >= 500, spec.name
      assert c.max() / c.min() == pytest.approx(sa.MEASURED_IMBALANCE[spec.name], abs=0.05)
  for name in ("tiny_count", "visible_count"):  # counts: power-law decay past the mode
    c = counts[sa.ATTRIBUTE_NAMES.index(name)]
    mode = int(np.argmax(c))
    assert np.all(np.diff(c[mode:]) <= 0), name


def test_class_counts_and_imbalance_vs_counter():
  rng = np.random.default_rng(0)
  num_values = (2, 5, 7)
  labels = np.stack([rng.integers(-1, n, size=200) for n in num_values], axis=1)
  labels[:, 2] = np.where(labels[:, 2] == 6, 5, labels[:, 2])  # value 6 never occurs
  for j, (n, counts) in enumerate(zip(num_values, sa.class_counts(labels, num_values))):
    counter = collections.Counter(v for v in labels[:, j].tolist() if v >= 0)
    assert counts.tolist() == [counter[k] for k in range(n)]
  ratios = sa.imbalance_ratios(labels, num_values)
  for j in range(2):
    counter = collections.Counter(v for v in labels[:, j].tolist() if v >= 0)
    assert ratios[j] == pytest.approx(max(counter.values()) / min(counter.values()))
  assert ratios[2] == math.inf
  assert np.isnan(sa.imbalance_ratios(np.full((3, 1), -1), (2,)))[0]
  with pytest.raises(ValueError, match="labels"):
    sa.class_counts(labels, (2, 5))
  table = sa.imbalance_table(labels[:, :2], sa.select_attributes(["red", "tiny_count"]))
  assert table.splitlines()[2].startswith("| red |")  # sorted by imbalance


def test_source_render_and_cache(tmp_path, monkeypatch):
  scene_source = scenes.ScenesSource(6, seed=2, offset=5, image_size=16)
  source = sa.SceneAttributesSource(scene_source, attributes=["visible_count", "red", "occluder_class"])
  assert source.num_values == (9, 2, 21) and len(source) == 6
  batch = source[np.array([4, 1])]
  assert batch["image"].dtype == np.float32 and batch["attributes"].dtype == np.int32
  np.testing.assert_array_equal(batch["image"], scene_source[np.array([4, 1])]["image"])
  expected = sa.attribute_labels(scene_source, [4, 1], attributes=source.names)
  np.testing.assert_array_equal(batch["attributes"], expected)
  np.testing.assert_array_equal(source.labels()[[4, 1]], expected)
  assert source[2]["attributes"].shape == (3,)
  expected_all = source.labels()
  rendered = sa.render_attribute_split(source, cache_dir=str(tmp_path))
  assert rendered.arrays["image"].dtype == np.uint8 and rendered.num_values == source.num_values
  assert rendered.names == source.names
  out = rendered[np.array([4, 1])]
  np.testing.assert_allclose(out["image"], batch["image"], atol=0.5 / 255 + 1e-6)
  np.testing.assert_array_equal(out["attributes"], expected)
  assert len(list(tmp_path.glob("scene_attributes_*.npz"))) == 1
  monkeypatch.setattr(sa.SceneAttributesSource, "example", lambda *a: pytest.fail("re-rendered"))
  cached = sa.render_attribute_split(source, cache_dir=str(tmp_path))
  np.testing.assert_array_equal(cached.arrays["image"], rendered.arrays["image"])
  np.testing.assert_array_equal(cached.labels(), expected_all)
  splits = sa.make_scene_attribute_splits(3, 2, 2, image_size=16, render=False, attributes="multi_valued")
  assert [splits[k].scenes.offset for k in ("train", "validation", "test")] == [0, 3, 5]


# ------------------------------------------------------------------------------------------------- CelebA

tfds = pytest.importorskip("tensorflow_datasets")


def celeba_rule(i, k):
  return bool((i + 2 * k) % 5 < 2)


def fake_celeba(num_examples):
  """An `as_data_source_fn` serving CelebA-like records with known attributes."""

  def as_data_source(builder, split, **kwargs):
    del builder, kwargs
    rng = np.random.default_rng(len(split))
    return [{"image": rng.integers(0, 256, size=(218, 178, 3), dtype=np.uint8),
             "attributes": {name: celeba_rule(i, k) for k, name in enumerate(celeba.ATTRIBUTE_NAMES)},
             "landmarks": {}, "identity": {"Identity_No": i}}
            for i in range(num_examples)]

  return as_data_source


def test_celeba_partition_and_names():
  assert celeba.SPLIT_SIZES == {"train": 162770, "validation": 19867, "test": 19962}
  assert sum(celeba.SPLIT_SIZES.values()) == 202599
  assert len(celeba.ATTRIBUTE_NAMES) == 40 and list(celeba.ATTRIBUTE_NAMES) == sorted(celeba.ATTRIBUTE_NAMES)


def test_celeba_on_default_mock_data():
  with tfds.testing.mock_data(num_examples=3):
    splits = celeba.make_celeba_splits(image_size=24)
    batch = splits["validation"][np.arange(3)]
  assert set(splits) == {"train", "validation", "test"}
  assert batch["image"].shape == (3, 24, 24, 3) and batch["image"].dtype == np.float32
  assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
  assert batch["attributes"].shape == (3, 40) and set(np.unique(batch["attributes"])) <= {0, 1}


def test_celeba_attributes_order_and_crop_vs_pil():
  with tfds.testing.mock_data(as_data_source_fn=fake_celeba(5)):
    source = celeba.CelebASource("test", image_size=(20, 16), attributes=["Young", "5_o_Clock_Shadow"])
    raw = tfds.data_source("celeb_a", split="test")[3]
    example = source[3]
    full = celeba.CelebASource("train", image_size=(55, 47), crop=None)[np.array([1, 2])]
  assert example["attributes"].tolist() == [1, 0]  # Young (k = 39) and 5_o_Clock_Shadow (k = 0) of image 3
  assert example["attributes"].tolist() == [celeba_rule(3, 39), celeba_rule(3, 0)]
  np.testing.assert_array_equal(full["attributes"][1], [celeba_rule(2, k) for k in range(40)])
  assert full["image"].shape == (2, 55, 47, 3)
  # Reference: crop rows 20-197 (the centre square) by slicing, resize with PIL directly.
  square = Image.fromarray(raw["image"][20:198, 0:178])
  expected = np.asarray(square.resize((16, 20), Image.BILINEAR), np.float32) / 255
  np.testing.assert_allclose(example["image"], expected, atol=1e-6)
  with pytest.raises(ValueError, match="config.data.attributes"):
    with tfds.testing.mock_data(as_data_source_fn=fake_celeba(2)):
      celeba.CelebASource("train", attributes=["Purple_Hair"])


def test_celeba_missing_dataset_error(tmp_path):
  data_dir = str(tmp_path / "tfds")
  with pytest.raises(DataNotFoundError) as info:
    celeba.CelebASource("train", data_dir=data_dir)
  message = str(info.value)
  for name, _, _ in celeba.MANUAL_FILES:
    assert name in message
  assert os.path.join(data_dir, "downloads", "manual") in message
  assert 'pip install -e ".[data]"' in message and "--config.data.data_dir=" in message
  assert "tfds build celeb_a --file_format=array_record" in message
  with pytest.raises(ValueError, match="split"):
    celeba.open_split("val")


def test_imports_do_not_load_tensorflow():
  code = ("import sys, ranking_jax.projects.class_rectification.celeba, ranking_jax.projects.class_rectification.attribute_csv, "
          "ranking_jax.projects.class_rectification.scene_attributes; "
          "print(any(m.split('.')[0] in ('tensorflow', 'tensorflow_datasets') for m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------- user CSVs


@pytest.fixture()
def csv_fixture(tmp_path):
  image_dir = tmp_path / "images"
  (image_dir / "shop").mkdir(parents=True)
  colours = {"shop/a.jpg": (200, 10, 10), "shop/b.png": (10, 200, 10), "c.png": (10, 10, 200)}
  for name, colour in colours.items():
    Image.fromarray(np.full((12, 18, 3), colour, np.uint8)).save(image_dir / name, quality=100)
  Image.fromarray(np.full((9, 9), 77, np.uint8)).save(image_dir / "grey.png")  # grey: converted to RGB
  (tmp_path / "train.csv").write_text("image,category,colour,collar\nshop/a.jpg,1,54,0\nshop/b.png,0,,2\n"
                                      "grey.png,1,3,-1\n")
  (tmp_path / "test.csv").write_text("image, category ,colour,collar\nc.png,0,7,1\n")
  return tmp_path, image_dir, colours


def test_csv_splits_labels_and_images(csv_fixture):
  root, image_dir, colours = csv_fixture
  splits = attribute_csv.make_attribute_csv_splits(image_dir=image_dir, train_csv=root / "train.csv",
                                                   test_csv=root / "test.csv", image_size=(6, 8))
  assert set(splits) == {"train", "test"}
  train, test = splits["train"], splits["test"]
  assert train.names == ("category", "colour", "collar") and train.num_values == test.num_values == (2, 55, 3)
  batch = train[np.arange(3)]
  assert batch["attributes"].tolist() == [[1, 54, 0], [0, -1, 2], [1, 3, -1]]
  assert batch["image"].shape == (3, 6, 8, 3) and batch["attributes"].dtype == np.int32
  np.testing.assert_allclose(batch["image"][1], np.broadcast_to(np.array(colours["shop/b.png"]) / 255,
                                                                (6, 8, 3)), atol=1e-6)
  np.testing.assert_allclose(batch["image"][2], 77 / 255, atol=1e-6)
  np.testing.assert_allclose(batch["image"][0].mean(axis=(0, 1)), np.array(colours["shop/a.jpg"]) / 255,
                             atol=0.03)  # JPEG
  assert test[0]["attributes"].tolist() == [0, 7, 1]
  chosen = attribute_csv.make_attribute_csv_splits(image_dir=image_dir, train_csv=root / "train.csv",
                                                   test_csv=root / "test.csv",
                                                   attributes=["collar", "category"], num_values=(4, 2))
  assert chosen["train"].labels().tolist() == [[0, 1], [2, 0], [-1, 1]]
  assert chosen["test"].num_values == (4, 2)


def test_csv_errors(csv_fixture):
  root, image_dir, _ = csv_fixture
  with pytest.raises(DataNotFoundError, match="config.data.test_csv") as info:
    attribute_csv.make_attribute_csv_splits(image_dir=image_dir, train_csv=root / "train.csv",
                                            test_csv=root / "nope.csv")
  assert "nope.csv" in str(info.value) and "image,<attribute 1>" in str(info.value)
  with pytest.raises(DataNotFoundError, match="config.data.image_dir"):
    attribute_csv.AttributeCSVSource(root / "train.csv", root / "no_images")
  with pytest.raises(ValueError, match=r"\['size'\].*config.data.attributes"):
    attribute_csv.AttributeCSVSource(root / "train.csv", image_dir, attributes=["colour", "size"])
  with pytest.raises(ValueError, match="num_values"):
    attribute_csv.AttributeCSVSource(root / "train.csv", image_dir, num_values=(2, 10, 3))  # 54 >= 10
  (root / "bad.csv").write_text("path,colour\na.jpg,1\n")
  with pytest.raises(ValueError, match="header"):
    attribute_csv.read_attribute_csv(root / "bad.csv")
  (root / "bad.csv").write_text("image,colour\nshop/a.jpg,red\n")
  with pytest.raises(ValueError, match=r"bad.csv:2: column 'colour' holds 'red'"):
    attribute_csv.read_attribute_csv(root / "bad.csv")
  (root / "other.csv").write_text("image,category\nc.png,1\n")
  with pytest.raises(ValueError, match="share their columns"):
    attribute_csv.make_attribute_csv_splits(image_dir=image_dir, train_csv=root / "train.csv",
                                            test_csv=root / "other.csv")
  (root / "lost.csv").write_text("image,category\nc.png,1\nshop/lost.jpg,0\n")
  source = attribute_csv.AttributeCSVSource(root / "lost.csv", image_dir)
  with pytest.raises(DataNotFoundError, match=r"lost.jpg.*row 3"):
    source[1]


# ------------------------------------------------------------------------------------------------- model


def expected_param_count(num_values, conv, fc1, dim, local, bn, size=64):
  """Layer arithmetic of the DeepID2 trunk (VALID convs, 2x2 pools) + FC1, per-attribute FC2, classifiers."""
  side, channels, total = size, 3, 0
  for layer, (features, kernel) in enumerate(zip(conv, (4, 3, 3, 2)), start=1):
    side -= kernel - 1
    positions = side * side if (layer == 4 and local) else 1
    total += positions * (kernel * kernel * channels * features + features) + (2 * features if bn else 0)
    channels = features
    if layer == 3:
      pooled3 = (side // 2) ** 2 * features
    if layer < 4:
      side //= 2
  fc1_inputs = pooled3 + side * side * conv[3]
  total += fc1_inputs * fc1 + fc1
  total += len(num_values) * (fc1 * dim + dim) + sum(n * (dim + 1) for n in num_values)
  return total


@pytest.mark.parametrize("size", ["small", "paper"])
def test_model_parameter_counts(size):
  options = deepid2.PRESETS[size]
  for num_values in (sa.NUM_VALUES, celeba.NUM_VALUES):
    model = build_model("deepid2_attributes", num_values=num_values, size=size)
    shapes = jax.eval_shape(lambda m=model: m.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3))))
    assert count_params(shapes["params"]) == expected_param_count(
        num_values, options["conv_features"], options["fc1_features"], options["feature_dim"],
        options["locally_connected"], options["batch_norm"])
    assert ("batch_stats" in shapes) == options["batch_norm"]


def numpy_variables(model, image_shape, seed=0):
  """Variables of ``model`` drawn with numpy (He-normal kernels, zero biases, unit BN statistics): avoids
  compiling JAX's random initialisers, one compile per parameter shape, which dominates on a busy CPU."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1,) + image_shape)))

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if "kernel" in name:
      fan_in = math.prod(leaf.shape[:-1]) if "classifier" not in name and "fc2" not in name else leaf.shape[1]
      return jnp.asarray(rng.normal(0.0, math.sqrt(2.0 / fan_in), leaf.shape), leaf.dtype)
    return jnp.ones(leaf.shape, leaf.dtype) if ("scale" in name or "var" in name) else jnp.zeros(
        leaf.shape, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.fixture(scope="module")
def tiny_model():
  model = build_model("deepid2_attributes", num_values=(2, 6, 2, 9), conv_features=(4, 4, 6, 6),
                      fc1_features=12, feature_dim=5)
  variables = numpy_variables(model, (32, 32, 3))
  apply = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
  return model, variables, apply


def test_model_outputs_layout(tiny_model):
  model, variables, apply = tiny_model
  images = jnp.asarray(np.random.default_rng(1).uniform(size=(3, 32, 32, 3)), jnp.float32)
  out, state = apply(variables, {"inputs": images})
  assert out["logits"].shape == (3, 4, 9) and out["features"].shape == (3, 4, 5)
  assert out["logits"].dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out["logits"])))
  mask = np.array([[c < n for c in range(9)] for n in (2, 6, 2, 9)])
  np.testing.assert_array_equal(out["logit_mask"], np.broadcast_to(mask, (3, 4, 9)))
  np.testing.assert_array_equal(np.asarray(out["logits"])[:, ~mask], deepid2.LOGIT_PAD)
  assert bool(jnp.all(out["features"] >= 0)) and "batch_stats" in state
  # Softmax of a padded row gives the padded classes probability 0 (no NaN).
  logits = np.asarray(out["logits"], np.float64)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  assert np.all(np.isfinite(probs)) and probs[:, ~mask].max() == 0.0
  # Attribute j's FC2 and classifier are its own: perturbing attribute 1's weights changes only column 1.
  params = jax.tree_util.tree_map(lambda x: x, variables["params"])
  params["fc2_kernel"] = params["fc2_kernel"].at[1].add(0.5)
  params["classifier6_kernel"] = params["classifier6_kernel"] + 0.5
  changed, _ = apply({**variables, "params": params}, {"inputs": images})
  differs = np.any(np.asarray(changed["logits"] != out["logits"]), axis=(0, 2))
  assert differs.tolist() == [False, True, False, False]
  # Cross-entropy through the padded layout has finite gradients, zero on the padded slots (the CRL loss on
  # this layout is tested in test_losses_rectification_multivalued.py).
  labels = jnp.array([[0, 5, 1, 8], [1, 0, 1, 0], [1, 0, 0, 0]])

  def cross_entropy(logits):
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[..., None], axis=-1))

  grads = np.asarray(jax.grad(cross_entropy)(out["logits"]))
  assert np.all(np.isfinite(grads)) and np.all(grads[:, ~mask] == 0) and np.abs(grads[:, mask]).sum() > 0


def test_model_options_and_errors():
  assert deepid2.deepid2_attributes(size="paper").locally_connected
  small = deepid2.deepid2_attributes(num_values=(3,), fc1_features=7)
  assert small.fc1_features == 7 and small.conv_features == (8, 16, 24, 32)
  with pytest.raises(ValueError, match="size"):
    deepid2.deepid2_attributes(size="huge")
  model = deepid2.DeepID2Attributes(num_values=(2, 1))
  with pytest.raises(ValueError, match="num_values"):
    jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  with pytest.raises(ValueError, match="31x31"):
    jax.eval_shape(lambda: deepid2.DeepID2Attributes().init(jax.random.key(0), jnp.zeros((1, 30, 40, 3))))
  normalized = deepid2.DeepID2Attributes(num_values=(2, 3), conv_features=(2, 2, 2, 2), fc1_features=4,
                                         feature_dim=3, l2_normalize_features=True, batch_norm=False)
  variables = numpy_variables(normalized, (31, 31, 3))
  images = np.random.default_rng(2).uniform(size=(2, 31, 31, 3)).astype(np.float32)
  features = jax.jit(normalized.apply)(variables, images)["features"]
  norms = jnp.linalg.norm(features, axis=-1)
  assert bool(jnp.all((jnp.abs(norms - 1) < 1e-5) | (norms < 1e-5)))
