"""Frozen-weight evaluation of a predictor on in-context linear regression, against exact
reference learners (von Oswald et al. 2022; Akyuerek et al. 2022; Garg et al. 2022).

All tasks come from the evaluation seed with odd (evaluation-parity) generator seeds, so none
was a training task: ``tune`` tasks choose the references' learning rates and ridge strengths
and fit the probes' read-outs; ``test`` tasks are scored. The result (JSON-ready):

- ``loss``: 0.5 x mean squared error on the query at k = N context examples;
- ``vs_gd1``: the model's loss minus one GD step's, task by task on the same test tasks, with
  its 95 % interval (normal, across tasks): whether the model beats one GD step beyond the
  noise of the test set (``beats``: the whole interval below 0);
- ``references``: ``zero``, ``gd1`` / ``gd2`` / ``gd3`` (loss, eta), ``ridge`` (loss, lambda),
  ``least_squares``, ``knn`` (loss, n), ``averaging``, each a loss on the same test tasks;
- ``alignment.gd1`` (von Oswald): ``pred_diff`` = RMS of (model - GD) predictions,
  ``pred_diff_rel`` = that over the RMS of GD's, ``model_cos`` / ``model_diff`` = mean cosine /
  distance between the sensitivities d yhat / d x_q of the model and of one GD step (w_GD);
- ``loss_by_k`` (Garg): model, best one-step GD (eta tuned per k) and least squares for
  k = 0 .. max(2d, N) context examples, and least squares' noiseless theory ((d - k)/d of the zero loss
  for k <= d);
- ``ood``: losses with x or w scaled (model, GD with the in-distribution eta, least squares);
- ``probes`` (Akyuerek): held-out R^2 of ridge read-outs of X^T Y and w_OLS from each internal
  state the model exposes (``features``) at the query.

Devices: the tasks are drawn and every reference computed on the CPU; only the model's forward
passes run on its device (inputs moved there, outputs back), so ``evaluate --device cuda`` scores
the same tasks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from snn_icl.analysis import icl_references as ref
from snn_icl.analysis import readouts
from snn_icl.config import seed_kind
from snn_icl.envs import icl_regression as reg
from snn_icl.envs.family import map_tensors, to_device
from snn_icl.episodes.rollout import env_seed
from snn_icl.models import frozen, weights_sha256
from snn_icl.models.agent import module_device

OOD = {"x_scale_2": {"x_scale": 2.0}, "x_scale_0.5": {"x_scale": 0.5},
       "w_scale_2": {"w_scale": 2.0}}
"""The out-of-distribution test sets (multipliers of the training ranges)."""


def held_out_tasks(cfg: reg.RegressionConfig, n: int, seed: int, index: int, **kw: Any
                   ) -> reg.RegressionBatch:
    """``n`` tasks of evaluation ``seed``, set ``index`` (an evaluation-parity generator seed: never
    a training task); ``kw`` as :func:`envs.icl_regression.sample`."""
    return reg.sample(cfg, n, torch.Generator().manual_seed(env_seed(seed, index, training=False)), **kw)


@torch.no_grad()
def predict(model: nn.Module, b: reg.RegressionBatch, batch: int = 1024) -> Tensor:
    """Model predictions [B] at the query, in chunks of ``batch`` tasks."""
    toks, device = reg.tokens(b), module_device(model)
    return torch.cat([model(toks[:, i:i + batch].to(device))[:, 0].cpu()
                      for i in range(0, toks.shape[1], batch)])


def sensitivity(model: nn.Module, b: reg.RegressionBatch, *, radius: float = 0.1,
                samples: int = 16, generator: torch.Generator | None = None) -> Tensor:
    """d yhat / d x_q [B, d]. Differentiable models: autograd. Spiking ones (whose gradients are
    surrogates): the least-squares slope of yhat over ``samples`` query perturbations uniform in
    +-radius (x units)."""
    if not getattr(model, "spiking", False):
        device = module_device(model)
        on = to_device(b, device)
        x_q = on.x_q.clone().requires_grad_(True)
        pred = model(reg.tokens(on._replace(x_q=x_q)))[:, 0]
        (grad,) = torch.autograd.grad(pred.sum(), x_q)
        return grad.detach().cpu()
    B, d = b.x_q.shape
    delta = (torch.rand(samples, B, d, generator=generator) * 2 - 1) * radius
    with torch.no_grad():
        preds = torch.stack([predict(model, b._replace(x_q=b.x_q + delta[s])) for s in range(samples)])
    dp = preds - preds.mean(0)  # [S, B]
    dd = delta - delta.mean(0)  # [S, B, d]
    gram = torch.einsum("sbi,sbj->bij", dd, dd) + 1e-9 * torch.eye(d)
    return torch.linalg.solve(gram, torch.einsum("sbi,sb->bi", dd, dp))


def references(tune: reg.RegressionBatch, test: reg.RegressionBatch) -> dict[str, Any]:
    """Every reference learner's test loss, hyper-parameters chosen on ``tune``."""
    out: dict[str, Any] = {"zero": {"loss": ref.loss(torch.zeros_like(test.y_q), test.y_q)}}
    for steps in (1, 2, 3):
        eta = ref.best_eta(tune.x, tune.y, tune.x_q, tune.y_q, steps)
        pred = ref.predict(ref.gd_weights(test.x, test.y, eta, steps), test.x_q)
        out[f"gd{steps}"] = {"loss": ref.loss(pred, test.y_q), "eta": eta}
    lam = ref.best_lambda(tune.x, tune.y, tune.x_q, tune.y_q)
    out["ridge"] = {"loss": ref.loss(ref.predict(ref.ridge_weights(test.x, test.y, lam), test.x_q),
                                     test.y_q), "lambda": lam}
    out["least_squares"] = {"loss": ref.loss(ref.predict(ref.ols_weights(test.x, test.y), test.x_q),
                                             test.y_q)}
    out["knn"] = {"loss": ref.loss(ref.knn_predict(test.x, test.y, test.x_q, 3), test.y_q), "n": 3}
    out["averaging"] = {"loss": ref.loss(ref.predict(ref.gd_weights(test.x, test.y, 1.0), test.x_q),
                                         test.y_q)}
    return out


def alignment(model: nn.Module, test: reg.RegressionBatch, eta: float,
              generator: torch.Generator) -> dict[str, float]:
    """von Oswald's comparison of the model with one GD step of learning rate ``eta``."""
    w_gd = ref.gd_weights(test.x, test.y, eta)
    pred_gd = ref.predict(w_gd, test.x_q)
    pred = predict(model, test)
    rms = lambda t: float(t.pow(2).mean().sqrt())  # noqa: E731
    sens = torch.cat([sensitivity(model, _chunk(test, i, 512), generator=generator)
                      for i in range(0, test.x.shape[0], 512)])
    cos = torch.nn.functional.cosine_similarity(sens, w_gd, dim=-1)
    return {"pred_diff": rms(pred - pred_gd), "pred_diff_rel": rms(pred - pred_gd) / rms(pred_gd),
            "model_cos": float(cos.mean()), "model_diff": float((sens - w_gd).norm(dim=-1).mean())}


def paired_difference(pred: Tensor, other: Tensor, y: Tensor) -> dict[str, Any]:
    """Loss of predictions ``pred`` [B] minus that of ``other`` [B] on the same targets ``y``
    [B], task by task: mean, 95 % interval (normal; B is in the thousands) and whether the
    whole interval lies below 0 (``beats``)."""
    d = 0.5 * ((pred - y).pow(2) - (other - y).pow(2)).double()
    mean, half = float(d.mean()), 1.96 * float(d.std()) / len(d) ** 0.5
    return {"difference": mean, "ci95": [mean - half, mean + half], "beats": mean + half < 0}


def _chunk(b: reg.RegressionBatch, i: int, n: int) -> reg.RegressionBatch:
    return map_tensors(b, lambda t: t[i:i + n])


def loss_by_k(model: nn.Module, cfg: reg.RegressionConfig, n: int, seed: int) -> dict[str, Any]:
    """Model, tuned one-step GD and least squares against the number of context examples."""
    ks = list(range(0, max(2 * cfg.d, cfg.n_examples) + 1))
    rows: dict[str, list[float]] = {"k": ks, "model": [], "gd1": [], "least_squares": [],
                                    "least_squares_theory": []}
    zero = reg.zero_loss(cfg)
    for k in ks:
        tune, test = held_out_tasks(cfg, n, seed, 100 + 2 * k, k=k), held_out_tasks(cfg, n, seed, 101 + 2 * k, k=k)
        rows["model"].append(ref.loss(predict(model, test), test.y_q))
        eta = ref.best_eta(tune.x, tune.y, tune.x_q, tune.y_q)
        rows["gd1"].append(ref.loss(ref.predict(ref.gd_weights(test.x, test.y, eta), test.x_q), test.y_q))
        rows["least_squares"].append(ref.loss(ref.predict(ref.ols_weights(test.x, test.y), test.x_q),
                                              test.y_q))
        rows["least_squares_theory"].append(zero * reg.least_squares_fraction(cfg.d, k)
                                            if cfg.noise_std == 0 else float("nan"))
    return rows


def probes(model: nn.Module, tune: reg.RegressionBatch, test: reg.RegressionBatch,
           lam: float = 1e-3) -> dict[str, dict[str, float]]:
    """Held-out R^2 of linear (ridge) read-outs of X^T Y and w_OLS from each internal state at
    the query: fitted on ``tune`` tasks, scored on ``test`` tasks (Akyuerek et al. 2022)."""
    feats = states(model, reg.tokens(tune)), states(model, reg.tokens(test))
    targets = [{"XtY": xty(b), "w_ols": ref.ols_weights(b.x, b.y)}
               for b in (tune, test)]
    out: dict[str, dict[str, float]] = {}
    for name in feats[0]:
        out[name] = {t: _ridge_r2(feats[0][name], targets[0][t], feats[1][name], targets[1][t], lam)
                     for t in targets[0]}
    return out


def xty(b: reg.RegressionBatch) -> Tensor:
    """X^T Y of each task's context [B, d] (one GD step from w = 0 is eta / k times it)."""
    return (b.x * b.y.unsqueeze(-1)).sum(1)


@torch.no_grad()
def states(model: nn.Module, tokens: Tensor, batch: int = 512, *,
           context: bool = False) -> dict[str, Tensor]:
    """``model.features`` of ``tokens`` [T, B, D] (``context``: ``model.context_features`` of
    examples only) in chunks of ``batch`` sequences, on the CPU."""
    device = module_device(model)
    of = model.context_features if context else model.features
    parts = [of(tokens[:, i:i + batch].to(device)) for i in range(0, tokens.shape[1], batch)]
    return {k: torch.cat([p[k].cpu() for p in parts]) for k in parts[0]}


def _ridge_r2(f_tr: Tensor, y_tr: Tensor, f_te: Tensor, y_te: Tensor, lam: float) -> float:
    """R^2 on the test rows of a ridge read-out (analysis.readouts.fit) fitted on the training
    rows."""
    resid = (readouts.apply(readouts.fit(f_tr, y_tr, lam), f_te) - y_te).pow(2).sum()
    total = (y_te - y_te.mean(0)).pow(2).sum()
    return float(1 - resid / total)


def evaluate(model: nn.Module, task: Any, seed: int, *, n_tasks: int = 4096) -> dict[str, Any]:
    """The full evaluation (module docstring) on ``n_tasks`` test tasks of evaluation ``seed``."""
    cfg = task.env
    frozen(model)
    model.eval()
    before = weights_sha256(model)
    tune, test = held_out_tasks(cfg, n_tasks, seed, 0), held_out_tasks(cfg, n_tasks, seed, 1)
    result: dict[str, Any] = {"seed": seed, "seed_kind": seed_kind(seed), "tasks": n_tasks,
                              "d": cfg.d, "n_examples": cfg.n_examples}
    pred = predict(model, test)
    result["loss"] = ref.loss(pred, test.y_q)
    result["references"] = references(tune, test)
    gd1 = result["references"]["gd1"]
    gd_pred = ref.predict(ref.gd_weights(test.x, test.y, gd1["eta"]), test.x_q)
    result["vs_gd1"] = paired_difference(pred, gd_pred, test.y_q)
    result["loss_vs_gd1"] = result["loss"] / gd1["loss"]
    gen = torch.Generator().manual_seed(env_seed(seed, 2, training=False))
    result["alignment"] = {"gd1": alignment(model, _chunk(test, 0, min(n_tasks, 2048)), gd1["eta"], gen)}
    result["loss_by_k"] = loss_by_k(model, cfg, min(n_tasks, 2048), seed)
    result["ood"] = {}
    for i, (name, kw) in enumerate(OOD.items()):
        b = held_out_tasks(cfg, n_tasks, seed, 10 + i, **kw)
        result["ood"][name] = {
            "model": ref.loss(predict(model, b), b.y_q),
            "gd1": ref.loss(ref.predict(ref.gd_weights(b.x, b.y, gd1["eta"]), b.x_q), b.y_q),
            "least_squares": ref.loss(ref.predict(ref.ols_weights(b.x, b.y), b.x_q), b.y_q)}
    result["probes"] = probes(model, _chunk(tune, 0, min(n_tasks, 2048)),
                              _chunk(test, 0, min(n_tasks, 2048)))
    after = weights_sha256(model)
    if after != before:
        raise RuntimeError(f"weights changed during evaluation (sha256 {before} -> {after})")
    return result


def curriculum_stages(cfg: reg.RegressionConfig, rows: list[dict[str, str]], *,
                      window: int = 500) -> list[dict[str, Any]]:
    """How a dimension curriculum went, from a run's metrics.csv ``rows`` (one per iteration):
    per number of coordinates in training, the iteration it began, the iterations spent, and
    the training loss as a share of predicting 0 on those coordinates (mean over the stage's
    first and last ``window`` iterations), beside least squares' share (the floor). Empty when
    the rows have no ``active_dimension`` column or the run never changed it."""
    stages: list[dict[str, Any]] = []
    for r in rows:
        if not r.get("active_dimension") or not r.get("loss"):
            continue
        active = int(float(r["active_dimension"]))
        if not stages or stages[-1]["coordinates"] != active:
            stages.append({"coordinates": active, "first_iteration": int(float(r["iteration"])),
                           "shares": []})
        stages[-1]["shares"].append(float(r["loss"]) / reg.zero_loss(cfg, active))
    if len(stages) < 2:
        return []
    out = []
    for s in stages:
        shares = s.pop("shares")
        out.append({**s, "iterations": len(shares),
                    "share_first": sum(shares[:window]) / len(shares[:window]),
                    "share_last": sum(shares[-window:]) / len(shares[-window:]),
                    "least_squares_share": reg.least_squares_share(cfg, s["coordinates"])})
    return out
