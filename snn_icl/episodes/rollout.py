"""Closed-loop episodes: an agent swimming in the batched water maze.

One function, :func:`rollout`, serves simulation, frozen-weight evaluation and PPO data collection:
it runs B whole episodes at once (no Python loop over episodes) and stacks everything time-major.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from snn_icl.envs.water_maze import WaterMaze
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.models.agent import gaussian_log_prob, module_device, random_like, sample_action


def env_seed(seed: int, index: int, *, training: bool) -> int:
    """Seed of the ``index``-th batch of episodes: even for training, odd for evaluation and
    simulation, so held-out platforms never repeat a training batch's draws."""
    return 2 * (seed * 1_000_003 + index) + (0 if training else 1)


@torch.no_grad()
def rollout(agent: Any, env: WaterMaze, *, generator: torch.Generator | None = None,
            deterministic: bool = False, record: bool = False, reset_memory_each_trial: bool = False,
            policy: str = "agent", progress: bool = False,
            hook: Callable[[Any, dict[str, Any]], Any] | None = None,
            **reset_kwargs: Any) -> EpisodeRecord:
    """Run one batch of whole episodes (``env.num_envs`` of them) with frozen weights.

    Args:
        agent: an :class:`~snn_icl.models.agent.Agent`.
        env: the batched water maze; it is reset here with ``reset_kwargs``
            (``platform``, ``probe_trial``, ``release_angles``).
        generator: source of action noise and stochastic input spikes.
        deterministic: act with the policy mean.
        record: also return the network's spikes ``z`` and thresholds ``A`` per 1-ms step.
        reset_memory_each_trial: zero the agent state at every trial start (no-memory control).
        policy: "agent", or "random" (uniform random velocities; the agent is not run).
        progress: show a progress bar over env steps.
        hook: optional ``state = hook(state, info)``, called after every env step (after the
            no-memory reset) with the agent state that the next step will act from; ``info`` is
            the env's step info plus ``step`` (0-based index of the step just taken) and
            ``new_trial`` ([B] bool: the next observation is the first of a new trial). Lets
            analyses record or perturb the state (:mod:`snn_icl.analysis.ablations`). Default
            None: never called, nothing changes.

    Returns an :class:`~snn_icl.episodes.record.EpisodeRecord` (T = episode_steps env steps,
    B episodes; spikes ``z`` and thresholds ``A`` with ``record`` and a spiking agent).
    """
    obs = env.reset(**reset_kwargs)
    batch = obs.shape[0]
    state = agent.initial_state(batch) if policy == "agent" else None
    steps = StepRecorder(env)
    put = steps.put
    done = torch.zeros(batch, dtype=torch.bool, device=obs.device)
    bar = tqdm(total=env.config.episode_steps, desc="env steps", disable=not progress, leave=False)
    while not bool(done.all()):
        put("obs", obs)
        put("dark", env.state.dark_left > 0)
        if policy == "random":
            action = random_like("rand", obs.new_empty(batch, 2), generator) * 2 - 1
        else:
            out = agent.act(obs, state, generator=generator, record=record)
            state = out.state
            action = sample_action(out.policy, generator, deterministic)
            steps.policy(out.policy, action)
            put("net_input", out.net_input)
            if record and agent.spiking:  # spikes and thresholds
                put("z", out.trace.z.bool())
                put("A", out.trace.A)
        put("action", action)
        obs, reward, done, info = env.step(action)
        new_trial = steps.env_step(reward, info)
        if reset_memory_each_trial and state is not None and bool(new_trial.any()):
            state = agent.reset_state(state, new_trial)
        if hook is not None and state is not None:
            state = hook(state, {**info, "step": steps.count("action") - 1, "new_trial": new_trial})
        bar.update(1)
    bar.close()
    return steps.record()


class StepRecorder:
    """What a closed loop of an agent and the water maze records, step by step, stacked into an
    :class:`EpisodeRecord` at the end. The rollout and the Brian2 closed loop
    (:mod:`snn_icl.brian2.export`) both record through it, so their records agree field by field.
    """

    ENV_KEYS = ("trial_end", "escaped", "latency", "position", "trial", "on_platform", "release")
    """The env's step info kept per step."""

    def __init__(self, env: WaterMaze) -> None:
        """Start from the env right after ``reset``: position, trial, contact, release point and
        platform (``platform`` stays the episode's first one; ``platform_t`` follows moves)."""
        s = env.state
        self.platform = s.platform.clone()
        # only with the cue channel, so the records of every other env stay as they were
        self.cued = s.cued.clone() if env.config.cue_channel else None
        self.steps: dict[str, list[Tensor]] = {}
        for key, value in (("position", s.position.clone()), ("trial", s.trial.clone()),
                           ("on_platform", (s.rest_left > 0) & s.platform_present),
                           ("release", s.release.clone()), ("platform_t", s.platform.clone())):
            self.put(key, value)

    def put(self, key: str, value: Tensor) -> None:
        self.steps.setdefault(key, []).append(value)

    def count(self, key: str) -> int:
        return len(self.steps.get(key, ()))

    def policy(self, policy: Any, action: Tensor) -> None:
        """The policy's mean, value and the log-probability of the action taken."""
        self.put("action_mean", policy.mean)
        self.put("value", policy.value)
        self.put("log_prob", gaussian_log_prob(policy, action))

    def env_step(self, reward: Tensor, info: dict[str, Tensor]) -> Tensor:
        """Record an env step; returns [B] bool: the next observation starts a new trial."""
        self.put("reward", reward)
        for key in self.ENV_KEYS:
            self.put(key, info[key])
        self.put("platform_t", info["platform"])
        return self.steps["trial"][-1] > self.steps["trial"][-2]

    def record(self, drop: tuple[str, ...] = ()) -> EpisodeRecord:
        """The stacked record (time-major; spikes and thresholds concatenated over 1-ms steps)."""
        out = {key: (torch.cat if key in ("z", "A") else torch.stack)(values)
               for key, values in self.steps.items() if key not in drop}
        return EpisodeRecord(**out, platform=self.platform, cued=self.cued)


def rollout_batches(agent: Any, env_cfg: Any, episodes: int, seed: int, *, batch: int = 64,
                    progress: bool = False, desc: str = "episodes",
                    drop: tuple[str, ...] = ("net_input", "obs"), dtype: torch.dtype = torch.float32,
                    runner: Callable[..., EpisodeRecord] = rollout,
                    batch_kwargs: Callable[[int, int], dict[str, Any]] | None = None,
                    device: torch.device | str | None = None, **kwargs: Any) -> EpisodeRecord:
    """``episodes`` episodes in batches of at most ``batch``, concatenated along the episode axis.

    Env seeds come from :func:`env_seed` (evaluation parity) and action noise from one generator
    seeded with ``seed``, so the same seed gives the same episodes for every agent and condition.
    ``drop`` names outputs not kept (training-only tensors); ``dtype`` is the env's.
    ``runner(agent, env, generator=..., **kwargs)`` runs one batch: :func:`rollout`, or another
    simulator's closed loop with the same outputs (:func:`snn_icl.brian2.export.brian2_rollout`).
    ``batch_kwargs(i, size)`` adds keyword arguments for batch ``i`` of ``size`` episodes (a hook
    or a network built for that size); ``kwargs`` go to every batch.

    Devices: the env lives on the agent's device (``device``, default the device of its
    parameters: CPU for a random policy or another simulator), the generators on CPU; each
    batch's record is moved to the CPU, so what is returned (and every measure of it) is on the
    CPU whatever the device.
    """
    device = module_device(agent) if device is None else torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    parts = []
    sizes = [min(batch, episodes - i) for i in range(0, episodes, batch)]
    for i, size in enumerate(tqdm(sizes, desc=desc, unit="batch", disable=not progress, leave=False)):
        env = WaterMaze(env_cfg, num_envs=size, seed=env_seed(seed, i, training=False),
                        device=device, dtype=dtype)
        extra = batch_kwargs(i, size) if batch_kwargs is not None else {}
        out = runner(agent, env, generator=generator, **kwargs, **extra)
        parts.append(out.without(*drop).to("cpu"))
    return EpisodeRecord.cat(parts)
