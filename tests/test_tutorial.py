"""docs/tutorial.ipynb: built by scripts/build_tutorial.py, committed executed, and it runs.

The run executes the committed cells with ``TRIPLETREC_TUTORIAL_QUICK=1`` (one epoch per
model) in a fresh ``python3`` kernel, which must be this interpreter's environment.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"
BUILDER = ROOT / "scripts" / "build_tutorial.py"
#: Seconds one cell may take in the quick run (the whole run takes well under a minute).
QUICK_CELL_TIMEOUT = 120
#: The committed notebook stays small enough to read in a browser and to diff.
MAX_BYTES = 2_000_000


def _builder():
    spec = importlib.util.spec_from_file_location("build_tutorial", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _committed() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _text(cell: nbformat.NotebookNode) -> str:
    """The printed and displayed text of a cell's outputs."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "text/plain" in output.get("data", {}):
            parts.append(output.data["text/plain"])
    return "\n".join(parts)


def test_committed_cells_are_what_the_script_builds():
    built = _builder().build_notebook()
    committed = _committed()
    assert [(c.cell_type, c.id, c.source) for c in committed.cells] == [
        (c.cell_type, c.id, c.source) for c in built.cells
    ], "docs/tutorial.ipynb is stale: run python scripts/build_tutorial.py --execute"


def test_committed_notebook_is_executed_without_errors():
    notebook = _committed()
    nbformat.validate(notebook)
    assert NOTEBOOK.stat().st_size < MAX_BYTES
    cells = _code_cells(notebook)
    # executed top to bottom in one kernel, every cell showing something
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    for cell in cells:
        assert cell.outputs, f"no output: {cell.source.splitlines()[0]}"
        for output in cell.outputs:
            assert output.output_type != "error", f"{output.ename}: {output.evalue}"
            assert output.get("name") != "stderr", f"stderr output: {output.text[:200]}"
    plots = [o for c in cells for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(plots) >= 5
    # at full settings, not the quick ones
    assert "quick: False" in _text(cells[0])


def _metric(text: str, pattern: str) -> tuple[float, ...]:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in {text!r}"
    return tuple(float(group) for group in match.groups())


@pytest.mark.slow
def test_tutorial_runs_quick(monkeypatch, tmp_path):
    monkeypatch.setenv("TRIPLETREC_TUTORIAL_QUICK", "1")
    notebook = _committed()
    for cell in _code_cells(notebook):
        cell.outputs, cell.execution_count = [], None
    # first, which Python the kernel runs: it must be this environment's
    notebook.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=QUICK_CELL_TIMEOUT,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    cells = _code_cells(notebook)
    assert _text(cells[0]).strip() == sys.prefix
    assert "quick: True" in _text(cells[1])
    texts = "\n".join(_text(cell) for cell in cells)
    untrained, trained = _metric(texts, r"AUC: untrained ([\d.]+) -> trained ([\d.]+)")
    assert abs(untrained - 0.5) < 0.05
    assert trained > untrained + 0.1  # one epoch of the notebook's model already ranks
