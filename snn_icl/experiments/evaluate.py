"""Frozen-weight evaluation: one-shot place learning measured the way water-maze studies do.

Held-out episodes (platforms and release points from the evaluation seed, disjoint from every
training seed) run with no optimizer and no gradient; the weights are hashed before and after and
any change is an error. Reported per trial index (1-based): median escape latency with bootstrap
95 % bounds, success rate, path length and the straight-line optimum; per episode: goals reached;
on a probe trial with the platform removed: the fraction of swim time in the target quadrant and
the number of platform-zone crossings. The same block is computed for two controls: the network
state reset at every trial start (no memory), and a random swimmer.

The one-shot signature is ``latency trial 1 / median latency over trials 2-4``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from snn_icl.envs.water_maze import WaterMazeConfig, optimal_latency
from snn_icl.episodes.rollout import rollout_batches
from snn_icl.experiments.simulate import frozen
from snn_icl.episodes.measures import median, per_column, per_trial

BOOTSTRAP = 1000


def weights_sha256(agent: nn.Module) -> str:
    """SHA-256 over every parameter and buffer (names, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(agent.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _median_ci(values: Tensor, generator: torch.Generator) -> tuple[float, float, float]:
    """Median and bootstrap 95 % percentile bounds of a 1-D sample (NaNs dropped)."""
    v = values[~torch.isnan(values)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    idx = torch.randint(len(v), (BOOTSTRAP, len(v)), generator=generator)
    meds = torch.quantile(v[idx], 0.5, dim=1)
    lo, hi = torch.quantile(meds, torch.tensor([0.025, 0.975], dtype=meds.dtype))
    return float(torch.quantile(v, 0.5)), float(lo), float(hi)


def _path_length(sim: dict[str, Tensor]) -> Tensor:
    """Swim distance per step [T, B] (pool radii): 0 on the platform and at placements."""
    step = (sim["position"][1:] - sim["position"][:-1]).norm(dim=-1)
    swim = ~sim["on_platform"][:-1] & (sim["trial"][1:] == sim["trial"][:-1])
    placed = sim["trial_end"] & ~sim["escaped"]  # a time-out puts the agent on the platform
    return torch.where(swim & ~placed, step, torch.zeros_like(step)).double()


def _per_trial_sum(values: Tensor, sim: dict[str, Tensor], n_trials: int) -> Tensor:
    """Sum a per-step quantity [T, B] within each completed trial -> [B, n_trials] (NaN: none)."""
    trial = sim["trial"][:-1].long()
    table = torch.zeros(values.shape[1], n_trials + 1, dtype=torch.float64)
    table.scatter_add_(1, trial.clamp(max=n_trials).T, values.T.double())
    done = ~torch.isnan(per_trial(sim["latency"], sim["trial"], sim["trial_end"]))
    out = torch.full((values.shape[1], n_trials), math.nan, dtype=torch.float64)
    k = min(n_trials, done.shape[1])
    out[:, :k] = torch.where(done[:, :k], table[:, :k], torch.full_like(table[:, :k], math.nan))
    return out


def behaviour(sim: dict[str, Tensor], cfg: WaterMazeConfig, n_trials: int,
              generator: torch.Generator) -> dict[str, Any]:
    """The per-trial and per-episode measures of one condition (see the module docstring)."""
    latency = per_trial(sim["latency"], sim["trial"], sim["trial_end"])
    escaped = per_trial(sim["escaped"], sim["trial"], sim["trial_end"])
    pad = max(0, n_trials - latency.shape[1])
    latency = torch.nn.functional.pad(latency, (0, pad), value=math.nan)[:, :n_trials]
    escaped = torch.nn.functional.pad(escaped, (0, pad), value=math.nan)[:, :n_trials]
    release = _release_by_trial(sim, n_trials)
    optimal = optimal_latency(cfg, release, sim["platform"][:, None, :].to(release)).double()
    optimal = torch.where(torch.isnan(latency), torch.full_like(optimal, math.nan), optimal)
    path = _per_trial_sum(_path_length(sim), sim, n_trials)
    stats = [_median_ci(latency[:, k], generator) for k in range(n_trials)]
    later = latency[:, 1:4].reshape(-1)
    later_median = _median_ci(later, generator)[0]
    first = stats[0][0]

    return {
        "latency_by_trial": [_none(s[0]) for s in stats],
        "latency_ci": [[_none(s[1]), _none(s[2])] for s in stats],
        "success_by_trial": per_column(escaped, torch.mean),
        "path_length_by_trial": per_column(path, median),
        "optimal_latency_by_trial": per_column(optimal, median),
        "episodes_by_trial": [int((~torch.isnan(latency[:, k])).sum()) for k in range(n_trials)],
        "goals_per_episode": float(sim["reward"].sum(0).double().mean()),
        "latency_trials2_4": _none(later_median),
        "one_shot_ratio": _none(first / later_median) if later_median and later_median > 0 else None,
    }


def _none(x: float) -> float | None:
    return None if x is None or math.isnan(x) else x


def _release_by_trial(sim: dict[str, Tensor], n_trials: int) -> Tensor:
    """Release point of each trial index [B, n_trials, 2] (NaN for trials never started)."""
    trial = sim["trial"].long()  # [T+1, B]
    batch = trial.shape[1]
    out = torch.full((batch, n_trials, 2), math.nan, dtype=sim["release"].dtype)
    first = torch.ones_like(trial, dtype=torch.bool)
    first[1:] = trial[1:] != trial[:-1]
    t_idx, b_idx = torch.nonzero(first & (trial < n_trials), as_tuple=True)
    out[b_idx, trial[t_idx, b_idx]] = sim["release"][t_idx, b_idx]
    return out


def probe_measures(sim: dict[str, Tensor], cfg: WaterMazeConfig, probe_trial: int) -> dict[str, Any]:
    """Fraction of probe-trial swim time in the target quadrant, and platform-zone crossings."""
    pos = sim["position"][1:]
    in_probe = (sim["trial"][1:] == probe_trial) & ~sim["on_platform"][1:]
    target = torch.atan2(sim["platform"][:, 1], sim["platform"][:, 0])
    angle = torch.atan2(pos[..., 1], pos[..., 0])
    diff = torch.remainder(angle - target + math.pi, 2 * math.pi) - math.pi
    in_quadrant = diff.abs() <= math.pi / 4
    steps = in_probe.sum(0)
    ok = steps > 0
    frac = (in_quadrant & in_probe).sum(0).double() / steps.clamp(min=1)
    zone = ((pos - sim["platform"][None]).norm(dim=-1) <= cfg.platform_radius) & in_probe
    entries = (zone[1:] & ~zone[:-1]).sum(0) + zone[0].long()
    return {
        "probe_target_quadrant_fraction": float(frac[ok].mean()) if ok.any() else None,
        "probe_platform_crossings": float(entries[ok].double().mean()) if ok.any() else None,
        "probe_episodes": int(ok.sum()),
    }


def run_condition(agent: nn.Module | None, task: Any, episodes: int, seed: int, *,
                  batch: int = 64, probe: bool = False, progress: bool = False, desc: str = "",
                  **kwargs: Any) -> dict[str, Tensor]:
    """All held-out episodes of one condition (same seeds for every condition and agent)."""
    if probe:
        kwargs["probe_trial"] = task.eval.probe_trial
    return rollout_batches(agent, task.env, episodes, seed, batch=batch, progress=progress,
                           desc=desc, deterministic=task.eval.deterministic, **kwargs)


def evaluate(agent: nn.Module, task: Any, episodes: int, seed: int, *, n_trials: int = 6,
             batch: int = 64, progress: bool = True) -> dict[str, Any]:
    """The full evaluation of a frozen agent with both controls (see the module docstring)."""
    frozen(agent)
    before = weights_sha256(agent)
    conditions = {"agent": {}, "control_no_memory": {"reset_memory_each_trial": True},
                  "control_random": {"policy": "random"}}
    result: dict[str, Any] = {"episodes": episodes, "seed": seed, "n_trials": n_trials}
    boot = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, kw in tqdm(conditions.items(), desc="evaluate", disable=not progress):
            sim = run_condition(agent, task, episodes, seed, batch=batch, progress=progress,
                                desc=name, **kw)
            block = behaviour(sim, task.env, n_trials, boot)
            probe = run_condition(agent, task, episodes, seed, batch=batch, probe=True,
                                  progress=progress, desc=f"{name} probe", **kw)
            block.update(probe_measures(probe, task.env, task.eval.probe_trial))
            if name == "agent":
                result.update(block)
            else:
                result[name] = block
    after = weights_sha256(agent)
    if after != before:
        raise RuntimeError(f"weights changed during evaluation (sha256 {before} -> {after})")
    result["weights_sha256"] = {"before": before, "after": after}
    return result


def one_shot_targets(result: dict[str, Any]) -> dict[str, tuple[float | None, str, bool]]:
    """The project's one-shot targets on an :func:`evaluate` result: name -> (value, target, met).

    Trials 2-4 are held to twice the straight swim (the median of its trial-2-4 optima, env steps);
    the probe to half of the probe trial in the target quadrant (chance 0.25).
    """
    optimum = sorted(result["optimal_latency_by_trial"][1:4])[1]
    ratio, lat = result["one_shot_ratio"], result["latency_trials2_4"]
    control = result["control_no_memory"]["one_shot_ratio"]
    probe = result["probe_target_quadrant_fraction"]

    def met(value: float | None, ok: Callable[[float], bool]) -> bool:
        return value is not None and not math.isnan(value) and ok(value)

    return {
        "ratio trial 1 / trials 2-4": (ratio, ">= 3", met(ratio, lambda v: v >= 3)),
        "latency trials 2-4": (lat, f"<= {2 * optimum:g}", met(lat, lambda v: v <= 2 * optimum)),
        "no-memory ratio": (control, "<= 1.5", met(control, lambda v: v <= 1.5)),
        "probe target quadrant": (probe, ">= 0.5", met(probe, lambda v: v >= 0.5)),
    }
