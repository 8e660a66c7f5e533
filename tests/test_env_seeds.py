"""Training and held-out evaluation never swim the same episodes: their env seeds and the
platforms those seeds draw are disjoint, for the seeds the trainer and the evaluator really use."""

import pytest
import torch

import snn_icl.episodes.rollout as rollout_module
import snn_icl.train.ppo as ppo
from snn_icl.config import load_task
from snn_icl.envs.water_maze import WaterMaze
from snn_icl.episodes.rollout import env_seed
from snn_icl.experiments.evaluate import evaluate
from snn_icl.storage.checkpoint import load_agent
from snn_icl.train.run_dir import CHECKPOINT, train_run
from tests.conftest import TASKS

# user seeds: small ones, the default task's, the README's evaluation seeds, and large ones
SEEDS = [*range(0, 21), 42, 1234, 2**16 + 1, 10**6, 1_000_003, 2**31 - 1, 2**32 + 5, 10**9 + 7,
         10**12]


def _platform_rows(env: WaterMaze) -> set[tuple[float, float]]:
    return {tuple(p) for p in env.state.platform.tolist()}


def test_training_and_evaluation_seeds_are_disjoint():
    default = load_task(TASKS / "water_maze.toml")
    iterations = default.train.iterations  # every training batch of the default recipe
    assert iterations >= 1000
    train = {env_seed(s, i, training=True) for s in SEEDS for i in range(iterations)}
    evaluation = {env_seed(s, i, training=False) for s in SEEDS for i in range(64)}
    assert len(train) == len(SEEDS) * iterations  # no two training batches share a seed either
    assert train.isdisjoint(evaluation)
    # torch's CPU generator seeds its Mersenne twister with the low 32 bits only: the seeds that
    # actually reach the generator must be disjoint too
    assert {s % 2**32 for s in train}.isdisjoint({s % 2**32 for s in evaluation})
    # every seed is one torch accepts
    for s in (max(train), max(evaluation)):
        torch.Generator().manual_seed(s)


@pytest.mark.parametrize("seed", [0, 1, 3, 2**31 - 1, 10**9 + 7])
def test_training_and_evaluation_batches_draw_different_platforms(seed):
    cfg = load_task(TASKS / "water_maze.toml").env
    held_out: set[tuple[float, float]] = set()
    for i in range(4):  # 256 held-out episodes in batches of 64
        env = WaterMaze(cfg, num_envs=64, seed=env_seed(seed, i, training=False))
        env.reset()
        held_out |= _platform_rows(env)
    assert len(held_out) == 256
    for i in range(100):  # the first 100 training batches of the same user seed
        env = WaterMaze(cfg, num_envs=64, seed=env_seed(seed, i, training=True))
        env.reset()
        assert held_out.isdisjoint(_platform_rows(env)), (seed, i)


def test_the_trainer_and_the_evaluator_use_disjoint_seeds_and_platforms(tmp_path, tiny_task_path,
                                                                        monkeypatch):
    """Record every env the trainer and :func:`evaluate` build (same user seed) and what it drew."""
    seen: dict[str, list[tuple[int, set]]] = {"train": [], "evaluate": []}

    def recording(kind):
        class Recording(WaterMaze):
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                self.seed_given = kw["seed"] if "seed" in kw else args[2]

            def reset(self, *args, **kw):
                obs = super().reset(*args, **kw)
                seen[kind].append((self.seed_given, _platform_rows(self)))
                return obs

        return Recording

    monkeypatch.setattr(ppo, "WaterMaze", recording("train"))
    monkeypatch.setattr(rollout_module, "WaterMaze", recording("evaluate"))
    task = load_task(tiny_task_path)
    run = tmp_path / "run"
    train_run(tiny_task_path, run, progress=False, stop_after=2)
    assert [s for s, _ in seen["train"]] == [env_seed(task.seed, i, training=True) for i in (0, 1)]

    agent, task, _ = load_agent(run / CHECKPOINT)
    evaluate(agent, task, episodes=8, seed=task.seed, batch=4, progress=False)
    # three conditions x (plain, probe) x two batches, always the evaluation seeds of batches 0, 1
    assert len(seen["evaluate"]) == 12
    assert {s for s, _ in seen["evaluate"]} == {env_seed(task.seed, i, training=False) for i in (0, 1)}

    train_seeds = {s for s, _ in seen["train"]}
    eval_seeds = {s for s, _ in seen["evaluate"]}
    assert train_seeds.isdisjoint(eval_seeds)
    train_platforms = set().union(*(p for _, p in seen["train"]))
    eval_platforms = set().union(*(p for _, p in seen["evaluate"]))
    assert len(train_platforms) == 2 * task.train.batch_episodes and len(eval_platforms) == 8
    assert train_platforms.isdisjoint(eval_platforms)
