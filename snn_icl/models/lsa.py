"""Linear self-attention exactly as von Oswald et al. (2022, arXiv 2212.07677), K layers.

Tokens e_j = [x_j; y_j] in R^D (D = d + 1); the query token is [x_q; 0]. Layer l, head h:

    e_j <- e_j + sum_h W_PV^{l,h} (1/k) sum_{i < k} e_i (e_i^T W_KQ^{l,h} e_j)

for every token j (context and query), keys and values from the k context tokens only, no
softmax, no layer norm, no MLP, no position code. W_KQ = K^T Q and W_PV = P V are learnt as full
D x D matrices. The prediction is the y entry of the query token after the last layer. One step
of gradient descent from w = 0 with learning rate eta is the layer with
W_KQ = [[I_d, 0], [0, 0]] and W_PV = [[0, 0], [0, eta]] (von Oswald et al., Proposition 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from snn_icl.models.agent import check_value
from snn_icl.models.predictor import register_predictor


@dataclass(frozen=True)
class LSAConfig:
    """The ``[agent]`` table of ``kind = "lsa"``."""

    kind: Literal["lsa"] = "lsa"
    n_layer: int = 1
    """Linear self-attention layers K."""
    n_head: int = 1
    """Heads per layer."""
    init_std: float = 0.02
    """Standard deviation of the initial W_KQ and W_PV entries."""

    def __post_init__(self) -> None:
        for key in ("n_layer", "n_head"):
            check_value(getattr(self, key) >= 1, key, "must be >= 1", getattr(self, key))
        check_value(self.init_std > 0, "init_std", "must be > 0", self.init_std)

    def floats_per_step(self, obs_dim: int, episode_steps: int) -> float:
        return 4 * self.n_layer * obs_dim

    def weight_floats(self, obs_dim: int, episode_steps: int) -> float:
        return 2 * self.n_layer * self.n_head * obs_dim ** 2


@register_predictor
class LinearSelfAttention(nn.Module):
    """K layers of linear self-attention; ``w_kq``, ``w_pv``: [K, H, D, D]."""

    kind: ClassVar[str] = "lsa"
    config_class: ClassVar[type] = LSAConfig

    def __init__(self, d_in: int, cfg: LSAConfig) -> None:
        super().__init__()
        shape = (cfg.n_layer, cfg.n_head, d_in, d_in)
        self.w_kq = nn.Parameter(torch.randn(shape) * cfg.init_std)
        self.w_pv = nn.Parameter(torch.randn(shape) * cfg.init_std)

    @classmethod
    def from_config(cls, cfg: LSAConfig, d_in: int, d_out: int, max_tokens: int) -> "LinearSelfAttention":
        if d_out != 1:
            raise ValueError(f"linear self-attention predicts one number (the y slot), not {d_out}")
        return cls(d_in, cfg)

    def layers(self, tokens: Tensor) -> list[Tensor]:
        """Tokens after each layer, [T, B, D] each (input first)."""
        e = tokens.transpose(0, 1)  # [B, T, D]
        k = e.shape[1] - 1
        out = [tokens]
        for l in range(self.w_kq.shape[0]):
            if k == 0:
                out.append(e.transpose(0, 1))
                continue
            ctx = e[:, :k]
            s = ctx.transpose(1, 2) @ ctx / k  # [B, D, D]: (1/k) sum_i e_i e_i^T
            # update_j = sum_h W_PV S W_KQ e_j
            m = torch.einsum("hab,zbc,hcd->zad", self.w_pv[l], s, self.w_kq[l])
            e = e + e @ m.transpose(1, 2)
            out.append(e.transpose(0, 1))
        return out

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens [T, B, D] -> prediction [B, 1] (the query's y entry)."""
        return self.layers(tokens)[-1][-1, :, -1:]

    def features(self, tokens: Tensor) -> dict[str, Tensor]:
        """The query token after each layer, {"layer_l": [B, D]}."""
        return {f"layer_{i}": e[-1].clone() for i, e in enumerate(self.layers(tokens)[1:], start=1)}
