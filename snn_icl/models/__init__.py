"""Agents: the LSNN (spiking, adaptive thresholds) and the LSTM and transformer baselines.

Every kind follows :class:`snn_icl.models.agent.Agent` and registers itself with
:func:`~snn_icl.models.agent.register_agent`; :func:`build_agent` makes one from the ``[agent]``
table of a task file. A new kind is one module here, imported below.

The supervised in-context tasks (snn_icl.envs.family) use sequence predictors instead
(:mod:`snn_icl.models.predictor`: LSA, softmax transformer, LSTM, LSNN), in a registry of their own.
"""

from snn_icl.models import lsnn_agent, lstm, transformer  # noqa: F401  (registers the kinds)
from snn_icl.models import lsa, seq_recurrent, seq_transformer  # noqa: F401  (predictor kinds)
from snn_icl.models.agent import (Ablation, Agent, AnalysisView, agent_class, agent_kinds,
                                  build_agent, frozen, past_trained_length, register_agent,
                                  weights_sha256)
from snn_icl.models.lsnn_agent import LSNNAgent, LSNNConfig
from snn_icl.models.lstm import LSTMAgent, LSTMConfig
from snn_icl.models.transformer import TransformerAgent, TransformerConfig
from snn_icl.models.predictor import build_predictor, predictor_class, predictor_kinds

__all__ = ["Ablation", "Agent", "AnalysisView", "agent_class", "agent_kinds", "build_agent",
           "frozen", "past_trained_length", "register_agent", "weights_sha256", "LSNNAgent", "LSNNConfig", "LSTMAgent",
           "LSTMConfig", "TransformerAgent", "TransformerConfig", "build_predictor", "predictor_class", "predictor_kinds"]
