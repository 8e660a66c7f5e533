from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "tasks"


@pytest.fixture(autouse=True)
def _two_threads():
    # CI has 2 cores; keep every test on them and leave the global RNG as we found it.
    torch.set_num_threads(2)
    with torch.random.fork_rng(devices=[]):
        yield


@pytest.fixture
def tiny_task_path() -> Path:
    return TASKS / "water_maze_tiny.toml"


@pytest.fixture
def tiny_task(tiny_task_path):
    from snn_icl.config import load_task

    return load_task(tiny_task_path)
