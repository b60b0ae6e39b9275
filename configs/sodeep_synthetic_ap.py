r"""SoDeep synthetic mAP experiment (Figure 6): a student MLP trained with each loss, test AP over epochs.

*SoDeep: a Sorting Deep net to learn ranking loss surrogates* (Engilberge et al., CVPR 2019, §4.1.4,
Figure 6), on the synthetic protocol of Song et al. (ICML 2016): a random 4-layer ReLU teacher (N(0, 1)
weights) scores 20 000 points of a 10-d Gaussian, its top 20 % are positives, 10 000 / 10 000 random
train / test split; a student of the same architecture is trained with each loss and scored by test AP.

Launch (one run = one loss and one seed; CPU)::

  python -m experiments.sodeep_synthetic_ap --config=configs/sodeep_synthetic_ap.py:map_lstm,seed=0 \
      --workdir=/tmp/rj-runs/sodeep_synthetic_ap/map_lstm_s0
  # all 5 losses x 3 seeds, then the table and Figure 6:
  for v in cross_entropy hinge_ap map_lstm map_handcrafted map_soft_ranks; do for s in 0 1 2; do
    python -m experiments.sodeep_synthetic_ap --config=configs/sodeep_synthetic_ap.py:$v,seed=$s \
        --workdir=/tmp/rj-runs/sodeep_synthetic_ap/${v}_s$s; done; done
  python -m experiments.tables sodeep_synthetic_ap --runs='/tmp/rj-runs/sodeep_synthetic_ap/*' \
      --out=/tmp/rj-tables

Variants (``get_config("<variant>[,smoke][,seed=N]")``): ``cross_entropy``, ``hinge_ap`` (SVM-MAP structured
hinge, Yue et al. 2007), ``map_lstm`` (eq. 7 with the shipped sorter ``lstm_h64_d100``), ``map_handcrafted``
(eq. 11-12, lambda = 10), ``map_handcrafted_standardized`` (the same on standardised scores),
``map_soft_ranks`` (Blondel et al., epsilon = 1); modifier ``smoke``: 200 points, width-8 networks, 4 steps.
``seed`` seeds the student's initialisation and the batch order; the teacher and the split are those of
``data.seed`` (0), the same for every run, so the seed spread measures training, not the data draw.

Sizes and hyper-parameters. The protocol fixes depth (4 ReLU layers), data and split; widths and
optimiser are ours: teacher and student width 64; mini-batches of 100 points (the shipped LSTM sorter serves
lists of <= 100, and every list-wise loss ranks one mini-batch), 100 steps per epoch, 10 epochs (``epochs=N``
changes it), Adam with the learning rate picked per loss by training AP (:data:`LEARNING_RATES`), constant.
Evaluated every epoch on the training and test points.

Measured results (with the paper's beside, the seed spread and which findings hold): ``ranking_jax/projects/sodeep/README.md``.
"""

import ml_collections

from configs import base

# variant -> (loss name, rank function)
VARIANT_LOSSES = {
    "cross_entropy": ("cross_entropy", ""),
    "hinge_ap": ("hinge_ap", ""),
    "map_lstm": ("map", "lstm"),
    "map_handcrafted": ("map", "handcrafted"),
    "map_handcrafted_standardized": ("map", "handcrafted_standardized"),
    "map_soft_ranks": ("map", "soft_ranks"),
}
VARIANTS = tuple(VARIANT_LOSSES)
# Adam learning rate per variant, picked by the final training AP of a 5-epoch search over {1e-3, 1e-2} on
# seed 0 (ranking_jax/projects/sodeep/README.md): cross_entropy 0.921 / 0.945, hinge_ap 0.922 / 0.931,
# map_lstm 0.922 / 0.906. The other mAP rank functions were not searched (CPU time): they take map_lstm's.
LEARNING_RATES = {
    "cross_entropy": 1e-2,
    "hinge_ap": 1e-2,
    "map_lstm": 1e-3,
    "map_handcrafted": 1e-3,
    "map_handcrafted_standardized": 1e-3,
    "map_soft_ranks": 1e-3,
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The config of ``"<variant>[,smoke][,seed=N][,lr=X]"`` (see the module docstring)."""
  arg = base.parse_arg(arg, default="map_lstm", variants=VARIANTS, modifiers=("smoke",), seed=0,
                       lr=0.0, epochs=10.0)
  config = base.get_base_config()
  config.variant = arg.variant
  config.seed = int(arg.seed)
  config.batch_size = 100  # one list per step; the shipped LSTM sorter serves <= 100 items
  config.eval_batch_size = 2000
  config.loss_scope = "global"

  config.data = ml_collections.ConfigDict()
  config.data.seed = 0
  config.data.num_points = 20000
  config.data.num_train = 10000
  config.data.teacher_hidden_sizes = (64, 64, 64, 64)

  config.model = ml_collections.ConfigDict()
  config.model.name = "relu_mlp"
  config.model.kwargs = ml_collections.ConfigDict({"hidden_sizes": (64, 64, 64, 64)})

  loss_name, rank_fn = VARIANT_LOSSES[arg.variant]
  config.loss = ml_collections.ConfigDict()
  config.loss.name = loss_name
  config.loss.rank_fn = rank_fn
  config.loss.sharpness = 10.0  # handcrafted sorter's lambda (paper: 10)
  config.loss.regularization_strength = 1.0  # soft_ranks' epsilon

  config.optimizer.update(name="adam", learning_rate=float(arg.lr or LEARNING_RATES[arg.variant]))
  config.optimizer.schedule.name = "constant"
  base.set_duration(config, "total", epochs=float(arg.epochs))
  base.set_duration(config, "eval_every", epochs=1.0)
  base.set_duration(config, "checkpoint_every", epochs=10.0)
  config.log_every_steps = 100
  config.keep_checkpoints = 1

  if arg.smoke:
    config.data.update(num_points=200, num_train=120, teacher_hidden_sizes=(8, 8, 8, 8))
    config.model.kwargs.hidden_sizes = (8, 8, 8, 8)
    config.batch_size = 40
    config.eval_batch_size = 40
    base.set_duration(config, "total", steps=4)
    base.set_duration(config, "eval_every", steps=2)
    base.set_duration(config, "checkpoint_every", steps=0)
    config.log_every_steps = 2
  return config
