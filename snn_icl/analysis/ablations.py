"""Causal tests with frozen weights: reset or swap parts of the agent state at trial starts.

If the platform memory lives in a state component, zeroing it at every trial start should undo
the one-shot improvement (latency of trials 2-4 back to a search), and — the decisive test —
giving an episode the component of ANOTHER episode at the start of trial 2 should send the agent
towards the other episode's platform.

The swap pairs episodes (0, 1), (2, 3), ... of a batch. Episodes start trial 2 at different steps,
so the donor is what the partner held at the start of ITS trial 2 (after finding its platform or
being placed on it), recorded in an intact run of the same episodes (same seeds: the runs agree
step for step up to the swap). Headings are read over the first ``n_steps`` swim steps of trial 2:
the cosine between the displacement and the direction from the release point to each platform.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from snn_icl.analysis.states import Capture, cache_capacity, chain, install_cache, run_batches, \
    set_rows
from snn_icl.models.agent import Ablation, zero_rows
from snn_icl.episodes.measures import behaviour, first_zone
from snn_icl.episodes.record import EpisodeRecord

SWAP_TRIAL = 1
"""0-based index of the trial at whose start states are swapped (trial 2)."""


Condition = Ablation
"""The manipulations each agent kind declares (``agent.ablations``)."""


def partners(size: int) -> Tensor:
    """Partner of each episode of a batch [size]: 0<->1, 2<->3, ...; an odd last one is its own."""
    idx = torch.arange(size)
    partner = idx ^ 1
    return torch.where(partner < size, partner, idx)


def batch_partners(episodes: int, batch: int) -> tuple[list[int], Tensor]:
    """The batch sizes of ``episodes`` run ``batch`` at a time, and each episode's partner
    [episodes] (pairs within a batch, :func:`partners`), indexed over all episodes."""
    sizes = [min(batch, episodes - i) for i in range(0, episodes, batch)]
    return sizes, torch.cat([partners(s) + sum(sizes[:i]) for i, s in enumerate(sizes)])


def reset_hook(agent: Any, names: tuple[str, ...], trial: int | None = None) -> Any:
    """Hook zeroing ``names`` in the episodes that start a trial at this step (only trial
    ``trial``, 0-based, when given: e.g. at the end of a dark delay before trial 2)."""

    def hook(state: Any, info: dict[str, Any]) -> Any:
        starts = info["new_trial"] if trial is None else info["new_trial"] & (info["trial"] == trial)
        rows = starts.nonzero().squeeze(1)
        return zero_rows(agent, state, names, rows) if len(rows) else state

    return hook


def swap_hook(agent: Any, names: tuple[str, ...], donors: Capture, partner: Tensor,
              trial: int = SWAP_TRIAL) -> Any:
    """Hook giving each episode, when it starts trial ``trial``, its partner's components as
    captured (by ``donors``) at the partner's own start of that trial."""

    def hook(state: Any, info: dict[str, Any]) -> Any:
        starts = info["new_trial"] & (info["trial"] == trial)
        rows = starts.nonzero().squeeze(1)
        if not len(rows):
            return state
        src = partner.to(rows.device)[rows]
        if donors.captured is None or not bool(donors.captured[src].all()):
            raise RuntimeError("a swap donor was not captured: the runs diverged before trial "
                               f"{trial + 1} started")
        for name in names:
            if name == "kv":
                s = src.to(donors.k.device)
                state = install_cache(state, rows, donors.k[:, s], donors.v[:, s], donors.length[s])
            else:
                state = set_rows(agent, state, name, rows, donors.values[name][src])
        return state

    return hook


def trial_starts(trial: Tensor, index: int) -> tuple[Tensor, Tensor, Tensor]:
    """First and last position index of trial ``index`` in each episode, from ``trial`` [T+1, B]:
    (first [B], last [B], present [B] bool)."""
    is_k = trial == index
    present = is_k.any(0)
    first = is_k.to(torch.uint8).argmax(0)
    last = trial.shape[0] - 1 - is_k.flip(0).to(torch.uint8).argmax(0)
    return first, last, present


def heading(position: Tensor, trial: Tensor, own: Tensor, other: Tensor, *, index: int = SWAP_TRIAL,
            n_steps: int = 5) -> dict[str, Tensor]:
    """Where the first swim steps of trial ``index`` go.

    Args:
        position: [T+1, B, 2] positions (pool radii); trial: [T+1, B] trial index.
        own, other: [B, 2] the episode's platform and the partner's.
        n_steps: displacement over at most this many env steps (cut at the trial's end).

    Returns [B] tensors: ``cos_own``, ``cos_other`` (cosine between the displacement and the
    direction release -> platform), ``closer_to_other`` (the end point is nearer the other
    platform) and ``valid`` (the trial exists and the agent moved).
    """
    first, last, present = trial_starts(trial, index)
    end = torch.minimum(first + n_steps, last)
    b = torch.arange(position.shape[1])
    p0, p1 = position[first, b], position[end, b]
    disp = p1 - p0

    def cos(target: Tensor) -> Tensor:
        to = target.to(disp) - p0
        return (disp * to).sum(-1) / (disp.norm(dim=-1) * to.norm(dim=-1)).clamp(min=1e-12)

    moved = disp.norm(dim=-1) > 1e-9
    closer = (p1 - other.to(p1)).norm(dim=-1) < (p1 - own.to(p1)).norm(dim=-1)
    return {"cos_own": cos(own), "cos_other": cos(other), "closer_to_other": closer,
            "valid": present & moved & (end > first)}


def behaviour_numbers(sim: EpisodeRecord, env: Any, partner: Tensor,
                      n_steps: int = 5) -> dict[str, Any]:
    """Latency and trial-2 heading numbers of one condition (see the module docstring).

    Both platforms usually lie inwards from the release point, so the cosines to both are high;
    ``toward_other_fraction`` (the first steps point more towards the partner's platform than
    towards the own one) and ``closer_to_other_fraction`` (they end nearer to it) separate them.

    ``other_zone_first_fraction`` (:func:`~snn_icl.episodes.measures.first_zone`): of the trial-2
    searches that come near either platform, the share reaching the partner's first (0.5: no
    memory of either place); unlike the heading it does not depend on the first steps pointing
    anywhere.

    ``partner`` [B] indexes each episode's partner; episodes that are their own partner are left
    out of the heading and zone numbers."""
    b = behaviour(sim, env, 4)
    h = heading(sim.position, sim.trial, sim.platform, sim.platform[partner],
                n_steps=n_steps)
    ok = h["valid"] & (partner != torch.arange(len(partner)))
    mean = lambda x: float(x[ok].double().mean()) if ok.any() else None  # noqa: E731
    other_first, decided = first_zone(sim, env, SWAP_TRIAL, sim.platform, sim.platform[partner])
    decided = decided & (partner != torch.arange(len(partner)))
    return {
        "latency_trial1": b["latency_by_trial"][0],
        "latency_trial2": b["latency_by_trial"][1],
        "latency_trials2_4": b["latency_trials2_4"],
        "success_trials1_4": b["success_by_trial"],
        "goals_per_episode": b["goals_per_episode"],
        "heading_cos_own": mean(h["cos_own"]),
        "heading_cos_other": mean(h["cos_other"]),
        "toward_other_fraction": mean(h["cos_other"] > h["cos_own"]),
        "closer_to_other_fraction": mean(h["closer_to_other"]),
        "heading_episodes": int(ok.sum()),
        "other_zone_first_fraction": (float(other_first[decided].double().mean())
                                      if decided.any() else None),
        "zone_first_episodes": int(decided.sum()),
    }


def run_ablations(agent: nn.Module, task: Any, episodes: int, seed: int, *, batch: int = 64,
                  n_steps: int = 5, conditions: list[Condition] | None = None,
                  progress: bool = False) -> tuple[dict[str, Any], dict[str, dict[str, Tensor]]]:
    """Every condition of the agent's kind on the same held-out episodes.

    Returns (numbers by condition name — see :func:`behaviour_numbers` — and the rollouts by
    condition name, for figures). Weights are never changed (beta = 0 runs on a copy).
    """
    kind = agent.kind
    conditions = list(agent.ablations) if conditions is None else conditions
    swap_names = tuple(sorted({n for c in conditions for n in c.swap}))
    capacity = cache_capacity(agent, task)
    sizes, partner = batch_partners(episodes, batch)
    donors = [Capture(agent, swap_names, SWAP_TRIAL, capacity) for _ in sizes]
    results, sims = {}, {}
    ordered = sorted(conditions, key=lambda c: c.name != "intact")  # donors come from intact
    for cond in tqdm(ordered, desc=f"{kind} ablations", disable=not progress, leave=False):
        if cond.name != "intact" and swap_names and "intact" not in sims:
            raise ValueError("swap conditions need the 'intact' condition (it records the donors)")
        if cond.beta_zero and not hasattr(agent, "without_adaptation"):
            raise ValueError(f"beta = 0 applies to spiking agents only, not {kind!r}")
        actor = agent.without_adaptation() if cond.beta_zero else agent

        def hook_for(i: int, size: int, cond: Condition = cond) -> Any:
            return chain(donors[i] if cond.name == "intact" and swap_names else None,
                         reset_hook(agent, cond.reset) if cond.reset else None,
                         swap_hook(agent, cond.swap, donors[i], partners(size)) if cond.swap else None)

        sim = run_batches(actor, task, episodes, seed, batch=batch, hook_for=hook_for,
                          reset_memory_each_trial=cond.no_memory)
        sims[cond.name] = sim
        results[cond.name] = {"description": cond.description,
                              **behaviour_numbers(sim, task.env, partner, n_steps)}
    return results, sims
