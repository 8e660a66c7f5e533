"""The transformer's acting loop (one env step at a time, key/value cache): the per-layer
torch.cat + torch.stack of the autograd path against the one-buffer path the rollout takes under
no_grad, same run, same weights, same observations.

    .venv/bin/python bench/transformer_acting.py [--batch 64] [--repeats 3] [--threads 1]

Prints the median seconds to act through one whole episode (the default task's transformer,
episode_steps env steps, ``--batch`` episodes) for each path, their ratio, and whether the two
gave the same actions (they must: the test suite checks it exactly). Not a test: a figure to read.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from snn_icl.config import load_task, make_agent


def episode(agent, obs: torch.Tensor, grad: bool) -> tuple[float, torch.Tensor]:
    """Seconds to act through obs [T, B, obs_dim], and the policy means [T, B, 2]."""
    state = agent.initial_state(obs.shape[1])
    means = []
    t0 = time.perf_counter()
    with torch.set_grad_enabled(grad):
        for x in obs:
            out = agent.act(x, state)
            state = out.state
            means.append(out.policy.mean)
    return time.perf_counter() - t0, torch.stack(means)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="tasks/water_maze_transformer.toml")
    parser.add_argument("--batch", type=int, default=64, help="episodes acting at once")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = load_task(args.task)
    agent = make_agent(task).requires_grad_(False)  # autograd on, but no graph: only the copies differ
    obs = torch.rand(task.env.episode_steps, args.batch, task.env.obs_dim,
                     generator=torch.Generator().manual_seed(0))
    times: dict[bool, list[float]] = {True: [], False: []}
    means = {}
    for _ in range(args.repeats + 1):  # interleaved, so both see the same machine
        for grad in (True, False):
            seconds, means[grad] = episode(agent, obs, grad)
            times[grad].append(seconds)
    stacked, buffered = (statistics.median(times[g][1:]) for g in (True, False))
    same = torch.equal(means[True], means[False])
    print(f"{args.batch} episodes x {task.env.episode_steps} env steps, {args.threads} thread(s): "
          f"cat+stack {stacked:.3f} s, one buffer {buffered:.3f} s per episode "
          f"({stacked / buffered:.2f}x; {1e3 * buffered / task.env.episode_steps:.2f} ms per env "
          f"step); same actions: {same}")


if __name__ == "__main__":
    main()
