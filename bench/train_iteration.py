"""Seconds per PPO iteration on the default task, split into collection and update.

    .venv/bin/python bench/train_iteration.py [--task tasks/water_maze.toml] [--iterations 3]

Prints, per agent kind, the median over iterations (after one warm-up) of: collecting
batch_episodes whole episodes (closed loop, no gradient), and the PPO update (epochs x
minibatches forward+backward passes through whole episodes). Not a test: a figure to read.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from snn_icl.config import load_task, replace
from snn_icl.config import make_agent
from snn_icl.train.ppo import collect, new_state, ppo_update


def measure(task, iterations: int) -> tuple[float, float]:
    state = new_state(task, make_agent(task))
    coll, upd = [], []
    for i in range(iterations + 1):
        t0 = time.perf_counter()
        batch = collect(state, task)
        t1 = time.perf_counter()
        ppo_update(state, batch, task)
        t2 = time.perf_counter()
        state.iteration += 1
        if i:  # the first iteration warms up allocators and caches
            coll.append(t1 - t0)
            upd.append(t2 - t1)
    return statistics.median(coll), statistics.median(upd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="tasks/water_maze.toml")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kinds", default="lsnn,lstm,transformer",
                        help="comma-separated agent kinds, measured in this order")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = load_task(args.task)
    print(f"task {task.name}: {task.train.batch_episodes} episodes x {task.env.episode_steps} env steps, "
          f"{task.train.epochs} epochs x {task.train.minibatches} minibatches, {args.threads} threads")
    print(f"{'agent':<28}{'collect s':>10}{'update s':>10}{'s/iter':>9}{'iter/h':>9}")
    for kind in args.kinds.split(","):
        extra = {}
        t = replace(task, agent={"kind": kind, **extra})
        c, u = measure(t, args.iterations)
        label = kind if kind != "lsnn" else f"lsnn {t.agent.n} neurons, {t.agent.ms_per_step} ms/step"
        print(f"{label:<28}{c:>10.2f}{u:>10.2f}{c + u:>9.2f}{3600 / (c + u):>9.0f}")


if __name__ == "__main__":
    main()
