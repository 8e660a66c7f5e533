"""What the experiments do with each supervised in-context family, in one table.

``snn-icl evaluate`` and ``snn-icl report`` look a family up here by its ``[env] family`` name
(:data:`FAMILIES`) instead of branching on it: how a trained model is evaluated on held-out
tasks, the one line the command prints, and the measures and learning-curve panels of the
sweep report. The water maze, the RL family, is measured by :mod:`snn_icl.experiments.evaluate`
and is not in this table. A new supervised family registered in
:mod:`snn_icl.envs.family` adds its entry here with :func:`register`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from snn_icl.experiments import icl_bursty, icl_regression


@dataclass(frozen=True)
class InContextFamily:
    """The experiments' view of one supervised family."""

    evaluate: Callable[..., dict[str, Any]]
    """(model, task, seed, n_tasks=...) -> the evaluation JSON (held-out sequences)."""
    summary: Callable[[dict[str, Any]], str]
    """evaluation -> the line ``snn-icl evaluate`` prints after "wrote OUT (... seed S): "."""
    measures: list[tuple[str, str]]
    """The report's columns (key, label), read by :attr:`run_measures`."""
    run_measures: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
    """(evaluation, checkpoint counters) -> one run's value for every key of :attr:`measures`."""
    panels: tuple[tuple[str, str], ...]
    """Learning-curve panels (metrics.csv column, label)."""
    x_label: str
    """What the learning curves' x counts."""
    loss_by_k: bool = False
    """Whether the evaluation has a loss against the number of in-context examples and probes
    (``loss_by_k``, ``probes``, ``references``) that the report pools per condition."""
    from_training: Callable[[Any, list[dict[str, str]]], dict[str, Any]] | None = None
    """(the task's ``[env]``, the run's metrics.csv rows) -> entries ``snn-icl evaluate`` adds to
    its result from how the run was trained (None: nothing)."""


REGRESSION_MEASURES = [
    ("loss", "loss at k = N"),
    ("loss_vs_gd1", "loss / one GD step"),
    ("loss_minus_gd1", "loss - one GD step's, task by task"),
    ("beats_gd1", "below one GD step beyond the test noise (share of seeds)"),
    ("loss_vs_gd2", "loss / two GD steps"),
    ("model_cos", "cosine with GD's sensitivity"),
    ("pred_diff_rel", "prediction difference from GD (relative)"),
    ("loss_k_half", "loss at k = N/2"),
    ("coordinates_reached", "coordinates in training at the end (curriculum)"),
    ("training_tasks", "training tasks"),
]

BURSTY_MEASURES = [
    ("icl_novel_accuracy", "ICL accuracy, novel classes"),
    ("icl_flip_accuracy", "ICL accuracy, flipped labels"),
    ("flip_trained_label_fraction", "flipped labels: trained label answered"),
    ("iwl_accuracy", "IWL accuracy (query class not in context)"),
    ("training_accuracy", "accuracy, training distribution"),
    ("training_tasks", "training sequences"),
]


def _regression_measures(result: dict[str, Any], counters: dict[str, Any]) -> dict[str, Any]:
    ref, by_k = result["references"], result["loss_by_k"]
    half = by_k["k"].index(result["n_examples"] // 2)
    return {"loss": result["loss"], "loss_vs_gd1": result["loss"] / ref["gd1"]["loss"],
            "loss_minus_gd1": result["vs_gd1"]["difference"],
            "beats_gd1": float(result["vs_gd1"]["beats"]),  # its mean: the share of seeds
            "loss_vs_gd2": result["loss"] / ref["gd2"]["loss"],
            "model_cos": result["alignment"]["gd1"]["model_cos"],
            "pred_diff_rel": result["alignment"]["gd1"]["pred_diff_rel"],
            "loss_k_half": by_k["model"][half],
            # a loss-gated curriculum may end short of d; the others reach it (or never had one)
            "coordinates_reached": (counters.get("curriculum") or {}).get("active", result["d"]),
            "training_tasks": counters.get("episodes")}


def _regression_summary(result: dict[str, Any]) -> str:
    r, al = result["references"], result["alignment"]["gd1"]
    stages = "".join(
        f"\n  {s['coordinates']} coordinates from iteration {s['first_iteration']} "
        f"({s['iterations']} iterations): training loss {s['share_first']:.3f} -> "
        f"{s['share_last']:.3f} of predicting 0 (least squares {s['least_squares_share']:.3f})"
        for s in result.get("curriculum_stages", []))
    v = result["vs_gd1"]
    return (f"loss {result['loss']:.4f}; one GD step {r['gd1']['loss']:.4f} (eta "
            f"{r['gd1']['eta']:.3f}; model - GD {v['difference']:+.4f}, 95 % CI "
            f"[{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}]), two {r['gd2']['loss']:.4f}, least squares "
            f"{r['least_squares']['loss']:.2g}; vs GD: cosine {al['model_cos']:.4f}, prediction "
            f"difference {al['pred_diff_rel']:.3f} (relative)" + stages)


def _regression_from_training(cfg: Any, rows: list[dict[str, str]]) -> dict[str, Any]:
    stages = icl_regression.curriculum_stages(cfg, rows)  # a dimension curriculum, stage by stage
    return {"curriculum_stages": stages} if stages else {}


def _bursty_measures(result: dict[str, Any], counters: dict[str, Any]) -> dict[str, Any]:
    return {**{k: result.get(k) for k, _ in BURSTY_MEASURES if k != "training_tasks"},
            "training_tasks": counters.get("episodes")}


def _bursty_summary(result: dict[str, Any]) -> str:
    return (f"ICL on novel classes {result['icl_novel_accuracy']:.3f}, ICL with flipped labels "
            f"{result['icl_flip_accuracy']:.3f} (trained label "
            f"{result['flip_trained_label_fraction']:.3f}), IWL {result['iwl_accuracy']:.3f}; "
            f"chance {result['chance']:.3f}")


FAMILIES: dict[str, InContextFamily] = {
    "icl_regression": InContextFamily(
        icl_regression.evaluate, _regression_summary, REGRESSION_MEASURES, _regression_measures,
        (("loss", "training loss (mixed k)"), ("held_out_loss", "held-out loss at k = N"),
         ("active_dimension", "coordinates in training (curriculum)")),
        "training tasks", loss_by_k=True, from_training=_regression_from_training),
    "icl_bursty": InContextFamily(
        icl_bursty.evaluate, _bursty_summary, BURSTY_MEASURES, _bursty_measures,
        (("icl_novel_accuracy", "ICL accuracy, novel classes (held out)"),
         ("icl_flip_accuracy", "ICL accuracy, flipped labels (held out)"),
         ("iwl_accuracy", "IWL accuracy (held out)")),
        "training sequences"),
}


def register(name: str, family: InContextFamily) -> None:
    """Add the experiments' entry of a supervised family."""
    if name in FAMILIES and FAMILIES[name] != family:
        raise ValueError(f"task family {name!r} has an experiments entry already")
    FAMILIES[name] = family


def family_of(task: Any) -> InContextFamily:
    """The entry of the task's family; an error naming the known ones."""
    name = task.env.family
    if name not in FAMILIES:
        raise ValueError(f"task family {name!r} has no evaluation (known: {', '.join(FAMILIES)})")
    return FAMILIES[name]
