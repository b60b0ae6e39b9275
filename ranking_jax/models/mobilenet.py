"""MobileNet v1 backbone (Flax Linen, NHWC), laid out like Keras' ``MobileNet``.

"MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications" (Howard et al.,
2017) -- the MobileNet the IDE RankNet paper cites for its Table 1. A 3x3 stride-2 convolution followed by
13 depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, each with batch norm and ReLU6), global
average pooling. Names follow Keras (``conv1``, ``conv1_bn``, ``conv_dw_1``, ``conv_dw_1_bn``,
``conv_pw_1``, ``conv_pw_1_bn`` ...) and stride-2 layers pad like Keras (one row/column at the bottom/right),
so converted Keras ImageNet weights map one to one.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

# (pointwise filters, stride) of the 13 depthwise-separable blocks.
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
                       (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class MobileNetV1(nn.Module):
  """MobileNet v1 feature extractor: ``images [B, H, W, 3] -> features [B, 1024 * alpha]``.

  Attributes:
    alpha: width multiplier (1.0 for the standard network).
    blocks: ``(filters, stride)`` of the depthwise-separable blocks.
    dtype: computation dtype.
  """
  alpha: float = 1.0
  blocks: Sequence[tuple[int, int]] = MOBILENET_V1_BLOCKS
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    return int(self.blocks[-1][0] * self.alpha)

  def _bn(self, train: bool, name: str) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3, dtype=self.dtype,
                        name=name)

  @nn.compact
  def __call__(self, images: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if images.ndim != 4:
      raise ValueError(f"MobileNetV1 expects NHWC images [B, H, W, C], got shape {images.shape}.")
    keras_stride2_pad = ((0, 1), (0, 1))
    x = nn.Conv(int(32 * self.alpha), (3, 3), strides=(2, 2), padding=keras_stride2_pad, use_bias=False,
                dtype=self.dtype, name="conv1")(images.astype(self.dtype))
    x = nn.relu6(self._bn(train, "conv1_bn")(x))
    for i, (filters, stride) in enumerate(self.blocks, start=1):
      channels = x.shape[-1]
      padding = keras_stride2_pad if stride == 2 else ((1, 1), (1, 1))
      x = nn.Conv(channels, (3, 3), strides=(stride, stride), padding=padding, feature_group_count=channels,
                  use_bias=False, dtype=self.dtype, name=f"conv_dw_{i}")(x)
      x = nn.relu6(self._bn(train, f"conv_dw_{i}_bn")(x))
      x = nn.Conv(int(filters * self.alpha), (1, 1), use_bias=False, dtype=self.dtype, name=f"conv_pw_{i}")(x)
      x = nn.relu6(self._bn(train, f"conv_pw_{i}_bn")(x))
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)
