import pytest
import torch

from snn_icl.models.lsnn_agent import LSNNAgent, LSNNConfig


def _agent(**kw):
    torch.manual_seed(0)
    cfg = LSNNConfig(n_regular=6, n_adaptive=6, ms_per_step=3, input_scale=3.0, **kw)
    agent = LSNNAgent(7, cfg).double()
    return agent


@pytest.mark.parametrize("mode", ["current", "poisson"])
def test_sequence_replay_equals_stepwise_acting(mode):
    agent = _agent(input_mode=mode, max_rate_hz=400.0)
    gen = torch.Generator().manual_seed(1)
    obs = torch.rand(25, 4, 7, generator=gen, dtype=torch.float64)
    state, means, values, inputs = agent.initial_state(4), [], [], []
    spikes = 0.0
    for t in range(25):
        out = agent.act(obs[t], state, generator=gen, record=True)
        state = out.state
        means.append(out.policy.mean)
        values.append(out.policy.value)
        inputs.append(out.net_input)
        spikes += out.trace.z.sum().item()
    assert spikes > 0, "network silent: the comparison would be vacuous"
    replay = agent.evaluate_sequence(torch.stack(inputs), None)
    torch.testing.assert_close(replay.mean, torch.stack(means), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(replay.value, torch.stack(values), rtol=1e-10, atol=1e-12)


def test_sequence_replay_continues_from_a_state():
    agent = _agent()
    obs = torch.rand(10, 2, 7, dtype=torch.float64)
    state = agent.initial_state(2)
    inputs, means = [], []
    for t in range(10):
        out = agent.act(obs[t], state)
        state = out.state
        if t == 4:
            mid = state
        if t > 4:
            inputs.append(out.net_input)
            means.append(out.policy.mean)
    replay = agent.evaluate_sequence(torch.stack(inputs), mid)
    torch.testing.assert_close(replay.mean, torch.stack(means), rtol=1e-10, atol=1e-12)


def test_poisson_input_rate():
    agent = _agent(input_mode="poisson", max_rate_hz=200.0)
    obs = torch.full((2000, 7), 0.5, dtype=torch.float64)
    x = agent.encode(obs, torch.Generator().manual_seed(0))
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert x.mean().item() == pytest.approx(0.5 * 0.2, abs=0.005)


def test_reset_state_clears_only_masked_episodes():
    agent = _agent()
    state = agent.initial_state(3)
    for _ in range(5):
        state = agent.act(torch.rand(3, 7, dtype=torch.float64), state).state
    assert all(t[0].abs().sum() > 0 for t in (state.neurons.v, state.zeta))
    reset = agent.reset_state(state, torch.tensor([True, False, True]))
    for before, after in zip((*state.neurons, state.zeta), (*reset.neurons, reset.zeta)):
        assert torch.equal(after[1], before[1])
        assert (after[[0, 2]] == 0).all()


def test_gradients_reach_every_parameter():
    agent = _agent()
    obs = torch.rand(12, 3, 7, dtype=torch.float64)
    inputs = torch.stack([agent.encode(o) for o in obs])
    policy = agent.evaluate_sequence(inputs, None)
    (policy.mean.sum() + policy.value.sum() + policy.log_std.sum()).backward()
    for name, p in agent.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_arguments():
    with pytest.raises(ValueError, match="input_mode"):
        LSNNConfig(n_regular=2, n_adaptive=2, input_mode="rate")
    with pytest.raises(ValueError, match="ms_per_step"):
        LSNNConfig(n_regular=2, n_adaptive=2, ms_per_step=0)
    with pytest.raises(ValueError, match="tau_m_ms"):
        LSNNConfig(tau_m=0.0)


def test_lstm_agent_replay_equals_stepwise_acting():
    from snn_icl.models.lstm import LSTMAgent

    torch.manual_seed(0)
    agent = LSTMAgent(7, 16).double()
    obs = torch.rand(20, 3, 7, dtype=torch.float64)
    state, means, values = agent.initial_state(3), [], []
    for t in range(20):
        out = agent.act(obs[t], state)
        state = out.state
        means.append(out.policy.mean)
        values.append(out.policy.value)
    replay = agent.evaluate_sequence(obs, None)
    torch.testing.assert_close(replay.mean, torch.stack(means), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(replay.value, torch.stack(values), rtol=1e-10, atol=1e-12)
    reset = agent.reset_state(state, torch.tensor([False, True, False]))
    assert (reset.h[1] == 0).all() and torch.equal(reset.c[0], state.c[0])
