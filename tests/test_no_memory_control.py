"""The no-memory control (``rollout(..., reset_memory_each_trial=True)``) really resets the agent:
at every trial start the state the next step acts from is the agent's initial state for the
episodes starting a trial, and untouched for the others; the next action then cannot depend on
earlier trials."""

import pytest
import torch

from snn_icl.config import replace
from snn_icl.envs.water_maze import WaterMaze
from snn_icl.episodes.rollout import rollout
from snn_icl.config import make_agent
from snn_icl.models import frozen

B = 6

AGENTS = {
    "lsnn": {},
    "lsnn-norse": {"backend": "norse"},
    "lstm": {"kind": "lstm", "hidden_size": 16},
    # a window longer than a trial, so without the reset earlier trials would stay visible
    "transformer": {"kind": "transformer", "n_layer": 1, "n_head": 2, "n_embd": 16,
                    "context_window": 32},
}


def _agent(tiny_task, name):
    task = replace(tiny_task, agent=AGENTS[name])
    agent = frozen(make_agent(task))
    with torch.no_grad():  # untrained heads barely move the swimmer: make the policy state-driven
        agent.mean_head.weight.mul_(50.0)
    return agent, task


def _fields(agent, state, fresh):
    """(name, state tensor [B, ...], initial tensor [B, ...]) for every per-episode component."""
    kind = type(agent).__name__
    if kind == "LSNNAgent":
        return [*((f"neurons.{f}", getattr(state.neurons, f), getattr(fresh.neurons, f))
                  for f in state.neurons._fields), ("zeta", state.zeta, fresh.zeta)]
    if kind == "LSTMAgent":
        return [("h", state.h, fresh.h), ("c", state.c, fresh.c)]
    return [("start", state.start, fresh.start)]


def _fresh(agent, state):
    if type(agent).__name__ == "TransformerAgent":
        return agent.initial_state(B, step=state.t)  # empty memory from now on
    return agent.initial_state(B)


def _run(agent, task, reset):
    """Roll out with the hook; per trial start, what it saw. Deterministic, same episodes."""
    env = WaterMaze(task.env, num_envs=B, seed=11)
    acted_from, after_act, events = [], [], []
    act = agent.act

    def recording_act(obs, state, **kw):
        acted_from.append(state)
        out = act(obs, state, **kw)
        after_act.append(out.state)
        return out

    def hook(state, info):
        new = info["new_trial"]
        if bool(new.any()):
            obs = env.observe()
            fresh = _fresh(agent, state)
            g = lambda: torch.Generator().manual_seed(len(events))  # noqa: E731
            mean = act(obs, state, generator=g()).policy.mean
            fresh_mean = act(obs, fresh, generator=g()).policy.mean
            events.append(dict(new=new.clone(), before=after_act[-1], state=state, fresh=fresh,
                               mean=mean, fresh_mean=fresh_mean))
        return state

    agent.act = recording_act
    try:
        rollout(agent, env, deterministic=True, reset_memory_each_trial=reset, hook=hook,
                generator=torch.Generator().manual_seed(0))
    finally:
        del agent.act
    # the hook's state is the one the next step acts from
    assert len(acted_from) == task.env.episode_steps
    return events


@pytest.mark.parametrize("name", [
    "lsnn",
    "lsnn-norse",
    "lstm",
    "transformer",
])
def test_no_memory_control_resets_to_the_initial_state(tiny_task, name):
    agent, task = _agent(tiny_task, name)
    events = _run(agent, task, reset=True)
    # trials end by the 10-step timeout at the latest: several trial starts, not all at once
    assert len(events) >= 2 and sum(int(e["new"].sum()) for e in events) >= 2 * B
    moved = 0
    for e in events:
        new, keep = e["new"], ~e["new"]
        for field, now, init in _fields(agent, e["state"], e["fresh"]):
            before = dict((f, b) for f, b, _ in _fields(agent, e["before"], e["fresh"]))[field]
            assert torch.equal(now[new], init[new]), field  # reset: the initial state
            assert torch.equal(now[keep], before[keep]), field  # others untouched
            moved += int(not torch.equal(before[new], init[new]))  # it did forget something
        if type(agent).__name__ == "TransformerAgent":
            assert e["state"].t == e["before"].t and e["state"].t > 0
            # the cached keys stay but are all before ``start``: none visible to the reset episodes
            assert torch.equal(e["state"].k, e["before"].k) and torch.equal(e["state"].v,
                                                                              e["before"].v)
            assert bool((e["state"].start[new] == e["state"].t).all())
        # behaviour: the first step of the new trial acts as from a fresh agent
        torch.testing.assert_close(e["mean"][new], e["fresh_mean"][new], rtol=1e-5, atol=1e-6)
    assert moved > 0


@pytest.mark.parametrize("name", ["lsnn", "lstm", "transformer"])
def test_without_the_reset_trial_starts_remember_earlier_trials(tiny_task, name):
    """The check above is not vacuous: with memory kept, the first step of a later trial differs
    from a fresh agent's."""
    agent, task = _agent(tiny_task, name)
    events = _run(agent, task, reset=False)
    assert events
    assert not any(torch.allclose(e["mean"][e["new"]], e["fresh_mean"][e["new"]], rtol=1e-3,
                                  atol=1e-4) for e in events)
