"""Figures: swim paths in the pool, spike rasters with adaptive thresholds.

Functions take plain arrays (numpy or torch) for ONE episode and return a matplotlib Figure, so
they work the same from notebooks, the CLI and tests. Nothing here runs a simulation.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from matplotlib.ticker import FuncFormatter

from snn_icl.viz.icl import short_names
from snn_icl.viz.looks import colour, line_style


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def trial_segments(trial: Any) -> list[tuple[int, int, int]]:
    """Split an episode into trials: [(trial index, first step, last step + 1)] over ``trial`` [T+1]."""
    trial = _np(trial)
    change = np.flatnonzero(np.diff(trial)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(trial)]])
    return [(int(trial[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def plot_trajectories(position: Any, trial: Any, platform: Any, *, pool_radius: float = 1.0,
                      platform_radius: float = 0.1, max_trials: int | None = None,
                      on_platform: Any = None, escaped: Any = None, ax: plt.Axes | None = None,
                      title: str | None = None) -> Figure:
    """The pool, the platform and each trial's swim path in its own colour.

    Args:
        position: [T+1, 2] positions (pool radii) of one episode, index 0 the start.
        trial: [T+1] 0-based trial index at each step.
        platform: [2] platform centre.
        max_trials: draw only the first trials.
        on_platform: [T+1] bool; rest steps on the platform are left out of the paths.
        escaped: [T] bool, the steps that reached the platform; with ``on_platform`` it tells a
            time-out (the agent is then placed on the platform: drawn as x, not as a swim).
    """
    position, trial, platform = _np(position), _np(trial), _np(platform)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.2, 5.2))
    else:
        fig = ax.figure
    ax.add_patch(Circle((0, 0), pool_radius, fill=False, lw=1.5, color="0.3"))
    ax.add_patch(Circle(tuple(platform), platform_radius, color="0.55", alpha=0.6, lw=0,
                        label="platform"))
    segments = trial_segments(trial)
    if max_trials is not None:
        segments = segments[:max_trials]
    cmap = plt.get_cmap("viridis", max(len(segments), 2))
    reached = None if escaped is None else np.concatenate([[False], _np(escaped).astype(bool)])
    for i, (k, start, end) in enumerate(segments):
        path, note = position[start:end], ""
        if on_platform is not None:
            arrive = np.flatnonzero(_np(on_platform)[start:end].astype(bool))
            if len(arrive):
                found = reached is None or bool(reached[start + arrive[0]])
                # a time-out's last point is the placement on the platform, not a swim
                path = path[: arrive[0] + 1] if found else path[: arrive[0]]
                note = "" if found else ", timed out"
            elif end == len(trial):
                note = ", episode ended"
        colour = cmap(i)
        steps = len(path) - 1 + (note == ", timed out")
        ax.plot(path[:, 0], path[:, 1], "-", color=colour, lw=1.4,
                label=f"trial {k + 1} ({steps} steps{note})")
        ax.plot(path[0, 0], path[0, 1], "o", color=colour, ms=5)
        if note == ", timed out":
            ax.plot(path[-1, 0], path[-1, 1], "x", color=colour, ms=6, mew=1.5)
    ax.set_xlim(-1.08 * pool_radius, 1.08 * pool_radius)
    ax.set_ylim(-1.08 * pool_radius, 1.08 * pool_radius)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_title(title or "swim paths (o = release, x = timed out)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_raster(z: Any, A: Any, *, n_regular: int, trial: Any = None, ms_per_step: int = 1,
                v_th: float | None = None, max_neurons: int | None = None,
                title: str | None = None) -> Figure:
    """A spike raster with the adaptive thresholds below it and trial boundaries marked.

    Args:
        z: [T_ms, n] spikes of one episode (bool or 0/1), neurons regular first.
        A: [T_ms, n] thresholds A_t = v_th + beta * a_t.
        n_regular: how many of the n neurons are regular (beta = 0).
        trial: [T_env + 1] trial index per env step (index 0 = start) to mark trial starts.
        ms_per_step: 1-ms network steps per env step (to place boundaries in ms).
        v_th: baseline threshold drawn as a reference line.
        max_neurons: raster at most this many neurons (split evenly between the two groups).
    """
    z, A = _np(z).astype(bool), _np(A)
    t_ms, n = z.shape
    regular = np.arange(n_regular)
    adaptive = np.arange(n_regular, n)
    if max_neurons is not None and max_neurons < n:
        half = max_neurons // 2
        regular, adaptive = regular[:half], adaptive[: max_neurons - min(half, len(regular))]
    fig, (ax_r, ax_a) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True,
                                     gridspec_kw={"height_ratios": [2.2, 1]})
    for rows, colour, label in ((regular, "tab:blue", "regular"),
                                (adaptive, "tab:orange", "adaptive")):
        if len(rows) == 0:
            continue
        offset = 0 if colour == "tab:blue" else len(regular)
        t_idx, n_idx = np.nonzero(z[:, rows])
        ax_r.scatter(t_idx, n_idx + offset, s=1.5, marker="|", color=colour, lw=0.6,
                     label=f"{label} ({z[:, rows].sum() / max(len(rows), 1) / t_ms * 1e3:.1f} Hz)")
    ax_r.set_ylabel("neuron")
    ax_r.set_ylim(-0.5, len(regular) + len(adaptive) - 0.5)
    ax_r.legend(loc="upper right", fontsize=8, markerscale=6, frameon=True)
    t = np.arange(t_ms)
    if len(adaptive):
        sub = A[:, n_regular:]
        for j in range(min(sub.shape[1], 12)):
            ax_a.plot(t, sub[:, j], lw=0.5, color="tab:orange", alpha=0.5)
        ax_a.plot(t, sub.mean(axis=1), lw=1.6, color="tab:red", label="mean over adaptive")
    if v_th is not None:
        ax_a.axhline(v_th, color="0.4", lw=0.8, ls=":", label="v_th")
    ax_a.set_ylabel("threshold A")
    ax_a.set_xlabel("time (ms)")
    ax_a.legend(loc="upper right", fontsize=8)
    if trial is not None:
        for k, start, _ in trial_segments(trial)[1:]:
            for ax in (ax_r, ax_a):
                ax.axvline(start * ms_per_step, color="k", lw=0.7, ls="--", alpha=0.6)
            ax_r.text(start * ms_per_step, 1.0, f" trial {k + 1}", transform=ax_r.get_xaxis_transform(),
                      fontsize=7, va="bottom")
    ax_r.set_title(title or "spikes and adaptive thresholds (dashed: trial starts)", fontsize=10,
                   pad=14)
    fig.tight_layout()
    return fig


def _episode(rec: Any, episode: int) -> int:
    if not 0 <= episode < rec.episodes:
        raise ValueError(f"--episode {episode} out of range: there are {rec.episodes} episodes")
    return episode


def episode_paths(rec: Any, episode: int, env: Any, *, max_trials: int | None = None,
                  title: str | None = None) -> Figure:
    """Swim paths of episode ``episode`` of an :class:`~snn_icl.episodes.record.EpisodeRecord`
    in the pool of ``env`` (a WaterMazeConfig), one colour per trial."""
    e = _episode(rec, episode)
    return plot_trajectories(rec.position[:, e], rec.trial[:, e], rec.platform[e],
                             pool_radius=env.pool_radius, platform_radius=env.platform_radius,
                             on_platform=rec.on_platform[:, e], escaped=rec.escaped[:, e],
                             max_trials=max_trials, title=title)


def episode_raster(rec: Any, episode: int, *, n_regular: int, ms_per_step: int, v_th: float,
                   title: str | None = None) -> Figure:
    """Spikes and adaptive thresholds of episode ``episode`` of a recorded record (``z``, ``A``)."""
    if rec.z is None or rec.A is None:
        raise ValueError("this record has no spikes: run a spiking agent with record=True")
    e = _episode(rec, episode)
    return plot_raster(rec.z[:, e], rec.A[:, e], n_regular=n_regular, trial=rec.trial[:, e],
                       ms_per_step=ms_per_step, v_th=v_th, title=title)


def save(fig: Figure, path: Any, dpi: int = 130) -> None:
    """Save (atomically) and close a figure; the format follows the suffix (png, pdf, svg)."""
    from pathlib import Path

    from snn_icl.storage.files import atomic_write

    fmt = Path(path).suffix.lstrip(".") or "png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))
    plt.close(fig)


def plot_latency_by_trial(result: dict[str, Any], *, title: str | None = None,
                          max_trials: int | None = None) -> Figure:
    """Median escape latency per trial index with bootstrap 95 % bands, against the
    straight-line optimum and the no-memory and random controls (an ``evaluate`` result)."""
    fig, ax = plt.subplots(figsize=(5.8, 4.0))
    blocks = [("trained agent", result, "tab:red"),
              ("no memory (state reset each trial)", result.get("control_no_memory"), "tab:blue"),
              ("random swimmer", result.get("control_random"), "0.5")]
    for label, block, colour in blocks:
        if not block:
            continue
        lat = np.array([np.nan if v is None else v for v in block["latency_by_trial"]], float)
        ci = np.array([[np.nan if v is None else v for v in pair] for pair in block["latency_ci"]],
                      float)
        n = len(lat) if max_trials is None else min(max_trials, len(lat))
        k = np.arange(1, n + 1)
        ax.plot(k, lat[:n], "o-", color=colour, label=label, lw=1.6, ms=4)
        ax.fill_between(k, ci[:n, 0], ci[:n, 1], color=colour, alpha=0.15, lw=0)
    opt = np.array([np.nan if v is None else v for v in result["optimal_latency_by_trial"]], float)
    n = len(opt) if max_trials is None else min(max_trials, len(opt))
    ax.plot(np.arange(1, n + 1), opt[:n], "k--", lw=1, label="straight swim (optimum)")
    ax.set_xlabel("trial in episode")
    ax.set_ylabel("median escape latency (env steps)")
    ax.set_xticks(np.arange(1, n + 1))
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)  # head room for the legend
    ax.legend(fontsize=8, frameon=False, loc="upper right", ncol=2)
    ax.set_title(title or f"one-shot learning ({result.get('episodes', '?')} held-out episodes, "
                 "95 % bootstrap bands)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_probe_occupancy(position: Any, platform: Any, in_probe: Any, *, pool_radius: float = 1.0,
                         platform_radius: float = 0.1, bins: int = 40,
                         title: str | None = None) -> Figure:
    """Where the agent swam during the probe trial (platform removed), pooled over episodes.

    Each episode is rotated so its platform lies due East; the target quadrant is outlined.

    Args:
        position: [T, B, 2] positions; platform: [B, 2]; in_probe: [T, B] bool (probe swim steps).
    """
    position, platform, in_probe = _np(position), _np(platform), _np(in_probe).astype(bool)
    angle = np.arctan2(platform[:, 1], platform[:, 0])
    c, s = np.cos(-angle), np.sin(-angle)
    x = position[..., 0] * c - position[..., 1] * s
    y = position[..., 0] * s + position[..., 1] * c
    radius = np.linalg.norm(platform, axis=-1).mean()
    fig, ax = plt.subplots(figsize=(5.0, 4.4))
    h, xe, ye = np.histogram2d(x[in_probe], y[in_probe], bins=bins,
                               range=[[-pool_radius, pool_radius]] * 2)
    h = h / max(h.sum(), 1)
    im = ax.imshow(h.T, origin="lower", extent=[-pool_radius, pool_radius] * 2, cmap="magma")
    fig.colorbar(im, ax=ax, label="fraction of probe time")
    ax.add_patch(Circle((0, 0), pool_radius, fill=False, lw=1.2, color="w"))
    ax.add_patch(Circle((radius, 0), platform_radius, fill=False, lw=1.2, ls="--", color="c"))
    for sign in (1, -1):
        ax.plot([0, pool_radius * np.cos(np.pi / 4)], [0, sign * pool_radius * np.sin(np.pi / 4)],
                color="c", lw=0.8)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "probe trial occupancy (platform rotated East, dashed; target quadrant)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_learning_curve(rows: list[dict[str, Any]], *, title: str | None = None,
                        marks: dict[str, float] | None = None) -> Figure:
    """Training curves from ``metrics.csv``: goals per episode, and latency on trial 1 versus
    trials 2-4 of the training batches (with action noise), against training episodes.

    ``marks``: label -> training episode of a change of recipe (a curriculum stage, the start of
    the learning-rate anneal), drawn as a dotted line on both panels."""
    ep = np.array([float(r["episodes"]) for r in rows])
    goals = np.array([float(r["goals_per_episode"]) for r in rows])
    lat1 = np.array([float(r["latency_trial1"]) for r in rows])
    lat24 = np.array([float(r["latency_trials2_4"]) for r in rows])

    def smooth(v: np.ndarray) -> np.ndarray:
        w = max(1, len(v) // 50)
        return np.convolve(v, np.ones(w) / w, mode="valid") if len(v) >= w else v

    def x(v: np.ndarray) -> np.ndarray:
        return ep[len(ep) - len(v):]

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.plot(x(smooth(goals)), smooth(goals), color="k")
    a1.set_xlabel("training episodes")
    a1.set_ylabel("goals per episode")
    a2.plot(x(smooth(lat1)), smooth(lat1), color="tab:purple", label="trial 1 (search)")
    a2.plot(x(smooth(lat24)), smooth(lat24), color="tab:green", label="trials 2-4 (memory)")
    a2.set_xlabel("training episodes")
    a2.set_ylabel("median latency (env steps)")
    a2.legend(fontsize=8, frameon=False)
    in_order = sorted((marks or {}).items(), key=lambda m: m[1])
    for ax in (a1, a2):
        # 100k rather than 100000: six-digit tick labels run into each other
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v else "0"))
        for i, (label, at) in enumerate(in_order):
            ax.axvline(at, color="0.6", ls=":", lw=1)
            # alternate heights so that neighbouring labels do not overlap
            ax.text(at, 1.01 + 0.06 * (i % 2), label, transform=ax.get_xaxis_transform(), va="bottom",
                    ha="center", fontsize=7, color="0.4")
    fig.suptitle(title or "meta-training", fontsize=10)
    fig.tight_layout()
    return fig


def plot_comparison(results: dict[str, dict[str, Any]], *, max_trials: int = 6,
                    title: str | None = None) -> Figure:
    """Latency by trial (median, 95 % bands) of several agents on the same episodes, with the
    straight-swim optimum; and their probe-trial time in the target quadrant (chance 0.25)."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    for i, (name, r) in enumerate(results.items()):
        lat = np.array([np.nan if v is None else v for v in r["latency_by_trial"]], float)[:max_trials]
        ci = np.array([[np.nan if v is None else v for v in p] for p in r["latency_ci"]], float)[:max_trials]
        k = np.arange(1, len(lat) + 1)
        ax.plot(k, lat, "o", ls=line_style(i), color=colour(i), label=name, ms=4)
        ax.fill_between(k, ci[:, 0], ci[:, 1], color=colour(i), alpha=0.15, lw=0)
        bx.bar(i, r["probe_target_quadrant_fraction"] or 0.0, color=colour(i))
    first = next(iter(results.values()))
    opt = np.array([np.nan if v is None else v for v in first["optimal_latency_by_trial"]], float)
    ax.plot(np.arange(1, len(opt[:max_trials]) + 1), opt[:max_trials], "k--", lw=1,
            label="straight swim")
    ax.set_xlabel("trial in episode")
    ax.set_ylabel("median escape latency (env steps)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, frameon=False)
    bx.axhline(0.25, color="0.4", ls=":", lw=1, label="chance")
    bx.set_xticks(range(len(results)), list(results), rotation=20, fontsize=8)
    bx.set_ylabel("probe: time in target quadrant")
    bx.set_ylim(0, 1)
    bx.legend(fontsize=8, frameon=False)
    fig.suptitle(title or f"same {first.get('episodes', '?')} held-out episodes for every agent",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _memory_horizons(ax, results: dict[str, dict[str, Any]],
                     styles: dict[str, tuple[str, str]]) -> None:
    """One vertical line per distinct memory span (kind, env steps), labelled with the agents that
    have it: several networks of one architecture share tau_a, and one label each would overprint."""
    groups: dict[tuple[str, float], list[int]] = {}
    for i, r in enumerate(results.values()):
        for key, steps in r.get("memory_horizon", {}).items():
            groups.setdefault((key, float(steps)), []).append(i)
    names = list(results)
    for (key, steps), members in groups.items():
        ls, label = styles.get(key, ("--", key))
        colour_ = colour(members[0]) if len(members) == 1 else "0.3"
        who = ("all" if len(members) == len(names) > 1
               else ", ".join(names[i] for i in members))
        ax.axvline(steps, color=colour_, ls=ls, lw=1.2)
        ax.annotate(f"{label} = {steps:.0f} steps ({who})", (steps, 0.03),
                    xycoords=("data", "axes fraction"), xytext=(3, 0), textcoords="offset points",
                    rotation=90, va="bottom", fontsize=7, color=colour_)


def plot_retention(results: dict[str, dict[str, Any]], *, title: str | None = None) -> Figure:
    """Trial-2 latency after a dark delay that follows trial 1, per agent (median, 95 % bands),
    against each agent's trial-1 search (dotted) and the straight swim; vertical lines mark each
    agent's built-in memory span (transformer context window, LSNN tau_a) in env steps.

    Results of the delay after every trial (``dark == "after every trial"``) get a second panel:
    the one-shot ratio (trial 1 / trials 2-4) against the delay."""
    every = all("one_shot_ratio" in r for r in results.values())
    if every:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    else:
        fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"context_window": ("-.", "context window"), "tau_a": (":", "tau_a")}
    for i, (name, r) in enumerate(results.items()):
        d = np.asarray(r["delays"], float)
        lat = np.array([np.nan if v is None else v for v in r["latency_trial2"]], float)
        ci = np.array([[np.nan, np.nan] if v is None else [np.nan if x is None else x for x in v]
                       for v in r["latency_trial2_ci"]], float)
        first = np.array([np.nan if v is None else v for v in r["latency_trial1"]], float)
        ax.plot(d, lat, "o", ls=line_style(i), color=colour(i), ms=4, label=f"{name}: trial 2")
        ax.fill_between(d, ci[:, 0], ci[:, 1], color=colour(i), alpha=0.15, lw=0)
        ax.axhline(np.nanmedian(first), color=colour(i), ls=":", lw=1)
    _memory_horizons(ax, results, styles)
    first = next(iter(results.values()))
    opt = [v for v in first["optimal_trial2"] if v is not None]
    if opt:
        ax.axhline(float(np.median(opt)), color="k", ls="--", lw=1, label="straight swim")
    ax.set_xlabel(("dark delay after every trial" if every
                   else "dark delay between trial 1 and trial 2") + " (env steps)")
    ax.set_ylabel("median escape latency, trial 2 (env steps)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, frameon=False, loc="center" if every else "center right")
    ax.set_title(title or (("DMP with dark inter-trial delays" if every else
                            "retention across a dark delay")
                           + f" ({first.get('episodes', '?')} episodes per point; dotted: trial 1)"),
                 fontsize=10)
    if every:
        for i, (name, r) in enumerate(results.items()):
            ratio = np.array([np.nan if v is None else v for v in r["one_shot_ratio"]], float)
            ax2.plot(np.asarray(r["delays"], float), ratio, "o", ls=line_style(i), color=colour(i), ms=4,
                     label=name)
        ax2.axhline(1.0, color="k", ls="--", lw=1, label="no savings (1)")
        ax2.set_xlabel("dark delay after every trial (env steps)")
        ax2.set_ylabel("one-shot ratio: trial 1 / trials 2-4 (medians)")
        ax2.set_ylim(bottom=0)
        ax2.legend(fontsize=8, frameon=False)
        ax2.set_title("savings against the inter-trial delay", fontsize=10)
    fig.tight_layout()
    return fig


def plot_delay_curves(results: dict[str, dict[str, Any]], *, trained: int | None = None,
                      title: str | None = None) -> Figure:
    """Memory across a silent delay after trial 1, one colour per condition: trial-2 latency,
    trial-2 success and (where measured) the trial-2 probe's time in the target quadrant against
    the delay. Conditions pooled over training seeds show their mean with a 95 % band across
    seeds (``*_ci``); single networks their median latency with its bootstrap band.
    ``trained``: the longest delay seen in training (env steps), marked."""
    probes = all("probe_quadrant" in r for r in results.values())
    fig, axes = plt.subplots(1, 3 if probes else 2, figsize=(14 if probes else 10, 4.2))
    panels = [("latency_trial2", "trial-2 escape latency (env steps)"),
              ("success_trial2", "trial-2 success"),
              ("probe_quadrant", "trial-2 probe: target-quadrant fraction")][:len(axes)]
    for ax, (key, label) in zip(axes, panels):
        top = 0.0  # the latency axis: the data's range, not a t-band's (it can pass the time-out)
        for i, (name, r) in enumerate(results.items()):
            d = np.asarray(r["delays"], float)
            y = np.array([np.nan if v is None else v for v in r[key]], float)
            top = max(top, float(np.nanmax(y, initial=0.0)))
            seeds = r.get("n_seeds", 1)
            ax.plot(d, y, "o", ls=line_style(i), color=colour(i), ms=4, label=f"{name} (n = {seeds})")
            ci = r.get(f"{key}_ci")
            if ci is not None:
                band = np.array([[np.nan, np.nan] if v is None else
                                 [np.nan if x is None else x for x in v] for v in ci], float)
                ax.fill_between(d, band[:, 0], band[:, 1], color=colour(i), alpha=0.15, lw=0)
            if key == "latency_trial2":
                first = np.array([np.nan if v is None else v for v in r["latency_trial1"]], float)
                ax.axhline(np.nanmean(first), color=colour(i), ls=":", lw=1)
                top = max(top, float(np.nanmax(first, initial=0.0)))
        if key == "latency_trial2":
            opt = [v for v in next(iter(results.values()))["optimal_trial2"] if v is not None]
            if opt:
                ax.axhline(float(np.median(opt)), color="k", ls="--", lw=1, label="straight swim")
                ax.axhline(2 * float(np.median(opt)), color="0.5", ls="--", lw=0.8,
                           label="2 x straight swim")
        if key == "probe_quadrant":
            ax.axhline(0.25, color="k", ls="--", lw=1, label="chance (0.25)")
        if trained is not None:
            ax.axvline(trained, color="0.3", ls="-.", lw=1, label=f"longest trained delay ({trained})")
        _delay_axis(ax, results)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0, top=1.02 if key != "latency_trial2" else 1.15 * top or None)
    # below the panels, not on them: with many conditions a legend inside hides the short delays
    entries: dict[str, Any] = {}
    for ax in axes:  # each label once (the trained-delay line is on every panel)
        for handle, lab in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(lab, handle)
    handles, labels = list(entries.values()), list(entries)
    ncol = 4
    rows = -(-len(labels) // ncol)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    first = next(iter(results.values()))
    fig.suptitle(title or f"memory across a silent delay ({first.get('episodes', '?')} episodes "
                 "per point and network; dotted: trial 1; bands: 95 % CI across training seeds)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.035 * rows + 0.02, 1, 1))
    return fig


def _delay_axis(ax, results: dict[str, dict[str, Any]]) -> None:
    """The delay axis: symmetric-log (linear below 10 env steps) when the delays span more than
    a decade, so 0-50 steps, where most memories end, are not squeezed against 400; ticks at the
    measured delays."""
    delays = sorted({int(d) for r in results.values() for d in r["delays"]})
    positive = [d for d in delays if d > 0]
    if positive and max(positive) > 10 * min(positive):
        ax.set_xscale("symlog", linthresh=10, linscale=0.5)
        ax.set_xticks(delays)
        ax.set_xticklabels([str(d) for d in delays])
        ax.minorticks_off()
        ax.set_xlim(min(delays) - 1, 1.15 * max(delays))  # symlog's autoscale pads 0 unevenly
    ax.set_xlabel("dark delay between trial 1 and trial 2 (env steps)")


def plot_sweep_curves(curves: dict[str, dict[str, Any]]) -> Figure:
    """Learning curves of a sweep's conditions, the mean across seeds with the min-max range as
    a band (``curves``: condition -> ``snn_icl.experiments.report.aggregate_curves`` plus its
    ``panels`` and ``x_label``). Water maze: goals per episode and latency on trials 2-4 of the
    training batches against training env steps; supervised families: their losses (bursty
    classification: the three held-out accuracies) against training tasks. One row of panels
    per kind of curve."""
    default = [["goals_per_episode", "goals per episode"],
               ["latency_trials2_4", "median latency trials 2-4 (env steps)"]]
    groups: dict[tuple, list[str]] = {}
    for cond, c in curves.items():
        key = (tuple(map(tuple, c.get("panels", default))), c.get("x_label", "training env steps"))
        groups.setdefault(key, []).append(cond)
    groups = groups or {(tuple(map(tuple, default)), "training env steps"): []}
    ncols = max(len(panels) for panels, _ in groups)
    fig, axes = plt.subplots(len(groups), ncols, figsize=(4.75 * ncols, 3.6 * len(groups)),
                             squeeze=False)
    for row, ((panels, x_label), conds) in zip(axes, groups.items()):
        label_of = short_names(conds)  # the settings that tell the conditions apart
        for i, cond in enumerate(conds):
            c = curves[cond]
            x = np.asarray(c.get("env_steps", []), float)
            if not len(x):
                continue
            for ax, (key, _) in zip(row, panels):
                block = c[key]

                def arr(name: str) -> np.ndarray:
                    return np.array([np.nan if v is None else v for v in block[name]], float)

                mean = arr("mean")
                m = np.isfinite(mean)  # a measure tracked every few iterations: its rows only
                ax.plot(x[m], mean[m], color=colour(i), ls=line_style(i), lw=1.5,
                        label=label_of[cond])
                ax.fill_between(x[m], arr("min")[m], arr("max")[m], color=colour(i),
                                alpha=0.18, lw=0)
        for ax, (_, label) in zip(row, panels):
            ax.set_xlabel(x_label)
            ax.set_ylabel(label)
            ax.xaxis.set_major_formatter(FuncFormatter(
                lambda v, _: (f"{v / 1e6:g}M" if abs(v) >= 1e6 else f"{v / 1000:g}k") if v else "0"))
        if conds:
            row[0].legend(fontsize=7, frameon=False)
    fig.suptitle("sweep: mean across seeds, band min-max", fontsize=10)
    fig.tight_layout()
    return fig
