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


def save(fig: Figure, path: Any, dpi: int = 130) -> None:
    """Save (atomically) and close a figure; the format follows the suffix (png, pdf, svg)."""
    from pathlib import Path

    from snn_icl.io import atomic_write

    fmt = Path(path).suffix.lstrip(".") or "png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))
    plt.close(fig)
