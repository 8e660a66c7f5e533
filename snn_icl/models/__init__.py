"""Agents: the LSNN (spiking, adaptive thresholds) and the LSTM baseline (the transformer comes later).

All follow :class:`snn_icl.models.agent.Agent`; :func:`build_agent` makes one from the ``[agent]``
table of a task file.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def build_agent(obs_dim: int, agent_cfg: Any) -> nn.Module:
    """Build the agent named by ``agent_cfg.kind`` for observations of size ``obs_dim``."""
    if agent_cfg.kind == "lsnn":
        from snn_icl.models.lsnn_agent import LSNNAgent

        return LSNNAgent.from_config(obs_dim, agent_cfg)
    if agent_cfg.kind == "lstm":
        from snn_icl.models.lstm import LSTMAgent

        return LSTMAgent.from_config(obs_dim, agent_cfg)
    raise ValueError(f"unknown agent kind {agent_cfg.kind!r}")
