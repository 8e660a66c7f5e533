"""The episode record: what a batch of closed-loop water-maze episodes leaves behind.

One typed record travels from the rollout to every measure, figure and file, instead of a dict
of strings. Time-major like the rollout: ``T`` env steps, ``B`` episodes, ``k`` ms per env step
(spiking agents), ``n`` neurons. Lengths in pool radii, times in env steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import Tensor

_EPISODE_AXIS0 = ("platform", "cued")
"""Fields whose episode axis is 0 (every other field is time-major, episodes on axis 1)."""


@dataclass
class EpisodeRecord:
    """B whole episodes. Index 0 of the ``[T+1, ...]`` fields is the state right after reset."""

    position: Tensor
    """[T+1, B, 2] agent position (pool radii)."""
    trial: Tensor
    """[T+1, B] 0-based trial index; the trial that ends at step t is ``trial[t]``."""
    on_platform: Tensor
    """[T+1, B] bool: in contact with the (present) platform."""
    release: Tensor
    """[T+1, B, 2] release point of the current trial (pool radii)."""
    platform: Tensor
    """[B, 2] the episode's first platform centre (pool radii)."""
    reward: Tensor
    """[T, B] reward of each step (1 on reaching the platform, plus any training dwell reward)."""
    trial_end: Tensor
    """[T, B] bool: a trial ended at this step (platform reached or timed out)."""
    escaped: Tensor
    """[T, B] bool: the trial that ended here reached the platform (not a time-out)."""
    latency: Tensor
    """[T, B] swim steps of the trial that ended here (read where ``trial_end``)."""
    action: Tensor
    """[T, B, 2] swim velocity taken (action units)."""
    platform_t: Tensor | None = None
    """[T+1, B, 2] the platform centre in force at each position index (pool radii): after a
    reversal or ``move_platform`` the new one, from the index at which its trial starts. The
    rollouts always fill it; a record without it (hand-built, or saved by an older version) has
    one platform per episode: :meth:`platforms`."""
    obs: Tensor | None = None
    """[T, B, obs_dim] observations acted on."""
    cued: Tensor | None = None
    """[B] bool: the platform was visible in this episode (envs with the cue channel only)."""
    dark: Tensor | None = None
    """[T, B] bool: the observation acted on at step t was a dark delay's (all zeros but a
    recall cue, actions ignored; the rollouts fill it)."""
    action_mean: Tensor | None = None
    """[T, B, 2] policy mean (agent policies only)."""
    value: Tensor | None = None
    """[T, B] value estimate (agent policies only)."""
    log_prob: Tensor | None = None
    """[T, B] log-density of the action taken (agent policies only)."""
    net_input: Tensor | None = None
    """[T, B, ...] what the network consumed (replayed by ``evaluate_sequence`` in training)."""
    z: Tensor | None = None
    """[T*k, B, n] bool spikes per 1-ms step (spiking agents, recorded)."""
    A: Tensor | None = None
    """[T*k, B, n] adaptive thresholds per 1-ms step (spiking agents, recorded)."""

    @property
    def episodes(self) -> int:
        """B, the number of episodes."""
        return self.platform.shape[0]

    @property
    def steps(self) -> int:
        """T, env steps per episode."""
        return self.action.shape[0]

    def platforms(self) -> Tensor:
        """[T+1, B, 2] the platform in force at each position index: ``platform_t``, or the
        episode's one ``platform`` where the record has no ``platform_t``."""
        if self.platform_t is not None:
            return self.platform_t
        return self.platform[None].expand(self.position.shape[0], -1, -1)

    def tensors(self) -> dict[str, Tensor]:
        """The fields that are set, by name (for saving: :meth:`from_tensors` reads them back)."""
        return {f.name: v for f in dataclasses.fields(self)
                if (v := getattr(self, f.name)) is not None}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> "EpisodeRecord":
        """A record from :meth:`tensors` output (e.g. a saved simulation); unknown names are an
        error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(tensors) - names)
        if unknown:
            raise ValueError(f"not fields of an episode record: {', '.join(unknown)}")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and f.name not in tensors)
        if missing:
            raise ValueError(f"an episode record needs {', '.join(missing)}")
        return cls(**tensors)

    def without(self, *names: str) -> "EpisodeRecord":
        """A copy with the optional fields ``names`` dropped (e.g. training-only tensors)."""
        return dataclasses.replace(self, **{n: None for n in names})

    def to(self, device: torch.device | str) -> "EpisodeRecord":
        """The record with every tensor on ``device`` (the same record where all are there)."""
        device = torch.device(device)
        if all(v.device == device for v in self.tensors().values()):
            return self
        return dataclasses.replace(self, **{name: v.to(device)
                                            for name, v in self.tensors().items()})

    def select(self, episodes: Any) -> "EpisodeRecord":
        """The episodes ``episodes`` (an index, slice or index tensor) as a record."""
        if isinstance(episodes, int):
            episodes = slice(episodes, episodes + 1)
        return dataclasses.replace(self, **{
            name: (v[episodes] if name in _EPISODE_AXIS0 else v[:, episodes])
            for name, v in self.tensors().items()})

    @classmethod
    def cat(cls, records: Iterable["EpisodeRecord"]) -> "EpisodeRecord":
        """Records of the same episode length joined along the episode axis."""
        records = list(records)
        names = records[0].tensors().keys()
        return cls(**{name: torch.cat([getattr(r, name) for r in records],
                                      dim=0 if name in _EPISODE_AXIS0 else 1)
                      for name in names})
