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

Variants (``get_config("<variant>[,lamem|,mediaeval][,smoke][,seed=N]")``), one per rank function we ship:
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
                       modifiers=("lamem", "mediaeval", "smoke"), seed=0)
  if arg.lamem and arg.mediaeval:
    raise ValueError("give one of the modifiers lamem and mediaeval (mediaeval + data.lamem_dir adds LaMem's "
                     "training images, as the paper does).")
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

  config.optimizer.update(name="adam", learning_rate=1e-3)
  config.optimizer.schedule.update(name="halving", every_epochs=3.0, decay_factor=0.5)  # halved every 3 epochs
  epochs = 30 if real_data else 10
  base.set_duration(config, "total", epochs=float(epochs))
  base.set_duration(config, "eval_every", epochs=1.0)
  base.set_duration(config, "checkpoint_every", epochs=2.0)
  config.log_every_steps = 20
  config.keep_checkpoints = 1

  if arg.smoke:
    config.data.update(image_size=16, num_train=48, num_validation=16, num_test=16)
    config.batch_size = 16
    config.eval_batch_size = 16
    config.model.kwargs.backbone = "resnet18"
    config.model.kwargs.backbone_kwargs = {"width": 4, "stage_sizes": (1, 1, 1, 1)}
    config.model.kwargs.hidden = 8
    config.model.freeze_backbone_epochs = 1.0  # 3 steps per epoch: steps 0-2 frozen
    config.loss.l1_epochs = 1.0
    config.optimizer.schedule.every_epochs = 1.0
    base.set_duration(config, "total", steps=4)
    base.set_duration(config, "eval_every", steps=2)
    base.set_duration(config, "checkpoint_every", steps=0)
    config.log_every_steps = 2
  return config
