"""Execute the notebooks on the tiny task (SNN_ICL_SMOKE=1) and check they draw their figures."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_and_draws(path, monkeypatch):
    monkeypatch.setenv("SNN_ICL_SMOKE", "1")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 2, f"{path.name} drew {len(images)} figures"


def test_notebooks_found():
    assert any(p.name == "01_quickstart.ipynb" for p in NOTEBOOKS)
