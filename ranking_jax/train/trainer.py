"""The task interface experiments implement, the eval loop and ``train_and_evaluate``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

import flax.linen as nn
import jax
import numpy as np

from ranking_jax import types
from ranking_jax.train import checkpoint as checkpoint_lib
from ranking_jax.train import config as config_lib
from ranking_jax.train import optim
from ranking_jax.train import parallel
from ranking_jax.train import requirements as requirements_lib
from ranking_jax.train import schedules as schedules_lib
from ranking_jax.train import selection as selection_lib
from ranking_jax.train import state as state_lib
from ranking_jax.train import writers
from ranking_jax.errors import ConfigValueError

Batch = Mapping[str, Any]
MASK_KEY = "mask"


@dataclasses.dataclass
class Evaluator:
  """A named evaluation split: its batches and its host-side metrics.

  Attributes:
    make_iterator: ``() -> iterable`` of per-process batches laid out as training batches (model input
      under ``"inputs"``). Batches may have any size (the trainer pads every batch to the size of the
      first one and adds the boolean ``"mask"``; an existing ``"mask"`` entry is combined with it);
      every process must yield the same number of batches.
    metrics_fn: ``(predictions, targets) -> {name: float}``, numpy on host, over the whole split (all
      processes gathered, padding removed): ``predictions`` is the model output concatenated over the
      batches, ``targets`` the non-input batch entries likewise.
    periodic: evaluate every ``config.eval_every_*`` during training as well as at the end (a validation
      split); False evaluates at the end only (a test split).
  """

  make_iterator: Callable[[], Iterable[Batch]]
  metrics_fn: Callable[[Any, Batch], Mapping[str, float]]
  periodic: bool = True


def validation_and_test(make_iterator: Callable[[Any], Callable[[], Iterable[Batch]]],
                        splits: Mapping[str, Any], metrics_fn: Callable[[Any, Batch], Mapping[str, float]]
                        ) -> dict[str, Evaluator]:
  """The usual pair of evaluators: ``validation`` (periodic and final) and ``test`` (final only).

  ``make_iterator(split)`` is called with ``splits["validation"]`` and ``splits["test"]`` each time an
  evaluation starts; both splits share ``metrics_fn``.
  """
  return {"validation": Evaluator(lambda: make_iterator(splits["validation"]), metrics_fn),
          "test": Evaluator(lambda: make_iterator(splits["test"]), metrics_fn, periodic=False)}


@dataclasses.dataclass
class Predictions:
  """The final model outputs on one evaluation split (padding removed), kept for the report."""

  outputs: Any
  targets: dict[str, np.ndarray]
  metrics: dict[str, float]


@dataclasses.dataclass
class TrainResult:
  """What :func:`train_and_evaluate` returns.

  Attributes:
    state: the final host :class:`~ranking_jax.train.TrainState`.
    results: the dict written to ``results.json`` (see :func:`train_and_evaluate`).
    predictions: ``{split: Predictions}`` of the final evaluation; empty when a finished run was
      relaunched (nothing was recomputed).
    selected_predictions: ``{split: Predictions}`` of the step chosen by ``config.selection``
      (:mod:`ranking_jax.train.selection`); empty without a rule or when no step satisfied it.
  """

  state: state_lib.TrainState
  results: dict[str, Any]
  predictions: dict[str, Predictions]
  selected_predictions: dict[str, Predictions] = dataclasses.field(default_factory=dict)

  def __getitem__(self, key: str) -> Any:  # ``result["eval"]`` reads the results dict
    return self.results[key]


@dataclasses.dataclass
class Task:
  """What an experiment plugs into the trainer: one paper's set of choices.

  Attributes:
    model: a Linen module applied as ``model.apply(variables, batch["inputs"], train=bool,
      mutable=[...], rngs={"dropout": ...})``; ``inputs`` may be an array or a dict of arrays (e.g. the
      three branches of a siamese triplet), the output an array or a dict of arrays (several heads).
      Non-param collections (``batch_stats``) are updated when ``train=True``. Pass
      ``axis_name=ranking_jax.train.AXIS_NAME`` to ``nn.BatchNorm`` for statistics over the global batch
      (they are averaged after each step anyway). A ``"dropout"`` RNG is always provided.
    loss_terms: ``{name: fn(outputs, batch) -> scalar}``, pure JAX. ``batch`` holds every batch entry
      except ``"inputs"``; with ``config.loss_scope="global"`` ``outputs`` and ``batch`` cover the global
      batch, with ``"device"`` the device's slice.
    make_train_iterator: ``(start_step, process_index, process_count) -> iterator`` of dicts of numpy
      arrays with a leading per-process batch axis of ``config.batch_size // process_count`` examples;
      the model input under ``"inputs"``. It must be a deterministic function of its arguments: the
      batch of step ``t`` is the same whether the iterator started at 0 or at ``t`` (resume relies on it).
    evaluators: ``{split: Evaluator}``, e.g. ``{"validation": Evaluator(...), "test":
      Evaluator(..., periodic=False)}``; evaluated in this order.
    schedule: a :data:`ranking_jax.types.Schedule` or :class:`~ranking_jax.train.schedules.LossWeighting`;
      None builds it from ``config.multitask``.
    num_train_examples: dataset size, to convert ``*_epochs`` config fields into steps.
    steps_per_epoch: overrides ``num_train_examples // batch_size`` when the iterator defines epochs
      differently.
    initialize_variables: optional ``variables -> variables`` applied once to the freshly initialised
      model variables (e.g. ``models.load_backbone_weights`` for converted ImageNet weights); a resumed
      run restores its checkpoint instead.
    report: optional ``(result: TrainResult, workdir) -> dict`` called on process 0 after the final
      evaluation, from the predictions already computed (tables beside the paper's figures, plots; see
      :mod:`ranking_jax.reporting`); its dict is stored under ``results["report"]``.
    example_name: what one example is called in the progress line (``"ex"``, ``"pairs"``...).
    name: the experiment's name (default: the module of the ``make_task`` passed to
      :func:`train_and_evaluate`), recorded as ``results["task"]`` so that tables never mix experiments.
    requirements: what the task needs from the config (:class:`~ranking_jax.train.Requirements`: the
      whole global batch as one list, a maximum list length); checked before training.
  """

  model: nn.Module
  loss_terms: Mapping[str, Callable[[Any, Batch], Any]]
  make_train_iterator: Callable[[int, int, int], Iterator[Batch]]
  evaluators: Mapping[str, Evaluator] = dataclasses.field(default_factory=dict)
  schedule: Optional[types.Schedule | schedules_lib.LossWeighting] = None
  num_train_examples: Optional[int] = None
  steps_per_epoch: Optional[int] = None
  initialize_variables: Optional[Callable[[Any], Any]] = None
  report: Optional[Callable[[TrainResult, str], Mapping[str, Any]]] = None
  example_name: str = "ex"
  requirements: Optional[requirements_lib.Requirements] = None
  name: Optional[str] = None


class WorkdirMismatchError(ValueError):
  """The work directory holds a run of another configuration (config fields or parameter shapes differ)."""


class TrainingInterrupted(KeyboardInterrupt):
  """Ctrl-C (SIGINT) stopped training after step ``step``, whose checkpoint was saved.

  A ``KeyboardInterrupt``, so code that catches Ctrl-C keeps working; the experiment mains print its
  message as one line and exit with status 130.
  """

  def __init__(self, step: int):
    self.step = int(step)
    super().__init__(f"interrupted at step {step}; checkpoint saved; relaunch the same command to resume")


# Config fields a relaunch in the same work directory may change: when and how often the run stops, logs,
# evaluates and checkpoints, and where caches and exports go; they do not change the parameters. Every other
# field is the run's identity (run.json). ``total_*`` is identity under the cosine schedule (its horizon).
RELAUNCH_MAY_CHANGE = (
    "total_steps", "total_epochs", "log_every_steps", "log_every_epochs", "eval_every_steps",
    "eval_every_epochs", "checkpoint_every_steps", "checkpoint_every_epochs", "max_train_seconds",
    "keep_checkpoints", "async_checkpointing", "block_every_step",
    "data.cache_dir", "data.feature_cache_dir", "data.index_cache_path", "export_dir", "export_pretrained", "command")


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping) and value:
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def config_identity(config: Any) -> dict[str, Any]:
  """The fields of ``config`` that define what a run computes: ``{dotted key: value}``, JSON-normalised.

  Everything except :data:`RELAUNCH_MAY_CHANGE` (``total_steps``/``total_epochs`` stay in when
  ``optimizer.schedule.name`` is ``"cosine``", whose decay horizon is the step budget). Tuples become
  lists, so a config and its ``run.json`` copy compare equal.
  """
  flat = _flatten(json.loads(json.dumps(_config_dict(config), sort_keys=True, default=repr)))
  may_change = set(RELAUNCH_MAY_CHANGE)
  if flat.get("optimizer.schedule.name") == "cosine":
    may_change -= {"total_steps", "total_epochs"}
  return {k: v for k, v in sorted(flat.items()) if k not in may_change}


def _identity_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
  """``"<key> = <value here> here, <value there> there"`` for each key whose value differs (or is absent)."""
  out = []
  for key in sorted(set(recorded) | set(current)):
    if key not in recorded or key not in current or recorded[key] != current[key]:
      here = repr(current[key]) if key in current else "absent"
      there = repr(recorded[key]) if key in recorded else "absent"
      out.append(f"{key} = {here} here, {there} there")
  return out


def check_workdir_config(workdir: str, config: Any) -> None:
  """Refuses ``workdir`` when it holds a run whose :func:`config_identity` differs from ``config``'s.

  Reads ``workdir/run.json`` only (written by :func:`train_and_evaluate` at the first launch); cheap, so
  it runs before the task is built (before any data are rendered or loaded).

  Raises:
    WorkdirMismatchError: one line naming the differing fields (up to 6) and what to do.
  """
  recorded = _read_json(os.path.join(workdir, "run.json"))
  if recorded is None:
    return
  if "identity" in recorded:
    before = recorded["identity"]
  elif "config" in recorded:  # run.json of an earlier version: the identity of its recorded config
    before = config_identity(recorded["config"])
  else:
    return
  differences = _identity_differences(before, config_identity(config))
  if differences:
    shown = "; ".join(differences[:6]) + (f"; ... ({len(differences) - 6} more)" if len(differences) > 6 else "")
    raise WorkdirMismatchError(
        f"{workdir} holds a run of another configuration (config fields differ: {shown}). Use a new "
        "--workdir (or delete that directory to start over); a relaunch may change only the durations "
        "(total_*, log/eval/checkpoint_every_*), max_train_seconds, keep_checkpoints, async_checkpointing, "
        "block_every_step and the cache/export paths (docs/trainer.md).")


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
             metrics_fn: Callable[[Any, Batch], Mapping[str, float]], name: str = "eval") -> Predictions:
  """Runs the model over ``batches``, gathers the outputs on host (all processes), calls ``metrics_fn``.

  Raises:
    ValueError: the iterator yields no batch, or batches whose entries differ in leading size.
    FloatingPointError: a model output (padding excluded) is NaN or infinite: the model diverged.
  """
  n_local = jax.local_device_count()
  size = None
  predictions, targets = [], []
  for batch in batches:
    if size is None:
      first = np.shape(jax.tree_util.tree_leaves(batch)[0])[0]
      size = max(1, -(-first // n_local)) * n_local
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
  for path, leaf in jax.tree_util.tree_leaves_with_path(predictions):
    if np.issubdtype(leaf.dtype, np.inexact) and not np.all(np.isfinite(leaf)):
      where = f" {jax.tree_util.keystr(path)}" if path else ""
      raise FloatingPointError(f"{int(np.sum(~np.isfinite(leaf)))} of {leaf.size} model outputs{where} on the "
                               f"{name} split are NaN or infinite: the model diverged.")
  metrics = {k: float(v) for k, v in metrics_fn(predictions, targets).items()}
  return Predictions(outputs=predictions, targets=targets, metrics=metrics)


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
    raise ConfigValueError(f"The train iterator must yield per-process batches of {per_process} examples "
                     f"(config.batch_size // process_count), got leading sizes {sorted(leading)}.")
  if "inputs" not in first_batch:
    raise ValueError(f"A training batch must hold the model inputs under 'inputs'; got keys "
                     f"{sorted(first_batch)}.")
  example_inputs = jax.tree_util.tree_map(lambda x: parallel.shard(x)[0], first_batch["inputs"])
  state = state_lib.create_train_state(task.model, tx, example_inputs, jax.random.PRNGKey(int(config.seed)),
                                       weighting.init_params(), task.initialize_variables)
  return _SetUp(plan, weighting, tx, learning_rate_fn, state)


def measure_train_step(config: Any, task: Task | Callable[[Any], Task], num_steps: int = 10
                       ) -> dict[str, float]:
  """Times the task's compiled train step (no checkpoints, no evaluation): for benchmarks.

  Returns ``{"compile_s", "step_ms", "examples_per_second"}``: the first step (compilation included) and
  the median of ``num_steps`` further steps, each blocked on its loss.
  """
  if callable(task) and not isinstance(task, Task):
    task = task(config)
  setup = _set_up(config, task)
  step_fn = parallel.pmap_train_step(parallel.make_train_step(
      task.model, task.loss_terms, setup.weighting, setup.tx, setup.learning_rate_fn,
      loss_scope=config.loss_scope))
  replicated = parallel.replicate(setup.state)
  iterator = iter(task.make_train_iterator(0, jax.process_index(), jax.process_count()))
  start = time.perf_counter()
  replicated, metrics = step_fn(replicated, parallel.shard(next(iterator)))
  jax.block_until_ready(metrics["loss"])
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(max(1, int(num_steps))):
    batch = parallel.shard(next(iterator))
    start = time.perf_counter()
    replicated, metrics = step_fn(replicated, batch)
    jax.block_until_ready(metrics["loss"])
    times.append(time.perf_counter() - start)
  step_s = float(np.median(times))
  return {"compile_s": compile_s, "step_ms": 1e3 * step_s,
          "examples_per_second": int(config.batch_size) / step_s}


def load_state(config: Any, workdir: str, task: Task | Callable[[Any], Task],
               step: Optional[int] = None) -> state_lib.TrainState:
  """The host :class:`TrainState` saved by a run of ``(config, task)`` in ``workdir`` (default: latest step).

  For evaluating or exporting a trained model, e.g.
  ``variables = {"params": state.params["model"], **state.model_state}``. ``config`` only builds the
  template (its parameter shapes), so evaluation settings may differ from the run's. Without ``step``, the
  newest readable step (a damaged newer step directory is skipped, not moved).

  Raises:
    FileNotFoundError: no checkpoint in ``workdir``.
    ranking_jax.train.checkpoint.CheckpointReadError: no checkpoint (or not ``step``) can be read.
  """
  if callable(task) and not isinstance(task, Task):
    task = task(config)
  checkpointer = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
  try:
    state, restored = checkpointer.restore(_set_up(config, task).state, step, set_aside_damaged=False)
  finally:
    checkpointer.close()
  if restored is None:
    raise FileNotFoundError(f"No checkpoint under {os.path.join(workdir, 'checkpoints')}.")
  return state


def shape_signature(state: state_lib.TrainState) -> str:
  """sha256 of the paths, shapes and dtypes of the model's variables (not their values).

  Two configurations that build parameters of the same shapes share it; a work directory records it so
  that a relaunch with another configuration is refused with a clear message instead of failing deep
  inside the checkpoint restore.
  """
  digest = hashlib.sha256()
  tree = {"params": state.params, "model_state": state.model_state}
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    digest.update(f"{jax.tree_util.keystr(path)}:{np.dtype(leaf.dtype).str}{tuple(np.shape(leaf))};".encode())
  return digest.hexdigest()


def _read_json(path: str) -> Optional[dict[str, Any]]:
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _check_workdir(workdir: str, signature: str, config: Any, is_chief: bool) -> None:
  """Refuses a ``workdir`` whose run has other parameter shapes; records ``run.json`` at the first launch.

  ``run.json`` = ``{"identity": config_identity(config), "shape_signature", "variant", "config"}``
  (:func:`check_workdir_config` compares the identity before the task is built).
  """
  path = os.path.join(workdir, "run.json")
  recorded = _read_json(path)
  if recorded is not None and recorded.get("shape_signature", signature) != signature:
    raise WorkdirMismatchError(
        f"{workdir} holds a run of another configuration (variant {recorded.get('variant')!r}, parameter "
        f"shapes differ from this one's, variant {_config_get(config, 'variant')!r}). Use a new --workdir "
        "(or delete that directory to start over).")
  if is_chief and (recorded is None or "identity" not in recorded):
    os.makedirs(workdir, exist_ok=True)
    writers.write_json(path, {"identity": config_identity(config), "shape_signature": signature,
                              "variant": _config_get(config, "variant"), "config": _config_dict(config)})


class _InterruptRequest:
  """While active, the first Ctrl-C (SIGINT) only sets :attr:`requested` (the loop stops after the current
  step and saves it); a second one raises ``KeyboardInterrupt`` at once. Inactive outside the main thread
  and in multi-process runs (a save is collective: one process cannot save alone)."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self) -> "_InterruptRequest":
    if threading.current_thread() is threading.main_thread() and jax.process_count() == 1:
      self._previous = signal.signal(signal.SIGINT, self._handle)
    return self

  def _handle(self, signum, frame) -> None:
    del signum, frame
    if self.requested:
      raise KeyboardInterrupt
    self.requested = True
    # os.write, not print: a print inside a signal handler fails if the interrupted code was printing.
    os.write(2, b"Ctrl-C: stopping after this step and saving a checkpoint (press again to stop at once).\n")

  def __exit__(self, *exc_info) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGINT, self._previous)
      self._previous = None


def _config_get(config: Any, name: str) -> Any:
  return config.get(name, None) if hasattr(config, "get") else getattr(config, name, None)


def _config_dict(config: Any) -> dict[str, Any]:
  return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def train_and_evaluate(config: Any, workdir: str, task: Task | Callable[[Any], Task]) -> TrainResult:
  """Trains ``task`` as described by ``config``; resumes from ``workdir/checkpoints`` when present.

  Every evaluator of the task runs at the end (and the periodic ones every ``config.eval_every_*``).
  Writes (process 0 only) ``workdir/run.json`` (the run's config identity, shape signature and config),
  ``workdir/metrics.jsonl``, ``workdir/tensorboard/`` and, at the end, ``workdir/results.json`` =
  ``{"step", "total_steps", "complete", "stopped_early", "num_params", "fingerprint", "train_metrics",
  "eval": {split: metrics}, "train_step_compilations", "config", "report"}``, where ``fingerprint`` is
  the sha256 of the final parameters' bytes (:func:`ranking_jax.train.state.fingerprint`), ``complete``
  says whether all ``total_steps`` were trained and ``stopped_early`` why not (``config.max_train_seconds``
  reached), and ``report`` is what ``task.report`` returned.

  A relaunch of a complete run changes nothing: it returns the recorded results (and the restored
  state) without training, evaluating or writing again. A relaunch may change only the fields of
  :data:`RELAUNCH_MAY_CHANGE`; ``run.json`` records the rest (:func:`config_identity`) at the first launch.
  Resume starts from the newest readable checkpoint (an unreadable newer step directory is moved aside
  to ``<step>.damaged`` and named in a warning line).

  Raises:
    WorkdirMismatchError: ``workdir`` holds a run of another configuration: config fields outside
      :data:`RELAUNCH_MAY_CHANGE` differ (checked before ``task(config)`` is called, so before any data
      work), or the parameter shapes differ.
    FloatingPointError: the run diverged: the loss, gradients, parameters or batch statistics of a step
      (checked every step on CPU, else at each log window and before every save and evaluation), or the
      model outputs of an evaluation, are NaN or infinite. Nothing of that state is saved and no
      ``results.json`` is written.
    TrainingInterrupted: Ctrl-C (SIGINT, single-process runs in the main thread): training stopped after
      the current step and its checkpoint was saved (a ``KeyboardInterrupt``; a second Ctrl-C raises a
      plain ``KeyboardInterrupt`` at once).
    ranking_jax.train.checkpoint.CheckpointReadError: no checkpoint step in ``workdir`` can be read.
    ValueError: inconsistent config fields (batch size, durations) or task.
  """
  # The workdir check reads run.json only: before the task is built (data rendered or loaded).
  check_workdir_config(workdir, config)
  # Which experiment made the run (the task module), so that tables never mix experiments.
  task_name = getattr(task, "__module__", None) if not isinstance(task, Task) else None
  if callable(task) and not isinstance(task, Task):
    task = task(config)
  if task.name is None and task_name:
    task = dataclasses.replace(task, name=task_name)
  requirements_lib.check_requirements(config, task.requirements)
  process_index, process_count = jax.process_index(), jax.process_count()
  is_chief = process_index == 0
  setup = _set_up(config, task)
  plan, weighting, tx, learning_rate_fn, state = (setup.plan, setup.weighting, setup.tx,
                                                  setup.learning_rate_fn, setup.state)
  _check_workdir(workdir, shape_signature(state), config, is_chief)

  checkpointer = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                             max_to_keep=int(config.keep_checkpoints),
                                             async_save=bool(config.get("async_checkpointing", True)))
  try:
    state, restored_step = checkpointer.restore(state)
  except BaseException:
    checkpointer.close()
    raise
  if is_chief:
    for skipped in checkpointer.skipped:
      print(f"warning: skipped the unreadable checkpoint directory {skipped.path} ({skipped.error}); moved "
            f"it to {skipped.moved_to}.", flush=True)
  start_step = int(np.asarray(state.step))
  if start_step > plan.total_steps:
    checkpointer.close()
    # A run that went past this budget cannot become a run of this budget: never record it as one.
    raise WorkdirMismatchError(
        f"{workdir} holds a checkpoint of step {start_step}, past this config's {plan.total_steps} steps: "
        f"relaunch with --config.total_steps={start_step} or more to continue it, or use a new --workdir.")
  results_path = os.path.join(workdir, "results.json")
  recorded = _read_json(results_path)
  if (recorded is not None and recorded.get("complete") and start_step >= plan.total_steps
      and recorded.get("fingerprint") == state_lib.fingerprint(state.params)):
    checkpointer.close()
    if is_chief:
      print(f"{workdir} holds a complete run of {plan.total_steps} steps; its results are unchanged: "
            f"{results_path}", flush=True)
    return TrainResult(state=state, results=recorded, predictions={})

  writer = writers.MetricWriter(workdir, enabled=is_chief)
  try:
    return _train_loop(config, workdir, task, plan, weighting, tx, learning_rate_fn, state, restored_step,
                       recorded, checkpointer, writer, is_chief)
  finally:
    writer.close()
    checkpointer.close()  # waits for a save in flight (a good checkpoint) even when the run fails


def _train_loop(config, workdir, task, plan, weighting, tx, learning_rate_fn, state, restored_step, recorded,
                checkpointer, writer, is_chief) -> TrainResult:
  """The body of :func:`train_and_evaluate` once the state is restored (the caller closes the writers)."""
  process_index, process_count = jax.process_index(), jax.process_count()
  results_path = os.path.join(workdir, "results.json")
  start_step = int(np.asarray(state.step))
  # The steps after the checkpoint are recomputed below (and the final evaluation of a finished run).
  writer.discard_after(start_step, evaluations_at_step=start_step < plan.total_steps)
  num_params = state_lib.count_params(state.params["model"])
  writer.log(f"{num_params:,} model parameters; {jax.device_count()} devices on {process_count} "
             f"process(es); {plan.describe()}")
  if restored_step is not None:
    writer.log(f"Resumed from the checkpoint of step {restored_step}.")

  counter = parallel.TraceCounter()
  train_step = parallel.make_train_step(task.model, task.loss_terms, weighting, tx, learning_rate_fn,
                                        loss_scope=config.loss_scope, counter=counter)
  p_train_step = parallel.pmap_train_step(train_step)
  p_eval_step = parallel.pmap_eval_step(parallel.make_eval_step(task.model))
  rule = selection_lib.from_config(config)
  selector = None if rule is None else selection_lib.Selector(rule)
  if rule is not None and (rule.split not in task.evaluators or not task.evaluators[rule.split].periodic):
    raise ConfigValueError(f"config.selection.split={rule.split!r} is not a periodic evaluator of the task "
                           f"(periodic: {sorted(k for k, e in task.evaluators.items() if e.periodic)}).")
  best_state = None  # host copy of the state of the selected step so far
  block = config.get("block_every_step", None)
  if block is None:
    block = jax.default_backend() == "cpu"

  def run_evaluators(replicated, step, final, what=""):
    out = {}
    for split, evaluator in task.evaluators.items():
      if not (final or evaluator.periodic):
        continue
      writer.log(f"evaluating {split} @ step {step}{what} ...")
      out[split] = evaluate(p_eval_step, replicated, evaluator.make_iterator(), evaluator.metrics_fn, split)
      if not what:  # the selected step's re-evaluation is not a new point of the curves
        writer.write_scalars(step, out[split].metrics, split=split)
      writer.log(f"{split} @ step {step}{what}: "
                 + ", ".join(f"{k} {v:.4f}" for k, v in out[split].metrics.items()))
    return out

  def offer(step, out) -> bool:
    nonlocal best_state
    if selector is None or not selector.offer(step, out[rule.split].metrics):
      return False
    best_state = parallel.unreplicate(replicated)  # a host copy: the device state is donated next step
    return True

  # (step, per-device finiteness flag) of the steps not checked yet: read at each log window, before each
  # save and evaluation (every step where the host blocks on each step anyway), so a diverged state is
  # never saved, evaluated or reported.
  unchecked: list[tuple[int, Any]] = []

  def check_finite() -> None:
    flags = jax.device_get([flag for _, flag in unchecked])
    for (step, _), flag in zip(unchecked, flags):
      if not np.all(np.asarray(flag) > 0):
        last = checkpointer.latest_step()
        raise FloatingPointError(
            f"the run diverged at step {step}: its loss, gradients or parameters are NaN or infinite "
            f"(optimizer.learning_rate={_config_get(config.optimizer, 'learning_rate')}); neither that state "
            "nor results.json was written (" + ("no checkpoint yet" if last is None else
                                                f"the last checkpoint is of step {last}")
            + "). Lower the learning rate or set optimizer.grad_clip_norm, in a new --workdir.")
    unchecked.clear()

  replicated = parallel.replicate(state)
  del state
  throughput = writers.Throughput(int(config.batch_size), plan.total_steps, start_step)
  max_seconds = config.get("max_train_seconds", None)
  deadline = time.monotonic() + float(max_seconds) if max_seconds else None
  stopped_early = None
  history: list[Any] = []
  rates: list[float] = []
  train_metrics: dict[str, float] = {}
  iterator = iter(task.make_train_iterator(start_step, process_index, process_count))
  step = start_step
  if step < plan.total_steps:
    writer.log("compiling the train step (the first step takes longer) ...")
  with _InterruptRequest() as interrupt:
    while step < plan.total_steps:
      batch = next(iterator)
      compile_start = time.perf_counter() if step == start_step else None
      replicated, metrics = p_train_step(replicated, parallel.shard(batch))
      unchecked.append((step + 1, metrics.pop(parallel.ALL_FINITE)))
      if block or compile_start is not None:
        jax.block_until_ready(metrics["loss"])
      if block:
        check_finite()
      if compile_start is not None:
        writer.log(f"first step (compilation included) took {time.perf_counter() - compile_start:.1f} s")
        throughput = writers.Throughput(int(config.batch_size), plan.total_steps, step + 1)
      history.append(metrics)
      step += 1
      out_of_time = deadline is not None and time.monotonic() > deadline
      if (step == plan.total_steps or out_of_time or (plan.log_every and step % plan.log_every == 0)):
        check_finite()
        train_metrics = _mean_metrics(history)
        history = []
        if not np.isfinite(train_metrics["loss"]):
          raise FloatingPointError(f"Non-finite training loss at step {step}: {train_metrics}.")
        examples_per_second, eta = throughput.report(step)
        if examples_per_second > 0:
          rates.append(examples_per_second)
        writer.write_scalars(step, {**train_metrics, "examples_per_second": examples_per_second})
        shown = {k: v for k, v in train_metrics.items() if k == "loss" or k.startswith("loss/")}
        writer.log(writers.format_progress(step, plan.total_steps, examples_per_second, eta, shown,
                                           unit=task.example_name))
      if out_of_time and step < plan.total_steps:
        stopped_early = (f"config.max_train_seconds={max_seconds} reached at step {step} of "
                         f"{plan.total_steps}")
        writer.log(f"STOPPED EARLY: {stopped_early}; the results below are those of an incomplete run "
                   "(relaunch the same command to continue).")
        break
      if plan.eval_every and step % plan.eval_every == 0 and step < plan.total_steps:
        check_finite()
        offer(step, run_evaluators(replicated, step, final=False))
      if plan.checkpoint_every and step % plan.checkpoint_every == 0 and step < plan.total_steps:
        check_finite()
        checkpointer.save(parallel.unreplicate(replicated))
      if interrupt.requested and step < plan.total_steps:
        check_finite()
        checkpointer.save(parallel.unreplicate(replicated), force=True)
        checkpointer.wait_until_finished()
        raise TrainingInterrupted(step)
  if counter.count > 1:
    writer.log(f"warning: the train step was traced {counter.count} times.")

  check_finite()
  final_state = parallel.unreplicate(replicated)
  checkpointer.save(final_state, force=True)
  checkpointer.wait_until_finished()
  predictions = run_evaluators(replicated, step, final=True)
  selected: dict[str, Predictions] = {}
  if selector is not None:
    if offer(step, predictions):
      selected = predictions
    elif selector.best_step is not None:
      selected = run_evaluators(parallel.replicate(best_state), selector.best_step, final=True,
                                what=f" (selected: {rule})")
    best_state = None
  if not train_metrics and recorded is not None:
    train_metrics = recorded.get("train_metrics", {})  # a relaunch that trained no step
  results = {"step": int(np.asarray(final_state.step)), "total_steps": plan.total_steps,
             "complete": stopped_early is None, "stopped_early": stopped_early,
             "num_params": num_params, "fingerprint": state_lib.fingerprint(final_state.params),
             "train_metrics": train_metrics,
             # Median over the log windows of this launch (compilation excluded); None if no window.
             "examples_per_second": float(np.median(rates)) if rates else None,
             "eval": {split: p.metrics for split, p in predictions.items()},
             "train_step_compilations": counter.count, "config": _config_dict(config)}
  if selector is not None:
    results["selected"] = selector.summary({split: p.metrics for split, p in selected.items()})
    if start_step > 0:  # the host copy of an earlier launch's best state is gone
      results["selected"]["note"] += (f"; this launch resumed at step {start_step}: only the evaluations "
                                      f"from step {start_step} on were candidates")
    writer.log(f"selected ({rule}): {results['selected']['note']}")
  if task.name:
    results["task"] = task.name
  result = TrainResult(state=final_state, results=results, predictions=predictions,
                       selected_predictions=selected)
  if task.report is not None and is_chief:
    results["report"] = dict(task.report(result, workdir) or {})
  if is_chief:
    writers.write_json(results_path, results)
  return result
