"""The agent interface shared by the LSNN and the baselines.

Also the registry of agent kinds (:func:`register_agent`, :func:`build_agent`) and the
descriptions analyses need of an agent (:class:`Ablation`, :class:`AnalysisView`).

An agent maps one observation per env step to a Gaussian policy over the 2-D swim velocity and a
value estimate, carrying a recurrent state (spiking-network state, LSTM cell, attention cache)
across the whole episode. Trainers, evaluation and the CLI talk to agents only through this
protocol, so a new agent kind plugs in without touching them.

Acting is one env step at a time (closed loop with the env); training re-evaluates a whole
recorded episode at once with ``evaluate_sequence``, given the exact network inputs that acting
consumed (``ActOutput.net_input``), so stochastic input encodings are replayed, not re-drawn.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from snn_icl.checks import check_value  # noqa: F401  (re-exported: the kinds' configs use it)


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
    rate_by_step: Tensor | None = None
    """Mean firing probability per 1-ms step of each neuron in each env step [T, B, n] (spiking
    agents, from ``evaluate_sequence``): what the dark-delay rate penalty acts on."""
    features: Tensor | None = None
    """What the heads read [..., n_features] (:func:`read_heads`): the place loss's decoder
    (``[train] place_loss``) reads the same."""


class ActOutput(NamedTuple):
    policy: PolicyOutput
    state: Any
    """The agent's recurrent state after this step."""
    net_input: Tensor
    """What the network consumed this step, batch first (LSNN: input currents or spikes
    [B, k, n_in]); stacked over steps it is [T, B, ...], the input of ``evaluate_sequence``."""
    trace: Any = None
    """Neural recordings of this step when ``record=True`` (agent-specific NamedTuple)."""


def gaussian_log_prob(policy: PolicyOutput, action: Tensor) -> Tensor:
    """Log-density of ``action`` [..., 2] under the diagonal Gaussian policy -> [...]."""
    std = policy.log_std.exp()
    z = (action - policy.mean) / std
    return (-0.5 * z.pow(2) - policy.log_std - 0.5 * torch.log(torch.tensor(2 * torch.pi))).sum(-1)


def gaussian_entropy(policy: PolicyOutput) -> Tensor:
    """Entropy of the diagonal Gaussian policy (nats), a scalar."""
    return (policy.log_std + 0.5 * (1.0 + torch.log(torch.tensor(2 * torch.pi)))).sum()


def random_like(kind: str, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``torch.rand`` ("rand") or ``torch.randn`` ("randn") of ``like``'s shape and dtype, drawn
    on the generator's device (CPU for every generator of the project; the global CPU stream
    when None) and moved to ``like``'s device. So a seed gives the same draws on every device:
    acting on a GPU consumes exactly the numbers acting on the CPU does."""
    where = generator.device if generator is not None else torch.device("cpu")
    fn = torch.rand if kind == "rand" else torch.randn
    return fn(like.shape, generator=generator, dtype=like.dtype, device=where).to(like.device)


def module_device(module: Any) -> torch.device:
    """The device of a module's first parameter (or buffer); CPU for anything without one (a
    random policy, another simulator's network)."""
    if isinstance(module, nn.Module):
        for t in module.parameters():
            return t.device
        for t in module.buffers():
            return t.device
    return torch.device("cpu")


def sample_action(policy: PolicyOutput, generator: torch.Generator | None,
                  deterministic: bool = False) -> Tensor:
    """Draw a swim velocity [B, 2]; ``deterministic`` returns the mean. The noise is drawn on
    the generator's device (CPU) whatever the policy's device (:func:`random_like`)."""
    if deterministic:
        return policy.mean
    noise = random_like("randn", policy.mean, generator)
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
                        agent.value_head(features).squeeze(-1), features=features)


PLACE_HEAD = "place_head"
"""The attribute (and state-dict prefix) of the training-only platform decoder."""


def add_place_head(agent: nn.Module) -> None:
    """Give ``agent`` a linear decoder of the platform centre (pool radii, [..., 2]) from the
    features its policy reads: the auxiliary place loss of training (``[train] place_loss``).
    Acting never reads it; a checkpoint that has one loads into an agent without it and back
    (:func:`snn_icl.storage.checkpoint.load_into`)."""
    setattr(agent, PLACE_HEAD, nn.Linear(agent.mean_head.in_features, 2))


# ----------------------------------------------------------------------------- what analyses need
@dataclass(frozen=True)
class Ablation:
    """One frozen-weight manipulation of an agent's state (:mod:`snn_icl.analysis.ablations`)."""

    name: str
    description: str
    reset: tuple[str, ...] = ()
    """State components zeroed at every trial start."""
    swap: tuple[str, ...] = ()
    """State components taken from the partner episode at the start of trial 2."""
    no_memory: bool = False
    """The whole state reset at every trial start (``agent.reset_state``)."""
    beta_zero: bool = False
    """Spiking agents: adaptation strength beta = 0 in every neuron (``agent.without_adaptation``)."""


INTACT = Ablation("intact", "weights and state untouched")


class AnalysisView(NamedTuple):
    """An agent's internals over recorded episodes, as the memory analyses read them."""

    variables: dict[str, Tensor]
    """Candidate memory variables {name: [T, B, d]} (decoded for the platform)."""
    activity: Tensor
    """Per-unit activity per env step [T, B, N] (spike counts, or rectified unit activity)."""
    groups: dict[str, Tensor]
    """Unit index groups {name: [m]} of ``activity`` (e.g. regular / adaptive neurons)."""
    unit: str
    """What a unit's activity counts ("spikes", "activity")."""
    min_activity: float = 1e-3
    """Mean activity per env step from which a unit counts as active (place-field counts)."""


class Agent(Protocol):
    """What every agent kind provides. Everything that depends on the kind lives behind it, so
    adding a kind touches :mod:`snn_icl.models` only (see :func:`register_agent`)."""

    kind: ClassVar[str]
    """Registry name, the ``kind`` of the task file's ``[agent]`` table."""
    config_class: ClassVar[type]
    """The frozen dataclass of the ``[agent]`` table for this kind."""
    spiking: ClassVar[bool]
    """Acting with ``record=True`` gives a trace with spikes ``z`` and thresholds ``A``."""
    components: ClassVar[tuple[str, ...]]
    """Named state components (each ``[B, ...]``) that analyses read, reset and swap."""
    decoded: ClassVar[tuple[str, ...]]
    """Components recorded at every env step for decoding (a subset of ``components``)."""
    ablations: ClassVar[tuple[Ablation, ...]]
    """The state manipulations the memory analysis runs for this kind."""
    main_swaps: ClassVar[tuple[str, ...]]
    """Names of the decisive swap ablations, drawn as example paths."""
    input_weights: ClassVar[dict[str, int]]
    """State-dict names of the weights that read the observation, with the axis that indexes
    it: fine-tuning onto a larger observation (the cue channel) grows them with zeros."""
    position_table: ClassVar[str | None]
    """State-dict name of a table with one row per env step of the episode (the transformer's
    position embedding), or None: fine-tuning onto longer episodes (dark delays) grows it by
    repeating its last row, which is what the source does past its trained length."""
    obs_dim: int

    @classmethod
    def from_config(cls, cfg: Any, obs_dim: int, episode_steps: int) -> "Agent":
        """Build from the kind's config for observations [obs_dim] and episodes of
        ``episode_steps`` env steps."""

    def initial_state(self, batch: int) -> Any:
        """The state at the start of an episode."""

    def act(self, obs: Tensor, state: Any, *, generator: torch.Generator | None = None,
            record: bool = False) -> ActOutput:
        """One env step: obs [B, obs_dim] -> policy [B]."""

    def evaluate_sequence(self, net_input: Tensor, state: Any) -> PolicyOutput:
        """Re-run a recorded episode: stacked ``net_input`` [T_env, B, ...] -> policy [T_env, B]."""

    def reset_state(self, state: Any, mask: Tensor) -> Any:
        """Reset the state of the episodes where ``mask`` [B] is True (no-memory control)."""

    def get_component(self, state: Any, name: str) -> Tensor:
        """State component ``name`` as [B, ...]."""

    def with_component(self, state: Any, name: str, value: Tensor) -> Any:
        """A copy of ``state`` whose component ``name`` is ``value`` [B, ...]."""

    def zero_component(self, state: Any, name: str, rows: Tensor) -> Any:
        """Zero (forget) component ``name`` in episodes ``rows`` [m] (see :func:`zero_by_copy`)."""

    def memory_horizon(self) -> dict[str, float]:
        """Built-in memory spans in env steps (e.g. ``tau_a / ms_per_step``); may be empty."""

    def analysis_view(self, sim: Any, recorded: dict[str, Tensor]) -> AnalysisView:
        """Internals over recorded episodes ``sim`` (with the components of ``decoded``
        recorded at every step in ``recorded``, each [T, B, ...])."""


def check_component(agent: Any, name: str) -> None:
    """A clear error for a component the agent kind does not have."""
    if name not in agent.components:
        raise ValueError(f"a {agent.kind} agent has no state component {name!r} "
                         f"(has {agent.components})")


def zero_rows(agent: Any, state: Any, names: tuple[str, ...], rows: Tensor) -> Any:
    """Zero the components ``names`` of the episodes ``rows`` [m] (the reset ablations)."""
    for name in names:
        check_component(agent, name)
        state = agent.zero_component(state, name, rows)
    return state


def zero_by_copy(agent: Any, state: Any, name: str, rows: Tensor) -> Any:
    """``agent.zero_component`` for components that are plain [B, ...] tensors."""
    new = agent.get_component(state, name).clone()
    new[rows] = 0
    return agent.with_component(state, name, new)


# ----------------------------------------------------------------------------- registry
_REGISTRY: dict[str, type] = {}


def register_agent(cls: type) -> type:
    """Class decorator: make ``cls`` buildable from task files with ``kind = cls.kind``.

    The class names its config dataclass in ``config_class`` (whose ``kind`` field defaults to
    ``cls.kind``) and follows :class:`Agent`."""
    kind = cls.kind
    if kind in _REGISTRY and _REGISTRY[kind] is not cls:
        raise ValueError(f"agent kind {kind!r} is registered already ({_REGISTRY[kind].__name__})")
    _REGISTRY[kind] = cls
    return cls


def agent_kinds() -> list[str]:
    """The registered agent kinds."""
    return sorted(_REGISTRY)


def agent_class(kind: str) -> type:
    """The agent class registered as ``kind``; a clear error naming the known kinds."""
    if kind not in _REGISTRY:
        raise ValueError(f"unknown agent kind {kind!r} (known: {', '.join(agent_kinds())})")
    return _REGISTRY[kind]


def build_agent(cfg: Any, obs_dim: int, episode_steps: int, seed: int | None = None) -> nn.Module:
    """The agent of config ``cfg`` (its ``kind`` picks the class), weights drawn from ``seed``
    (None: the global torch RNG as it is). The global RNG is forked, so building an agent never
    disturbs other random streams."""
    cls = agent_class(cfg.kind)
    if seed is None:
        return cls.from_config(cfg, obs_dim, episode_steps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls.from_config(cfg, obs_dim, episode_steps)


@contextlib.contextmanager
def past_trained_length(agent: nn.Module, longer: bool = True) -> Iterator[nn.Module]:
    """Inside the block, a kind with a fixed episode length (the transformer's position table,
    ``extend_positions``) may run episodes longer than it was trained on (dark delays); a no-op
    for the other kinds and when not ``longer``. The setting is restored on leaving."""
    extend = getattr(agent, "extend_positions", None)
    if extend is None or not longer:
        yield agent
        return
    agent.extend_positions = True
    try:
        yield agent
    finally:
        agent.extend_positions = extend


def frozen(agent: nn.Module) -> nn.Module:
    """Put ``agent`` in eval mode with gradients off (its weights cannot change)."""
    agent.eval()
    for p in agent.parameters():
        p.requires_grad_(False)
    return agent


def weights_sha256(agent: nn.Module) -> str:
    """SHA-256 over every parameter and buffer (names, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(agent.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
