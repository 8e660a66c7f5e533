"""Every behavioural measure of the water maze, defined once, from an :class:`EpisodeRecord`.

Training metrics, evaluation, compare, retention, the ablations and the Brian2 runs all call
these functions, so a name means one thing everywhere. Units: latencies and times in env (swim)
steps, lengths in pool radii, fractions in [0, 1].

Censoring: a trial still running when the episode ended has no latency of its own. It is counted
*censored at the time-out* (``trial_timeout`` swim steps, not escaped), never dropped, so a slow
agent's late trials do not vanish into a median over the fast survivors. A trial that had not
started when the episode ended does not count. ``censored_by_trial`` says how many there were.

Measures (per trial index, 0-based in code, 1-based in reports):
    latency            swim steps from release to the platform (time-out: ``trial_timeout``)
    success            fraction of trials that reached the platform
    path_length        swim distance of the trial (pool radii)
    path_efficiency    path length / straight line from release to the platform's edge, trials
                       that reached the platform (1 = a straight swim)
    optimal_latency    swim steps of that straight line (:func:`optimal_latency`)
    latency_trials2_4  median over the pooled latencies of trials 2-4 (one-shot target)
    optimal_latency_trials2_4  the same median of the straight-swim optima (the target's scale)
    one_shot_ratio     median latency of trial 1 / latency_trials2_4
    trial 2 by trial 1 success and median latency of trial 2 after a trial 1 that found the
                       platform and after one that timed out (:func:`trial2_by_trial1`)
Platforms: each trial's measures use the platform in force at that trial's start
(``EpisodeRecord.platform_t``), so they stay right after a reversal.
Reversal (the platform moves at the start of trial k; :func:`reversal_measures`): latency and
    success of trial k and of trial k+1, the share of episodes entering the old platform's zone on
    trial k before reaching the new one, and the time in the old and new quadrants on trial k.
Probe trial (platform removed; Morris 1984, Gallagher et al. 1993):
    target quadrant fraction, platform-zone crossings, mean distance to the platform centre
    (Gallagher's proximity), first crossing (swim steps), and the fraction of the swim after the
    first crossing spent within two platform radii of the platform (time near the platform).
First zone (:func:`first_zone`): which of two places (the own platform and another episode's)
    a trial's search comes within two platform radii of first.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from snn_icl.envs.water_maze import WaterMazeConfig, optimal_latency
from snn_icl.episodes.record import EpisodeRecord

BOOTSTRAP = 1000
"""Bootstrap resamples of the 95 % bounds of a median."""
NEAR_RADII = 2.0
"""'Near the platform' in the probe: within this many platform radii of its centre."""


# ----------------------------------------------------------------------------- tables
def per_trial(values: Tensor, trial: Tensor, trial_end: Tensor) -> Tensor:
    """Gather a per-step quantity at trial ends into a [B, n_trials] table (NaN: not ended).

    Args:
        values: [T, B] quantity read at the step a trial ends (e.g. ``latency``).
        trial: [T+1, B] trial index (index 0 = start); the trial that ends at step t is trial[t].
        trial_end: [T, B] bool.
    """
    t_idx, b_idx = torch.nonzero(trial_end, as_tuple=True)
    k_idx = trial[:-1][t_idx, b_idx].long()
    n_trials = int(k_idx.max()) + 1 if len(k_idx) else 0
    table = torch.full((trial_end.shape[1], n_trials), float("nan"), dtype=torch.float64)
    table[b_idx, k_idx] = values[t_idx, b_idx].double()
    return table


def _fit(table: Tensor, n_trials: int) -> Tensor:
    """Pad (NaN) or cut a [B, m] table to [B, n_trials]."""
    pad = max(0, n_trials - table.shape[1])
    return torch.nn.functional.pad(table, (0, pad), value=math.nan)[:, :n_trials]


def censored_trials(rec: EpisodeRecord, n_trials: int) -> Tensor:
    """[B, n_trials] bool: the trial was still running (at least one swim step, no end) when the
    episode ended."""
    last = rec.trial[-1].long()  # [B] the trial in progress at the end
    ended = _fit(per_trial(rec.latency, rec.trial, rec.trial_end), max(n_trials, 1))
    first = (rec.trial == last[None]).to(torch.uint8).argmax(0)  # its first position index
    swam = rec.trial.shape[0] - 1 - first >= 1
    out = torch.zeros(rec.episodes, n_trials, dtype=torch.bool)
    rows = torch.arange(rec.episodes)
    inside = last < n_trials
    k = last.clamp(max=max(n_trials - 1, 0))
    running = inside & swam & torch.isnan(ended[rows, k])
    out[rows[running], k[running]] = True
    return out


def latencies(rec: EpisodeRecord, cfg: WaterMazeConfig, n_trials: int) -> tuple[Tensor, Tensor]:
    """Escape latency by trial [B, n_trials] (swim steps; NaN: trial never started) with censored
    trials at the time-out, and the censored mask [B, n_trials]."""
    latency = _fit(per_trial(rec.latency, rec.trial, rec.trial_end), n_trials)
    censored = censored_trials(rec, n_trials)
    return torch.where(censored, torch.full_like(latency, cfg.trial_timeout), latency), censored


def successes(rec: EpisodeRecord, n_trials: int) -> Tensor:
    """[B, n_trials]: 1 reached the platform, 0 timed out or censored, NaN never started."""
    escaped = _fit(per_trial(rec.escaped, rec.trial, rec.trial_end), n_trials)
    return torch.where(censored_trials(rec, n_trials), torch.zeros_like(escaped), escaped)


# ----------------------------------------------------------------------------- statistics
def median(v: Tensor) -> Tensor:
    """Median of a 1-D sample (the mean of the middle two for an even count, unlike torch.median)."""
    return torch.quantile(v, 0.5)


def median_ci(values: Tensor, generator: torch.Generator) -> tuple[float, float, float]:
    """Median and bootstrap 95 % percentile bounds of a 1-D sample (NaNs dropped)."""
    v = values[~torch.isnan(values)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    idx = torch.randint(len(v), (BOOTSTRAP, len(v)), generator=generator)
    meds = torch.quantile(v[idx], 0.5, dim=1)
    lo, hi = torch.quantile(meds, torch.tensor([0.025, 0.975], dtype=meds.dtype))
    return float(median(v)), float(lo), float(hi)


def per_column(table: Tensor, fn: Callable[[Tensor], Tensor]) -> list[float | None]:
    """``fn`` over the non-NaN entries of each column of a [B, n_trials] table (None: all NaN)."""
    out = []
    for col in table.T:
        col = col[~torch.isnan(col)]
        out.append(float(fn(col)) if len(col) else None)
    return out


def pooled_median(table: Tensor, first: int, stop: int) -> float | None:
    """Median over the pooled entries of columns ``first..stop-1`` of a [B, n] table."""
    v = table[:, first:stop].reshape(-1)
    v = v[~torch.isnan(v)]
    return float(median(v)) if len(v) else None


def _none(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else x


# ----------------------------------------------------------------------------- paths
def swim_distance(rec: EpisodeRecord) -> Tensor:
    """Swim distance per step [T, B] (pool radii): 0 on the platform and at placements."""
    step = (rec.position[1:] - rec.position[:-1]).norm(dim=-1)
    swim = ~rec.on_platform[:-1] & (rec.trial[1:] == rec.trial[:-1])
    placed = rec.trial_end & ~rec.escaped  # a time-out puts the agent on the platform
    return torch.where(swim & ~placed, step, torch.zeros_like(step)).double()


def per_trial_sum(values: Tensor, rec: EpisodeRecord, n_trials: int) -> Tensor:
    """Sum a per-step quantity [T, B] within each ended trial -> [B, n_trials] (NaN: not ended)."""
    trial = rec.trial[:-1].long()
    table = torch.zeros(values.shape[1], n_trials + 1, dtype=torch.float64)
    table.scatter_add_(1, trial.clamp(max=n_trials).T, values.T.double())
    done = ~torch.isnan(_fit(per_trial(rec.latency, rec.trial, rec.trial_end), n_trials))
    return torch.where(done, table[:, :n_trials], torch.full_like(table[:, :n_trials], math.nan))


def _trial_starts(rec: EpisodeRecord, n_trials: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(t_idx, b_idx, k)``: the position index at which trial ``k < n_trials`` of episode
    ``b_idx`` starts."""
    trial = rec.trial.long()  # [T+1, B]
    first = torch.ones_like(trial, dtype=torch.bool)
    first[1:] = trial[1:] != trial[:-1]
    t_idx, b_idx = torch.nonzero(first & (trial < n_trials), as_tuple=True)
    return t_idx, b_idx, trial[t_idx, b_idx]


def release_by_trial(rec: EpisodeRecord, n_trials: int) -> Tensor:
    """Release point of each trial index [B, n_trials, 2] (NaN for trials never started)."""
    out = torch.full((rec.episodes, n_trials, 2), math.nan, dtype=rec.release.dtype)
    t_idx, b_idx, k = _trial_starts(rec, n_trials)
    out[b_idx, k] = rec.release[t_idx, b_idx]
    return out


def platform_by_trial(rec: EpisodeRecord, n_trials: int) -> Tensor:
    """Platform centre of each trial index [B, n_trials, 2] (pool radii): the one in force at the
    trial's start (``platform_t``), so a reversed trial has its new platform; NaN for trials never
    started."""
    platforms = rec.platforms()
    out = torch.full((rec.episodes, n_trials, 2), math.nan, dtype=platforms.dtype)
    t_idx, b_idx, k = _trial_starts(rec, n_trials)
    out[b_idx, k] = platforms[t_idx, b_idx]
    return out


def trial_platform(rec: EpisodeRecord, k: int) -> Tensor:
    """[B, 2] the platform of trial ``k`` of each episode (the episode's first platform where
    trial ``k`` never started)."""
    p = platform_by_trial(rec, k + 1)[:, k]
    return torch.where(torch.isnan(p), rec.platform.to(p), p)


def straight_line(rec: EpisodeRecord, cfg: WaterMazeConfig, n_trials: int) -> Tensor:
    """Distance from each trial's release point to that trial's platform's edge [B, n_trials]
    (pool radii)."""
    release = release_by_trial(rec, n_trials)
    dist = (release - platform_by_trial(rec, n_trials).to(release)).norm(dim=-1).double()
    return (dist - cfg.platform_radius).clamp(min=cfg.v_max)


# ----------------------------------------------------------------------------- reports
def trial_table(rec: EpisodeRecord, cfg: WaterMazeConfig, n_trials: int) -> dict[str, Tensor]:
    """Every per-trial measure as a [B, n_trials] table (NaN: the trial never started, or for
    path efficiency, did not reach the platform): latency (censored at the time-out), censored,
    success, path_length, path_efficiency, optimal_latency."""
    latency, censored = latencies(rec, cfg, n_trials)
    success = successes(rec, n_trials)
    release = release_by_trial(rec, n_trials)
    optimal = optimal_latency(cfg, release, platform_by_trial(rec, n_trials).to(release)).double()
    optimal = torch.where(torch.isnan(latency), torch.full_like(optimal, math.nan), optimal)
    path = per_trial_sum(swim_distance(rec), rec, n_trials)
    efficiency = torch.where(success == 1, path / straight_line(rec, cfg, n_trials),
                             torch.full_like(path, math.nan))
    return {"latency": latency, "censored": censored, "success": success, "path_length": path,
            "path_efficiency": efficiency, "optimal_latency": optimal}


def behaviour(rec: EpisodeRecord, cfg: WaterMazeConfig, n_trials: int,
              generator: torch.Generator | None = None) -> dict[str, Any]:
    """The per-trial and per-episode measures of one condition (see the module docstring).

    With a ``generator``, ``latency_ci`` holds bootstrap 95 % bounds of each trial's median."""
    t = trial_table(rec, cfg, n_trials)
    latency = t["latency"]
    later = pooled_median(latency, 1, 4)
    first = per_column(latency[:, :1], median)[0] if n_trials else None
    out: dict[str, Any] = {
        "latency_by_trial": per_column(latency, median),
        "censored_by_trial": [int(c) for c in t["censored"].sum(0)],
        "success_by_trial": per_column(t["success"], torch.mean),
        "path_length_by_trial": per_column(t["path_length"], median),
        "path_efficiency_by_trial": per_column(t["path_efficiency"], median),
        "optimal_latency_by_trial": per_column(t["optimal_latency"], median),
        "episodes_by_trial": [int((~torch.isnan(latency[:, k])).sum()) for k in range(n_trials)],
        "goals_per_episode": float(rec.escaped.sum(0).double().mean()),
        "latency_trials2_4": later,
        "optimal_latency_trials2_4": pooled_median(t["optimal_latency"], 1, 4),
        "one_shot_ratio": first / later if first is not None and later else None,
        "censoring": f"trials still running when the episode ended count as time-outs "
                     f"({cfg.trial_timeout} swim steps, not escaped)",
    }
    if generator is not None:
        stats = [median_ci(latency[:, k], generator) for k in range(n_trials)]
        out["latency_ci"] = [[_none(s[1]), _none(s[2])] for s in stats]
    return out


def trial2_by_trial1(rec: EpisodeRecord, cfg: WaterMazeConfig) -> dict[str, Any]:
    """Trial 2 split by how trial 1 ended: ``found`` (the swimmer reached the platform) or
    ``placed`` (it timed out and was placed on the platform, Morris protocol): for each, the
    number of episodes, trial 2's success and its median latency (swim steps, censored at the
    time-out); None where no episode ended that way."""
    t = trial_table(rec, cfg, 2)
    first, success, latency = t["success"][:, 0], t["success"][:, 1], t["latency"][:, 1]
    out: dict[str, Any] = {}
    for name, group in (("found", first == 1), ("placed", first == 0)):
        group = group & ~torch.isnan(success)
        out[f"episodes_{name}"] = int(group.sum())
        out[f"success_trial2_{name}"] = float(success[group].mean()) if group.any() else None
        out[f"latency_trial2_{name}"] = float(median(latency[group])) if group.any() else None
    return out


def training_metrics(rec: EpisodeRecord, cfg: WaterMazeConfig) -> dict[str, float]:
    """What a training batch logs: goals per episode, median latency of trials 1 and 2 and the
    pooled median of trials 2-4 (NaN where no trial counts), as :func:`behaviour` defines them.

    A batch that mixes visible-platform (cued) episodes in measures these on its hidden-platform
    episodes and adds ``latency_trial1_cued``, trial 1's median on the cued ones."""
    nan = lambda x: math.nan if x is None else x  # noqa: E731
    extra: dict[str, float] = {}
    if rec.cued is not None:
        cued = behaviour(rec.select(torch.nonzero(rec.cued).flatten()), cfg, 1)
        extra["latency_trial1_cued"] = nan(cued["latency_by_trial"][0])
        rec = rec.select(torch.nonzero(~rec.cued).flatten())
    b = behaviour(rec, cfg, 4)
    return {"goals_per_episode": b["goals_per_episode"],
            "latency_trial1": nan(b["latency_by_trial"][0]),
            "latency_trial2": nan(b["latency_by_trial"][1]),
            "latency_trials2_4": nan(b["latency_trials2_4"]), **extra}


def _quadrant_fraction(pos: Tensor, centre: Tensor, where: Tensor) -> Tensor:
    """[B] fraction of the steps ``where`` [T, B] at which ``pos`` [T, B, 2] lies in the quadrant
    (90 degrees of the pool) centred on the direction of ``centre`` [B, 2]."""
    target = torch.atan2(centre[:, 1], centre[:, 0])
    angle = torch.atan2(pos[..., 1], pos[..., 0])
    diff = torch.remainder(angle - target + math.pi, 2 * math.pi) - math.pi
    inside = diff.abs() <= math.pi / 4
    return (inside & where).sum(0).double() / where.sum(0).clamp(min=1)


def probe_measures(rec: EpisodeRecord, cfg: WaterMazeConfig, probe_trial: int) -> dict[str, Any]:
    """Search preference on the probe trial (platform removed), averaged over episodes: target
    quadrant fraction, platform-zone crossings, mean distance to the platform centre (pool
    radii), first crossing (swim steps; episodes that crossed) and the fraction of the swim after
    the first crossing within ``NEAR_RADII`` platform radii of the platform."""
    pos = rec.position[1:]
    in_probe = (rec.trial[1:] == probe_trial) & ~rec.on_platform[1:]  # [T, B]
    platform = trial_platform(rec, probe_trial).to(pos)  # the probe trial's platform
    steps = in_probe.sum(0)
    ok = steps > 0
    frac = _quadrant_fraction(pos, platform, in_probe)
    distance = (pos - platform[None]).norm(dim=-1).double()
    mean_distance = (distance * in_probe).sum(0) / steps.clamp(min=1)
    zone = (distance <= cfg.platform_radius) & in_probe
    entries = (zone[1:] & ~zone[:-1]).sum(0) + zone[0].long()
    swim_index = torch.cumsum(in_probe.long(), 0)  # swim steps of the probe so far
    crossed = zone.any(0)
    first_step = torch.where(zone, swim_index, torch.full_like(swim_index, 1 << 30)).amin(0)
    after = in_probe & (swim_index >= first_step[None])
    near = (distance <= NEAR_RADII * cfg.platform_radius) & after
    dwell = near.sum(0).double() / after.sum(0).clamp(min=1)

    def mean(x: Tensor, where: Tensor) -> float | None:
        return float(x[where].double().mean()) if where.any() else None

    return {
        "probe_target_quadrant_fraction": mean(frac, ok),
        "probe_platform_crossings": mean(entries, ok),
        "probe_mean_distance": mean(mean_distance, ok),
        "probe_first_crossing": mean(first_step, ok & crossed),
        "probe_near_platform_after_first_crossing": mean(dwell, ok & crossed),
        "probe_episodes": int(ok.sum()),
        "probe_episodes_crossing": int((ok & crossed).sum()),
    }


def first_zone(rec: EpisodeRecord, cfg: WaterMazeConfig, trial_index: int, own: Tensor,
               other: Tensor) -> tuple[Tensor, Tensor]:
    """Which of two places the search of trial ``trial_index`` (0-based) reaches first: the
    zones within ``NEAR_RADII`` platform radii of ``own`` and of ``other`` [B, 2] (pool radii).

    Returns ``other_first`` [B] bool and ``decided`` [B] bool (the trial entered at least one zone,
    and not both at the same step). Until the first entry the trial cannot tell the two places
    apart (it ends only on the own platform, inside the own zone), so an agent that remembers
    neither enters the other zone first in half of the decided episodes: 0.5 is no memory of the
    place, below 0.5 a memory of the own platform, above it of the other one.
    """
    pos = rec.position[1:]
    # the swim, and the step that reaches the platform; not the rest on it, nor a time-out's
    # placement on it (that would count as finding the own place)
    reached = rec.trial_end & rec.escaped
    during = (rec.trial[1:] == trial_index) & (~rec.on_platform[1:] | reached)  # [T, B]
    if rec.dark is not None:  # dark[t] is about position t; pos[t] is position t + 1
        dark = rec.dark.to(during.device)
        during = during & ~torch.cat([dark[1:], torch.zeros_like(dark[:1])])
    radius = NEAR_RADII * cfg.platform_radius
    never = torch.full(during.shape, 1 << 30, dtype=torch.long, device=during.device)
    step = torch.arange(during.shape[0], device=during.device)[:, None].expand_as(during)

    def first(centre: Tensor) -> Tensor:
        inside = ((pos - centre.to(pos)[None]).norm(dim=-1) <= radius) & during
        return torch.where(inside, step, never).amin(0)

    t_own, t_other = first(own), first(other)
    decided = (torch.minimum(t_own, t_other) < (1 << 30)) & (t_own != t_other)
    return t_other < t_own, decided


def reversal_measures(rec: EpisodeRecord, cfg: WaterMazeConfig, reversal_trial: int) -> dict[str, Any]:
    """Behaviour on a reversal: the platform moved at the start of trial k = ``reversal_trial``
    (0-based; reported 1-based as ``reversal_trial``).

    Over the episodes in which trial k started (``reversal_episodes``):
        reversal_latency / next_latency   median latency of trial k / k+1 (swim steps; censored
                                          at the time-out as everywhere)
        reversal_success / next_success   fraction of episodes reaching the platform on trial
                                          k / k+1 (k+1: episodes in which it started)
        old_zone_entry_fraction           fraction of episodes whose position, at some swim
                                          step of trial k (before the new platform is reached),
                                          lies within ``platform_radius`` of the old centre (the
                                          platform of trial k-1)
        old_quadrant_fraction /           mean over episodes of the fraction of trial k's swim
        new_quadrant_fraction             steps spent in the quadrant centred on the old / new
                                          platform (chance 0.25 each)
    ``None`` where no episode counts.
    """
    k = reversal_trial
    if k < 1:
        raise ValueError(f"reversal_trial must be >= 1 (the trial after which the platform "
                         f"moved), got {k!r}")
    t = trial_table(rec, cfg, k + 2)
    pos = rec.position[1:]
    swim = (rec.trial[1:] == k) & ~rec.on_platform[1:]  # [T, B]: the swim of trial k
    old = trial_platform(rec, k - 1).to(pos)
    new = trial_platform(rec, k).to(pos)
    started = ~torch.isnan(t["latency"][:, k])
    entered = ((pos - old[None]).norm(dim=-1) <= cfg.platform_radius) & swim
    ok = started & (swim.sum(0) > 0)

    def mean(x: Tensor, where: Tensor) -> float | None:
        return float(x[where].double().mean()) if where.any() else None

    def med(x: Tensor) -> float | None:
        x = x[~torch.isnan(x)]
        return float(median(x)) if len(x) else None

    return {
        "reversal_trial": k + 1,
        "reversal_episodes": int(started.sum()),
        "reversal_latency": med(t["latency"][:, k]),
        "reversal_success": mean(t["success"][:, k], started),
        "old_zone_entry_fraction": mean(entered.any(0).double(), ok),
        "old_quadrant_fraction": mean(_quadrant_fraction(pos, old, swim), ok),
        "new_quadrant_fraction": mean(_quadrant_fraction(pos, new, swim), ok),
        "next_episodes": int((~torch.isnan(t["latency"][:, k + 1])).sum()),
        "next_latency": med(t["latency"][:, k + 1]),
        "next_success": mean(t["success"][:, k + 1], ~torch.isnan(t["success"][:, k + 1])),
    }
