"""The auxiliary place loss ([train] place_loss): where the platform counts as known, the
decoder it trains, and checkpoints with and without that decoder."""

import math

import pytest
import torch

from snn_icl.config import ConfigError, load_task, make_agent, replace
from snn_icl.storage.checkpoint import load_agent, load_into, save_checkpoint
from snn_icl.train import ppo
from tests.conftest import TASKS


def _record(escaped: list[list[bool]], platforms: list[list[list[float]]], dark=None):
    """A record with only what place_targets reads: escapes [T][B], platforms [T+1][B][2],
    dark steps [T][B] (None: no delays)."""
    from types import SimpleNamespace

    plat = torch.tensor(platforms)
    return SimpleNamespace(escaped=torch.tensor(escaped), platforms=lambda: plat,
                           dark=None if dark is None else torch.tensor(dark))


def test_the_platform_is_known_from_the_step_after_it_is_reached_until_it_moves():
    a, b = [0.3, 0.1], [-0.4, 0.2]
    # episode 0: reaches its platform at step 1; episode 1: reaches a at step 0, the platform
    # moves to b from position index 2 and is reached again at step 3
    escaped = [[False, True], [True, False], [False, False], [False, True], [False, False]]
    platforms = [[a, a], [a, a], [a, b], [a, b], [a, b], [a, b]]
    place, known = ppo.place_targets(_record(escaped, platforms))
    assert place.shape == (5, 2, 2)
    assert known[:, 0].tolist() == [False, False, True, True, True]
    assert known[:, 1].tolist() == [False, True, False, False, True]
    torch.testing.assert_close(place[4, 1], torch.tensor(b))


def test_without_the_dark_steps_the_place_is_asked_for_in_the_light_only():
    a = [0.3, 0.1]
    escaped = [[True], [False], [False], [False], [False]]
    dark = [[False], [True], [True], [False], [False]]  # a delay of two steps after the escape
    record = _record(escaped, [[a]] * 6, dark)
    _, every = ppo.place_targets(record)
    _, light = ppo.place_targets(record, dark=False)
    assert every[:, 0].tolist() == [False, True, True, True, True]
    assert light[:, 0].tolist() == [False, False, False, True, True]
    assert ppo.place_targets(_record(escaped, [[a]] * 6), dark=False)[1].equal(every)


def test_place_loss_dark_needs_the_loss_and_delays():
    task = load_task(TASKS / "water_maze_delay_place.toml")
    assert not replace(task, train={"place_loss_dark": False}).train.place_loss_dark
    no_delays = {"dark_max_steps": [0] * 4}  # one value per stage of dark_from_iteration
    for train in ({"place_loss": 0.0}, no_delays):
        with pytest.raises(ConfigError, match="place_loss_dark"):
            replace(task, train={**train, "place_loss_dark": False})


def test_the_decoder_is_added_after_the_network_and_changes_none_of_its_weights(tiny_task):
    plain = make_agent(tiny_task)
    with_head = make_agent(replace(tiny_task, train={"place_loss": 1.0}))
    assert not hasattr(plain, "place_head")
    assert with_head.place_head.in_features == with_head.mean_head.in_features
    own = with_head.state_dict()
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(own[name], value, rtol=0, atol=0)


def test_the_place_error_trains_the_network_through_the_features_it_acts_on(tiny_task):
    task = replace(tiny_task, train={"place_loss": 1.0})
    agent = make_agent(task)
    batch = ppo.collect(ppo.new_state(task, agent), task)
    place, known = ppo.place_targets(batch)
    known = torch.ones_like(known)  # every step, whether or not the untrained net escaped
    policy = agent.evaluate_sequence(batch.net_input, None)
    stats = {}
    error = ppo._place_error(agent, policy, place, known, stats)
    expected = (agent.place_head(policy.features) - place).pow(2).sum(-1).mean()
    torch.testing.assert_close(error, expected)
    assert stats["place_error"] == [pytest.approx(float(expected.detach()))]
    agent.zero_grad()
    error.backward()
    assert agent.place_head.weight.grad.abs().sum() > 0
    network = [p.grad for n, p in agent.named_parameters()
               if not n.startswith(("place_head", "mean_head", "value_head", "log_std"))]
    assert any(g is not None and g.abs().sum() > 0 for g in network)
    assert ppo._place_error(agent, policy, place, torch.zeros_like(known), {}) == 0.0


def test_training_with_the_place_loss_logs_its_error_every_iteration(tiny_task):
    task = replace(tiny_task, train={"place_loss": 1.0, "iterations": 3})
    rows = []
    ppo.train(task, ppo.new_state(task, make_agent(task)), progress=False,
              on_iteration=lambda s, m: rows.append(m))
    assert len(rows) == 3 and all("place_error" in m for m in rows)
    assert all(math.isnan(m["place_error"]) or m["place_error"] >= 0 for m in rows)
    without = []
    ppo.train(tiny_task, ppo.new_state(tiny_task, make_agent(tiny_task)), progress=False,
              stop_after=1, on_iteration=lambda s, m: without.append(m))
    assert "place_error" not in without[0]


def test_checkpoints_load_across_the_decoder(tmp_path, tiny_task):
    task = replace(tiny_task, train={"place_loss": 1.0})
    trained = make_agent(task)
    path = save_checkpoint(tmp_path / "with.safetensors", task, trained)
    agent, saved_task, _ = load_agent(path)  # evaluation rebuilds the decoder and loads it
    torch.testing.assert_close(agent.place_head.weight, trained.place_head.weight)
    plain = make_agent(tiny_task, seed=7)
    load_into(path, plain)  # an agent without the decoder takes the network's weights
    torch.testing.assert_close(plain.mean_head.weight, trained.mean_head.weight)
    source = save_checkpoint(tmp_path / "without.safetensors", tiny_task, plain)
    fresh = make_agent(task, seed=3)
    head = fresh.place_head.weight.detach().clone()
    load_into(source, fresh)  # fine-tuning with the loss from a network trained without it
    torch.testing.assert_close(fresh.place_head.weight, head)
    torch.testing.assert_close(fresh.mean_head.weight, plain.mean_head.weight)
    broken = make_agent(tiny_task)
    del broken.mean_head.bias  # another missing tensor is still an error
    broken.mean_head.register_parameter("bias", None)
    with pytest.raises(ValueError, match="missing"):
        load_into(save_checkpoint(tmp_path / "broken.safetensors", tiny_task, broken), plain)


@pytest.mark.parametrize("value", [-1.0, math.nan])
def test_a_negative_or_nan_place_loss_is_refused(tiny_task, value):
    with pytest.raises(ConfigError, match="place_loss"):
        replace(tiny_task, train={"place_loss": value})


def test_the_place_loss_is_for_the_water_maze_only():
    from snn_icl.config import load_task

    with pytest.raises(ConfigError, match="place_loss"):
        replace(load_task("tasks/icl_regression_lsa.toml"), train={"place_loss": 1.0})


@pytest.mark.parametrize("agent", [{"kind": "lstm", "hidden_size": 16},
                                   {"kind": "transformer", "n_layer": 1, "n_head": 2, "n_embd": 16}])
def test_the_baselines_train_with_the_place_loss_too(tiny_task, agent):
    from snn_icl.config import task_from_dict, task_to_dict

    data = task_to_dict(replace(tiny_task, train={"place_loss": 1.0, "iterations": 2}))
    data["agent"] = agent
    task = task_from_dict(data, source="test")
    model = make_agent(task)
    assert model.place_head.in_features == model.mean_head.in_features
    batch = ppo.collect(ppo.new_state(task, model), task)
    place, known = ppo.place_targets(batch)
    policy = model.evaluate_sequence(batch.net_input, None)
    ppo._place_error(model, policy, place, torch.ones_like(known), {}).backward()
    assert model.place_head.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters()
               if not n.startswith(("place_head", "mean_head", "value_head", "log_std")))
    rows = []
    ppo.train(task, ppo.new_state(task, model), progress=False,
              on_iteration=lambda s, m: rows.append(m))
    assert len(rows) == 2 and all("place_error" in m for m in rows)
