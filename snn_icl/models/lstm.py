"""The LSTM baseline agent (Bellec et al. 2018 compared LSNNs with LSTMs; RL^2 used GRUs).

The observation vector goes straight into one LSTM layer; linear heads read the hidden state:

    h_t, c_t = LSTM(obs_t, (h_{t-1}, c_{t-1}))
    mean = h_t W_mu + b_mu,   value = h_t w_v + b_v,   log_std: a free parameter [2]

One LSTM step per env step. Memory across trials lives in (h, c), reset between episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn

from snn_icl.models.agent import (INTACT, Ablation, ActOutput, AnalysisView, PolicyOutput,
                                  add_policy_heads, check_component, check_value, read_heads,
                                  register_agent, zero_by_copy)


@dataclass(frozen=True)
class LSTMConfig:
    """The ``[agent]`` table of ``kind = "lstm"``."""

    kind: Literal["lstm"] = "lstm"
    hidden_size: int = 128
    """LSTM units."""
    init_log_std: float = -0.5
    """Initial log standard deviation of the Gaussian policy (action units)."""

    def floats_per_step(self, obs_dim: int, episode_steps: int) -> float:
        """Floats a training iteration holds per episode and env step (gates and states)."""
        return 12 * self.hidden_size + obs_dim

    def weight_floats(self, obs_dim: int, episode_steps: int) -> float:
        """Trained parameters: the four gates and the heads."""
        return 4 * self.hidden_size * (obs_dim + self.hidden_size + 2) + 3 * self.hidden_size

    def __post_init__(self) -> None:
        check_value(self.hidden_size >= 1, "hidden_size", "must be >= 1", self.hidden_size)


class LSTMState(NamedTuple):
    h: Tensor
    """Hidden state [B, H]."""
    c: Tensor
    """Cell state [B, H]."""


@register_agent
class LSTMAgent(nn.Module):
    """Gaussian policy and value heads on one LSTM layer of ``hidden_size`` units."""

    kind: ClassVar[str] = "lstm"
    config_class: ClassVar[type] = LSTMConfig
    spiking: ClassVar[bool] = False
    components: ClassVar[tuple[str, ...]] = ("h", "c")
    decoded: ClassVar[tuple[str, ...]] = ("h", "c")
    ablations: ClassVar[tuple[Ablation, ...]] = (
        INTACT,
        Ablation("no_memory", "whole state reset at each trial start", no_memory=True),
        Ablation("reset_c", "cell state c reset at each trial start", reset=("c",)),
        Ablation("reset_h", "hidden state h reset at each trial start", reset=("h",)),
        Ablation("swap_c", "c from the partner episode at the start of trial 2", swap=("c",)),
        Ablation("swap_h", "h from the partner (own c kept)", swap=("h",)),
        Ablation("swap_all", "h and c from the partner", swap=("h", "c")),
    )
    main_swaps: ClassVar[tuple[str, ...]] = ("swap_c", "swap_h")
    input_weights: ClassVar[dict[str, int]] = {"lstm.weight_ih_l0": 1}
    position_table: ClassVar[str | None] = None

    def __init__(self, obs_dim: int, hidden_size: int = 128, *, init_log_std: float = -0.5) -> None:
        super().__init__()
        if hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {hidden_size!r}")
        self.obs_dim, self.hidden_size = obs_dim, hidden_size
        self.lstm = nn.LSTM(obs_dim, hidden_size)
        add_policy_heads(self, hidden_size, init_log_std)

    @classmethod
    def from_config(cls, cfg: LSTMConfig, obs_dim: int, episode_steps: int) -> "LSTMAgent":
        return cls(obs_dim, cfg.hidden_size, init_log_std=cfg.init_log_std)

    def initial_state(self, batch: int) -> LSTMState:
        w = self.mean_head.weight
        zeros = torch.zeros(batch, self.hidden_size, dtype=w.dtype, device=w.device)
        return LSTMState(zeros, zeros.clone())

    def act(self, obs: Tensor, state: LSTMState | None, *,
            generator: torch.Generator | None = None, record: bool = False) -> ActOutput:
        """One env step: obs [B, obs_dim] -> policy [B]; trace (record) is the new state."""
        x = obs.to(self.mean_head.weight)
        if state is None:
            state = self.initial_state(x.shape[0])
        out, (h, c) = self.lstm(x.unsqueeze(0), (state.h.unsqueeze(0), state.c.unsqueeze(0)))
        new = LSTMState(h[0], c[0])
        return ActOutput(read_heads(self, out[0]), new, x, new if record else None)

    def evaluate_sequence(self, net_input: Tensor, state: LSTMState | None) -> PolicyOutput:
        """Re-run an episode: net_input [T, B, obs_dim] -> policy [T, B]."""
        if state is None:
            state = self.initial_state(net_input.shape[1])
        out, _ = self.lstm(net_input, (state.h.unsqueeze(0), state.c.unsqueeze(0)))
        return read_heads(self, out)

    def reset_state(self, state: LSTMState, mask: Tensor) -> LSTMState:
        keep = (~mask).to(state.h.dtype).unsqueeze(-1)
        return LSTMState(state.h * keep, state.c * keep)

    # ------------------------------------------------------------------ what analyses read
    def get_component(self, state: LSTMState, name: str) -> Tensor:
        check_component(self, name)
        return getattr(state, name)

    def with_component(self, state: LSTMState, name: str, value: Tensor) -> LSTMState:
        check_component(self, name)
        return state._replace(**{name: value})

    def zero_component(self, state: LSTMState, name: str, rows: Tensor) -> LSTMState:
        return zero_by_copy(self, state, name, rows)

    def memory_horizon(self) -> dict[str, float]:
        """None built in: an LSTM has no time constant or window to name."""
        return {}

    def analysis_view(self, sim: Any, recorded: dict[str, Tensor]) -> AnalysisView:
        """h and c; the rectified hidden state as unit activity."""
        h = recorded["h"]
        return AnalysisView({"h": h, "c": recorded["c"]}, h.clamp(min=0),
                            {"h": torch.arange(h.shape[-1])}, "activity")
