"""Every `python -m experiments.<main> ...` command printed in the READMEs and docs parses (a dry run).

Experiment mains: the config file, its argument and every ``--config.*`` override are checked by
``main_lib.check_command_line`` (what a launch checks first). Other entry points: the module exists and the
command's flags are ones it defines.
"""

import ast
import glob
import importlib
import pathlib
import re
import shlex
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DOCS = sorted({*glob.glob(str(REPO / "*.md")), *glob.glob(str(REPO / "docs" / "*.md")),
               *glob.glob(str(REPO / "ranking_jax" / "**" / "README.md"), recursive=True),
               *glob.glob(str(REPO / "ranking_jax" / "projects" / "**" / "*.md"), recursive=True),
               *glob.glob(str(REPO / "configs" / "*.py")), *glob.glob(str(REPO / "experiments" / "*.py"))})


def _commands():
  found = []
  for path in DOCS:
    text = open(path, encoding="utf-8").read()
    if path.endswith(".py"):  # a module's docstring, not its code
      text = ast.get_docstring(ast.parse(text)) or ""
    text = text.replace("\\\n", " ")
    for match in re.finditer(r"python -m (experiments\.\w+)([^`\n|]*)", text):
      command = match.group(0).strip().rstrip(")").strip()
      if any(mark in command for mark in ("<", "...", "GLOB", "$")):
        continue  # a template, not a command
      found.append((pathlib.Path(path).relative_to(REPO).as_posix(), command))
  return found


COMMANDS = _commands()


def test_the_docs_print_commands():
  mains = {c.split()[2] for _, c in COMMANDS}
  assert {"experiments.sorter", "experiments.tables", "experiments.image_difficulty"} <= mains, mains


@pytest.mark.parametrize("where,command", COMMANDS, ids=[f"{w}:{i}" for i, (w, _) in enumerate(COMMANDS)])
def test_command_parses(where, command, monkeypatch):
  monkeypatch.chdir(REPO)
  argv = shlex.split(command.split("#")[0])[2:]
  module_name, args = argv[0], argv[1:]
  assert (REPO / (module_name.replace(".", "/") + ".py")).exists(), f"{where}: no {module_name}"
  if any(a.startswith("--config=") for a in args):
    from experiments import main_lib  # pylint: disable=g-import-not-at-top
    main_lib.check_command_line([module_name] + args)  # raises UsageError on a bad key or argument
    return
  source = (REPO / (module_name.replace(".", "/") + ".py")).read_text()
  for arg in args:
    if arg.startswith("--") and arg not in ("--help", "--helpfull"):  # absl defines these
      flag = arg[2:].split("=")[0]
      flag = flag[2:] if flag.startswith("no") and f'"{flag[2:]}"' in source else flag
      assert f'"{flag}"' in source, f"{where}: {module_name} defines no --{flag}"
