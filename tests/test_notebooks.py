"""Every notebook's code cells run top to bottom against the installed library, tiny, from any directory."""

import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch, tmp_path):
  # Not the repository root: the notebooks must find configs/ themselves (Jupyter starts in notebooks/).
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv("RANKING_JAX_NOTEBOOK_SMOKE", "1")  # each notebook's tiny sizes
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
