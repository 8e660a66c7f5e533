"""Recurrent predictors of supervised in-context sequences: the LSTM and the LSNN.

Both read the tokens one after another and predict from their state at the end of the query
token with a linear readout. The LSNN is the water-maze network (snn_icl.models.lsnn, Bellec et
al. 2018 neurons): each token is held as an input current ``input_scale * token`` for
``ms_per_token`` 1-ms steps (learnt input weights ``w_in`` carry the signs and scales of x and y;
with ``population`` > 0 each number is first spread over Gaussian tuning curves),
and the readout is the low-pass-filtered spike train (time constant ``tau_out`` ms) at the last
ms of the query token. Memory of the examples must live in the network's state: membrane
potentials, ongoing spikes and the adaptive thresholds (tau_a).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from snn_icl.models.agent import check_value
from snn_icl.models.lsnn import LSNN
from snn_icl.models.lsnn_config import LSNNNetworkConfig
from snn_icl.models.predictor import register_predictor


@dataclass(frozen=True)
class SeqLSTMConfig:
    """The ``[agent]`` table of ``kind = "lstm"`` in a supervised task."""

    kind: Literal["lstm"] = "lstm"
    hidden_size: int = 128

    def __post_init__(self) -> None:
        check_value(self.hidden_size >= 1, "hidden_size", "must be >= 1", self.hidden_size)

    def floats_per_step(self, obs_dim: int, episode_steps: int) -> float:
        return 12 * self.hidden_size + obs_dim

    def weight_floats(self, obs_dim: int, episode_steps: int) -> float:
        return 4 * self.hidden_size * (obs_dim + self.hidden_size + 2)


@register_predictor
class SeqLSTM(nn.Module):
    kind: ClassVar[str] = "lstm"
    config_class: ClassVar[type] = SeqLSTMConfig
    carries_context: ClassVar[bool] = True
    """Its state after the last example (``context_features``) is all it keeps of the context."""

    def __init__(self, d_in: int, d_out: int, cfg: SeqLSTMConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(d_in, cfg.hidden_size)
        self.head = nn.Linear(cfg.hidden_size, d_out)

    @classmethod
    def from_config(cls, cfg: SeqLSTMConfig, d_in: int, d_out: int, max_tokens: int) -> "SeqLSTM":
        return cls(d_in, d_out, cfg)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens [T, B, d_in] -> [B, d_out]."""
        _, (h, _) = self.lstm(tokens)
        return self.head(h[-1])

    def features(self, tokens: Tensor) -> dict[str, Tensor]:
        _, (h, c) = self.lstm(tokens)
        return {"h": h[-1].clone(), "c": c[-1].clone()}

    def context_features(self, examples: Tensor) -> dict[str, Tensor]:
        """The state after the last of ``examples`` (the query is a token like the others)."""
        return self.features(examples)


@dataclass(frozen=True)
class SeqLSNNConfig(LSNNNetworkConfig):
    """The ``[agent]`` table of ``kind = "lsnn"`` in a supervised task: the water-maze LSNN's
    sizes and neuron parameters (:class:`~snn_icl.models.lsnn_config.LSNNNetworkConfig`), each
    token held as a current for ``ms_per_token`` ms."""

    kind: Literal["lsnn"] = "lsnn"
    ms_per_token: int = 20
    """1-ms network steps each token is held for."""
    query_ms: int = 0
    """1-ms steps the query token (the last) is held for; 0: ``ms_per_token`` like the others.
    Longer gives the query more time to meet the thresholds the context left (the readout's
    spikes at 7-10 Hz from 200 neurons are few in 40 ms)."""
    query_flag: float = 0.0
    """A current on an input cell of its own while the query is held (0 on the examples), in
    token units (times ``input_scale`` like the rest); 0: no such cell. It tells the network
    when to read its thresholds instead of writing them (the query's y entry, 0, cannot: an
    example's y can be near 0 too)."""
    w_rec_scale: float = 1.0
    """Initial recurrent weights are N(0, 1)/sqrt(n) times this (below 1: weaker recurrent
    drive, lower rates at the start)."""
    population: int = 0
    """Input cells per token number: 0 feeds each number as a signed current; P >= 2 encodes it
    by P Gaussian tuning curves (Bellec et al. 2018's population code for real values), centres
    evenly spaced on [-population_range, population_range], width their spacing, so that a
    product of two numbers becomes a conjunction of two active cells."""
    population_range: float = 3.0
    """The outermost tuning-curve centres (the token's units; y = w.x at d = 10 has sd 1.8)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_value(self.w_rec_scale >= 0, "w_rec_scale", "must be >= 0", self.w_rec_scale)
        check_value(self.ms_per_token >= 1, "ms_per_token", "must be >= 1", self.ms_per_token)
        check_value(self.query_ms >= 0, "query_ms", "must be >= 0 (0: ms_per_token)",
                    self.query_ms)
        check_value(math.isfinite(self.query_flag), "query_flag", "must be a finite current",
                    self.query_flag)
        check_value(self.population == 0 or self.population >= 2, "population",
                    "must be 0 (signed currents) or >= 2 tuning curves", self.population)
        check_value(self.population_range > 0, "population_range", "must be > 0",
                    self.population_range)

    def input_cells(self, numbers: int) -> int:
        """Input channels for tokens of ``numbers`` entries (and the query flag's)."""
        return (numbers * self.population if self.population else numbers) + bool(self.query_flag)

    def floats_per_step(self, obs_dim: int, episode_steps: int) -> float:
        # the query's longer hold is counted for every token: an upper bound
        return max(self.ms_per_token, self.query_ms) * (6 * self.n + self.input_cells(obs_dim))

    def weight_floats(self, obs_dim: int, episode_steps: int) -> float:
        return self.n * (self.input_cells(obs_dim) + self.n + 2)


def tuning(tokens: Tensor, population: int, half_range: float) -> Tensor:
    """Gaussian population code: tokens [..., D] -> [..., D * population] in [0, 1]; centres
    evenly spaced on [-half_range, half_range], width (sd) their spacing."""
    centres = torch.linspace(-half_range, half_range, population, dtype=tokens.dtype,
                             device=tokens.device)
    width = 2 * half_range / (population - 1)
    act = torch.exp(-0.5 * ((tokens.unsqueeze(-1) - centres) / width) ** 2)
    return act.flatten(-2)


@register_predictor
class SeqLSNN(nn.Module):
    kind: ClassVar[str] = "lsnn"
    config_class: ClassVar[type] = SeqLSNNConfig
    spiking: ClassVar[bool] = True
    """Its gradients are surrogates: analyses measure its sensitivities by perturbation."""
    carries_context: ClassVar[bool] = True
    """Its state after the last example (``context_features``) is all it keeps of the context."""

    def __init__(self, d_in: int, d_out: int, cfg: SeqLSNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = LSNN(cfg.input_cells(d_in), cfg.n_regular, cfg.n_adaptive, cfg.neuron_params())
        with torch.no_grad():
            self.net.w_rec.mul_(cfg.w_rec_scale)
        self.head = nn.Linear(cfg.n, d_out)
        self.kappa = math.exp(-1.0 / cfg.tau_out)

    @classmethod
    def from_config(cls, cfg: SeqLSNNConfig, d_in: int, d_out: int, max_tokens: int) -> "SeqLSNN":
        return cls(d_in, d_out, cfg)

    def run(self, tokens: Tensor, record: bool = False, query: bool = True):
        """Hold each token for ms_per_token ms and the query (the last, unless ``query`` is
        False: examples only) for query_ms, with the query flag on: spikes
        [(T - 1) * ms_per_token + query_ms, B, n] (and the trace)."""
        if self.cfg.population:
            tokens = tuning(tokens, self.cfg.population, self.cfg.population_range)
        if self.cfg.query_flag:
            flag = torch.zeros(*tokens.shape[:2], 1, dtype=tokens.dtype, device=tokens.device)
            if query:
                flag[-1] = self.cfg.query_flag
            tokens = torch.cat([tokens, flag], dim=-1)
        ms = torch.full((tokens.shape[0],), self.cfg.ms_per_token, device=tokens.device)
        if query:
            ms[-1] = self.cfg.query_ms or self.cfg.ms_per_token
        x = tokens.repeat_interleave(ms, dim=0)
        return self.net(x * self.cfg.input_scale, record=record)

    def _filtered(self, z: Tensor) -> Tensor:
        """Exponentially filtered spikes at the last ms [B, n] (tau_out, ms)."""
        n = z.shape[0]
        powers = torch.arange(n - 1, -1, -1, dtype=z.dtype, device=z.device)
        w = (1.0 - self.kappa) * self.kappa ** powers
        return torch.einsum("t,tbn->bn", w, z)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens [T, B, d_in] -> [B, d_out] from the filtered spikes at the query's end."""
        return self.forward_and_rate(tokens)[0]

    def forward_and_rate(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """The prediction [B, d_out] and every neuron's firing rate over the sequence [n]
        (spikes per ms; what the trainer's ``rate_reg`` holds near ``target_rate_hz``)."""
        return self._predict(self.run(tokens)[0])

    def _predict(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """From the spikes z [T_ms, B, n]: the read-out at the query's end and each neuron's rate."""
        return self.head(self._filtered(z)), z.mean(dim=(0, 1))

    def forward_with_store(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The prediction and rates of :meth:`forward_and_rate`, and the adaptation ``a`` [B, n]
        after the last context example (0 without one): the store the auxiliary store loss
        (``[train] store_loss``) decodes. One run; gradients reach ``a`` through the trace."""
        z, _, trace = self.run(tokens, record=True)
        end = (tokens.shape[0] - 1) * self.cfg.ms_per_token
        a = trace.a[end - 1] if end else torch.zeros_like(trace.a[0])
        return *self._predict(z), a

    def features(self, tokens: Tensor) -> dict[str, Tensor]:
        """At the end of the query token: filtered spikes, thresholds' adaptation a, voltages v."""
        return self._state(self.run(tokens, record=True))

    def context_features(self, examples: Tensor) -> dict[str, Tensor]:
        """The same after the last of ``examples`` [T, B, d_in] (no query: each held as an
        example)."""
        return self._state(self.run(examples, record=True, query=False))

    def _state(self, run: tuple) -> dict[str, Tensor]:
        z, _, trace = run
        # copies, not views: a view of the last ms keeps the whole [T, B, n] trace alive
        return {"spikes": self._filtered(z), "a": trace.a[-1].clone(), "v": trace.v[-1].clone()}
