"""Behaviour along training (snn-icl course): every snapshot under several protocol views."""

import json

import pytest
from typer.testing import CliRunner

from snn_icl.cli import app
from tests.conftest import TASKS
from snn_icl.experiments.training_course import course_of_run, parse_view, pool
from snn_icl.train.run_dir import train_run

runner = CliRunner()


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory):
    """Two training seeds of the tiny maze on the reference protocol (2 places), snapshots every 2
    iterations."""
    root = tmp_path_factory.mktemp("course")
    text = ((TASKS / "water_maze_tiny.toml").read_text().replace("[train]\n", "[train]\nsnapshot_every = 2\n"
                                               "iterations = 5\n", 1)
            .replace("iterations = 3\n", "", 1)
            + "\n[protocol]\nname = \"reference\"\nn_places = 2\n")
    runs = []
    for seed in (0, 1):
        task = root / f"ref{seed}.toml"
        task.write_text(text.replace("seed = 0", f"seed = {seed}", 1))
        runs.append(root / "weight_decay=0,iterations=5" / f"seed{seed}")  # as a sweep names it
        train_run(task, runs[-1], progress=False)
    return runs


def test_parse_view_keeps_bracketed_commas():
    assert parse_view("novel:novel=true,novel_min_distance=0.3") == (
        "novel", ["novel=true", "novel_min_distance=0.3"])
    assert parse_view("moved:displacement=[0.2,0]") == ("moved", ["displacement=[0.2,0]"])
    assert parse_view("trained") == ("trained", [])
    with pytest.raises(ValueError, match="NAME"):
        parse_view(":novel=true")


def test_cli_course_pools_seeds_per_view(reference_runs, tmp_path):
    out = tmp_path / "course"
    result = runner.invoke(app, ["course", "ref=" + ",".join(map(str, reference_runs)),
                                 "--view", "trained", "--view", "novel:novel=true",
                                 "-n", "4", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "course.json").read_text())
    cond = data["conditions"]["ref"]
    assert cond["iterations"] == [2, 4, 5] and len(cond["runs"]) == 2
    assert cond["views"]["trained"]["novel"] is False and cond["views"]["novel"]["novel"] is True
    assert cond["views"]["novel"]["name"] == "reference"  # the runs' own table, under the view
    cell = cond["measures"]["trained"]["trial 1 latency"]
    assert [len(v) for v in cell["values"]] == [2, 2, 2]
    assert cell["mean"][0] == pytest.approx(sum(cell["values"][0]) / 2)
    assert data["seed_kind"] == "validation"
    assert (out / "course.png").stat().st_size > 0 and "### novel" in (out / "course.md").read_text()


def test_workers_give_the_numbers_of_one_by_one(reference_runs, tmp_path):
    base = ["course", str(reference_runs[0]), f"b={reference_runs[1]}", "-n", "4", "--seed", "5",
            "--every", "2"]
    one = runner.invoke(app, base + ["--out", str(tmp_path / "one")])
    two = runner.invoke(app, base + ["--workers", "2", "--out", str(tmp_path / "two")])
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output
    a, b = (json.loads((tmp_path / d / "course.json").read_text()) for d in ("one", "two"))
    # a run path holding "=" and "," is one run, labelled by its directory
    assert a["conditions"]["seed0"]["iterations"] == [2, 5]  # every 2nd snapshot, and the last
    assert a["conditions"] == b["conditions"]


def test_pool_needs_shared_iterations(reference_runs):
    early = course_of_run(reference_runs[0], {"v": []}, 2, 3, progress=False)
    late = dict(early, rows=[dict(r, iteration=r["iteration"] + 100) for r in early["rows"]])
    with pytest.raises(ValueError, match="share no evaluated iteration"):
        pool({"x": [early, late]})


def test_course_of_a_run_without_snapshots_stops_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["course", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "snapshot_every" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_fine_tuning_run_starts_at_its_source(reference_runs, tmp_path):
    source = reference_runs[0] / "checkpoint.safetensors"
    text = (reference_runs[0] / "config.toml").read_text()
    task = tmp_path / "fine.toml"
    assert 'init_from = ""' in text and "iterations = 5\n" in text
    task.write_text(text.replace('init_from = ""', f'init_from = "{source}"', 1)
                    .replace("iterations = 5\n", "iterations = 2\n", 1))
    train_run(task, tmp_path / "fine", progress=False)
    fine = course_of_run(tmp_path / "fine", {"v": []}, 4, 3, progress=False)
    assert [r["iteration"] for r in fine["rows"]] == [0, 2]
    assert fine["rows"][0]["snapshot"].startswith("init_from")
    # iteration 0 is the source's network on the same episodes
    source_course = course_of_run(reference_runs[0], {"v": []}, 4, 3, progress=False)
    assert fine["rows"][0]["measures"] == source_course["rows"][-1]["measures"]


def test_evaluate_without_controls_gives_the_agents_numbers_alone(reference_runs):
    from snn_icl.experiments.evaluate import evaluate
    from snn_icl.storage.checkpoint import load_agent

    agent, task, _ = load_agent(reference_runs[0] / "checkpoint.safetensors")
    full = evaluate(agent, task, 4, 3, progress=False)
    alone = evaluate(agent, task, 4, 3, progress=False, controls=False)
    assert "control_no_memory" in full and "control_random" in full
    assert "control_no_memory" not in alone and "control_random" not in alone
    for key in ("latency_by_trial", "success_by_trial", "one_shot_ratio"):
        assert alone[key] == full[key]
    assert alone["protocol"]["agent"] == full["protocol"]["agent"]  # the reference measures
    assert "control_no_memory" not in alone["protocol"]
