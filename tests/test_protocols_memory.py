"""Reference memory, dark inter-trial intervals and the cued platform: the [protocol] keys, the
env's placement from a set of places (and novel places away from it), the dark after every
trial, the visible-platform channel, the trainer's reference placement and `snn-icl evaluate
--protocol reference`."""

import dataclasses
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from tests.scripted import CFG, Oracle

from snn_icl.cli import app
from snn_icl.config import ConfigError, load_task, protocol_override, replace, task_from_dict
from snn_icl.envs.encoding import place_cell_activity, place_cell_centres
from snn_icl.envs.water_maze import (WaterMaze, WaterMazeConfig, novel_platforms, optimal_latency,
                                     reference_places)
from snn_icl.episodes.rollout import rollout
from snn_icl.models.agent import ActOutput, PolicyOutput
from snn_icl.experiments.evaluate import evaluate
from snn_icl.train.ppo import collect, new_state
from snn_icl.config import make_agent
from snn_icl.train.run_dir import train_run

PLATFORM = torch.tensor([0.5, 0.0])
NORTH = math.pi / 2


def _in_set(platforms, places):
    """[B] bool: each platform is (to float32 rounding) one of the places."""
    return (torch.cdist(platforms.double(), places.double()).min(dim=1).values < 1e-6)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("table, key", [({"name": "reference", "n_places": 0}, "n_places"),
                                        ({"name": "reference", "places_seed": -1}, "places_seed"),
                                        ({"name": "reference", "n_places": 500}, "n_places"),
                                        ({"name": "reference", "novel_min_distance": -0.1},
                                         "novel_min_distance"),
                                        ({"name": "reference", "novel_min_distance": 2.0},
                                         "novel_min_distance"),
                                        ({"iti_dark_steps": -1}, "iti_dark_steps"),
                                        ({"name": "reversal", "iti_dark_steps": 5}, "iti_dark_steps"),
                                        ({"name": "reference", "novel": "yes"}, "novel")])
def test_a_bad_reference_or_dark_key_is_named(table, key):
    with pytest.raises(ConfigError, match=rf"\[protocol\].*{key}"):
        task_from_dict({"protocol": table}, source="t.toml")


def test_the_reference_set_is_a_function_of_places_seed():
    task = task_from_dict({})
    p = protocol_override(task, "reference", ["n_places=5", "places_seed=7"])
    places = p.places(task.env)
    assert places.shape == (5, 2)
    assert torch.equal(places, reference_places(task.env, 5, 7))
    assert not torch.equal(places, reference_places(task.env, 5, 8))
    assert (places.norm(dim=1) <= task.env.platform_centre_radius).all()
    assert torch.pdist(places).min() >= 2 * task.env.platform_radius  # no two platforms overlap
    novel = protocol_override(task, "reference", ["n_places=5", "novel=true"])
    assert novel.placement_kwargs(task.env)["novel"] is True
    assert "novel" not in novel.placement_kwargs(task.env, training=True)  # training: the set
    assert protocol_override(task, "dmp").placement_kwargs(task.env) == {}


# ----------------------------------------------------------------------------- env: placement
def test_reference_placement_draws_only_from_the_set_and_changes_no_other_draw():
    places = reference_places(CFG, 3, 0)
    env = WaterMaze(CFG, num_envs=300, seed=1)
    env.reset()
    free = env.state
    env.reset(seed=1, places=places)
    s = env.state
    assert _in_set(s.platform, places).all()
    used = torch.cdist(s.platform.double(), places).argmin(dim=1).bincount(minlength=3)
    assert (used > 60).all(), used  # each place about a third of the episodes
    assert torch.equal(s.release_angles, free.release_angles)
    with pytest.raises(ValueError, match="not both"):
        env.reset(places=places, platform=PLATFORM)


def test_novel_places_avoid_the_set():
    places = reference_places(CFG, 6, 3)
    env = WaterMaze(CFG, num_envs=300, seed=2)
    env.reset(places=places, novel=True, novel_min_distance=0.3)
    p = env.state.platform.double()
    assert (torch.cdist(p, places).min(dim=1).values >= 0.3).all()
    assert (p.norm(dim=1) <= CFG.platform_centre_radius + 1e-6).all()
    assert len({tuple(x) for x in p.tolist()}) == 300  # continuous placement, not a set
    with pytest.raises(ValueError, match="no novel platform"):  # the whole disk is excluded
        novel_platforms(places, torch.zeros(2, 4, 2, dtype=torch.float64), 5.0)
    with pytest.raises(ValueError, match="needs the trained places"):
        env.reset(novel=True)


def test_training_episodes_of_a_reference_task_use_the_set(tiny_task):
    task = replace(tiny_task, protocol={"name": "reference", "n_places": 2, "novel": True})
    state = new_state(task, make_agent(task))
    batch = collect(state, task)
    places = task.protocol.places(task.env)
    assert _in_set(batch.platform, places).all()  # novel is for evaluation only
    plain = collect(new_state(tiny_task, make_agent(tiny_task)), tiny_task)
    assert not _in_set(plain.platform, places).any()


# ----------------------------------------------------------------------------- env: dark ITI
@pytest.mark.parametrize("delay", [0, 10])
def test_dark_after_every_trial_counts_trials_and_freezes_the_swimmer(delay):
    env = WaterMaze(CFG, num_envs=2, seed=0)
    rec = rollout(Oracle(env), env, deterministic=True, platform=PLATFORM,
                  release_angles=torch.full((CFG.max_trials,), NORTH), iti_dark_steps=delay)
    swim = int(optimal_latency(CFG, torch.tensor([0.0, 1.0]), PLATFORM))  # 11 steps
    cycle = swim + CFG.rest_steps + delay  # env steps from one release to the next
    T = CFG.episode_steps
    assert rec.trial_end.sum(0).tolist() == [len(range(swim, T + 1, cycle))] * 2
    assert rec.trial[-1].tolist() == [(T - 1) // cycle] * 2
    dark = (rec.obs == 0).all(-1)  # [T, B]: no place input at all (place cells are never 0)
    ended = len(range(swim + CFG.rest_steps, T, cycle))  # delays entered
    assert dark.sum(0).tolist() == [min(T, ended * delay) if delay else 0] * 2
    # no movement in the dark: the action is ignored, the swimmer rests where it was until the
    # delay's last step starts the next trial at its release point
    still = dark & (rec.trial[1:] == rec.trial[:-1])
    assert still.sum() == dark.sum() - 2 * ended * bool(delay)  # 2 episodes
    assert torch.equal(rec.position[1:][still], rec.position[:-1][still])


def test_a_random_swimmer_does_not_move_in_the_dark():
    env = WaterMaze(CFG, num_envs=4, seed=5)
    rec = rollout(None, env, policy="random", generator=torch.Generator().manual_seed(0),
                  iti_dark_steps=7)
    dark = (rec.obs == 0).all(-1)
    assert dark.sum() >= 4 * 7  # every episode ends at least one trial (time-out 40)
    still = dark & (rec.trial[1:] == rec.trial[:-1])  # not the step that starts a trial
    assert still.sum() >= 4 * 6
    assert torch.equal(rec.position[1:][still], rec.position[:-1][still])
    assert (rec.action[still].abs().sum(-1) > 0).all()  # it did try to swim


def test_without_dark_the_episode_is_unchanged():
    runs = []
    for kw in ({}, {"iti_dark_steps": 0}):
        env = WaterMaze(CFG, num_envs=3, seed=9)
        runs.append(rollout(Oracle(env), env, deterministic=True, **kw))
    assert torch.equal(runs[0].position, runs[1].position)
    assert torch.equal(runs[0].trial, runs[1].trial)


# ----------------------------------------------------------------------------- cued platform
def test_the_cue_channel_carries_the_platform_on_cued_episodes():
    assert WaterMazeConfig().obs_dim == 7 * 7 + 2  # default: the shipped agents' input
    cfg = dataclasses.replace(CFG, cue_channel=True)
    G2 = cfg.place_grid ** 2
    assert cfg.obs_dim == CFG.obs_dim + G2
    centres = place_cell_centres(cfg.place_grid, cfg.pool_radius)
    env = WaterMaze(cfg, num_envs=2, seed=0)
    obs = env.reset(cued=True)
    want = place_cell_activity(env.state.platform, centres, cfg.place_sigma)
    assert torch.allclose(obs[:, G2 + 2:], want)
    assert torch.allclose(obs[:, :G2 + 2], WaterMaze(CFG, 2, 0).reset())  # the rest as before
    assert not torch.allclose(obs[:, G2 + 2:], place_cell_activity(env.state.position, centres,
                                                                   cfg.place_sigma))
    assert (env.reset(cued=False)[:, G2 + 2:] == 0).all()
    assert (env.reset(cued=True, probe_trial=0)[:, G2 + 2:] == 0).all()  # no platform, no cue
    with pytest.raises(ValueError, match="cue_channel"):
        WaterMaze(CFG, 1, 0).reset(cued=True)


# ----------------------------------------------------------------------------- evaluation
def test_evaluate_reference_and_dark_report_their_measures(tiny_task):
    agent = make_agent(tiny_task)
    ref = protocol_override(tiny_task, "reference", ["n_places=2"])
    r = evaluate(agent, tiny_task, 4, 3, n_trials=3, progress=False, protocol=ref)
    block = r["protocol"]
    assert block["name"] == "reference" and len(block["places"]) == 2
    assert block["places"] == ref.places(tiny_task.env).tolist()
    for name in ("agent", "control_no_memory", "control_random"):
        assert set(block[name]) == {"latency_trial1", "success_trial1", "latency_trials2_4",
                                    "one_shot_ratio", "probe_target_quadrant_fraction"}
    assert block["agent"]["latency_trial1"] == r["latency_by_trial"][0]
    dark = protocol_override(tiny_task, "dmp", ["iti_dark_steps=4"])
    d = evaluate(agent, tiny_task, 4, 3, n_trials=3, progress=False, protocol=dark)
    assert d["protocol"]["iti_dark_steps"] == 4
    assert d["protocol"]["episode_steps"] == tiny_task.env.episode_steps + 2 * 4
    plain = evaluate(agent, tiny_task, 4, 3, n_trials=3, progress=False)
    assert plain["protocol"] == {"name": "dmp", "probe_trial": 1, "probe_steps": None}


def test_cli_evaluate_reference_on_novel_places(tmp_path, tiny_task_path):
    run = tmp_path / "run"
    train_run(tiny_task_path, run, progress=False, stop_after=1)
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["evaluate", str(run), "-n", "4", "--seed", "2", "--out",
                                      str(out), "--protocol", "reference", "--protocol-set",
                                      "n_places=3", "--protocol-set", "novel=true"])
    assert result.exit_code == 0, result.output
    block = json.loads(out.read_text())["protocol"]
    assert block["novel"] is True and block["n_places"] == 3 and len(block["places"]) == 3
    assert "novel places" in result.output
    bad = CliRunner().invoke(app, ["evaluate", str(run), "-n", "4", "--out", str(out),
                                   "--protocol", "reference", "--protocol-set", "n_places=0"])
    assert bad.exit_code == 2 and "n_places" in bad.output
    assert load_task(tiny_task_path).protocol.name == "dmp"


def test_the_delay_curve_puts_the_dark_after_every_trial(tiny_task):
    from snn_icl.experiments.retention import ITI_TRIALS, markdown_table, retention

    agent = make_agent(tiny_task)
    every = retention(agent, tiny_task, [0, 3], 4, 1, progress=False, every_trial=True)
    once = retention(agent, tiny_task, [0, 3], 4, 1, progress=False)
    assert every["dark"] == "after every trial" and once["dark"] == "after trial 1"
    assert len(every["one_shot_ratio"]) == 2
    assert [len(s) for s in every["success_by_trial"]] == [ITI_TRIALS] * 2
    assert "one_shot_ratio" not in once
    # delay 0 is the same episodes in both forms
    assert every["latency_trial2"][0] == once["latency_trial2"][0]
    assert "One-shot ratio" in markdown_table({"a": every})
    assert "One-shot ratio" not in markdown_table({"a": once})


# ----------------------------------------------------------------------------- cued: training and evaluation
CUED = dataclasses.replace(CFG, cue_channel=True)


def _decode(cells, cfg):
    """The point [B, 2] whose place-cell code is ``cells`` [B, G^2]: exact, since the log of a
    Gaussian code is linear in the point (least squares over the cells)."""
    centres = place_cell_centres(cfg.place_grid, cfg.pool_radius).double()
    s2 = cfg.place_sigma ** 2
    y = cells.double().clamp(min=1e-300).log() + (centres ** 2).sum(-1) / (2 * s2)
    A = torch.cat([centres / s2, torch.ones(len(centres), 1, dtype=torch.float64)], dim=1)
    return torch.linalg.lstsq(A.expand(len(y), -1, -1), y.unsqueeze(-1)).solution[:, :2, 0]


class CueFollower(torch.nn.Module):
    """Reads its position and, when the cue cells show it, the platform from the observation and
    swims straight at it; else swims due east (a swimmer that sees but does not remember)."""

    spiking = False

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    def initial_state(self, batch):
        return None

    def act(self, obs, state, *, generator=None, record=False):
        G2 = self.cfg.place_grid ** 2
        seen = obs[:, G2 + 2:].abs().sum(-1) > 0
        mean = torch.tensor([1.0, 0.0]).expand(len(obs), 2).clone()
        if bool(seen.any()):
            d = _decode(obs[seen, G2 + 2:], self.cfg) - _decode(obs[seen, :G2], self.cfg)
            mean[seen] = (d / d.norm(dim=-1, keepdim=True).clamp(min=1e-9)).to(mean)
        return ActOutput(PolicyOutput(mean, torch.zeros(2), torch.zeros(len(obs))), None, obs)


def test_cued_can_be_set_per_episode():
    env = WaterMaze(CUED, num_envs=3, seed=0)
    G2 = CUED.place_grid ** 2
    obs = env.reset(cued=torch.tensor([True, False, True]))
    assert (obs[:, G2 + 2:].abs().sum(-1) > 0).tolist() == [True, False, True]
    assert env.state.cued.tolist() == [True, False, True]
    for bad in (torch.tensor([1, 0, 1]), torch.tensor([True, False])):
        with pytest.raises(ValueError, match="cued"):
            env.reset(cued=bad)
    with pytest.raises(ValueError, match="cue_channel"):
        WaterMaze(CFG, 2, 0).reset(cued=torch.tensor([False, True]))
    assert WaterMaze(CFG, 2, 0).reset(cued=torch.tensor([False, False])).shape[1] == CFG.obs_dim


def test_training_metrics_split_cued_from_hidden_episodes():
    from snn_icl.episodes.measures import training_metrics

    cfg = dataclasses.replace(CUED, episode_steps=45)  # trial 1 and the start of trial 2
    env = WaterMaze(cfg, num_envs=6, seed=0)
    cued = torch.tensor([True, False] * 3)
    rec = rollout(CueFollower(cfg), env, deterministic=True, cued=cued)
    assert torch.equal(rec.cued, cued)
    m = training_metrics(rec, cfg)
    # trial 1 with the platform visible is a straight swim; hidden, the eastward swim times out
    assert m["latency_trial1_cued"] <= 19 and m["latency_trial1"] == CFG.trial_timeout  # 1.9 / v_max
    plain_env = WaterMaze(CFG, 2, 0)
    plain = rollout(Oracle(plain_env), plain_env, deterministic=True)
    assert plain.cued is None and "latency_trial1_cued" not in training_metrics(plain, CFG)


@pytest.mark.parametrize("table, message", [({"train": {"cued_fraction": 1.5}}, "cued_fraction"),
                                            ({"train": {"cued_fraction": 0.5}}, "cue_channel")])
def test_bad_cued_training_names_the_problem(tiny_task, table, message):
    from snn_icl.config import task_to_dict

    data = task_to_dict(tiny_task)
    for key, value in table.items():
        data[key].update(value)
    with pytest.raises(ConfigError, match=message):
        task_from_dict(data, "t.toml")


def test_the_trainer_mixes_cued_episodes_at_the_fraction(tiny_task):
    task = replace(tiny_task, env={"cue_channel": True},
                   train={"cued_fraction": 0.5, "batch_episodes": 64})
    state = new_state(task, make_agent(task))
    share = collect(state, task).cued.double().mean().item()
    assert 0.3 < share < 0.7
    task_all = replace(task, train={"cued_fraction": 1.0})
    assert collect(new_state(task_all, make_agent(task_all)), task_all).cued.all()


def test_evaluate_cued_measures_visible_against_hidden(tiny_task):
    task = replace(tiny_task, env={"cue_channel": True})
    protocol = protocol_override(task, "cued")
    r = evaluate(CueFollower(task.env), task, 4, 3, n_trials=3, progress=False, protocol=protocol)
    block = r["protocol"]["agent"]
    assert set(block) == {"cued", "hidden"}
    assert block["cued"]["latency_by_trial"][0] < block["hidden"]["latency_by_trial"][0]
    assert r["latency_by_trial"] == block["cued"]["latency_by_trial"]
    with pytest.raises(ConfigError, match="cue_channel"):
        protocol_override(tiny_task, "cued")


@pytest.mark.parametrize("added", [{"cue_channel": True}, {"recall_cue_input": "channel"}],
                         ids=["cue_cells", "recall_cue_channel"])
@pytest.mark.parametrize("agent", [{}, {"kind": "lstm", "hidden_size": 8},
                                   {"kind": "transformer", "n_layer": 1, "n_head": 1,
                                    "n_embd": 8, "context_window": 32}])
def test_init_from_adds_the_cue_channel_with_zero_weights(tiny_task, tmp_path, agent, added):
    from snn_icl.config import task_to_dict
    from snn_icl.storage.checkpoint import save_checkpoint
    from snn_icl.train.run_dir import _init_weights

    data = task_to_dict(tiny_task)
    data["env"]["recall_cue_steps"] = 2  # the recall cue on the place cells, then on its channel
    if agent:
        data["agent"] = agent
    source_task = task_from_dict(data, "t.toml")
    source = make_agent(source_task)
    save_checkpoint(tmp_path / "src.safetensors", source_task, source)
    data["env"].update(added)
    data["train"]["init_from"] = str(tmp_path / "src.safetensors")
    task = task_from_dict(data, "t.toml")
    grown = make_agent(task)
    _init_weights(grown, task)
    env, env_src = WaterMaze(task.env, 3, 5), WaterMaze(source_task.env, 3, 5)
    obs, obs_src = env.reset(), env_src.reset()  # uncued: the same behaviour as the source
    g = torch.Generator().manual_seed(0)
    out = grown.act(obs, grown.initial_state(3), generator=g)
    out_src = source.act(obs_src, source.initial_state(3), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.policy.mean, out_src.policy.mean)
    (name, axis), = type(grown).input_weights.items()
    w = grown.state_dict()[name]
    extra = w.narrow(axis, source_task.env.obs_dim, task.env.obs_dim - source_task.env.obs_dim)
    assert extra.abs().sum() == 0
    assert extra.numel() == (task.env.obs_dim - source_task.env.obs_dim) * w.shape[1 - axis] > 0
    # entries inserted before the source's last ones: refused (the source's recall-cue channel
    # would be read from a cue cell)
    save_checkpoint(tmp_path / "src.safetensors", task, grown)
    both = {**data, "env": {**data["env"], "cue_channel": True, "recall_cue_input": "channel"}}
    if task.env.recall_cue_channel:
        with pytest.raises(ConfigError, match="observation entries"):
            other = task_from_dict(both, "t.toml")
            _init_weights(make_agent(other), other)
    data["env"]["place_grid"] = 5  # another observation: refused
    with pytest.raises(ConfigError, match="observation entries"):
        other = task_from_dict(data, "t.toml")
        _init_weights(make_agent(other), other)
