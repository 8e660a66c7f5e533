"""Is the memory across a dark delay activity-silent, over training seeds?

``snn-icl silent-memory LABEL=SRC,SRC,...``: the :func:`~snn_icl.experiments.silent_memory.
silent_memory` results of the networks of one condition (its training seeds) pooled: for each
number, the mean over networks with a 95 % t-interval and every network's own value. The causal
tests are read as *changes from intact*, paired per network (the same episodes), because the
networks differ in how well they recall at all: an adaptation memory makes ``reset_a_end`` and
``swap_a_end`` lengthen trial 2 and ``swap_a_end`` turn it towards the partner's platform; a
memory in ongoing activity does that for ``reset_v_z_end``.
"""

from __future__ import annotations

from typing import Any, Callable

from snn_icl.analysis.silent_memory import CAUSAL
from snn_icl.experiments.report import mean_interval

BEHAVIOUR = ("latency_trial1", "latency_trial2", "success_trial1", "success_trial2",
             "optimal_trial2", "success_trial2_found", "success_trial2_placed",
             "latency_trial2_found", "latency_trial2_placed")
"""Per network: the trial medians and successes, and trial 2 split by how trial 1 ended
(found the platform, or timed out and placed on it; None in results written before the split)."""
CAUSAL_MEASURES = ("latency_trial2", "success_trial2", "toward_other_fraction",
                   "other_zone_first_fraction")
"""Per causal condition: trial-2 median latency (env steps), success, the fraction of episodes
whose first trial-2 steps point more towards the partner's platform than the own, and the
fraction of trial-2 searches that come near the partner's platform before the own (both 0.5:
no memory of either place; the last is None in results written before it existed)."""
DECODED = ("a (adaptive)", "v", "spikes")


def across(values: list[float | None]) -> dict[str, Any]:
    """{"mean", "ci": [lo, hi] (95 % t-interval; [None, None] with fewer than 2), "values"}
    (None, as the silent-memory results write NaN, is left out of the mean)."""
    mean, ci = mean_interval(values)
    return {"mean": mean, "ci": ci, "values": list(values)}


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def pool(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Silent-memory results of one condition's networks (same delay, episodes and seed) -> one
    pooled result: ``behaviour``, ``memory`` (trial-2 minus trial-1 success, per network: what
    the delay left of the one-shot memory), ``rate_delay_over_swim`` (all neurons),
    ``decoding_end`` (decoding error at the delay's last bin, pool radii), ``membrane_end``
    (``v`` in units of ``v_th`` over the last dark steps: mean, share below rest, the part that
    differs between episodes), ``causal[cond][measure]`` and
    ``causal[cond][measure + "_change"]`` (minus intact, per network), each an :func:`across`
    dict; ``silent_by_network``; ``networks`` (every network's own result)."""
    if not results:
        raise ValueError("pooling needs at least one silent-memory result")
    for key in ("delay", "episodes", "seed"):
        if len({r[key] for r in results}) > 1:
            raise ValueError(f"every network of a condition must be measured with the same "
                             f"{key}, got {sorted({r[key] for r in results})}")
    first = results[0]
    out: dict[str, Any] = {k: first[k] for k in ("delay", "episodes", "seed", "ms_per_step",
                                                 "delay_ms")}
    out["n_networks"] = len(results)
    out["beta"] = sorted({r["beta"] for r in results})
    out["tau_a_ms"] = sorted({r["tau_a_ms"] for r in results})
    out["behaviour"] = {k: across([r["behaviour"].get(k) for r in results]) for k in BEHAVIOUR}
    out["memory"] = across([_minus(r["behaviour"]["success_trial2"],
                                   r["behaviour"]["success_trial1"]) for r in results])
    out["rate_delay_over_swim"] = across([r["rates"]["all"]["delay_over_swim"] for r in results])
    out["decoding_end"] = {v: across([r["decoding"][v]["error"][-1] for r in results])
                           for v in DECODED}
    out["decoding_chance_end"] = across([r["decoding"]["spikes"]["chance_mean"][-1]
                                         for r in results])
    # v below threshold where the cue (or trial 2) meets it; None for results written before it
    out["membrane_end"] = {m: across([r.get("membrane", {}).get("end", {}).get(m)
                                      for r in results])
                           for m in ("mean", "below_rest", "across_episodes_sd")}
    causal: dict[str, Any] = {}
    for cond in CAUSAL:
        c: dict[str, Any] = {}
        for m in CAUSAL_MEASURES:
            # results written before a manipulation or measure existed pool with None there
            c[m] = across([r["causal"].get(cond, {}).get(m) for r in results])
            if cond != "intact":
                c[f"{m}_change"] = across([_minus(r["causal"].get(cond, {}).get(m),
                                                  r["causal"]["intact"].get(m))
                                           for r in results])
        causal[cond] = c
    out["causal"] = causal
    out["silent_by_network"] = [r["targets"]["silent"] for r in results]
    out["networks"] = results
    return out


def check_pairing(sizes: dict[str, int], reference: str) -> None:
    """Raises ValueError unless ``reference`` names a condition and every condition
    (label -> number of networks) has as many networks as it."""
    if reference not in sizes:
        raise ValueError(f"--paired-to {reference!r} names no condition (conditions: "
                         f"{', '.join(sizes)})")
    for label, n in sizes.items():
        if n != sizes[reference]:
            raise ValueError(f"--paired-to {reference!r}: condition {label!r} has {n} networks, "
                             f"{reference!r} {sizes[reference]}; pairing needs the same number, "
                             "in the same seed order")


def paired(pooled: dict[str, dict[str, Any]], reference: str) -> dict[str, dict[str, Any]]:
    """Each other condition's ``memory`` minus the ``reference`` condition's, network by network
    in the order given (the i-th networks of two conditions share their starting weights or
    training seed): label -> :func:`across` dict. Raises ValueError as :func:`check_pairing`."""
    check_pairing({label: p["n_networks"] for label, p in pooled.items()}, reference)
    ref = pooled[reference]["memory"]["values"]
    return {label: across([_minus(v, r) for v, r in zip(p["memory"]["values"], ref)])
            for label, p in pooled.items() if label != reference}


def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def _cell(s: dict[str, Any], fmt: str = ".2f") -> str:
    """mean [lo, hi] (v1, v2, ...)."""
    lo, hi = s["ci"]
    ci = "" if lo is None else f" [{_f(lo, fmt)}, {_f(hi, fmt)}]"
    each = ", ".join(_f(v, fmt) for v in s["values"])
    return f"{_f(s['mean'], fmt)}{ci} ({each})"


def _table(pooled: dict[str, dict[str, Any]], columns: list[str],
           cells: Callable[[dict[str, Any]], list[str]]) -> list[str]:
    """A Markdown table, one row per condition: its label, then ``cells`` of its entry."""
    return (["| condition | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
            + [f"| {label} | " + " | ".join(cells(p)) + " |" for label, p in pooled.items()])


def markdown(pooled: dict[str, dict[str, Any]], seed_kind: str,
             paired_to: str | None = None,
             differences: dict[str, dict[str, Any]] | None = None) -> str:
    """Conditions (label -> :func:`pool` result) as one Markdown report: each cell the mean over
    networks, its 95 % t-interval in brackets and every network's value in parentheses; with
    ``paired_to``, each condition's memory against that one's, paired per network
    (``differences``: :func:`paired`'s result, computed here when not given)."""
    some = next(iter(pooled.values()))
    lines = [f"# Silent delay of {some['delay']} env steps ({some['delay_ms']} ms), pooled over "
             "networks", "",
             f"{some['episodes']} episodes per network, {seed_kind} seed {some['seed']}. Each "
             "cell: mean [95 % t-interval across networks] (each network).", "",
             "Memory: trial-2 minus trial-1 success, per network.", ""]
    lines += _table(pooled, ["networks", "trial-1 latency", "trial-2 latency", "trial-2 success",
                             "memory", "delay rate / swimming rate"],
                    lambda p: [str(p["n_networks"]), _cell(p["behaviour"]["latency_trial1"], ".0f"),
                               _cell(p["behaviour"]["latency_trial2"], ".0f"),
                               _cell(p["behaviour"]["success_trial2"]),
                               _cell(p["memory"], "+.2f"), _cell(p["rate_delay_over_swim"])])
    lines += ["", "Trial 2 by how trial 1 ended: after a trial 1 that found the platform, and "
              "after one that timed out, the swimmer placed on the platform:", ""]
    lines += _table(pooled, ["success, found", "success, placed", "median latency, found",
                             "median latency, placed"],
                    lambda p: [_cell(p["behaviour"]["success_trial2_found"]),
                               _cell(p["behaviour"]["success_trial2_placed"]),
                               _cell(p["behaviour"]["latency_trial2_found"], ".0f"),
                               _cell(p["behaviour"]["latency_trial2_placed"], ".0f")])
    if paired_to is not None:
        lines += ["", f"Memory against {paired_to}, paired per network (the i-th networks of "
                  "the two conditions share their starting weights):", ""]
        lines += _table(paired(pooled, paired_to) if differences is None else differences,
                        [f"memory minus {paired_to}'s"], lambda d: [_cell(d, "+.2f")])
    lines += ["", "Platform decoding error at the end of the delay (pool radii):", ""]
    lines += _table(pooled, [*DECODED, "chance"],
                    lambda p: [*(_cell(p["decoding_end"][v]) for v in DECODED),
                               _cell(p["decoding_chance_end"])])
    lines += ["", "Membrane potential over the last dark steps before the cue (units of v_th; "
              "below rest: share with v < 0; across episodes: the part that differs between "
              "episodes):", ""]
    lines += _table(pooled, ["mean v", "below rest", "across episodes"],
                    lambda p: [_cell(p["membrane_end"][k], ".3g")
                               if k in (p.get("membrane_end") or {}) else "n/a"
                               for k in ("mean", "below_rest", "across_episodes_sd")])
    lines += ["", "Causal tests at the end of the delay, as changes from intact (paired per "
              "network; heading: fraction of episodes whose first trial-2 steps point more "
              "towards the partner's platform; partner first: fraction of the trial-2 searches "
              "that come within two platform radii of the partner's platform before the own; "
              "0.5 = no memory of either place):", "",
              "| condition | manipulation | trial-2 latency change | success change | "
              "heading change | heading | partner first |", "|---|---|---|---|---|---|---|"]
    for label, p in pooled.items():
        c = p["causal"]
        lines.append(f"| {label} | intact | | | | {_cell(c['intact']['toward_other_fraction'])} "
                     f"| {_cell(c['intact']['other_zone_first_fraction'])} |")
        for cond in CAUSAL[1:]:
            x = c[cond]
            lines.append(f"| {label} | {cond} | {_cell(x['latency_trial2_change'], '+.0f')} | "
                         f"{_cell(x['success_trial2_change'], '+.2f')} | "
                         f"{_cell(x['toward_other_fraction_change'], '+.2f')} | "
                         f"{_cell(x['toward_other_fraction'])} | "
                         f"{_cell(x['other_zone_first_fraction'])} |")
    return "\n".join(lines) + "\n"
