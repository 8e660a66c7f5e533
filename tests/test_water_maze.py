"""Tests of the batched water maze (snn_icl.envs.water_maze) and the place-cell code.

The central test runs the torch env in lockstep with a scalar pure-Python reference of the rules
(``RefMaze`` below, written from the spec, one env at a time, float64).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snn_icl.envs.encoding import encode_position, place_cell_activity, place_cell_centres
from snn_icl.envs.water_maze import (
    WaterMaze,
    WaterMazeConfig,
    observe,
    optimal_latency,
    release_point,
    reset_state,
    step_state,
)

# ----------------------------------------------------------------------------- helpers


def homing(state, noise: float = 0.0, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Unit-speed action straight at the platform centre (plus optional noise)."""
    d = state.platform - state.position
    a = d / torch.linalg.vector_norm(d, dim=-1, keepdim=True).clamp(min=1e-12)
    if noise:
        a = a + noise * torch.as_tensor(rng.standard_normal(tuple(a.shape)), dtype=a.dtype)
    return a


def mixed_policy(env: WaterMaze, rng: np.random.Generator) -> torch.Tensor:
    """Half the envs home in (noisily), half swim at random with oversized actions."""
    B = env.num_envs
    a = homing(env.state, noise=0.5, rng=rng)
    rand = torch.as_tensor(rng.uniform(-3, 3, size=(B, 2)), dtype=a.dtype)
    return torch.where(torch.arange(B).unsqueeze(-1) % 2 == 0, a, rand)


class RefMaze:
    """One episode, scalar Python floats, written directly from the rules in the task spec."""

    def __init__(self, cfg: WaterMazeConfig, platform, angles, probe_trial: int = -1):
        self.cfg, self.angles, self.probe = cfg, [float(x) for x in angles], probe_trial
        self.platform = [float(platform[0]), float(platform[1])]
        self.trial, self.tstep, self.rest = 0, 0, 0
        self.present = probe_trial != 0
        self.pos = self._release(0)

    def _release(self, k):
        R = self.cfg.pool_radius
        return [R * math.cos(self.angles[k]), R * math.sin(self.angles[k])]

    def step(self, action):
        cfg = self.cfg
        ax, ay = (min(1.0, max(-1.0, float(v))) for v in action)
        n = math.hypot(ax, ay)
        if n > 1:
            ax, ay = ax / n, ay / n
        reward, end, latency = 0.0, False, 0
        start_next = False
        if self.rest > 0:
            self.rest -= 1
            start_next = self.rest == 0
        else:
            self.tstep += 1
            ox, oy = self.pos
            nx, ny = ox + cfg.v_max * ax, oy + cfg.v_max * ay
            r = math.hypot(nx, ny)
            if r > cfg.pool_radius:
                nx, ny = nx * cfg.pool_radius / r, ny * cfg.pool_radius / r
            dx, dy = nx - ox, ny - oy
            cx, cy = self.platform
            dd = dx * dx + dy * dy
            t = 0.0 if dd == 0 else min(1.0, max(0.0, ((cx - ox) * dx + (cy - oy) * dy) / dd))
            qx, qy = ox + t * dx, oy + t * dy
            if self.present and math.hypot(qx - cx, qy - cy) <= cfg.platform_radius:
                self.pos, reward, end = [qx, qy], 1.0, True
            elif self.tstep >= cfg.trial_timeout:
                self.pos, end, self.present = [cx, cy], True, True
            else:
                self.pos = [nx, ny]
            if end:
                latency, self.rest = self.tstep, cfg.rest_steps
                start_next = self.rest == 0
        if start_next:
            self.trial += 1
            self.tstep = 0
            self.pos = self._release(self.trial)
            self.present = self.trial != self.probe
        return dict(
            position=list(self.pos),
            reward=reward,
            trial=self.trial,
            trial_end=end,
            latency=latency,
            contact=self.rest > 0 and self.present,
        )


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "field, value",
    [
        ("pool_radius", 0.0),
        ("pool_radius", -1.0),
        ("platform_radius", 0.0),
        ("platform_radius", 0.95),
        ("platform_margin", -0.1),
        ("platform_margin", 0.95),
        ("v_max", 0.0),
        ("v_max", float("nan")),
        ("trial_timeout", 0),
        ("trial_timeout", 2.5),
        ("rest_steps", -1),
        ("episode_steps", 0),
        ("place_grid", 0),
        ("place_sigma", 0.0),
        ("release", "diagonal"),
    ],
)
def test_config_validation_names_field(field, value):
    with pytest.raises(ValueError, match=field) as err:
        WaterMazeConfig(**{field: value})
    assert repr(value) in str(err.value) or field in ("platform_radius", "platform_margin")


def test_config_edge_and_derived():
    cfg = WaterMazeConfig(pool_radius=1.0, platform_radius=0.5, platform_margin=0.5)  # centre only
    assert cfg.platform_centre_radius == 0.0
    assert WaterMazeConfig().obs_dim == 7 * 7 + 2
    assert WaterMazeConfig(place_grid=3).obs_dim == 11
    assert WaterMazeConfig(episode_steps=200, rest_steps=3).max_trials == 51
    with pytest.raises(Exception):
        WaterMazeConfig().v_max = 0.2  # frozen


# ----------------------------------------------------------------------------- encoding


def test_place_cell_centres_and_tuning():
    c = place_cell_centres(3, 2.0, dtype=torch.float64)
    expected = torch.tensor([[x, y] for y in (-2.0, 0.0, 2.0) for x in (-2.0, 0.0, 2.0)], dtype=torch.float64)
    assert torch.equal(c, expected)  # x fastest
    assert torch.equal(place_cell_centres(1, 1.0), torch.zeros(1, 2))
    p = torch.tensor([[0.3, -0.4]], dtype=torch.float64)
    r = place_cell_activity(p, c, 0.5)
    manual = torch.exp(-((p - c) ** 2).sum(-1) / (2 * 0.5**2))
    assert torch.allclose(r[0], manual)
    assert torch.allclose(encode_position(p, 3, 2.0, 0.5), r)
    assert float(place_cell_activity(torch.tensor([[-2.0, -2.0]]), place_cell_centres(3, 2.0), 0.5)[0, 0]) == 1.0


def test_observation_layout_and_range():
    cfg = WaterMazeConfig(place_grid=5, place_sigma=0.3)
    env = WaterMaze(cfg, num_envs=4, seed=1, dtype=torch.float64)
    obs = env.reset(release_angles=torch.zeros(4, 1))  # release at (R, 0)
    assert obs.shape == (4, cfg.obs_dim) and obs.dtype == torch.float64
    centres = place_cell_centres(5, 1.0, dtype=torch.float64)
    expected = torch.exp(-((torch.tensor([1.0, 0.0], dtype=torch.float64) - centres) ** 2).sum(-1) / (2 * 0.3**2))
    assert torch.allclose(obs[0, :25], expected)
    assert torch.all(obs[:, 25:] == 0)  # no contact, no previous reward at reset
    rng = np.random.default_rng(0)
    for _ in range(100):
        obs, *_ = env.step(mixed_policy(env, rng))
        assert torch.all((obs >= 0) & (obs <= 1))


# ----------------------------------------------------------------------------- dynamics


@pytest.mark.parametrize(
    "cfg",
    [
        WaterMazeConfig(),
        WaterMazeConfig(rest_steps=0, trial_timeout=15, release="cardinal"),
        WaterMazeConfig(v_max=0.3, platform_radius=0.05, trial_timeout=10, rest_steps=2, episode_steps=120),
    ],
    ids=["default", "no-rest-cardinal", "fast"],
)
def test_matches_scalar_reference(cfg):
    B = 12
    env = WaterMaze(cfg, num_envs=B, seed=3, dtype=torch.float64)
    probe = torch.tensor([-1, 0, 1, 2] * 3)
    env.reset(probe_trial=probe)
    refs = [
        RefMaze(cfg, env.state.platform[i].tolist(), env.state.release_angles[i].tolist(), int(probe[i]))
        for i in range(B)
    ]
    rng = np.random.default_rng(1)
    n_rewards = 0
    for _ in range(cfg.episode_steps):
        action = mixed_policy(env, rng)
        obs, reward, done, info = env.step(action)
        for i, ref in enumerate(refs):
            out = ref.step(action[i].tolist())
            assert info["position"][i].tolist() == pytest.approx(out["position"], abs=1e-9)
            assert float(reward[i]) == out["reward"]
            assert int(info["trial"][i]) == out["trial"]
            assert bool(info["trial_end"][i]) == out["trial_end"]
            assert int(info["latency"][i]) == out["latency"]
            assert bool(info["on_platform"][i]) == out["contact"] == bool(obs[i, -2])
            assert float(obs[i, -1]) == out["reward"]
        n_rewards += int(reward.sum())
    assert done.all()
    assert n_rewards > 2 * B  # the comparison covered many reaches


def test_agent_never_leaves_pool():
    cfg = WaterMazeConfig(v_max=0.25, episode_steps=100)
    B = 128
    env = WaterMaze(cfg, num_envs=B, seed=0)
    rng = np.random.default_rng(0)
    for episode in range(2):
        env.reset()
        for t in range(cfg.episode_steps):
            pos = env.state.position
            if episode == 0:
                action = torch.as_tensor(rng.uniform(-50, 50, size=(B, 2)), dtype=torch.float32)
            else:  # adversarial: straight out through the wall, at full speed and beyond
                action = 10 * pos / torch.linalg.vector_norm(pos, dim=-1, keepdim=True)
            _, _, _, info = env.step(action)
            radius = torch.linalg.vector_norm(info["position"], dim=-1)
            assert float(radius.max()) <= cfg.pool_radius + 1e-6
            swim = ~info["trial_end"] & (info["trial_step"] > 1)  # plain swim steps
            moved = torch.linalg.vector_norm(info["position"] - pos, dim=-1)
            assert float(torch.where(swim, moved, 0.0).max()) <= cfg.v_max + 1e-6


def test_action_is_clamped_then_scaled_to_unit_norm():
    env = WaterMaze(WaterMazeConfig(), num_envs=3, seed=0, dtype=torch.float64)
    env.reset(platform=torch.tensor([0.0, 0.7]), release_angles=torch.full((3, 1), math.pi, dtype=torch.float64))  # at (-1, 0)
    _, _, _, info = env.step(torch.tensor([[0.3, 0.4], [5.0, 5.0], [7.0, 0.0]], dtype=torch.float64))
    disp = info["position"] - torch.tensor([-1.0, 0.0], dtype=torch.float64)
    s = 0.1 / math.sqrt(2)
    assert torch.allclose(disp, torch.tensor([[0.03, 0.04], [s, s], [0.1, 0.0]], dtype=torch.float64))


def test_reward_only_when_on_platform_and_only_on_reaching_step():
    cfg = WaterMazeConfig()
    B = 128
    env = WaterMaze(cfg, num_envs=B, seed=5)
    env.reset()
    rng = np.random.default_rng(2)
    rewards_this_trial = torch.zeros(B)
    total = 0
    for _ in range(cfg.episode_steps):
        was_resting = env.state.rest_left > 0
        _, reward, _, info = env.step(mixed_policy(env, rng))
        hit = reward == 1
        assert torch.all((reward == 0) | hit)
        assert torch.equal(hit, info["escaped"])
        dist = torch.linalg.vector_norm(info["position"] - info["platform"], dim=-1)
        assert torch.all(dist[hit] <= cfg.platform_radius + 1e-6)
        assert not torch.any(hit & was_resting)  # no reward while resting on the platform
        rewards_this_trial += reward
        assert float(rewards_this_trial.max()) <= 1
        rewards_this_trial[info["trial_end"]] = 0
        total += int(hit.sum())
    assert total > B // 2


def test_segment_test_catches_fly_through():
    cfg = WaterMazeConfig(v_max=0.5)
    west = torch.tensor([[math.pi]], dtype=torch.float64)
    east = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    for offset, should_reach in [(0.0, True), (0.09, True), (0.11, False)]:
        env = WaterMaze(cfg, num_envs=1, seed=0, dtype=torch.float64)
        env.reset(platform=torch.tensor([[0.25, offset]]), release_angles=west)  # start at (-1, 0)
        rewards = []
        for _ in range(3):  # -1 -> -0.5 -> 0 -> 0.5: both ends of the last swim miss the platform
            _, reward, _, info = env.step(east)
            rewards.append(float(reward[0]))
        assert rewards == [0.0, 0.0, 1.0 if should_reach else 0.0]
        if should_reach:
            assert info["position"][0].tolist() == pytest.approx([0.25, 0.0])  # closest point of the swim
            assert int(info["latency"][0]) == 3


def test_timeout_places_agent_on_platform_then_next_trial_starts_on_wall():
    cfg = WaterMazeConfig(trial_timeout=5, rest_steps=3, episode_steps=40)
    env = WaterMaze(cfg, num_envs=2, seed=4)
    obs = env.reset()
    angles = env.state.release_angles
    release0 = env.state.position.clone()
    zero = torch.zeros(2, 2)  # stay at the release point on the wall: never reaches the platform
    for t in range(1, 41):
        obs, reward, done, info = env.step(zero)
        k, phase = divmod(t, 8)  # each trial: 5 swim steps + 3 rest steps
        assert torch.all(reward == 0)
        if phase in (1, 2, 3, 4):
            assert not info["trial_end"].any() and not info["on_platform"].any()
            assert torch.equal(info["trial_step"], torch.full((2,), phase))
            assert torch.allclose(info["position"], release_point(cfg, angles[:, k]))
        elif phase == 5:
            assert info["trial_end"].all() and not info["escaped"].any()
            assert torch.equal(info["latency"], torch.full((2,), 5))
            assert torch.equal(info["ended_trial"], torch.full((2,), k))
            assert torch.equal(info["position"], info["platform"])
        elif phase in (6, 7):
            assert torch.equal(info["position"], info["platform"]) and info["on_platform"].all()
            assert torch.all(obs[:, -2] == 1)
        else:  # phase 0: the last rest step starts trial k on the wall
            assert torch.equal(info["trial"], torch.full((2,), k))
            assert torch.equal(info["trial_step"], torch.zeros(2, dtype=torch.long))
            assert not info["on_platform"].any() and torch.all(obs[:, -2] == 0)
            assert torch.allclose(torch.linalg.vector_norm(info["position"], dim=-1), torch.ones(2))
            assert torch.allclose(info["position"], release_point(cfg, angles[:, k]))
            assert torch.equal(info["release"], info["position"])
        if phase in (5, 6, 7):
            assert torch.equal(info["trial"], torch.full((2,), k))
    assert done.all()
    assert not torch.allclose(release0, env.state.release)


def test_no_rest_starts_next_trial_immediately():
    cfg = WaterMazeConfig(trial_timeout=4, rest_steps=0, episode_steps=12)
    env = WaterMaze(cfg, num_envs=1, seed=0)
    env.reset()
    for t in range(1, 13):
        _, _, _, info = env.step(torch.zeros(1, 2))
        if t % 4 == 0:
            assert info["trial_end"].all()
            assert int(info["ended_trial"][0]) == t // 4 - 1 and int(info["trial"][0]) == t // 4
            assert float(torch.linalg.vector_norm(info["position"])) == pytest.approx(1.0)
        else:
            assert not info["trial_end"].any()


def test_reach_rest_ignores_actions_then_new_release():
    cfg = WaterMazeConfig(rest_steps=3)
    env = WaterMaze(cfg, num_envs=1, seed=7)
    env.reset()
    expected = int(optimal_latency(cfg, env.state.release, env.state.platform)[0])
    for t in range(1, expected + 1):
        obs, reward, _, info = env.step(homing(env.state))
    assert float(reward[0]) == 1 and int(info["latency"][0]) == expected == t
    assert float(obs[0, -2]) == 1 and float(obs[0, -1]) == 1  # contact and previous reward
    on = info["position"].clone()
    for r in range(3):
        obs, reward, _, info = env.step(torch.tensor([[1.0, -1.0]]))  # ignored while resting
        assert float(reward[0]) == 0 and float(obs[0, -1]) == 0
        if r < 2:
            assert torch.equal(info["position"], on) and float(obs[0, -2]) == 1
    assert int(info["trial"][0]) == 1 and float(obs[0, -2]) == 0
    assert torch.allclose(info["position"], release_point(cfg, env.state.release_angles[:, 1]))


def test_homing_latency_equals_optimal_latency():
    cfg = WaterMazeConfig(v_max=0.07, rest_steps=0)
    B = 256
    env = WaterMaze(cfg, num_envs=B, seed=11, dtype=torch.float64)
    env.reset()
    first = torch.zeros(B, dtype=torch.long)
    optimal = optimal_latency(cfg, env.state.release, env.state.platform)
    for _ in range(cfg.trial_timeout):
        _, _, _, info = env.step(homing(env.state))
        ended0 = info["trial_end"] & (info["ended_trial"] == 0)
        first[ended0] = info["latency"][ended0]
        assert not torch.any(info["trial_end"] & ~info["escaped"])
    assert torch.equal(first, optimal)
    release = torch.tensor([[-1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    platform = torch.tensor([[0.0, 0.0], [0.05, 0.0]], dtype=torch.float64)
    assert optimal_latency(WaterMazeConfig(), release, platform).tolist() == [9, 1]


def test_platform_fixed_within_episode_new_across_resets():
    cfg = WaterMazeConfig(episode_steps=50)
    env = WaterMaze(cfg, num_envs=8, seed=0)
    platforms = []
    for _ in range(3):
        env.reset()
        start = env.state.platform.clone()
        for _ in range(cfg.episode_steps):
            _, _, _, info = env.step(homing(env.state))
            assert torch.equal(info["platform"], start)
        platforms.append(start)
    assert not torch.allclose(platforms[0], platforms[1]) and not torch.allclose(platforms[1], platforms[2])
    assert (platforms[0][:, None] - platforms[0][None]).abs().sum(-1).fill_diagonal_(1).min() > 0  # per env


def test_platform_distribution_is_uniform_over_allowed_disk():
    cfg = WaterMazeConfig()
    state = reset_state(cfg, 40000, torch.Generator().manual_seed(0), dtype=torch.float64)
    r = torch.linalg.vector_norm(state.platform, dim=-1)
    assert float(r.max()) <= cfg.platform_centre_radius
    assert float((r <= cfg.platform_centre_radius / 2).double().mean()) == pytest.approx(0.25, abs=0.01)
    assert float((state.platform[:, 0] > 0).double().mean()) == pytest.approx(0.5, abs=0.01)
    wall = torch.linalg.vector_norm(state.position, dim=-1)
    assert torch.allclose(wall, torch.ones_like(wall))


def test_cardinal_release_points():
    cfg = WaterMazeConfig(release="cardinal")
    state = reset_state(cfg, 200, torch.Generator().manual_seed(0), dtype=torch.float64)
    pts = release_point(cfg, state.release_angles).reshape(-1, 2).round(decimals=9)
    assert {tuple(p) for p in pts.tolist()} == {(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)}


def test_given_release_angles_and_platform_are_used_and_validated():
    cfg = WaterMazeConfig(trial_timeout=3, rest_steps=1)
    env = WaterMaze(cfg, num_envs=2, seed=0, dtype=torch.float64)
    angles = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], dtype=torch.float64)
    platform = torch.tensor([[0.1, 0.2], [-0.3, 0.0]], dtype=torch.float64)
    env.reset(platform=platform, release_angles=angles)
    assert torch.equal(env.state.platform, platform)
    releases = [env.state.release.clone()]
    for _ in range(8):
        _, _, _, info = env.step(torch.zeros(2, 2))
        if not torch.equal(info["release"], releases[-1]):
            releases.append(info["release"].clone())
    for k in range(3):
        assert torch.allclose(releases[k], release_point(cfg, angles[:, k]))
    with pytest.raises(ValueError, match="platform"):
        env.reset(platform=torch.tensor([[0.85, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="platform"):
        env.reset(platform=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="release_angles"):
        env.reset(release_angles=torch.zeros(5, 2))


def test_same_seed_same_episode_different_seed_different():
    def rollout(seed, reseed=None):
        env = WaterMaze(WaterMazeConfig(episode_steps=60), num_envs=4, seed=seed)
        if reseed is not None:
            env.reset()
            env.step(torch.zeros(4, 2))
        obs = [env.reset(seed=reseed)]
        rng = np.random.default_rng(0)  # same actions for every rollout
        for _ in range(60):
            action = torch.as_tensor(rng.uniform(-1, 1, size=(4, 2)), dtype=torch.float32)
            obs.append(env.step(action)[0])
        return torch.stack(obs)

    a, b, c = rollout(0), rollout(0), rollout(1)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert torch.equal(rollout(99, reseed=0), a)  # reset(seed=...) reseeds


def test_float32_and_float64_agree():
    cfg = WaterMazeConfig(episode_steps=30)
    e32 = WaterMaze(cfg, num_envs=3, seed=2, dtype=torch.float32)
    e64 = WaterMaze(cfg, num_envs=3, seed=2, dtype=torch.float64)
    o32, o64 = e32.reset(), e64.reset()
    assert torch.allclose(o32.double(), o64, atol=1e-6)
    for _ in range(30):
        a = torch.tensor([[0.5, -0.2], [-1.0, 0.3], [0.0, 0.9]])
        o32 = e32.step(a)[0]
        o64 = e64.step(a.double())[0]
    assert torch.allclose(o32.double(), o64, atol=1e-4)


def test_probe_trial_no_reward_no_contact_then_platform_back():
    cfg = WaterMazeConfig(trial_timeout=30, rest_steps=2, episode_steps=80)
    env = WaterMaze(cfg, num_envs=16, seed=3)
    env.reset(probe_trial=0)
    closest = torch.full((16,), 9.0)
    for t in range(1, cfg.trial_timeout + 1):
        obs, reward, _, info = env.step(homing(env.state))  # swims right onto the platform site
        dist = torch.linalg.vector_norm(info["position"] - info["platform"], dim=-1)
        closest = torch.minimum(closest, dist)
        assert torch.all(reward == 0)
        if t < cfg.trial_timeout:
            assert torch.all(obs[:, -2] == 0) and not info["platform_present"].any()
            assert not info["trial_end"].any()
    assert torch.all(closest < cfg.platform_radius)  # it did cross the (absent) platform
    assert info["trial_end"].all() and torch.equal(info["latency"], torch.full((16,), 30))
    assert torch.equal(info["position"], info["platform"]) and info["platform_present"].all()
    assert torch.all(obs[:, -2] == 1)  # placed on it as after a time-out: contact is back
    escaped_after = torch.zeros(16, dtype=torch.bool)
    for _ in range(cfg.episode_steps - cfg.trial_timeout):
        _, reward, _, info = env.step(homing(env.state))
        escaped_after |= reward == 1
        assert not torch.any((reward == 1) & (info["trial"] == 0))
    assert escaped_after.all()  # the platform is present in later trials


def test_move_platform_takes_effect_at_next_trial():
    cfg = WaterMazeConfig(rest_steps=30)  # long rest: every env is on the old platform at once
    env = WaterMaze(cfg, num_envs=4, seed=9, dtype=torch.float64)
    env.reset()
    old = env.state.platform.clone()
    new = -old
    while not env.state.rest_left.gt(0).all():  # reach the old platform in every env
        env.step(homing(env.state) * (env.state.rest_left == 0).unsqueeze(-1))
    env.move_platform(new)
    assert torch.equal(env.state.platform, old)  # still resting on the old one
    seen = torch.zeros(4, dtype=torch.bool)
    for _ in range(60):
        _, reward, _, info = env.step(homing(env.state))
        started = info["trial"] >= 1
        assert torch.equal(info["platform"][started], new[started])
        assert torch.equal(info["platform"][~started], old[~started])
        seen |= (reward == 1) & started
    assert seen.all()
    with pytest.raises(ValueError, match="platform"):
        env.move_platform(torch.tensor([0.9, 0.0]))


def test_no_cross_talk_between_batched_envs():
    cfg = WaterMazeConfig(episode_steps=120, trial_timeout=25)
    B = 6
    gen = torch.Generator().manual_seed(123)
    platform = reset_state(cfg, B, gen).platform
    angles = 2 * math.pi * torch.rand(B, cfg.max_trials, generator=gen)
    copies, originals = [4, 5], [0, 2]  # envs 4 and 5 replay envs 0 and 2: events coincide across envs
    platform[copies], angles[copies] = platform[originals], angles[originals]
    probe = [-1, 1, -1, 0, -1, -1]

    batched = WaterMaze(cfg, num_envs=B, seed=0)
    batched.reset(platform=platform, release_angles=angles, probe_trial=torch.tensor(probe))
    actions, out_b = [], []
    for t in range(cfg.episode_steps):
        a = torch.rand(B, 2, generator=gen) * 2 - 1
        a[::2] = 0.3 * a[::2] + homing(batched.state)[::2]  # even envs find the platform
        a[copies] = a[originals]
        actions.append(a)
        obs, reward, _, info = batched.step(a)
        out_b.append(torch.cat([obs, reward[:, None], info["position"], info["trial"][:, None].float()], -1))
    out_b = torch.stack(out_b)  # [T, B, obs_dim + 4]
    assert out_b[:, :, -4].sum() > 10  # many reaches (-4 is the reward column) ...
    assert torch.equal(out_b[:, 0], out_b[:, 4])  # ... some of them simultaneous
    for i in range(B):
        single = WaterMaze(cfg, num_envs=1, seed=1000 + i)
        single.reset(platform=platform[i : i + 1], release_angles=angles[i : i + 1], probe_trial=probe[i])
        for t in range(cfg.episode_steps):
            obs, reward, _, info = single.step(actions[t][i : i + 1])
            row = torch.cat([obs, reward[:, None], info["position"], info["trial"][:, None].float()], -1)
            assert torch.equal(row[0], out_b[t, i]), (i, t)


def test_done_on_last_step_and_step_after_done_raises():
    cfg = WaterMazeConfig(episode_steps=7)
    env = WaterMaze(cfg, num_envs=3, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(3, 2))
    for _ in range(2):
        env.reset()
        for t in range(1, 8):
            _, _, done, _ = env.step(torch.zeros(3, 2))
            assert done.dtype == torch.bool and done.shape == (3,)
            assert bool(done.all()) == (t == 7) and bool(done.any()) == (t == 7)
        with pytest.raises(RuntimeError, match="reset"):
            env.step(torch.zeros(3, 2))
    env.reset()
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="NaN"):
        env.step(torch.full((3, 2), float("nan")))


def test_pure_functions_match_class():
    cfg = WaterMazeConfig(episode_steps=20)
    env = WaterMaze(cfg, num_envs=3, seed=8)
    obs = env.reset()
    state = reset_state(cfg, 3, torch.Generator().manual_seed(8))
    assert torch.equal(observe(cfg, state), obs)
    for _ in range(20):
        a = homing(state)
        state, r_pure, info_pure = step_state(cfg, state, a)
        _, r_cls, _, info_cls = env.step(a)
        assert torch.equal(r_pure, r_cls) and torch.equal(info_pure["position"], info_cls["position"])
    assert set(info_cls) >= {
        "position", "platform", "trial", "on_platform", "trial_end", "escaped", "latency", "release", "trial_step",
    }
    assert info_cls["trial"].dtype == torch.long and info_cls["latency"].dtype == torch.long
    assert info_cls["on_platform"].dtype == torch.bool


def test_atlantis_platform_rises_after_probe_steps():
    cfg = WaterMazeConfig(trial_timeout=40, rest_steps=2, episode_steps=60)
    env = WaterMaze(cfg, num_envs=8, seed=4, dtype=torch.float64)
    delays = torch.tensor([3, 5, 8, 12, 15, 20, 25, 30])
    env.reset(probe_trial=0, probe_steps=delays)
    arrival = optimal_latency(cfg, env.state.release, env.state.platform)
    escape_step = torch.full((8,), -1)
    for t in range(1, cfg.trial_timeout + 1):
        # home in, then circle on the site: the swimmer is over the platform every step
        _, reward, _, info = env.step(homing(env.state) * (env.state.rest_left == 0).unsqueeze(-1))
        newly = (reward == 1) & (escape_step < 0)
        escape_step[newly] = t
        assert not torch.any((reward == 1) & (info["trial"] == 0) & (t <= delays) & (escape_step == t))
    assert torch.all(escape_step > delays)  # never before it rose ...
    assert torch.all(escape_step <= torch.maximum(delays + 1, arrival + 1))  # ... then at once


def test_atlantis_draws_change_no_other_draw_and_hit_the_fraction():
    cfg = WaterMazeConfig()
    plain = reset_state(cfg, 4000, torch.Generator().manual_seed(5))
    drawn = reset_state(cfg, 4000, torch.Generator().manual_seed(5), atlantis=(0.5, 20))
    assert torch.equal(plain.platform, drawn.platform)
    assert torch.equal(plain.release_angles, drawn.release_angles)
    chosen = drawn.probe_trial >= 0
    assert 0.45 < chosen.float().mean() < 0.55
    assert set(drawn.probe_trial[chosen].tolist()) == {1, 2, 3, 4}
    assert drawn.probe_steps[chosen].min() == 1 and drawn.probe_steps[chosen].max() == 20
    assert torch.all(drawn.probe_steps[~chosen] == cfg.trial_timeout)
    assert torch.all(plain.probe_trial == -1)
    with pytest.raises(ValueError, match="fraction"):
        reset_state(cfg, 2, torch.Generator(), atlantis=(1.5, 20))
    with pytest.raises(ValueError, match="max_delay"):
        reset_state(cfg, 2, torch.Generator(), atlantis=(0.5, 0))


def test_atlantis_min_delay_bounds_the_delays_and_one_is_the_two_value_form():
    cfg = WaterMazeConfig()
    two = reset_state(cfg, 4000, torch.Generator().manual_seed(5), atlantis=(0.5, 20))
    one = reset_state(cfg, 4000, torch.Generator().manual_seed(5), atlantis=(0.5, 20, 1))
    assert torch.equal(two.probe_trial, one.probe_trial) and torch.equal(two.probe_steps, one.probe_steps)
    late = reset_state(cfg, 4000, torch.Generator().manual_seed(5), atlantis=(0.5, 20, 15))
    chosen = late.probe_trial >= 0
    assert torch.equal(chosen, two.probe_trial >= 0)  # the same episodes, later platforms
    assert set(late.probe_steps[chosen].tolist()) == set(range(15, 21))
    assert torch.all(late.probe_steps[~chosen] == cfg.trial_timeout)
    fixed = reset_state(cfg, 50, torch.Generator().manual_seed(5), atlantis=(1.0, 20, 20))
    assert torch.all(fixed.probe_steps == 20)
    for bad in ((0.5, 20, 0), (0.5, 20, 21), (0.5, 20, 2.5), (0.5,), (0.5, 20, 3, 4)):
        with pytest.raises(ValueError, match="atlantis"):
            reset_state(cfg, 2, torch.Generator(), atlantis=bad)


def test_dwell_reward_pays_near_an_absent_platform_only_and_is_not_seen_or_an_escape():
    cfg = WaterMazeConfig(trial_timeout=40, rest_steps=2, episode_steps=60)
    delay = 25

    def run(dwell):
        env = WaterMaze(cfg, num_envs=6, seed=4, dtype=torch.float64)
        env.reset(probe_trial=0, probe_steps=delay, dwell_reward=dwell)
        rows = []
        for _ in range(delay + 20):
            before = env.state
            obs, reward, _, info = env.step(homing(env.state) * (env.state.rest_left == 0).unsqueeze(-1))
            near = ((info["position"] - before.platform) ** 2).sum(-1) <= (2 * cfg.platform_radius) ** 2
            rows.append((obs, reward, info["escaped"], near, before.platform_present, before.trial_step))
        return rows

    plain, shaped = run(0.0), run(0.05)
    paid = 0
    for (obs0, r0, esc0, _, _, _), (obs1, r1, esc1, near, present, step) in zip(plain, shaped):
        assert torch.equal(obs0, obs1) and torch.equal(esc0, esc1)  # nothing seen, no new escape
        extra = r1 - r0
        waiting = ~present & (step + 1 <= delay)  # the platform had not risen at this step
        assert torch.allclose(extra, 0.05 * (waiting & near).double())
        paid += int((extra > 0).sum())
    assert paid > 6 * 5  # the homing swimmer waits at the site for many steps before it rises
    with pytest.raises(ValueError, match="dwell_reward"):
        reset_state(cfg, 2, torch.Generator(), dwell_reward=-0.1)
    with pytest.raises(ValueError, match="dwell_reward"):
        reset_state(cfg, 2, torch.Generator(), dwell_reward=float("nan"))


def test_dark_delay_hides_everything_then_next_trial_starts():
    cfg = WaterMazeConfig(trial_timeout=40, rest_steps=2, episode_steps=120)
    env = WaterMaze(cfg, num_envs=4, seed=6, dtype=torch.float64)
    env.reset(dark_after_trial=0, dark_steps=25)
    dark_obs, positions, trials = [], [], []
    while not bool(env.state.trial.ge(1).all()):
        obs, _, _, info = env.step(homing(env.state) + 0.5)  # actions must be ignored in the dark
        dark = info["dark"]
        dark_obs.append((obs.abs().sum(-1) == 0) == dark)
        positions.append(info["position"][dark])
        trials.append(info["trial"])
    assert torch.stack(dark_obs).all()  # zero observation exactly during the delay
    trials = torch.stack(trials)
    # each env spends exactly 25 steps in the dark, all while its trial index is still 0
    t_first = (trials >= 1).float().argmax(0)
    assert env.state.step.max() <= 40 + 2 + 25 + 1
    env2 = WaterMaze(cfg, num_envs=4, seed=6, dtype=torch.float64)
    env2.reset()
    t_plain = torch.full((4,), -1)
    for t in range(1, 80):
        _, _, _, info = env2.step(homing(env2.state) + 0.5)
        t_plain[(info["trial"] >= 1) & (t_plain < 0)] = t
    assert torch.equal(t_first + 1, t_plain + 25)  # the delay added exactly 25 steps
    # the next trial starts at its release point on the wall, with place cells back on
    assert torch.allclose(torch.linalg.vector_norm(env.state.release, dim=-1), torch.ones(4, dtype=torch.float64))
    assert torch.all(env.observe()[:, :-2].sum(-1) > 0)
    with pytest.raises(ValueError, match="dark_steps"):
        env.reset(dark_after_trial=0, dark_steps=-1)


def test_recall_cue_lights_the_last_dark_steps_the_same_in_every_episode():
    cfg = WaterMazeConfig(trial_timeout=40, rest_steps=2, episode_steps=120, recall_cue_steps=3,
                          recall_cue_level=0.2)
    env = WaterMaze(cfg, num_envs=4, seed=6, dtype=torch.float64)
    env.reset(dark_after_trial=0, dark_steps=torch.tensor([10, 2, 0, 7]))
    seen = [[] for _ in range(4)]
    while not bool(env.state.trial.ge(1).all()):
        obs, _, _, info = env.step(homing(env.state))
        for b in range(4):
            if info["dark"][b]:
                seen[b].append(obs[b])
    n = cfg.place_grid**2
    cue = torch.cat([torch.full((n,), 0.2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)])
    for b, delay in enumerate((10, 2, 0, 7)):
        assert len(seen[b]) == delay
        lit = min(delay, 3)
        assert all(torch.equal(o, cue) for o in seen[b][delay - lit:])  # the last steps: the cue
        assert all(o.abs().sum() == 0 for o in seen[b][:delay - lit])  # before them: nothing
    with pytest.raises(ValueError, match="recall_cue_steps"):
        WaterMazeConfig(recall_cue_steps=-1)
    with pytest.raises(ValueError, match="recall_cue_input"):
        WaterMazeConfig(recall_cue_input="place")
    with pytest.raises(ValueError, match="recall_cue_level"):
        WaterMazeConfig(recall_cue_level=float("nan"))


def test_recall_cue_on_its_own_channel_lights_only_the_last_entry():
    base = dict(trial_timeout=40, rest_steps=2, episode_steps=120, recall_cue_steps=3,
                recall_cue_level=0.8)
    cfg = WaterMazeConfig(**base, recall_cue_input="channel")
    assert cfg.obs_dim == WaterMazeConfig(**base).obs_dim + 1 == cfg.place_grid**2 + 3
    # without cue steps there is no cue and no channel: the observation is unchanged
    assert WaterMazeConfig(recall_cue_input="channel").obs_dim == WaterMazeConfig().obs_dim
    env = WaterMaze(cfg, num_envs=2, seed=6, dtype=torch.float64)
    plain = WaterMaze(WaterMazeConfig(**base), num_envs=2, seed=6, dtype=torch.float64)
    obs, obs_plain = (e.reset(dark_after_trial=0, dark_steps=torch.tensor([6, 0]))
                      for e in (env, plain))
    lit = []
    while not bool(env.state.trial.ge(1).all()):
        # the same episodes: outside the cue the first entries are the plain env's, the last is 0
        torch.testing.assert_close(obs[:, :-1][~(env.state.dark_left > 0)],
                                   obs_plain[~(env.state.dark_left > 0)])
        action = homing(env.state)
        obs, _, _, info = env.step(action)
        obs_plain, _, _, _ = plain.step(action)
        lit.append(obs[0, -1].item())
        if info["dark"][0]:
            assert obs[0, :-1].abs().sum() == 0  # the place cells stay dark
        else:
            assert obs[0, -1] == 0
    assert lit.count(0.8) == 3 and obs[1, -1] == 0  # the delay's last 3 steps; no delay, no cue
