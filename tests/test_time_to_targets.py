"""Snapshots along training and the time to each one-shot target (snn-icl time-to-targets)."""

import json

import pytest
import torch
from typer.testing import CliRunner

from snn_icl.cli import app
from snn_icl.experiments.time_to_targets import ALL, first_times
from snn_icl.storage.checkpoint import Checkpoint
from snn_icl.train.run_dir import train_run

runner = CliRunner()


@pytest.fixture
def snapshot_run(tmp_path, tiny_task_path):
    task = tmp_path / "snap.toml"
    task.write_text(tiny_task_path.read_text().replace("[train]\n", "[train]\nsnapshot_every = 2\n"
                                                        "iterations = 5\n", 1)
                    .replace("iterations = 3\n", "", 1))
    run = tmp_path / "run"
    train_run(task, run, progress=False)
    return run


def test_snapshots_keep_weights_only_at_their_iterations(snapshot_run):
    snaps = sorted((snapshot_run / "snapshots").glob("*.safetensors"))
    assert [p.name for p in snaps] == ["iteration_000002.safetensors", "iteration_000004.safetensors"]
    early, late = Checkpoint(snaps[0]), Checkpoint(snaps[1])
    final = Checkpoint(snapshot_run / "checkpoint.safetensors")
    assert early.meta["counters"]["iteration"] == 2 and late.meta["counters"]["iteration"] == 4
    # weights only: nothing to resume from, and the run's own checkpoint still has Adam's state
    assert not any(k.startswith(("optim.", "rng.")) for k in early.tensors)
    assert any(k.startswith("optim.") for k in final.tensors)
    # training went on after the snapshot: its weights are those of iteration 4, not the end
    changed = [k for k in late.tensors if not torch.equal(late.tensors[k], final.tensors[k])]
    assert changed


def test_cli_evaluates_every_snapshot_and_the_final_checkpoint(snapshot_run, tmp_path):
    out = tmp_path / "ttt"
    result = runner.invoke(app, ["time-to-targets", f"tiny={snapshot_run}", "--seeds", "3,4",
                                 "-n", "4", "--out", str(out), "--budget-min", "60"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "tiny.json").read_text())
    assert [r["iteration"] for r in data["rows"]] == [2, 4, 5]
    assert data["seeds"] == [3, 4] and data["seed_kinds"] == ["validation"]
    row = data["rows"][0]
    assert set(row["targets"]) >= {"ratio trial 1 / trials 2-4", "probe target quadrant"}
    assert all(len(t["values"]) == 2 for t in row["targets"].values())
    assert set(data["times"]) == set(row["targets"]) | {ALL}
    assert (out / "targets.png").stat().st_size > 0 and "| all targets |" in (out / "tiny.md").read_text()


def test_a_saved_result_is_drawn_beside_a_run_without_evaluating_again(snapshot_run, tmp_path):
    first = tmp_path / "first"
    args = ["--seeds", "3", "-n", "2"]
    assert runner.invoke(app, ["time-to-targets", f"a={snapshot_run}", *args, "--out",
                               str(first)]).exit_code == 0
    saved = json.loads((first / "a.json").read_text())
    saved["rows"][0]["wall_time_min"] = 123.0  # a mark: the saved rows are drawn, not re-measured
    (first / "a.json").write_text(json.dumps(saved))
    both = tmp_path / "both"
    result = runner.invoke(app, ["time-to-targets", f"old={first / 'a.json'}", f"new={snapshot_run}",
                                 *args, "--out", str(both)])
    assert result.exit_code == 0, result.output
    assert json.loads((both / "old.json").read_text())["rows"][0]["wall_time_min"] == 123.0
    fresh = json.loads((both / "new.json").read_text())
    assert fresh["rows"][0]["wall_time_min"] != 123.0 and (both / "targets.png").stat().st_size > 0
    # other seeds or episodes, or not a result at all: one line, nothing written
    (tmp_path / "other.json").write_text(json.dumps({"rows": []}))
    for source, words in ((first / "a.json", "seeds [3] with 2 episodes"),
                          (tmp_path / "other.json", "not a time-to-targets result")):
        out = tmp_path / f"bad_{source.stem}"
        bad = runner.invoke(app, ["time-to-targets", f"x={source}", "--seeds", "4", "-n", "2",
                                  "--out", str(out)])
        assert bad.exit_code == 2 and words in bad.output and len(bad.output.strip().splitlines()) == 1
        assert not out.exists()


def test_a_run_without_snapshots_stops_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["time-to-targets", str(tmp_path / "empty"), "--out",
                                 str(tmp_path / "o")])
    assert result.exit_code == 2 and "snapshot_every" in result.output
    assert not (tmp_path / "o").exists()


def _row(iteration, met):
    return {"iteration": iteration, "env_steps": 200 * iteration, "wall_time_min": iteration / 10,
            "all_met": met, "targets": {"probe": {"met": met, "values": [0.5], "target": ">= 0.5"}}}


def test_first_and_kept_times_follow_the_met_pattern():
    times = first_times([_row(1, False), _row(2, True), _row(3, False), _row(4, True), _row(5, True)])
    assert times["probe"]["first"]["iteration"] == 2
    assert times["probe"]["kept"]["iteration"] == 4
    never = first_times([_row(1, True), _row(2, False)])
    assert never[ALL]["first"]["iteration"] == 1 and never[ALL]["kept"] is None


def test_a_sweep_run_path_with_an_equals_sign_is_a_path_not_a_label(snapshot_run, tmp_path):
    import shutil

    run = tmp_path / "lr=0.1" / "seed0"
    shutil.copytree(snapshot_run, run)
    out = tmp_path / "ttt"
    result = runner.invoke(app, ["time-to-targets", str(run), "--seeds", "3", "-n", "2",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "seed0.json").is_file()
