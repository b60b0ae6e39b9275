r"""SoDeep sorter training on synthetic data (Engilberge et al., CVPR 2019, §3.1 and §4.1).

Launch from the repository root (the default variant: a fixed 1 500 steps, about 8 minutes on a 2-core
CPU; no wall-time stop, so the result does not depend on the machine's speed)::

  python -m experiments.sorter --config=configs/sorter.py --workdir=/tmp/rj-runs/sorter_lstm
  python -m experiments.sorter --config=configs/sorter.py:cnn --workdir=/tmp/rj-runs/sorter_cnn \
      --config.max_train_seconds=1800
  python -m experiments.sorter --config=configs/sorter.py:lstm_long --workdir=/tmp/rj-runs/sorter_lstm_long \
      --config.export_pretrained=lstm_h64_d100

``--config.max_train_seconds=S`` is an optional budget: the run then stops at S seconds, says so, and
records ``complete: false`` in ``results.json``; relaunching the command continues it.

Variants (``get_config(arg)``):

* ``lstm`` (default): bi-LSTM (2 layers, 64 units per direction) with a per-position head, one sorter for
  lists of length 2..100 (masks); 1 500 steps of 128 pairs, learning rate 1e-3 with cosine decay to 0.
* ``lstm_long``: the same for 5 000 steps, no time guard (the shipped ``lstm_h64_d100``; ~20 min on two
  idle cores, ~28 min on one).
* ``lstm_paper``: the authors' released LSTM (2 x 512 units, dense head from d x 1024 to d; fixed d).
* ``cnn``: the paper's CNN sorter (8 blocks of Conv1D + BatchNorm + ReLU, dense head; fixed d); the
  paper's schedule (200 000 steps): give it a ``max_train_seconds`` budget on a CPU.
* ``pairwise``: a learned-comparator sorter (``ranking_jax.sorters.models.PairwiseSorter``). Trained on the
  L1 loss alone it learns a step function (300 s on one core: L1 1.7e-6, one-step Spearman gain 0.006,
  forward+backward 70 ms). With the sharpness capped
  (``--config.model.kwargs.max_log_temperature=3.6889``, i.e. 40) every learned comparison sits at
  the cap, so it becomes ``ranks.sigmoid_ranks(..., sharpness=40, standardize=True)`` (L1 0.0031 and gain
  0.226 for both) at 100x the cost: kept as an architecture, not shipped.
* modifier ``smoke`` (``lstm,smoke``...): a tiny sorter and d = 10 for a few seconds, for tests.

Expected result: the run prints the L1 it reached on 10 000 test vectors of each mixture beside the
paper's Table 1 (handcrafted 0.0350, CNN 0.0120, LSTM 0.0033); the measured figures of the shipped
sorters are in ``ranking_jax/sorters/README.md`` and ``ranking_jax/sorters/pretrained/<name>.json``.

Measured results of every variant: ``ranking_jax/sorters/README.md``.
"""

import ml_collections

from configs import base

VARIANTS = ("lstm", "lstm_long", "lstm_paper", "cnn", "pairwise")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The config of ``"<variant>[,smoke]"`` (see the module docstring)."""
  arg = base.parse_arg(arg, default="lstm", variants=VARIANTS, modifiers=("smoke",))
  config = base.get_base_config()
  config.variant = arg.variant
  config.seed = 0
  config.batch_size = 512
  base.set_duration(config, "total", steps=200_000)
  config.log_every_steps = 50
  config.eval_every_steps = 1000
  config.checkpoint_every_steps = 500
  config.loss_scope = "device"  # eq. (1) is a mean over lists: the device scope gives the same gradient
  # Paper §4.1.1: Adam 1e-3 halved every 100 epochs of 100 000 pairs.
  config.optimizer.update(name="adam", learning_rate=1e-3)
  config.optimizer.schedule.update(name="halving", every_epochs=100.0, decay_factor=0.5)
  config.multitask.weights = ml_collections.ConfigDict({"l1": 1.0})

  config.data = ml_collections.ConfigDict()
  config.data.seed = 1  # the synthetic training lists: step t draws from fold_in(key(seed), t)
  config.data.mixture = "authors"  # "authors" (their 10 generators, Table 1) or "paper" (§3.1.2 text)
  config.data.length = 100  # d (d_max for variable-length sorters)
  config.data.min_length = ml_collections.FieldReference(None, field_type=int)
  config.data.epoch_pairs = 100_000  # one epoch of the paper

  config.model = ml_collections.ConfigDict()
  config.model.name = "sorter"
  config.model.kwargs = ml_collections.ConfigDict({"architecture": "lstm"})

  config.eval = ml_collections.ConfigDict()
  config.eval.seed = 1234
  config.eval.size = 10_000  # Table 1's test-set size
  config.eval.periodic_size = 1000
  config.eval.mixtures = ("authors", "paper")
  config.eval.extra_lengths = (10, 50)
  config.eval.timing = True  # forward+backward ms at batch 32

  config.export_pretrained = ""  # name under ranking_jax/sorters/pretrained/ ('' = do not export)
  config.export_dir = ""  # '' = the package's pretrained/ directory
  config.command = ""  # recorded in the exported metadata ('' = the command line)

  variant = arg.variant
  if variant in ("lstm", "lstm_long"):
    config.model.kwargs = ml_collections.ConfigDict(
        {"architecture": "lstm", "hidden_size": 64, "num_layers": 2, "head": "position"})
    config.data.min_length = 2
    config.batch_size = 128
    # A few epochs only (the paper's first halving comes at 100): decay the rate to 0 over the run.
    config.optimizer.schedule.update(name="cosine", every_epochs=None)
    config.total_steps = 1500 if variant == "lstm" else 5000
  elif variant == "lstm_paper":
    config.model.kwargs = ml_collections.ConfigDict(
        {"architecture": "lstm", "hidden_size": 512, "num_layers": 2, "head": "dense", "length": 100,
         "standardize_inputs": False})
  elif variant == "cnn":
    config.model.kwargs = ml_collections.ConfigDict({"architecture": "cnn", "length": 100})
    config.batch_size = 128
  elif variant == "pairwise":
    config.model.kwargs = ml_collections.ConfigDict(
        {"architecture": "pairwise", "hidden": (16, 16), "max_log_temperature": 12.0})
    config.data.min_length = 2
    config.batch_size = 64

  if arg.smoke:
    kwargs = {"architecture": config.model.kwargs.architecture}
    if kwargs["architecture"] == "lstm":
      kwargs.update(hidden_size=16, num_layers=1, head="position")
    elif kwargs["architecture"] == "cnn":
      kwargs.update(length=10, kernel_sizes=(2,) * 8)
    config.model.kwargs = ml_collections.ConfigDict(kwargs)
    config.data.length = 10
    config.data.min_length = None if kwargs["architecture"] == "cnn" else 2
    config.batch_size = 64
    config.total_steps = 200
    config.log_every_steps = 50
    config.eval_every_steps = 100
    config.checkpoint_every_steps = 100
    config.optimizer.learning_rate = 1e-2
    config.eval.size = 500
    config.eval.periodic_size = 200
    config.eval.extra_lengths = (5,)
    config.eval.timing = False
  return config
