"""Multi-task loss schedules: how the named loss terms are combined at each step.

Every schedule is a pure function of the *traced* global step, evaluated inside the jitted train step, so
changing which loss is active never recompiles. Two shapes are accepted by the trainer:

* a plain :data:`ranking_jax.types.Schedule`, ``schedule(step) -> {name: weight}``; the total loss is
  :math:`\\sum_k w_k(t)\\,L_k` (:func:`alternating`, :func:`weighted`, :func:`piecewise`);
* a :class:`LossWeighting`, which may own trainable parameters (:func:`uncertainty`); its parameters live
  in ``state.params["loss_weights"]`` and are updated by the optimizer together with the model.

:func:`as_weighting` turns the former into the latter; :func:`from_config` builds either from
``config.multitask``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp

from ranking_jax import types
from ranking_jax.train.config import ConfigValueError

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class LossWeighting:
  """Combines per-term losses into the scalar that is differentiated.

  Attributes:
    names: the loss-term names this weighting expects (checked against the task's ``loss_terms``).
    init_params: ``() -> pytree`` of trainable weighting parameters (``{}`` when there are none).
    combine: ``(step, losses, params) -> (total, weights)``: ``losses`` maps names to scalars, ``params``
      is the pytree from ``init_params`` (as trained), ``weights`` maps names to the effective weight
      that was applied (logged as ``weight/<name>``).
  """

  names: tuple[str, ...]
  init_params: Callable[[], Any]
  combine: Callable[[Array, Mapping[str, Array], Any], tuple[Array, Mapping[str, Array]]]


def _at_least_float32(x: Array) -> Array:
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_names(expected: Iterable[str], given: Iterable[str], what: str) -> None:
  expected, given = sorted(expected), sorted(given)
  if expected != given:
    raise ConfigValueError(f"{what} names the loss terms {given}, but the task defines {expected}.")


def as_weighting(schedule: types.Schedule | LossWeighting, names: Sequence[str]) -> LossWeighting:
  """Wraps a plain ``step -> weights`` schedule into a :class:`LossWeighting` (a weighted sum).

  Terms missing from the schedule's output get weight 0; unknown names raise ``ValueError`` at trace time.
  """
  if isinstance(schedule, LossWeighting):
    _check_names(names, schedule.names, "The loss weighting")
    return schedule
  names = tuple(names)

  def combine(step, losses, params):
    del params
    weights = dict(schedule(step))
    unknown = set(weights) - set(losses)
    if unknown:
      raise ValueError(f"The schedule returned weights for {sorted(unknown)}, which are not loss terms "
                       f"({sorted(losses)}).")
    weights = {name: jnp.asarray(weights.get(name, 0.0), jnp.float32) for name in losses}
    total = sum(weights[name] * _at_least_float32(losses[name]) for name in losses)
    return total, weights

  return LossWeighting(names=names, init_params=dict, combine=combine)


def weighted(weights: Mapping[str, float]) -> types.Schedule:
  r"""Fixed weights: :math:`L = \sum_k \lambda_k L_k`.

  IDE RankNet eq. 5 is ``weighted({"rank": lam, "mse": 1 - lam})``:

  .. math:: \text{loss} = \lambda\,\text{rankloss}_{\text{modified}} + (1-\lambda)\,\text{loss}_{\text{mse}}

  and the sketch-retrieval objective of "Deep Multi-task Attribute-driven Ranking for Fine-grained
  Sketch-based Image Retrieval" (its eq. 5, without the weight-decay term, which belongs to the optimizer)
  is ``weighted({"triplet": 1, "attribute_rank": 1, "attr_s": .01, "attr_pos": .01, "attr_neg": .01})``.

  >>> schedule = weighted({"rank": 0.7, "mse": 0.3})
  >>> {k: float(v) for k, v in schedule(jnp.int32(5)).items()}
  {'rank': 0.7..., 'mse': 0.3...}
  """
  weights = {name: float(value) for name, value in weights.items()}

  def schedule(step: Array) -> dict[str, Array]:
    del step
    return {name: jnp.float32(value) for name, value in weights.items()}

  return schedule


def alternating(main: str, auxiliary: str, *, frequency: int, steps_per_unit: int = 1,
                first_unit: int = 1) -> types.Schedule:
  r"""Alternating training, Algorithm 1 of "IDE RankNet: Estimating the difficulty of visual search in an image".

  Time is counted in units of ``steps_per_unit`` steps (the steps of one epoch for ``unit="epochs"``, 1 for
  ``unit="steps"``); with the unit index :math:`t = \lfloor \text{step} / \text{steps\_per\_unit}
  \rfloor + t_0` (:math:`t_0` = ``first_unit``: 1 in Algorithm 1, whose loop runs ``for t=1 to T``; 0 in
  the authors' public ``train.py``, whose ``for epoch in range(210)`` trains the MSE when
  ``epoch % 3 == 0``: the MSE first, and the last of 210 epochs a rank epoch),

  .. math::
     \text{loss}_t = \begin{cases} \text{loss}_{\text{mse}} & t \bmod f = 0 \\
                                   \text{rankloss}_{\text{modified}} & \text{otherwise} \end{cases}

  so with :math:`f = 3` (the paper's value) two units train the rank loss, then one the MSE, repeatedly.
  Exactly one weight is 1, the other 0.

  Args:
    main: name of the main loss term (the rank loss).
    auxiliary: name of the auxiliary loss term (the MSE), used every ``frequency``-th unit.
    frequency: the alternation frequency ``f`` (>= 1; 1 trains the auxiliary loss only).
    steps_per_unit: steps per unit of time (steps per epoch, or 1).
    first_unit: the index :math:`t_0` of the first unit (0 or 1; see above).

  >>> schedule = alternating("rank", "mse", frequency=3, steps_per_unit=2)
  >>> [int(schedule(jnp.int32(s))["mse"]) for s in range(8)]
  [0, 0, 0, 0, 1, 1, 0, 0]
  >>> schedule = alternating("rank", "mse", frequency=3, steps_per_unit=2, first_unit=0)
  >>> [int(schedule(jnp.int32(s))["mse"]) for s in range(8)]
  [1, 1, 0, 0, 0, 0, 1, 1]
  """
  if frequency < 1 or steps_per_unit < 1:
    raise ConfigValueError(f"`frequency` and `steps_per_unit` must be >= 1, got {frequency} and {steps_per_unit}.")
  if main == auxiliary:
    raise ConfigValueError(f"`main` and `auxiliary` must differ, got {main!r} twice.")
  if first_unit not in (0, 1):
    raise ConfigValueError(f"`first_unit` must be 0 or 1, got {first_unit!r}.")

  def schedule(step: Array) -> dict[str, Array]:
    unit = jnp.asarray(step, jnp.int32) // steps_per_unit + first_unit
    use_auxiliary = (unit % frequency == 0).astype(jnp.float32)
    return {main: 1.0 - use_auxiliary, auxiliary: use_auxiliary}

  return schedule


def piecewise(boundaries: Sequence[int], weights: Sequence[Mapping[str, float]]) -> types.Schedule:
  """Piecewise-constant weights: ``weights[i]`` applies for ``boundaries[i-1] <= step < boundaries[i]``.

  For instance SoDeep's memorability fine-tuning adds an L1 term during the first epoch only:
  ``piecewise([steps_per_epoch], [{"spearman": 1, "l1": 1}, {"spearman": 1, "l1": 0}])``.

  >>> schedule = piecewise([2], [{"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 0.0}])
  >>> [float(schedule(jnp.int32(s))["b"]) for s in range(4)]
  [1.0, 1.0, 0.0, 0.0]
  """
  if len(weights) != len(boundaries) + 1:
    raise ConfigValueError(f"Need len(boundaries) + 1 weight sets, got {len(boundaries)} boundaries and "
                     f"{len(weights)} weight sets.")
  if list(boundaries) != sorted(boundaries):
    raise ConfigValueError(f"`boundaries` must be increasing, got {list(boundaries)}.")
  names = sorted({name for w in weights for name in w})
  table = jnp.asarray([[float(w.get(name, 0.0)) for name in names] for w in weights], jnp.float32)
  bounds = jnp.asarray(list(boundaries), jnp.int32)

  def schedule(step: Array) -> dict[str, Array]:
    index = jnp.sum(jnp.asarray(step, jnp.int32) >= bounds)
    row = table[index]
    return {name: row[i] for i, name in enumerate(names)}

  return schedule


def uncertainty(names: Sequence[str], *, init_log_variance: float = 0.0) -> LossWeighting:
  r"""Learned homoscedastic-uncertainty weights (Kendall, Gal and Cipolla, CVPR 2018, eq. 7).

  With one trainable log-variance :math:`s_k = \log\sigma_k^2` per term,

  .. math:: L = \sum_k \tfrac12 e^{-s_k} L_k + \tfrac12 s_k ,

  the regression form of the paper; the logged weight of term :math:`k` is :math:`\tfrac12 e^{-s_k}`.
  The :math:`s_k` are stored in ``state.params["loss_weights"]`` and trained by the same optimizer (weight
  decay is not applied to them).

  >>> weighting = uncertainty(["rank", "mse"])
  >>> params = weighting.init_params()
  >>> total, w = weighting.combine(0, {"rank": jnp.float32(2.0), "mse": jnp.float32(4.0)}, params)
  >>> float(total), float(w["mse"])
  (3.0, 0.5)
  """
  names = tuple(names)
  if not names:
    raise ConfigValueError("`uncertainty` needs at least one loss-term name.")

  def init_params():
    return {name: jnp.full((), init_log_variance, jnp.float32) for name in names}

  def combine(step, losses, params):
    del step
    _check_names(names, losses.keys(), "The task's loss terms")
    weights = {name: 0.5 * jnp.exp(-params[name]) for name in names}
    total = sum(weights[name] * _at_least_float32(losses[name]) + 0.5 * params[name] for name in names)
    return total, weights

  return LossWeighting(names=names, init_params=init_params, combine=combine)


def from_config(config: Any, names: Sequence[str], *, steps_per_epoch: int) -> LossWeighting:
  """Builds the weighting named by ``config.name`` (``config`` is ``config.multitask``).

  * ``weighted``: ``config.weights`` (a mapping name -> weight; missing names get 1.0);
  * ``alternating``: ``config.main``, ``config.auxiliary``, ``config.frequency``, ``config.unit``
    (``"epochs"`` or ``"steps"``) and the optional ``config.first_unit`` (default 1, Algorithm 1);
  * ``uncertainty``: ``config.init_log_variance``.
  """
  names = tuple(names)
  name = config.name
  if name == "weighted":
    given = dict(config.get("weights", None) or {})
    unknown = set(given) - set(names)
    if unknown:
      raise ConfigValueError(f"config.multitask.weights names {sorted(unknown)}, which are not loss terms "
                             f"({sorted(names)}).")
    return as_weighting(weighted({n: given.get(n, 1.0) for n in names}), names)
  if name == "alternating":
    unit = config.unit
    if unit not in ("epochs", "steps"):
      raise ConfigValueError(f"config.multitask.unit must be 'epochs' or 'steps', got {unit!r}.")
    for role in ("main", "auxiliary"):
      if config[role] not in names:
        raise ConfigValueError(f"config.multitask.{role}={config[role]!r} is not a loss term "
                               f"({sorted(names)}).")
    schedule = alternating(config.main, config.auxiliary, frequency=int(config.frequency),
                           steps_per_unit=steps_per_epoch if unit == "epochs" else 1,
                           first_unit=int(config.get("first_unit", 1)))
    return as_weighting(schedule, names)
  if name == "uncertainty":
    return uncertainty(names, init_log_variance=float(config.init_log_variance))
  raise ConfigValueError(f"Unknown config.multitask.name {name!r}; expected 'weighted', 'alternating' or "
                         "'uncertainty'.")


def resolve(schedule: Optional[types.Schedule | LossWeighting], config: Any, names: Sequence[str], *,
            steps_per_epoch: int) -> LossWeighting:
  """The task's own schedule when it gives one, else the one described by ``config.multitask``."""
  if schedule is not None:
    return as_weighting(schedule, names)
  return from_config(config, names, steps_per_epoch=steps_per_epoch)
