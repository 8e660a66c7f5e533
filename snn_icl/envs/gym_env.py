"""Gymnasium wrapper: one water-maze episode as a ``gymnasium.Env`` ("snn_icl/WaterMaze-v0").

The rules are those of :class:`snn_icl.envs.water_maze.WaterMaze` (its docstring is the
specification); this wrapper runs one episode (B = 1, float32) of the batched env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from snn_icl.envs.water_maze import WaterMaze, WaterMazeConfig


class WaterMazeEnv(gym.Env):
    """Morris water maze, one episode of ``episode_steps`` env steps holding many trials.

    ## Description

    See :class:`snn_icl.envs.water_maze.WaterMaze`: a swimmer searches a hidden platform in a
    circular pool; the platform is fixed within an episode and redrawn at each reset; each reached
    platform (or time-out) is followed by ``rest_steps`` on the platform and a new release from
    the wall.

    ## Action Space

    ``Box(-1, 1, (2,), float32)``: a velocity, clamped to the unit disk; the displacement is
    ``v_max * action`` per step.

    ## Observation Space

    ``Box(0, 1, (obs_dim,), float32)``, ``obs_dim = place_grid**2 + 2`` (``+ place_grid**2``
    with the cue channel, ``+ 1`` with the recall cue on a channel of its own):

    | Index        | Observation                                   | Min | Max |
    |--------------|-----------------------------------------------|-----|-----|
    | 0 .. G^2 - 1 | Gaussian place cells on a G x G grid          | 0   | 1   |
    | G^2          | platform contact (resting on the platform)    | 0   | 1   |
    | G^2 + 1      | reward of the previous step                   | 0   | 1   |
    | G^2 + 2 ..   | with ``cue_channel=True`` only: the platform's | 0   | 1   |
    | 2 G^2 + 1    | place-cell code on cued episodes (visible)    |     |     |
    | last         | with ``recall_cue_input="channel"`` only: the  | 0   | 1   |
    |              | recall cue (the delay's last steps)           |     |     |

    ## Rewards

    1 on the step that reaches the platform (segment-disk test), 0 otherwise.

    ## Starting State

    A release point on the wall (random angle, or one of N/E/S/W with ``release="cardinal"``); a
    platform centre uniform over the disk of radius ``pool_radius - platform_radius -
    platform_margin``. ``reset(options=...)`` accepts ``{"platform": (x, y), "probe_trial": k,
    "release_angles": [a0, a1, ...], "cued": True}`` for controlled evaluation (``cued`` needs
    ``cue_channel=True``).

    ## Episode End

    Never terminated (there is no terminal state); truncated after ``episode_steps`` env steps.
    Stepping after that raises ``RuntimeError`` until reset.

    ## Arguments

    ``gymnasium.make("snn_icl/WaterMaze-v0", render_mode=None, **config)`` where ``config`` are
    :class:`~snn_icl.envs.water_maze.WaterMazeConfig` fields (e.g. ``platform_radius=0.12``).
    ``render_mode="rgb_array"`` draws the pool (blue), platform (grey, outline only while absent)
    and swimmer (red) into a ``[128, 128, 3]`` uint8 image.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **config: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.config = WaterMazeConfig(**config)
        self._maze = WaterMaze(self.config, num_envs=1, seed=None, dtype=torch.float32)
        self.observation_space = spaces.Box(0.0, 1.0, (self.config.obs_dim,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def _info(self, info: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
        state = self._maze.state
        out: dict[str, Any] = {
            "position": state.position[0].numpy().astype(np.float32),
            "platform": state.platform[0].numpy().astype(np.float32),
            "release": state.release[0].numpy().astype(np.float32),
            "trial": int(state.trial[0]),
            "trial_step": int(state.trial_step[0]),
            "platform_present": bool(state.platform_present[0]),
            "on_platform": bool((state.rest_left[0] > 0) & state.platform_present[0]),
        }
        if info is not None:
            out.update(
                trial_end=bool(info["trial_end"][0]),
                escaped=bool(info["escaped"][0]),
                latency=int(info["latency"][0]),
                ended_trial=int(info["ended_trial"][0]),
            )
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"platform", "probe_trial", "release_angles", "cued"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; known: platform, probe_trial, "
                             "release_angles, cued")
        torch_seed = int(self.np_random.integers(0, 2**63 - 1))  # the only source of randomness
        platform = options.get("platform")
        release_angles = options.get("release_angles")
        obs = self._maze.reset(
            seed=torch_seed,
            platform=None if platform is None else torch.as_tensor(np.asarray(platform), dtype=torch.float32).reshape(1, 2),
            probe_trial=options.get("probe_trial"),
            release_angles=None
            if release_angles is None
            else torch.as_tensor(np.asarray(release_angles), dtype=torch.float32).reshape(1, -1),
            cued=bool(options.get("cued", False)),
        )
        return obs[0].numpy().astype(np.float32), self._info()

    def step(self, action):
        action = np.asarray(action, dtype=np.float32).reshape(1, 2)
        obs, reward, done, info = self._maze.step(torch.from_numpy(action))
        return obs[0].numpy().astype(np.float32), float(reward[0]), False, bool(done[0]), self._info(info)

    def move_platform(self, platform) -> None:
        """Reversal: move the platform to ``platform`` (x, y) from the next trial start on."""
        self._maze.move_platform(torch.as_tensor(np.asarray(platform), dtype=torch.float32).reshape(1, 2))

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        size = 128
        R = self.config.pool_radius
        state = self._maze.state
        # Pixel centres mapped to [-1.05 R, 1.05 R]^2, y up.
        coords = (np.arange(size) + 0.5) / size * 2.1 * R - 1.05 * R
        x, y = np.meshgrid(coords, coords[::-1])
        img = np.full((size, size, 3), 255, dtype=np.uint8)
        img[x**2 + y**2 <= R**2] = (170, 205, 235)
        px, py = state.platform[0].tolist()
        d_platform = np.sqrt((x - px) ** 2 + (y - py) ** 2)
        pr = self.config.platform_radius
        if bool(state.platform_present[0]):
            img[d_platform <= pr] = (110, 110, 110)
        else:
            img[np.abs(d_platform - pr) <= 1.5 * 2.1 * R / size] = (110, 110, 110)
        ax, ay = state.position[0].tolist()
        img[(x - ax) ** 2 + (y - ay) ** 2 <= (0.04 * R) ** 2] = (220, 30, 30)
        return img

    def close(self) -> None:
        pass
