r"""SoDeep's Recall@K experiment (§4.2.3, Table 3) as a trainer :class:`~ranking_jax.train.Task`.

*SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019) trains the
DSVE-Loc joint image-text embedding on MS-COCO with the recall loss of eq. 9-10 computed by the learned
sorter on the batch's similarity matrix, instead of the VSE++ hard-negative triplet loss, and reports R@1,
R@5, R@10 and the median rank of caption retrieval and image retrieval averaged over 5 folds of 1 000 test
images.

Loss terms (one per variant, on the batch's ``B x B`` cosine similarities :math:`S_{ij} = \mathbf{v}_i
\cdot \mathbf{u}_j` of image :math:`i` and caption :math:`j`, one caption drawn per image per step):

* ``triplet_hard``: VSE++'s max-of-hinges (:func:`max_of_hinges_loss`),

  .. math:: \mathcal{L} = \frac1B \sum_i \Big(\max_{j \ne i}[\alpha - S_{ii} + S_{ij}]_+
            + \max_{j \ne i}[\alpha - S_{ii} + S_{ji}]_+\Big);

  optionally after ``config.loss.warmup_epochs`` of the sum of hinges (``triplet_sum``,
  :func:`sum_of_hinges_loss`);

* ``recall``: eq. 10 (:func:`ranking_jax.losses.recall_rank_loss`) on the rows of :math:`S` (caption
  retrieval) plus on the rows of :math:`S^\top` (image retrieval), with the shipped LSTM sorter or the soft
  ranks; the margin is in rank positions (1, the authors' :math:`\alpha = 1/n` on ranks divided by
  :math:`n`).

Data (``config.data.name``): ``"scene_captions"``, the embedded scenes with five generated captions each
(:mod:`ranking_jax.projects.sodeep.scene_captions`, the vocabulary from the training captions), or ``"coco_captions"``, COCO
captions with the Karpathy splits through TFDS (:mod:`ranking_jax.projects.sodeep.coco_captions`).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Iterator, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ranking_jax import metrics as metrics_lib
from ranking_jax import models
from ranking_jax import reporting
from ranking_jax import train
from ranking_jax.data import pipeline
from ranking_jax.data import registry as data_registry
from ranking_jax.data import rendered
from ranking_jax.projects.sodeep import scene_captions
from ranking_jax.losses import sorting
from ranking_jax.projects.sodeep import sodeep_map

Batch = dict[str, Any]
CAPTIONS_PER_IMAGE = scene_captions.CAPTIONS_PER_IMAGE

# The paper's Table 3 (MS-COCO 5 x 1k test, %): caption retrieval R@1, R@5, R@10, med r; image retrieval same.
PAPER_RESULTS: dict[str, tuple[tuple[float, ...], str]] = {
    "triplet_hard": ((69.8, 91.9, 96.6, 1, 55.9, 86.9, 94.0, 1), "Table 3, DSVE-Loc (hard-negative triplet)"),
    "recall_lstm": ((71.5, 92.8, 97.1, 1, 56.2, 87.0, 94.3, 1), "Table 3, DSVE-Loc + SoDeep loss"),
}
METRIC_KEYS = ("caption_retrieval/R@1", "caption_retrieval/R@5", "caption_retrieval/R@10",
               "caption_retrieval/median_rank", "image_retrieval/R@1", "image_retrieval/R@5",
               "image_retrieval/R@10", "image_retrieval/median_rank")


# ----------------------------------------------------------------------------------------------- data


def _scene_vocabulary(data_config: Any) -> scene_captions.Vocabulary:
  """The training captions' vocabulary, cached as JSON in ``cache_dir`` (building it takes ~3 ms/scene)."""
  cache_dir = data_config.get("cache_dir", "") or ""
  path = os.path.join(cache_dir, f"scene_vocabulary_s{int(data_config.seed)}_n{int(data_config.num_train)}"
                      ".json") if cache_dir else ""
  if path and os.path.exists(path):
    return scene_captions.Vocabulary.load(path)
  vocabulary = scene_captions.build_scene_vocabulary(int(data_config.num_train), seed=int(data_config.seed))
  if path:
    os.makedirs(cache_dir, exist_ok=True)
    vocabulary.save(path)
  return vocabulary


@data_registry.register_dataset("scene_captions")
def _scene_captions_splits(data_config: Any) -> dict[str, Any]:
  """The ``scene_captions`` dataset (see :func:`make_splits`)."""
  vocabulary = _scene_vocabulary(data_config)
  sources = scene_captions.make_scene_captions_splits(
      int(data_config.num_train), int(data_config.num_validation), int(data_config.num_test),
      seed=int(data_config.seed), image_size=int(data_config.image_size), vocabulary=vocabulary)
  out: dict[str, Any] = {split: rendered.render(
      source, keys=("image", "captions", "caption_lengths"),
      cache_dir=data_config.get("cache_dir", "") or "",
      cache_key=["scene_captions", source.scenes.seed, source.scenes.offset, len(source),
                 source.scenes.image_size, source.max_len, len(vocabulary)],
      name="scene_captions", description=f"rendering {len(source)} {split} captioned scenes")
                         for split, source in sources.items()}
  out["vocab_size"] = len(vocabulary)
  return out


@data_registry.register_dataset("coco_captions")
def _coco_captions_splits(data_config: Any) -> dict[str, Any]:
  """The ``coco_captions`` dataset (see :func:`make_splits`)."""
  from ranking_jax.projects.sodeep import coco_captions  # pylint: disable=g-import-not-at-top
  splits = coco_captions.make_coco_captions_splits(data_config.tfds_data_dir or None,
                                                   image_size=int(data_config.image_size))
  return {**splits, "vocab_size": len(splits["train"].vocabulary)}


DATASETS = ('scene_captions', 'coco_captions',)


def make_splits(data_config: Any) -> dict[str, Any]:
  """``{"train", "validation", "test"}`` sources of ``config.data`` (``"scene_captions"`` or ``"coco_captions"``).

  Each source gives ``image``, ``captions`` ``[n, 5, L]`` and ``caption_lengths`` ``[n, 5]``; the sources
  carry ``.vocabulary``-less arrays after rendering, so the vocabulary size is in the returned
  ``"vocab_size"`` entry.

  Raises:
    ranking_jax.data.DataNotFoundError: ``coco_captions`` is not prepared under
      ``config.data.tfds_data_dir``.
    ValueError: an unknown ``config.data.name``.
  """
  return data_registry.build_splits(data_config, accepted=DATASETS)


def to_train_batch(batch: Mapping[str, np.ndarray], rng: np.random.Generator) -> Batch:
  """One caption per image, drawn with ``rng``: ``{"inputs": {image, captions [n, L], caption_lengths}}``.

  >>> batch = {"image": np.zeros((2, 4, 4, 3)), "captions": np.arange(20).reshape(2, 5, 2),
  ...          "caption_lengths": np.full((2, 5), 2)}
  >>> out = to_train_batch(batch, np.random.default_rng(0))
  >>> out["inputs"]["captions"].shape, out["inputs"]["caption_lengths"].shape
  ((2, 2), (2,))
  """
  captions = np.asarray(batch["captions"])
  pick = rng.integers(0, captions.shape[1], size=captions.shape[0])
  rows = np.arange(captions.shape[0])
  return {"inputs": {"image": np.asarray(batch["image"], np.float32),
                     "captions": captions[rows, pick].astype(np.int32),
                     "caption_lengths": np.asarray(batch["caption_lengths"])[rows, pick].astype(np.int32)}}


def to_eval_batch(batch: Mapping[str, np.ndarray]) -> Batch:
  """All five captions of each image: ``captions [n, 5, L]``, ``caption_lengths [n, 5]``."""
  out: Batch = {"inputs": {"image": np.asarray(batch["image"], np.float32),
                           "captions": np.asarray(batch["captions"], np.int32),
                           "caption_lengths": np.asarray(batch["caption_lengths"], np.int32)}}
  if "mask" in batch:
    out["mask"] = np.asarray(batch["mask"], bool)
  return out


# ------------------------------------------------------------------------------------- losses, metrics


def max_of_hinges_loss(similarities: jax.Array, margin: float = 0.2) -> jax.Array:
  r"""VSE++'s hard-negative triplet loss ("max of hinges", Faghri et al. 2018) on a ``[B, B]`` matrix.

  ``similarities[i, j]`` scores image ``i`` with caption ``j`` (matching pairs on the diagonal). For each
  positive pair the hardest negative caption and the hardest negative image each give a hinge; the
  result is the mean over the ``B`` pairs of their sum (VSE++ sums over the batch; the mean only rescales).

  >>> s = jnp.array([[0.9, 0.8], [0.1, 0.5]])  # caption 1 scores higher with image 0 than with image 1
  >>> round(float(max_of_hinges_loss(s, margin=0.2)), 4)  # (0.1 + 0 [pair 0] + 0 + 0.5 [pair 1]) / 2
  0.3
  """
  similarities = jnp.asarray(similarities, jnp.float32)
  positive = jnp.diagonal(similarities)
  off_diagonal = ~jnp.eye(similarities.shape[0], dtype=bool)
  negatives = jnp.where(off_diagonal, similarities, -jnp.inf)
  caption_hinge = jax.nn.relu(margin - positive + jnp.max(negatives, axis=1))  # image queries
  image_hinge = jax.nn.relu(margin - positive + jnp.max(negatives, axis=0))  # caption queries
  return jnp.mean(caption_hinge + image_hinge)


def sum_of_hinges_loss(similarities: jax.Array, margin: float = 0.2) -> jax.Array:
  r"""VSE0's triplet loss: the hinges of *every* negative caption and image, summed (Faghri et al. 2018,
  eq. 2; Kiros et al. 2014), mean over the ``B`` positive pairs.

  .. math:: \mathcal{L} = \frac1B \sum_i \sum_{j \ne i}\big([\alpha - S_{ii} + S_{ij}]_+
            + [\alpha - S_{ii} + S_{ji}]_+\big)

  >>> s = jnp.array([[0.9, 0.8], [0.1, 0.5]])
  >>> round(float(sum_of_hinges_loss(s, margin=0.2)), 4)  # two negatives per pair here: as max of hinges
  0.3
  """
  similarities = jnp.asarray(similarities, jnp.float32)
  positive = jnp.diagonal(similarities)
  off_diagonal = ~jnp.eye(similarities.shape[0], dtype=bool)
  caption_hinges = jax.nn.relu(margin - positive[:, None] + similarities)  # image queries, row i
  image_hinges = jax.nn.relu(margin - positive[None, :] + similarities)  # caption queries, column j
  total = jnp.sum(jnp.where(off_diagonal, caption_hinges + image_hinges, 0.0))
  return total / similarities.shape[0]


def _similarities(outputs: Mapping[str, jax.Array]) -> jax.Array:
  return outputs["image_embedding"] @ outputs["caption_embedding"].T


def make_loss_terms(loss_config: Any) -> dict[str, Any]:
  """``{"triplet_hard": ...}`` or ``{"recall": eq. 10 both ways}`` as ``config.loss.name`` says; with
  ``config.loss.warmup_epochs > 0`` the hard-negative loss comes with ``triplet_sum``
  (:func:`sum_of_hinges_loss`), which :func:`make_task` schedules for the warm-up epochs."""
  if loss_config.name == "triplet_hard":
    margin = float(loss_config.margin)
    terms = {"triplet_hard": lambda outputs, batch: max_of_hinges_loss(_similarities(outputs), margin)}
    if float(loss_config.get("warmup_epochs", 0.0)) > 0:
      terms["triplet_sum"] = lambda outputs, batch: sum_of_hinges_loss(_similarities(outputs), margin)
    return terms
  if loss_config.name == "recall":
    rank_fn = sodeep_map.make_rank_fn(loss_config.rank_fn, loss_config.regularization_strength,
                                      standardize=bool(loss_config.get("standardize", False)))
    margin = float(loss_config.margin)

    def recall(outputs, batch):
      del batch
      similarities = _similarities(outputs)
      relevance = jnp.eye(similarities.shape[0], dtype=bool)
      # Caption retrieval (rows: images) plus image retrieval (rows: captions), as the authors do.
      return (sorting.recall_rank_loss(similarities, relevance, rank_fn=rank_fn, margin=margin)
              + sorting.recall_rank_loss(similarities.T, relevance, rank_fn=rank_fn, margin=margin))
    return {"recall": recall}
  raise train.ConfigValueError(f"config.loss.name must be 'triplet_hard' or 'recall', got "
                               f"{loss_config.name!r}.")


def recall_metrics(predictions: Mapping[str, np.ndarray], targets: Any, *, fold_size: int,
                   ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
  """:func:`ranking_jax.metrics.cross_modal_recall` over folds of ``fold_size`` images (>= 1 fold)."""
  del targets
  images = np.asarray(predictions["image_embedding"], np.float64)
  captions = np.asarray(predictions["caption_embedding"], np.float64)
  num_folds = max(1, len(images) // int(fold_size))
  nonfinite = int(np.sum(~np.isfinite(images)) + np.sum(~np.isfinite(captions)))
  out = {"num_examples": float(len(images)), "num_folds": float(num_folds), "num_nonfinite": float(nonfinite)}
  if nonfinite:
    return {**{k: float("nan") for k in METRIC_KEYS}, **out}
  ks = tuple(k for k in ks if k <= len(images) // num_folds)
  return {**metrics_lib.cross_modal_recall(images, captions, captions_per_image=captions.shape[1], ks=ks,
                                           num_folds=num_folds), **out}


# ------------------------------------------------------------------------------------------------ task


def requirements(config: Any) -> train.Requirements:
  """The losses use the whole batch's similarity matrix; a learned sorter bounds the batch."""
  spec = config.loss.rank_fn if config.loss.name == "recall" else ""
  return train.listwise_requirements("The losses use the whole batch's similarity matrix", spec)


def make_task(config: Any, splits: Optional[Mapping[str, Any]] = None) -> train.Task:
  """The trainer :class:`~ranking_jax.train.Task` of ``config`` (see ``configs/sodeep_recall.py``).

  ``splits`` defaults to :func:`make_splits` of ``config.data`` (it must hold ``"vocab_size"``). The
  model is ``models.build_model(config.model.name, vocab_size=..., **config.model.kwargs)``.
  """
  train.check_requirements(config, requirements(config))
  if splits is None:
    splits = make_splits(config.data)
  train_source = splits["train"]
  batch_size, seed, eval_batch_size = int(config.batch_size), int(config.seed), int(config.eval_batch_size)

  def make_train_iterator(start_step: int, process_index: int, process_count: int) -> Iterator[Batch]:
    batches = pipeline.make_train_iterator(train_source, batch_size, seed=seed, start_step=start_step,
                                           process_index=process_index, process_count=process_count)
    # The caption of each image is drawn from (seed, step, process): a resumed run draws the same.
    return pipeline.prefetch(
        to_train_batch(b, np.random.default_rng([seed, start_step + i, process_index, 5]))
        for i, b in enumerate(batches))

  def make_eval_iterator(source: Any) -> Iterator[Batch]:
    batches = pipeline.make_eval_iterator(source, eval_batch_size, process_index=jax.process_index(),
                                          process_count=jax.process_count())
    return (to_eval_batch(b) for b in batches)

  metrics_fn = functools.partial(recall_metrics, fold_size=int(config.eval.fold_size))
  evaluators = train.validation_and_test(make_eval_iterator, splits, metrics_fn)
  model = models.build_model(config.model.name, vocab_size=int(splits["vocab_size"]),
                             **config.model.kwargs.to_dict())
  terms = make_loss_terms(config.loss)
  schedule = None
  if "triplet_sum" in terms:
    # The warm-up: the sum of hinges (VSE0) first, then the max of hinges alone (VSE++).
    warmup_steps = int(round(float(config.loss.warmup_epochs) * (len(train_source) // batch_size)))
    schedule = train.piecewise([warmup_steps], [{"triplet_sum": 1.0, "triplet_hard": 0.0},
                                            {"triplet_sum": 0.0, "triplet_hard": 1.0}])
  return train.Task(requirements=requirements(config), model=model, loss_terms=terms, schedule=schedule,
                    make_train_iterator=make_train_iterator, evaluators=evaluators,
                    num_train_examples=len(train_source), report=functools.partial(report, config))


# --------------------------------------------------------------------------------------------- reports


def _pct(key: str) -> str:
  return key.replace("caption_retrieval/", "cap ").replace("image_retrieval/", "img ").replace(
      "median_rank", "med r")


_TABLE_COLUMNS = (
    reporting.Column("variant"), reporting.Column("data"), reporting.Column("steps"),
    *(reporting.Column(k, _pct(k), ".1f") for k in METRIC_KEYS),
    reporting.Column("paper_row", "paper row"))


def results_table(rows: Sequence[Mapping[str, Any]], *, with_paper: bool = True) -> str:
  """Measured rows (recalls in [0, 1], printed in %) and, below each, the paper's row if it has one.

  >>> row = {"variant": "triplet_hard", **{k: 0.5 for k in METRIC_KEYS}}
  >>> print(results_table([row]).splitlines()[2][:36])
  | triplet_hard | - | - | 50.0 | 50.0
  """
  full = []
  for row in rows:
    full.append({**row, **{k: 100.0 * row[k] if "R@" in k and k in row else row.get(k, None)
                           for k in METRIC_KEYS}})
    paper = PAPER_RESULTS.get(str(row["variant"]))
    if with_paper and paper:
      full.append({"variant": f"paper: {row['variant']}", "data": "COCO 5x1k",
                   **dict(zip(METRIC_KEYS, paper[0])), "paper_row": paper[1]})
  return reporting.markdown_table(full, _TABLE_COLUMNS)


def report(config: Any, result: train.TrainResult, workdir: str) -> dict[str, Any]:
  """Writes ``results.md`` (the test row beside Table 3) and returns the row."""
  test = result.predictions["test"]
  variant = str(config.variant)
  row = {"variant": variant, "seed": int(config.seed), "data": config.data.name,
         "steps": result.results["step"], **test.metrics}
  incomplete = "" if result.results.get("complete", True) else " (INCOMPLETE run)"
  folds = int(test.metrics["num_folds"])
  reporting.write_markdown(workdir, f"# SoDeep Recall@K (Table 3), {variant}{incomplete}\n\n"
                           f"Test: {folds} folds of {int(test.metrics['num_examples']) // folds} images.\n\n"
                           f"{results_table([row])}\n")
  paper = PAPER_RESULTS.get(variant)
  print(f"test ({variant}): caption R@1 {100 * row.get('caption_retrieval/R@1', float('nan')):.1f}, "
        f"image R@1 {100 * row.get('image_retrieval/R@1', float('nan')):.1f}"
        + (f" | paper: {paper[0][0]}, {paper[0][4]} ({paper[1]})" if paper else "") + incomplete, flush=True)
  return {**row, "paper": None if paper is None else {**dict(zip(METRIC_KEYS, paper[0])), "row": paper[1]}}
