"""Build an agent and an env from a task, and run recorded episodes with frozen weights."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from snn_icl.config import TaskConfig
from snn_icl.models import frozen
from snn_icl.episodes.rollout import rollout_batches


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
