"""Task families: which ``[env]`` table a task file holds, and how supervised families train.

``[env] family = "..."`` picks the family (default ``"water_maze"``, the RL environment). The
other families are supervised in-context tasks: a sequence of tokens ``[T, B, obs_dim]`` and a
target at the last token (the query). Each registers a :class:`Supervised` entry: its config
dataclass, how a training batch is drawn and its loss. The trainer
(:mod:`snn_icl.train.supervised`) and evaluation only go through this table.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

from snn_icl.envs import icl_bursty, icl_regression
from snn_icl.envs.water_maze import WaterMazeConfig

DEFAULT_FAMILY = "water_maze"


class Curriculum(NamedTuple):
    """A curriculum paced by training itself (not by the iteration count): its state is a
    JSON-able dict that the trainer carries, checkpoints and hands to ``training_batch``."""

    start: Callable[[Any], dict[str, Any] | None]
    """cfg -> the state of a fresh run (None: the config asks for no such curriculum)."""
    update: Callable[[Any, dict[str, Any], float], dict[str, Any]]
    """(cfg, state, the batch's task loss) -> the state for the next batch."""


class Supervised(NamedTuple):
    """A supervised task family."""

    config: type
    """Its ``[env]`` dataclass (fields ``family``, properties ``obs_dim``, ``episode_steps``
    (tokens of the longest sequence) and ``out_dim`` (numbers predicted at the query))."""
    training_batch: Callable[[Any, int, torch.Generator, int, dict[str, Any] | None],
                             tuple[Tensor, Any]]
    """(cfg, batch, generator, iteration, curriculum state) -> (tokens [T, B, obs_dim], the
    batch the loss reads); ``iteration`` (0-based) and the state of :attr:`curriculum` (None
    without one) let a family follow a curriculum."""
    loss: Callable[[Tensor, Any], Tensor]
    """(prediction at the query [B, out_dim], batch) -> scalar loss."""
    metrics: Callable[[Tensor, Any], dict[str, float]]
    """(prediction [B, out_dim], batch) -> training metrics logged per iteration."""
    track: Callable[[Any, Any, int], dict[str, float]] | None = None
    """(cfg, model, seed) -> held-out measures logged every ``train.track_every`` iterations
    (the model maps tokens [T, B, obs_dim] to predictions [B, out_dim])."""
    curriculum: Curriculum | None = None
    """A curriculum gated on the training loss, if the family has one."""
    store_target: Callable[[Any], Tensor] | None = None
    """batch -> what the context determines [B, f]: the target of the auxiliary store loss
    (``[train] store_loss``), decoded from a network's state after the last example; None: the
    family has none."""


def _regression_batch(cfg: icl_regression.RegressionConfig, batch: int,
                      generator: torch.Generator, iteration: int,
                      curriculum: dict[str, Any] | None) -> tuple[Tensor, Any]:
    active = (int(curriculum["active"]) if curriculum is not None
              else icl_regression.active_dimension(cfg, iteration))
    b = icl_regression.sample(cfg, batch, generator, k=icl_regression.training_k(cfg, generator),
                              active=active)
    return icl_regression.tokens(b), b


def _regression_gate_start(cfg: icl_regression.RegressionConfig) -> dict[str, Any] | None:
    state = icl_regression.gate_start(cfg)
    return None if state is None else state._asdict()


def _regression_gate_update(cfg: icl_regression.RegressionConfig, state: dict[str, Any],
                            loss: float) -> dict[str, Any]:
    return icl_regression.gate_step(cfg, icl_regression.GateState(**state), loss)._asdict()


def _regression_loss(pred: Tensor, b: icl_regression.RegressionBatch) -> Tensor:
    return icl_regression.loss(pred[:, 0], b)


def _regression_metrics(pred: Tensor, b: icl_regression.RegressionBatch) -> dict[str, float]:
    active = int((b.w != 0).any(0).sum())
    return {"context_examples": float(b.x.shape[1]), "active_dimension": float(active)}


def map_tensors(batch: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """A family's batch (a tensor, or a NamedTuple of tensors and other values) with ``fn``
    applied to each of its tensors; the other values travel as they are."""
    if isinstance(batch, Tensor):
        return fn(batch)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(map_tensors(v, fn) for v in batch))
    return batch


def to_device(batch: Any, device: torch.device | str) -> Any:
    """A family's batch with its tensors on ``device``. Batches are always drawn on the CPU, from
    CPU generators, and moved after: the same seed gives the same tasks on every device."""
    return map_tensors(batch, lambda t: t.to(device))


def _model_device(model: Any) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


TRACK_TASKS = 1024
"""Held-out tasks of the in-context regression track (``train.track_every``)."""


def regression_track_tasks(cfg: icl_regression.RegressionConfig, seed: int
                           ) -> icl_regression.RegressionBatch:
    """The :data:`TRACK_TASKS` held-out tasks the training track scores (an odd generator seed,
    so never a training batch; k = N examples each), for references on the same tasks."""
    return icl_regression.sample(cfg, TRACK_TASKS, torch.Generator().manual_seed(2 * seed + 1))


@torch.no_grad()
def _regression_track(cfg: icl_regression.RegressionConfig, model: Any, seed: int) -> dict[str, float]:
    b = regression_track_tasks(cfg, seed)
    was = model.training
    model.eval()
    pred = model(icl_regression.tokens(b).to(_model_device(model)))[:, 0].cpu()
    held_out = float(icl_regression.loss(pred, b))
    model.train(was)
    return {"held_out_loss": held_out}


def _bursty_batch(cfg: icl_bursty.BurstyConfig, batch: int, generator: torch.Generator,
                  iteration: int, curriculum: dict[str, Any] | None) -> tuple[Tensor, Any]:
    b = icl_bursty.sample(cfg, batch, generator)
    return icl_bursty.tokens(b), b


def _bursty_metrics(logits: Tensor, b: icl_bursty.BurstyBatch) -> dict[str, float]:
    return {"accuracy": icl_bursty.accuracy(logits, b)}


BURSTY_TESTS = {"icl_novel_accuracy": icl_bursty.novel_batch,
                "icl_flip_accuracy": icl_bursty.flip_batch,
                "iwl_accuracy": icl_bursty.iwl_batch}
"""The held-out tests of the bursty family, by the name of their accuracy."""


@torch.no_grad()
def bursty_accuracies(cfg: icl_bursty.BurstyConfig, model: Any, seed: int,
                      n: int = 512) -> dict[str, float]:
    """Accuracy of ``model`` on ``n`` held-out sequences of each test of :data:`BURSTY_TESTS`
    (test i from a generator seeded 2 * (seed + i) + 1, odd like every evaluation seed)."""
    was = model.training
    model.eval()
    out = {}
    for i, (name, draw) in enumerate(BURSTY_TESTS.items()):
        b = draw(cfg, n, torch.Generator().manual_seed(2 * (seed + i) + 1))
        out[name] = icl_bursty.accuracy(model(icl_bursty.tokens(b)), b)
    model.train(was)
    return out


SUPERVISED: dict[str, Supervised] = {
    "icl_regression": Supervised(icl_regression.RegressionConfig, _regression_batch,
                                 _regression_loss, _regression_metrics, _regression_track,
                                 Curriculum(_regression_gate_start, _regression_gate_update),
                                 icl_regression.least_squares_weights),
    "icl_bursty": Supervised(icl_bursty.BurstyConfig, _bursty_batch, icl_bursty.loss,
                             _bursty_metrics, bursty_accuracies),
}


def register_family(name: str, family: Supervised) -> None:
    """Add a supervised family (its config's ``family`` field defaults to ``name``)."""
    if name in SUPERVISED and SUPERVISED[name] != family:
        raise ValueError(f"task family {name!r} is registered already")
    SUPERVISED[name] = family


def families() -> list[str]:
    return [DEFAULT_FAMILY, *sorted(SUPERVISED)]


def config_class(name: str) -> type:
    """The ``[env]`` dataclass of family ``name``; an error naming the known families."""
    if name == DEFAULT_FAMILY:
        return WaterMazeConfig
    if name not in SUPERVISED:
        raise ValueError(f"unknown task family {name!r} (known: {', '.join(families())})")
    return SUPERVISED[name].config


def family_of(env: Any) -> str:
    """The family of an ``[env]`` config."""
    return getattr(env, "family", DEFAULT_FAMILY)


def require_water_maze(family: str, what: str, command: str) -> None:
    """ValueError unless ``family`` is the water maze: ``command`` runs maze episodes, and
    ``what`` (a checkpoint or task file) was made for another task family."""
    if family != DEFAULT_FAMILY:
        others = ", icl-readouts" if family == "icl_regression" else ""
        raise ValueError(f"{what}: {command} runs water-maze episodes; this model was trained on "
                         f"the {family} task family (measure it with snn-icl evaluate, "
                         f"report{others})")


def supervised(env: Any) -> Supervised | None:
    """The supervised family of an ``[env]`` config; None for the water maze."""
    return SUPERVISED.get(family_of(env))
