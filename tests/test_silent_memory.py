"""Silent delays in training ([train] dark_*), fine-tuning (init_from), and the silent-memory
analysis (snn_icl.analysis.silent_memory, `snn-icl silent-memory`, pooled retention)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from snn_icl.analysis import silent_memory as sm
from snn_icl.analysis.ablations import reset_hook
from snn_icl.cli import app
from snn_icl.config import ConfigError, make_agent, replace
from snn_icl.envs.water_maze import WaterMaze
from snn_icl.experiments.retention import combine_seeds, retention
from snn_icl.models import frozen
from snn_icl.storage.checkpoint import Checkpoint, load_agent
from snn_icl.train.ppo import _dark_rate_terms, collect, dark_left, new_state
from snn_icl.train.run_dir import train_run

runner = CliRunner()


def _delay_task(tiny_task, **train):
    return replace(tiny_task, train={"dark_max_steps": [6], "dark_from_iteration": [0], **train})


# ----------------------------------------------------------------------------- env and config
def test_one_dark_delay_per_episode(tiny_task):
    """A [B] tensor of delays gives each episode its own number of dark steps, and trial 2
    starts exactly that much later."""
    cfg = replace(tiny_task, env={"episode_steps": 60}).env
    delays = torch.tensor([0, 3, 9, 1])
    env = WaterMaze(cfg, num_envs=4, seed=0)
    env.reset(dark_after_trial=0, dark_steps=delays)
    dark = torch.zeros(4, dtype=torch.long)
    for _ in range(cfg.episode_steps):
        dark += (env.state.dark_left > 0).long()
        env.step(torch.zeros(4, 2))
    assert torch.equal(dark, delays)
    with pytest.raises(ValueError, match="dark_steps"):
        env.reset(dark_after_trial=0, dark_steps=torch.tensor([1, -1, 0, 0]))
    with pytest.raises(ValueError, match="dark_steps"):
        env.reset(dark_after_trial=0, dark_steps=torch.tensor([1.0, 2.0, 0.0, 0.0]))


def test_dark_training_keys_are_checked(tiny_task, tmp_path):
    with pytest.raises(ConfigError, match="dark_max_steps"):
        replace(tiny_task, train={"dark_max_steps": [5, 10], "dark_from_iteration": [0]})
    with pytest.raises(ConfigError, match="dark_from_iteration"):
        replace(tiny_task, train={"dark_max_steps": [5, 10], "dark_from_iteration": [3, 3]})
    with pytest.raises(ConfigError, match="dark_after_trial"):
        replace(tiny_task, train={"dark_max_steps": [5], "dark_after_trial": 99})
    with pytest.raises(ConfigError, match="dark_rate_reg"):
        replace(tiny_task, train={"dark_rate_reg": -1.0})
    with pytest.raises(ConfigError, match="one per stage"):
        replace(tiny_task, train={"dark_max_steps": [5, 10], "dark_from_iteration": [0, 4],
                                  "dark_rate_reg": [0.0, 1.0, 2.0]})
    bad = tmp_path / "bad.toml"
    bad.write_text('[env]\nfamily = "icl_regression"\n[agent]\nkind = "lsa"\n'
                   '[train]\ndark_max_steps = [5]\n')
    from snn_icl.config import load_task
    with pytest.raises(ConfigError, match="not a supervised family"):
        load_task(bad)
    bad.write_text('[env]\nfamily = "icl_regression"\n[agent]\nkind = "lsa"\n'
                   '[train]\ndark_rate_reg_cue = false\n')
    with pytest.raises(ConfigError, match="dark_rate_reg_cue .* not a supervised family"):
        load_task(bad)
    staged = replace(tiny_task, train={"dark_max_steps": [0, 4, 8],
                                       "dark_from_iteration": [0, 2, 5]}).train
    assert [staged.dark_at(i) for i in (0, 1, 2, 4, 5, 99)] == [0, 0, 4, 4, 8, 8]
    ramp = replace(tiny_task, train={"dark_max_steps": [4, 8], "dark_from_iteration": [0, 5],
                                     "dark_rate_reg": [0.0, 3.0]}).train
    assert [ramp.dark_rate_reg_at(i) for i in (0, 4, 5, 50)] == [0.0, 0.0, 3.0, 3.0]
    one = replace(tiny_task, train={"dark_max_steps": [4, 8], "dark_from_iteration": [0, 5],
                                    "dark_rate_reg": 2.0}).train
    assert [one.dark_rate_reg_at(i) for i in (0, 5)] == [2.0, 2.0]


def test_training_episodes_hold_the_drawn_delays(tiny_task):
    """Every training episode gets a delay in 0..D after trial 1, recorded as dark steps, and
    the episodes are lengthened by D; the platforms do not depend on the delays."""
    task = _delay_task(tiny_task, batch_episodes=8)
    state = new_state(task, make_agent(task))
    batch = collect(state, task)
    assert batch.steps == tiny_task.env.episode_steps + 6
    per_episode = batch.dark.sum(0)
    assert bool((per_episode >= 0).all()) and bool((per_episode <= 6).all())
    assert len(set(per_episode.tolist())) > 1  # drawn per episode, not one for the batch
    # every dark step lies between the end of trial 1 and the start of trial 2
    assert bool((batch.trial[:-1][batch.dark] == 0).all())
    plain = replace(task, train={"dark_max_steps": [0]})
    ref = collect(new_state(plain, make_agent(plain)), plain)
    assert torch.equal(batch.platform, ref.platform)


def test_dark_rate_penalty_acts_on_dark_steps_only():
    """The penalty is weight * mean_i r_i^2 over the dark steps; rates are logged in Hz."""
    T, B, n = 4, 2, 3
    by_step = torch.zeros(T, B, n)
    by_step[2:] = 0.05  # 50 Hz in the last two steps
    by_step[:2] = 0.01
    dark = torch.zeros(T, B, dtype=torch.bool)
    dark[2:] = True
    policy = SimpleNamespace(rate_by_step=by_step)
    batch = SimpleNamespace(dark=dark)
    stats: dict = {}
    term = _dark_rate_terms(policy, batch, torch.arange(B), 10.0, stats)
    assert float(term) == pytest.approx(10.0 * 0.05 ** 2)
    assert stats["rate_dark_hz"][0] == pytest.approx(50.0)
    assert stats["rate_light_hz"][0] == pytest.approx(10.0)
    assert _dark_rate_terms(policy, batch, torch.arange(B), 0.0, {}) == 0.0
    none_dark = SimpleNamespace(dark=torch.zeros(T, B, dtype=torch.bool))
    assert _dark_rate_terms(policy, none_dark, torch.arange(B), 10.0, {}) == 0.0


def test_dark_left_counts_down_each_delay():
    dark = torch.tensor([[0, 1], [1, 1], [1, 0], [1, 1], [0, 1]], dtype=torch.bool)
    assert dark_left(dark).T.tolist() == [[0, 3, 2, 1, 0], [2, 1, 0, 2, 1]]
    assert dark_left(torch.zeros(3, 2, dtype=torch.bool)).sum() == 0


def test_the_dark_penalty_can_leave_the_recall_cue_out(tiny_task):
    """With cue_steps the penalty covers the silent steps before each delay's last cue_steps
    (the recall cue) only; the logged dark rate still covers the whole delay."""
    T, B, n = 6, 2, 3
    dark = torch.zeros(T, B, dtype=torch.bool)
    dark[1:5] = True  # a 4-step delay: 2 silent steps, then a 2-step cue
    by_step = torch.zeros(T, B, n)
    by_step[3:5] = 0.04  # firing only in response to the cue
    policy, batch = SimpleNamespace(rate_by_step=by_step), SimpleNamespace(dark=dark)
    stats: dict = {}
    assert float(_dark_rate_terms(policy, batch, torch.arange(B), 10.0, stats)) == \
        pytest.approx(10.0 * 0.02 ** 2)
    assert _dark_rate_terms(policy, batch, torch.arange(B), 10.0, stats, cue_steps=2) == 0.0
    assert stats["rate_dark_hz"] == pytest.approx([20.0, 20.0])
    by_step[1] = 0.04  # one silent step with spikes: penalised, averaged over the 2 silent steps
    assert float(_dark_rate_terms(policy, batch, torch.arange(B), 10.0, {}, cue_steps=2)) == \
        pytest.approx(10.0 * 0.02 ** 2)
    assert _dark_rate_terms(policy, batch, torch.arange(B), 10.0, {}, cue_steps=4) == 0.0
    cue = {"recall_cue_steps": 2, "recall_cue_input": "channel", "recall_cue_level": 1.0}
    cfg = replace(_delay_task(tiny_task, dark_rate_reg=[1.0]), env=cue,
                  train={"dark_rate_reg_cue": False}).train
    assert cfg.dark_rate_reg_cue is False and tiny_task.train.dark_rate_reg_cue is True


@pytest.mark.parametrize("env, train", [({}, {"dark_rate_reg": [1.0]}),
                                        ({"recall_cue_steps": 2, "recall_cue_input": "channel"},
                                         {"dark_rate_reg": [0.0]})])
def test_leaving_out_a_cue_that_is_not_there_is_refused(tiny_task, env, train):
    """dark_rate_reg_cue = false without a recall cue or without a penalty would change
    nothing; it stops with a message rather than run as if it did something."""
    with pytest.raises(ConfigError, match="dark_rate_reg_cue = false .* recall_cue_steps > 0"):
        replace(_delay_task(tiny_task), env=env, train={**train, "dark_rate_reg_cue": False})


def test_leaving_the_cue_out_of_the_penalty_changes_training(tiny_task):
    """One PPO update from the same weights and batch with ``dark_rate_reg_cue`` true and
    false, with a 2-step recall cue: different weights."""
    from snn_icl.train.ppo import ppo_update

    env = {"recall_cue_steps": 2, "recall_cue_input": "channel", "recall_cue_level": 1.0}
    weights = []
    for on_cue in (True, False):
        task = replace(_delay_task(tiny_task, batch_episodes=8, dark_rate_reg=[1e4]), env=env,
                       train={"dark_rate_reg_cue": on_cue})
        torch.manual_seed(0)
        state = new_state(task, make_agent(task))
        ppo_update(state, collect(state, task), task)
        weights.append(torch.cat([p.detach().flatten() for p in state.agent.parameters()]))
    assert not torch.equal(weights[0], weights[1])


def test_training_with_delays_logs_rates_and_resumes_exactly(tiny_task_path, tmp_path):
    import tomllib

    text = tiny_task_path.read_text().replace(
        "[train]\n", "[train]\ndark_max_steps = [4]\ndark_rate_reg = 5.0\n")
    task_file = tmp_path / "delay.toml"
    task_file.write_text(text)
    full = train_run(task_file, tmp_path / "full", progress=False)
    train_run(task_file, tmp_path / "split", progress=False, stop_after=1)
    split = train_run(task_file, tmp_path / "split", progress=False, resume=True)
    for a, b in zip(full.agent.parameters(), split.agent.parameters()):
        assert torch.equal(a, b)
    header = (tmp_path / "full" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"rate_dark_hz", "rate_light_hz", "latency_trial2"} <= set(header)
    saved = tomllib.loads((tmp_path / "full" / "config.toml").read_text())
    assert saved["train"]["dark_max_steps"] == [4]


# ----------------------------------------------------------------------------- init_from
def test_init_from_starts_from_the_checkpoint_weights(tiny_task_path, tmp_path):
    train_run(tiny_task_path, tmp_path / "base", progress=False)
    source, _, _ = load_agent(tmp_path / "base" / "checkpoint.safetensors")
    text = tiny_task_path.read_text().replace(
        "[train]\n", f'[train]\ninit_from = "{tmp_path / "base"}"\n').replace(
        "iterations = 3", "iterations = 1").replace("n_adaptive = 12\n", "n_adaptive = 12\nbeta = 0.0\n")
    task_file = tmp_path / "fine.toml"
    task_file.write_text(text)
    from snn_icl.train import run_dir

    from snn_icl.config import load_task
    task = load_task(task_file)
    agent = make_agent(task)
    run_dir._init_weights(agent, task)
    for (name, a), b in zip(agent.state_dict().items(), source.state_dict().values()):
        assert torch.equal(a, b), name
    assert agent.net.params.beta == 0.0  # the neuron settings stay this task's
    fresh = make_agent(task)
    assert not torch.equal(fresh.net.w_rec, agent.net.w_rec)
    state = train_run(task_file, tmp_path / "fine", progress=False)
    assert state.iteration == 1


def test_init_optimizer_goes_on_with_the_source_runs_adam(tiny_task_path, tmp_path):
    """A branch with init_optimizer takes the source run's Adam moments and step count (it
    steps differently from a branch that restarts Adam) and keeps its own lr."""
    train_run(tiny_task_path, tmp_path / "base", progress=False)
    base = Checkpoint(tmp_path / "base" / "checkpoint.safetensors")
    steps = {k: float(v) for k, v in base.tensors.items() if k.endswith(".step")}
    assert steps and set(steps.values()) == {6.0}  # 3 iterations x 2 minibatches
    branches = {}
    for name, keep in (("adam", "true"), ("fresh", "false")):
        task_file = tmp_path / f"{name}.toml"
        task_file.write_text(tiny_task_path.read_text().replace(
            "[train]\n", f'[train]\ninit_from = "{tmp_path / "base"}"\ninit_optimizer = {keep}\n'
            "lr = 0.0005\nweight_decay = 0.01\n").replace("iterations = 3", "iterations = 1"))
        state = train_run(task_file, tmp_path / name, progress=False)
        assert state.optimizer.param_groups[0]["lr"] == pytest.approx(0.0005)
        assert state.optimizer.param_groups[0]["weight_decay"] == 0.01  # not the source's 0
        branches[name] = Checkpoint(tmp_path / name / "checkpoint.safetensors").tensors
    grown = {k: float(branches["adam"][k]) for k in steps}
    assert set(grown.values()) == {8.0}  # went on from 6: the bias correction is not restarted
    assert {float(branches["fresh"][k]) for k in steps} == {2.0}
    assert not torch.equal(branches["adam"]["agent.net.w_rec"], branches["fresh"]["agent.net.w_rec"])


def test_init_optimizer_needs_a_full_checkpoint(tiny_task_path, tmp_path):
    base_file = tmp_path / "base.toml"
    base_file.write_text(tiny_task_path.read_text().replace("[train]\n", "[train]\nsnapshot_every = 3\n"))
    train_run(base_file, tmp_path / "base", progress=False)
    copy = tmp_path / "base" / "snapshots" / "iteration_000003.safetensors"  # weights only
    for source, message in ((copy, "weights-only"), (tmp_path / "base", None)):
        task_file = tmp_path / "fine.toml"
        task_file.write_text(tiny_task_path.read_text().replace(
            "[train]\n", f'[train]\ninit_from = "{source}"\ninit_optimizer = true\n'
            'optimizer = "adamw"\n'))
        result = runner.invoke(app, ["train", str(task_file), "--out", str(tmp_path / "x")])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert (message or "trained with 'adam'") in result.output, result.output
    task_file.write_text(tiny_task_path.read_text().replace("[train]\n", "[train]\ninit_optimizer = true\n"))
    result = runner.invoke(app, ["train", str(task_file), "--out", str(tmp_path / "y")])
    assert result.exit_code == 2 and "needs init_from" in result.output, result.output


def test_init_from_a_foreign_or_missing_checkpoint_is_one_line(tiny_task_path, tmp_path):
    lstm = tmp_path / "lstm.toml"
    lstm.write_text(tiny_task_path.read_text().replace("[agent]\n", '[agent]\nkind = "lstm"\n')
                    .replace("n_regular = 12\nn_adaptive = 12\nms_per_step = 2\n", "hidden_size = 8\n"))
    train_run(lstm, tmp_path / "lstm_run", progress=False)
    for source, message in ((tmp_path / "lstm_run", "holds a 'lstm' agent"),
                            (tmp_path / "nothing", "no checkpoint")):
        task_file = tmp_path / "fine.toml"
        task_file.write_text(tiny_task_path.read_text().replace(
            "[train]\n", f'[train]\ninit_from = "{source}"\n'))
        result = runner.invoke(app, ["train", str(task_file), "--out", str(tmp_path / "x")])
        assert result.exit_code == 2, result.output
        assert message in result.output and "init_from" in result.output
        assert "Traceback" not in result.output


def test_transformer_trains_across_delays_from_a_shorter_trained_source(tiny_task, tmp_path):
    """Dark delays lengthen the training episodes past a transformer's position table: the
    table covers the longest one, and fine-tuning grows the source's table with its last row,
    so the network starts out acting as the source does past its trained length."""
    from snn_icl.storage.checkpoint import save_checkpoint
    from snn_icl.train.run_dir import _init_weights

    agent = {"kind": "transformer", "n_layer": 1, "n_head": 1, "n_embd": 8, "context_window": 16}
    source_task = replace(tiny_task, agent=agent)
    source = make_agent(source_task)
    save_checkpoint(tmp_path / "src.safetensors", source_task, source)
    task = replace(_delay_task(source_task, init_from=str(tmp_path / "src.safetensors"),
                                batch_episodes=4, iterations=1),
                   agent={"context_window": 8})
    steps = tiny_task.env.episode_steps
    grown = make_agent(task)
    assert grown.pos.weight.shape[0] == steps + 6 == source.pos.weight.shape[0] + 6
    _init_weights(grown, task)
    torch.testing.assert_close(grown.pos.weight[steps:], source.pos.weight[-1:].expand(6, -1))
    torch.testing.assert_close(grown.pos.weight[:steps], source.pos.weight)
    state = new_state(task, grown)
    batch = collect(state, task)  # episodes of steps + 6: past the source's table, no error
    assert batch.steps == steps + 6 and batch.dark.any()

# ----------------------------------------------------------------------------- analysis
def _fake_sim(T=10, B=2, n=4, k=2):
    """Trial 1 for steps 0-3 (swimming 0-2, on the platform at 3), dark 4-7, trial 2 from 8."""
    trial = torch.zeros(T + 1, B, dtype=torch.long)
    trial[8:] = 1
    on_platform = torch.zeros(T + 1, B, dtype=torch.bool)
    on_platform[3] = True
    dark = torch.zeros(T, B, dtype=torch.bool)
    dark[4:8] = True
    z = torch.zeros(T * k, B, n, dtype=torch.bool)
    z[0:3 * k:2] = True  # swimming: one spike per neuron every 2 ms -> 500 Hz
    z[4 * k:8 * k:4] = True  # dark: one spike every 4 ms -> 250 Hz
    return SimpleNamespace(trial=trial, on_platform=on_platform, dark=dark, z=z), k


def test_delay_rates_compare_the_delay_with_swimming():
    sim, k = _fake_sim()
    index, swim = sm.delay_steps(sim)
    assert index[:, 0].tolist() == [-1, -1, -1, -1, 0, 1, 2, 3, -1, -1]
    assert swim[:, 0].tolist() == [True] * 3 + [False] * 7
    r = sm.delay_rates(sim, k, n_regular=2, n_bins=2)
    assert r["all"]["swim_hz"] == pytest.approx(500.0)
    assert r["all"]["delay_hz"] == pytest.approx(250.0)
    assert r["all"]["delay_over_swim"] == pytest.approx(0.5)
    assert r["adaptive"]["delay_bins_hz"] == pytest.approx([250.0, 250.0])


def test_delay_membrane_reads_v_below_rest_and_its_episode_specific_part():
    sim, k = _fake_sim()  # T = 10, B = 2, n = 4; dark steps 4-7, swimming 0-2
    v = torch.full((10, 2, 4), 0.5)
    v[4:8, 0] = -0.2  # episode 0 below rest in the whole delay ...
    v[4:8, 1] = 0.2   # ... episode 1 above it
    v[6:8, :] = 0.0   # both back at rest in the delay's second half
    m = sm.delay_membrane(sim, {"v": v * 0.01}, v_th=0.01, n_bins=2)
    assert m["swim"]["mean"] == pytest.approx(0.5)
    assert m["swim"]["below_rest"] == 0.0
    assert m["swim"]["across_episodes_sd"] == pytest.approx(0.0)
    assert m["end_steps"] == [3, 4] and m["end"]["across_episodes_sd"] == pytest.approx(0.0)
    with_cue = sm.delay_membrane(sim, {"v": v * 0.01}, v_th=0.01, n_bins=2, cue_steps=2)
    assert with_cue["end_steps"] == [1, 2]  # the dark step (env step 5) before the 2 cue steps
    assert with_cue["end"]["across_episodes_sd"] == pytest.approx(0.4 / math.sqrt(2))
    first, second = m["delay_bins"]
    assert first["mean"] == pytest.approx(0.0, abs=1e-6)
    assert first["below_rest"] == pytest.approx(0.5)
    assert first["across_episodes_sd"] == pytest.approx(0.4 / math.sqrt(2))
    assert second["across_episodes_sd"] == pytest.approx(0.0)
    assert second["below_rest"] == 0.0


def test_the_recall_cue_steps_are_left_out_of_the_silent_rate():
    sim, k = _fake_sim()
    sim.z[7 * k:8 * k] = True  # the cue (step 7, the delay's last) drives every neuron
    whole = sm.delay_rates(sim, k, n_regular=2, n_bins=2)
    assert whole["all"]["delay_hz"] == pytest.approx(500.0)  # 4 spikes in 8 ms
    r = sm.delay_rates(sim, k, n_regular=2, n_bins=2, cue_steps=2)
    assert r["all"]["delay_hz"] == pytest.approx(250.0)  # steps 4-5: 1 spike in 4 ms
    assert r["all"]["delay_bins_hz"] == whole["all"]["delay_bins_hz"]  # bins keep the cue


def test_with_a_recall_cue_the_manipulations_act_at_its_start(tiny_task):
    seen = []

    def spy(i, size):
        def hook(state, info):
            seen.append((info["new_trial"].clone(), info["trial"].clone()))
            return state
        return hook

    hook = sm._at_cue(spy, 2)(0, 3)
    info = {"dark_left": torch.tensor([3, 2, 0]), "new_trial": torch.tensor([False, False, True]),
            "trial": torch.tensor([0, 0, 1])}
    hook(None, info)
    starts, trial = seen[-1]
    # episode 1 sees its first cue observation next: its "trial 2" starts now; episode 2's real
    # trial start (after the cue) is no longer one
    assert starts.tolist() == [False, True, False]
    assert trial.tolist() == [0, 1, 1]
    task = replace(tiny_task, env={"recall_cue_steps": 2})
    from snn_icl.experiments import silent_memory as exp

    agent = frozen(make_agent(task))
    result, _ = exp.silent_memory(agent, task, 5, 8, 3, progress=False)
    assert result["recall_cue_steps"] == 2
    assert set(result["causal"]) == set(sm.CAUSAL)


def test_reset_hook_can_act_at_one_trial_only(tiny_task):
    agent = make_agent(tiny_task)
    state = agent.initial_state(3)
    a = agent.get_component(state, "a")
    state = agent.with_component(state, "a", torch.ones_like(a))
    info = {"new_trial": torch.tensor([True, True, False]), "trial": torch.tensor([1, 2, 1])}
    out = reset_hook(agent, ("a",), trial=1)(state, info)
    assert agent.get_component(out, "a")[:, 0].tolist() == [0.0, 1.0, 1.0]
    every = reset_hook(agent, ("a",))(state, info)
    assert agent.get_component(every, "a")[:, 0].tolist() == [0.0, 0.0, 1.0]


def test_state_bytes_constant_for_lsnn_growing_for_transformer(tiny_task):
    lsnn = frozen(make_agent(tiny_task))
    b = sm.state_bytes(lsnn, tiny_task.env.obs_dim, [5, 0, 20])
    assert b[0] == b[1] == b[2] > 0
    task = replace(tiny_task, env={"episode_steps": 64},
                   agent={"kind": "transformer", "n_layer": 1, "n_head": 1, "n_embd": 8,
                          "context_window": 16})
    tr = frozen(make_agent(task))
    c = sm.state_bytes(tr, task.env.obs_dim, [2, 8, 40])
    assert c[0] < c[1] < c[2]  # 2, 8, then the window's 15 tokens
    # beyond the window the cache stops growing
    assert sm.state_bytes(tr, task.env.obs_dim, [30])[0] == sm.state_bytes(tr, task.env.obs_dim, [40])[0]


def test_silent_memory_runs_every_part_on_a_small_lsnn(tiny_task):
    from snn_icl.experiments import silent_memory as exp

    agent = frozen(make_agent(tiny_task))
    result, data = exp.silent_memory(agent, tiny_task, 6, 16, 3, progress=False)
    assert set(result["causal"]) == set(sm.CAUSAL)
    assert result["rates"]["delay"] == 6
    assert len(result["decoding"]["a (adaptive)"]["error"]) == 5
    assert len(result["membrane"]["delay_bins"]) == 10
    assert "Membrane potential along the delay" in exp.markdown(result)
    from snn_icl.viz.silent import plot_silent_memory

    assert [ax.get_title()[:3] for ax in plot_silent_memory(result, data).axes][-1] == "(f)"
    older = {k: v for k, v in result.items() if k != "membrane"}  # results written before it
    assert len(plot_silent_memory(older, data).axes) == 5
    assert data["sim"].episodes == 1
    assert set(result["targets"]) >= {"memory_kept", "silent", "activity_silent_causal"}
    # manipulations at the end of the delay cannot change trial 1
    c = result["causal"]
    assert c["intact"]["success_trial1"] == c["reset_a_end"]["success_trial1"]
    # trial 2 split by how trial 1 ended adds up to trial 2 over all episodes
    b = result["behaviour"]
    n_found, n_placed = b["episodes_found"], b["episodes_placed"]
    assert n_found + n_placed == 16 and n_found == round(16 * b["success_trial1"])
    parts = [(n, s) for n, s in ((n_found, b["success_trial2_found"]),
                                 (n_placed, b["success_trial2_placed"])) if n]
    assert sum(n * s for n, s in parts) / 16 == pytest.approx(b["success_trial2"])
    assert "Trial 2 by how trial 1 ended" in exp.markdown(result)
    json.dumps(result)  # every number is JSON


def test_combine_seeds_gives_means_and_t_intervals(tiny_task):
    agent = frozen(make_agent(tiny_task))
    one = retention(agent, tiny_task, [0, 4], episodes=8, seed=3, progress=False, probe=True)
    two = json.loads(json.dumps(one))
    two["success_trial2"] = [x + 0.2 if x is not None else None for x in one["success_trial2"]]
    both = combine_seeds([one, two])
    assert both["n_seeds"] == 2
    s = one["success_trial2"][0]
    assert both["success_trial2"][0] == pytest.approx(s + 0.1)
    lo, hi = both["success_trial2_ci"][0]
    assert lo < s + 0.1 < hi
    assert len(both["probe_quadrant"]) == 2 and len(both["seeds"]) == 2
    assert both["state_bytes"] == one["state_bytes"] and len(both["kept_up_to_by_seed"]) == 2
    alone = combine_seeds([one])  # a named network (`name=path`) is a condition of one
    assert alone["latency_trial2_ci"] == one["latency_trial2_ci"]
    assert all(lo is not None and lo <= hi for lo, hi in alone["latency_trial2_ci"])
    other = dict(two, delays=[0, 5])
    with pytest.raises(ValueError, match="same delays"):
        combine_seeds([one, other])


def test_cli_errors_are_one_line(tiny_task_path, tmp_path):
    result = runner.invoke(app, ["retention", "=a,b", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "LABEL=SRC" in result.output
    result = runner.invoke(app, ["silent-memory", "pretrained:lstm", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "needs an LSNN" in result.output
    assert "Traceback" not in result.output


def test_longest_delay_bridged_needs_every_shorter_one():
    from snn_icl.experiments.retention import _kept_up_to, bridged

    assert _kept_up_to([50, 0, 25], [False, True, True]) == 25
    assert _kept_up_to([0, 25], [False, True]) is None
    assert bridged(20.0, 0.95, 10.0) and not bridged(21.0, 0.95, 10.0) and not bridged(20.0, 0.85, 10.0)


def test_retention_measures_a_transformer_cache_beyond_its_table(tiny_task):
    """The state of a transformer after a delay longer than its trained episode grows to its
    window (the retention run lets it extend its positions for this too)."""
    task = replace(tiny_task, agent={"kind": "transformer", "n_layer": 1, "n_head": 1, "n_embd": 8,
                                     "context_window": 24})
    agent = frozen(make_agent(task))
    r = retention(agent, task, [0, 40], episodes=2, seed=0, progress=False)
    assert r["state_bytes"][0] < r["state_bytes"][1]
    assert agent.extend_positions is False


def test_retention_workers_give_the_numbers_of_one_process(tiny_task_path, tmp_path):
    """Networks measured in two worker processes give what one process gives; a pooled
    condition from a sweep directory holds each of its seeds."""
    from snn_icl.experiments.retention import retention_many

    runs = []
    for seed in (0, 1):
        train_run(tiny_task_path, tmp_path / f"r{seed}", seed=seed, progress=False, stop_after=1)
        runs.append(str(tmp_path / f"r{seed}"))
    one = retention_many(runs, [0, 3], 4, 2, progress=False)
    two = retention_many(runs, [0, 3], 4, 2, workers=2, progress=False)
    assert one == two
    out = tmp_path / "ret"
    result = runner.invoke(app, ["retention", f"pair={runs[0]},{runs[1]}", runs[0], "--delays",
                                 "0,3", "-n", "4", "--seed", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "retention.json").read_text())["results"]
    assert saved["pair"]["n_seeds"] == 2 and saved["pair"]["seeds"][0] == json.loads(json.dumps(one[0]))
    assert (out / "retention_curves.png").is_file()


def test_retention_add_to_joins_earlier_networks(tiny_task_path, tmp_path):
    run = tmp_path / "r"
    train_run(tiny_task_path, run, progress=False, stop_after=1)
    args = ["--delays", "0,3", "-n", "4", "--seed", "2"]
    first = runner.invoke(app, ["retention", str(run), *args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    both = runner.invoke(app, ["retention", "pretrained:lsnn", *args, "--add-to",
                               str(tmp_path / "a"), "--out", str(tmp_path / "b")])
    assert both.exit_code == 0, both.output
    saved = json.loads((tmp_path / "b" / "retention.json").read_text())["results"]
    assert set(saved) == {"r", "pretrained:lsnn"}
    other = runner.invoke(app, ["retention", "pretrained:lsnn", "--delays", "0,5", "-n", "4",
                                "--seed", "2", "--add-to", str(tmp_path / "a"),
                                "--out", str(tmp_path / "c")])
    assert other.exit_code == 2 and "measured at other delays" in other.output
    assert not (tmp_path / "c").exists()
    # no networks: the earlier output drawn again, its numbers, episodes and seed kept
    again = runner.invoke(app, ["retention", "--add-to", str(tmp_path / "b"),
                                "--out", str(tmp_path / "d")])
    assert again.exit_code == 0, again.output
    redrawn = json.loads((tmp_path / "d" / "retention.json").read_text())
    assert redrawn["results"] == saved and (redrawn["episodes"], redrawn["seed"]) == (4, 2)
    assert (tmp_path / "d" / "retention.png").is_file()
    nothing = runner.invoke(app, ["retention", "--out", str(tmp_path / "e")])
    assert nothing.exit_code == 2 and "--add-to" in nothing.output


def test_training_curves_group_seeds_by_condition(tmp_path):
    from snn_icl.experiments.silent_memory import training_curves

    for name in ("a_seed0", "a_seed1", "b_seed0"):
        (tmp_path / f"{name}_metrics.csv").write_text("iteration,latency_trial2\n1,20\n2,\n")
    runs = training_curves(tmp_path)
    assert sorted(runs) == ["a", "b"] and len(runs["a"]) == 2
    assert runs["a"][0]["latency_trial2"][0] == 20.0 and math.isnan(runs["a"][0]["latency_trial2"][1])
    with pytest.raises(ValueError, match="no CONDITION_seedS"):
        training_curves(tmp_path / "nothing")


def test_pooled_silent_memory_reads_the_causal_tests_as_paired_changes(tiny_task):
    from snn_icl.experiments import silent_memory as exp
    from snn_icl.experiments.silent_memory_pooled import markdown, pool

    agent = frozen(make_agent(tiny_task))
    one, _ = exp.silent_memory(agent, tiny_task, 4, 16, 3, progress=False)
    two = json.loads(json.dumps(one))
    for cond in sm.CAUSAL:  # a network 10 steps slower everywhere: no change from intact
        two["causal"][cond]["latency_trial2"] = one["causal"][cond]["latency_trial2"] + 10
    two["causal"]["reset_v_z_end"]["latency_trial2"] += 6  # except after the v/z reset
    p = pool([one, two])
    assert p["n_networks"] == 2 and len(p["networks"]) == 2
    intact = one["causal"]["intact"]["latency_trial2"]
    assert p["causal"]["intact"]["latency_trial2"]["mean"] == pytest.approx(intact + 5)
    change = p["causal"]["reset_v_z_end"]["latency_trial2_change"]
    d = one["causal"]["reset_v_z_end"]["latency_trial2"] - intact
    assert change["values"] == pytest.approx([d, d + 6]) and change["mean"] == pytest.approx(d + 3)
    lo, hi = change["ci"]
    assert lo < d + 3 < hi
    assert p["causal"]["swap_a_end"]["latency_trial2_change"]["ci"][0] == pytest.approx(
        p["causal"]["swap_a_end"]["latency_trial2_change"]["mean"])  # equal changes: no spread
    assert "latency_trial2_change" not in p["causal"]["intact"]
    assert p["rate_delay_over_swim"]["mean"] == pytest.approx(
        one["rates"]["all"]["delay_over_swim"])
    text = markdown({"A": p, "B": pool([one])}, "validation")
    assert "| A | reset_v_z_end |" in text and "validation seed 3" in text
    b = one["behaviour"]
    assert p["memory"]["values"] == pytest.approx([b["success_trial2"] - b["success_trial1"]] * 2)
    with pytest.raises(ValueError, match="same delay"):
        pool([one, dict(two, delay=5)])
    # results written before the first-zone measure pool with it missing, not failing
    old = json.loads(json.dumps(one))
    for cond in sm.CAUSAL:
        del old["causal"][cond]["other_zone_first_fraction"]
    del old["membrane"]
    for key in ("success_trial2_found", "success_trial2_placed", "latency_trial2_found",
                "latency_trial2_placed"):
        del old["behaviour"][key]
    p_old = pool([old, old])
    assert p_old["causal"]["swap_a_end"]["other_zone_first_fraction"]["mean"] is None
    assert p_old["behaviour"]["success_trial2_placed"]["mean"] is None
    assert p["behaviour"]["success_trial2_found"]["values"] == [b["success_trial2_found"]] * 2
    assert "success, placed" in text
    assert p_old["membrane_end"]["across_episodes_sd"]["mean"] is None
    assert p["membrane_end"]["below_rest"]["values"] == [one["membrane"]["end"]["below_rest"]] * 2
    assert "partner first" in markdown({"old": p_old}, "validation")


def test_memory_is_compared_network_by_network(tiny_task):
    from snn_icl.experiments import silent_memory as exp
    from snn_icl.experiments.silent_memory_pooled import markdown, paired, pool

    agent = frozen(make_agent(tiny_task))
    one, _ = exp.silent_memory(agent, tiny_task, 4, 16, 3, progress=False)
    better = json.loads(json.dumps(one))
    better["behaviour"]["success_trial2"] = one["behaviour"]["success_trial2"] + 0.25
    pooled = {"ref": pool([one, one]), "new": pool([better, one]), "one": pool([one])}
    with pytest.raises(ValueError, match="'one' has 1 networks"):
        paired(pooled, "ref")
    del pooled["one"]
    d = paired(pooled, "ref")
    assert list(d) == ["new"] and d["new"]["values"] == pytest.approx([0.25, 0.0])
    assert d["new"]["mean"] == pytest.approx(0.125)
    assert "| new | +0.12 [" in markdown(pooled, "test", paired_to="ref")
    with pytest.raises(ValueError, match="names no condition"):
        paired(pooled, "other")


def test_silent_memory_cli_pools_conditions(tiny_task, tmp_path):
    from snn_icl.storage.checkpoint import save_checkpoint

    paths = []
    for i in range(3):
        torch.manual_seed(i)
        paths.append(tmp_path / f"n{i}.safetensors")
        save_checkpoint(paths[-1], tiny_task, make_agent(tiny_task))
    out = tmp_path / "pooled"
    result = runner.invoke(app, ["silent-memory", f"two={paths[0]},{paths[1]}", str(paths[2]),
                                 "--delay", "3", "-n", "8", "--seed", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "silent_memory.json").read_text())
    assert list(saved["conditions"]) == ["n2", "two"]  # single networks first, by their names
    assert saved["conditions"]["two"]["n_networks"] == 2
    assert (out / "silent_memory.png").stat().st_size > 0
    bad = runner.invoke(app, ["silent-memory", f"two={paths[0]},pretrained:lstm", "--out",
                              str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "needs an LSNN" in bad.output
    assert not (tmp_path / "bad").exists()  # checked before any output was claimed
    args = [f"a={paths[0]},{paths[1]}", f"b={paths[1]},{paths[2]}", "--delay", "3", "-n", "8",
            "--seed", "4"]
    both = runner.invoke(app, ["silent-memory", *args, "--paired-to", "a", "--out",
                               str(tmp_path / "paired")])
    assert both.exit_code == 0, both.output
    saved = json.loads((tmp_path / "paired" / "silent_memory.json").read_text())
    a, b = (saved["conditions"][k]["memory"]["values"] for k in "ab")
    assert saved["paired"]["b"]["values"] == pytest.approx([b[0] - a[0], b[1] - a[1]])
    assert "Memory against a, paired" in (tmp_path / "paired" / "silent_memory.md").read_text()
    for label in ("c", "b"):  # no such condition; b has 2 networks, n2 1
        odd = runner.invoke(app, ["silent-memory", *args, str(paths[2]), "--paired-to", label,
                                  "--out", str(tmp_path / "odd")])
        assert odd.exit_code == 2 and "--paired-to" in odd.output
        assert not (tmp_path / "odd").exists()


def test_the_partner_swaps_exchange_v_z_or_a_and_keep_the_rest(tiny_task):
    from snn_icl.analysis.ablations import partners
    from snn_icl.analysis.states import Capture

    agent = make_agent(tiny_task)
    state = agent.initial_state(4)
    episode = torch.arange(4.0).view(4, *[1] * (agent.get_component(state, "v").dim() - 1))
    for k, name in enumerate(("a",) + sm.RESET_V_Z):  # every component tells its episode
        x = agent.get_component(state, name)
        state = agent.with_component(state, name, (episode + 10 * k).expand_as(x).to(x.dtype))
    start = {"new_trial": torch.ones(4, dtype=torch.bool), "trial": torch.ones(4, dtype=torch.long)}
    donors = [Capture(agent, ("a",) + sm.RESET_V_Z, 1)]
    hooks = sm.causal_hooks(agent, donors)
    hooks["intact"](0, 4)(state, start)
    partner = partners(4)
    for cond, swapped in (("swap_v_z_end", sm.RESET_V_Z), ("swap_a_end", ("a",))):
        out = hooks[cond](0, 4)(state, start)
        for name in ("a",) + sm.RESET_V_Z:
            got = agent.get_component(out, name).flatten(1)[:, 0]
            mine = agent.get_component(state, name).flatten(1)[:, 0]
            want = mine[partner] if name in swapped else mine
            assert torch.equal(got, want), (cond, name)
    assert not torch.equal(partner, torch.arange(4))
