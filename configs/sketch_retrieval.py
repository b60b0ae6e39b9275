r"""FG-SBIR multi-task attribute-driven ranking: every row of the paper's Tables 1-4.

*Deep Multi-task Attribute-driven Ranking for Fine-grained Sketch-based Image Retrieval* (Song, Song,
Xiang, Hospedales, Ruan, BMVC 2016).

Launch (embedded procedural shoes, no download, CPU)::

  python -m experiments.sketch_retrieval --config=configs/sketch_retrieval.py:mtl \
      --workdir=/tmp/rj-runs/sketch_retrieval/mtl_s0
  python -m experiments.sketch_retrieval --config=configs/sketch_retrieval.py:triplet \
      --workdir=/tmp/rj-runs/sketch_retrieval/triplet_s0
  # real QMUL-Shoe (files from https://github.com/yuqian1023/Deep_SBIR_tf, data/shoes/)
  python -m experiments.sketch_retrieval --config=configs/sketch_retrieval.py:triplet,shoes \
      --config.data.data_dir=/path/to/qmul_shoes --workdir=/tmp/rj-runs/sketch_retrieval/triplet_shoes_s0
  # variants with automatic triplets / attribute prediction on QMUL need attribute labels:
  #   --config.data.attributes_file=shoes_attributes.csv   (format: ranking_jax/projects/sketch_retrieval/qmul.py)
  # Tables 1-4 across runs:
  python -m experiments.tables sketch_retrieval --runs='/tmp/rj-runs/sketch_retrieval/*'

Variants (``get_config("<variant>[,shoes|,chairs][,smoke][,seed=N]")``; ``--config.seed=N`` works too):

* Table 1: ``mtl`` (full model: automatic triplets, hard sampling, AP + AR), ``triplet`` (the triplet
  baseline of Yu et al. [19]: human triplets as annotated, no side tasks);
* Table 2: ``no_ap``, ``no_ar``, ``no_ap_ar`` (``mtl`` without attribute prediction / ranking / both);
* Table 3: ``auto_exhaustive``, ``auto_hard`` (= ``mtl``), ``human_optimised_exhaustive``,
  ``human_optimised_hard`` (Bradley-Terry ranking of the human triplets), ``human_original`` (the human
  triplets as annotated, with AP + AR);
* Table 4: ``easy``, ``medium``, ``hard`` (= ``mtl``): automatic triplets of rank distance > 3, 2-3, 1;
* modifiers: ``shoes`` / ``chairs`` (real QMUL V1 from ``config.data.data_dir``; without an attribute
  file the automatic-triplet variants refuse with ``AttributesNotFoundError`` and the human-triplet
  variants run without AP, which the report notes), ``smoke`` (tiny, 2 steps, for tests).
  ``scratch``: on QMUL, the small network of the embedded demo instead of the pretrained trunk;
  ``val``: hold out 60 training pairs and evaluate on them instead of the test split (choosing settings).

Real QMUL data (``shoes`` / ``chairs``) uses the ImageNet-pretrained EfficientNet-Lite0 by default
(:func:`_use_pretrained_trunk`, ``ranking_jax/projects/sketch_retrieval/pretrained.py``): blocks 0-10 frozen
and cached for the 10 views of each image (128-px views of 144-px images), a PCA-initialised linear
embedding of the flattened block-11 map, and the reference code's protocol as config keys --
``config.eval.views`` (10-view test averaging), ``config.triplets.easy_negative_fraction`` (0.25),
``config.loss.margin`` (0.3), ``config.data.flip`` (``shared`` chosen on validation; ``independent`` is
the reference's per-image flips) and ``config.loss.attribute_reduction`` (``mean`` / ``sum``). 600 steps,
AdamW lr 1e-3: 2-4 minutes on the 2-core CPU once the maps are cached.

Paper vs. ours. Loss weights (eq. 5) (lambda_a, lambda_s, lambda_p+, lambda_p-) = (1, 0.01, 0.01, 0.01),
margin 1, fused test distance (eq. 6) with lambda_a = 1, weight decay 5e-4: as the paper. Paper:
Sketch-a-Net on 225x225 crops of 256x256 images with flips, batch 128, 25 000 iterations, lr 1e-3, after
three pre-training stages (ImageNet, TU-Berlin, triplets). Ours (CPU recipe): the ``small`` Sketch-a-Net
layout (0.48 M parameters with the heads) with batch norm, no dropout and an L2-normalised embedding, on random
64x64 crops of 72x72 images (one mirror flip shared by the triplet), centre crops at test, batch 32
triplets, AdamW lr 1e-3 with cosine decay, 400 steps: stage 1 = 100 steps of cross-domain instance
classification on the training pairs (``config.pretrain``, see ``ranking_jax/projects/sketch_retrieval/sketch_retrieval.py``),
then 300 steps of eq. 5 with the stage-1 term kept at weight 1 (``config.pretrain.weight_after``); eq. 4's
sketch predictions are a fixed target (``config.loss.attribute_target_gradient``). Data: 304 / 115 train /
test pairs (QMUL-Shoe's sizes; QMUL-Chair: 200 / 97). Time: 139 s for ``mtl`` on the idle 2-core CPU
(3-7.5 minutes beside other training runs; 10-20 s of it compiling).

Measured (ranking_jax/projects/sketch_retrieval/README.md): see there for every run, its command and time.
"""

from __future__ import annotations

import ml_collections

from configs import base

TABLE1 = ("mtl", "triplet")
TABLE2 = ("no_ap", "no_ar", "no_ap_ar")
TABLE3 = ("auto_exhaustive", "auto_hard", "human_optimised_exhaustive", "human_optimised_hard",
          "human_original")
TABLE4 = ("easy", "medium", "hard")
VARIANTS = TABLE1 + TABLE2 + TABLE3 + TABLE4

# variant: (triplet generation, sampling, attribute prediction (AP), attribute ranking (AR)).
VARIANT_SPECS = {
    "mtl": ("auto", "hard", True, True),
    "triplet": ("human", "all", False, False),
    "no_ap": ("auto", "hard", False, True),
    "no_ar": ("auto", "hard", True, False),
    "no_ap_ar": ("auto", "hard", False, False),
    "auto_exhaustive": ("auto", "exhaustive", True, True),
    "auto_hard": ("auto", "hard", True, True),
    "human_optimised_exhaustive": ("human_optimised", "exhaustive", True, True),
    "human_optimised_hard": ("human_optimised", "hard", True, True),
    "human_original": ("human", "all", True, True),
    "easy": ("auto", "easy", True, True),
    "medium": ("auto", "medium", True, True),
    "hard": ("auto", "hard", True, True),
}

# The paper's task weights (Sec. 3.1).
LAMBDA_A, LAMBDA_S, LAMBDA_P_POS, LAMBDA_P_NEG = 1.0, 0.01, 0.01, 0.01


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The config of ``"<variant>[,shoes|,chairs][,smoke][,seed=N]"``."""
  arg = base.parse_arg(arg, default="mtl", variants=VARIANTS,
                       modifiers=("shoes", "chairs", "smoke", "scratch", "val"), seed=0)
  if arg.shoes and arg.chairs:
    raise ValueError("give at most one of the modifiers shoes and chairs.")
  variant = arg.variant
  generation, sampling, ap, ar = VARIANT_SPECS[variant]
  real = arg.shoes or arg.chairs
  # Real QMUL data: the ImageNet-pretrained trunk unless `scratch` asks for the small network; embedded
  # data (a CPU demo) keeps the small network.
  pretrained = real and not arg.scratch

  config = base.get_base_config()
  config.variant = variant
  config.seed = int(arg.seed)
  config.batch_size = 32  # triplets (x3 images)
  config.eval_batch_size = 240
  config.loss_scope = "global"

  config.data = ml_collections.ConfigDict()
  config.data.name = "qmul" if real else "shoe_sketches"
  config.data.category = "chairs" if arg.chairs else "shoes"
  config.data.seed = 0
  config.data.image_size = 72
  config.data.crop_size = 64
  # One mirror flip per triplet: the shoes face one way, so mirroring the sketch alone breaks the match.
  config.data.flip = "shared"  # none | shared | independent (the reference implementation's)
  config.data.num_train = 304  # embedded only (QMUL's sizes come from the files)
  config.data.num_test = 115
  config.data.cache_dir = ""  # drawn triplets of the embedded sketches
  # The pretrained trunk's cached feature maps of every view (empty: computed in memory for each run).
  config.data.feature_cache_dir = ""
  config.data.data_dir = ""  # QMUL folder
  config.data.attributes_file = ""  # QMUL attribute labels (format: ranking_jax/projects/sketch_retrieval/qmul.py)
  # > 0: hold out this many training pairs (sketch + photo) as a validation split, evaluated instead of the
  # test split (for choosing settings; the `val` modifier sets 60).
  config.data.validation_pairs = 60 if arg.val else 0

  config.triplets = ml_collections.ConfigDict()
  config.triplets.generation = generation
  config.triplets.sampling = sampling
  # Simulated human annotators on embedded data (QMUL-Shoe: 3 per training sketch, majority agreement 0.89).
  config.triplets.num_annotators = 3
  config.triplets.annotator_temperature = 0.35
  # Fraction of training triplets whose negative is replaced by a random photo outside the sketch's
  # annotated top-10 list (the reference code's "easy" negatives, 1 - hard_ratio = 0.25).
  config.triplets.easy_negative_fraction = 0.0

  config.model = ml_collections.ConfigDict()
  config.model.name = "sketch_triplet_net"
  # CPU recipe (not the paper's; ranking_jax/projects/sketch_retrieval/README.md "How the recipe was found"): batch
  # norm, no dropout (0.5 after fc6 added noise ~8x the early distances) and an L2-normalised embedding
  # without ReLU (unnormalised, the hinge of eq. 1 was met by shrinking every embedding to ~0).
  config.model.kwargs = ml_collections.ConfigDict(
      {"size": "small", "dropout_rate": 0.0, "embedding_relu": False, "batch_norm": True,
       "normalize_embedding": True})

  config.loss = ml_collections.ConfigDict()
  config.loss.margin = 1.0  # Delta of eq. 1
  # Eq. 4's sketch predictions as a fixed target (Caffe's sigmoid cross-entropy has no gradient to its label).
  config.loss.attribute_target_gradient = False
  # Reduction of the attribute cross-entropies (eq. 2, eq. 4) over the attributes: "mean" (1/N sum, as
  # eq. 2 is written) or "sum" (Caffe's SigmoidCrossEntropyLoss layer, N times larger).
  config.loss.attribute_reduction = "mean"

  config.pretrain = ml_collections.ConfigDict()
  config.pretrain.steps = 100  # stage 1: cross-domain instance classification
  # Kept at weight 1 beside eq. 5 in stage 2: dropped at the switch, its features were lost within 50 steps.
  config.pretrain.weight_after = 1.0

  config.eval = ml_collections.ConfigDict()
  config.eval.attribute_weight = 1.0  # lambda_a of eq. 6
  # 1: the centre crop; 10: the mean embedding of the 4 corner + centre crops and their mirror images.
  config.eval.views = 1

  config.multitask.name = "weighted"
  config.multitask.weights = ml_collections.ConfigDict({
      "triplet": 1.0, "attribute_ranking": LAMBDA_A if ar else 0.0,
      "sketch_attributes": LAMBDA_S if ap else 0.0, "positive_attributes": LAMBDA_P_POS if ap else 0.0,
      "negative_attributes": LAMBDA_P_NEG if ap else 0.0, "pretrain": 1.0})

  config.optimizer.update(name="adamw", learning_rate=1e-3, weight_decay=5e-4)
  config.optimizer.schedule.update(name="cosine", warmup_steps=20, final_fraction=0.0)
  base.set_duration(config, "total", steps=400)
  base.set_duration(config, "eval_every", steps=0)
  base.set_duration(config, "checkpoint_every", steps=200)
  config.log_every_steps = 25

  config.model.trunk = "scratch"
  if pretrained:
    _use_pretrained_trunk(config)

  if arg.smoke:
    config.data.update(image_size=40, crop_size=32, num_train=12, num_test=10)
    config.batch_size = 8
    config.eval_batch_size = 20
    config.pretrain.steps = 1
    if not pretrained:
      config.model.kwargs.update({"widths": (4, 4, 8, 8, 8), "fc_features": 16, "embedding_dim": 8,
                                  "attribute_hidden": 8})
    config.optimizer.schedule.warmup_steps = 0
    base.set_duration(config, "total", steps=2)
    base.set_duration(config, "checkpoint_every", steps=0)
    config.log_every_steps = 1
    if pretrained:
      config.data.update(image_size=36, crop_size=32, validation_pairs=2 if arg.val else 0)
      config.model.kwargs.update(start_block=4, stop_block=4, embedding_dim=8, attribute_hidden=8)
  return config


def _use_pretrained_trunk(config: ml_collections.ConfigDict) -> None:
  """The ImageNet EfficientNet-Lite0 trunk, fine-tuned, and the reference protocol (QMUL default).

  Settings chosen on a validation split of 60 training pairs (ranking_jax/projects/sketch_retrieval/README.md
  "Choosing the pretrained recipe"), never on the test sketches.
  """
  config.model.name = "sketch_pretrained_net"
  # Blocks 0-10 frozen (their maps cached per view); blocks start_block .. stop_block - 1 trained and the
  # embedding a linear map of the flattened map (readout "flatten": the layout survives).
  config.model.trunk = "frozen_maps"
  config.model.kwargs = ml_collections.ConfigDict(
      {"start_block": 11, "stop_block": 11, "readout": "flatten", "embedding_dim": 256,
       "attribute_hidden": 256, "dropout_rate": 0.0, "drop_connect_rate": 0.0})
  # "pca": the embedding starts as the PCA projection of the training maps (else a random projection).
  config.model.embedding_init = "pca"
  config.data.image_size = 144  # 256 -> 144 (box filter), 128-px views: the paper's 225 of 256, scaled
  config.data.crop_size = 128
  config.data.flip = "shared"
  config.triplets.easy_negative_fraction = 0.25
  config.loss.margin = 0.3
  config.eval.views = 10
  config.pretrain.steps = 0
  config.pretrain.weight_after = 0.0
  config.batch_size = 32
  config.optimizer.update(learning_rate=1e-3)
  base.set_duration(config, "total", steps=600)
  base.set_duration(config, "checkpoint_every", steps=0)
  config.log_every_steps = 50
