"""Heads on top of a backbone's pooled features, and the full image model used by the experiments."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

# torchvision / Keras ImageNet statistics of RGB images in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RegressionHead(nn.Module):
  """A linear layer ``features [B, D] -> [B, num_outputs]``.

  The IDE RankNet paper changes "the number of output nodes of the last full connection layer in the
  original model to 1, so that the network can output the difficulty score directly".
  """
  num_outputs: int = 1
  bias_init: float = 0.0

  @nn.compact
  def __call__(self, features: jnp.ndarray) -> jnp.ndarray:
    return nn.Dense(self.num_outputs, bias_init=nn.initializers.constant(self.bias_init), name="dense")(
        features)


class ImageRegressor(nn.Module):
  """``backbone`` then ``head``: ``images [B, H, W, 3] in [0, 1] -> scores [B]`` (or ``[B, num_outputs]``).

  Attributes:
    backbone: a feature extractor (see :func:`ranking_jax.models.get_backbone`).
    num_outputs: outputs of the regression head.
    normalize_input: subtract the ImageNet mean and divide by its std first (what converted ImageNet
      weights expect; harmless for random init).
    bias_init: initial value of the head's bias (e.g. the training-set mean difficulty, about 3.3).
    squeeze: return ``[B]`` instead of ``[B, 1]`` when ``num_outputs == 1``.

  Variables: ``params/backbone/...``, ``params/head/dense/{kernel,bias}`` and, for backbones with batch
  norm, ``batch_stats/backbone/...``.

  >>> import jax
  >>> from ranking_jax.models.resnet import ResNet
  >>> model = ImageRegressor(ResNet(stage_sizes=(1, 1, 1, 1), bottleneck=False, width=8))
  >>> variables = model.init(jax.random.key(0), jnp.zeros((3, 32, 32, 3)))
  >>> model.apply(variables, jnp.zeros((3, 32, 32, 3))).shape
  (3,)
  """
  backbone: nn.Module
  num_outputs: int = 1
  normalize_input: bool = True
  bias_init: float = 0.0
  squeeze: bool = True

  @nn.compact
  def __call__(self, images: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"expected NHWC RGB images [B, H, W, 3] in [0, 1], got shape {images.shape}.")
    x = images.astype(jnp.float32)
    if self.normalize_input:
      x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
    features = self.backbone(x, train=train)
    scores = RegressionHead(self.num_outputs, self.bias_init, name="head")(features)
    if self.squeeze and self.num_outputs == 1:
      scores = scores[:, 0]
    return scores


def count_params(tree: Any) -> int:
  """Number of scalars in a pytree of arrays (or of ``jax.ShapeDtypeStruct``, e.g. from ``jax.eval_shape``)."""
  import jax  # pylint: disable=g-import-not-at-top
  return int(sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree)))
