"""Checkpoints: one safetensors file holding the weights, the optimizer and RNG state, and (in its
metadata) the resolved task config and progress counters; a JSON copy of that metadata sits beside
it for people. One file means one atomic rename: a checkpoint is never half-written.

Never pickled: tensors are safetensors, everything else JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from snn_icl.storage import files
from snn_icl.config import TaskConfig, task_from_dict, task_to_dict

CHECKPOINT_FILE = "checkpoint.safetensors"
"""Name of the latest checkpoint in a training run directory."""
FORMAT = "snn-icl-checkpoint"
VERSION = 1
PRETRAINED = {"lsnn": "lsnn_water_maze.safetensors", "lstm": "lstm_water_maze.safetensors",
              "transformer": "transformer_water_maze.safetensors"}
"""Checkpoints shipped inside the package (snn_icl/pretrained/), by agent kind."""


def pretrained_path(kind: str = "lsnn") -> Path:
    """The shipped checkpoint of an agent kind; a clear error if this installation has none."""
    from importlib.resources import files as package_files

    if kind not in PRETRAINED:
        raise ValueError(f"no pretrained {kind!r} network is shipped (available: {sorted(PRETRAINED)})")
    path = Path(str(package_files("snn_icl") / "pretrained" / PRETRAINED[kind]))
    if not path.is_file():
        raise FileNotFoundError(f"this installation ships no pretrained checkpoint (looked for {path})")
    return path


def resolve(source: str | Path) -> Path:
    """A checkpoint file, a run directory holding one, or "pretrained" / "pretrained:KIND"
    (shipped: the LSNN, or the named agent kind)."""
    if str(source) == "pretrained" or str(source).startswith("pretrained:"):
        return pretrained_path(str(source).partition(":")[2] or "lsnn")
    path = Path(source)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return path


def display_name(source: str | Path) -> str:
    """A short model name for tables: "pretrained:KIND", or the run directory's name."""
    if str(source) == "pretrained":
        return "pretrained:lsnn"
    if str(source).startswith("pretrained:"):
        return str(source)
    return resolve(source).parent.name


def save_checkpoint(path: str | Path, task: TaskConfig, agent: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    generator: torch.Generator | None = None, **counters: Any) -> Path:
    """Write ``agent`` (+ optimizer and generator state, when given) and ``counters``."""
    tensors = {f"agent.{k}": v for k, v in agent.state_dict().items()}
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "agent_kind": task.agent.kind,
                            "task": task_to_dict(task), "counters": counters,
                            "versions": files.versions()}
    if optimizer is not None:
        opt = optimizer.state_dict()
        for idx, pstate in opt["state"].items():
            for key, value in pstate.items():
                tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value)
        meta["optim_param_groups"] = opt["param_groups"]
    if generator is not None:
        tensors["rng.generator"] = generator.get_state()
    path = Path(path)
    files.save_tensors(path, tensors, metadata={"snn_icl": json.dumps(meta)})
    files.write_json(path.with_suffix(".json"), meta)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint; a clear error for anything that is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("snn_icl")
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{path} is not a readable safetensors checkpoint ({err})") from None
    if raw is None:
        raise ValueError(f"{path} is a safetensors file but not an snn-icl checkpoint")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported checkpoint format {meta.get('format')!r} "
                         f"version {meta.get('version')!r}")
    return meta


def load_task_of(path: str | Path) -> TaskConfig:
    return task_from_dict(read_metadata(path)["task"], source=f"{path} (embedded config)",
                          legacy=True)


def load_into(path: str | Path, agent: nn.Module, task: TaskConfig | None = None,
              optimizer: torch.optim.Optimizer | None = None,
              generator: torch.Generator | None = None) -> dict[str, Any]:
    """Load a checkpoint into an existing agent (and optimizer/generator); returns its counters.

    Raises ValueError naming the difference when the checkpoint holds another model: another
    agent kind or config, or tensors of other names or shapes.
    """
    meta = read_metadata(path)
    if task is not None:
        saved = task_from_dict(meta["task"], source=str(path), legacy=True)
        if saved.agent != task.agent or saved.env.obs_dim != task.env.obs_dim:
            diff = {k: (getattr(saved.agent, k), getattr(task.agent, k))
                    for k in task.agent.__dataclass_fields__
                    if getattr(saved.agent, k) != getattr(task.agent, k)}
            raise ValueError(f"{path} holds another model: agent config differs "
                             f"(saved, expected) {diff or 'in observation size'}")
    tensors = files.load_tensors(path)
    state = {k.removeprefix("agent."): v for k, v in tensors.items() if k.startswith("agent.")}
    own = agent.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{path} holds another model ({meta.get('agent_kind')}): "
                         f"missing {missing[:4]}, unexpected {unexpected[:4]}, "
                         f"shape mismatch {[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in shapes[:4]]}")
    agent.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    if optimizer is not None:
        opt_state = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                opt_state.setdefault(int(idx), {})[name] = value
        optimizer.load_state_dict({"state": opt_state, "param_groups": meta["optim_param_groups"]})
    if generator is not None and "rng.generator" in tensors:
        generator.set_state(tensors["rng.generator"])
    return meta.get("counters", {})


def load_agent(path: str | Path) -> tuple[nn.Module, TaskConfig, dict[str, Any]]:
    """Rebuild the agent a checkpoint was trained as, with its weights; (agent, task, counters)."""
    from snn_icl.models import build_agent

    task = load_task_of(path)
    agent = build_agent(task.agent, task.env.obs_dim, task.env.episode_steps)
    counters = load_into(path, agent, task)
    return agent, task, counters


def provenance(path: str | Path, task: TaskConfig, counters: dict[str, Any]) -> dict[str, Any]:
    """What a report says about the checkpoint it measured: file, task name, training counters."""
    return {"checkpoint": str(path), "task": task.name, "trained": counters}


def metrics_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's training metrics live: RUN/metrics.csv next to a run's checkpoint,
    NAME_metrics.csv next to a released NAME.safetensors (may not exist)."""
    path = Path(checkpoint)
    if path.name == CHECKPOINT_FILE:
        return path.parent / "metrics.csv"
    return path.with_name(path.stem + "_metrics.csv")


def release_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint without optimizer and RNG state (weights, config, counters only): the
    form shipped inside the package. It evaluates identically; it cannot resume training."""
    agent, task, counters = load_agent(src)
    return save_checkpoint(dst, task, agent, **counters)
