"""Figures of in-context regression: loss against the number of examples, alignment with
gradient descent and the probes, across training seeds (from ``snn-icl report``)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from snn_icl.viz.looks import colour, line_style


def _arr(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], float)


def short_names(conditions: list[str]) -> dict[str, str]:
    """Condition (TASK/SETTING) -> a short label: the task without its "icl_regression_" or
    "icl_bursty_" prefix (left out when every condition has the same task and a setting tells
    them apart), and those of the setting's key=value pairs that differ between the conditions,
    less any that follow from an earlier one (a recipe's anneal length that goes with its
    iteration count says nothing more)."""
    tasks = [c.split("/", 1)[0].replace("icl_regression_", "").replace("icl_bursty_", "")
             for c in conditions]
    pairs = [dict(p.split("=", 1) for p in (c.split("/", 1)[1] if "/" in c else "").split(",")
                  if "=" in p) for c in conditions]
    keys = sorted({k for p in pairs for k in p})
    varying: list[str] = []
    for k in keys:
        if len({p.get(k) for p in pairs}) < 2:
            continue
        if any(len({p.get(j): p.get(k) for p in pairs}) == len({(p.get(j), p.get(k)) for p in pairs})
               for j in varying):
            continue  # each value of an earlier varying key j comes with one value of k
        varying.append(k)
    same_task = len(set(tasks)) == 1
    out = {}
    for c, t, p in zip(conditions, tasks, pairs):
        extra = ",".join(f"{k}={p[k]}" for k in varying if k in p)
        out[c] = extra if extra and same_task else f"{t} {extra}" if extra else t
    return out


def _dots(ax: Any, at: float, values: list[float | None], horizontal: bool = False) -> None:
    """One black dot per seed on a bar at ``at`` (slightly spread so that equal values show)."""
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return
    spread = np.linspace(-0.08, 0.08, len(v)) if len(v) > 1 else np.zeros(1)
    pos, val = at + spread, np.asarray(v, float)
    ax.plot(*((val, pos) if horizontal else (pos, val)), "o", color="k", ms=2.5, zorder=3)


def plot_in_context(summary: dict[str, dict[str, Any]], rows: list[dict[str, Any]],
                    runs: list[dict[str, Any]] | None = None) -> Figure:
    """Three panels: (a) loss at the query against k context examples for every condition (mean
    across seeds, 95 % CI band) with one GD step (eta tuned per k) and least squares on the same
    tasks (Garg et al. 2022); (b) loss relative to one and two GD steps, mean and 95 % CI per
    condition (von Oswald et al. 2022); (c) held-out R^2 of linear probes of X^T Y and w_OLS
    from each condition's internal states (Akyuerek et al. 2022). ``runs`` (the report's
    per-run rows) and the probes' ``values`` add one dot per seed to (b) and (c)."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1.3, 1, 1.2]})
    names_of = short_names(list(summary))
    ax = axes[0]
    refs = next(iter(summary.values()))["loss_by_k"]
    shared = all(s["loss_by_k"]["gd1"] == refs["gd1"] for s in summary.values())
    if shared:  # the same tasks for every condition: one set of reference curves
        k = np.asarray(refs["k"], float)
        ax.plot(k, refs["gd1"], "k--", lw=1.2, label="one GD step (best eta per k)")
        ax.plot(k, refs["least_squares"], "k:", lw=1.2, label="least squares")
    for i, (cond, s) in enumerate(summary.items()):
        k = np.asarray(s["loss_by_k"]["k"], float)
        if not shared:  # other tasks per condition (e.g. another d): its own GD reference
            ax.plot(k, s["loss_by_k"]["gd1"], "--", color=colour(i), lw=1.0,
                    label=f"one GD step, {names_of[cond]}")
        mean = _arr([m["mean"] for m in s["loss_by_k"]["model"]])
        ci = _arr([m["ci95"] if m["ci95"] is not None else 0.0 for m in s["loss_by_k"]["model"]])
        ax.plot(k, mean, color=colour(i), ls=line_style(i), lw=1.6, label=names_of[cond])
        ax.fill_between(k, mean - ci, mean + ci, color=colour(i), alpha=0.2, lw=0)
    ax.set_xlabel("in-context examples k")
    ax.set_ylabel("loss at the query (0.5 x MSE)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=6 if len(summary) > 3 else 7, frameon=False)
    ax.set_title("(a) loss against k, mean and 95 % CI across seeds", fontsize=9)

    ax = axes[1]
    by_cond = {r["condition"]: r for r in rows if r.get("family") not in (None, "water_maze")}
    names = [c for c in summary if c in by_cond]
    x = np.arange(len(names))
    for j, (key, label) in enumerate((("loss_vs_gd1", "/ one GD step"),
                                      ("loss_vs_gd2", "/ two GD steps"))):
        mean = _arr([by_cond[c][f"{key}_mean"] for c in names])
        ci = _arr([by_cond[c][f"{key}_ci95"] or 0.0 for c in names])
        ax.bar(x + (j - 0.5) * 0.38, mean, 0.38, yerr=ci, capsize=3, label=f"loss {label}")
        for i, c in enumerate(names):
            _dots(ax, x[i] + (j - 0.5) * 0.38,
                  [r.get(key) for r in runs or () if r.get("condition") == c])
    ax.axhline(1.0, color="k", lw=0.8)
    # a ratio is positive: with 3 seeds a t-interval can reach below 0 and far above every seed,
    # so the axis follows the means and the seeds' dots and clips such an interval
    seen = [r.get(k) for r in runs or () for k in ("loss_vs_gd1", "loss_vs_gd2")
            if r.get("condition") in names]
    seen += [by_cond[c][f"{k}_mean"] for c in names for k in ("loss_vs_gd1", "loss_vs_gd2")]
    seen = [v for v in seen if v is not None and np.isfinite(v)]
    ax.set_ylim(0, 1.15 * max([1.0] + seen))
    ax.set_xticks(x, [names_of[c] for c in names], fontsize=7,
                  rotation=25 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
    ax.set_ylabel("loss ratio at k = N (below 1: better)")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("(b) against gradient descent (dots: seeds)", fontsize=9)

    ax = axes[2]
    labels, means, cis, values = [], [], [], []
    for cond, s in summary.items():
        for name, stats in s["probes"].items():
            labels.append(f"{names_of[cond]} {name}")
            means.append(stats["mean"])
            cis.append(stats["ci95"] or 0.0)
            values.append(stats.get("values", []))
    y = np.arange(len(labels))
    ax.barh(y, _arr(means), xerr=_arr(cis), capsize=2, color="0.5")
    for i, v in enumerate(values):
        _dots(ax, y[i], v, horizontal=True)
    ax.set_yticks(y, labels, fontsize=6)
    ax.set_xlabel("held-out R^2 of a linear probe")
    seen = [v for vs in values for v in vs if v is not None] + [m for m in means if m is not None]
    ax.set_xlim(min([0.0] + seen) - 0.02, 1.02)
    ax.invert_yaxis()
    ax.set_title("(c) probes of X^T Y and w_OLS at the query (dots: seeds)", fontsize=9)
    fig.tight_layout()
    return fig


BURSTY_LABELS = {"icl_novel_accuracy": "ICL, novel classes",
                 "icl_flip_accuracy": "ICL, flipped labels",
                 "iwl_accuracy": "IWL (query class not in context)"}


def plot_bursty_curves(curves: dict[str, dict[str, list[float]]], chance: float,
                       per_iteration: str = "training iteration") -> Figure:
    """The three held-out accuracies of bursty classification against training, one line per
    run (name -> :func:`snn_icl.experiments.icl_bursty.read_curves`); runs whose names differ
    only in a trailing ``_seedN`` share a colour and line style (ten colours, then the next
    style, so that no two groups look alike). ``chance`` (1 / labels) is drawn dotted."""
    import re

    fig, axes = plt.subplots(1, 3, figsize=(16, 3.8), sharey=True)
    groups: dict[str, int] = {}
    for name, c in curves.items():
        group = re.sub(r"_seed\d+$", "", name)
        first = group not in groups
        index = groups.setdefault(group, len(groups))
        for ax, key in zip(axes, BURSTY_LABELS):
            ax.plot(c["iteration"], c[key], lw=1.1, color=colour(index), ls=line_style(index),
                    label=group if first else None)
    for ax, (key, label) in zip(axes, BURSTY_LABELS.items()):
        ax.set_title(label, fontsize=10)
        ax.set_xlabel(f"{per_iteration}; seeds share a colour", fontsize=8)
        ax.axhline(chance, color="grey", ls=":", lw=1)
    axes[0].set_ylabel("held-out accuracy")
    axes[-1].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig


def plot_bursty_map(panels: dict[str, dict[str, list[dict[str, Any]]]], chance: float,
                    axis_labels: dict[str, str]) -> Figure:
    """Reddy (2023)'s data dependence: one panel per axis (axis -> group -> points, see
    :func:`snn_icl.experiments.icl_bursty_map.map_points`), novel-class ICL (solid, filled) and
    IWL (dashed, open) accuracy at the end of training against the axis value, mean and 95 % CI
    across training seeds as error bars; K on a log axis; ``chance`` (1 / labels) dotted;
    ``axis_labels``: axis -> its label."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.6), sharey=True,
                             squeeze=False)
    for ax, (axis, groups) in zip(axes[0], panels.items()):
        for i, (group, points) in enumerate(groups.items()):
            x = np.array([p["value"] for p in points])
            for key, style, fill, label in (("icl_novel_accuracy", "-o", None, "ICL"),
                                            ("iwl_accuracy", "--s", "white", "IWL")):
                mean = _arr([p[f"{key}_mean"] for p in points])
                ci = _arr([p[f"{key}_ci95"] if p[f"{key}_ci95"] is not None else 0.0
                           for p in points])
                ax.errorbar(x, mean, yerr=ci, fmt=style, color=colour(i),
                            mfc=colour(i) if fill is None else fill, lw=1.3,
                            capsize=3, ms=5, label=f"{label}, {group}")
        if axis == "n_classes":
            ax.set_xscale("log", base=2)
        ax.axhline(chance, color="grey", ls=":", lw=1)
        ax.set_xlabel(axis_labels[axis])
        # below the panel: inside, the legend covered the lines of the K panel
        ax.legend(fontsize=7, frameon=False, ncol=2, loc="upper center",
                  bbox_to_anchor=(0.5, -0.2))
    axes[0][0].set_ylabel("held-out accuracy, end of training")
    axes[0][0].set_ylim(-0.02, 1.02)
    fig.tight_layout()
    return fig


def plot_readouts(results: dict[str, dict[str, Any]]) -> Figure:
    """Per model (``snn-icl icl-readouts``): its loss, the best linear read-out of each state at
    the query, and the best bilinear read-out (with x_q) of each state after the context, as
    horizontal bars; predicting 0, one GD step and the exact X^T Y read out bilinearly as
    vertical lines (the first model's tasks)."""
    labels, values, colours = [], [], []
    for i, (name, r) in enumerate(results.items()):
        rows = [(f"{name}: its loss", r["model"])]
        rows += [(f"{name}: query {k}, linear", v["loss"]) for k, v in r["query"].items()]
        rows += [(f"{name}: context {k} x x_q", v["loss"]) for k, v in r.get("context", {}).items()]
        labels += [label for label, _ in rows]
        values += [value for _, value in rows]
        colours += [colour(i)] * len(rows)
    refs = next(iter(results.values()))["references"]
    fig, ax = plt.subplots(figsize=(9.5, 1.2 + 0.32 * len(labels)))
    y = np.arange(len(labels))
    ax.barh(y, values, color=colours, alpha=0.8)
    for value, style, label in ((refs["zero"], "k-", "predicting 0"),
                                (refs["gd1"]["loss"], "k--", "one GD step"),
                                (refs["xty_bilinear"]["loss"], "k:", "exact X^T Y, bilinear read-out")):
        ax.axvline(value, color=style[0], ls=style[1:], lw=1.0, label=label)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("test loss at k = N (0.5 x MSE); read-outs fitted on other held-out tasks")
    ax.set_xlim(0, max(values + [refs["zero"]]) * 1.08)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("What the state holds and what the read-out uses", fontsize=9)
    fig.tight_layout()
    return fig


def plot_regression_track(curves: dict[str, dict[str, Any]],
                          summaries: dict[str, dict[str, Any]]) -> Figure:
    """In-context regression runs' held-out loss over one GD step's on the same tasks, against
    the training tasks seen (both axes logarithmic), one line per run, one colour per d (from
    :mod:`snn_icl.experiments.icl_regression_track`); below the line at 1 a run beats one GD
    step. Each d's two-GD-step level is marked on the right edge."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    ds = sorted({s["d"] for s in summaries.values()})
    labelled: set[int] = set()
    for name in sorted(curves, key=lambda n: (summaries[n]["d"], n)):
        c, s = curves[name], summaries[name]
        i = ds.index(s["d"])
        ratio = np.asarray(c["held_out_loss"], float) / s["references"]["gd1"]["loss"]
        ax.plot(np.maximum(np.asarray(c["tasks"], float), 1.0), ratio, color=colour(i), lw=1.1,
                alpha=0.85, label=None if s["d"] in labelled else f"d = {s['d']}")
        labelled.add(s["d"])
    for i, d in enumerate(ds):
        refs = next(s["references"] for s in summaries.values() if s["d"] == d)
        ax.plot([1.0], [refs["gd2"]["loss"] / refs["gd1"]["loss"]], marker="<", color=colour(i), ms=6,
                transform=ax.get_yaxis_transform(), clip_on=False)
    ax.axhline(1.0, color="k", lw=0.9, ls="--", label="one GD step (same tasks)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10)
             if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.yaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("training tasks")
    ax.set_ylabel("held-out loss / one GD step's (k = N)")
    ax.set_title("training track against gradient descent (marks on the right: two GD steps)",
                 fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
