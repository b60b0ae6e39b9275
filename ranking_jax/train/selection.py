"""Best-checkpoint selection: the evaluated step with the best validation metric under a constraint.

Papers often report the checkpoint chosen on the validation split rather than the last one; IDE RankNet's
authors, for instance, keep the epoch with the highest validation Kendall tau among those whose validation
MSE is at most 0.235 (``train.py`` of their public code). ``config.selection`` (optional, absent = off)
describes such a rule::

    config.selection = ml_collections.ConfigDict()
    config.selection.split = "validation"        # a periodic evaluator of the task
    config.selection.metric = "kendall_tau"      # a key of that evaluator's metrics
    config.selection.mode = "max"                # "max" or "min"
    config.selection.constraint = "mse <= 0.235" # "" for none; "<metric> <op> <number>", op in <=, <, >=, >

The trainer (:func:`ranking_jax.train.train_and_evaluate`) offers every evaluation of ``split`` (the
periodic ones and the final one) to a :class:`Selector`, keeps a host copy of the state of the best step
so far, and at the end evaluates every evaluator on it. ``results.json`` then holds, beside the final
step's ``eval``, ``selected = {"rule", "split", "metric", "mode", "constraint", "step", "value",
"candidates", "eval"}``: ``step`` is None and ``eval`` None when no evaluated step satisfied the
constraint (or every value was NaN); the ``note`` says so. Ties keep the earlier step. A NaN metric or
constraint value never qualifies.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from typing import Any, Callable, Mapping, Optional

from ranking_jax.errors import ConfigValueError

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w/.\-]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+|inf|-inf)\s*$")


@dataclasses.dataclass(frozen=True)
class Constraint:
  """``metric op bound``, e.g. ``mse <= 0.235``."""

  metric: str
  op: str
  bound: float

  def holds(self, metrics: Mapping[str, float]) -> bool:
    """Whether ``metrics[metric] op bound``; False when the value is NaN.

    Raises:
      ConfigValueError: ``metric`` is not among ``metrics``.
    """
    if self.metric not in metrics:
      raise ConfigValueError(f"config.selection.constraint names {self.metric!r}, which the evaluator does not "
                             f"report (it reports {sorted(metrics)}).")
    value = float(metrics[self.metric])
    return not math.isnan(value) and _OPERATORS[self.op](value, self.bound)

  def __str__(self) -> str:
    return f"{self.metric} {self.op} {self.bound:g}"


def parse_constraint(text: str) -> Optional[Constraint]:
  """``"mse <= 0.235"`` -> :class:`Constraint`; ``""`` -> None.

  >>> parse_constraint("mse <= 0.235")
  Constraint(metric='mse', op='<=', bound=0.235)

  Raises:
    ConfigValueError: not of the form ``<metric> <op> <number>`` with op in ``<=, <, >=, >``, or a NaN bound.
  """
  if not text or not text.strip():
    return None
  match = _CONSTRAINT.match(text)
  bound = float(match.group(3)) if match else math.nan
  if not match or math.isnan(bound):
    raise ConfigValueError(f"config.selection.constraint={text!r} is not '<metric> <op> <number>' with op one "
                           f"of {sorted(_OPERATORS)}, e.g. 'mse <= 0.235'.")
  return Constraint(match.group(1), match.group(2), bound)


@dataclasses.dataclass(frozen=True)
class SelectionRule:
  """Best ``metric`` (``mode`` ``"max"`` or ``"min"``) on ``split`` among the steps satisfying ``constraint``."""

  split: str
  metric: str
  mode: str = "max"
  constraint: Optional[Constraint] = None

  def __post_init__(self):
    if self.mode not in ("max", "min"):
      raise ConfigValueError(f"config.selection.mode must be 'max' or 'min', got {self.mode!r}.")
    if not self.metric or not self.split:
      raise ConfigValueError("config.selection needs a metric and a split.")

  def __str__(self) -> str:
    return (f"{self.mode} {self.split} {self.metric}"
            + (f" subject to {self.split} {self.constraint}" if self.constraint else ""))


def from_config(config: Any) -> Optional[SelectionRule]:
  """The rule of ``config.selection`` (None when the field is absent or its ``metric`` is empty).

  Raises:
    ConfigValueError: a bad mode or constraint.
  """
  selection = config.get("selection", None) if hasattr(config, "get") else getattr(config, "selection", None)
  if selection is None or not selection.get("metric", ""):
    return None
  return SelectionRule(split=str(selection.get("split", "validation") or "validation"),
                       metric=str(selection.metric), mode=str(selection.get("mode", "max")),
                       constraint=parse_constraint(str(selection.get("constraint", "") or "")))


class Selector:
  """Tracks the best evaluated step of a :class:`SelectionRule`.

  >>> selector = Selector(SelectionRule("validation", "tau", "max", parse_constraint("mse <= 0.3")))
  >>> [selector.offer(s, m) for s, m in [(1, {"tau": .2, "mse": .2}), (2, {"tau": .5, "mse": .4}),
  ...                                    (3, {"tau": .3, "mse": .3})]]
  [True, False, True]
  >>> selector.best_step, selector.best_value
  (3, 0.3)
  """

  def __init__(self, rule: SelectionRule):
    self.rule = rule
    self.best_step: Optional[int] = None
    self.best_value: Optional[float] = None
    self.candidates = 0  # evaluations offered
    self.satisfied = 0  # of which satisfied the constraint with a finite metric

  def offer(self, step: int, metrics: Mapping[str, float]) -> bool:
    """Considers the evaluation of ``step``; True when it becomes the best so far.

    Raises:
      ConfigValueError: ``metrics`` lacks the rule's metric or constraint metric.
    """
    rule = self.rule
    if rule.metric not in metrics:
      raise ConfigValueError(f"config.selection.metric={rule.metric!r} is not reported by the {rule.split!r} "
                             f"evaluator (it reports {sorted(metrics)}).")
    self.candidates += 1
    value = float(metrics[rule.metric])
    if math.isnan(value) or (rule.constraint is not None and not rule.constraint.holds(metrics)):
      return False
    self.satisfied += 1
    better = (self.best_value is None
              or (value > self.best_value if rule.mode == "max" else value < self.best_value))
    if better:
      self.best_step, self.best_value = int(step), value
    return better

  def summary(self, evals: Optional[Mapping[str, Mapping[str, float]]] = None) -> dict[str, Any]:
    """The ``results["selected"]`` dict; ``evals`` = ``{split: metrics}`` of the selected step."""
    rule = self.rule
    if self.best_step is None:
      note = (f"no evaluated step (of {self.candidates}) satisfied {rule.split} {rule.constraint} with a finite "
              f"{rule.metric}" if rule.constraint else
              f"no evaluated step (of {self.candidates}) had a finite {rule.split} {rule.metric}")
    else:
      note = f"step {self.best_step} of {self.candidates} evaluated ({self.satisfied} satisfied the rule)"
    return {"rule": str(rule), "split": rule.split, "metric": rule.metric, "mode": rule.mode,
            "constraint": None if rule.constraint is None else str(rule.constraint),
            "step": self.best_step, "value": self.best_value, "candidates": self.candidates,
            "eval": None if self.best_step is None else {k: dict(v) for k, v in (evals or {}).items()},
            "note": note}
