"""Fault injection on the `snn-icl` command: kills at random moments and inside a checkpoint
write, two trainers at once, a full disk, corrupt and foreign files, and the table of bad inputs.
What needs a process of its own (a kill, a file-size limit, a lock holder) runs the installed
command; the rest runs its `main` in this process (`_in_process`), which saves an import of torch
per case. Every fault ends with one line naming the culprit and exit code 2 (1 only for a bug),
and nothing already written is lost; a killed run resumes bit-identically."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import resource
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from snn_icl.config import load_task, replace, task_to_dict
from snn_icl.storage import files
from snn_icl.storage.checkpoint import (CHECKPOINT_FILE, Checkpoint, release_copy, resolve,
                                        save_checkpoint)
from snn_icl.train.run_dir import train_run
from tests.conftest import TASKS

SNN_ICL = str(Path(sys.executable).with_name("snn-icl"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def _task_file(tmp: Path, name: str = "faulty", **tables) -> Path:
    """The tiny task with changes, a checkpoint after every iteration."""
    task = load_task(TASKS / "water_maze_tiny.toml")
    changes = {"train": {"checkpoint_minutes": 1e-9, "threads": 1, **tables.pop("train", {})}}
    task = replace(task, name=name, **changes, **tables)
    path = tmp / f"{name}.toml"
    files.write_toml(path, task_to_dict(task))
    return path


def _run(*args: str, cwd: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([SNN_ICL, *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout, **kw)


def _in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``snn-icl ARGS`` run by ``snn_icl.cli.main`` here, in ``cwd``: its exit code and stderr."""
    from snn_icl.cli import main

    err, threads, here = io.StringIO(), torch.get_num_threads(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main([str(a) for a in args])
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(args, code, "", err.getvalue())


PROGRESS = re.compile(r"\d+%\|")  # a tqdm progress bar (it shares stderr)


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    text = result.stderr.replace("\r", "\n")
    lines = [line for line in text.splitlines() if line.strip() and not PROGRESS.search(line)]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    return lines[0]


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return Checkpoint(path).tensors


def _same_weights(a: Path, b: Path) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


def _metric_rows(run: Path) -> int:
    path = run / "metrics.csv"
    return path.read_text().count("\n") if path.exists() else 0


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


# ----------------------------------------------------------------------------- kills
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    task = _task_file(tmp_path, train={"iterations": 30})
    train_run(task, tmp_path / "reference", progress=False)
    run, rng, kills = tmp_path / "killed", random.Random(0), 0
    for attempt in range(12):
        resume = ["--resume"] if (run / CHECKPOINT_FILE).exists() else []
        rows = _metric_rows(run)
        proc = subprocess.Popen([SNN_ICL, "train", str(task), "--out", str(run), *resume],
                                cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if kills < 3:
            # once training has made progress, a kill at a random moment (mid-iteration, in a
            # checkpoint write, between the checkpoint and run.json, ...)
            deadline = time.monotonic() + 60
            while _metric_rows(run) <= rows and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0 and files.read_json(run / "run.json")["status"] == "done":
            break
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
    assert kills == 3 and files.read_json(run / "run.json")["status"] == "done"
    _same_weights(tmp_path / "reference" / CHECKPOINT_FILE, run / CHECKPOINT_FILE)
    rows = (run / "metrics.csv").read_text().splitlines()
    reference = (tmp_path / "reference" / "metrics.csv").read_text().splitlines()
    assert rows[0] == reference[0] and len(rows) == len(reference) == 31  # one header, 30 rows
    column = rows[0].split(",").index("goals_per_episode")
    assert [r.split(",")[column] for r in rows] == [r.split(",")[column] for r in reference]
    assert not list(run.glob(".*.tmp"))


KILL_IN_WRITE = """
import os, signal, sys
from pathlib import Path
import snn_icl.storage.files as files
real, calls = os.replace, []
def replace(src, dst):
    if Path(dst).name == "checkpoint.safetensors":
        calls.append(dst)
        if len(calls) == 3:  # the third checkpoint: its bytes are written, the rename never comes
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst)
files.os.replace = replace
from snn_icl.cli import main
sys.argv = ["snn-icl", "train", sys.argv[1], "--out", sys.argv[2]]
main()
"""


def test_a_kill_inside_a_checkpoint_write_loses_nothing(tmp_path):
    task = _task_file(tmp_path, train={"iterations": 5})
    train_run(task, tmp_path / "reference", progress=False)
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILL_IN_WRITE, str(task), str(run)],
                            cwd=tmp_path, env=ENV, capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert list(run.glob(".checkpoint.safetensors.*.tmp")), "the write was not interrupted"
    assert Checkpoint(run / CHECKPOINT_FILE).counters["iteration"] == 2  # the last whole one
    assert files.read_json(run / "run.json")["checkpoint_iteration"] == 2
    result = _in_process(["train", task, "--out", run, "--resume"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not list(run.glob(".*.tmp"))  # the stale temporary is gone
    _same_weights(tmp_path / "reference" / CHECKPOINT_FILE, run / CHECKPOINT_FILE)
    described = files.read_json(run / "checkpoint.json")
    assert described["tensors_sha256"] == Checkpoint(run / CHECKPOINT_FILE).meta["tensors_sha256"]


# ----------------------------------------------------------------------------- concurrency
def test_a_second_trainer_is_refused_while_the_first_runs(tmp_path):
    task = _task_file(tmp_path, train={"iterations": 400})
    run = tmp_path / "run"
    first = subprocess.Popen([SNN_ICL, "train", str(task), "--out", str(run)], cwd=tmp_path,
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (run / "metrics.csv").exists():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.2)
        second = _in_process(["train", task, "--out", run, "--resume"], cwd=tmp_path)
        line = _one_line_error(second)
        assert f"in use by process {first.pid}" in line and str(run) in line
        sim = _in_process(["simulate", task, "--out", run, "-n", "1"], cwd=tmp_path)
        assert "in use by process" in _one_line_error(sim)
    finally:
        first.kill()
        first.communicate()
    rows = (run / "metrics.csv").read_text().splitlines()
    assert sum(r == rows[0] for r in rows) == 1  # one header: nothing interleaved
    # the lock dies with its holder: the killed run resumes at once
    again = _in_process(["train", task, "--out", run, "--resume", "--stop-after", "1"],
                        cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]


def _full_disk(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_full_disk_fails_cleanly_and_keeps_the_checkpoint(tmp_path):
    task = _task_file(tmp_path, train={"iterations": 3})
    run = tmp_path / "run"
    first = _in_process(["train", task, "--out", run, "--stop-after", "1"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = (run / CHECKPOINT_FILE).read_bytes()
    size = len(before)
    result = _run("train", str(task), "--out", str(run), "--resume", cwd=tmp_path,
                  preexec_fn=_full_disk(size // 2))
    line = _one_line_error(result)
    assert "File too large" in line and "the checkpoint of iteration 1 is kept" in line
    assert (run / CHECKPOINT_FILE).read_bytes() == before
    status = files.read_json(run / "run.json")["status"]
    assert status.startswith("failed: ") and "File too large" in status and "iteration 1 is kept" in status
    assert not list(run.glob(".*.tmp"))


# ----------------------------------------------------------------------------- the bad-input table
def _flip_a_weight_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    data[8 + n + 40] ^= 0x10  # inside the tensor bytes
    path.write_bytes(bytes(data))


def _nan_weights(src: Path, dst: Path) -> None:
    from snn_icl.storage.checkpoint import load_agent

    agent, task, counters = load_agent(src)
    with torch.no_grad():
        agent.net.w_rec[0, 1] = float("nan")
    save_checkpoint(dst, task, agent, **counters)


def _bad_metadata(src: Path, dst: Path) -> None:
    from safetensors.torch import save_file

    save_file(Checkpoint(src).tensors, str(dst), metadata={"snn_icl": "{not json"})


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """Every case of the bad-input table, prepared, run (in this process; one also through the
    installed command) and snapshotted."""
    root = tmp_path_factory.mktemp("bad_inputs")
    task = _task_file(root, name="base")
    train_run(task, root / "run", progress=False)
    ckpt = root / "run" / CHECKPOINT_FILE
    (root / "flipped.safetensors").write_bytes(ckpt.read_bytes())
    _flip_a_weight_byte(root / "flipped.safetensors")
    _nan_weights(ckpt, root / "nan.safetensors")
    _bad_metadata(ckpt, root / "badmeta.safetensors")
    files.save_tensors(root / "foreign.safetensors", {"w": torch.zeros(3)})
    release_copy(ckpt, root / "release" / CHECKPOINT_FILE)
    files.write_toml(root / "release" / "config.toml", task_to_dict(load_task(task)))
    (root / "corrupt_metrics").mkdir()
    for name in (CHECKPOINT_FILE, "config.toml"):
        (root / "corrupt_metrics" / name).write_bytes((root / "run" / name).read_bytes())
    (root / "corrupt_metrics" / "metrics.csv").write_text("iteration,loss\n1,0.5\nx,y\n")
    (root / "a_file").write_text("not a directory\n")
    (root / "bad.toml").write_text("[env\nv_max = 0.1\n")
    release_copy(resolve("pretrained:icl_lstm"), root / "icl_run" / CHECKPOINT_FILE)
    big = lambda name, **t: _task_file(root, name=name, **t)  # noqa: E731
    tasks = {
        "huge_net": big("huge_net", agent={"n_regular": 10**9}),
        "huge_steps": big("huge_steps", env={"episode_steps": 10**12}),
        "huge_grid": big("huge_grid", env={"place_grid": 10**5}),
        "huge_batch": big("huge_batch", train={"batch_episodes": 10**9, "minibatches": 1}),
    }
    text = task.read_text()
    (root / "lr.toml").write_text(text.replace("lr = 0.001", "lr = 1e38"))
    (root / "dollar.toml").write_text(text.replace('name = "base"', 'name = "a$b$"'))
    (root / "escape.toml").write_text(text.replace('name = "base"', 'name = "../../../x"'))
    run, t = str(root / "run"), str(task)
    cases = {
        # case: (arguments, words the one line must hold)
        "simulate into a training run": (["simulate", t, "--out", run, "-n", "1"], ["holds a training run"]),
        "evaluate --out a directory": (["evaluate", run, "--out", run], ["is a directory"]),
        "evaluate --out under a file": (["evaluate", run, "--out", str(root / "a_file" / "e.json")], ["a_file"]),
        "simulate --out a file": (["simulate", t, "--out", str(root / "a_file")], ["is a file"]),
        "a huge network": (["train", tasks["huge_net"], "--out", str(root / "o1")], ["GiB", "network size"]),
        "huge episodes": (["train", tasks["huge_steps"], "--out", str(root / "o2")], ["GiB"]),
        "a huge place grid": (["train", tasks["huge_grid"], "--out", str(root / "o3")], ["GiB"]),
        "a huge batch": (["train", tasks["huge_batch"], "--out", str(root / "o4")], ["GiB", "batch_episodes"]),
        "a billion episodes": (["evaluate", run, "-n", "1000000000", "--out", str(root / "e.json")], ["GiB", "--episodes"]),
        "a seed past 2^31": (["evaluate", run, "--seed", str(2**62), "--out", str(root / "e.json")], ["--seed"]),
        "lr = 1e38": (["train", str(root / "lr.toml"), "--out", str(root / "o5")], ["lr", "<= 1"]),
        "a flipped bit": (["evaluate", str(root / "flipped.safetensors"), "--out", str(root / "e.json")], ["flipped.safetensors", "corrupt"]),
        "NaN weights": (["evaluate", str(root / "nan.safetensors"), "--out", str(root / "e.json")], ["nan.safetensors", "w_rec"]),
        "a foreign file": (["evaluate", str(root / "foreign.safetensors"), "--out", str(root / "e.json")], ["foreign.safetensors", "not an snn-icl checkpoint"]),
        "invalid JSON metadata": (["evaluate", str(root / "badmeta.safetensors"), "--out", str(root / "e.json")], ["badmeta.safetensors", "JSON"]),
        "resume a weights-only copy": (["train", t, "--out", str(root / "release"), "--resume"], ["weights-only"]),
        "a corrupt metrics.csv": (["train", t, "--out", str(root / "corrupt_metrics"), "--resume"], ["metrics.csv", "line 3"]),
        "a directory as task file": (["train", str(root), "--out", str(root / "o6")], ["is a directory"]),
        "malformed TOML": (["train", str(root / "bad.toml"), "--out", str(root / "o7")], ["bad.toml", "malformed"]),
        "a $ in the task name": (["train", str(root / "dollar.toml")], ["name", "a$b$"]),
        "a path in the task name": (["train", str(root / "escape.toml")], ["name", "../../../x"]),
        "the same checkpoint twice": (["compare", run, str(root / "run" / CHECKPOINT_FILE), "--out", str(root / "c")], ["same checkpoint"]),
        "a missing checkpoint": (["evaluate", str(root / "nowhere"), "--out", str(root / "e.json")], ["nowhere"]),
        **_in_context_cases(root),
    }
    before = _snapshot(root)
    # In this process (snn_icl.cli.main, as the console command calls it): a fresh interpreter
    # per case cost 23 imports of torch. One case goes through the installed command as well.
    results = {name: _in_process(args, cwd=root) for name, (args, _) in cases.items()}
    results[f"(installed) {INSTALLED}"] = _run(*cases[INSTALLED][0], cwd=root)
    return cases, results, before, _snapshot(root), root


INSTALLED = "a missing checkpoint"

MAZE_ONLY = "runs water-maze episodes"
"""What the one line says when a water-maze command is given an in-context model."""


def _in_context_cases(root: Path) -> dict[str, tuple[list[str], list[str]]]:
    """In-context models (a shipped one, a run directory holding one, task files of both
    supervised families) given to the commands that run water-maze episodes."""
    icl, run, out = "pretrained:icl_lstm", str(root / "icl_run"), lambda name: str(root / name)
    words = [icl, MAZE_ONLY, "icl_regression"]
    return {
        "simulate an in-context model": (["simulate", icl, "--out", out("m1"), "-n", "1"], words),
        "simulate an in-context task": (["simulate", str(TASKS / "icl_bursty_transformer.toml"),
                                         "--out", out("m2"), "-n", "1"], [MAZE_ONLY, "icl_bursty"]),
        "compare an in-context model": (["compare", "pretrained", icl, "--out", out("m3")], words),
        "retention of an in-context model": (["retention", icl, "--delays", "0", "--out", out("m4")], words),
        "silent-memory of an in-context model": (["silent-memory", f"x={icl}", "--out", out("m5")], words),
        "analyze an in-context model": (["analyze", icl, "--out", out("m6")], words),
        "course of an in-context run": (["course", run, "--out", out("m7")], [run, MAZE_ONLY]),
        "time-to-targets of an in-context run": (["time-to-targets", run, "--out", out("m8")], [run, MAZE_ONLY]),
        "plot an in-context run": (["plot", run], [run, MAZE_ONLY]),
    }


CASES = ["simulate into a training run", "evaluate --out a directory", "evaluate --out under a file",
         "simulate --out a file", "a huge network", "huge episodes", "a huge place grid",
         "a huge batch", "a billion episodes", "a seed past 2^31", "lr = 1e38", "a flipped bit",
         "NaN weights", "a foreign file", "invalid JSON metadata", "resume a weights-only copy",
         "a corrupt metrics.csv", "a directory as task file", "malformed TOML",
         "a $ in the task name", "a path in the task name", "the same checkpoint twice",
         "a missing checkpoint", "simulate an in-context model", "simulate an in-context task",
         "compare an in-context model", "retention of an in-context model",
         "silent-memory of an in-context model", "analyze an in-context model",
         "course of an in-context run", "time-to-targets of an in-context run",
         "plot an in-context run"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_stops_with_one_line_and_exit_2(table, case):
    cases, results, _, _, _ = table
    line = _one_line_error(results[case])
    for word in cases[case][1]:
        assert word in line, line


def test_the_installed_command_ends_a_bad_input_as_main_does(table):
    _, results, _, _, _ = table
    installed = _one_line_error(results[f"(installed) {INSTALLED}"])
    assert installed == _one_line_error(results[INSTALLED])


def test_bad_inputs_change_no_file_already_written(table):
    cases, _, before, after, root = table
    assert set(CASES) == set(cases)
    changed = {k for k in before if before[k] != after.get(k)}
    assert not changed, changed
    # a water-maze command refuses an in-context model before it claims its --out
    assert not [m for m in (f"m{i}" for i in range(1, 9)) if (root / m).exists()]
    assert not (root.parents[2] / "x-seed0").exists()  # the name "../../../x" wrote nothing
