"""The figure of one protocol, in the style of the water-maze literature: escape latency across
trials (left) and the protocol's own score as bars with every network's value as a dot (right).
Input: :func:`snn_icl.experiments.protocol_summary.summarise` output."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from snn_icl.viz.looks import colour

BARS: dict[str, tuple[tuple[str, str], ...]] = {
    "dmp": (("probe_target_quadrant_fraction", "target quadrant"),),
    "probe": (("probe_target_quadrant_fraction", "target quadrant"),),
    "reversal": (("old_quadrant_fraction", "old quadrant"), ("new_quadrant_fraction", "new quadrant"),
                 ("old_zone_entry_fraction", "old-zone entry")),
    "reference": (("latency_trial1", "trial 1"), ("latency_trials2_4", "trials 2-4")),
    "cued": (("cued_latency_trial1", "visible"), ("hidden_latency_trial1", "hidden")),
}
"""Per protocol: the bar groups of the right panel, (measure key, bar label)."""

RIGHT_AXIS = {"dmp": "probe trial: fraction of swim (chance 0.25)",
              "probe": "probe trial: fraction of swim (chance 0.25)",
              "reversal": "reversal trial: fraction",
              "reference": "median latency (swim steps)",
              "cued": "trial 1 median latency (swim steps)"}


def _arr(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _latency_panel(ax: Any, summary: dict[str, Any], colours: list[Any]) -> None:
    cued = summary["protocol"] == "cued"
    for colour, (label, entry) in zip(colours, summary["agents"].items()):
        views = (("cued_", "visible", "-"), ("hidden_", "hidden", "--")) if cued else (("", "", "-"),)
        for prefix, view, style in views:
            pooled = entry[f"{prefix}latency_by_trial"]
            y, ci = _arr(pooled["mean"]), _arr(pooled["ci95"])
            x = np.arange(1, len(y) + 1)
            ax.errorbar(x, y, yerr=None if np.isnan(ci).all() else ci, color=colour, ls=style,
                        marker="o", ms=3, capsize=2,
                        label=f"{label} ({view})" if view else f"{label} (n={entry['n']})")
    probe = summary["settings"].get("probe_trial")
    if summary["protocol"] == "probe" and probe is not None:  # its "latency" is the time-out
        ax.axvspan(probe + 0.5, probe + 1.5, color="0.9", zorder=0)
        ax.text(probe + 1, ax.get_ylim()[0], "probe\n(no platform)", fontsize=7, ha="center",
                va="bottom")
    if summary["protocol"] == "reversal":
        k = summary["settings"]["reversal_trial"] + 1
        ax.axvline(k - 0.5, color="0.5", lw=0.8, ls=":")
        ax.text(k - 0.45, ax.get_ylim()[1] * 0.95, "platform moved", fontsize=7, va="top")
    if summary.get("straight_swim") is not None:
        ax.axhline(summary["straight_swim"], color="0.6", lw=0.8, ls=":")
        ax.text(1.1, summary["straight_swim"], "straight swim", fontsize=7, ha="left",
                va="top", color="0.4")
    ax.set_xlabel("trial")
    ax.set_ylabel("median escape latency (swim steps)")
    ax.legend(frameon=False, fontsize=7)


def _bar_panel(ax: Any, summary: dict[str, Any], colours: list[Any]) -> None:
    name = summary["protocol"]
    groups = BARS[name]
    agents = list(summary["agents"].items())
    width = 0.8 / len(agents)
    for i, (colour, (label, entry)) in enumerate(zip(colours, agents)):
        x = np.arange(len(groups)) + (i - (len(agents) - 1) / 2) * width
        means = _arr([entry[key]["mean"] for key, _ in groups])
        cis = _arr([entry[key]["ci95"] for key, _ in groups])
        ax.bar(x, means, width * 0.9, color=colour, alpha=0.6, label=label,
               yerr=None if np.isnan(cis).all() else cis, capsize=2)
        for xi, (key, _) in zip(x, groups):
            dots = _arr(entry[key]["values"])
            ax.plot(np.full(len(dots), xi), dots, "k.", ms=3)
    if name in ("dmp", "probe", "reversal"):
        ax.axhline(0.25, color="0.5", lw=0.8, ls=":")
    elif summary.get("straight_swim") is not None:  # latency bars
        ax.axhline(summary["straight_swim"], color="0.6", lw=0.8, ls=":")
    ax.set_xticks(np.arange(len(groups)), [text for _, text in groups])
    ax.set_ylabel(RIGHT_AXIS[name])
    ax.legend(frameon=False, fontsize=7)


def plot_protocol(summary: dict[str, Any], *, title: str | None = None) -> Figure:
    """Latency by trial and the protocol's score per agent (mean, 95 % t-interval across networks
    where n > 1, dots: networks)."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    colours = [colour(i) for i in range(len(summary["agents"]))]
    _latency_panel(left, summary, colours)
    _bar_panel(right, summary, colours)
    fig.suptitle(title or f"{summary['protocol']} protocol, {summary['seed_kind']} seed "
                 f"{summary['seed']}, {summary['episodes']} episodes per network", fontsize=9)
    return fig
