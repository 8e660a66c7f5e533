"""Training run directories: resolved config, checkpoints, metrics (CSV + TensorBoard).

The water maze trains with PPO (:mod:`snn_icl.train.ppo`), the supervised in-context families
with :mod:`snn_icl.train.supervised`; both through the same run directory.

    RUN/config.toml              the resolved task (every default filled in)
    RUN/checkpoint.safetensors   latest good state (weights, Adam, RNG, counters) + .json copy
    RUN/metrics.csv              one row per iteration
    RUN/snapshots/               weights-only copies every ``[train] snapshot_every`` iterations
                                 (iteration_NNNNNN.safetensors + .json; kept, never resumed from;
                                 during a beta ramp, each with the beta it was trained at)
    RUN/tb/                      TensorBoard events (when tensorboard is installed)
    RUN/run.json                 seed, versions, status ("running", "done", "stopped",
                                 "failed: ...") and the counters of the last checkpoint (what
                                 --resume continues)

A run directory belongs to one process at a time (:func:`snn_icl.storage.outputs.claim`: an OS
lock; a second trainer is refused with the holder's PID) and holds a training run only. A killed
run continues with ``resume=True`` from its last checkpoint and ends with the same weights as an
uninterrupted run of the same seed; the temporary files of writes it was killed in are removed.
Any failure (a NaN, a full disk, a bad value) sets the status to "failed: REASON" and keeps the
checkpoint, config and metrics written before it untouched. See docs/reliability.md.

Devices: the run trains on ``[train] device`` (or ``device=``, the command line's ``--device``),
checked against the machine before anything is written. The weights are initialised on the CPU
(the same initial weights on every device) and moved; checkpoints hold CPU copies and load onto
any device, so a run may resume on another device than it started on (the resumed run then
differs in rounding from one that stayed).
"""

from __future__ import annotations

import csv
import io as io_mod
import time
from pathlib import Path
from typing import Any

import torch

from snn_icl.envs.family import supervised
from snn_icl.config import (CONFIG_FILE, ConfigError, TaskConfig, load_task, make_agent, replace,
                            require_memory, resolve_device, same_but_length, task_to_dict,
                            training_bytes, weight_bytes)
from snn_icl.storage import files
from snn_icl.storage.checkpoint import (CHECKPOINT_FILE as CHECKPOINT, Checkpoint, load_into,
                                      resolve, save_checkpoint)
from snn_icl.storage.outputs import claim
from snn_icl.train.errors import HelperError, NonFiniteError, one_line
from snn_icl.train import supervised as supervised_training
from snn_icl.train.ppo import TrainState, new_state, train as ppo_train
from snn_icl.train.stop_signal import stop_on_sigterm

METRICS = "metrics.csv"


class _MetricsLog:
    """Append-only CSV (flushed per row) and, if available, TensorBoard scalars."""

    def __init__(self, run: Path, keep_until: int) -> None:
        self.path = run / METRICS
        rows = self._read(keep_until)
        self.fields: list[str] | None = list(rows[0]) if rows else None
        if self.path.exists():
            # drop rows past the checkpoint we resume from: they will be computed again
            buf = io_mod.StringIO()
            if self.fields:
                writer = csv.DictWriter(buf, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(rows)
            files.write_text(self.path, buf.getvalue())
        self.tb = _tensorboard(run / "tb", purge_step=keep_until + 1)

    def _read(self, keep_until: int) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        rows = []
        with self.path.open() as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                try:
                    iteration = int(float(row["iteration"]))
                except (KeyError, TypeError, ValueError):
                    raise ValueError(f"{self.path} is corrupt (line {line} has no iteration "
                                     "number); restore it or start a new run") from None
                if iteration <= keep_until:
                    rows.append(row)
        return rows

    def write(self, metrics: dict[str, float]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(metrics)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            if new:
                writer.writeheader()
            writer.writerow({k: metrics.get(k) for k in self.fields})
        if self.tb is not None:
            for key, value in metrics.items():
                if key != "iteration":
                    self.tb.add_scalar(key, value, int(metrics["iteration"]))
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def snapshot_path(run: Path, iteration: int) -> Path:
    """RUN/snapshots/iteration_NNNNNN.safetensors: the weights after ``iteration`` iterations."""
    return run / "snapshots" / f"iteration_{iteration:06d}.safetensors"


class _Stop(Exception):
    """Raised after a complete iteration when a stop signal has arrived."""


def snapshot_task(task: TaskConfig, agent: Any) -> TaskConfig:
    """The task a snapshot is saved with: ``task``, except during a ``beta_ramp_iterations``
    ramp, where it is the network the weights were last trained as (``[agent] beta`` the
    ramp's value, no ramp), so that a snapshot loads and evaluates at its own ``beta``."""
    if not task.train.beta_ramp_iterations:
        return task
    return replace(task, agent={"beta": agent.net.params.beta}, train={"beta_ramp_iterations": 0})


def snapshot_paths(run: Path) -> list[Path]:
    """The run's snapshots (:func:`snapshot_path`) in training order."""
    return sorted(snapshot_path(run, 0).parent.glob("iteration_*.safetensors"))


def _tensorboard(path: Path, purge_step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional extra: snn-icl[tensorboard]
        return None
    return SummaryWriter(str(path), purge_step=purge_step)


def _status(run: Path, task: TaskConfig, status: str, state: TrainState,
            checkpoint_iteration: int | None) -> None:
    """run.json: the counters now, and the iteration of the checkpoint on disk (None: none yet);
    ``stopped_by`` names the signal of a clean stop (:mod:`snn_icl.train.stop_signal`)."""
    data: dict[str, Any] = {"task": task.name, "seed": task.seed, "status": status,
                            "versions": files.versions(), "iteration": state.iteration,
                            "episodes": state.episodes, "wall_time_s": round(state.wall_time_s, 1),
                            "checkpoint_iteration": checkpoint_iteration}
    if state.stopped_by is not None:
        data["stopped_by"] = state.stopped_by
    files.write_json(run / "run.json", data)


def train_run(task_path: str | Path, run: str | Path, *, seed: int | None = None,
              resume: bool = False, progress: bool = True,
              stop_after: int | None = None, device: str | None = None,
              iterations: int | None = None) -> TrainState:
    """Train the task in ``run``; ``resume`` continues the run's last checkpoint.

    ``iterations`` (default: the task's ``[train] iterations``) is the length in all; resuming a
    finished run with a larger one trains it further: without an lr anneal, exactly as if it had
    been that long from the start (the curricula are set by iteration number); with one, the lr
    goes back to ``lr`` and anneals again over the new end.

    ``device`` ("cpu", "cuda", "cuda:N"; default the task's ``[train] device``) is checked
    against this machine first: a GPU where torch sees none is a :class:`ConfigError`.

    ``stop_after`` ends after that many more iterations (as a kill would, but cleanly), with a
    checkpoint written: used to test that resuming gives the uninterrupted result.
    """
    run = Path(run)
    task = load_task(task_path)
    if seed is not None:
        task = replace(task, seed=seed)
    if iterations is not None:
        task = replace(task, train={"iterations": iterations})
    if device is not None:
        resolve_device(device, "--device")
        task = replace(task, train={"device": device})
    resolve_device(task.train.device, "--device" if device is not None
                   else f"{task_path} [train] device")
    with claim(run, "training run"):
        return _train_in(task, task_path, run, resume, progress, stop_after)


def _train_in(task: TaskConfig, task_path: str | Path, run: Path, resume: bool, progress: bool,
              stop_after: int | None) -> TrainState:
    has_ckpt = (run / CHECKPOINT).exists()
    if has_ckpt and not resume:
        raise ConfigError(f"{run} already holds a training run; pass --resume to continue it "
                          "or choose another --out")
    if resume and not has_ckpt:
        raise ConfigError(f"nothing to resume: {run} holds no {CHECKPOINT}")
    if resume:
        saved = load_task(run / CONFIG_FILE)
        # a run may continue on another device and to another length: compare everything else
        if same_but_length(saved, task) != task:
            raise ConfigError(f"{task_path} (seed {task.seed}) differs from the config of the run "
                              f"in {run}; resume with the same task file and seed")
        # read and verified once, before config.toml is rewritten; loaded into the agent below
        ckpt = Checkpoint(run / CHECKPOINT)
        done = int(ckpt.counters.get("iteration", 0))
        if task.train.iterations < done:
            raise ConfigError(f"{run} has trained {done} iterations, more than the "
                              f"{task.train.iterations} asked for; a run cannot be shortened")
    check_memory(task)
    files.write_toml(run / CONFIG_FILE, task_to_dict(task))

    # initialised on the CPU (the same weights on every device), then moved; Adam's state is
    # created (and loaded on resume) where the parameters are
    agent = make_agent(task).to(resolve_device(task.train.device))
    state = new_state(task, agent)
    if task.train.init_from and not resume:
        _init_weights(agent, task, state.optimizer if task.train.init_optimizer else None)
    if resume:
        counters = load_into(ckpt, agent, task, state.optimizer, state.generator)
        state.iteration = int(counters["iteration"])
        state.episodes = int(counters["episodes"])
        state.wall_time_s = float(counters["wall_time_s"])
        state.curriculum = counters.get("curriculum")
        # the sidecar may lag a checkpoint written just before a kill: describe the one on disk
        files.write_json((run / CHECKPOINT).with_suffix(".json"), ckpt.meta)
    log = _MetricsLog(run, keep_until=state.iteration)
    last_save = time.monotonic()
    saved_at = state.iteration if resume else None  # what `--resume` would continue from

    def checkpoint(s: TrainState) -> None:
        nonlocal saved_at
        paced = {} if s.curriculum is None else {"curriculum": s.curriculum}
        save_checkpoint(run / CHECKPOINT, task, s.agent, s.optimizer, s.generator,
                        iteration=s.iteration, episodes=s.episodes, wall_time_s=s.wall_time_s,
                        **paced)
        saved_at = s.iteration
        _status(run, task, "running", s, saved_at)

    def on_iteration(s: TrainState, metrics: dict[str, float]) -> None:
        nonlocal last_save
        log.write(metrics)
        every = task.train.snapshot_every
        if every and s.iteration % every == 0:
            save_checkpoint(snapshot_path(run, s.iteration), snapshot_task(task, s.agent), s.agent,
                            iteration=s.iteration, episodes=s.episodes,
                            wall_time_s=s.wall_time_s)
        if time.monotonic() - last_save >= 60 * task.train.checkpoint_minutes:
            checkpoint(s)
            last_save = time.monotonic()
        if stop_requested() is not None:  # SIGTERM: this iteration is complete, stop here
            raise _Stop

    _status(run, task, "running", state, saved_at)
    try:
        with stop_on_sigterm() as stop_requested:
            trainer = supervised_training.train if supervised(task.env) else ppo_train
            try:
                trainer(task, state, on_iteration=on_iteration, stop_after=stop_after,
                        progress=progress)
            except _Stop:
                state.stopped_by = stop_requested()
            checkpoint(state)
    except BaseException as err:
        kept = (f"the checkpoint of iteration {saved_at} is kept" if saved_at is not None
                else "no checkpoint had been written yet")
        reason = "interrupted" if isinstance(err, KeyboardInterrupt) else f"failed: {one_line(err)}"
        try:
            _status(run, task, f"{reason} ({kept})", state, saved_at)
        except OSError:
            pass  # a full disk: run.json keeps its last state; the message says what happened
        if isinstance(err, (NonFiniteError, HelperError, OSError, OverflowError, MemoryError)):
            raise RunFailed(f"{run}: {one_line(err)}; {kept}") from err
        raise
    finally:
        log.close()
    done = state.iteration >= task.train.iterations
    _status(run, task, "done" if done else "stopped", state, saved_at)
    return state


def fine_tuning_start(task: TaskConfig) -> Any:
    """The network a fine-tuning run starts from (iteration 0): the task's agent with the
    weights of ``[train] init_from``, on the CPU. ConfigError when the task has no init_from, or
    when its source is missing or foreign."""
    if not task.train.init_from:
        raise ConfigError(f"{task.name}: [train] init_from is not set (not a fine-tuning run)")
    agent = make_agent(task)
    _init_weights(agent, task)
    return agent


def _init_weights(agent: Any, task: TaskConfig,
                  optimizer: torch.optim.Optimizer | None = None) -> None:
    """Fine-tuning: the weights of ``[train] init_from`` (same agent kind and tensor shapes;
    the neuron settings stay this task's), and with ``optimizer`` (``init_optimizer``) Adam's
    state too, under this task's lr and weight decay. A missing or foreign checkpoint, or one
    without optimizer state when it is asked for, is a ConfigError."""
    source = task.train.init_from
    try:
        ckpt = Checkpoint(resolve(source))
        kind = ckpt.meta.get("agent_kind")
        if kind != task.agent.kind:
            raise ValueError(f"it holds a {kind!r} agent, not {task.agent.kind!r}")
        if optimizer is not None:
            _check_optimizer_source(ckpt, task)
        _grow_inputs(ckpt, agent, task)
        _grow_positions(ckpt, agent)
        # with an optimizer: the source's moments, this task's lr and weight decay (load_into)
        load_into(ckpt, agent, optimizer=optimizer)
    except (ValueError, OSError) as err:
        raise ConfigError(f"[train] init_from {source!r}: {one_line(err)}") from None


def _check_optimizer_source(ckpt: Checkpoint, task: TaskConfig) -> None:
    """``init_optimizer`` takes Adam's moments parameter by parameter: the source must hold them
    (a run's checkpoint, not a weights-only copy), for the same optimizer and input size. Checked
    before any weights are loaded, the most basic difference first."""
    if "optim_param_groups" not in ckpt.meta:
        raise ValueError("init_optimizer: it is a weights-only copy (no optimizer state); "
                         "give a run's checkpoint.safetensors")
    saved = ckpt.task()
    if saved.train.optimizer != task.train.optimizer:
        raise ValueError(f"init_optimizer: it was trained with {saved.train.optimizer!r}, "
                         f"this task uses {task.train.optimizer!r}")
    if saved.env.obs_dim != task.env.obs_dim:
        raise ValueError(f"init_optimizer: it reads {saved.env.obs_dim} observation entries, "
                         f"this task {task.env.obs_dim}")


def _grow_positions(ckpt: Checkpoint, agent: Any) -> None:
    """Fine-tuning on episodes longer than the source's (dark delays): a per-step table (the
    kind's ``position_table``) gets the source's last row for each new step, so the network
    starts out as the source acts past its trained length (``extend_positions``)."""
    name = getattr(type(agent), "position_table", None)
    key = f"agent.{name}"
    if name is None or key not in ckpt.tensors:
        return
    w = ckpt.tensors[key]
    rows = agent.state_dict()[name].shape[0]
    if w.shape[0] < rows:
        ckpt.tensors[key] = torch.cat([w, w[-1:].expand(rows - w.shape[0], -1)], 0)


def _grow_inputs(ckpt: Checkpoint, agent: Any, task: TaskConfig) -> None:
    """Fine-tuning a network on a task whose observation adds entries after the source's (the cue
    cells, the recall-cue channel): their input weights (the kind's ``input_weights``) start at
    zero, so the network starts out acting exactly as the source. Any other difference in the
    observation is an error."""
    saved = ckpt.task().env
    if saved.obs_dim == task.env.obs_dim:
        return
    names = getattr(type(agent), "input_weights", {})
    blocks = getattr(task.env, "obs_blocks", ())
    old_blocks = getattr(saved, "obs_blocks", ())
    if not names or not old_blocks or tuple(blocks[:len(old_blocks)]) != tuple(old_blocks):
        raise ValueError(f"it reads {saved.obs_dim} observation entries, this task "
                         f"{task.env.obs_dim} (only entries after the source's can be added: the "
                         "cue cells, the recall-cue channel)")
    extra = task.env.obs_dim - saved.obs_dim
    for name, axis in names.items():
        w = ckpt.tensors[f"agent.{name}"]
        shape = list(w.shape)
        shape[axis] = extra
        ckpt.tensors[f"agent.{name}"] = torch.cat([w, w.new_zeros(shape)], axis)


class RunFailed(ValueError):
    """A training run stopped by a fault a user can act on (one line: what, and what is kept)."""


def check_memory(task: TaskConfig) -> None:
    """Refuse a task whose training iteration would not fit in memory (before allocating).

    On a GPU the iteration's tensors live on the card and the host holds the weights while they
    are initialised, so only those are checked here: the estimate overshoots a GPU's need (the
    transformer at batch 32,768: 258 GiB estimated, trained on a 139 GiB H200, docs/speed.md)
    and would refuse what fits; running out of the card's memory is its own one-line error
    (``snn_icl.cli``)."""
    if torch.device(task.train.device).type == "cuda":
        require_memory(weight_bytes(task), f"{task.name}: the network's weights",
                       "reduce the network size")
        return
    require_memory(training_bytes(task), f"{task.name}: a training iteration",
                   "reduce train.batch_episodes, env.episode_steps or the network size")
