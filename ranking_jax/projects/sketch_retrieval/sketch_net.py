r"""The three-branch multi-task network of fine-grained sketch-based image retrieval (Sketch-a-Net style).

From *Deep Multi-task Attribute-driven Ranking for Fine-grained Sketch-based Image Retrieval* (Song,
Song, Xiang, Hospedales, Ruan, BMVC 2016), Sec. 2.1 and Figure 1: "a three branch network" for the query
sketch, the positive and the negative photo, with shared weights; "the task-shared part consists of five
convolution layers with max pooling, as well as a fully-connected (FC) layer"; then "in the main task, one
more FC layer with dropout and rectified linear unit (RELU)" gives the fine-grained feature, and "in the
auxiliary task, a FC layer (with dropout and RELU) extracts fine-grained attribute representations
followed by a score layer". The trunk is Sketch-a-Net's (Yu et al., BMVC 2015): conv 15x15/3 (64), pool,
conv 5x5 (128), pool, three conv 3x3 (256), pool, a 7x7 "FC" conv (512).

Sizes (:data:`SIZES`): ``"paper"`` is that network for 225x225 crops (8.39 M parameters with 21 attributes);
``"small"`` (the default) is the same layout, narrower and with a 7x7/2 first layer, for 64x64 images on a
CPU (0.4 M parameters). Any field can be overridden (``widths``, ``kernels``, ...).

Shared weights are one set of variables applied to the three branches (concatenated on the batch axis, so
one forward pass). Calls:

* ``model.apply(variables, {"anchor": s, "positive": p, "negative": n}, train=...)`` -> ``anchor_embedding``,
  ``positive_embedding``, ``negative_embedding`` ``[B, D]`` and ``anchor_attribute_logits``,
  ``positive_attribute_logits``, ``negative_attribute_logits`` ``[B, N]`` (and ``*_class_logits`` with
  ``num_classes``): the inputs of :func:`ranking_jax.losses.sbir_multitask_loss`.
* ``model.apply(variables, images, train=False)`` with one image array ``[B, H, W, C]`` -> ``embedding``,
  ``attribute_logits`` (, ``class_logits``): the single-branch path for test-time retrieval (embed the query
  sketches and the gallery photos separately, then :func:`ranking_jax.losses.fused_distance`, eq. 6).

Images are float ``[B, H, W, 1 or 3]`` in ``[0, 1]`` with white background and dark strokes (QMUL's
convention); the network inverts them (``1 - x``, strokes become 1 and zero padding is background).
``train=True`` needs a ``"dropout"`` RNG.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Union

import flax.linen as nn
import jax.numpy as jnp

from ranking_jax.models.registry import register_model

Array = jnp.ndarray
BRANCHES = ("anchor", "positive", "negative")


@dataclasses.dataclass(frozen=True)
class SketchNetSize:
  """The layout of the shared trunk and the heads."""
  widths: tuple[int, ...]
  kernels: tuple[int, ...]
  strides: tuple[int, ...]
  paddings: tuple[str, ...]
  pool_after: tuple[int, ...]  # 0-based conv indices followed by a 3x3/2 max pool
  pool_padding: str  # "VALID" (Sketch-a-Net's 15 -> 7) or "SAME" (halves the side)
  fc_features: int  # the shared FC layer
  embedding_dim: int
  attribute_hidden: int


SIZES: Mapping[str, SketchNetSize] = {
    # Sketch-a-Net (Yu et al., BMVC 2015) on 225x225: 71 -> 35 -> 31 -> 15 -> 15 -> 7, then the 7x7 "FC".
    "paper": SketchNetSize(widths=(64, 128, 256, 256, 256), kernels=(15, 5, 3, 3, 3), strides=(3, 1, 1, 1, 1),
                           paddings=("VALID", "VALID", "SAME", "SAME", "SAME"), pool_after=(0, 1, 4),
                           pool_padding="VALID", fc_features=512, embedding_dim=256, attribute_hidden=256),
    # 64x64: 32 -> 16 -> 16 -> 8 -> 8 -> 4, then the FC on 4x4x64.
    "small": SketchNetSize(widths=(16, 32, 64, 64, 64), kernels=(7, 5, 3, 3, 3), strides=(2, 1, 1, 1, 1),
                           paddings=("SAME",) * 5, pool_after=(0, 1, 4), pool_padding="SAME", fc_features=256,
                           embedding_dim=128, attribute_hidden=128),
}


class SketchTrunk(nn.Module):
  """Five convolutions with max pooling and the shared FC layer: ``[B, H, W, C] -> [B, fc_features]``."""
  size: SketchNetSize
  dropout_rate: float = 0.5
  batch_norm: bool = False
  invert_input: bool = True

  @nn.compact
  def __call__(self, images: Array, *, train: bool = False) -> Array:
    x = images.astype(jnp.float32)
    if self.invert_input:
      x = 1.0 - x
    size = self.size
    for k, (width, kernel, stride, padding) in enumerate(zip(size.widths, size.kernels, size.strides,
                                                             size.paddings)):
      x = nn.Conv(width, (kernel, kernel), strides=(stride, stride), padding=padding,
                  use_bias=not self.batch_norm, name=f"conv{k + 1}")(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, axis_name=None, name=f"bn{k + 1}")(x)
      x = nn.relu(x)
      if k in size.pool_after:
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=size.pool_padding)
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(size.fc_features, name="fc6")(x))
    return nn.Dropout(self.dropout_rate, deterministic=not train)(x)


class SketchTripletNet(nn.Module):
  """Three branches with shared weights: embedding head and attribute head (Song et al., BMVC 2016, Fig. 1).

  Attributes:
    size: the trunk and head sizes (:data:`SIZES`).
    num_attributes: attribute logits per image (0: no attribute head, for data without attributes).
    num_classes: an optional classification head on the shared FC (e.g. a pre-training stage); 0: none.
    dropout_rate: dropout after the shared FC and in the attribute head (the paper's "with dropout").
    embedding_relu: ReLU on the embedding (the paper's "FC layer with dropout and RELU").
    normalize_embedding: L2-normalise the embedding (not in the paper): squared distances then lie in
      [0, 4], so the margin of eq. 1 cannot be met by shrinking every embedding towards zero.
    batch_norm: batch norm after each convolution (not in the paper; the three branches share batch
      statistics, computed over the concatenated batch).
    invert_input: feed ``1 - images`` (white-background drawings become zero-background).

  >>> import jax
  >>> model = build_sketch_triplet_net(num_attributes=5)
  >>> batch = {k: jnp.ones((2, 64, 64, 1)) for k in BRANCHES}
  >>> out, variables = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), batch))
  >>> out["anchor_embedding"].shape, out["negative_attribute_logits"].shape
  ((2, 128), (2, 5))
  >>> jax.eval_shape(model.apply, variables, jnp.ones((3, 64, 64, 1)))["embedding"].shape
  (3, 128)
  """
  size: SketchNetSize = SIZES["small"]
  num_attributes: int = 21
  num_classes: int = 0
  dropout_rate: float = 0.5
  embedding_relu: bool = True
  batch_norm: bool = False
  invert_input: bool = True
  normalize_embedding: bool = False

  def setup(self):
    self.trunk = SketchTrunk(self.size, self.dropout_rate, self.batch_norm, self.invert_input)
    self.embedding_dense = nn.Dense(self.size.embedding_dim)
    if self.num_attributes > 0:
      self.attribute_hidden = nn.Dense(self.size.attribute_hidden)
      self.attribute_dropout = nn.Dropout(self.dropout_rate)
      self.attribute_score = nn.Dense(self.num_attributes)
    if self.num_classes > 0:
      self.class_score = nn.Dense(self.num_classes)

  def embed(self, images: Array, *, train: bool = False) -> dict[str, Array]:
    """The single-branch outputs of ``images [B, H, W, C]``: ``embedding`` and ``attribute_logits``."""
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"expected NHWC images [B, H, W, 1 or 3] in [0, 1], got shape {images.shape}.")
    shared = self.trunk(images, train=train)
    embedding = self.embedding_dense(shared)
    if self.embedding_relu:
      embedding = nn.relu(embedding)
    if self.normalize_embedding:
      # The floor keeps an all-zero embedding (a dead ReLU row) finite instead of NaN.
      norm = jnp.sqrt(jnp.sum(jnp.square(embedding), axis=-1, keepdims=True))
      embedding = embedding / jnp.maximum(norm, 1e-6)
    out = {"embedding": embedding}
    if self.num_attributes > 0:
      hidden = self.attribute_dropout(nn.relu(self.attribute_hidden(shared)), deterministic=not train)
      out["attribute_logits"] = self.attribute_score(hidden)
    if self.num_classes > 0:
      out["class_logits"] = self.class_score(shared)
    return out

  def __call__(self, inputs: Union[Array, Mapping[str, Array]], *, train: bool = False) -> dict[str, Array]:
    return apply_branches(self.embed, inputs, train=train)


def apply_branches(embed: Any, inputs: Union[Array, Mapping[str, Array]], *, train: bool) -> dict[str, Array]:
  """``embed(inputs)`` for one batch, or the three-branch outputs ``{"<branch>_<name>": ...}`` of a mapping
  with the keys :data:`BRANCHES` (anchor, positive, negative; one shape), embedded in one pass.

  Raises:
    ValueError: a branch key is missing, or the branches differ in shape.
  """
  if not isinstance(inputs, Mapping):
    return embed(jnp.asarray(inputs), train=train)
  missing = [k for k in BRANCHES if k not in inputs]
  if missing:
    raise ValueError(f"the three-branch input needs keys {BRANCHES}; missing {missing}.")
  images = [jnp.asarray(inputs[k]) for k in BRANCHES]
  if len({x.shape for x in images}) != 1:
    raise ValueError(f"anchor, positive and negative inputs must have one shape, got {[x.shape for x in images]}.")
  batch = images[0].shape[0]
  # One pass over the concatenated branches: shared weights, and one compiled trunk.
  outputs = embed(jnp.concatenate(images, axis=0), train=train)
  return {f"{branch}_{name}": value[k * batch:(k + 1) * batch]
          for k, branch in enumerate(BRANCHES) for name, value in outputs.items()}


def build_sketch_triplet_net(*, size: Union[str, SketchNetSize] = "small", num_attributes: int = 21,
                             num_classes: int = 0, dropout_rate: float = 0.5, embedding_relu: bool = True,
                             batch_norm: bool = False, invert_input: bool = True,
                             normalize_embedding: bool = False,
                             **size_overrides: Any) -> SketchTripletNet:
  """A :class:`SketchTripletNet` of a named size (``"small"``, ``"paper"``) with optional overrides.

  ``size_overrides`` replace fields of :class:`SketchNetSize` (``widths``, ``kernels``, ``strides``,
  ``paddings``, ``pool_after``, ``pool_padding``, ``fc_features``, ``embedding_dim``,
  ``attribute_hidden``).

  Raises:
    ValueError: unknown size name or override, or inconsistent layer lists.
  """
  if isinstance(size, str):
    if size not in SIZES:
      raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}.")
    size = SIZES[size]
  fields = {f.name for f in dataclasses.fields(SketchNetSize)}
  unknown = set(size_overrides) - fields
  if unknown:
    raise ValueError(f"unknown size field(s) {sorted(unknown)}; expected some of {sorted(fields)}.")
  size = dataclasses.replace(size, **{k: tuple(v) if isinstance(v, (list, tuple)) else v
                                      for k, v in size_overrides.items()})
  layers = {len(size.widths), len(size.kernels), len(size.strides), len(size.paddings)}
  if len(layers) != 1:
    raise ValueError(f"widths, kernels, strides and paddings need one length each, got {size}.")
  if num_attributes < 0 or num_classes < 0:
    raise ValueError(f"need num_attributes >= 0 and num_classes >= 0, got {num_attributes}, {num_classes}.")
  return SketchTripletNet(size=size, num_attributes=int(num_attributes), num_classes=int(num_classes),
                          dropout_rate=float(dropout_rate), embedding_relu=bool(embedding_relu),
                          batch_norm=bool(batch_norm), invert_input=bool(invert_input),
                          normalize_embedding=bool(normalize_embedding))


@register_model("sketch_triplet_net")
def sketch_triplet_net(*, size: Union[str, SketchNetSize] = "small", num_attributes: int = 21,
                       num_classes: int = 0, dropout_rate: float = 0.5, embedding_relu: bool = True,
                       batch_norm: bool = False, invert_input: bool = True,
                       normalize_embedding: bool = False,
                       **size_overrides: Any) -> SketchTripletNet:
  """Registry entry of :func:`build_sketch_triplet_net` (``config.model.name = "sketch_triplet_net"``)."""
  return build_sketch_triplet_net(size=size, num_attributes=num_attributes, num_classes=num_classes,
                                  dropout_rate=dropout_rate, embedding_relu=embedding_relu,
                                  batch_norm=batch_norm, invert_input=invert_input,
                                  normalize_embedding=normalize_embedding, **size_overrides)
