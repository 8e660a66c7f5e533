"""The softmax transformer on supervised in-context sequences, with Dai et al.'s momentum option.

Causal pre-norm decoder blocks as the water-maze transformer (snn_icl.models.transformer), read
at the last token (the query). Per head, attention at token t is

    y_t = sum_{s <= t} softmax_s(q_t . k_s / sqrt(hs)) v_s  +  sum_{s < t} eta^{t - s} v_s

where the second term is the momentum attention of Dai et al. (2022, arXiv 2212.10559, eq. 13;
``momentum = eta``, 0 = plain attention). ``mlp`` and ``layer_norm`` can be switched off
(attention-only layers, as the two-layer network of Reddy 2023). No position code by default:
in-context examples are exchangeable, and the query is told apart by its zero label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from snn_icl.models.agent import check_value
from snn_icl.models.predictor import register_predictor
from snn_icl.models.transformer import MLP


@dataclass(frozen=True)
class SeqTransformerConfig:
    """The ``[agent]`` table of ``kind = "transformer"`` in a supervised task."""

    kind: Literal["transformer"] = "transformer"
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    """Embedding width; divisible by n_head."""
    mlp: bool = True
    """An MLP after each attention layer."""
    layer_norm: bool = True
    """Pre-norm layer norms (and a final one)."""
    momentum: float = 0.0
    """eta of momentum attention in [0, 1) (0: plain softmax attention)."""
    positions: bool = False
    """Add a learnt position embedding per token index."""
    head_hidden: int = 0
    """Units of a hidden layer in the readout (0: linear readout; Reddy 2023 uses an MLP)."""

    def __post_init__(self) -> None:
        for key in ("n_layer", "n_head", "n_embd"):
            check_value(getattr(self, key) >= 1, key, "must be >= 1", getattr(self, key))
        check_value(self.n_embd % self.n_head == 0, "n_embd",
                    f"must be divisible by n_head = {self.n_head}", self.n_embd)
        check_value(0.0 <= self.momentum < 1.0, "momentum", "must be in [0, 1)", self.momentum)
        check_value(self.head_hidden >= 0, "head_hidden", "must be >= 0", self.head_hidden)

    def floats_per_step(self, obs_dim: int, episode_steps: int) -> float:
        return self.n_layer * (16 * self.n_embd + 2 * self.n_head * episode_steps) + obs_dim

    def weight_floats(self, obs_dim: int, episode_steps: int) -> float:
        return 12 * self.n_layer * self.n_embd ** 2 + (obs_dim + episode_steps + 3) * self.n_embd


class MomentumAttention(nn.Module):
    """Causal multi-head softmax attention plus the momentum term (module docstring)."""

    def __init__(self, n_embd: int, n_head: int, momentum: float) -> None:
        super().__init__()
        self.n_head, self.momentum = n_head, momentum
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, T, C] -> [B, T, C]."""
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if self.momentum:
            idx = torch.arange(T, device=x.device)
            lag = (idx[:, None] - idx[None, :]).to(x.dtype)
            decay = torch.where(lag > 0, self.momentum ** lag.clamp(min=1), torch.zeros_like(lag))
            y = y + decay @ v  # [T, T] x [B, nh, T, hs]
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class SeqBlock(nn.Module):
    def __init__(self, cfg: SeqTransformerConfig) -> None:
        super().__init__()
        norm = (lambda: nn.LayerNorm(cfg.n_embd)) if cfg.layer_norm else nn.Identity
        self.ln_1, self.ln_2 = norm(), norm()
        self.attn = MomentumAttention(cfg.n_embd, cfg.n_head, cfg.momentum)
        self.mlp = MLP(cfg.n_embd) if cfg.mlp else None

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        if self.mlp is not None:
            x = x + self.mlp(self.ln_2(x))
        return x


@register_predictor
class SeqTransformer(nn.Module):
    """Embedding, ``n_layer`` blocks, final norm, readout at the last token."""

    kind: ClassVar[str] = "transformer"
    config_class: ClassVar[type] = SeqTransformerConfig

    def __init__(self, d_in: int, d_out: int, max_tokens: int, cfg: SeqTransformerConfig) -> None:
        super().__init__()
        self.embed = nn.Linear(d_in, cfg.n_embd)
        self.pos = nn.Parameter(torch.zeros(max_tokens, cfg.n_embd)) if cfg.positions else None
        self.blocks = nn.ModuleList(SeqBlock(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd) if cfg.layer_norm else nn.Identity()
        if cfg.head_hidden:
            self.head = nn.Sequential(nn.Linear(cfg.n_embd, cfg.head_hidden), nn.ReLU(),
                                      nn.Linear(cfg.head_hidden, d_out))
        else:
            self.head = nn.Linear(cfg.n_embd, d_out)
        for module in self.modules():  # nanoGPT's initialisation
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        for block in self.blocks:  # residual projections scaled by depth (GPT-2)
            nn.init.normal_(block.attn.c_proj.weight, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @classmethod
    def from_config(cls, cfg: SeqTransformerConfig, d_in: int, d_out: int,
                    max_tokens: int) -> "SeqTransformer":
        return cls(d_in, d_out, max_tokens, cfg)

    def hidden(self, tokens: Tensor) -> list[Tensor]:
        """Residual stream after the embedding and after each block, [B, T, C] each."""
        x = self.embed(tokens.transpose(0, 1))
        if self.pos is not None:
            x = x + self.pos[: x.shape[1]]
        out = [x]
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens [T, B, d_in] -> prediction [B, d_out] at the last token."""
        return self.head(self.ln_f(self.hidden(tokens)[-1][:, -1]))

    def features(self, tokens: Tensor) -> dict[str, Tensor]:
        """The query's residual stream after each block, {"layer_l": [B, C]}."""
        return {f"layer_{i}": h[:, -1].clone() for i, h in enumerate(self.hidden(tokens)[1:], start=1)}
