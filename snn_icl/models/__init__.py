"""Agents: the LSNN (spiking, adaptive thresholds) and the LSTM and transformer baselines.

All follow :class:`snn_icl.models.agent.Agent`; :func:`build_agent` makes one from the ``[agent]``
table of a task file.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def build_agent(obs_dim: int, agent_cfg: Any, max_steps: int | None = None) -> nn.Module:
    """Build the agent named by ``agent_cfg.kind`` for observations of size ``obs_dim``.

    ``max_steps`` is the episode length in env steps (``task.env.episode_steps``); the transformer
    needs it (its position-embedding table), the other agents ignore it.
    """
    if agent_cfg.kind == "lsnn":
        from snn_icl.models.lsnn_agent import LSNNAgent

        return LSNNAgent.from_config(obs_dim, agent_cfg)
    if agent_cfg.kind == "lstm":
        from snn_icl.models.lstm import LSTMAgent

        return LSTMAgent.from_config(obs_dim, agent_cfg)
    if agent_cfg.kind == "transformer":
        from snn_icl.models.transformer import TransformerAgent

        if max_steps is None:
            raise ValueError("the transformer agent needs max_steps, the episode length "
                             "(task.env.episode_steps), for its position embedding")
        return TransformerAgent.from_config(obs_dim, agent_cfg, max_steps)
    raise ValueError(f"unknown agent kind {agent_cfg.kind!r}")
