"""The one-shot targets along training: one panel per target, held-out values of each snapshot
against the run's wall time, the target drawn as a line (``snn-icl time-to-targets``)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from snn_icl.viz.looks import colour, line_style


def _bound(text: str) -> tuple[str, float] | None:
    """'>= 3' -> ('>=', 3.0); None when the target has no number (no straight swim known)."""
    m = re.fullmatch(r"(>=|<=)\s*([0-9.]+)", text.strip())
    return (m.group(1), float(m.group(2))) if m else None


def plot_time_to_targets(results: dict[str, dict[str, Any]], *,
                         budget_min: float | None = None) -> Figure:
    """``results``: label -> a :func:`snn_icl.experiments.time_to_targets.time_to_targets`
    result. One panel per target: every seed's value at each snapshot (dots) and their mean
    (line) against training wall time (min); the target as a dashed line, the met side shaded;
    ``budget_min`` a vertical line (a time budget)."""
    first = next(iter(results.values()))
    names = list(first["rows"][0]["targets"])
    fig, axes = plt.subplots(1, len(names), figsize=(3.1 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for n, (label, res) in enumerate(results.items()):
            color = colour(n)
            t = np.array([r["wall_time_min"] for r in res["rows"]])
            v = np.array([[np.nan if x is None else x for x in r["targets"][name]["values"]]
                          for r in res["rows"]], dtype=float)
            ax.plot(np.repeat(t, v.shape[1]), v.ravel(), ".", color=color, alpha=0.4, ms=4)
            ax.plot(t, np.nanmean(v, axis=1), ls=line_style(n), color=color, label=label)
        bound = _bound(first["rows"][0]["targets"][name]["target"])
        if bound is not None:
            op, level = bound
            ax.axhline(level, color="k", ls="--", lw=1)
            lo, hi = ax.get_ylim()
            # the met side stays visible even when no value reaches the target yet
            pad = 0.1 * (max(hi, level) - min(lo, level))
            lo, hi = min(lo, level - pad), max(hi, level + pad)
            ax.axhspan(level, hi if op == ">=" else lo, color="0.9", zorder=0)
            ax.set_ylim(lo, hi)
        if budget_min is not None:
            ax.axvline(budget_min, color="tab:red", ls=":", lw=1)
        ax.set_title(f"{name} ({first['rows'][0]['targets'][name]['target']})", fontsize=9)
        ax.set_xlabel("training wall time (min)")
    axes[0][0].legend(fontsize=7, frameon=False)
    seeds = ", ".join(str(s) for s in first["seeds"])
    fig.suptitle(f"one-shot targets on held-out episodes (seeds {seeds}; shaded: met)", fontsize=10)
    fig.tight_layout()
    return fig
