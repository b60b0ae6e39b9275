"""Every notebook's code cells run top to bottom against the installed library (CPU, small sizes)."""

import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch):
  monkeypatch.chdir(path.parent.parent)  # notebooks import configs/ from the repository root
  cells = json.loads(path.read_text())["cells"]
  namespace = {"__name__": "__notebook__"}
  for number, cell in enumerate(cells):
    if cell["cell_type"] != "code":
      continue
    source = "".join(cell["source"])
    try:
      exec(compile(source, f"{path.name}[cell {number}]", "exec"), namespace)  # pylint: disable=exec-used
    except Exception as e:
      raise AssertionError(f"{path.name}, code cell {number} failed: {e!r}\n{source}") from e
