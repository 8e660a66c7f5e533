"""The silent-memory figure: one delay's raster with the thresholds under it, the rates along
the delay, the platform decoding along it and the causal tests at its end
(:mod:`snn_icl.experiments.silent_memory`)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from snn_icl.viz.looks import colour


def _arr(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], float)


def plot_silent_memory(result: dict[str, Any], data: dict[str, Any]) -> Figure:
    """Six panels: (a) spikes of one episode around its delay (grey band: the dark) and (b) the
    adaptive thresholds under them; (c) the mean rate in bins along the delay against the
    swimming rate; (d) platform decoding error along the delay from a, v and spikes against
    chance; (e) trial-2 success after each manipulation at the end of the delay; (f) the
    episode-specific part of v along the delay against a decay with tau_m (results without
    ``membrane`` leave (f) out)."""
    sim, (lo, hi), k = data["sim"], data["window"], data["ms_per_step"]
    n_regular = data["n_regular"]
    membrane = result.get("membrane")
    fig = plt.figure(figsize=(17 if membrane else 13, 7))
    grid = fig.add_gridspec(3, 2, height_ratios=[2.2, 1, 2.2], hspace=0.45, wspace=0.25)
    ax_r, ax_a = fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, :])
    z = sim.z[lo * k:hi * k, 0].numpy().astype(bool)
    A = sim.A[lo * k:hi * k, 0].numpy()
    t = (np.arange(z.shape[0]) + lo * k)
    dark = sim.dark[:, 0].numpy()
    d0, d1 = np.flatnonzero(dark)[[0, -1]]
    for ax in (ax_r, ax_a):
        ax.axvspan(d0 * k, (d1 + 1) * k, color="0.85", lw=0)
    for rows, colour, label in ((np.arange(n_regular), "tab:blue", "regular"),
                                (np.arange(n_regular, z.shape[1]), "tab:orange", "adaptive")):
        ti, ni = np.nonzero(z[:, rows])
        ax_r.scatter(t[ti], rows[ni], s=1.5, marker="|", color=colour, lw=0.6, label=label)
    ax_r.set_ylabel("neuron")
    ax_r.legend(loc="upper right", fontsize=8, markerscale=6)
    ax_r.set_title(f"(a) one episode around its {result['delay']}-step dark delay (grey, "
                   f"{result['delay_ms']} ms): spikes", fontsize=10)
    sub = A[:, n_regular:]
    for j in range(min(sub.shape[1], 12)):
        ax_a.plot(t, sub[:, j], lw=0.5, color="tab:orange", alpha=0.5)
    ax_a.plot(t, sub.mean(1), lw=1.6, color="tab:red", label="mean over adaptive")
    ax_a.axhline(data["v_th"], color="0.4", ls=":", lw=0.8, label="v_th")
    ax_a.set_ylabel("threshold A")
    ax_a.set_xlabel("time (ms)")
    ax_a.legend(loc="upper right", fontsize=8)
    ax_a.set_title("(b) adaptive thresholds", fontsize=10)

    bottom = grid[2, :].subgridspec(1, 4 if membrane else 3, wspace=0.35)
    ax1, ax2, ax3 = (fig.add_subplot(bottom[0, i]) for i in range(3))
    if membrane:
        _plot_membrane(fig.add_subplot(bottom[0, 3]), membrane, result)
    r = result["rates"]
    edges = np.asarray(r["bin_edges_steps"])
    centres = (edges[:-1] + edges[1:]) / 2
    for g, colour in (("regular", "tab:blue"), ("adaptive", "tab:orange"), ("all", "k")):
        ax1.plot(centres, r[g]["delay_bins_hz"], "o-", ms=3, color=colour, label=f"{g}: delay")
        ax1.axhline(r[g]["swim_hz"], color=colour, ls="--", lw=0.8)
    ax1.axhline(r["all"]["swim_hz"] / 3, color="0.5", ls=":", lw=1, label="1/3 of swimming")
    ax1.set_xlabel("step in the delay")
    ax1.set_ylabel("rate (Hz); dashed: swimming")
    ax1.set_ylim(bottom=0)
    ax1.legend(fontsize=7, frameon=False)
    ax1.set_title("(c) firing along the delay", fontsize=10)

    d = result["decoding"]
    x = np.asarray(d["bin_centres_steps"])
    for name, colour in (("a (adaptive)", "tab:red"), ("v", "tab:green"), ("spikes", "tab:blue")):
        ax2.plot(x, _arr(d[name]["error"]), "o-", ms=3, color=colour, label=name)
    ax2.plot(x, _arr(d["spikes"]["chance_mean"]), "k--", lw=1, label="chance (mean)")
    ax2.plot(x, _arr(d["spikes"]["chance_shuffle"]), "k:", lw=1, label="chance (shuffled)")
    ax2.set_xlabel("step in the delay")
    ax2.set_ylabel("platform decoding error (pool radii)")
    ax2.set_ylim(bottom=0)
    ax2.legend(fontsize=7, frameon=False)
    ax2.set_title("(d) where the platform is", fontsize=10)

    c = result["causal"]
    names = list(c)
    s1 = _arr([c[n]["success_trial1"] for n in names])
    s2 = _arr([c[n]["success_trial2"] for n in names])
    pos = np.arange(len(names))
    ax3.bar(pos - 0.2, s1, 0.4, color="0.7", label="trial 1")
    ax3.bar(pos + 0.2, s2, 0.4, color="tab:purple", label="trial 2")
    ax3.set_xticks(pos, [n.replace("_end", "").replace("_", " ") for n in names], fontsize=8)
    ax3.set_ylim(0, 1.05)
    ax3.set_ylabel("success")
    ax3.legend(fontsize=7, frameon=False)
    ax3.set_title("(e) manipulations at the delay's end", fontsize=10)
    return fig


def _plot_membrane(ax: Any, m: dict[str, Any], result: dict[str, Any]) -> None:
    """(f): the across-episode SD of v (units of v_th, log scale) in bins along the delay, the
    swimming level, and exp(-t / tau_m) from the first bin: a trace that only relaxes follows it."""
    edges = np.asarray(m["bin_edges_steps"])
    centres = (edges[:-1] + edges[1:]) / 2
    sd = _arr([b["across_episodes_sd"] for b in m["delay_bins"]])
    ax.semilogy(centres, sd, "o-", ms=3, color="tab:green", label="v: SD across episodes")
    ax.axhline(m["swim"]["across_episodes_sd"], color="tab:green", ls="--", lw=0.8,
               label="swimming")
    tau_m = result.get("tau_m_ms")
    if tau_m and np.isfinite(sd[0]) and sd[0] > 0:
        steps_per_tau = tau_m / result["ms_per_step"]
        ax.semilogy(centres, sd[0] * np.exp(-(centres - centres[0]) / steps_per_tau), "k:",
                    lw=1, label=f"decay with tau_m = {tau_m:g} ms")
    ax.set_xlabel("step in the delay")
    ax.set_ylabel("v (units of v_th)")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("(f) the place in v below threshold", fontsize=10)


def _smooth(y: np.ndarray, width: int) -> np.ndarray:
    """Running mean over ``width`` iterations (NaN-aware, same length)."""
    ok = np.isfinite(y)
    kernel = np.ones(width)
    num = np.convolve(np.where(ok, y, 0.0), kernel, mode="same")
    den = np.convolve(ok.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def plot_delay_training(runs: dict[str, list[dict[str, list[float]]]], *,
                        stages: list[tuple[int, int]] | None = None, width: int = 25) -> Figure:
    """Fine-tuning with silent delays, one colour per condition (mean over its training seeds,
    band min-max, a running mean over ``width`` iterations): the median trial-2 latency of the
    training batches (trial 2 follows the delay) and the mean rate in the dark against the rate
    outside it. ``runs``: condition -> one dict of metric columns per seed (``iteration``,
    ``latency_trial2``, ``rate_dark_hz``, ``rate_light_hz``); ``stages``: (iteration, D) of the
    delay curriculum, marked."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
    for i, (name, seeds) in enumerate(runs.items()):
        n = min(len(s["iteration"]) for s in seeds)
        x = np.asarray(seeds[0]["iteration"][:n], float)
        for ax, key, style in ((ax1, "latency_trial2", "-"), (ax2, "rate_dark_hz", "-"),
                               (ax2, "rate_light_hz", ":")):
            y = np.array([_smooth(np.asarray(s[key][:n], float), width) for s in seeds])
            label = name if key != "rate_light_hz" else f"{name}: outside the dark"
            ax.plot(x, y.mean(0), style, color=colour(i), lw=1.5,
                    label=label if key != "rate_dark_hz" else f"{name}: in the dark")
            if key != "rate_light_hz":
                ax.fill_between(x, y.min(0), y.max(0), color=colour(i), alpha=0.18, lw=0)
    for ax in (ax1, ax2):
        for start, d in stages or []:
            ax.axvline(start, color="0.6", lw=0.7, ls="--")
            ax.annotate(f"D={d}", (start, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, -10), textcoords="offset points", fontsize=7, color="0.4")
        ax.set_xlabel("fine-tuning iteration (64 episodes each)")
    ax1.set_ylabel("median latency trial 2, after the delay")
    ax2.set_ylabel("mean rate (Hz)")
    ax1.set_ylim(0, 62)
    ax2.set_ylim(bottom=0)
    ax1.legend(fontsize=8, frameon=False)
    ax2.legend(fontsize=7, frameon=False)
    fig.suptitle(f"fine-tuning with silent delays (mean of training seeds, band min-max, "
                 f"running mean over {width} iterations)", fontsize=10)
    fig.tight_layout()
    return fig


POOLED_PANELS = (
    ("latency_trial2_change", "trial-2 latency change\n(env steps)"),
    ("toward_other_fraction_change", "change in heading\nto the partner's platform"),
    ("other_zone_first_fraction_change", "change in reaching\nthe partner's platform first"),
)
MANIPULATIONS = ("reset_a_end", "reset_v_z_end", "swap_a_end", "swap_v_z_end")
MANIPULATION_LABELS = ("a zeroed", "v, z zeroed", "partner's a", "partner's v, z")


def _measured(pooled: dict[str, dict[str, Any]], key: str) -> bool:
    """Whether any network of any condition has ``key`` (results written before a measure
    existed lack it)."""
    return any(v is not None for p in pooled.values() for cond in MANIPULATIONS
               for v in p["causal"][cond].get(key, {"values": []})["values"])


def plot_silent_memory_pooled(pooled: dict[str, dict[str, Any]], *,
                              silent_ratio: float = 1 / 3) -> Figure:
    """Conditions pooled over networks (:func:`snn_icl.experiments.silent_memory_pooled.pool`),
    one colour each: first the memory (trial-2 minus trial-1 success); then the trial-2 latency
    change, the change in heading to the partner's platform and (where measured) in reaching the
    partner's platform first after each manipulation at the delay's end (mean over networks, 95 %
    t-interval, a dot per network; 0 = the manipulation did nothing); last, the mean rate during
    the delay over the swimming rate, with the activity-silent bound."""
    panels = [p for p in POOLED_PANELS if _measured(pooled, p[0])]
    fig, all_axes = plt.subplots(1, len(panels) + 2, figsize=(4.5 * len(panels) + 7, 3.9),
                                 gridspec_kw={"width_ratios": [1] + [2] * len(panels) + [1]})
    memory_ax, axes, rate_ax = all_axes[0], all_axes[1:-1], all_axes[-1]
    n = len(pooled)
    width = 0.8 / n
    rng = np.random.default_rng(0)  # jitter of the per-network dots only
    for i, (label, p) in enumerate(pooled.items()):
        offset = (i - (n - 1) / 2) * width
        for ax, (key, _) in zip(axes, panels):
            for j, cond in enumerate(MANIPULATIONS):
                s = p["causal"][cond][key]
                x = j + offset
                _bar(ax, x, s, width, colour(i), label if j == 0 else None, rng)
        _bar(memory_ax, i, p["memory"], 0.6, colour(i), None, rng)
        _bar(rate_ax, i, p["rate_delay_over_swim"], 0.6, colour(i), None, rng)
    for ax, (_, ylabel) in zip(axes, panels):
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(range(len(MANIPULATIONS)), MANIPULATION_LABELS)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("at the end of the delay")
    # below the panels: with many conditions a legend inside covers the bars
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(n, 7), fontsize=8, frameon=False)
    memory_ax.axhline(0, color="0.3", lw=0.8)
    memory_ax.set_xticks(range(n), list(pooled), rotation=30, ha="right")
    memory_ax.set_ylabel("memory: trial-2 minus\ntrial-1 success")
    rate_ax.axhline(silent_ratio, color="0.3", lw=0.8, ls="--")
    rate_ax.annotate("activity-silent below", (0, silent_ratio), xytext=(0, 3),
                     textcoords="offset points", fontsize=7, color="0.3",
                     xycoords=("axes fraction", "data"))
    rate_ax.set_xticks(range(n), list(pooled), rotation=30, ha="right")
    rate_ax.set_ylabel("rate in the delay / swimming")
    rate_ax.set_ylim(0, max(1.1, *(np.nanmax(_arr(p["rate_delay_over_swim"]["values"]))
                                   for p in pooled.values())) * 1.05)
    some = next(iter(pooled.values()))
    fig.suptitle(f"the memory across {some['delay']} dark steps and what carries it: changes "
                 "after each manipulation (mean, 95 % t-interval across networks, dots: networks)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _bar(ax: Any, x: float, s: dict[str, Any], width: float, color: Any, label: str | None,
         rng: np.random.Generator) -> None:
    """One bar at the mean, its t-interval and the per-network values as dots."""
    values = _arr(s["values"])
    if s["mean"] is None:
        return
    ax.bar(x, s["mean"], width * 0.9, color=color, alpha=0.55, label=label)
    lo, hi = s["ci"]
    if lo is not None:
        ax.errorbar(x, s["mean"], yerr=[[s["mean"] - lo], [hi - s["mean"]]], color="0.15",
                    capsize=3, lw=1)
    jitter = rng.uniform(-width * 0.2, width * 0.2, len(values))
    ax.plot(x + jitter, values, "o", color=color, mec="0.15", ms=4, mew=0.6)
