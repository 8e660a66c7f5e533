"""A new agent kind plugs in at one place: defined and registered here, in the test, it is built
from a task file's [agent] table and runs through rollout, evaluation, retention and the memory
analyses without a change anywhere else in the package."""

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import pytest
import torch
from torch import Tensor, nn

from snn_icl.analysis.run import analyze_agent
from snn_icl.config import ConfigError, make_agent, task_from_dict, task_to_dict
from snn_icl.experiments.evaluate import evaluate
from snn_icl.experiments.retention import retention
from snn_icl.models import agent as agent_module
from snn_icl.models.agent import (INTACT, Ablation, ActOutput, AnalysisView, PolicyOutput,
                                  add_policy_heads, check_component, read_heads, zero_by_copy)


@dataclass(frozen=True)
class LeakyConfig:
    kind: Literal["leaky"] = "leaky"
    tau_steps: float = 5.0
    """Time constant of the observation trace (env steps)."""
    init_log_std: float = -0.5


class LeakyState(NamedTuple):
    trace: Tensor  # [B, obs_dim]


class LeakyAgent(nn.Module):
    """Heads on a leaky trace of the observations: the simplest agent with a memory."""

    kind: ClassVar[str] = "leaky"
    config_class: ClassVar[type] = LeakyConfig
    spiking: ClassVar[bool] = False
    components: ClassVar[tuple[str, ...]] = ("trace",)
    decoded: ClassVar[tuple[str, ...]] = ("trace",)
    ablations: ClassVar[tuple[Ablation, ...]] = (
        INTACT, Ablation("no_memory", "state reset at trial starts", no_memory=True),
        Ablation("reset_trace", "trace reset at trial starts", reset=("trace",)),
        Ablation("swap_trace", "trace from the partner at trial 2", swap=("trace",)))
    main_swaps: ClassVar[tuple[str, ...]] = ("swap_trace",)

    def __init__(self, obs_dim: int, cfg: LeakyConfig) -> None:
        super().__init__()
        self.obs_dim, self.cfg = obs_dim, cfg
        self.decay = float(torch.exp(torch.tensor(-1.0 / cfg.tau_steps)))
        add_policy_heads(self, obs_dim, cfg.init_log_std)

    @classmethod
    def from_config(cls, cfg: LeakyConfig, obs_dim: int, episode_steps: int) -> "LeakyAgent":
        return cls(obs_dim, cfg)

    def initial_state(self, batch: int) -> LeakyState:
        return LeakyState(torch.zeros(batch, self.obs_dim))

    def act(self, obs, state, *, generator=None, record=False) -> ActOutput:
        state = self.initial_state(obs.shape[0]) if state is None else state
        trace = self.decay * state.trace + (1 - self.decay) * obs
        return ActOutput(read_heads(self, trace), LeakyState(trace), obs)

    def evaluate_sequence(self, net_input, state) -> PolicyOutput:
        state = self.initial_state(net_input.shape[1]) if state is None else state
        traces, trace = [], state.trace
        for x in net_input.unbind(0):
            trace = self.decay * trace + (1 - self.decay) * x
            traces.append(trace)
        return read_heads(self, torch.stack(traces))

    def reset_state(self, state, mask):
        return LeakyState(torch.where(mask[:, None], torch.zeros_like(state.trace), state.trace))

    def get_component(self, state, name):
        check_component(self, name)
        return state.trace

    def with_component(self, state, name, value):
        check_component(self, name)
        return LeakyState(value)

    def zero_component(self, state, name, rows):
        return zero_by_copy(self, state, name, rows)

    def memory_horizon(self) -> dict[str, float]:
        return {"tau": self.cfg.tau_steps}

    def analysis_view(self, sim: Any, recorded: dict[str, Tensor]) -> AnalysisView:
        trace = recorded["trace"]
        return AnalysisView({"trace": trace}, trace, {"all": torch.arange(trace.shape[-1])},
                            "activity")


@pytest.fixture
def leaky_registered(monkeypatch):
    monkeypatch.setattr(agent_module, "_REGISTRY", dict(agent_module._REGISTRY))
    agent_module.register_agent(LeakyAgent)


def test_a_fourth_agent_kind_runs_everywhere(leaky_registered, tiny_task):
    data = task_to_dict(tiny_task)
    data["agent"] = {"kind": "leaky", "tau_steps": 3.0}
    task = task_from_dict(data, source="test")
    assert task.agent == LeakyConfig(tau_steps=3.0)
    agent = make_agent(task)
    assert isinstance(agent, LeakyAgent)

    result = evaluate(agent, task, 8, seed=1, n_trials=4, progress=False)
    assert len(result["latency_by_trial"]) == 4 and result["episodes"] == 8
    assert len(result["control_no_memory"]["latency_by_trial"]) == 4
    kept = retention(agent, task, [0, 3], 8, seed=1, progress=False)
    assert kept["memory_horizon"] == {"tau": 3.0}
    numbers, data = analyze_agent(agent, task, 8, seed=1)
    assert numbers["kind"] == "leaky"
    assert set(numbers["ablations"]) == {a.name for a in LeakyAgent.ablations}
    assert "trace" in numbers["decoding"]["variables"]
    assert data["main_swaps"] == ("swap_trace",)


def test_an_unknown_kind_and_a_foreign_key_name_the_problem(tiny_task):
    data = task_to_dict(tiny_task)
    data["agent"] = {"kind": "leaky"}
    with pytest.raises(ConfigError, match="unknown agent kind 'leaky'.*lsnn"):
        task_from_dict(data, source="t.toml")
    data["agent"] = {"kind": "lstm", "tau_m": 20.0}
    with pytest.raises(ConfigError, match="t.toml \\[agent\\]: key 'tau_m' belongs to agent kind 'lsnn'"):
        task_from_dict(data, source="t.toml")


def test_registering_a_second_class_under_a_taken_kind_is_refused(leaky_registered):
    other = type("Other", (LeakyAgent,), {})
    with pytest.raises(ValueError, match="'leaky' is registered already"):
        agent_module.register_agent(other)
