"""Build an agent and an env from a task, and run recorded episodes with frozen weights."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from snn_icl.config import TaskConfig
from snn_icl.models import build_agent
from snn_icl.episodes.rollout import rollout_batches


def make_agent(task: TaskConfig, seed: int | None = None) -> nn.Module:
    """The task's agent with weights initialised from ``seed`` (default: the task's seed).

    The global torch RNG is forked so building an agent never disturbs other random streams.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(task.seed if seed is None else seed)
        agent = build_agent(task.env.obs_dim, task.agent, max_steps=task.env.episode_steps)
    return agent


def frozen(agent: nn.Module) -> nn.Module:
    """Put ``agent`` in eval mode with gradients off (its weights cannot change)."""
    agent.eval()
    for p in agent.parameters():
        p.requires_grad_(False)
    return agent


def simulate(task: TaskConfig, agent: nn.Module, episodes: int, seed: int, *,
             batch: int = 16, record: bool = True, deterministic: bool = False,
             progress: bool = True) -> dict[str, Any]:
    """Run ``episodes`` recorded episodes in batches of at most ``batch``.

    Returns the stacked rollout tensors (episode axis concatenated, see
    :func:`snn_icl.episodes.rollout.rollout`) with the same seed giving the same episodes.
    """
    frozen(agent)
    return rollout_batches(agent, task.env, episodes, seed, batch=batch, progress=progress,
                           desc="simulate", record=record, deterministic=deterministic)
