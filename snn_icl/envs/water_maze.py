"""Batched Morris water maze in torch: config, state, pure dynamics, and the ``WaterMaze`` class.

The dynamics are written once, as pure functions on a NamedTuple of tensors
(:func:`reset_state`, :func:`step_state`, :func:`observe`, :func:`move_platform`);
:class:`WaterMaze` only holds a state and a ``torch.Generator`` and wraps them.
The specification is the docstring of :class:`WaterMaze`.

Units: lengths in pool radii (the default pool has radius 1), times in env steps.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from snn_icl.envs.encoding import place_cell_activity, place_cell_centres

RELEASE_MODES = ("random", "cardinal")
RECALL_CUE_INPUTS = ("place_cells", "channel")


@dataclass(frozen=True)
class WaterMazeConfig:
    """Water-maze parameters. Lengths in pool radii, times in env steps."""

    pool_radius: float = 1.0
    """R: radius of the circular pool centred at the origin (length)."""
    platform_radius: float = 0.1
    """Radius of the hidden platform (length)."""
    platform_margin: float = 0.1
    """Minimum clearance between the platform's edge and the wall (length); the platform centre is
    drawn uniformly over the disk of radius ``pool_radius - platform_radius - platform_margin``."""
    v_max: float = 0.1
    """Maximum displacement per env step (length / step)."""
    trial_timeout: int = 60
    """Swim steps after which an unfinished trial times out (steps)."""
    rest_steps: int = 3
    """Steps spent on the platform after a trial ends, actions ignored (steps)."""
    episode_steps: int = 200
    """Env steps per episode, rest steps included (steps)."""
    place_grid: int = 7
    """Place-cell centres on a ``place_grid x place_grid`` grid over [-R, R]^2 (count per side)."""
    place_sigma: float = 0.25
    """Width of the Gaussian place-cell tuning (length)."""
    release: str = "random"
    """Release points: "random" (uniform angle on the wall) or "cardinal" (one of Morris' N/E/S/W
    points, drawn uniformly)."""
    cue_channel: bool = False
    """Add the visible-platform (cued) input: ``place_grid**2`` more observation entries, the
    place-cell code of the platform centre, active on cued trials (``reset(cued=True)``) while
    the platform is present. Off by default: ``obs_dim`` and the shipped agents are unchanged."""
    recall_cue_steps: int = 0
    """The last this many steps of every dark delay show a recall cue instead of nothing: every
    place cell at ``recall_cue_level``, a diffuse flash that is the same in every episode and
    carries no place, like the recall signal of the store-recall tasks (Bellec et al. 2018). It
    probes every neuron's threshold at once, so that a memory held in adaptation can show in the
    response. The steps stay part of the delay (actions ignored). 0: no cue (steps)."""
    recall_cue_level: float = 0.1
    """Place-cell activity during the recall cue; 0.07 x 49 cells is about the summed activity of
    the place code at one position (sigma 0.25 on the 7 x 7 grid). With ``recall_cue_input =
    "channel"``: the channel's value during the cue."""
    recall_cue_input: str = "place_cells"
    """Where the recall cue enters: "place_cells" (every place cell lit, through the place cells'
    input weights) or "channel" (one more observation entry, last, at ``recall_cue_level`` on the
    cue steps and 0 otherwise, with input weights of its own: the recall command of the
    store-recall tasks, which the network can aim at any neurons; the place cells stay dark)."""

    def __post_init__(self) -> None:
        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"WaterMazeConfig.{name} must be a finite number, got {value!r}")
            return float(value)

        def integer(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"WaterMazeConfig.{name} must be an integer, got {value!r}")
            if value < minimum:
                raise ValueError(f"WaterMazeConfig.{name} must be >= {minimum}, got {value!r}")

        for name in ("pool_radius", "platform_radius", "v_max", "place_sigma"):
            if number(name) <= 0:
                raise ValueError(f"WaterMazeConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if number("platform_margin") < 0:
            raise ValueError(f"WaterMazeConfig.platform_margin must be >= 0, got {self.platform_margin!r}")
        if self.platform_centre_radius < 0:
            raise ValueError(
                f"WaterMazeConfig.platform_radius={self.platform_radius!r} plus "
                f"platform_margin={self.platform_margin!r} exceed pool_radius={self.pool_radius!r}: "
                "no platform centre can be drawn"
            )
        integer("trial_timeout", 1)
        integer("rest_steps", 0)
        integer("episode_steps", 1)
        integer("place_grid", 1)
        if self.release not in RELEASE_MODES:
            raise ValueError(f"WaterMazeConfig.release must be one of {RELEASE_MODES}, got {self.release!r}")
        integer("recall_cue_steps", 0)
        if number("recall_cue_level") < 0:
            raise ValueError(f"WaterMazeConfig.recall_cue_level must be >= 0, got {self.recall_cue_level!r}")
        if self.recall_cue_input not in RECALL_CUE_INPUTS:
            raise ValueError(f"WaterMazeConfig.recall_cue_input must be one of {RECALL_CUE_INPUTS}, "
                             f"got {self.recall_cue_input!r}")
        if not isinstance(self.cue_channel, bool):
            raise ValueError(f"WaterMazeConfig.cue_channel must be true or false, got {self.cue_channel!r}")

    @property
    def obs_blocks(self) -> tuple[tuple[str, int], ...]:
        """The observation's parts in order, (name, entries): place cells, contact, previous
        reward, then the cue cells (``cue_channel``), then the recall-cue channel."""
        g2 = self.place_grid**2
        return ((("place_cells", g2), ("contact", 1), ("prev_reward", 1))
                + ((("cue_cells", g2),) if self.cue_channel else ())
                + ((("recall_cue", 1),) if self.recall_cue_channel else ()))

    @property
    def recall_cue_channel(self) -> bool:
        """Whether the recall cue has an observation entry of its own."""
        return self.recall_cue_steps > 0 and self.recall_cue_input == "channel"

    @property
    def obs_dim(self) -> int:
        """Observation size: place cells + contact + previous reward (+ ``place_grid**2`` cue
        cells with ``cue_channel``, + 1 with the recall cue on a channel of its own)."""
        return sum(size for _, size in self.obs_blocks)

    @property
    def platform_centre_radius(self) -> float:
        """Radius of the disk over which platform centres are drawn (length)."""
        return self.pool_radius - self.platform_radius - self.platform_margin

    @property
    def max_trials(self) -> int:
        """Upper bound on the number of trials started in one episode.

        A trial lasts at least one swim step plus ``rest_steps``, so trial index k starts no earlier
        than env step ``k * (1 + rest_steps)``.
        """
        return self.episode_steps // (1 + self.rest_steps) + 1


class WaterMazeState(NamedTuple):
    """State of B water-maze episodes. Lengths in pool radii, counts in env steps."""

    position: torch.Tensor  # [B, 2] agent position, |position| <= R
    platform: torch.Tensor  # [B, 2] platform centre of the current trial
    pending_platform: torch.Tensor  # [B, 2] platform from the next trial start on (reversal)
    reversal_trial: torch.Tensor  # [B] long, trial index at whose start the platform moves, -1 none
    reversal_platform: torch.Tensor  # [B, 2] platform from the start of trial reversal_trial on
    platform_present: torch.Tensor  # [B] bool, False while swimming in a probe trial
    release: torch.Tensor  # [B, 2] release point of the current trial
    release_angles: torch.Tensor  # [B, max_trials] release angle (radians) of each trial index
    probe_trial: torch.Tensor  # [B] long, trial index without platform, -1 for none
    probe_steps: torch.Tensor  # [B] long, swim steps of the probe trial without platform
    dark_after: torch.Tensor  # [B] long, trial index followed by a dark delay, -1 for none
    dark_steps: torch.Tensor  # [B] long, env steps of that dark delay
    dark_left: torch.Tensor  # [B] long, dark steps left (0 outside the delay)
    iti_dark_steps: torch.Tensor  # [B] long, env steps of dark after every trial (0: none)
    cued: torch.Tensor  # [B] bool, the platform is visible (cue channel) in this episode
    step: torch.Tensor  # [B] long, env steps taken in this episode
    trial: torch.Tensor  # [B] long, 0-based index of the current trial
    trial_step: torch.Tensor  # [B] long, swim steps taken in the current trial
    rest_left: torch.Tensor  # [B] long, rest steps left on the platform (0 while swimming)
    prev_reward: torch.Tensor  # [B] escape reward of the last step (0 after reset)
    dwell_reward: torch.Tensor  # [B] reward per swim step near an absent platform (0: none)


# ----------------------------------------------------------------------------- helpers


def release_point(cfg: WaterMazeConfig, angle: torch.Tensor) -> torch.Tensor:
    """Point on the wall at ``angle`` (radians; 0 = East, pi/2 = North): ``R (cos, sin)``."""
    return cfg.pool_radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)


def _release_angles_from_uniform(cfg: WaterMazeConfig, u: torch.Tensor) -> torch.Tensor:
    """Map uniforms in [0, 1) to release angles (one draw per trial, whatever the mode)."""
    if cfg.release == "cardinal":
        return torch.floor(4.0 * u).clamp(max=3.0) * (math.pi / 2)  # E, N, W, S
    return 2.0 * math.pi * u


def check_platform(
    cfg: WaterMazeConfig,
    platform: torch.Tensor | object,
    num_envs: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Validate platform centres (``[B, 2]`` or ``[2]``) and return them as ``[B, 2]``.

    Raises ValueError if a centre is not finite or lies outside the disk of radius
    ``cfg.platform_centre_radius`` (where centres are drawn).
    """
    p = torch.as_tensor(platform, dtype=dtype, device=device)
    if p.shape == (2,):
        p = p.expand(num_envs, 2)
    if p.shape != (num_envs, 2):
        raise ValueError(f"platform must have shape [{num_envs}, 2] or [2], got {list(p.shape)}")
    if not torch.isfinite(p).all():
        raise ValueError("platform centres must be finite")
    limit = cfg.platform_centre_radius
    norm = torch.linalg.vector_norm(p, dim=-1)
    bad = norm > limit + 1e-6 * cfg.pool_radius
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"platform centre {p[i].tolist()} (env {i}) is {float(norm[i]):.4g} from the pool centre; "
            f"centres must lie within pool_radius - platform_radius - platform_margin = {limit:.4g}"
        )
    return p.clone()


def optimal_latency(cfg: WaterMazeConfig, release: torch.Tensor, platform: torch.Tensor) -> torch.Tensor:
    """Swim steps of a straight swim from ``release`` to the platform edge, ``[B]`` long.

    ``max(1, ceil((|release - platform| - platform_radius) / v_max))``; the quotient is lowered by
    1e-6 before the ceiling so that rounding (e.g. 0.9 / 0.1 = 9.000000000000002) does not add a step.
    """
    dist = torch.linalg.vector_norm(release - platform, dim=-1)
    steps = torch.ceil((dist - cfg.platform_radius) / cfg.v_max - 1e-6)
    return steps.clamp(min=1).long()


def is_done(cfg: WaterMazeConfig, state: WaterMazeState) -> torch.Tensor:
    """``[B]`` bool: the episode has used its ``episode_steps`` env steps."""
    return state.step >= cfg.episode_steps


DWELL_RADII = 2.0
"""The dwell-reward zone: within this many platform radii of an absent platform's centre (the
probe's 'near the platform' zone, :data:`snn_icl.episodes.measures.NEAR_RADII`)."""


# ----------------------------------------------------------------------------- reference memory
NOVEL_CANDIDATES = 64
"""Candidate centres drawn per episode for a novel platform (the first one far enough from every
trained place is taken)."""


def disk_points(cfg: WaterMazeConfig, u: torch.Tensor) -> torch.Tensor:
    """Uniform points over the disk of platform centres from uniforms ``u [..., 2]`` in [0, 1):
    radius ``platform_centre_radius * sqrt(u0)`` (area-uniform), angle ``2 pi u1``; ``[..., 2]``
    in pool radii."""
    radius = cfg.platform_centre_radius * torch.sqrt(u[..., 0])
    theta = 2.0 * math.pi * u[..., 1]
    return torch.stack([radius * torch.cos(theta), radius * torch.sin(theta)], dim=-1)


def reference_places(cfg: WaterMazeConfig, n_places: int, places_seed: int,
                     min_distance: float | None = None) -> torch.Tensor:
    """The fixed set of ``n_places`` platform centres of a reference-memory protocol, ``[n, 2]``
    float64 in pool radii, a function of ``places_seed`` only (its own CPU generator).

    Centres are uniform over the disk of platform centres, drawn one after the other; a draw
    closer than ``min_distance`` (default: 2 platform radii, so no two platforms overlap) to an
    earlier place is drawn again. ValueError if ``n_places`` such places do not fit (after 1000
    draws per place)."""
    if isinstance(n_places, bool) or not isinstance(n_places, numbers.Integral) or n_places < 1:
        raise ValueError(f"n_places must be an integer >= 1, got {n_places!r}")
    if isinstance(places_seed, bool) or not isinstance(places_seed, numbers.Integral):
        raise ValueError(f"places_seed must be an integer, got {places_seed!r}")
    gap = 2.0 * cfg.platform_radius if min_distance is None else float(min_distance)
    # a stream of its own: seeded with a hash, so places_seed = s does not repeat the first
    # platforms of the env seeded with s (torch.rand of the same seed)
    digest = hashlib.sha256(f"snn_icl reference places {int(places_seed)}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    places: list[torch.Tensor] = []
    for _ in range(int(n_places)):
        for _ in range(1000):
            p = disk_points(cfg, torch.rand(2, generator=generator, dtype=torch.float64))
            if all(float(torch.linalg.vector_norm(p - q)) >= gap for q in places):
                places.append(p)
                break
        else:
            raise ValueError(f"n_places={n_places!r} places at least {gap:g} apart do not fit in "
                             f"the disk of platform centres (radius {cfg.platform_centre_radius:g})")
    return torch.stack(places)


def place_platforms(places: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One platform per episode from the set ``places [n, 2]``: place ``floor(n u)`` for
    uniforms ``u [B]`` in [0, 1) (each place with probability 1/n); ``[B, 2]``."""
    n = places.shape[0]
    index = torch.floor(n * u).long().clamp(0, n - 1)
    return places[index.to(places.device)]


def novel_platforms(places: torch.Tensor, candidates: torch.Tensor,
                    min_distance: float) -> torch.Tensor:
    """One platform per episode away from the set ``places [n, 2]``: the first of the
    ``candidates [B, K, 2]`` (continuous placement) whose distance to every place is at least
    ``min_distance`` (pool radii); ``[B, 2]``. ValueError if an episode has none."""
    dist = torch.cdist(candidates, places.to(candidates).expand(candidates.shape[0], -1, -1))
    ok = (dist >= min_distance).all(dim=-1)  # [B, K]
    if not bool(ok.any(dim=-1).all()):
        raise ValueError(f"no novel platform at least {min_distance:g} from all {places.shape[0]} "
                         f"trained places among {candidates.shape[1]} draws: fewer places or a "
                         "smaller novel_min_distance")
    first = ok.to(torch.uint8).argmax(dim=-1)
    return candidates[torch.arange(candidates.shape[0]), first]


# ----------------------------------------------------------------------------- pure dynamics


def reset_state(
    cfg: WaterMazeConfig,
    num_envs: int,
    generator: torch.Generator,
    platform: torch.Tensor | None = None,
    probe_trial: int | torch.Tensor | None = None,
    release_angles: torch.Tensor | None = None,
    *,
    probe_steps: int | torch.Tensor | None = None,
    atlantis: tuple[float, int] | tuple[float, int, int] | None = None,
    dark_after_trial: int = -1,
    dark_steps: int | torch.Tensor = 0,
    iti_dark_steps: int = 0,
    places: torch.Tensor | None = None,
    novel: bool = False,
    novel_min_distance: float | None = None,
    cued: bool | torch.Tensor = False,
    reversal_trial: int = -1,
    reversal_platform: str | torch.Tensor = "opposite",
    reversal_displacement: tuple[float, float] | torch.Tensor | None = None,
    dwell_reward: float = 0.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> WaterMazeState:
    """Start B new episodes.

    All randomness of an episode is drawn here, from ``generator`` (a CPU generator; draws are made
    in float64 and then moved to ``device``/``dtype``): first the platform centres ``[B, 2]``, then
    one release angle per possible trial ``[B, cfg.max_trials]``. The same numbers are drawn whether
    or not ``platform``/``release_angles`` override them, so an override changes nothing else, and
    the release sequence does not depend on the agent's behaviour.

    Args:
        platform: ``[B, 2]`` (or ``[2]``) fixed platform centres, validated by :func:`check_platform`.
        probe_trial: trial index (int, or ``[B]`` long; -1 = none) whose swim has no platform.
        release_angles: ``[B, n]`` (or ``[n]``) release angles in radians for trials ``0..n-1``;
            later trials use the drawn angles.
        probe_steps: swim steps (int or ``[B]``) for which the probe trial's platform stays away;
            it rises from the next step on (an "Atlantis" platform, Spooner et al. 1994). Default:
            the whole trial (a classic probe).
        atlantis: ``(fraction, max_delay)`` or ``(fraction, max_delay, min_delay)``: a random
            ``fraction`` of the episodes get one Atlantis trial, at a trial index uniform in 1..4,
            whose platform rises after a delay uniform in ``min_delay``..``max_delay`` swim steps
            (``min_delay`` 1 if not given). Drawn after everything else (so it changes no
            other draw); ignored where ``probe_trial`` is given.
        dark_after_trial: trial index after whose rest a dark delay of ``dark_steps`` env steps
            (an int, or ``[B]`` long: one length per episode) follows (observation all zeros,
            actions ignored) before the next trial; -1: none.
        iti_dark_steps: env steps of dark after the rest of EVERY trial (the delayed
            matching-to-place "home cage" between trials, Steele & Morris 1999); 0: none. After
            trial ``dark_after_trial`` its own ``dark_steps`` are used instead.
        places: ``[n, 2]`` a reference-memory set of platform centres (:func:`reference_places`):
            each episode's platform is place ``floor(n u)`` of the set, ``u`` the first platform
            uniform (so no other draw changes); validated by :func:`check_platform`.
        novel: with ``places``: the platform is instead a novel place, the first of
            :data:`NOVEL_CANDIDATES` uniform centres (drawn after everything else) at least
            ``novel_min_distance`` (default 2 platform radii) from every place of the set.
        cued: the platform is visible: the cue channel (``cfg.cue_channel``, required) carries
            its place-cell code on every trial while it is present; a bool, or ``[B]`` bool
            (one value per episode: training mixes cued and hidden-platform episodes).
        reversal_trial: trial index (>= 1) at whose start the platform moves to
            ``reversal_platform`` for the rest of the episode (a reversal, Morris 1984); -1: none.
            Trials before it keep the first platform.
        reversal_platform: where it moves: "opposite" (the first platform mirrored through the
            pool centre, ``-platform``: always in the allowed disk), "displacement" (the first
            platform plus ``reversal_displacement`` (dx, dy) in pool radii, pulled radially back
            onto the disk of radius ``cfg.platform_centre_radius`` where it would leave it), or
            ``[B, 2]``/``[2]`` centres (validated by :func:`check_platform`: an error if outside).
        dwell_reward: reward per swim step spent within :data:`DWELL_RADII` platform radii of the
            platform's centre while it is absent (a probe, or an Atlantis platform that has not
            risen): training shaping that pays for staying where the platform was rather than
            passing through. Not shown to the agent (the reward input stays the escape reward) and
            not an escape (``info["escaped"]``). 0 (default): none.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs!r}")
    B, n_trials = num_envs, cfg.max_trials
    u_platform = torch.rand(B, 2, generator=generator, dtype=torch.float64)
    u_release = torch.rand(B, n_trials, generator=generator, dtype=torch.float64)

    # Uniform over a disk: radius ~ sqrt(U) (area-uniform), angle ~ U(0, 2 pi).
    drawn_platform = disk_points(cfg, u_platform).to(device=device, dtype=dtype)
    if places is not None and platform is not None:
        raise ValueError("give platform or places, not both")
    if novel and places is None:
        raise ValueError("novel=True needs the trained places (places=[n, 2])")
    if places is not None:
        places_t = torch.as_tensor(places, dtype=torch.float64)
        if places_t.dim() != 2 or places_t.shape[0] < 1 or places_t.shape[1] != 2:
            raise ValueError(f"places must have shape [n, 2] with n >= 1, got {list(places_t.shape)}")
        check_platform(cfg, places_t, places_t.shape[0], dtype=torch.float64)
        platform_t = place_platforms(places_t, u_platform[:, 0]).to(device=device, dtype=dtype)
    elif platform is None:
        platform_t = drawn_platform
    else:
        platform_t = check_platform(cfg, platform, B, device=device, dtype=dtype)

    angles = _release_angles_from_uniform(cfg, u_release).to(device=device, dtype=dtype)
    if release_angles is not None:
        given = torch.as_tensor(release_angles, dtype=dtype, device=device)
        if given.dim() == 1:
            given = given.expand(B, -1)
        if given.dim() != 2 or given.shape[0] != B or given.shape[1] < 1:
            raise ValueError(f"release_angles must have shape [{B}, n] or [n] with n >= 1, got {list(given.shape)}")
        if not torch.isfinite(given).all():
            raise ValueError("release_angles must be finite")
        n = min(given.shape[1], n_trials)
        angles = torch.cat([given[:, :n], angles[:, n:]], dim=1)

    if probe_trial is None:
        probe = torch.full((B,), -1, dtype=torch.long, device=device)
    else:
        probe = torch.as_tensor(probe_trial, dtype=torch.long, device=device).expand(B).clone()
        if (probe < -1).any():
            raise ValueError(f"probe_trial must be a trial index >= 0 (or -1 for none), got {probe_trial!r}")
    if probe_steps is None:
        absent = torch.full((B,), cfg.trial_timeout, dtype=torch.long, device=device)
    else:
        absent = torch.as_tensor(probe_steps, dtype=torch.long, device=device).expand(B).clone()
        if (absent < 0).any():
            raise ValueError(f"probe_steps must be >= 0, got {probe_steps!r}")
    if atlantis is not None and probe_trial is None:
        probe, absent = _atlantis_trials(cfg, B, generator, atlantis, device)
    if isinstance(dark_after_trial, bool) or not isinstance(dark_after_trial, numbers.Integral) \
            or dark_after_trial < -1:
        raise ValueError(f"dark_after_trial must be a trial index >= 0 (or -1), got {dark_after_trial!r}")
    if isinstance(dark_steps, torch.Tensor):
        if dark_steps.shape not in ((), (B,)) or dark_steps.is_floating_point() \
                or dark_steps.dtype == torch.bool or bool((dark_steps < 0).any()):
            raise ValueError(f"dark_steps must be integers >= 0 of shape [{B}], got "
                             f"{dark_steps.dtype} of shape {list(dark_steps.shape)}")
        dark_t = dark_steps.to(device=device, dtype=torch.long).expand(B).clone()
    elif isinstance(dark_steps, bool) or not isinstance(dark_steps, numbers.Integral) \
            or dark_steps < 0:
        raise ValueError(f"dark_steps must be an integer >= 0, got {dark_steps!r}")
    else:
        dark_t = torch.full((B,), int(dark_steps), dtype=torch.long, device=device)
    if isinstance(iti_dark_steps, bool) or not isinstance(iti_dark_steps, numbers.Integral) \
            or iti_dark_steps < 0:
        raise ValueError(f"iti_dark_steps must be an integer >= 0, got {iti_dark_steps!r}")
    if isinstance(cued, torch.Tensor):
        if cued.dtype != torch.bool or cued.shape not in ((B,), ()):
            raise ValueError(f"cued must be a bool or a [{B}] bool tensor, got {cued.dtype} of "
                             f"shape {list(cued.shape)}")
        any_cued = not cfg.cue_channel and bool(cued.any())  # read only where it matters
        cued_t = cued.to(device).expand(B).clone()
    elif isinstance(cued, bool):
        any_cued = cued
        cued_t = torch.full((B,), cued, dtype=torch.bool, device=device)
    else:
        raise ValueError(f"cued must be true or false, got {cued!r}")
    if any_cued and not cfg.cue_channel:
        raise ValueError("cued=True needs the visible-platform input (WaterMazeConfig.cue_channel)")
    if novel:  # drawn last, so a novel run changes no other draw
        gap = 2.0 * cfg.platform_radius if novel_min_distance is None else float(novel_min_distance)
        if not math.isfinite(gap) or gap < 0:
            raise ValueError(f"novel_min_distance must be >= 0, got {novel_min_distance!r}")
        u_novel = torch.rand(B, NOVEL_CANDIDATES, 2, generator=generator, dtype=torch.float64)
        platform_t = novel_platforms(places_t, disk_points(cfg, u_novel), gap).to(
            device=device, dtype=dtype)

    reversal_to = reversal_centres(cfg, platform_t, reversal_trial, reversal_platform,
                                   reversal_displacement)

    zeros = torch.zeros(B, dtype=torch.long, device=device)
    release = release_point(cfg, angles[:, 0])
    return WaterMazeState(
        position=release,
        platform=platform_t,
        pending_platform=platform_t,
        reversal_trial=torch.full((B,), int(reversal_trial), dtype=torch.long, device=device),
        reversal_platform=reversal_to,
        platform_present=probe != 0,
        release=release,
        release_angles=angles,
        probe_trial=probe,
        probe_steps=absent,
        dark_after=torch.full((B,), int(dark_after_trial), dtype=torch.long, device=device),
        dark_steps=dark_t,
        dark_left=zeros,
        iti_dark_steps=torch.full((B,), int(iti_dark_steps), dtype=torch.long, device=device),
        cued=cued_t,
        step=zeros,
        trial=zeros,
        trial_step=zeros,
        rest_left=zeros,
        prev_reward=torch.zeros(B, dtype=dtype, device=device),
        dwell_reward=torch.full((B,), _dwell(dwell_reward), dtype=dtype, device=device),
    )


def _dwell(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"dwell_reward must be a finite number >= 0, got {value!r}")
    return float(value)


def reversal_centres(cfg: WaterMazeConfig, platform: torch.Tensor, reversal_trial: int,
                     reversal_platform: str | torch.Tensor = "opposite",
                     displacement: tuple[float, float] | torch.Tensor | None = None) -> torch.Tensor:
    """Platform centres ``[B, 2]`` after a reversal of the first platforms ``platform [B, 2]``
    (see ``reversal_trial``/``reversal_platform`` of :func:`reset_state`); ``platform`` itself
    where ``reversal_trial`` is -1."""
    if isinstance(reversal_trial, bool) or not isinstance(reversal_trial, numbers.Integral) \
            or not (reversal_trial == -1 or 1 <= reversal_trial < cfg.max_trials):
        raise ValueError(f"reversal_trial must be a trial index in 1..{cfg.max_trials - 1} "
                         f"(or -1 for none), got {reversal_trial!r}")
    B = platform.shape[0]
    if reversal_trial == -1:
        return platform.clone()
    if isinstance(reversal_platform, str):
        if reversal_platform == "opposite":
            return -platform
        if reversal_platform != "displacement":
            raise ValueError("reversal_platform must be 'opposite', 'displacement' or [B, 2] "
                             f"centres, got {reversal_platform!r}")
        if displacement is None:
            raise ValueError("reversal_platform='displacement' needs reversal_displacement (dx, dy)")
        d = torch.as_tensor(displacement, dtype=platform.dtype, device=platform.device)
        if d.shape not in ((2,), (B, 2)) or not torch.isfinite(d).all():
            raise ValueError(f"reversal_displacement must be finite (dx, dy) or [B, 2], got {displacement!r}")
        moved = platform + d
        limit = cfg.platform_centre_radius
        norm = torch.linalg.vector_norm(moved, dim=-1, keepdim=True)
        return moved * (limit / norm.clamp(min=limit)) if limit > 0 else moved * 0
    return check_platform(cfg, reversal_platform, B, device=platform.device, dtype=platform.dtype)


def _atlantis_trials(cfg: WaterMazeConfig, B: int, generator: torch.Generator,
                     atlantis: tuple[float, int] | tuple[float, int, int],
                     device: torch.device | str | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``(probe_trial [B], probe_steps [B])`` for ``atlantis = (fraction, max_delay)`` or
    ``(fraction, max_delay, min_delay)`` (delays in swim steps, uniform in min..max; min 1)."""
    if len(atlantis) not in (2, 3):
        raise ValueError(f"atlantis must be (fraction, max_delay[, min_delay]), got {atlantis!r}")
    fraction, max_delay, min_delay = (*atlantis, 1) if len(atlantis) == 2 else atlantis
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"atlantis fraction must be in [0, 1], got {fraction!r}")
    if isinstance(max_delay, bool) or not isinstance(max_delay, numbers.Integral) or max_delay < 1:
        raise ValueError(f"atlantis max_delay must be an integer >= 1, got {max_delay!r}")
    if isinstance(min_delay, bool) or not isinstance(min_delay, numbers.Integral) \
            or not 1 <= min_delay <= max_delay:
        raise ValueError(f"atlantis min_delay must be an integer in [1, max_delay = {max_delay}], "
                         f"got {min_delay!r}")
    u = torch.rand(B, 3, generator=generator, dtype=torch.float64)
    trial = 1 + torch.floor(4.0 * u[:, 1]).clamp(max=3.0).long()
    span = max_delay - min_delay + 1  # min 1 draws exactly what the two-value form drew
    delay = min_delay + torch.floor(span * u[:, 2]).clamp(max=span - 1).long()
    chosen = u[:, 0] < fraction
    probe = torch.where(chosen, trial, torch.full_like(trial, -1))
    absent = torch.where(chosen, delay, torch.full_like(delay, cfg.trial_timeout))
    return probe.to(device), absent.to(device)


def step_state(
    cfg: WaterMazeConfig,
    state: WaterMazeState,
    action: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[WaterMazeState, torch.Tensor, dict[str, torch.Tensor]]:
    """Advance B episodes by one env step; see :class:`WaterMaze` for the rules.

    Args:
        action: ``[B, 2]`` in [-1, 1]^2 (clamped, then scaled to norm <= 1).
        generator: unused, kept for a uniform signature: all randomness of an episode is drawn
            in :func:`reset_state`, so the dynamics are deterministic given state and action.

    Returns:
        ``(state, reward [B], info)``. The caller must not step an episode that :func:`is_done`
        (the :class:`WaterMaze` class enforces this). Nothing is modified in place.
    """
    del generator
    R, pr = cfg.pool_radius, cfg.platform_radius
    old = state.position  # [B, 2]
    c = state.platform  # [B, 2]
    in_dark = state.dark_left > 0  # [B]; a dark delay: actions ignored, nothing seen
    swimming = (state.rest_left == 0) & ~in_dark  # [B]; resting envs ignore the action

    # Action: clamp to the square, then to the unit disk; displacement v_max * a.
    a = action.to(dtype=old.dtype).clamp(-1.0, 1.0)
    a = a / torch.linalg.vector_norm(a, dim=-1, keepdim=True).clamp(min=1.0)
    new = old + cfg.v_max * a
    # Wall: project back onto the circle of radius R (scale is exactly 1 inside the pool).
    new = new * (R / torch.linalg.vector_norm(new, dim=-1, keepdim=True).clamp(min=R))

    # Segment-disk test on old -> new: closest point old + t d, t = clamp((c - old).d / |d|^2, 0, 1).
    d = new - old
    dd = (d * d).sum(-1)
    moved = dd > 0
    t = torch.where(moved, ((c - old) * d).sum(-1) / torch.where(moved, dd, torch.ones_like(dd)), 0.0)
    t = t.clamp(0.0, 1.0)
    closest = old + t.unsqueeze(-1) * d
    touched = ((closest - c) ** 2).sum(-1) <= pr * pr

    trial_step = torch.where(swimming, state.trial_step + 1, state.trial_step)
    # An Atlantis probe's platform rises after probe_steps swim steps (a classic probe: never).
    risen = swimming & (state.trial == state.probe_trial) & (trial_step > state.probe_steps)
    present = state.platform_present | risen
    reached = swimming & present & touched
    timed_out = swimming & ~reached & (trial_step >= cfg.trial_timeout)
    trial_end = reached | timed_out

    position = torch.where(swimming.unsqueeze(-1), new, old)
    position = torch.where(reached.unsqueeze(-1), closest, position)
    position = torch.where(timed_out.unsqueeze(-1), c, position)  # Morris protocol: placed on it
    reward = reached.to(old.dtype)
    # Shaping (training only): the reward input below stays the escape, so nothing is observed.
    waiting = swimming & ~present & ~timed_out
    near = ((position - c) ** 2).sum(-1) <= (DWELL_RADII * pr) ** 2
    shaped = reward + state.dwell_reward * (waiting & near).to(old.dtype)
    latency = torch.where(trial_end, trial_step, torch.zeros_like(trial_step))
    ended_trial = torch.where(trial_end, state.trial, torch.full_like(state.trial, -1))
    platform_present = present | timed_out  # a probe's platform is back after it
    rest_left = torch.where(
        trial_end,
        torch.full_like(state.rest_left, cfg.rest_steps),
        torch.where(swimming | in_dark, state.rest_left, state.rest_left - 1),
    )

    # Next trial: after the last rest step (or at once when rest_steps == 0), unless a dark
    # delay follows this trial; then after the delay's last step.
    rest_done = (rest_left == 0) & (trial_end | (~swimming & ~in_dark))
    delay = torch.where(state.trial == state.dark_after, state.dark_steps, state.iti_dark_steps)
    enter_dark = rest_done & (delay > 0)
    dark_left = torch.where(enter_dark, delay,
                            torch.where(in_dark, state.dark_left - 1, state.dark_left))
    start = (rest_done & ~enter_dark) | (in_dark & (dark_left == 0))
    trial = state.trial + start.long()
    idx = trial.clamp(max=state.release_angles.shape[1] - 1).unsqueeze(-1)
    next_release = release_point(cfg, state.release_angles.gather(1, idx).squeeze(-1))
    start2 = start.unsqueeze(-1)
    position = torch.where(start2, next_release, position)
    release = torch.where(start2, next_release, state.release)
    # A reversal: from the start of trial reversal_trial on, the platform is reversal_platform.
    reverse = (start & (trial == state.reversal_trial)).unsqueeze(-1)
    pending = torch.where(reverse, state.reversal_platform, state.pending_platform)
    platform = torch.where(start2, pending, c)
    platform_present = torch.where(start, trial != state.probe_trial, platform_present)
    trial_step = torch.where(start, torch.zeros_like(trial_step), trial_step)

    new_state = WaterMazeState(
        position=position,
        platform=platform,
        pending_platform=pending,
        reversal_trial=state.reversal_trial,
        reversal_platform=state.reversal_platform,
        platform_present=platform_present,
        release=release,
        release_angles=state.release_angles,
        probe_trial=state.probe_trial,
        probe_steps=state.probe_steps,
        dark_after=state.dark_after,
        dark_steps=state.dark_steps,
        dark_left=dark_left,
        iti_dark_steps=state.iti_dark_steps,
        cued=state.cued,
        step=state.step + 1,
        trial=trial,
        trial_step=trial_step,
        rest_left=rest_left,
        prev_reward=reward,
        dwell_reward=state.dwell_reward,
    )
    info = {
        "position": position,
        "platform": platform,
        "platform_present": platform_present,
        "release": release,
        "trial": trial,
        "trial_step": trial_step,
        "on_platform": (rest_left > 0) & platform_present,
        "trial_end": trial_end,
        "escaped": reached,
        "latency": latency,
        "ended_trial": ended_trial,
        "dark": dark_left > 0,
        "dark_left": dark_left,
    }
    return new_state, shaped, info


def observe(cfg: WaterMazeConfig, state: WaterMazeState) -> torch.Tensor:
    """Observation ``[B, obs_dim]``: place cells, platform contact, previous reward (and with
    ``cfg.cue_channel`` the cue cells: the place-cell code of the platform centre on cued
    episodes while the platform is present, zeros otherwise); all in [0, 1].

    All zeros during a dark delay, except its last ``cfg.recall_cue_steps`` steps: every place
    cell at ``cfg.recall_cue_level`` (the recall cue), the rest zero; with ``recall_cue_input =
    "channel"`` the last entry instead, 0 outside the cue."""
    pos = state.position
    centres = place_cell_centres(cfg.place_grid, cfg.pool_radius, device=pos.device, dtype=pos.dtype)
    cells = place_cell_activity(pos, centres, cfg.place_sigma)  # [B, place_grid**2]
    contact = ((state.rest_left > 0) & state.platform_present).to(pos.dtype)
    parts = [cells, contact.unsqueeze(-1), state.prev_reward.unsqueeze(-1)]
    if cfg.cue_channel:
        visible = (state.cued & state.platform_present).to(pos.dtype).unsqueeze(-1)
        parts.append(place_cell_activity(state.platform, centres, cfg.place_sigma) * visible)
    if cfg.recall_cue_channel:
        parts.append(torch.zeros_like(contact).unsqueeze(-1))
    obs = torch.cat(parts, dim=-1)
    obs = obs * (state.dark_left == 0).unsqueeze(-1).to(pos.dtype)
    if cfg.recall_cue_steps:
        # dark_left counts down to 1 on the delay's last observation
        cue = ((state.dark_left > 0) & (state.dark_left <= cfg.recall_cue_steps)).unsqueeze(-1)
        lit = slice(-1, None) if cfg.recall_cue_channel else slice(0, cfg.place_grid**2)
        obs[:, lit] = obs[:, lit] + cfg.recall_cue_level * cue.to(pos.dtype)
    return obs


def move_platform(cfg: WaterMazeConfig, state: WaterMazeState, new_platform: torch.Tensor) -> WaterMazeState:
    """Reversal: the platform moves to ``new_platform`` ``[B, 2]`` (or ``[2]``) at the next trial start."""
    p = check_platform(
        cfg, new_platform, state.position.shape[0], device=state.position.device, dtype=state.position.dtype
    )
    return state._replace(pending_platform=p)


# ----------------------------------------------------------------------------- batched env


class WaterMaze:
    """Batched Morris water maze: B episodes stepped together in torch.

    ## Description

    A swimmer in a circular pool of radius R (``pool_radius``, centred at the origin) searches for
    a hidden circular platform of radius ``platform_radius``. The platform centre is drawn once per
    episode uniformly over the disk of radius ``R - platform_radius - platform_margin`` and stays
    put for the whole episode (unless :meth:`move_platform` is called). An episode is a fixed
    number of env steps (``episode_steps``) holding as many trials as the swimmer completes: a
    trial starts at a release point on the wall and ends when the platform is reached or after
    ``trial_timeout`` swim steps. After each trial the swimmer rests on the platform for
    ``rest_steps`` steps, then the next trial starts from a new release point. A swimmer that
    remembers the platform across trials (in its network state) swims straight back to it; this is
    the meta-learning task of Morris (1984) / Bellec et al. (2018, Fig. 3).

    ## Action Space

    ``[B, 2]`` float, a velocity in [-1, 1]^2. It is clamped to [-1, 1]^2, then scaled to norm 1
    if its norm exceeds 1; the displacement is ``v_max * action`` (at most ``v_max`` per step).
    Actions are ignored while resting on the platform.

    ## Observation Space

    ``[B, place_grid**2 + 2]`` float (dtype of the env), every entry in [0, 1]:

    | Index          | Observation                                                         | Min | Max |
    |----------------|---------------------------------------------------------------------|-----|-----|
    | 0 .. G^2 - 1   | place cell k: exp(-abs(p - c_k)^2 / (2 place_sigma^2)); c_k on a     | 0   | 1   |
    |                | G x G grid over [-R, R]^2, x fastest (``encoding.place_cell_centres``) |     |     |
    | G^2            | platform contact: 1 while resting on the (present) platform          | 0   | 1   |
    | G^2 + 1        | reward of the previous step                                          | 0   | 1   |
    | G^2 + 2 ..     | with ``cue_channel`` only: cue cell k, the place-cell code of the      | 0   | 1   |
    | 2 G^2 + 1      | platform centre on cued episodes while the platform is present       |     |     |

    (G = ``place_grid``.)

    ## Rewards

    1 on the step at which the platform is reached, 0 on every other step (rest steps, time-outs,
    probe swims included). The platform is reached when the swim segment from the old to the new
    position comes within ``platform_radius`` of the platform centre (a segment-disk test, so a
    fast swim cannot skip over the platform); the swimmer is then put at the point of that segment
    closest to the centre. The test uses the segment from the old position to the wall-projected
    new position (a chord of the pool, so it stays inside the pool).

    ## Starting State

    Each trial starts on the wall, at ``R (cos a, sin a)`` (exactly radius R, no inset). With
    ``release="random"`` the angle a is uniform in [0, 2 pi); with ``release="cardinal"`` it is one
    of Morris' E/N/W/S points (0, pi/2, pi, 3 pi/2) drawn uniformly. All angles of an episode are
    drawn at reset (one per possible trial), so the release sequence does not depend on the
    swimmer; ``reset(release_angles=...)`` fixes the first ones for controlled evaluation.

    Per step: the new position ``p + v_max a`` is projected back onto radius R if it leaves the
    pool. A trial that reaches ``trial_timeout`` swim steps without reaching the platform times
    out: the swimmer is placed on the platform centre, with reward 0 (Morris protocol). After a
    trial ends (reached or timed out) the swimmer rests ``rest_steps`` steps on the platform
    (contact channel 1, actions ignored); the last rest step starts the next trial (the
    observation it returns is at the new release point; ``trial += 1``, ``trial_step = 0``, and a
    platform moved by :meth:`move_platform` takes effect). With ``rest_steps=0`` the next trial
    starts on the step that ended the previous one.

    Probe trial (``reset(probe_trial=k)``): during the swim of trial k the platform is absent (no
    reward, no contact); the trial runs to the time-out, then the swimmer is placed on the
    platform as after a normal time-out and the platform is back. With ``probe_steps=s`` the
    platform rises after s swim steps instead (an Atlantis platform: reaching it then ends the
    trial with reward 1); ``atlantis=(fraction, max_delay)`` draws such trials at random (a
    training curriculum that rewards searching where the platform was).

    Reversal (``reset(reversal_trial=k, reversal_platform="opposite")``): the platform moves at
    the start of trial k (k >= 1) and stays there: mirrored through the pool centre, displaced by
    ``reversal_displacement`` (clipped onto the allowed disk), or to given centres.

    Dark delay (``reset(dark_after_trial=k, dark_steps=d)``): after the rest that ends trial k,
    ``d`` env steps pass in the dark (observation all zeros, actions ignored, ``info["dark"]``)
    before trial k+1 starts; they count towards ``episode_steps``. ``reset(iti_dark_steps=d)``
    puts such a delay after every trial (delayed matching to place with dark inter-trial
    intervals); the swimmer stays where it rested (on the platform).

    Reference memory (``reset(places=P)``, ``P = reference_places(cfg, n, seed)`` ``[n, 2]``):
    each episode's platform is one place of the fixed set; ``novel=True`` draws it instead from
    continuous placement at least ``novel_min_distance`` away from every place of the set.

    Cued platform (``WaterMazeConfig(cue_channel=True)``, ``reset(cued=True)``): ``place_grid**2``
    more observation entries, the place-cell code of the platform centre while it is present
    (zeros on uncued episodes, during a probe swim and in the dark).

    ## Episode End

    After exactly ``episode_steps`` env steps (rest steps count), for all B episodes together:
    ``done`` is True on the last step. A trial still running then is left unfinished. Stepping
    again raises ``RuntimeError`` until :meth:`reset`.

    ## Info

    ``step`` returns ``info`` with ``[B]``/``[B, 2]`` tensors describing the state after the step
    (``position``, ``platform``, ``platform_present``, ``release`` of the current trial, ``trial``
    (current 0-based trial index: after the step that starts trial k+1 it is k+1), ``trial_step``,
    ``on_platform`` = contact) and events of the step (``trial_end``: a trial finished, reached or
    timed out; ``escaped``: reached; ``latency``: swim steps of the trial that ended, 1..
    ``trial_timeout``, 0 elsewhere; ``ended_trial``: index of the trial that ended, -1 elsewhere).
    Use ``ended_trial`` (not ``trial``) to file latencies by trial index: with ``rest_steps=0`` the
    step that ends trial k already reports ``trial = k + 1``.

    ## Arguments

    ``WaterMaze(config=WaterMazeConfig(), num_envs=1, seed=0, *, device=None, dtype=torch.float32)``:
    ``config`` holds every rule parameter (see :class:`WaterMazeConfig`); ``seed`` seeds the env's
    CPU ``torch.Generator`` (``None``: nondeterministic); ``device``/``dtype`` place the state
    (float64 works). ``reset(seed=None, platform=None, probe_trial=None, release_angles=None)``:
    ``seed`` reseeds the generator; ``platform`` ``[B, 2]`` fixes the platform centres (held-out
    positions, validated to lie in the allowed disk); ``probe_trial`` removes the platform during
    that trial; ``release_angles`` ``[B, n]`` (radians) fixes the release points of trials 0..n-1.
    """

    action_dim = 2

    def __init__(
        self,
        config: WaterMazeConfig | None = None,
        num_envs: int = 1,
        seed: int | None = 0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, numbers.Integral) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype, got {dtype!r}")
        self.config = config if config is not None else WaterMazeConfig()
        self.num_envs = int(num_envs)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.generator = torch.Generator()  # CPU: draws happen at reset only, then moved
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        self._state: WaterMazeState | None = None
        self._steps_taken = 0  # same for all B episodes; avoids a device sync per step

    @property
    def obs_dim(self) -> int:
        return self.config.obs_dim

    @property
    def state(self) -> WaterMazeState:
        if self._state is None:
            raise RuntimeError("WaterMaze has no state yet: call reset() first")
        return self._state

    def reset(
        self,
        seed: int | None = None,
        platform: torch.Tensor | None = None,
        probe_trial: int | torch.Tensor | None = None,
        release_angles: torch.Tensor | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """Start B new episodes (new platforms unless given); returns the observation ``[B, obs_dim]``.

        ``options``: ``probe_steps``, ``atlantis``, ``dark_after_trial``, ``dark_steps``,
        ``iti_dark_steps``, ``places``, ``novel``, ``novel_min_distance``, ``cued``,
        ``reversal_trial``, ``reversal_platform``, ``reversal_displacement``, ``dwell_reward``
        of :func:`reset_state`.
        """
        if seed is not None:
            self.generator.manual_seed(seed)
        self._state = reset_state(
            self.config,
            self.num_envs,
            self.generator,
            platform=platform,
            probe_trial=probe_trial,
            release_angles=release_angles,
            **options,
            device=self.device,
            dtype=self.dtype,
        )
        self._steps_taken = 0
        return observe(self.config, self._state)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """One env step for all B episodes: ``(obs [B, obs_dim], reward [B], done [B] bool, info)``."""
        state = self.state
        if self._steps_taken >= self.config.episode_steps:
            raise RuntimeError(
                f"the episode is over (episode_steps={self.config.episode_steps}): call reset() before step()"
            )
        action = torch.as_tensor(action, device=self.device, dtype=self.dtype)
        if action.shape != (self.num_envs, 2):
            raise ValueError(f"action must have shape [{self.num_envs}, 2], got {list(action.shape)}")
        if not torch.isfinite(action).all():
            raise ValueError("action contains NaN or inf")
        self._state, reward, info = step_state(self.config, state, action, self.generator)
        self._steps_taken += 1
        done_now = self._steps_taken >= self.config.episode_steps
        done = torch.full((self.num_envs,), done_now, dtype=torch.bool, device=self.device)
        return observe(self.config, self._state), reward, done, info

    def observe(self) -> torch.Tensor:
        """Observation of the current state, ``[B, obs_dim]``."""
        return observe(self.config, self.state)

    def move_platform(self, new_platform: torch.Tensor) -> None:
        """Reversal: move the platform to ``new_platform`` ``[B, 2]`` from the next trial start on."""
        self._state = move_platform(self.config, self.state, new_platform)
