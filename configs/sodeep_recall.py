r"""SoDeep Recall@K experiment (§4.2.3, Table 3): a joint image-text embedding, triplet vs. recall loss.

*SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019).

Launch (embedded captioned scenes, no download, CPU)::

  python -m experiments.sodeep_recall --config=configs/sodeep_recall.py:triplet_hard --workdir=/tmp/rj-runs/sodeep_recall/triplet_hard_s0
  python -m experiments.sodeep_recall --config=configs/sodeep_recall.py:recall_lstm --workdir=/tmp/rj-runs/sodeep_recall/recall_lstm_s0
  python -m experiments.sodeep_recall --config=configs/sodeep_recall.py:recall_soft_ranks,seed=1 --workdir=...
  # real data: COCO captions (Karpathy splits) prepared with `tfds build coco_captions` (GPU/TPU sizes)
  python -m experiments.sodeep_recall --config=configs/sodeep_recall.py:recall_lstm,coco \
      --config.data.tfds_data_dir=$HOME/tensorflow_datasets --workdir=/tmp/rj-runs/sodeep_recall_coco

Add ``--config.data.cache_dir=/tmp/rj-scenes-cache`` to render the scenes and build the vocabulary once.

Variants (``get_config("<variant>[,coco][,smoke][,seed=<int>]")``):

* ``triplet_hard``: VSE++'s max-of-hinges triplet loss, margin 0.2 (DSVE-Loc's loss: the paper's baseline);
* ``triplet_hard_warmup``: the same after 2 epochs of the sum of hinges (VSE0) (ours: from random init the
  max of hinges alone collapses here; DSVE-Loc and VSE++ start from an ImageNet-pretrained image path);
* ``recall_lstm``: eq. 9-10 with the shipped LSTM sorter ``lstm_h64_d100`` on both directions of the batch's
  similarity matrix, margin 1 rank position (the paper's DSVE-Loc + SoDeep loss row);
* ``recall_soft_ranks``: the same with Blondel et al.'s soft ranks (eps 0.01 on each row's standardised
  similarities; ours);
* modifier ``smoke``: 32x32 scenes, 32 / 16 / 16 images, tiny encoders, 2 steps (for tests);
* modifier ``coco``: 224x224 COCO, ResNet-152 image path, 1024-d space, 300-d words, 1024-d GRU (the
  paper's DSVE-Loc uses an SRU), batch 100 (the shipped sorter ranks <= 100 items; DSVE-Loc used 160),
  Adam lr 2e-4 (DSVE-Loc's), 30 epochs, test in 5 folds of 1 000 images.

Default size (embedded scenes, CPU): 64x64 images, 4 000 / 500 / 1 000 train / validation / test scenes with
five captions each, batch 100 (one caption per image per step), 10 epochs = 400 steps; a ResNet-18 of width
8 image path, 64-d word embeddings, a 128-d GRU, a 128-d joint space; Adam lr 2e-3 (random init; not tuned),
/10 at epoch 8. Test: 5 folds of 200 images (the paper's 5 x 1 000 of 5 000, scaled).

Measured results (with the paper's beside, the seed spread and which findings hold): ``ranking_jax/projects/sodeep/README.md``.
"""

from __future__ import annotations

import ml_collections

from configs import base

VARIANTS = ("triplet_hard", "triplet_hard_warmup", "recall_lstm", "recall_soft_ranks")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The config of ``"<variant>[,coco][,smoke][,seed=<int>]"``."""
  arg = base.parse_arg(arg, default="recall_lstm", variants=VARIANTS, modifiers=("coco", "smoke"), seed=0)
  real_data = arg.coco

  config = base.get_base_config()
  config.variant = arg.variant
  config.seed = int(arg.seed)
  config.batch_size = 100  # the shipped sorter ranks lists of <= 100 items
  config.eval_batch_size = 100
  config.loss_scope = "global"  # the losses use the whole batch's similarity matrix

  config.data = ml_collections.ConfigDict()
  config.data.name = "coco_captions" if real_data else "scene_captions"
  config.data.seed = 0
  config.data.image_size = 224 if real_data else 64
  config.data.num_train = 4000
  config.data.num_validation = 500
  config.data.num_test = 1000
  config.data.cache_dir = ""
  config.data.tfds_data_dir = ""

  config.eval = ml_collections.ConfigDict()
  config.eval.fold_size = 1000 if real_data else 200  # 5 x 1 000 COCO test images; scaled: 5 x 200

  config.model = ml_collections.ConfigDict()
  config.model.name = "joint_embedding"
  if real_data:
    config.model.kwargs = ml_collections.ConfigDict({
        "backbone": "resnet152", "backbone_kwargs": {}, "embed_dim": 1024, "word_dim": 300,
        "hidden_dim": 1024})
  else:
    config.model.kwargs = ml_collections.ConfigDict({
        "backbone": "resnet18", "backbone_kwargs": {"width": 8}, "embed_dim": 128, "word_dim": 64,
        "hidden_dim": 128})

  config.loss = ml_collections.ConfigDict()
  triplet = arg.variant.startswith("triplet_hard")
  config.loss.name = "triplet_hard" if triplet else "recall"
  config.loss.rank_fn = {"triplet_hard": "", "triplet_hard_warmup": "", "recall_lstm": "lstm_h64_d100",
                         "recall_soft_ranks": "soft_ranks"}[arg.variant]
  config.loss.margin = 0.2 if triplet else 1.0  # cosine units / rank positions
  config.loss.regularization_strength = 0.01  # soft_ranks only
  # soft_ranks only: rank the standardised similarities. On raw cosines (a row spans ~0.6) eps 0.01 left
  # all 100 items in one pooled block -- soft ranks affine in the scores -- and the run collapsed.
  config.loss.standardize = arg.variant == "recall_soft_ranks"
  # Epochs of the sum of hinges (VSE0) before the max of hinges: from random init the max alone collapsed.
  config.loss.warmup_epochs = 2.0 if arg.variant == "triplet_hard_warmup" else 0.0
  config.multitask.name = "weighted"
  config.multitask.weights = ml_collections.ConfigDict({config.loss.name: 1.0})

  if real_data:
    base.set_duration(config, "total", epochs=30.0)
    config.optimizer.update(name="adam", learning_rate=2e-4)
    config.optimizer.schedule.update(name="step", boundaries_epochs=(15,), decay_factor=0.1)
    config.log_every_steps = 50
    base.set_duration(config, "eval_every", epochs=1.0)
    base.set_duration(config, "checkpoint_every", epochs=1.0)
  else:
    base.set_duration(config, "total", epochs=10.0)
    config.optimizer.update(name="adam", learning_rate=2e-3)
    config.optimizer.schedule.update(name="step", boundaries_epochs=(8,), decay_factor=0.1)
    config.log_every_steps = 20
    base.set_duration(config, "eval_every", epochs=5.0)
    base.set_duration(config, "checkpoint_every", epochs=5.0)

  if arg.smoke:
    config.data.update(image_size=32, num_train=32, num_validation=16, num_test=16)
    config.batch_size = 16
    config.eval_batch_size = 16
    config.eval.fold_size = 8
    base.set_duration(config, "total", steps=2)
    base.set_duration(config, "eval_every", steps=0)
    base.set_duration(config, "checkpoint_every", steps=0)
    config.log_every_steps = 1
    if config.loss.warmup_epochs:
      config.loss.warmup_epochs = 0.5  # 1 of the 2 steps: the smoke run reaches the max of hinges
    config.model.kwargs = ml_collections.ConfigDict({
        "backbone": "resnet18", "backbone_kwargs": {"width": 4, "stage_sizes": (1, 1, 1, 1)},
        "embed_dim": 8, "word_dim": 8, "hidden_dim": 8})
  return config
