"""``snn-icl silent-memory``: is an LSNN's memory of the platform activity-silent across a delay?

One command, one network, held-out episodes with a dark delay of ``delay`` env steps between
trials 1 and 2 (:mod:`snn_icl.analysis.silent_memory` says what each part measures):
behaviour after the delay, firing rates during it, decoding of the platform along it, the causal
resets and swap at its end, and the bytes of state the memory costs. The targets of
docs/silent_memory.md are checked in ``targets``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from snn_icl.analysis import silent_memory as sm
from snn_icl.episodes.measures import behaviour, trial2_by_trial1
from snn_icl.experiments.retention import KEPT_SUCCESS, bridged
from snn_icl.models import frozen, weights_sha256

SILENT_RATIO = 1 / 3
"""Activity-silent: the mean rate over the delay at most this fraction of the swimming rate."""
LOST_MARGIN = 0.1
"""Memory lost: trial-2 success within this of trial 1's (no better than a search)."""


def silent_memory(agent: nn.Module, task: Any, delay: int, episodes: int, seed: int, *,
                  batch: int = 64, progress: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """(result for JSON, data for the figure: one episode's spikes and thresholds around the
    delay). Weights are checked unchanged."""
    from tqdm.auto import tqdm

    frozen(agent)
    before = weights_sha256(agent)
    k, n_regular = agent.ms_per_step, agent.n_regular
    bar = tqdm(total=4, desc="silent memory", disable=not progress, leave=False)
    sim, recorded = sm.record_delay(agent, task, delay, episodes, seed, batch=batch)
    env = sm.delay_task(task, delay).env
    b = behaviour(sim, env, 2)
    bar.update(1)
    cue = sm.cue_steps(task, delay)
    rates = sm.delay_rates(sim, k, n_regular, cue_steps=cue)
    decoding = sm.delay_decoding(sim, recorded, k, n_regular, seed=seed)
    membrane = sm.delay_membrane(sim, recorded, agent.net.params.v_th, cue_steps=cue)
    bar.update(1)
    causal = sm.delay_causal(agent, task, delay, episodes, seed, batch=batch)
    bar.update(1)
    steps = [0, delay, 4 * delay]
    cost = dict(zip((str(s) for s in steps), sm.state_bytes(agent, task.env.obs_dim, steps)))
    bar.update(1)
    bar.close()
    if weights_sha256(agent) != before:
        raise RuntimeError("weights changed during the silent-memory analysis")
    optimum = b["optimal_latency_by_trial"][1]
    result = {
        "delay": delay, "episodes": episodes, "seed": seed, "ms_per_step": k,
        "delay_ms": delay * k, "recall_cue_steps": cue, "tau_a_ms": agent.net.params.tau_a_ms,
        "tau_m_ms": agent.net.params.tau_m_ms,
        "beta": agent.net.params.beta,
        "behaviour": {"latency_trial1": b["latency_by_trial"][0],
                      "latency_trial2": b["latency_by_trial"][1],
                      "success_trial1": b["success_by_trial"][0],
                      "success_trial2": b["success_by_trial"][1],
                      "optimal_trial2": optimum,
                      # where the failures are: after a trial 1 found, or timed out and placed
                      **trial2_by_trial1(sim, env)},
        "rates": rates, "membrane": membrane, "decoding": decoding, "causal": causal,
        "state_bytes_by_delay": cost,
        "weights_sha256": before,
    }
    result = _no_nan(result)
    result["targets"] = targets(result)
    e = _typical_episode(sim)
    data = {"episode": e, "sim": sim.select(e), "window": _window(sim, e),
            "n_regular": n_regular, "ms_per_step": k, "v_th": agent.net.params.v_th}
    return result, data


def _no_nan(x: Any) -> Any:
    """NaN (a decoding bin or latency with no episodes in it) as None, which JSON can hold."""
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_no_nan(v) for v in x]
    return None if isinstance(x, float) and x != x else x


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with the numbers it was judged on (None where not measurable)."""
    b, c = result["behaviour"], result["causal"]
    lat2, opt = b["latency_trial2"], b["optimal_trial2"]
    kept = bridged(lat2, b["success_trial2"], opt)

    def lost(cond: dict[str, Any]) -> bool | None:
        s1, s2 = cond["success_trial1"], cond["success_trial2"]
        return None if s1 is None or s2 is None else s2 - s1 <= LOST_MARGIN

    rate = result["rates"]["all"]
    silent = rate["delay_over_swim"] is not None and rate["delay_over_swim"] <= SILENT_RATIO
    lost_a, lost_v_z = lost(c["reset_a_end"]), lost(c["reset_v_z_end"])
    return {
        "memory_kept": kept,
        "memory_kept_rule": f"trial-2 median latency <= 2 x straight swim ({opt}) and success "
                            f">= {KEPT_SUCCESS}",
        "lost_after_reset_a": lost_a,
        "kept_after_reset_v_z": None if lost_v_z is None else not lost_v_z,
        "lost_rule": f"trial-2 success within {LOST_MARGIN} of trial 1's",
        "activity_silent_causal": bool(kept and lost_a and lost_v_z is False),
        "silent": silent,
        "silent_rule": f"mean rate in the delay <= {SILENT_RATIO:.2f} x the swimming rate",
    }


def _typical_episode(sim: Any) -> int:
    """An episode whose trial 1 escaped (so the delay follows a found platform), else 0."""
    first = (sim.trial_end & (sim.trial[1:] == 0) & sim.escaped).any(0)
    found = first.nonzero().flatten()
    return int(found[0]) if len(found) else 0


def _window(sim: Any, e: int, margin: int = 20) -> tuple[int, int]:
    """Env steps [start, stop) around episode ``e``'s delay: ``margin`` steps either side."""
    dark = sim.dark[:, e].nonzero().flatten()
    lo, hi = int(dark[0]), int(dark[-1]) + 1
    return max(0, lo - margin), min(sim.dark.shape[0], hi + margin)


def markdown(result: dict[str, Any]) -> str:
    """The result as a short Markdown report."""
    b, r, c, t = result["behaviour"], result["rates"], result["causal"], result["targets"]

    def f(x: Any, fmt: str = ".2f") -> str:
        return "n/a" if x is None else format(x, fmt)

    lines = [f"# Silent delay of {result['delay']} env steps ({result['delay_ms']} ms; "
             f"tau_a {result['tau_a_ms']:g} ms, beta {result['beta']:g})", "",
             f"{result['episodes']} episodes, seed {result['seed']}."
             + (f" Recall cue on the delay's last {result['recall_cue_steps']} steps: the delay "
                "rate leaves them out, the manipulations act at the cue's start."
                if result.get("recall_cue_steps") else ""), "",
             "| trial | median latency | success |", "|---|---|---|",
             f"| 1 | {f(b['latency_trial1'], '.0f')} | {f(b['success_trial1'])} |",
             f"| 2 (after the delay) | {f(b['latency_trial2'], '.0f')} | {f(b['success_trial2'])} |",
             f"| straight swim | {f(b['optimal_trial2'], '.0f')} | |", "",
             "Trial 2 by how trial 1 ended (found the platform / timed out and placed on it):", "",
             "| trial 1 | episodes | trial-2 median latency | trial-2 success |", "|---|---|---|---|",
             *(f"| {name} | {b.get('episodes_' + name, 'n/a')} | "
               f"{f(b.get('latency_trial2_' + name), '.0f')} | "
               f"{f(b.get('success_trial2_' + name))} |" for name in ("found", "placed")), "",
             "| rate (Hz) | swimming, trial 1 | delay | delay / swimming |", "|---|---|---|---|"]
    for g in ("all", "regular", "adaptive"):
        lines.append(f"| {g} | {f(r[g]['swim_hz'], '.1f')} | {f(r[g]['delay_hz'], '.1f')} | "
                     f"{f(r[g]['delay_over_swim'])} |")
    d = result["decoding"]
    lines += ["", "Platform decoding error along the delay (pool radii; chance = training mean):",
              "", "| variable | " + " | ".join(f"step {x:.0f}" for x in d["bin_centres_steps"])
              + " |", "|" + "|".join("---" for _ in range(len(d["bin_centres_steps"]) + 1)) + "|"]
    for name in ("a (adaptive)", "v", "spikes"):
        lines.append(f"| {name} | " + " | ".join(f(x) for x in d[name]["error"]) + " |")
    lines.append("| chance | " + " | ".join(f(x) for x in d["spikes"]["chance_mean"]) + " |")
    m = result.get("membrane")
    if m:
        e = m["bin_edges_steps"]
        lines += ["", "Membrane potential along the delay (units of v_th; below rest = fraction "
                  "with v < 0; across episodes = SD of each neuron's mean v over episodes):", "",
                  "| v | swimming | " + " | ".join(f"steps {lo:.0f}-{hi:.0f}"
                                                   for lo, hi in zip(e[:-1], e[1:])) + " |",
                  "|" + "|".join("---" for _ in range(len(e) + 1)) + "|"]
        for key, label in (("mean", "mean"), ("below_rest", "below rest"),
                           ("across_episodes_sd", "across episodes")):
            lines.append(f"| {label} | {f(m['swim'][key], '.3f')} | "
                         + " | ".join(f(x[key], ".3f") for x in m["delay_bins"]) + " |")
    lines += ["", "Causal tests at the end of the delay:", "",
              "| condition | trial-2 latency | trial-2 success | heads to partner's platform | "
              "near partner's platform first |", "|---|---|---|---|---|"]
    for name, x in c.items():
        lines.append(f"| {name}: {x['description']} | {f(x['latency_trial2'], '.0f')} | "
                     f"{f(x['success_trial2'])} | {f(x['toward_other_fraction'])} | "
                     f"{f(x.get('other_zone_first_fraction'))} |")
    lines += ["", "State carried (bytes per episode) after a delay of d env steps: "
              + ", ".join(f"d = {k}: {v}" for k, v in result["state_bytes_by_delay"].items()), "",
              "Targets: " + ", ".join(f"{k} = {v}" for k, v in t.items() if not k.endswith("rule"))]
    return "\n".join(lines) + "\n"


def training_curves(folder: Any) -> dict[str, list[dict[str, list[float]]]]:
    """The shipped fine-tuning curves (snn_icl/pretrained/silent_memory/CONDITION_seedS_metrics
    .csv, or a folder laid out the same way): condition -> one dict of columns per seed."""
    import csv
    import re
    from pathlib import Path

    runs: dict[str, list[dict[str, list[float]]]] = {}
    for path in sorted(Path(folder).glob("*_seed*_metrics.csv")):
        name = re.sub(r"_seed\d+_metrics\.csv$", "", path.name)
        with path.open() as f:
            rows = list(csv.DictReader(f))
        cols = {k: [float(r[k]) if r[k] not in ("", None) else float("nan") for r in rows]
                for k in rows[0]} if rows else {}
        runs.setdefault(name, []).append(cols)
    if not runs:
        raise ValueError(f"{folder}: no CONDITION_seedS_metrics.csv files")
    return runs
