r"""Class Rectification Loss experiment: imbalanced attribute recognition, Tables 2-4 and Figure 5.

*Class Rectification Hard Mining for Imbalanced Deep Learning* (Dong, Gong, Zhu, ICCV 2017).

Launch (embedded scene attributes, no download, CPU)::

  python -m experiments.class_rectification --config=configs/class_rectification.py:ce \
      --config.data.cache_dir=/tmp/rj-scenes-cache --workdir=/tmp/rj-runs/class_rectification/ce_s0
  python -m experiments.class_rectification --config=configs/class_rectification.py:crl_instance_relative,seed=1 \
      --config.data.cache_dir=/tmp/rj-scenes-cache --workdir=/tmp/rj-runs/class_rectification/crl_instance_relative_s1
  python -m experiments.tables class_rectification --runs='/tmp/rj-runs/class_rectification/*' \
      --out=/tmp/rj-runs/class_rectification_tables
  # real data at the paper's sizes
  python -m experiments.class_rectification --config=configs/class_rectification.py:crl_instance_relative,celeba \
      --config.data.data_dir=$HOME/tensorflow_datasets --workdir=/tmp/rj-runs/crl_celeba
  python -m experiments.class_rectification --config=configs/class_rectification.py:crl_instance_relative,xdomain \
      --config.data.image_dir=... --config.data.train_csv=... --config.data.test_csv=... --workdir=/tmp/rj-runs/crl_xd
  # CelebA-HQ (../shared/data/celeba_hq) with the frozen ImageNet EfficientNet-Lite0 (features cached once)
  python -m experiments.class_rectification --config=configs/class_rectification.py:crl_instance_relative,celeba_hq,seed=1 \
      --config.data.feature_cache_dir=/work/cache/features --workdir=/tmp/rj-runs/crl_celeba_hq/crl_instance_relative_s1

Variants (``get_config("<variant>[,celeba|,xdomain|,celeba_hq][,smoke][,seed=N]")``), one per row of Tables 2-4:

* ``ce``: cross-entropy only (eq. 2: per-attribute softmax CE summed over attributes, mean over images),
  the paper's DeepID2 row;
* ``oversampling``: images drawn with replacement with probability proportional to the mean over their
  attributes of the balancing weight :math:`w_j(a_{i,j}) = 1/(|Z_j| p_j(a_{i,j}))`, :math:`p_j` the
  training frequency of the value (multi-label analogue of random over-sampling of minority classes);
* ``downsampling``: a fixed subset of the training images, drawn once from the data seed: an image whose
  mean balancing weight is at least the median is kept, one below is kept with probability weight / median
  (majority-heavy images are discarded; about 65 % of the images remain on the scenes);
* ``cost_sensitive``: each label's cross-entropy weighted by :math:`w_j(a_{i,j})`, clipped at
  ``loss.max_class_weight`` (100);
* ``logit_adjusted`` (modern baseline, Menon et al. ICLR 2021, not in the paper): cross-entropy of
  :math:`f_j(x) + \tau \log p_j` with ``loss.logit_adjust_tau`` = 1; prediction is the plain argmax;
* ``crl_{class,instance}_{relative,absolute,distribution}``: the six CRL variants of Table 4
  (``crl_instance_relative`` is the paper's CRL(I)), loss terms ``ce`` + ``crl`` with weights 1 (eq. 8).
  ``loss.top_k`` = K = 5 (not given by the paper), ``loss.relative_margin`` = None means eq. 10's
  :math:`m_j = 2\pi/|Z_j|`, ``loss.absolute_margin`` = :math:`m_{apc}` = 1, ``loss.num_bins`` = 201 over
  ``loss.histogram_range`` = (0, 2) (Ustinova & Lempitsky's :math:`\Delta` = 0.01). The distribution
  variants L2-normalise the features (``model.kwargs.l2_normalize_features``) so that distances lie in
  [0, 2]; the others keep the paper's unnormalised ReLU features.

Modifier ``celeba_hq``: the CelebA-HQ faces of ``config.data.data_dir`` (default ``../shared/data/celeba_hq``,
relative to the repository root) at 64 px in the seeded 24 000 / 3 000 / 3 000 split (split seed 0); the
frozen ImageNet EfficientNet-Lite0's pooled 1 280-d features are computed once per split into
``config.data.feature_cache_dir`` and z-scored with the training split's statistics; the model is the
paper's head on them (``crl_feature_head``: shared FC1 of 256 with ReLU, a 64-d FC2 per attribute whose
features CRL uses, a softmax classifier per attribute; 991 056 parameters). Schedule, the same for every
variant: batch 128, 400 steps (2.1 epochs), SGD momentum 0.9, weight decay 5e-4, lr 0.1 with a cosine
decay, validation every 25 steps (the convergence curve). The settings the paper leaves open were chosen
on the validation split (project README): ReLU on FC2, L2-normalised FC2 features for every variant,
relative margin 0.2, K = 5, 51 histogram bins.

Modifiers: ``smoke`` (32x32 scenes, 32 / 16 / 16 images, a tiny network, 2 steps; for tests); ``celeba``
(TFDS ``celeb_a`` in the paper's 162 770 / 19 867 / 19 962 partition, 40 binary attributes, the paper's
DeepID2 network at DeepID2's 55x47 input, batch 128, 200 epochs, SGD lr 1e-3, momentum 0.9, weight decay
5e-4); ``xdomain`` (user CSVs, ``ranking_jax/projects/class_rectification/attribute_csv.py`` format; X-Domain's 165 467 / 80 000
split is the user's; 64x64, the same network and optimiser). Option ``seed=N`` sets the model / shuffle
seed (the data seed stays 0: the attributes' tails hold a few scenes and their imbalance ratios are those of
seed 0's split).

Default size (embedded scenes, CPU): 64x64 images, 4 000 / 1 000 / 2 000 train / validation / test scenes
of data seed 0, 28 attributes (24 binary with imbalance 1:1.1 to 1:39, 4 multi-valued with N = 6, 9, 21, 41
and imbalance 1:736 to 1:1190), the ``small`` DeepID2 (conv 8-16-24-32 with batch norm, FC1 128, FC2 64 per
attribute; 460 717 parameters), batch 128 (the paper's), 12 epochs = 372 steps, SGD momentum 0.9, weight
decay 5e-4, lr 0.02 with a cosine decay (the paper's 1e-3 for 200 epochs is too slow for a CPU budget; a
choice, not tuned). Timings: the project README.

Measured results (with the paper's beside, the seed spread and which findings hold): ``ranking_jax/projects/class_rectification/README.md``.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from configs import base

BASELINES = ("ce", "oversampling", "downsampling", "cost_sensitive", "logit_adjusted")
CRL_VARIANTS = tuple(f"crl_{level}_{kind}" for level in ("class", "instance")
                     for kind in ("relative", "absolute", "distribution"))
VARIANTS = BASELINES + CRL_VARIANTS


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The config of ``"<variant>[,celeba|,xdomain][,smoke][,seed=N]"``."""
  arg = base.parse_arg(arg, default="crl_instance_relative", variants=VARIANTS,
                       modifiers=("celeba", "xdomain", "celeba_hq", "smoke"), seed=0)
  if arg.celeba + arg.xdomain + arg.celeba_hq > 1:
    raise ValueError("choose one of the modifiers celeba, xdomain and celeba_hq.")
  variant = arg.variant
  crl = variant.startswith("crl_")

  config = base.get_base_config()
  config.variant = variant
  config.seed = int(arg.seed)
  config.batch_size = 128  # the paper's
  config.eval_batch_size = 250
  config.loss_scope = "global"  # CRL profiles and mines within the whole mini-batch

  config.data = ml_collections.ConfigDict()
  config.data.name = "celeba" if arg.celeba else ("attribute_csv" if arg.xdomain else "scene_attributes")
  config.data.seed = 0  # keep 0: the imbalance ratios are those of seed 0's split
  # CelebA: DeepID2's 55x47 face patches (height, width); elsewhere the side of a square image.
  config.data.image_size = (55, 47) if arg.celeba else 64
  config.data.attributes = ""  # "" = all; or comma-separated names
  # Embedded scenes.
  config.data.num_train = 4000
  config.data.num_validation = 1000
  config.data.num_test = 2000
  config.data.cache_dir = ""
  # CelebA (TFDS data directory holding celeb_a prepared as ArrayRecord; "" = TFDS's default).
  config.data.data_dir = ""
  # User CSVs (X-Domain-like): see ranking_jax/projects/class_rectification/attribute_csv.py.
  config.data.image_dir = ""
  config.data.train_csv = ""
  config.data.validation_csv = ""
  config.data.test_csv = ""
  config.data.num_values = ()  # () = inferred from the files

  config.model = ml_collections.ConfigDict()
  config.model.name = "deepid2_attributes"
  config.model.kwargs = ml_collections.ConfigDict({
      "size": "paper" if (arg.celeba or arg.xdomain) else "small",
      "l2_normalize_features": variant.endswith("_distribution")})

  config.loss = ml_collections.ConfigDict()
  config.loss.top_k = 5
  config.loss.relative_margin = config_dict.placeholder(float)  # None: eq. 10's 2 pi / |Z_j|
  config.loss.absolute_margin = 1.0  # m_apc
  config.loss.num_bins = 201
  config.loss.histogram_range = (0.0, 2.0)
  config.loss.max_class_weight = 100.0
  config.loss.logit_adjust_tau = 1.0

  config.multitask.name = "weighted"
  config.multitask.weights = ml_collections.ConfigDict({"ce": 1.0, "crl": 1.0} if crl else {"ce": 1.0})

  if arg.celeba or arg.xdomain:
    base.set_duration(config, "total", epochs=200.0)
    config.optimizer.update(name="sgd", learning_rate=1e-3, momentum=0.9, weight_decay=5e-4)
    config.log_every_steps = 100
    base.set_duration(config, "eval_every", epochs=10.0)
    base.set_duration(config, "checkpoint_every", epochs=2.0)
  else:
    base.set_duration(config, "total", epochs=12.0)
    config.optimizer.update(name="sgd", learning_rate=0.02, momentum=0.9, weight_decay=5e-4)
    config.optimizer.schedule.update(name="cosine")
    config.log_every_steps = 25
    base.set_duration(config, "eval_every", epochs=4.0)
    base.set_duration(config, "checkpoint_every", epochs=4.0)

  if arg.celeba_hq:
    _celeba_hq(config, variant)

  if arg.smoke and arg.celeba_hq:
    config.data.update(image_size=32, max_examples=40)
    config.batch_size = 8
    config.eval_batch_size = 8
    config.model.kwargs.update(fc1_features=12, feature_dim=5)
    base.set_duration(config, "total", steps=2)
    base.set_duration(config, "eval_every", steps=1)
    base.set_duration(config, "checkpoint_every", steps=0)
    config.log_every_steps = 1
  elif arg.smoke:
    config.data.update(image_size=(32, 32) if arg.celeba else 32, num_train=32, num_validation=16,
                       num_test=16)
    config.batch_size = 16
    config.eval_batch_size = 16
    config.model.kwargs.update(size="small")
    config.model.kwargs.conv_features = (4, 4, 6, 6)
    config.model.kwargs.fc1_features = 12
    config.model.kwargs.feature_dim = 5
    base.set_duration(config, "total", steps=2)
    base.set_duration(config, "eval_every", steps=0)
    base.set_duration(config, "checkpoint_every", steps=0)
    config.log_every_steps = 1
  return config


def _celeba_hq(config: ml_collections.ConfigDict, variant: str) -> None:
  """The ``celeba_hq`` modifier: the paper's head on cached frozen ImageNet EfficientNet-Lite0 features of
  CelebA-HQ (64 px, the 24 000 / 3 000 / 3 000 split of split seed 0); see the module docstring."""
  config.data.name = "celeba_hq"
  config.data.data_dir = "../shared/data/celeba_hq"  # relative to the repository root
  config.data.images = ""  # "" = the smallest image copy of data_dir at least image_size large
  config.data.image_size = 64
  config.data.seed = 0  # the split's seed
  config.data.validation_fraction = 0.1
  config.data.test_fraction = 0.1
  config.data.max_examples = 0  # 0 = all 30 000
  config.data.preload = False  # images are decoded only when their features are not cached yet
  # The frozen trunk's feature cache (shared by every run and experiment with the same key).
  config.data.feature_cache_dir = "~/.cache/ranking_jax/features"
  # z-score the trunk features with the training split's per-dimension mean and std.
  config.data.standardize_features = True

  config.model.name = "crl_feature_head"
  config.model.trunk = "frozen"
  # Chosen on the validation split (project README): ReLU on FC2 (without it `ce` diverged at this lr),
  # L2-normalised FC2 features for every variant (one network for all rows) with the relative margin
  # rescaled to 0.2 (eq. 10's 2 pi / |Z_j| = pi exceeds the diameter 2 of the unit sphere).
  config.model.kwargs = ml_collections.ConfigDict({
      "fc1_features": 256, "feature_dim": 64, "feature_relu": True, "l2_normalize_features": True})
  config.loss.relative_margin = 0.2
  config.loss.num_bins = 51  # Delta = 0.04 over [0, 2]; chosen on validation over 201 (Delta = 0.01)

  config.batch_size = 128  # the paper's
  config.eval_batch_size = 500
  base.set_duration(config, "total", steps=400)  # 2.1 epochs of the 24 000 training faces
  config.optimizer.update(name="sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4)
  config.optimizer.schedule.update(name="cosine")
  base.set_duration(config, "log_every", steps=100)
  base.set_duration(config, "eval_every", steps=25)  # the validation curve (16 points)
  base.set_duration(config, "checkpoint_every", steps=0)
