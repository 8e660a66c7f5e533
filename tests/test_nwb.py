"""snn-icl export-nwb: a simulated episode as an NWB file, clean for nwbinspector, read back equal."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from snn_icl.cli import app
from snn_icl.config import load_task
from snn_icl.episodes.measures import trial_table
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.storage.files import load_tensors

import nwbinspector  # noqa: E402  (dev dependencies: a missing one must fail, not skip)
import pynwb  # noqa: E402

TASKS = Path(__file__).resolve().parents[1] / "tasks"
runner = CliRunner()


def _simulate(out: Path, task: Path) -> Path:
    result = runner.invoke(app, ["simulate", str(task), "--episodes", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    torch.set_num_threads(2)
    return _simulate(tmp_path_factory.mktemp("nwb") / "sim", TASKS / "water_maze_tiny.toml")


@pytest.fixture(scope="module")
def exported(sim_dir):
    out = sim_dir.parent / "episode1.nwb"
    result = runner.invoke(app, ["export-nwb", str(sim_dir), "--out", str(out), "--episode", "1"])
    assert result.exit_code == 0, result.output
    return out


def test_nwbinspector_finds_no_critical_issue_or_violation(exported):
    from nwbinspector import Importance, inspect_nwbfile

    messages = list(inspect_nwbfile(nwbfile_path=str(exported)))
    bad = [m for m in messages
           if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)]
    assert not bad, "\n".join(f"{m.importance.name} {m.check_function_name}: {m.message}"
                              for m in bad)


def test_file_reads_back_equal_to_the_simulation(sim_dir, exported):
    task = load_task(sim_dir / "config.toml")
    sim = EpisodeRecord.from_tensors(load_tensors(sim_dir / "simulation.safetensors")).select(1)
    ms = task.agent.ms_per_step
    n = task.agent.n_regular + task.agent.n_adaptive
    with pynwb.NWBHDF5IO(str(exported), "r") as io:
        nwb = io.read()
        # spikes: one unit per neuron, counts and times equal the raster's
        units = nwb.units.to_dataframe()
        assert len(units) == n
        z = sim.z[:, 0].numpy()
        for j in range(n):
            times = np.asarray(units["spike_times"].iloc[j])
            assert len(times) == z[:, j].sum()
            np.testing.assert_allclose(times, (np.flatnonzero(z[:, j]) + 1) * 1e-3)
        assert list(units["neuron_type"]) == ["regular"] * task.agent.n_regular + \
            ["adaptive"] * task.agent.n_adaptive
        assert (units["adaptation_strength"][task.agent.n_regular:] == task.agent.beta).all()
        assert (units["adaptation_strength"][: task.agent.n_regular] == 0).all()
        # positions: pool radii, one sample per env step of ms_per_step ms
        path = nwb.processing["behavior"]["Position"]["swim_path"]
        np.testing.assert_allclose(path.data[:], sim.position[:, 0].double().numpy())
        assert path.rate == pytest.approx(1000.0 / ms) and path.starting_time == 0.0
        assert "pool radii" in path.description
        # trials: latency and found equal the measures of this episode
        trials = nwb.trials.to_dataframe()
        table = trial_table(sim, task.env, len(trials))
        np.testing.assert_allclose(trials["latency"], table["latency"][0].numpy())
        assert list(trials["found"]) == [bool(s == 1) for s in table["success"][0]]
        assert (trials["stop_time"] > trials["start_time"]).all()
        assert trials["start_time"].iloc[0] == 0.0
        assert (trials["platform_x"] == float(sim.platform[0, 0])).all()
        assert set(trials["protocol"]) == {"dmp"} and not trials["probe"].any()
        # thresholds: every neuron, every 1-ms step
        thresholds = nwb.processing["network"]["adaptive_thresholds"]
        assert thresholds.data.shape == (task.env.episode_steps * ms, n)
        np.testing.assert_allclose(thresholds.data[:], sim.A[:, 0].float().numpy())
        # the agent as subject, with the weight hash simulate recorded
        assert re.fullmatch(r"lsnn-[0-9a-f]{12}", nwb.subject.subject_id)
        assert "water_maze_tiny" in nwb.subject.description
        assert '"task"' in nwb.notes


def test_identifier_is_deterministic(sim_dir, exported, tmp_path):
    again = tmp_path / "again.nwb"
    assert runner.invoke(app, ["export-nwb", str(sim_dir), "-o", str(again), "--episode", "1"]
                         ).exit_code == 0
    with pynwb.NWBHDF5IO(str(exported), "r") as a, pynwb.NWBHDF5IO(str(again), "r") as b:
        assert a.read().identifier == b.read().identifier


def test_lstm_simulation_exports_without_units(tmp_path):
    tiny = (TASKS / "water_maze_tiny.toml").read_text()
    agent = tiny.index("[agent]")
    rest = tiny.index("[train]")
    task = tmp_path / "lstm_tiny.toml"
    task.write_text(tiny[:agent] + '[agent]\nkind = "lstm"\nhidden_size = 8\n\n' + tiny[rest:])
    sim = _simulate(tmp_path / "sim", task)
    out = tmp_path / "lstm.nwb"
    result = runner.invoke(app, ["export-nwb", str(sim), "--out", str(out)])
    assert result.exit_code == 0, result.output
    from nwbinspector import Importance, inspect_nwbfile

    bad = [m for m in inspect_nwbfile(nwbfile_path=str(out))
           if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)]
    assert not bad, [m.message for m in bad]
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        assert nwb.units is None and "network" not in nwb.processing
        assert "nominal" in nwb.session_description
        assert len(nwb.trials) >= 1


def test_bad_inputs_are_one_line_errors(sim_dir, tmp_path):
    result = runner.invoke(app, ["export-nwb", str(sim_dir), "--out", str(tmp_path / "x.nwb"),
                                 "--episode", "2"])
    assert result.exit_code == 2 and "out of range" in result.output
    result = runner.invoke(app, ["export-nwb", str(tmp_path), "--out", str(tmp_path / "x.nwb")])
    assert result.exit_code == 2 and "not a simulation directory" in result.output
    result = runner.invoke(app, ["export-nwb", str(sim_dir), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.output
    assert not (tmp_path / "x.nwb").exists()


def test_missing_pynwb_is_one_line(sim_dir, tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pynwb(name, *args, **kwargs):
        if name == "pynwb" or name.startswith("pynwb."):
            raise ImportError("No module named 'pynwb'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynwb)
    result = runner.invoke(app, ["export-nwb", str(sim_dir), "--out", str(tmp_path / "x.nwb")])
    assert result.exit_code == 2
    assert "pip install 'snn-icl[nwb]'" in result.output and "Traceback" not in result.output


def test_a_protocol_is_simulated_recorded_and_exported(tmp_path):
    """simulate --protocol: the episodes run under it, simulation.json records it, and the NWB
    trials table gives each trial the platform in force (the new one after a reversal)."""
    import json

    from snn_icl.episodes.measures import platform_by_trial

    sim = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", str(TASKS / "water_maze_tiny.toml"), "-n", "2",
                                 "--out", str(sim), "--protocol", "reversal",
                                 "--protocol-set", "reversal_trial=1"])
    assert result.exit_code == 0, result.output
    meta = json.loads((sim / "simulation.json").read_text())
    assert meta["protocol"]["name"] == "reversal" and meta["protocol"]["reversal_trial"] == 1
    rec = EpisodeRecord.from_tensors(load_tensors(sim / "simulation.safetensors"))
    platforms = platform_by_trial(rec, 2)
    torch.testing.assert_close(platforms[:, 1], -platforms[:, 0])  # "opposite"
    out = tmp_path / "rev.nwb"
    assert runner.invoke(app, ["export-nwb", str(sim), "--out", str(out)]).exit_code == 0
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        trials = io.read().trials.to_dataframe()
    assert set(trials["protocol"]) == {"reversal"}
    assert trials["platform_x"].iloc[1] == pytest.approx(float(platforms[0, 1, 0]))
    assert trials["platform_x"].iloc[1] == pytest.approx(-trials["platform_x"].iloc[0])
    bad = runner.invoke(app, ["simulate", str(TASKS / "water_maze_tiny.toml"), "--out",
                              str(tmp_path / "x"), "--protocol", "cued"])
    assert bad.exit_code == 2 and "cue_channel" in bad.output
