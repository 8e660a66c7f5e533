"""One run on two cores: seconds per PPO iteration of one process at batch B and 2B, and of two
data-parallel processes at 2B ([train] processes = 2).

    .venv/bin/python bench/data_parallel.py [--task tasks/water_maze_fast.toml] [--iterations 40]

Runs `snn-icl sweep TASK --seeds 0 --stop-after N` three times in temporary directories (the
same machine, one after the other, nothing else running), and prints the median of the run's own
``seconds_per_iteration`` (the first 5 iterations left out: the helper's start and the kernels'
first calls) and episodes per second. Not a test: a figure to read (docs/speed.md, "Two cores for
one run").
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNN_ICL = str(Path(sys.executable).with_name("snn-icl"))


def seconds_per_iteration(task: Path, batch: int, processes: int, iterations: int) -> float:
    """Median seconds per iteration of one run (iterations 6..N)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([SNN_ICL, "sweep", str(task), "--seeds", "0", "--workers", "1",
                        "--set", f"train.batch_episodes={batch}",
                        "--set", f"train.processes={processes}",
                        "--stop-after", str(iterations), "--out", str(Path(tmp) / "s")],
                       check=True, capture_output=True, env={**os.environ, "TQDM_DISABLE": "1"})
        rows = list(csv.DictReader(next(Path(tmp).rglob("metrics.csv")).open()))
    return statistics.median(float(r["seconds_per_iteration"]) for r in rows[5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", type=Path, default=ROOT / "tasks" / "water_maze_fast.toml")
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from snn_icl.config import load_task

    batch = load_task(args.task).train.batch_episodes
    print(f"task {args.task.name}, {args.iterations} iterations per run; CPU "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores")
    results = {}
    for b, p in ((batch, 1), (2 * batch, 1), (2 * batch, 2)):
        s = seconds_per_iteration(args.task, b, p, args.iterations)
        results[b, p] = s
        print(f"batch {b:4d}, {p} process{'es' if p > 1 else '  '}: {s:.3f} s per iteration, "
              f"{b / s:6.1f} episodes per s")
    print(f"2 processes at batch {2 * batch} / 1 process at batch {batch}: "
          f"{results[2 * batch, 2] / results[batch, 1]:.2f} x the time per iteration")


if __name__ == "__main__":
    main()
