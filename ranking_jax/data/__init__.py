"""Data layer: the embedded procedural scenes, the VOC 2012 difficulty path, batching and augmentation.

Everything here is numpy (no TensorFlow); ``tensorflow_datasets`` is imported only inside the VOC
functions that need it.
"""

from ranking_jax.data.augment import AugmentConfig
from ranking_jax.data.augment import augment_images
from ranking_jax.data.augment import make_augment_transform
from ranking_jax.data.pipeline import batch_indices
from ranking_jax.data.pipeline import eval_batch_indices
from ranking_jax.data.pipeline import make_eval_iterator
from ranking_jax.data.pipeline import make_train_iterator
from ranking_jax.data.pipeline import prefetch
from ranking_jax.data.pipeline import shard
from ranking_jax.data.pipeline import steps_per_epoch
from ranking_jax.data.scenes import ATTRIBUTE_NAMES
from ranking_jax.data.scenes import CLASS_NAMES
from ranking_jax.data.scenes import ScenesSource
from ranking_jax.data.scenes import make_scenes_splits
from ranking_jax.data.voc_difficulty import DataNotFoundError
from ranking_jax.data.voc_difficulty import VocDifficultySource
from ranking_jax.data.voc_difficulty import make_voc_difficulty_splits
from ranking_jax.data.voc_difficulty import read_difficulty_csv

__all__ = [
    "ATTRIBUTE_NAMES", "AugmentConfig", "CLASS_NAMES", "DataNotFoundError", "ScenesSource",
    "VocDifficultySource", "augment_images", "batch_indices", "eval_batch_indices", "make_augment_transform",
    "make_eval_iterator", "make_scenes_splits", "make_train_iterator", "make_voc_difficulty_splits",
    "prefetch", "read_difficulty_csv", "shard", "steps_per_epoch",
]
