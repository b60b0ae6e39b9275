"""The trainer: data-parallel (pmap) training of multi-loss ranking models with resumable checkpoints.

An experiment describes itself as a :class:`Task` and calls :func:`train_and_evaluate`::

    import flax.linen as nn, jax.numpy as jnp, numpy as np
    from ranking_jax import train

    class Scorer(nn.Module):
      @nn.compact
      def __call__(self, x, train: bool):
        x = nn.relu(nn.Dense(16)(x))
        # axis_name: batch statistics over the global batch (sync BN) while training under pmap.
        x = nn.BatchNorm(use_running_average=not train, axis_name="batch")(x)
        return nn.Dense(1)(x)[..., 0]          # one difficulty score per image

    def make_train_iterator(start_step, process_index, process_count):
      # Deterministic in the step: resume after a kill reproduces the run bit for bit.
      step = start_step
      while True:
        rng = np.random.default_rng([seed, step, process_index])
        x = rng.normal(size=(per_process_batch, 8)).astype(np.float32)
        yield {"inputs": x, "label": x.sum(-1)}
        step += 1

    task = train.Task(
        model=Scorer(),
        loss_terms={"rank": lambda out, batch: kendall_rank_loss(out, batch["label"]),
                    "mse": lambda out, batch: jnp.mean((out - batch["label"]) ** 2)},
        make_train_iterator=make_train_iterator,
        evaluators={"validation": train.Evaluator(
            make_iterator=lambda: eval_batches,               # per-process numpy batches
            metrics_fn=lambda pred, tgt: {"kendall_tau": scipy.stats.kendalltau(pred, tgt["label"])[0]})},
        num_train_examples=5770)
    result = train.train_and_evaluate(config, workdir, task)   # config: configs/base.py + overrides
    result.results["eval"]["validation"], result.state, result.predictions["validation"].outputs

The pieces, one module each:

* :mod:`~ranking_jax.train.state`: :class:`TrainState` (params, batch statistics, optimizer state, step,
  RNG), :func:`fingerprint` (sha256 of the parameters' bytes);
* :mod:`~ranking_jax.train.parallel`: the per-device train step (``lax.pmean`` of gradients, metrics and
  batch statistics, optional ``all_gather`` so that losses see the global batch), launched with
  ``jax.pmap`` -- the only module that knows about devices;
* :mod:`~ranking_jax.train.schedules`: ``alternating`` (IDE RankNet Algorithm 1), ``weighted`` (eq. 5),
  ``piecewise`` and learned ``uncertainty`` weights, all pure functions of the traced step;
* :mod:`~ranking_jax.train.optim`: SGD/Adam/AdamW with weight decay, step decay, halving, cosine, clipping;
* :mod:`~ranking_jax.train.checkpoint`: Orbax ``CheckpointManager`` (keep-N, atomic, resume);
* :mod:`~ranking_jax.train.writers`: console progress line, TensorBoard and ``metrics.jsonl``;
* :mod:`~ranking_jax.train.config`: epochs -> steps conversion of the shared config fields;
* :mod:`~ranking_jax.train.distributed`: ``jax.distributed.initialize`` from flags or the environment;
* :mod:`~ranking_jax.train.trainer`: :class:`Task`, :class:`Evaluator`, :func:`train_and_evaluate`
  (returns a :class:`TrainResult`: final state, results dict, final predictions per split).

See ``docs/trainer.md`` for the details and ``configs/base.py`` for the shared config fields.
"""

from ranking_jax.train.checkpoint import CheckpointReadError, Checkpointer
from ranking_jax.train.config import ConfigValueError, StepPlan, plan_steps
from ranking_jax.train.optim import learning_rate_schedule, make_optimizer
from ranking_jax.train.parallel import AXIS_NAME, make_eval_step, make_train_step
from ranking_jax.train.requirements import Requirements, check_requirements, listwise_requirements
from ranking_jax.train.schedules import (LossWeighting, alternating, piecewise, uncertainty,
                                         weighted)
from ranking_jax.train.state import TrainState, count_params, create_train_state, fingerprint
from ranking_jax.train.trainer import (RELAUNCH_MAY_CHANGE, Evaluator, Predictions, Task, TrainingInterrupted,
                                       TrainResult, WorkdirMismatchError, check_workdir_config,
                                       config_identity, evaluate, load_state, measure_train_step,
                                       shape_signature, train_and_evaluate, validation_and_test)

__all__ = [
    "AXIS_NAME", "CheckpointReadError", "Checkpointer", "Evaluator", "LossWeighting", "Predictions",
    "RELAUNCH_MAY_CHANGE", "Requirements", "StepPlan", "Task", "TrainResult", "TrainState",
    "TrainingInterrupted", "WorkdirMismatchError", "alternating", "check_requirements", "listwise_requirements",
    "check_workdir_config", "config_identity", "count_params", "create_train_state", "evaluate",
    "fingerprint", "learning_rate_schedule", "load_state",
    "make_eval_step", "make_optimizer", "make_train_step", "measure_train_step", "piecewise", "plan_steps",
    "shape_signature", "train_and_evaluate", "uncertainty", "validation_and_test", "weighted",
]
