"""Sweeps: a grid of training runs (task files x settings x seeds), run locally or on Slurm.

    SWEEP/sweep.json                          the grid, the command, each run's status and error
    SWEEP/TASK/SETTING/task.toml              the resolved task of one condition (task x setting)
    SWEEP/TASK/SETTING/seedS/                 a training run directory (snn_icl.train.run_dir)
    SWEEP/TASK/SETTING/seedS/train.log        the run's own output (progress bar, errors)

SETTING names the ``--set`` values of the condition (``lr=0.001,tau_a=600``; ``default`` when
there are none), made filesystem-safe and unique. Running the same sweep again skips the runs
whose ``run.json`` says "done", resumes those with a checkpoint from it, and starts the others.
A run that fails is recorded with its one-line error and does not stop the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import math
import os
import re
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from snn_icl.config import (SEED_MAX, ConfigError, SweepConfig, TaskConfig, load_task, replace,
                            resolve_device, same_but_device, task_to_dict)
from snn_icl.storage import files
from snn_icl.train.errors import one_line

SWEEP_FILE = "sweep.json"
TASK_FILE = "task.toml"
LOG_FILE = "train.log"
TABLES = ("env", "agent", "train", "eval", "protocol")
SUBMITIT_MISSING = "the slurm backend needs submitit: pip install 'snn-icl[sweep]'"
_SAFE = re.compile(r"[^A-Za-z0-9_.,=+-]")
NAME_MAX = 120
"""Longest setting directory name (longer ones shorten their longest values, then are made
unique)."""
_HASHED = 32  # an over-long value keeps 23 characters, a "+" and an 8-digit hash


# ---------------------------------------------------------------------------------------------
# parsing the command line


def parse_seeds(text: str) -> list[int]:
    """``0-4`` (inclusive), ``0,2,5`` or a mix (``0-2,7``): distinct seeds in [0, 2^31 - 1]."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"--seeds must be like 0-4 or 0,2,5, got {text!r}")
        lo = int(m.group(1))
        hi = lo if m.group(2) is None else int(m.group(2))
        if hi < lo:
            raise ValueError(f"--seeds: the range {part} is empty (write LOW-HIGH)")
        if hi > SEED_MAX:
            raise ValueError(f"--seeds: {hi} is out of range (seeds lie in [0, {SEED_MAX}])")
        if hi - lo >= 100_000:
            raise ValueError(f"--seeds: {part} is {hi - lo + 1} seeds; at most 100000")
        seeds.extend(s for s in range(lo, hi + 1) if s not in seeds)
    return seeds


def parse_value(text: str) -> Any:
    """One ``--set`` value as a TOML scalar (int, float, bool, string); a bare word is a string."""
    text = text.strip()
    if not text:
        raise ValueError("empty value")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        try:
            value = float(text) if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text) else text
        except ValueError:
            value = text
    if isinstance(value, (dict, list)) or not isinstance(value, (int, float, bool, str)):
        raise ValueError(f"{text!r} is not a scalar (int, float, bool or string)")
    return value


def split_values(text: str) -> list[str]:
    """Comma-separated values, where a value may itself hold commas (a path such as a sweep's
    run directory, ``lr=0.001,tau_a=600/seed0/checkpoint.safetensors``): the longest run of
    pieces that names an existing path is one value."""
    pieces, out, i = text.split(","), [], 0
    while i < len(pieces):
        for j in range(len(pieces), i, -1):
            if j > i + 1 and Path(",".join(pieces[i:j]).strip()).exists():
                out.append(",".join(pieces[i:j]))
                i = j
                break
        else:
            out.append(pieces[i])
            i += 1
    return out


def parse_set(text: str) -> tuple[str, str, list[Any]]:
    """``table.key=v1,v2`` -> (table, key, [v1, v2]); a value that is an existing path may hold
    commas (``train.init_from=SWEEP/lr=0.001,tau_a=600/seed0/checkpoint.safetensors``)."""
    where, eq, values = text.partition("=")
    table, dot, key = where.strip().partition(".")
    if not eq or not dot or not key or not values.strip():
        raise ValueError(f"--set must be TABLE.KEY=V1,V2,... (e.g. train.lr=1e-3,3e-4), got {text!r}")
    if table not in TABLES:
        raise ValueError(f"--set {where}: unknown table {table!r} (tables: {', '.join(TABLES)})")
    try:
        parsed = [parse_value(v) for v in split_values(values)]
    except ValueError as err:
        raise ValueError(f"--set {where}: {err}") from None
    if len(set(map(repr, parsed))) != len(parsed):
        raise ValueError(f"--set {where}: a value is given twice ({values})")
    return table, key, parsed


# ---------------------------------------------------------------------------------------------
# the grid


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: everything a worker needs (plain data, picklable)."""

    task_name: str
    """The condition's task directory (the task's name, made unique)."""
    setting: str
    """The condition's setting directory (``lr=0.001,tau_a=600`` or ``default``)."""
    changes: dict[str, Any]
    """``"table.key" -> value`` of this setting."""
    seed: int
    task_path: str
    """The resolved task file of the condition (SWEEP/TASK/SETTING/task.toml)."""
    run: str
    """The run directory."""
    stop_after: int | None = None

    @property
    def rel(self) -> str:
        return f"{self.task_name}/{self.setting}/seed{self.seed}"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def _shortened(pairs: list[tuple[str, str]]) -> str:
    """``key=value`` pairs joined by commas, at most NAME_MAX characters. Where the whole is too
    long, the longest values become a prefix and a hash of the full value, longest first: a
    cut at the end would name ``tau_a=1200`` as ``tau_a=120``, another setting's name."""
    def joined() -> str:
        return ",".join(f"{k}={v}" for k, v in pairs)

    pairs = list(pairs)
    while len(joined()) > NAME_MAX:
        i = max(range(len(pairs)), key=lambda j: len(pairs[j][1]))
        key, value = pairs[i]
        if len(value) <= _HASHED:  # every value already short: only the keys are long
            return joined()[:NAME_MAX - 9] + "+" + _digest(joined())
        pairs[i] = (key, value[:_HASHED - 9] + "+" + _digest(value))
    return joined()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def setting_names(settings: list[dict[str, Any]]) -> list[str]:
    """Directory names of the settings: ``key=value`` joined by commas (``table.key`` where two
    tables share the key), filesystem-safe, at most NAME_MAX characters (over-long values are
    shortened to a prefix and a hash, never cut at the end), and unique."""
    keys = [k for s in settings[:1] for k in s]
    short = {k: k.partition(".")[2] for k in keys}
    clash = {v for v in short.values() if list(short.values()).count(v) > 1}
    names: list[str] = []
    for s in settings:
        if not s:
            name = "default"
        else:
            name = _shortened([(_SAFE.sub("_", short[k] if short[k] not in clash else k),
                                _SAFE.sub("_", _fmt(v))) for k, v in s.items()])
            if name.startswith("."):
                name = "_" + name[1:]
        base, i = name, 2
        while name in names:
            name = f"{base}-{i}"
            i += 1
        names.append(name)
    return names


def expand(tasks: list[TaskConfig], sets: list[tuple[str, str, list[Any]]], seeds: list[int],
           out: Path, *, threads: int = 1, stop_after: int | None = None,
           device: str | None = None) -> tuple[list[RunSpec], dict[tuple[str, str], TaskConfig]]:
    """The grid: every task x every combination of ``--set`` values x every seed.

    Each condition's task is ``replace``-d with its setting (a bad value raises ConfigError
    naming the ``--set``), ``train.threads`` set to ``threads`` and, when given, ``train.device``
    to ``device`` (``--device``; each run trains from its condition's task file, so the device
    reaches every run there). Returns the run specs and the resolved task of each condition,
    keyed (task directory, setting directory).
    """
    if not tasks:
        raise ValueError("give at least one task file")
    if not seeds:
        raise ValueError("--seeds is empty")
    keys = [f"{t}.{k}" for t, k, _ in sets]
    if len(set(keys)) != len(keys):
        raise ValueError(f"--set: a key is given twice ({', '.join(keys)})")
    combos = [dict(zip(keys, values)) for values in itertools.product(*(v for _, _, v in sets))]
    settings = setting_names(combos)
    task_dirs: list[str] = []
    for t in tasks:
        name, i = t.name, 2
        while name in task_dirs:
            name = f"{t.name}-{i}"
            i += 1
        task_dirs.append(name)
    specs, resolved = [], {}
    for task, tdir in zip(tasks, task_dirs):
        for combo, sname in zip(combos, settings):
            tables: dict[str, dict[str, Any]] = {}
            for key, value in combo.items():
                table, _, k = key.partition(".")
                tables.setdefault(table, {})[k] = value
            tables.setdefault("train", {})
            try:
                cfg = replace(task, **tables) if combo else task
            except ConfigError as err:
                shown = ", ".join(f"{k}={_fmt(v)}" for k, v in combo.items())
                raise ConfigError(f"--set {shown} on {task.name}: "
                                  f"{str(err).removeprefix('override ')}") from None
            # the run's own config: one thread per process, no Slurm resources (they are the
            # sweep's, and changing them must not make the runs' configs differ on resume)
            train = {"threads": threads} if device is None else {"threads": threads, "device": device}
            cfg = dataclasses.replace(replace(cfg, train=train), sweep=SweepConfig())
            resolved[(tdir, sname)] = cfg
            for seed in seeds:
                cond = out / tdir / sname
                specs.append(RunSpec(tdir, sname, combo, seed, str(cond / TASK_FILE),
                                     str(cond / f"seed{seed}"), stop_after))
    return specs, resolved


SLURM_DEFAULTS = {"partition": None, "time_min": 60, "cpus": 1, "gpus": 0}


def slurm_resources(tasks: list[TaskConfig], flags: dict[str, Any]) -> dict[str, Any]:
    """Partition, time_min, cpus, gpus for the Slurm backend: the flag where given, else the
    tasks' ``[sweep]`` value (they must agree), else :data:`SLURM_DEFAULTS`."""
    out = {}
    for key, default in SLURM_DEFAULTS.items():
        if flags.get(key) is not None:
            out[key] = flags[key]
            continue
        values = {getattr(t.sweep, key) for t in tasks} - {None}
        if len(values) > 1:
            raise ConfigError(f"the task files' [sweep] {key} differ ({sorted(map(str, values))}); "
                              f"give --{key.replace('_', '-')}")
        out[key] = values.pop() if values else default
    return out


# ---------------------------------------------------------------------------------------------
# one run (in a worker process)


def run_state(run: Path) -> str:
    """What a rerun does with a run directory: "skip" (done), "resume" (a checkpoint) or "start"."""
    status = None
    if (run / "run.json").is_file():
        try:
            status = files.read_json(run / "run.json").get("status")
        except (ValueError, OSError):
            status = None
    if status == "done" and (run / "checkpoint.safetensors").is_file():
        return "skip"
    return "resume" if (run / "checkpoint.safetensors").is_file() else "start"


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2 too) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    old = (sys.stdout, sys.stderr)
    with path.open("a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        try:
            yield
        finally:
            log.flush()
            sys.stdout, sys.stderr = old
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_one(spec: RunSpec, threads: int = 1, redirect: bool = True) -> dict[str, Any]:
    """Train one run of the grid (skip, resume or start it); never raises for a failed run.

    Returns ``{"dir", "action", "status", "error", "iteration"}``: ``action`` is what was done
    (skipped, resumed, started), ``status`` the run's status after it ("done", "stopped",
    "failed"), ``error`` the one-line error of a failed run (None otherwise).
    """
    import torch

    from snn_icl.train.run_dir import train_run
    from snn_icl.train.stop_signal import requested

    torch.set_num_threads(threads)
    run = Path(spec.run)
    if requested() is not None:  # this worker was told to stop: no new run
        return {"dir": spec.rel, "action": None, "status": "pending", "error": None,
                "iteration": None}
    action = run_state(run)
    result: dict[str, Any] = {"dir": spec.rel, "action": {"skip": "skipped", "resume": "resumed",
                                                          "start": "started"}[action],
                              "status": None, "error": None, "iteration": None}
    log = _output_to(run / LOG_FILE) if redirect else contextlib.nullcontext()
    try:
        with log:
            if action != "skip":
                print(f"--- {result['action']} {spec.rel} (pid {os.getpid()})", flush=True)
                try:
                    train_run(spec.task_path, run, seed=spec.seed, resume=action == "resume",
                              progress=True, stop_after=spec.stop_after)
                except Exception as err:  # noqa: BLE001 - every failure is recorded, not raised
                    import traceback

                    traceback.print_exc()
                    result["error"] = one_line(err)
                    print(f"error: {result['error']}", flush=True)
    except OSError as err:  # the log itself cannot be written
        result["error"] = one_line(err)
    status = files.read_json(run / "run.json") if (run / "run.json").is_file() else {}
    result["iteration"] = status.get("iteration")
    st = str(status.get("status") or "")
    if result["error"] is not None:
        result["status"] = "failed"
    else:
        result["status"] = "done" if st == "done" else ("stopped" if st == "stopped" else st or None)
    return result


# ---------------------------------------------------------------------------------------------
# the sweep


@dataclass
class Sweep:
    """A sweep being run: its grid and the results so far (written to sweep.json)."""

    out: Path
    command: list[str]
    tasks: list[str]
    seeds: list[int]
    settings: dict[str, list[Any]]
    backend: str
    specs: list[RunSpec]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the runs an earlier command put in this directory outside this grid (other seeds or
    # settings), as its sweep.json recorded them: kept, so that `snn-icl report` still sees them
    earlier: list[dict[str, Any]] = field(default_factory=list)

    def _runs(self) -> list[dict[str, Any]]:
        runs = []
        for s in self.specs:
            r = self.results.get(s.rel, {})
            runs.append({"dir": s.rel, "task": s.task_name, "setting": s.setting,
                         "changes": s.changes, "seed": s.seed,
                         "status": r.get("status", "pending"), "action": r.get("action"),
                         "error": r.get("error"), "iteration": r.get("iteration")})
        return runs

    def record(self) -> dict[str, Any]:
        return {"command": self.command, "tasks": self.tasks, "seeds": self.seeds,
                "settings": self.settings, "backend": self.backend,
                "runs": self._runs() + self.earlier, "versions": files.versions()}

    def save(self) -> None:
        files.write_json(self.out / SWEEP_FILE, self.record())

    @property
    def failed(self) -> list[dict[str, Any]]:
        """This grid's runs that failed or did not run (not the earlier commands')."""
        return [r for r in self._runs() if r["status"] in ("failed", "pending")]


def prepare(task_paths: list[Path], sets: list[str], seeds: str, out: Path, command: list[str],
            backend: str, *, threads: int = 1, stop_after: int | None = None,
            device: str | None = None) -> Sweep:
    """Load and validate everything, write the conditions' task files; nothing is trained.

    ``device`` (``--device``) replaces every task's ``[train] device``; the local backend checks
    the devices against this machine here (a GPU where there is none stops the sweep before any
    run), Slurm runs check theirs on their node. A rerun with another device rewrites the
    conditions' task files (the runs resume on the new device)."""
    tasks = [load_task(p) for p in task_paths]
    parsed = [parse_set(s) for s in sets]
    seed_list = parse_seeds(seeds)
    specs, resolved = expand(tasks, parsed, seed_list, out, threads=threads, stop_after=stop_after,
                             device=device)
    for path, cfg in zip(task_paths, tasks):
        resolve_device(cfg.train.device if device is None else device,
                       "--device" if device is not None else f"{path} [train] device",
                       available=backend == "local")
    new = {}
    for (tdir, sname), cfg in resolved.items():  # check every condition before writing any
        path = out / tdir / sname / TASK_FILE
        if path.is_file():
            try:
                old = load_task(path)
                same = same_but_device(old, cfg) == cfg
            except ConfigError:
                same = False
            if same and old != cfg:
                new[path] = cfg  # only the device changed: the runs resume on the new one
            if not same:
                raise ConfigError(f"{path} holds another task than this sweep's {cfg.name} with "
                                  f"{sname} (the task file or --cpus changed since it was "
                                  "written); choose another --out")
        else:
            new[path] = cfg
    for path, cfg in new.items():
        files.write_toml(path, task_to_dict(cfg))
    return Sweep(out, command, [str(p) for p in task_paths], seed_list,
                 {f"{t}.{k}": v for t, k, v in parsed}, backend, specs,
                 earlier=_earlier_runs(out, {s.rel for s in specs}))


def _earlier_runs(out: Path, grid: set[str]) -> list[dict[str, Any]]:
    """The entries of ``out``'s sweep.json, if any, for runs outside ``grid`` whose directory
    is still there (a sweep extended by more seeds or settings keeps its first runs)."""
    path = out / SWEEP_FILE
    if not path.is_file():
        return []
    try:
        runs = files.read_json(path).get("runs", [])
    except (ValueError, AttributeError):
        raise ConfigError(f"{path} is not a sweep record (unreadable JSON); choose another "
                          "--out") from None
    return [r for r in runs if isinstance(r, dict) and r.get("dir") not in grid
            and (out / str(r.get("dir"))).is_dir()]


def die_with(sweep_pid: int) -> None:
    """Worker initializer: the worker kills itself when the sweep process ``sweep_pid`` is gone
    (also after kill -9, which no cleanup code sees), so no orphan keeps training and holding its
    run's lock. A daemon thread checks every half second."""
    import signal
    import threading

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(sweep_pid, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-sweep", daemon=True).start()


def _start_worker(sweep_pid: int) -> None:
    """Pool worker initializer: die with the sweep (:func:`die_with`), and on SIGTERM stop the
    run under way with a checkpoint and start no other (:mod:`snn_icl.train.stop_signal`); on
    SIGUSR1 print its stacks, as the sweep process does."""
    from snn_icl.train.stop_signal import dump_stacks_on_sigusr1, stop_worker_on_sigterm

    die_with(sweep_pid)
    stop_worker_on_sigterm()
    dump_stacks_on_sigusr1()


class SweepStopped(Exception):
    """The sweep process was sent SIGTERM: its running runs stopped after their current
    iteration with a checkpoint, and no further run was started. The same command resumes."""


def run_local(sweep: Sweep, workers: int, on_done: Callable[[dict[str, Any]], None]) -> None:
    """Every run of the sweep in a pool of ``workers`` processes (spawned, one torch thread each)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    todo = _todo(sweep, on_done)
    if not todo:
        return
    # forkserver: a clean server process imports torch and snn_icl once; each worker is forked
    # from it (no inherited threads or locks of this process, no import per worker)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["snn_icl.experiments.sweep", "snn_icl.train.run_dir"])
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                             initializer=_start_worker, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(run_one, spec, 1): spec for spec in todo}
        reported: set[Any] = set()
        with _stop_on_sigterm(pool):
            try:
                for future in as_completed(futures):
                    on_done(_result_of(future, futures[future]))
                    reported.add(future)
            except KeyboardInterrupt:
                _interrupt_workers(pool)
                raise
            except SweepStopped:
                pool.shutdown(wait=True, cancel_futures=True)  # the runs checkpoint and return
                for future, spec in futures.items():
                    if future.done() and not future.cancelled() and future not in reported:
                        on_done(_result_of(future, spec))
                raise


def _result_of(future: Any, spec: RunSpec) -> dict[str, Any]:
    """A finished run's result; a worker that died (killed, out of memory) or was stopped at
    once (a second SIGTERM) is reported with its run's last status."""
    err = future.exception()  # the worker's exception; one in this process is not caught here
    if err is None:
        return future.result()
    path = Path(spec.run) / "run.json"
    status = files.read_json(path) if path.is_file() else {}
    stopped = isinstance(err, KeyboardInterrupt)
    return {"dir": spec.rel, "action": None,
            "status": str(status.get("status")) if stopped and status else "failed",
            "error": None if stopped else f"worker died: {one_line(err)}",
            "iteration": status.get("iteration")}


@contextlib.contextmanager
def _stop_on_sigterm(pool: Any) -> Iterator[None]:
    """SIGTERM to the sweep process (kill, a job scheduler) is passed on to its workers, which
    stop their runs after the current iteration with a checkpoint; the sweep then raises
    :class:`SweepStopped` once they have. A second SIGTERM is passed on too: the runs stop at
    once, keeping their last checkpoints. (Main thread only, as Python's signals.)"""
    import signal

    from snn_icl.train.stop_signal import sigterm_handled_by

    stopping: list[bool] = []

    def forward(signum: int, frame: Any) -> None:
        _signal_workers(pool, signal.SIGTERM)
        if not stopping:
            stopping.append(True)
            raise SweepStopped("stopped by SIGTERM")

    with sigterm_handled_by(forward):
        yield


def _signal_workers(pool: Any, signum: int) -> None:
    """Send ``signum`` to every worker process of the pool still alive."""
    for proc in list(getattr(pool, "_processes", {}).values()):  # CPython's pool keeps them here
        try:
            os.kill(proc.pid, signum)
        except ProcessLookupError:
            pass


def _interrupt_workers(pool: Any) -> None:
    """Pass an interrupt that reached only the sweep process (a notebook's interrupt, kill -INT)
    on to its workers: each run stops and keeps its last checkpoint. Without this, leaving the
    pool waits for every running run to finish. (A terminal's Ctrl-C reaches the workers
    itself; they share its process group.)"""
    import signal

    _signal_workers(pool, signal.SIGINT)
    pool.shutdown(wait=True, cancel_futures=True)


def _todo(sweep: Sweep, on_done: Callable[[dict[str, Any]], None]) -> list[RunSpec]:
    """The runs to train; finished ones are reported as skipped at once (no process needed)."""
    todo = []
    for spec in sweep.specs:
        if run_state(Path(spec.run)) == "skip":
            status = files.read_json(Path(spec.run) / "run.json")
            on_done({"dir": spec.rel, "action": "skipped", "status": "done", "error": None,
                     "iteration": status.get("iteration")})
        else:
            todo.append(spec)
    return todo


def run_submitit(sweep: Sweep, on_done: Callable[[dict[str, Any]], None], *, cluster: str | None,
                 partition: str | None, time_min: int, cpus: int, gpus: int,
                 workers: int | None) -> None:
    """Every run as one task of a Slurm job array (submitit); ``cluster`` "local" or "debug"
    runs the same path on this machine (submitit's local and debug executors)."""
    try:
        import submitit
    except ImportError:
        raise ValueError(SUBMITIT_MISSING) from None
    if cluster in (None, "slurm") and shutil.which("srun") is None:
        # submitit would raise a RuntimeError; the prepared run directories stay for a rerun
        raise ValueError("--backend slurm: no Slurm on this machine (no srun on the PATH); run "
                         "the same command where Slurm is, or use --backend local")

    todo = _todo(sweep, on_done)
    if not todo:
        return
    executor = submitit.AutoExecutor(folder=sweep.out / "submitit" / "%j", cluster=cluster)
    params: dict[str, Any] = {"name": "snn-icl-sweep", "timeout_min": time_min,
                              "cpus_per_task": cpus}
    if gpus:
        params["gpus_per_node"] = gpus
    if partition:
        params["slurm_partition"] = partition
    if workers:
        params["slurm_array_parallelism"] = workers
    executor.update_parameters(**params)
    jobs = executor.map_array(run_one, todo, [cpus] * len(todo))
    by_job = dict(zip((j.job_id for j in jobs), todo))
    for job in submitit.helpers.as_completed(jobs, poll_frequency=1):
        spec = by_job[job.job_id]
        try:
            result = job.result()
        except Exception as err:  # noqa: BLE001 - the job itself failed (time limit, node, kill)
            result = {"dir": spec.rel, "action": None, "status": "failed",
                      "error": f"job {job.job_id} failed: {one_line(err).splitlines()[0][:300]}",
                      "iteration": None}
        on_done(result)
