"""Meta-RL with PPO through whole episodes (RL^2-style), for any agent of the Agent protocol.

One iteration, read top to bottom:

1. collect ``batch_episodes`` whole episodes with the current weights (no gradient); the agent's
   state carries over between trials of an episode and is reset between episodes.
   With ``[protocol] name = "reference"`` every platform is one of the task's fixed set of
   places (reference memory: learnable in the weights), through the env's reset options;
2. generalised advantage estimates (GAE) per env step; the episode end is terminal;
3. ``epochs`` passes over ``minibatches`` groups of whole episodes: re-run each episode from its
   start (backpropagation through the whole episode) and take an Adam step on the clipped PPO
   objective + value loss - entropy bonus, with global gradient-norm clipping; the learning rate
   is ``train.lr_at(iteration)`` (constant, or annealed linearly over the last iterations).

Randomness: one ``torch.Generator`` (action noise, input spikes, minibatch order) whose state is
part of :class:`TrainState`, and env seeds derived from (seed, iteration). Restoring a TrainState
therefore continues a run exactly as if it had never stopped.

Cores: with ``[train] processes = N`` the batch is collected and its gradients computed by N
processes, averaged at every step (:mod:`snn_icl.train.data_parallel`); this module's functions
take the collective steps as an optional ``sync``.

Devices: everything follows the agent. The env is created on the agent's device (``[train]
device``, see :func:`snn_icl.train.run_dir.train_run`), the rollout's tensors and Adam's state
live there; the generators stay on the CPU (draws are made there and moved), so a seed draws the
same platforms, release points, noise and minibatches on every device. The behaviour metrics of
a batch are computed on a CPU copy of its behaviour fields.

Nothing here writes files: callers get a :class:`TrainState` and metrics after each iteration and
decide what to keep (see :mod:`snn_icl.train.run_dir`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch
from torch import Tensor, nn

from snn_icl.config import TaskConfig
from snn_icl.envs.water_maze import WaterMaze
from snn_icl.models.agent import gaussian_entropy, gaussian_log_prob, module_device
from snn_icl.episodes.rollout import env_seed, rollout
from snn_icl.episodes.measures import training_metrics
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.train.data_parallel import Sync, data_parallel, mean_stats
from snn_icl.train.errors import NonFiniteError
from snn_icl.train.loop import run_iterations


@dataclass
class TrainState:
    """Everything needed to continue a run exactly."""

    agent: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    iteration: int = 0
    """Iterations completed."""
    episodes: int = 0
    """Training episodes collected so far."""
    wall_time_s: float = 0.0
    """Training wall time so far (seconds, summed over resumed segments)."""
    curriculum: dict[str, Any] | None = None
    """State of a curriculum paced by training (a supervised family's
    :class:`~snn_icl.envs.family.Curriculum`; JSON-able, checkpointed); None without one."""
    stopped_by: str | None = None
    """The signal that stopped this training session cleanly ("SIGTERM"; not checkpointed:
    it describes the session, not the run), None otherwise."""


def rate_penalty(rate: Tensor, cfg: Any) -> Tensor:
    """``rate_reg * mean_i (rate_i - target)^2``: rates [..., n] in spikes per ms against
    ``target_rate_hz`` ([train] rate_reg; PPO and the supervised trainer)."""
    return cfg.rate_reg * (rate - cfg.target_rate_hz * 1e-3).pow(2).mean()


def new_state(task: TaskConfig, agent: nn.Module) -> TrainState:
    """A fresh run: Adam (or AdamW, [train] optimizer) on the agent's parameters, generator
    seeded from the task seed."""
    adam = torch.optim.AdamW if task.train.optimizer == "adamw" else torch.optim.Adam
    optimizer = adam(agent.parameters(), lr=task.train.lr, eps=1e-5,
                     weight_decay=task.train.weight_decay)
    generator = torch.Generator().manual_seed(task.seed + 1)
    return TrainState(agent, optimizer, generator)


def gae(rewards: Tensor, values: Tensor, discount: float, lam: float) -> tuple[Tensor, Tensor]:
    """Advantages and returns [T, B] for episodes that end (terminally) after step T-1."""
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        next_value = values[t + 1] if t + 1 < rewards.shape[0] else torch.zeros_like(values[t])
        delta = rewards[t] + discount * next_value - values[t]
        last = delta + discount * lam * last
        advantages[t] = last
    return advantages, advantages + values


def _check_finite(name: str, value: Tensor, iteration: int) -> None:
    if not bool(torch.isfinite(value).all()):
        raise NonFiniteError(f"non-finite {name} at iteration {iteration + 1}: training stopped")


def ppo_update(state: TrainState, batch: dict[str, Tensor], task: TaskConfig,
               sync: Sync | None = None) -> dict[str, float]:
    """The PPO epochs over one batch of whole episodes; returns mean losses and diagnostics.

    With ``sync`` (data-parallel, :mod:`snn_icl.train.data_parallel`) ``batch`` is this process's
    share: advantages are normalised over every process's minibatch, gradients averaged over the
    processes, and process 0 (the one with an optimizer) steps and sends the weights."""
    cfg = task.train
    agent, opt = state.agent, state.optimizer
    adv, ret = gae(batch.reward, batch.value, cfg.discount, cfg.gae_lambda)
    n_episodes = batch.reward.shape[1]
    size = n_episodes // cfg.minibatches
    stats: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "entropy": [],
                                     "approx_kl": [], "clip_frac": [], "grad_norm": []}
    place, known = (place_targets(batch, cfg.place_loss_dark) if cfg.place_loss > 0
                    else (None, None))
    if place is not None:  # a column from the first row on, NaN while no platform is known
        stats["place_error"] = []
    agent.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(n_episodes, generator=state.generator)
        for start in range(0, n_episodes, size):
            mb = order[start:start + size].to(adv.device)
            policy = agent.evaluate_sequence(batch.net_input[:, mb], None)
            log_prob = gaussian_log_prob(policy, batch.action[:, mb])
            ratio = (log_prob - batch.log_prob[:, mb]).exp()
            a = adv[:, mb]
            mean, std = (a.mean(), a.std()) if sync is None else sync.moments(a)
            a = (a - mean) / (std + 1e-8)
            pg_loss = torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
            v_loss = 0.5 * (policy.value - ret[:, mb]).pow(2).mean()
            entropy = gaussian_entropy(policy)
            loss = pg_loss + cfg.value_coef * v_loss - cfg.entropy_coef * entropy
            if policy.rate is not None:
                if cfg.rate_reg > 0:
                    loss = loss + rate_penalty(policy.rate, cfg)
                stats.setdefault("rate_hz", []).append(policy.rate.mean().item() * 1e3)
                loss = loss + _dark_rate_terms(policy, batch, mb,
                                               cfg.dark_rate_reg_at(state.iteration), stats,
                                               0 if cfg.dark_rate_reg_cue
                                               else task.env.recall_cue_steps)
            if place is not None:
                loss = loss + cfg.place_loss * _place_error(agent, policy, place[:, mb],
                                                            known[:, mb], stats)
            _check_finite("loss", loss.detach(), state.iteration)
            agent.zero_grad(set_to_none=True)
            loss.backward()
            if sync is not None:  # a helper's NaN reaches process 0 in the mean loss
                _check_finite("loss", sync.gradients(agent, loss), state.iteration)
            if opt is not None:  # a data-parallel helper has none: process 0 steps for all
                grad_norm = nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
                _check_finite("gradient norm", grad_norm, state.iteration)
                opt.step()
                stats["grad_norm"].append(float(grad_norm))
            if sync is not None:
                sync.weights(agent)
            with torch.no_grad():
                log_ratio = log_prob - batch.log_prob[:, mb]
                stats["approx_kl"].append(float(((ratio - 1) - log_ratio).mean()))
                stats["clip_frac"].append(float(((ratio - 1).abs() > cfg.clip).float().mean()))
            stats["policy_loss"].append(pg_loss.item())
            stats["value_loss"].append(v_loss.item())
            stats["entropy"].append(entropy.item())
    for p in agent.parameters():
        _check_finite("weights", p.detach(), state.iteration)
    return {k: sum(v) / len(v) if v else math.nan for k, v in stats.items()
            if v or k == "place_error"}


def place_targets(batch: EpisodeRecord, dark: bool = True) -> tuple[Tensor, Tensor]:
    """What the place loss asks for: the platform centre in force at each env step [T, B, 2]
    (pool radii) and where it is known [T, B] bool: the same platform was reached at an earlier
    step of the episode (after a reversal the new one only once it is found; dark steps count
    unless ``dark`` is False: ``[train] place_loss_dark``)."""
    plat = batch.platforms()[:-1]  # [T, B, 2]: step t acts where position index t is
    known = torch.zeros(batch.escaped.shape, dtype=torch.bool, device=plat.device)
    last = torch.full_like(plat[0], float("nan"))  # NaN equals nothing: unknown until reached
    for t in range(plat.shape[0]):
        known[t] = (last == plat[t]).all(-1)
        last = torch.where(batch.escaped[t, :, None], plat[t], last)
    if not dark and batch.dark is not None:
        known &= ~batch.dark.to(known.device)
    return plat, known


def _place_error(agent: nn.Module, policy: Any, place: Tensor, known: Tensor,
                 stats: dict[str, list[float]]) -> Tensor | float:
    """Squared error of the place decoder (pool radii^2, x and y summed) over the steps where the
    platform is ``known`` [T, b]; logged as ``place_error``."""
    if not bool(known.any()):
        return 0.0
    error = (agent.place_head(policy.features) - place).pow(2).sum(-1)[known].mean()
    stats.setdefault("place_error", []).append(error.item())
    return error


def dark_left(dark: Tensor) -> Tensor:
    """Dark steps left in each step's delay, counting the step itself, from the dark mask
    ``dark`` [T, B] (bool): 0 in the light, 1 on a delay's last step (the env's ``dark_left``
    as the step began)."""
    left = torch.zeros(dark.shape, dtype=torch.long, device=dark.device)
    after = torch.zeros_like(left[0])
    for t in range(dark.shape[0] - 1, -1, -1):
        after = torch.where(dark[t], after + 1, torch.zeros_like(after))
        left[t] = after
    return left


def _dark_rate_terms(policy: Any, batch: EpisodeRecord, mb: Tensor, weight: float,
                     stats: dict[str, list[float]], cue_steps: int = 0) -> Tensor | float:
    """Rates during dark delays and during the rest (logged, Hz) and, with ``weight``, the
    penalty ``weight * mean_i r_i^2`` on each neuron's rate r_i (spikes per ms) over the dark
    steps, the last ``cue_steps`` of each delay (the recall cue) left out of the penalty."""
    if policy.rate_by_step is None or batch.dark is None:
        return 0.0
    dark = batch.dark[:, mb]  # [T, b] bool
    if not bool(dark.any()):
        return 0.0
    by_step = policy.rate_by_step  # [T, b, n]

    def rate_over(where: Tensor) -> Tensor:  # [n] each neuron's mean rate over the steps `where`
        w = where.to(by_step.dtype)
        return (by_step * w[..., None]).sum((0, 1)) / w.sum().clamp(min=1)

    dark_rate = rate_over(dark)
    stats.setdefault("rate_dark_hz", []).append(dark_rate.mean().item() * 1e3)
    stats.setdefault("rate_light_hz", []).append(rate_over(~dark).mean().item() * 1e3)
    if weight <= 0:
        return 0.0
    if cue_steps:
        silent = dark_left(dark) > cue_steps
        if not bool(silent.any()):
            return 0.0
        dark_rate = rate_over(silent)
    return weight * dark_rate.pow(2).mean()


def collect(state: TrainState, task: TaskConfig, *, episodes: int | None = None,
            seed: int | None = None) -> dict[str, Tensor]:
    """One batch of whole training episodes with the current weights (no gradient):
    ``episodes`` of them (default ``batch_episodes``; a data-parallel process's share) from the
    env seed ``seed`` (default: the iteration's)."""
    state.agent.eval()
    cfg = task.train
    episodes = cfg.batch_episodes if episodes is None else episodes
    seed = env_seed(task.seed, state.iteration, training=True) if seed is None else seed
    longest = cfg.dark_at(state.iteration)
    env_cfg = replace(task.env, episode_steps=task.env.episode_steps + longest)
    env = WaterMaze(env_cfg, num_envs=episodes, seed=seed,
                    device=module_device(state.agent))
    atlantis = cfg.atlantis_at(state.iteration)
    options: dict[str, Any] = {} if atlantis is None else {"atlantis": atlantis}
    dwell = cfg.atlantis_dwell_at(state.iteration)
    if dwell:
        options["dwell_reward"] = dwell
    if longest:  # silent delays: own generator, so the platforms and releases stay the same
        draw = torch.Generator().manual_seed(seed + 1)
        options.update(dark_after_trial=cfg.dark_after_trial,
                       dark_steps=torch.randint(0, longest + 1, (episodes,),
                                                generator=draw))
    if cfg.cued_fraction:  # visible-platform episodes: own generator, as the delays
        draw = torch.Generator().manual_seed(seed + 2)
        options["cued"] = torch.rand(episodes, generator=draw) < cfg.cued_fraction
    # the [protocol] table: reference places, a reversal or a probe in every training episode
    options.update(task.protocol.training_kwargs(task))
    return rollout(state.agent, env, generator=state.generator, **options)


def behaviour(batch: EpisodeRecord) -> EpisodeRecord:
    """The batch without its training-only tensors, on the CPU (what the metrics read)."""
    return batch.without("obs", "net_input", "action_mean", "value", "log_prob", "z",
                         "A").to("cpu")


def iteration_metrics(batch: EpisodeRecord, env: Any, losses: dict[str, float]) -> dict[str, float]:
    """Behaviour of the collected batch (:func:`snn_icl.episodes.measures.training_metrics`:
    goals, median latency of trial 1, pooled median of trials 2-4) + losses; measured on the CPU."""
    return {**training_metrics(behaviour(batch), env), **losses}


def helper_iteration(task: TaskConfig, agent: nn.Module, sync: Sync,
                     plan: tuple[int, int, int]) -> None:
    """A data-parallel helper's share of an iteration: collect its episodes with the seeds of
    ``plan`` (iteration, generator seed, env seed), take part in the update, and send its
    diagnostics and behaviour to process 0 (the same order as :func:`train`'s step)."""
    iteration, gen_seed, seed = plan
    if task.train.beta_ramp_iterations:
        agent.net.set_beta(task.agent.beta * task.train.beta_scale_at(iteration))
    state = TrainState(agent, None, torch.Generator().manual_seed(gen_seed),  # type: ignore[arg-type]
                       iteration=iteration)
    batch = collect(state, task, episodes=task.train.batch_episodes // sync.world, seed=seed)
    sync.gather(ppo_update(state, batch, task, sync))
    sync.gather(behaviour(batch))


def train(task: TaskConfig, state: TrainState, *,
          on_iteration: Callable[[TrainState, dict[str, float]], None] | None = None,
          stop_after: int | None = None, progress: bool = True) -> TrainState:
    """Run PPO iterations until ``task.train.iterations`` (or ``stop_after`` more) are done.

    ``on_iteration(state, metrics)`` is called after every completed iteration, with the weights
    already checked finite; a :class:`NonFiniteError` is raised before it for a bad iteration.
    """
    def postfix(m: dict[str, float]) -> dict[str, str]:
        return {"goals": f"{m['goals_per_episode']:.2f}", "lat1": f"{m['latency_trial1']:.0f}",
                "lat2_4": f"{m['latency_trials2_4']:.0f}"}

    with data_parallel(task, state.agent, helper_iteration) as sync:
        def step(s: TrainState) -> tuple[Any, dict[str, float]]:
            if sync is None:
                batch = collect(s, task)
                return batch, ppo_update(s, batch, task)
            sync.plan(s.iteration, s.generator)
            batch = collect(s, task, episodes=task.train.batch_episodes // sync.world)
            losses = mean_stats(sync.gather(ppo_update(s, batch, task, sync)))
            return EpisodeRecord.cat(sync.gather(behaviour(batch))), losses

        return run_iterations(task, state, step,
                              lambda s, r: iteration_metrics(r[0], task.env, r[1]), postfix,
                              on_iteration=on_iteration, stop_after=stop_after,
                              progress=progress)
