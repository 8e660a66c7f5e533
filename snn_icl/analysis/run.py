"""Where the memory lives: every analysis of this package on one or more frozen agents.

:func:`analyze_agent` records held-out episodes (intact agent), decodes the platform from each
state variable, runs the reset/swap ablations, computes spatial information and, for the
transformer, attention retrieval. :func:`snn_icl.experiments.analyze.analyze` does it for several checkpoints
on the same episodes and writes ``analysis.json`` and the figures (``snn-icl analyze``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from snn_icl.analysis import ablations, attention, decoding, place_fields
from snn_icl.analysis.states import Recorder, run_batches
from snn_icl.models import weights_sha256
from snn_icl.models import frozen

REPLAY_CHUNK = 64
"""Episodes per attention replay (bounds the memory of the [B, nh, T, T] attention maps)."""


def collect(agent: nn.Module, task: Any, episodes: int, seed: int, *,
            batch: int = 64) -> dict[str, Any]:
    """Intact held-out episodes with the agent's internals.

    Returns ``sim`` (rollout tensors, time-major), ``variables`` ({name: [T, B, d]}, the state
    after acting on observation t; "input" is the observation itself, the baseline every state
    variable is read against), ``activity`` ([T, B, N] per env step: spike counts of spiking
    agents, otherwise rectified unit activity), ``groups`` ({group name: unit indices}), ``unit``
    and, for agents with attention (a ``replay`` method), ``shares``
    (:func:`snn_icl.analysis.attention.episode_shares`). What each agent kind exposes comes from
    the agent (``decoded``, ``analysis_view``).
    """
    recorders: list[Recorder] = []

    def hook_for(i: int, size: int) -> Recorder | None:
        recorders.append(Recorder(agent, agent.decoded))
        return recorders[-1] if agent.decoded else None

    sim = run_batches(agent, task, episodes, seed, batch=batch, hook_for=hook_for,
                      record=agent.spiking)
    states = {}
    if agent.decoded:
        parts = [r.stacked() for r in recorders]
        states = {k: torch.cat([p[k] for p in parts], dim=1) for k in parts[0]}
    view = agent.analysis_view(sim, states)
    out: dict[str, Any] = {"sim": sim, "variables": {"input": sim.obs, **view.variables},
                           "activity": view.activity, "groups": view.groups, "unit": view.unit,
                           "min_activity": view.min_activity}
    if hasattr(agent, "replay"):
        B = sim.obs.shape[1]
        chunks = [_shares_chunk(agent, sim, lo, min(lo + REPLAY_CHUNK, B))
                  for lo in range(0, B, REPLAY_CHUNK)]
        out["shares"] = {key: torch.cat([c[key] for c in chunks], dim=0 if key != "observed" else 1)
                         for key in ("observed", "expected", "queries")}
    return out


def _shares_chunk(agent: nn.Module, sim: Any, lo: int, hi: int) -> dict[str, Tensor]:
    """Attention retrieval shares of episodes lo..hi-1 (a replay of them)."""
    rep = agent.replay(sim.obs[:, lo:hi])
    trial, onp = sim.trial[:-1, lo:hi], sim.on_platform[:-1, lo:hi]
    return attention.episode_shares(rep["attention"], trial, onp, agent.context_window)


def time_bins(episode_steps: int) -> Tensor:
    """Edges of the time-since-first-visit bins (env steps): about 20 bins of width T/20, from
    4 bins before the first visit."""
    w = max(2, round(episode_steps / 20))
    return torch.arange(-4 * w, episode_steps - 4 * w + 1, w).double()


def release_labels(trial: Tensor) -> Tensor:
    """[T, B] label 0 at the first observation of every trial after the first (the agent at its
    release point on the wall, where position says nothing about the platform), else -1."""
    start = torch.zeros_like(trial, dtype=torch.bool)
    start[1:] = trial[1:] != trial[:-1]
    return torch.where(start & (trial >= 1), 0, -1)


def decoding_numbers(rec: dict[str, Any], episode_steps: int, *, seed: int = 0,
                     n_shuffles: int = 5) -> dict[str, Any]:
    """Decode the platform from every recorded variable: by time since the first platform visit
    and at the release points of trials 2+. Errors in pool radii."""
    sim = rec["sim"]
    on_platform, trial = sim.on_platform[:-1], sim.trial[:-1]
    edges = time_bins(episode_steps)
    since = decoding.time_since_first_visit(on_platform)
    labels = decoding.bin_labels(since.double(), edges)
    rel = release_labels(trial)
    out: dict[str, Any] = {"bin_centres": [float(x) for x in (edges[:-1] + edges[1:]) / 2],
                           "variables": {}}
    lows, highs, mean_chance = [], [], None
    for name, x in rec["variables"].items():
        g = torch.Generator().manual_seed(seed)
        r = decoding.decode(x, sim.platform, labels, len(edges) - 1, n_shuffles=n_shuffles,
                            generator=g)
        rr = decoding.decode(x, sim.platform, rel, 1, n_shuffles=n_shuffles, generator=g)
        lows.append(r.chance_shuffle.amin(0))
        highs.append(r.chance_shuffle.amax(0))
        if mean_chance is None:
            mean_chance = (r.chance_mean, rr.chance_mean, rr.chance_shuffle)
        post = (edges[:-1] >= 0) & ~torch.isnan(r.error)
        out["variables"][name] = {
            "dim": int(x.shape[-1]), "error": _list(r.error),
            "error_after_first_visit": _num(r.error[post].mean()) if post.any() else None,
            "release_error": _num(rr.error[0]),
            "release_chance_shuffle": _num(rr.chance_shuffle.mean()),
        }
    out["n_episodes"] = [int(v) for v in r.n_episodes]
    out["chance_mean_prediction"] = _list(mean_chance[0])
    out["chance_shuffle_low"] = _list(torch.stack(lows).amin(0))
    out["chance_shuffle_high"] = _list(torch.stack(highs).amax(0))
    out["release_chance_mean_prediction"] = _num(mean_chance[1][0])
    out["release_samples"] = int((rel == 0).sum())
    return out


def place_field_numbers(rec: dict[str, Any], task: Any, *, n_shuffles: int = 50,
                        seed: int = 0) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Spatial information of every unit against its shuffles, in pool coordinates and in
    platform-centred (goal) coordinates; counts overall and per unit group.

    A unit that codes position relative to the platform — which moves between episodes — holds
    the memory of where the platform is; ``goal_over_place`` counts units informative in the goal
    frame with more information there than in the pool frame."""
    sim = rec["sim"]
    position = sim.position[:-1]
    R = task.env.pool_radius
    result = place_fields.spatial_information(rec["activity"], position, R, n_shuffles=n_shuffles,
                                              generator=torch.Generator().manual_seed(seed))
    goal = place_fields.spatial_information(rec["activity"], position - sim.platform[None],
                                            2 * R, n_shuffles=n_shuffles,
                                            generator=torch.Generator().manual_seed(seed + 1))
    min_act = rec["min_activity"]
    keys = ("info", "threshold", "mean_activity", "shuffle_info", "field_fraction", "stability")

    def counts(res: dict[str, Tensor], idx: Tensor | None = None) -> dict[str, Any]:
        sub = {k: (res[k] if idx is None else res[k][..., idx]) for k in keys}
        return place_fields.place_field_counts(sub, min_act)

    active = result["mean_activity"] >= min_act
    goal_units = active & (goal["info"] > goal["threshold"]) & (goal["info"] > result["info"])
    numbers = {"unit": "bits per spike" if rec["unit"] == "spikes" else "bits per unit activity",
               "n_shuffles": n_shuffles, "min_activity_per_step": min_act, **counts(result),
               "goal_frame": {**counts(goal), "goal_over_place": int(goal_units.sum())},
               "groups": {g: counts(result, idx) for g, idx in rec["groups"].items()}}
    result["min_activity"] = torch.tensor(min_act)
    result["goal_info"] = goal["info"]
    return numbers, result


def analyze_agent(agent: nn.Module, task: Any, episodes: int, seed: int, *, batch: int = 64,
                  progress: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """All analyses of one frozen agent. Returns (numbers for the JSON, data for the figures)."""
    if episodes < 8:
        raise ValueError(f"analyses need at least 8 episodes (decoders are cross-validated over "
                         f"episodes), got {episodes}")
    frozen(agent)
    before = weights_sha256(agent)
    kind = agent.kind
    steps = ["record", "decode", "ablations", "place fields"]
    bar = tqdm(total=len(steps), desc=f"analyze {kind}", disable=not progress, leave=False)
    rec = collect(agent, task, episodes, seed, batch=batch)
    bar.update(1)
    numbers: dict[str, Any] = {"kind": kind, "episodes": episodes, "seed": seed}
    numbers["decoding"] = decoding_numbers(rec, task.env.episode_steps, seed=seed)
    bar.update(1)
    numbers["ablations"], sims = ablations.run_ablations(agent, task, episodes, seed, batch=batch)
    bar.update(1)
    numbers["place_fields"], pf = place_field_numbers(rec, task, seed=seed)
    bar.update(1)
    if "shares" in rec:
        numbers["attention_retrieval"] = attention.retrieval_summary(rec["shares"],
                                                                     rec["sim"].trial[:-1])
    bar.close()
    if weights_sha256(agent) != before:
        raise RuntimeError("weights changed during the analyses")
    numbers["weights_sha256"] = before
    return numbers, {"sims": sims, "place_fields": pf, "task": task,
                     "main_swaps": agent.main_swaps}


def _num(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _list(t: Tensor) -> list[float | None]:
    return [_num(v) for v in t]
