import math

import torch

from snn_icl.episodes.measures import behaviour_summary, per_trial


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


def test_behaviour_summary_medians_and_success():
    trial = torch.tensor([[0, 0], [1, 0], [1, 1], [2, 1]])
    trial_end = torch.tensor([[True, False], [False, True], [True, False]])
    latency = torch.tensor([[4, 0], [0, 9], [2, 0]])
    escaped = torch.tensor([[True, False], [False, False], [True, False]])
    reward = escaped.float()
    s = behaviour_summary({"latency": latency, "escaped": escaped, "trial": trial,
                           "trial_end": trial_end, "reward": reward})
    assert s["latency_by_trial"] == [6.5, 2.0]
    assert s["success_by_trial"] == [0.5, 1.0]
    assert s["goals_per_episode"] == 1.0
    assert s["episodes_completing_trial"] == [2, 1]
