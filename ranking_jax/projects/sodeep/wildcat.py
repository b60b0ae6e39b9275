r"""WILDCAT: a fully convolutional multi-label classifier with class-wise and k-max/k-min spatial pooling.

"WILDCAT: Weakly Supervised Learning of Deep ConvNets for Image Classification, Pointwise Localization and
Segmentation" (Durand, Mordan, Thome, Cord, CVPR 2017, §3), the off-the-shelf model of SoDeep's mAP
experiment ("SoDeep: a Sorting Deep net to learn ranking loss surrogates", §4.2.2, Table 4: WILDCAT* on a
ResNet-101). On the backbone's last feature map ``[B, h, w, D]``:

1. *multi-map transfer layer*: a 1x1 convolution to :math:`C \cdot M` maps (M modalities per class);
2. *class-wise pooling*: the mean of each class's M maps, :math:`\bar z^c = \frac1M \sum_m z^{c,m}`;
3. *spatial pooling* of each class map over its :math:`n = hw` regions (WILDCAT eq. 2, with the
   selections written as the k largest / smallest values):

   .. math:: s^c = \frac{1}{k^+} \sum_{i \in \mathrm{top}_{k^+}(\bar z^c)} \bar z^c_i
             + \alpha \, \frac{1}{k^-} \sum_{i \in \mathrm{bottom}_{k^-}(\bar z^c)} \bar z^c_i

``k`` below 1 is a fraction of the regions, ``round(k n)`` (Python rounding, as in the authors'
``wildcat.pytorch``), at least 1; ``k`` of 1 or more is a count, at most ``n``; ``kmin = None`` takes
``kmax``; ``kmin = 0`` or ``alpha = 0`` drop the second term. ``wildcat.pytorch`` also halves :math:`s^c`
when the second term is on; ``pytorch_scaling=True`` does the same (a constant factor on the logits).
Their VOC 2007 recipe: ResNet-101, 448x448 images, ``k = 0.2``, ``M = 8``, ``alpha = 0.7`` (the defaults of
:func:`wildcat`).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from ranking_jax.models.heads import IMAGENET_MEAN
from ranking_jax.models.heads import IMAGENET_STD
from ranking_jax.models.registry import get_backbone
from ranking_jax.models.registry import register_model

Number = Union[int, float]


def num_regions(k: Number, n: int) -> int:
  """The number of regions ``k`` selects among ``n``: a fraction below 1, a count from 1 on.

  >>> num_regions(0.2, 196), num_regions(0.2, 4), num_regions(3, 4), num_regions(10, 4), num_regions(0, 4)
  (39, 1, 3, 4, 0)
  """
  if k < 0:
    raise ValueError(f"the number of regions must be >= 0, got {k}.")
  if k == 0:
    return 0
  if k < 1:
    return max(1, round(k * n))  # wildcat.pytorch would give 0 regions (and divide by 0) for k n < 0.5
  return min(int(k), n)


def class_wise_pooling(maps: jax.Array, num_maps: int) -> jax.Array:
  """Mean of each class's ``num_maps`` maps: ``[B, h, w, C * M] -> [B, h, w, C]`` (channel ``c M + m``).

  >>> class_wise_pooling(jnp.arange(4.0).reshape(1, 1, 1, 4), 2).tolist()
  [[[[0.5, 2.5]]]]
  """
  if maps.ndim != 4 or maps.shape[-1] % num_maps:
    raise ValueError(f"expected maps [B, h, w, C * {num_maps}], got shape {maps.shape}.")
  return jnp.mean(maps.reshape(maps.shape[:3] + (maps.shape[-1] // num_maps, num_maps)), axis=-1)


def wildcat_pooling(maps: jax.Array, kmax: Number = 1, kmin: Optional[Number] = None, alpha: float = 1.0, *,
                    pytorch_scaling: bool = False) -> jax.Array:
  """WILDCAT spatial pooling (eq. 2 of the WILDCAT paper): ``maps [B, h, w, C] -> scores [B, C]``.

  Args:
    maps: class maps.
    kmax: regions of the top term, a fraction (< 1) or a count (>= 1).
    kmin: regions of the bottom term (None: as ``kmax``; 0: no bottom term).
    alpha: weight of the bottom term.
    pytorch_scaling: halve the score when the bottom term is on, as ``wildcat.pytorch`` does.

  >>> maps = jnp.array([1.0, 5.0, 3.0, -2.0]).reshape(1, 2, 2, 1)
  >>> wildcat_pooling(maps, kmax=2, kmin=1, alpha=0.5).tolist()  # (5 + 3) / 2 + 0.5 * -2
  [[3.0]]
  """
  if maps.ndim != 4:
    raise ValueError(f"expected class maps [B, h, w, C], got shape {maps.shape}.")
  n = maps.shape[1] * maps.shape[2]
  k_top = num_regions(kmax, n)
  k_bottom = num_regions(kmax if kmin is None else kmin, n)
  if k_top == 0:
    raise ValueError("`kmax` must select at least one region.")
  regions = jnp.moveaxis(maps.reshape(maps.shape[0], n, maps.shape[-1]), 1, -1)  # [B, C, n]
  scores = jnp.mean(jax.lax.top_k(regions, k_top)[0], axis=-1)
  if k_bottom > 0 and alpha != 0:
    scores = scores - alpha * jnp.mean(jax.lax.top_k(-regions, k_bottom)[0], axis=-1)
    if pytorch_scaling:
      scores = scores / 2
  return scores


class WildcatHead(nn.Module):
  """Transfer layer, class-wise pooling and spatial pooling: ``features [B, h, w, D] -> scores [B, C]``.

  Attributes: as :class:`Wildcat`. Variables: ``params/transfer/{kernel,bias}`` (1x1 convolution with bias).
  """
  num_classes: int
  num_maps: int = 8
  kmax: Number = 0.2
  kmin: Optional[Number] = None
  alpha: float = 0.7
  pytorch_scaling: bool = False

  @nn.compact
  def __call__(self, features: jax.Array, *, return_maps: bool = False) -> Any:
    if features.ndim != 4:
      raise ValueError(f"WILDCAT needs a feature map [B, h, w, D], got shape {features.shape}; build the "
                       "backbone with pool=False (ResNet backbones).")
    maps = nn.Conv(self.num_classes * self.num_maps, (1, 1), name="transfer")(features)
    class_maps = class_wise_pooling(maps, self.num_maps)
    scores = wildcat_pooling(class_maps, self.kmax, self.kmin, self.alpha,
                             pytorch_scaling=self.pytorch_scaling)
    return (scores, class_maps) if return_maps else scores


class Wildcat(nn.Module):
  """WILDCAT multi-label classifier: ``images [B, H, W, 3] in [0, 1] -> scores [B, num_classes]`` (logits).

  Attributes:
    backbone: a fully convolutional feature extractor returning ``[B, h, w, D]`` (a ResNet with
      ``pool=False``).
    num_classes: C.
    num_maps: M, maps per class of the transfer layer.
    kmax, kmin, alpha: the spatial pooling (see :func:`wildcat_pooling`).
    pytorch_scaling: halve the pooled score like ``wildcat.pytorch``.
    normalize_input: subtract the ImageNet mean and divide by its std first.
    return_maps: return ``{"scores": [B, C], "maps": [B, h, w, C]}`` (the class maps, for localisation).

  >>> from ranking_jax.models.resnet import ResNet
  >>> model = Wildcat(ResNet(stage_sizes=(1, 1, 1, 1), bottleneck=False, width=8, pool=False),
  ...                 num_classes=3, num_maps=2, return_maps=True)
  >>> images = jax.ShapeDtypeStruct((2, 128, 128, 3), jnp.float32)
  >>> variables = jax.eval_shape(model.init, jax.random.key(0), images)
  >>> {k: v.shape for k, v in jax.eval_shape(model.apply, variables, images).items()}
  {'maps': (2, 4, 4, 3), 'scores': (2, 3)}
  """
  backbone: nn.Module
  num_classes: int
  num_maps: int = 8
  kmax: Number = 0.2
  kmin: Optional[Number] = None
  alpha: float = 0.7
  pytorch_scaling: bool = False
  normalize_input: bool = True
  return_maps: bool = False

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool = False) -> Any:
    if isinstance(images, Mapping):
      images = images["image"]
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"expected NHWC RGB images [B, H, W, 3] in [0, 1], got shape {images.shape}.")
    x = images.astype(jnp.float32)
    if self.normalize_input:
      x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
    features = self.backbone(x, train=train)
    head = WildcatHead(self.num_classes, self.num_maps, self.kmax, self.kmin, self.alpha,
                       self.pytorch_scaling, name="head")
    scores, maps = head(features, return_maps=True)
    return {"scores": scores, "maps": maps} if self.return_maps else scores


@register_model("wildcat")
def wildcat(*, backbone: str = "resnet101", backbone_kwargs: Optional[Mapping[str, Any]] = None,
            num_classes: int = 20, maps: int = 8, kmax: Number = 0.2, kmin: Optional[Number] = None,
            alpha: float = 0.7, pytorch_scaling: bool = False, normalize_input: bool = True,
            return_maps: bool = False) -> Wildcat:
  """WILDCAT on backbone ``backbone`` (a ResNet of the registry, built with ``pool=False``).

  Defaults: the authors' VOC 2007 recipe (ResNet-101, M = 8, k = 0.2, alpha = 0.7); for a CPU-sized run pass
  e.g. ``backbone="resnet18", backbone_kwargs={"width": 16}`` and images of 128 px or more (the ResNet's
  stride is 32: 64 px images leave a 2x2 map).

  Raises:
    ValueError: a backbone without a spatial output (``pool=False``), or bad sizes.
  """
  if num_classes < 1 or maps < 1:
    raise ValueError(f"`num_classes` and `maps` must be >= 1, got {num_classes}, {maps}.")
  kwargs = dict(backbone_kwargs or {})
  kwargs["pool"] = False
  try:
    features = get_backbone(backbone, **kwargs)
  except TypeError as error:
    raise ValueError(f"backbone {backbone!r} has no spatial output (pool=False); WILDCAT needs one of the "
                     f"ResNets: {error}") from None
  num_regions(kmax, 1)  # validates
  if kmin is not None:
    num_regions(kmin, 1)
  return Wildcat(features, num_classes=num_classes, num_maps=maps, kmax=kmax, kmin=kmin, alpha=alpha,
                 pytorch_scaling=pytorch_scaling, normalize_input=normalize_input, return_maps=return_maps)
