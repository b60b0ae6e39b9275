"""The task interface experiments implement, the eval loop and ``train_and_evaluate``."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

import flax.linen as nn
import jax
import numpy as np

from ranking_jax import types
from ranking_jax.train import checkpoint as checkpoint_lib
from ranking_jax.train import config as config_lib
from ranking_jax.train import optim
from ranking_jax.train import parallel
from ranking_jax.train import schedules as schedules_lib
from ranking_jax.train import state as state_lib
from ranking_jax.train import writers

Batch = Mapping[str, Any]
MASK_KEY = "mask"


@dataclasses.dataclass
class Task:
  """What an experiment plugs into the trainer.

  Attributes:
    model: a Linen module applied as ``model.apply(variables, batch["inputs"], train=bool,
      mutable=[...])``; ``inputs`` may be an array or a dict of arrays (e.g. the three branches of a
      siamese triplet), the output an array or a dict of arrays (several heads). Non-param collections
      (``batch_stats``) are updated when ``train=True``. Pass ``axis_name=ranking_jax.train.AXIS_NAME`` to
      ``nn.BatchNorm`` for statistics over the global batch (they are averaged after each step anyway).
    loss_terms: ``{name: fn(outputs, batch) -> scalar}``, pure JAX. ``batch`` holds every batch entry
      except ``"inputs"``; with ``config.loss_scope="global"`` ``outputs`` and ``batch`` cover the global
      batch, with ``"device"`` the device's slice.
    make_train_iterator: ``(start_step, process_index, process_count) -> iterator`` of dicts of numpy
      arrays with a leading per-process batch axis of ``config.batch_size // process_count`` examples;
      the model input under ``"inputs"``. It must be a deterministic function of its arguments: the
      batch of step ``t`` is the same whether the iterator started at 0 or at ``t`` (resume relies on it).
    make_eval_iterator: ``() -> iterable`` of per-process eval batches (same layout; a shorter last batch
      is padded by the trainer and a boolean ``"mask"`` entry marks the real examples; every process must
      yield the same number of batches). None: no evaluation.
    metrics_fn: ``(predictions, targets) -> {name: float}`` computed on host with numpy on the whole eval
      set (all processes gathered, padding removed): ``predictions`` is the model output concatenated
      over batches, ``targets`` the non-input batch entries concatenated likewise.
    schedule: a :data:`ranking_jax.types.Schedule` or :class:`~ranking_jax.train.schedules.LossWeighting`;
      None builds it from ``config.multitask``.
    num_train_examples: dataset size, to convert ``*_epochs`` config fields into steps.
    steps_per_epoch: overrides ``num_train_examples // batch_size`` when the iterator defines epochs
      differently.
    initialize_variables: optional ``variables -> variables`` applied once to the freshly initialised
      model variables (e.g. ``models.load_backbone_weights`` for converted ImageNet weights); a resumed
      run restores its checkpoint instead.
  """

  model: nn.Module
  loss_terms: Mapping[str, Callable[[Any, Batch], Any]]
  make_train_iterator: Callable[[int, int, int], Iterator[Batch]]
  make_eval_iterator: Optional[Callable[[], Iterable[Batch]]] = None
  metrics_fn: Optional[Callable[[Any, Batch], Mapping[str, float]]] = None
  schedule: Optional[types.Schedule | schedules_lib.LossWeighting] = None
  num_train_examples: Optional[int] = None
  steps_per_epoch: Optional[int] = None
  initialize_variables: Optional[Callable[[Any], Any]] = None


def _pad_batch(batch: Batch, size: int) -> dict[str, np.ndarray]:
  """Pads every entry to ``size`` rows (repeating zeros) and adds the boolean ``mask``."""
  sizes = {np.shape(x)[0] for x in jax.tree_util.tree_leaves(batch)}
  if len(sizes) != 1:
    raise ValueError(f"All entries of an eval batch must share the leading batch size, got {sorted(sizes)}.")
  (n,) = sizes
  if n > size:
    raise ValueError(f"Eval batch of {n} examples is larger than the first eval batch ({size}); make the "
                     "first batch the largest.")

  def pad(x):
    x = np.asarray(x)
    return np.concatenate([x, np.zeros((size - n,) + x.shape[1:], x.dtype)]) if n < size else x

  padded = jax.tree_util.tree_map(pad, dict(batch))
  mask = np.arange(size) < n
  if MASK_KEY in batch:
    mask &= pad(np.asarray(batch[MASK_KEY], bool))
  padded[MASK_KEY] = mask
  return padded


def evaluate(p_eval_step: Callable, replicated_state: Any, batches: Iterable[Batch],
             metrics_fn: Callable[[Any, Batch], Mapping[str, float]]) -> dict[str, float]:
  """Runs the model over ``batches``, gathers predictions on host (all processes) and calls ``metrics_fn``."""
  n_local = jax.local_device_count()
  size = None
  predictions, targets = [], []
  for batch in batches:
    if size is None:
      first = np.shape(jax.tree_util.tree_leaves(batch)[0])[0]
      size = -(-first // n_local) * n_local
    batch = _pad_batch(batch, size)
    outputs = parallel.unshard(p_eval_step(replicated_state, parallel.shard(batch)))
    outputs = parallel.process_allgather(outputs)
    rest = parallel.process_allgather({k: v for k, v in batch.items() if k != "inputs"})
    keep = rest[MASK_KEY]
    predictions.append(jax.tree_util.tree_map(lambda x, keep=keep: x[keep], outputs))
    targets.append({k: v[keep] for k, v in rest.items() if k != MASK_KEY})
  if not predictions:
    raise ValueError("The eval iterator yielded no batch.")
  concat = lambda *xs: np.concatenate(xs)
  predictions = jax.tree_util.tree_map(concat, *predictions)
  targets = jax.tree_util.tree_map(concat, *targets)
  return {k: float(v) for k, v in metrics_fn(predictions, targets).items()}


def _mean_metrics(history: list[Mapping[str, Any]]) -> dict[str, float]:
  host = jax.device_get(history)
  return {k: float(np.mean([np.asarray(m[k])[0] for m in host])) for k in host[0]}


@dataclasses.dataclass
class _SetUp:
  plan: config_lib.StepPlan
  weighting: schedules_lib.LossWeighting
  tx: Any
  learning_rate_fn: Callable[[Any], Any]
  state: state_lib.TrainState


def _set_up(config: Any, task: Task) -> _SetUp:
  """Everything derived from (config, task) before training: plan, weighting, optimizer, initial state."""
  process_index, process_count = jax.process_index(), jax.process_count()
  plan = config_lib.plan_steps(config, num_train_examples=task.num_train_examples,
                               steps_per_epoch_override=task.steps_per_epoch)
  per_process = config_lib.per_process_batch_size(int(config.batch_size), process_count,
                                                  jax.local_device_count())
  weighting = schedules_lib.resolve(task.schedule, config.multitask, tuple(task.loss_terms),
                                    steps_per_epoch=plan.steps_per_epoch)
  # Weight decay applies to the model's parameters, never to learned loss weights.
  decay_mask = lambda params: {"model": jax.tree_util.tree_map(lambda _: True, params["model"]),
                               "loss_weights": jax.tree_util.tree_map(lambda _: False,
                                                                      params["loss_weights"])}
  tx, learning_rate_fn = optim.make_optimizer(config.optimizer, steps_per_epoch=plan.steps_per_epoch,
                                              total_steps=plan.total_steps, weight_decay_mask=decay_mask)
  # Shapes for initialisation come from the first training batch (one device's slice).
  first_batch = next(iter(task.make_train_iterator(0, process_index, process_count)))
  leading = {np.shape(x)[0] for x in jax.tree_util.tree_leaves(first_batch)}
  if leading != {per_process}:
    raise ValueError(f"The train iterator must yield per-process batches of {per_process} examples "
                     f"(config.batch_size // process_count), got leading sizes {sorted(leading)}.")
  if "inputs" not in first_batch:
    raise ValueError(f"A training batch must hold the model inputs under 'inputs'; got keys "
                     f"{sorted(first_batch)}.")
  example_inputs = jax.tree_util.tree_map(lambda x: parallel.shard(x)[0], first_batch["inputs"])
  state = state_lib.create_train_state(task.model, tx, example_inputs, jax.random.PRNGKey(int(config.seed)),
                                       weighting.init_params(), task.initialize_variables)
  return _SetUp(plan, weighting, tx, learning_rate_fn, state)


def load_state(config: Any, workdir: str, task: Task | Callable[[Any], Task],
               step: Optional[int] = None) -> state_lib.TrainState:
  """The host :class:`TrainState` saved by a run of ``(config, task)`` in ``workdir`` (default: latest step).

  For evaluating or exporting a trained model, e.g.
  ``variables = {"params": state.params["model"], **state.model_state}``.
  """
  if callable(task) and not isinstance(task, Task):
    task = task(config)
  checkpointer = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
  try:
    state, restored = checkpointer.restore(_set_up(config, task).state, step)
  finally:
    checkpointer.close()
  if restored is None:
    raise FileNotFoundError(f"No checkpoint under {os.path.join(workdir, 'checkpoints')}.")
  return state


def train_and_evaluate(config: Any, workdir: str, task: Task | Callable[[Any], Task]) -> dict[str, Any]:
  """Trains ``task`` as described by ``config``; resumes from ``workdir/checkpoints`` when present.

  Writes (process 0 only) ``workdir/metrics.jsonl``, ``workdir/tensorboard/`` and, at the end,
  ``workdir/results.json`` = ``{"step", "num_params", "fingerprint", "train_metrics", "eval_metrics",
  "config"}`` where ``fingerprint`` is the sha256 of the final parameters' bytes
  (:func:`ranking_jax.train.state.fingerprint`). Returns the same dict.
  """
  if callable(task) and not isinstance(task, Task):
    task = task(config)
  process_index, process_count = jax.process_index(), jax.process_count()
  is_chief = process_index == 0
  setup = _set_up(config, task)
  plan, weighting, tx, learning_rate_fn, state = (setup.plan, setup.weighting, setup.tx,
                                                  setup.learning_rate_fn, setup.state)

  writer = writers.MetricWriter(workdir, enabled=is_chief)
  checkpointer = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                             max_to_keep=int(config.keep_checkpoints),
                                             async_save=bool(config.get("async_checkpointing", True)))
  state, restored_step = checkpointer.restore(state)
  start_step = int(np.asarray(state.step))
  writer.discard_after(start_step)  # the steps after the checkpoint are recomputed below
  num_params = state_lib.count_params(state.params["model"])
  writer.log(f"{num_params:,} model parameters; {jax.device_count()} devices on {process_count} "
             f"process(es); {plan}")
  if restored_step is not None:
    writer.log(f"Resumed from the checkpoint of step {restored_step}.")

  counter = parallel.TraceCounter()
  train_step = parallel.make_train_step(task.model, task.loss_terms, weighting, tx, learning_rate_fn,
                                        loss_scope=config.loss_scope, counter=counter)
  p_train_step = parallel.pmap_train_step(train_step)
  p_eval_step = parallel.pmap_eval_step(parallel.make_eval_step(task.model))
  block = config.get("block_every_step", None)
  if block is None:
    block = jax.default_backend() == "cpu"

  def run_eval(replicated, step):
    if task.make_eval_iterator is None or task.metrics_fn is None:
      return {}
    metrics = evaluate(p_eval_step, replicated, task.make_eval_iterator(), task.metrics_fn)
    writer.write_scalars(step, metrics, split="eval")
    writer.log(f"eval @ step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return metrics

  replicated = parallel.replicate(state)
  del state
  throughput = writers.Throughput(int(config.batch_size), plan.total_steps, start_step)
  history: list[Any] = []
  train_metrics: dict[str, float] = {}
  eval_metrics: dict[str, float] = {}
  iterator = iter(task.make_train_iterator(start_step, process_index, process_count))
  step = start_step
  while step < plan.total_steps:
    batch = next(iterator)
    replicated, metrics = p_train_step(replicated, parallel.shard(batch))
    if block:
      jax.block_until_ready(metrics["loss"])
    history.append(metrics)
    step += 1
    if step == plan.total_steps or (plan.log_every and step % plan.log_every == 0):
      train_metrics = _mean_metrics(history)
      history = []
      if not np.isfinite(train_metrics["loss"]):
        raise FloatingPointError(f"Non-finite training loss at step {step}: {train_metrics}.")
      examples_per_second, eta = throughput.report(step)
      writer.write_scalars(step, {**train_metrics, "examples_per_second": examples_per_second})
      shown = {k: v for k, v in train_metrics.items() if k == "loss" or k.startswith("loss/")}
      writer.log(writers.format_progress(step, plan.total_steps, examples_per_second, eta, shown))
    if plan.eval_every and step % plan.eval_every == 0 and step < plan.total_steps:
      eval_metrics = run_eval(replicated, step)
    if plan.checkpoint_every and step % plan.checkpoint_every == 0 and step < plan.total_steps:
      checkpointer.save(parallel.unreplicate(replicated))
  if counter.count > 1:
    writer.log(f"warning: the train step was traced {counter.count} times.")

  final_state = parallel.unreplicate(replicated)
  checkpointer.save(final_state, force=True)
  checkpointer.wait_until_finished()
  if step > start_step or not eval_metrics:
    eval_metrics = run_eval(replicated, step)
  results = {"step": int(np.asarray(final_state.step)), "num_params": num_params,
             "fingerprint": state_lib.fingerprint(final_state.params),
             "train_metrics": train_metrics, "eval_metrics": eval_metrics,
             "train_step_compilations": counter.count,
             "config": config.to_dict() if hasattr(config, "to_dict") else dict(config)}
  if is_chief:
    writers.write_json(os.path.join(workdir, "results.json"), results)
  writer.close()
  checkpointer.close()
  return results
