"""The behavioural measures (snn_icl.episodes.measures) on hand-built and scripted episodes."""

import math

import pytest
import torch

from tests.scripted import CFG, Oracle

from snn_icl.envs.water_maze import WaterMaze, WaterMazeConfig
from snn_icl.episodes import measures
from snn_icl.episodes.measures import behaviour, censored_trials, latencies, per_trial, training_metrics
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.episodes.rollout import rollout


def test_per_trial_gathers_trial_ends():
    # two episodes, 6 steps; episode 0 ends trial 0 at step 1 (latency 2) and trial 1 at step 4
    trial = torch.tensor([[0, 0], [0, 0], [1, 0], [1, 0], [1, 0], [2, 0], [2, 0]])
    trial_end = torch.zeros(6, 2, dtype=torch.bool)
    trial_end[1, 0] = trial_end[4, 0] = trial_end[5, 1] = True
    latency = torch.zeros(6, 2, dtype=torch.long)
    latency[1, 0], latency[4, 0], latency[5, 1] = 2, 3, 6
    table = per_trial(latency, trial, trial_end)
    assert table.shape == (2, 2)
    assert table[0].tolist() == [2.0, 3.0]
    assert table[1, 0] == 6.0 and math.isnan(table[1, 1])


def _record(trial, trial_end, latency, escaped):
    """A record with only the trial bookkeeping filled in (positions all at the origin)."""
    trial, trial_end = torch.tensor(trial), torch.tensor(trial_end)
    T1, B = trial.shape
    zeros = lambda *s: torch.zeros(*s)  # noqa: E731
    return EpisodeRecord(position=zeros(T1, B, 2), trial=trial,
                         on_platform=torch.zeros(T1, B, dtype=torch.bool), release=zeros(T1, B, 2),
                         platform=torch.full((B, 2), 0.5), reward=torch.tensor(escaped).float(),
                         trial_end=trial_end, escaped=torch.tensor(escaped),
                         latency=torch.tensor(latency), action=zeros(T1 - 1, B, 2))


def test_a_trial_running_at_the_episode_end_is_censored_at_the_time_out():
    # episode 0: trial 0 ends at step 0 (latency 4), trial 1 runs to the end (censored);
    # episode 1: trial 0 ends at step 1 (latency 9, a time-out), trial 1 ends at step 2 (latency 2)
    rec = _record(trial=[[0, 0], [1, 0], [1, 1], [1, 2]],
                  trial_end=[[True, False], [False, True], [False, True]],
                  latency=[[4, 0], [0, 9], [0, 2]],
                  escaped=[[True, False], [False, False], [False, True]])
    cfg = WaterMazeConfig(trial_timeout=60)
    assert censored_trials(rec, 3).tolist() == [[False, True, False], [False, False, False]]
    latency, censored = latencies(rec, cfg, 3)
    assert latency[0].tolist()[:2] == [4.0, 60.0] and math.isnan(latency[0, 2])
    assert latency[1].tolist()[:2] == [9.0, 2.0]
    out = behaviour(rec, cfg, 3)
    assert out["censored_by_trial"] == [0, 1, 0]
    assert out["latency_by_trial"][:2] == [6.5, 31.0]  # the censored 60 counts, not dropped
    assert out["success_by_trial"][:2] == [0.5, 0.5]  # censored = not escaped
    assert out["episodes_by_trial"] == [2, 2, 0]
    assert out["latency_trials2_4"] == 31.0
    assert training_metrics(rec, cfg)["latency_trials2_4"] == out["latency_trials2_4"]


def test_trial_2_is_split_by_how_trial_1_ended():
    # episode 0: trial 1 found (latency 4), trial 2 found in 2; episode 1: trial 1 timed out
    # (latency 9, placed), trial 2 found in 3; episode 2: trial 1 timed out, trial 2 timed out
    rec = _record(trial=[[0, 0, 0], [1, 0, 0], [1, 1, 1], [2, 2, 2]],
                  trial_end=[[True, False, False], [False, True, True], [True, True, True]],
                  latency=[[4, 0, 0], [0, 9, 9], [2, 3, 9]],
                  escaped=[[True, False, False], [False, False, False], [True, True, False]])
    cfg = WaterMazeConfig(trial_timeout=9)
    split = measures.trial2_by_trial1(rec, cfg)
    assert (split["episodes_found"], split["episodes_placed"]) == (1, 2)
    assert split["success_trial2_found"] == 1.0 and split["success_trial2_placed"] == 0.5
    assert split["latency_trial2_found"] == 2.0 and split["latency_trial2_placed"] == 6.0
    # the split adds up to the trial-2 success over all episodes
    assert behaviour(rec, cfg, 2)["success_by_trial"][1] == pytest.approx((1 + 2 * 0.5) / 3)


def test_a_split_with_no_episode_in_a_group_reports_none():
    rec = _record(trial=[[0], [1], [2]], trial_end=[[True], [True]], latency=[[4], [2]],
                  escaped=[[True], [True]])
    split = measures.trial2_by_trial1(rec, WaterMazeConfig(trial_timeout=9))
    assert split["episodes_placed"] == 0 and split["success_trial2_placed"] is None
    assert split["latency_trial2_placed"] is None and split["success_trial2_found"] == 1.0


def test_a_trial_that_starts_on_the_last_step_is_not_censored():
    # trial 1 starts at the final position: not one swim step in it
    rec = _record(trial=[[0], [0], [1]], trial_end=[[False], [True]], latency=[[0], [2]],
                  escaped=[[False], [True]])
    assert not censored_trials(rec, 2).any()




def test_straight_swims_are_efficient_and_random_ones_are_not():
    env = WaterMaze(CFG, num_envs=16, seed=3)
    oracle = behaviour(rollout(Oracle(env), env, deterministic=True), CFG, 4)
    assert all(1.0 <= e <= 1.2 for e in oracle["path_efficiency_by_trial"])
    env = WaterMaze(CFG, num_envs=16, seed=3)
    rand = behaviour(rollout(None, env, policy="random", generator=torch.Generator().manual_seed(0)),
                     CFG, 4)
    assert rand["path_efficiency_by_trial"][0] > 2 * oracle["path_efficiency_by_trial"][0]
    assert rand["latency_by_trial"][0] > 2 * oracle["latency_by_trial"][0]


def test_probe_search_preference_of_a_swimmer_on_target_and_a_random_one():
    env = WaterMaze(CFG, num_envs=8, seed=4)
    on = measures.probe_measures(rollout(Oracle(env), env, deterministic=True, probe_trial=1),
                                 CFG, probe_trial=1)
    env = WaterMaze(CFG, num_envs=8, seed=4)
    rand = measures.probe_measures(rollout(None, env, policy="random", probe_trial=1,
                                           generator=torch.Generator().manual_seed(1)),
                                   CFG, probe_trial=1)
    assert on["probe_episodes"] == rand["probe_episodes"] == 8
    assert on["probe_mean_distance"] < 0.5 * rand["probe_mean_distance"]
    assert on["probe_near_platform_after_first_crossing"] > 0.9
    assert on["probe_first_crossing"] < 20
    assert on["probe_target_quadrant_fraction"] > rand["probe_target_quadrant_fraction"]


def test_median_ci_brackets_the_median():
    v = torch.arange(101, dtype=torch.float64)
    m, lo, hi = measures.median_ci(v, torch.Generator().manual_seed(0))
    assert m == 50.0 and lo < m < hi
    assert all(math.isnan(x) for x in measures.median_ci(torch.tensor([math.nan]),
                                                          torch.Generator()))


def test_the_optimum_of_trials_2_4_is_the_pooled_median_of_the_straight_swims():
    env = WaterMaze(CFG, num_envs=16, seed=5)
    rec = rollout(Oracle(env), env, deterministic=True)
    out = behaviour(rec, CFG, 4)
    optimal = measures.trial_table(rec, CFG, 4)["optimal_latency"][:, 1:4].reshape(-1)
    assert out["optimal_latency_trials2_4"] == float(measures.median(optimal[~optimal.isnan()]))
    assert out["latency_trials2_4"] == out["optimal_latency_trials2_4"]  # the oracle swims straight


def test_first_zone_tells_a_search_for_the_own_platform_from_one_that_remembers_nothing():
    env = WaterMaze(CFG, num_envs=64, seed=5)
    oracle = rollout(Oracle(env), env, deterministic=True)
    other = oracle.platform.roll(1, 0)  # the next episode's platform
    first, decided = measures.first_zone(oracle, CFG, 1, oracle.platform, other)
    assert decided.float().mean() > 0.9
    assert first[decided].float().mean() < 0.1  # straight to the own platform
    # a random swimmer remembers neither place: either first, whatever the time-outs place it on
    env = WaterMaze(CFG, num_envs=2048, seed=5)
    rand = rollout(None, env, policy="random", generator=torch.Generator().manual_seed(2))
    first, decided = measures.first_zone(rand, CFG, 1, rand.platform, rand.platform.roll(1, 0))
    assert decided.sum() > 200
    assert 0.4 < first[decided].float().mean() < 0.6
    # the same place twice is never decided
    _, decided = measures.first_zone(rand, CFG, 1, rand.platform, rand.platform)
    assert not decided.any()
    # nor do the dark steps after a trial count: the swimmer rests where the time-out put it
    env = WaterMaze(CFG, num_envs=2048, seed=5)
    dark = rollout(None, env, policy="random", generator=torch.Generator().manual_seed(2),
                   dark_after_trial=0, dark_steps=5)
    first, decided = measures.first_zone(dark, CFG, 0, dark.platform, dark.platform.roll(1, 0))
    assert decided.sum() > 200
    assert 0.4 < first[decided].float().mean() < 0.6
