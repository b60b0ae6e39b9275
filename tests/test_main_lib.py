"""The command-line rules every experiment main follows (experiments/main_lib.py), without subprocesses."""

import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from experiments import main_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

CONFIG = f"--config={REPO}/configs/image_difficulty.py:mse"


def test_misspelt_key_names_the_closest_valid_keys():
  with pytest.raises(main_lib.UsageError, match="unknown config key 'optimizer.lerning_rate'.*learning_rate"):
    main_lib.check_command_line(["prog", CONFIG, "--config.optimizer.lerning_rate=0.1"])
  with pytest.raises(main_lib.UsageError, match="optimizer.learning_rate"):  # listed among the valid keys
    main_lib.check_command_line(["prog", CONFIG, "--config.optimizer.lrr=0.1"])
  # A misspelt group: the closest whole keys, then the top-level names only (short enough for one line).
  with pytest.raises(main_lib.UsageError) as raised:
    main_lib.check_command_line(["prog", CONFIG, "--config.optimzer.learning_rate=0.1"])
  message = str(raised.value)
  assert "did you mean: optimizer.learning_rate" in message and "top-level names" in message
  assert "optimizer." in message and "model.kwargs" not in message and len(message) < 600, message


def test_a_duration_on_the_command_line_replaces_its_twin():
  argv, set_none = main_lib.check_command_line(["prog", CONFIG, "--config.total_steps=20"])
  assert "--config.total_steps=20" in argv and set_none == {"total_epochs": None}
  argv, set_none = main_lib.check_command_line(["prog", CONFIG, "--config.eval_every_epochs=2"])
  assert set_none == {"eval_every_steps": None}


def test_none_unsets_a_field_and_both_units_are_refused():
  argv, set_none = main_lib.check_command_line(["prog", CONFIG, "--config.total_epochs=None",
                                                "--config.total_steps=5"])
  assert "--config.total_epochs=None" not in argv and set_none == {"total_epochs": None}
  with pytest.raises(main_lib.UsageError, match="both given"):
    main_lib.check_command_line(["prog", CONFIG, "--config.total_epochs=1", "--config.total_steps=5"])


def test_bad_config_argument_is_a_usage_error():
  with pytest.raises(main_lib.UsageError, match="unknown variant or modifier 'msee'.*variants"):
    main_lib.check_command_line(["prog", f"--config={REPO}/configs/image_difficulty.py:msee"])
  with pytest.raises(main_lib.UsageError, match="not found"):
    main_lib.check_command_line(["prog", "--config=configs/nope.py"])


def test_parse_flags_prints_one_line_and_exits_2(capsys):
  with pytest.raises(SystemExit) as exit_info:
    main_lib.parse_flags(["prog", CONFIG, "--workdir=/tmp/rj-x", "--config.optimizer.lrr=0.1"])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert "error: unknown config key" in err and "Traceback" not in err



def test_a_value_the_task_cannot_use_is_one_usage_line(tmp_path):
  """A config value of the right type that the task refuses (ConfigValueError) stops before training."""
  import subprocess  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / "run"
  completed = subprocess.run(
      [sys.executable, "-m", "experiments.sketch_retrieval", "--config=configs/sketch_retrieval.py:mtl,smoke",
       f"--workdir={workdir}", "--config.data.flip=sometimes"],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert completed.returncode == 2, completed.stderr[-2000:]
  assert "config.data.flip must be one of" in completed.stderr and "Traceback" not in completed.stderr
  assert not workdir.exists() or not any(workdir.iterdir())  # refused before anything was written


CONFIG_FILES = sorted(p for p in (REPO / "configs").glob("*.py") if p.name != "__init__.py")


def _parse(monkeypatch, argv):
  """``main_lib.parse_flags(argv)`` on the global FLAGS, as a fresh process would (config_flags reads
  sys.argv and defines one flag per overridden key: those of an earlier parse are removed first)."""
  for name in list(main_lib.FLAGS):
    if name.startswith("config."):
      delattr(main_lib.FLAGS, name)
  main_lib.FLAGS.unparse_flags()
  monkeypatch.setattr(sys, "argv", list(argv))
  main_lib.parse_flags(list(argv))
  return main_lib.FLAGS.config


def _twins(config):
  """Every ``(<x>_steps, <x>_epochs)`` pair of keys of ``config``."""
  keys = main_lib._leaf_keys(config)  # pylint: disable=protected-access
  return [(k, k[:-len("_steps")] + "_epochs") for k in keys
          if k.endswith("_steps") and k[:-len("_steps")] + "_epochs" in keys]


def _get(config, dotted):
  for part in dotted.split("."):
    config = config[part]
  return config


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_every_duration_of_every_config_takes_either_unit_on_the_command_line(path, monkeypatch, capsys):
  """The step/epoch twin rule for every duration (a field the config left None used to be untyped): the
  unit given replaces the config's, and the step plan and learning-rate schedule accept the result."""
  from ranking_jax.train import config as config_lib  # pylint: disable=g-import-not-at-top
  from ranking_jax.train import optim  # pylint: disable=g-import-not-at-top
  for arg in ("", ":smoke"):
    twins = _twins(main_lib._load_config_file(f"{path}{arg}"))  # pylint: disable=protected-access
    assert {(f"{d}_steps", f"{d}_epochs") for d in main_lib.DURATIONS} <= set(twins)
    assert ("optimizer.schedule.boundaries_steps", "optimizer.schedule.boundaries_epochs") in twins
    for steps, epochs in twins:
      tuples = isinstance(_get(main_lib._load_config_file(f"{path}{arg}"), steps), tuple)  # pylint: disable=protected-access
      for key, twin, value in ((steps, epochs, (5,) if tuples else 50), (epochs, steps, (2.5,) if tuples else 2.5)):
        try:
          config = _parse(monkeypatch, ["prog", f"--config={path}{arg}", "--workdir=/tmp/rj-unused",
                                        f"--config.{key}={value}"])
        except SystemExit:
          pytest.fail(f"{path.name}{arg} --config.{key}={value}: {capsys.readouterr().err}")
        assert _get(config, key) == value and _get(config, twin) in (None, ()), (path, arg, key)
        if config.get("batch_size") is not None and config.get("optimizer") is not None:
          config_lib.plan_steps(config, num_train_examples=100 * int(config.batch_size))
          optim.learning_rate_schedule(config.optimizer, steps_per_epoch=100, total_steps=1000)


def _untyped_none_fields(config, prefix=""):
  from ml_collections import config_dict  # pylint: disable=g-import-not-at-top
  for key in config.keys():
    value = config[key]
    if isinstance(value, config_dict.ConfigDict):
      yield from _untyped_none_fields(value, f"{prefix}{key}.")
    elif value is None and not isinstance(config._fields[key], config_dict.FieldReference):  # pylint: disable=protected-access
      yield prefix + key


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_no_config_field_is_an_untyped_none(path):
  """A None field without a declared type cannot be set from the command line at all."""
  for arg in (None, "smoke"):
    config = main_lib._load_config_file(f"{path}:{arg}" if arg else str(path))  # pylint: disable=protected-access
    assert not list(_untyped_none_fields(config)), (path.name, arg)


def test_a_workdir_that_cannot_be_a_directory_is_a_usage_error(tmp_path):
  from ranking_jax.errors import ConfigValueError  # pylint: disable=g-import-not-at-top
  a_file = tmp_path / "afile"
  a_file.write_text("")
  with pytest.raises(ConfigValueError, match="cannot be a directory"):
    main_lib._check_workdir_path(str(a_file))  # pylint: disable=protected-access
  with pytest.raises(ConfigValueError, match="cannot be a directory"):
    main_lib._check_workdir_path(str(a_file / "below"))  # pylint: disable=protected-access
  main_lib._check_workdir_path(str(tmp_path / "new" / "run"))  # pylint: disable=protected-access
  assert (tmp_path / "new" / "run").is_dir()
