"""Held-out evaluation of the shipped LSNN at two torch threads: the compiled kernels' BLAS at one
thread (the default, ``numba_kernels.BLAS_THREADS``) against two.

    .venv/bin/python bench/eval_threads.py [--episodes 256] [--repeats 2]

An evaluation alternates one short kernel call per env step (5 ms of network time) with torch
ops. OpenBLAS's threads and torch's OpenMP threads both wait for work by spinning, so with two of
each on two cores they take the cores from each other; one BLAS thread avoids it. Prints the
median seconds of each setting (interleaved, so both share the machine's load) and their ratio,
and checks that both give the same numbers. Run it on an otherwise idle machine. Not a test: a
figure to read (here, 2 cores: 10.2 s with one BLAS thread, 45.6 s with two, 4.5x).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from snn_icl.experiments.evaluate import evaluate
from snn_icl.neurons.kernels import numba_kernels
from snn_icl.storage.checkpoint import load_agent, resolve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=256, help="held-out episodes")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (median reported)")
    parser.add_argument("--seed", type=int, default=5, help="evaluation seed")
    args = parser.parse_args()

    torch.set_num_threads(2)
    agent, task, _ = load_agent(resolve("pretrained"))
    evaluate(agent, task, 8, args.seed, progress=False)  # compiles or loads the kernels
    times: dict[int, list[float]] = {1: [], 2: []}
    probes: dict[int, float] = {}
    for _ in range(args.repeats):
        for blas in (1, 2):
            numba_kernels.BLAS_THREADS = blas
            start = time.perf_counter()
            result = evaluate(agent, task, args.episodes, args.seed, progress=False)
            times[blas].append(time.perf_counter() - start)
            probes[blas] = result["probe_target_quadrant_fraction"]
    numba_kernels.BLAS_THREADS = 1
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"evaluate, {args.episodes} episodes, 2 torch threads:")
    print(f"  kernel BLAS 1 thread  {one:7.2f} s")
    print(f"  kernel BLAS 2 threads {two:7.2f} s")
    print(f"ratio 2 / 1 = {two / one:.2f}; same probe: {probes[1] == probes[2]}")


if __name__ == "__main__":
    main()
