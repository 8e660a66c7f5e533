"""Training throughput of a sweep on this machine: one run alone against two runs on two workers.

    .venv/bin/python bench/sweep_throughput.py [--task tasks/water_maze.toml] [--iterations 30]

Runs `snn-icl sweep TASK --seeds 0 --workers 1` and then `--seeds 0-1 --workers 2`, each for
``--iterations`` PPO iterations per run (``--stop-after``), in temporary directories, and prints
training episodes per hour for both and their ratio (the same command, the same machine, one
after the other). Wall time includes each worker's start (imports, loading the compiled kernels).
Not a test: a figure to read.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNN_ICL = str(Path(sys.executable).with_name("snn-icl"))


def episodes_per_hour(task: Path, seeds: str, workers: int, iterations: int) -> tuple[float, float]:
    """(episodes per hour, wall seconds) of one sweep."""
    sys.path.insert(0, str(ROOT))
    from snn_icl.config import load_task

    batch = load_task(task).train.batch_episodes
    runs = len(range(int(seeds.split("-")[0]), int(seeds.split("-")[-1]) + 1))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([SNN_ICL, "sweep", str(task), "--seeds", seeds, "--workers", str(workers),
                        "--stop-after", str(iterations), "--out", str(Path(tmp) / "sweep")],
                       check=True, capture_output=True, env={**os.environ, "TQDM_DISABLE": "1"})
        wall = time.perf_counter() - start
    return runs * iterations * batch / wall * 3600, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", type=Path, default=ROOT / "tasks" / "water_maze.toml")
    parser.add_argument("--iterations", type=int, default=30)
    args = parser.parse_args()
    print(f"task {args.task.name}, {args.iterations} iterations per run; CPU "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores")
    one, t1 = episodes_per_hour(args.task, "0", 1, args.iterations)
    print(f"1 run, 1 worker:   {one:9.0f} episodes/hour ({t1:.1f} s)")
    two, t2 = episodes_per_hour(args.task, "0-1", 2, args.iterations)
    print(f"2 runs, 2 workers: {two:9.0f} episodes/hour ({t2:.1f} s)")
    print(f"ratio 2 workers / 1 run = {two / one:.2f}")


if __name__ == "__main__":
    main()
