"""Typed experiment configs loaded from ``tasks/*.toml``.

A task file has these tables, each loaded into a frozen dataclass::

    name = "water_maze"      # optional, defaults to the file stem
    seed = 0                 # initialises the weights and the env generator

    [env]      # the task family's config: family = "water_maze" (default,
               #   snn_icl.envs.water_maze.WaterMazeConfig: lengths in pool radii, times in env
               #   steps) or a supervised in-context family (snn_icl.envs.family)
    [agent]    # the config of the agent's kind: snn_icl.models.LSNNConfig, LSTMConfig, ...
               #   (supervised families: a predictor kind, snn_icl.models.predictor)
    [train]    # TrainConfig
    [eval]     # EvalConfig
    [sweep]    # SweepConfig (optional: Slurm resources for `snn-icl sweep --backend slurm`)
    [protocol] # ProtocolConfig (optional: the evaluation protocol, default "dmp")

Every key is checked: an unknown key, a value of the wrong type or an impossible value stops
with one :class:`ConfigError` whose message names the file, the table and the key.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from snn_icl.envs import family as families
from snn_icl.envs.water_maze import WaterMazeConfig, reference_places
from snn_icl.models import (LSNNConfig, agent_class, agent_kinds, build_agent, build_predictor,
                            predictor_class, predictor_kinds)
from snn_icl.models.agent import add_place_head
from snn_icl.models.agent import check_value as _check
from snn_icl.models.lsnn_config import LSNNNetworkConfig
from snn_icl.models.predictor import add_store_head


SEED_MAX = 2**31 - 1
"""Largest seed: training and evaluation env seeds stay distinct and within torch's range."""
TEST_SEEDS = range(1_000_000, 1_001_000)
"""Evaluation seeds reserved for final numbers: never used while choosing a recipe, a network or
an analysis. Every other evaluation seed counts as a validation seed (seeds 0-20 and the
default [eval] seed were looked at while developing). See docs/design.md, "Seeds"."""


def seed_kind(seed: int) -> str:
    """"test" for a reserved evaluation seed (:data:`TEST_SEEDS`), else "validation"."""
    return "test" if seed in TEST_SEEDS else "validation"


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")
"""A task name: it becomes part of default output paths and figure titles."""

CONFIG_FILE = "config.toml"
"""Name of the resolved config that every run or simulation directory holds."""


class ConfigError(ValueError):
    """A task file or config value that cannot be used; the message names the key."""


OPTIMIZERS = ("adam", "adamw")
"""[train] optimizer: Adam with L2 weight decay, or AdamW (decoupled)."""
DEVICES = ("cpu", "cuda")
"""Devices a run can use (``[train] device``, ``--device``); "cuda:N" picks one GPU of several."""
DEVICE_PATTERN = re.compile(r"cpu|cuda(:[0-9]{1,3})?")


def resolve_device(name: str, where: str = "--device", *, available: bool = True) -> torch.device:
    """The torch device ``name`` ("cpu", "cuda" or "cuda:N"), checked against this machine
    (``available``; False checks the name only, for a device on another machine): an unknown
    name, or a GPU when torch sees none (or fewer), is a :class:`ConfigError` naming ``where``.
    Checked when a command runs, not when a task file is read, so a checkpoint trained on a GPU
    still loads where there is none."""
    if not isinstance(name, str) or DEVICE_PATTERN.fullmatch(name) is None:
        raise ConfigError(f"{where}: unknown device {name!r} (allowed: {', '.join(DEVICES)}, "
                          "or cuda:N)")
    device = torch.device(name)
    if device.type == "cuda" and available:
        if not torch.cuda.is_available():
            raise ConfigError(f"{where} {name}: no CUDA device is available on this machine "
                              f"(torch {torch.__version__}, CUDA build "
                              f"{torch.version.cuda or 'none'}); use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{where} {name}: this machine has {count} CUDA device(s) "
                              f"(cuda:0 to cuda:{count - 1})")
    return device


def _stage_at(starts: tuple[int, ...], iteration: int) -> int | None:
    """Index of the curriculum stage in force at ``iteration`` (the last start reached), None
    before the first."""
    stage = None
    for i, start in enumerate(starts):
        if iteration >= start:
            stage = i
    return stage


def _per_stage(values: tuple[Any, ...], stage: int) -> Any:
    """The value for ``stage`` of a key given as one value for every stage or one per stage."""
    return values[min(stage, len(values) - 1)]


def _check_one_or_per_stage(cfg: Any, starts_key: str, key: str) -> None:
    """``key`` holds one value, or one per stage of the curriculum ``starts_key``."""
    stages, values = len(getattr(cfg, starts_key)), getattr(cfg, key)
    _check(len(values) in (1, stages), key,
           f"must be one value or one per stage of {starts_key} ({stages})", values)


def _check_stages(cfg: Any, starts_key: str, value_keys: tuple[str, ...]) -> None:
    """A curriculum's stage starts (``starts_key``) increase from >= 0 and every key of
    ``value_keys`` holds one value per stage."""
    starts = getattr(cfg, starts_key)
    for key in value_keys:
        _check(len(getattr(cfg, key)) == len(starts), key,
               f"must have one value per stage of {starts_key} ({len(starts)})", getattr(cfg, key))
    _check(len(starts) >= 1 and starts[0] >= 0 and all(a < b for a, b in zip(starts, starts[1:])),
           starts_key, "must be increasing iterations >= 0", starts)


@dataclass(frozen=True)
class TrainConfig:
    """Meta-RL training (PPO through whole episodes)."""

    iterations: int = 2000
    """PPO iterations (one batch of episodes collected per iteration)."""
    batch_episodes: int = 64
    """Episodes collected in parallel per iteration."""
    lr: float = 1e-3
    """Adam learning rate."""
    lr_anneal_iterations: int = 0
    """Final iterations over which the learning rate falls linearly from lr towards lr_final
    (0: constant lr). PPO usually anneals (CleanRL's default anneals over the whole run)."""
    lr_final: float = 0.0
    """Learning rate the anneal heads for (reached just after the last iteration)."""
    discount: float = 0.97
    """Discount factor per env step."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """PPO ratio clip."""
    epochs: int = 2
    """Optimisation epochs per batch."""
    minibatches: int = 2
    """Minibatches per epoch (split over episodes, each keeps its whole sequence)."""
    entropy_coef: float = 0.003
    """Entropy bonus."""
    value_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clip."""
    weight_decay: float = 0.0
    """Weight decay lambda. With optimizer "adam": L2 regularisation (lambda * w added to every
    gradient, then rescaled by Adam's second moments). With "adamw": decoupled decay, w shrinks
    by lr * lambda per step whatever its gradient (Loshchilov & Hutter 2019)."""
    optimizer: str = "adam"
    """"adam" (weight_decay is an L2 term in the loss) or "adamw" (decoupled weight decay)."""
    track_every: int = 0
    """Supervised families: iterations between held-out checks logged in metrics.csv (the
    family's tracked measures, on fresh evaluation-parity tasks; 0: none)."""
    rate_reg: float = 0.0
    """Firing-rate regularisation (spiking agents, PPO and supervised families): rate_reg *
    mean_i (rate_i - target)^2, rates in spikes per ms (Bellec et al. 2018 keep LSNN rates near
    a target the same way)."""
    target_rate_hz: float = 20.0
    """Target firing rate of every neuron for rate_reg (Hz)."""
    checkpoint_minutes: float = 5.0
    """Wall time between checkpoints."""
    snapshot_every: int = 0
    """Iterations between weights-only snapshots kept in RUN/snapshots/ (0: none): the
    learning curve evaluated on held-out episodes afterwards (``snn-icl time-to-targets``)."""
    threads: int = 2
    """torch CPU threads (per process, see ``processes``)."""
    processes: int = 1
    """Data-parallel PPO on this many CPU processes (:mod:`snn_icl.train.data_parallel`): each
    collects ``batch_episodes / processes`` of every batch and the gradients are averaged, so one
    run uses ``processes`` cores. The water maze on the CPU only; a different stream of random
    draws from one process's, reproducible from the task file and seed."""
    device: str = "cpu"
    """Where the network, the env's tensors and Adam's state live: "cpu" (default), "cuda" or
    "cuda:N" (a GPU; the LSNN then runs its torch-ops fast path, the numba kernels being
    CPU-only). Random draws stay on CPU generators. ``snn-icl train --device`` overrides it;
    checkpoints are device-independent (docs/usage.md, "Devices")."""
    atlantis_fraction: tuple[float, ...] = (0.0,)
    """Fraction of training episodes with one Atlantis trial (trial index 1..4): its platform
    rises only after a random delay, so searching where it was pays and a ring search does not
    (Spooner et al. 1994). 0: none. One value per curriculum stage (see below)."""
    atlantis_max_delay: tuple[int, ...] = (30,)
    """Longest Atlantis delay (swim steps) per stage; delays are uniform in min..max."""
    atlantis_min_delay: tuple[int, ...] = (1,)
    """Shortest Atlantis delay (swim steps from the trial's start), one value or one per stage.
    Above the straight swim's length (about 10-13 steps) every Atlantis platform is still down
    when the swimmer arrives, so each such trial rewards staying at the place (1: the delay may
    end before it arrives, as in the shipped recipes)."""
    atlantis_dwell_reward: tuple[float, ...] = (0.0,)
    """Reward per swim step spent within two platform radii of an Atlantis platform that has not
    risen yet (one value, or one per stage): shaping that pays for staying where the platform
    was, the probe's measure, rather than passing through. Not an escape and not seen by the
    agent (its reward input stays the escape). 0: none, as in the shipped recipes."""
    atlantis_from_iteration: tuple[int, ...] = (0,)
    """Iteration at which each stage starts (increasing): a curriculum, e.g. learn the task
    first, then mix Atlantis trials in, then make them longer. A single number is one stage."""

    dark_max_steps: tuple[int, ...] = (0,)
    """Silent delays in training (activity-silent memory, docs/silent_memory.md): per stage, the
    longest dark delay (env steps) after trial ``dark_after_trial``; each episode's delay is
    uniform in 0..max and the episode is lengthened by max steps. 0: none. One value per stage
    of ``dark_from_iteration``."""
    dark_from_iteration: tuple[int, ...] = (0,)
    """Iteration at which each delay stage starts (increasing): a delay curriculum."""
    dark_after_trial: int = 0
    """0-based trial after whose rest the training delay comes (0: between trials 1 and 2)."""
    dark_rate_reg: tuple[float, ...] = (0.0,)
    """Penalty on firing during dark delays (spiking agents): dark_rate_reg * mean_i r_i^2, r_i
    the rate of neuron i over the dark steps of the batch in spikes per ms; pushes the delay
    towards silence (Salaj et al. 2021's regime) without touching the swim rates. One value, or
    one per stage of ``dark_from_iteration`` (memory first, silence later)."""
    dark_rate_reg_cue: bool = True
    """Whether ``dark_rate_reg`` also counts the recall cue (the delay's last ``[env]
    recall_cue_steps`` steps), as in every run before the long-cue one. False: the penalty
    covers the silent steps before the cue only, so that the response to the cue, which is how
    the thresholds can be read out, is not penalised as firing in the dark."""
    place_loss: float = 0.0
    """Weight of an auxiliary supervised loss (water maze): a linear decoder of the features the
    policy reads (:func:`snn_icl.models.agent.add_place_head`) is trained, with the network, to
    give the platform centre (squared error, pool radii^2, summed over x and y, mean over steps)
    at every env step after the platform was first reached in the episode, dark delays
    included: a dense signal to keep the place where PPO's reward is sparse and late. Training
    only: the agent never reads the decoder. 0: none, as in the shipped recipes."""
    place_loss_dark: bool = True
    """Whether the place loss also asks for the platform on dark-delay steps (the recall cue
    included), as in every run before this key. False: only on steps in the light, so that
    nothing rewards holding the place through the delay but what comes after it (trial 2's
    decoder error and reward, through the delay by backpropagation in time): the control that
    separates the loss's signal in the dark from the network's own memory."""
    store_loss: float = 0.0
    """Weight of an auxiliary supervised loss (in-context regression, ``lsnn`` predictor): a
    linear decoder (:func:`snn_icl.models.predictor.add_store_head`) of the least-squares
    weights of the context (:func:`snn_icl.envs.icl_regression.least_squares_weights`, the
    task's w once k >= d) from the adaptation ``a`` after the last example is trained, with the
    network, on ``0.5 x`` their squared error averaged over tasks and coordinates: a signal to
    store what one GD step cannot infer, where the query loss reaches the store only through
    the read-out. Training only: the prediction never reads the decoder. 0: none."""
    cued_fraction: float = 0.0
    """Share of training episodes with the platform visible (the cue channel, docs/protocols.md):
    each episode is cued with this probability (own generator: no other draw changes); needs
    ``[env] cue_channel = true``. 0: none."""
    beta_ramp_iterations: int = 0
    """LSNN agents: the adaptation strength rises linearly from 0 to ``[agent] beta`` over the
    first this-many iterations (iteration i, 0-based, trains with ``beta * i / N``), then stays
    at ``beta``: adaptation brought in slowly, e.g. in a network that first learnt the task
    with fixed thresholds (docs/silent_memory.md). It follows the iteration count, so a resumed
    run goes on where it was. A snapshot taken during the ramp is saved with the ``beta`` it was
    trained at (and no ramp), and loads and evaluates as that network. 0: ``beta`` throughout."""
    init_from: str = ""
    """Start from the weights of this checkpoint (a file, or "pretrained[:name]") instead of
    the task seed's initialisation: fine-tuning. Only the weights are taken (same agent kind
    and shapes; neuron settings such as beta come from this task); "": none."""
    init_optimizer: bool = False
    """With ``init_from``: take Adam's state (moments and step count) from that checkpoint too,
    so that a branch with a new schedule goes on where the source run was instead of restarting
    Adam, whose first steps are about ``lr`` per parameter whatever the gradient. The source
    must be a run's full checkpoint (a weights-only copy has no optimizer state) trained with
    the same ``optimizer`` and observation; this task's lr and weight decay stay in force."""

    def lr_at(self, iteration: int) -> float:
        """Adam's learning rate for the iteration with 0-based index ``iteration``."""
        start = self.iterations - self.lr_anneal_iterations
        if self.lr_anneal_iterations == 0 or iteration < start:
            return self.lr
        return self.lr + (self.lr_final - self.lr) * (iteration - start) / self.lr_anneal_iterations

    def beta_scale_at(self, iteration: int) -> float:
        """Share of ``[agent] beta`` in force at the 0-based ``iteration``
        (``beta_ramp_iterations``): ``iteration / N`` during the ramp, 1 after it."""
        n = self.beta_ramp_iterations
        return 1.0 if n == 0 or iteration >= n else iteration / n

    def atlantis_at(self, iteration: int) -> tuple[float, int, int] | None:
        """``(fraction, max_delay, min_delay)`` of the stage in force at ``iteration`` (delays in
        swim steps); None: no Atlantis."""
        stage = _stage_at(self.atlantis_from_iteration, iteration)
        if stage is None or self.atlantis_fraction[stage] == 0:
            return None
        return (self.atlantis_fraction[stage], self.atlantis_max_delay[stage],
                _per_stage(self.atlantis_min_delay, stage))

    def atlantis_dwell_at(self, iteration: int) -> float:
        """Dwell reward per swim step in force at ``iteration`` (0 outside the Atlantis stages)."""
        if self.atlantis_at(iteration) is None:
            return 0.0
        stage = _stage_at(self.atlantis_from_iteration, iteration)
        return float(_per_stage(self.atlantis_dwell_reward, stage))

    def dark_at(self, iteration: int) -> int:
        """Longest training dark delay (env steps) of the stage in force at ``iteration``."""
        stage = _stage_at(self.dark_from_iteration, iteration)
        return 0 if stage is None else self.dark_max_steps[stage]

    def dark_rate_reg_at(self, iteration: int) -> float:
        """The dark-rate penalty of the stage in force at ``iteration``."""
        stage = _stage_at(self.dark_from_iteration, iteration)
        if stage is None:
            return 0.0
        return _per_stage(self.dark_rate_reg, stage)

    def __post_init__(self) -> None:
        for key in ("iterations", "batch_episodes", "epochs", "minibatches", "threads",
                    "processes"):
            _check(getattr(self, key) >= 1, key, "must be >= 1", getattr(self, key))
        for key in ("lr", "clip", "max_grad_norm", "checkpoint_minutes"):
            _check(getattr(self, key) > 0, key, "must be > 0", getattr(self, key))
        _check(self.lr <= 1 and self.lr_final <= 1, "lr", "must be <= 1 (Adam's step size)",
               max(self.lr, self.lr_final))
        for key in ("discount", "gae_lambda"):
            _check(0 <= getattr(self, key) <= 1, key, "must be in [0, 1]", getattr(self, key))
        _check(0 < self.target_rate_hz < 1000, "target_rate_hz", "must be in (0, 1000)",
               self.target_rate_hz)
        _check(0 <= self.lr_anneal_iterations <= self.iterations, "lr_anneal_iterations",
               f"must be in [0, iterations = {self.iterations}]", self.lr_anneal_iterations)
        _check(0 <= self.beta_ramp_iterations <= self.iterations, "beta_ramp_iterations",
               f"must be in [0, iterations = {self.iterations}]", self.beta_ramp_iterations)
        for key in ("entropy_coef", "value_coef", "rate_reg", "lr_final", "weight_decay",
                    "track_every", "snapshot_every"):
            _check(getattr(self, key) >= 0, key, "must be >= 0", getattr(self, key))
        _check(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {OPTIMIZERS}",
               self.optimizer)
        _check_stages(self, "atlantis_from_iteration", ("atlantis_fraction", "atlantis_max_delay"))
        _check(all(0 <= f <= 1 for f in self.atlantis_fraction), "atlantis_fraction",
               "must be in [0, 1]", self.atlantis_fraction)
        _check(all(d >= 1 for d in self.atlantis_max_delay), "atlantis_max_delay", "must be >= 1",
               self.atlantis_max_delay)
        _check_one_or_per_stage(self, "atlantis_from_iteration", "atlantis_min_delay")
        _check_one_or_per_stage(self, "atlantis_from_iteration", "atlantis_dwell_reward")
        _check(all(math.isfinite(r) and r >= 0 for r in self.atlantis_dwell_reward),
               "atlantis_dwell_reward", "must be finite and >= 0", self.atlantis_dwell_reward)
        lows = [_per_stage(self.atlantis_min_delay, i)
                for i in range(len(self.atlantis_from_iteration))]
        _check(all(1 <= lo <= hi for lo, hi in zip(lows, self.atlantis_max_delay)),
               "atlantis_min_delay", "must be in [1, atlantis_max_delay] for every stage",
               self.atlantis_min_delay)
        _check_stages(self, "dark_from_iteration", ("dark_max_steps",))
        _check(all(d >= 0 for d in self.dark_max_steps), "dark_max_steps",
               "must be >= 0 (env steps)", self.dark_max_steps)
        _check(self.dark_after_trial >= 0, "dark_after_trial", "must be a trial index >= 0",
               self.dark_after_trial)
        _check(all(w >= 0 for w in self.dark_rate_reg), "dark_rate_reg", "must be >= 0",
               self.dark_rate_reg)
        _check_one_or_per_stage(self, "dark_from_iteration", "dark_rate_reg")
        _check(0 <= self.cued_fraction <= 1, "cued_fraction", "must be in [0, 1]",
               self.cued_fraction)
        _check(math.isfinite(self.place_loss) and self.place_loss >= 0, "place_loss",
               "must be finite and >= 0", self.place_loss)
        _check(math.isfinite(self.store_loss) and self.store_loss >= 0, "store_loss",
               "must be finite and >= 0", self.store_loss)
        _check(not self.init_optimizer or bool(self.init_from), "init_optimizer",
               "needs init_from (the checkpoint whose optimizer state to take)",
               self.init_optimizer)
        _check(isinstance(self.device, str) and DEVICE_PATTERN.fullmatch(self.device) is not None,
               "device", f"must be one of {list(DEVICES)} (or 'cuda:N')", self.device)
        _check(self.batch_episodes % self.minibatches == 0, "minibatches",
               f"must divide batch_episodes = {self.batch_episodes}", self.minibatches)
        _check(self.batch_episodes % (self.minibatches * self.processes) == 0, "processes",
               f"times minibatches = {self.minibatches} must divide batch_episodes = "
               f"{self.batch_episodes} (each process takes an equal share of every minibatch)",
               self.processes)
        _check(self.processes == 1 or self.device == "cpu", "processes",
               f"must be 1 on device {self.device!r} (data-parallel training is for CPU cores)",
               self.processes)


@dataclass(frozen=True)
class EvalConfig:
    """Frozen-weight evaluation on held-out platforms."""

    episodes: int = 256
    """Held-out episodes."""
    seed: int = 12345
    """Seed of the held-out platforms and release points (disjoint from training seeds)."""
    probe_trial: int = 3
    """0-based index of the probe trial (platform removed); 3 = after three trials."""
    deterministic: bool = True
    """Act with the policy mean instead of sampling."""

    def __post_init__(self) -> None:
        _check(self.episodes >= 1, "episodes", "must be >= 1", self.episodes)
        _check(self.probe_trial >= 0, "probe_trial", "must be >= 0", self.probe_trial)


@dataclass(frozen=True)
class SweepConfig:
    """Where ``snn-icl sweep --backend slurm`` runs each run of the task (each key: the flag of
    the same name wins; unset: the flag's default). Not part of a run's config: a sweep writes
    its runs' tasks without it."""

    partition: str | None = None
    """Slurm partition (--partition)."""
    time_min: int | None = None
    """Time limit per run, minutes (--time-min)."""
    cpus: int | None = None
    """CPUs per run, also its torch threads (--cpus)."""
    gpus: int | None = None
    """GPUs per run (--gpus)."""

    def __post_init__(self) -> None:
        for key in ("time_min", "cpus"):
            value = getattr(self, key)
            _check(value is None or value >= 1, key, "must be >= 1", value)
        _check(self.gpus is None or self.gpus >= 0, "gpus", "must be >= 0", self.gpus)
        _check(self.partition is None or re.fullmatch(r"[A-Za-z0-9_.,-]{1,100}", self.partition)
               is not None, "partition", "must be letters, digits and _ . , -", self.partition)


PROTOCOLS = ("dmp", "reversal", "probe", "reference", "cued")
"""Evaluation protocols: "dmp" (delayed matching to place: the standard evaluation, a new platform
per episode, and a probe run; optionally a dark inter-trial interval after every trial),
"reversal" (the platform moves at the start of one trial), "probe" (only the probe run, the
platform absent for probe_steps swim steps of probe_trial), "reference" (reference memory: as dmp,
but each episode's platform is one of a fixed set of n_places places, or with novel = true a
place away from all of them; the set also places the training episodes), "cued" (the visible
platform control: dmp episodes with the platform's place-cell code on the cue channel, measured
against the same episodes with the platform hidden; needs [env] cue_channel = true)."""


@dataclass(frozen=True)
class ProtocolConfig:
    """The protocol ``snn-icl evaluate`` runs (docs/protocols.md). Trial indices 0-based."""

    name: Literal["dmp", "reversal", "probe", "reference", "cued"] = "dmp"
    """Which protocol (:data:`PROTOCOLS`)."""
    reversal_trial: int = 4
    """Reversal: the trial index at whose start the platform moves (>= 1)."""
    reversal: Literal["opposite", "displacement"] = "opposite"
    """Reversal: where the platform moves: "opposite" (mirrored through the pool centre) or
    "displacement" (moved by ``displacement``, clipped onto the disk of platform centres)."""
    displacement: tuple[float, ...] = (0.0, 0.0)
    """Reversal "displacement": (dx, dy) in pool radii."""
    probe_trial: int | None = None
    """dmp and probe: the probe trial's index (default: the task's [eval] probe_trial)."""
    probe_steps: int | None = None
    """dmp and probe: swim steps without the platform (default: the whole trial)."""
    iti_dark_steps: int = 0
    """dmp and reference: env steps of dark "home cage" rest after every trial (no place input,
    no movement; Steele & Morris 1999); 0: none. The evaluation lengthens the episode by one
    delay per reported trial after the first, so the swims keep the time they have at 0."""
    n_places: int = 4
    """reference: how many places the platform is drawn from (>= 1)."""
    places_seed: int = 0
    """reference: the seed the set of places is a function of (``reference_places``)."""
    novel: bool = False
    """reference, evaluation only: platforms at novel places (continuous placement at least
    ``novel_min_distance`` from every place of the set) instead of the set's places."""
    novel_min_distance: float | None = None
    """reference, novel: least distance of a novel platform centre from every trained place
    (pool radii; default 2 platform radii: the platform zones do not overlap)."""

    def __post_init__(self) -> None:
        _check(self.name in PROTOCOLS, "name", f"must be one of {list(PROTOCOLS)}", self.name)
        _check(not isinstance(self.reversal_trial, bool) and isinstance(self.reversal_trial, int)
               and self.reversal_trial >= 1, "reversal_trial",
               "must be a trial index >= 1 (trial 0 has no platform to move from)",
               self.reversal_trial)
        _check(self.reversal in ("opposite", "displacement"), "reversal",
               "must be 'opposite' or 'displacement'", self.reversal)
        _check(len(self.displacement) == 2 and all(math.isfinite(v) for v in self.displacement),
               "displacement", "must be two finite numbers (dx, dy)", self.displacement)
        _check(self.reversal != "displacement" or any(self.displacement), "displacement",
               "must be non-zero for reversal = 'displacement'", self.displacement)
        _check(self.probe_trial is None or self.probe_trial >= 0, "probe_trial", "must be >= 0",
               self.probe_trial)
        _check(self.probe_steps is None or self.probe_steps >= 0, "probe_steps", "must be >= 0",
               self.probe_steps)
        _check(self.iti_dark_steps >= 0, "iti_dark_steps", "must be >= 0 (env steps)",
               self.iti_dark_steps)
        _check(self.iti_dark_steps == 0 or self.name in ("dmp", "reference"), "iti_dark_steps",
               f"is for the dmp and reference protocols, not {self.name!r}", self.iti_dark_steps)
        _check(self.n_places >= 1, "n_places", "must be >= 1", self.n_places)
        _check(0 <= self.places_seed <= SEED_MAX, "places_seed", f"must be in [0, {SEED_MAX}]",
               self.places_seed)
        _check(self.novel_min_distance is None or self.novel_min_distance >= 0,
               "novel_min_distance", "must be >= 0 (pool radii)", self.novel_min_distance)

    def keys(self) -> tuple[str, ...]:
        """The keys that mean something for this protocol (what the evaluation JSON records)."""
        dark = ("iti_dark_steps",) if self.iti_dark_steps else ()
        return {"dmp": ("name", "probe_trial", "probe_steps") + dark,
                "probe": ("name", "probe_trial", "probe_steps"),
                "reversal": ("name", "reversal_trial", "reversal", "displacement", "probe_trial",
                             "probe_steps"),
                "reference": ("name", "n_places", "places_seed", "novel", "novel_min_distance",
                              "probe_trial", "probe_steps") + dark,
                "cued": ("name",)}[self.name]

    def settings(self, env: WaterMazeConfig, **resolved: Any) -> dict[str, Any]:
        """What a result records of the protocol: its :meth:`keys` (``resolved`` put over them,
        e.g. the probe trial in force) and, for "reference", the places."""
        fields = {**dataclasses.asdict(self), **resolved}
        out = {key: fields[key] for key in self.keys()}
        if self.name == "reference":
            out["places"] = self.places(env).tolist()
        return out

    def places(self, env: WaterMazeConfig) -> "torch.Tensor":
        """reference: the set of places ``[n_places, 2]`` (pool radii) of ``places_seed``."""
        return reference_places(env, self.n_places, self.places_seed)

    def placement_kwargs(self, env: WaterMazeConfig, *, training: bool = False) -> dict[str, Any]:
        """The env's reset options that place the platform: for "reference" the set of places
        (and ``novel`` outside training: training episodes always use the set); {} otherwise."""
        if self.name != "reference":
            return {}
        kw: dict[str, Any] = {"places": self.places(env)}
        if self.novel and not training:
            kw["novel"] = True
            kw["novel_min_distance"] = self.novel_min_distance
        return kw

    def training_kwargs(self, task: "TaskConfig") -> dict[str, Any]:
        """The env's reset options of training episodes under this protocol: reference places,
        the reversal, the probe; dmp and cued add none (``iti_dark_steps`` acts in evaluation
        only, silent delays in training are ``[train] dark_max_steps``; visible platforms in
        training are ``[train] cued_fraction``)."""
        if self.name in ("reversal", "probe"):
            return self.reset_kwargs(task)
        return self.placement_kwargs(task.env, training=True)

    def probe(self, task: "TaskConfig") -> int:
        """The probe trial's index: ``probe_trial``, or the task's [eval] probe_trial."""
        return task.eval.probe_trial if self.probe_trial is None else self.probe_trial

    def reset_kwargs(self, task: "TaskConfig") -> dict[str, Any]:
        """The env's reset options of the protocol's episodes (for dmp and reference without the
        probe, which their probe run adds)."""
        if self.name in ("dmp", "reference"):
            kw = self.placement_kwargs(task.env)
            if self.iti_dark_steps:
                kw["iti_dark_steps"] = self.iti_dark_steps
            return kw
        if self.name == "cued":
            return {"cued": True}
        if self.name == "reversal":
            kw: dict[str, Any] = {"reversal_trial": self.reversal_trial,
                                  "reversal_platform": self.reversal}
            if self.reversal == "displacement":
                kw["reversal_displacement"] = self.displacement
            return kw
        return {"probe_trial": self.probe(task), "probe_steps": self.probe_steps}

    def env(self, env: WaterMazeConfig, delays: int) -> WaterMazeConfig:
        """The env of the protocol's episodes: with ``iti_dark_steps`` the episode is lengthened
        by ``delays`` inter-trial delays (so the first ``delays + 1`` trials keep the time they
        have without the dark); else ``env`` unchanged."""
        if not self.iti_dark_steps:
            return env
        return dataclasses.replace(env, episode_steps=env.episode_steps
                                   + delays * self.iti_dark_steps)


def check_protocol(protocol: ProtocolConfig, env: WaterMazeConfig, where: str) -> ProtocolConfig:
    """Checks that need the env: the protocol's trials can start within an episode, and the
    reference places (and novel places away from them) fit in the disk of platform centres."""
    for key in ("reversal_trial", "probe_trial"):
        value = getattr(protocol, key)
        if value is not None and value >= env.max_trials:
            raise ConfigError(f"{where}: {key} must be < {env.max_trials} (the most trials an "
                              f"episode of {env.episode_steps} steps can start), got {value!r}")
    if protocol.name == "cued" and not env.cue_channel:
        raise ConfigError(f"{where}: the cued protocol needs a network trained with the "
                          "visible-platform input ([env] cue_channel = true): pretrained:lsnn_cued, "
                          "pretrained:lstm_cued, pretrained:transformer_cued, or train "
                          "tasks/water_maze_cued.toml")
    if protocol.name == "reference":
        try:
            protocol.places(env)
        except ValueError as err:
            raise ConfigError(f"{where}: n_places: {err}") from None
        gap = protocol.novel_min_distance
        if gap is not None and gap >= 2 * env.platform_centre_radius:
            raise ConfigError(f"{where}: novel_min_distance must be < {2 * env.platform_centre_radius:g}"
                              f" (the diameter of the disk of platform centres), got {gap!r}")
    return protocol


def protocol_override(task: "TaskConfig", name: str | None = None,
                      settings: list[str] | tuple[str, ...] = ()) -> ProtocolConfig:
    """The task's [protocol] table with ``name`` and ``key=value`` settings (TOML values, bare
    words read as strings) put over it, validated; the command line's --protocol and
    --protocol-set."""
    table = {k: v for k, v in dataclasses.asdict(task.protocol).items() if v is not None}
    if name is not None:
        table["name"] = name
    for item in settings:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key:
            raise ConfigError(f"--protocol-set {item!r}: expected key=value")
        try:
            table[key] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            table[key] = text
    where = "--protocol"
    return check_protocol(build_dataclass(ProtocolConfig, table, where), task.env, where)


@dataclass(frozen=True)
class TaskConfig:
    """One experiment: env, agent, training and evaluation, plus the seed."""

    name: str = "task"
    seed: int = 0
    env: Any = field(default_factory=WaterMazeConfig)
    """The ``[env]`` config of the task family (:class:`WaterMazeConfig` by default)."""
    agent: Any = field(default_factory=LSNNConfig)
    """The config dataclass of the agent's kind (``agent.kind``), e.g. :class:`LSNNConfig`."""
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    """The evaluation protocol (optional table; default: "dmp")."""


_TABLES: dict[str, type | None] = {
    "env": None,  # the family's config class, see _env_config
    "agent": None,  # the kind's config class, see _agent_config
    "train": TrainConfig,
    "eval": EvalConfig,
    "sweep": SweepConfig,
    "protocol": ProtocolConfig,
}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ValueError(f"{key} must be one of {list(allowed)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{key} must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    if origin is tuple:  # tuple[X, ...]: a TOML array, or one value for a single entry
        (inner, _) = typing.get_args(tp)
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise ValueError(f"{key} must not be empty")
        return tuple(_coerce(v, inner, key) for v in items)
    return value


def build_dataclass(cls: type, table: dict[str, Any], where: str) -> Any:
    """Build the frozen dataclass ``cls`` from a TOML table, checking keys, types and values.

    ``where`` prefixes every message (e.g. ``"tasks/x.toml [env]"``).
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key '{key}' (known keys: {', '.join(sorted(names))})")
        try:
            kwargs[key] = _coerce(value, hints[key], key)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}: {err}") from None


def _env_config(table: Any, where: str) -> Any:
    """The ``[env]`` table as the config dataclass of its ``family`` (default water_maze)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table, got {table!r}")
    name = table.get("family", families.DEFAULT_FAMILY)
    try:
        cls = families.config_class(name)
    except ValueError as err:
        raise ConfigError(f"{where}: family: {err}") from None
    if cls is WaterMazeConfig:  # the water maze's table has no family key of its own
        table = {k: v for k, v in table.items() if k != "family"}
    return build_dataclass(cls, table, where)


def _agent_config(table: Any, where: str, legacy: bool, supervised: bool = False) -> Any:
    """The ``[agent]`` table as the config dataclass of its ``kind``.

    A key of another kind's config is an error naming that kind; with ``legacy`` (configs saved
    by versions that kept every kind's keys in one table) such keys are dropped."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table, got {table!r}")
    kind = table.get("kind", "lsnn")
    lookup, kinds = ((predictor_class, predictor_kinds) if supervised
                     else (agent_class, agent_kinds))
    try:
        cls = lookup(kind).config_class
    except ValueError as err:
        raise ConfigError(f"{where}: kind: {err}") from None
    own = {f.name for f in dataclasses.fields(cls)}
    table = dict(table)
    for key in list(table):
        if key in own:
            continue
        owners = [k for k in kinds()
                  if key in {f.name for f in dataclasses.fields(lookup(k).config_class)}]
        if owners and legacy:
            del table[key]
        elif owners:
            raise ConfigError(f"{where}: key '{key}' belongs to agent kind {owners[0]!r}, not "
                              f"{kind!r} (keys of {kind!r}: {', '.join(sorted(own))})")
    return build_dataclass(cls, table, where)


def task_from_dict(data: dict[str, Any], source: str = "<dict>", name: str = "task", *,
                   legacy: bool = False) -> TaskConfig:
    """Build a :class:`TaskConfig` from a parsed TOML document (``legacy``: see
    :func:`_agent_config`; for configs read back from checkpoints)."""
    known = {"name", "seed", *_TABLES}
    for key in data:
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{key}' (known keys: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {"name": data.get("name", name)}
    try:
        kwargs["name"] = _coerce(kwargs["name"], str, "name")
        kwargs["seed"] = _coerce(data.get("seed", 0), int, "seed")
        _check(NAME_PATTERN.fullmatch(kwargs["name"]) is not None, "name",
               "must be letters, digits and _ . + - (it names files and figure titles)",
               kwargs["name"])
        _check(0 <= kwargs["seed"] <= SEED_MAX, "seed", f"must be in [0, {SEED_MAX}]",
               kwargs["seed"])
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None
    for table, cls in _TABLES.items():
        where = f"{source} [{table}]"
        if table == "env":
            kwargs[table] = _env_config(data.get(table, {}), where)
        elif table == "agent":
            kwargs[table] = _agent_config(data.get(table, {}), where, legacy,
                                          families.supervised(kwargs["env"]) is not None)
        else:
            kwargs[table] = build_dataclass(cls, data.get(table, {}), where)
    train = kwargs["train"]
    agent = kwargs["agent"]
    if train.beta_ramp_iterations and not (isinstance(agent, LSNNNetworkConfig)
                                           and agent.beta > 0 and agent.n_adaptive > 0):
        raise ConfigError(f"{source} [train]: beta_ramp_iterations ramps the threshold adaptation "
                          "of an LSNN; it needs an lsnn agent with n_adaptive > 0 and beta > 0 "
                          f"(here {type(agent).__name__}"
                          + (f", n_adaptive {agent.n_adaptive}, beta {agent.beta})"
                             if isinstance(agent, LSNNNetworkConfig) else ")"))
    if families.supervised(kwargs["env"]) is None:
        check_protocol(kwargs["protocol"], kwargs["env"], f"{source} [protocol]")
        if not train.place_loss_dark and not (train.place_loss and any(train.dark_max_steps)):
            raise ConfigError(f"{source} [train]: place_loss_dark = false leaves the dark steps "
                              "out of the place loss; it needs place_loss > 0 and dark delays "
                              f"(dark_max_steps > 0; here {train.place_loss} and "
                              f"{list(train.dark_max_steps)})")
        if train.store_loss:
            raise ConfigError(f"{source} [train]: store_loss is for in-context regression "
                              "(an icl_regression task with an lsnn predictor), not the water "
                              "maze (its auxiliary loss is place_loss)")
        if any(train.dark_max_steps) and train.dark_after_trial + 1 >= kwargs["env"].max_trials:
            raise ConfigError(f"{source} [train]: dark_after_trial must be < "
                              f"{kwargs['env'].max_trials - 1} (a trial must follow the delay in "
                              f"an episode of {kwargs['env'].episode_steps} steps), got "
                              f"{train.dark_after_trial!r}")
        if not train.dark_rate_reg_cue and not (kwargs["env"].recall_cue_steps
                                                and any(train.dark_rate_reg)):
            raise ConfigError(f"{source} [train]: dark_rate_reg_cue = false leaves the recall cue "
                              "out of dark_rate_reg; it needs [env] recall_cue_steps > 0 and a "
                              "dark_rate_reg > 0 (here "
                              f"{kwargs['env'].recall_cue_steps} and {list(train.dark_rate_reg)})")
        if train.cued_fraction and not kwargs["env"].cue_channel:
            raise ConfigError(f"{source} [train]: cued_fraction needs the visible-platform input "
                              "([env] cue_channel = true)")
    elif train.store_loss and not _stores(kwargs["env"], agent):
        raise ConfigError(f"{source} [train]: store_loss needs a task family with a store target "
                          "(icl_regression) and a predictor with a store (kind lsnn); here "
                          f"{families.family_of(kwargs['env'])} and {agent.kind}")
    elif train.processes > 1:
        raise ConfigError(f"{source} [train]: processes > 1 (data-parallel PPO) is for the water "
                          f"maze, not a supervised family (got {train.processes})")
    elif (any(train.dark_max_steps) or any(train.dark_rate_reg) or train.cued_fraction
          or not train.dark_rate_reg_cue or train.place_loss or not train.place_loss_dark):
        raise ConfigError(f"{source} [train]: place_loss, place_loss_dark, dark_max_steps, "
                          "dark_rate_reg, dark_rate_reg_cue and cued_fraction are for the water "
                          "maze, not a supervised family")
    return TaskConfig(**kwargs)


def load_task(path: str | Path) -> TaskConfig:
    """Load and validate a task file. Raises :class:`ConfigError` naming the bad key.

    ``base = "other.toml"`` at the top of a file (a path relative to the file) starts from that
    task file's tables and changes only the keys this file sets: a recipe that differs from
    another in one stage is written as that difference (:func:`merge_task_data`)."""
    path = Path(path)
    data = _task_data(path, ())
    return task_from_dict(data, source=str(path), name=path.stem)


def _task_data(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The parsed TOML of ``path`` with its ``base`` chain merged in (``chain``: the files that
    named this one as their base, to stop a cycle)."""
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a task file (tasks/*.toml)")
    if not path.is_file():
        raise ConfigError(f"task file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: malformed TOML: {err}") from None
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base must be the path of a task file, got {base!r}")
    base_path = path.parent / base
    here = (*chain, path.resolve())
    if base_path.resolve() in here:
        raise ConfigError(f"{path}: base {base!r} leads back to {base_path} (a cycle of base files)")
    if not base_path.is_file():
        raise ConfigError(f"{path}: base task file not found: {base_path}")
    parent = _task_data(base_path, here)
    parent.pop("name", None)  # a derived file is named for itself
    return merge_task_data(parent, data)


def merge_task_data(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` (a parsed task file) with the keys of ``changes`` put in, table by table. An
    ``[agent]`` table of another ``kind`` replaces the base's whole table (another kind has
    other keys). :func:`replace` uses it on a resolved config."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for key, value in changes.items():
        old = out.get(key)
        if key in _TABLES and isinstance(value, dict) and isinstance(old, dict):
            base_kind = old.get("kind", "lsnn")  # _agent_config's default kind
            other_kind = key == "agent" and value.get("kind", base_kind) != base_kind
            out[key] = dict(value) if other_kind else {**old, **value}
        else:
            out[key] = value
    return out


def task_to_dict(task: TaskConfig) -> dict[str, Any]:
    """The resolved config as plain data (every default filled in), for saving as TOML; the
    agent table starts with its kind (inherited fields come first in a dataclass)."""
    data = dataclasses.asdict(task)
    agent = data["agent"]
    data["agent"] = {"kind": agent.pop("kind"), **agent}
    return data


def replace(task: TaskConfig, **tables: dict[str, Any]) -> TaskConfig:
    """A copy of ``task`` with some fields of some tables changed, validated again.

    Example: ``replace(task, env={"episode_steps": 50}, train={"iterations": 3})``.
    """
    data = merge_task_data(task_to_dict(task), tables)
    return task_from_dict(data, source="override", name=task.name)


def same_but_device(task: TaskConfig, like: TaskConfig) -> TaskConfig:
    """``task`` with the ``[train] device`` of ``like``: configs that differ only in the device
    describe the same run (a run may resume, a sweep rerun, on another device)."""
    return dataclasses.replace(task, train=dataclasses.replace(task.train,
                                                               device=like.train.device))


def same_but_length(task: TaskConfig, like: TaskConfig) -> TaskConfig:
    """``task`` with the ``[train] device`` and ``iterations`` of ``like``: a run resumed with
    another length is the same run trained further. Curricula and delays are set by iteration
    number; the lr anneal runs over the last ``lr_anneal_iterations`` of the new length (an
    annealed run, extended, goes back to ``lr`` and anneals again at its new end)."""
    return dataclasses.replace(task, train=dataclasses.replace(
        task.train, device=like.train.device, iterations=like.train.iterations))


def _stores(env: Any, agent: Any) -> bool:
    """Whether ``store_loss`` can train this family's predictor of kind ``agent.kind``."""
    family = families.supervised(env)
    return (family is not None and family.store_target is not None
            and hasattr(predictor_class(agent.kind), "forward_with_store"))


def make_agent(task: TaskConfig, seed: int | None = None) -> Any:
    """The task's agent (a sequence predictor for a supervised family) with weights initialised
    from ``seed`` (default: the task's seed)."""
    seed = task.seed if seed is None else seed
    if families.supervised(task.env) is not None:
        predictor = build_predictor(task.agent, task.env.obs_dim, task.env.out_dim,
                                    task.env.episode_steps, seed=seed)
        if task.train.store_loss > 0:
            _add_decoder(seed, add_store_head, predictor, task.env.d)
        return predictor
    # the longest training episode: a silent delay lengthens it (the transformer's position
    # table must cover every step it is trained on)
    steps = task.env.episode_steps + max(task.train.dark_max_steps)
    agent = build_agent(task.agent, task.env.obs_dim, steps, seed=seed)
    if task.train.place_loss > 0:
        _add_decoder(seed, add_place_head, agent)
    return agent


def _add_decoder(seed: int, add: Any, model: Any, *args: Any) -> None:
    """``add(model, *args)``: a training-only decoder, drawn from ``seed`` after the network's own
    initialisation and on a forked RNG, so the network's weights equal a run's without it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        add(model, *args)


RECORD_FLOATS_PER_STEP = 26
"""Floats an episode record keeps per episode and env step without spikes (positions, trial,
reward, latency, action, ...)."""


def training_bytes(task: TaskConfig) -> int:
    """Estimated memory of one training iteration (bytes, float32): the batch's episodes, each
    ``episode_steps`` env steps of what the agent kind holds per step (``floats_per_step`` of its
    config), and the parameters with their Adam state."""
    env, agent = task.env, task.agent
    floats = getattr(agent, "floats_per_step", None)
    per_step = (floats(env.obs_dim, env.episode_steps) if floats else 4 * env.obs_dim)
    per_step += RECORD_FLOATS_PER_STEP
    # parameters, gradients and Adam's two moments
    return int(4 * (task.train.batch_episodes * env.episode_steps * per_step
                    + 4 * _weight_floats(task)))


def weight_bytes(task: TaskConfig) -> int:
    """Estimated memory of the agent's parameters alone (bytes, float32)."""
    return int(4 * _weight_floats(task))


def _weight_floats(task: TaskConfig) -> float:
    weights = getattr(task.agent, "weight_floats", None)
    return weights(task.env.obs_dim, task.env.episode_steps) if weights else 0.0


def episodes_bytes(task: TaskConfig, episodes: int, record: bool = False) -> int:
    """Estimated memory of ``episodes`` recorded episodes kept together (bytes): the record's
    fields, with ``record`` the spikes and thresholds of a spiking agent per ms, and the
    agent's weights."""
    per_step = RECORD_FLOATS_PER_STEP + task.env.obs_dim
    if record and hasattr(task.agent, "n"):
        per_step += 5 * task.agent.ms_per_step * task.agent.n  # bool spikes + float thresholds
    return int(4 * (episodes * task.env.episode_steps * per_step + _weight_floats(task)))


def available_bytes() -> int | None:
    """Memory available to a new allocation now (Linux: MemAvailable), None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def require_memory(need: int, what: str, hint: str) -> None:
    """Refuse, before allocating, work whose estimate ``need`` (bytes) exceeds the memory
    available now; the message gives the estimate, what it is for and what to change."""
    available = available_bytes()
    if available is not None and need > available:
        raise ConfigError(f"{what} needs about {need / 2**30:.1f} GiB, more than the "
                          f"{available / 2**30:.1f} GiB available; {hint}")
