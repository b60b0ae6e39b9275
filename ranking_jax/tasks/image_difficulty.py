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

Data (``config.data.name``): ``"scenes"``, the embedded procedural scenes
(:mod:`ranking_jax.data.scenes`, rendered once into memory, optionally cached on disk), or ``"voc"``, PASCAL
VOC 2012 joined with the visual-search-difficulty CSV (:mod:`ranking_jax.data.voc_difficulty`).

Entry points: :func:`make_task` (for ``experiments/main_lib.py``), :func:`evaluate_split`,
:func:`write_report` (results row beside the paper's figure + Figure 4 PNG), :func:`results_table` and
:func:`plot_predicted_vs_true`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any, Iterator, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax import metrics as metrics_lib
from ranking_jax.data import augment as augment_lib
from ranking_jax.data import pipeline
from ranking_jax.data import scenes as scenes_lib
from ranking_jax.losses import kendall

Batch = dict[str, np.ndarray]

TABLE1_VARIANTS = ("mobilenet", "vgg16", "resnet101", "resnet152")
TABLE2_VARIANTS = ("mse", "kendall", "weighted", "alternating")
# Figure 3 of the paper: lambda of eq. 5 (lambda = 0 is MSE only, 0.7 is Table 2's `weighted`).
FIGURE3_LAMBDAS = (0.0, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
LAMBDA_VARIANTS = tuple(f"lambda={value:g}" for value in FIGURE3_LAMBDAS)
VARIANTS = TABLE2_VARIANTS + TABLE1_VARIANTS + LAMBDA_VARIANTS

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
for _name, _lam, _tau, _one_minus in zip(LAMBDA_VARIANTS, FIGURE3_LAMBDAS, _FIGURE3_TAU,
                                         _FIGURE3_ONE_MINUS_MSE):
  PAPER_RESULTS[_name] = (round(1.0 - _one_minus, 3), _tau, f"Figure 3 (lambda = {_lam:g})")

_IMAGE_KEY = "image"
_LABEL_KEY = "difficulty"


def parse_lambda(variant: str) -> Optional[float]:
  """The :math:`\\lambda` of a ``"lambda=<value>"`` variant, or None for any other variant.

  >>> parse_lambda("lambda=0.7"), parse_lambda("alternating")
  (0.7, None)
  """
  if not variant.startswith("lambda="):
    return None
  try:
    value = float(variant[len("lambda="):])
  except ValueError:
    raise ValueError(f"bad variant {variant!r}: expected lambda=<number in [0, 1]>.") from None
  if not 0.0 <= value <= 1.0 or math.isnan(value):
    raise ValueError(f"bad variant {variant!r}: lambda must lie in [0, 1].")
  return value


# ----------------------------------------------------------------------------------------------- data


class ArraySource:
  """An in-memory random-access source: ``uint8`` images and float32 difficulties.

  ``source[indices]`` returns ``{"image": float32 [n, H, W, 3] in [0, 1], "difficulty": float32 [n]}``
  (the :class:`ranking_jax.data.pipeline.Source` protocol).

  >>> src = ArraySource(np.zeros((3, 8, 8, 3), np.uint8), np.arange(3, dtype=np.float32))
  >>> len(src), src[np.array([2, 0])]["difficulty"].tolist()
  (3, [2.0, 0.0])
  """

  def __init__(self, images: np.ndarray, difficulty: np.ndarray):
    images = np.asarray(images)
    difficulty = np.asarray(difficulty, np.float32)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"`images` must be uint8 [n, H, W, 3], got {images.dtype} {images.shape}.")
    if difficulty.shape != images.shape[:1]:
      raise ValueError(f"`difficulty` must have shape {images.shape[:1]}, got {difficulty.shape}.")
    self.images = images
    self.difficulty = difficulty

  def __len__(self) -> int:
    return len(self.difficulty)

  def __getitem__(self, indices: Any) -> Batch:
    indices = np.asarray(indices)
    return {_IMAGE_KEY: self.images[indices].astype(np.float32) / np.float32(255.0),
            _LABEL_KEY: self.difficulty[indices]}


def render_scenes(source: scenes_lib.ScenesSource, *, chunk_size: int = 250,
                  cache_dir: str = "") -> ArraySource:
  """Renders every scene of ``source`` once into an :class:`ArraySource` (uint8 pixels).

  Rendering costs ~10 ms per 64x64 scene, too slow to redo at every step on a CPU. With ``cache_dir`` the
  arrays are stored in ``cache_dir/scenes_<hash>.npz`` (keyed by every generator option) and reused.
  """
  key = json.dumps([source.seed, source.offset, len(source), source.image_size, source.clutter_range,
                    source.annotator_noise, source.max_objects], sort_keys=True)
  path = ""
  if cache_dir:
    path = os.path.join(cache_dir, f"scenes_{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz")
    if os.path.exists(path):
      with np.load(path) as cached:
        return ArraySource(cached["images"], cached["difficulty"])
  images, difficulty = [], []
  for start in range(0, len(source), chunk_size):
    batch = source[np.arange(start, min(start + chunk_size, len(source)))]
    images.append(np.round(np.clip(batch[_IMAGE_KEY], 0.0, 1.0) * 255.0).astype(np.uint8))
    difficulty.append(batch[_LABEL_KEY])
  result = ArraySource(np.concatenate(images), np.concatenate(difficulty))
  if path:
    os.makedirs(cache_dir, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(temporary, images=result.images, difficulty=result.difficulty)
    os.replace(temporary, path)  # atomic: concurrent runs never read a partial file
  return result


def make_splits(data_config: Any) -> dict[str, Any]:
  """``{"train", "validation", "test"}`` sources described by ``config.data``.

  ``data_config.name == "scenes"``: disjoint index ranges of one scenes generator (``num_train``,
  ``num_validation``, ``num_test``, ``seed``, ``image_size``), rendered into memory. ``"voc"``: VOC 2012 +
  the scores CSV at ``csv_path``, split 2:1:1 with ``seed`` (raises
  :class:`ranking_jax.data.DataNotFoundError` with instructions when the CSV or the dataset is missing).
  """
  name = data_config.name
  if name == "scenes":
    sources = scenes_lib.make_scenes_splits(int(data_config.num_train), int(data_config.num_validation),
                                            int(data_config.num_test), seed=int(data_config.seed),
                                            image_size=int(data_config.image_size))
    return {split: render_scenes(source, cache_dir=data_config.get("cache_dir", "") or "")
            for split, source in sources.items()}
  if name == "voc":
    from ranking_jax.data import voc_difficulty  # pylint: disable=g-import-not-at-top
    if not data_config.csv_path:
      raise voc_difficulty.DataNotFoundError(
          "config.data.csv_path is empty. " + voc_difficulty.CSV_HELP)
    return voc_difficulty.make_voc_difficulty_splits(
        data_config.csv_path, data_dir=data_config.tfds_data_dir or None, seed=int(data_config.seed),
        image_size=int(data_config.image_size), index_cache_path=data_config.index_cache_path or None)
  raise ValueError(f"config.data.name must be 'scenes' or 'voc', got {name!r}.")


def to_trainer_batch(batch: Mapping[str, np.ndarray]) -> Batch:
  """Adapts a data-pipeline batch to the trainer's layout: the image under ``"inputs"``.

  >>> to_trainer_batch({"image": np.zeros((2, 4, 4, 3)), "difficulty": np.ones(2), "index": np.arange(2)}
  ...                  ).keys()
  dict_keys(['inputs', 'difficulty'])
  """
  out = {"inputs": np.asarray(batch[_IMAGE_KEY], np.float32),
         _LABEL_KEY: np.asarray(batch[_LABEL_KEY], np.float32)}
  if "mask" in batch:
    out["mask"] = np.asarray(batch["mask"], bool)
  return out


def _augment_config(data_config: Any) -> Optional[augment_lib.AugmentConfig]:
  if not data_config.augment:
    return None
  return augment_lib.AugmentConfig()


# --------------------------------------------------------------------------------------------- model


def make_model(model_config: Any) -> Any:
  """The backbone of ``config.model`` with a 1-output regression head (:class:`ImageRegressor`).

  ``backbone``: a :func:`ranking_jax.models.get_backbone` name; ``width`` (ResNets: first-stage filters,
  64 = standard), ``stage_sizes`` (ResNets: blocks per stage, overriding the depth), ``alpha`` (MobileNet
  width multiplier), ``vgg_channel_divisor`` and ``vgg_fc_width`` (VGG-16 slimmed for CPU runs);
  ``bias_init``: initial output (the mean difficulty).

  >>> import ml_collections
  >>> config = ml_collections.ConfigDict(dict(backbone="resnet18", width=8, stage_sizes=(), alpha=None,
  ...     vgg_channel_divisor=None, vgg_fc_width=None, bias_init=3.3))
  >>> make_model(config).backbone.width
  8
  """
  from ranking_jax import models  # pylint: disable=g-import-not-at-top
  from ranking_jax.models import resnet as resnet_lib  # pylint: disable=g-import-not-at-top
  from ranking_jax.models import vgg as vgg_lib  # pylint: disable=g-import-not-at-top
  name = str(model_config.backbone).lower()
  kwargs: dict[str, Any] = {}
  if name.startswith("resnet"):
    if model_config.get("width") is not None:
      kwargs["width"] = int(model_config.width)
    stage_sizes = tuple(model_config.get("stage_sizes") or ())
    if stage_sizes:
      depth = int(name[len("resnet"):])
      backbone = resnet_lib.ResNet(stage_sizes=stage_sizes, bottleneck=depth >= 50, **kwargs)
    else:
      backbone = models.get_backbone(name, **kwargs)
  elif name in ("mobilenet", "mobilenet_v1"):
    if model_config.get("alpha") is not None:
      kwargs["alpha"] = float(model_config.alpha)
    backbone = models.get_backbone(name, **kwargs)
  elif name in ("vgg16", "vgg"):
    divisor = model_config.get("vgg_channel_divisor")
    if divisor is not None:
      kwargs["config"] = tuple(c if c == "M" else max(1, int(c) // int(divisor))
                               for c in vgg_lib.VGG16_CONFIG)
    if model_config.get("vgg_fc_width") is not None:
      kwargs["fc_width"] = int(model_config.vgg_fc_width)
    # vgg16() fixes `config` to the standard channels; the slimmed network is built directly.
    backbone = vgg_lib.VGG(**{"config": vgg_lib.VGG16_CONFIG, **kwargs})
  else:
    backbone = models.get_backbone(name)  # raises with the list of known names
  return models.ImageRegressor(backbone, num_outputs=1, bias_init=float(model_config.bias_init))


# ------------------------------------------------------------------------------------- losses, metrics


def make_loss_terms(label_diff: str = "sgn") -> dict[str, Any]:
  """``{"rank": Kendall RankLoss over the (global) batch, "mse": MSE}`` on ``batch["difficulty"]``.

  >>> terms = make_loss_terms()
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

  Non-finite predictions make both metrics NaN (a diverged model is not scored on the rest) and are
  counted in ``num_nonfinite``, so a run still writes its results instead of failing at the final eval.

  >>> out = difficulty_metrics(np.array([1.0, 3.0, 2.0]), {"difficulty": np.array([1.0, 2.0, 3.0])})
  >>> {k: round(v, 4) for k, v in out.items()}
  {'mse': 0.6667, 'kendall_tau': 0.3333, 'num_examples': 3.0, 'num_nonfinite': 0.0}
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
  return {"mse": mse, "kendall_tau": tau, "num_examples": float(len(labels)),
          "num_nonfinite": float(num_nonfinite)}


# ------------------------------------------------------------------------------------------------ task


def _check_config(config: Any) -> None:
  if config.loss_scope != "global":
    raise ValueError("The Kendall RankLoss ranks the whole mini-batch: config.loss_scope must be 'global', "
                     f"got {config.loss_scope!r}.")


def make_task(config: Any, splits: Optional[Mapping[str, Any]] = None) -> Any:
  """The trainer :class:`~ranking_jax.train.Task` of ``config`` (see ``configs/image_difficulty.py``).

  Training batches come from ``splits["train"]`` (shuffled per epoch, augmented when
  ``config.data.augment``), the periodic evaluation runs on ``splits["validation"]`` with
  :func:`difficulty_metrics`. ``splits`` defaults to :func:`make_splits` of ``config.data``.
  """
  from ranking_jax import train  # pylint: disable=g-import-not-at-top
  _check_config(config)
  if splits is None:
    splits = make_splits(config.data)
  train_source, validation_source = splits["train"], splits["validation"]
  augment_config = _augment_config(config.data)
  transform = augment_lib.make_augment_transform(augment_config) if augment_config else None
  batch_size, seed = int(config.batch_size), int(config.seed)
  eval_batch_size = int(config.eval_batch_size)

  def make_train_iterator(start_step: int, process_index: int, process_count: int) -> Iterator[Batch]:
    batches = pipeline.make_train_iterator(train_source, batch_size, seed=seed, start_step=start_step,
                                           process_index=process_index, process_count=process_count,
                                           transform=transform)
    return pipeline.prefetch(to_trainer_batch(b) for b in batches)

  def make_eval_iterator() -> Iterator[Batch]:
    batches = pipeline.make_eval_iterator(validation_source, eval_batch_size,
                                          process_index=jax.process_index(),
                                          process_count=jax.process_count())
    return (to_trainer_batch(b) for b in batches)

  initialize_variables = None
  weights_path = config.model.get("pretrained_weights", "")
  if weights_path:
    # Converted ImageNet weights for the backbone (the regression head keeps its initialisation).
    from ranking_jax.models import weights as weights_lib  # pylint: disable=g-import-not-at-top
    initialize_variables = lambda variables: weights_lib.load_backbone_weights(variables, weights_path)

  return train.Task(model=make_model(config.model), loss_terms=make_loss_terms(config.loss.label_diff),
                    make_train_iterator=make_train_iterator, make_eval_iterator=make_eval_iterator,
                    metrics_fn=difficulty_metrics, num_train_examples=len(train_source),
                    initialize_variables=initialize_variables)


def predict(model: Any, variables: Any, source: Any, batch_size: int = 200) -> tuple[np.ndarray, np.ndarray]:
  """``(predictions, labels)`` of ``model`` over the whole ``source``, in order (single device, jitted)."""
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  predictions, labels = [], []
  for indices, mask in pipeline.eval_batch_indices(len(source), batch_size):
    batch = source[indices]
    out = np.asarray(apply(variables, jnp.asarray(batch[_IMAGE_KEY], jnp.float32)))
    predictions.append(out[mask])
    labels.append(np.asarray(batch[_LABEL_KEY])[mask])
  return np.concatenate(predictions), np.concatenate(labels)


def evaluate_split(config: Any, workdir: str, split: str = "test",
                   splits: Optional[Mapping[str, Any]] = None
                   ) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
  """Restores the final checkpoint of ``workdir`` and returns ``(metrics, predictions, labels)`` on ``split``."""
  from ranking_jax.train import trainer  # pylint: disable=g-import-not-at-top
  if splits is None:
    splits = make_splits(config.data)
  task = make_task(config, splits)
  state = trainer.load_state(config, workdir, task)
  variables = {"params": state.params["model"], **state.model_state}
  predictions, labels = predict(task.model, variables, splits[split], int(config.eval_batch_size))
  return difficulty_metrics(predictions, {_LABEL_KEY: labels}), predictions, labels


# --------------------------------------------------------------------------------------------- reports


def results_table(rows: Sequence[Mapping[str, Any]]) -> str:
  """A markdown table of measured rows with the paper's figure beside each.

  Each row needs ``variant``, ``mse`` and ``kendall_tau``; optional ``data``, ``backbone``, ``steps``.

  >>> print(results_table([{"variant": "mse", "mse": 0.25, "kendall_tau": 0.3}]))
  | variant | data | backbone | steps | test MSE | test Kendall tau_a | paper MSE | paper tau | paper row |
  |---|---|---|---|---|---|---|---|---|
  | mse |  |  |  | 0.2500 | 0.3000 | 0.200 | 0.405 | Table 2, exp. 1 (ResNet-152 + MSE) |
  """
  lines = ["| variant | data | backbone | steps | test MSE | test Kendall tau_a | paper MSE | paper tau | "
           "paper row |", "|---|---|---|---|---|---|---|---|---|"]
  for row in rows:
    paper = PAPER_RESULTS.get(str(row["variant"]))
    paper_cells = (f"{paper[0]:.3f} | {paper[1]:.3f} | {paper[2]}" if paper else "- | - | -")
    lines.append(f"| {row['variant']} | {row.get('data', '')} | {row.get('backbone', '')} | "
                 f"{row.get('steps', '')} | {float(row['mse']):.4f} | {float(row['kendall_tau']):.4f} | "
                 f"{paper_cells} |")
  return "\n".join(lines)


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
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  labels = np.asarray(labels, np.float64)
  predictions = np.asarray(predictions, np.float64)
  slope, intercept = least_squares_line(labels, predictions)
  figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
  axes.scatter(labels, predictions, s=6, alpha=0.4, edgecolors="none", label="test images")
  low = float(min(labels.min(), predictions.min()))
  high = float(max(labels.max(), predictions.max()))
  grid = np.linspace(low, high, 2)
  axes.plot(grid, slope * grid + intercept, color="C3",
            label=f"least squares: {slope:.2f} x + {intercept:.2f}")
  axes.plot(grid, grid, color="0.5", linestyle="--", linewidth=1, label="y = x")
  axes.set_xlabel("ground-truth difficulty")
  axes.set_ylabel("predicted difficulty")
  axes.set_title(title or "Predicted vs. ground-truth difficulty")
  axes.legend(loc="upper left", fontsize=8)
  figure.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  figure.savefig(path)
  plt.close(figure)
  return slope, intercept


def describe_backbone(model_config: Any) -> str:
  """A short name of the configured backbone, e.g. ``resnet18 (width 16)``."""
  name = str(model_config.backbone)
  details = []
  if model_config.get("stage_sizes"):
    details.append(f"blocks {tuple(model_config.stage_sizes)}")
  if name.startswith("resnet") and model_config.get("width") is not None:
    details.append(f"width {model_config.width}")
  if name.startswith("mobilenet") and model_config.get("alpha") is not None:
    details.append(f"alpha {model_config.alpha}")
  if name.startswith("vgg") and model_config.get("vgg_channel_divisor") is not None:
    details.append(f"channels / {model_config.vgg_channel_divisor}, fc {model_config.vgg_fc_width}")
  return name + (f" ({', '.join(details)})" if details else "")


def write_report(config: Any, workdir: str, splits: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
  """Evaluates the final model on the test split and writes the run's report into ``workdir``.

  Files: ``test_metrics.json`` (MSE, tau_a, the least-squares line, the paper's figure),
  ``results.md`` (:func:`results_table` row) and ``figure4.png`` (:func:`plot_predicted_vs_true`).
  Returns the ``test_metrics.json`` dict.
  """
  metrics, predictions, labels = evaluate_split(config, workdir, "test", splits)
  variant = str(config.variant)
  results_path = os.path.join(workdir, "results.json")
  steps = None
  if os.path.exists(results_path):
    with open(results_path) as f:
      steps = json.load(f).get("step")
  row = {"variant": variant, "data": config.data.name, "backbone": describe_backbone(config.model),
         "steps": steps, **metrics}
  slope, intercept = plot_predicted_vs_true(
      predictions, labels, os.path.join(workdir, "figure4.png"),
      title=f"{variant}: tau_a {metrics['kendall_tau']:.3f}, MSE {metrics['mse']:.3f}")
  paper = PAPER_RESULTS.get(variant)
  report = {**row, "least_squares_slope": slope, "least_squares_intercept": intercept,
            "paper": None if paper is None else {"mse": paper[0], "kendall_tau": paper[1], "row": paper[2]}}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "test_metrics.json"), "w") as f:
      json.dump(report, f, indent=2)
    with open(os.path.join(workdir, "results.md"), "w") as f:
      f.write(results_table([row]) + "\n")
  return report
