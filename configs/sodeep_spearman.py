r"""SoDeep Spearman-loss memorability regression (§4.2.1): the sorter comparison and Table 2's losses.

*SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019, §4.2.1).

Launch (embedded memorability scenes, no download, CPU)::

  python -m experiments.sodeep_spearman --config=configs/sodeep_spearman.py:spearman_lstm \
      --config.data.cache_dir=/tmp/rj-memorability-cache --workdir=/tmp/rj-runs/sodeep_spearman/spearman_lstm_s0
  python -m experiments.sodeep_spearman --config=configs/sodeep_spearman.py:mse,seed=1 \
      --config.data.cache_dir=/tmp/rj-memorability-cache --workdir=/tmp/rj-runs/sodeep_spearman/mse_s1
  python -m experiments.tables sodeep_spearman --runs='/tmp/rj-runs/sodeep_spearman/*' --out=/tmp/rj-tables
  # real data (GPU/TPU sizes): MediaEval 2018 frames (+ LaMem training images, as the paper), or LaMem alone
  python -m experiments.sodeep_spearman --config=configs/sodeep_spearman.py:spearman_lstm,mediaeval \
      --config.data.mediaeval_ground_truth=$HOME/data/me18/ground-truth_dev-set.csv \
      --config.data.mediaeval_frames_dir=$HOME/data/me18/frames --config.data.lamem_dir=$HOME/data/lamem \
      --workdir=/tmp/rj-runs/sodeep_me18_lstm
  python -m experiments.sodeep_spearman --config=configs/sodeep_spearman.py:spearman_lstm,lamem \
      --config.data.lamem_dir=$HOME/data/lamem --workdir=/tmp/rj-runs/sodeep_lamem_lstm
  # real faces, age as the ranking target, head on cached frozen ImageNet EfficientNet-Lite0 features (CPU)
  python -m experiments.sodeep_spearman --config=configs/sodeep_spearman.py:spearman_lstm,utkface,seed=0 \
      --config.data.data_dir=../shared/data/utkface --config.data.feature_cache_dir=/work/cache/features \
      --workdir=/tmp/rj-runs/sodeep_spearman_utkface/spearman_lstm_s0

Variants (``get_config("<variant>[,lamem|,mediaeval|,utkface][,smoke][,seed=N]")``), one per rank function we ship:
``mse``, ``l1`` (plain regression), ``spearman_lstm`` (eq. 4 with the shipped sorter ``lstm_h64_d100``),
``spearman_handcrafted`` (eq. 11-12, lambda = 10 on the raw scores), ``spearman_handcrafted_standardized``
(lambda = 10 on standardised scores), ``spearman_soft_ranks`` (Blondel et al., epsilon = 1). The paper's
CNN-sorter row is not run: no CNN sorter is shipped (ours reached L1 0.0425, worse than the handcrafted
sorter; ``configs/sorter.py``). Modifier ``smoke``: 16x16 scenes, 48 / 16 / 16 images, width-4 network,
4 steps (tests).

Model and schedule. Paper: ResNet-34 (ImageNet) or a semantic embedding + two-layer MLP; 15 epochs with the
feature extractor frozen, then everything fine-tuned; Adam 1e-3 halved every 3 epochs; the loss plus an L1
term for the first epoch; MediaEval 8000 training videos x 7 frames + 60 000 LaMem images, 2000 test videos.
Ours (embedded, CPU): ResNet-18 of width 8 from random init + MLP (hidden 64), 48x48 scenes, 4 000 / 1 000 /
6 800 train / validation / test (the test split keeps the standard error of rho below 0.01), global batch 100
(the LSTM sorter's longest list), 10 epochs = 400 steps: 2 frozen epochs (``model.freeze_backbone_epochs``;
a per-example flag puts ``stop_gradient`` on the features), then fine-tuning; Adam 1e-3 halved every 3
epochs; L1 weight 1 in epoch 1 (``loss.l1_epochs``, ``loss.l1_weight``). With a random-init backbone the
frozen stage only fits the MLP to random features; pass converted ImageNet weights with
``--config.model.pretrained_weights=<backbone.npz>`` for the paper's set-up.
``,lamem`` / ``,mediaeval``: ResNet-34 at 224x224, hidden 256, batch 100, 30 epochs (15 frozen).

``,utkface``: UTKFace crop_part1 (the registered ``utkface`` dataset, seeded 0.8 / 0.1 / 0.1 split: 7 822 /
978 / 978 faces), target age / 100 (age in centuries: the memorability scores' [0, 1] range, so the paper's
lambda = 10 and the soft ranks' epsilon = 1 act at the scale they were set for). The paper's first stage only:
the two-layer MLP (hidden 256) trains on the pooled features of the frozen ImageNet EfficientNet-Lite0 at
128x128 (``ranking_jax.models.pretrained_trunk.feature_splits``, cached under ``data.feature_cache_dir``), 15 epochs
of 78 steps (the paper's 15 frozen epochs; the mean validation rho of the six variants at seed 0 peaked
there), no fine-tuning stage. Lists (``loss.list_size``): each global
batch of ``batch_size`` faces is cut into consecutive lists of ``list_size`` = 100 items (the shipped
sorter's longest) in the iterator's order; every rank function ranks the same lists, and ``mse``/``l1``
train on the same batches (the batch order depends on the seed only). ``loss.list_size = 0``: the whole
global batch is one list (the default of the other data).

Measured results (with the paper's beside, the seed spread and which findings hold): ``ranking_jax/projects/sodeep/README.md``.
"""

import ml_collections

from configs import base

# variant -> (main loss term, rank function)
VARIANT_LOSSES = {
    "mse": ("mse", ""),
    "l1": ("l1", ""),
    "spearman_lstm": ("spearman", "lstm"),
    "spearman_handcrafted": ("spearman", "handcrafted"),
    "spearman_handcrafted_standardized": ("spearman", "handcrafted_standardized"),
    "spearman_soft_ranks": ("spearman", "soft_ranks"),
}
VARIANTS = tuple(VARIANT_LOSSES)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The config of ``"<variant>[,lamem|,mediaeval][,smoke][,seed=N]"`` (see the module docstring)."""
  arg = base.parse_arg(arg, default="spearman_lstm", variants=VARIANTS,
                       modifiers=("lamem", "mediaeval", "utkface", "smoke"), seed=0)
  if int(arg.lamem) + int(arg.mediaeval) + int(arg.utkface) > 1:
    raise ValueError("give one of the modifiers lamem, mediaeval and utkface (mediaeval + data.lamem_dir adds "
                     "LaMem's training images, as the paper does).")
  real_data = arg.lamem or arg.mediaeval
  config = base.get_base_config()
  config.variant = arg.variant
  config.seed = int(arg.seed)
  config.batch_size = 100  # the shipped LSTM sorter serves lists of <= 100 items
  config.eval_batch_size = 200
  config.loss_scope = "global"  # eq. 4 ranks the whole mini-batch

  config.data = ml_collections.ConfigDict()
  config.data.name = "lamem" if arg.lamem else ("mediaeval" if arg.mediaeval else "memorability_scenes")
  config.data.seed = 0
  config.data.image_size = 224 if real_data else 48
  config.data.num_train = 4000
  config.data.num_validation = 1000
  config.data.num_test = 6800
  config.data.cache_dir = ""
  config.data.lamem_dir = ""
  config.data.lamem_fold = 1
  config.data.mediaeval_ground_truth = ""
  config.data.mediaeval_frames_dir = ""
  config.data.mediaeval_test_ground_truth = ""
  config.data.mediaeval_test_frames_dir = ""

  config.model = ml_collections.ConfigDict()
  config.model.name = "memorability_regressor"
  config.model.kwargs = ml_collections.ConfigDict({
      "backbone": "resnet34" if real_data else "resnet18",
      "backbone_kwargs": {} if real_data else {"width": 8},
      "hidden": 256 if real_data else 64,
      "bias_init": 0.75})  # LaMem's mean memorability
  config.model.freeze_backbone_epochs = 15.0 if real_data else 2.0
  config.model.pretrained_weights = ""

  main, rank_fn = VARIANT_LOSSES[arg.variant]
  config.loss = ml_collections.ConfigDict()
  config.loss.main = main
  config.loss.rank_fn = rank_fn
  config.loss.sharpness = 10.0  # the handcrafted sorter's lambda (paper: 10)
  config.loss.regularization_strength = 1.0  # soft_ranks' epsilon
  config.loss.l1_epochs = 1.0  # the paper's L1 term during the first epoch (Spearman variants)
  config.loss.l1_weight = 1.0
  config.loss.list_size = 0  # 0: the global batch is one list; else consecutive lists of this many items

  config.optimizer.update(name="adam", learning_rate=1e-3)
  config.optimizer.schedule.update(name="halving", every_epochs=3.0, decay_factor=0.5)  # halved every 3 epochs
  epochs = 30 if real_data else 10
  base.set_duration(config, "total", epochs=float(epochs))
  base.set_duration(config, "eval_every", epochs=1.0)
  base.set_duration(config, "checkpoint_every", epochs=2.0)
  config.log_every_steps = 20
  config.keep_checkpoints = 1

  if arg.utkface:
    _utkface(config)

  if arg.smoke:
    config.batch_size = 16
    config.eval_batch_size = 16
    config.optimizer.schedule.every_epochs = 1.0
    base.set_duration(config, "total", steps=4)
    base.set_duration(config, "eval_every", steps=2)
    base.set_duration(config, "checkpoint_every", steps=0)
    config.log_every_steps = 2
    config.loss.l1_epochs = 1.0
    if arg.utkface:  # 60 faces at 32x32: 48 / 6 / 6; two lists of 8 per batch of 16
      config.data.update(image_size=32, max_examples=60)
      config.model.kwargs.hidden = 8
      config.loss.list_size = 8
    else:
      config.data.update(image_size=16, num_train=48, num_validation=16, num_test=16)
      config.model.kwargs.backbone = "resnet18"
      config.model.kwargs.backbone_kwargs = {"width": 4, "stage_sizes": (1, 1, 1, 1)}
      config.model.kwargs.hidden = 8
      config.model.freeze_backbone_epochs = 1.0  # 3 steps per epoch: steps 0-2 frozen
  return config


def _utkface(config: ml_collections.ConfigDict) -> None:
  """UTKFace age: a two-layer MLP on cached frozen EfficientNet-Lite0 features (see the module docstring)."""
  config.data = ml_collections.ConfigDict({
      "name": "utkface", "data_dir": "", "images": "", "image_size": 128, "seed": 0,
      "validation_fraction": 0.1, "test_fraction": 0.1, "max_examples": 0,
      "preload": False,  # the cached features are read without decoding the images
      "feature_cache_dir": "",  # the feature cache (e.g. /work/cache/features); "" = ~/.cache/ranking_jax/features
      "target": "age", "target_scale": 0.01})  # age in centuries
  config.model.name = "feature_regressor"
  config.model.kwargs = ml_collections.ConfigDict({"hidden": 256, "bias_init": 0.30})  # mean train age / 100
  config.model.freeze_backbone_epochs = 0.0  # the trunk is frozen by construction (cached features)
  config.model.pretrained_weights = ""
  config.batch_size = 100
  config.eval_batch_size = 500
  config.loss.list_size = 100
  base.set_duration(config, "total", epochs=15.0)  # the paper's frozen stage: 15 epochs
