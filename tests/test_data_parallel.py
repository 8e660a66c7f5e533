"""Data-parallel PPO ([train] processes = 2): the same update as one process on the whole batch,
exact resumption, a clear error when a helper dies, and the config checks."""

import multiprocessing

import pytest
import torch

from snn_icl.config import ConfigError, load_task, make_agent, replace
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.episodes.rollout import env_seed
from snn_icl.train import ppo
from snn_icl.train.data_parallel import helper_seeds
from snn_icl.train.errors import HelperError
from snn_icl.train.run_dir import train_run


def _two(tiny_task, **train):
    return replace(tiny_task, train={"processes": 2, "batch_episodes": 4, "iterations": 1,
                                     **train})


def _weights(agent):
    return torch.cat([p.detach().reshape(-1) for p in agent.parameters()])


def test_two_processes_make_the_update_of_one_on_the_whole_batch(tiny_task):
    task = _two(tiny_task, minibatches=1, epochs=1)
    start = _weights(make_agent(task))
    parallel = ppo.train(task, ppo.new_state(task, make_agent(task)), progress=False)

    # the same iteration by hand in this process: process 0's share from the run's generator,
    # the helper's from the seeds process 0 drew for it, one PPO update on both together
    ref = ppo.new_state(task, make_agent(task))
    (gen_seed, helper_env), = helper_seeds(ref.generator, 2).tolist()
    own = ppo.collect(ref, task, episodes=2, seed=env_seed(task.seed, 0, training=True))
    helper = ppo.collect(ppo.TrainState(ref.agent, None, torch.Generator().manual_seed(gen_seed)),
                         task, episodes=2, seed=helper_env)
    only_own = ppo.new_state(task, make_agent(task))
    ppo.ppo_update(ref, EpisodeRecord.cat([own, helper]), task)
    ppo.ppo_update(only_own, own, task)

    assert parallel.episodes == 4
    assert not torch.equal(_weights(parallel.agent), start)
    torch.testing.assert_close(_weights(parallel.agent), _weights(ref.agent), atol=1e-6, rtol=1e-5)
    # the helper's episodes count: process 0's share alone gives another update
    assert (_weights(parallel.agent) - _weights(only_own.agent)).abs().max() > 1e-5


def test_a_two_process_run_resumes_exactly(tiny_task, tmp_path):
    task = _two(tiny_task, iterations=3)
    path = tmp_path / "task.toml"
    from snn_icl.config import task_to_dict
    from snn_icl.storage import files

    files.write_toml(path, task_to_dict(task))
    straight = train_run(path, tmp_path / "straight", progress=False)
    train_run(path, tmp_path / "split", progress=False, stop_after=1)
    resumed = train_run(path, tmp_path / "split", resume=True, progress=False)
    assert resumed.iteration == straight.iteration == 3
    torch.testing.assert_close(_weights(resumed.agent), _weights(straight.agent), atol=0, rtol=0)
    rows = [(tmp_path / d / "metrics.csv").read_text().splitlines() for d in ("straight", "split")]
    assert len(rows[0]) == 4
    # every column but the timings is the same
    strip = [[",".join(r.split(",")[:-2]) for r in rs] for rs in rows]
    assert strip[0] == strip[1]


def test_a_helper_that_dies_stops_training_with_a_one_line_error(tiny_task):
    task = _two(tiny_task, iterations=5)

    def kill_helper(state, metrics):
        if state.iteration == 1:
            for p in multiprocessing.active_children():
                if p.name.startswith("snn-icl-helper"):
                    p.kill()

    with pytest.raises(HelperError, match=r"snn-icl-helper-1 \(exit code -9\) ended"):
        ppo.train(task, ppo.new_state(task, make_agent(task)), on_iteration=kill_helper,
                  progress=False)
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("snn-icl")]


@pytest.mark.parametrize("table, message", [
    ({"train": {"processes": 3, "batch_episodes": 4}}, "processes"),
    ({"train": {"processes": 2, "batch_episodes": 4, "minibatches": 4}}, "processes"),
    ({"train": {"processes": 0}}, "processes"),
    ({"train": {"processes": 2, "batch_episodes": 4, "device": "cuda"}}, "processes"),
])
def test_process_counts_that_cannot_share_a_batch_are_refused(tiny_task, table, message):
    with pytest.raises(ConfigError, match=message):
        replace(tiny_task, **table)


def test_supervised_families_train_in_one_process(tmp_path):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "tasks" / "icl_regression_lsa.toml").read_text()
    path = tmp_path / "t.toml"
    path.write_text(text.replace("[train]", "[train]\nprocesses = 2", 1))
    with pytest.raises(ConfigError, match="processes > 1 .* not a supervised family"):
        load_task(path)


def test_a_nan_in_process_0_stops_at_once_and_takes_the_helper_down(tiny_task, monkeypatch):
    import time

    from snn_icl.models.lsnn_agent import LSNNAgent
    from snn_icl.train.errors import NonFiniteError

    original = LSNNAgent.evaluate_sequence

    def poisoned(self, net_input, state):  # this process only: the helper's stays finite
        policy = original(self, net_input, state)
        return policy._replace(value=policy.value * float("nan"))

    monkeypatch.setattr(LSNNAgent, "evaluate_sequence", poisoned)
    task = _two(tiny_task, iterations=3)
    start = time.monotonic()
    with pytest.raises(NonFiniteError, match="non-finite loss at iteration 1"):
        ppo.train(task, ppo.new_state(task, make_agent(task)), progress=False)
    assert time.monotonic() - start < 30  # no wait for a helper that is still waiting
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("snn-icl")]
