"""Fields shared by every experiment config; each ``configs/<task>.py`` starts from ``get_base_config()``.

An experiment config looks like::

    from configs import base

    def get_config(variant: str = "alternating"):
      '''Launch: python -m experiments.<task> --config=configs/<task>.py:alternating --workdir=/tmp/x
      Expected result: ... (the table row it reproduces).'''
      config = base.get_base_config()
      config.batch_size = 200
      config.total_epochs = 280
      config.multitask.name = variant
      ...
      return config

``experiments/main_lib.py`` locks the returned config, so ``--config.optimizer.lrr=0.1`` fails with the list
of valid keys. Optional fields use ``placeholder`` so that they can be overridden from the command line
although their default is None. When an ``*_epochs`` field is set it takes precedence over its ``*_steps``
twin; it is converted once with ``steps_per_epoch = num_train_examples // batch_size``.

This file itself is a valid config (``--config=configs/base.py``) used by the trainer's tests.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def get_base_config() -> ml_collections.ConfigDict:
  """The shared defaults (see ``docs/trainer.md`` for what each field does)."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  # Global batch size, over all devices and processes.
  config.batch_size = 32
  config.total_steps = config_dict.placeholder(int)
  config.total_epochs = config_dict.placeholder(float)
  config.log_every_steps = 50
  config.log_every_epochs = config_dict.placeholder(float)
  # 0 means: evaluate / checkpoint only at the end.
  config.eval_every_steps = 0
  config.eval_every_epochs = config_dict.placeholder(float)
  config.checkpoint_every_steps = 1000
  config.checkpoint_every_epochs = config_dict.placeholder(float)
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
  # alternating (IDE RankNet, Algorithm 1): the auxiliary term every `frequency`-th unit.
  config.multitask.main = "rank"
  config.multitask.auxiliary = "mse"
  config.multitask.frequency = 3
  config.multitask.unit = "epochs"  # epochs | steps
  # uncertainty (Kendall, Gal & Cipolla): initial log-variance of every term.
  config.multitask.init_log_variance = 0.0
  return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``--config=configs/base.py`` (no variant): the shared defaults, with ``total_steps=100``."""
  del arg
  config = get_base_config()
  config.total_steps = 100
  return config
