"""One protocol's evaluations of several agents, pooled over training seeds, as water-maze papers
report them: per agent the mean and 95 % t-interval across networks of each measure the
protocol is scored by (docs/protocols.md).

Input: ``{label: [eval JSON of one network, ...]}``, every JSON from ``snn-icl evaluate`` with the
same protocol, seed and episodes (so the episodes are the same for every network). One network
per label gives its own numbers (no interval). Latencies in swim steps (medians over episodes,
then the mean over networks), fractions of episodes or of swim steps.
"""

from __future__ import annotations

from typing import Any

from snn_icl.experiments.report import mean_ci

MEASURES: dict[str, tuple[tuple[str, str], ...]] = {
    "dmp": (("latency_trial1", "trial 1 latency"), ("latency_trials2_4", "trials 2-4 latency"),
            ("one_shot_ratio", "one-shot ratio"),
            ("probe_target_quadrant_fraction", "probe: target quadrant (chance 0.25)"),
            ("probe_platform_crossings", "probe: platform crossings"),
            ("probe_mean_distance", "probe: mean distance to platform")),
    "probe": (("probe_target_quadrant_fraction", "target quadrant (chance 0.25)"),
              ("probe_platform_crossings", "platform crossings"),
              ("probe_mean_distance", "mean distance to platform"),
              ("probe_first_crossing", "first crossing (swim steps)")),
    "reversal": (("old_zone_entry_fraction", "old-zone entry fraction"),
                 ("old_quadrant_fraction", "old quadrant"), ("new_quadrant_fraction", "new quadrant"),
                 ("reversal_latency", "reversal trial latency"),
                 ("reversal_success", "reversal trial success"),
                 ("next_latency", "next trial latency"), ("next_success", "next trial success")),
    "reference": (("latency_trial1", "trial 1 latency"), ("success_trial1", "trial 1 success"),
                  ("latency_trials2_4", "trials 2-4 latency"), ("one_shot_ratio", "one-shot ratio"),
                  ("probe_target_quadrant_fraction", "probe: target quadrant (chance 0.25)")),
    "cued": (("cued_latency_trial1", "trial 1 latency, platform visible"),
             ("hidden_latency_trial1", "trial 1 latency, platform hidden"),
             ("cued_latency_trials2_4", "trials 2-4 latency, visible"),
             ("hidden_latency_trials2_4", "trials 2-4 latency, hidden"),
             ("cued_path_efficiency_trial1", "trial 1 path / straight line, visible"),
             ("hidden_path_efficiency_trial1", "trial 1 path / straight line, hidden")),
}
"""Per protocol: (key, description) of the measures pooled over networks."""


def _name(result: dict[str, Any]) -> str:
    return result.get("protocol", {}).get("name", "dmp")


def measures(result: dict[str, Any]) -> dict[str, Any]:
    """The protocol's measures of one evaluation (the agent, not the controls), flat, plus its
    latency by trial (``latency_by_trial``; for cued ``cued_`` / ``hidden_`` prefixed)."""
    name, block = _name(result), result.get("protocol", {}).get("agent", {})
    if name == "cued":
        out: dict[str, Any] = {}
        for view in ("cued", "hidden"):
            b = block[view]
            out[f"{view}_latency_by_trial"] = b["latency_by_trial"]
            out[f"{view}_latency_trial1"] = b["latency_by_trial"][0]
            out[f"{view}_latency_trials2_4"] = b["latency_trials2_4"]
            out[f"{view}_path_efficiency_trial1"] = b["path_efficiency_by_trial"][0]
        return out
    out = {"latency_by_trial": result["latency_by_trial"],
           "latency_trial1": result["latency_by_trial"][0]}
    if name in ("reversal", "reference"):
        return {**out, **block}
    return {**out, **{key: result.get(key) for key, _ in MEASURES[name]
                      if key not in out}}


def _check_same(groups: dict[str, list[dict[str, Any]]]) -> str:
    results = [r for rs in groups.values() for r in rs]
    if not results or any(not rs for rs in groups.values()):
        raise ValueError("every label needs at least one evaluation JSON")
    names = {_name(r) for r in results}
    if len(names) > 1:
        raise ValueError(f"the evaluations mix protocols ({', '.join(sorted(names))}); "
                         "give one protocol per figure")
    for key in ("seed", "episodes"):
        values = {r.get(key) for r in results}
        if len(values) > 1:
            raise ValueError(f"the evaluations differ in {key} ({sorted(map(str, values))}): "
                             "the same episodes are needed for a comparison")
    return names.pop()


def _pool_by_trial(rows: list[list[float | None]]) -> dict[str, list[Any]]:
    n = min(len(r) for r in rows)
    cells = [mean_ci([r[k] for r in rows]) for k in range(n)]
    return {"mean": [c["mean"] for c in cells], "ci95": [c["ci95"] for c in cells]}


def summarise(groups: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """``{label: [eval JSON, ...]}`` -> the pooled summary (see the module docstring):
    ``{"protocol", "seed", "seed_kind", "episodes", "settings", "straight_swim" (trial 1's
    median straight-swim latency, swim steps), "agents": {label: {"n",
    measure: {"mean", "ci95", "values"}, "<x>latency_by_trial": {"mean", "ci95"}}}}``."""
    name = _check_same(groups)
    first = next(iter(groups.values()))[0]
    settings = {k: v for k, v in first.get("protocol", {}).items()
                if k not in ("agent", "control_no_memory", "control_random")}
    agents: dict[str, Any] = {}
    for label, results in groups.items():
        per = [measures(r) for r in results]
        entry: dict[str, Any] = {"n": len(per)}
        for key, _ in MEASURES[name]:
            values = [m.get(key) for m in per]
            entry[key] = {**mean_ci(values), "values": values}
        for key in [k for k in per[0] if k.endswith("latency_by_trial")]:
            entry[key] = _pool_by_trial([m[key] for m in per])
        agents[label] = entry
    return {"protocol": name, "seed": first.get("seed"), "seed_kind": first.get("seed_kind"),
            "episodes": first.get("episodes"), "settings": settings,
            "straight_swim": first.get("optimal_latency_by_trial", [None])[0], "agents": agents}


def _cell(m: dict[str, Any]) -> str:
    if m["mean"] is None:
        return "-"
    text = f"{m['mean']:.3g}"
    return text if m["ci95"] is None else f"{text} ± {m['ci95']:.2g}"


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table: one row per agent, one column per measure."""
    name = summary["protocol"]
    cols = MEASURES[name]
    lines = [f"Protocol `{name}`, {summary['seed_kind']} seed {summary['seed']}, "
             f"{summary['episodes']} episodes per network; mean ± 95 % t-interval across "
             "networks (training seeds) where n > 1.", "",
             "| agent | n | " + " | ".join(text for _, text in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for label, entry in summary["agents"].items():
        lines.append(f"| {label} | {entry['n']} | "
                     + " | ".join(_cell(entry[key]) for key, _ in cols) + " |")
    return "\n".join(lines) + "\n"
