"""Frozen-weight evaluation: measures checked on a scripted swimmer, the weight guard, the CLI."""

import json
import math
from pathlib import Path

import pytest
import torch

from tests.scripted import CFG, Oracle
from typer.testing import CliRunner

from snn_icl.cli import app
from snn_icl.envs.water_maze import WaterMaze
from snn_icl.episodes.measures import behaviour, probe_measures
from snn_icl.experiments.evaluate import evaluate
from snn_icl.models import weights_sha256
from snn_icl.episodes.rollout import env_seed, rollout, rollout_batches
from snn_icl.train.run_dir import train_run
from snn_icl.config import make_agent




def test_straight_swims_have_optimal_latency_and_full_success():
    env = WaterMaze(CFG, num_envs=16, seed=3)
    sim = rollout(Oracle(env), env, deterministic=True)
    out = behaviour(sim, CFG, n_trials=4, generator=torch.Generator().manual_seed(0))
    assert out["success_by_trial"] == [1.0] * 4
    assert out["latency_by_trial"] == out["optimal_latency_by_trial"]
    assert out["one_shot_ratio"] == pytest.approx(out["latency_by_trial"][0] / out["latency_trials2_4"])
    lo, hi = out["latency_ci"][0]
    assert lo <= out["latency_by_trial"][0] <= hi
    # a straight path to the platform is at most the release-centre distance, at least to its edge
    assert out["path_length_by_trial"][0] <= CFG.pool_radius * 2
    assert out["path_length_by_trial"][0] >= CFG.v_max * (out["latency_by_trial"][0] - 1) - 1e-6


def test_probe_measures_on_a_swimmer_that_stays_on_target():
    env = WaterMaze(CFG, num_envs=8, seed=4)
    sim = rollout(Oracle(env), env, deterministic=True, probe_trial=1)
    probe = probe_measures(sim, CFG, probe_trial=1)
    assert probe["probe_episodes"] == 8
    assert probe["probe_target_quadrant_fraction"] > 0.8
    assert probe["probe_platform_crossings"] >= 1
    assert sim.reward[(sim.trial[:-1] == 1)].sum() == 0  # no platform in the probe


def test_random_control_is_worse_than_the_oracle(tiny_task):
    agent = make_agent(tiny_task)
    result = evaluate(agent, tiny_task, episodes=8, seed=1, progress=False)
    for block in (result, result["control_no_memory"], result["control_random"]):
        assert {"latency_by_trial", "latency_ci", "success_by_trial", "path_length_by_trial",
                "optimal_latency_by_trial", "goals_per_episode",
                "probe_target_quadrant_fraction"} <= set(block)
    assert result["weights_sha256"]["before"] == result["weights_sha256"]["after"]
    assert result["weights_sha256"]["before"] == weights_sha256(agent)
    # the oracle on the same held-out episodes (one batch: evaluation seed of batch 0)
    env = WaterMaze(tiny_task.env, num_envs=8, seed=env_seed(1, 0, training=False))
    oracle = behaviour(rollout(Oracle(env), env, deterministic=True), tiny_task.env, 6,
                       torch.Generator().manual_seed(1))
    random = result["control_random"]
    # same platforms and release points: the first trial's straight-swim latency is the same
    for block in (result, result["control_no_memory"], random):
        assert block["optimal_latency_by_trial"][0] == oracle["optimal_latency_by_trial"][0]
    assert oracle["success_by_trial"][0] == 1.0 > random["success_by_trial"][0]
    assert oracle["latency_by_trial"][0] == oracle["optimal_latency_by_trial"][0]
    assert oracle["latency_by_trial"][0] < random["latency_by_trial"][0]
    assert oracle["goals_per_episode"] > random["goals_per_episode"] + 2
    # and the random control is uniform random swimming on exactly these episodes
    sim = rollout_batches(None, tiny_task.env, 8, 1, policy="random")
    alone = behaviour(sim, tiny_task.env, 6, torch.Generator().manual_seed(1))
    for key in ("latency_by_trial", "success_by_trial", "path_length_by_trial", "goals_per_episode"):
        assert random[key] == alone[key], key


def test_weight_change_during_evaluation_is_caught(tiny_task):
    agent = make_agent(tiny_task)
    act = agent.act

    def drifting_act(*args, **kw):
        agent.mean_head.bias.data += 1e-3  # a bug that writes to the weights
        return act(*args, **kw)

    agent.act = drifting_act
    with pytest.raises(RuntimeError, match="weights changed during evaluation"):
        evaluate(agent, tiny_task, episodes=2, seed=0, progress=False)


def test_cli_evaluate_writes_the_report(tmp_path, tiny_task_path):
    run = tmp_path / "run"
    train_run(tiny_task_path, run, progress=False, stop_after=1)
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["evaluate", str(run), "-n", "4", "--seed", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["episodes"] == 4 and report["trained"]["iteration"] == 1
    assert set(report["control_no_memory"]) >= {"latency_by_trial", "one_shot_ratio"}
    assert not any(isinstance(v, float) and math.isnan(v) for v in report.values())
    assert report["seed_kind"] == "validation" and "(validation seed 2)" in result.output
    test = CliRunner().invoke(app, ["evaluate", str(run), "-n", "4", "--seed", "1000000",
                                    "--out", str(out)])
    assert test.exit_code == 0 and json.loads(out.read_text())["seed_kind"] == "test"


def test_cli_evaluate_bad_source(tmp_path):
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no checkpoint" in result.output


def test_plot_of_a_trained_run_draws_every_figure(tmp_path, tiny_task_path):
    run = tmp_path / "run"
    train_run(tiny_task_path, run, progress=False)
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(run), "-n", "4", "--out", str(run / "eval.json")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["plot", str(run)])
    assert result.exit_code == 0, result.output
    for name in ("trajectories", "raster", "learning_curve", "probe_occupancy", "latency_by_trial"):
        data = (run / f"{name}.png").read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 5_000, name


def test_one_shot_targets_hold_each_measure_to_its_bound():
    from snn_icl.experiments.evaluate import one_shot_targets

    r = {"optimal_latency_trials2_4": 10.0, "one_shot_ratio": 3.0,
         "latency_trials2_4": 20.0, "control_no_memory": {"one_shot_ratio": 1.5},
         "probe_target_quadrant_fraction": 0.5}
    assert all(met for _, _, met in one_shot_targets(r).values())  # every bound is inclusive
    assert one_shot_targets(r)["latency trials 2-4"][1] == "<= 20"  # 2 x the pooled optimum
    assert not one_shot_targets({**r, "optimal_latency_trials2_4": None})["latency trials 2-4"][2]
    worse = {**r, "one_shot_ratio": 2.9, "latency_trials2_4": 21.0,
             "control_no_memory": {"one_shot_ratio": 1.6}, "probe_target_quadrant_fraction": None}
    assert not any(met for _, _, met in one_shot_targets(worse).values())


def test_learning_curve_marks_each_change_of_recipe():
    from snn_icl.config import load_task
    from snn_icl.experiments.figures import recipe_marks

    task = load_task(Path(__file__).parents[1] / "tasks" / "water_maze.toml")
    t = task.train
    marks = recipe_marks(task)  # training episodes at which each stage starts
    assert sorted(marks.values()) == [a * t.batch_episodes for a in t.atlantis_from_iteration] + [
        (t.iterations - t.lr_anneal_iterations) * t.batch_episodes]
    assert recipe_marks(load_task(Path(__file__).parents[1] / "tasks" / "water_maze_tiny.toml")) == {}


def test_compare_uses_the_same_episodes_for_every_model(tmp_path, tiny_task_path):
    lstm_task = tmp_path / "lstm.toml"
    lstm_task.write_text(tiny_task_path.read_text().replace(
        "[agent]\nn_regular = 12\nn_adaptive = 12\nms_per_step = 2\n", '[agent]\nkind = "lstm"\n'))
    runs = []
    for task in (tiny_task_path, lstm_task):
        runs.append(tmp_path / task.stem)
        train_run(task, runs[-1], progress=False, stop_after=1)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", *map(str, runs), "-n", "4", "--seed", "5",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = (out / "compare.md").read_text().splitlines()
    assert len(table) == 4 and "water_maze_tiny" in table[2] and "lstm" in table[3]
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((out / "compare.json").read_text())["results"]
    a, b = report.values()
    # same held-out episodes: the straight-swim optimum per trial depends only on the episodes
    assert a["optimal_latency_by_trial"][0] == b["optimal_latency_by_trial"][0]
    assert a["control_random"] == b["control_random"]


def test_steps_to_criterion_finds_the_first_window_that_meets_both_targets():
    from snn_icl.experiments.compare import steps_to_criterion
    from snn_icl.envs.water_maze import WaterMazeConfig

    env = WaterMazeConfig(episode_steps=200, trial_timeout=60)

    def rows(lat1, lat2):
        return [{"latency_trial1": str(a), "latency_trials2_4": str(b), "episodes": str(64 * (i + 1)),
                 "iteration": str(i + 1)} for i, (a, b) in enumerate(zip(lat1, lat2))]

    # learns at iteration 100: trial 1 stays 45, later trials drop from 45 to 12 (optimum 10)
    lat1 = [45.0] * 200
    lat2 = [45.0] * 100 + [12.0] * 100
    assert steps_to_criterion(rows(lat1, lat2), env, 10.0, window=10) == 64 * 110 * 200
    # a ratio >= 3 with slow later trials (2 x optimum exceeded) is not the criterion
    assert steps_to_criterion(rows([60.0] * 50, [25.0] * 50), env, 10.0, window=10) is None
    assert steps_to_criterion(rows(lat1, lat2), env, None, window=10) is None
    assert steps_to_criterion(rows(lat1[:5], lat2[:5]), env, 10.0, window=10) is None
