"""The transformer's replay in a PPO update: explicit attention (weights kept, as acting and the
analyses use it) against torch's fused attention (what training uses), same run, same weights.

    .venv/bin/python bench/transformer_attention.py [--batch 32] [--repeats 6] [--threads 1]

Prints the median seconds of one forward+backward through whole episodes (the default task's
transformer, episode_steps tokens, ``--batch`` episodes) for each, their ratio, and the largest
difference of the two outputs. Not a test: a figure to read.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from snn_icl.config import load_task, make_agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="tasks/water_maze_transformer.toml")
    parser.add_argument("--batch", type=int, default=32, help="episodes (the update's minibatch)")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = load_task(args.task)
    agent = make_agent(task)
    x = torch.randn(task.env.episode_steps, args.batch, task.env.obs_dim,
                    generator=torch.Generator().manual_seed(0))
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeats + 1):  # interleaved, so both see the same machine
        for weights in (True, False):
            t0 = time.perf_counter()
            features, _, _ = agent(x, None, weights=weights)
            features.sum().backward()
            times[weights].append(time.perf_counter() - t0)
    explicit, fused = (statistics.median(times[w][1:]) for w in (True, False))
    with torch.no_grad():
        diff = (agent(x, None, weights=True)[0] - agent(x, None, weights=False)[0]).abs().max()
    print(f"{args.batch} episodes x {task.env.episode_steps} tokens, {args.threads} thread(s): "
          f"explicit {explicit:.3f} s, fused {fused:.3f} s per forward+backward "
          f"({explicit / fused:.2f}x); largest output difference {float(diff):.1e}")


if __name__ == "__main__":
    main()
