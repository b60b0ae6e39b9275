"""Data layer: the embedded procedural scenes, the VOC 2012 difficulty path, batching and augmentation.

Everything here is numpy (no TensorFlow); ``tensorflow_datasets`` is imported only inside the VOC
functions that need it.
"""

from ranking_jax.data.augment import AugmentConfig
from ranking_jax.data.errors import DataNotFoundError
from ranking_jax.data.augment import augment_images
from ranking_jax.data.augment import make_augment_transform
from ranking_jax.data.pipeline import batch_indices
from ranking_jax.data.pipeline import eval_batch_indices
from ranking_jax.data.pipeline import make_eval_iterator
from ranking_jax.data.pipeline import make_train_iterator
from ranking_jax.data.pipeline import prefetch
from ranking_jax.data.pipeline import steps_per_epoch
from ranking_jax.data.scenes import ATTRIBUTE_NAMES
from ranking_jax.data.scenes import CLASS_NAMES
from ranking_jax.data.scenes import ScenesSource
from ranking_jax.data.scenes import make_scenes_splits
from ranking_jax.data.attribute_csv import AttributeCSVSource
from ranking_jax.data.attribute_csv import make_attribute_csv_splits
from ranking_jax.data.celeba import CelebASource
from ranking_jax.data.celeba import make_celeba_splits
from ranking_jax.data.scene_attributes import SceneAttributesSource
from ranking_jax.data.scene_attributes import imbalance_ratios
from ranking_jax.data.scene_attributes import make_scene_attribute_splits
from ranking_jax.data.nuswide import NusWideSource
from ranking_jax.data.nuswide import make_nuswide_splits
from ranking_jax.data.scene_tags import SceneTagsSource
from ranking_jax.data.scene_tags import make_scene_tags_splits
from ranking_jax.data.voc_multilabel import VocMultilabelSource
from ranking_jax.data.voc_multilabel import make_voc2007_splits
from ranking_jax.data.memorability import MemorabilitySource
from ranking_jax.data.memorability import make_memorability_splits
from ranking_jax.data.voc_difficulty import VocDifficultySource
from ranking_jax.data.voc_difficulty import make_voc_difficulty_splits
from ranking_jax.data.voc_difficulty import read_difficulty_csv
from ranking_jax.data import celeba_hq
from ranking_jax.data import feature_cache
from ranking_jax.data import utkface
from ranking_jax.data.feature_cache import FeatureSource
from ranking_jax.data.feature_cache import cached_features
from ranking_jax.data.feature_cache import compute_feature_cache

__all__ = [
    "ATTRIBUTE_NAMES", "AugmentConfig", "CLASS_NAMES", "DataNotFoundError", "ScenesSource",
    "VocDifficultySource", "augment_images", "batch_indices", "eval_batch_indices", "make_augment_transform",
    "make_eval_iterator", "make_scenes_splits", "make_train_iterator", "make_voc_difficulty_splits",
    "prefetch", "read_difficulty_csv", "steps_per_epoch",
    "AttributeCSVSource", "CelebASource", "SceneAttributesSource", "imbalance_ratios",
    "make_attribute_csv_splits", "make_celeba_splits", "make_scene_attribute_splits",
    "NusWideSource", "SceneTagsSource", "VocMultilabelSource",
    "make_nuswide_splits", "make_scene_tags_splits", "make_voc2007_splits",
    "MemorabilitySource", "make_memorability_splits",
    "celeba_hq", "utkface", "feature_cache", "FeatureSource", "cached_features", "compute_feature_cache",
]
