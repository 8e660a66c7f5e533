"""Behaviour along training (``snn-icl course``): one panel per measure and view, a line per
condition (mean across training seeds) with its 95 % t-band and every seed's value as a dot."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from snn_icl.viz.looks import colour, line_style


def _array(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def plot_course(pooled: dict[str, Any], measures: list[str] | None = None) -> Figure:
    """``pooled``: :func:`snn_icl.experiments.training_course.pool`. Rows: ``measures`` (default
    all); columns: the views (e.g. trained and novel places)."""
    conditions = pooled["conditions"]
    first = next(iter(conditions.values()))
    views = list(first["views"])
    measures = measures or list(first["measures"][views[0]])
    fig, axes = plt.subplots(len(measures), len(views), figsize=(3.4 * len(views), 2.3 * len(measures)),
                             squeeze=False, sharex=True)
    for j, view in enumerate(views):
        for i, m in enumerate(measures):
            ax = axes[i][j]
            for n, (label, c) in enumerate(conditions.items()):
                color = colour(n)
                x = np.array(c["iterations"], dtype=float)
                cell = c["measures"][view][m]
                mean, ci = _array(cell["mean"]), _array(cell["ci95"])
                for k, per_seed in enumerate(cell["values"]):
                    ax.plot([x[k]] * len(per_seed), _array(per_seed), ".", color=color, alpha=0.35,
                            ms=3)
                ax.plot(x, mean, ls=line_style(n), color=color, label=f"{label} (n={len(c['runs'])})")
                ax.fill_between(x, mean - ci, mean + ci, color=color, alpha=0.2, lw=0)
            if i == 0:
                ax.set_title(view, fontsize=10)
            if j == 0:
                ax.set_ylabel(m, fontsize=9)
            if i == len(measures) - 1:
                ax.set_xlabel("training iteration")
    # below the panels: a sweep's condition names are long and covered the first panel
    handles, labels = axes[0][0].get_legend_handles_labels()
    rows = -(-len(labels) // 2)
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.suptitle(f"along training, held-out seed {pooled['seed']} ({pooled['seed_kind']}), "
                 f"{pooled['episodes']} episodes; mean, 95 % t-band, dots: seeds", fontsize=9)
    fig.tight_layout(rect=(0, min(0.4, 0.18 * rows / fig.get_figheight()), 1, 1))
    return fig
