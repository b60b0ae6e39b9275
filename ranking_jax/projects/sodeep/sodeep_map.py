r"""SoDeep's mAP experiment (§4.2.2, Table 4) as a trainer :class:`~ranking_jax.train.Task`.

*SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019) trains a
WILDCAT multi-label classifier (ResNet-101) on PASCAL VOC 2007 with the multi-label soft-margin loss alone
(the WILDCAT* row, 93.2 mAP) and with the soft-margin loss plus the mAP rank loss of eq. 7 computed by the
learned sorter on each class's list of batch scores (94.0 mAP):

.. math::

   \mathcal{L} = \mathcal{L}_\text{soft-margin} + \lambda\,\mathcal{L}_\text{mAP}, \qquad
   \mathcal{L}_\text{mAP} = \sum_c \langle f(\mathbf{y}_c), \mathbf{y}^*_c\rangle \quad \text{(eq. 7)}

(:func:`ranking_jax.losses.map_rank_loss`: classes on the list axis, the batch's images as items, so
``scores [C, B]``; ``config.multitask.weights.map`` is :math:`\lambda`). ``config.loss.form`` picks eq. 7 as
written (``"rank_sum"`` with ``config.loss.reduce = "sum"``: the CelebA-HQ and VOC 2007 configs) or the
per-class normalised form averaged over the classes (``"normalized_rank_sum"``, ``"mean"``: the embedded
scenes' recorded rows). The sorter :math:`f` is the shipped LSTM (``lstm_h64_d100``, lists of <= 100 items,
hence batches <= 100: each step's batch of 100 images is one list per class) or the soft ranks of Blondel et
al. (ours).

**Fine-tuning** (the paper adds eq. 7 to a converged WILDCAT): with ``config.model.init_from`` set to the
``final_variables.npz`` that every run writes into its work directory, a run starts from those weights
(a fresh optimizer); the ``celeba,finetune`` configs start every variant, the soft-margin baseline
included, from the converged baseline of the same seed and give each the same extra steps.

Data (``config.data.name``): ``"celeba_hq_classes"``, CelebA-HQ's 40 attributes as classes on the frozen
ImageNet EfficientNet-Lite0's pooled features (:func:`ranking_jax.models.pretrained_trunk.feature_splits`,
cached under ``config.data.feature_cache_dir``) with a :class:`FeatureHead` on top; ``"scene_classes"``, the embedded procedural scenes (:mod:`ranking_jax.data.scenes`)
with their visible-object classes merged into the **16 distinct kinds** (classes 16-19 of
``scenes.CLASS_NAMES`` repeat the shape and colour of classes 0-3, so their pixels cannot tell them apart:
see :func:`scene_kind_matrix`); or ``"voc2007_classes"``, TFDS ``voc/2007`` (trainval minus a hold-out for training,
the 4 952-image test split; the VOC protocol: an image whose only objects of a class are *difficult* is
left out of that class's AP).

Metrics: mAP over the classes with the VOC 2007 11-point interpolated AP (``map_voc07``, the paper's
figure) and with the exact AP (``map``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax import metrics as metrics_lib
from ranking_jax import models
from ranking_jax import ranks
from ranking_jax import reporting
from ranking_jax import train
from ranking_jax.data import pipeline
from ranking_jax.data import registry as data_registry
from ranking_jax.data import rendered
from ranking_jax.data import scenes as scenes_lib
from ranking_jax.errors import ConfigValueError
from ranking_jax.losses import sorting
from ranking_jax.models import weights as weights_lib
from ranking_jax.models.registry import register_model

Batch = dict[str, np.ndarray]

# The paper's Table 4 (VOC 2007 test mAP, %, WILDCAT on ResNet-101): (mAP, row).
PAPER_RESULTS: dict[str, tuple[float, str]] = {
    "soft_margin": (93.2, "Table 4, WILDCAT* (soft-margin loss only)"),
    "soft_margin_map_lstm": (94.0, "Table 4, WILDCAT* + SoDeep loss"),
}
FINAL_VARIABLES = "final_variables.npz"  # what a run leaves for the fine-tuning runs (config.model.init_from)
MAP_REDUCTIONS = {"sum": jnp.sum, "mean": jnp.mean}


# ----------------------------------------------------------------------------------------------- data


def scene_kind_matrix() -> tuple[np.ndarray, tuple[str, ...]]:
  """``([20, K] 0/1 matrix, K kind names)``: each scene class onto its distinct (shape, colour) kind.

  The scenes' classes 16-19 have the shape and colour of classes 0-3 (``scenes.CLASS_SHAPE`` and
  ``CLASS_COLOUR``), so an image cannot distinguish them; their labels are merged (logical or).

  >>> matrix, names = scene_kind_matrix()
  >>> matrix.shape, names[:2], int(matrix[16].argmax()), int(matrix[0].argmax())
  ((20, 16), ('red disk', 'green triangle'), 0, 0)
  """
  kinds: list[tuple[int, int]] = []
  names: list[str] = []
  rows = []
  for class_id, (shape, colour) in enumerate(zip(scenes_lib.CLASS_SHAPE, scenes_lib.CLASS_COLOUR)):
    if (shape, colour) not in kinds:
      kinds.append((shape, colour))
      names.append(scenes_lib.CLASS_NAMES[class_id])
    rows.append(kinds.index((shape, colour)))
  matrix = np.zeros((len(rows), len(kinds)), np.float32)
  matrix[np.arange(len(rows)), rows] = 1.0
  return matrix, tuple(names)


def class_names(data_config: Any) -> tuple[str, ...]:
  """The class names of ``config.data`` (16 scene kinds or the 20 VOC classes)."""
  if data_config.name == "voc2007_classes":
    from ranking_jax.data import voc_multilabel  # pylint: disable=g-import-not-at-top
    return tuple(voc_multilabel.VOC_CLASSES)
  if data_config.name == "celeba_hq_classes":
    from ranking_jax.data import celeba_hq  # pylint: disable=g-import-not-at-top
    chosen = data_config.get("attributes", "") or ""
    return celeba_hq.parse_names(chosen, celeba_hq.ATTRIBUTE_NAMES, config_key="config.data.attributes")
  return scene_kind_matrix()[1]


@data_registry.register_dataset("scene_classes")
def _scene_classes_splits(data_config: Any) -> dict[str, Any]:
  """The ``scene_classes`` dataset (see :func:`make_splits`)."""
  sources = scenes_lib.make_scenes_splits(int(data_config.num_train), int(data_config.num_validation),
                                          int(data_config.num_test), seed=int(data_config.seed),
                                          image_size=int(data_config.image_size))
  return {split: rendered.render(
      source, keys=("image", "labels"), cache_dir=data_config.get("cache_dir", "") or "",
      cache_key=["scenes_labels", source.seed, source.offset, len(source), source.image_size,
                 source.clutter_range, source.max_objects],
      name="scenes_labels", description=f"rendering {len(source)} {split} scenes")
          for split, source in sources.items()}


@data_registry.register_dataset("voc2007_classes")
def _voc2007_classes_splits(data_config: Any) -> dict[str, Any]:
  """The ``voc2007_classes`` dataset (see :func:`make_splits`)."""
  from ranking_jax.data import voc_multilabel  # pylint: disable=g-import-not-at-top
  return voc_multilabel.make_voc2007_splits(
      data_config.tfds_data_dir or None, image_size=int(data_config.image_size), label_field="labels",
      validation_fraction=float(data_config.validation_fraction), seed=int(data_config.seed))


@data_registry.register_dataset("celeba_hq_classes")
def _celeba_hq_classes_splits(data_config: Any) -> dict[str, Any]:
  """The ``celeba_hq_classes`` dataset: CelebA-HQ's seeded split (:func:`ranking_jax.data.celeba_hq.build_splits`)
  as the frozen ImageNet EfficientNet-Lite0's pooled features, cached under ``config.data.feature_cache_dir``."""
  from ranking_jax.data import celeba_hq  # pylint: disable=g-import-not-at-top
  from ranking_jax.models import pretrained_trunk  # pylint: disable=g-import-not-at-top
  images = celeba_hq.build_splits(data_config)
  return pretrained_trunk.feature_splits(
      images, cache_dir=data_config.get("feature_cache_dir", "") or pretrained_trunk.DEFAULT_CACHE_DIR)


DATASETS = ('scene_classes', 'voc2007_classes', 'celeba_hq_classes')


def make_splits(data_config: Any) -> dict[str, Any]:
  """``{"train", "validation", "test"}`` sources of ``config.data`` (``"scene_classes"``, ``"voc2007_classes"``
  or ``"celeba_hq_classes"``).

  Raises:
    ranking_jax.data.DataNotFoundError: ``voc2007`` is not prepared under ``config.data.tfds_data_dir``, or
      the CelebA-HQ files are not under ``config.data.data_dir``.
    ValueError: an unknown ``config.data.name``.
  """
  return data_registry.build_splits(data_config, accepted=DATASETS)


_KIND_MATRIX = scene_kind_matrix()[0]


def to_trainer_batch(batch: Mapping[str, np.ndarray]) -> Batch:
  """``{"inputs": image or features, "labels": [n, C] 0/1, "difficult": [n, C] 0/1}`` from a source batch.

  Scene labels (20 classes) are merged into the 16 kinds; VOC batches keep their 20 classes and their
  ``difficult`` flags (scenes have none: zeros); CelebA-HQ feature batches (``features``, ``attributes``)
  give their features as inputs and their 40 attributes as labels (no difficult flags).

  >>> out = to_trainer_batch({"image": np.zeros((1, 4, 4, 3)), "labels": np.eye(20)[[16]]})
  >>> out["labels"].shape, int(out["labels"][0].argmax()), float(out["difficult"].sum())
  ((1, 16), 0, 0.0)
  """
  if "features" in batch:  # CelebA-HQ on the frozen trunk's features
    labels = np.asarray(batch["attributes"], np.float32)
    out = {"inputs": np.asarray(batch["features"], np.float32), "labels": labels,
           "difficult": np.zeros_like(labels)}
    if "mask" in batch:
      out["mask"] = np.asarray(batch["mask"], bool)
    return out
  labels = np.asarray(batch["labels"], np.float32)
  if "difficult" in batch:  # VOC 2007
    difficult = np.asarray(batch["difficult"], np.float32)
  else:
    labels = np.minimum(labels @ _KIND_MATRIX, 1.0)
    difficult = np.zeros_like(labels)
  out = {"inputs": np.asarray(batch["image"], np.float32), "labels": labels, "difficult": difficult}
  if "mask" in batch:
    out["mask"] = np.asarray(batch["mask"], bool)
  return out


# ------------------------------------------------------------------------------------- losses, metrics


def make_rank_fn(name: str, regularization_strength: float = 0.1, *,
                 standardize: bool = False) -> Callable[..., jax.Array]:
  """The rank function ``name`` (:func:`ranking_jax.ranks.get_rank_fn`'s vocabulary) with this task's
  soft-rank strength; ``standardize`` ranks the standardised list (scale-free).

  Raises:
    ConfigValueError: an unknown name.
  """
  return ranks.get_rank_fn(name, regularization_strength=regularization_strength, standardize=standardize)


def multilabel_soft_margin_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  r"""PyTorch's ``MultiLabelSoftMarginLoss`` (WILDCAT's training loss), mean over images and classes.

  .. math:: \ell = -\frac{1}{nC}\sum_{i,c} y_{ic}\log\sigma(x_{ic}) + (1 - y_{ic})\log\sigma(-x_{ic})

  >>> round(float(multilabel_soft_margin_loss(jnp.zeros((2, 3)), jnp.ones((2, 3)))), 4)  # log 2
  0.6931
  """
  logits = jnp.asarray(logits, jnp.float32)
  labels = jnp.asarray(labels, jnp.float32)
  return -jnp.mean(labels * jax.nn.log_sigmoid(logits) + (1.0 - labels) * jax.nn.log_sigmoid(-logits))


def make_loss_terms(rank_fn: Optional[Callable[..., jax.Array]], *, form: str = "rank_sum",
                    reduce: str = "sum") -> dict[str, Any]:
  """``{"soft_margin": ..., "map": eq. 7 on [C, B]}`` (``"map"`` only with a ``rank_fn``).

  ``form`` is :func:`~ranking_jax.losses.map_rank_loss`'s (``"rank_sum"``: eq. 7 as written;
  ``"normalized_rank_sum"``; ``"average_precision"``), ``reduce`` the reduction over the classes
  (``"sum"``: eq. 7; ``"mean"``).

  Raises:
    ConfigValueError: an unknown ``reduce``.
  """
  if reduce not in MAP_REDUCTIONS:
    raise ConfigValueError(f"config.loss.reduce must be one of {sorted(MAP_REDUCTIONS)}, got {reduce!r}.")
  reduce_fn = MAP_REDUCTIONS[reduce]
  terms = {"soft_margin": lambda outputs, batch: multilabel_soft_margin_loss(outputs, batch["labels"])}
  if rank_fn is not None:
    # Each class ranks the batch's images: classes on the list axis after the transpose.
    terms["map"] = lambda outputs, batch: sorting.map_rank_loss(
        jnp.transpose(outputs), jnp.transpose(batch["labels"]), rank_fn=rank_fn, form=form,
        reduce_fn=reduce_fn)
  return terms


# ----------------------------------------------------------------------------------------------- model


class FeatureHead(nn.Module):
  """A classifier on a frozen trunk's pooled features: ReLU layers of ``hidden_sizes``, then ``num_classes``
  logits (``[..., D] -> [..., num_classes]``); dropout before each layer when training.

  Why not WILDCAT: WILDCAT's class-wise pooling (M maps per class, the k+ highest and k- lowest regions) needs a
  spatial map, and the 64-px CelebA-HQ faces leave EfficientNet-Lite0 a 2x2 map; on one pooled region WILDCAT
  is a linear layer (M 1x1 convolutions averaged, then (1 + alpha) times the value), which ``hidden_sizes=()``
  gives.

  >>> head = FeatureHead(num_classes=3, hidden_sizes=(4,))
  >>> variables = head.init(jax.random.key(0), jnp.zeros((2, 5)))
  >>> head.apply(variables, jnp.ones((2, 5))).shape
  (2, 3)
  """
  num_classes: int = 40
  hidden_sizes: Sequence[int] = (512,)
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    h = jnp.asarray(x, jnp.float32)
    for width in self.hidden_sizes:
      h = nn.Dropout(self.dropout_rate, deterministic=not train or self.dropout_rate == 0.0)(h)
      h = nn.relu(nn.Dense(int(width))(h))
    h = nn.Dropout(self.dropout_rate, deterministic=not train or self.dropout_rate == 0.0)(h)
    return nn.Dense(int(self.num_classes))(h)


@register_model("sodeep_map_feature_head")
def sodeep_map_feature_head(*, num_classes: int = 40, hidden_sizes: Sequence[int] = (512,),
                            dropout_rate: float = 0.0) -> FeatureHead:
  """:class:`FeatureHead` by name (``config.model.name = "sodeep_map_feature_head"``)."""
  return FeatureHead(num_classes=int(num_classes), hidden_sizes=tuple(int(h) for h in hidden_sizes),
                     dropout_rate=float(dropout_rate))


def make_initializer(init_from: str) -> Optional[Callable[[Any], Any]]:
  """``variables -> variables`` loading every model variable from ``init_from`` (a run's
  :data:`FINAL_VARIABLES`); None for ``""``.

  Raises:
    ConfigValueError: ``init_from`` is not a file.
  """
  if not init_from:
    return None
  path = os.path.expanduser(init_from)
  if not os.path.isfile(path):
    raise ConfigValueError(f"config.model.init_from={init_from!r} is not a file: pass the {FINAL_VARIABLES} "
                           "that the converged baseline run wrote into its work directory.")
  return lambda variables: weights_lib.load_backbone_weights(variables, path, backbone="")


def per_class_average_precision(scores: np.ndarray, labels: np.ndarray, difficult: np.ndarray, *,
                                interpolation: str = "step") -> np.ndarray:
  """AP of each class over the images (``[n, C]`` inputs; NaN for a class without positives).

  VOC protocol: an image flagged ``difficult`` for a class is left out of that class's list.
  """
  scores = np.asarray(scores, np.float64)
  aps = np.full(scores.shape[1], np.nan)
  for c in range(scores.shape[1]):
    keep = np.asarray(difficult[:, c]) == 0
    relevant = np.asarray(labels[keep, c]) > 0
    if relevant.any():
      aps[c] = metrics_lib.average_precision(scores[keep, c], relevant, interpolation=interpolation)
  return aps


def map_metrics(predictions: np.ndarray, targets: Mapping[str, np.ndarray]) -> dict[str, float]:
  """``map_voc07`` (11-point), ``map`` (exact AP mean), over classes with a positive; NaN if non-finite.

  >>> out = map_metrics(np.array([[0.9, 0.1], [0.8, 0.7], [0.2, 0.6]]),
  ...                   {"labels": np.array([[1, 0], [0, 0], [1, 1]]), "difficult": np.zeros((3, 2))})
  >>> round(out["map"], 4), out["num_examples"]
  (0.6667, 3.0)
  """
  predictions = np.asarray(predictions, np.float64)
  nonfinite = int(np.sum(~np.isfinite(predictions)))
  out = {"num_examples": float(predictions.shape[0]), "num_nonfinite": float(nonfinite)}
  if nonfinite:
    return {"map_voc07": float("nan"), "map": float("nan"), **out}
  labels, difficult = targets["labels"], targets["difficult"]
  return {"map_voc07": float(np.nanmean(per_class_average_precision(predictions, labels, difficult,
                                                                     interpolation="voc07"))),
          "map": float(np.nanmean(per_class_average_precision(predictions, labels, difficult))), **out}


# ------------------------------------------------------------------------------------------------ task


def requirements(config: Any) -> train.Requirements:
  """Eq. 7 ranks the whole batch per class; a learned sorter bounds the batch."""
  spec = config.loss.rank_fn or ""
  needs = train.listwise_requirements("eq. 7 ranks the whole batch per class", spec)
  if config.data.name == "celeba_hq_classes":  # features of the ImageNet trunk
    needs = dataclasses.replace(needs, pretrained_weights="efficientnet_lite0")
  return needs


def make_task(config: Any, splits: Optional[Mapping[str, Any]] = None) -> train.Task:
  """The trainer :class:`~ranking_jax.train.Task` of ``config`` (see ``configs/sodeep_map.py``).

  ``splits`` defaults to :func:`make_splits` of ``config.data``; the model is
  ``models.build_model(config.model.name, **config.model.kwargs)`` (WILDCAT).
  """
  train.check_requirements(config, requirements(config))
  if splits is None:
    splits = make_splits(config.data)
  train_source = splits["train"]
  batch_size, seed, eval_batch_size = int(config.batch_size), int(config.seed), int(config.eval_batch_size)

  def make_train_iterator(start_step: int, process_index: int, process_count: int) -> Iterator[Batch]:
    batches = pipeline.make_train_iterator(train_source, batch_size, seed=seed, start_step=start_step,
                                           process_index=process_index, process_count=process_count)
    return pipeline.prefetch(to_trainer_batch(b) for b in batches)

  def make_eval_iterator(source: Any) -> Iterator[Batch]:
    batches = pipeline.make_eval_iterator(source, eval_batch_size, process_index=jax.process_index(),
                                          process_count=jax.process_count())
    return (to_trainer_batch(b) for b in batches)

  rank_fn = (make_rank_fn(config.loss.rank_fn, config.loss.regularization_strength)
             if config.loss.rank_fn else None)
  init_from = config.model.get("init_from", "") or ""
  if config.get("finetune", False) and not init_from:
    raise ConfigValueError(f"a fine-tuning run needs --config.model.init_from=<baseline workdir>/{FINAL_VARIABLES}.")
  initialize_variables = make_initializer(init_from)
  evaluators = {"test": train.Evaluator(functools.partial(make_eval_iterator, splits["test"]), map_metrics,
                                        periodic=False)}
  if "validation" in splits:
    evaluators["validation"] = train.Evaluator(functools.partial(make_eval_iterator, splits["validation"]),
                                               map_metrics)
  loss_terms = make_loss_terms(rank_fn, form=config.loss.get("form", "rank_sum"),
                               reduce=config.loss.get("reduce", "sum"))
  return train.Task(requirements=requirements(config), model=models.build_model(config.model.name, **config.model.kwargs.to_dict()),
                    loss_terms=loss_terms, make_train_iterator=make_train_iterator,
                    evaluators=evaluators, num_train_examples=len(train_source),
                    initialize_variables=initialize_variables, report=functools.partial(report, config))


# --------------------------------------------------------------------------------------------- reports


_TABLE_COLUMNS = (
    reporting.Column("variant"), reporting.Column("data"), reporting.Column("model"),
    reporting.Column("steps"), reporting.Column("map_voc07_pct", "test mAP % (VOC07 11-pt)", ".2f"),
    reporting.Column("map_pct", "test mAP % (exact AP)", ".2f"),
    reporting.Column("paper_map", "paper mAP %", ".1f"), reporting.Column("paper_row", "paper row"))


def results_table(rows: Sequence[Mapping[str, Any]]) -> str:
  """A markdown table of measured rows (``variant``, ``map_voc07``, ``map`` in [0, 1]) beside Table 4.

  >>> print(results_table([{"variant": "soft_margin", "map_voc07": 0.5, "map": 0.52}]))
  | variant | data | model | steps | test mAP % (VOC07 11-pt) | test mAP % (exact AP) | paper mAP % | paper row |
  |---|---|---|---|---|---|---|---|
  | soft_margin | - | - | - | 50.00 | 52.00 | 93.2 | Table 4, WILDCAT* (soft-margin loss only) |
  """
  full = []
  for row in rows:
    paper = PAPER_RESULTS.get(str(row["variant"]))
    full.append({**row, "map_voc07_pct": 100.0 * row["map_voc07"], "map_pct": 100.0 * row["map"],
                 **({"paper_map": paper[0], "paper_row": paper[1]} if paper else {})})
  return reporting.markdown_table(full, _TABLE_COLUMNS)


def describe_model(model_config: Any) -> str:
  """``config.model`` in a few words, e.g. ``wildcat resnet18 {'width': 16, 'stage_sizes': (2, 2, 2)}``."""
  kwargs = model_config.kwargs
  if "hidden_sizes" in kwargs:  # the head on frozen features
    return f"{model_config.name} hidden {tuple(kwargs.hidden_sizes)} on frozen efficientnet_lite0 features"
  extra = dict(kwargs.get("backbone_kwargs", None) or {})
  return " ".join(str(x) for x in (model_config.name, kwargs.get("backbone", ""), extra or "") if x != "")


def report(config: Any, result: train.TrainResult, workdir: str) -> dict[str, Any]:
  """Writes ``results.md`` (the row beside Table 4 and the per-class AP) and returns the row."""
  test = result.predictions["test"]
  variant = str(config.variant)
  names = class_names(config.data)
  state = result.state
  weights_lib.save_backbone_weights(os.path.join(workdir, FINAL_VARIABLES),
                                    {"params": state.params["model"], **state.model_state}, backbone="")
  row = {"variant": variant, "seed": int(config.seed), "data": config.data.name,
         "model": describe_model(config.model), "steps": result.results["step"],
         "finetune": bool(config.get("finetune", False)), "init_from": config.model.get("init_from", "") or "",
         "map_weight": float(config.multitask.weights.get("map", 0.0)), **test.metrics}
  per_class = (per_class_average_precision(test.outputs, test.targets["labels"], test.targets["difficult"])
               if not test.metrics["num_nonfinite"] else np.full(len(names), np.nan))
  class_rows = [{"class": name, "ap": 100.0 * ap} for name, ap in zip(names, per_class)]
  incomplete = "" if result.results.get("complete", True) else " (INCOMPLETE run)"
  reporting.write_markdown(workdir, (
      f"# SoDeep mAP (Table 4), {variant}{incomplete}\n\n{results_table([row])}\n\n"
      "## Test AP per class (exact AP, %)\n\n"
      + reporting.markdown_table(class_rows, (reporting.Column("class"),
                                              reporting.Column("ap", "AP %", ".2f"))) + "\n"))
  paper = PAPER_RESULTS.get(variant)
  print(f"test ({variant}): mAP VOC07 {100 * row['map_voc07']:.2f} %, exact {100 * row['map']:.2f} %"
        + (f" | paper: mAP {paper[0]} % ({paper[1]})" if paper else "") + incomplete, flush=True)
  return {**row, "per_class_ap": {name: float(ap) for name, ap in zip(names, per_class)},
          "paper": None if paper is None else {"map": paper[0], "row": paper[1]}}
