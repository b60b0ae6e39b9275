r"""SoDeep's memorability regressor: a feature extractor and a two-layer MLP, with a freezable backbone.

*SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019, §4.2.1): "a
feature extractor combined with a two layers MLP regressing features to a single memorability score";
"first, for 15 epochs only the MLP layers are trained while the weights of the feature extractor are kept
frozen. Second, the whole model is finetuned."

The two stages run in one compiled train step: the inputs carry a boolean ``freeze_backbone`` flag per
example, and the backbone's features go through :func:`jax.lax.stop_gradient` where it is set, so the
backbone's parameters get exactly zero gradient (with Adam and no weight decay they do not move) while the
MLP trains. The task sets the flag from the step (``step < freeze_backbone_steps``). BatchNorm statistics
of the backbone keep updating in the frozen stage (they are not parameters).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from ranking_jax.models import heads
from ranking_jax.models.registry import get_backbone
from ranking_jax.models.registry import register_model

IMAGE_KEY = "image"
FREEZE_KEY = "freeze_backbone"
FEATURES_KEY = "features"


class MemorabilityRegressor(nn.Module):
  """``images [B, H, W, 3] in [0, 1] -> scores [B]``: backbone, Dense(hidden) + ReLU, Dense(1).

  Inputs are an image array or a dict ``{"image": [B, H, W, 3], "freeze_backbone": bool [B]}``; where
  ``freeze_backbone`` is True the backbone's features are a constant for autodiff (stage 1: MLP only).

  Attributes:
    backbone: a feature extractor (:func:`ranking_jax.models.get_backbone`), submodule ``backbone`` (so
      :func:`ranking_jax.models.load_backbone_weights` applies).
    hidden: width of the MLP's hidden layer.
    bias_init: initial output bias (e.g. the mean memorability, 0.75).
    normalize_input: ImageNet mean/std normalisation first (what converted weights expect).

  >>> from ranking_jax.models.resnet import ResNet
  >>> model = MemorabilityRegressor(ResNet(stage_sizes=(1, 1, 1, 1), bottleneck=False, width=4), hidden=8)
  >>> inputs = {"image": jnp.zeros((2, 16, 16, 3)), "freeze_backbone": jnp.array([True, True])}
  >>> variables = jax.jit(model.init)(jax.random.key(0), inputs)  # jit: one compilation, not op-by-op
  >>> jax.jit(model.apply)(variables, inputs).shape
  (2,)
  """
  backbone: nn.Module
  hidden: int = 256
  bias_init: float = 0.0
  normalize_input: bool = True

  @nn.compact
  def __call__(self, inputs: Union[jax.Array, Mapping[str, jax.Array]], *, train: bool = False) -> jax.Array:
    if isinstance(inputs, Mapping):
      images, freeze = inputs[IMAGE_KEY], inputs.get(FREEZE_KEY)
    else:
      images, freeze = inputs, None
    x = jnp.asarray(images, jnp.float32)
    if self.normalize_input:
      x = (x - jnp.asarray(heads.IMAGENET_MEAN)) / jnp.asarray(heads.IMAGENET_STD)
    features = self.backbone(x, train=train)
    if freeze is not None:
      frozen = jnp.asarray(freeze, bool).reshape(-1, *([1] * (features.ndim - 1)))
      features = jnp.where(frozen, jax.lax.stop_gradient(features), features)
    h = nn.relu(nn.Dense(int(self.hidden), name="mlp_hidden")(features))
    out = nn.Dense(1, name="mlp_out", bias_init=nn.initializers.constant(self.bias_init))(h)
    return out[:, 0]


@register_model("memorability_regressor")
def memorability_regressor(*, backbone: str = "resnet18", backbone_kwargs: Any = None, hidden: int = 256,
                           bias_init: float = 0.0, normalize_input: bool = True) -> MemorabilityRegressor:
  """A backbone of :data:`ranking_jax.models.BACKBONES` with SoDeep's two-layer MLP regressor."""
  return MemorabilityRegressor(get_backbone(backbone, **dict(backbone_kwargs or {})), hidden=int(hidden),
                               bias_init=float(bias_init), normalize_input=normalize_input)


class FeatureRegressor(nn.Module):
  """``features [B, D] -> scores [B]``: SoDeep's two-layer MLP on a frozen trunk's (cached) features.

  The paper's first stage ("only the MLP layers are trained while the weights of the feature extractor are
  kept frozen") when the features are computed once (:func:`ranking_jax.models.pretrained_trunk.feature_splits`).
  Inputs are a float array ``[B, D]`` or a dict ``{"features": [B, D]}``.

  Attributes:
    hidden: width of the MLP's hidden layer.
    bias_init: initial output bias (e.g. the mean target).

  >>> model = FeatureRegressor(hidden=8, bias_init=0.3)
  >>> variables = model.init(jax.random.key(0), {"features": jnp.zeros((2, 5))})
  >>> model.apply(variables, {"features": jnp.zeros((2, 5))}).round(3).tolist()
  [0.3, 0.3]
  """
  hidden: int = 256
  bias_init: float = 0.0

  @nn.compact
  def __call__(self, inputs: Union[jax.Array, Mapping[str, jax.Array]], *, train: bool = False) -> jax.Array:
    del train
    features = inputs[FEATURES_KEY] if isinstance(inputs, Mapping) else inputs
    x = jnp.asarray(features, jnp.float32).reshape(features.shape[0], -1)
    h = nn.relu(nn.Dense(int(self.hidden), name="mlp_hidden")(x))
    out = nn.Dense(1, name="mlp_out", bias_init=nn.initializers.constant(self.bias_init))(h)
    return out[:, 0]


@register_model("feature_regressor")
def feature_regressor(*, hidden: int = 256, bias_init: float = 0.0) -> FeatureRegressor:
  """SoDeep's two-layer MLP regressor on precomputed features (:class:`FeatureRegressor`)."""
  return FeatureRegressor(hidden=int(hidden), bias_init=float(bias_init))
