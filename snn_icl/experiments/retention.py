"""Retention across a dark delay: does the one-shot memory outlast the transformer's context window?

Two forms: a delay after trial 1 only (below), or with ``every_trial`` a delay after every trial
(delayed matching to place with dark inter-trial intervals: the Steele & Morris 1999 delay curve
of trial-2 latency and one-shot ratio against the delay; docs/protocols.md).

Protocol (frozen weights, held-out episodes, the same seeds for every agent and delay): trial 1
(index 0) runs as usual, the agent finds the platform (or is placed on it after the time-out) and
rests on it; then ``delay`` env steps pass in the dark (observation all zeros, actions ignored,
see :class:`~snn_icl.envs.water_maze.WaterMaze`) before trial 2 starts from a new release point.
The episode is lengthened by the delay, so every delay leaves the same time for the later trials.
Every delay meets the same platforms; the release points are drawn per episode length (the env
draws one per possible trial), so they differ between delays except at delay 0.

Retention is the latency of trial 2 (the first trial after the delay) as a function of the delay,
read against trial 1 (a search with no memory of this platform) and the straight-swim optimum.

What each agent's memory must bridge, in env steps: the transformer sees a token only while it is
among the last ``context_window`` tokens (the platform tokens of trial 1 leave layer 1's window
once ``rest_steps + delay >= context_window``; deeper layers can relay information through the
dark tokens); the LSNN's adaptation decays with ``tau_a / ms_per_step`` env steps; the LSTM has no
built-in time scale. Steps past the trained episode length are out of distribution for every
agent; the transformer reuses its last position embedding there
(:attr:`~snn_icl.models.transformer.TransformerAgent.extend_positions`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from snn_icl.analysis.silent_memory import state_bytes
from snn_icl.episodes.measures import behaviour, probe_measures
from snn_icl.models import weights_sha256
from snn_icl.episodes.rollout import rollout_batches
from snn_icl.models import frozen, past_trained_length

DEFAULT_DELAYS = (0, 5, 10, 25, 50, 100, 200, 250, 300, 400)
"""Dark delays (env steps) of ``snn-icl retention``."""


ITI_TRIALS = 4
"""Trials the inter-trial-delay curve reports (``every_trial``): trial 2 and the one-shot ratio
trial 1 / trials 2-4 need trials 1-4, so the episode is lengthened by ``ITI_TRIALS - 1`` delays."""


def retention(agent: nn.Module, task: Any, delays: Sequence[int], episodes: int, seed: int, *,
              batch: int = 64, progress: bool = True, every_trial: bool = False,
              probe: bool = False) -> dict[str, Any]:
    """Trial-2 latency after a dark delay following trial 1, for each delay (env steps).

    Returns ``delays`` and, per delay (lists aligned with ``delays``): ``latency_trial1``,
    ``latency_trial2`` (medians, swim steps), ``latency_trial2_ci`` (bootstrap 95 %),
    ``success_trial2``, ``optimal_trial2`` (median straight swim) and ``retention`` =
    (trial 1 - trial 2) / (trial 1 - optimum) of the medians: 1 = a straight swim, 0 = a search as
    long as trial 1. Plus ``memory_horizon`` (env steps) and the weight hashes (unchanged).

    ``every_trial``: the delay follows every trial (delayed matching to place with dark
    inter-trial intervals, the Steele & Morris 1999 delay curve; the env's ``iti_dark_steps``)
    instead of trial 1 only; the episode is lengthened by ``ITI_TRIALS - 1`` delays, and the rows
    add ``latency_trials2_4`` (pooled median) and ``one_shot_ratio`` (trial 1 / trials 2-4).

    ``probe`` (delay after trial 1 only): a second run of the same episodes per delay in which
    trial 2 is a probe (no platform for the whole trial): ``probe_trial2`` holds its measures
    per delay (:func:`~snn_icl.episodes.measures.probe_measures`: target-quadrant fraction,
    0.25 by chance, crossings, mean distance).
    """
    if probe and every_trial:
        raise ValueError("probe applies to the delay after trial 1, not to every_trial")
    delays = [int(d) for d in delays]
    if not delays or min(delays) < 0:
        raise ValueError(f"delays must be env-step counts >= 0, got {delays!r}")
    frozen(agent)
    before = weights_sha256(agent)
    boot = torch.Generator().manual_seed(seed)
    rows: dict[str, list[Any]] = {k: [] for k in ("latency_trial1", "latency_trial2",
                                                  "latency_trial2_ci", "success_trial2",
                                                  "optimal_trial2", "retention", "episodes_trial2")}
    if every_trial:
        rows.update(latency_trials2_4=[], one_shot_ratio=[], success_by_trial=[])
    if probe:
        rows["probe_trial2"] = []
    n_delays, n_trials = (ITI_TRIALS - 1, ITI_TRIALS) if every_trial else (1, 2)
    with past_trained_length(agent):  # every delay lengthens the episode
        for delay in tqdm(delays, desc="delays", disable=not progress):
            env_cfg = dataclasses.replace(task.env,
                                          episode_steps=task.env.episode_steps + n_delays * delay)
            dark = ({"iti_dark_steps": delay} if every_trial
                    else {"dark_after_trial": 0, "dark_steps": delay})
            sim = rollout_batches(agent, env_cfg, episodes, seed, batch=batch, progress=progress,
                                  desc=f"delay {delay}", deterministic=task.eval.deterministic,
                                  **dark)
            b = behaviour(sim, env_cfg, n_trials, boot)
            first, second = b["latency_by_trial"][:2]
            if every_trial:
                rows["latency_trials2_4"].append(b["latency_trials2_4"])
                rows["one_shot_ratio"].append(b["one_shot_ratio"])
                rows["success_by_trial"].append(b["success_by_trial"])
            optimum = b["optimal_latency_by_trial"][1]
            rows["latency_trial1"].append(first)
            rows["latency_trial2"].append(second)
            rows["latency_trial2_ci"].append(b["latency_ci"][1])
            rows["success_trial2"].append(b["success_by_trial"][1])
            rows["optimal_trial2"].append(optimum)
            rows["episodes_trial2"].append(b["episodes_by_trial"][1])
            rows["retention"].append(_retention(first, second, optimum))
            if probe:  # the same episodes, trial 2 without its platform
                sim = rollout_batches(agent, env_cfg, episodes, seed, batch=batch,
                                      progress=progress, desc=f"probe {delay}",
                                      deterministic=task.eval.deterministic, probe_trial=1,
                                      **dark)
                rows["probe_trial2"].append(probe_measures(sim, env_cfg, 1))
        # what the memory costs: the state after a trial 1 that times out, its rest, the delay
        carried = state_bytes(agent, task.env.obs_dim,
                              [task.env.trial_timeout + task.env.rest_steps + d for d in delays])
    after = weights_sha256(agent)
    if after != before:
        raise RuntimeError(f"weights changed during the retention test (sha256 {before} -> {after})")
    kept = [bridged(lat, ok, opt) for lat, ok, opt in
            zip(rows["latency_trial2"], rows["success_trial2"], rows["optimal_trial2"])]
    return {"delays": delays, "episodes": episodes, "seed": seed,
            "dark": "after every trial" if every_trial else "after trial 1", **rows,
            "state_bytes": carried, "kept": kept, "kept_up_to": _kept_up_to(delays, kept),
            "memory_horizon": agent.memory_horizon(), "rest_steps": task.env.rest_steps,
            "weights_sha256": {"before": before, "after": after}}


KEPT_SUCCESS = 0.9
"""A delay is bridged when trial 2 succeeds in at least this share of episodes, with a median
latency of at most two straight swims (docs/silent_memory.md)."""


def bridged(latency: float | None, success: float | None, optimum: float | None) -> bool:
    """Trial 2 after a delay kept the memory: success >= :data:`KEPT_SUCCESS` and median
    latency <= 2 straight swims."""
    return (latency is not None and success is not None and optimum is not None
            and success >= KEPT_SUCCESS and latency <= 2 * optimum)


def _kept_up_to(delays: list[int], kept: list[bool]) -> int | None:
    """The longest delay such that it and every shorter measured delay are bridged."""
    best = None
    for d, k in sorted(zip(delays, kept)):
        if not k:
            break
        best = d
    return best


def _retention(first: float | None, second: float | None, optimum: float | None) -> float | None:
    if first is None or second is None or optimum is None or first - optimum <= 0:
        return None
    value = (first - second) / (first - optimum)
    return None if math.isnan(value) else value


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """Trial-2 median latency (and retention in brackets) per model and delay."""
    delays = next(iter(results.values()))["delays"]
    head = "| model | trial 1 | " + " | ".join(f"delay {d}" for d in delays) + " |"
    rule = "|" + "|".join("---" for _ in range(len(delays) + 2)) + "|"
    lines = [head, rule]
    for name, r in results.items():
        first = [x for x in r["latency_trial1"] if x is not None]
        cells = [_fmt(lat, ret) for lat, ret in zip(r["latency_trial2"], r["retention"])]
        lines.append(f"| {name} | {_fmt(sorted(first)[len(first) // 2] if first else None)} | "
                     + " | ".join(cells) + " |")
    if all("one_shot_ratio" in r for r in results.values()):  # the dark after every trial
        lines += ["", "One-shot ratio (median trial 1 / pooled median trials 2-4) per delay:", "",
                  "| model | " + " | ".join(f"delay {d}" for d in delays) + " |",
                  "|" + "|".join("---" for _ in range(len(delays) + 1)) + "|"]
        for name, r in results.items():
            lines.append(f"| {name} | " + " | ".join(
                "n/a" if v is None or math.isnan(v) else f"{v:.2f}" for v in r["one_shot_ratio"])
                + " |")
    lines += _extra_tables(results, delays)
    return "\n".join(lines) + "\n"


def _extra_tables(results: dict[str, dict[str, Any]], delays: list[int]) -> list[str]:
    """Trial-2 success per delay (and the trial-2 probe's target-quadrant fraction where
    measured); mean +- 95 % CI half-width across training seeds for pooled conditions."""
    def cell(value: float | None, ci: list[float | None] | None) -> str:
        if value is None:
            return "n/a"
        if ci and ci[0] is not None:
            return f"{value:.2f} ± {(ci[1] - ci[0]) / 2:.2f}"
        return f"{value:.2f}"

    lines = []
    tables = [("success_trial2", "Trial-2 success (escaped within the time-out)")]
    if all("probe_quadrant" in single_probe(r) for r in results.values()):
        tables.append(("probe_quadrant", "Trial 2 as a probe: time in the target quadrant "
                       "(chance 0.25)"))
    if all("state_bytes" in r for r in results.values()):
        lines += ["", "State carried across the delay (bytes per episode, after a trial 1 that times out, "
                  "its rest and the delay) and the longest delay bridged (trial-2 success >= "
                  f"{KEPT_SUCCESS}, median latency <= 2 straight swims; pooled: on the means):", "",
                  "| model | longest delay bridged | " + " | ".join(f"delay {d}" for d in delays)
                  + " |", "|" + "|".join("---" for _ in range(len(delays) + 2)) + "|"]
        for name, r in results.items():
            up = r["kept_up_to"]
            lines.append(f"| {name} | {'none' if up is None else up} | "
                         + " | ".join(f"{b:,}" for b in r["state_bytes"]) + " |")
    for key, text in tables:
        lines += ["", f"{text} per delay:", "",
                  "| model | seeds | " + " | ".join(f"delay {d}" for d in delays) + " |",
                  "|" + "|".join("---" for _ in range(len(delays) + 2)) + "|"]
        for name, r in results.items():
            r = single_probe(r)
            cis = r.get(f"{key}_ci") or [None] * len(delays)
            lines.append(f"| {name} | {r.get('n_seeds', 1)} | "
                         + " | ".join(cell(v, c) for v, c in zip(r[key], cis)) + " |")
    return lines


def _fmt(latency: float | None, kept: float | None = None) -> str:
    if latency is None:
        return "n/a"
    return f"{latency:.0f}" if kept is None else f"{latency:.0f} ({kept:.2f})"


SEED_KEYS = ("latency_trial1", "latency_trial2", "success_trial2", "optimal_trial2", "retention")
"""Per-delay numbers that :func:`combine_seeds` averages over training seeds."""


def combine_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """One condition over training seeds: the :func:`retention` results of its networks (the
    same delays and episodes) as one result of the same shape, each per-delay number the mean
    over seeds, with 95 % t-intervals across seeds in ``latency_trial2_ci`` (replacing the
    bootstrap of one network; a condition of one network keeps its bootstrap), ``success_trial2_ci``
    and, with probes, ``probe_quadrant`` / ``probe_quadrant_ci``; ``seeds`` keeps every network's
    own result."""
    from snn_icl.experiments.report import mean_interval as across

    if not per_seed:
        raise ValueError("combine_seeds needs at least one result")
    delays = per_seed[0]["delays"]
    if any(r["delays"] != delays for r in per_seed):
        raise ValueError("every seed of a condition must be measured at the same delays")
    out: dict[str, Any] = {k: per_seed[0][k] for k in ("delays", "episodes", "seed", "dark",
                                                      "memory_horizon", "rest_steps")}
    out["n_seeds"] = len(per_seed)

    for key in SEED_KEYS:
        pairs = [across([r[key][i] for r in per_seed]) for i in range(len(delays))]
        out[key] = [p[0] for p in pairs]
        if key in ("latency_trial2", "success_trial2"):
            out[f"{key}_ci"] = [p[1] for p in pairs]
    if len(per_seed) == 1:  # no spread across seeds to show: keep the episodes' bootstrap
        out["latency_trial2_ci"] = per_seed[0]["latency_trial2_ci"]
    out["episodes_trial2"] = [sum(r["episodes_trial2"][i] for r in per_seed)
                              for i in range(len(delays))]
    if all("state_bytes" in r for r in per_seed):
        out["state_bytes"] = per_seed[0]["state_bytes"]
        out["kept"] = [bridged(lat, ok, opt) for lat, ok, opt in
                       zip(out["latency_trial2"], out["success_trial2"], out["optimal_trial2"])]
        out["kept_up_to"] = _kept_up_to(delays, out["kept"])
        out["kept_up_to_by_seed"] = [r["kept_up_to"] for r in per_seed]
    if all("probe_trial2" in r for r in per_seed):
        pairs = [across([r["probe_trial2"][i]["probe_target_quadrant_fraction"] for r in per_seed])
                 for i in range(len(delays))]
        out["probe_quadrant"] = [p[0] for p in pairs]
        out["probe_quadrant_ci"] = [p[1] for p in pairs]
    out["seeds"] = per_seed
    return out


def single_probe(result: dict[str, Any]) -> dict[str, Any]:
    """A one-network result with its probe numbers in the per-condition form of
    :func:`combine_seeds` (``probe_quadrant``; no interval across seeds)."""
    if "probe_trial2" in result and "probe_quadrant" not in result:
        result = {**result, "probe_quadrant": [p["probe_target_quadrant_fraction"]
                                               for p in result["probe_trial2"]]}
    return result


def sweep_groups(sweep_dir: Any) -> dict[str, list[Any]]:
    """The finished runs of a sweep directory by condition ("task" or "task/setting"): the
    training seeds that :func:`combine_seeds` pools."""
    from pathlib import Path

    from snn_icl.experiments.sweep import SWEEP_FILE
    from snn_icl.storage import files

    sweep_dir = Path(sweep_dir)
    record = files.read_json(sweep_dir / SWEEP_FILE)
    groups: dict[str, list[Any]] = {}
    for entry in record["runs"]:
        run = sweep_dir / entry["dir"]
        status = files.read_json(run / "run.json").get("status") if (run / "run.json").is_file() else None
        if status != "done":
            continue
        label = entry["task"] if entry["setting"] == "default" else f"{entry['task']}/{entry['setting']}"
        groups.setdefault(label, []).append(run)
    if not groups:
        raise ValueError(f"{sweep_dir}: no finished run to measure (sweep.json lists "
                         f"{len(record['runs'])}, none done)")
    return groups


def _measure_one(source: str, delays: list[int], episodes: int, seed: int, every_trial: bool,
                 probe: bool) -> dict[str, Any]:
    """One network's :func:`retention` (a call of :func:`retention_many`)."""
    from snn_icl.storage.checkpoint import load_agent, resolve

    agent, task, _ = load_agent(resolve(source))
    return retention(agent, task, delays, episodes, seed, every_trial=every_trial, probe=probe,
                     progress=False)


def retention_many(sources: list[str], delays: list[int], episodes: int, seed: int, *,
                   workers: int = 1, every_trial: bool = False, probe: bool = False,
                   progress: bool = True) -> list[dict[str, Any]]:
    """:func:`retention` of each network in ``sources`` (checkpoints, run directories,
    pretrained names), in order; with ``workers`` > 1 in that many processes at once, one torch
    thread each (the same numbers as one by one: every network sees the same episodes)."""
    from snn_icl.experiments.workers import in_processes

    args = (delays, episodes, seed, every_trial, probe)
    return in_processes(_measure_one, [(s, *args) for s in sources], workers=workers,
                        preload="snn_icl.experiments.retention", progress=progress)
