r"""SoDeep sorter training on synthetic data as a trainer :class:`~ranking_jax.train.Task`.

*SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019), §3.1 and
§4.1.1: a sorter :math:`f_{\Theta_B}` is trained to minimise the L1 loss of eq. (1) between its output and
the normalised true ranks, on score vectors drawn on the fly from a mixture of synthetic generators:

.. math:: \mathcal{L}(\Theta_B) = \frac{1}{\sum_i m_i} \sum_i m_i \big| f_{\Theta_B}(\mathbf{y})_i
   - \mathbf{rk}(\mathbf{y})_i / n \big|

The batch of step :math:`t` is drawn from ``fold_in(key(data.seed), t)`` (and the process index with
several processes), so a resumed run sees the data an uninterrupted run would. Evaluators: the L1 on a
small fixed set per mixture during training (``validation/<mixture>``) and on Table 1's fixed seeded
10 000-vector set at the end (``test/<mixture>``). The report adds the L1 at shorter lengths, the
handcrafted sorter's L1 on the same sets, the one-step Spearman gain, the forward+backward time,
Figure 5 and, with ``config.export_pretrained``, the exported sorter (``sorters.save_pretrained``).

Config: ``configs/sorter.py``.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax import models
from ranking_jax import reporting
from ranking_jax import train
from ranking_jax.sorters import evaluation
from ranking_jax.sorters import models as sorter_models
from ranking_jax.sorters import pretrained
from ranking_jax.sorters import synthetic

Batch = dict[str, Any]
_EVAL_BATCH = 500


def l1_loss(outputs: jax.Array, batch: Mapping[str, jax.Array]) -> jax.Array:
  """SoDeep eq. (1): masked mean absolute error between normalised predicted and true ranks."""
  mask = batch["where"].astype(jnp.float32)
  return jnp.sum(jnp.abs(outputs - batch["targets"]) * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def l1_metrics(predictions: np.ndarray, targets: Mapping[str, np.ndarray]) -> dict[str, float]:
  """Table 1's L1 (mean absolute error of normalised ranks over every item of every test vector).

  >>> l1_metrics(np.array([[0.5, 1.0]]), {"targets": np.array([[1.0, 0.5]])})
  {'l1': 0.5}
  """
  return {"l1": float(np.mean(np.abs(np.asarray(predictions, np.float64) - targets["targets"])))}


@functools.lru_cache(maxsize=8)
def _sampler(batch_size: int, length: int, mixture: str, min_length: Any):
  return jax.jit(lambda key: synthetic.sample_batch(key, batch_size, length, mixture=mixture,
                                                    min_length=min_length))


def _test_batches(scores: np.ndarray, targets: np.ndarray) -> Iterator[Batch]:
  for start in range(0, len(scores), _EVAL_BATCH):
    s = scores[start:start + _EVAL_BATCH]
    where = np.ones(s.shape, bool)
    yield {"inputs": {"scores": s, "where": where}, "targets": targets[start:start + _EVAL_BATCH]}


def sorter_module(config: Any) -> Any:
  """The bare sorter of ``config.model`` (what a :class:`~ranking_jax.sorters.SorterRankFn` wraps)."""
  kwargs = dict(config.model.kwargs)
  return sorter_models.build_sorter(kwargs.pop("architecture", "lstm"), **kwargs)


def rank_fn_from_state(config: Any, state: train.TrainState, metadata: Any = None
                       ) -> pretrained.SorterRankFn:
  """The trained sorter of a :class:`TrainState` as a frozen ``rank_fn``."""
  variables = {"params": state.params["model"]["sorter"],
               **{k: v["sorter"] for k, v in state.model_state.items() if "sorter" in v}}
  return pretrained.SorterRankFn(sorter_module(config), variables, max_length=int(config.data.length),
                                 metadata=dict(metadata or {}))


def make_task(config: Any) -> train.Task:
  """The sorter-training :class:`~ranking_jax.train.Task` of ``config`` (``configs/sorter.py``)."""
  data = config.data
  d, mixture = int(data.length), str(data.mixture)
  min_length = None if data.min_length is None else int(data.min_length)
  if config.model.name != "sorter":
    raise train.ConfigValueError(f"config.model.name must be 'sorter' for this task, got "
                                 f"{config.model.name!r}.")
  model = models.build_model("sorter", **dict(config.model.kwargs))
  data_key = jax.random.key(int(data.seed))

  def make_train_iterator(start_step: int, process_index: int, process_count: int) -> Iterator[Batch]:
    sample = _sampler(int(config.batch_size) // process_count, d, mixture, min_length)
    step = start_step
    while True:
      key = jax.random.fold_in(data_key, step)
      if process_count > 1:
        key = jax.random.fold_in(key, process_index)
      batch = jax.device_get(sample(key))
      yield {"inputs": {"scores": batch["scores"], "where": batch["where"]}, "targets": batch["targets"],
             "where": batch["where"]}
      step += 1

  evaluators = {}
  for split, size, periodic in (("validation", int(config.eval.periodic_size), True),
                                ("test", int(config.eval.size), False)):
    for name in config.eval.mixtures:
      scores, targets = synthetic.test_set(int(config.eval.seed), size, d, mixture=name)
      evaluators[f"{split}/{name}"] = train.Evaluator(
          make_iterator=functools.partial(_test_batches, scores, targets), metrics_fn=l1_metrics,
          periodic=periodic)

  return train.Task(model=model, loss_terms={"l1": l1_loss}, make_train_iterator=make_train_iterator,
                    evaluators=evaluators,
                    steps_per_epoch=max(1, int(data.epoch_pairs) // int(config.batch_size)),
                    report=functools.partial(report, config), example_name="pairs")


def _command_line() -> str:
  return "python -m experiments.sorter " + " ".join(
      a for a in sys.argv[1:] if not a.startswith("--workdir"))


def report(config: Any, result: train.TrainResult, workdir: str) -> dict[str, Any]:
  """Table 1 beside the paper (``results.md``), Figure 5 (``figure5.png``) and the optional export."""
  d = int(config.data.length)
  rank_fn = rank_fn_from_state(config, result.state)
  handcrafted = evaluation.handcrafted(10.0)
  out: dict[str, Any] = {}
  for name in config.eval.mixtures:
    prediction = result.predictions[f"test/{name}"]
    out[f"l1/{name}"] = prediction.metrics["l1"]
    scores, targets = synthetic.test_set(int(config.eval.seed), int(config.eval.size), d, mixture=name)
    out[f"l1_handcrafted10/{name}"] = evaluation.l1_error(handcrafted, scores, targets)
  if sorter_models.fixed_length(rank_fn.module) is None:
    for length in config.eval.extra_lengths:
      if length <= d:
        scores, targets = synthetic.test_set(int(config.eval.seed), int(config.eval.periodic_size), length,
                                             mixture="authors")
        out[f"l1/authors_d{length}"] = evaluation.l1_error(rank_fn, scores, targets)
  if d == 100:
    out["spearman_gain"] = evaluation.spearman_gain(rank_fn, length=d)
  if config.eval.timing:
    out["forward_backward_ms_b32"] = evaluation.forward_backward_ms(rank_fn, length=d)
  out["train_pairs_per_s"] = result.results.get("examples_per_second")
  if d == 100:
    evaluation.plot_figure5({"handcrafted (lambda=10)": evaluation.figure5_curve(handcrafted),
                             f"{config.model.kwargs.architecture} sorter": evaluation.figure5_curve(rank_fn)},
                            os.path.join(workdir, "figure5.png"))
  architecture = str(config.model.kwargs.architecture)
  paper = evaluation.PAPER_TABLE1.get(architecture)
  rows = [{"sorter": "handcrafted (lambda=10)", "authors": out.get("l1_handcrafted10/authors"),
           "paper_mixture": out.get("l1_handcrafted10/paper"), "paper": 0.0350},
          {"sorter": f"{architecture} (this run, {result.results['step']} steps"
                     + ("" if result.results.get("complete", True) else ", INCOMPLETE") + ")",
           "authors": out.get("l1/authors"), "paper_mixture": out.get("l1/paper"), "paper": paper}]
  table = reporting.markdown_table(rows, [
      reporting.Column("sorter"), reporting.Column("authors", "L1 authors' mixture"),
      reporting.Column("paper_mixture", "L1 paper mixture"), reporting.Column("paper", "paper Table 1")])
  extras = [f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in out.items()
            if not k.startswith(("l1/authors", "l1/paper", "l1_handcrafted")) or "_d" in k]
  text = f"# SoDeep sorter ({config.get('variant')})\n\n{table}\n\n" + "; ".join(extras) + "\n"
  reporting.write_markdown(workdir, text)
  print(text, flush=True)
  if config.export_pretrained:
    metadata = {"command": config.command or _command_line(), "mixture": str(config.data.mixture),
                "min_length": config.data.min_length, "steps": result.results["step"],
                "l1": {k: v for k, v in out.items() if k.startswith("l1/")},
                "spearman_gain": out.get("spearman_gain"), "train_pairs_per_s": out["train_pairs_per_s"]}
    kwargs = dict(config.model.kwargs)
    architecture = kwargs.pop("architecture", "lstm")
    path = pretrained.save_pretrained(config.export_pretrained, architecture, kwargs, rank_fn.variables, d,
                                      metadata, directory=config.export_dir or None)
    print(f"Exported pretrained sorter {config.export_pretrained!r} to {path}.", flush=True)
    out["exported"] = path
  return out
