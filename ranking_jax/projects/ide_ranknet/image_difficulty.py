r"""The image-difficulty experiment of IDE RankNet as a trainer :class:`~ranking_jax.train.Task`.

*IDE RankNet: Estimating the difficulty of visual search in an image* (Ma, Zhang, Sun) regresses one
difficulty score per image with a CNN trained by the MSE, the Kendall RankLoss (eq. 2, with hardtanh), their
weighted sum (eq. 5)

.. math::

   \mathcal{L} = \lambda\,\mathcal{L}_\text{rank} + (1 - \lambda)\,\mathcal{L}_\text{mse},
   \qquad \lambda \in [0, 1],

or the alternation of Algorithm 1 (epoch :math:`t` trains :math:`\mathcal{L}_\text{mse}` when
:math:`t \bmod f = 0`, else :math:`\mathcal{L}_\text{rank}`; :math:`f = 3`). The rank loss treats the whole
mini-batch as one list, so the task runs with ``config.loss_scope = "global"``. Results are the MSE and
Kendall's :math:`\tau_a` on the test split (Tables 1-2), the validation split being the trainer's periodic
evaluation, and the predicted-vs-true scatter with its least-squares line (Figure 4).

Data (``config.data.name``): ``"scenes_difficulty"``, the embedded procedural scenes
(:mod:`ranking_jax.data.scenes`, rendered once into memory, optionally cached on disk), or ``"voc2012_vsd"``, PASCAL
VOC 2012 joined with the visual-search-difficulty CSV (:mod:`ranking_jax.projects.ide_ranknet.voc_difficulty`).

Entry points: :func:`make_task` (for ``experiments/main_lib.py``: the model by name from the registry,
the ``validation`` evaluator every ``eval_every`` and the ``test`` evaluator at the end), :func:`report`
(from the test predictions the trainer computed: the row beside the paper's figure in ``results.md`` and
the Figure 4 PNG), :func:`results_table` and :func:`plot_predicted_vs_true`.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Iterator, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np

from ranking_jax import metrics as metrics_lib
from ranking_jax import models
from ranking_jax import reporting
from ranking_jax import train
from ranking_jax.data import augment as augment_lib
from ranking_jax.data import feature_cache
from ranking_jax.data import pipeline
from ranking_jax.data import registry as data_registry
from ranking_jax.data import rendered
from ranking_jax.data import scenes as scenes_lib
from ranking_jax.errors import ConfigValueError
from ranking_jax.losses import kendall
from ranking_jax.models import pretrained_trunk

Batch = dict[str, np.ndarray]

# The paper's test-set figures: (MSE, Kendall's tau, where). Figure 3 lists 1 - MSE; stored here as MSE.
PAPER_RESULTS: dict[str, tuple[float, float, str]] = {
    "mobilenet": (0.348, 0.203, "Table 1, row 1 (MobileNet, MSE)"),
    "vgg16": (0.259, 0.335, "Table 1, row 2 (VGG-16, MSE)"),
    "resnet101": (0.243, 0.372, "Table 1, row 3 (ResNet-101, MSE)"),
    "resnet152": (0.223, 0.387, "Table 1, row 4 (ResNet-152, MSE)"),
    "mse": (0.200, 0.405, "Table 2, exp. 1 (ResNet-152 + MSE)"),
    "kendall": (17.04, 0.464, "Table 2, exp. 2 (ResNet-152 + Kendall RankLoss)"),
    "weighted": (0.21, 0.425, "Table 2, exp. 3 (MSE + KE, lambda = 0.7)"),
    "alternating": (0.222, 0.467, "Table 2, exp. 4 (MSE / KE, f = 3)"),
}
_FIGURE3_TAU = (0.405, 0.410, 0.412, 0.422, 0.418, 0.425, 0.428, 0.435)
_FIGURE3_ONE_MINUS_MSE = (0.800, 0.797, 0.785, 0.764, 0.759, 0.790, 0.672, 0.583)
_FIGURE3_LAMBDAS = (0.0, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
for _lam, _tau, _one_minus in zip(_FIGURE3_LAMBDAS, _FIGURE3_TAU, _FIGURE3_ONE_MINUS_MSE):
  PAPER_RESULTS[f"lambda={_lam:g}"] = (round(1.0 - _one_minus, 3), _tau, f"Figure 3 (lambda = {_lam:g})")

_IMAGE_KEY = "image"
_LABEL_KEY = "difficulty"


# ----------------------------------------------------------------------------------------------- data


@data_registry.register_dataset("scenes_difficulty")
def _scenes_difficulty_splits(data_config: Any) -> dict[str, Any]:
  """The ``scenes_difficulty`` dataset (see :func:`make_splits`)."""
  sources = scenes_lib.make_scenes_splits(int(data_config.num_train), int(data_config.num_validation),
                                          int(data_config.num_test), seed=int(data_config.seed),
                                          image_size=int(data_config.image_size))
  # Rendering costs ~10 ms per 64x64 scene: once per run (or once per cache_dir), with a progress line.
  out = {}
  for split, source in sources.items():
    cache_key = ["scenes", source.seed, source.offset, len(source), source.image_size,
                 source.clutter_range, source.annotator_noise, source.max_objects]
    out[split] = rendered.render(
        source, keys=(_IMAGE_KEY, _LABEL_KEY), cache_dir=data_config.get("cache_dir", "") or "",
        cache_key=cache_key, name="scenes", description=f"rendering {len(source)} {split} scenes")
    # What identifies the images for the pretrained trunk's feature cache (pretrained_trunk.trunk_features).
    key_fields = {"dataset": "scenes_difficulty", "split": split, "image_size": int(source.image_size),
                  "scenes": [str(x) for x in cache_key]}
    out[split].cache_key_fields = functools.partial(dict, key_fields)
  return out


@data_registry.register_dataset("voc2012_vsd")
def _voc2012_vsd_splits(data_config: Any) -> dict[str, Any]:
  """The ``voc2012_vsd`` dataset (see :func:`make_splits`)."""
  from ranking_jax.projects.ide_ranknet import voc_difficulty  # pylint: disable=g-import-not-at-top
  if not data_config.csv_path:
    raise voc_difficulty.DataNotFoundError(
        "config.data.csv_path is empty: set --config.data.csv_path=/path/to/VSD_dataset.csv. "
        + voc_difficulty.CSV_HELP)
  return voc_difficulty.make_voc_difficulty_splits(
      data_config.csv_path, data_dir=data_config.tfds_data_dir or None, seed=int(data_config.seed),
      image_size=int(data_config.image_size), index_cache_path=data_config.index_cache_path or None)


DATASETS = ('scenes_difficulty', 'voc2012_vsd',)


def make_splits(data_config: Any) -> dict[str, Any]:
  """``{"train", "validation", "test"}`` sources described by ``config.data``.

  ``data_config.name == "scenes_difficulty"``: disjoint index ranges of one scenes generator (``num_train``,
  ``num_validation``, ``num_test``, ``seed``, ``image_size``), rendered into memory. ``"voc2012_vsd"``: VOC 2012 +
  the scores CSV at ``csv_path``, split 2:1:1 with ``seed`` (raises
  :class:`ranking_jax.data.DataNotFoundError` with instructions when the CSV or the dataset is missing).
  """
  return data_registry.build_splits(data_config, accepted=DATASETS)


def to_trainer_batch(batch: Mapping[str, np.ndarray], input_key: str = _IMAGE_KEY) -> Batch:
  """Adapts a data-pipeline batch to the trainer's layout: the image (or ``input_key``) under ``"inputs"``.

  >>> to_trainer_batch({"image": np.zeros((2, 4, 4, 3)), "difficulty": np.ones(2), "index": np.arange(2)}
  ...                  ).keys()
  dict_keys(['inputs', 'difficulty'])
  """
  out = {"inputs": np.asarray(batch[input_key], np.float32),
         _LABEL_KEY: np.asarray(batch[_LABEL_KEY], np.float32)}
  if "mask" in batch:
    out["mask"] = np.asarray(batch["mask"], bool)
  return out


def _augment_config(data_config: Any) -> Optional[augment_lib.AugmentConfig]:
  if not data_config.augment:
    return None
  return augment_lib.AugmentConfig()


# ------------------------------------------------------------------------------------- losses, metrics


def make_loss_terms(label_diff: str = "sgn") -> dict[str, Any]:
  """``{"rank": Kendall RankLoss over the (global) batch, "mse": MSE}`` on ``batch["difficulty"]``.

  >>> terms = make_loss_terms()
  >>> import jax.numpy as jnp
  >>> batch = {"difficulty": jnp.array([1.0, 2.0, 3.0])}
  >>> float(terms["rank"](jnp.array([0.0, 5.0, 9.0]), batch)), float(terms["mse"](jnp.zeros(3), batch))
  (0.0, 4.666666507720947)
  """
  if label_diff not in ("sgn", "hardtanh"):
    raise ValueError(f"label_diff must be 'sgn' or 'hardtanh', got {label_diff!r}.")
  return {
      "rank": lambda outputs, batch: kendall.kendall_rank_loss(outputs, batch[_LABEL_KEY],
                                                               label_diff=label_diff),
      "mse": lambda outputs, batch: kendall.mse_loss(outputs, batch[_LABEL_KEY]),
  }


def difficulty_metrics(predictions: np.ndarray, targets: Mapping[str, np.ndarray]) -> dict[str, float]:
  r"""The paper's two test metrics: MSE and Kendall's :math:`\tau_a` (eq. 1) of predictions vs. labels.

  .. math::

     \text{MSE} = \frac1n \sum_i (s_i - y_i)^2, \qquad
     \tau_a = \frac{n_c - n_d}{n (n - 1) / 2}

  Also ``relative_mse`` = MSE / variance of the split's labels (the MSE of predicting their mean; 1 - R^2),
  a scale-free MSE for selection rules that move between label scales (NaN for constant labels).

  Non-finite predictions make the metrics NaN (a diverged model is not scored on the rest) and are
  counted in ``num_nonfinite``, so a run still writes its results instead of failing at the final eval.

  >>> out = difficulty_metrics(np.array([1.0, 3.0, 2.0]), {"difficulty": np.array([1.0, 2.0, 3.0])})
  >>> {k: round(v, 4) for k, v in out.items()}
  {'mse': 0.6667, 'kendall_tau': 0.3333, 'relative_mse': 1.0, 'num_examples': 3.0, 'num_nonfinite': 0.0}
  """
  predictions = np.asarray(predictions, np.float64).reshape(-1)
  labels = np.asarray(targets[_LABEL_KEY], np.float64).reshape(-1)
  if predictions.shape != labels.shape:
    raise ValueError(f"{predictions.shape[0]} predictions for {labels.shape[0]} labels.")
  num_nonfinite = int(np.sum(~np.isfinite(predictions)))
  if num_nonfinite:
    mse = tau = float("nan")
  else:
    mse = float(np.mean((predictions - labels) ** 2))
    tau = float(metrics_lib.kendall_tau(predictions, labels, variant="a"))
  variance = float(np.var(labels))
  relative = mse / variance if variance > 0 else float("nan")
  return {"mse": mse, "kendall_tau": tau, "relative_mse": relative, "num_examples": float(len(labels)),
          "num_nonfinite": float(num_nonfinite)}


# --------------------------------------------------------------------------------------- pretrained trunk


class TrunkRegressor(nn.Module):
  """The ImageNet EfficientNet-Lite0 from block ``start_block`` on, then one linear output: a difficulty score.

  The paper fine-tunes an ImageNet ResNet-152 with its last layer replaced by one output (section III.A);
  ResNet-152's ImageNet weights cannot be had offline here, EfficientNet-Lite0's can
  (:mod:`ranking_jax.models.pretrained_trunk`). Inputs:

  * ``start_block = 0``: float32 images ``[B, H, W, 3]`` in ``[0, 1]`` (the whole network trains; the
    network maps them to ``(255 x - 127) / 128``, the TF-Lite convention, not the ImageNet mean / std of
    :class:`~ranking_jax.models.heads.ImageRegressor`);
  * ``0 < start_block < 16``: the cached feature maps entering block ``start_block``
    (``pretrained_trunk.trunk_features(stop_block=start_block)``); blocks ``start_block..15``, the head
    convolution and its batch norm train;
  * ``start_block = 16``: the cached pooled features ``[B, 1280]`` (frozen trunk): only the output trains.

  Returns float32 scores ``[B]``. Variables: ``params/trunk/...`` (the EfficientNet tail, ImageNet weights
  loaded by :func:`load_imagenet_trunk`), ``params/head/{kernel,bias}``, ``batch_stats/trunk/...``.
  """

  start_block: int
  bias_init: float = 0.0

  @nn.compact
  def __call__(self, inputs: jax.Array, *, train: bool = False) -> jax.Array:
    if self.start_block >= pretrained_trunk.NUM_BLOCKS:
      features = inputs.astype(np.float32)
    else:
      tail = efficientnet_tail(self.start_block, name="trunk")
      features = tail(inputs, train=train)
    return nn.Dense(1, bias_init=nn.initializers.constant(self.bias_init), name="head")(features)[:, 0]


def efficientnet_tail(start_block: int, **kwargs: Any) -> nn.Module:
  """EfficientNet-Lite0 from ``start_block`` to the pooled features, as :func:`pretrained_trunk.imagenet_trunk`
  builds it (same attributes, so its ImageNet variables fit)."""
  from ranking_jax.models import efficientnet  # pylint: disable=g-import-not-at-top
  return efficientnet.EfficientNetLite0(num_classes=None, input_range="0_1", start_block=start_block, **kwargs)


def load_imagenet_trunk(variables: Mapping[str, Any], start_block: int) -> dict[str, Any]:
  """``variables`` of a :class:`TrunkRegressor` with the ImageNet weights of its trunk (head untouched).

  Raises:
    ValueError: a trunk variable's shape differs from ImageNet's (the trunk was built differently).
  """
  variables = jax.tree_util.tree_map(lambda x: x, dict(variables))
  if start_block >= pretrained_trunk.NUM_BLOCKS:
    return variables
  _, imagenet = pretrained_trunk.imagenet_trunk(start_block=start_block)
  for collection, tree in imagenet.items():
    ours = dict(variables[collection])
    mine, theirs = jax.tree_util.tree_structure(ours["trunk"]), jax.tree_util.tree_structure(tree)
    if mine != theirs or any(np.shape(a) != np.shape(b) for a, b in zip(
        jax.tree_util.tree_leaves(ours["trunk"]), jax.tree_util.tree_leaves(tree))):
      raise ValueError(f"the trunk's {collection} do not match the ImageNet EfficientNet-Lite0 from block "
                       f"{start_block}.")
    ours["trunk"] = jax.tree_util.tree_map(np.asarray, tree)
    variables[collection] = ours
  return variables


def trunk_start_block(config: Any) -> Optional[int]:
  """The first trainable block of ``config.model.trunk`` (``"frozen"`` 16, ``"finetune:<k>"`` 16 - k), or
  None for ``"scratch"`` (``config.model.name`` from random init or ``pretrained_weights``).

  Raises:
    ConfigValueError: an unknown trunk mode, or augmentation with cached features (``0 < 16 - k``).
  """
  try:
    mode = feature_cache.parse_trunk_mode(config.model.get("trunk", "scratch"),
                                          num_blocks=pretrained_trunk.NUM_BLOCKS)
  except ValueError as error:
    raise ConfigValueError(f"config.model.trunk: {error}") from None
  if not mode.pretrained:
    return None
  start = pretrained_trunk.NUM_BLOCKS - int(mode.trainable_blocks)
  if start > 0 and config.data.augment:
    raise ConfigValueError(
        f"config.model.trunk={config.model.trunk!r} trains on cached trunk features, which cannot be augmented: "
        "set config.data.augment=False, or config.model.trunk='finetune:16' (images, whole network).")
  return start


def trunk_feature_splits(splits: Mapping[str, Any], start_block: int, cache_dir: str
                         ) -> dict[str, feature_cache.FeatureSource]:
  """The frozen front's outputs for every split (``features``: maps entering ``start_block``, or the pooled
  1 280-d features for 16), cached under ``cache_dir`` (:func:`pretrained_trunk.feature_splits`)."""
  stop = None if start_block >= pretrained_trunk.NUM_BLOCKS else start_block
  return pretrained_trunk.feature_splits(splits, cache_dir=cache_dir or pretrained_trunk.DEFAULT_CACHE_DIR,
                                         stop_block=stop, image_key=_IMAGE_KEY)


# ------------------------------------------------------------------------------------------------ task


def requirements(config: Any) -> train.Requirements:
  """The Kendall RankLoss ranks the whole mini-batch."""
  pretrained = str(config.model.get("trunk", "scratch")) != "scratch"
  return train.Requirements(global_batch="The Kendall RankLoss ranks the whole mini-batch",
                            pretrained_weights="efficientnet_lite0" if pretrained else "")


def make_task(config: Any, splits: Optional[Mapping[str, Any]] = None) -> train.Task:
  """The trainer :class:`~ranking_jax.train.Task` of ``config`` (see ``configs/image_difficulty.py``).

  Training batches come from ``splits["train"]`` (shuffled per epoch, augmented when
  ``config.data.augment``); the ``validation`` evaluator runs every ``config.eval_every_*`` and the
  ``test`` evaluator at the end, both with :func:`difficulty_metrics`; :func:`report` then writes the
  test row beside the paper's figure and Figure 4. ``splits`` defaults to :func:`make_splits` of
  ``config.data``. The model: with ``config.model.trunk`` ``"finetune:<k>"`` / ``"frozen"`` a
  :class:`TrunkRegressor` from the ImageNet EfficientNet-Lite0 (``k < 16`` or frozen: the splits are first
  replaced by the frozen front's cached outputs, :func:`trunk_feature_splits`, so their sources need
  ``cache_key_fields()``); with ``"scratch"`` ``models.build_model(config.model.name, **config.model.kwargs)``.

  Raises:
    ConfigValueError: a bad trunk mode, augmentation on cached features, ``pretrained_weights`` with a
      pretrained trunk, or ``config.loss_scope != "global"``.
  """
  train.check_requirements(config, requirements(config))
  start_block = trunk_start_block(config)
  weights_path = config.model.get("pretrained_weights", "")
  if start_block is not None and weights_path:
    raise ConfigValueError("config.model.pretrained_weights is for config.model.trunk='scratch'; the "
                           f"{config.model.trunk!r} trunk loads the ImageNet EfficientNet-Lite0.")
  if splits is None:
    splits = make_splits(config.data)
  input_key = _IMAGE_KEY
  if start_block is not None and start_block > 0:  # train on the frozen front's cached outputs
    splits = trunk_feature_splits(splits, start_block, config.data.get("feature_cache_dir", ""))
    input_key = "features"
  train_source = splits["train"]
  augment_config = _augment_config(config.data)
  transform = augment_lib.make_augment_transform(augment_config) if augment_config else None
  batch_size, seed = int(config.batch_size), int(config.seed)
  eval_batch_size = int(config.eval_batch_size)

  def make_train_iterator(start_step: int, process_index: int, process_count: int) -> Iterator[Batch]:
    batches = pipeline.make_train_iterator(train_source, batch_size, seed=seed, start_step=start_step,
                                           process_index=process_index, process_count=process_count,
                                           transform=transform)
    return pipeline.prefetch(to_trainer_batch(b, input_key) for b in batches)

  def make_eval_iterator(source: Any) -> Iterator[Batch]:
    batches = pipeline.make_eval_iterator(source, eval_batch_size, process_index=jax.process_index(),
                                          process_count=jax.process_count())
    return (to_trainer_batch(b, input_key) for b in batches)

  initialize_variables = None
  if start_block is not None:
    model = TrunkRegressor(start_block=start_block, bias_init=float(config.model.kwargs.get("bias_init", 0.0)))
    initialize_variables = functools.partial(load_imagenet_trunk, start_block=start_block)
  else:
    model = models.build_model(config.model.name, **config.model.kwargs.to_dict())
  if start_block is None and weights_path:
    # Converted ImageNet weights for the backbone (the regression head keeps its initialisation).
    from ranking_jax.models import weights as weights_lib  # pylint: disable=g-import-not-at-top
    initialize_variables = lambda variables: weights_lib.load_backbone_weights(variables, weights_path)

  evaluators = train.validation_and_test(make_eval_iterator, splits, difficulty_metrics)
  return train.Task(requirements=requirements(config), model=model, loss_terms=make_loss_terms(config.loss.label_diff),
                    make_train_iterator=make_train_iterator, evaluators=evaluators,
                    num_train_examples=len(train_source), initialize_variables=initialize_variables,
                    report=functools.partial(report, config))


# --------------------------------------------------------------------------------------------- reports


_TABLE_COLUMNS = (
    reporting.Column("variant"), reporting.Column("data"), reporting.Column("model"),
    reporting.Column("steps"), reporting.Column("mse", "test MSE"),
    reporting.Column("kendall_tau", "test Kendall tau_a"), reporting.Column("paper_mse", "paper MSE", ".3f"),
    reporting.Column("paper_tau", "paper tau", ".3f"), reporting.Column("paper_row", "paper row"))
_SELECTED_COLUMNS = (
    reporting.Column("selected_step", "selected step"), reporting.Column("selected_mse", "selected: test MSE"),
    reporting.Column("selected_kendall_tau", "selected: test tau_a"))


def results_table(rows: Sequence[Mapping[str, Any]]) -> str:
  """A markdown table of measured rows with the paper's figure beside each (by ``variant``).

  Each row needs ``variant``, ``mse`` and ``kendall_tau``; optional ``data``, ``model``, ``steps`` and, when
  any row has ``selected_step``, the columns of the checkpoint the selection rule chose
  (``selected_step``, ``selected_mse``, ``selected_kendall_tau``; ``-`` where no step qualified).

  >>> print(results_table([{"variant": "mse", "mse": 0.25, "kendall_tau": 0.3}]))
  | variant | data | model | steps | test MSE | test Kendall tau_a | paper MSE | paper tau | paper row |
  |---|---|---|---|---|---|---|---|---|
  | mse | - | - | - | 0.2500 | 0.3000 | 0.200 | 0.405 | Table 2, exp. 1 (ResNet-152 + MSE) |
  """
  full = []
  for row in rows:
    paper = PAPER_RESULTS.get(str(row["variant"]))
    full.append({**row, **({"paper_mse": paper[0], "paper_tau": paper[1], "paper_row": paper[2]}
                           if paper else {})})
  columns = _TABLE_COLUMNS
  if any("selected_step" in row for row in rows):
    columns = _TABLE_COLUMNS[:6] + _SELECTED_COLUMNS + _TABLE_COLUMNS[6:]
  return reporting.markdown_table(full, columns)


def least_squares_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
  r"""Slope and intercept of the least-squares line :math:`y \approx a x + b` (Figure 4's line).

  >>> least_squares_line(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0]))
  (2.0, 1.0)
  """
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  centred = x - x.mean()
  denominator = float(np.sum(centred ** 2))
  slope = float(np.sum(centred * (y - y.mean())) / denominator) if denominator > 0 else 0.0
  return round(slope, 12), round(float(y.mean() - slope * x.mean()), 12)


def plot_predicted_vs_true(predictions: np.ndarray, labels: np.ndarray, path: str, *,
                           title: str = "") -> tuple[float, float]:
  """Figure 4: scatter of predicted vs. ground-truth difficulty with the least-squares line, as a PNG.

  Returns the line's ``(slope, intercept)`` (predicted = slope * true + intercept).
  """
  labels = np.asarray(labels, np.float64)
  predictions = np.asarray(predictions, np.float64)
  slope, intercept = least_squares_line(labels, predictions)
  with reporting.figure(path, figsize=(5, 5)) as (_, axes):
    axes.scatter(labels, predictions, s=6, alpha=0.4, edgecolors="none", label="test images")
    finite = predictions[np.isfinite(predictions)]
    low = float(min(labels.min(), finite.min() if finite.size else labels.min()))
    high = float(max(labels.max(), finite.max() if finite.size else labels.max()))
    grid = np.linspace(low, high, 2)
    axes.plot(grid, slope * grid + intercept, color="C3",
              label=f"least squares: {slope:.2f} x + {intercept:.2f}")
    axes.plot(grid, grid, color="0.5", linestyle="--", linewidth=1, label="y = x")
    axes.set_xlabel("ground-truth difficulty")
    axes.set_ylabel("predicted difficulty")
    axes.set_title(title or "Predicted vs. ground-truth difficulty")
    axes.legend(loc="upper left", fontsize=8)
  return slope, intercept


def describe_model(model_config: Any) -> str:
  """``config.model`` in a few words, e.g. ``image_regressor resnet18 {'width': 8}`` or
  ``efficientnet_lite0 imagenet finetune:1``."""
  trunk = model_config.get("trunk", "scratch")
  if trunk != "scratch":
    return f"{pretrained_trunk.BACKBONE} {pretrained_trunk.WEIGHTS} {trunk}"
  kwargs = model_config.kwargs
  backbone = kwargs.get("backbone", "")
  extra = dict(kwargs.get("backbone_kwargs", None) or {})
  return " ".join(str(x) for x in (model_config.name, backbone, extra or "") if x != "")


def report(config: Any, result: train.TrainResult, workdir: str) -> dict[str, Any]:
  """The run's report from the test predictions already computed by the trainer.

  Writes ``results.md`` (:func:`results_table` row) and ``figure4.png`` (:func:`plot_predicted_vs_true`
  of the final step; ``figure4_selected.png`` of the checkpoint chosen by ``config.selection`` when one
  qualified) into ``workdir``; returns the row (with ``selected_*`` test figures when a rule is set), the
  least-squares line and the paper's figure (stored under ``results["report"]``).
  """
  test = result.predictions["test"]
  variant = str(config.variant)
  row = {"variant": variant, "data": config.data.name, "model": describe_model(config.model),
         "steps": result.results["step"], **test.metrics}
  selected = result.results.get("selected")
  if selected is not None:
    chosen = (selected.get("eval") or {}).get("test") or {}
    row.update({"selected_step": selected["step"], "selected_mse": chosen.get("mse"),
                "selected_kendall_tau": chosen.get("kendall_tau")})
    if "test" in result.selected_predictions:
      best = result.selected_predictions["test"]
      plot_predicted_vs_true(best.outputs, best.targets[_LABEL_KEY], os.path.join(workdir, "figure4_selected.png"),
                             title=f"{variant}, step {selected['step']} ({selected['rule']}): tau_a "
                                   f"{best.metrics['kendall_tau']:.3f}, MSE {best.metrics['mse']:.3f}")
  slope, intercept = plot_predicted_vs_true(
      test.outputs, test.targets[_LABEL_KEY], os.path.join(workdir, "figure4.png"),
      title=f"{variant}: tau_a {test.metrics['kendall_tau']:.3f}, MSE {test.metrics['mse']:.3f}")
  paper = PAPER_RESULTS.get(variant)
  incomplete = "" if result.results.get("complete", True) else " (INCOMPLETE run)"
  reporting.write_markdown(workdir, f"# IDE RankNet, {variant}{incomplete}\n\n{results_table([row])}\n")
  out = {**row, "least_squares_slope": slope, "least_squares_intercept": intercept,
         "paper": None if paper is None else {"mse": paper[0], "kendall_tau": paper[1], "row": paper[2]}}
  print(f"test ({variant}): MSE {row['mse']:.4f}, Kendall tau_a {row['kendall_tau']:.4f}"
        + (f" | paper: MSE {paper[0]}, tau {paper[1]} ({paper[2]})" if paper else "") + incomplete,
        flush=True)
  return out
