"""Execute the notebooks on the tiny task (SNN_ICL_SMOKE=1) and check they draw their figures."""

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _execute(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


@pytest.fixture(scope="module")
def executed() -> dict[Path, Future]:
    """Every notebook executed, two at a time (each kernel is its own process, and most of a
    notebook's time is one core's); a notebook's failure is raised by its own test."""
    before = os.environ.get("SNN_ICL_SMOKE")
    os.environ["SNN_ICL_SMOKE"] = "1"  # read by the kernels, which inherit this environment
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = {path: pool.submit(_execute, path) for path in NOTEBOOKS}
        return futures
    finally:
        if before is None:
            os.environ.pop("SNN_ICL_SMOKE")
        else:
            os.environ["SNN_ICL_SMOKE"] = before


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_and_draws(path, executed):
    nb = executed[path].result()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 2, f"{path.name} drew {len(images)} figures"


def test_notebooks_found():
    assert any(p.name == "01_quickstart.ipynb" for p in NOTEBOOKS)
