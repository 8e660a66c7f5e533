"""Frozen-weight evaluation of a predictor on bursty in-context classification (Reddy 2023).

Every test draws ``n_tasks`` sequences from the evaluation seed with odd (evaluation-parity)
generator seeds, so none was a training sequence. The result (JSON-ready), each accuracy a
fraction of sequences whose arg-max logit at the query is the right label:

- ``icl_novel_accuracy``: novel classes, random labels, query class in the context;
- ``icl_flip_accuracy``: trained classes with shifted labels in the context, query class in the
  context (the right label is the in-context one);
- ``flip_trained_label_fraction``: on the same sequences, the fraction answered with the trained
  (in-weights) label instead;
- ``iwl_accuracy``: trained classes, the query class absent from the context;
- ``training_accuracy``: sequences drawn as in training (bursty with probability p_bursty);
- ``chance``: 1/L. See :mod:`snn_icl.envs.icl_bursty` for the sequences.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from snn_icl.config import seed_kind
from snn_icl.envs import icl_bursty as ib
from snn_icl.episodes.rollout import env_seed
from snn_icl.models import frozen, weights_sha256

MEASURES = ("icl_novel_accuracy", "icl_flip_accuracy", "iwl_accuracy")
"""The three accuracies the issue (and metrics.csv) track."""


@torch.no_grad()
def logits(model: nn.Module, b: ib.BurstyBatch, batch: int = 1024) -> Tensor:
    """Model logits [n, L] at the query, in chunks of ``batch`` sequences."""
    toks = ib.tokens(b)
    return torch.cat([model(toks[:, i:i + batch]) for i in range(0, toks.shape[1], batch)])


def evaluate(model: nn.Module, task: Any, seed: int, *, n_tasks: int = 4096) -> dict[str, Any]:
    """The evaluation of the module docstring on ``n_tasks`` sequences per test."""
    cfg: ib.BurstyConfig = task.env
    frozen(model)
    model.eval()
    before = weights_sha256(model)
    gen = lambda i: torch.Generator().manual_seed(env_seed(seed, i, training=False))  # noqa: E731
    result: dict[str, Any] = {"seed": seed, "seed_kind": seed_kind(seed), "tasks": n_tasks,
                              "chance": cfg.chance, "n_classes": cfg.n_classes,
                              "burstiness": cfg.burstiness, "eps": cfg.eps, "alpha": cfg.alpha}
    draws = {"icl_novel_accuracy": ib.novel_batch, "icl_flip_accuracy": ib.flip_batch,
             "iwl_accuracy": ib.iwl_batch, "training_accuracy": ib.sample}
    for i, (name, draw) in enumerate(draws.items()):
        b = draw(cfg, n_tasks, gen(i))
        out = logits(model, b)
        result[name] = ib.accuracy(out, b)
        if name == "icl_flip_accuracy":
            trained = ib.world(cfg).labels[b.query_class]
            result["flip_trained_label_fraction"] = float((out.argmax(-1) == trained).float().mean())
        result[name.replace("accuracy", "loss")] = float(ib.loss(out, b))
    after = weights_sha256(model)
    if after != before:
        raise RuntimeError(f"weights changed during evaluation (sha256 {before} -> {after})")
    return result


def read_curves(path: Any) -> dict[str, list[float]]:
    """The tracked rows of a run's metrics.csv (``train.track_every`` rows): ``iteration`` and
    the three held-out accuracies (:data:`MEASURES`), each a list along training."""
    import csv
    from pathlib import Path

    with Path(path).open() as f:
        rows = [r for r in csv.DictReader(f) if r.get(MEASURES[0])]
    return {key: [float(r[key]) for r in rows] for key in ("iteration", *MEASURES)}


def curve_summary(curves: dict[str, list[float]], threshold: float = 0.9) -> dict[str, Any]:
    """A run's tracked accuracies (:func:`read_curves`), summarised:

    - ``icl_emergence_iteration``: first tracked iteration whose novel-class ICL accuracy is
      >= ``threshold`` (None if never), and ``icl_rise_from``: the last tracked iteration before
      it with accuracy below 0.6 (the start of the final rise);
    - per measure: ``peak`` (max), ``peak_iteration``, ``final`` (last tracked value), and
      ``drop_after_peak`` = peak - final (transience: a drop of ICL after its peak);
    - ``iterations``: the last tracked iteration.
    """
    its = [int(i) for i in curves["iteration"]]
    out: dict[str, Any] = {"iterations": its[-1] if its else None, "threshold": threshold}
    novel = curves[MEASURES[0]]
    hit = next((i for i, v in enumerate(novel) if v >= threshold), None)
    out["icl_emergence_iteration"] = None if hit is None else its[hit]
    below = [i for i in range(hit or 0) if novel[i] < 0.6]
    out["icl_rise_from"] = its[below[-1]] if hit is not None and below else None
    for key in MEASURES:
        v = curves[key]
        peak = max(range(len(v)), key=v.__getitem__)
        out[key] = {"peak": v[peak], "peak_iteration": its[peak], "final": v[-1],
                    "drop_after_peak": v[peak] - v[-1]}
    return out


def curves_table(summaries: dict[str, dict[str, Any]]) -> str:
    """Markdown: per run (name -> :func:`curve_summary`) when novel-class ICL crossed the
    threshold and where its final rise began, the peaks and final values, the fall of novel-class
    ICL after its peak (the transience test), and the last tracked iteration."""
    lines = ["| run | ICL >= 0.9 at iteration | rise from | novel ICL peak (it) / final | "
             "novel ICL fall after peak | flip ICL final | IWL peak / final | tracked to |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in summaries.items():
        n, f, w = (s[k] for k in MEASURES)
        lines.append(f"| {name} | {s['icl_emergence_iteration'] or 'never'} | "
                     f"{s['icl_rise_from'] or '-'} | {n['peak']:.3f} ({n['peak_iteration']}) / "
                     f"{n['final']:.3f} | {n['drop_after_peak']:.3f} | {f['final']:.3f} | "
                     f"{w['peak']:.3f} / {w['final']:.3f} | "
                     f"{s['iterations']} |")
    return "\n".join(lines) + "\n"
