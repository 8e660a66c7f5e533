"""In-context linear regression: the task family, the reference learners, the predictors, the
supervised trainer and the evaluation (docs/icl_regression.md)."""

import csv
import json

import math

import pytest
import torch
from typer.testing import CliRunner

from snn_icl.analysis import icl_references as ref
from snn_icl.cli import app
from snn_icl.config import ConfigError, load_task, replace, task_from_dict, task_to_dict
from snn_icl.envs import icl_regression as reg
from snn_icl.experiments import icl_regression as ev
from snn_icl.models.lsa import LinearSelfAttention, LSAConfig
from snn_icl.models.seq_transformer import MomentumAttention
from snn_icl.storage import files
from snn_icl.storage.checkpoint import load_agent
from snn_icl.train.run_dir import RunFailed, train_run
from tests.conftest import TASKS

runner = CliRunner()
G = lambda s: torch.Generator().manual_seed(s)  # noqa: E731


def _tiny(tmp_path, **agent):
    """A small LSA task (d = 3, N = 4) that trains in seconds."""
    text = f"""name = "icl_tiny"
[env]
family = "icl_regression"
d = 3
n_examples = 4
[agent]
{chr(10).join(f'{k} = {json.dumps(v)}' for k, v in {"kind": "lsa", **agent}.items())}
[train]
iterations = 300
batch_episodes = 256
lr = 0.01
threads = 1
minibatches = 1
track_every = 100
checkpoint_minutes = 0.01
"""
    path = tmp_path / "icl_tiny.toml"
    path.write_text(text)
    return path


def _von_oswald_lsa(d: int, eta: float) -> LinearSelfAttention:
    """A one-layer LSA set by hand to von Oswald et al.'s construction of one GD step at eta."""
    lsa = LinearSelfAttention(d + 1, LSAConfig())
    with torch.no_grad():
        lsa.w_kq.zero_(); lsa.w_pv.zero_()
        lsa.w_kq[0, 0, :d, :d] = torch.eye(d)
        lsa.w_pv[0, 0, d, d] = eta
    return lsa


# --- the task family ---------------------------------------------------------------------------

def test_tokens_hold_the_examples_and_a_zero_label_query():
    cfg = reg.RegressionConfig(d=4, n_examples=6)
    b = reg.sample(cfg, 32, G(0))
    assert b.x.shape == (32, 6, 4) and b.y.shape == (32, 6) and b.x_q.shape == (32, 4)
    assert torch.allclose(b.y, torch.einsum("bkd,bd->bk", b.x, b.w))  # noiseless: y = w.x
    assert torch.allclose(b.y_q, (b.x_q * b.w).sum(-1))
    assert b.x.abs().max() <= 1.0
    toks = reg.tokens(b)
    assert toks.shape == (7, 32, 5)
    assert torch.equal(toks[:6, :, :4], b.x.transpose(0, 1)) and torch.equal(toks[:6, :, 4], b.y.T)
    assert torch.equal(toks[6, :, :4], b.x_q) and bool((toks[6, :, 4] == 0).all())
    again = reg.sample(cfg, 32, G(0))
    assert torch.equal(again.x, b.x) and not torch.equal(reg.sample(cfg, 32, G(1)).x, b.x)
    wide = reg.sample(cfg, 4096, G(2), x_scale=2.0, w_scale=3.0)
    assert 1.9 < float(wide.x.abs().max()) <= 2.0
    assert 2.5 < float(wide.w.std()) < 3.5


def test_context_passes_show_the_examples_again_before_the_query():
    cfg = reg.RegressionConfig(d=4, n_examples=6, context_passes=2)
    assert cfg.episode_steps == 13
    b = reg.sample(cfg, 32, G(0))
    once = reg.tokens(b._replace(passes=1))
    toks = reg.tokens(b)
    assert toks.shape == (13, 32, 5)
    assert torch.equal(toks[:6], once[:6]) and torch.equal(toks[6:12], once[:6])
    assert torch.equal(toks[12], once[6])
    # the tasks are those of one pass: only the tokens change
    assert torch.equal(b.x, reg.sample(reg.RegressionConfig(d=4, n_examples=6), 32, G(0)).x)
    assert reg.tokens(reg.sample(cfg, 3, G(0), k=0)).shape == (1, 3, 5)
    with pytest.raises(ValueError, match="context_passes must be >= 1"):
        reg.RegressionConfig(context_passes=0)
    # von Oswald's one-layer LSA averages over the tokens it sees: a second pass gives it
    # nothing, the same one GD step
    d, eta = 4, 0.3
    lsa = _von_oswald_lsa(d, eta)
    gd = ref.predict(ref.gd_weights(b.x, b.y, eta), b.x_q)
    assert torch.allclose(lsa(toks)[:, 0], gd, atol=1e-5)
    assert torch.allclose(ev.sensitivity(lsa, b), ref.gd_weights(b.x, b.y, eta), atol=1e-5)


def test_a_two_pass_lsnn_trains_and_evaluates(tmp_path):
    task = replace(load_task(_tiny(tmp_path)), env={"context_passes": 2},
                   agent={"kind": "lsnn", "n_regular": 8, "n_adaptive": 8, "ms_per_token": 3,
                          "query_flag": 1.0},
                   train={"iterations": 2, "batch_episodes": 16})
    files.write_toml(tmp_path / "two.toml", task_to_dict(task))
    run = tmp_path / "two"
    train_run(tmp_path / "two.toml", run, progress=False)
    model, back, _ = load_agent(run / "checkpoint.safetensors")
    assert back.env.context_passes == 2
    out = tmp_path / "eval.json"
    r = runner.invoke(app, ["evaluate", str(run), "--seed", "5", "-n", "64", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    b = reg.sample(back.env, 64, G(1))
    assert math.isfinite(res["loss"]) and ev.predict(model, b).shape == (64,)
    # the run's model saw both passes: one pass gives other predictions
    assert not torch.allclose(ev.predict(model, b), ev.predict(model, b._replace(passes=1)))


def test_training_context_sizes_span_the_range():
    cfg = reg.RegressionConfig(n_examples=5, n_examples_min=2)
    ks = {reg.training_k(cfg, G(i)) for i in range(200)}
    assert ks == {2, 3, 4, 5}
    assert reg.training_k(reg.RegressionConfig(n_examples=5), G(0)) == 5


def test_zero_loss_matches_sampling():
    cfg = reg.RegressionConfig(d=6, noise_std=0.5)
    b = reg.sample(cfg, 50_000, G(3))
    assert ref.loss(torch.zeros_like(b.y_q), b.y_q) == pytest.approx(reg.zero_loss(cfg), rel=0.03)


# --- reference learners ------------------------------------------------------------------------

def test_one_gd_step_is_eta_over_k_sum_of_yx_and_its_best_eta_is_the_minimum():
    cfg = reg.RegressionConfig(d=5, n_examples=7)
    b = reg.sample(cfg, 4000, G(4))
    w1 = ref.gd_weights(b.x, b.y, 0.7)
    assert torch.allclose(w1, 0.7 / 7 * (b.y.unsqueeze(-1) * b.x).sum(1), atol=1e-6)
    eta = ref.best_eta(b.x, b.y, b.x_q, b.y_q)
    at = lambda e: ref.loss(ref.predict(ref.gd_weights(b.x, b.y, e), b.x_q), b.y_q)  # noqa: E731
    assert at(eta) < at(eta * 0.9) and at(eta) < at(eta * 1.1)
    eta2 = ref.best_eta(b.x, b.y, b.x_q, b.y_q, steps=2)
    at2 = lambda e: ref.loss(ref.predict(ref.gd_weights(b.x, b.y, e, 2), b.x_q), b.y_q)  # noqa: E731
    assert at2(eta2) <= min(at2(eta2 * 0.9), at2(eta2 * 1.1)) + 1e-6
    assert at2(eta2) < at(eta)  # two steps beat one


def test_least_squares_ridge_and_many_gd_steps_agree_when_determined():
    cfg = reg.RegressionConfig(d=4, n_examples=12)
    b = reg.sample(cfg, 64, G(5))
    assert torch.allclose(ref.ols_weights(b.x, b.y), b.w, atol=1e-4)
    assert torch.allclose(ref.ridge_weights(b.x, b.y, 1e-8), b.w, atol=1e-3)
    assert torch.allclose(ref.gd_weights(b.x, b.y, 1.0, steps=3000), b.w, atol=1e-3)
    under = reg.sample(reg.RegressionConfig(d=8, n_examples=3), 64, G(6))
    w = ref.ols_weights(under.x, under.y)  # min-norm interpolation when k < d
    assert torch.allclose(torch.einsum("bkd,bd->bk", under.x, w), under.y, atol=1e-4)
    assert ref.knn_predict(b.x, b.y, b.x[:, 2], 1).sub(b.y[:, 2]).abs().max() < 1e-6


# --- predictors --------------------------------------------------------------------------------

def test_lsa_with_von_oswalds_construction_is_one_gd_step():
    d, eta = 5, 0.8
    lsa = _von_oswald_lsa(d, eta)
    b = reg.sample(reg.RegressionConfig(d=d, n_examples=9), 128, G(7))
    gd = ref.predict(ref.gd_weights(b.x, b.y, eta), b.x_q)
    assert torch.allclose(lsa(reg.tokens(b))[:, 0], gd, atol=1e-5)
    sens = ev.sensitivity(lsa, b)
    assert torch.allclose(sens, ref.gd_weights(b.x, b.y, eta), atol=1e-5)
    al = ev.alignment(lsa, b, eta, G(0))
    assert al["model_cos"] == pytest.approx(1.0, abs=1e-5) and al["pred_diff_rel"] < 1e-5
    al_off = ev.alignment(lsa, b, 2 * eta, G(0))  # half GD's learning rate: same direction
    assert al_off["model_cos"] == pytest.approx(1.0, abs=1e-5)
    assert al_off["pred_diff_rel"] == pytest.approx(0.5, abs=1e-4)


def test_spiking_sensitivity_is_the_local_slope():
    class Linear(torch.nn.Module):  # a model evaluated like a spiking one, with a known slope
        spiking = True

        def forward(self, tokens):
            return (tokens[-1, :, :3] @ torch.tensor([1.0, -2.0, 0.5])).unsqueeze(-1)

    b = reg.sample(reg.RegressionConfig(d=3, n_examples=2), 8, G(8))
    sens = ev.sensitivity(Linear(), b, generator=G(0))
    assert torch.allclose(sens, torch.tensor([1.0, -2.0, 0.5]).expand(8, 3), atol=1e-4)


def test_momentum_attention_adds_decayed_values():
    torch.manual_seed(0)
    plain, mom = MomentumAttention(8, 2, 0.0), MomentumAttention(8, 2, 0.5)
    mom.load_state_dict(plain.state_dict())
    x = torch.randn(3, 5, 8)
    q, k, v = mom.c_attn(x).split(8, dim=2)
    v = v.view(3, 5, 2, 4).transpose(1, 2)
    extra = torch.zeros_like(v)
    for t in range(5):
        for s in range(t):
            extra[:, :, t] += 0.5 ** (t - s) * v[:, :, s]
    expected = plain(x) + extra.transpose(1, 2).reshape(3, 5, 8) @ mom.c_proj.weight.T
    assert torch.allclose(mom(x), expected, atol=1e-5)
    assert torch.allclose(mom(x)[:, 0], plain(x)[:, 0])  # the first token has no past


@pytest.mark.parametrize("kind", ["lsa", "transformer", "lstm", "lsnn"])
def test_every_predictor_kind_trains_a_step_and_exposes_features(tmp_path, kind):
    extra = {"n_regular": 8, "n_adaptive": 8, "ms_per_token": 3} if kind == "lsnn" else {}
    task = replace(load_task(_tiny(tmp_path)), agent={"kind": kind, **extra},
                   train={"iterations": 2, "batch_episodes": 16})
    run = tmp_path / kind
    files.write_toml(tmp_path / f"{kind}.toml", task_to_dict(task))
    state = train_run(tmp_path / f"{kind}.toml", run, progress=False)
    assert state.iteration == 2 and state.episodes == 32
    model, back, _ = load_agent(run / "checkpoint.safetensors")
    assert back.agent.kind == kind
    b = reg.sample(back.env, 5, G(9))
    assert model(reg.tokens(b)).shape == (5, 1)
    feats = model.features(reg.tokens(b))
    assert feats and all(f.shape[0] == 5 and bool(torch.isfinite(f).all()) for f in feats.values())
    # each feature owns its memory: a view of a recorded trace would keep all of it alive
    assert all(f.untyped_storage().nbytes() == f.numel() * f.element_size() for f in feats.values())


def test_lsnn_population_code_spreads_each_number_over_tuning_curves(tmp_path):
    from snn_icl.models.seq_recurrent import tuning

    code = tuning(torch.tensor([[-3.0, 0.0, 0.4]]), 7, 3.0)  # centres -3, -2, ..., 3; width 1
    assert code.shape == (1, 21)
    assert code[0, :7].argmax() == 0 and code[0, 7:14].argmax() == 3
    assert code[0, 14 + 3] == pytest.approx(math.exp(-0.5 * 0.4 ** 2))  # 0.4 from centre 0
    assert code[0, 14 + 4] > code[0, 14 + 2]  # nearer to centre 1 than to -1
    task = replace(load_task(_tiny(tmp_path)), agent={"kind": "lsnn", "n_regular": 8,
                                                      "n_adaptive": 8, "ms_per_token": 3,
                                                      "population": 5},
                   train={"iterations": 1, "batch_episodes": 8})
    files.write_toml(tmp_path / "pop.toml", task_to_dict(task))
    train_run(tmp_path / "pop.toml", tmp_path / "pop", progress=False)
    model, back, _ = load_agent(tmp_path / "pop" / "checkpoint.safetensors")
    assert model.net.w_in.shape[0] == 5 * back.env.obs_dim  # 5 cells per token number
    assert model(reg.tokens(reg.sample(back.env, 3, G(2)))).shape == (3, 1)
    with pytest.raises(ConfigError, match="population"):
        replace(task, agent={"kind": "lsnn", "population": 1})


def test_lsnn_holds_the_query_token_for_query_ms():
    from snn_icl.models.seq_recurrent import SeqLSNN, SeqLSNNConfig

    torch.manual_seed(0)
    same = SeqLSNN(3, 1, SeqLSNNConfig(n_regular=4, n_adaptive=4, ms_per_token=5))
    tokens = torch.randn(4, 2, 3)
    z, _ = same.run(tokens)
    assert z.shape == (4 * 5, 2, 8)
    long = SeqLSNN(3, 1, SeqLSNNConfig(n_regular=4, n_adaptive=4, ms_per_token=5, query_ms=12))
    long.load_state_dict(same.state_dict())
    z_long, _ = long.run(tokens)
    assert z_long.shape == (3 * 5 + 12, 2, 8)
    assert torch.equal(z_long[:16], z[:16])  # the context and the query's first ms unchanged
    explicit = SeqLSNN(3, 1, SeqLSNNConfig(n_regular=4, n_adaptive=4, ms_per_token=5, query_ms=5))
    explicit.load_state_dict(same.state_dict())
    assert torch.equal(explicit(tokens), same(tokens))
    with pytest.raises(ValueError, match="query_ms must be >= 0"):
        SeqLSNNConfig(query_ms=-1)


def test_lsnn_query_flag_is_a_cell_of_its_own_on_during_the_query_only():
    from snn_icl.models.seq_recurrent import SeqLSNN, SeqLSNNConfig

    torch.manual_seed(0)
    cfg = SeqLSNNConfig(n_regular=4, n_adaptive=4, ms_per_token=5, query_ms=7, query_flag=2.0)
    net = SeqLSNN(3, 1, cfg)
    assert net.net.n_in == 4 and cfg.input_cells(3) == 4
    seen = []
    net.net.register_forward_pre_hook(lambda m, args, kw: seen.append(args[0]), with_kwargs=True)
    tokens = torch.randn(4, 2, 3)
    net.run(tokens)
    x = seen[-1] / cfg.input_scale
    assert x.shape == (3 * 5 + 7, 2, 4)
    assert torch.all(x[:15, :, -1] == 0) and torch.all(x[15:, :, -1] == 2.0)
    assert torch.allclose(x[15:, :, :3], tokens[-1].expand(7, 2, 3))
    # the context state: every token an example, no flag, no longer hold for the last
    net.context_features(tokens[:-1])
    assert seen[-1].shape == (3 * 5, 2, 4) and torch.all(seen[-1][..., -1] == 0)
    plain = SeqLSNN(3, 1, SeqLSNNConfig(n_regular=4, n_adaptive=4, ms_per_token=5))
    assert plain.net.n_in == 3
    with pytest.raises(ValueError, match="query_flag must be a finite current"):
        SeqLSNNConfig(query_flag=float("nan"))


def test_rate_regulariser_acts_on_the_supervised_lsnn(tmp_path):
    import csv

    rows = {}
    for reg_strength in (0.0, 100.0):
        task = replace(load_task(_tiny(tmp_path)), agent={"kind": "lsnn", "n_regular": 8,
                                                          "n_adaptive": 8, "ms_per_token": 3},
                       train={"iterations": 2, "batch_episodes": 8, "rate_reg": reg_strength,
                              "target_rate_hz": 200.0})
        name = f"r{int(reg_strength)}"
        files.write_toml(tmp_path / f"{name}.toml", task_to_dict(task))
        train_run(tmp_path / f"{name}.toml", tmp_path / name, progress=False)
        with open(tmp_path / name / "metrics.csv") as f:
            rows[reg_strength] = list(csv.DictReader(f))
    plain, held = rows[0.0], rows[100.0]
    assert float(plain[0]["rate_hz"]) == pytest.approx(float(held[0]["rate_hz"]))  # same start
    assert float(held[0]["loss"]) > float(plain[0]["loss"])  # the penalty is in the loss
    assert float(held[1]["rate_hz"]) != pytest.approx(float(plain[1]["rate_hz"]))  # and acts


# --- configuration -----------------------------------------------------------------------------

def test_task_files_are_checked_per_family():
    base = {"env": {"family": "icl_regression", "d": 4}, "agent": {"kind": "lsa"}}
    task = task_from_dict(base)
    assert task.env.obs_dim == 5 and task.env.episode_steps == 11 and task.agent.n_layer == 1
    with pytest.raises(ConfigError, match=r"\[env\]: unknown key 'pool_radius'"):
        task_from_dict({**base, "env": {"family": "icl_regression", "pool_radius": 1.0}})
    with pytest.raises(ConfigError, match="unknown task family 'maze'"):
        task_from_dict({"env": {"family": "maze"}})
    with pytest.raises(ConfigError, match="unknown predictor kind 'lsa2'.*lsa, lsnn, lstm, transformer"):
        task_from_dict({**base, "agent": {"kind": "lsa2"}})
    with pytest.raises(ConfigError, match="unknown agent kind 'lsa'"):
        task_from_dict({"agent": {"kind": "lsa"}})  # the water maze has no LSA agent
    with pytest.raises(ConfigError, match="n_examples_min must be in"):
        task_from_dict({**base, "env": {"family": "icl_regression", "n_examples": 3,
                                        "n_examples_min": 4}})
    with pytest.raises(ConfigError, match="momentum must be in"):
        task_from_dict({**base, "agent": {"kind": "transformer", "momentum": 1.0}})
    with pytest.raises(ConfigError, match="belongs to predictor kind|belongs to agent kind"):
        task_from_dict({**base, "agent": {"kind": "lsa", "hidden_size": 8}})
    assert task_from_dict({"env": {"family": "water_maze"}}).env == task_from_dict({}).env


def test_shipped_task_files_load():
    for name in ("lsa", "transformer", "lstm", "lsnn"):
        task = load_task(TASKS / f"icl_regression_{name}.toml")
        assert task.env.family == "icl_regression" and task.agent.kind == name
        assert task.env.d == 10 and task.env.n_examples == 10
    lsa = load_task(TASKS / "icl_regression_lsa.toml")
    assert (lsa.env.x_range, lsa.env.w_scale, lsa.env.noise_std, lsa.agent.n_layer) == (1.0, 1.0, 0.0, 1)


# --- training and evaluation through the command line ------------------------------------------

def test_train_resume_and_evaluate(tmp_path):
    task = _tiny(tmp_path)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    r = runner.invoke(app, ["train", str(task), "--out", str(whole)])
    assert r.exit_code == 0, r.output
    assert "300 iterations (76800 tasks" in r.output
    assert runner.invoke(app, ["train", str(task), "--out", str(parts), "--stop-after", "120"]).exit_code == 0
    assert runner.invoke(app, ["train", str(task), "--out", str(parts), "--resume"]).exit_code == 0
    a, _, _ = load_agent(whole / "checkpoint.safetensors")
    b, _, _ = load_agent(parts / "checkpoint.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    rows = list(csv.DictReader((whole / "metrics.csv").open()))
    tracked = [float(r["held_out_loss"]) for r in rows if r["held_out_loss"]]
    assert len(tracked) == 4 and tracked[-1] < 0.7 * tracked[0]  # it learns

    out = tmp_path / "eval.json"
    r = runner.invoke(app, ["evaluate", str(whole), "--seed", "1000000", "-n", "2048",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["seed_kind"] == "test" and res["tasks"] == 2048
    assert "curriculum_stages" not in res  # no curriculum, no stages
    gd1 = res["references"]["gd1"]
    assert {"loss", "eta"} <= set(gd1) and gd1["eta"] > 0
    assert {"gd2", "gd3", "ridge", "least_squares", "knn", "averaging", "zero"} <= set(res["references"])
    assert {"model_cos", "pred_diff_rel", "pred_diff", "model_diff"} <= set(res["alignment"]["gd1"])
    # a trained one-layer LSA is one GD step (von Oswald et al.), already at this small size
    assert res["loss"] < res["references"]["zero"]["loss"] * 0.8
    assert res["alignment"]["gd1"]["model_cos"] > 0.9
    k = res["loss_by_k"]
    assert k["k"] == list(range(7)) and k["least_squares"][-1] < 1e-3
    assert k["model"][4] < k["model"][0]
    assert set(res["ood"]) == set(ev.OOD)
    # task by task against one GD step: the mean difference is the difference of the losses
    v = res["vs_gd1"]
    assert v["difference"] == pytest.approx(res["loss"] - gd1["loss"], abs=1e-5)
    assert v["ci95"][0] < v["difference"] < v["ci95"][1] and v["beats"] == (v["ci95"][1] < 0)
    assert "model - GD" in r.output
    r = runner.invoke(app, ["evaluate", str(whole), "--protocol", "reversal", "--out", str(out)])
    assert r.exit_code == 2 and "protocols are water-maze options" in r.output


def test_nan_stops_the_run_and_keeps_the_checkpoint(tmp_path):
    task = _tiny(tmp_path)
    text = task.read_text().replace("lr = 0.01", "lr = 1.0").replace("iterations = 300", "iterations = 400")
    text = text.replace("[env]\n", "[env]\nw_scale = 1e18\n")
    task.write_text(text)
    with pytest.raises(RunFailed, match="non-finite"):
        train_run(task, tmp_path / "nan", progress=False)
    status = json.loads((tmp_path / "nan" / "run.json").read_text())["status"]
    assert status.startswith("failed: non-finite")


def test_sweep_and_report_of_a_regression_grid(tmp_path):
    task = _tiny(tmp_path)
    out, rep = tmp_path / "sweep", tmp_path / "report"
    r = runner.invoke(app, ["sweep", str(task), "--seeds", "0-1", "--set", "train.iterations=60",
                            "--out", str(out), "--workers", "2"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(out), "--out", str(rep), "-n", "512", "--seed", "3"])
    assert r.exit_code == 0, r.output
    rows = json.loads((rep / "report.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["family"] == "icl_regression" and rows[0]["n_seeds"] == 2
    assert rows[0]["training_tasks_mean"] == 60 * 256 and rows[0]["training_tasks_ci95"] == 0
    assert rows[0]["loss_vs_gd1_ci95"] > 0  # two seeds, two different networks
    # 60 steps of a tiny LSA are not one GD step yet: above it on every seed, task by task
    runs = json.loads((rep / "report.json").read_text())["runs"]
    assert all(r["loss_minus_gd1"] > 0 for r in runs) and rows[0]["beats_gd1_mean"] == 0
    assert "loss / one GD step" in (rep / "report.md").read_text()
    curves = json.loads((rep / "report.json").read_text())["curves"]
    (c,) = curves.values()
    assert c["x_label"] == "training tasks" and c["env_steps"][-1] == 60 * 256
    assert (rep / "report_curves.png").stat().st_size > 10_000
    # the probes keep each seed's R^2 beside the mean, which the figure draws as dots
    (summary,) = json.loads((rep / "report.json").read_text())["in_context"].values()
    assert summary["probes"]
    for stats in summary["probes"].values():
        assert len(stats["values"]) == 2
        assert abs(sum(stats["values"]) / 2 - stats["mean"]) < 1e-9
    assert (rep / "report_icl.png").stat().st_size > 10_000


def test_dimension_curriculum_grows_to_d_and_zeroes_the_rest():
    cfg = reg.RegressionConfig(d=10, curriculum_d_start=2, curriculum_iterations=80)
    dims = [reg.active_dimension(cfg, i) for i in (0, 40, 79, 80, 500)]
    assert dims == [2, 6, 9, 10, 10]
    b = reg.sample(cfg, 16, G(0), active=3)
    assert bool((b.w[:, 3:] == 0).all()) and bool((b.x[:, :, 3:] == 0).all())
    assert bool((b.w[:, :3] != 0).all())
    assert reg.active_dimension(reg.RegressionConfig(), 0) == 10
    with pytest.raises(ConfigError, match="curriculum_d_start must be in"):
        task_from_dict({"env": {"family": "icl_regression", "d": 4, "curriculum_d_start": 5},
                        "agent": {"kind": "lsa"}})


def test_gated_curriculum_adds_a_coordinate_only_once_the_loss_has_closed_the_gap():
    cfg = reg.RegressionConfig(d=3, n_examples=4, n_examples_min=0, curriculum_d_start=1,
                               curriculum_gate=0.5, curriculum_window=5)
    assert reg.least_squares_share(cfg, 1) == pytest.approx(1 / 5)  # only k = 0 is unsolved
    assert reg.least_squares_share(cfg, 3) == pytest.approx((1 + 2 / 3 + 1 / 3) / 5)
    assert reg.zero_loss(cfg, 1) == pytest.approx(1 / 6) and reg.zero_loss(cfg) == pytest.approx(0.5)
    s = reg.gate_start(cfg)
    for _ in range(50):  # predicting 0 closes none of the gap: it stays at one coordinate
        s = reg.gate_step(cfg, s, reg.zero_loss(cfg, 1))
    assert s.active == 1 and s.share == pytest.approx(1.0) and s.stage_iterations == 50
    s = reg.gate_start(cfg)
    for i in range(5):  # least squares' own loss closes all of it, after the window
        assert s.active == 1, i
        s = reg.gate_step(cfg, s, reg.zero_loss(cfg, 1) * reg.least_squares_share(cfg, 1))
    assert s == reg.GateState(2, None, 0)
    for _ in range(20):
        s = reg.gate_step(cfg, s, 0.0)
    assert s.active == 3 and s.stage_iterations == 15  # 5 at two coordinates; never past d
    assert reg.gate_start(reg.RegressionConfig()) is None
    base = {"family": "icl_regression", "d": 4}
    with pytest.raises(ConfigError, match="needs curriculum_d_start"):
        task_from_dict({"env": {**base, "curriculum_gate": 0.5}, "agent": {"kind": "lsa"}})
    with pytest.raises(ConfigError, match="must be 0 when curriculum_gate"):
        task_from_dict({"env": {**base, "curriculum_gate": 0.5, "curriculum_d_start": 1,
                                "curriculum_iterations": 100}, "agent": {"kind": "lsa"}})
    with pytest.raises(ConfigError, match="curriculum_gate must be in"):
        task_from_dict({"env": {**base, "curriculum_gate": 1.5, "curriculum_d_start": 1},
                        "agent": {"kind": "lsa"}})


def test_gated_curriculum_trains_resumes_exactly_and_checkpoints_its_stage(tmp_path):
    task = _tiny(tmp_path)  # also: sequences without examples, where the LSA's output is 0
    text = task.read_text().replace("n_examples = 4\n", "n_examples = 4\nn_examples_min = 0\n"
                                    "curriculum_d_start = 1\ncurriculum_gate = 0.5\n"
                                    "curriculum_window = 10\n")
    task.write_text(text)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train_run(task, whole, progress=False)
    rows = list(csv.DictReader((whole / "metrics.csv").open()))
    dims = [int(float(r["active_dimension"])) for r in rows]
    assert dims[0] == 1 and dims[-1] == 3 and dims == sorted(dims)  # paced up, never back
    first_two = dims.index(2)
    assert first_two >= 10  # not before the window
    train_run(task, parts, progress=False, stop_after=first_two + 5)  # stopped inside stage 2
    saved = json.loads((parts / "checkpoint.json").read_text())["counters"]["curriculum"]
    assert saved["active"] == 2 and saved["stage_iterations"] == 5
    from snn_icl.experiments.in_context_families import FAMILIES
    agent, stopped, counters = load_agent(parts / "checkpoint.safetensors")
    measures = FAMILIES["icl_regression"].run_measures(ev.evaluate(agent, stopped, 3, n_tasks=256),
                                                       counters)
    assert measures["coordinates_reached"] == 2  # the report says the curriculum ended short of d
    train_run(task, parts, resume=True, progress=False)
    a, _, _ = load_agent(whole / "checkpoint.safetensors")
    b, _, _ = load_agent(parts / "checkpoint.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    ends = [json.loads((r / "checkpoint.json").read_text())["counters"]["curriculum"]
            for r in (whole, parts)]
    assert ends[0] == ends[1] and ends[0]["active"] == 3
    out = tmp_path / "eval.json"
    r = runner.invoke(app, ["evaluate", str(whole), "--seed", "3", "-n", "256", "--out", str(out)])
    assert r.exit_code == 0, r.output
    stages = json.loads(out.read_text())["curriculum_stages"]
    assert [s["coordinates"] for s in stages] == [1, 2, 3] and "3 coordinates from iteration" in r.output
    assert [s["first_iteration"] for s in stages] == [1, first_two + 1, dims.index(3) + 1]
    assert sum(s["iterations"] for s in stages) == 300
    assert stages[0]["least_squares_share"] == pytest.approx(1 / 5)


def test_probes_find_what_a_state_holds_and_not_what_it_lacks():
    mix = torch.randn(4, 4, generator=G(12))  # a fixed invertible mixing of X^T Y

    class Holder(torch.nn.Module):  # one state holds X^T Y (mixed, plus noise units), one noise
        def forward(self, tokens):
            return tokens[-1, :, :1]

        def features(self, tokens):
            xty = (tokens[:-1, :, :-1] * tokens[:-1, :, -1:]).sum(0)
            noise = torch.randn(xty.shape[0], 6)
            return {"holds": torch.cat([xty @ mix, noise], 1), "lacks": noise}

    cfg = reg.RegressionConfig(d=4, n_examples=6)
    p = ev.probes(Holder(), reg.sample(cfg, 1500, G(10)), reg.sample(cfg, 1000, G(11)))
    assert p["holds"]["XtY"] > 0.95 and p["lacks"]["XtY"] < 0.05
    assert p["holds"]["w_ols"] > 0.3  # w_OLS is a (nonlinear) function of X^T Y and X^T X


def test_difference_ci_is_welchs():
    from snn_icl.experiments.report import difference_ci

    d = difference_ci([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0])
    assert d["difference"] == pytest.approx(5.0 - 2.0)
    se = (1.0 / 3 + (20.0 / 3) / 4) ** 0.5  # sample variances 1 and 20/3
    assert 2.0 * se < d["ci95"] < 5.0 * se  # t quantile with Welch's df (about 4)
    assert difference_ci([1.0], [2.0, 3.0])["ci95"] is None
    assert difference_ci([1.0, 1.0], [2.0, 2.0]) == {"difference": 1.0, "ci95": 0.0}


def test_paired_difference_to_a_reference_is_task_by_task():
    y = torch.randn(4096, generator=G(3))
    ref_pred = y + 0.5 * torch.randn(4096, generator=G(4))  # loss about 0.125
    same = ev.paired_difference(ref_pred, ref_pred, y)
    assert same["difference"] == 0 and same["ci95"] == [0, 0] and not same["beats"]
    better = ev.paired_difference(y + 0.4 * torch.randn(4096, generator=G(5)), ref_pred, y)
    assert better["beats"] and better["ci95"][0] < better["difference"] == pytest.approx(-0.045, abs=0.01)
    # a tiny gain on few tasks is within the noise: not called a win
    close = ev.paired_difference(y[:64] + 0.499 * torch.randn(64, generator=G(6)), ref_pred[:64], y[:64])
    assert not close["beats"] and close["ci95"][0] < 0 < close["ci95"][1]


def test_shipped_predictors_load_and_the_lsa_is_one_gd_step():
    from snn_icl.storage.checkpoint import PRETRAINED, resolve

    shipped = [k for k in PRETRAINED if k.startswith("icl_")]
    assert set(shipped) == {"icl_lsa", "icl_transformer", "icl_lstm", "icl_lsnn", "icl_lsnn_long"}
    for name in shipped:
        model, task, counters = load_agent(resolve(f"pretrained:{name}"))
        assert task.agent.kind == name[4:].removesuffix("_long")
        assert task.env.family == "icl_regression"
        assert counters["episodes"] > 0
    lsa, task, _ = load_agent(resolve("pretrained:icl_lsa"))
    tune, test = reg.sample(task.env, 2048, G(20)), reg.sample(task.env, 2048, G(21))
    gd1 = ev.references(tune, test)["gd1"]
    assert ref.loss(ev.predict(lsa, test), test.y_q) == pytest.approx(gd1["loss"], rel=0.02)
    assert ev.alignment(lsa, test, gd1["eta"], G(0))["model_cos"] > 0.999


def test_probe_is_not_thrown_by_a_unit_that_barely_varies_in_the_fit():
    cfg = reg.RegressionConfig(d=3, n_examples=4)
    tune, test = reg.sample(cfg, 1000, G(30)), reg.sample(cfg, 1000, G(31))

    class Rare(torch.nn.Module):  # one unit fires on one tuning task, and often on test tasks
        calls = 0

        def features(self, tokens):
            self.calls += 1
            xty = (tokens[:-1, :, :-1] * tokens[:-1, :, -1:]).sum(0)
            rare = torch.zeros(xty.shape[0], 1)
            if self.calls == 1:
                rare[0] = 1e-3
            elif self.calls > 2:  # the test tasks
                rare[::2] = 1.0
            return {"s": torch.cat([xty, rare], 1)}

    p = ev.probes(Rare(), tune, test)
    assert p["s"]["XtY"] > 0.9


def test_figure_labels_keep_only_what_tells_conditions_apart():
    from snn_icl.viz.icl import short_names

    conds = [f"icl_regression_lsnn_long/d={d},iterations={it},lr_anneal_iterations={a},track_every=250"
             for d, it, a in ((2, 3000, 750), (6, 3000, 750), (6, 12000, 3000))]
    # the anneal goes with the iterations, track_every never varies, the task is common
    assert list(short_names(conds).values()) == ["d=2,iterations=3000", "d=6,iterations=3000",
                                                 "d=6,iterations=12000"]
    two_tasks = ["icl_regression_lsnn/d=2", "icl_regression_lstm/d=4"]
    assert list(short_names(two_tasks).values()) == ["lsnn d=2", "lstm d=4"]
    assert short_names(["icl_regression_lsnn/d=2"]) == {"icl_regression_lsnn/d=2": "lsnn"}
