"""Figures of the memory analyses (style of :mod:`snn_icl.viz.plots`: plain inputs, one Figure out).

Each ``plot_*`` takes the numbers of ``analysis.json`` (or the tensors behind them) and returns a
matplotlib Figure; :func:`write_all` draws every figure of an ``snn-icl analyze`` run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from snn_icl.viz.plots import _np, save


def _arr(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], float)


def plot_decoding(agents: dict[str, dict[str, Any]], *, title: str | None = None) -> Figure:
    """Platform decoding error against time since the first platform visit, one panel per agent
    and one line per state variable; grey band: decoders fit to shuffled labels (range over
    variables and shuffles), dashed: predicting the training mean. Right of each panel: the error
    at the release points of trials 2+ (the agent on the wall, memory only)."""
    names = [n for n, a in agents.items() if "decoding" in a]
    fig, axes = plt.subplots(1, len(names), figsize=(5.4 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        dec = agents[name]["decoding"]
        x = np.array(dec["bin_centres"])
        ax.fill_between(x, _arr(dec["chance_shuffle_low"]), _arr(dec["chance_shuffle_high"]),
                        color="0.85", lw=0, label="shuffled labels")
        ax.plot(x, _arr(dec["chance_mean_prediction"]), "k--", lw=1, label="predict the mean")
        cmap = plt.get_cmap("tab10" if len(dec["variables"]) <= 10 else "tab20")
        for i, (var, d) in enumerate(dec["variables"].items()):
            style = ":" if var == "input" else "-"
            rel = d["release_error"]
            label = var + ("" if rel is None else f" (release {rel:.2f})")
            ax.plot(x, _arr(d["error"]), style, color=cmap(i), lw=1.5, label=label)
        ax.axvline(0, color="0.4", lw=0.8)
        ax.set_xlabel("env steps since the first platform visit")
        ax.set_ylabel("decoding error (pool radii)")
        ax.set_ylim(bottom=0)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7, frameon=False, loc="lower left")
    fig.suptitle(title or "linear decoding of the platform position (5-fold CV over episodes; "
                 "legend: error at release points of trials 2+)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_ablations(agents: dict[str, dict[str, Any]], *, title: str | None = None) -> Figure:
    """Per agent and condition. Top: median latency of trial 2 and of trials 2-4 (bars) and of
    trial 1 (black ticks). Bottom: fraction of episodes whose first 5 steps of trial 2 point more
    towards the partner's platform than towards their own, and end nearer to it, and of trial-2
    searches that come near the partner's platform before their own (all 0.5: no place memory)."""
    names = [n for n, a in agents.items() if "ablations" in a]
    fig, axes = plt.subplots(2, len(names), figsize=(5.0 * len(names), 6.4), squeeze=False)
    for col, name in enumerate(names):
        res = agents[name]["ablations"]
        conds = list(res)
        x = np.arange(len(conds))
        ax = axes[0, col]
        get = lambda key: _arr([res[c].get(key) for c in conds])  # noqa: E731
        ax.bar(x - 0.2, get("latency_trial2"), 0.4, color="tab:orange", label="trial 2")
        ax.bar(x + 0.2, get("latency_trials2_4"), 0.4, color="tab:blue", label="trials 2-4")
        ax.plot(x, get("latency_trial1"), "k_", ms=14, mew=2, label="trial 1")
        ax.set_xticks(x, conds, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("median latency (env steps)")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7, frameon=False)
        ax = axes[1, col]
        ax.bar(x - 0.27, get("toward_other_fraction"), 0.27, color="tab:purple",
               label="heading more to partner's platform")
        ax.bar(x, get("closer_to_other_fraction"), 0.27, color="tab:pink",
               label="ending nearer partner's platform")
        # NaN (no bar) in results written before the measure existed
        ax.bar(x + 0.27, get("other_zone_first_fraction"), 0.27, color="tab:brown",
               label="near partner's platform first")
        ax.axhline(0.5, color="0.4", lw=0.8, ls="--")
        ax.set_xticks(x, conds, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("fraction of episodes (trial 2)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    fig.suptitle(title or "frozen-weight ablations: reset at each trial start, or swap with "
                 "another episode at the start of trial 2", fontsize=10, wrap=True)
    fig.tight_layout()
    return fig


def plot_swap_paths(sims: dict[str, dict[str, Any]], condition: str, *, episodes: int = 3,
                    pool_radius: float = 1.0, platform_radius: float = 0.1,
                    title: str | None = None) -> Figure:
    """Trial 2 of a few episodes, intact (top) and after the swap (bottom): own platform green,
    partner's platform purple (pairs whose platforms lie far apart are shown first); a red x ends
    a trial that timed out."""
    plat = _np(sims["intact"].platform)
    pairs = [b for b in range(0, plat.shape[0] - 1, 2)]
    far = [b for b in pairs if np.linalg.norm(plat[b] - plat[b + 1]) > 0.6 * pool_radius]
    shown = (far + [b for b in pairs if b not in far])[:episodes]  # platforms far apart first
    fig, axes = plt.subplots(2, max(len(shown), 1), figsize=(2.6 * max(len(shown), 1), 5.4),
                             squeeze=False)
    for row, cond in enumerate(("intact", condition)):
        sim = sims[cond]
        trial, pos, plat = _np(sim.trial), _np(sim.position), _np(sim.platform)
        onp = _np(sim.on_platform).astype(bool)
        reached = np.concatenate([np.zeros_like(onp[:1]), _np(sim.escaped).astype(bool)])
        for col, b in enumerate(shown):
            ax = axes[row, col]
            partner = b + 1
            ax.add_patch(Circle((0, 0), pool_radius, fill=False, lw=1.2, color="0.3"))
            ax.add_patch(Circle(tuple(plat[b]), platform_radius, color="tab:green", alpha=0.6))
            ax.add_patch(Circle(tuple(plat[partner]), platform_radius, color="tab:purple", alpha=0.6))
            steps = np.flatnonzero(trial[:, b] == 1)
            arrive = steps[onp[steps, b]]
            timed_out = len(arrive) > 0 and not reached[arrive[0], b]
            if len(arrive):  # cut the rest steps; a time-out's placement is not a swim
                steps = steps[steps < arrive[0]] if timed_out else steps[steps <= arrive[0]]
            path = pos[steps, b]
            ax.plot(path[:, 0], path[:, 1], "-", color="k", lw=1.0)
            ax.plot(path[0, 0], path[0, 1], "o", color="k", ms=4)
            if timed_out:
                ax.plot(path[-1, 0], path[-1, 1], "x", color="tab:red", ms=6, mew=1.5)
            ax.set_xlim(-1.08 * pool_radius, 1.08 * pool_radius)
            ax.set_ylim(-1.08 * pool_radius, 1.08 * pool_radius)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(cond, fontsize=9)
    fig.suptitle(title or f"trial 2 paths, intact vs {condition} (green: own platform, purple: "
                 "partner's; x: timed out)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_rate_maps(rate: Any, info: Any, *, n_bins: int, pool_radius: float = 1.0,
                   units: Any = None, n_units: int = 12, unit_label: str = "activity",
                   title: str | None = None) -> Figure:
    """Rate maps of the ``n_units`` most informative units (or ``units``), with their information.

    Args:
        rate: [N, n_bins^2] rate maps (NaN: unvisited); info: [N] spatial information.
    """
    rate, info = _np(rate), _np(info)
    if units is None:
        order = np.argsort(-np.nan_to_num(info, nan=-1.0))
        units = order[:n_units]
    units = list(units)
    cols = min(6, len(units))
    rows = int(np.ceil(len(units) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.0 * rows), squeeze=False)
    ext = [-pool_radius, pool_radius, -pool_radius, pool_radius]
    for ax in axes.flat:
        ax.axis("off")
    for ax, u in zip(axes.flat, units):
        m = rate[u].reshape(n_bins, n_bins)
        ax.imshow(m, origin="lower", extent=ext, cmap="viridis", interpolation="nearest")
        ax.add_patch(Circle((0, 0), pool_radius, fill=False, lw=0.8, color="w"))
        ax.set_title(f"unit {u}: {info[u]:.2f} b\npeak {np.nanmax(m):.2g}", fontsize=7)
    fig.suptitle(title or f"rate maps of the most spatially informative units ({unit_label})",
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_information(results: dict[str, dict[str, Any]], *, title: str | None = None) -> Figure:
    """Spatial information of the active units (filled) against their shuffles' 95th
    percentiles (outline), one panel per agent.

    Args:
        results: by agent name, ``info``, ``threshold``, ``mean_activity`` [N] and
            ``min_activity`` (from :func:`snn_icl.analysis.place_fields.spatial_information`).
    """
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items()):
        active = _np(r["mean_activity"]) >= float(r["min_activity"])
        info, thr = _np(r["info"])[active], _np(r["threshold"])[active]
        top = max(np.nanmax(info) if len(info) else 1.0, np.nanmax(thr) if len(thr) else 1.0)
        edges = np.linspace(0, top * 1.05 + 1e-9, 30)
        ax.hist(info, edges, color="tab:red", alpha=0.7, label="units")
        ax.hist(thr, edges, histtype="step", color="k", lw=1.2, label="shuffle 95th pct")
        n_place = int((info > thr).sum())
        ax.set_title(f"{name}: {n_place}/{int(active.sum())} active units above shuffle",
                     fontsize=9)
        ax.set_xlabel(r["unit"] if "unit" in r else "spatial information (bits)")
        ax.set_ylabel("units")
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(title or "Skaggs spatial information vs circular-shift shuffles", fontsize=10)
    fig.tight_layout()
    return fig


def plot_attention_retrieval(summary: dict[str, Any], *, title: str | None = None) -> Figure:
    """Left: per layer, the share of attention from trials 2+ on earlier platform steps against
    uniform attention. Right: the share by steps into the trial (layers coloured; dashed: uniform)."""
    layers = summary["layers"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    x = np.arange(1, len(layers) + 1)
    ax.bar(x - 0.2, [l["share"] for l in layers], 0.4, color="tab:orange", label="observed")
    ax.bar(x + 0.2, [l["uniform"] for l in layers], 0.4, color="0.6", label="uniform attention")
    for xi, l in zip(x, layers):
        ax.text(xi, max(l["share"], l["uniform"]), f"x{l['ratio']:.1f}", ha="center",
                va="bottom", fontsize=8)
    ax.set_xticks(x, [f"layer {i}" for i in x])
    ax.set_ylabel("attention on earlier platform steps")
    ax.legend(fontsize=8, frameon=False)
    cmap = plt.get_cmap("viridis", max(len(layers), 2))
    for i, l in enumerate(layers):
        ax2.plot(_arr(l["share_by_steps_into_trial"]), "-", color=cmap(i), label=f"layer {i + 1}")
    ax2.plot(_arr(layers[0]["uniform_by_steps_into_trial"]), "k--", lw=1, label="uniform")
    ax2.set_xlabel("env steps into the trial (last point: later steps)")
    ax2.set_ylabel("attention share")
    ax2.legend(fontsize=7, frameon=False)
    fig.suptitle(title or f"memory retrieval: attention from trials 2+ "
                 f"({summary['queries']} query tokens)", fontsize=10)
    fig.tight_layout()
    return fig


def write_all(result: dict[str, Any], data: dict[str, Any], out: Path) -> list[Path]:
    """Every figure of an analysis run into ``out``; returns the paths written."""
    agents = result["agents"]
    written = []

    def put(fig: Figure, name: str) -> None:
        save(fig, out / name)
        written.append(out / name)

    put(plot_decoding(agents), "decoding.png")
    put(plot_ablations(agents), "ablations.png")
    info = {}
    for name, d in data.items():
        env = d["task"].env
        slug = name.replace(":", "_").replace("/", "_")
        for cond in d["main_swaps"]:  # the agent's decisive swaps
            if cond in d["sims"]:
                put(plot_swap_paths(d["sims"], cond, pool_radius=env.pool_radius,
                                    platform_radius=env.platform_radius),
                    f"swap_paths_{slug}_{cond}.png")
        pf = d["place_fields"]
        n_bins = int(round(pf["rate"].shape[-1] ** 0.5))
        unit = agents[name]["place_fields"]["unit"]
        put(plot_rate_maps(pf["rate"], pf["info"], n_bins=n_bins, pool_radius=env.pool_radius,
                           unit_label=unit, title=f"{name}: most informative units ({unit})"),
            f"rate_maps_{slug}.png")
        info[name] = {**pf, "unit": unit}
        if "attention_retrieval" in agents[name] and agents[name]["attention_retrieval"]["layers"]:
            put(plot_attention_retrieval(agents[name]["attention_retrieval"],
                                         title=f"{name}: memory retrieval by attention"),
                f"attention_retrieval_{slug}.png")
    put(plot_information(info), "spatial_information.png")
    return written
