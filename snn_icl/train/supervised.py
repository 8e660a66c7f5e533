"""Supervised meta-learning on in-context task families (snn_icl.envs.family).

One iteration: draw ``batch_episodes`` fresh tasks of the family (each a sequence ending in a
query), run the predictor over the whole sequence, take one Adam step on the family's loss at
the query (learning rate ``train.lr_at(iteration)``, global gradient-norm clip
``max_grad_norm``, L2 ``weight_decay``). The weights are meta-learnt across tasks; what a single
task needs must be inferred from its context at test time, with the weights frozen.

Reproducible and resumable like PPO (:mod:`snn_icl.train.ppo`, whose :class:`TrainState` this
shares): the tasks of iteration i come from a generator seeded with
``env_seed(seed, i, training=True)``, evaluation tasks from odd seeds, so no evaluation task is a
training task, and a resumed run draws what the uninterrupted one would have.

Devices: the tasks are drawn on the CPU (CPU generators) and then moved to the model's device
(``[train] device``), so a seed draws the same tasks on every device.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from tqdm.auto import tqdm

from snn_icl.config import TaskConfig
from snn_icl.envs.family import supervised, to_device
from snn_icl.episodes.rollout import env_seed
from snn_icl.models.agent import module_device
from snn_icl.train.errors import NonFiniteError
from snn_icl.train.ppo import TrainState, _check_finite

TRACK_SEED = 7_777_777
"""Evaluation seed of the held-out checks logged during training (``train.track_every``)."""


def step(task: TaskConfig, state: TrainState) -> dict[str, float]:
    """One iteration (see the module docstring); returns its metrics."""
    family = supervised(task.env)
    gen = torch.Generator().manual_seed(env_seed(task.seed, state.iteration, training=True))
    tokens, batch = family.training_batch(task.env, task.train.batch_episodes, gen,
                                           state.iteration)
    device = module_device(state.agent)
    tokens, batch = tokens.to(device), to_device(batch, device)
    state.agent.train()
    pred = state.agent(tokens)
    loss = family.loss(pred, batch)
    _check_finite("loss", loss.detach(), state.iteration)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(state.agent.parameters(), task.train.max_grad_norm)
    _check_finite("gradient norm", grad_norm, state.iteration)
    state.optimizer.step()
    for p in state.agent.parameters():
        if not bool(torch.isfinite(p).all()):
            raise NonFiniteError(f"non-finite weights after iteration {state.iteration + 1}: "
                                 "training stopped")
    return {"loss": float(loss.detach()), "grad_norm": float(grad_norm),
            **family.metrics(pred.detach(), batch)}


def train(task: TaskConfig, state: TrainState, *,
          on_iteration: Callable[[TrainState, dict[str, float]], None] | None = None,
          stop_after: int | None = None, progress: bool = True) -> TrainState:
    """Iterations until ``task.train.iterations`` (or ``stop_after`` more) are done; the same
    contract as :func:`snn_icl.train.ppo.train`."""
    family = supervised(task.env)
    if family is None:
        raise ValueError(f"{task.name}: the water maze trains with PPO, not the supervised trainer")
    torch.set_num_threads(task.train.threads)
    total = task.train.iterations
    end = total if stop_after is None else min(total, state.iteration + stop_after)
    every = task.train.track_every
    with tqdm(total=total, initial=state.iteration, desc="train", unit="it", disable=not progress,
              dynamic_ncols=True) as bar:
        while state.iteration < end:
            start = time.perf_counter()
            lr = task.train.lr_at(state.iteration)
            for group in state.optimizer.param_groups:
                group["lr"] = lr
            metrics = step(task, state)
            state.iteration += 1
            state.episodes += task.train.batch_episodes
            state.wall_time_s += time.perf_counter() - start
            if every and family.track is not None and (state.iteration % every == 0
                                                       or state.iteration == 1):
                metrics.update(family.track(task.env, state.agent, TRACK_SEED))
            metrics.update(lr=lr, iteration=state.iteration, episodes=state.episodes,
                           wall_time_s=state.wall_time_s,
                           seconds_per_iteration=time.perf_counter() - start)
            bar.set_postfix(loss=f"{metrics['loss']:.4g}", refresh=False)
            bar.update(1)
            if on_iteration is not None:
                on_iteration(state, metrics)
    return state
