r"""SoDeep's synthetic mAP experiment (Figure 6) as a trainer :class:`~ranking_jax.train.Task`.

*SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019, §4.1.4,
Figure 6) follows the synthetic protocol of *Training Deep Neural Networks via Direct Loss Minimization*
(Song, Schwing, Zemel, Urtasun, ICML 2016): a random ReLU teacher labels the top 20 % of 20 000 Gaussian
points positive (:mod:`ranking_jax.projects.sodeep.teacher_student`), a student of the same architecture
(:class:`~ranking_jax.projects.sodeep.teacher_student.ReluMLP`, registry name ``"relu_mlp"``) is trained on 10 000 of
them with one loss, and its test AP is followed over the epochs. The losses (``config.loss.name``):

* ``cross_entropy``: sigmoid binary cross-entropy of the scores (a per-point surrogate);
* ``hinge_ap``: the structured hinge upper bound on :math:`1 - \mathrm{AP}` of each mini-batch
  (SVM-MAP, Yue et al. 2007, exact loss-augmented inference; :func:`ranking_jax.losses.hinge_ap_loss`);
* ``map``: SoDeep's mAP loss eq. 7 normalised to [0, 1] (:func:`ranking_jax.losses.map_rank_loss`,
  ``form="normalized_rank_sum"``, the form of the recorded results; one list per step, so it is eq. 7
  divided by rel x negatives of the batch) on each mini-batch, with the rank function ``config.loss.rank_fn``: ``lstm`` (the shipped sorter
  ``lstm_h64_d100``: lists of at most 100 items, so mini-batches of at most 100 points), ``handcrafted``
  (eq. 11-12, :math:`\lambda` = ``config.loss.sharpness``), ``handcrafted_standardized``, ``soft_ranks``
  (Blondel et al. 2020, :math:`\varepsilon` = ``config.loss.regularization_strength``).

Every list-wise loss treats the whole (global) mini-batch as one list, so the task runs with
``config.loss_scope = "global"``. Evaluators: ``train_points`` (AP on the training points, the quantity the
protocol tunes on) and ``test`` (test AP), both every ``eval_every`` (one epoch by default): Figure 6 plots
test AP against epochs. :func:`report` writes the curve PNG and the final row; :func:`summary_table`
and :func:`plot_ap_curves` aggregate several runs (``experiments/sodeep_synthetic_ap_tables.py``).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Iterator, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ranking_jax import metrics as metrics_lib
from ranking_jax import models
from ranking_jax import ranks
from ranking_jax import reporting
from ranking_jax import train
from ranking_jax.data import pipeline
from ranking_jax.data import rendered
from ranking_jax.projects.sodeep import teacher_student
from ranking_jax.losses import average_precision as ap_losses
from ranking_jax.losses import sorting

Batch = dict[str, np.ndarray]

LOSSES = ("cross_entropy", "hinge_ap", "map")
RANK_FNS = ("lstm", "handcrafted", "handcrafted_standardized", "soft_ranks")
PRETRAINED_SORTER = ranks.DEFAULT_SORTER
_LABEL_KEY = "label"


# ----------------------------------------------------------------------------------------------- data


def make_splits(data_config: Any) -> dict[str, rendered.ArraySource]:
  """``{"train", "test"}`` array sources (``x`` float32 ``[n, 10]``, ``label`` float32 0/1) of ``config.data``.

  >>> import ml_collections
  >>> splits = make_splits(ml_collections.ConfigDict(dict(seed=0, num_points=50, num_train=30,
  ...                                                     teacher_hidden_sizes=(4, 4, 4, 4))))
  >>> len(splits["train"]), len(splits["test"])
  (30, 20)
  """
  data = teacher_student.make_teacher_student_data(
      int(data_config.seed), num_points=int(data_config.num_points), num_train=int(data_config.num_train),
      hidden_sizes=tuple(int(h) for h in data_config.teacher_hidden_sizes))
  return {"train": rendered.ArraySource({"x": data.x_train, _LABEL_KEY: data.y_train}),
          "test": rendered.ArraySource({"x": data.x_test, _LABEL_KEY: data.y_test})}


def _to_trainer_batch(batch: Mapping[str, np.ndarray]) -> Batch:
  out = {"inputs": np.asarray(batch["x"], np.float32), _LABEL_KEY: np.asarray(batch[_LABEL_KEY], np.float32)}
  if "mask" in batch:
    out["mask"] = np.asarray(batch["mask"], bool)
  return out


# ------------------------------------------------------------------------------------------ losses


def make_rank_fn(name: str, *, sharpness: float = 10.0, regularization_strength: float = 1.0,
                 pretrained_dir: Optional[str] = None):
  """The rank function ``name`` of :data:`RANK_FNS` as a :class:`ranking_jax.types.RankFn`.

  ``lstm`` loads the shipped sorter ``lstm_h64_d100`` (lists of at most 100 items).

  >>> import jax.numpy as jnp
  >>> make_rank_fn("handcrafted")(jnp.array([0.0, 1.0])).round(3)
  Array([2., 1.], dtype=float32)
  """
  return ranks.get_rank_fn(name, sharpness=sharpness, regularization_strength=regularization_strength,
                           pretrained_dir=pretrained_dir)


def make_loss_terms(loss_config: Any) -> dict[str, Any]:
  """``{config.loss.name: fn(scores, batch)}``: the one loss of the run over the (global) mini-batch.

  >>> import ml_collections, jax.numpy as jnp
  >>> terms = make_loss_terms(ml_collections.ConfigDict({"name": "cross_entropy"}))
  >>> round(float(terms["cross_entropy"](jnp.zeros(2), {"label": jnp.array([0.0, 1.0])})), 4)
  0.6931
  """
  name = loss_config.name
  if name == "cross_entropy":
    fn = lambda scores, batch: jnp.mean(optax.sigmoid_binary_cross_entropy(scores, batch[_LABEL_KEY]))
  elif name == "hinge_ap":
    fn = lambda scores, batch: ap_losses.hinge_ap_loss(scores, batch[_LABEL_KEY])
  elif name == "map":
    rank_fn = make_rank_fn(loss_config.rank_fn, sharpness=loss_config.get("sharpness", 10.0),
                           regularization_strength=loss_config.get("regularization_strength", 1.0))
    fn = lambda scores, batch: sorting.map_rank_loss(scores, batch[_LABEL_KEY], rank_fn=rank_fn,
                                                     form="normalized_rank_sum")
  else:
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}.")
  return {name: fn}


def ap_metrics(predictions: np.ndarray, targets: Mapping[str, np.ndarray]) -> dict[str, float]:
  """Average precision (tie-aware, = ``sklearn.metrics.average_precision_score``) of the scores.

  >>> ap_metrics(np.array([0.9, 0.8, 0.3, 0.1]), {"label": np.array([1.0, 0.0, 1.0, 0.0])})["ap"]
  0.8333333333333333
  """
  scores = np.asarray(predictions, np.float64).reshape(-1)
  labels = np.asarray(targets[_LABEL_KEY]).reshape(-1) > 0
  if not np.all(np.isfinite(scores)):
    return {"ap": float("nan"), "num_examples": float(len(labels))}
  return {"ap": float(metrics_lib.average_precision(scores, labels)), "num_examples": float(len(labels))}


# ------------------------------------------------------------------------------------------------ task


def requirements(config: Any) -> train.Requirements:
  """The list-wise losses rank the whole mini-batch; a learned sorter bounds its length."""
  spec = config.loss.rank_fn if config.loss.name == "map" else ""
  return train.listwise_requirements("The list-wise losses rank the whole mini-batch", spec)


def make_task(config: Any, splits: Optional[Mapping[str, Any]] = None) -> train.Task:
  """The trainer :class:`~ranking_jax.train.Task` of ``config`` (see ``configs/sodeep_synthetic_ap.py``).

  Raises:
    ValueError: ``config.loss_scope`` is not ``"global"``, or the shipped LSTM sorter would see lists longer
      than 100 (``config.batch_size > 100``).
  """
  train.check_requirements(config, requirements(config))
  if splits is None:
    splits = make_splits(config.data)
  train_source = splits["train"]
  batch_size, seed, eval_batch_size = int(config.batch_size), int(config.seed), int(config.eval_batch_size)

  def make_train_iterator(start_step: int, process_index: int, process_count: int) -> Iterator[Batch]:
    batches = pipeline.make_train_iterator(train_source, batch_size, seed=seed, start_step=start_step,
                                           process_index=process_index, process_count=process_count)
    return (_to_trainer_batch(b) for b in batches)

  def make_eval_iterator(source: Any) -> Iterator[Batch]:
    return (_to_trainer_batch(b) for b in pipeline.make_eval_iterator(
        source, eval_batch_size, process_index=jax.process_index(), process_count=jax.process_count()))

  # "train_points": the training split evaluated like the test split ("train" names the loss records).
  evaluators = {name: train.Evaluator(functools.partial(make_eval_iterator, splits[split]), ap_metrics)
                for name, split in (("train_points", "train"), ("test", "test"))}
  return train.Task(requirements=requirements(config), model=models.build_model(config.model.name, **config.model.kwargs.to_dict()),
                    loss_terms=make_loss_terms(config.loss), make_train_iterator=make_train_iterator,
                    evaluators=evaluators, num_train_examples=len(train_source),
                    report=functools.partial(report, config), example_name="points")


# --------------------------------------------------------------------------------------------- reports


def read_curve(workdir: str, split: str = "test", metric: str = "ap") -> tuple[np.ndarray, np.ndarray]:
  """``(steps, values)`` of ``<split>/<metric>`` from ``workdir/metrics.jsonl`` (the periodic evaluations)."""
  steps, values = [], []
  path = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      for line in f:
        record = json.loads(line)
        if record.get("split") == split and metric in record:
          steps.append(int(record["step"]))
          values.append(float(record[metric]))
  order = np.argsort(steps, kind="stable")
  steps_array, values_array = np.asarray(steps)[order], np.asarray(values)[order]
  keep = np.concatenate([steps_array[1:] != steps_array[:-1], [True]]) if len(steps) else np.zeros(0, bool)
  return steps_array[keep], values_array[keep]  # the last record of a step (a resumed run re-evaluates)


def plot_ap_curves(curves: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]], path: str, *,
                   steps_per_epoch: int, title: str = "") -> None:
  """Figure 6: test AP against epochs, one line per loss (mean over its runs, band = min..max)."""
  with reporting.figure(path, figsize=(6, 4.5)) as (_, axes):
    for index, (label, runs) in enumerate(curves.items()):
      runs = [r for r in runs if len(r[0])]
      if not runs:
        continue
      length = min(len(r[0]) for r in runs)
      epochs = np.asarray(runs[0][0][:length], np.float64) / steps_per_epoch
      values = np.stack([np.asarray(r[1][:length]) for r in runs])
      axes.plot(epochs, values.mean(0), color=f"C{index}", label=f"{label} ({len(runs)} run(s))")
      if len(runs) > 1:
        axes.fill_between(epochs, values.min(0), values.max(0), color=f"C{index}", alpha=0.2)
    axes.set_xlabel("epoch")
    axes.set_ylabel("test AP")
    axes.set_title(title or "Synthetic mAP experiment (SoDeep Fig. 6)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")


def variant_label(config: Any) -> str:
  """``cross_entropy``, ``hinge_ap`` or ``map_<rank_fn>``."""
  return config.loss.name if config.loss.name != "map" else f"map_{config.loss.rank_fn}"


_COLUMNS = (reporting.Column("variant"), reporting.Column("seed"), reporting.Column("epochs"),
            reporting.Column("train_ap", "final train AP"), reporting.Column("test_ap", "final test AP"),
            reporting.Column("best_test_ap", "best test AP (epoch)"))


def report(config: Any, result: train.TrainResult, workdir: str) -> dict[str, Any]:
  """Writes ``results.md`` (the final APs) and ``figure6.png`` (this run's test AP curve)."""
  steps, values = read_curve(workdir)
  num_train = len(result.predictions["train_points"].targets[_LABEL_KEY])
  steps_per_epoch = max(num_train // int(config.batch_size), 1)
  label = variant_label(config)
  best = int(np.nanargmax(values)) if len(values) and np.any(np.isfinite(values)) else None
  row = {"variant": label, "seed": int(config.seed), "epochs": result.results["step"] / steps_per_epoch,
         "train_ap": result.predictions["train_points"].metrics["ap"],
         "test_ap": result.predictions["test"].metrics["ap"],
         "best_test_ap": (f"{values[best]:.4f} ({steps[best] / steps_per_epoch:g})" if best is not None
                          else "-")}
  plot_ap_curves({label: [(steps, values)]}, os.path.join(workdir, "figure6.png"),
                 steps_per_epoch=steps_per_epoch)
  reporting.write_markdown(workdir, f"# SoDeep synthetic mAP, {label}\n\n"
                           f"{reporting.markdown_table([row], _COLUMNS)}\n")
  print(f"test AP ({label}, seed {config.seed}): {row['test_ap']:.4f} (train AP {row['train_ap']:.4f})",
        flush=True)
  return {**row, "curve_steps": [int(s) for s in steps], "curve_test_ap": [float(v) for v in values],
          "steps_per_epoch": steps_per_epoch}


def summary_table(runs: Sequence[Mapping[str, Any]]) -> str:
  """Markdown table of final test / train AP per variant over seeds (runs = ``reporting.collect_runs``)."""
  by_variant: dict[str, list[Mapping[str, Any]]] = {}
  for run in runs:
    by_variant.setdefault(run["report"]["variant"], []).append(run["report"])
  rows = []
  for variant, reports in by_variant.items():
    rows.append({"variant": variant,
                 "test_ap": reporting.mean_pm_std([r["test_ap"] for r in reports], ".4f"),
                 "train_ap": reporting.mean_pm_std([r["train_ap"] for r in reports], ".4f"),
                 "seeds": ", ".join(str(r["seed"]) for r in reports)})
  rows.sort(key=lambda r: -float(r["test_ap"].split()[0]))
  columns = (reporting.Column("variant"), reporting.Column("test_ap", "final test AP"),
             reporting.Column("train_ap", "final train AP"), reporting.Column("seeds"))
  return reporting.markdown_table(rows, columns)
