"""Supervised meta-learning on in-context task families (snn_icl.envs.family).

One iteration: draw ``batch_episodes`` fresh tasks of the family (each a sequence ending in a
query), run the predictor over the whole sequence, take one Adam step on the family's loss at
the query (learning rate ``train.lr_at(iteration)``, global gradient-norm clip
``max_grad_norm``, L2 ``weight_decay``; for a spiking predictor the firing rates are logged as
``rate_hz`` and ``rate_reg`` holds them near ``target_rate_hz``; with ``store_loss`` a decoder
of the context's least-squares weights from the store after the last example adds its error,
logged as ``store_error``). The weights are meta-learnt
across tasks; what a single task needs must be inferred from its context at test time, with the
weights frozen.

Reproducible and resumable like PPO (:mod:`snn_icl.train.ppo`, whose :class:`TrainState` this
shares): the tasks of iteration i come from a generator seeded with
``env_seed(seed, i, training=True)``, evaluation tasks from odd seeds, so no evaluation task is a
training task, and a resumed run draws what the uninterrupted one would have.

Devices: the tasks are drawn on the CPU (CPU generators) and then moved to the model's device
(``[train] device``), so a seed draws the same tasks on every device.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from snn_icl.config import TaskConfig
from snn_icl.envs.family import supervised, to_device
from snn_icl.episodes.rollout import env_seed
from snn_icl.models.agent import module_device
from snn_icl.train.errors import NonFiniteError
from snn_icl.train.loop import run_iterations
from snn_icl.train.ppo import TrainState, _check_finite, rate_penalty

TRACK_SEED = 7_777_777
"""Evaluation seed of the held-out checks logged during training (``train.track_every``)."""


def step(task: TaskConfig, state: TrainState) -> dict[str, float]:
    """One iteration (see the module docstring); returns its metrics."""
    family = supervised(task.env)
    gen = torch.Generator().manual_seed(env_seed(task.seed, state.iteration, training=True))
    tokens, batch = family.training_batch(task.env, task.train.batch_episodes, gen,
                                           state.iteration, state.curriculum)
    device = module_device(state.agent)
    tokens, batch = tokens.to(device), to_device(batch, device)
    state.agent.train()
    extra: dict[str, float] = {}
    store = None
    if task.train.store_loss > 0:  # config checks: the predictor has a store, the family a target
        pred, rate, store = state.agent.forward_with_store(tokens)
    elif hasattr(state.agent, "forward_and_rate"):  # spiking: rates logged, held by rate_reg
        pred, rate = state.agent.forward_and_rate(tokens)
    else:
        pred, rate = state.agent(tokens), None
    if rate is not None:
        extra["rate_hz"] = float(rate.detach().mean()) * 1e3
    task_loss = loss = family.loss(pred, batch)
    if rate is not None and task.train.rate_reg > 0:
        loss = loss + rate_penalty(rate, task.train)
    if store is not None:
        error = store_error(state.agent, store, family.store_target(batch))
        extra["store_error"] = float(error.detach())
        loss = loss + task.train.store_loss * error
    _check_finite("loss", loss.detach(), state.iteration)
    state.optimizer.zero_grad(set_to_none=True)
    if loss.requires_grad:
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(state.agent.parameters(),
                                                   task.train.max_grad_norm)
        _check_finite("gradient norm", grad_norm, state.iteration)
        state.optimizer.step()
    else:  # nothing in the weights reaches the prediction (the LSA without context: 0)
        grad_norm = torch.zeros(())
    for p in state.agent.parameters():
        if not bool(torch.isfinite(p).all()):
            raise NonFiniteError(f"non-finite weights after iteration {state.iteration + 1}: "
                                 "training stopped")
    if state.curriculum is not None:  # paced by this batch's loss, before any penalty
        state.curriculum = family.curriculum.update(task.env, state.curriculum,
                                                    float(task_loss.detach()))
    return {"loss": float(loss.detach()), "grad_norm": float(grad_norm),
            **family.metrics(pred.detach(), batch), **extra}


def store_error(agent: torch.nn.Module, store: Tensor, target: Tensor) -> Tensor:
    """``0.5 x`` the squared error of the store decoder's read-out of ``store`` [B, n] against
    ``target`` [B, f], averaged over tasks and coordinates (the auxiliary ``store_loss``)."""
    return 0.5 * (agent.store_head(store) - target.to(store.dtype)).pow(2).mean()


def train(task: TaskConfig, state: TrainState, *,
          on_iteration: Callable[[TrainState, dict[str, float]], None] | None = None,
          stop_after: int | None = None, progress: bool = True) -> TrainState:
    """Iterations until ``task.train.iterations`` (or ``stop_after`` more) are done; the same
    contract as :func:`snn_icl.train.ppo.train`."""
    family = supervised(task.env)
    if family is None:
        raise ValueError(f"{task.name}: the water maze trains with PPO, not the supervised trainer")
    every = task.train.track_every
    if state.curriculum is None and family.curriculum is not None:  # a fresh run (a resumed
        state.curriculum = family.curriculum.start(task.env)       # one restored its own)

    def measure(s: TrainState, metrics: dict[str, float]) -> dict[str, float]:
        if every and family.track is not None and (s.iteration % every == 0 or s.iteration == 1):
            metrics.update(family.track(task.env, s.agent, TRACK_SEED))
        return metrics

    return run_iterations(task, state, lambda s: step(task, s), measure,
                          lambda m: {"loss": f"{m['loss']:.4g}"}, on_iteration=on_iteration,
                          stop_after=stop_after, progress=progress)
