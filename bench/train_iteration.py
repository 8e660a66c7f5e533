"""Seconds per PPO iteration on the default task, split into collection and update.

    .venv/bin/python bench/train_iteration.py [--task tasks/water_maze.toml] [--iterations 3]
    .venv/bin/python bench/train_iteration.py --device cuda --batches 64,256,1024,4096

Prints, per agent kind (and per batch size with ``--batches``), the median over iterations
(after one warm-up) of: collecting batch_episodes whole episodes (closed loop, no gradient), and
the PPO update (epochs x minibatches forward+backward passes through whole episodes), and the
training episodes per second. ``--device cuda`` runs on a GPU (the LSNN on its torch-ops path);
a batch that does not fit in the GPU's memory is reported and ends that kind's list (the largest
batch that fits is the last one printed). Not a test: a figure to read.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from snn_icl.config import load_task, make_agent, replace, resolve_device
from snn_icl.train.ppo import collect, new_state, ppo_update


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(task, iterations: int, device: torch.device) -> tuple[float, float]:
    state = new_state(task, make_agent(task).to(device))
    coll, upd = [], []
    for i in range(iterations + 1):
        _sync(device)
        t0 = time.perf_counter()
        batch = collect(state, task)
        _sync(device)
        t1 = time.perf_counter()
        ppo_update(state, batch, task)
        _sync(device)
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
    parser.add_argument("--device", default="cpu", help="cpu or cuda (or cuda:N)")
    parser.add_argument("--batches", default=None,
                        help="comma-separated batch sizes (episodes per iteration), increasing; "
                        "default: the task's batch_episodes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    task = load_task(args.task)
    batches = ([task.train.batch_episodes] if args.batches is None
               else [int(b) for b in args.batches.split(",")])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"task {task.name}: {task.env.episode_steps} env steps per episode, {task.train.epochs} "
          f"epochs x {task.train.minibatches} minibatches, {args.threads} threads, device {name}")
    print(f"{'agent':<28}{'batch':>7}{'collect s':>10}{'update s':>10}{'s/iter':>9}{'ep/s':>9}")
    for kind in args.kinds.split(","):
        for size in batches:
            t = replace(task, agent={"kind": kind}, train={"batch_episodes": size})
            label = kind if kind != "lsnn" else f"lsnn {t.agent.n} neurons, {t.agent.ms_per_step} ms/step"
            try:
                c, u = measure(t, args.iterations, device)
            except torch.OutOfMemoryError:
                print(f"{label:<28}{size:>7}  does not fit in the device's memory")
                torch.cuda.empty_cache()
                break
            print(f"{label:<28}{size:>7}{c:>10.2f}{u:>10.2f}{c + u:>9.2f}{size / (c + u):>9.1f}")


if __name__ == "__main__":
    main()
