"""Fields shared by every experiment config; each ``configs/<task>.py`` starts from ``get_base_config()``.

An experiment config looks like::

    from configs import base

    def get_config(arg: str | None = None):
      '''Launch: python -m experiments.<task> --config=configs/<task>.py:alternating --workdir=/tmp/rj-x
      Expected result: ... (the table row it reproduces).'''
      arg = base.parse_arg(arg, default="alternating", variants=("mse", "alternating"),
                           modifiers=("smoke", "voc"))
      config = base.get_base_config()
      config.variant = arg.variant
      config.batch_size = 200
      base.set_duration(config, "total", epochs=280.0)
      ...
      return config

Configs import only ``ml_collections`` and this module (never the library): the data flows one way,
config -> task -> trainer -> evaluators -> report. ``experiments/main_lib.py`` locks the returned config,
so ``--config.optimizer.lrr=0.1`` fails with the closest valid keys. Optional fields use ``placeholder``
so that they can be overridden from the command line although their default is None (``=None`` unsets
one). Each duration (``total``, ``log_every``, ``eval_every``, ``checkpoint_every``) is given in steps
*or* epochs: set it with :func:`set_duration`; a command-line override of one unit replaces the other.

This file itself is a valid config (``--config=configs/base.py``) used by the trainer's tests.
"""

from __future__ import annotations

import ast
from typing import Any, Sequence

import ml_collections
from ml_collections import config_dict

DURATIONS = ("total", "log_every", "eval_every", "checkpoint_every")


def get_base_config() -> ml_collections.ConfigDict:
  """The shared defaults (see ``docs/trainer.md`` for what each field does)."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  # Global batch size, over all devices and processes.
  config.batch_size = 32
  config.total_steps = config_dict.placeholder(int)
  config.total_epochs = config_dict.placeholder(float)
  # Typed even where a config sets them to None (set_duration), so that the command line can still set them.
  config.log_every_steps = config_dict.FieldReference(50, field_type=int)
  config.log_every_epochs = config_dict.placeholder(float)
  # 0 means: evaluate / checkpoint only at the end.
  config.eval_every_steps = config_dict.FieldReference(0, field_type=int)
  config.eval_every_epochs = config_dict.placeholder(float)
  config.checkpoint_every_steps = config_dict.FieldReference(1000, field_type=int)
  config.checkpoint_every_epochs = config_dict.placeholder(float)
  # Optional wall-time budget (seconds): the run then stops, says so and records complete=False in
  # results.json; relaunching continues it. None (default): results never depend on the machine's speed.
  config.max_train_seconds = config_dict.placeholder(float)
  config.keep_checkpoints = 3
  config.async_checkpointing = True
  # "global": loss terms see the whole global batch (all_gather); "device": each device's slice.
  config.loss_scope = "global"
  # Block on every step's loss; None = only on the CPU backend (XLA:CPU collectives abort when ~35
  # steps are queued).
  config.block_every_step = config_dict.placeholder(bool)

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "sgd"  # sgd | adam | adamw
  config.optimizer.learning_rate = 1e-3
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 0.0
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.eps = 1e-8
  config.optimizer.grad_clip_norm = config_dict.placeholder(float)
  config.optimizer.schedule = ml_collections.ConfigDict()
  config.optimizer.schedule.name = "constant"  # constant | step | halving | cosine
  config.optimizer.schedule.boundaries_epochs = ()
  config.optimizer.schedule.boundaries_steps = ()
  config.optimizer.schedule.decay_factor = 0.1
  config.optimizer.schedule.every_epochs = config_dict.placeholder(float)
  config.optimizer.schedule.every_steps = config_dict.placeholder(int)
  config.optimizer.schedule.warmup_steps = 0
  config.optimizer.schedule.final_fraction = 0.0

  config.multitask = ml_collections.ConfigDict()
  config.multitask.name = "weighted"  # weighted | alternating | uncertainty
  # weighted: one weight per loss term (missing terms get 1.0). Experiments add their term names here.
  config.multitask.weights = ml_collections.ConfigDict()
  # alternating: the auxiliary term every `frequency`-th unit, else the main term (loss term names).
  config.multitask.main = config_dict.placeholder(str)
  config.multitask.auxiliary = config_dict.placeholder(str)
  config.multitask.frequency = 3
  config.multitask.unit = "epochs"  # epochs | steps
  # uncertainty (Kendall, Gal & Cipolla): initial log-variance of every term.
  config.multitask.init_log_variance = 0.0
  return config


def set_duration(config: ml_collections.ConfigDict, stem: str, *, steps: int | None = None,
                 epochs: float | None = None) -> None:
  """Sets duration ``stem`` (one of :data:`DURATIONS`) in one unit and clears its twin.

  >>> config = get_base_config()
  >>> set_duration(config, "eval_every", epochs=5.0)
  >>> config.eval_every_epochs, config.eval_every_steps
  (5.0, None)
  """
  if stem not in DURATIONS:
    raise ValueError(f"unknown duration {stem!r}; expected one of {DURATIONS}.")
  if (steps is None) == (epochs is None):
    raise ValueError(f"give exactly one of steps= and epochs= for {stem!r}.")
  setattr(config, f"{stem}_steps", None if steps is None else int(steps))
  setattr(config, f"{stem}_epochs", None if epochs is None else float(epochs))


def _parse_value(text: str, default: Any) -> Any:
  if isinstance(default, config_dict.FieldReference):  # a placeholder: parse with its declared type
    field_type = default.get_type()
    return _parse_value(text, field_type()) if field_type in (bool, int, float, str) else text
  if isinstance(default, bool):
    if text.lower() not in ("true", "false", "1", "0"):
      raise ValueError(f"expected true/false, got {text!r}")
    return text.lower() in ("true", "1")
  if isinstance(default, (int, float)) and not isinstance(default, bool):
    return type(default)(text)
  if isinstance(default, str):
    return text
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_arg(arg: str | None, *, default: str, variants: Sequence[str], modifiers: Sequence[str] = (),
              **options: Any) -> ml_collections.ConfigDict:
  """Parses a config argument ``"<variant>,<modifier>,...,key=value"`` (big_vision's ``parse_arg`` style).

  The first plain word is the variant (``default`` when none is given); further plain words are
  modifiers (each becomes a True flag, the others False); ``key=value`` sets an option declared in
  ``options`` (its default's type parses the value; a None default takes a Python literal).

  >>> arg = parse_arg("weighted,smoke,seed=3", default="mse", variants=("mse", "weighted"),
  ...                 modifiers=("smoke", "voc"), seed=0)
  >>> arg.variant, arg.smoke, arg.voc, arg.seed
  ('weighted', True, False, 3)
  >>> parse_arg(None, default="mse", variants=("mse",)).variant
  'mse'

  Raises:
    ValueError: an unknown variant, modifier or key, a second variant, or a value of the wrong type
      (the message lists the valid choices).
  """
  result = ml_collections.ConfigDict({"variant": default, **{m: False for m in modifiers}, **options})
  seen_variant = False
  for token in [t.strip() for t in (arg or "").split(",") if t.strip()]:
    if "=" in token:
      key, value = token.split("=", 1)
      if key not in options:
        raise ValueError(f"unknown option {key!r} in config argument {arg!r}; options: {sorted(options)}.")
      try:
        result[key] = _parse_value(value, options[key])
      except (TypeError, ValueError) as error:
        raise ValueError(f"bad value for {key!r} in config argument {arg!r}: {error}.") from None
    elif token in modifiers:
      result[token] = True
    elif token in variants and not seen_variant:
      result.variant, seen_variant = token, True
    else:
      raise ValueError(f"unknown variant or modifier {token!r} in config argument {arg!r}; variants: "
                       f"{list(variants)}, modifiers: {list(modifiers)}"
                       + (f", options: {sorted(options)} (as key=value)" if options else "") + ".")
  return result


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``--config=configs/base.py`` (no variant): the shared defaults, with ``total_steps=100``."""
  del arg
  config = get_base_config()
  config.total_steps = 100
  return config
