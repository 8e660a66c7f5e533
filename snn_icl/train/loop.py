"""The iteration loop every trainer shares (PPO and the supervised one): threads, learning-rate
and adaptation schedules, counters, wall time, progress bar and the per-iteration callback."""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from tqdm.auto import tqdm


def run_iterations(task: Any, state: Any, step: Callable[[Any], Any],
                   measure: Callable[[Any, Any], dict[str, float]],
                   postfix: Callable[[dict[str, float]], dict[str, str]], *,
                   on_iteration: Callable[[Any, dict[str, float]], None] | None = None,
                   stop_after: int | None = None, progress: bool = True) -> Any:
    """Run iterations until ``task.train.iterations`` (or ``stop_after`` more) are done.

    Per iteration: set Adam's learning rate to ``task.train.lr_at(iteration)`` (and an LSNN's
    ``beta`` to its share ``task.train.beta_scale_at(iteration)`` with a ramp), ``step(state)``
    (the learning step; its time is the run's ``wall_time_s``), count the iteration and its
    ``batch_episodes``, ``measure(state, step's result)`` -> metrics (after the counters, outside
    ``wall_time_s``), add ``lr``, ``iteration``, ``episodes``, ``wall_time_s`` and
    ``seconds_per_iteration``, show ``postfix(metrics)`` on the bar, then
    ``on_iteration(state, metrics)``.
    """
    torch.set_num_threads(task.train.threads)
    total = task.train.iterations
    end = total if stop_after is None else min(total, state.iteration + stop_after)
    with tqdm(total=total, initial=state.iteration, desc="train", unit="it", disable=not progress,
              dynamic_ncols=True) as bar:  # closed (its line ended) on an error too
        while state.iteration < end:
            start = time.perf_counter()
            lr = task.train.lr_at(state.iteration)
            for group in state.optimizer.param_groups:
                group["lr"] = lr
            if task.train.beta_ramp_iterations:  # the LSNN's adaptation brought in slowly
                state.agent.net.set_beta(task.agent.beta * task.train.beta_scale_at(state.iteration))
            result = step(state)
            state.iteration += 1
            state.episodes += task.train.batch_episodes
            state.wall_time_s += time.perf_counter() - start
            metrics = measure(state, result)
            metrics.update(lr=lr, iteration=state.iteration, episodes=state.episodes,
                           wall_time_s=state.wall_time_s,
                           seconds_per_iteration=time.perf_counter() - start)
            bar.set_postfix(**postfix(metrics), refresh=False)
            bar.update(1)
            if on_iteration is not None:
                on_iteration(state, metrics)
    if task.train.beta_ramp_iterations:  # as a checkpoint loads it: the task's own beta
        state.agent.net.set_beta(task.agent.beta)
    return state
