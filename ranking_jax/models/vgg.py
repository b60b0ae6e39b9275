"""VGG-16 backbone (Flax Linen, NHWC), laid out like torchvision's ``vgg16``.

"Very Deep Convolutional Networks for Large-Scale Image Recognition" (Simonyan and Zisserman, ICLR 2015),
configuration D. Convolutions are named ``features_<i>`` and the fully connected layers ``classifier_0``
and ``classifier_3`` with torchvision's indices, so converted ImageNet weights map one to one. As in
torchvision, the convolutional features are adaptively average-pooled to 7x7 before the classifier, so any
input of at least 32x32 works; the backbone returns the 4096-d output of the second fully connected layer
(the 1000-way ImageNet layer is replaced by the regression head).
"""

from __future__ import annotations

import math
from typing import Any, Sequence, Union

import flax.linen as nn
import jax.numpy as jnp

VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def adaptive_avg_pool(x: jnp.ndarray, output_size: int) -> jnp.ndarray:
  """PyTorch's ``AdaptiveAvgPool2d``: bin ``i`` averages rows ``floor(i H / o)`` to ``ceil((i + 1) H / o)``.

  >>> adaptive_avg_pool(jnp.arange(4.0).reshape(1, 2, 2, 1), 1).ravel().tolist()
  [1.5]
  """
  _, height, width, _ = x.shape

  def bins(size: int) -> list[tuple[int, int]]:
    return [(math.floor(i * size / output_size), math.ceil((i + 1) * size / output_size))
            for i in range(output_size)]

  rows = [jnp.mean(x[:, a:b], axis=1) for a, b in bins(height)]  # each [B, W, C]
  x = jnp.stack(rows, axis=1)
  cols = [jnp.mean(x[:, :, a:b], axis=2) for a, b in bins(width)]
  return jnp.stack(cols, axis=2)


class VGG(nn.Module):
  """VGG feature extractor: ``images [B, H, W, 3] -> features [B, 4096]`` (``fc_width`` in general).

  Attributes:
    config: channels per convolution, ``"M"`` for 2x2 max-pooling (torchvision's cfg "D" by default).
    fc_width: width of the two fully connected layers (4096).
    dropout_rate: dropout after each fully connected layer in training (needs a ``dropout`` rng).
    dtype: computation dtype.
  """
  config: Sequence[Union[int, str]] = VGG16_CONFIG
  fc_width: int = 4096
  dropout_rate: float = 0.5
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    return self.fc_width

  @nn.compact
  def __call__(self, images: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if images.ndim != 4:
      raise ValueError(f"VGG expects NHWC images [B, H, W, C], got shape {images.shape}.")
    x = images.astype(self.dtype)
    index = 0  # torchvision's position in `features` (conv, relu, ..., maxpool)
    for item in self.config:
      if item == "M":
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        index += 1
      else:
        x = nn.relu(nn.Conv(int(item), (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                            name=f"features_{index}")(x))
        index += 2
    x = adaptive_avg_pool(x, 7)
    x = x.reshape((x.shape[0], -1))  # flattened in (H, W, C) order
    for name in ("classifier_0", "classifier_3"):
      x = nn.relu(nn.Dense(self.fc_width, dtype=self.dtype, name=name)(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return x.astype(jnp.float32)


def vgg16(*, channel_divisor: int = 1, **kwargs: Any) -> VGG:
  """VGG-16; ``channel_divisor`` > 1 divides every convolution's channels (a slimmed network for CPUs)."""
  if channel_divisor < 1:
    raise ValueError(f"channel_divisor must be >= 1, got {channel_divisor}.")
  config = tuple(c if c == "M" else max(1, int(c) // int(channel_divisor)) for c in VGG16_CONFIG)
  return VGG(config=config, **kwargs)
