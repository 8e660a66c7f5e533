"""Tests of the Gymnasium wrapper and its registration ("snn_icl/WaterMaze-v0")."""

from __future__ import annotations

import importlib
import math
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import snn_icl.envs
from snn_icl.envs import GYM_ID, WaterMaze, WaterMazeConfig
from snn_icl.envs.gym_env import WaterMazeEnv


def rollout(env: gym.Env, seed: int, n_steps: int, action_seed: int = 0):
    """Observations, rewards and infos of ``n_steps`` random actions after ``reset(seed=seed)``."""
    obs, info = env.reset(seed=seed)
    env.action_space.seed(action_seed)
    out = [(obs, 0.0, info)]
    for _ in range(n_steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        out.append((obs, reward, info))
    return out


def test_registered_once_and_makes_env():
    assert GYM_ID in gym.registry
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re-registration would warn
        importlib.reload(snn_icl.envs)
    env = gym.make(GYM_ID, place_grid=5, episode_steps=20)
    assert isinstance(env.unwrapped, WaterMazeEnv)
    assert env.observation_space.shape == (27,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (2,) and env.action_space.dtype == np.float32
    with pytest.raises(ValueError, match="platform_radius"):
        gym.make(GYM_ID, platform_radius=-0.1)


@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
def test_check_env_passes(render_mode):
    env = gym.make(GYM_ID, render_mode=render_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings count as failures
        check_env(env.unwrapped)


def test_seeded_determinism_and_truncation():
    a = rollout(gym.make(GYM_ID, episode_steps=40), seed=7, n_steps=40)
    b = rollout(gym.make(GYM_ID, episode_steps=40), seed=7, n_steps=40)
    c = rollout(gym.make(GYM_ID, episode_steps=40), seed=8, n_steps=40)
    for (oa, ra, ia), (ob, rb, ib) in zip(a, b):
        assert oa.dtype == np.float32 and np.array_equal(oa, ob) and ra == rb
        assert np.array_equal(ia["position"], ib["position"]) and ia["trial"] == ib["trial"]
    assert not np.array_equal(a[0][2]["platform"], c[0][2]["platform"])


def test_reset_without_seed_draws_new_platform_from_np_random():
    env = gym.make(GYM_ID)
    platforms = [env.reset(seed=3)[1]["platform"]] + [env.reset()[1]["platform"] for _ in range(3)]
    assert len({tuple(p) for p in platforms}) == 4
    again = gym.make(GYM_ID)
    assert np.array_equal(again.reset(seed=3)[1]["platform"], platforms[0])
    assert np.array_equal(again.reset()[1]["platform"], platforms[1])  # the sequence follows np_random


def test_truncated_at_episode_end_never_terminated():
    env = gym.make(GYM_ID, episode_steps=12).unwrapped
    env.reset(seed=0)
    for t in range(1, 13):
        obs, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        assert terminated is False and truncated is (t == 12)
        assert env.observation_space.contains(obs)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2, np.float32))
    env.reset()
    env.step(np.zeros(2, np.float32))


def test_matches_batched_env_and_reset_options():
    cfg = dict(trial_timeout=20, rest_steps=2, episode_steps=60)
    platform, angles = (0.3, -0.2), [0.5, 2.0, 4.0, 1.0, 3.0, 5.0, 0.1, 2.5]  # >= trials in 60 steps
    env = gym.make(GYM_ID, **cfg).unwrapped
    obs, info = env.reset(seed=1, options={"platform": platform, "release_angles": angles, "probe_trial": 1})
    maze = WaterMaze(WaterMazeConfig(**cfg), num_envs=1, seed=123)
    obs_b = maze.reset(
        platform=torch.tensor([platform]), release_angles=torch.tensor([angles]), probe_trial=1
    )
    assert np.array_equal(obs, obs_b[0].numpy())
    assert info["release"] == pytest.approx([math.cos(0.5), math.sin(0.5)], abs=1e-6)
    rng = np.random.default_rng(0)
    rewards = []
    for _ in range(60):
        action = rng.uniform(-1, 1, 2).astype(np.float32) * 0.3 + (np.array(platform) - info["position"]) * 5
        action = np.clip(action, -1, 1).astype(np.float32)
        obs, reward, _, _, info = env.step(action)
        obs_b, reward_b, _, info_b = maze.step(torch.from_numpy(action)[None])
        assert np.array_equal(obs, obs_b[0].numpy()) and reward == float(reward_b[0])
        assert info["latency"] == int(info_b["latency"][0]) and info["trial"] == int(info_b["trial"][0])
        rewards.append((info["ended_trial"], reward))
    assert (0, 1.0) in rewards and (1, 0.0) in rewards and (2, 1.0) in rewards  # trial 1 is the probe
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"platfrom": platform})
    with pytest.raises(ValueError, match="platform"):
        env.reset(options={"platform": (0.9, 0.0)})


def test_pickle_round_trip_continues_identically():
    env = gym.make(GYM_ID, episode_steps=30).unwrapped
    env.reset(seed=4)
    for _ in range(5):
        env.step(np.array([0.3, -0.7], np.float32))
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(10):
        a = np.array([-0.5, 0.9], np.float32)
        assert np.array_equal(env.step(a)[0], clone.step(a)[0])
    assert np.array_equal(env.reset()[0], clone.reset()[0])  # np_random state travels too


def test_render_rgb_array():
    env = gym.make(GYM_ID, render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    assert (img == np.array([220, 30, 30], np.uint8)).all(-1).any()  # the swimmer is drawn
    assert (img == np.array([110, 110, 110], np.uint8)).all(-1).any()  # and the platform
    assert gym.make(GYM_ID).unwrapped.render() is None
    with pytest.raises(ValueError, match="render_mode"):
        WaterMazeEnv(render_mode="human")
