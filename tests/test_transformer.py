import tomllib

import pytest
import torch

from snn_icl.storage import files
from snn_icl.config import ConfigError, load_task, task_from_dict
from snn_icl.models import TransformerConfig, build_agent
from snn_icl.models.transformer import TransformerAgent

OBS = 7


def _agent(window: int = 64, max_steps: int = 40, **kw) -> TransformerAgent:
    torch.manual_seed(0)
    agent = TransformerAgent(OBS, max_steps, n_layer=2, n_head=2, n_embd=8, context_window=window,
                             **kw).double()
    # Larger than the GPT-2 init, so attention weights are far from uniform and the mean head
    # reads more than noise: differences the tests look for are not washed out.
    with torch.no_grad():
        for p in agent.parameters():
            p.mul_(20.0)
    return agent


def _obs(T: int, B: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(T, B, OBS, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _act_all(agent, obs, state):
    means, values = [], []
    for x in obs:
        out = agent.act(x, state)
        state = out.state
        means.append(out.policy.mean)
        values.append(out.policy.value)
    return torch.stack(means), torch.stack(values), state


@pytest.mark.parametrize("window", [64, 30, 7])
def test_cached_acting_equals_full_sequence(window):
    agent = _agent(window)
    obs = _obs(30, 3)
    state = agent.initial_state(3)
    means, values, kept = [], [], []
    for t in range(30):
        out = agent.act(obs[t], state, record=True)
        state = out.state
        means.append(out.policy.mean)
        values.append(out.policy.value)
        kept.append(state.k.shape[3])
        n_keys = out.trace.attention.shape[-1]
        assert out.trace.attention.shape == (2, 3, 2, n_keys) and n_keys == min(t + 1, window)
        ones = torch.ones(2, 3, 2, dtype=torch.float64)
        torch.testing.assert_close(out.trace.attention.sum(-1), ones)
        assert out.trace.key_steps.tolist() == list(range(t + 1 - n_keys, t + 1))
        assert torch.equal(out.net_input, obs[t])
    assert max(kept) == min(window - 1, 30), "the cache holds the last W - 1 tokens"
    replay = agent.evaluate_sequence(obs, None)
    assert replay.mean.shape == (30, 3, 2) and replay.value.shape == (30, 3)
    torch.testing.assert_close(replay.mean, torch.stack(means), rtol=0, atol=1e-10)
    torch.testing.assert_close(replay.value, torch.stack(values), rtol=0, atol=1e-10)
    # the window matters: full attention gives other outputs once the sequence is longer than W
    if window < 30:
        full = _agent(64).evaluate_sequence(obs, None)
        assert not torch.allclose(full.mean[window:], replay.mean[window:], atol=1e-6)
        torch.testing.assert_close(full.mean[:window], replay.mean[:window], rtol=0, atol=1e-10)


@pytest.mark.parametrize("window", [64, 7])
def test_acting_without_autograd_matches_and_keeps_earlier_states(window):
    """The rollout acts under no_grad, where every layer's keys go into one buffer per step; it
    must give the autograd path's numbers exactly, and never write into an earlier state."""
    agent = _agent(window)
    obs = _obs(20, 3)
    reset = torch.tensor([True, False, True])
    runs = []
    for grad in (True, False):
        state, states, means = agent.initial_state(3), [], []
        with torch.set_grad_enabled(grad):
            for t in range(20):
                if t == 9:
                    state = agent.reset_state(state, reset)
                out = agent.act(obs[t], state)
                state = out.state
                states.append((state.k.clone(), state.v.clone(), state))
                means.append(out.policy.mean.detach())
        runs.append((torch.stack(means), states))
    (grad_means, grad_states), (buf_means, buf_states) = runs
    assert torch.equal(grad_means, buf_means)
    for (gk, gv, _), (bk, bv, st) in zip(grad_states, buf_states):
        assert torch.equal(gk, bk) and torch.equal(gv, bv)
        assert torch.equal(st.k, bk) and torch.equal(st.v, bv), "a later step wrote into it"
    assert buf_states[-1][0].shape[3] == min(window - 1, 20)


def test_sequence_continues_from_a_cached_state():
    agent = _agent(window=5)
    obs = _obs(20, 2)
    means, values, _ = _act_all(agent, obs, agent.initial_state(2))
    _, _, mid = _act_all(agent, obs[:8], agent.initial_state(2))
    assert mid.t == 8 and mid.k.shape[3] == 4
    replay = agent.evaluate_sequence(obs[8:], mid)
    torch.testing.assert_close(replay.mean, means[8:], rtol=0, atol=1e-10)
    torch.testing.assert_close(replay.value, values[8:], rtol=0, atol=1e-10)


@pytest.mark.parametrize("window", [1, 3])
def test_window_limits_what_a_step_sees(window):
    # Each layer looks back W - 1 tokens, so through n_layer = 2 layers step t sees steps
    # t - 2 (W - 1) .. t; W = 1 makes every step depend on its own token only.
    agent = _agent(window)
    obs = _obs(12, 2)
    t, reach = 9, 2 * (window - 1)
    base = agent.evaluate_sequence(obs, None).mean
    for s in range(t + 1):
        changed = obs.clone()
        changed[s] += 0.5
        out = agent.evaluate_sequence(changed, None).mean
        if s < t - reach:
            torch.testing.assert_close(out[t], base[t], rtol=0, atol=1e-12)
        else:
            assert (out[t] - base[t]).abs().max() > 1e-6, f"step {t} ignores step {s}"
    # acting one step at a time sees the same
    means, _, _ = _act_all(agent, obs, agent.initial_state(2))
    torch.testing.assert_close(means, base, rtol=0, atol=1e-10)


@pytest.mark.parametrize("window", [64, 4])
def test_reset_state_starts_masked_episodes_afresh(window):
    agent = _agent(window)
    before, after = _obs(10, 3, seed=1), _obs(10, 3, seed=2)
    _, _, state = _act_all(agent, before, agent.initial_state(3))
    kept_means, kept_values, _ = _act_all(agent, after, state)
    reset = agent.reset_state(state, torch.tensor([True, False, True]))
    assert reset.t == state.t == 10
    means, values, _ = _act_all(agent, after, reset)
    fresh_means, fresh_values, _ = _act_all(agent, after, agent.initial_state(3, step=10))
    for b in (0, 2):  # forgot everything before step 10, positions kept counting
        torch.testing.assert_close(means[:, b], fresh_means[:, b], rtol=0, atol=1e-10)
        torch.testing.assert_close(values[:, b], fresh_values[:, b], rtol=0, atol=1e-10)
        assert (means[0, b] - kept_means[0, b]).abs().max() > 1e-6, "the reset changed nothing"
    assert torch.equal(means[:, 1], kept_means[:, 1])
    assert torch.equal(values[:, 1], kept_values[:, 1])
    # the full-sequence forward applies the same reset when continuing from that state
    replay = agent.evaluate_sequence(after, reset)
    torch.testing.assert_close(replay.mean, means, rtol=0, atol=1e-10)


def test_gradients_reach_every_parameter():
    agent = _agent(window=4, max_steps=12)
    policy = agent.evaluate_sequence(_obs(12, 3), None)
    (policy.mean.sum() + policy.value.sum() + policy.log_std.sum()).backward()
    for name, p in agent.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        if name == "pos.weight":
            assert (p.grad.abs().sum(-1) > 0).all(), "a position embedding row got no gradient"


def test_episode_longer_than_the_position_table_is_refused():
    agent = _agent(max_steps=10)
    with pytest.raises(ValueError, match="max_steps = 10"):
        agent.evaluate_sequence(_obs(11, 1), None)
    _, _, state = _act_all(agent, _obs(10, 1), agent.initial_state(1))
    with pytest.raises(ValueError, match="max_steps"):
        agent.act(_obs(1, 1)[0], state)


def test_config_validation_and_build():
    with pytest.raises(ValueError, match="n_embd must be divisible by n_head"):
        TransformerConfig(n_embd=10, n_head=4)
    with pytest.raises(ConfigError, match=r"\[agent\].*n_embd"):
        task_from_dict({"agent": {"kind": "transformer", "n_embd": 10, "n_head": 4}})
    with pytest.raises(ConfigError, match="context_window must be >= 1"):
        task_from_dict({"agent": {"kind": "transformer", "context_window": 0}})
    with pytest.raises(ConfigError, match="n_layer must be an integer"):
        task_from_dict({"agent": {"kind": "transformer", "n_layer": 1.5}})
    with pytest.raises(ConfigError, match="'n_regular' belongs to agent kind 'lsnn'"):
        task_from_dict({"agent": {"kind": "transformer", "n_regular": 4}})
    cfg = TransformerConfig(n_layer=1, n_head=2, n_embd=6, context_window=3)
    agent = build_agent(cfg, OBS, 9)
    assert isinstance(agent, TransformerAgent)
    assert (agent.n_layer, agent.n_head, agent.n_embd, agent.context_window) == (1, 2, 6, 3)
    assert agent.pos.weight.shape == (9, 6)


def test_shipped_task_file(tiny_task_path):
    TASKS = tiny_task_path.parent
    task = load_task(TASKS / "water_maze_transformer.toml")
    lstm = load_task(TASKS / "water_maze_lstm.toml")
    assert task.agent.kind == "transformer"
    assert (task.agent.n_layer, task.agent.n_head, task.agent.n_embd) == (4, 4, 64)
    assert task.agent.context_window >= task.env.episode_steps
    assert (task.env, task.train, task.eval) == (lstm.env, lstm.train, lstm.eval)
    assert task.seed == lstm.seed


def test_trainer_smoke_checkpoint_and_evaluation(tmp_path, tiny_task_path):
    from snn_icl.storage.checkpoint import load_agent
    from snn_icl.experiments.evaluate import evaluate
    from snn_icl.train.run_dir import CHECKPOINT, train_run

    data = tomllib.loads(tiny_task_path.read_text())
    data["agent"] = {"kind": "transformer", "n_layer": 1, "n_head": 2, "n_embd": 8,
                     "context_window": 12}
    data["train"]["threads"] = 1
    path = files.write_toml(tmp_path / "tiny_transformer.toml", data)
    state = train_run(path, tmp_path / "run", progress=False)
    assert state.iteration == load_task(path).train.iterations

    agent, task, counters = load_agent(tmp_path / "run" / CHECKPOINT)
    assert isinstance(agent, TransformerAgent) and counters["iteration"] == state.iteration
    assert agent.pos.weight.shape[0] == task.env.episode_steps
    for (name, p), q in zip(agent.named_parameters(), state.agent.parameters()):
        assert torch.equal(p, q), name

    resets = []
    reset_state = agent.reset_state
    agent.reset_state = lambda s, mask: resets.append(int(mask.sum())) or reset_state(s, mask)
    result = evaluate(agent, task, episodes=4, seed=0, progress=False)
    assert sum(resets) > 0, "the no-memory control never reset the attention memory"
    assert result["weights_sha256"]["before"] == result["weights_sha256"]["after"]
    assert "control_no_memory" in result and result["episodes"] == 4
