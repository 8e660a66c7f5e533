"""PPO meta-training on the tiny task: logs, checkpoints, exact resume, NaN stop, wrong models."""

import csv

import pytest
import torch
from typer.testing import CliRunner

from snn_icl.storage import files
from snn_icl.storage.checkpoint import load_agent, load_into, read_metadata
from snn_icl.cli import app
from snn_icl.config import load_task, replace
from snn_icl.models.lsnn_agent import LSNNAgent
from snn_icl.train.run_dir import RunFailed, CHECKPOINT, train_run
from snn_icl.config import make_agent
from snn_icl.train.errors import NonFiniteError
from snn_icl.train.ppo import gae
from tests.conftest import signal_when


def _rows(run):
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_gae_matches_hand_computation():
    rewards = torch.tensor([[0.0], [1.0], [0.0]])
    values = torch.tensor([[0.5], [0.2], [0.1]])
    adv, ret = gae(rewards, values, discount=0.9, lam=0.8)
    d2 = 0.0 - 0.1
    d1 = 1.0 + 0.9 * 0.1 - 0.2
    d0 = 0.0 + 0.9 * 0.2 - 0.5
    a2, a1 = d2, d1 + 0.72 * d2
    a0 = d0 + 0.72 * a1
    torch.testing.assert_close(adv[:, 0], torch.tensor([a0, a1, a2]))
    torch.testing.assert_close(ret, adv + values)


def test_training_logs_checkpoints_and_changes_weights(tmp_path, tiny_task, tiny_task_path):
    run = tmp_path / "run"
    state = train_run(tiny_task_path, run, progress=False)
    assert state.iteration == tiny_task.train.iterations
    rows = _rows(run)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert {"goals_per_episode", "latency_trial1", "latency_trials2_4", "policy_loss"} <= set(rows[0])
    agent, task, counters = load_agent(run / CHECKPOINT)
    assert task == tiny_task and counters["iteration"] == 3
    assert counters["episodes"] == 3 * tiny_task.train.batch_episodes
    init = make_agent(tiny_task)
    assert not torch.equal(agent.net.w_rec, init.net.w_rec)
    assert (torch.diagonal(agent.net.w_rec) == 0).all()
    assert read_metadata(run / CHECKPOINT)["agent_kind"] == "lsnn"
    status = files.read_json(run / "run.json")
    assert status["status"] == "done" and status["checkpoint_iteration"] == status["iteration"] == 3


def test_resume_after_a_stop_gives_the_uninterrupted_weights(tmp_path, tiny_task_path):
    full = tmp_path / "full"
    train_run(tiny_task_path, full, progress=False)
    split = tmp_path / "split"
    train_run(tiny_task_path, split, progress=False, stop_after=1)
    assert files.read_json(split / "run.json")["status"] == "stopped"
    train_run(tiny_task_path, split, progress=False, resume=True)
    a, b = files.load_tensors(full / CHECKPOINT), files.load_tensors(split / CHECKPOINT)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["goals_per_episode"] for r in _rows(full)] == [r["goals_per_episode"] for r in _rows(split)]


def test_a_finished_run_extended_with_iterations_equals_the_longer_run(tmp_path, tiny_task_path):
    # the tiny task has no lr anneal: training to 2 iterations, then on to 4, is training to 4
    runner = CliRunner()
    full, split = tmp_path / "full", tmp_path / "split"
    assert runner.invoke(app, ["train", str(tiny_task_path), "--out", str(full),
                               "--iterations", "4"]).exit_code == 0
    assert runner.invoke(app, ["train", str(tiny_task_path), "--out", str(split),
                               "--iterations", "2"]).exit_code == 0
    assert files.read_json(split / "run.json")["status"] == "done"
    result = runner.invoke(app, ["train", str(tiny_task_path), "--out", str(split), "--resume",
                                 "--iterations", "4"])
    assert result.exit_code == 0, result.output
    a, b = files.load_tensors(full / CHECKPOINT), files.load_tensors(split / CHECKPOINT)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["goals_per_episode"] for r in _rows(full)] == [r["goals_per_episode"] for r in _rows(split)]
    status = files.read_json(split / "run.json")
    assert status["status"] == "done" and status["iteration"] == 4
    assert load_agent(split / CHECKPOINT)[1].train.iterations == 4
    # a run is not shortened: asking for fewer iterations than it has done stops with one line
    result = runner.invoke(app, ["train", str(tiny_task_path), "--out", str(split), "--resume",
                                 "--iterations", "3"])
    assert result.exit_code == 2 and "trained 4 iterations" in result.output
    assert files.read_json(split / "run.json")["iteration"] == 4
    assert load_task(split / "config.toml").train.iterations == 4
    # another length is allowed on resume; another seed still is not
    result = runner.invoke(app, ["train", str(tiny_task_path), "--out", str(split), "--resume",
                                 "--iterations", "5", "--seed", "3"])
    assert result.exit_code == 2 and "differs" in result.output


def test_nan_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, tiny_task_path, monkeypatch):
    run = tmp_path / "run"
    train_run(tiny_task_path, run, progress=False, stop_after=1)
    before = (run / CHECKPOINT).read_bytes()
    original = LSNNAgent.evaluate_sequence

    def poisoned(self, net_input, state):
        policy = original(self, net_input, state)
        return policy._replace(value=policy.value * float("nan"))

    monkeypatch.setattr(LSNNAgent, "evaluate_sequence", poisoned)
    with pytest.raises(RunFailed, match="non-finite loss at iteration 2.*the checkpoint of "
                       "iteration 1 is kept") as info:
        train_run(tiny_task_path, run, progress=False, resume=True)
    assert isinstance(info.value.__cause__, NonFiniteError)
    assert (run / CHECKPOINT).read_bytes() == before
    assert len(_rows(run)) == 1
    status = files.read_json(run / "run.json")
    assert status["status"].startswith("failed: non-finite loss")
    assert "the checkpoint of iteration 1 is kept" in status["status"]
    assert status["checkpoint_iteration"] == 1  # where `--resume` would continue


def test_nan_before_any_checkpoint_says_none_is_kept(tmp_path, tiny_task_path, monkeypatch):
    original = LSNNAgent.evaluate_sequence

    def poisoned(self, net_input, state):
        policy = original(self, net_input, state)
        return policy._replace(value=policy.value * float("nan"))

    monkeypatch.setattr(LSNNAgent, "evaluate_sequence", poisoned)
    with pytest.raises(RunFailed, match="no checkpoint had been written yet"):
        train_run(tiny_task_path, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / CHECKPOINT).exists()
    assert "no checkpoint" in files.read_json(tmp_path / "run" / "run.json")["status"]


def test_run_json_follows_the_checkpoints_during_training(tmp_path, tiny_task_path, monkeypatch):
    import snn_icl.train.run_dir as runs

    clock = iter(range(0, 10**6, 3600))  # an hour per reading: a checkpoint after every iteration
    monkeypatch.setattr(runs.time, "monotonic", lambda: next(clock))
    run, on_disk = tmp_path / "run", []
    original = runs.save_checkpoint

    def spy(path, *args, **kwargs):  # what run.json says just before each checkpoint is written
        on_disk.append((kwargs["iteration"], files.read_json(run / "run.json")["checkpoint_iteration"]))
        original(path, *args, **kwargs)

    monkeypatch.setattr(runs, "save_checkpoint", spy)
    train_run(tiny_task_path, run, progress=False)
    assert on_disk == [(1, None), (2, 1), (3, 2), (3, 3)]  # every iteration, then the final one


def test_existing_run_is_not_overwritten(tmp_path, tiny_task_path):
    run = tmp_path / "run"
    train_run(tiny_task_path, run, progress=False, stop_after=1)
    before = (run / CHECKPOINT).read_bytes()
    result = CliRunner().invoke(app, ["train", str(tiny_task_path), "--out", str(run)])
    assert result.exit_code == 2 and "--resume" in result.output
    assert (run / CHECKPOINT).read_bytes() == before
    result = CliRunner().invoke(app, ["train", str(tiny_task_path), "--out", str(run), "--resume",
                                      "--seed", "3"])
    assert result.exit_code == 2 and "differs" in result.output


def test_checkpoint_of_another_model_is_refused(tmp_path, tiny_task, tiny_task_path):
    run = tmp_path / "run"
    train_run(tiny_task_path, run, progress=False, stop_after=1)
    bigger = replace(tiny_task, agent={"n_adaptive": tiny_task.agent.n_adaptive + 1})
    with pytest.raises(ValueError, match="another model"):
        load_into(run / CHECKPOINT, make_agent(bigger), bigger)
    with pytest.raises(ValueError, match="another model"):
        load_into(run / CHECKPOINT, make_agent(bigger))  # no config given: shapes decide
    not_ours = tmp_path / "x.safetensors"
    files.save_tensors(not_ours, {"w": torch.zeros(2)})
    with pytest.raises(ValueError, match="not an snn-icl checkpoint"):
        read_metadata(not_ours)
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="g.safetensors is not a safetensors file"):
        read_metadata(garbage)


def test_cli_train_smoke(tmp_path, tiny_task_path):
    run = tmp_path / "cli"
    result = CliRunner().invoke(app, ["train", str(tiny_task_path), "--out", str(run), "--stop-after", "2"])
    assert result.exit_code == 0, result.output
    assert "trained 2 iterations" in result.output and (run / CHECKPOINT).exists()
    assert files.read_json(run / "run.json")["status"] == "stopped"
    result = CliRunner().invoke(app, ["train", str(tiny_task_path), "--out", str(run), "--resume"])
    assert result.exit_code == 0, result.output
    assert "trained 3 iterations" in result.output


def test_sigterm_stops_training_after_the_iteration_with_a_checkpoint(tmp_path, tiny_task_path):
    """kill (or Slurm at a time limit) ends `snn-icl train` with a checkpoint of the last
    iteration, although the task's next timed checkpoint is an hour away; exit code 143. A
    SIGUSR1 before it prints where the run is (every thread's stack) and stops nothing."""
    import signal

    text = tiny_task_path.read_text()
    task = tmp_path / "long.toml"
    task.write_text(text.replace("iterations = 3", "iterations = 5000")
                    .replace("checkpoint_minutes = 0.01", "checkpoint_minutes = 60"))
    assert task.read_text() != text
    run = tmp_path / "run"
    code, err = signal_when(["train", str(task), "--out", str(run)],
                            lambda: (run / "metrics.csv").is_file() and len(_rows(run)) >= 3,
                            [signal.SIGUSR1, signal.SIGTERM])
    assert code == 143, err
    assert "most recent call first" in err and "Current thread" in err
    assert err.splitlines()[-1].startswith("stopped by SIGTERM after iteration")
    status = files.read_json(run / "run.json")
    n = len(_rows(run))
    assert status["status"] == "stopped" and status["stopped_by"] == "SIGTERM"
    assert status["iteration"] == status["checkpoint_iteration"] == n < 5000
    assert read_metadata(run / CHECKPOINT)["counters"]["iteration"] == n
    state = train_run(task, run, resume=True, stop_after=1, progress=False)
    assert state.iteration == n + 1 and len(_rows(run)) == n + 1


def test_release_copy_keeps_the_weights_and_drops_training_state(tmp_path, tiny_task_path):
    from snn_icl.storage.checkpoint import release_copy

    run = tmp_path / "run"
    train_run(tiny_task_path, run, progress=False, stop_after=1)
    dst = release_copy(run / CHECKPOINT, tmp_path / "release.safetensors")
    full, small = files.load_tensors(run / CHECKPOINT), files.load_tensors(dst)
    assert not any(k.startswith(("optim.", "rng.")) for k in small)
    assert {k for k in full if k.startswith("agent.")} == set(small)
    for key in small:
        assert torch.equal(full[key], small[key])
    assert read_metadata(dst)["counters"]["iteration"] == 1


def test_rate_regularisation_pulls_firing_towards_the_target(tiny_task):
    from snn_icl.train.ppo import collect, new_state, ppo_update

    def mean_rate(task, steps):
        state = new_state(task, make_agent(task))
        rates = []
        for _ in range(steps):
            stats = ppo_update(state, collect(state, task), task)
            state.iteration += 1
            rates.append(stats["rate_hz"])
        return rates

    free = replace(tiny_task, train={"rate_reg": 0.0, "lr": 1e-2, "epochs": 2})
    held = replace(tiny_task, train={"rate_reg": 100.0, "target_rate_hz": 5.0, "lr": 1e-2, "epochs": 2})
    r_free, r_held = mean_rate(free, 6), mean_rate(held, 6)
    assert r_held[-1] < 0.5 * r_held[0]
    assert r_held[-1] < r_free[-1]



def test_atlantis_trials_join_training_from_their_iteration(tiny_task, monkeypatch):
    from snn_icl.train import ppo

    seen = []

    def spy(agent, env, **kwargs):
        out = real(agent, env, **kwargs)
        seen.append((env.state.probe_trial.clone(), env.state.probe_steps.clone(), out))
        return out

    real = ppo.rollout
    monkeypatch.setattr(ppo, "rollout", spy)
    task = replace(tiny_task, train={"atlantis_fraction": [1.0, 0.5], "atlantis_max_delay": [7, 9],
                                     "atlantis_from_iteration": [1, 5]})
    assert task.train.atlantis_at(0) is None and task.train.atlantis_at(4) == (1.0, 7, 1)
    assert task.train.atlantis_at(5) == (0.5, 9, 1) and task.train.atlantis_at(10**6) == (0.5, 9, 1)
    state = ppo.new_state(task, make_agent(task))
    ppo.collect(state, task)
    state.iteration = 1
    ppo.collect(state, task)
    (probe0, _, out0), (probe1, steps1, out1) = seen
    assert torch.all(probe0 == -1)  # before its iteration: plain episodes
    assert torch.all((probe1 >= 1) & (probe1 <= 4)) and torch.all((steps1 >= 1) & (steps1 <= 7))
    assert out1.reward.shape == out0.reward.shape


def test_atlantis_min_delay_reaches_the_training_episodes(tiny_task, monkeypatch):
    from snn_icl.train import ppo

    seen = []
    real = ppo.rollout

    def spy(agent, env, **kwargs):
        out = real(agent, env, **kwargs)
        seen.append((env.state.probe_trial.clone(), env.state.probe_steps.clone()))
        return out

    monkeypatch.setattr(ppo, "rollout", spy)
    task = replace(tiny_task, train={"atlantis_fraction": [1.0], "atlantis_max_delay": [9],
                                     "atlantis_min_delay": [6]})
    assert task.train.atlantis_at(0) == (1.0, 9, 6)
    ppo.collect(ppo.new_state(task, make_agent(task)), task)
    ((probe, steps),) = seen
    assert torch.all(probe >= 1) and torch.all((steps >= 6) & (steps <= 9))


def test_atlantis_dwell_reward_reaches_training_from_its_stage_and_goals_count_escapes(
        tiny_task, monkeypatch):
    from snn_icl.episodes.measures import training_metrics
    from snn_icl.train import ppo

    seen = []
    real = ppo.rollout

    def spy(agent, env, **kwargs):
        seen.append(kwargs.get("dwell_reward"))
        return real(agent, env, **kwargs)

    monkeypatch.setattr(ppo, "rollout", spy)
    task = replace(tiny_task, train={"atlantis_fraction": [0.0, 1.0], "atlantis_max_delay": [9, 40],
                                     "atlantis_from_iteration": [0, 1], "atlantis_dwell_reward": [0.5]})
    assert task.train.atlantis_dwell_at(0) == 0.0 and task.train.atlantis_dwell_at(1) == 0.5
    state = ppo.new_state(task, make_agent(task))
    ppo.collect(state, task)
    state.iteration = 1
    batch = ppo.collect(state, task)
    assert seen == [None, 0.5]
    shaping = batch.reward - batch.escaped.to(batch.reward.dtype)
    assert torch.all(shaping >= 0) and set(shaping.unique().tolist()) <= {0.0, 0.5}
    metrics = training_metrics(ppo.behaviour(batch), task.env)
    assert metrics["goals_per_episode"] == pytest.approx(float(batch.escaped.sum(0).double().mean()))


def test_learning_rate_anneals_linearly_over_the_last_iterations(tmp_path, tiny_task, monkeypatch):
    from snn_icl.train import ppo

    task = replace(tiny_task, train={"iterations": 5, "lr": 1e-3, "lr_anneal_iterations": 2,
                                     "lr_final": 1e-4})
    assert [task.train.lr_at(i) for i in range(3)] == [1e-3] * 3
    assert task.train.lr_at(3) == pytest.approx(1e-3) and task.train.lr_at(4) == pytest.approx(5.5e-4)
    assert replace(tiny_task, train={"lr": 2e-3}).train.lr_at(10**6) == 2e-3  # default: constant
    used = []
    real_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    state = ppo.train(task, ppo.new_state(task, make_agent(task)), progress=False)
    steps = task.train.epochs * task.train.minibatches  # Adam steps per iteration
    assert state.iteration == 5
    assert used == pytest.approx([task.train.lr_at(i) for i in range(5) for _ in range(steps)])


def test_adamw_decays_weights_apart_from_the_gradient_and_adam_adds_l2(tiny_task):
    """With a zero loss, AdamW shrinks every weight by lr * lambda while Adam's L2 term is a
    gradient that Adam normalises, so each weight moves by about lr towards 0."""
    from snn_icl.train.ppo import new_state

    def one_step(optimizer):
        task = replace(tiny_task, train={"optimizer": optimizer, "weight_decay": 0.1,
                                         "lr": 1e-2})
        state = new_state(task, make_agent(task))
        w = next(p for p in state.agent.parameters() if p.dim() == 2)
        before = w.detach().clone()
        state.optimizer.zero_grad()
        (0.0 * sum(p.sum() for p in state.agent.parameters())).backward()
        state.optimizer.step()
        return before, w.detach()

    before, after = one_step("adamw")
    torch.testing.assert_close(after, before * (1 - 1e-2 * 0.1))
    before, after = one_step("adam")
    moved = (before - after)[before.abs() > 0.05]
    assert torch.allclose(moved.abs(), torch.full_like(moved, 1e-2), rtol=1e-2)
    assert moved.numel() > 10
    assert (moved.sign() == before[before.abs() > 0.05].sign()).all()


def test_unknown_optimizer_is_a_config_error(tiny_task):
    from snn_icl.config import ConfigError
    with pytest.raises(ConfigError, match="optimizer"):
        replace(tiny_task, train={"optimizer": "sgd"})


def test_beta_ramp_trains_each_iteration_at_its_share_and_resumes_exactly(tmp_path, tiny_task,
                                                                          tiny_task_path,
                                                                          monkeypatch):
    from snn_icl.models.lsnn import LSNN

    text = tiny_task_path.read_text().replace("[train]\n", "[train]\nbeta_ramp_iterations = 2\n"
                                              "snapshot_every = 1\n")
    ramped = tmp_path / "ramp.toml"
    ramped.write_text(text)
    set_to: list[float] = []
    original = LSNN.set_beta
    monkeypatch.setattr(LSNN, "set_beta", lambda net, b: (set_to.append(b), original(net, b)))
    state = train_run(ramped, tmp_path / "full", progress=False)
    beta = tiny_task.agent.beta
    # iterations 0, 1, 2 at 0, beta / 2, beta; then the task's beta, as a checkpoint loads it
    assert set_to == pytest.approx([0.0, beta / 2, beta, beta])
    assert state.agent.net.params.beta == beta
    # each snapshot loads as the network its weights were last trained as
    for it, trained_at in ((1, 0.0), (2, beta / 2), (3, beta)):
        snap, snap_task, _ = load_agent(tmp_path / "full" / "snapshots" / f"iteration_{it:06d}.safetensors")
        assert snap.net.params.beta == pytest.approx(trained_at)
        assert snap_task.agent.beta == pytest.approx(trained_at)
    split = tmp_path / "split"
    train_run(ramped, split, progress=False, stop_after=1)
    train_run(ramped, split, progress=False, resume=True)
    plain = tmp_path / "plain"
    train_run(tiny_task_path, plain, progress=False)
    a, b, c = (files.load_tensors(r / CHECKPOINT) for r in (tmp_path / "full", split, plain))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["agent.net.w_rec"], c["agent.net.w_rec"])
