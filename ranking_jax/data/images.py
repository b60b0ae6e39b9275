"""Image helpers shared by the real-data loaders."""

import numpy as np
from PIL import Image


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes a uint8 ``[H, W, 3]`` (or ``[H, W, 1]``) image to float32 ``[size, size, 3]`` in ``[0, 1]``.

  Bilinear, aspect ratio not kept (the paper resizes every image to 224x224).

  >>> resize_image(np.zeros((5, 7, 3), np.uint8), 4).shape
  (4, 4, 3)
  """
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"expected an image of shape [H, W, 3], got {image.shape}.")
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  if image.dtype != np.uint8:
    image = np.clip(image, 0, 255).astype(np.uint8)
  resized = Image.fromarray(image).resize((size, size), resample=Image.BILINEAR)
  return np.asarray(resized, dtype=np.float32) / 255.0
