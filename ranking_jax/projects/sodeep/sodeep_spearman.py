r"""SoDeep's Spearman-loss memorability regression (§4.2.1, Table 2, sorter comparison) as a trainer Task.

*SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019, §4.2.1)
regresses one memorability score per image with a feature extractor and a two-layer MLP
(:class:`ranking_jax.projects.sodeep.memorability_model.MemorabilityRegressor`, registry ``"memorability_regressor"``)
and trains it with the Spearman loss of eq. 4 on each mini-batch,

.. math::

   \mathcal{L}_{SPR} = \frac{6}{n(n^2 - 1)} \sum_i \big(f(\mathbf{y})_i - \mathbf{rk}(\mathbf{y}^*)_i\big)^2

(:func:`ranking_jax.losses.spearman_loss`), with the rank function ``f`` = ``config.loss.rank_fn``: the
shipped LSTM sorter (``lstm``, lists of at most 100 items, so ``batch_size <= 100``), the handcrafted
sorter of eq. 11-12 (``handcrafted``, :math:`\lambda = 10`; ``handcrafted_standardized`` on standardised
scores) or the soft ranks of Blondel et al. (``soft_ranks``). Baselines: ``mse`` and ``l1`` regression.

Schedule (the paper's, scaled to the CPU): stage 1 trains only the MLP on frozen features for
``config.model.freeze_backbone_epochs`` epochs, stage 2 fine-tunes everything (a per-example
``freeze_backbone`` input flag set from the step; see :mod:`ranking_jax.projects.sodeep.memorability_model`); Adam,
learning rate 1e-3 halved every 3 epochs (``config.optimizer.schedule``); the Spearman variants add an L1
term during the first ``config.loss.l1_epochs`` epoch(s) with weight ``config.loss.l1_weight``
(a :func:`ranking_jax.train.schedules.piecewise` loss weighting).

Data (``config.data.name``): ``"memorability_scenes"`` — the memorability-like score of the embedded scenes
(:mod:`ranking_jax.projects.sodeep.memorability_scenes`), rendered once into memory (``data.cache_dir`` caches it on disk);
``"lamem"`` — LaMem's split files (:mod:`ranking_jax.projects.sodeep.memorability_files`, ``data.lamem_dir``);
``"mediaeval"`` — MediaEval 2018 frames split by video (``data.mediaeval_ground_truth``,
``data.mediaeval_frames_dir``; ``data.lamem_dir`` optionally adds LaMem's training images, as the paper
does); ``"utkface"`` — real faces with age as the target (the registered dataset
:func:`ranking_jax.data.utkface.build_splits`), turned into the pooled features of the frozen ImageNet
EfficientNet-Lite0 (:func:`ranking_jax.models.pretrained_trunk.feature_splits`, cached in
``data.feature_cache_dir``) on which a two-layer MLP (``feature_regressor``) trains: the paper's first, frozen stage.
The regression target is ``data.target`` (default: the memorability) times ``data.target_scale`` (age / 100
on UTKFace); it is ``batch["memorability"]`` in the trainer's batches whatever it measures.

Lists (``config.loss.list_size``): 0 ranks the whole global batch as one list (eq. 4 on the mini-batch, the
other data's default); ``L > 0`` cuts each global batch into ``batch_size / L`` consecutive lists of ``L``
items in the iterator's order (:func:`split_lists`) and averages eq. 4 over them, so a sorter limited to
``L`` items ranks the same lists as every other rank function and a larger batch never lengthens the lists.
The batches depend on the seed only, so ``mse`` / ``l1`` runs see the very same items per step.

Metrics: Spearman's :math:`\rho` of the predictions and its approximate standard error; when the batches
carry a ``group`` (the video of a frame) the predictions of a group's frames are averaged first, as the paper
does at test time.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Iterator, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax import metrics as metrics_lib
from ranking_jax import models
from ranking_jax import ranks
from ranking_jax import reporting
from ranking_jax import train
from ranking_jax.data import errors
from ranking_jax.data import pipeline
from ranking_jax.data import registry as data_registry
from ranking_jax.data import rendered
from ranking_jax.losses import sorting
from ranking_jax.projects.sodeep import memorability_model as memorability_model
from ranking_jax.projects.sodeep import sodeep_synthetic_ap
from ranking_jax.train import schedules

Batch = dict[str, Any]

_LABEL_KEY = "memorability"
_GROUP_KEY = "group"
RANK_FNS = sodeep_synthetic_ap.RANK_FNS

# The paper's test Spearman rho x 100 (§4.2.1): (value, where). The sorter comparison is on MediaEval with
# one fixed model; Table 2 compares a ResNet-34 and a semantic embedding.
PAPER_RESULTS: dict[str, tuple[float, str]] = {
    "spearman_lstm": (49.4, "§4.2.1 sorter comparison (LSTM sorter); Table 2 Sem-Emb + SoDeep"),
    "spearman_cnn": (46.6, "§4.2.1 sorter comparison (CNN sorter)"),
    "spearman_handcrafted": (45.7, "§4.2.1 sorter comparison (handcrafted sorter)"),
    "l1": (46.2, "§4.2.1 sorter comparison (L1 loss)"),
    "mse": (48.6, "Table 2, Sem-Emb + MSE loss (R34 + MSE: 44.2)"),
}
CNN_NOTE = ("not run: no CNN sorter is shipped (ours reached L1 0.0425 on the synthetic test set, worse than "
            "the handcrafted sorter's 0.035; see configs/sorter.py)")


# ----------------------------------------------------------------------------------------------- data


def _missing(key: str, what: str, help_text: str) -> errors.DataNotFoundError:
  return errors.DataNotFoundError(f"config.{key} is empty: set --config.{key}=... ({what}). {help_text}")


@data_registry.register_dataset("memorability_scenes")
def _memorability_scenes_splits(data_config: Any) -> dict[str, Any]:
  """The ``memorability_scenes`` dataset (see :func:`make_splits`)."""
  from ranking_jax.projects.sodeep import memorability_scenes as memorability  # pylint: disable=g-import-not-at-top
  sources = memorability.make_memorability_splits(
      int(data_config.num_train), int(data_config.num_validation), int(data_config.num_test),
      seed=int(data_config.seed), image_size=int(data_config.image_size))
  return {split: rendered.render(
      source, keys=("image", _LABEL_KEY), cache_dir=data_config.get("cache_dir", "") or "",
      cache_key=["memorability", source.seed, source.offset, len(source), int(data_config.image_size),
                 source.annotator_noise],
      name="memorability scenes", description=f"rendering {len(source)} {split} scenes")
          for split, source in sources.items()}


@data_registry.register_dataset("lamem")
def _lamem_splits(data_config: Any) -> dict[str, Any]:
  """The ``lamem`` dataset (see :func:`make_splits`)."""
  from ranking_jax.projects.sodeep import memorability_files as files  # pylint: disable=g-import-not-at-top
  size = int(data_config.image_size)
  if not data_config.lamem_dir:
    raise _missing("data.lamem_dir", "the unpacked LaMem folder", files.LAMEM_HELP)
  return files.make_lamem_splits(data_config.lamem_dir, fold=int(data_config.lamem_fold), image_size=size)


@data_registry.register_dataset("mediaeval")
def _mediaeval_splits(data_config: Any) -> dict[str, Any]:
  """The ``mediaeval`` dataset (see :func:`make_splits`)."""
  from ranking_jax.projects.sodeep import memorability_files as files  # pylint: disable=g-import-not-at-top
  size = int(data_config.image_size)
  if not data_config.mediaeval_ground_truth:
    raise _missing("data.mediaeval_ground_truth", "ground-truth_dev-set.csv", files.MEDIAEVAL_CSV_HELP)
  if not data_config.mediaeval_frames_dir:
    raise _missing("data.mediaeval_frames_dir", "the extracted frames", files.MEDIAEVAL_FRAMES_HELP)
  splits = files.make_mediaeval_splits(
      data_config.mediaeval_ground_truth, data_config.mediaeval_frames_dir,
      test_ground_truth=data_config.mediaeval_test_ground_truth or None,
      test_frames_dir=data_config.mediaeval_test_frames_dir or None, seed=int(data_config.seed),
      image_size=size)
  if data_config.lamem_dir:  # the paper adds LaMem's (image, memorability) pairs to the training data
    lamem = files.make_lamem_source(data_config.lamem_dir, "train", fold=int(data_config.lamem_fold),
                                    image_size=size)
    splits["train"] = files.concatenate_sources([splits["train"], lamem])
  return splits


DATASETS = ('memorability_scenes', 'lamem', 'mediaeval', 'utkface')
FEATURES_KEY = memorability_model.FEATURES_KEY


def make_splits(data_config: Any) -> dict[str, Any]:
  """``{"train", "validation", "test"}`` sources described by ``config.data`` (see the module docstring).

  Raises:
    ranking_jax.data.DataNotFoundError: a real-data path is empty or its files are missing (the message
      names the config key and where to get the files).
    ValueError: unknown ``data_config.name``.

  ``"utkface"`` returns :class:`ranking_jax.data.FeatureSource` splits (``{"features": float32 [n, 1280],
  "age", "gender", "race", "index"}``): the first call runs the frozen trunk over every face and caches the
  features in ``data_config.feature_cache_dir``; later calls read the cache.
  """
  splits = data_registry.build_splits(data_config, accepted=DATASETS)
  if data_config.name == "utkface":
    from ranking_jax.models import pretrained_trunk  # pylint: disable=g-import-not-at-top
    cache_dir = os.path.expanduser(data_config.get("feature_cache_dir", "") or pretrained_trunk.DEFAULT_CACHE_DIR)
    splits = pretrained_trunk.feature_splits(splits, cache_dir=cache_dir)
  return splits


def _target(batch: Mapping[str, np.ndarray], data_config: Any) -> np.ndarray:
  """The regression target: ``batch[data.target]`` (default: the memorability) x ``data.target_scale``."""
  key = data_config.get("target", _LABEL_KEY) or _LABEL_KEY
  return np.asarray(batch[key], np.float32) * np.float32(data_config.get("target_scale", 1.0))


def _to_trainer_batch(batch: Mapping[str, np.ndarray], freeze: bool, data_config: Any = None) -> Batch:
  target = _target(batch, data_config if data_config is not None else {})
  if FEATURES_KEY in batch:  # cached trunk features: the trunk is frozen by construction
    inputs = {FEATURES_KEY: np.asarray(batch[FEATURES_KEY], np.float32)}
  else:
    images = np.asarray(batch["image"], np.float32)
    inputs = {memorability_model.IMAGE_KEY: images,
              memorability_model.FREEZE_KEY: np.full(len(images), freeze, bool)}
  out = {"inputs": inputs, _LABEL_KEY: target}
  if _GROUP_KEY in batch:
    out[_GROUP_KEY] = np.asarray(batch[_GROUP_KEY], np.int64)
  if "mask" in batch:
    out["mask"] = np.asarray(batch["mask"], bool)
  return out


# ------------------------------------------------------------------------------------- losses, metrics


def split_lists(values: jax.Array, list_size: int) -> jax.Array:
  """``[B] -> [B / list_size, list_size]``: consecutive lists of the batch (``list_size`` 0: one list ``[B]``).

  >>> split_lists(jnp.arange(6), 3).tolist()
  [[0, 1, 2], [3, 4, 5]]

  Raises:
    ValueError: ``B`` is not a multiple of ``list_size``.
  """
  list_size = int(list_size or 0)
  if not list_size:
    return values
  if values.shape[-1] % list_size:
    raise ValueError(f"a batch of {values.shape[-1]} items does not split into lists of {list_size} "
                     "(config.loss.list_size must divide config.batch_size).")
  return values.reshape(*values.shape[:-1], values.shape[-1] // list_size, list_size)


def make_loss_terms(loss_config: Any) -> dict[str, Any]:
  """``{"l1", "mse"[, "spearman"]}`` loss terms on ``batch["memorability"]`` over the global batch.

  ``spearman`` (eq. 4) uses ``loss_config.rank_fn`` (:data:`RANK_FNS`); it is left out when empty. With
  ``loss_config.list_size`` = ``L`` > 0 it is the mean of eq. 4 over the batch's consecutive lists of ``L``
  items (:func:`split_lists`); ``l1`` / ``mse`` are per-item means (the same over lists of equal length).

  >>> import ml_collections
  >>> terms = make_loss_terms(ml_collections.ConfigDict({"rank_fn": "handcrafted", "sharpness": 10.0,
  ...                                                    "regularization_strength": 1.0}))
  >>> sorted(terms)
  ['l1', 'mse', 'spearman']
  >>> float(terms["l1"](jnp.array([0.5, 1.0]), {"memorability": jnp.array([1.0, 1.0])}))
  0.25
  """
  terms = {"l1": lambda scores, batch: jnp.mean(jnp.abs(scores - batch[_LABEL_KEY])),
           "mse": lambda scores, batch: jnp.mean((scores - batch[_LABEL_KEY]) ** 2)}
  if loss_config.rank_fn:
    rank_fn = sodeep_synthetic_ap.make_rank_fn(
        loss_config.rank_fn, sharpness=loss_config.get("sharpness", 10.0),
        regularization_strength=loss_config.get("regularization_strength", 1.0))
    list_size = int(loss_config.get("list_size", 0) or 0)

    def spearman(scores, batch):
      where = batch.get("mask")
      return sorting.spearman_loss(
          split_lists(scores, list_size), split_lists(batch[_LABEL_KEY], list_size), rank_fn=rank_fn,
          where=None if where is None else split_lists(jnp.asarray(where, bool), list_size))
    terms["spearman"] = spearman
  return terms


def make_schedule(loss_config: Any, steps_per_epoch: int, names: Sequence[str] = ("l1", "mse", "spearman")
                  ) -> Any:
  """Loss weights over the steps: ``loss_config.main`` throughout, plus ``l1`` for the first ``l1_epochs``
  when the main term is ``spearman`` (the paper's domain-adaptation term).

  >>> import ml_collections
  >>> schedule = make_schedule(ml_collections.ConfigDict(
  ...     {"main": "spearman", "l1_epochs": 1.0, "l1_weight": 1.0}), steps_per_epoch=5)
  >>> [(float(schedule(s)["spearman"]), float(schedule(s)["l1"])) for s in (0, 4, 5)]
  [(1.0, 1.0), (1.0, 1.0), (1.0, 0.0)]
  """
  main = loss_config.main
  if main not in names:
    raise train.ConfigValueError(f"config.loss.main {main!r} is not a loss term of this run: "
                                 f"{sorted(names)}.")
  base = {name: float(name == main) for name in names}
  boundary = int(round(float(loss_config.l1_epochs) * steps_per_epoch))
  # The paper adds the L1 term to its rank loss; the plain regression baselines train their own loss only.
  if main != "spearman" or boundary <= 0 or float(loss_config.l1_weight) == 0.0:
    return schedules.piecewise([], [base])
  first = {**base, "l1": float(loss_config.l1_weight)}
  return schedules.piecewise([boundary], [first, base])


def spearman_metrics(predictions: np.ndarray, targets: Mapping[str, np.ndarray]) -> dict[str, float]:
  r"""Spearman's :math:`\rho` of predictions vs. memorability (per group mean first when ``group`` is given).

  >>> out = spearman_metrics(np.array([0.1, 0.3, 0.2, 0.9]), {"memorability": np.array([1.0, 2, 2, 3]),
  ...                                                          "group": np.array([0, 1, 1, 2])})
  >>> out["spearman_rho"], out["num_items"]
  (1.0, 3.0)
  """
  predictions = np.asarray(predictions, np.float64).reshape(-1)
  labels = np.asarray(targets[_LABEL_KEY], np.float64).reshape(-1)
  if _GROUP_KEY in targets:
    from ranking_jax.projects.sodeep import memorability_files as files  # pylint: disable=g-import-not-at-top
    groups = np.asarray(targets[_GROUP_KEY]).reshape(-1)
    present = np.unique(groups)
    predictions = files.average_by_group(predictions, groups)[present]
    labels = files.average_by_group(labels, groups)[present]
  out = {"num_items": float(len(labels)), "num_nonfinite": float(np.sum(~np.isfinite(predictions)))}
  if out["num_nonfinite"] or len(labels) < 2:
    out["spearman_rho"] = float("nan")
  else:
    out["spearman_rho"] = float(metrics_lib.spearman_rho(predictions, labels))
  out["mae"] = float(np.mean(np.abs(predictions - labels))) if not out["num_nonfinite"] else float("nan")
  rho = out["spearman_rho"]
  out["spearman_rho_se"] = (spearman_standard_error(rho, len(labels)) if np.isfinite(rho) and len(labels) > 3
                            else float("nan"))
  return {"spearman_rho": out["spearman_rho"], "spearman_rho_se": out["spearman_rho_se"], "mae": out["mae"],
          "num_items": out["num_items"], "num_nonfinite": out["num_nonfinite"]}


def spearman_standard_error(rho: float, num_items: int) -> float:
  r"""Approximate standard error of a Spearman :math:`\rho` measured on ``num_items`` items.

  :math:`(1 - \rho^2)\sqrt{1.06 / (n - 3)}` (Fieller, Hartley and Pearson, Biometrika 1957; see
  :func:`ranking_jax.projects.sodeep.memorability_scenes.spearman_standard_error`).

  >>> round(spearman_standard_error(0.5, 1000), 4)
  0.0245
  """
  from ranking_jax.projects.sodeep import memorability_scenes  # pylint: disable=g-import-not-at-top
  return memorability_scenes.spearman_standard_error(float(np.clip(rho, -1.0, 1.0)), int(num_items))


# ------------------------------------------------------------------------------------------------ task


def requirements(config: Any) -> train.Requirements:
  """:func:`_list_requirements`, plus the ImageNet trunk's weights for ``utkface`` (its features).

  Raises:
    ConfigValueError: as :func:`_list_requirements`.
  """
  needs = _list_requirements(config)
  if config.data.name == "utkface":
    needs = dataclasses.replace(needs, pretrained_weights="efficientnet_lite0")
  return needs


def _list_requirements(config: Any) -> train.Requirements:
  """Eq. 4 ranks the whole mini-batch (or its lists of ``config.loss.list_size``); a learned sorter bounds
  the list length.

  Raises:
    ConfigValueError: ``config.loss.list_size`` is negative, 1, longer than the sorter serves, or does not
      divide ``config.batch_size``.
  """
  spec = config.loss.rank_fn or ""
  list_size = int(config.loss.get("list_size", 0) or 0)
  if not list_size:
    return train.listwise_requirements("The Spearman loss ranks the whole mini-batch", spec)
  limit = ranks.max_list_length(spec)
  if list_size < 2:
    raise train.ConfigValueError(f"config.loss.list_size must be 0 (the whole batch) or >= 2, got {list_size}.")
  if limit is not None and list_size > limit:
    raise train.ConfigValueError(f"the sorter {spec!r} serves lists of at most {limit} items: "
                                 f"config.loss.list_size must be <= {limit}, got {list_size}.")
  if int(config.batch_size) % list_size:
    raise train.ConfigValueError(f"config.loss.list_size {list_size} must divide config.batch_size "
                                 f"{config.batch_size}: each batch is cut into lists of that many items.")
  return train.Requirements(global_batch=f"The Spearman loss ranks the mini-batch's lists of {list_size}")


def make_task(config: Any, splits: Optional[Mapping[str, Any]] = None) -> train.Task:
  """The trainer :class:`~ranking_jax.train.Task` of ``config`` (see ``configs/sodeep_spearman.py``).

  Raises:
    ValueError: ``config.loss_scope`` is not ``"global"`` (eq. 4 ranks the whole mini-batch), or the LSTM
      sorter would see more than 100 items (``config.batch_size > 100``).
  """
  train.check_requirements(config, requirements(config))
  if splits is None:
    splits = make_splits(config.data)
  train_source = splits["train"]
  batch_size, seed, eval_batch_size = int(config.batch_size), int(config.seed), int(config.eval_batch_size)
  steps_per_epoch = max(len(train_source) // batch_size, 1)
  freeze_steps = int(round(float(config.model.freeze_backbone_epochs) * steps_per_epoch))

  def make_train_iterator(start_step: int, process_index: int, process_count: int) -> Iterator[Batch]:
    batches = pipeline.make_train_iterator(train_source, batch_size, seed=seed, start_step=start_step,
                                           process_index=process_index, process_count=process_count)
    return pipeline.prefetch(_to_trainer_batch(b, start_step + i < freeze_steps, config.data)
                             for i, b in enumerate(batches))

  def make_eval_iterator(source: Any) -> Iterator[Batch]:
    return (_to_trainer_batch(b, False, config.data) for b in pipeline.make_eval_iterator(
        source, eval_batch_size, process_index=jax.process_index(), process_count=jax.process_count()))

  initialize_variables = None
  weights_path = config.model.get("pretrained_weights", "")
  if weights_path:
    from ranking_jax.models import weights as weights_lib  # pylint: disable=g-import-not-at-top
    initialize_variables = lambda variables: weights_lib.load_backbone_weights(variables, weights_path)

  evaluators = train.validation_and_test(make_eval_iterator, splits, spearman_metrics)
  terms = make_loss_terms(config.loss)
  return train.Task(requirements=requirements(config), model=models.build_model(config.model.name, **config.model.kwargs.to_dict()),
                    loss_terms=terms, make_train_iterator=make_train_iterator,
                    evaluators=evaluators, schedule=make_schedule(config.loss, steps_per_epoch, tuple(terms)),
                    num_train_examples=len(train_source), steps_per_epoch=steps_per_epoch,
                    initialize_variables=initialize_variables, report=functools.partial(report, config),
                    example_name="images")


# --------------------------------------------------------------------------------------------- reports

TEST_PREDICTIONS = "test_predictions.npz"


def bootstrap_standard_error(predictions: np.ndarray, labels: np.ndarray, *, num_resamples: int = 1000,
                             seed: int = 0) -> float:
  """Bootstrap standard error of Spearman's rho over the test items (resampled in pairs with replacement).

  ``scipy.stats.bootstrap`` (``paired=True``); unlike :func:`spearman_standard_error` it needs no normality
  and holds at high rho.

  >>> rng = np.random.default_rng(0); x = rng.normal(size=500)
  >>> 0.01 < bootstrap_standard_error(x + rng.normal(size=500), x, num_resamples=200) < 0.05
  True
  """
  import scipy.stats  # pylint: disable=g-import-not-at-top
  statistic = lambda p, l: scipy.stats.spearmanr(p, l).statistic
  result = scipy.stats.bootstrap((np.asarray(predictions), np.asarray(labels)), statistic, paired=True,
                                 vectorized=False, n_resamples=int(num_resamples), method="percentile",
                                 random_state=np.random.default_rng(seed))
  return float(result.standard_error)


def read_validation_curve(workdir: str) -> tuple[np.ndarray, np.ndarray]:
  """``(steps, validation rho)`` from ``workdir/metrics.jsonl`` (last record of each step)."""
  found: dict[int, float] = {}
  path = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      for line in f:
        record = json.loads(line)
        if record.get("split") == "validation" and "spearman_rho" in record:
          found[int(record["step"])] = float(record["spearman_rho"])
  steps = np.asarray(sorted(found), np.int64)
  return steps, np.asarray([found[s] for s in steps], np.float64)


def plot_validation_curves(curves: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]], path: str, *,
                           title: str = "") -> None:
  """Validation Spearman rho against steps, one colour per variant (one line per seed)."""
  with reporting.figure(path, figsize=(6.5, 4.5)) as (_, axes):
    for index, (label, runs) in enumerate(curves.items()):
      for k, (steps, values) in enumerate(runs):
        if len(steps):
          axes.plot(steps, values, color=f"C{index % 10}", marker=".", alpha=0.8,
                    label=f"{label}" if k == 0 else None)
    axes.set_xlabel("training step")
    axes.set_ylabel("validation Spearman rho")
    axes.set_title(title or "SoDeep Spearman experiment: validation rho")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
      axes.legend(fontsize=8, loc="lower right")


_COLUMNS = (reporting.Column("variant"), reporting.Column("data"), reporting.Column("seed"),
            reporting.Column("steps"), reporting.Column("spearman_rho", "test Spearman rho"),
            reporting.Column("paper_rho", "paper rho", ".3f"),
            reporting.Column("paper_row", "paper row"))


def results_table(rows: Sequence[Mapping[str, Any]]) -> str:
  """Markdown table of measured rows with the paper's figure beside each (by ``variant``).

  >>> print(results_table([{"variant": "l1", "spearman_rho": 0.4}]).splitlines()[2])
  | l1 | - | - | - | 0.4000 | 0.462 | §4.2.1 sorter comparison (L1 loss) |
  """
  full = []
  for row in rows:
    paper = PAPER_RESULTS.get(str(row["variant"]))
    # The paper prints rho x 100; one unit per table: rho.
    full.append({**row, **({"paper_rho": paper[0] / 100.0, "paper_row": paper[1]} if paper else {})})
  return reporting.markdown_table(full, _COLUMNS)


def report(config: Any, result: train.TrainResult, workdir: str) -> dict[str, Any]:
  """Writes ``results.md`` (the test rho beside the paper) and ``validation_rho.png``; returns the row."""
  test = result.predictions["test"]
  variant = str(config.variant)
  row = {"variant": variant, "data": config.data.name, "seed": int(config.seed),
         "steps": result.results["step"], "list_size": int(config.loss.get("list_size", 0) or 0),
         "batch_size": int(config.batch_size), **test.metrics}
  predictions = np.asarray(test.outputs, np.float64).reshape(-1)
  labels = np.asarray(test.targets[_LABEL_KEY], np.float64).reshape(-1)
  if _GROUP_KEY not in test.targets and np.all(np.isfinite(predictions)) and len(labels) > 3:
    row["spearman_rho_bootstrap_se"] = bootstrap_standard_error(predictions, labels)
    # Kept for paired comparisons on the same test items (experiments/sodeep_spearman_tables.py).
    np.savez_compressed(os.path.join(workdir, TEST_PREDICTIONS), predictions=predictions, labels=labels)
  steps, values = read_validation_curve(workdir)
  plot_validation_curves({variant: [(steps, values)]}, os.path.join(workdir, "validation_rho.png"))
  incomplete = "" if result.results.get("complete", True) else " (INCOMPLETE run)"
  reporting.write_markdown(workdir, f"# SoDeep Spearman, {variant}{incomplete}\n\n{results_table([row])}\n")
  paper = PAPER_RESULTS.get(variant)
  print(f"test ({variant}, seed {config.seed}): Spearman rho {row['spearman_rho']:.4f} "
        f"(SE {row.get('spearman_rho_se', float('nan')):.4f}, {int(row.get('num_items', 0))} items)"
        + (f" | paper: rho {paper[0] / 100:.3f} ({paper[1]})" if paper else "") + incomplete, flush=True)
  return {**row, "validation_steps": [int(s) for s in steps], "validation_rho": [float(v) for v in values]}
