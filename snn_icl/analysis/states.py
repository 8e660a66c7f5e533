"""Agent state components, rollout hooks that record or perturb them, and batched episode runs.

Every analysis reads or edits the recurrent state through the named *components* each agent
kind declares (``agent.components``, read with ``agent.get_component`` and written with
``agent.with_component`` / ``agent.zero_component``), e.g.

    lsnn         a, v, z, r (the ALIF state, each [B, n]) and zeta (filtered spikes [B, n])
    lstm         h, c ([B, H])
    transformer  kv (the key/value cache [n_layer, B, nh, C, hs] with its ``start`` mask)

Hooks follow :func:`snn_icl.episodes.rollout.rollout`'s ``hook(state, info) -> state`` contract: they run
after every env step on the state the next step acts from, for all B episodes at once.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from snn_icl.episodes.rollout import rollout_batches

Hook = Callable[[Any, dict[str, Any]], Any]


def set_rows(agent: Any, state: Any, name: str, rows: Tensor, values: Tensor) -> Any:
    """A copy of ``state`` whose component ``name`` is ``values`` [m, ...] in episodes ``rows`` [m]."""
    new = agent.get_component(state, name).clone()
    new[rows] = values.to(new)
    return agent.with_component(state, name, new)


class Recorder:
    """Hook that keeps components of the state at every env step: :meth:`stacked` gives
    ``{name: [T, B, ...]}`` (the state after acting on observation t)."""

    def __init__(self, agent: Any, names: tuple[str, ...]) -> None:
        self.agent, self.names = agent, names
        self.steps: dict[str, list[Tensor]] = {name: [] for name in names}

    def __call__(self, state: Any, info: dict[str, Any]) -> Any:
        for name in self.names:
            self.steps[name].append(self.agent.get_component(state, name).clone())
        return state

    def stacked(self) -> dict[str, Tensor]:
        return {name: torch.stack(values) for name, values in self.steps.items()}


class Capture:
    """Hook that keeps each episode's state components at the start of trial ``trial`` (0-based),
    the donors of a swap. ``values[name]`` is [B, ...]; for "kv" the cache of every layer is kept
    right-aligned in ``k``/``v`` [n_layer, B, nh, capacity, hs] with its visible length ``length``
    [B] (episodes start trial ``trial`` at different steps, so caches differ in length);
    ``capacity`` is the most tokens a cache can hold (context window - 1, at most the episode
    length)."""

    def __init__(self, agent: Any, names: tuple[str, ...], trial: int = 1,
                 capacity: int = 0) -> None:
        if "kv" in names and capacity < 1:
            raise ValueError(f"capturing the cache 'kv' needs a capacity >= 1, got {capacity!r}")
        self.agent, self.names, self.trial, self.capacity = agent, names, trial, capacity
        self.values: dict[str, Tensor] = {}
        self.captured: Tensor | None = None
        self.k = self.v = self.length = None

    def __call__(self, state: Any, info: dict[str, Any]) -> Any:
        starts = info["new_trial"] & (info["trial"] == self.trial)
        if self.captured is None:
            self.captured = torch.zeros_like(starts)
        if not bool(starts.any()):
            return state
        rows = starts.nonzero().squeeze(1)
        self.captured[rows] = True
        for name in self.names:
            if name == "kv":
                self._capture_cache(state, rows)
                continue
            value = self.agent.get_component(state, name)
            if name not in self.values:
                self.values[name] = torch.zeros_like(value)
            self.values[name][rows] = value[rows]
        return state

    def _capture_cache(self, state: Any, rows: Tensor) -> None:
        n_layer, batch, nh, cached, hs = state.k.shape
        if self.k is None:
            self.k = state.k.new_zeros(n_layer, batch, nh, self.capacity, hs)
            self.v = self.k.clone()
            self.length = torch.zeros(batch, dtype=torch.long)
        if cached > self.k.shape[3]:
            raise ValueError(f"cache of {cached} tokens exceeds the capture capacity {self.k.shape[3]}")
        visible = (state.t - state.start[rows]).clamp(min=0, max=cached).cpu()
        self.k[:, rows] = 0
        self.v[:, rows] = 0
        self.k[:, rows, :, self.k.shape[3] - cached:] = state.k[:, rows]
        self.v[:, rows, :, self.v.shape[3] - cached:] = state.v[:, rows]
        self.length[rows.cpu()] = visible


def install_cache(state: Any, rows: Tensor, k: Tensor, v: Tensor, length: Tensor) -> Any:
    """Replace the memory of episodes ``rows`` [m] by donor caches: ``k``/``v``
    [n_layer, m, nh, L, hs] right-aligned, of which the last ``length`` [m] tokens are visible.

    The cache is left-padded to a common length; the donor tokens keep their own content (and so
    their own position embeddings) and only ``start`` decides what each episode may attend to.
    The other episodes keep exactly the tokens they could see before.
    """
    n_layer, batch, nh, cached, hs = state.k.shape
    t = state.t
    new_len = max(cached, int(length.max()) if len(length) else 0)
    pad = new_len - cached
    ks = torch.cat([state.k.new_zeros(n_layer, batch, nh, pad, hs), state.k], dim=3)
    vs = torch.cat([state.v.new_zeros(n_layer, batch, nh, pad, hs), state.v], dim=3)
    ks[:, rows] = 0
    vs[:, rows] = 0
    take = min(new_len, k.shape[3])
    ks[:, rows, :, new_len - take:] = k[:, :, :, k.shape[3] - take:].to(ks)
    vs[:, rows, :, new_len - take:] = v[:, :, :, v.shape[3] - take:].to(vs)
    # others: the padded slots (steps t - new_len .. t - cached - 1) must stay invisible
    start = torch.maximum(state.start, torch.full_like(state.start, t - cached))
    start[rows] = t - length.to(start)
    return state._replace(k=ks, v=vs, start=start)


def cache_capacity(agent: nn.Module, task: Any) -> int:
    """Most tokens the agent's cache holds in an episode of the task (0: not a transformer)."""
    window = getattr(agent, "context_window", None)
    return 0 if window is None else max(1, min(window - 1, task.env.episode_steps))


def chain(*hooks: Hook | None) -> Hook | None:
    """One hook running ``hooks`` in order (None entries skipped); None when all are None."""
    hooks = tuple(h for h in hooks if h is not None)
    if not hooks:
        return None

    def run(state: Any, info: dict[str, Any]) -> Any:
        for h in hooks:
            state = h(state, info)
        return state

    return run


def run_batches(agent: nn.Module, task: Any, episodes: int, seed: int, *, batch: int = 64,
                hook_for: Callable[[int, int], Hook | None] | None = None,
                **kwargs: Any) -> dict[str, Tensor]:
    """``episodes`` episodes as :func:`snn_icl.episodes.rollout.rollout_batches` runs them (same env seeds
    and noise generator, so the same episodes for every agent and condition), with a hook made
    per batch by ``hook_for(batch_index, batch_size)``. Acts with the policy mean when the task's
    evaluation is deterministic. Returns the rollout tensors concatenated over episodes (``obs``
    kept, ``net_input`` dropped)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes!r}")

    def per_batch(i: int, size: int) -> dict[str, Any]:
        return {"hook": hook_for(i, size) if hook_for is not None else None}

    return rollout_batches(agent, task.env, episodes, seed, batch=batch, drop=("net_input",),
                           batch_kwargs=per_batch, deterministic=task.eval.deterministic, **kwargs)
