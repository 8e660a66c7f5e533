"""Read-outs of in-context regression states: what a state holds of the context against what the
model's own read-out uses (snn_icl/experiments/icl_readouts.py, `snn-icl icl-readouts`)."""

import json
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from snn_icl.analysis import readouts
from snn_icl.cli import app
from snn_icl.envs import icl_regression as reg
from snn_icl.experiments.icl_readouts import icl_readouts

runner = CliRunner()
G = lambda s: torch.Generator().manual_seed(s)  # noqa: E731


def test_bilinear_readout_recovers_a_query_dependent_map_a_linear_one_cannot():
    n, S, Q = 3000, 5, 4
    s, q = torch.randn(n, S, generator=G(0)), torch.randn(n, Q, generator=G(1))
    m = torch.randn(S, Q, generator=G(2))
    y = torch.einsum("ns,sq,nq->n", s, m, q) + 0.05 * torch.randn(n, generator=G(3))
    fit, test = slice(0, 2000), slice(2000, None)
    var = float(y[test].var())
    bil = readouts.fit_chosen(readouts.bilinear(s[fit], q[fit]), y[fit])
    mse = float((readouts.apply(bil, readouts.bilinear(s[test], q[test])) - y[test]).pow(2).mean())
    assert mse < 0.01 * var
    lin = readouts.fit_chosen(torch.cat([s, q], 1)[fit], y[fit])
    mse_lin = float((readouts.apply(lin, torch.cat([s, q], 1)[test]) - y[test]).pow(2).mean())
    assert mse_lin > 0.8 * var
    with pytest.raises(ValueError, match="too few"):
        readouts.fit_chosen(s[:2], y[:2])


class _Ignores(torch.nn.Module):
    """Keeps X^T Y exactly in its state but predicts 0: all the loss is in its read-out."""

    carries_context = True

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens):
        return torch.zeros(tokens.shape[1], 1)

    def features(self, tokens):  # the query's y entry is 0: it adds nothing to X^T Y
        return {"xty": (tokens[:, :, :-1] * tokens[:, :, -1:]).sum(0),
                "noise": torch.randn(tokens.shape[1], 3, generator=G(tokens.shape[0]))}

    def context_features(self, examples):
        return self.features(examples)


def test_readouts_find_a_context_the_model_keeps_but_does_not_use():
    task = SimpleNamespace(name="icl_tiny", env=reg.RegressionConfig(d=3, n_examples=6))
    r = icl_readouts(_Ignores(), task, seed=7, tune_tasks=3000, test_tasks=1000)
    refs = r["references"]
    assert r["model"] == pytest.approx(refs["zero"])
    # the state read out with x_q is as good as the exact X^T Y, and at least one GD step
    assert r["context"]["xty"]["loss"] == pytest.approx(refs["xty_bilinear"]["loss"], rel=0.02)
    assert refs["xty_bilinear"]["loss"] < 1.02 * refs["gd1"]["loss"] < 0.8 * refs["zero"]
    # without the query, neither X^T Y nor noise predicts y_q linearly
    assert r["query"]["xty"]["loss"] > 0.9 * refs["zero"]
    assert r["context"]["noise"]["loss"] > 0.9 * refs["zero"]
    assert r["seed_kind"] == "validation" and r["tune_tasks"] == 3000


def test_icl_readouts_cli_writes_the_table_and_refuses_a_water_maze_network(tmp_path):
    out = tmp_path / "ro"
    r = runner.invoke(app, ["icl-readouts", "lstm=pretrained:icl_lstm", "--tune-tasks", "2048",
                            "-n", "512", "--seed", "1000000", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "readouts.json").read_text())["models"]["lstm"]
    assert res["seed_kind"] == "test" and set(res["query"]) == set(res["context"]) == {"h", "c"}
    # the LSTM's head reads h: the best linear read-out of h cannot be much worse than the head
    assert res["query"]["h"]["loss"] < 1.05 * res["model"] < res["references"]["zero"]
    assert "| lstm |" in (out / "readouts.md").read_text()
    assert (out / "readouts.png").stat().st_size > 10_000
    bad = tmp_path / "bad"
    r = runner.invoke(app, ["icl-readouts", "pretrained", "--out", str(bad)])
    assert r.exit_code == 2 and "needs an in-context regression model" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not bad.exists()
