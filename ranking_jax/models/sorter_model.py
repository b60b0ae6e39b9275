"""A SoDeep sorter as a trainer model: ``{"scores", "where"} -> normalised ranks``, registered as "sorter"."""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax

from ranking_jax.models.registry import register_model


class SorterModel(nn.Module):
  """Wraps a sorter of :mod:`ranking_jax.sorters.models` so that it takes the trainer's dict inputs.

  Attributes:
    sorter: the sorter module, called as ``sorter(scores [..., d], where [..., d] bool, train=...)`` and
      returning ranks divided by the list length, float32 ``[..., d]`` (SoDeep eq. 1's target scale).
  """

  sorter: nn.Module

  def __call__(self, inputs: Mapping[str, jax.Array], *, train: bool = False) -> jax.Array:
    return self.sorter(inputs["scores"], inputs["where"], train=train)


@register_model("sorter")
def sorter(*, architecture: str = "lstm", **kwargs: Any) -> SorterModel:
  """A :class:`SorterModel` of ``sorters.build_sorter(architecture, **kwargs)`` ("lstm", "cnn", "pairwise")."""
  from ranking_jax.sorters import models as sorter_models  # pylint: disable=g-import-not-at-top
  return SorterModel(sorter_models.build_sorter(architecture, **kwargs))
