"""`snn-icl sweep` and `snn-icl report` on the tiny task: grid naming, a local process pool,
skip and resume on rerun (also after a kill), a failing run, the Slurm path through submitit's
local executor, and the report's table and figure."""

import csv
import json
import shutil
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from snn_icl.cli import app
from snn_icl.config import ConfigError, replace
from snn_icl.experiments import sweep as sw
from snn_icl.experiments.report import mean_ci
from snn_icl.storage import files
from tests.conftest import TASKS, signal_when

runner = CliRunner()
TWO_ITERATIONS = ["--set", "train.iterations=2"]


def _sweep(tiny_task_path, out, *args):
    return runner.invoke(app, ["sweep", str(tiny_task_path), "--seeds", "0-1", "--out", str(out),
                               *TWO_ITERATIONS, *args])


def _rows(run):
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _runs(out):
    return {r["dir"]: r for r in files.read_json(out / sw.SWEEP_FILE)["runs"]}


RUNS = ["water_maze_tiny/iterations=2/seed0", "water_maze_tiny/iterations=2/seed1"]


# --- the grid, without training ----------------------------------------------------------------


def test_grid_expansion_and_naming(tmp_path, tiny_task):
    assert sw.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert sw.parse_seeds("0,2,5") == [0, 2, 5] and sw.parse_seeds("3-4,0,3") == [3, 4, 0]
    for bad in ("a", "4-2", "-1", "1,,2", str(2**31)):
        with pytest.raises(ValueError, match="--seeds"):
            sw.parse_seeds(bad)
    assert sw.parse_set("train.lr=1e-3,3e-4") == ("train", "lr", [1e-3, 3e-4])
    assert sw.parse_set("agent.tau_a=600,1200.5") == ("agent", "tau_a", [600, 1200.5])
    assert sw.parse_set("eval.deterministic=true,false")[2] == [True, False]
    assert sw.parse_set('agent.kind=lstm,"lsnn"')[2] == ["lstm", "lsnn"]
    # the [protocol] table too: reference training over sizes of the set of places
    specs, resolved = sw.expand([tiny_task], [sw.parse_set("protocol.n_places=1,4"),
                                              sw.parse_set('protocol.name="reference"')],
                                [0], tmp_path)
    assert [cfg.protocol.n_places for cfg in resolved.values()] == [1, 4]
    assert {cfg.protocol.name for cfg in resolved.values()} == {"reference"}
    for bad in ("lr=1", "train.lr", "train.lr=", "bogus.x=1", "train.lr=1,1"):
        with pytest.raises(ValueError, match="--set"):
            sw.parse_set(bad)

    # a path holding commas (another sweep's run) is one value, not a grid of pieces
    run = tmp_path / "prev" / "lr=0.001,tau_a=600" / "seed0"
    run.mkdir(parents=True)
    w = run / "checkpoint.safetensors"
    w.write_bytes(b"")
    assert sw.parse_set(f"train.init_from={w}")[2] == [str(w)]
    assert sw.parse_set(f"train.init_from={w},{run}")[2] == [str(w), str(run)]
    assert sw.parse_set("train.init_from=a,b")[2] == ["a", "b"]

    sets = [sw.parse_set("train.lr=1e-3,3e-4"), sw.parse_set("agent.tau_a=600,1200")]
    specs, resolved = sw.expand([tiny_task], sets, [0, 1], tmp_path, stop_after=1)
    assert len(specs) == 2 * 2 * 2 and len(resolved) == 4
    assert specs[0].rel == "water_maze_tiny/lr=0.001,tau_a=600/seed0"
    assert {s.setting for s in specs} == {"lr=0.001,tau_a=600", "lr=0.001,tau_a=1200",
                                          "lr=0.0003,tau_a=600", "lr=0.0003,tau_a=1200"}
    assert len({s.run for s in specs}) == len(specs)
    cfg = resolved[("water_maze_tiny", "lr=0.0003,tau_a=1200")]
    assert cfg.train.lr == 3e-4 and cfg.agent.tau_a == 1200 and cfg.train.threads == 1
    assert all(s.stop_after == 1 for s in specs)
    # no --set: one condition, "default"; the same task twice gets two directories
    specs, _ = sw.expand([tiny_task, tiny_task], [], [3], tmp_path)
    assert [s.rel for s in specs] == ["water_maze_tiny/default/seed3",
                                      "water_maze_tiny-2/default/seed3"]
    # unsafe characters are replaced, collisions made unique, a key in two tables is qualified
    names = sw.setting_names([{"env.x": "a/b"}, {"env.x": "a b"}, {"env.x": "../.."}])
    assert names == ["x=a_b", "x=a_b-2", "x=.._.."]
    assert sw.setting_names([{}]) == ["default"]
    assert sw.setting_names([{"env.seed": 1, "train.seed": 2}]) == ["env.seed=1,train.seed=2"]
    # an over-long name shortens its long value (prefix + hash), never cuts off the short ones:
    # cutting at NAME_MAX named a tau_a = 1200 run "tau_a=120"
    src = "snn_icl/pretrained/silent_memory/silence_ramp/" + "x" * 80 + ".safetensors"
    names = sw.setting_names([{"train.init_from": src, "agent.tau_a": t} for t in (600, 1200)]
                             + [{"train.init_from": src + "2", "agent.tau_a": 600}])
    assert all(len(n) <= sw.NAME_MAX for n in names)
    assert [n.rpartition(",")[2] for n in names] == ["tau_a=600", "tau_a=1200", "tau_a=600"]
    assert len(set(names)) == 3 and "-2" not in names[2]  # different paths, different hashes
    long_keys = sw.setting_names([{f"env.k{i:03d}": i for i in range(40)}])[0]
    assert len(long_keys) <= sw.NAME_MAX and long_keys.startswith("k000=0,k001=1")
    # a value the config refuses names the --set and the key
    with pytest.raises(ConfigError, match=r"--set train.lr=5 on water_maze_tiny: \[train\]: lr must be <= 1"):
        sw.expand([tiny_task], [sw.parse_set("train.lr=1e-3,5")], [0], tmp_path)
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        sw.expand([tiny_task], [sw.parse_set("train.bogus=1")], [0], tmp_path)


def test_mean_ci_uses_the_t_distribution():
    assert mean_ci([1.0, 3.0]) == {"n": 2, "mean": 2.0, "ci95": pytest.approx(12.7062, rel=1e-4)}
    assert mean_ci([2.0, None, float("nan")]) == {"n": 1, "mean": 2.0, "ci95": None}
    assert mean_ci([]) == {"n": 0, "mean": None, "ci95": None}


def test_pairwise_differences_between_conditions_use_welch():
    from snn_icl.experiments.report import differences_markdown, pairwise_differences

    runs = {"lsnn": [{"one_shot_ratio": x} for x in (1.0, 2.0, 3.0)],
            "lstm": [{"one_shot_ratio": x} for x in (3.0, 4.0, 5.0)],
            "transformer": [{"one_shot_ratio": x} for x in (2.0, None, 2.0)]}
    diffs = pairwise_differences(runs, ("one_shot_ratio",))
    assert [(d["from"], d["to"]) for d in diffs] == [("lsnn", "lstm"), ("lsnn", "transformer"),
                                                    ("lstm", "transformer")]
    # equal variances (1) and n = 3 on each side: Welch's df is 4, se sqrt(2/3)
    assert diffs[0]["difference"] == 2.0 and diffs[0]["ci95"] == pytest.approx(2.7764 * 0.8165, rel=1e-3)
    assert diffs[1]["difference"] == 0.0 and diffs[1]["ci95"] is not None  # the None is left out
    md = differences_markdown(diffs)
    assert "| ratio trial 1 / 2-4 | lstm - lsnn | +2.0000 | -0.2670 to +4.2670 |" in md


def test_bad_sweep_inputs_stop_with_one_line(tmp_path, tiny_task_path):
    for args, culprit in ((["--seeds", "2-1"], "--seeds"), (["--seeds", "0", "--set", "train.lr=2"], "lr"),
                          (["--seeds", "0", "--backend", "pbs"], "--backend")):
        result = runner.invoke(app, ["sweep", str(tiny_task_path), "--out", str(tmp_path / "s"), *args])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and culprit in lines[0]


# --- the local backend: run, resume after a stop and after a kill, skip --------------------------


@pytest.fixture(scope="module")
def sweep_history(tmp_path_factory):
    """A 2-run sweep stopped after 1 of 2 iterations, then one run left as a kill leaves it
    (status "running"), then the same sweep run to the end, then once more."""
    from pathlib import Path

    tiny = Path(__file__).resolve().parents[1] / "tasks" / "water_maze_tiny.toml"
    out = tmp_path_factory.mktemp("sweep") / "sw"
    h = {"out": out}
    h["first"] = _sweep(tiny, out, "--workers", "2", "--stop-after", "1")
    h["first_runs"] = _runs(out)
    h["first_rows"] = {d: _rows(out / d) for d in RUNS}
    for d in RUNS:  # mark iteration 1's metrics: a retrain from scratch would overwrite them
        rows = _rows(out / d)
        rows[0]["policy_loss"] = "123.5"
        with (out / d / "metrics.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    killed = out / RUNS[1] / "run.json"
    files.write_json(killed, {**files.read_json(killed), "status": "running"})
    h["second"] = _sweep(tiny, out, "--workers", "2")
    h["second_runs"] = _runs(out)
    h["mtimes"] = {d: (out / d / "checkpoint.safetensors").stat().st_mtime_ns for d in RUNS}
    h["third"] = _sweep(tiny, out, "--workers", "2")
    h["third_runs"] = _runs(out)
    return h


def test_a_sweep_runs_every_run_of_the_grid(sweep_history):
    first, out = sweep_history["first"], sweep_history["out"]
    assert first.exit_code == 0, first.output
    assert "2 runs" in first.output and "2 stopped" in first.output
    for d in RUNS:
        run = out / d
        assert (run / "checkpoint.safetensors").is_file() and (run / "train.log").is_file()
        assert "train:" in (run / "train.log").read_text()  # the run's progress bar went there
        assert sweep_history["first_runs"][d]["status"] == "stopped"
    assert files.read_json(out / RUNS[1] / "run.json")["seed"] == 1
    record = files.read_json(out / sw.SWEEP_FILE)
    assert record["seeds"] == [0, 1] and record["settings"] == {"train.iterations": [2]}
    assert record["command"][:2] == ["snn-icl", "sweep"] and "--seeds" in record["command"]
    task = tomllib.loads((out / "water_maze_tiny" / "iterations=2" / sw.TASK_FILE).read_text())
    assert task["train"]["threads"] == 1 and task["train"]["iterations"] == 2


def test_rerun_resumes_stopped_and_killed_runs(sweep_history):
    second, out = sweep_history["second"], sweep_history["out"]
    assert second.exit_code == 0, second.output
    for d in RUNS:  # seed0 was stopped, seed1 "running" as after a kill: both continue
        r = sweep_history["second_runs"][d]
        assert (r["action"], r["status"], r["iteration"]) == ("resumed", "done", 2)
        rows = _rows(out / d)
        assert [int(x["iteration"]) for x in rows] == [1, 2]
        assert rows[0]["policy_loss"] == "123.5"  # iteration 1 was not trained again
        assert rows[0]["goals_per_episode"] == sweep_history["first_rows"][d][0]["goals_per_episode"]
        status = files.read_json(out / d / "run.json")
        assert status["status"] == "done" and status["checkpoint_iteration"] == 2
        assert "resumed" in (out / d / "train.log").read_text()


def test_rerun_skips_finished_runs(sweep_history):
    third, out = sweep_history["third"], sweep_history["out"]
    assert third.exit_code == 0, third.output
    assert "2 skipped (done)" in third.output
    for d in RUNS:
        assert sweep_history["third_runs"][d]["action"] == "skipped"
        assert (out / d / "checkpoint.safetensors").stat().st_mtime_ns == sweep_history["mtimes"][d]


def test_a_sweep_extended_by_more_seeds_keeps_its_first_runs(tmp_path, tiny_task_path):
    out = tmp_path / "sw"
    one = ["sweep", str(tiny_task_path), "--out", str(out), "--set", "train.iterations=1"]
    assert runner.invoke(app, [*one, "--seeds", "0"]).exit_code == 0
    (out / "water_maze_tiny" / "iterations=1" / "seed9").mkdir()  # not a run of any command
    result = runner.invoke(app, [*one, "--seeds", "1"])
    assert result.exit_code == 0, result.output
    record = files.read_json(out / sw.SWEEP_FILE)
    assert record["seeds"] == [1]
    runs = {r["dir"]: r for r in record["runs"]}
    assert set(runs) == {"water_maze_tiny/iterations=1/seed0", "water_maze_tiny/iterations=1/seed1"}
    assert runs["water_maze_tiny/iterations=1/seed0"]["status"] == "done"
    # a sweep record that is not one stops the sweep before it is overwritten
    (out / sw.SWEEP_FILE).write_text("{not json")
    result = runner.invoke(app, [*one, "--seeds", "1"])
    assert result.exit_code == 2 and "not a sweep record" in result.output
    assert (out / sw.SWEEP_FILE).read_text() == "{not json"


def test_a_failing_run_is_reported_and_the_others_finish(tmp_path, tiny_task_path):
    # a batch of 10^9 episodes is a valid config, but its run cannot fit in memory
    out = tmp_path / "sw"
    result = runner.invoke(app, ["sweep", str(tiny_task_path), "--seeds", "0", "--out", str(out),
                                 "--set", "train.iterations=1",
                                 "--set", "train.batch_episodes=4,1000000000", "--workers", "2"])
    assert result.exit_code == 2, result.output
    runs = _runs(out)
    good = runs["water_maze_tiny/iterations=1,batch_episodes=4/seed0"]
    bad = runs["water_maze_tiny/iterations=1,batch_episodes=1000000000/seed0"]
    assert good["status"] == "done" and good["error"] is None
    assert bad["status"] == "failed" and "needs about" in bad["error"] and "\n" not in bad["error"]
    assert f"error: water_maze_tiny/iterations=1,batch_episodes=1000000000/seed0: " in result.output
    log = (out / "water_maze_tiny/iterations=1,batch_episodes=1000000000/seed0/train.log").read_text()
    assert "needs about" in log


# --- the Slurm backend through submitit's local executor ------------------------------------------


def test_the_slurm_backend_runs_the_grid_with_submitit_locally(tmp_path, tiny_task_path):
    out = tmp_path / "sw"
    result = _sweep(tiny_task_path, out, "--backend", "slurm", "--cluster", "local",
                    "--partition", "cpu", "--time-min", "5", "--cpus", "1")
    assert result.exit_code == 0, result.output
    for d in RUNS:
        assert _runs(out)[d]["status"] == "done"
        assert files.read_json(out / d / "run.json")["iteration"] == 2
        assert (out / d / "train.log").is_file()
    assert (out / "submitit").is_dir()
    assert files.read_json(out / sw.SWEEP_FILE)["backend"] == "slurm"


def test_the_slurm_backend_without_submitit_says_what_to_install(tmp_path, tiny_task_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    result = _sweep(tiny_task_path, tmp_path / "sw", "--backend", "slurm")
    assert result.exit_code == 2
    assert result.output.strip() == ("error: the slurm backend needs submitit: "
                                     "pip install 'snn-icl[sweep]'")


def test_the_slurm_backend_without_slurm_stops_with_one_line_and_keeps_the_grid(
        tmp_path, tiny_task_path, monkeypatch):
    monkeypatch.setattr(sw.shutil, "which", lambda name: None)  # no srun on the PATH
    out = tmp_path / "sw"
    result = _sweep(tiny_task_path, out, "--backend", "slurm")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        "error: --backend slurm: no Slurm on this machine (no srun on the PATH); run the same "
        "command where Slurm is, or use --backend local")
    assert files.read_json(out / sw.SWEEP_FILE)["backend"] == "slurm"  # rerun where Slurm is


# --- the report ----------------------------------------------------------------------------------


def test_report_tables_and_figure(sweep_history, tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", str(sweep_history["out"]), "--out", str(out),
                                 "--episodes", "4"])
    assert result.exit_code == 0, result.output
    for name in ("report.md", "report.csv", "report.json", "report_curves.png"):
        assert (out / name).is_file(), name
    data = json.loads((out / "report.json").read_text())
    (row,) = data["rows"]
    assert row["condition"] == "water_maze_tiny/iterations=2" and row["n_seeds"] == 2
    assert row["agent"] == "lsnn"
    for key in ("latency_trial1", "latency_trials2_4", "one_shot_ratio", "no_memory_ratio",
                "probe_target_quadrant_fraction", "goals_per_episode", "training_env_steps"):
        assert row[f"{key}_n"] == 2 and row[f"{key}_ci95"] is not None, key
    assert row["training_env_steps_mean"] == 2 * 4 * 30 and row["training_env_steps_ci95"] == 0
    # two iterations cannot fill the criterion's 50-iteration window: no run enters that mean
    assert row["criterion_env_steps_n"] == 0 and row["criterion_env_steps_mean"] is None
    assert all(r["criterion_env_steps"] is None for r in data["runs"])
    assert len(data["runs"]) == 2 and data["seed_kind"] == "validation"  # the default seed 1
    curves = data["curves"]["water_maze_tiny/iterations=2"]
    assert curves["env_steps"] == [120.0, 240.0]
    assert len(curves["goals_per_episode"]["mean"]) == 2
    with (out / "report.csv").open() as f:
        (csv_row,) = list(csv.DictReader(f))
    assert csv_row["n_seeds"] == "2" and csv_row["one_shot_ratio_ci95"] != ""
    md = (out / "report.md").read_text()
    assert "| water_maze_tiny/iterations=2 | lsnn | 2 |" in md and "±" in md
    # not a sweep directory
    bad = runner.invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "not a sweep directory" in bad.output


def _one_seed_copy(sweep: Path, dst: Path, seed: int) -> Path:
    """A copy of the sweep directory that lists (and holds) only training seed ``seed``."""
    shutil.copytree(sweep, dst)
    record = files.read_json(dst / sw.SWEEP_FILE)
    for entry in record["runs"]:
        if entry["seed"] != seed:
            shutil.rmtree(dst / entry["dir"])
    record["runs"] = [e for e in record["runs"] if e["seed"] == seed]
    files.write_json(dst / sw.SWEEP_FILE, record)
    return dst


def test_a_report_of_several_sweeps_pools_a_condition_over_them(sweep_history, tmp_path):
    from snn_icl.experiments.report import report

    whole = report(sweep_history["out"], 4, 1, progress=False)
    parts = [_one_seed_copy(sweep_history["out"], tmp_path / f"s{seed}", seed) for seed in (0, 1)]
    pooled = report(parts, 4, 1, progress=False)
    assert pooled["sweep"] == [str(p) for p in parts]
    assert pooled["rows"] == whole["rows"]  # the same two runs, the same numbers
    assert pooled["curves"] == whole["curves"]
    assert [r["dir"] for r in pooled["runs"]] == [str(p / d) for p, d in zip(parts, RUNS)]
    (alone,) = report(parts[0], 4, 1, progress=False)["rows"]
    assert alone["n_seeds"] == 1
    twice = runner.invoke(app, ["report", str(parts[0]), str(sweep_history["out"]),
                                "--out", str(tmp_path / "r")])
    assert twice.exit_code == 2
    assert "training seed 0 of water_maze_tiny/iterations=2 is in" in twice.output
    assert not (tmp_path / "r" / "report.md").exists()
    resolved = parts[1] / Path(RUNS[1]).parent / "task.toml"
    text = resolved.read_text()
    assert "\nlr = 0.001\n" in text
    resolved.write_text(text.replace("\nlr = 0.001\n", "\nlr = 0.002\n"))
    with pytest.raises(ValueError, match="are different tasks"):
        report(parts, 4, 1, progress=False)


def test_the_sweep_table_gives_slurm_resources_and_stays_out_of_the_runs(tmp_path, tiny_task_path):
    from snn_icl.config import SweepConfig, load_task

    text = tiny_task_path.read_text()
    good = tmp_path / "a.toml"
    good.write_text(text + '\n[sweep]\npartition = "cpu"\ncpus = 2\n')
    task = load_task(good)
    assert task.sweep == SweepConfig(partition="cpu", cpus=2)
    assert sw.slurm_resources([task], {}) == {"partition": "cpu", "time_min": 60, "cpus": 2, "gpus": 0}
    assert sw.slurm_resources([task], {"cpus": 4, "gpus": 1})["cpus"] == 4
    other = replace(task, sweep={"cpus": 3})
    with pytest.raises(ConfigError, match=r"\[sweep\] cpus differ.*--cpus"):
        sw.slurm_resources([task, other], {})
    _, resolved = sw.expand([task], [], [0], tmp_path)
    assert resolved[("water_maze_tiny", "default")].sweep == SweepConfig()
    for bad, key in (("cpus = 0", "cpus"), ("gpus = -1", "gpus"), ('partition = "a b"', "partition"),
                     ("nodes = 2", "nodes")):
        path = tmp_path / "bad.toml"
        path.write_text(text + f"\n[sweep]\n{bad}\n")
        with pytest.raises(ConfigError, match=rf"\[sweep\].*{key}"):
            load_task(path)


def test_killing_the_sweep_kills_its_workers_and_frees_their_runs(tmp_path):
    """kill -9 of the sweep process: its workers die with it, so no run stays locked."""
    import fcntl
    import os
    import signal
    import subprocess
    import sys
    import time

    from pathlib import Path

    out = tmp_path / "sweep"
    proc = subprocess.Popen([str(Path(sys.executable).with_name("snn-icl")), "sweep",
                             str(TASKS / "water_maze_tiny.toml"), "--seeds", "0", "--workers", "1",
                             "--set", "train.iterations=5000", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not list(out.glob("*/*/seed0/metrics.csv")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (lock,) = out.glob("*/*/seed0/.lock")
    deadline = time.monotonic() + 20
    fd = os.open(lock, os.O_RDWR)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "a worker outlived the sweep and holds its run"
                time.sleep(0.2)
    finally:
        os.close(fd)


def test_an_interrupt_of_the_sweep_process_alone_stops_its_runs(tmp_path):
    """kill -INT of the sweep process only (a notebook's interrupt): its runs stop at once and
    say so, instead of the sweep waiting for them to finish."""
    import signal

    out = tmp_path / "sweep"
    # 5,000 tiny iterations would take minutes: signal_when allows 60 s after the interrupt
    code, _ = signal_when(["sweep", str(TASKS / "water_maze_tiny.toml"), "--seeds", "0",
                           "--workers", "1", "--set", "train.iterations=5000", "--out", str(out)],
                          lambda: bool(list(out.glob("*/*/seed0/metrics.csv"))), signal.SIGINT,
                          alone=True)
    assert code != 0
    (run,) = out.glob("*/*/seed0")
    status = files.read_json(run / "run.json")
    assert status["status"].startswith("interrupted") and status["iteration"] < 5000


def test_sigterm_to_the_sweep_stops_its_runs_with_a_checkpoint_and_starts_no_other(tmp_path):
    """kill (or a job scheduler) sends SIGTERM to the sweep process only: the running run
    stops after its iteration with a checkpoint (the next timed one is an hour away), the
    queued run is not started, sweep.json says so, and the exit code is 143."""
    import signal

    out = tmp_path / "sweep"

    def ready() -> bool:
        runs = list(out.glob("*/*/seed0"))
        return bool(runs) and (runs[0] / "metrics.csv").is_file() and len(_rows(runs[0])) >= 3

    code, err = signal_when(["sweep", str(TASKS / "water_maze_tiny.toml"), "--seeds", "0,1",
                             "--workers", "1", "--set", "train.iterations=5000",
                             "--set", "train.checkpoint_minutes=60", "--out", str(out)],
                            ready, signal.SIGTERM, alone=True)
    assert code == 143, err
    assert err.splitlines()[-1].startswith("stopped by SIGTERM")
    (run0,) = out.glob("*/*/seed0")
    status = files.read_json(run0 / "run.json")
    n = len(_rows(run0))
    assert status["status"] == "stopped" and status["stopped_by"] == "SIGTERM"
    assert status["checkpoint_iteration"] == status["iteration"] == n < 5000
    assert not (run0.parent / "seed1" / "run.json").exists()
    runs = {r["seed"]: r for r in files.read_json(out / "sweep.json")["runs"]}
    assert (runs[0]["status"], runs[0]["iteration"], runs[1]["status"]) == ("stopped", n, "pending")


def test_a_pooled_condition_names_a_sweep_setting_or_a_sweep_for_its_seeds(sweep_history, tmp_path):
    from snn_icl.cli import _retention_sources

    out = sweep_history["out"]
    setting = out / "water_maze_tiny" / "iterations=2"
    groups, singles = _retention_sources([f"by setting={setting}", f"by sweep={out}",
                                          f"one run={out / RUNS[0]}"])
    seeds = [str(out / d) for d in RUNS]
    assert groups == {"by setting": seeds, "by sweep": seeds, "one run": seeds[:1]} and not singles
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a run nor a sweep setting"):
        _retention_sources([f"x={tmp_path / 'empty'}"])
