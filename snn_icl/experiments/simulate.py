"""Build an agent and an env from a task, and run recorded episodes with frozen weights."""

from __future__ import annotations

from typing import Any

from torch import nn

from snn_icl.config import ProtocolConfig, TaskConfig
from snn_icl.models import frozen, past_trained_length
from snn_icl.episodes.rollout import rollout_batches

SIMULATED_TRIALS = 6
"""Trials a protocol's simulated episodes are sized for (dark inter-trial delays lengthen the
episode by one delay per trial after the first, as in the evaluation)."""


def protocol_episodes(task: TaskConfig, protocol: ProtocolConfig | None
                      ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The env config, the env's reset options and the record (for ``simulation.json``) of a
    protocol's episodes. dmp and reference episodes hold a probe only where ``probe_trial`` is
    set in the protocol (evaluation runs the probe separately)."""
    if protocol is None:
        protocol = task.protocol
    kwargs = protocol.reset_kwargs(task)
    if protocol.name in ("dmp", "reference") and protocol.probe_trial is not None:
        kwargs.update(probe_trial=protocol.probe_trial, probe_steps=protocol.probe_steps)
    record = protocol.settings(task.env, probe_trial=kwargs.get("probe_trial"))
    record["probe_trial"] = kwargs.get("probe_trial")  # also where the protocol has no such key
    return protocol.env(task.env, SIMULATED_TRIALS - 1), kwargs, record


def simulate(task: TaskConfig, agent: nn.Module, episodes: int, seed: int, *,
             batch: int = 16, record: bool = True, deterministic: bool = False,
             progress: bool = True, env: Any = None, **reset_kwargs: Any) -> Any:
    """Run ``episodes`` recorded episodes in batches of at most ``batch``: an
    :class:`~snn_icl.episodes.record.EpisodeRecord`, the same seed giving the same episodes.
    ``env`` (default the task's) and ``reset_kwargs``: a protocol's episodes
    (:func:`protocol_episodes`)."""
    frozen(agent)
    env = task.env if env is None else env
    with past_trained_length(agent, env.episode_steps > task.env.episode_steps):
        return rollout_batches(agent, env, episodes, seed, batch=batch, progress=progress,
                               desc="simulate", record=record, deterministic=deterministic,
                               **reset_kwargs)
