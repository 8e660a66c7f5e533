"""Checkpoints: one safetensors file holding the weights, the optimizer and RNG state, and (in its
metadata) the resolved task config, progress counters and the SHA-256 of its tensors; a JSON copy
of that metadata sits beside it for people. One file means one atomic rename: a checkpoint is
never half-written.

Verified on every load, from one read of the file (so the weights and the counters always come
from the same checkpoint, even while a trainer replaces it): the tensor digest must match (a
flipped bit is an error naming the file) and the weights must be finite. Never pickled: tensors
are safetensors, everything else JSON.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors_bytes
from torch import nn

from snn_icl.storage import files
from snn_icl.config import TaskConfig, task_from_dict, task_to_dict
from snn_icl.envs import family
from snn_icl.models.agent import PLACE_HEAD
from snn_icl.models.predictor import STORE_HEAD

CHECKPOINT_FILE = "checkpoint.safetensors"
"""Name of the latest checkpoint in a training run directory."""
FORMAT = "snn-icl-checkpoint"
VERSION = 2
"""2: the metadata holds ``tensors_sha256``; version 1 files (no digest) still load."""
PRETRAINED = {"lsnn": "lsnn_water_maze.safetensors", "lstm": "lstm_water_maze.safetensors",
              "transformer": "transformer_water_maze.safetensors",
              "icl_lsa": "icl_regression_lsa.safetensors",
              "icl_transformer": "icl_regression_transformer.safetensors",
              "icl_lstm": "icl_regression_lstm.safetensors",
              "icl_lsnn": "icl_regression_lsnn.safetensors",
              "icl_lsnn_long": "icl_regression_lsnn_long.safetensors",
              "lsnn_delay": "lsnn_delay_water_maze.safetensors",
              "lsnn_delay_lif": "lsnn_delay_lif_water_maze.safetensors",
              "lsnn_delay_place": "lsnn_delay_place_water_maze.safetensors",
              "lsnn_delay_place_lif": "lsnn_delay_place_lif_water_maze.safetensors",
              "lsnn_delay_noplace": "lsnn_delay_noplace_water_maze.safetensors",
              "lsnn_delay_noplace_lif": "lsnn_delay_noplace_lif_water_maze.safetensors",
              "lsnn_delay_finetuned": "lsnn_delay_finetuned_water_maze.safetensors",
              "lsnn_delay_finetuned_lif": "lsnn_delay_finetuned_lif_water_maze.safetensors",
              "lsnn_cued": "lsnn_cued_water_maze.safetensors",
              "lstm_cued": "lstm_cued_water_maze.safetensors",
              "transformer_cued": "transformer_cued_water_maze.safetensors",
              "lsnn_equal": "lsnn_equal_water_maze.safetensors",
              "lstm_equal": "lstm_equal_water_maze.safetensors",
              "transformer_equal": "transformer_equal_water_maze.safetensors"}
"""Checkpoints shipped inside the package (snn_icl/pretrained/): the water-maze agents by kind,
the in-context regression predictors as icl_KIND (docs/icl_regression.md; icl_lsnn_long: the
LSNN's best recipe, tasks/icl_regression_lsnn_long.toml, seed 0), the best LSNN trained with
silent delays (all 200 neurons adaptive, with the auxiliary place loss on the light's steps,
tasks/water_maze_delay_place_light.toml, seed 0) and its beta = 0 control
(tasks/water_maze_delay_place_light_lif.toml, seed 0) as lsnn_delay and lsnn_delay_lif, the pair
with the place loss on the dark steps too (tasks/water_maze_delay_place{,_lif}.toml, seed 0) as
lsnn_delay_place and lsnn_delay_place_lif, the pair
trained without the place loss as lsnn_delay_noplace and lsnn_delay_noplace_lif
(tasks/water_maze_delay_alladaptive{,_lif}.toml, seed 0), the first attempt
(the shipped LSNN fine-tuned with delays, tasks/water_maze_delay.toml, seed 1) and its control as
lsnn_delay_finetuned and lsnn_delay_finetuned_lif (docs/silent_memory.md), and the three
agents fine-tuned with the visible-platform input, KIND_cued (docs/protocols.md), and training
seed 0 of each kind from the equal-budget comparison, KIND_equal (docs/comparison.md)."""


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
    """A short model name for tables: "pretrained:KIND", the run directory's name, or the
    file's name for a checkpoint file of another name."""
    return display_names([source])[0]


def display_names(sources: list[str | Path]) -> list[str]:
    """Distinct names for tables, one per source: "pretrained:KIND", else the shortest tail of
    the checkpoint's path that tells it apart from the others (``r1/A`` and ``r2/A``;
    ``snaps/it3`` and ``snaps/it20``). The same checkpoint given twice is an error."""
    paths = [resolve(s) for s in sources]
    seen: dict[Path, str] = {}
    for source, path in zip(sources, paths):
        key = path.resolve()
        if key in seen:
            raise ValueError(f"{source} names the same checkpoint as {seen[key]}: give each once")
        seen[key] = str(source)

    def tail(source: str | Path, path: Path, depth: int) -> str:
        if str(source) == "pretrained" or str(source).startswith("pretrained:"):
            return "pretrained:" + (str(source).partition(":")[2] or "lsnn")
        parts = path.with_suffix("").parts if path.name != CHECKPOINT_FILE else path.parent.parts
        return "/".join(parts[-depth:])

    depth = 1
    while True:
        names = [tail(s, p, depth) for s, p in zip(sources, paths)]
        if len(set(names)) == len(names) or depth > 64:
            return names
        depth += 1


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path: str | Path, task: TaskConfig, agent: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    generator: torch.Generator | None = None, **counters: Any) -> Path:
    """Write ``agent`` (+ optimizer and generator state, when given) and ``counters``.

    Every tensor is saved as a CPU copy, whatever device the agent and Adam's state are on: a
    checkpoint is device-independent (:func:`load_into` puts it where the agent is)."""
    tensors = {f"agent.{k}": v.detach().contiguous().cpu() for k, v in agent.state_dict().items()}
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "agent_kind": task.agent.kind,
                            "task": task_to_dict(task), "counters": counters,
                            "versions": files.versions()}
    if optimizer is not None:
        opt = optimizer.state_dict()
        for idx, pstate in opt["state"].items():
            for key, value in pstate.items():
                tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value).detach().contiguous().cpu()
        meta["optim_param_groups"] = opt["param_groups"]
    if generator is not None:
        tensors["rng.generator"] = generator.get_state()
    meta["tensors_sha256"] = tensors_sha256(tensors)
    path = Path(path)
    files.save_tensors(path, tensors, metadata={"snn_icl": json.dumps(meta)})
    files.write_json(path.with_suffix(".json"), meta)
    return path


class Checkpoint:
    """One checkpoint read once and verified: ``meta`` (its metadata) and ``tensors``."""

    def __init__(self, path: str | Path) -> None:
        self.path = path = Path(path)
        if path.is_dir():
            raise ValueError(f"{path} is a directory, not a checkpoint file")
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}")
        data = path.read_bytes()
        self.meta = _metadata(path, data)
        try:
            self.tensors = load_safetensors_bytes(data)
        except Exception as err:  # safetensors raises its own (untyped) errors on corrupt bytes
            raise ValueError(f"{path} is a corrupt safetensors file ({err})") from None
        digest = self.meta.get("tensors_sha256")
        if digest is not None and digest != tensors_sha256(self.tensors):
            raise ValueError(f"{path} is corrupt: its tensors do not match the SHA-256 recorded in "
                             "it (a changed byte); restore it from a copy")
        for name, t in self.tensors.items():
            if name.startswith("agent.") and t.is_floating_point() and not bool(t.isfinite().all()):
                raise ValueError(f"{path} holds non-finite weights ({name.removeprefix('agent.')} "
                                 "has a NaN or inf): it cannot be used")

    @property
    def counters(self) -> dict[str, Any]:
        return self.meta.get("counters", {})

    def task(self) -> TaskConfig:
        if "task" not in self.meta:
            raise ValueError(f"{self.path}: the checkpoint's metadata has no task config")
        return task_from_dict(self.meta["task"], source=f"{self.path} (embedded config)",
                              legacy=True)


def _metadata(path: Path, data: bytes) -> dict[str, Any]:
    """The snn-icl metadata from the safetensors header of ``data``; errors name the file."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        raw = (header.get("__metadata__") or {}).get("snn_icl")
    except (struct.error, ValueError, AttributeError, UnicodeDecodeError):
        raise ValueError(f"{path} is not a safetensors file (unreadable header)") from None
    if raw is None:
        raise ValueError(f"{path} is a safetensors file but not an snn-icl checkpoint")
    try:
        meta = json.loads(raw)
    except ValueError as err:
        raise ValueError(f"{path}: the checkpoint's metadata is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") not in (1, VERSION):
        got = meta.get("format") if isinstance(meta, dict) else None
        version = meta.get("version") if isinstance(meta, dict) else None
        raise ValueError(f"{path}: unsupported checkpoint format {got!r} version {version!r}")
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint (header only); a clear error for anything not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with path.open("rb") as f:
        head = f.read(8)
        try:
            (n,) = struct.unpack("<Q", head)
        except struct.error:
            raise ValueError(f"{path} is not a safetensors file (unreadable header)") from None
        return _metadata(path, head + f.read(min(n, 100_000_000)))


def load_into(path: str | Path | Checkpoint, agent: nn.Module, task: TaskConfig | None = None,
              optimizer: torch.optim.Optimizer | None = None,
              generator: torch.Generator | None = None) -> dict[str, Any]:
    """Load a checkpoint into an existing agent (and optimizer/generator); returns its counters.

    The tensors are read onto the CPU and copied to wherever the agent's parameters are (any
    device); Adam's state follows its parameters (torch's ``Optimizer.load_state_dict``). The
    optimizer takes the checkpoint's moments and step counts and keeps its own settings (lr,
    weight decay: the task it was built from), so that a resumed run and a branch that takes
    another run's state (``[train] init_optimizer``) both step with their own task's.

    Raises ValueError naming the difference when the checkpoint holds another model: another
    agent kind or config, or tensors of other names or shapes.
    """
    ckpt = path if isinstance(path, Checkpoint) else Checkpoint(path)
    path, meta, tensors = ckpt.path, ckpt.meta, ckpt.tensors
    if task is not None:
        saved = ckpt.task()
        if saved.agent != task.agent or saved.env.obs_dim != task.env.obs_dim:
            fields = task.agent.__dataclass_fields__
            diff = {k: (getattr(saved.agent, k, None), getattr(task.agent, k))
                    for k in fields if getattr(saved.agent, k, None) != getattr(task.agent, k)}
            raise ValueError(f"{path} holds another model: agent config differs "
                             f"(saved, expected) {diff or 'in observation size'}")
    state = {k.removeprefix("agent."): v for k, v in tensors.items() if k.startswith("agent.")}
    own = agent.state_dict()
    # the training-only decoders (place, store) may be on one side only: a fine-tuning run with
    # an auxiliary loss starts its decoder fresh, and a model without it evaluates a network
    # trained with it
    optional = (f"{PLACE_HEAD}.", f"{STORE_HEAD}.")
    state = {k: v for k, v in state.items() if k in own or not k.startswith(optional)}
    missing = sorted(k for k in set(own) - set(state) if not k.startswith(optional))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{path} holds another model ({meta.get('agent_kind')}): "
                         f"missing {missing[:4]}, unexpected {unexpected[:4]}, "
                         f"shape mismatch {[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in shapes[:4]]}")
    agent.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)
    if optimizer is not None:
        if "optim_param_groups" not in meta:
            raise ValueError(f"{path} is a weights-only copy (no optimizer state): it evaluates "
                             "but cannot resume training")
        opt_state = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                opt_state.setdefault(int(idx), {})[name] = value
        own_groups = optimizer.state_dict()["param_groups"]  # settings and parameter indices
        optimizer.load_state_dict({"state": opt_state, "param_groups": own_groups})
    if generator is not None and "rng.generator" in tensors:
        generator.set_state(tensors["rng.generator"])
    return ckpt.counters


def load_agent(path: str | Path, device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, TaskConfig, dict[str, Any]]:
    """Rebuild the agent a checkpoint was trained as, with its weights, on ``device`` (default
    the CPU, whatever device it was trained on); (agent, task, counters)."""
    from snn_icl.config import make_agent

    ckpt = Checkpoint(path)
    task = ckpt.task()
    agent = make_agent(task).to(device)
    counters = load_into(ckpt, agent, task)
    return agent, task, counters


def provenance(path: str | Path, task: TaskConfig, counters: dict[str, Any]) -> dict[str, Any]:
    """What a report says about the checkpoint it measured: file (a shipped one, also in a
    study's subfolder, by its place in the package, not this machine's path), task name,
    training counters."""
    where = Path(path).resolve()
    shipped = pretrained_path().parent.resolve()
    name = (f"snn_icl/pretrained/{where.relative_to(shipped).as_posix()}"
            if where.is_relative_to(shipped) else str(path))
    return {"checkpoint": name, "task": task.name, "trained": counters}


def metrics_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's training metrics live: RUN/metrics.csv next to a run's checkpoint,
    NAME_metrics.csv next to a released NAME.safetensors (may not exist)."""
    path = Path(checkpoint)
    if path.name == CHECKPOINT_FILE:
        return path.parent / "metrics.csv"
    return path.with_name(path.stem + "_metrics.csv")


def require_water_maze(sources: list[str], command: str) -> list[Path]:
    """The checkpoints of ``sources`` (as :func:`resolve`), after checking from their headers
    alone that every one was trained on the water maze, so that a command running maze episodes
    names an in-context model in one line before any work instead of failing inside an episode.

    Raises ValueError naming the first source trained on another task family."""
    paths = [resolve(source) for source in sources]
    for source, path in zip(sources, paths):
        env = read_metadata(path)["task"].get("env", {})
        family.require_water_maze(env.get("family", family.DEFAULT_FAMILY), str(source), command)
    return paths


def release_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint without optimizer and RNG state (weights, config, counters only): the
    form shipped inside the package. It evaluates identically; it cannot resume training."""
    agent, task, counters = load_agent(src)
    return save_checkpoint(dst, task, agent, **counters)
