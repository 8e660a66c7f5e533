"""Smoke runs of the real CLI on the tiny task, and its bad-input behaviour."""

import json

import pytest
import torch
from typer.testing import CliRunner

from snn_icl.cli import app
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.storage.files import load_tensors

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("simulate", "train", "evaluate", "compare", "retention", "export-brian2", "analyze",
                "plot"):
        assert cmd in result.output


@pytest.fixture
def sim_dir(tmp_path, tiny_task_path):
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", str(tiny_task_path), "--episodes", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_simulate_writes_trajectories_spikes_thresholds(sim_dir, tiny_task):
    sim = EpisodeRecord.from_tensors(load_tensors(sim_dir / "simulation.safetensors"))
    steps, ms = tiny_task.env.episode_steps, tiny_task.agent.ms_per_step
    n = tiny_task.agent.n_regular + tiny_task.agent.n_adaptive
    assert sim.position.shape == (steps + 1, 3, 2)
    assert sim.z.shape == (steps * ms, 3, n) and sim.z.dtype == torch.bool
    assert sim.A.shape == (steps * ms, 3, n)
    # regular neurons never adapt; adaptive thresholds rise above v_th once they have spiked
    v_th = tiny_task.agent.v_th
    assert torch.allclose(sim.A[..., : tiny_task.agent.n_regular], torch.tensor(v_th))
    fired = sim.z[..., tiny_task.agent.n_regular:].any(0)
    assert fired.any(), "no adaptive neuron spiked in the tiny task"
    assert (sim.A[..., tiny_task.agent.n_regular:].amax(0)[fired] > v_th).all()
    assert (sim.position.norm(dim=-1) <= tiny_task.env.pool_radius + 1e-6).all()
    meta = json.loads((sim_dir / "simulation.json").read_text())
    assert meta["episodes"] == 3 and meta["task"] == "water_maze_tiny"
    assert meta["summary"]["goals_per_episode"] == pytest.approx(float(sim.reward.sum(0).mean()))
    assert (sim_dir / "config.toml").is_file()


def test_simulate_is_reproducible(tmp_path, tiny_task_path):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = runner.invoke(app, ["simulate", str(tiny_task_path), "-n", "2", "--out", str(out),
                                     "--seed", "5"])
        assert result.exit_code == 0, result.output
        outs.append(load_tensors(out / "simulation.safetensors"))
    for key in outs[0]:
        assert torch.equal(outs[0][key], outs[1][key]), key


def test_plot_draws_both_figures(sim_dir):
    result = runner.invoke(app, ["plot", str(sim_dir), "--episode", "1"])
    assert result.exit_code == 0, result.output
    for name in ("trajectories.png", "raster.png"):
        data = (sim_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_rejects_bad_episode_and_missing_run(sim_dir, tmp_path):
    result = runner.invoke(app, ["plot", str(sim_dir), "--episode", "9"])
    assert result.exit_code == 2 and "out of range" in result.output
    result = runner.invoke(app, ["plot", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "simulate" in result.output


def test_bad_task_stops_with_one_message_and_keeps_old_results(sim_dir, tmp_path):
    before = (sim_dir / "simulation.safetensors").read_bytes()
    bad = tmp_path / "bad.toml"
    bad.write_text("[env]\nplatform_radius = -0.5\n")
    result = runner.invoke(app, ["simulate", str(bad), "--out", str(sim_dir)])
    assert result.exit_code == 2
    assert "platform_radius" in result.output and "Traceback" not in result.output
    assert (sim_dir / "simulation.safetensors").read_bytes() == before


def test_outputs_get_the_usual_file_mode(sim_dir):
    import os
    import stat

    umask = os.umask(0)
    os.umask(umask)
    mode = stat.S_IMODE((sim_dir / "simulation.safetensors").stat().st_mode)
    assert mode == 0o666 & ~umask


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_simulate_and_plot_baseline_agents(tmp_path, tiny_task_path, kind):
    text = tiny_task_path.read_text().replace(
        "[agent]\nn_regular = 12\nn_adaptive = 12\nms_per_step = 2\n", f'[agent]\nkind = "{kind}"\n')
    assert f'kind = "{kind}"' in text
    task = tmp_path / f"{kind}.toml"
    task.write_text(text)
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", str(task), "-n", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "z" not in load_tensors(out / "simulation.safetensors")
    result = runner.invoke(app, ["plot", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "trajectories.png").is_file() and not (out / "raster.png").exists()


def test_help_is_plain_and_whole_at_80_columns():
    result = runner.invoke(app, ["evaluate", "--help"], terminal_width=80)
    assert result.exit_code == 0
    assert "the task's [eval] seed" in " ".join(result.output.split())  # not eaten as markup
    listing = runner.invoke(app, ["--help"], terminal_width=80).output
    commands = listing.split("Commands:")[1]
    assert "..." not in commands and "demo" in commands and "export-brian2" in commands


def test_a_label_is_told_from_a_sweep_path_with_an_equals_sign(tmp_path, monkeypatch):
    """time-to-targets, icl-readouts and retention read LABEL=SRC with this one rule."""
    from snn_icl.cli import _label_split

    assert _label_split("flag=runs/a") == ("flag", "runs/a")
    assert _label_split("pretrained:icl_lstm") == ("", "pretrained:icl_lstm")
    assert _label_split("S/task/lr=0.1/seed0") == ("", "S/task/lr=0.1/seed0")  # not yet there
    monkeypatch.chdir(tmp_path)
    assert _label_split("lr=0.1") == ("lr", "0.1")
    (tmp_path / "lr=0.1").mkdir()
    assert _label_split("lr=0.1") == ("", "lr=0.1")


def test_task_prints_the_resolved_config_of_a_derived_file(tmp_path):
    import tomllib

    from snn_icl.config import load_task, task_from_dict

    from tests.conftest import TASKS

    path = str(TASKS / "water_maze_fast_2cores_stay.toml")
    result = runner.invoke(app, ["task", path])
    assert result.exit_code == 0, result.output
    shown = tomllib.loads(result.output)
    assert "base" not in shown and shown["name"] == "water_maze_fast_2cores_stay"
    assert shown["train"]["atlantis_min_delay"] == [1, 20, 20]
    assert shown["train"]["processes"] == 2  # from the base's base
    assert task_from_dict(shown, name=shown["name"]) == load_task(path)
    (tmp_path / "bad.toml").write_text('base = "gone.toml"\n')
    result = runner.invoke(app, ["task", str(tmp_path / "bad.toml")])
    assert result.exit_code == 2 and "base task file not found" in result.output
    assert len(result.output.strip().splitlines()) == 1
