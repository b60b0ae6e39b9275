r"""Self-contained training loop for SoDeep sorters on synthetic data (Orbax checkpoints, resume).

SoDeep: a Sorting Deep net to learn ranking loss surrogates (Engilberge et al., CVPR 2019), §3.1 and
§4.1.1: minimise the L1 loss of eq. (1) between the sorter's output and the normalised true ranks on
pairs drawn on the fly, Adam with learning rate 1e-3 halved every 100 epochs of 100 000 pairs, batch 512.

.. math:: \mathcal{L}(\Theta_B) = \frac{1}{\sum_i m_i} \sum_i m_i \big| f_{\Theta_B}(\mathbf{y})_i
   - \mathbf{rk}(\mathbf{y})_i / n \big|

Each step's batch is a pure function of ``(config.seed, step)``, so a resumed run sees exactly the data
an uninterrupted run would. The config fields are documented in ``configs/sorter.py``.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from ranking_jax.sorters import evaluation
from ranking_jax.sorters import models
from ranking_jax.sorters import pretrained
from ranking_jax.sorters import synthetic


def module_from_config(config: ml_collections.ConfigDict):
  kwargs = dict(config.sorter.module_kwargs)
  return models.build_sorter(config.sorter.architecture, **kwargs), kwargs


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """The paper's ``learning_rate * 0.5 ** floor(pairs_seen / (lr_halve_every_epochs * epoch_pairs))``.

  With ``config.lr_schedule = "cosine"`` instead: cosine decay from ``learning_rate`` to 0 over
  ``total_steps`` (for runs far shorter than the paper's first halving at 100 epochs).
  """
  schedule = config.get("lr_schedule", "halving")
  if schedule == "cosine":
    return optax.cosine_decay_schedule(config.learning_rate, max(1, int(config.total_steps)))
  if schedule != "halving":
    raise ValueError(f"config.lr_schedule must be 'halving' or 'cosine', got {schedule!r}.")
  steps_per_halving = max(1, int(round(config.lr_halve_every_epochs * config.epoch_pairs /
                                       config.batch_size)))
  return optax.exponential_decay(config.learning_rate, steps_per_halving, 0.5, staircase=True)


def _init_state(config, module, key):
  d = config.sorter.length
  # Jitted: an eager init dispatches (and compiles) every op separately.
  variables = jax.jit(module.init)(key, jnp.zeros((2, d)), jnp.ones((2, d), bool))
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  tx = optax.adam(learning_rate_schedule(config))
  return {"params": params, "batch_stats": batch_stats, "opt_state": tx.init(params),
          "step": jnp.zeros((), jnp.int32)}, tx


def make_train_step(config, module, tx) -> Callable[..., Any]:
  """A jitted ``(state, key) -> (state, metrics)``; the batch is drawn inside from ``key``."""
  d = config.sorter.length
  min_length = config.sorter.get("min_length", None)

  def train_step(state, key):
    batch = synthetic.sample_batch(key, config.batch_size, d, mixture=config.mixture,
                                   min_length=min_length)

    def loss_fn(params):
      out, updates = module.apply({"params": params, "batch_stats": state["batch_stats"]},
                                  batch["scores"], batch["where"], train=True, mutable=["batch_stats"])
      mask = batch["where"].astype(jnp.float32)
      loss = jnp.sum(jnp.abs(out - batch["targets"]) * mask) / jnp.sum(mask)
      return loss, updates.get("batch_stats", {})

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new_state = {"params": optax.apply_updates(state["params"], updates), "batch_stats": batch_stats,
                 "opt_state": opt_state, "step": state["step"] + 1}
    return new_state, {"loss": loss, "grad_norm": optax.global_norm(grads)}

  return jax.jit(train_step, donate_argnums=0)


def rank_fn_from_state(config, module, state) -> pretrained.SorterRankFn:
  return pretrained.SorterRankFn(module, {"params": state["params"], "batch_stats": state["batch_stats"]},
                                 max_length=config.sorter.length)


def evaluate(config, rank_fn, test_sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
  return {f"l1/{name}": evaluation.l1_error(rank_fn, s, t) for name, (s, t) in test_sets.items()}


def _format_eta(seconds: float) -> str:
  seconds = max(0, int(seconds))
  return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
  """Trains (or resumes) a sorter, evaluates it, writes results and returns them.

  Writes under ``workdir``: ``checkpoints/`` (Orbax), ``results.json``, ``results.md`` (beside the
  paper's Table 1) and ``figure5.png``.
  """
  os.makedirs(workdir, exist_ok=True)
  module, module_kwargs = module_from_config(config)
  state, tx = _init_state(config, module, jax.random.key(config.seed))
  num_params = int(sum(x.size for x in jax.tree.leaves(state["params"])))
  manager = ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, "checkpoints")),
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
  start_step = 0
  if manager.latest_step() is not None:
    start_step = manager.latest_step()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    state = manager.restore(start_step, args=ocp.args.StandardRestore(abstract))
    log(f"Resumed from step {start_step} in {workdir}.")
  log(f"Sorter {config.sorter.architecture} {module_kwargs}: {num_params} parameters, d = "
      f"{config.sorter.length}, mixture {config.mixture!r}, batch {config.batch_size}.")

  d = config.sorter.length
  eval_sets = {m: synthetic.test_set(config.eval.seed, config.eval.periodic_size, d, mixture=m)
               for m in config.eval.mixtures}
  train_step = make_train_step(config, module, tx)
  data_key = jax.random.key(config.seed + 1)
  pairs_per_step = config.batch_size
  deadline = (time.time() + config.max_train_seconds) if config.get("max_train_seconds") else None
  history = []
  step = start_step
  window_start, window_steps, window_loss = time.time(), 0, 0.0
  train_seconds = 0.0
  while step < config.total_steps:
    state, metrics = train_step(state, jax.random.fold_in(data_key, step))
    step += 1
    window_steps += 1
    if step % config.log_every_steps == 0 or step == config.total_steps:
      window_loss = float(metrics["loss"])  # blocks: one dispatch in flight at most per window
      elapsed = time.time() - window_start
      train_seconds += elapsed
      rate = window_steps * pairs_per_step / max(elapsed, 1e-9)
      eta = (config.total_steps - step) * pairs_per_step / max(rate, 1e-9)
      if deadline is not None:
        eta = min(eta, max(0.0, deadline - time.time()))
      lr = float(learning_rate_schedule(config)(step))
      log(f"step {step}/{config.total_steps} epoch {step * pairs_per_step / config.epoch_pairs:.2f} "
          f"loss {window_loss:.5f} lr {lr:.2e} {rate:.0f} pairs/s ETA {_format_eta(eta)}")
      history.append({"step": step, "loss": window_loss, "pairs_per_s": rate})
      window_start, window_steps = time.time(), 0
    stop = deadline is not None and time.time() > deadline
    if step % config.eval_every_steps == 0 and step < config.total_steps and not stop:
      l1 = evaluate(config, rank_fn_from_state(config, module, state), eval_sets)
      log(f"step {step} eval ({config.eval.periodic_size} vectors) " +
          " ".join(f"{k} {v:.5f}" for k, v in l1.items()))
      window_start = time.time()
    if step % config.checkpoint_every_steps == 0 or stop:
      manager.save(step, args=ocp.args.StandardSave(state))
    if stop:
      log(f"Stopping at step {step}: max_train_seconds={config.max_train_seconds} reached.")
      break
  if manager.latest_step() != step:
    manager.save(step, args=ocp.args.StandardSave(state), force=True)
  manager.wait_until_finished()
  manager.close()

  log("Final evaluation ...")
  rank_fn = rank_fn_from_state(config, module, state)
  results = final_evaluation(config, rank_fn, workdir, log=log)
  results.update({
      "architecture": config.sorter.architecture, "module_kwargs": module_kwargs,
      "num_params": num_params, "steps": step, "pairs_seen": step * pairs_per_step,
      "train_seconds_this_run": train_seconds,
      "train_pairs_per_s": float(np.median([h["pairs_per_s"] for h in history])) if history else None,
      "mixture": config.mixture, "length": d, "min_length": config.sorter.get("min_length", None),
  })
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(results_markdown(results))
  log(results_markdown(results))
  if config.get("export_pretrained"):
    metadata = {
        "command": config.get("command", ""),
        "mixture": config.mixture,
        "min_length": config.sorter.get("min_length", None),
        "steps": step,
        "l1": {k: v for k, v in results.items() if k.startswith("l1/")},
        "spearman_gain": results.get("spearman_gain"),
        "train_pairs_per_s": results["train_pairs_per_s"],
    }
    path = pretrained.save_pretrained(config.export_pretrained, config.sorter.architecture, module_kwargs,
                                      {"params": state["params"], "batch_stats": state["batch_stats"]},
                                      d, metadata, directory=config.get("export_dir") or None)
    log(f"Exported pretrained sorter {config.export_pretrained!r} to {path}.")
  return results


def final_evaluation(config, rank_fn, workdir: Optional[str] = None,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
  """Table-1 L1 per mixture (``config.eval.size`` vectors), extra lengths, gain, timing, Figure 5."""
  d = config.sorter.length
  results: dict[str, Any] = {}
  handcrafted = evaluation.handcrafted(10.0)
  for mixture in config.eval.mixtures:
    scores, targets = synthetic.test_set(config.eval.seed, config.eval.size, d, mixture=mixture)
    results[f"l1/{mixture}"] = evaluation.l1_error(rank_fn, scores, targets)
    results[f"l1_handcrafted10/{mixture}"] = evaluation.l1_error(handcrafted, scores, targets)
    log(f"L1 {mixture}: sorter {results[f'l1/{mixture}']:.5f}, handcrafted(10) "
        f"{results[f'l1_handcrafted10/{mixture}']:.5f}")
  if models.fixed_length(rank_fn.module) is None:
    for length in config.eval.get("extra_lengths", ()):
      if length > d:
        continue
      scores, targets = synthetic.test_set(config.eval.seed, config.eval.periodic_size, length,
                                           mixture="authors")
      results[f"l1/authors_d{length}"] = evaluation.l1_error(rank_fn, scores, targets)
  if d == 100:
    results["spearman_gain"] = evaluation.spearman_gain(rank_fn, length=d)
  if config.eval.get("timing", True):
    results["forward_backward_ms_b32"] = evaluation.forward_backward_ms(rank_fn, length=d)
  if workdir is not None and d == 100:
    curves = {"handcrafted (lambda=10)": evaluation.figure5_curve(handcrafted),
              f"{config.sorter.architecture} sorter": evaluation.figure5_curve(rank_fn)}
    evaluation.plot_figure5(curves, os.path.join(workdir, "figure5.png"))
  return results


def results_markdown(results: dict[str, Any]) -> str:
  """A markdown table of the run's figures beside the paper's Table 1."""
  name = results.get("architecture", "sorter")
  lines = ["| sorter | L1 authors' mixture | L1 paper mixture | paper Table 1 |",
           "|---|---|---|---|"]
  paper = {"lstm": evaluation.PAPER_TABLE1["lstm"], "cnn": evaluation.PAPER_TABLE1["cnn"]}.get(name)

  def fmt(x):
    return "-" if x is None else f"{x:.4f}"

  lines.append(f"| handcrafted (lambda=10) | {fmt(results.get('l1_handcrafted10/authors'))} | "
               f"{fmt(results.get('l1_handcrafted10/paper'))} | 0.0350 |")
  lines.append(f"| {name} (this run) | {fmt(results.get('l1/authors'))} | {fmt(results.get('l1/paper'))} | "
               f"{fmt(paper)} |")
  extras = []
  for key in sorted(results):
    if key.startswith("l1/authors_d"):
      extras.append(f"L1 at d={key.split('_d')[-1]}: {results[key]:.4f}")
  for key, label in (("spearman_gain", "one-step Spearman gain"),
                     ("forward_backward_ms_b32", "forward+backward ms (batch 32)"),
                     ("train_pairs_per_s", "training pairs/s"), ("steps", "steps"),
                     ("num_params", "parameters")):
    if results.get(key) is not None:
      value = results[key]
      extras.append(f"{label}: {value:.4f}" if isinstance(value, float) else f"{label}: {value}")
  return "\n".join(lines) + "\n\n" + "; ".join(extras) + "\n"


def steps_for_epochs(config: ml_collections.ConfigDict, epochs: float) -> int:
  return int(math.ceil(epochs * config.epoch_pairs / config.batch_size))
