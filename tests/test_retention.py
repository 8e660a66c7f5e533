"""The dark-delay retention test (snn_icl.experiments.retention) and `snn-icl retention`."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from snn_icl.cli import app
from snn_icl.config import replace
from snn_icl.episodes.measures import behaviour
from snn_icl.experiments.evaluate import run_condition
from snn_icl.experiments.retention import retention
from snn_icl.train.run_dir import train_run
from snn_icl.config import make_agent
from snn_icl.models import frozen


def test_zero_delay_is_the_plain_evaluation(tiny_task):
    agent = frozen(make_agent(tiny_task))
    r = retention(agent, tiny_task, [0], episodes=8, seed=3, progress=False)
    plain = behaviour(run_condition(agent, tiny_task, 8, 3), tiny_task.env, 2, torch.Generator())
    assert r["latency_trial1"] == [plain["latency_by_trial"][0]]
    assert r["latency_trial2"] == [plain["latency_by_trial"][1]]
    assert r["memory_horizon"] == {"tau_a": tiny_task.agent.tau_a / tiny_task.agent.ms_per_step}


def test_an_lsnn_whose_thresholds_do_not_adapt_has_no_adaptation_horizon(tiny_task):
    """beta = 0 (the LIF control) or no adaptive neurons: tau_a is a parameter, not a memory."""
    assert make_agent(tiny_task).memory_horizon()
    for agent in ({"beta": 0.0}, {"n_regular": 24, "n_adaptive": 0}):
        assert make_agent(replace(tiny_task, agent=agent)).memory_horizon() == {}


def test_the_delay_reaches_the_agent_as_dark_steps(tiny_task):
    """During the delay the agent receives all-zero input; trial 2 starts exactly later."""
    from snn_icl.episodes.rollout import rollout_batches

    agent = frozen(make_agent(tiny_task))
    cfg = replace(tiny_task, env={"episode_steps": tiny_task.env.episode_steps + 7}).env
    sim = rollout_batches(agent, cfg, 4, 0, deterministic=True, drop=(), dark_after_trial=0,
                          dark_steps=7)
    plain = rollout_batches(agent, cfg, 4, 0, deterministic=True, drop=())  # same episodes, no delay
    dark = sim.obs.abs().sum(-1) == 0  # [T, B]
    assert torch.equal(dark.sum(0), torch.full((4,), 7))
    start2 = (sim.trial >= 1).float().argmax(0)
    plain_start2 = (plain.trial >= 1).float().argmax(0)
    assert torch.equal(start2, plain_start2 + 7)
    # trial 1 is untouched by a delay that only follows it
    t1 = int(plain_start2.min()) - 1
    assert torch.equal(sim.position[:t1], plain.position[:t1])


def test_transformer_runs_past_its_table_only_when_asked(tiny_task):
    task = replace(tiny_task, agent={"kind": "transformer", "n_layer": 1, "n_head": 1, "n_embd": 8,
                                     "context_window": 8})
    agent = frozen(make_agent(task))
    obs = torch.zeros(2, task.env.obs_dim)
    state = agent.initial_state(2, step=task.env.episode_steps)
    with pytest.raises(ValueError, match="extend_positions"):
        agent.act(obs, state)
    r = retention(agent, task, [12], episodes=2, seed=0, progress=False)
    assert agent.extend_positions is False  # restored
    assert r["memory_horizon"] == {"context_window": 8.0}
    assert r["weights_sha256"]["before"] == r["weights_sha256"]["after"]


def test_bad_delays_are_refused(tiny_task):
    agent = make_agent(tiny_task)
    with pytest.raises(ValueError, match="delays"):
        retention(agent, tiny_task, [-1], episodes=2, seed=0, progress=False)
    result = CliRunner().invoke(app, ["retention", "pretrained", "--delays", "1,x"])
    assert result.exit_code == 2 and "--delays" in result.output


def test_cli_retention_writes_table_json_and_figure(tmp_path, tiny_task_path):
    run = tmp_path / "run"
    train_run(tiny_task_path, run, progress=False, stop_after=1)
    out = tmp_path / "ret"
    result = CliRunner().invoke(app, ["retention", str(run), "--delays", "0,4", "-n", "4",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "retention.json").read_text())["results"]["run"]
    assert report["delays"] == [0, 4] and len(report["latency_trial2"]) == 2
    md = (out / "retention.md").read_text()
    assert md.split("\n\n")[0].count("\n") == 2  # header, rule, one model
    assert "Trial-2 success" in md and "| run | 1 |" in md
    assert (out / "retention.png").read_bytes()[:4] == b"\x89PNG"


def test_retention_figure_labels_a_shared_memory_span_once():
    """Two LSNNs of one architecture share tau_a: one line and one label naming both, not two
    labels printed over each other; a span of one agent alone keeps that agent's name."""
    from snn_icl.viz.plots import plot_retention

    def result(horizon):
        return {"delays": [0, 10], "latency_trial2": [12.0, 20.0],
                "latency_trial2_ci": [[10.0, 14.0], [18.0, 22.0]], "latency_trial1": [40.0, 40.0],
                "optimal_trial2": [10.0, 10.0], "episodes": 4, "memory_horizon": horizon}

    fig = plot_retention({"a": result({"tau_a": 240}), "b": result({"tau_a": 240}),
                          "t": result({"context_window": 64})})
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert sorted(labels) == ["context window = 64 steps (t)", "tau_a = 240 steps (a, b)"]
    fig = plot_retention({"a": result({"tau_a": 240}), "b": result({"tau_a": 240})})
    assert [t.get_text() for t in fig.axes[0].texts] == ["tau_a = 240 steps (all)"]


def test_delay_curves_keep_the_latency_axis_to_the_data():
    """Two training seeds give a t-interval that can pass the trial's time-out; the latency axis
    stays at the data's range (trial 1 here) and the band is cut by the frame."""
    from snn_icl.viz.plots import plot_delay_curves

    pooled = {"delays": [0, 25], "latency_trial2": [20.0, 30.0],
              "latency_trial2_ci": [[-60.0, 100.0], [-40.0, 160.0]],
              "latency_trial1": [50.0, 52.0], "success_trial2": [0.8, 0.7],
              "success_trial2_ci": [[0.2, 1.4], [0.1, 1.3]], "optimal_trial2": [11.0, 11.0],
              "episodes": 4, "n_seeds": 2}
    fig = plot_delay_curves({"pooled": pooled})
    assert fig.axes[0].get_ylim() == pytest.approx((0.0, 1.15 * 52.0))
    assert fig.axes[1].get_ylim() == pytest.approx((0.0, 1.02))


def test_delay_curves_spread_the_short_delays_and_keep_the_legend_off_the_panels():
    """Delays spanning more than a decade get a symlog axis with a tick at each measured delay;
    the legend sits below the panels with each label once."""
    from snn_icl.viz.plots import plot_delay_curves

    def one(delays):
        k = len(delays)
        return {"delays": delays, "latency_trial2": [20.0] * k, "latency_trial1": [50.0] * k,
                "success_trial2": [0.8] * k, "probe_quadrant": [0.4] * k,
                "optimal_trial2": [10.0] * k, "episodes": 4}

    fig = plot_delay_curves({"a": one([0, 10, 100, 400]), "b": one([0, 10, 100, 400])},
                            trained=100)
    assert [ax.get_xscale() for ax in fig.axes] == ["symlog"] * 3
    assert list(fig.axes[1].get_xticks()) == [0, 10, 100, 400]
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels.count("longest trained delay (100)") == 1
    assert {"a (n = 1)", "b (n = 1)", "straight swim", "chance (0.25)"} <= set(labels)
    assert plot_delay_curves({"a": one([0, 25, 50])}).axes[0].get_xscale() == "linear"
