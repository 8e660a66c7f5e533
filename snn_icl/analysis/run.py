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
from snn_icl.experiments.evaluate import weights_sha256
from snn_icl.experiments.simulate import frozen

RECORDED = {"lsnn": ("a", "v", "zeta"), "lstm": ("h", "c"), "transformer": ()}
"""State components recorded at every env step, by agent kind."""
REPLAY_CHUNK = 64
"""Episodes per transformer replay (bounds the memory of the [B, nh, T, T] attention maps)."""


def collect(agent: nn.Module, task: Any, episodes: int, seed: int, *,
            batch: int = 64) -> dict[str, Any]:
    """Intact held-out episodes with the agent's internals.

    Returns ``sim`` (rollout tensors, time-major), ``variables`` ({name: [T, B, d]}, the state
    after acting on observation t; "input" is the observation itself, the baseline every state
    variable is read against), ``activity`` ([T, B, N] per env step: LSNN spike counts,
    otherwise rectified unit activity), ``groups`` ({group name: unit indices}) and, for the
    transformer, ``shares`` (:func:`snn_icl.analysis.attention.episode_shares`).
    """
    kind = task.agent.kind
    recorders: list[Recorder] = []

    def hook_for(i: int, size: int) -> Recorder | None:
        recorders.append(Recorder(RECORDED[kind]))
        return recorders[-1] if RECORDED[kind] else None

    sim = run_batches(agent, task, episodes, seed, batch=batch, hook_for=hook_for,
                      record=kind == "lsnn")
    T, B = sim["obs"].shape[:2]
    states = {}
    if RECORDED[kind]:
        parts = [r.stacked() for r in recorders]
        states = {k: torch.cat([p[k] for p in parts], dim=1) for k in parts[0]}
    variables: dict[str, Tensor] = {"input": sim["obs"]}
    out: dict[str, Any] = {"sim": sim, "variables": variables}
    if kind == "lsnn":
        n_reg = agent.n_regular
        variables["a (adaptive)"] = states["a"][..., n_reg:]
        variables["v"] = states["v"]
        variables["zeta"] = states["zeta"]
        k = task.agent.ms_per_step
        out["activity"] = sim["z"].view(T, k, B, -1).sum(1).float()  # spikes per env step
        n = out["activity"].shape[-1]
        out["groups"] = {"regular": torch.arange(n_reg), "adaptive": torch.arange(n_reg, n)}
    elif kind == "lstm":
        variables["h"], variables["c"] = states["h"], states["c"]
        out["activity"] = states["h"].clamp(min=0)
        out["groups"] = {"h": torch.arange(states["h"].shape[-1])}
    elif kind == "transformer":
        chunks = [_replay_chunk(agent, sim, lo, min(lo + REPLAY_CHUNK, B))
                  for lo in range(0, B, REPLAY_CHUNK)]
        n_layer = len(chunks[0]["keys"])
        for l in range(n_layer + 1):
            name = "residual 0 (embedding)" if l == 0 else f"residual {l}"
            variables[name] = torch.cat([c["residual"][l] for c in chunks], dim=1)
        for l in range(n_layer):
            variables[f"keys {l + 1}"] = torch.cat([c["keys"][l] for c in chunks], dim=1)
        # units: the residual stream after each block, rectified
        out["activity"] = torch.cat([variables[f"residual {l}"] for l in range(1, n_layer + 1)],
                                    dim=-1).clamp(min=0)
        width = agent.n_embd
        out["groups"] = {f"layer {l}": torch.arange((l - 1) * width, l * width)
                         for l in range(1, n_layer + 1)}
        out["shares"] = {key: torch.cat([c["shares"][key] for c in chunks],
                                        dim=0 if key != "observed" else 1)
                         for key in ("observed", "expected", "queries")}
    else:
        raise ValueError(f"no analyses for agent kind {kind!r}")
    return out


def _replay_chunk(agent: nn.Module, sim: dict[str, Tensor], lo: int, hi: int) -> dict[str, Any]:
    """Transformer internals of episodes lo..hi-1 (residual stream, keys, retrieval shares)."""
    rep = attention.replay(agent, sim["obs"][:, lo:hi])
    trial, onp = sim["trial"][:-1, lo:hi], sim["on_platform"][:-1, lo:hi]
    shares = attention.episode_shares(rep["attention"], trial, onp, agent.context_window)
    return {"residual": rep["residual"], "keys": rep["keys"], "shares": shares}


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
    on_platform, trial = sim["on_platform"][:-1], sim["trial"][:-1]
    edges = time_bins(episode_steps)
    since = decoding.time_since_first_visit(on_platform)
    labels = decoding.bin_labels(since.double(), edges)
    rel = release_labels(trial)
    out: dict[str, Any] = {"bin_centres": [float(x) for x in (edges[:-1] + edges[1:]) / 2],
                           "variables": {}}
    lows, highs, mean_chance = [], [], None
    for name, x in rec["variables"].items():
        g = torch.Generator().manual_seed(seed)
        r = decoding.decode(x, sim["platform"], labels, len(edges) - 1, n_shuffles=n_shuffles,
                            generator=g)
        rr = decoding.decode(x, sim["platform"], rel, 1, n_shuffles=n_shuffles, generator=g)
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
    position = sim["position"][:-1]
    R = task.env.pool_radius
    result = place_fields.spatial_information(rec["activity"], position, R, n_shuffles=n_shuffles,
                                              generator=torch.Generator().manual_seed(seed))
    goal = place_fields.spatial_information(rec["activity"], position - sim["platform"][None],
                                            2 * R, n_shuffles=n_shuffles,
                                            generator=torch.Generator().manual_seed(seed + 1))
    # a unit counts as active from ~2 Hz (LSNN: 0.002 spikes/ms) or 1e-3 mean activity
    min_act = 0.002 * task.agent.ms_per_step if task.agent.kind == "lsnn" else 1e-3
    keys = ("info", "threshold", "mean_activity", "shuffle_info", "field_fraction", "stability")

    def counts(res: dict[str, Tensor], idx: Tensor | None = None) -> dict[str, Any]:
        sub = {k: (res[k] if idx is None else res[k][..., idx]) for k in keys}
        return place_fields.place_field_counts(sub, min_act)

    active = result["mean_activity"] >= min_act
    goal_units = active & (goal["info"] > goal["threshold"]) & (goal["info"] > result["info"])
    numbers = {"unit": "bits per spike" if task.agent.kind == "lsnn" else "bits per unit activity",
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
    kind = task.agent.kind
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
    if kind == "transformer":
        numbers["attention_retrieval"] = attention.retrieval_summary(rec["shares"],
                                                                     rec["sim"]["trial"][:-1])
    bar.close()
    if weights_sha256(agent) != before:
        raise RuntimeError("weights changed during the analyses")
    numbers["weights_sha256"] = before
    return numbers, {"sims": sims, "place_fields": pf, "task": task}


def _num(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _list(t: Tensor) -> list[float | None]:
    return [_num(v) for v in t]
