r"""The paper's network shape on top of a frozen pretrained trunk's features: two hidden FC layers + scores.

*Deep Convolutional Ranking for Multilabel Image Annotation* (Gong et al.) ends its AlexNet with two
fully connected layers of 4 096 ReLU units (dropout in training) and a linear layer with one score per
tag. On CelebA-HQ we train only that part, on the cached 1 280-d features of the ImageNet
EfficientNet-Lite0 (:mod:`ranking_jax.models.pretrained_trunk`): ``features [B, D] -> fc6 -> fc7 ->
scores [B, num_tags]``, with the hidden width and dropout rate as options (the CPU default: 512 wide).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from ranking_jax.models.registry import register_model


class TagHead(nn.Module):
  """``features float32 [B, D] -> tag scores float32 [B, num_tags]`` (unnormalised).

  Attributes:
    num_tags: outputs of the last layer.
    fc_width: width of the two hidden fully connected layers (4 096 in the paper).
    num_hidden: number of hidden FC layers (2 in the paper; 0 gives a linear head).
    dropout_rate: dropout after each hidden layer in training (needs a ``"dropout"`` rng then).

  >>> import jax
  >>> head = TagHead(num_tags=5, fc_width=8)
  >>> variables = head.init(jax.random.key(0), jnp.zeros((3, 16)))
  >>> head.apply(variables, jnp.zeros((3, 16))).shape
  (3, 5)
  """
  num_tags: int
  fc_width: int = 512
  num_hidden: int = 2
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, features: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if features.ndim != 2:
      raise ValueError(f"expected pooled features [B, D], got shape {features.shape}.")
    x = features.astype(jnp.float32)
    for layer in range(self.num_hidden):
      x = nn.relu(nn.Dense(self.fc_width, name=f"fc{layer + 6}")(x))
      if self.dropout_rate:
        x = nn.Dropout(self.dropout_rate)(x, deterministic=not train,
                                          rng=self.make_rng("dropout") if train else None)
    return nn.Dense(self.num_tags, name="scores")(x).astype(jnp.float32)


@register_model("tag_head")
def tag_head(*, num_tags: int = 40, fc_width: int = 512, num_hidden: int = 2,
             dropout_rate: float = 0.0) -> TagHead:
  """A :class:`TagHead`; raises ``ValueError`` on a non-positive ``num_tags``/``fc_width`` or a dropout
  rate outside ``[0, 1)``."""
  if int(num_tags) < 1 or int(fc_width) < 1 or int(num_hidden) < 0:
    raise ValueError(f"num_tags and fc_width must be >= 1 and num_hidden >= 0, got {num_tags}, {fc_width}, "
                     f"{num_hidden}.")
  if not 0.0 <= float(dropout_rate) < 1.0:
    raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}.")
  return TagHead(num_tags=int(num_tags), fc_width=int(fc_width), num_hidden=int(num_hidden),
                 dropout_rate=float(dropout_rate))
