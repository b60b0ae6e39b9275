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


def _module_name(path):
  parts = list(path.relative_to(REPO).with_suffix("").parts)
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph():
  """``{module: {imported ranking_jax modules}}`` over every module of the package, lazy imports included.

  ``from pkg import name`` points at ``pkg.name`` when that is a module, else at ``pkg``.
  """
  files = {_module_name(p): p for p in (REPO / "ranking_jax").rglob("*.py")}
  graph = {}
  for name, path in files.items():
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative import
          base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
      else:
        continue
      edges.update(t for t in targets if t in files and t != name)
    graph[name] = edges
  return graph


def test_core_never_imports_a_project_and_projects_stay_apart():
  graph = _import_graph()
  project_of = lambda m: m.split(".")[2] if m.startswith("ranking_jax.projects.") else None
  core_to_project = {m: sorted(t for t in ts if project_of(t)) for m, ts in graph.items()
                     if not m.startswith("ranking_jax.projects")}
  assert not {m: ts for m, ts in core_to_project.items() if ts}, core_to_project
  across = {m: sorted(t for t in ts if project_of(t) and project_of(t) != project_of(m))
            for m, ts in graph.items() if project_of(m)}
  assert not {m: ts for m, ts in across.items() if ts}, across


def _cycles(graph):
  """Every back edge of a depth-first walk, as the cycle it closes (``[a, b, ..., a]``)."""
  visiting, done, cycles = set(), set(), []

  def visit(module, stack):
    visiting.add(module)
    stack.append(module)
    for target in sorted(graph.get(module, ())):
      if target in visiting:
        cycles.append(stack[stack.index(target):] + [target])
      elif target not in done:
        visit(target, stack)
    stack.pop()
    visiting.discard(module)
    done.add(module)

  for module in sorted(graph):
    if module not in done:
      visit(module, [])
  return cycles


def test_import_graph_has_no_cycle():
  graph = _import_graph()
  # The top-level package re-exports its submodules; edges into it would be cycles by construction.
  graph = {m: {t for t in ts if t != "ranking_jax"} for m, ts in graph.items()}
  cycles = _cycles(graph)
  assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_checks_see_what_they_look_for():
  # The checks above would pass vacuously if the graph missed edges or the walk missed cycles.
  graph = _import_graph()
  assert "ranking_jax.models.registry" in graph["ranking_jax.projects.class_rectification.deepid2"]
  assert "ranking_jax.projects.sodeep.sodeep_map" in graph["ranking_jax.projects.sodeep.sodeep_recall"]
  # the cycle this layout removed: models/__init__ -> data.teacher_student -> models.registry -> models
  assert _cycles({"models": {"teacher_student"}, "teacher_student": {"registry"}, "registry": {"models"}})
  assert not _cycles({"a": {"b"}, "b": {"c"}, "c": set()})
