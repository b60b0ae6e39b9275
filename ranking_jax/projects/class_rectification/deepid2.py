r"""The CelebA network of the Class Rectification Loss paper: a DeepID2 trunk with per-attribute branches.

"Class Rectification Hard Mining for Imbalanced Deep Learning" (Dong, Gong, Zhu, ICCV 2017, section 3.1)
uses "the five layers CNN network architecture of DeepID2" with "DeepID2's shared FC1 layer" and, "for
explicitly modelling the attribute specificity, ... a respective 64-dimensional FC2 layer for each face
attribute"; attribute ``j``'s FC2 output is the feature :math:`\mathbf{x}_{i,j}` of eq. 1 that the CRL mines
on, and a softmax classifier per attribute predicts its :math:`|Z_j|` values (eq. 1; binary attributes use
two logits).

The trunk follows DeepID2 (Sun, Chen, Wang, Tang, "Deep learning face representation by joint
identification-verification", NeurIPS 2014): four VALID convolutions with ReLU, 4x4x20, 3x3x40, 3x3x60 and
2x2x80, the first three followed by 2x2 max pooling, then the 160-d FC1 ("DeepID2 layer") fully connected to
both the third pooling layer and the fourth convolution (multi-scale features). DeepID2's fourth layer is
locally connected (``locally_connected=True``, ``nn.ConvLocal``); its third layer's weights, shared only
within 2x2 regions in DeepID2, are an ordinary convolution here. DeepID2 takes 55x47 face patches; the
network takes any input of at least 31x31 pixels (FC1's size follows the input size).

Sizes (``size=``) and parameter counts (28 scene attributes at 64x64 / 40 CelebA attributes at 64x64 and
at DeepID2's 55x47):

=========  ==============  ====  ====  ======  ==========  =========  =========  =========
size       conv features   FC1   FC2   conv4   batch norm  scenes 64  CelebA 64  CelebA 55x47
=========  ==============  ====  ====  ======  ==========  =========  =========  =========
``small``  8, 16, 24, 32   128   64    shared  yes         460 717    556 864    454 464
``paper``  20, 40, 60, 80  160   64    local   no          1 474 277  1 595 000  1 024 360
=========  ==============  ====  ====  ======  ==========  =========  =========  =========

Any field can be overridden by keyword. ``small`` (the CPU default) adds batch norm after each convolution,
which the paper's network does not have, to make training from scratch on a CPU less sensitive to the
learning rate (a choice, not measured against the network without it).

Output layout (attributes have different numbers of values :math:`|Z_j|`; ``C = max_j |Z_j|``):

* ``"logits"``: float32 ``[B, A, C]``; attribute ``j``'s logits are ``logits[:, j, :|Z_j|]`` and the slots
  ``c >= |Z_j|`` hold :data:`LOGIT_PAD` (a large negative *finite* number, never ``-inf``, so sums and
  masks stay NaN-free): a softmax over the padded row gives those classes probability 0 and ``argmax``
  never picks them. Pass ``num_classes=num_values`` to
  :func:`ranking_jax.losses.class_rectification_loss` so that its margins are :math:`2\pi/|Z_j|`.
* ``"logit_mask"``: bool ``[B, A, C]``, True for the real classes (the same row for every image).
* ``"features"``: ``[B, A, 64]``, the per-attribute FC2 outputs :math:`\mathbf{x}_{i,j}` (after ReLU, and
  L2-normalised when ``l2_normalize_features``), which the classifiers read.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax.models.registry import register_model

# Padding value of the logits of classes c >= |Z_j|: exp(LOGIT_PAD - max) underflows to 0 in float32.
LOGIT_PAD = -1e9
CELEBA_NUM_VALUES = (2,) * 40

PRESETS: dict[str, dict[str, Any]] = {
    "small": dict(conv_features=(8, 16, 24, 32), fc1_features=128, feature_dim=64, locally_connected=False,
                  batch_norm=True),
    "paper": dict(conv_features=(20, 40, 60, 80), fc1_features=160, feature_dim=64, locally_connected=True,
                  batch_norm=False),
}


def class_mask(num_values: Sequence[int]) -> np.ndarray:
  """``[A, max |Z_j|]`` bool: True where class ``c < |Z_j|`` of attribute ``j`` exists.

  >>> class_mask((2, 3)).tolist()
  [[True, True, False], [True, True, True]]
  """
  num_values = np.asarray(num_values)
  return np.arange(num_values.max())[None, :] < num_values[:, None]


def attribute_branches(module: nn.Module, fc1: jax.Array, *, num_values: Sequence[int], feature_dim: int,
                       l2_normalize_features: bool = False, feature_relu: bool = True
                       ) -> dict[str, jax.Array]:
  r"""The per-attribute part of the paper's network, as parameters of ``module`` (call from its compact body).

  One 64-d FC2 per attribute (``fc2_kernel`` ``[A, F, D]``, ``fc2_bias`` ``[A, D]``) reading the shared
  FC1 output ``fc1`` float32 ``[B, F]``, then a softmax classifier per attribute (``classifier<n>_kernel``
  ``[A_n, D, n]`` per distinct :math:`|Z_j| = n`). FC2 is followed by ReLU (``feature_relu``; the paper
  does not say) and optionally L2-normalised; the result is the feature :math:`\mathbf{x}_{i,j}` of eq. 1.

  Returns:
    ``{"logits": float32 [B, A, C], "logit_mask": bool [B, A, C], "features": float32 [B, A, D]}``
    (the layout of the module docstring).
  """
  batch = fc1.shape[0]
  num_attributes = len(num_values)
  # One FC2 per attribute: a [A, FC1, D] kernel applied as A independent dense layers.
  fc2_kernel = module.param("fc2_kernel", nn.initializers.lecun_normal(in_axis=1, out_axis=2, batch_axis=0),
                            (num_attributes, int(fc1.shape[-1]), int(feature_dim)))
  fc2_bias = module.param("fc2_bias", nn.initializers.zeros, (num_attributes, int(feature_dim)))
  features = jnp.einsum("bf,afd->bad", fc1, fc2_kernel) + fc2_bias
  if feature_relu:
    features = nn.relu(features)
  if l2_normalize_features:
    norm = jnp.sqrt(jnp.sum(features * features, axis=-1, keepdims=True) + 1e-12)
    features = features / norm

  # Classifiers grouped by |Z_j| (one [A_n, D, n] kernel per distinct n), padded to C = max |Z_j|.
  num_values = np.asarray(num_values)
  max_values = int(num_values.max())
  blocks, order = [], []
  for n in sorted(set(int(v) for v in num_values)):
    index = np.flatnonzero(num_values == n)
    kernel = module.param(f"classifier{n}_kernel",
                          nn.initializers.lecun_normal(in_axis=1, out_axis=2, batch_axis=0),
                          (len(index), int(feature_dim), n))
    bias = module.param(f"classifier{n}_bias", nn.initializers.zeros, (len(index), n))
    logits = jnp.einsum("bad,adc->bac", features[:, index], kernel) + bias
    blocks.append(jnp.pad(logits, ((0, 0), (0, 0), (0, max_values - n)), constant_values=LOGIT_PAD))
    order.extend(index.tolist())
  logits = jnp.concatenate(blocks, axis=1)[:, np.argsort(order)]
  mask = jnp.broadcast_to(jnp.asarray(class_mask(num_values)), (batch, num_attributes, max_values))
  return {"logits": logits, "logit_mask": mask, "features": features}


class DeepID2Attributes(nn.Module):
  """DeepID2 trunk, shared FC1, a 64-d FC2 per attribute and a softmax classifier per attribute.

  Attributes:
    num_values: :math:`|Z_j|` of every attribute (2 for a binary attribute).
    conv_features: output channels of the four convolutions.
    fc1_features: width of the shared FC1 ("DeepID2 layer").
    feature_dim: width of each attribute's FC2, i.e. of :math:`\\mathbf{x}_{i,j}` (64 in the paper).
    locally_connected: the fourth convolution is locally connected (unshared weights) as in DeepID2.
    batch_norm: batch norm after each convolution (``axis_name=None``: statistics of the local batch).
    l2_normalize_features: L2-normalise :math:`\\mathbf{x}_{i,j}` (then distances lie in ``[0, 2]``, the
      default range of the CRL histogram loss).
    dtype: computation dtype of the trunk (parameters and outputs stay float32).

  ``apply(variables, images, train=...)`` takes images float32 ``[B, H, W, 3]`` in ``[0, 1]`` (or a dict
  with the images under ``"inputs"`` or ``"image"``) and returns the dict described in the module
  docstring.

  >>> model = DeepID2Attributes(num_values=(2, 3), conv_features=(4, 4, 4, 4), fc1_features=8,
  ...                           feature_dim=5)
  >>> images = jnp.zeros((2, 32, 32, 3))
  >>> out = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), images), images))
  >>> out["logits"].shape, out["logit_mask"].shape, out["features"].shape
  ((2, 2, 3), (2, 2, 3), (2, 2, 5))
  """
  num_values: Sequence[int] = CELEBA_NUM_VALUES
  conv_features: Sequence[int] = (8, 16, 24, 32)
  fc1_features: int = 128
  feature_dim: int = 64
  locally_connected: bool = False
  batch_norm: bool = True
  l2_normalize_features: bool = False
  dtype: Any = jnp.float32

  def _check(self) -> None:
    if len(self.num_values) < 1 or any(int(n) < 2 for n in self.num_values):
      raise ValueError(f"`num_values` must list |Z_j| >= 2 for at least one attribute, got "
                       f"{self.num_values}.")
    if len(self.conv_features) != 4 or any(int(c) < 1 for c in self.conv_features):
      raise ValueError(f"`conv_features` must be four positive ints, got {self.conv_features}.")
    if self.fc1_features < 1 or self.feature_dim < 1:
      raise ValueError(f"`fc1_features` and `feature_dim` must be positive, got {self.fc1_features}, "
                       f"{self.feature_dim}.")

  @nn.compact
  def __call__(self, inputs: Union[jax.Array, Mapping[str, jax.Array]], *, train: bool = False
               ) -> dict[str, jax.Array]:
    self._check()
    images = inputs
    if isinstance(inputs, Mapping):
      key = "inputs" if "inputs" in inputs else "image"
      if key not in inputs:
        raise ValueError(f"a dict input needs the images under 'inputs' or 'image', got keys "
                         f"{sorted(inputs)}.")
      images = inputs[key]
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"expected NHWC RGB images [B, H, W, 3] in [0, 1], got shape {images.shape}.")
    if min(images.shape[1:3]) < 31:
      raise ValueError(f"images must be at least 31x31 pixels for the four VALID convolutions, got "
                       f"{images.shape[1:3]}.")
    x = (images.astype(jnp.float32) - 0.5).astype(self.dtype)
    pooled3 = None
    kernels = ((4, 4), (3, 3), (3, 3), (2, 2))
    for layer, (features, kernel) in enumerate(zip(self.conv_features, kernels), start=1):
      if layer == 4 and self.locally_connected:
        x = nn.ConvLocal(int(features), kernel, padding="VALID", dtype=self.dtype, name="conv4")(x)
      else:
        x = nn.Conv(int(features), kernel, padding="VALID", dtype=self.dtype, name=f"conv{layer}")(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype, axis_name=None,
                         name=f"bn{layer}")(x)
      x = nn.relu(x)
      if layer < 4:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      if layer == 3:
        pooled3 = x
    batch = images.shape[0]
    # DeepID2's FC1 sees both the third pooling layer and the fourth convolution (multi-scale features).
    multi_scale = jnp.concatenate([pooled3.reshape(batch, -1), x.reshape(batch, -1)], axis=-1)
    fc1 = nn.relu(nn.Dense(int(self.fc1_features), dtype=self.dtype, name="fc1")(multi_scale))
    fc1 = fc1.astype(jnp.float32)

    return attribute_branches(self, fc1, num_values=self.num_values, feature_dim=int(self.feature_dim),
                              l2_normalize_features=self.l2_normalize_features)


def _resolve(size: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
  if size not in PRESETS:
    raise ValueError(f"unknown DeepID2 size {size!r}; choose one of {sorted(PRESETS)}.")
  options = dict(PRESETS[size])
  options.update({k: v for k, v in overrides.items() if v is not None})
  return options


@register_model("deepid2_attributes")
def deepid2_attributes(*, num_values: Sequence[int] = CELEBA_NUM_VALUES, size: str = "small",
                       conv_features: Optional[Sequence[int]] = None, fc1_features: Optional[int] = None,
                       feature_dim: Optional[int] = None, locally_connected: Optional[bool] = None,
                       batch_norm: Optional[bool] = None, l2_normalize_features: bool = False,
                       dtype: Any = jnp.float32) -> DeepID2Attributes:
  """The CRL paper's CelebA network (:class:`DeepID2Attributes`) at ``size`` ``"small"`` or ``"paper"``.

  ``num_values`` lists :math:`|Z_j|` per attribute (default: CelebA's 40 binary attributes); the other
  keywords override the preset (``None`` keeps it).

  Raises:
    ValueError: an unknown ``size``.

  >>> deepid2_attributes(size="paper").conv_features
  (20, 40, 60, 80)
  """
  options = _resolve(size, dict(conv_features=conv_features, fc1_features=fc1_features,
                                feature_dim=feature_dim, locally_connected=locally_connected,
                                batch_norm=batch_norm))
  options["conv_features"] = tuple(int(c) for c in options["conv_features"])
  return DeepID2Attributes(num_values=tuple(int(n) for n in num_values),
                           l2_normalize_features=bool(l2_normalize_features), dtype=dtype, **options)


class AttributeFeatureHead(nn.Module):
  """The paper's head (shared FC1, a 64-d FC2 and a softmax classifier per attribute) on trunk features.

  For a pretrained trunk whose pooled features are cached (CelebA-HQ with the frozen ImageNet
  EfficientNet-Lite0: ``[B, 1280]``): the DeepID2 convolutions are replaced by the trunk, the rest is the
  paper's section 3.1 shape (shared FC1 with ReLU, then :func:`attribute_branches`).

  Attributes:
    num_values: :math:`|Z_j|` of every attribute.
    fc1_features: width of the shared FC1.
    feature_dim: width of each attribute's FC2 (64 in the paper).
    feature_relu: ReLU after FC2 (the paper does not say; DeepID2's layers have it).
    l2_normalize_features: L2-normalise :math:`\\mathbf{x}_{i,j}` (distances then lie in ``[0, 2]``).

  ``apply(variables, features)`` takes float32 ``[B, D]`` (or a dict with it under ``"inputs"`` or
  ``"features"``) and returns the dict of the module docstring.

  >>> head = AttributeFeatureHead(num_values=(2, 3), fc1_features=8, feature_dim=5)
  >>> x = jnp.zeros((4, 16))
  >>> out = jax.eval_shape(lambda: head.apply(head.init(jax.random.key(0), x), x))
  >>> out["logits"].shape, out["features"].shape
  ((4, 2, 3), (4, 2, 5))
  """
  num_values: Sequence[int] = CELEBA_NUM_VALUES
  fc1_features: int = 256
  feature_dim: int = 64
  feature_relu: bool = True
  l2_normalize_features: bool = False

  @nn.compact
  def __call__(self, inputs: Union[jax.Array, Mapping[str, jax.Array]], *, train: bool = False
               ) -> dict[str, jax.Array]:
    del train  # no batch norm or dropout
    if len(self.num_values) < 1 or any(int(n) < 2 for n in self.num_values):
      raise ValueError(f"`num_values` must list |Z_j| >= 2 for at least one attribute, got {self.num_values}.")
    if self.fc1_features < 1 or self.feature_dim < 1:
      raise ValueError(f"`fc1_features` and `feature_dim` must be positive, got {self.fc1_features}, "
                       f"{self.feature_dim}.")
    x = inputs
    if isinstance(inputs, Mapping):
      key = "inputs" if "inputs" in inputs else "features"
      if key not in inputs:
        raise ValueError(f"a dict input needs the features under 'inputs' or 'features', got keys "
                         f"{sorted(inputs)}.")
      x = inputs[key]
    if x.ndim != 2:
      raise ValueError(f"expected pooled trunk features [B, D], got shape {x.shape}.")
    fc1 = nn.relu(nn.Dense(int(self.fc1_features), name="fc1")(x.astype(jnp.float32)))
    return attribute_branches(self, fc1, num_values=self.num_values, feature_dim=int(self.feature_dim),
                              l2_normalize_features=self.l2_normalize_features,
                              feature_relu=self.feature_relu)


@register_model("crl_feature_head")
def crl_feature_head(*, num_values: Sequence[int] = CELEBA_NUM_VALUES, fc1_features: int = 256,
                     feature_dim: int = 64, feature_relu: bool = True, l2_normalize_features: bool = False
                     ) -> AttributeFeatureHead:
  """:class:`AttributeFeatureHead` (the paper's FC1 / FC2 / classifier head on cached trunk features)."""
  return AttributeFeatureHead(num_values=tuple(int(n) for n in num_values), fc1_features=int(fc1_features),
                              feature_dim=int(feature_dim), feature_relu=bool(feature_relu),
                              l2_normalize_features=bool(l2_normalize_features))
