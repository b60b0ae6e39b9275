"""The one-way data flow: the library never imports configs/ or experiments/; one trainer loop."""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _imports(path):
  tree = ast.parse(path.read_text())
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.module


def test_library_never_imports_configs_or_experiments():
  offenders = {str(p.relative_to(REPO)): name for p in (REPO / "ranking_jax").rglob("*.py")
               for name in _imports(p) if name.split(".")[0] in ("configs", "experiments")}
  assert not offenders, offenders


def test_one_training_loop_and_one_orbax_manager():
  # Only the trainer steps an optimizer in a loop and only train/checkpoint.py talks to Orbax.
  loops = [p.name for p in (REPO / "ranking_jax").rglob("*.py")
           if "optax.apply_updates(" in p.read_text()]
  assert loops == ["parallel.py"], loops  # the one train step, driven by trainer.train_and_evaluate
  orbax = sorted(p.name for p in (REPO / "ranking_jax").rglob("*.py")
                 if any(name.startswith("orbax") for name in _imports(p)))
  assert orbax == ["checkpoint.py"], orbax


def test_one_command_line_style():
  # Every entry point parses its command line with absl flags (unknown flags fail), none with argparse.
  mains = [p for p in (REPO / "experiments").glob("*.py") if "__main__" in p.read_text()]
  assert len(mains) >= 10, mains
  uses_absl = lambda p: ("main_lib.run(" in p.read_text()  # main_lib: absl + config_flags, locked
                         or any(n.split(".")[0] == "absl" for n in _imports(p)))
  offenders = sorted(p.name for p in mains if "argparse" in set(_imports(p)) or not uses_absl(p))
  assert not offenders, offenders
