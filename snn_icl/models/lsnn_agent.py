"""The LSNN agent: observation encoding, the spiking network, a filtered-spike readout and heads.

Per env step the observation is held for ``ms_per_step`` 1-ms network steps (as a current, or as
Poisson spikes), the LSNN runs, and the heads read the low-pass filtered spikes at the last ms:

    zeta_t = kappa * zeta_{t-1} + (1 - kappa) * z_t,      kappa = exp(-dt / tau_out)
    mean = zeta W_mu + b_mu,   value = zeta w_v + b_v,    log_std: a free parameter [2]

The network state (v, a, z, r) and zeta carry over between trials of an episode: that is where
one-shot memory has to live, since the weights are frozen at test time.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn

from snn_icl.models.agent import (INTACT, Ablation, ActOutput, AnalysisView, PolicyOutput,
                                  add_policy_heads, check_component, check_value, read_heads, register_agent,
                                  random_like, zero_by_copy)
from snn_icl.models.lsnn import LSNN
from snn_icl.models.lsnn_config import LSNNNetworkConfig



@dataclass(frozen=True)
class LSNNConfig(LSNNNetworkConfig):
    """The ``[agent]`` table of ``kind = "lsnn"``: sizes and neuron parameters (ms, shared with
    the sequence predictor: :class:`~snn_icl.models.lsnn_config.LSNNNetworkConfig`) and how
    observations enter the network. Neuron defaults are :class:`~snn_icl.neurons.alif.ALIFParams`'."""

    kind: Literal["lsnn"] = "lsnn"
    backend: Literal["bellec", "norse"] = "bellec"
    """Neuron dynamics: Bellec et al. 2018 (default) or norse's LSNN cell."""
    ms_per_step: int = 5
    """1-ms network steps per env step (the observation is held for this long)."""
    input_mode: Literal["current", "poisson"] = "current"
    """Observation as a constant current (times ``input_scale``), or as Poisson spikes with rate
    obs * max_rate_hz."""
    max_rate_hz: float = 200.0
    """Input rate of a fully active channel (input_mode = poisson), Hz."""
    init_log_std: float = -0.5
    """Initial log standard deviation of the Gaussian policy (action units)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_value(self.max_rate_hz > 0, "max_rate_hz", "must be > 0", self.max_rate_hz)
        check_value(self.ms_per_step >= 1, "ms_per_step", "must be >= 1", self.ms_per_step)
        check_value(self.input_mode in ("current", "poisson"), "input_mode",
                    "must be 'current' or 'poisson'", self.input_mode)
        check_value(self.backend in ("bellec", "norse"), "backend", "must be 'bellec' or 'norse'",
                    self.backend)
        check_value(self.max_rate_hz * 1e-3 <= 1.0, "max_rate_hz",
               "must be <= 1000 (at most one spike per 1-ms step)", self.max_rate_hz)

    def raster_kwargs(self) -> dict[str, Any]:
        """What a raster of this network needs besides the spikes (viz.plots.plot_raster)."""
        return {"n_regular": self.n_regular, "ms_per_step": self.ms_per_step, "v_th": self.v_th}

    def floats_per_step(self, obs_dim: int, episode_steps: int) -> float:
        """Floats a training iteration holds per episode and env step (the BPTT keeps spikes,
        voltages and their gradients per ms; the rollout keeps the inputs)."""
        return self.ms_per_step * (6 * self.n + obs_dim)

    def weight_floats(self, obs_dim: int, episode_steps: int) -> float:
        """Trained parameters: input and recurrent weights, heads."""
        return self.n * (obs_dim + self.n + 3)



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


@register_agent
class LSNNAgent(nn.Module):
    """Gaussian policy and value heads on a recurrent spiking network of adaptive neurons.

    Args:
        obs_dim: observation size (place cells + contact + previous reward).
        cfg: :class:`LSNNConfig` (sizes, neuron parameters, ``ms_per_step`` network steps of
            1 ms per env step, ``input_mode`` "current" (obs * input_scale held constant) or
            "poisson" (Bernoulli spikes with probability obs * max_rate_hz * 1 ms), ``tau_out``
            the readout filter (ms), ``init_log_std``).
    """

    kind: ClassVar[str] = "lsnn"
    config_class: ClassVar[type] = LSNNConfig
    spiking: ClassVar[bool] = True
    components: ClassVar[tuple[str, ...]] = ("a", "v", "z", "r", "zeta")
    decoded: ClassVar[tuple[str, ...]] = ("a", "v", "zeta")
    ablations: ClassVar[tuple[Ablation, ...]] = (
        INTACT,
        Ablation("no_memory", "whole state reset at each trial start", no_memory=True),
        Ablation("reset_a", "adaptation a reset at each trial start", reset=("a",)),
        Ablation("reset_v_z", "v, z, refractory and zeta reset at each trial start, a kept",
                 reset=("v", "z", "r", "zeta")),
        Ablation("beta_zero", "beta = 0: no threshold adaptation at test", beta_zero=True),
        Ablation("swap_a", "a from the partner episode at the start of trial 2", swap=("a",)),
        Ablation("swap_v_z", "v, z, refractory, zeta from the partner (own a kept)",
                 swap=("v", "z", "r", "zeta")),
        Ablation("swap_all", "whole state from the partner", swap=("a", "v", "z", "r", "zeta")),
    )
    main_swaps: ClassVar[tuple[str, ...]] = ("swap_a", "swap_v_z")
    input_weights: ClassVar[dict[str, int]] = {"net.w_in": 0}
    position_table: ClassVar[str | None] = None

    def __init__(self, obs_dim: int, cfg: LSNNConfig | None = None) -> None:
        super().__init__()
        cfg = LSNNConfig() if cfg is None else cfg
        self.cfg = cfg
        self.obs_dim = obs_dim
        self.ms_per_step = cfg.ms_per_step
        self.input_mode = cfg.input_mode
        self.input_scale = cfg.input_scale
        self.spike_prob = cfg.max_rate_hz * 1e-3
        self.kappa = math.exp(-1.0 / cfg.tau_out)
        self.net = LSNN(obs_dim, cfg.n_regular, cfg.n_adaptive, cfg.neuron_params(),
                        backend=cfg.backend)
        self.n_regular, self.n_adaptive = cfg.n_regular, cfg.n_adaptive
        add_policy_heads(self, cfg.n, cfg.init_log_std)

    @classmethod
    def from_config(cls, cfg: LSNNConfig, obs_dim: int, episode_steps: int) -> "LSNNAgent":
        return cls(obs_dim, cfg)

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
        return (random_like("rand", p, generator) < p).to(p)

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
        by_step = z.view(t_env, k, batch, -1).mean(dim=1)
        return read_heads(self, zeta)._replace(rate=by_step.mean(dim=(0, 1)), rate_by_step=by_step)

    def reset_state(self, state: LSNNAgentState, mask: Tensor) -> LSNNAgentState:
        """Put the episodes where mask [B] is True back in the initial state (all zero for the
        bellec backend; norse's threshold b goes back to v_th, not to 0)."""
        fresh = self.initial_state(mask.shape[0])
        m = mask.to(state.zeta.device).unsqueeze(-1)
        neurons = type(state.neurons)(*(torch.where(m, f, t)
                                        for t, f in zip(state.neurons, fresh.neurons)))
        return LSNNAgentState(neurons, torch.where(m, fresh.zeta, state.zeta))

    # ------------------------------------------------------------------ what analyses read
    def _check_bellec(self, state: LSNNAgentState) -> None:
        if not hasattr(state.neurons, "r"):
            raise ValueError("state analyses need the 'bellec' LSNN backend (ALIF state v, a, z, r)")

    def get_component(self, state: LSNNAgentState, name: str) -> Tensor:
        """``zeta`` or a field of the ALIF state (``a``, ``v``, ``z``, ``r``), each [B, n]."""
        check_component(self, name)
        self._check_bellec(state)
        return state.zeta if name == "zeta" else getattr(state.neurons, name)

    def with_component(self, state: LSNNAgentState, name: str, value: Tensor) -> LSNNAgentState:
        check_component(self, name)
        self._check_bellec(state)
        if name == "zeta":
            return state._replace(zeta=value)
        return state._replace(neurons=state.neurons._replace(**{name: value}))

    def zero_component(self, state: LSNNAgentState, name: str, rows: Tensor) -> LSNNAgentState:
        return zero_by_copy(self, state, name, rows)

    def memory_horizon(self) -> dict[str, float]:
        """The adaptation time constant in env steps, ``tau_a / ms_per_step``; none when no
        threshold adapts (``beta`` = 0 or no adaptive neurons: ``a`` moves nothing)."""
        if self.net.params.beta == 0 or self.n_adaptive == 0:
            return {}
        return {"tau_a": self.net.params.tau_a_ms / self.ms_per_step}

    def without_adaptation(self) -> "LSNNAgent":
        """A copy with beta = 0 (thresholds fixed at v_th); this agent is untouched."""
        new = copy.deepcopy(self)
        new.net.set_beta(0.0)
        return new

    def analysis_view(self, sim: Any, recorded: dict[str, Tensor]) -> AnalysisView:
        """Adaptation of the adaptive neurons, v and zeta; spikes per env step as activity."""
        n_reg, k = self.n_regular, self.ms_per_step
        T, B = sim.obs.shape[:2]
        variables = {"a (adaptive)": recorded["a"][..., n_reg:], "v": recorded["v"],
                     "zeta": recorded["zeta"]}
        activity = sim.z.view(T, k, B, -1).sum(1).float()  # spikes per env step
        n = activity.shape[-1]
        groups = {"regular": torch.arange(n_reg), "adaptive": torch.arange(n_reg, n)}
        # a neuron counts as active from ~2 Hz: 0.002 spikes per ms
        return AnalysisView(variables, activity, groups, "spikes", 0.002 * k)
