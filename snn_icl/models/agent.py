"""The agent interface shared by the LSNN and the baselines.

An agent maps one observation per env step to a Gaussian policy over the 2-D swim velocity and a
value estimate, carrying a recurrent state (spiking-network state, LSTM cell, attention cache)
across the whole episode. Trainers, evaluation and the CLI talk to agents only through this
protocol, so a new agent kind plugs in without touching them.

Acting is one env step at a time (closed loop with the env); training re-evaluates a whole
recorded episode at once with ``evaluate_sequence``, given the exact network inputs that acting
consumed (``ActOutput.net_input``), so stochastic input encodings are replayed, not re-drawn.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn


class PolicyOutput(NamedTuple):
    """Policy and value heads. Leading dims are [B] when acting, [T, B] over a sequence."""

    mean: Tensor
    """Mean swim velocity [..., 2] (action units; the env clamps to [-1, 1])."""
    log_std: Tensor
    """Log standard deviation [2] (shared across steps and episodes)."""
    value: Tensor
    """State value [...] (discounted return, reward units)."""
    rate: Tensor | None = None
    """Mean firing probability per 1-ms step of each neuron [n] over the sequence (spiking
    agents, from ``evaluate_sequence``): what firing-rate regularisation acts on."""


class ActOutput(NamedTuple):
    policy: PolicyOutput
    state: Any
    """The agent's recurrent state after this step."""
    net_input: Tensor
    """What the network consumed this step, batch first (LSNN: input currents or spikes
    [B, k, n_in]); stacked over steps it is [T, B, ...], the input of ``evaluate_sequence``."""
    trace: Any = None
    """Neural recordings of this step when ``record=True`` (agent-specific NamedTuple)."""


class Agent(Protocol):
    obs_dim: int

    def initial_state(self, batch: int) -> Any:
        """The state at the start of an episode (all zero for the LSNN)."""

    def act(self, obs: Tensor, state: Any, *, generator: torch.Generator | None = None,
            record: bool = False) -> ActOutput:
        """One env step: obs [B, obs_dim] -> policy [B]."""

    def evaluate_sequence(self, net_input: Tensor, state: Any) -> PolicyOutput:
        """Re-run a recorded episode: stacked ``net_input`` [T_env, B, ...] -> policy [T_env, B]."""

    def reset_state(self, state: Any, mask: Tensor) -> Any:
        """Reset the state of the episodes where ``mask`` [B] is True (no-memory control)."""


def gaussian_log_prob(policy: PolicyOutput, action: Tensor) -> Tensor:
    """Log-density of ``action`` [..., 2] under the diagonal Gaussian policy -> [...]."""
    std = policy.log_std.exp()
    z = (action - policy.mean) / std
    return (-0.5 * z.pow(2) - policy.log_std - 0.5 * torch.log(torch.tensor(2 * torch.pi))).sum(-1)


def gaussian_entropy(policy: PolicyOutput) -> Tensor:
    """Entropy of the diagonal Gaussian policy (nats), a scalar."""
    return (policy.log_std + 0.5 * (1.0 + torch.log(torch.tensor(2 * torch.pi)))).sum()


def sample_action(policy: PolicyOutput, generator: torch.Generator | None,
                  deterministic: bool = False) -> Tensor:
    """Draw a swim velocity [B, 2]; ``deterministic`` returns the mean."""
    if deterministic:
        return policy.mean
    noise = torch.randn(policy.mean.shape, generator=generator, dtype=policy.mean.dtype,
                        device=policy.mean.device)
    return policy.mean + policy.log_std.exp() * noise


def add_policy_heads(agent: nn.Module, n_features: int, init_log_std: float) -> None:
    """Give ``agent`` the linear heads every agent reads its features with: ``mean_head``
    (2 velocity means), ``value_head`` (1 value) and a free ``log_std`` [2]. The mean head starts
    small, so an untrained agent is a near zero-mean random swimmer."""
    agent.mean_head = nn.Linear(n_features, 2)
    agent.value_head = nn.Linear(n_features, 1)
    agent.log_std = nn.Parameter(torch.full((2,), float(init_log_std)))
    nn.init.normal_(agent.mean_head.weight, std=0.01)
    nn.init.zeros_(agent.mean_head.bias)


def read_heads(agent: nn.Module, features: Tensor) -> PolicyOutput:
    """Apply the heads of :func:`add_policy_heads` to features [..., n_features]."""
    return PolicyOutput(agent.mean_head(features), agent.log_std,
                        agent.value_head(features).squeeze(-1))
