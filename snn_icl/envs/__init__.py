"""Environments: the batched torch water maze and its Gymnasium registration.

Importing this package registers the Gymnasium id ``"snn_icl/WaterMaze-v0"`` (one episode of
:class:`WaterMaze`; keyword arguments of ``gymnasium.make`` are :class:`WaterMazeConfig` fields).
"""

import gymnasium

from snn_icl.envs.water_maze import WaterMaze, WaterMazeConfig, WaterMazeState

GYM_ID = "snn_icl/WaterMaze-v0"

if GYM_ID not in gymnasium.registry:  # importing twice (or reloading) must not warn or fail
    # No max_episode_steps: the env truncates itself after `episode_steps`, which is configurable.
    gymnasium.register(id=GYM_ID, entry_point="snn_icl.envs.gym_env:WaterMazeEnv")

__all__ = ["GYM_ID", "WaterMaze", "WaterMazeConfig", "WaterMazeState"]
