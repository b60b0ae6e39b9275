"""Shared data: sources and batching, the embedded scenes, the real datasets used by several papers, the
dataset registry, render-once and feature caches, augmentation.

A paper's private data lives in its project (``ranking_jax/projects/<paper>/``) and registers its dataset
names there. Everything here is numpy (no TensorFlow); ``tensorflow_datasets`` is imported only inside the
functions that read TFDS data.

Datasets registered here (:func:`build_splits` by ``config.data.name``): ``celeba_hq`` (30 000 CelebA-HQ
faces, 40 attributes; :mod:`~ranking_jax.data.celeba_hq`) and ``utkface`` (UTKFace faces with age, gender
and ethnicity; :mod:`~ranking_jax.data.utkface`).
"""

from ranking_jax.data import celeba_hq
from ranking_jax.data import feature_cache
from ranking_jax.data import registry
from ranking_jax.data import utkface
from ranking_jax.data.augment import AugmentConfig
from ranking_jax.data.augment import augment_images
from ranking_jax.data.augment import make_augment_transform
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.data.feature_cache import FeatureSource
from ranking_jax.data.feature_cache import cached_features
from ranking_jax.data.feature_cache import compute_feature_cache
from ranking_jax.data.pipeline import batch_indices
from ranking_jax.data.pipeline import eval_batch_indices
from ranking_jax.data.pipeline import make_eval_iterator
from ranking_jax.data.pipeline import make_train_iterator
from ranking_jax.data.pipeline import prefetch
from ranking_jax.data.pipeline import steps_per_epoch
from ranking_jax.data.registry import DATASETS
from ranking_jax.data.registry import build_splits
from ranking_jax.data.registry import register_dataset
from ranking_jax.data.scenes import ATTRIBUTE_NAMES
from ranking_jax.data.scenes import CLASS_NAMES
from ranking_jax.data.scenes import ScenesSource
from ranking_jax.data.scenes import make_scenes_splits
from ranking_jax.data.voc_multilabel import VocMultilabelSource
from ranking_jax.data.voc_multilabel import make_voc2007_splits

register_dataset("celeba_hq")(celeba_hq.build_splits)
register_dataset("utkface")(utkface.build_splits)

__all__ = [
    "ATTRIBUTE_NAMES", "AugmentConfig", "CLASS_NAMES", "DATASETS", "DataNotFoundError", "FeatureSource",
    "ScenesSource", "VocMultilabelSource", "augment_images", "batch_indices", "build_splits",
    "cached_features", "celeba_hq", "compute_feature_cache", "eval_batch_indices", "feature_cache",
    "make_augment_transform", "make_eval_iterator", "make_scenes_splits", "make_train_iterator",
    "make_voc2007_splits", "prefetch", "register_dataset", "registry", "steps_per_epoch", "utkface",
]
