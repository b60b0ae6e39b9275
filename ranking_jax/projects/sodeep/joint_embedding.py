"""A two-path joint image-text embedding for cross-modal retrieval (SoDeep §4.2.3, Table 3).

SoDeep trains DSVE-Loc ("Finding beans in burgers: deep semantic-visual embedding with localization",
Engilberge et al., CVPR 2018): a ResNet-152 visual path and a recurrent textual path trained from scratch,
both ending in L2-normalised vectors of one space, compared by cosine similarity. Here the visual path is a
backbone of the registry (globally pooled features) and a linear projection; the textual path embeds the
words, runs a GRU over them (the last valid step's state: ``flax.linen.RNN`` with ``seq_lengths``) and
projects that state, as VSE++ ("VSE++: Improving Visual-Semantic Embeddings with Hard Negatives", Faghri
et al., BMVC 2018) does; DSVE uses a 4-layer SRU instead of the GRU.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from ranking_jax.models.heads import IMAGENET_MEAN
from ranking_jax.models.heads import IMAGENET_STD
from ranking_jax.models.registry import get_backbone
from ranking_jax.models.registry import register_model

_EPSILON = 1e-12


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
  """``x / |x|`` along ``axis``; finite value and gradient at ``x = 0`` (the result is then 0).

  >>> l2_normalize(jnp.array([3.0, 4.0])).tolist()
  [0.6000000238418579, 0.800000011920929]
  """
  return x * jax.lax.rsqrt(jnp.sum(x * x, axis=axis, keepdims=True) + _EPSILON)


class GRUTextEncoder(nn.Module):
  """Word embedding, GRU and projection: ``tokens [..., L] int, lengths [...] -> [..., embed_dim]``.

  The output is the projection of the GRU state after the last valid token (``lengths`` clipped to
  ``[1, L]``), L2-normalised. Padding tokens after ``lengths`` do not change it.

  Attributes:
    vocab_size: number of token ids (``len(vocabulary)``).
    embed_dim: joint-space dimension.
    word_dim: word-embedding dimension.
    hidden_dim: GRU state dimension.
  """
  vocab_size: int
  embed_dim: int = 1024
  word_dim: int = 300
  hidden_dim: int = 1024

  @nn.compact
  def __call__(self, tokens: jax.Array, lengths: jax.Array) -> jax.Array:
    if tokens.ndim < 1 or lengths.shape != tokens.shape[:-1]:
      raise ValueError(f"expected tokens [..., L] and lengths [...], got {tokens.shape} and {lengths.shape}.")
    batch_shape, max_len = tokens.shape[:-1], tokens.shape[-1]
    flat_tokens = tokens.reshape(-1, max_len).astype(jnp.int32)
    flat_lengths = jnp.clip(lengths.reshape(-1).astype(jnp.int32), 1, max_len)
    words = nn.Embed(self.vocab_size, self.word_dim, name="word_embedding")(flat_tokens)
    state, _ = nn.RNN(nn.GRUCell(self.hidden_dim), return_carry=True, name="gru")(
        words, seq_lengths=flat_lengths)
    embedding = nn.Dense(self.embed_dim, name="projection")(state)
    return l2_normalize(embedding).reshape(batch_shape + (self.embed_dim,))


class JointEmbedding(nn.Module):
  """Images and captions into one L2-normalised space.

  Input: a dict with ``image`` float ``[B, H, W, 3]`` in ``[0, 1]`` and/or ``captions`` int ``[..., L]``
  with ``caption_lengths`` int ``[...]`` (e.g. ``[B, 5, L]`` and ``[B, 5]``: five captions per image).
  Output: a dict with ``image_embedding`` float32 ``[B, embed_dim]`` and/or ``caption_embedding`` float32
  ``[..., embed_dim]`` (unit vectors: their dot products are cosine similarities). Initialise with both
  inputs; apply with either or both.

  Attributes:
    image_encoder: a backbone returning pooled features ``[B, D]`` (see
      :func:`ranking_jax.models.get_backbone`).
    vocab_size, embed_dim, word_dim, hidden_dim: see :class:`GRUTextEncoder`.
    normalize_input: subtract the ImageNet mean and divide by its std first.

  >>> from ranking_jax.models.resnet import ResNet
  >>> model = JointEmbedding(ResNet(stage_sizes=(1, 1, 1, 1), bottleneck=False, width=8), vocab_size=10,
  ...                        embed_dim=6, word_dim=4, hidden_dim=5)
  >>> inputs = {"image": jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32),
  ...           "captions": jax.ShapeDtypeStruct((2, 5, 7), jnp.int32),
  ...           "caption_lengths": jax.ShapeDtypeStruct((2, 5), jnp.int32)}
  >>> variables = jax.eval_shape(model.init, jax.random.key(0), inputs)
  >>> {k: v.shape for k, v in jax.eval_shape(model.apply, variables, inputs).items()}
  {'caption_embedding': (2, 5, 6), 'image_embedding': (2, 6)}
  """
  image_encoder: nn.Module
  vocab_size: int
  embed_dim: int = 1024
  word_dim: int = 300
  hidden_dim: int = 1024
  normalize_input: bool = True

  @nn.compact
  def __call__(self, inputs: Mapping[str, jax.Array], *, train: bool = False) -> dict[str, jax.Array]:
    if not isinstance(inputs, Mapping) or not ({"image", "captions"} & set(inputs)):
      raise ValueError("JointEmbedding expects a dict with 'image' and/or 'captions' (+ 'caption_lengths').")
    outputs = {}
    if "image" in inputs:
      images = inputs["image"]
      if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected NHWC RGB images [B, H, W, 3] in [0, 1], got shape {images.shape}.")
      x = images.astype(jnp.float32)
      if self.normalize_input:
        x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
      features = self.image_encoder(x, train=train)
      if features.ndim != 2:
        raise ValueError(f"the image encoder must return pooled features [B, D], got {features.shape}.")
      outputs["image_embedding"] = l2_normalize(nn.Dense(self.embed_dim, name="image_projection")(features))
    if "captions" in inputs:
      if "caption_lengths" not in inputs:
        raise ValueError("'captions' needs 'caption_lengths' (tokens per caption).")
      outputs["caption_embedding"] = GRUTextEncoder(
          self.vocab_size, self.embed_dim, self.word_dim, self.hidden_dim, name="text_encoder")(
              inputs["captions"], inputs["caption_lengths"])
    return outputs


@register_model("joint_embedding")
def joint_embedding(*, vocab_size: int, backbone: str = "resnet152",
                    backbone_kwargs: Optional[Mapping[str, Any]] = None, embed_dim: int = 1024,
                    word_dim: int = 300, hidden_dim: int = 1024, normalize_input: bool = True
                    ) -> JointEmbedding:
  """A :class:`JointEmbedding` on backbone ``backbone`` (built with ``backbone_kwargs``).

  Defaults: ResNet-152 as in DSVE-Loc, VSE++'s sizes (1024-d space, 300-d words, 1024-d GRU); for a
  CPU-sized run pass e.g. ``backbone="resnet18", backbone_kwargs={"width": 16}, embed_dim=128``.
  """
  if vocab_size < 5:
    raise ValueError(f"`vocab_size` must count the special tokens and words (>= 5), got {vocab_size}.")
  return JointEmbedding(get_backbone(backbone, **dict(backbone_kwargs or {})), vocab_size=vocab_size,
                        embed_dim=embed_dim, word_dim=word_dim, hidden_dim=hidden_dim,
                        normalize_input=normalize_input)
