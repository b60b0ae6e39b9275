"""Shared plumbing of the experiment mains: flags, multi-process set-up, and the call to the trainer.

An experiment main is three lines::

    from experiments import main_lib

    def make_task(config): ...  # returns a ranking_jax.train.Task

    if __name__ == "__main__":
      main_lib.run(make_task)

and is launched as ``python -m experiments.<task> --config=configs/<task>.py:<variant> --workdir=DIR``
with dotted overrides (``--config.optimizer.learning_rate=0.01``). The config is locked: an unknown key
fails with the list of valid keys. Multi-process runs add ``--coordinator_address=host:port
--num_processes=N --process_id=i`` (or the ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
``JAX_PROCESS_ID`` environment variables).
"""

from __future__ import annotations

from typing import Any, Callable

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS

config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file[:variant].",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.json.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process runs).")
flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs).")
flags.DEFINE_integer("process_id", None, "Index of this process (multi-process runs).")
flags.mark_flags_as_required(["config", "workdir"])


def main(make_task: Callable[[Any], Any], argv: list[str]) -> dict[str, Any]:
  """Initialises jax.distributed if requested, then runs ``train_and_evaluate``."""
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS["verbosity"].present:
    # Orbax logs every checkpoint step at INFO; keep the console to the trainer's own lines.
    logging.set_verbosity(logging.WARNING)
  # Imported here so that jax.distributed is initialised before anything touches the devices.
  from ranking_jax.train import distributed  # pylint: disable=g-import-not-at-top
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  from ranking_jax.train import trainer  # pylint: disable=g-import-not-at-top
  return trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir, make_task)


def run(make_task: Callable[[Any], Any]) -> None:
  """``absl.app.run`` of :func:`main` for ``make_task(config) -> Task``."""
  app.run(lambda argv: main(make_task, argv) and None)
