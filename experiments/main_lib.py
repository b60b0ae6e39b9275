"""Shared plumbing of the experiment mains: flags, their checks, multi-process set-up, the trainer call.

An experiment main is a few lines::

    from experiments import main_lib
    from ranking_jax.projects.ide_ranknet import image_difficulty

    if __name__ == "__main__":
      main_lib.run(image_difficulty.make_task)

launched from the repository root as ``python -m experiments.<task> --config=configs/<task>.py:<arg>
--workdir=DIR`` with dotted overrides (``--config.optimizer.learning_rate=0.01``). Rules the command
line follows, for every experiment:

* the config is locked: an unknown key (``--config.optimizer.lrr=0.1``) stops with a short usage error
  naming the closest valid keys, and so does a malformed value or config argument — never a traceback;
  a value of the right type that the task cannot use (``--config.data.flip=sometimes``, an unknown loss
  name) stops the same way, before training, with ``ranking_jax.train.ConfigValueError``'s message;
* ``--config.<field>=None`` unsets an optional field;
* each duration is given in one unit: ``--config.total_steps=20`` replaces the config's
  ``total_epochs`` (and ``--config.total_epochs=2`` its ``total_steps``), likewise for ``log_every``,
  ``eval_every``, ``checkpoint_every`` and every other ``<x>_steps``/``<x>_epochs`` pair of the config
  (``optimizer.schedule.boundaries_*`` and ``every_*``); giving both units of one duration is refused;
* a ``--workdir`` holding a run of another configuration is refused before any data work (one line
  naming the differing fields, exit status 2; ``docs/trainer.md`` lists what a relaunch may change); a
  diverged run or unreadable checkpoints end in one line and exit status 1; Ctrl-C saves the last step
  and ends in one line and exit status 130 (relaunching the same command resumes).

Multi-process runs add ``--coordinator_address=host:port --num_processes=N --process_id=i`` (or the
``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` environment variables).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from typing import Any, Callable, Optional, Sequence, Union

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS

config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file[:argument].",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.json.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process runs).")
flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs).")
flags.DEFINE_integer("process_id", None, "Index of this process (multi-process runs).")
flags.mark_flags_as_required(["config", "workdir"])

DURATIONS = ("total", "log_every", "eval_every", "checkpoint_every")
_NONE_WORDS = ("none", "null")


class UsageError(Exception):
  """A bad command line; printed as one short message (no traceback) and exit status 2."""


def _load_config_file(spec: str) -> Any:
  """``get_config(arg)`` of the config file ``path[:arg]`` (what ``config_flags`` will load too)."""
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise UsageError(f"config file {path!r} not found (run from the repository root, e.g. "
                     "--config=configs/sorter.py).")
  module_spec = importlib.util.spec_from_file_location("_rj_config_check", path)
  module = importlib.util.module_from_spec(module_spec)
  sys_path = list(sys.path)
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(path))))  # `from configs import base`
  try:
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()
  except (ValueError, TypeError, KeyError) as error:
    raise UsageError(f"--config={spec}: {error}") from None
  finally:
    sys.path[:] = sys_path


def _leaf_keys(config: Any, prefix: str = "") -> list[str]:
  keys = []
  for key in config.keys():
    value = config[key]
    full = f"{prefix}{key}"
    keys.append(full)
    if hasattr(value, "keys") and not isinstance(value, dict):
      keys.extend(_leaf_keys(value, full + "."))
  return keys


def _overrides(argv: Sequence[str]) -> list[tuple[int, str, Optional[str]]]:
  """``(position, key, value)`` of each ``--config.<key>[=value]`` argument."""
  found = []
  for position, arg in enumerate(argv):
    if arg.startswith("--config."):
      key, eq, value = arg[len("--config."):].partition("=")
      found.append((position, key, value if eq else None))
  return found


def check_command_line(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
  """Validates the ``--config.*`` overrides of ``argv``; returns ``(argv for absl, keys to unset)``.

  The keys to unset map to None (``()`` for a tuple field): ``=None`` overrides, and the twin of each
  duration given in one unit on the command line.

  Raises:
    UsageError: unknown keys (with the closest valid ones), both units of one duration, or a bad
      config argument.
  """
  argv = list(argv)
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  overrides = _overrides(argv)
  if spec is None:
    return argv, {}
  config = _load_config_file(spec)
  valid = _leaf_keys(config)
  for _, key, _ in overrides:
    if key not in valid:
      parent, _, leaf = key.rpartition(".")
      siblings = [k for k in valid if k.rpartition(".")[0] == parent]
      if not siblings:  # the parent itself is misspelt: match whole keys
        siblings = valid
      close = difflib.get_close_matches(key, siblings, n=4, cutoff=0.3)
      if siblings is valid:  # list the top-level names (groups end in "."), not every nested leaf
        where = "top-level names"
        groups = {k.split(".")[0] for k in valid if "." in k}
        names = sorted({k.split(".")[0] + ("." if k.split(".")[0] in groups else "") for k in valid})
      else:
        where, names = f"keys under {parent!r}", sorted(siblings)
      shown = ", ".join(names[:30]) + (f", ... ({len(names) - 30} more)" if len(names) > 30 else "")
      raise UsageError(f"unknown config key {key!r} in --config.{key}"
                       + (f"; did you mean: {', '.join(close)}?" if close else "")
                       + f" (valid {where}: {shown}).")
  set_none: dict[str, Any] = {}
  drop = set()
  for position, key, value in overrides:
    if value is not None and value.strip().lower() in _NONE_WORDS:
      set_none[key] = None
      drop.add(position)
  given = {key for _, key, _ in overrides}
  for key in sorted(given - set(set_none)):
    twin = _twin(key, valid)
    if twin is None:
      continue
    if twin in given and twin not in set_none:
      raise UsageError(f"--config.{key} and --config.{twin} both given: a duration takes one unit.")
    if twin not in given:
      set_none[twin] = _unset_value(config, twin)  # the command line's unit replaces the config file's
  return [a for i, a in enumerate(argv) if i not in drop], set_none


def print_help(argv: Sequence[str]) -> None:
  """The main's docstring, the common flags and, with ``--config=...``, every config key and its value."""
  main_doc = (sys.modules["__main__"].__doc__ or "").strip()
  print(main_doc + "\n" if main_doc else "", end="")
  print("\nFlags: --config=configs/<experiment>.py[:<variant>[,<modifier>...]] --workdir=DIR "
        "[--config.<key>=<value> ...] (--helpfull: every absl flag).")
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if spec is None:
    print("Add --config=configs/<experiment>.py[:<variant>] to --help to list that config's keys.")
    return
  try:
    config = _load_config_file(spec)
  except UsageError as error:
    print(f"(cannot list the keys: {error})")
    return
  print(f"\nConfig keys of {spec} (override with --config.<key>=<value>):")
  for key in _leaf_keys(config):
    value = config
    for part in key.split("."):
      value = value[part]
    if not (hasattr(value, "keys") and not isinstance(value, dict)):
      print(f"  {key} = {value!r}")


def _twin(key: str, valid: Sequence[str]) -> Optional[str]:
  """The other unit of a duration key (``<x>_steps`` <-> ``<x>_epochs``), when the config has both.

  The shared durations (:data:`DURATIONS`) and the schedule's ``optimizer.schedule.boundaries_*`` and
  ``every_*``, and any twin a task config adds.
  """
  for mine, other in (("_steps", "_epochs"), ("_epochs", "_steps")):
    if key.endswith(mine):
      twin = key[:-len(mine)] + other
      return twin if twin in valid else None
  return None


def _unset_value(config: Any, key: str) -> Any:
  """What "not given" is for ``key``: ``()`` for a tuple field (schedule boundaries), else None."""
  node = config
  for part in key.split("."):
    node = node[part]
  return () if isinstance(node, (tuple, list)) else None


def parse_flags(argv: list[str]) -> list[str]:
  """absl ``flags_parser``: checks the overrides, parses the flags, turns every error into a usage line."""
  program = os.path.basename(argv[0]) if argv else "experiment"
  if any(arg in ("--help", "-h", "--helpshort", "-?") for arg in argv[1:]):
    print_help(argv)
    sys.exit(0)
  try:
    argv, set_none = check_command_line(argv)
    try:
      rest = FLAGS(argv)
    except flags.Error as error:
      raise UsageError(str(error).replace("\\n", " ")) from None
    except (AttributeError, KeyError, TypeError, ValueError) as error:
      raise UsageError(f"bad --config value: {error}".replace("\\n", " ")) from None
    for key, value in set_none.items():
      node = FLAGS.config
      *parents, leaf = key.split(".")
      for parent in parents:
        node = node[parent]
      node[leaf] = value
    return rest
  except UsageError as error:
    print(f"{program}: error: {error}\nUsage: python -m experiments.<task> --config=configs/<task>.py[:<arg>] "
          "--workdir=DIR [--config.<key>=<value> ...]; --helpfull lists the flags.", file=sys.stderr)
    sys.exit(2)


def main(make_task: Union[str, Callable[[Any], Any]], argv: list[str]) -> Any:
  """Initialises jax.distributed if requested, checks the config, runs ``train_and_evaluate``; returns its
  result. ``make_task`` is ``make_task(config) -> Task`` or the dotted name of its task module.

  Expected failures end in one line on stderr, no traceback: a config or work-directory mistake (exit
  status 2), a diverged run or unreadable checkpoints (1), Ctrl-C (130, after saving a checkpoint of the
  last step when training had started).
  """
  try:
    return _main(make_task, argv)
  except KeyboardInterrupt as interrupt:
    # TrainingInterrupted says which step was saved; a bare KeyboardInterrupt came before or after training.
    message = str(interrupt) or ("interrupted; relaunch the same command to resume from the last checkpoint "
                                 "(if any)")
    print(message, file=sys.stderr, flush=True)
    sys.exit(130)


def _main(make_task: Union[str, Callable[[Any], Any]], argv: list[str]) -> Any:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS["verbosity"].present:
    # Orbax logs every checkpoint step at INFO; keep the console to the trainer's own lines.
    logging.set_verbosity(logging.WARNING)
  # Imported here so that jax.distributed is initialised before anything touches the devices.
  from ranking_jax.train import distributed  # pylint: disable=g-import-not-at-top
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  from ranking_jax.data import errors  # pylint: disable=g-import-not-at-top
  from ranking_jax.train import config as train_config  # pylint: disable=g-import-not-at-top
  from ranking_jax.train import checkpoint  # pylint: disable=g-import-not-at-top
  from ranking_jax.train import trainer  # pylint: disable=g-import-not-at-top
  from ranking_jax.train import preflight  # pylint: disable=g-import-not-at-top
  module = importlib.import_module(make_task) if isinstance(make_task, str) else None
  try:
    # Every config value that needs no data is checked before the task renders or loads anything.
    preflight.check_config(FLAGS.config, module)
    _check_workdir_path(FLAGS.workdir)
    result = trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir,
                                        module.make_task if module is not None else make_task)
  except (errors.DataNotFoundError, trainer.WorkdirMismatchError, train_config.ConfigValueError) as error:
    # Expected user errors: the message says what to do; a traceback would only hide it.
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(2)
  except (FloatingPointError, checkpoint.CheckpointReadError) as error:
    # A diverged run or a work directory whose checkpoints cannot be read: the message names the step.
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(1)
  if not result.results.get("complete", True):
    print(f"NOTE: this run is INCOMPLETE ({result.results.get('stopped_early')}); relaunch the same "
          "command to finish it.", flush=True)
  return result


def _check_workdir_path(workdir: str) -> None:
  """Raises ConfigValueError unless ``workdir`` is (or can be made) a writable directory."""
  from ranking_jax.errors import ConfigValueError  # pylint: disable=g-import-not-at-top
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as error:
    raise ConfigValueError(f"--workdir={workdir} cannot be a directory here: {error.strerror or error}.") from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise ConfigValueError(f"--workdir={workdir} is not writable.")


def run(make_task: Union[str, Callable[[Any], Any]]) -> None:
  """``absl.app.run`` of :func:`main` for ``make_task(config) -> Task``, with :func:`parse_flags`.

  ``make_task`` may be the dotted name of a task module (``"ranking_jax.projects.ide_ranknet.
  image_difficulty"``): it is imported only after the flags and the config were checked, so a mistake on
  the command line is reported before jax, flax and tfds are loaded.
  """
  app.run(lambda argv: main(make_task, argv) and None, flags_parser=parse_flags)
