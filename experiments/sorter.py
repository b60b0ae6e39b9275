"""Trains a SoDeep sorter on synthetic data and reports it beside the paper's Table 1.

  python -m experiments.sorter --config=configs/sorter.py:<lstm|lstm_long|lstm_paper|cnn|pairwise> \
      --workdir=/tmp/sorter [--export_pretrained=NAME]

Checkpoints (Orbax) and resume live in --workdir; results.json, results.md and figure5.png are written
there. With --export_pretrained the trained sorter is written into ranking_jax/sorters/pretrained/.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from ranking_jax.sorters import training

_CONFIG = config_flags.DEFINE_config_file("config", None, "Sorter config file.", lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and results.")
_EXPORT = flags.DEFINE_string("export_pretrained", "", "Export the trained sorter under this name.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  config = _CONFIG.value
  if _EXPORT.value:
    config.export_pretrained = _EXPORT.value
  config.command = "python -m experiments.sorter " + " ".join(
      a for a in sys.argv[1:] if not a.startswith("--workdir"))
  training.train_and_evaluate(config, _WORKDIR.value, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
