"""The in-context regression training track read against gradient descent on the same tasks
(`snn-icl icl-track`)."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from snn_icl.analysis import icl_references as ref
from snn_icl.cli import app
from snn_icl.envs import icl_regression as reg
from snn_icl.envs.family import regression_track_tasks
from snn_icl.experiments import icl_regression as ev
from snn_icl.experiments import icl_regression_track as track
from snn_icl.storage.checkpoint import load_agent, resolve
from snn_icl.train.supervised import TRACK_SEED
from tests.test_icl_regression import _tiny

runner = CliRunner()


def _trained(tmp_path):
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", str(_tiny(tmp_path)), "--out", str(run)])
    assert r.exit_code == 0, r.output
    return run


def test_the_track_tasks_are_the_ones_training_scored(tmp_path):
    """The references must be computed on the tasks the logged held-out loss came from: the
    final network's loss on regression_track_tasks is the last tracked value."""
    run = _trained(tmp_path)
    curve = track.read_track(run / "metrics.csv")
    assert curve["iteration"] == [1, 100, 200, 300] and curve["d"] == 3
    assert curve["tasks"][-1] == 300 * 256
    agent, task, _ = load_agent(resolve(run))
    b = regression_track_tasks(task.env, TRACK_SEED)
    loss = float(reg.loss(ev.predict(agent, b), b))
    assert abs(loss - curve["held_out_loss"][-1]) < 1e-6 * max(1.0, loss)
    # and the references there are exact learners on those tasks
    refs = track.track_references(task.env)
    eta = ref.best_eta(b.x, b.y, b.x_q, b.y_q)
    assert refs["gd1"]["eta"] == eta
    loss = {k: v["loss"] for k, v in refs.items()}
    assert loss["least_squares"] < 1e-8 < loss["gd2"] < loss["gd1"] < loss["zero"]  # N = 4 > d = 3


def test_summary_finds_the_first_tracked_point_at_one_gd_step():
    refs = {"gd1": {"loss": 0.5}, "gd2": {"loss": 0.25}}
    curve = {"iteration": [1, 250, 500, 750], "tasks": [256, 64000, 128000, 192000],
             "held_out_loss": [1.0, 0.6, 0.45, 0.55], "d": 4}
    s = track.track_summary(curve, refs)
    assert s["gd1_reached_iteration"] == 500 and s["gd1_reached_tasks"] == 128000
    assert abs(s["best_vs_gd1"] - 0.9) < 1e-12 and abs(s["final_vs_gd1"] - 1.1) < 1e-12
    assert abs(s["final_vs_gd2"] - 2.2) < 1e-12
    never = track.track_summary({**curve, "held_out_loss": [1.0, 0.9, 0.8, 0.7]}, refs)
    assert never["gd1_reached_iteration"] is None and never["gd1_reached_tasks"] is None


def test_cli_on_a_run_and_a_shipped_csv(tmp_path):
    run = _trained(tmp_path)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    shutil.copy(run / "metrics.csv", shipped / "tiny_metrics.csv")
    out = tmp_path / "track"
    r = runner.invoke(app, ["icl-track", str(run / "metrics.csv"), "--out", str(tmp_path / "one")])
    assert r.exit_code == 0, r.output
    assert list(json.loads((tmp_path / "one" / "track.json").read_text())["runs"]) == ["run"]
    r = runner.invoke(app, ["icl-track", str(run), str(shipped), "--out", str(out)])
    assert r.exit_code == 0, r.output
    runs = json.loads((out / "track.json").read_text())["runs"]
    from_run, alone = runs["run"], runs["shipped/tiny"]
    # the run's config.toml says N = 4; the CSV alone is read as the defaults (N = 10) at d = 3
    assert from_run["references"] == track.track_references(reg.RegressionConfig(d=3, n_examples=4))
    assert alone["references"] == track.track_references(reg.RegressionConfig(d=3))
    assert from_run["references"]["gd1"]["loss"] != alone["references"]["gd1"]["loss"]
    assert "| run | 3 | 300 |" in (out / "track.md").read_text()
    assert (out / "track.png").stat().st_size > 10_000


def test_cli_stops_on_what_is_not_a_regression_track(tmp_path):
    bad = tmp_path / "maze_metrics.csv"
    bad.write_text("iteration,goals_per_episode\n1,2.0\n")
    r = runner.invoke(app, ["icl-track", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "maze_metrics.csv: not the metrics.csv of an in-context regression run" in r.output
    untracked = tmp_path / "untracked_metrics.csv"
    untracked.write_text("held_out_loss,iteration,episodes,active_dimension\n,1,256,3\n")
    r = runner.invoke(app, ["icl-track", str(untracked), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no tracked rows" in r.output
    nan = tmp_path / "nan_metrics.csv"
    nan.write_text("held_out_loss,iteration,episodes,active_dimension\n1.5,1,256,3\nnan,100,25600,3\n")
    r = runner.invoke(app, ["icl-track", str(nan), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "nan_metrics.csv: a tracked held_out_loss is not finite" in r.output
    r = runner.invoke(app, ["icl-track", str(tmp_path / "absent"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no such file or directory" in r.output
    assert not (tmp_path / "o").exists()  # nothing written on bad input
