"""ImageNet trunk helpers: front + tail = the whole network, cached features keyed by the block split."""

import os

import numpy as np
import pytest

from ranking_jax.models import efficientnet
from ranking_jax.models import pretrained_trunk
from tests import test_efficientnet

needs_weights = test_efficientnet.needs_weights


class _Images:
  """A tiny image source with a cache key (what CelebA-HQ / UTKFace sources provide)."""
  names = ("a", "b")

  def __init__(self, n=5, side=32, seed=0):
    rng = np.random.default_rng(seed)
    self.images = rng.uniform(size=(n, side, side, 3)).astype(np.float32)
    self.labels = rng.integers(0, 2, size=(n, 2)).astype(np.int32)

  def __len__(self):
    return len(self.images)

  def __getitem__(self, indices):
    return {"image": self.images[indices], "attributes": self.labels[indices]}

  def cache_key_fields(self):
    return {"dataset": "tiny", "split": "train", "image_size": list(self.images.shape[1:3])}


@needs_weights
def test_front_then_tail_equals_the_whole_trunk(tmp_path):
  source = _Images()
  whole = pretrained_trunk.trunk_features(source, cache_dir=str(tmp_path), batch_size=4)
  maps = pretrained_trunk.trunk_features(source, cache_dir=str(tmp_path), batch_size=4, stop_block=12)
  assert whole["features"].shape == (5, 1280) and maps["features"].shape[0] == 5
  np.testing.assert_array_equal(whole["attributes"], source.labels)
  tail, variables = pretrained_trunk.imagenet_trunk(start_block=12)
  np.testing.assert_allclose(np.asarray(tail.apply(variables, maps["features"])), whole["features"],
                             atol=1e-4)
  # Two block splits are two cache folders, never one reused for the other.
  assert len(os.listdir(tmp_path)) == 2
  sources = pretrained_trunk.feature_splits({"train": source}, cache_dir=str(tmp_path), batch_size=4)
  assert sources["train"].names == ("a", "b") and len(os.listdir(tmp_path)) == 2


@needs_weights
def test_trunk_carries_the_imagenet_weights():
  _, variables = pretrained_trunk.imagenet_trunk(start_block=15)
  flat = {k: v for k, v in pretrained_trunk.imagenet_weights().items() if "blocks_15" in k or "conv_head" in k}
  kernel = variables["params"]["conv_head"]["kernel"]
  np.testing.assert_array_equal(np.asarray(kernel), flat["params/conv_head/kernel"])
  assert "blocks_14" not in variables["params"] and "conv_stem" not in variables["params"]


@pytest.mark.parametrize("kwargs", [{"start_block": 17}, {"stop_block": -1}, {"start_block": 8, "stop_block": 4},
                                    {"start_block": 1.5}])
def test_bad_block_ranges_raise(kwargs):
  with pytest.raises(ValueError, match="block"):
    pretrained_trunk.imagenet_trunk(**kwargs)


def test_tail_rejects_images_where_feature_maps_are_expected():
  import jax
  model = efficientnet.EfficientNetLite0(start_block=12)
  with pytest.raises(ValueError, match="feature maps entering block 12"):
    jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32)))


def test_source_without_key_fields_is_refused():
  with pytest.raises(ValueError, match="cache_key_fields"):
    pretrained_trunk.trunk_features(type("S", (), {"__len__": lambda s: 1})(), cache_dir="/nonexistent")
