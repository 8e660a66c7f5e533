import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "tasks"


@pytest.fixture(autouse=True)
def _two_threads():
    # CI has 2 cores: one thread per pytest-xdist worker (`make test` runs two), two without
    # xdist; and leave the global RNG as we found it.
    torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)
    with torch.random.fork_rng(devices=[]):
        yield


@pytest.fixture
def tiny_task_path() -> Path:
    return TASKS / "water_maze_tiny.toml"


@pytest.fixture
def tiny_task(tiny_task_path):
    from snn_icl.config import load_task

    return load_task(tiny_task_path)


def signal_when(args: list[str], ready: Callable[[], bool], signum: int | Sequence[int], *,
                alone: bool = False) -> tuple[int, str]:
    """Run the installed ``snn-icl ARGS``, send it ``signum`` once ``ready()`` (polled; it must
    come within 90 s and before the command ends), and return its exit code and stderr (it must
    end within 60 s of the signal). Several signals are sent in order, 1 s apart. ``alone``: in a
    session of its own, so that the signal reaches that process and not its workers. A command
    that does not end is asked for its stacks (SIGUSR1, every process of its group when
    ``alone``) and the test fails with them."""
    import signal

    proc = subprocess.Popen([str(Path(sys.executable).with_name("snn-icl")), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=alone)
    signals = [signum] if isinstance(signum, int) else list(signum)
    try:
        deadline = time.monotonic() + 90
        while not ready():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        for i, sig in enumerate(signals):
            time.sleep(1.0 if i else 0.0)
            proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            if alone:
                os.killpg(proc.pid, signal.SIGUSR1)
            else:
                proc.send_signal(signal.SIGUSR1)
            time.sleep(3)
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"snn-icl {' '.join(args)} did not end within 60 s of "
                                 f"{signals[-1]!r}; its stacks:\n{err}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err
