"""The auxiliary store loss of in-context regression ([train] store_loss): its target, the
store it decodes, what it trains, its checks, and checkpoints with and without its decoder."""

import math

import pytest
import torch

from snn_icl.config import ConfigError, load_task, make_agent, replace
from snn_icl.envs import family as families
from snn_icl.envs import icl_regression as reg
from snn_icl.storage.checkpoint import load_agent, load_into, save_checkpoint
from snn_icl.train import supervised
from snn_icl.train.ppo import TrainState
from tests.conftest import TASKS

G = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
LSNN = {"kind": "lsnn", "n_regular": 6, "n_adaptive": 6, "ms_per_token": 5, "query_flag": 1.0,
        "input_scale": 1.0, "w_rec_scale": 1.0}  # strong enough to spike in a few ms


def _task(**train):
    base = load_task(TASKS / "icl_regression_lsnn.toml")
    return replace(base, env={"d": 3, "n_examples": 4}, agent=LSNN,
                   train={"batch_episodes": 8, "iterations": 2, "lr_anneal_iterations": 0,
                          "track_every": 0, **train})


def test_the_target_is_the_task_once_the_context_determines_it_and_the_min_norm_fit_before():
    cfg = reg.RegressionConfig(d=4, n_examples=6)
    full = reg.sample(cfg, 32, G(0))
    torch.testing.assert_close(reg.least_squares_weights(full), full.w, atol=1e-4, rtol=1e-4)
    few = reg.sample(cfg, 32, G(1), k=2)
    w = reg.least_squares_weights(few)
    torch.testing.assert_close(torch.einsum("bkd,bd->bk", few.x, w), few.y, atol=1e-4, rtol=1e-4)
    # minimum norm: w lies in the span of the examples, so nothing of it is orthogonal to them
    rest = w - (torch.linalg.pinv(few.x) @ (few.x @ w.unsqueeze(-1))).squeeze(-1)
    assert float(rest.abs().max()) < 1e-4
    assert float((w.norm(dim=-1) - few.w.norm(dim=-1)).max()) < 1e-4  # never longer than w
    none = reg.sample(cfg, 4, G(2), k=0)
    assert float(reg.least_squares_weights(none).abs().max()) == 0.0


def test_the_store_is_the_adaptation_after_the_last_example_and_changes_no_prediction():
    model = make_agent(_task(store_loss=1.0))
    b = reg.sample(reg.RegressionConfig(d=3, n_examples=4), 5, G(3))
    tokens = reg.tokens(b)
    with torch.no_grad():
        pred, rate, a = model.forward_with_store(tokens)
        plain, plain_rate = model.forward_and_rate(tokens)
        after_context = model.context_features(tokens[:-1])["a"]
    torch.testing.assert_close(pred, plain)
    torch.testing.assert_close(rate, plain_rate)
    torch.testing.assert_close(a, after_context)
    assert float(a.abs().sum()) > 0  # the examples moved the thresholds
    query_only = reg.tokens(reg.sample(reg.RegressionConfig(d=3, n_examples=4), 5, G(3), k=0))
    assert float(model.forward_with_store(query_only)[2].abs().max()) == 0.0


def test_the_store_error_reaches_the_network_through_the_store():
    task = _task(store_loss=1.0)
    model = make_agent(task)
    b = reg.sample(task.env, 16, G(4))
    _, _, a = model.forward_with_store(reg.tokens(b))
    target = reg.least_squares_weights(b)
    error = supervised.store_error(model, a, target)
    expected = 0.5 * (model.store_head(a) - target).pow(2).mean()
    torch.testing.assert_close(error, expected)
    error.backward()
    assert float(model.net.w_in.grad.abs().sum()) > 0  # not only the decoder learns
    assert model.head.weight.grad is None  # the prediction's read-out is not in this loss


def _state(task):
    agent = make_agent(task)
    return TrainState(agent, torch.optim.Adam(agent.parameters(), lr=1e-3), torch.Generator())


def test_training_logs_the_store_error_and_the_loss_includes_it():
    task = _task(store_loss=1.0)
    with_store = supervised.step(task, _state(task))
    plain = _task()
    without = supervised.step(plain, _state(plain))
    assert with_store["store_error"] > 0 and "store_error" not in without
    assert with_store["loss"] == pytest.approx(without["loss"] + with_store["store_error"], rel=1e-5)


def test_the_decoder_comes_after_the_network_and_checkpoints_load_across_it(tmp_path):
    task = _task(store_loss=1.0)
    plain, with_head = make_agent(_task()), make_agent(task)
    assert not hasattr(plain, "store_head") and with_head.store_head.out_features == 3
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(with_head.state_dict()[name], value, rtol=0, atol=0)
    path = save_checkpoint(tmp_path / "with.safetensors", task, with_head)
    loaded, _, _ = load_agent(path)
    torch.testing.assert_close(loaded.store_head.weight, with_head.store_head.weight)
    other = make_agent(_task(), seed=9)
    load_into(path, other)  # evaluated without the decoder
    torch.testing.assert_close(other.head.weight, with_head.head.weight)
    fresh = make_agent(task, seed=5)
    head = fresh.store_head.weight.detach().clone()
    load_into(save_checkpoint(tmp_path / "without.safetensors", _task(), other), fresh)
    torch.testing.assert_close(fresh.store_head.weight, head)  # fine-tuning starts it fresh


@pytest.mark.parametrize("value", [-1.0, math.nan])
def test_a_negative_or_nan_store_loss_is_refused(value):
    with pytest.raises(ConfigError, match="store_loss"):
        _task(store_loss=value)


@pytest.mark.parametrize("task_file", ["icl_regression_lstm.toml", "icl_bursty_lsnn.toml",
                                       "water_maze_fast.toml"])
def test_the_store_loss_needs_a_store_and_a_target(task_file):
    with pytest.raises(ConfigError, match="store_loss"):
        replace(load_task(TASKS / task_file), train={"store_loss": 1.0})


def test_only_regression_has_a_store_target():
    assert families.supervised(reg.RegressionConfig()).store_target is reg.least_squares_weights
    bursty = families.SUPERVISED["icl_bursty"]
    assert bursty.store_target is None
