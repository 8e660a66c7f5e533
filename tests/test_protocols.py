"""Evaluation protocols: the [protocol] table, the env's reversal, platform_t, the reversal
measures on scripted swimmers, and `snn-icl evaluate --protocol reversal`."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from tests.scripted import CFG, Oracle

from snn_icl.cli import app
from snn_icl.config import ConfigError, ProtocolConfig, load_task, protocol_override, task_from_dict
from snn_icl.envs.water_maze import WaterMaze
from snn_icl.episodes.measures import (behaviour, platform_by_trial, probe_measures,
                                       reversal_measures, trial_table)
from snn_icl.episodes.rollout import rollout
from snn_icl.models.agent import ActOutput, PolicyOutput
from snn_icl.train.run_dir import train_run

PLATFORM = torch.tensor([0.5, 0.0])
NORTH = math.pi / 2  # release (0, 1): the straight swims to (0.5, 0) and (-0.5, 0) stay apart


class Remembering(Oracle):
    """Swims to the episode's first platform (its memory) until it is within a platform radius
    of it, then to the current platform (read from the env); the memory is checked afresh each
    trial."""

    def initial_state(self, batch):
        self.memory = self.env.state.platform.clone()
        self.trial = self.env.state.trial.clone()
        self.visited = torch.zeros(batch, dtype=torch.bool)
        return None

    def act(self, obs, state, *, generator=None, record=False):
        s = self.env.state
        self.visited &= s.trial == self.trial
        self.trial = s.trial.clone()
        self.visited |= (s.position - self.memory).norm(dim=-1) <= self.env.config.platform_radius
        goal = torch.where(self.visited[:, None], s.platform, self.memory)
        d = goal - s.position
        mean = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-9)
        return ActOutput(PolicyOutput(mean, torch.zeros(2), torch.zeros(len(obs))), None, obs)


def _run(agent_cls, k=2, **kw):
    env = WaterMaze(CFG, num_envs=3, seed=0)
    return rollout(agent_cls(env), env, deterministic=True, platform=PLATFORM,
                   release_angles=torch.full((CFG.max_trials,), NORTH), reversal_trial=k, **kw)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("table, key", [({"name": "reverse"}, "name"),
                                        ({"name": "reversal", "reversal_trial": 0}, "reversal_trial"),
                                        ({"reversal_trial": -2}, "reversal_trial"),
                                        ({"reversal_trial": 1000}, "reversal_trial"),
                                        ({"reversal": "sideways"}, "reversal"),
                                        ({"displacement": [0.1]}, "displacement"),
                                        ({"probe_trial": -1}, "probe_trial"),
                                        ({"colour": "red"}, "colour")])
def test_a_bad_protocol_table_names_the_key(table, key):
    with pytest.raises(ConfigError, match=rf"\[protocol\].*{key}"):
        task_from_dict({"protocol": table}, source="t.toml")


def test_protocol_defaults_and_the_command_line_override():
    task = task_from_dict({"eval": {"probe_trial": 2}})
    assert task.protocol == ProtocolConfig() and task.protocol.name == "dmp"
    assert task.protocol.probe(task) == 2
    p = protocol_override(task, "reversal", ["reversal_trial=3", "reversal=displacement",
                                             "displacement=[0.2, -0.1]"])
    assert (p.name, p.reversal_trial, p.displacement) == ("reversal", 3, (0.2, -0.1))
    assert p.reset_kwargs(task) == {"reversal_trial": 3, "reversal_platform": "displacement",
                                    "reversal_displacement": (0.2, -0.1)}
    with pytest.raises(ConfigError, match="reversal_trial"):
        protocol_override(task, "reversal", ["reversal_trial=0"])
    with pytest.raises(ConfigError, match="key=value"):
        protocol_override(task, None, ["reversal_trial"])


# ----------------------------------------------------------------------------- env
def test_reversal_moves_the_platform_at_the_start_of_trial_k_and_not_before():
    rec = _run(Oracle, k=2)
    p = rec.platforms()
    assert torch.equal(rec.platform, PLATFORM.expand(3, 2))
    for t in range(p.shape[0]):
        want = PLATFORM if bool((rec.trial[t] < 2).all()) else -PLATFORM
        assert torch.equal(p[t], want.expand(3, 2)), t
    by_trial = platform_by_trial(rec, 4)
    assert torch.equal(by_trial[:, :2], PLATFORM.expand(3, 2, 2))
    assert torch.equal(by_trial[:, 2:], (-PLATFORM).expand(3, 2, 2))
    # the platform the oracle reached on trial 2 is the new one: it rests next to it
    end = rec.trial_end & (rec.trial[:-1] == 2)
    assert ((rec.position[1:][end] - (-PLATFORM)).norm(dim=-1) <= CFG.platform_radius + 1e-6).all()


def test_reversal_targets_fit_the_pool():
    env = WaterMaze(CFG, num_envs=2, seed=0)
    env.reset(platform=torch.tensor([[0.7, 0.0], [0.0, 0.0]]), reversal_trial=1,
              reversal_platform="displacement", reversal_displacement=(0.5, 0.0))
    moved = env.state.reversal_platform
    assert moved[0].tolist() == pytest.approx([CFG.platform_centre_radius, 0.0])  # clipped
    assert moved[1].tolist() == pytest.approx([0.5, 0.0])
    with pytest.raises(ValueError, match="centres must lie within"):
        env.reset(reversal_trial=1, reversal_platform=torch.tensor([0.95, 0.0]))
    with pytest.raises(ValueError, match="reversal_trial"):
        env.reset(reversal_trial=0)


def test_no_reversal_records_one_platform_throughout():
    env = WaterMaze(CFG, num_envs=2, seed=4)
    rec = rollout(Oracle(env), env, deterministic=True)
    assert torch.equal(rec.platform_t, rec.platform[None].expand_as(rec.platform_t))


# ----------------------------------------------------------------------------- measures
def test_the_oracle_goes_straight_to_the_new_platform():
    rec = _run(Oracle, k=2)
    t = trial_table(rec, CFG, 4)
    assert torch.equal(t["latency"], t["optimal_latency"])  # optimum of each trial's own platform
    assert t["latency"][0].tolist() == [11.0] * 4  # |(0,1)-(+-0.5,0)| = 1.118: ceil(10.18) steps
    assert ((t["path_efficiency"] >= 1.0) & (t["path_efficiency"] <= 1.1)).all()
    r = reversal_measures(rec, CFG, 2)
    assert r["reversal_trial"] == 3 and r["reversal_episodes"] == 3
    assert r["reversal_latency"] == 11.0 and r["reversal_success"] == 1.0
    assert r["old_zone_entry_fraction"] == 0.0
    # swim positions (0, 1) + n 0.1 (-0.5, -1) / 1.118, n = 0..10 (n = 11 rests on the platform):
    # in the new quadrant (angle > 135 degrees) for n = 8, 9, 10
    assert r["old_quadrant_fraction"] == 0.0 and r["new_quadrant_fraction"] == pytest.approx(3 / 11)
    assert r["next_latency"] == 11.0 and r["next_success"] == 1.0 and r["next_episodes"] == 3


def test_a_remembering_swimmer_enters_the_old_zone_first():
    rec = _run(Remembering, k=2)
    r = reversal_measures(rec, CFG, 2)
    assert r["old_zone_entry_fraction"] == 1.0
    assert r["reversal_success"] == 1.0 and r["reversal_latency"] > 11.0 + 8
    assert r["old_quadrant_fraction"] > 0.4
    # before the reversal the memory is the platform: straight swims
    assert behaviour(rec, CFG, 2)["latency_by_trial"] == [11.0, 11.0]


def test_probe_measures_use_the_probe_trials_platform():
    env = WaterMaze(CFG, num_envs=2, seed=0)
    rec = rollout(Remembering(env), env, deterministic=True, platform=PLATFORM,
                  release_angles=torch.full((CFG.max_trials,), NORTH), reversal_trial=1,
                  probe_trial=2, probe_steps=15)
    # the probe trial's platform is the new one: the remembering swimmer searches the old one
    assert probe_measures(rec, CFG, 2)["probe_target_quadrant_fraction"] < 0.2


# ----------------------------------------------------------------------------- command line
def test_cli_evaluate_runs_the_reversal_protocol(tmp_path, tiny_task_path):
    run = tmp_path / "run"
    train_run(tiny_task_path, run, progress=False, stop_after=1)
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["evaluate", str(run), "-n", "4", "--seed", "2", "--out",
                                      str(out), "--protocol", "reversal",
                                      "--protocol-set", "reversal_trial=1"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    block = report["protocol"]
    assert block["name"] == "reversal" and block["reversal_trial"] == 1
    assert block["reversal"] == "opposite"
    for name in ("agent", "control_no_memory", "control_random"):
        assert {"old_zone_entry_fraction", "reversal_latency", "next_success"} <= set(block[name])
        assert block[name]["reversal_trial"] == 2
    assert "protocol reversal" in result.output
    bad = CliRunner().invoke(app, ["evaluate", str(run), "-n", "4", "--out", str(out),
                                   "--protocol", "reversal", "--protocol-set", "reversal_trial=0"])
    assert bad.exit_code == 2 and "reversal_trial" in bad.output
    assert load_task(tiny_task_path).protocol.name == "dmp"


# ----------------------------------------------------------------------------- protocol figure
def _fake_reversal(old_zone, seed=7, name="reversal"):
    agent = {"reversal_trial": 3, "reversal_latency": 30.0, "reversal_success": 0.5,
             "old_zone_entry_fraction": old_zone, "old_quadrant_fraction": 0.5,
             "new_quadrant_fraction": 0.2, "next_latency": 10.0, "next_success": 0.9}
    return {"seed": seed, "seed_kind": "validation", "episodes": 16,
            "latency_by_trial": [40.0, 12.0, 30.0 + old_zone, 10.0],
            "protocol": {"name": name, "reversal_trial": 2, "agent": agent}}


def test_protocol_summary_pools_networks_with_t_intervals():
    from snn_icl.experiments.protocol_summary import markdown, summarise

    s = summarise({"A": [_fake_reversal(0.8), _fake_reversal(0.9), _fake_reversal(1.0)],
                   "B": [_fake_reversal(0.1)]})
    a, b = s["agents"]["A"], s["agents"]["B"]
    assert a["n"] == 3 and a["old_zone_entry_fraction"]["mean"] == pytest.approx(0.9)
    # t(0.975, 2) * sd / sqrt(3) with sd = 0.1
    assert a["old_zone_entry_fraction"]["ci95"] == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-5)
    assert a["latency_by_trial"]["mean"][2] == pytest.approx(30.9)
    assert b["old_zone_entry_fraction"] == {"n": 1, "mean": 0.1, "ci95": None, "values": [0.1]}
    assert "| A | 3 | 0.9 ± 0.25 |" in markdown(s)
    with pytest.raises(ValueError, match="mix protocols"):
        summarise({"A": [_fake_reversal(0.8)], "B": [_fake_reversal(0.8, name="probe")]})
    with pytest.raises(ValueError, match="seed"):
        summarise({"A": [_fake_reversal(0.8)], "B": [_fake_reversal(0.8, seed=8)]})


def test_cli_protocol_figure_writes_and_refuses_bad_input(tmp_path):
    paths = []
    for i, zone in enumerate((0.7, 0.9)):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(_fake_reversal(zone)))
    out = tmp_path / "fig"
    ok = CliRunner().invoke(app, ["protocol-figure", f"A={paths[0]},{paths[1]}", f"B={paths[0]}",
                                  "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert json.loads((out / "protocol.json").read_text())["agents"]["A"]["n"] == 2
    assert (out / "protocol.png").stat().st_size > 10_000
    (tmp_path / "bad.json").write_text("{not json")
    for args, word in (([f"A={tmp_path / 'bad.json'}"], "bad.json"), (["A"], "LABEL="),
                       ([f"A={tmp_path / 'none.json'}"], "no such file"),
                       ([f"A={paths[0]}", f"A={paths[1]}"], "twice")):
        bad = CliRunner().invoke(app, ["protocol-figure", *args, "--out", str(tmp_path / "x")])
        assert bad.exit_code == 2 and word in bad.output, bad.output
        assert len(bad.output.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- in training
def test_the_trainer_runs_the_protocols_episodes(tiny_task, monkeypatch):
    from snn_icl.config import make_agent, replace
    from snn_icl.episodes.measures import platform_by_trial
    from snn_icl.train.ppo import collect, new_state

    def batch(**protocol):
        task = replace(tiny_task, protocol=protocol, train={"batch_episodes": 8})
        return collect(new_state(task, make_agent(task)), task)

    reversed_ = platform_by_trial(batch(name="reversal", reversal_trial=1), 2)
    torch.testing.assert_close(reversed_[:, 1], -reversed_[:, 0])
    kept = platform_by_trial(batch(), 2)
    torch.testing.assert_close(kept[:, 1], kept[:, 0])
    # the probe: the trainer's reset asks for it (what the env does with it is tested above)
    import snn_icl.train.ppo as ppo

    seen = {}

    def spy(agent, env, **kwargs):
        seen.update(kwargs)
        return rollout(agent, env, **kwargs)

    monkeypatch.setattr(ppo, "rollout", spy)
    batch(name="probe", probe_trial=1, probe_steps=4)
    assert seen["probe_trial"] == 1 and seen["probe_steps"] == 4
