"""Image augmentations in numpy, as used by the IDE RankNet paper, plus colour-space helpers.

The paper ("IDE RankNet: Estimating the difficulty of visual search in an image", section IV.E) augments
by "randomly changing the contrast, brightness, hue, saturation of the image, flipping the image, and noise
perturbing each pixel". Every function here works on float images in ``[0, 1]`` with shape ``[..., H, W, 3]``
(any leading batch axes), draws one random parameter per image from an explicit
``numpy.random.Generator``, and is vectorised (no per-pixel Python loops). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

Batch = Mapping[str, np.ndarray]


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
  """Converts RGB in ``[0, 1]`` (last axis = 3 channels) to HSV, all three in ``[0, 1]``.

  >>> rgb_to_hsv(np.array([1.0, 0.0, 0.0])).tolist()
  [0.0, 1.0, 1.0]
  """
  rgb = np.asarray(rgb, dtype=np.float32)
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  value = rgb.max(axis=-1)
  minimum = rgb.min(axis=-1)
  chroma = value - minimum
  safe_chroma = np.where(chroma > 0, chroma, 1.0)
  saturation = np.where(value > 0, chroma / np.where(value > 0, value, 1.0), 0.0)
  hue_r = ((g - b) / safe_chroma) % 6.0
  hue_g = (b - r) / safe_chroma + 2.0
  hue_b = (r - g) / safe_chroma + 4.0
  hue = np.where(value == r, hue_r, np.where(value == g, hue_g, hue_b))
  hue = np.where(chroma > 0, hue / 6.0, 0.0) % 1.0
  return np.stack([hue, saturation, value], axis=-1).astype(np.float32)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
  """Inverse of :func:`rgb_to_hsv`.

  >>> hsv_to_rgb(np.array([1.0 / 3.0, 1.0, 0.5])).round(3).tolist()
  [0.0, 0.5, 0.0]
  """
  hsv = np.asarray(hsv, dtype=np.float32)
  hue, saturation, value = hsv[..., 0] % 1.0, hsv[..., 1], hsv[..., 2]
  sector = hue * 6.0
  # Standard piecewise-linear formulation: channel k = v - v s max(0, min(t, 4 - t, 1)), t = (n_k + 6h) mod 6.
  channels = []
  for n in (5.0, 3.0, 1.0):
    t = (n + sector) % 6.0
    channels.append(value - value * saturation * np.clip(np.minimum(t, 4.0 - t), 0.0, 1.0))
  return np.stack(channels, axis=-1).astype(np.float32)


def _per_image(rng: np.random.Generator, images: np.ndarray, low: float, high: float) -> np.ndarray:
  """One uniform draw per image, shaped to broadcast against ``[..., H, W, C]``."""
  batch_shape = images.shape[:-3]
  return rng.uniform(low, high, size=batch_shape + (1, 1, 1)).astype(np.float32)


def random_brightness(images: np.ndarray, rng: np.random.Generator, max_delta: float = 0.1) -> np.ndarray:
  """Adds one uniform offset in ``[-max_delta, max_delta]`` to every pixel of each image."""
  return images + _per_image(rng, images, -max_delta, max_delta)


def random_contrast(images: np.ndarray, rng: np.random.Generator, lower: float = 0.8,
                    upper: float = 1.2) -> np.ndarray:
  """Scales each channel's deviation from its per-image mean by a factor in ``[lower, upper]``."""
  mean = images.mean(axis=(-3, -2), keepdims=True)
  return (images - mean) * _per_image(rng, images, lower, upper) + mean


def random_hue_saturation(images: np.ndarray, rng: np.random.Generator, max_hue_delta: float = 0.05,
                          saturation_lower: float = 0.8, saturation_upper: float = 1.2) -> np.ndarray:
  """Shifts hue by ``[-max_hue_delta, max_hue_delta]`` (fraction of a turn), scales saturation."""
  hsv = rgb_to_hsv(np.clip(images, 0.0, 1.0))
  hue_delta = _per_image(rng, images, -max_hue_delta, max_hue_delta)[..., 0]
  saturation_factor = _per_image(rng, images, saturation_lower, saturation_upper)[..., 0]
  hsv[..., 0] = (hsv[..., 0] + hue_delta) % 1.0
  hsv[..., 1] = np.clip(hsv[..., 1] * saturation_factor, 0.0, 1.0)
  return hsv_to_rgb(hsv)


def random_flip_left_right(images: np.ndarray, rng: np.random.Generator, probability: float = 0.5
                           ) -> np.ndarray:
  """Mirrors each image horizontally with the given probability."""
  flip = rng.uniform(size=images.shape[:-3]) < probability
  return np.where(flip[..., None, None, None], images[..., :, ::-1, :], images)


def pixel_noise(images: np.ndarray, rng: np.random.Generator, stddev: float = 0.02) -> np.ndarray:
  """Adds independent Gaussian noise to every pixel and channel."""
  return images + rng.normal(0.0, stddev, size=images.shape).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Strengths of the paper's augmentations; a zero strength (or a unit range) disables one."""
  max_brightness_delta: float = 0.1
  contrast_range: tuple[float, float] = (0.8, 1.2)
  max_hue_delta: float = 0.05
  saturation_range: tuple[float, float] = (0.8, 1.2)
  flip_probability: float = 0.5
  noise_stddev: float = 0.02


def augment_images(images: np.ndarray, rng: np.random.Generator,
                   config: AugmentConfig = AugmentConfig()) -> np.ndarray:
  """Applies brightness, contrast, hue+saturation, flip and per-pixel noise, then clips to ``[0, 1]``.

  Args:
    images: float images in ``[0, 1]``, shape ``[..., H, W, 3]``.
    rng: the generator that draws every random parameter (pass a seeded one for reproducibility).
    config: augmentation strengths.

  Returns:
    float32 images of the same shape, in ``[0, 1]``.

  >>> rng = np.random.default_rng(0)
  >>> out = augment_images(np.full((2, 4, 4, 3), 0.5, np.float32), rng)
  >>> out.shape, out.dtype, bool(out.min() >= 0.0), bool(out.max() <= 1.0)
  ((2, 4, 4, 3), dtype('float32'), True, True)
  """
  images = np.asarray(images, dtype=np.float32)
  if images.ndim < 3 or images.shape[-1] != 3:
    raise ValueError(f"`images` must have shape [..., H, W, 3], got {images.shape}.")
  images = random_brightness(images, rng, config.max_brightness_delta)
  images = random_contrast(images, rng, *config.contrast_range)
  images = random_hue_saturation(images, rng, config.max_hue_delta, *config.saturation_range)
  images = random_flip_left_right(images, rng, config.flip_probability)
  if config.noise_stddev > 0:
    images = pixel_noise(images, rng, config.noise_stddev)
  return np.clip(images, 0.0, 1.0).astype(np.float32)


def make_augment_transform(config: AugmentConfig = AugmentConfig(), key: str = "image"
                           ) -> Callable[[Batch, np.random.Generator], dict[str, Any]]:
  """A ``transform(batch, rng) -> batch`` for :func:`ranking_jax.data.pipeline.make_train_iterator`.

  >>> transform = make_augment_transform()
  >>> batch = {"image": np.zeros((3, 8, 8, 3), np.float32), "difficulty": np.ones(3)}
  >>> transform(batch, np.random.default_rng(0))["image"].shape
  (3, 8, 8, 3)
  """

  def transform(batch: Batch, rng: np.random.Generator) -> dict[str, Any]:
    out = dict(batch)
    out[key] = augment_images(batch[key], rng, config)
    return out

  return transform
