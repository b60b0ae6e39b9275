"""Every config: imports only ml_collections and configs/base, parses its variants, has a smoke variant."""

import ast
import importlib
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CONFIG_FILES = sorted(p for p in (REPO / "configs").glob("*.py") if p.name != "__init__.py")
ALLOWED = {"__future__", "ast", "math", "typing", "ml_collections", "ml_collections.config_dict", "configs",
           "configs.base"}


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_config_imports_only_ml_collections_and_base(path):
  tree = ast.parse(path.read_text())
  imported = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      imported |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
      imported.add(node.module)
  assert imported <= ALLOWED, f"{path.name} imports {sorted(imported - ALLOWED)}"


@pytest.mark.parametrize("path", [p for p in CONFIG_FILES if p.name != "base.py"], ids=lambda p: p.name)
def test_every_variant_parses_and_has_a_smoke_version(path):
  module = importlib.import_module(f"configs.{path.stem}")
  variants = getattr(module, "VARIANTS")
  for variant in variants:
    config = module.get_config(variant)
    assert config.variant == variant
    smoke = module.get_config(f"{variant},smoke")
    assert smoke.total_steps is not None and smoke.total_steps <= 300
    for stem in ("total", "log_every", "eval_every", "checkpoint_every"):
      # One unit per duration: the trainer refuses a config that sets both.
      assert config.get(f"{stem}_steps") is None or config.get(f"{stem}_epochs") is None, stem
  with pytest.raises(ValueError, match="variant"):
    module.get_config("no_such_variant")


def test_base_holds_no_paper_names():
  from configs import base  # pylint: disable=g-import-not-at-top
  config = base.get_base_config()
  assert config.multitask.main is None and config.multitask.auxiliary is None
  assert dict(config.multitask.weights) == {}
