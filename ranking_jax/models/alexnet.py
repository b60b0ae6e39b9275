"""The annotation paper's network: an AlexNet-style CNN with one score per tag (Flax Linen, NHWC).

*Deep Convolutional Ranking for Multilabel Image Annotation* (Gong et al.) trains from scratch a network
"based on AlexNet": five convolutional layers, two 4 096-wide fully connected layers with dropout 0.6 and
ReLU, and a last layer with one output per tag (81 for NUS-WIDE), on 220 x 220 crops of 256 x 256 images.
The notes list filter sizes "11, 9, 5"; we read them as conv1 11 x 11 (stride 4), conv2 9 x 9 and conv3-5
5 x 5 (:data:`PAPER_KERNEL_SIZES`), with AlexNet's channels (96, 256, 384, 384, 256) and its 3 x 3 / 2
max-pooling after conv1, conv2 and conv5. AlexNet's own sizes (11, 5, 3, 3, 3) are
:data:`ALEXNET_KERNEL_SIZES`. Local response normalisation is left out (later AlexNet variants drop it);
``batch_norm=True`` adds batch normalisation after every convolution instead (ours, for faster CPU runs).

Sizes (registry name ``alexnet_multilabel``, ``preset=...``):

===========  ================  ======  ========  ===========  =============================================
preset       channels          FC      stride 1  input        parameters (81 tags)
===========  ================  ======  ========  ===========  =============================================
``paper``    96-256-384-384-256  4096  4         220 x 220    65 494 481
``cpu``      24-64-96-96-64    256     2         64 x 64      905 393
===========  ================  ======  ========  ===========  =============================================

(the ``cpu`` preset divides the channels by 4 and the FC width by 16 and halves the first stride, so the
64 x 64 embedded scenes keep a 3 x 3 map before the FC layers).

Dropout needs randomness in training: call ``model.apply(variables, images, train=True,
rngs={"dropout": key})``; the trainer must pass a ``"dropout"`` rng. ``train=False`` needs none.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ranking_jax.models.heads import IMAGENET_MEAN
from ranking_jax.models.heads import IMAGENET_STD
from ranking_jax.models.registry import register_model

ALEXNET_CHANNELS = (96, 256, 384, 384, 256)
PAPER_KERNEL_SIZES = (11, 9, 5, 5, 5)
ALEXNET_KERNEL_SIZES = (11, 5, 3, 3, 3)
PAPER_FC_WIDTH = 4096
PAPER_DROPOUT = 0.6
_POOL_AFTER = (0, 1, 4)  # max-pool after conv1, conv2 and conv5, as AlexNet
PRESETS: dict[str, dict[str, int]] = {
    "paper": {"channel_divisor": 1, "fc_divisor": 1, "conv1_stride": 4},
    "cpu": {"channel_divisor": 4, "fc_divisor": 16, "conv1_stride": 2},
}


class AlexNetMultilabel(nn.Module):
  """``images [B, H, W, 3] in [0, 1] -> tag scores float32 [B, num_tags]`` (unnormalised, one per tag).

  Attributes:
    num_tags: outputs of the last layer.
    channels: output channels of the five convolutions.
    kernel_sizes: their square kernel sizes.
    conv1_stride: stride of the first convolution (4 in AlexNet).
    fc_width: width of the two hidden fully connected layers.
    dropout_rate: dropout after each hidden fully connected layer in training.
    batch_norm: batch normalisation after each convolution (not in the paper).
    normalize_input: standardise with the ImageNet mean / std first.
    dtype: computation dtype (outputs are float32).

  >>> import jax
  >>> model = AlexNetMultilabel(num_tags=5, channels=(8, 8, 8, 8, 8), fc_width=16, conv1_stride=2)
  >>> images = jnp.zeros((2, 32, 32, 3))
  >>> variables = jax.eval_shape(model.init, jax.random.key(0), images)  # shapes only: no compilation
  >>> jax.eval_shape(model.apply, variables, images).shape
  (2, 5)
  """
  num_tags: int = 81
  channels: Sequence[int] = ALEXNET_CHANNELS
  kernel_sizes: Sequence[int] = PAPER_KERNEL_SIZES
  conv1_stride: int = 4
  fc_width: int = PAPER_FC_WIDTH
  dropout_rate: float = PAPER_DROPOUT
  batch_norm: bool = False
  normalize_input: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"expected NHWC RGB images [B, H, W, 3] in [0, 1], got shape {images.shape}.")
    if len(self.channels) != 5 or len(self.kernel_sizes) != 5:
      raise ValueError(f"need 5 channels and 5 kernel sizes, got {self.channels}, {self.kernel_sizes}.")
    x = images.astype(jnp.float32)
    if self.normalize_input:
      x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
    x = x.astype(self.dtype)
    for layer, (features, size) in enumerate(zip(self.channels, self.kernel_sizes)):
      stride = self.conv1_stride if layer == 0 else 1
      x = nn.Conv(int(features), (size, size), strides=(stride, stride), padding="SAME",
                  use_bias=not self.batch_norm, dtype=self.dtype, name=f"conv{layer + 1}")(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, dtype=self.dtype, name=f"bn{layer + 1}")(x)
      x = nn.relu(x)
      if layer in _POOL_AFTER:
        if min(x.shape[1:3]) < 3:
          raise ValueError(f"the feature map before pool{_POOL_AFTER.index(layer) + 1} is {x.shape[1:3]}, "
                           f"smaller than the 3x3 window: use larger images than {images.shape[1:3]} or a "
                           "smaller conv1_stride.")
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")
    x = x.reshape((x.shape[0], -1))
    for layer in (6, 7):
      x = nn.relu(nn.Dense(self.fc_width, dtype=self.dtype, name=f"fc{layer}")(x))
      # make_rng only in training: evaluation needs no "dropout" rng.
      x = nn.Dropout(self.dropout_rate)(x, deterministic=not train,
                                        rng=self.make_rng("dropout") if train else None)
    scores = nn.Dense(self.num_tags, dtype=self.dtype, name="scores")(x)
    return scores.astype(jnp.float32)


@register_model("alexnet_multilabel")
def alexnet_multilabel(*, num_tags: int = 81, preset: str = "cpu", channel_divisor: Optional[int] = None,
                       fc_divisor: Optional[int] = None, conv1_stride: Optional[int] = None,
                       kernel_sizes: Sequence[int] = PAPER_KERNEL_SIZES,
                       dropout_rate: float = PAPER_DROPOUT, batch_norm: bool = False,
                       normalize_input: bool = True, dtype: Any = jnp.float32) -> AlexNetMultilabel:
  """The paper's network at ``preset`` size (``"cpu"`` or ``"paper"``); explicit arguments override it.

  Channels are AlexNet's divided by ``channel_divisor`` (at least 1 each), the FC width 4 096 divided by
  ``fc_divisor``.

  >>> alexnet_multilabel(preset="paper").fc_width, alexnet_multilabel().channels
  (4096, (24, 64, 96, 96, 64))
  """
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
  sizes = dict(PRESETS[preset])
  for key, value in (("channel_divisor", channel_divisor), ("fc_divisor", fc_divisor),
                     ("conv1_stride", conv1_stride)):
    if value is not None:
      if int(value) < 1:
        raise ValueError(f"`{key}` must be a positive int, got {value!r}.")
      sizes[key] = int(value)
  channels = tuple(max(1, c // sizes["channel_divisor"]) for c in ALEXNET_CHANNELS)
  return AlexNetMultilabel(num_tags=int(num_tags), channels=channels, kernel_sizes=tuple(kernel_sizes),
                           conv1_stride=sizes["conv1_stride"],
                           fc_width=max(1, PAPER_FC_WIDTH // sizes["fc_divisor"]),
                           dropout_rate=float(dropout_rate), batch_norm=bool(batch_norm),
                           normalize_input=bool(normalize_input), dtype=dtype)
