r"""Fine-grained sketch-based image retrieval (FG-SBIR) with multi-task attribute-driven ranking, as a Task.

*Deep Multi-task Attribute-driven Ranking for Fine-grained Sketch-based Image Retrieval* (Song, Song,
Xiang, Hospedales, Ruan, BMVC 2016) trains a three-branch network with shared weights (query sketch,
positive photo, negative photo; :mod:`ranking_jax.projects.sketch_retrieval.sketch_net`) on triplets with the multi-task loss
of eq. 5,

.. math::

   L = L_\theta(s, p^+, p^-) + \lambda_a L_a(s, p^+, p^-) + \lambda_s L_p(s) + \lambda_{p^+} L_p(p^+)
       + \lambda_{p^-} L_p(p^-), \qquad (\lambda_a, \lambda_s, \lambda_{p^+}, \lambda_{p^-})
       = (1, 0.01, 0.01, 0.01),\ \Delta = 1,

the triplet ranking loss (eq. 1), attribute ranking (AR, eq. 4) and attribute prediction (AP, eq. 2) as
*separate trainer loss terms* (``triplet``, ``attribute_ranking``, ``sketch_attributes``,
``positive_attributes``, ``negative_attributes``; weights in ``config.multitask.weights``; weight decay
:math:`\lambda_\theta = 5\cdot10^{-4}` in the optimizer). Retrieval ranks the test gallery by the fused
distance of eq. 6 (squared feature distance + :math:`\lambda_a` times the attribute cross-entropy;
the plain feature distance for a model without attribute head).

**Staged pre-training.** The paper starts from a Sketch-a-Net pre-trained in three stages (ImageNet edge
maps, TU-Berlin sketch classification, a cross-domain triplet stage). Without ImageNet or TU-Berlin, stage
1 here is *cross-domain instance classification on the training split*: for the first
``config.pretrain.steps`` steps the only loss term is ``pretrain``, the softmax cross-entropy of a
classification head on the shared FC layer that labels each training sketch *and* its photo with the pair's
identity (the three branches of each triplet, labels from the triplet's indices). It needs no attribute
labels, so it runs on QMUL too. The multi-task stage (eq. 5) follows, with the same optimizer, and keeps
the ``pretrain`` term at ``config.pretrain.weight_after`` (1 by default: dropped at the switch, the stage-1
features were lost within 50 steps).

**Triplets** (:mod:`ranking_jax.projects.sketch_retrieval.sketch_triplets`, ``config.triplets``): ``generation`` ``"auto"``
(top-10 by attribute similarity, ordered by photo-photo distance of fixed HOG features of the photo edge
maps, :func:`~ranking_jax.projects.sketch_retrieval.sketch_triplets.edge_hog_features`), ``"human"`` (QMUL's annotation; on
embedded data three simulated annotators judge the same top-10 lists by the generator's true similarity)
or ``"human_optimised"`` (Bradley-Terry global ranking of the human triplets); ``sampling``
``"exhaustive"`` (45), ``"hard"`` (9), ``"medium"`` (15), ``"easy"`` (21) per sketch, or ``"all"`` (the
human triplets as annotated, 135 per training sketch).

**Evaluation** (``test`` evaluator, at the end): every test sketch queries the test gallery; acc@1,
acc@10 (:func:`ranking_jax.metrics.retrieval_accuracy_at_k`) and the triplet accuracy
(:func:`ranking_jax.metrics.triplet_accuracy`) against QMUL's human test triplets, or on embedded data the
45 exhaustive triplets of the generator's ground-truth top-10 lists.

**Attributes on QMUL.** The QMUL files carry no attribute labels (:mod:`ranking_jax.projects.sketch_retrieval.qmul`). Without an
attribute file, variants with automatic triplets (their short list is built from attributes) refuse with
:class:`ranking_jax.projects.sketch_retrieval.qmul.AttributesNotFoundError`; variants with human triplets run without the AP
terms (eq. 4's attribute ranking needs no labels, so AR stays when the variant has it), and the report
says so.

**Pretrained trunk** (``config.model.name = "sketch_pretrained_net"``, the default on QMUL;
:mod:`ranking_jax.projects.sketch_retrieval.pretrained`): the frozen front of the ImageNet EfficientNet-Lite0
is cached for the 10 views of every image (:func:`pair_maps`), training batches pick one view per image
(:func:`make_view_transform`) and the test averages the embeddings of its views (``config.eval.views``,
:func:`split_outputs`). The reference code's "easy" negatives (:func:`make_easy_negative_transform`,
``config.triplets.easy_negative_fraction``) and a validation split carved from the training pairs
(:func:`carve_validation`, ``config.data.validation_pairs``) apply to both networks.

Entry points: :func:`make_task`, :func:`report`, :func:`prepare_data`, :func:`retrieval_metrics`,
:func:`results_table`, :func:`plot_retrieval_examples`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Iterator, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ranking_jax import metrics as metrics_lib
from ranking_jax import models
from ranking_jax import reporting
from ranking_jax import train
from ranking_jax.data import pipeline
from ranking_jax.data import registry as data_registry
from ranking_jax.projects.sketch_retrieval import pretrained as pretrained_lib
from ranking_jax.projects.sketch_retrieval import qmul as qmul_lib
from ranking_jax.data import rendered
from ranking_jax.projects.sketch_retrieval import sketch_triplets as triplets_lib
from ranking_jax.projects.sketch_retrieval import sketches as sketches_lib
from ranking_jax.losses import triplet as triplet_losses

Batch = dict[str, np.ndarray]

# (acc@1, acc@10, triplet accuracy) in %, QMUL-Shoe and QMUL-Chair, and where in the paper.
PAPER_RESULTS: dict[str, dict[str, Any]] = {
    "triplet": {"shoes": (39.13, 87.83, 69.49), "chairs": (69.07, 97.94, 72.30),
                "row": "Table 1, Triplet model [19]"},
    "mtl": {"shoes": (50.43, 91.30, 70.59), "chairs": (78.35, 98.97, 73.13), "row": "Table 1, Ours"},
    "no_ap": {"shoes": (44.35, 86.96, 71.34), "chairs": (72.16, 98.97, 72.10), "row": "Table 2, Ours - AP"},
    "no_ar": {"shoes": (45.22, 87.83, 72.37), "chairs": (72.16, 98.97, 72.00), "row": "Table 2, Ours - AR"},
    "no_ap_ar": {"shoes": (37.39, 82.61, 66.57), "chairs": (50.52, 91.75, 69.62),
                 "row": "Table 2, Ours - AP - AR"},
    "auto_exhaustive": {"shoes": (43.48, 86.09, 70.38), "chairs": (68.04, 97.94, 70.58),
                        "row": "Table 3, Auto-generated (exhaustive)"},
    "auto_hard": {"shoes": (50.43, 91.30, 70.59), "chairs": (78.35, 98.97, 73.13),
                  "row": "Table 3, Auto-generated (hard only)"},
    "human_optimised_exhaustive": {"shoes": (43.48, 87.83, 70.88), "chairs": (71.13, 98.97, 73.29),
                                   "row": "Table 3, Human-optimised (exhaustive)"},
    "human_optimised_hard": {"shoes": (47.83, 87.83, 70.28), "chairs": (77.32, 100.0, 73.95),
                             "row": "Table 3, Human-optimised (hard only)"},
    "human_original": {"shoes": (42.61, 89.57, 71.29), "chairs": (71.13, 100.0, 73.84),
                       "row": "Table 3, Human original (as in [19])"},
    "easy": {"shoes": (39.13, 80.87, 70.24), "chairs": (69.07, 96.91, 68.75),
             "row": "Table 4, Easy triplets"},
    "medium": {"shoes": (41.74, 86.09, 71.05), "chairs": (68.04, 97.94, 71.75),
               "row": "Table 4, Medium triplets"},
    "hard": {"shoes": (50.43, 91.30, 70.59), "chairs": (78.35, 98.97, 73.13),
             "row": "Table 4, Hard triplets"},
}

AP_TERMS = ("sketch_attributes", "positive_attributes", "negative_attributes")
# Attribute counts of the paper's QMUL annotation (head size when AR runs without labels).
PAPER_NUM_ATTRIBUTES = {"shoes": 21, "chairs": 15}
_BRANCHES = ("anchor", "positive", "negative")
PRETRAINED_MODEL = "sketch_pretrained_net"
EMBEDDING_INITS = ("random", "pca")


# ----------------------------------------------------------------------------------------------- data


class MemoryPairs:
  """Sketch/photo pairs held as uint8 ``[N, H, W, 1]`` arrays (rendered or loaded once).

  The pair-source protocol of :class:`ranking_jax.projects.sketch_retrieval.sketch_triplets.TripletSource`: sketch i matches
  photo i; images come back float32 in ``[0, 1]``; ``attributes``/``sketch_attributes`` are float32
  ``[N, A]`` or None.
  """

  def __init__(self, sketches: np.ndarray, photos: np.ndarray, attributes: Optional[np.ndarray] = None,
               sketch_attributes: Optional[np.ndarray] = None):
    if sketches.shape != photos.shape or sketches.dtype != np.uint8 or sketches.ndim != 4:
      raise ValueError(f"need uint8 [N, H, W, 1] sketches and photos of one shape, got {sketches.dtype} "
                       f"{sketches.shape} and {photos.dtype} {photos.shape}.")
    self.sketches, self.photos = sketches, photos
    self.attributes = None if attributes is None else np.asarray(attributes, np.float32)
    self.sketch_attributes = (self.attributes if sketch_attributes is None
                              else np.asarray(sketch_attributes, np.float32))

  def __len__(self) -> int:
    return len(self.sketches)

  def sketch_images(self, indices: np.ndarray) -> np.ndarray:
    return self.sketches[np.asarray(indices)].astype(np.float32) / np.float32(255.0)

  def photo_images(self, indices: np.ndarray) -> np.ndarray:
    return self.photos[np.asarray(indices)].astype(np.float32) / np.float32(255.0)


@dataclasses.dataclass
class SketchData:
  """Everything a run needs from its data (built by :func:`prepare_data`).

  Attributes:
    train, test: :class:`MemoryPairs` at ``config.data.image_size`` (uncropped).
    train_triplets: int64 ``[T, 3]`` training (sketch, positive, negative) triplets of the variant.
    test_triplets: int64 ``[T', 3]`` evaluation triplets (human on QMUL, ground truth on embedded data).
    num_attributes: attribute labels per image (0: none).
    use_ap: whether the AP terms run (False when the variant has them but the data has no labels).
    notes: human-readable remarks for the report (e.g. "AP off: no attribute labels").
  """
  train: MemoryPairs
  test: MemoryPairs
  train_triplets: np.ndarray
  test_triplets: np.ndarray
  num_attributes: int
  use_ap: bool
  notes: tuple[str, ...] = ()
  # Where ``train`` / ``test`` come from: ``{part: (split name, pairs of that whole split, row indices)}``
  # (a validation split is rows of the training split), so per-split caches serve every carve.
  origin: Optional[dict[str, tuple[str, "MemoryPairs", np.ndarray]]] = None


def _render_embedded(data_config: Any) -> tuple[MemoryPairs, MemoryPairs, np.ndarray, np.ndarray]:
  """Renders the procedural shoes once; returns the pairs and the train / test ground-truth descriptors."""
  sources = sketches_lib.make_sketch_splits(int(data_config.num_train), int(data_config.num_test),
                                            seed=int(data_config.seed),
                                            image_size=int(data_config.image_size), cache=False)
  pairs, descriptors = {}, {}
  for split, source in sources.items():
    # ~12 ms per pair at 72 px: drawn once per run (or once per cache_dir), with a progress line.
    arrays = rendered.render(
        source, keys=("sketch", "photo"), image_keys=("sketch", "photo"),
        cache_dir=data_config.get("cache_dir", "") or "",
        cache_key=["sketches", source.seed, source.offset, len(source), source.image_size],
        name="sketches", description=f"rendering {len(source)} {split} sketch/photo pairs").arrays
    pairs[split] = MemoryPairs(arrays["sketch"], arrays["photo"], source.attributes)
    descriptors[split] = source.descriptors()
  return pairs["train"], pairs["test"], descriptors["train"], descriptors["test"]


def _variant_needs_auto(triplet_config: Any) -> bool:
  return triplet_config.generation == "auto"


def _sample(rankings: np.ndarray, sampling: str) -> np.ndarray:
  if sampling == "all":
    raise train.ConfigValueError("sampling 'all' keeps the human triplets as annotated: use it with "
                                 "generation 'human'.")
  return triplets_lib.sample_triplets(rankings, sampling)


# The embedded shoe sketches (rendered) and the QMUL files; both give pairs, not generic sources.
DATASETS = ("shoe_sketches", "qmul")


def prepare_data(config: Any) -> SketchData:
  """Loads or renders the pairs and builds the variant's training and evaluation triplets.

  Raises:
    ranking_jax.data.DataNotFoundError: QMUL files missing (message says where to put them).
    ranking_jax.projects.sketch_retrieval.qmul.AttributesNotFoundError: a variant with automatic triplets on QMUL without an
      attribute file.
    ValueError: an unknown data name, generation or sampling.
  """
  data_config, triplet_config = config.data, config.triplets
  generation, sampling = str(triplet_config.generation), str(triplet_config.sampling)
  if generation not in ("auto", "human", "human_optimised"):
    raise train.ConfigValueError(f"config.triplets.generation must be auto, human or human_optimised, got "
                                 f"{generation!r}.")
  if generation == "human" and sampling != "all":
    raise train.ConfigValueError("human (original) triplets are used as annotated: "
                                 "config.triplets.sampling must be 'all'.")
  try:  # checked before the pairs are rendered, so a typo costs no time
    qmul_lib.flip_mode(data_config.get("flip", "shared"))
  except ValueError as error:
    raise train.ConfigValueError(f"config.data.{error}") from None
  wants_ap = any(float(config.multitask.weights.get(k, 0.0)) > 0 for k in AP_TERMS)
  notes = []
  rng = np.random.default_rng([int(data_config.seed), 7])
  if data_config.name == "shoe_sketches":
    train_pairs, test_pairs, train_descriptors, test_descriptors = _render_embedded(data_config)
    test_triplets = triplets_lib.sample_triplets(
        triplets_lib.ground_truth_rankings(test_descriptors, test_descriptors), "exhaustive")
    true_distances = sketches_lib.descriptor_distances(train_descriptors, train_descriptors)
    human = None
    if generation != "auto":
      shortlist = triplets_lib.automatic_rankings(
          train_pairs.sketch_attributes, train_pairs.attributes,
          triplets_lib.edge_hog_features(train_pairs.photo_images(np.arange(len(train_pairs)))))
      human = triplets_lib.simulate_annotators(true_distances, shortlist, rng,
                                               num_annotators=int(triplet_config.num_annotators),
                                               temperature=float(triplet_config.annotator_temperature))
  elif data_config.name == "qmul":
    if not data_config.data_dir:
      raise qmul_lib.DataNotFoundError(
          "config.data.data_dir is empty: set --config.data.data_dir=/path/to/qmul (the folder with "
          f"{data_config.category}_sketch_db_train.mat etc.; see ranking_jax/projects/sketch_retrieval/qmul.py).")
    splits = qmul_lib.make_qmul_splits(data_config.data_dir, data_config.category,
                                       attributes_file=data_config.attributes_file or None,
                                       image_size=int(data_config.image_size))
    pairs = {}
    for split, source in splits.items():
      pairs[split] = MemoryPairs(source.sketches[..., None], source.photos[..., None], source.attributes,
                                 source.sketch_attributes)
    train_pairs, test_pairs = pairs["train"], pairs["test"]
    test_triplets = splits["test"].triplets
    human = splits["train"].triplets
    if generation == "auto":
      splits["train"].require_attributes(f"Variant {config.variant!r} (automatic triplets from attributes)")
    if wants_ap and train_pairs.attributes is None:
      notes.append("AP off: no attribute labels (pass --config.data.attributes_file)")
  else:
    data_registry.check_dataset_name(data_config.name, DATASETS)

  if generation == "auto":
    features = triplets_lib.edge_hog_features(train_pairs.photo_images(np.arange(len(train_pairs))))
    rankings = triplets_lib.automatic_rankings(train_pairs.sketch_attributes, train_pairs.attributes,
                                               features)
    train_triplets = _sample(rankings, sampling)
  elif generation == "human":
    train_triplets = human
  else:
    rankings = triplets_lib.human_optimised_rankings(human, len(train_pairs))
    train_triplets = _sample(rankings, sampling)
  num_validation = int(data_config.get("validation_pairs", 0) or 0)
  origin = {"train": ("train", train_pairs, np.arange(len(train_pairs))),
            "test": ("test", test_pairs, np.arange(len(test_pairs)))}
  if num_validation:
    full_train = train_pairs
    train_pairs, test_pairs, train_triplets, test_triplets = carve_validation(
        train_pairs, np.asarray(train_triplets, np.int64), human, num_validation,
        seed=int(data_config.seed))
    held = validation_rows(len(full_train), num_validation, seed=int(data_config.seed))
    origin = {"train": ("train", full_train, np.flatnonzero(~held)),
              "test": ("train", full_train, np.flatnonzero(held))}
    notes.append(f"validation: {num_validation} pairs held out of the training split (test split unused)")
  has_labels = train_pairs.attributes is not None
  return SketchData(train=train_pairs, test=test_pairs, train_triplets=np.asarray(train_triplets, np.int64),
                    test_triplets=np.asarray(test_triplets, np.int64),
                    num_attributes=int(train_pairs.attributes.shape[1]) if has_labels else 0,
                    use_ap=wants_ap and has_labels, notes=tuple(notes), origin=origin)


def _subset(pairs: MemoryPairs, rows: np.ndarray) -> MemoryPairs:
  take = lambda a: None if a is None else a[rows]
  return MemoryPairs(pairs.sketches[rows], pairs.photos[rows], take(pairs.attributes),
                     take(pairs.sketch_attributes))


def validation_rows(num_pairs: int, num_validation: int, *, seed: int = 0) -> np.ndarray:
  """bool ``[num_pairs]``: the pairs held out as validation (drawn with ``default_rng([seed, 11])``).

  Raises:
    ConfigValueError: ``num_validation`` not in ``[2, num_pairs - 2]``.
  """
  if not 2 <= num_validation <= num_pairs - 2:
    raise train.ConfigValueError(f"config.data.validation_pairs must lie in [2, {num_pairs - 2}], got "
                                 f"{num_validation}.")
  held = np.zeros(num_pairs, bool)
  held[np.random.default_rng([seed, 11]).choice(num_pairs, num_validation, replace=False)] = True
  return held


def carve_validation(train: MemoryPairs, train_triplets: np.ndarray, human: Optional[np.ndarray],
                     num_validation: int, *, seed: int = 0
                     ) -> tuple[MemoryPairs, MemoryPairs, np.ndarray, np.ndarray]:
  """Holds ``num_validation`` training pairs (sketch and photo) out as a validation split.

  The held-out pairs are drawn with ``numpy.random.default_rng([seed, 11])``. Training keeps the triplets
  whose sketch and photos are all in the remaining pairs; the validation triplets are those of
  ``human`` (QMUL's annotation of the training split, or the simulated one; else ``train_triplets``) whose
  sketch and photos are all held out. Indices are renumbered within each part (kept order).

  Returns:
    ``(train_pairs, validation_pairs, train_triplets, validation_triplets)``.

  Raises:
    ConfigValueError: ``num_validation`` not in ``[2, len(train) - 2]``.
  """
  n = len(train)
  held = validation_rows(n, num_validation, seed=seed)
  new_index = np.full(n, -1, np.int64)
  new_index[~held] = np.arange(n - num_validation)
  new_index[held] = np.arange(num_validation)

  def keep(triplets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    triplets = np.asarray(triplets, np.int64).reshape(-1, 3)
    inside = mask[triplets].all(axis=1)
    return new_index[triplets[inside]]

  reference = train_triplets if human is None else human
  return (_subset(train, np.flatnonzero(~held)), _subset(train, np.flatnonzero(held)),
          keep(train_triplets, ~held), keep(reference, held))


def easy_negative_lists(triplets: np.ndarray, num_pairs: int) -> list[np.ndarray]:
  """Per sketch, the photos outside its top-10 list: every photo that none of its triplets names, minus its own.

  The reference code's ``make_negative_list`` (Deep_SBIR_tf ``sample_util.py``): a sketch's "easy"
  negatives are the photos its annotated triplets never compare.
  """
  triplets = np.asarray(triplets, np.int64).reshape(-1, 3)
  lists = []
  for s in range(num_pairs):
    named = np.unique(np.concatenate([triplets[triplets[:, 0] == s, 1:].ravel(), [s]]))
    lists.append(np.setdiff1d(np.arange(num_pairs), named))
  return lists


def make_easy_negative_transform(fraction: float, easy_lists: Sequence[np.ndarray], photos: Any):
  """A transform ``(batch, rng) -> batch`` that replaces each row's negative, with probability ``fraction``,
  by a photo drawn uniformly from its sketch's :func:`easy_negative_lists` entry (the reference code's
  ``hard_ratio = 1 - fraction``); ``batch["triplet"][:, 2]`` follows. ``photos(indices)`` gives the
  replacement images (or cached maps). ``fraction`` 0: the identity.

  Raises:
    ConfigValueError: ``fraction`` outside ``[0, 1]``.
  """
  fraction = float(fraction)
  if not 0.0 <= fraction <= 1.0:
    raise train.ConfigValueError(f"config.triplets.easy_negative_fraction must lie in [0, 1], got {fraction}.")

  def transform(batch: Batch, rng: np.random.Generator) -> Batch:
    if fraction == 0.0:
      return batch
    triplets = np.array(batch["triplet"], np.int64)
    rows = np.flatnonzero(rng.random(len(triplets)) < fraction)
    rows = np.asarray([r for r in rows if len(easy_lists[triplets[r, 0]])], np.int64)
    if not rows.size:
      return batch
    chosen = np.asarray([easy_lists[triplets[r, 0]][rng.integers(len(easy_lists[triplets[r, 0]]))]
                         for r in rows], np.int64)
    out = dict(batch)
    negative = np.array(batch["negative"])
    negative[rows] = photos(chosen)
    triplets[rows, 2] = chosen
    out["negative"], out["triplet"] = negative, triplets
    return out

  return transform


def make_view_transform(flip: str, keys: Sequence[str] = _BRANCHES):
  """A transform picking one of the 10 cached views (:func:`pretrained_lib.ten_views`) of each image.

  ``batch[key]`` holds ``[B, 10, ...]``; each image gets a crop position uniform over the 5 positions and a
  mirror flag by ``flip``: ``"independent"`` (per image, the reference code's), ``"shared"`` (one per row:
  sketch and its photos together) or ``"none"``.
  """
  mode = qmul_lib.flip_mode(flip)

  def transform(batch: Batch, rng: np.random.Generator) -> Batch:
    out = dict(batch)
    rows = len(np.asarray(batch[keys[0]]))
    shared = rng.random(rows) < 0.5
    for key in keys:
      position = rng.integers(0, len(pretrained_lib.VIEW_POSITIONS), size=rows)
      if mode == "independent":
        mirror = rng.random(rows) < 0.5
      else:
        mirror = shared if mode == "shared" else np.zeros(rows, bool)
      out[key] = np.asarray(batch[key])[np.arange(rows), pretrained_lib.view_index(position, mirror)]
    return out

  return transform


def chain_transforms(*transforms):
  """``(batch, rng) -> batch`` applying ``transforms`` in order with the same generator."""
  def transform(batch: Batch, rng: np.random.Generator) -> Batch:
    for t in transforms:
      batch = t(batch, rng)
    return batch
  return transform


class MapPairs:
  """Cached frozen-front maps of the 10 views of each sketch and photo (the pair-source protocol).

  ``sketch_images(indices)`` / ``photo_images(indices)``: float32 ``[B, 10, h, w, c]``.
  """

  def __init__(self, sketch_maps: np.ndarray, photo_maps: np.ndarray, pairs: MemoryPairs):
    self.sketch_maps, self.photo_maps = sketch_maps, photo_maps
    self.attributes, self.sketch_attributes = pairs.attributes, pairs.sketch_attributes

  def __len__(self) -> int:
    return len(self.sketch_maps)

  def sketch_images(self, indices: np.ndarray) -> np.ndarray:
    return self.sketch_maps[np.asarray(indices)]

  def photo_images(self, indices: np.ndarray) -> np.ndarray:
    return self.photo_maps[np.asarray(indices)]


def pair_maps(config: Any, data: SketchData, part: str) -> MapPairs:
  """The frozen front's maps of every view of ``data.<part>`` (``"train"`` or ``"test"``), cached per whole
  split under ``config.data.feature_cache_dir`` (a validation split is rows of the training split's cache)."""
  kwargs = config.model.kwargs
  category = str(config.data.category)
  name = f"qmul_{category}" if config.data.name == "qmul" else "shoe_sketches"
  pairs = getattr(data, part)
  split, whole, rows = data.origin[part] if data.origin else (part, pairs, np.arange(len(pairs)))
  maps = []
  for kind, images in (("sketch", whole.sketches[..., 0]), ("photo", whole.photos[..., 0])):
    maps.append(pretrained_lib.cached_view_maps(
        images, crop_size=int(config.data.crop_size), stop_block=int(kwargs.start_block),
        cache_dir=str(config.data.get("feature_cache_dir", "") or ""), dataset=name,
        split=split, kind=kind)[rows])
  return MapPairs(maps[0], maps[1], pairs)


def head_sizes(config: Any, data: SketchData) -> dict[str, int]:
  """``num_attributes`` and ``num_classes`` of the model: an attribute head when AP or AR runs (AR alone on
  unlabelled QMUL gets the paper's attribute count), a class head for the pre-training stage."""
  use_ar = float(config.multitask.weights.get("attribute_ranking", 0.0)) > 0
  num_attributes = 0
  if data.use_ap or use_ar:
    num_attributes = data.num_attributes or PAPER_NUM_ATTRIBUTES.get(str(config.data.category), 21)
  num_classes = len(data.train) if int(config.pretrain.steps) > 0 else 0
  return {"num_attributes": num_attributes, "num_classes": num_classes}


# ------------------------------------------------------------------------------------- losses, schedule


ATTRIBUTE_REDUCTIONS = ("mean", "sum")


def make_loss_terms(*, use_ar: bool, use_ap: bool, pretrain: bool, margin: float = 1.0,
                    attribute_target_gradient: bool = False, attribute_reduction: str = "mean"
                    ) -> dict[str, Any]:
  """The trainer's loss terms of eq. 5 (unweighted) and the pre-training term.

  ``triplet`` (eq. 1), ``attribute_ranking`` (eq. 4, on the predicted attributes of sketch and positive),
  ``sketch_attributes`` / ``positive_attributes`` / ``negative_attributes`` (eq. 2, against the batch's
  labels) and ``pretrain`` (mean softmax cross-entropy of the class head over the three branches, label =
  the pair index of each image).

  ``attribute_target_gradient=False`` (default) treats the sketch's predicted attributes in eq. 4 as a
  fixed target, as a Caffe ``SigmoidCrossEntropyLoss`` (which cannot backpropagate to its label input)
  computes it: eq. 4 then pulls the photo's predictions towards the sketch's. With gradients into both
  arguments, H(a, a) is the entropy of a, and at weight 1 eq. 4 drove every attribute logit to saturation
  (AR 0.02 while the AP terms rose from ln 2 to 2.1-2.5 in a 400-step run).
  """
  if attribute_reduction not in ATTRIBUTE_REDUCTIONS:
    raise train.ConfigValueError(f"config.loss.attribute_reduction must be one of {ATTRIBUTE_REDUCTIONS}, got "
                                 f"{attribute_reduction!r}.")
  if not margin > 0:
    raise train.ConfigValueError(f"config.loss.margin must be > 0, got {margin}.")

  def reduce(loss, logits):  # the losses average over the N attributes; "sum" = N x that mean
    return loss * logits.shape[-1] if attribute_reduction == "sum" else loss

  terms = {"triplet": lambda out, batch: triplet_losses.triplet_ranking_loss(
      out["anchor_embedding"], out["positive_embedding"], out["negative_embedding"], margin=margin)}
  if use_ar:
    target = (lambda x: x) if attribute_target_gradient else jax.lax.stop_gradient
    terms["attribute_ranking"] = lambda out, batch: reduce(triplet_losses.attribute_similarity_loss(
        target(out["anchor_attribute_logits"]), out["positive_attribute_logits"]),
        out["positive_attribute_logits"])
  if use_ap:
    for name, branch in zip(AP_TERMS, _BRANCHES):
      terms[name] = functools.partial(
          lambda out, batch, branch: reduce(triplet_losses.attribute_prediction_loss(
              out[f"{branch}_attribute_logits"], batch[f"{branch}_attributes"]),
              out[f"{branch}_attribute_logits"]), branch=branch)
  if pretrain:
    def pretrain_loss(out, batch):
      labels = batch["triplet"].astype(jnp.int32)
      losses = [optax.softmax_cross_entropy_with_integer_labels(out[f"{b}_class_logits"], labels[:, k])
                for k, b in enumerate(_BRANCHES)]
      return jnp.mean(jnp.stack(losses))
    terms["pretrain"] = pretrain_loss
  return terms


def make_schedule(weights: Mapping[str, float], pretrain_steps: int, names: Sequence[str],
                  pretrain_weight_after: float = 0.0) -> Any:
  """Stage 1 (``step < pretrain_steps``): only ``pretrain`` (weight 1); stage 2: ``weights`` (eq. 5) plus
  ``pretrain`` at ``pretrain_weight_after`` (0: dropped, as a pure eq. 5 stage).

  >>> schedule = make_schedule({"triplet": 1.0}, 3, ("triplet", "pretrain"), 0.5)
  >>> [(float(schedule(jnp.int32(s))["triplet"]), float(schedule(jnp.int32(s))["pretrain"])) for s in (2, 3)]
  [(0.0, 1.0), (1.0, 0.5)]
  """
  main = {name: float(weights.get(name, 1.0)) for name in names if name != "pretrain"}
  after = float(pretrain_weight_after)

  def schedule(step):
    stage2 = (jnp.asarray(step) >= pretrain_steps).astype(jnp.float32)
    out = {name: weight * stage2 for name, weight in main.items()}
    if "pretrain" in names:
      out["pretrain"] = 1.0 - stage2 + after * stage2
    return out

  return schedule


# -------------------------------------------------------------------------------------------- metrics


def retrieval_distances(sketch_outputs: Mapping[str, np.ndarray], photo_outputs: Mapping[str, np.ndarray],
                        *, attribute_weight: float = 1.0) -> np.ndarray:
  """Sketch x photo distances of eq. 6 (fused), or plain squared feature distances without attribute head."""
  if "attribute_logits" in sketch_outputs and attribute_weight != 0.0:
    return np.asarray(triplet_losses.fused_distance(
        jnp.asarray(sketch_outputs["embedding"]), jnp.asarray(photo_outputs["embedding"]),
        jnp.asarray(sketch_outputs["attribute_logits"]), jnp.asarray(photo_outputs["attribute_logits"]),
        attribute_weight=attribute_weight), np.float64)
  return triplets_lib.squared_distances(sketch_outputs["embedding"], photo_outputs["embedding"])


def split_outputs(outputs: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray]
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """The sketch and photo rows of an evaluation's outputs, each ordered by pair index; rows of the same image
  (its test views, ``config.eval.views``) are averaged, as the reference's 10-view test averages features."""
  is_sketch = np.asarray(targets["is_sketch"], bool)
  index = np.asarray(targets["index"])
  parts = []
  for mask in (is_sketch, ~is_sketch):
    # Several rows per image (test views): their mean, ordered by index.
    images, inverse = np.unique(index[mask], return_inverse=True)
    counts = np.bincount(inverse, minlength=len(images)).astype(np.float64)
    part = {}
    for k, v in outputs.items():
      if k in ("embedding", "attribute_logits"):
        values = np.asarray(v, np.float64)[mask]
        total = np.zeros((len(images),) + values.shape[1:], np.float64)
        np.add.at(total, inverse, values)
        part[k] = (total / counts.reshape((-1,) + (1,) * (values.ndim - 1))).astype(np.asarray(v).dtype)
    parts.append(part)
  return parts[0], parts[1]


def retrieval_metrics(outputs: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray], *,
                      triplets: np.ndarray, attribute_weight: float = 1.0) -> dict[str, float]:
  """acc@1, acc@10 and triplet accuracy of sketch->photo retrieval over the split (sketch i <-> photo i).

  Also ``acc_at_1_embedding`` / ``acc_at_10_embedding``: the same with the feature distance alone (what eq. 6
  adds). Non-finite distances (a diverged model) count as never retrieved.
  """
  sketch_out, photo_out = split_outputs(outputs, targets)
  out = {}
  for suffix, weight in (("", attribute_weight), ("_embedding", 0.0)):
    distances = retrieval_distances(sketch_out, photo_out, attribute_weight=weight)
    distances = np.where(np.isfinite(distances), distances, np.inf)
    scores = np.where(np.isfinite(distances), -distances, -np.finfo(np.float64).max)
    k10 = min(10, scores.shape[1])
    acc1, acc10 = metrics_lib.retrieval_accuracy_at_k(scores, [1, k10])
    out[f"acc_at_1{suffix}"], out[f"acc_at_10{suffix}"] = float(acc1), float(acc10)
    if suffix == "":
      out["triplet_accuracy"] = metrics_lib.triplet_accuracy(distances, triplets)
  out["num_queries"] = float(len(sketch_out["embedding"]))
  return out


# ------------------------------------------------------------------------------------------------ task


EVAL_VIEWS = (1, 10)


def _eval_source(pairs: Any, crop_size: int, views: int = 1) -> rendered.ArraySource:
  """Every test sketch and photo: the centre crop (``views`` 1) or the 10 views of :func:`pretrained_lib.ten_views`
  (one row each, averaged by :func:`split_outputs`). ``pairs``: :class:`MemoryPairs` (images, cropped here)
  or :class:`MapPairs` (cached maps of the views)."""
  if views not in EVAL_VIEWS:
    raise train.ConfigValueError(f"config.eval.views must be one of {EVAL_VIEWS}, got {views}.")
  n = len(pairs)
  if isinstance(pairs, MapPairs):
    stacked = np.concatenate([pairs.sketch_maps, pairs.photo_maps])  # [2n, 10, h, w, c]
  else:
    stacked = pretrained_lib.ten_views(np.concatenate([pairs.sketches, pairs.photos]), crop_size)
  chosen = [pretrained_lib.CENTRE_VIEW] if views == 1 else list(range(pretrained_lib.NUM_VIEWS))
  images = stacked[:, chosen].reshape((-1,) + stacked.shape[2:])
  return rendered.ArraySource({"image": images, "is_sketch": np.repeat([True, False], n * len(chosen)),
                               "index": np.repeat(np.tile(np.arange(n), 2), len(chosen)),
                               "view": np.tile(np.asarray(chosen), 2 * n)})


def requirements(config: Any) -> train.Requirements:
  """The pretrained network (``sketch_pretrained_net``, real QMUL data) needs the ImageNet weights."""
  pretrained = config.model.name == "sketch_pretrained_net"
  return train.Requirements(pretrained_weights="efficientnet_lite0" if pretrained else "")


def make_task(config: Any, data: Optional[SketchData] = None) -> train.Task:
  """The trainer :class:`~ranking_jax.train.Task` of ``config`` (see ``configs/sketch_retrieval.py``).

  Training batches are triplets of :func:`prepare_data` (random ``config.data.crop_size`` crops with flips);
  the ``test`` evaluator embeds every test sketch and photo (centre crops) once at the end and computes
  :func:`retrieval_metrics`; :func:`report` writes the row beside the paper and the retrieval figure.
  """
  if data is None:
    data = prepare_data(config)
  weights = config.multitask.weights
  use_ar = float(weights.get("attribute_ranking", 0.0)) > 0
  pretrain_steps = int(config.pretrain.steps)
  terms = make_loss_terms(use_ar=use_ar, use_ap=data.use_ap, pretrain=pretrain_steps > 0,
                          margin=float(config.loss.margin),
                          attribute_target_gradient=bool(config.loss.get("attribute_target_gradient", False)),
                          attribute_reduction=str(config.loss.get("attribute_reduction", "mean")))
  sizes = head_sizes(config, data)
  model = models.build_model(config.model.name, **{**config.model.kwargs.to_dict(), **sizes})
  uses_pretrained = config.model.name == PRETRAINED_MODEL
  crop = int(config.data.crop_size)
  views = int(config.eval.get("views", 1))
  if views not in EVAL_VIEWS:
    raise train.ConfigValueError(f"config.eval.views must be one of {EVAL_VIEWS}, got {views}.")
  if uses_pretrained:
    train_pairs, test_pairs = pair_maps(config, data, "train"), pair_maps(config, data, "test")
    crop_transform = make_view_transform(config.data.flip)
  else:
    train_pairs, test_pairs = data.train, data.test
    crop_transform = qmul_lib.make_crop_flip_transform(crop, flip=config.data.flip)
  easy = make_easy_negative_transform(float(config.triplets.get("easy_negative_fraction", 0.0)),
                                      easy_negative_lists(data.train_triplets, len(data.train)),
                                      train_pairs.photo_images)
  transform = chain_transforms(easy, crop_transform)
  triplet_source = triplets_lib.TripletSource(train_pairs, data.train_triplets, with_attributes=data.use_ap)
  batch_size, seed, eval_batch_size = int(config.batch_size), int(config.seed), int(config.eval_batch_size)
  label_keys = tuple(f"{b}_attributes" for b in _BRANCHES) if data.use_ap else ()
  photo_attributes = None if data.train.attributes is None else np.asarray(data.train.attributes, np.float32)

  def to_trainer_batch(batch: Batch) -> Batch:
    out = {"inputs": {b: np.asarray(batch[b], np.float32) for b in _BRANCHES},
           "triplet": np.asarray(batch["triplet"], np.int32)}
    out.update({k: np.asarray(batch[k], np.float32) for k in label_keys})
    if data.use_ap:  # an easy negative replaced the negative photo: its labels follow
      out["negative_attributes"] = photo_attributes[np.asarray(batch["triplet"])[:, 2]]
    return out

  def make_train_iterator(start_step: int, process_index: int, process_count: int) -> Iterator[Batch]:
    batches = pipeline.make_train_iterator(triplet_source, batch_size, seed=seed, start_step=start_step,
                                           process_index=process_index, process_count=process_count,
                                           transform=transform)
    return pipeline.prefetch(to_trainer_batch(b) for b in batches)

  test_source = _eval_source(test_pairs, crop, views)

  embedding_init = str(config.model.get("embedding_init", "random"))
  if embedding_init not in EMBEDDING_INITS:
    raise train.ConfigValueError(f"config.model.embedding_init must be one of {EMBEDDING_INITS}, got "
                                 f"{embedding_init!r}.")

  def initialize(variables):
    variables = pretrained_lib.load_tail_weights(variables)
    if embedding_init == "pca":
      kwargs = config.model.kwargs
      if kwargs.get("readout", "flatten") != "flatten" or kwargs.get("stop_block") != kwargs.start_block:
        raise train.ConfigValueError("config.model.embedding_init='pca' needs readout 'flatten' with "
                                     "stop_block == start_block (the embedding reads the cached maps).")
      maps = np.concatenate([train_pairs.sketch_maps, train_pairs.photo_maps])  # [2n, 10, h, w, c]
      variables = pretrained_lib.pca_embedding_init(variables, maps.reshape(maps.shape[0] * maps.shape[1], -1),
                                                    seed=seed)
    return variables

  def make_eval_iterator() -> Iterator[Batch]:
    for b in pipeline.make_eval_iterator(test_source, eval_batch_size, process_index=jax.process_index(),
                                         process_count=jax.process_count()):
      out = {"inputs": b["image"], "is_sketch": b["is_sketch"], "index": b["index"], "view": b["view"]}
      if "mask" in b:
        out["mask"] = b["mask"]
      yield out

  metrics_fn = functools.partial(retrieval_metrics, triplets=data.test_triplets,
                                 attribute_weight=float(config.eval.attribute_weight))
  evaluators = {"test": train.Evaluator(make_eval_iterator, metrics_fn, periodic=False)}
  return train.Task(model=model, loss_terms=terms, make_train_iterator=make_train_iterator,
                    evaluators=evaluators, schedule=make_schedule(weights, pretrain_steps, tuple(terms),
                                                           float(config.pretrain.get("weight_after", 0.0))),
                    num_train_examples=len(triplet_source),
                    initialize_variables=initialize if uses_pretrained else None,
                    report=functools.partial(report, config, data), example_name="triplets")


# --------------------------------------------------------------------------------------------- reports


_TABLE_COLUMNS = (
    reporting.Column("variant"), reporting.Column("data"), reporting.Column("seed"),
    reporting.Column("steps"),
    reporting.Column("acc_at_1", "acc@1 %", ".2f"), reporting.Column("acc_at_10", "acc@10 %", ".2f"),
    reporting.Column("triplet_accuracy", "triplet acc %", ".2f"),
    reporting.Column("paper_acc_at_1", "paper acc@1 %", ".2f"),
    reporting.Column("paper_acc_at_10", "paper acc@10 %", ".2f"),
    reporting.Column("paper_triplet_accuracy", "paper triplet %", ".2f"),
    reporting.Column("paper_row", "paper row"), reporting.Column("notes"))


def paper_figures(variant: str, category: str = "shoes") -> Optional[dict[str, Any]]:
  """The paper's (acc@1, acc@10, triplet acc) in % for a variant on ``shoes`` or ``chairs``, with its row."""
  entry = PAPER_RESULTS.get(variant)
  if entry is None:
    return None
  acc1, acc10, tri = entry[category]
  return {"paper_acc_at_1": acc1, "paper_acc_at_10": acc10, "paper_triplet_accuracy": tri,
          "paper_row": f"{entry['row']} ({category})"}


def results_table(rows: Sequence[Mapping[str, Any]], category: str = "shoes") -> str:
  """A markdown table of measured rows (metrics as fractions) with the paper's figures beside (in %).

  >>> row = {"variant": "triplet", "acc_at_1": 0.3, "acc_at_10": 0.8, "triplet_accuracy": 0.6}
  >>> print(results_table([row]).splitlines()[2][:60])
  | triplet | - | - | - | 30.00 | 80.00 | 60.00 | 39.13 | 87.
  """
  full = []
  for row in rows:
    percent = {k: 100.0 * float(row[k]) for k in ("acc_at_1", "acc_at_10", "triplet_accuracy")
               if row.get(k) is not None}
    full.append({**row, **percent, **(paper_figures(str(row["variant"]), category) or {})})
  return reporting.markdown_table(full, _TABLE_COLUMNS)


def plot_retrieval_examples(distances: np.ndarray, sketches: np.ndarray, photos: np.ndarray, path: str, *,
                            queries: Sequence[int] = (0, 1, 2, 3, 4, 5), top_k: int = 10,
                            title: str = "") -> list[int]:
  """Figure 3 of the paper: each row a query sketch and its top-``top_k`` photos, the true match framed green.

  Args:
    distances: ``[sketches, photos]`` retrieval distances (smaller first).
    sketches, photos: images ``[N, H, W(, 1)]`` (uint8 or float in [0, 1]).
    path: PNG path.
    queries: query indices (rows).

  Returns:
    The rank (1-based) of the true match of each query.
  """
  queries = [q for q in queries if q < len(sketches)]
  top_k = min(top_k, distances.shape[1])
  ranks = []
  with reporting.figure(path, figsize=(1.1 * (top_k + 1), 1.2 * len(queries) + 0.4), nrows=len(queries),
                        ncols=top_k + 1) as (fig, axes):
    axes = np.asarray(axes).reshape(len(queries), top_k + 1)
    for row, q in enumerate(queries):
      order = np.argsort(distances[q], kind="stable")
      ranks.append(int(np.flatnonzero(order == q)[0]) + 1)
      cells = [(sketches[q], "query", None)] + [(photos[p], f"#{k + 1}", p == q)
                                                 for k, p in enumerate(order[:top_k])]
      for col, (image, label, is_match) in enumerate(cells):
        ax = axes[row, col]
        ax.imshow(np.squeeze(np.asarray(image)), cmap="gray", vmin=0,
                  vmax=255 if image.dtype == np.uint8 else 1)
        ax.set_xticks([])
        ax.set_yticks([])
        colour = "C2" if is_match else ("C0" if is_match is None else "0.8")
        for spine in ax.spines.values():
          spine.set_edgecolor(colour)
          spine.set_linewidth(3 if is_match is not False else 1)
        ax.set_title(label + (" (match)" if is_match else ""), fontsize=7)
    if title:
      fig.suptitle(title, fontsize=9)
  return ranks


def report(config: Any, data: SketchData, result: train.TrainResult, workdir: str) -> dict[str, Any]:
  """``results.md`` (the row beside the paper's) and ``retrieval_examples.png`` (Figure 3) from the test
  predictions; the returned row lands in ``results["report"]``."""
  test = result.predictions["test"]
  variant = str(config.variant)
  category = str(config.data.category)
  data_name = "embedded" if config.data.name == "shoe_sketches" else f"qmul_{category}"
  if int(config.data.get("validation_pairs", 0) or 0):
    data_name += "_val"
  row = {"variant": variant, "data": data_name, "seed": int(config.seed), "steps": result.results["step"],
         "trunk": "pretrained" if config.model.name == PRETRAINED_MODEL else "scratch",
         **{k: float(v) for k, v in test.metrics.items()}, "notes": "; ".join(data.notes) or None,
         "num_train_triplets": int(len(data.train_triplets))}
  sketch_out, photo_out = split_outputs(test.outputs, test.targets)
  distances = retrieval_distances(sketch_out, photo_out, attribute_weight=float(config.eval.attribute_weight))
  crop = int(config.data.crop_size)
  ranks = plot_retrieval_examples(
      distances, qmul_lib.center_crop(data.test.sketches, crop), qmul_lib.center_crop(data.test.photos, crop),
      os.path.join(workdir, "retrieval_examples.png"),
      title=f"{variant} on {data_name}: acc@1 {row['acc_at_1']:.3f}, acc@10 {row['acc_at_10']:.3f}")
  incomplete = "" if result.results.get("complete", True) else " (INCOMPLETE run)"
  reporting.write_markdown(workdir, f"# FG-SBIR multi-task ranking, {variant} on {data_name}{incomplete}\n\n"
                           f"{results_table([row], category)}\n\nPaper figures are QMUL-{category}; embedded "
                           "data is a different benchmark (compare patterns, not values).\n")
  paper = paper_figures(variant, category)
  # One unit on the line: percent for ours and for the paper's figures.
  print(f"test ({variant}, {data_name}): acc@1 / acc@10 / triplet acc {100 * row['acc_at_1']:.2f} / "
        f"{100 * row['acc_at_10']:.2f} / {100 * row['triplet_accuracy']:.2f} %"
        + (f" | paper ({paper['paper_row']}): {paper['paper_acc_at_1']} / {paper['paper_acc_at_10']} / "
           f"{paper['paper_triplet_accuracy']} %" if paper else "") + incomplete, flush=True)
  return {**row, "example_ranks": ranks, "category": category, "paper": paper}
