"""Where an in-context regression model loses accuracy: in what its state keeps of the context,
or in how it reads that state out at the query.

For a frozen model on held-out tasks of its task family (k = N context examples):

- ``model``: its own loss (0.5 x mean squared error at the query);
- ``query``: for each internal state at the end of the query (``model.features``), the loss of
  the best ridge read-out of y_q from it. Near ``model`` for the state its head reads: the head
  is as good as a linear read-out of that state can be, and the loss is in the state;
- ``context`` (models whose state after the last example is all they keep of the context: the
  LSTM and the LSNN, ``carries_context``): for each state after the last context example
  (``model.context_features``), the loss of the best ridge read-out of y_q from its products
  with x_q (:func:`readouts.bilinear`): what the stored context allows a read-out that may use
  the query freely, the memory's ceiling for any network that combines it with x_q bilinearly;
- ``references`` on the same test tasks: predicting 0, one GD step (eta tuned), the same
  bilinear read-out from the exact X^T Y (the ceiling of a perfect X^T Y store; one GD step is
  one case of it) and least squares.

Every read-out is fitted on ``tune`` tasks (penalty chosen on their last quarter) and scored on
``test`` tasks; both come from the evaluation seed with evaluation-parity generator seeds, so
none was a training task. Read-outs from many features need many tasks: a context ceiling is
an upper bound that falls as ``tune_tasks`` grows (the best d = 10 LSNN's, from its adaptation,
1.02 from 8,192 tasks and 0.95 from 32,768, validation seed 5).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from snn_icl.analysis import icl_references as ref
from snn_icl.analysis import readouts
from snn_icl.config import seed_kind
from snn_icl.envs import icl_regression as reg
from snn_icl.experiments.icl_regression import held_out_tasks, predict, states, xty
from snn_icl.models import frozen


def _ceiling(f_tune: Tensor, y_tune: Tensor, f_test: Tensor, y_test: Tensor) -> dict[str, float]:
    r = readouts.fit_chosen(f_tune, y_tune)
    return {"loss": ref.loss(readouts.apply(r, f_test), y_test), "lambda": r.lam}


def require_regression(name: str, task: Any) -> None:
    """ValueError unless ``task`` trains an in-context regression model."""
    family = getattr(task.env, "family", None)
    if family != "icl_regression":
        raise ValueError(f"{name}: icl-readouts needs an in-context regression model, not one "
                         f"trained on {family or 'the water maze'!r}")


def icl_readouts(model: nn.Module, task: Any, seed: int, *, tune_tasks: int = 32768,
                 test_tasks: int = 4096) -> dict[str, Any]:
    """The losses of the module docstring (JSON-ready) on ``test_tasks`` tasks of evaluation
    ``seed``, read-outs fitted on ``tune_tasks`` others."""
    require_regression(task.name, task)
    cfg = task.env
    if tune_tasks < 8 or test_tasks < 1:
        raise ValueError(f"icl-readouts needs at least 8 tune tasks and 1 test task, got "
                         f"{tune_tasks} and {test_tasks}")
    frozen(model)
    model.eval()
    tune, test = held_out_tasks(cfg, tune_tasks, seed, 20), held_out_tasks(cfg, test_tasks, seed, 21)
    tok_tune, tok_test = reg.tokens(tune), reg.tokens(test)
    result: dict[str, Any] = {"seed": seed, "seed_kind": seed_kind(seed), "tune_tasks": tune_tasks,
                              "test_tasks": test_tasks, "d": cfg.d, "n_examples": cfg.n_examples,
                              "model": ref.loss(predict(model, test), test.y_q)}
    q_tune, q_test = states(model, tok_tune, 1024), states(model, tok_test, 1024)
    result["query"] = {k: _ceiling(q_tune[k], tune.y_q, q_test[k], test.y_q) for k in q_tune}
    if getattr(model, "carries_context", False):
        c_tune = states(model, tok_tune[:-1], 1024, context=True)
        c_test = states(model, tok_test[:-1], 1024, context=True)
        result["context"] = {k: _ceiling(readouts.bilinear(c_tune[k], tune.x_q), tune.y_q,
                                         readouts.bilinear(c_test[k], test.x_q), test.y_q)
                             for k in c_tune}
    eta = ref.best_eta(tune.x, tune.y, tune.x_q, tune.y_q)
    result["references"] = {
        "zero": ref.loss(torch.zeros_like(test.y_q), test.y_q),
        "gd1": {"loss": ref.loss(ref.predict(ref.gd_weights(test.x, test.y, eta), test.x_q), test.y_q),
                "eta": eta},
        "xty_bilinear": _ceiling(readouts.bilinear(xty(tune), tune.x_q), tune.y_q,
                                 readouts.bilinear(xty(test), test.x_q), test.y_q),
        "least_squares": ref.loss(ref.predict(ref.ols_weights(test.x, test.y), test.x_q), test.y_q),
    }
    return result


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """One row per model: its loss, the query read-outs' and the context ceilings, and the
    references of the first model's tasks."""
    first = next(iter(results.values()))
    lines = [f"In-context regression read-outs ({first['seed_kind']} seed {first['seed']}, "
             f"{first['test_tasks']} test tasks, read-outs fitted on {first['tune_tasks']}; "
             f"d = {first['d']}, k = {first['n_examples']}). Loss = 0.5 x mean squared error.", "",
             "| model | its loss | best linear read-out of the state at the query | best "
             "read-out of the state after the context, bilinear with x_q |", "|---|---|---|---|"]
    for name, r in results.items():
        query = ", ".join(f"{k} {v['loss']:.3f}" for k, v in r["query"].items())
        context = ", ".join(f"{k} {v['loss']:.3f}" for k, v in r.get("context", {}).items()) or "-"
        lines.append(f"| {name} | {r['model']:.3f} | {query} | {context} |")
    refs = first["references"]
    lines += ["", f"References on the same tasks: predicting 0 {refs['zero']:.3f}, one GD step "
              f"{refs['gd1']['loss']:.3f} (eta {refs['gd1']['eta']:.3f}), the bilinear read-out of "
              f"the exact X^T Y {refs['xty_bilinear']['loss']:.3f}, least squares "
              f"{refs['least_squares']:.2g}."]
    return "\n".join(lines) + "\n"
