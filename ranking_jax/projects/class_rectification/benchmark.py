"""Speed of the Class Rectification experiment: its train step per variant and the CRL term alone.

Used by ``python -m experiments.benchmark class_rectification``; generic timing helpers live in
:mod:`ranking_jax.benchmarking`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax.benchmarking import median_ms


def _imbalanced_attribute_labels(rng: np.random.Generator, batch: int) -> np.ndarray:
  """Labels ``[batch, 28]`` of the embedded scene attributes with their measured imbalance (no rendering)."""
  from ranking_jax.projects.class_rectification import scene_attributes  # pylint: disable=g-import-not-at-top
  columns = []
  for spec in scene_attributes.ATTRIBUTES:
    ratio = scene_attributes.MEASURED_IMBALANCE[spec.name]
    if spec.binary:
      columns.append((rng.random(batch) < 1.0 / (1.0 + ratio)).astype(np.int32))
    else:  # a dominant value and a power-law tail
      p = 1.0 / np.arange(1, spec.num_values + 1) ** 2.0
      columns.append(rng.choice(spec.num_values, size=batch, p=p / p.sum()).astype(np.int32))
  return np.stack(columns, axis=1)


def time_class_rectification(make_config: Callable[[str], Any], *,
                             train_batches: Sequence[int] = (128, 512),
                             loss_batches: Sequence[int] = (128, 256, 512, 1024, 2048),
                             variants: Optional[Sequence[str]] = None, image_size: int = 64,
                             repeats: int = 3, seed: int = 0) -> Dict[str, List[Dict[str, float]]]:
  """Speed of the Class Rectification experiment (``experiments/benchmark.py class_rectification``).

  * ``"train_step"``: median ms of the trainer's own compiled step (:func:`ranking_jax.train.measure_train_step`:
    forward, loss terms, backward, ``pmean``, optimizer update) of each variant's config
    (``make_config(variant)``, i.e. ``configs/class_rectification.py``: the default ``deepid2_attributes``
    model, 28 scene attributes) on random ``image_size`` images, at each batch of ``train_batches``;
    ``ratio_to_ce`` is the step time over ``ce``'s at the same batch.
  * ``"crl_loss"``: median ms of the CRL term alone (forward + gradients to logits and features, logits
    ``[B, 28, 41]``, features ``[B, 28, 64]``) at each batch of ``loss_batches``; ``ms_per_128`` shows
    whether it grows linearly with the batch (constant ``ms_per_128``).

  Labels follow the scenes' measured imbalance (:data:`ranking_jax.projects.class_rectification.scene_attributes.MEASURED_IMBALANCE`).
  """
  import itertools  # pylint: disable=g-import-not-at-top
  from ranking_jax import models  # pylint: disable=g-import-not-at-top
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  from ranking_jax.projects.class_rectification import scene_attributes  # pylint: disable=g-import-not-at-top
  from ranking_jax.projects.class_rectification import class_rectification as task  # pylint: disable=g-import-not-at-top
  variants = tuple(variants or ("ce",) + task.CRL_VARIANTS)
  num_values = scene_attributes.NUM_VALUES
  rng = np.random.default_rng(seed)
  out: Dict[str, List[Dict[str, float]]] = {"train_step": [], "crl_loss": []}

  for batch in train_batches:
    fixed = {"inputs": rng.random((batch, image_size, image_size, 3), dtype=np.float32),
             "attributes": _imbalanced_attribute_labels(rng, batch)}
    ce_ms = None
    for variant in variants:
      config = make_config(variant)
      config.batch_size = batch
      model = models.build_model(config.model.name, num_values=num_values, **config.model.kwargs.to_dict())
      timing_task = train.Task(model=model, loss_terms=task.make_loss_terms(variant, num_values),
                               make_train_iterator=lambda *_: itertools.repeat(fixed))
      ms = train.measure_train_step(config, timing_task, repeats)["step_ms"]
      if variant == "ce":
        ce_ms = ms
      out["train_step"].append({"variant": variant, "batch": batch, "ms": ms,
                                "ratio_to_ce": ms / ce_ms if ce_ms else float("nan")})

  crl_variant = "crl_instance_relative"
  term = task.make_loss_terms(crl_variant, num_values)["crl"]
  grad = jax.jit(jax.grad(lambda lo, f, y: term({"logits": lo, "features": f}, {"attributes": y}),
                          argnums=(0, 1)))
  for batch in loss_batches:
    logits = rng.normal(size=(batch, len(num_values), max(num_values))).astype(np.float32)
    for j, n in enumerate(num_values):
      logits[:, j, n:] = -1e9
    features = np.abs(rng.normal(size=(batch, len(num_values), 64))).astype(np.float32)
    args = (jnp.asarray(logits), jnp.asarray(features), jnp.asarray(_imbalanced_attribute_labels(rng, batch)))
    jax.block_until_ready(grad(*args))
    ms = median_ms(lambda: grad(*args), min_repeats=repeats, min_seconds=0.0, max_repeats=repeats)
    out["crl_loss"].append({"variant": crl_variant, "batch": batch, "ms": ms, "ms_per_128": ms * 128 / batch})
  return out
