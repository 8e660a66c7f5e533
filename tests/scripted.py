"""Scripted swimmers for the tests: agents whose behaviour is known without training."""

import torch

from snn_icl.envs.water_maze import WaterMazeConfig
from snn_icl.models.agent import ActOutput, PolicyOutput

CFG = WaterMazeConfig(platform_radius=0.1, v_max=0.1, trial_timeout=40, episode_steps=150)
"""A water maze whose trials fit the oracle's straight swims many times over."""


class Oracle:
    """Swims straight at the platform centre (reads it from the env): the best possible agent."""

    spiking = False

    def __init__(self, env):
        self.env = env

    def initial_state(self, batch):
        return None

    def act(self, obs, state, *, generator=None, record=False):
        s = self.env.state
        d = s.platform - s.position
        mean = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-9)
        return ActOutput(PolicyOutput(mean, torch.zeros(2), torch.zeros(len(obs))), None, obs)
