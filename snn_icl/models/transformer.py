"""The transformer baseline agent: a small causal GPT-style decoder (nanoGPT-shaped), trained with
the same PPO as the LSNN (as TrMRL does; Algorithm Distillation used 4 layers, 64-d embeddings).

One token per env step. The observation vector (place cells, platform contact, previous reward)
is embedded linearly and a learned embedding of the env step index is added:

    h_t^0 = obs_t W_e + b_e + P[t]                        t = 0 .. max_steps - 1 (episode steps)
    h^l   = h^{l-1} + Attn_l(LN(h^{l-1}));  h^l <- h^l + MLP_l(LN(h^l))     (pre-norm blocks)
    f_t   = LN_f(h_t^L);  mean = f_t W_mu + b_mu,  value = f_t w_v + b_v,  log_std: free [2]

Attention is causal and banded by the context window W (tokens = env steps): the token of step t
attends to the tokens of steps s with t - W < s <= t and s >= start_b, where start_b is where
episode b's memory begins (0, or the step of its last :meth:`TransformerAgent.reset_state`).
W >= episode length is full causal attention. Stacked layers compound the window (as in
sliding-window attention): the output at step t can depend on steps t - n_layer (W - 1) .. t, and
W = 1 makes every step a function of its own token only. Memory across trials lives in the tokens:
acting one step at a time keeps a key/value cache of the last W - 1 tokens of every layer, and
re-running a whole episode (training) applies the same band as a mask; both go through the same
:meth:`TransformerAgent.forward`, so they give the same numbers. No dropout (RL, small data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from snn_icl.models.agent import (INTACT, Ablation, ActOutput, AnalysisView, PolicyOutput,
                                  add_policy_heads, check_component, check_value, read_heads,
                                  register_agent)


@dataclass(frozen=True)
class TransformerConfig:
    """The ``[agent]`` table of ``kind = "transformer"`` (nanoGPT-small)."""

    kind: Literal["transformer"] = "transformer"
    n_layer: int = 4
    """Transformer blocks (Algorithm Distillation used 4)."""
    n_head: int = 4
    """Attention heads per block."""
    n_embd: int = 64
    """Embedding width; must be divisible by n_head."""
    context_window: int = 256
    """Tokens (= env steps) each token attends to, itself included; >= the episode length
    means full causal attention."""
    init_log_std: float = -0.5
    """Initial log standard deviation of the Gaussian policy (action units)."""

    def floats_per_step(self, obs_dim: int, episode_steps: int) -> float:
        """Floats a training iteration holds per episode and env step (activations per block,
        and a row of attention over the visible tokens per head)."""
        visible = min(self.context_window, episode_steps)
        return self.n_layer * (16 * self.n_embd + 2 * self.n_head * visible) + obs_dim

    def weight_floats(self, obs_dim: int, episode_steps: int) -> float:
        """Trained parameters: blocks (12 n_embd^2 each), embeddings, heads."""
        return 12 * self.n_layer * self.n_embd ** 2 + (obs_dim + episode_steps + 3) * self.n_embd

    def __post_init__(self) -> None:
        for key in ("n_layer", "n_head", "n_embd", "context_window"):
            check_value(getattr(self, key) >= 1, key, "must be >= 1", getattr(self, key))
        check_value(self.n_embd % self.n_head == 0, "n_embd",
                    f"must be divisible by n_head = {self.n_head}", self.n_embd)


class TransformerState(NamedTuple):
    """What the agent remembers between env steps (all episodes of a batch are step-synchronous)."""

    k: Tensor
    """Cached keys [n_layer, B, nh, C, hs] of the last C <= W - 1 tokens (steps t-C .. t-1)."""
    v: Tensor
    """Cached values [n_layer, B, nh, C, hs], aligned with ``k``."""
    t: int
    """Env step index of the next token (its position embedding); counts on through resets."""
    start: Tensor
    """First step index each episode may attend to [B] (long); :meth:`reset_state` sets it to t."""


class TransformerTrace(NamedTuple):
    """Attention of one acting step (``record=True``), for retrieval analyses."""

    attention: Tensor
    """Softmax weights [n_layer, B, nh, n_keys] of this step's token over the keys (n_keys <= W);
    keys outside an episode's memory (before ``start``) get weight 0."""
    key_steps: Tensor
    """Env step index of each key [n_keys], oldest first; the last one is this step."""


def visible_keys(q_steps: Tensor, k_steps: Tensor, start: Tensor, window: int) -> Tensor:
    """The banded causal mask [B, 1, Tq, Tk] (True = may attend): query step i sees key step j
    when i - window < j <= i and j >= start_b."""
    d = q_steps[:, None] - k_steps[None, :]  # (Tq, Tk)
    band = (d >= 0) & (d < window)
    valid = k_steps[None, :] >= start[:, None]  # (B, Tk)
    return band[None, None] & valid[:, None, None, :]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention of T new tokens over the cached keys/values plus their own."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)  # q, k, v for all heads in one matmul
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x: Tensor, past_k: Tensor, past_v: Tensor, visible: Tensor,
                weights: bool = True, out: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """x (B, T, C), past_k/v (B, nh, P, hs), visible (B, 1, T, P+T) ->
        y (B, T, C), k/v (B, nh, P+T, hs), attention (B, nh, T, P+T), or None without
        ``weights`` (then torch's fused attention: half the time of the explicit one in a
        training update, equal to it to float rounding). ``out``: two (B, nh, P+T, hs) tensors
        that receive k and v (no autograd; lets the caller keep all layers in one buffer)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if out is None:
            k = torch.cat([past_k, k], dim=2)  # (B, nh, P+T, hs)
            v = torch.cat([past_v, v], dim=2)  # (B, nh, P+T, hs)
        else:
            k = torch.cat([past_k, k], dim=2, out=out[0])
            v = torch.cat([past_v, v], dim=2, out=out[1])
        if not weights:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=visible)
            return self.c_proj(y.transpose(1, 2).reshape(B, T, C)), k, v, None
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, P+T)
        att = att.masked_fill(~visible, float("-inf"))  # every token sees itself: no empty row
        att = F.softmax(att, dim=-1)
        y = att @ v  # (B, nh, T, P+T) x (B, nh, P+T, hs) -> (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble all head outputs
        return self.c_proj(y), k, v, att


class MLP(nn.Module):
    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x: Tensor, past_k: Tensor, past_v: Tensor, visible: Tensor,
                weights: bool = True, out: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        y, k, v, att = self.attn(self.ln_1(x), past_k, past_v, visible, weights, out)
        x = x + y
        x = x + self.mlp(self.ln_2(x))
        return x, k, v, att


@register_agent
class TransformerAgent(nn.Module):
    """Gaussian policy and value heads on a causal decoder with a context window of W tokens.

    Args:
        obs_dim: observation size (one token per env step).
        max_steps: episode length in env steps (size of the position-embedding table).
        n_layer, n_head, n_embd: decoder depth, heads and width (n_embd divisible by n_head).
        context_window: W, tokens each token attends to (itself and at most W - 1 earlier ones).
        init_log_std: initial log standard deviation of the policy.
    """

    kind: ClassVar[str] = "transformer"
    config_class: ClassVar[type] = TransformerConfig
    spiking: ClassVar[bool] = False
    components: ClassVar[tuple[str, ...]] = ("kv",)
    decoded: ClassVar[tuple[str, ...]] = ()
    ablations: ClassVar[tuple[Ablation, ...]] = (
        INTACT,
        Ablation("no_memory", "cache forgotten at each trial start", no_memory=True),
        Ablation("swap_kv", "key/value cache from the partner at the start of trial 2",
                 swap=("kv",)),
    )
    main_swaps: ClassVar[tuple[str, ...]] = ("swap_kv",)
    input_weights: ClassVar[dict[str, int]] = {"embed.weight": 1}
    position_table: ClassVar[str | None] = "pos.weight"
    replay_chunk: ClassVar[int] = 64
    """Episodes per replay in :meth:`analysis_view` (bounds the [B, nh, T, T] attention maps)."""

    def __init__(self, obs_dim: int, max_steps: int, n_layer: int = 4, n_head: int = 4,
                 n_embd: int = 64, context_window: int = 256, *,
                 init_log_std: float = -0.5) -> None:
        super().__init__()
        for key, value in (("obs_dim", obs_dim), ("max_steps", max_steps), ("n_layer", n_layer),
                           ("n_head", n_head), ("n_embd", n_embd),
                           ("context_window", context_window)):
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value!r}")
        if n_embd % n_head:
            raise ValueError(f"n_embd must be divisible by n_head = {n_head}, got {n_embd!r}")
        self.obs_dim, self.max_steps = obs_dim, max_steps
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.context_window = context_window
        self.extend_positions = False
        """Allow steps past ``max_steps`` (longer-than-trained episodes, e.g. a dark delay): they
        reuse the last position embedding. Off in training, so a wrong episode length fails."""
        self.embed = nn.Linear(obs_dim, n_embd)  # observation token
        self.pos = nn.Embedding(max_steps, n_embd)  # env step index within the episode
        self.blocks = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        # nanoGPT's init (GPT-2): N(0, 0.02), residual projections scaled down by depth.
        self.apply(_init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))
        add_policy_heads(self, n_embd, init_log_std)

    @classmethod
    def from_config(cls, cfg: TransformerConfig, obs_dim: int,
                    episode_steps: int) -> "TransformerAgent":
        return cls(obs_dim, episode_steps, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.context_window,
                   init_log_std=cfg.init_log_std)

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def initial_state(self, batch: int, step: int = 0) -> TransformerState:
        """Empty caches; ``step`` > 0 starts the episode's memory at that step index."""
        w = self.pos.weight
        empty = w.new_zeros(self.n_layer, batch, self.n_head, 0, self.head_size)
        start = torch.full((batch,), step, dtype=torch.long, device=w.device)
        return TransformerState(empty, empty.clone(), step, start)

    def forward(self, x: Tensor, state: TransformerState | None = None, *, weights: bool = True
                ) -> tuple[Tensor, TransformerState, list[Tensor | None]]:
        """T new tokens after ``state``: x [T, B, obs_dim] -> final features [T, B, n_embd], the
        state after them (caches cut to the last W - 1 tokens) and per layer the attention
        [B, nh, T, C + T] over the C cached keys and the T new ones (None without ``weights``:
        the fused kernel, for training)."""
        x = x.to(self.pos.weight).transpose(0, 1)  # (B, T, obs_dim)
        B, T, _ = x.shape
        if state is None:
            state = self.initial_state(B)
        t0, n_cached = state.t, state.k.shape[3]
        if t0 + T > self.max_steps and not self.extend_positions:
            raise ValueError(f"step index {t0 + T - 1} is past the episode length max_steps = "
                             f"{self.max_steps} (the position-embedding table); set "
                             "extend_positions = True to run longer episodes")
        device = x.device
        q_steps = torch.arange(t0, t0 + T, device=device)
        k_steps = torch.arange(t0 - n_cached, t0 + T, device=device)
        visible = visible_keys(q_steps, k_steps, state.start.to(device), self.context_window)
        h = self.embed(x) + self.pos(q_steps.clamp(max=self.max_steps - 1))  # (B, T, C)
        n_keys = n_cached + T
        lo = n_keys - min(self.context_window - 1, n_keys)  # drop keys no later token can see
        atts = []
        if torch.is_grad_enabled():  # training: autograd through torch.cat, then one stack
            ks, vs = [], []
            for block, past_k, past_v in zip(self.blocks, state.k, state.v):
                h, k, v, att = block(h, past_k, past_v, visible, weights)
                ks.append(k[:, :, lo:])
                vs.append(v[:, :, lo:])
                atts.append(att)
            new = TransformerState(torch.stack(ks), torch.stack(vs), t0 + T, state.start)
        else:
            # acting: every layer's keys go straight into one buffer and the state keeps a view
            # of it, which halves the copying per env step (the stack of the branch above was
            # the acting loop's largest cost); earlier states are never written to
            kbuf = h.new_empty(self.n_layer, B, self.n_head, n_keys, self.head_size)
            vbuf = torch.empty_like(kbuf)
            for l, (block, past_k, past_v) in enumerate(zip(self.blocks, state.k, state.v)):
                h, _, _, att = block(h, past_k, past_v, visible, weights, (kbuf[l], vbuf[l]))
                atts.append(att)
            new = TransformerState(kbuf[:, :, :, lo:], vbuf[:, :, :, lo:], t0 + T, state.start)
        return self.ln_f(h).transpose(0, 1), new, atts

    def act(self, obs: Tensor, state: TransformerState | None, *,
            generator: torch.Generator | None = None, record: bool = False) -> ActOutput:
        """One env step: obs [B, obs_dim] -> policy [B]; trace (record) is a TransformerTrace."""
        x = obs.to(self.pos.weight)
        features, new, atts = self(x.unsqueeze(0), state)
        trace = None
        if record:
            n_keys = atts[0].shape[-1]
            key_steps = torch.arange(new.t - n_keys, new.t, device=x.device)
            trace = TransformerTrace(torch.stack([a[:, :, 0] for a in atts]), key_steps)
        return ActOutput(read_heads(self, features[0]), new, x, trace)

    def evaluate_sequence(self, net_input: Tensor, state: TransformerState | None) -> PolicyOutput:
        """Re-run an episode: net_input [T, B, obs_dim] -> policy [T, B] (banded causal mask)."""
        features, _, _ = self(net_input, state, weights=False)
        return read_heads(self, features)

    def reset_state(self, state: TransformerState, mask: Tensor) -> TransformerState:
        """Forget everything before now for the episodes where ``mask`` [B] is True: they attend
        only to tokens from step t on (positions keep counting); the others are unchanged."""
        start = torch.where(mask.to(state.start.device), state.t, state.start)
        return state._replace(start=start)

    # ------------------------------------------------------------------ what analyses read
    def get_component(self, state: TransformerState, name: str) -> Tensor:
        check_component(self, name)
        raise ValueError("the transformer cache 'kv' has per-episode lengths: capture and install "
                         "it with snn_icl.analysis.states.Capture / install_cache")

    def with_component(self, state: TransformerState, name: str, value: Tensor) -> TransformerState:
        return self.get_component(state, name)

    def zero_component(self, state: TransformerState, name: str, rows: Tensor) -> TransformerState:
        """Forget the cache of episodes ``rows``: they attend only to tokens from now on."""
        check_component(self, name)
        mask = torch.zeros_like(state.start, dtype=torch.bool)
        mask[rows.to(mask.device)] = True
        return self.reset_state(state, mask)

    def memory_horizon(self) -> dict[str, float]:
        """The context window in env steps (one token per step)."""
        return {"context_window": float(self.context_window)}

    def replay(self, obs: Tensor) -> dict[str, Any]:
        """Re-run whole episodes in one call (banded causal mask; equal to acting step by step)
        and keep the internals.

        Args:
            obs: [T, B, obs_dim] observations of the episodes (rollout ``obs``).

        Returns ``residual`` (list over layers 0..n_layer of [T, B, n_embd]: the token embedding,
        then each block's output), ``keys`` (list over layers of [T, B, n_embd], all heads) and
        ``attention`` (list over layers of [B, nh, T, T]).
        """
        inputs, outputs = [], []
        handles = [self.blocks[0].register_forward_pre_hook(lambda m, args: inputs.append(args[0]))]
        for block in self.blocks:
            handles.append(block.register_forward_hook(lambda m, args, out: outputs.append(out)))
        try:
            with torch.no_grad():
                _, _, atts = self(obs, None)
        finally:
            for h in handles:
                h.remove()
        T, B = obs.shape[:2]
        residual = [inputs[0]] + [out[0] for out in outputs]  # each [B, T, C]
        keys = [out[1].transpose(1, 2).reshape(B, T, -1).transpose(0, 1) for out in outputs]
        return {"residual": [h.transpose(0, 1) for h in residual], "keys": keys, "attention": atts}

    def analysis_view(self, sim: Any, recorded: dict[str, Tensor]) -> AnalysisView:
        """The residual stream after each block and the keys, from a replay of the episodes; the
        rectified residual streams as unit activity."""
        B = sim.obs.shape[1]
        chunks = [self.replay(sim.obs[:, lo:lo + self.replay_chunk])
                  for lo in range(0, B, self.replay_chunk)]
        variables = {}
        for l in range(self.n_layer + 1):
            name = "residual 0 (embedding)" if l == 0 else f"residual {l}"
            variables[name] = torch.cat([c["residual"][l] for c in chunks], dim=1)
        for l in range(self.n_layer):
            variables[f"keys {l + 1}"] = torch.cat([c["keys"][l] for c in chunks], dim=1)
        activity = torch.cat([variables[f"residual {l}"] for l in range(1, self.n_layer + 1)],
                             dim=-1).clamp(min=0)
        groups = {f"layer {l}": torch.arange((l - 1) * self.n_embd, l * self.n_embd)
                  for l in range(1, self.n_layer + 1)}
        return AnalysisView(variables, activity, groups, "activity")



def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
