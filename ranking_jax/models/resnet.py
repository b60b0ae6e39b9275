"""ResNet-18/34/50/101/152 backbones (Flax Linen, NHWC), laid out like torchvision's ResNet v1.5.

"Deep Residual Learning for Image Recognition" (He et al., CVPR 2016); the stride of a bottleneck block
sits on its 3x3 convolution, as in torchvision. Module names mirror torchvision's
(``conv1``, ``bn1``, ``layer3_5/conv2``, ``layer2_0/downsample_conv`` ...) so that converted ImageNet
weights map one to one (see :mod:`ranking_jax.models.weights`). The backbone returns the globally
average-pooled features; the regression head lives in :mod:`ranking_jax.models.heads`.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _norm(train: bool, dtype: Any, name: str, zero_init: bool = False) -> nn.BatchNorm:
  # zero_init: the last BatchNorm of a residual branch starts at scale 0, so every block starts as the
  # identity (Goyal et al. 2017). Deep random-init ResNets (101/152) otherwise blow up in inference mode
  # while the running statistics are still at their initial values.
  scale_init = nn.initializers.zeros if zero_init else nn.initializers.ones
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                      scale_init=scale_init, name=name)


def _conv(features: int, kernel: int, strides: int, dtype: Any, name: str) -> nn.Conv:
  pad = kernel // 2
  return nn.Conv(features, (kernel, kernel), strides=(strides, strides), padding=((pad, pad), (pad, pad)),
                 use_bias=False, dtype=dtype, kernel_init=nn.initializers.variance_scaling(
                     2.0, "fan_out", "normal"), name=name)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""
  filters: int
  strides: int = 1
  dtype: Any = jnp.float32
  expansion = 1

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    y = _conv(self.filters, 3, self.strides, self.dtype, "conv1")(x)
    y = nn.relu(_norm(train, self.dtype, "bn1")(y))
    y = _conv(self.filters, 3, 1, self.dtype, "conv2")(y)
    y = _norm(train, self.dtype, "bn2", zero_init=True)(y)
    if x.shape != y.shape:
      x = _conv(self.filters, 1, self.strides, self.dtype, "downsample_conv")(x)
      x = _norm(train, self.dtype, "downsample_bn")(x)
    return nn.relu(x + y)


class Bottleneck(nn.Module):
  """1x1 reduce, 3x3 (strided), 1x1 expand (x4) with a residual connection (ResNet-50/101/152)."""
  filters: int
  strides: int = 1
  dtype: Any = jnp.float32
  expansion = 4

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    y = _conv(self.filters, 1, 1, self.dtype, "conv1")(x)
    y = nn.relu(_norm(train, self.dtype, "bn1")(y))
    y = _conv(self.filters, 3, self.strides, self.dtype, "conv2")(y)
    y = nn.relu(_norm(train, self.dtype, "bn2")(y))
    y = _conv(self.filters * 4, 1, 1, self.dtype, "conv3")(y)
    y = _norm(train, self.dtype, "bn3", zero_init=True)(y)
    if x.shape != y.shape:
      x = _conv(self.filters * 4, 1, self.strides, self.dtype, "downsample_conv")(x)
      x = _norm(train, self.dtype, "downsample_bn")(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet feature extractor: ``images [B, H, W, 3] -> features [B, 512 or 2048]``.

  Attributes:
    stage_sizes: blocks per stage, e.g. ``(3, 4, 6, 3)``.
    bottleneck: bottleneck blocks (ResNet-50 and deeper) instead of basic blocks.
    width: filters of the first stage (64 in the paper; smaller values make test-sized networks).
    dtype: computation dtype (parameters stay float32).
    pool: average-pool globally (default); False returns the last stage's feature map
      ``[B, H/32, W/32, features]`` (for spatial heads such as WILDCAT).

  >>> import jax
  >>> model = ResNet(stage_sizes=(1, 1, 1, 1), bottleneck=False, width=8)
  >>> variables = model.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)))
  >>> model.apply(variables, jnp.zeros((2, 32, 32, 3))).shape
  (2, 64)
  """
  stage_sizes: Sequence[int]
  bottleneck: bool
  width: int = 64
  dtype: Any = jnp.float32
  pool: bool = True

  @property
  def num_features(self) -> int:
    return self.width * 8 * (4 if self.bottleneck else 1)

  @nn.compact
  def __call__(self, images: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if images.ndim != 4:
      raise ValueError(f"ResNet expects NHWC images [B, H, W, C], got shape {images.shape}.")
    x = _conv(self.width, 7, 2, self.dtype, "conv1")(images.astype(self.dtype))
    x = nn.relu(_norm(train, self.dtype, "bn1")(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    block_cls = Bottleneck if self.bottleneck else BasicBlock
    for stage, num_blocks in enumerate(self.stage_sizes):
      for block in range(num_blocks):
        strides = 2 if stage > 0 and block == 0 else 1
        x = block_cls(self.width * 2 ** stage, strides, self.dtype, name=f"layer{stage + 1}_{block}")(
            x, train)
    if not self.pool:
      return x.astype(jnp.float32)
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)


def resnet(depth: int, *, stage_sizes: Sequence[int] | None = None, **kwargs: Any) -> ResNet:
  """``resnet(50)``: the standard ResNet of that depth (18, 34, 50, 101 or 152).

  ``stage_sizes`` overrides the blocks per stage while keeping the depth's block type (basic below 50,
  bottleneck from 50), e.g. a shallow stand-in of ResNet-152's block type for quick tests.
  """
  if depth not in STAGE_SIZES:
    raise ValueError(f"ResNet depth must be one of {sorted(STAGE_SIZES)}, got {depth}.")
  return ResNet(stage_sizes=tuple(stage_sizes or STAGE_SIZES[depth]), bottleneck=depth >= 50, **kwargs)


ResNet18 = functools.partial(resnet, 18)
ResNet34 = functools.partial(resnet, 34)
ResNet50 = functools.partial(resnet, 50)
ResNet101 = functools.partial(resnet, 101)
ResNet152 = functools.partial(resnet, 152)
