"""The LSNN agent: observation encoding, the spiking network, a filtered-spike readout and heads.

Per env step the observation is held for ``ms_per_step`` 1-ms network steps (as a current, or as
Poisson spikes), the LSNN runs, and the heads read the low-pass filtered spikes at the last ms:

    zeta_t = kappa * zeta_{t-1} + (1 - kappa) * z_t,      kappa = exp(-dt / tau_out)
    mean = zeta W_mu + b_mu,   value = zeta w_v + b_v,    log_std: a free parameter [2]

The network state (v, a, z, r) and zeta carry over between trials of an episode: that is where
one-shot memory has to live, since the weights are frozen at test time.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from snn_icl.models.agent import ActOutput, PolicyOutput, add_policy_heads, read_heads
from snn_icl.models.lsnn import LSNN


class LSNNAgentState(NamedTuple):
    neurons: Any
    """The LSNN state (v, a, z, r), each [B, n]."""
    zeta: Tensor
    """Filtered spikes [B, n] read by the heads."""


class LSNNAgentTrace(NamedTuple):
    """Recordings of one env step, each [ms_per_step, B, n]."""

    z: Tensor
    v: Tensor
    A: Tensor


class LSNNAgent(nn.Module):
    """Gaussian policy and value heads on a recurrent spiking network of adaptive neurons.

    Args:
        obs_dim: observation size (place cells + contact + previous reward).
        n_regular, n_adaptive: population sizes; neurons ordered regular first.
        ms_per_step: network steps (1 ms each) per env step.
        input_mode: "current" (obs * input_scale held constant) or "poisson"
            (Bernoulli spikes with probability obs * max_rate_hz * 1 ms).
        tau_out: readout filter time constant (ms).
        init_log_std: initial policy log standard deviation.
        neuron: keyword arguments of :class:`~snn_icl.models.lsnn.LSNN`
            (tau_m, tau_a, v_th, beta, n_ref, gamma, backend).
    """

    def __init__(self, obs_dim: int, n_regular: int, n_adaptive: int, *, ms_per_step: int = 5,
                 input_mode: str = "current", input_scale: float = 1.0,
                 max_rate_hz: float = 200.0, tau_out: float = 20.0, init_log_std: float = -0.5,
                 **neuron: Any) -> None:
        super().__init__()
        if input_mode not in ("current", "poisson"):
            raise ValueError(f"input_mode must be 'current' or 'poisson', got {input_mode!r}")
        if ms_per_step < 1:
            raise ValueError(f"ms_per_step must be >= 1, got {ms_per_step!r}")
        self.obs_dim = obs_dim
        self.ms_per_step = ms_per_step
        self.input_mode = input_mode
        self.input_scale = input_scale
        self.spike_prob = max_rate_hz * 1e-3
        self.kappa = math.exp(-1.0 / tau_out)
        self.net = LSNN(obs_dim, n_regular, n_adaptive, **neuron)
        n = n_regular + n_adaptive
        self.n_regular, self.n_adaptive = n_regular, n_adaptive
        add_policy_heads(self, n, init_log_std)

    @classmethod
    def from_config(cls, obs_dim: int, cfg: Any) -> "LSNNAgent":
        """Build from an :class:`snn_icl.config.AgentConfig`."""
        return cls(obs_dim, cfg.n_regular, cfg.n_adaptive, ms_per_step=cfg.ms_per_step,
                   input_mode=cfg.input_mode, input_scale=cfg.input_scale,
                   max_rate_hz=cfg.max_rate_hz, tau_out=cfg.tau_out,
                   init_log_std=cfg.init_log_std, tau_m=cfg.tau_m, tau_a=cfg.tau_a,
                   v_th=cfg.v_th, beta=cfg.beta, n_ref=cfg.n_ref, gamma=cfg.gamma,
                   backend=cfg.backend)

    @property
    def n(self) -> int:
        return self.n_regular + self.n_adaptive

    def _like(self) -> Tensor:
        return self.net.w_in

    def initial_state(self, batch: int) -> LSNNAgentState:
        w = self._like()
        return LSNNAgentState(self.net.initial_state(batch, device=w.device, dtype=w.dtype),
                              torch.zeros(batch, self.n, device=w.device, dtype=w.dtype))

    def encode(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Observation [B, obs_dim] -> network input [ms_per_step, B, obs_dim]."""
        obs = obs.to(self._like())
        x = obs.unsqueeze(0).expand(self.ms_per_step, *obs.shape)
        if self.input_mode == "current":
            return x * self.input_scale
        p = (x * self.spike_prob).clamp(0.0, 1.0)
        return (torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device) < p).to(p)

    def _readout_weights(self, like: Tensor) -> Tensor:
        """Weights [k] of each ms's spikes in zeta at the last ms of an env step."""
        k = self.ms_per_step
        powers = torch.arange(k - 1, -1, -1, dtype=like.dtype, device=like.device)
        return (1.0 - self.kappa) * self.kappa ** powers

    def act(self, obs: Tensor, state: LSNNAgentState | None, *,
            generator: torch.Generator | None = None, record: bool = False) -> ActOutput:
        """One env step: obs [B, obs_dim] -> policy [B], new state, input [B, k, obs_dim]."""
        if state is None:
            state = self.initial_state(obs.shape[0])
        x = self.encode(obs, generator)
        out = self.net(x, state.neurons, record=record)
        z, neurons = out[0], out[1]
        w = self._readout_weights(z)
        zeta = self.kappa ** self.ms_per_step * state.zeta + torch.einsum("k,kbn->bn", w, z)
        trace = LSNNAgentTrace(z, out[2].v, out[2].A) if record else None
        return ActOutput(read_heads(self, zeta), LSNNAgentState(neurons, zeta), x.transpose(0, 1), trace)

    def evaluate_sequence(self, net_input: Tensor, state: LSNNAgentState | None) -> PolicyOutput:
        """Re-run an episode in one call: net_input [T_env, B, k, obs_dim] -> policy [T_env, B].

        The readout recurrence zeta_j = c * zeta_{j-1} + s_j (c = kappa^k, s_j the filtered
        spikes of env step j) is evaluated as one lower-triangular matmul instead of a loop.
        """
        t_env, batch, k = net_input.shape[:3]
        if state is None:
            state = self.initial_state(batch)
        x = net_input.transpose(1, 2).reshape(t_env * k, batch, -1)  # time-major, 1 ms per row
        z, _ = self.net(x, state.neurons)
        s = torch.einsum("k,tkbn->tbn", self._readout_weights(z), z.view(t_env, k, batch, -1))
        c = self.kappa ** k
        idx = torch.arange(t_env, device=z.device)
        lag = (idx[:, None] - idx[None, :]).to(z.dtype)
        decay = torch.where(lag >= 0, c ** lag.clamp(min=0), torch.zeros_like(lag))
        zeta = torch.einsum("jm,mbn->jbn", decay, s)
        zeta = zeta + (c ** (idx.to(z.dtype) + 1))[:, None, None] * state.zeta
        return read_heads(self, zeta)._replace(rate=z.mean(dim=(0, 1)))

    def reset_state(self, state: LSNNAgentState, mask: Tensor) -> LSNNAgentState:
        """Zero every state variable of the episodes where mask [B] is True."""
        keep = (~mask).to(state.zeta.dtype).unsqueeze(-1)
        neurons = type(state.neurons)(*(t * keep.to(t.dtype) for t in state.neurons))
        return LSNNAgentState(neurons, state.zeta * keep)
