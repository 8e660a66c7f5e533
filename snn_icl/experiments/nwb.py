"""One episode of a simulation directory (``snn-icl simulate``) as a Neurodata Without Borders file.

``snn-icl export-nwb SIM_DIR --out episode.nwb [--episode I]`` (pynwb, the optional ``nwb`` extra).

**One file per episode.** An NWB file is one session of one subject. Each episode of a
simulation is such a session: a new platform, a network state reset to zero, trials numbered from
1 again. Episodes as epochs of one file would put unrelated spike trains end to end in one Units
row per neuron on an invented common clock, and mix trials of different platforms in one trials
table; every reader would have to cut them apart again. So ``--episode I`` picks one (default 0)
and a multi-episode run exports as several files (a shell loop over ``--episode``).

**Time base.** Network time of the agent, in seconds from the release of trial 1 (the session
start). For a spiking agent one env step lasts ``ms_per_step`` 1-ms network steps, so position
index ``t`` (``t = 0``: right after reset) is at ``t * ms_per_step`` ms. A spike in the 1-ms step
``j`` (``z[j]``, counted from 0) is stamped at the *end* of that step, ``(j + 1)`` ms, the time
at which the network's state ``A[j]`` holds too; the Units table's ``resolution`` is 1 ms. A
non-spiking agent (LSTM, transformer) has no network clock: one env step is a nominal
:data:`NOMINAL_STEP_MS` ms (the default LSNN's step, so files of different kinds share a time
axis), stated in the session description.

**Units.** Positions are in pool radii (``pool_radius`` of the task), the simulated pool has no
physical size: the ``SpatialSeries`` unit is ``"n.a."`` (nwbinspector's placeholder for a unit
that is not a length in metres) and its description says "pool radii". Latencies are swim
(env) steps, as in :mod:`snn_icl.episodes.measures`.

**Subject.** The agent. The DANDI checks of nwbinspector require ``subject_id``, ``species``
(a Latin binomial or an NCBI taxonomy IRI), ``sex`` and ``age``: the id is the agent kind and
weight hash, the species the NCBI taxon 32630 "synthetic construct" (an artificial network, not
an animal), sex ``"O"`` (other), age ``"P0D"`` (a placeholder: an artificial agent has none; the
description says so). The task parameters and the simulation's metadata are a JSON object in
``notes``.

What is in the file: Units (spike times per neuron, columns ``neuron_type`` and
``adaptation_strength``; spiking agents only: a non-spiking agent's file has no Units table), the
swim path as ``processing/behavior/Position/swim_path``, the trials table, the adaptive thresholds
as ``processing/network/adaptive_thresholds`` (float32, every neuron, every 1-ms step).
"""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snn_icl.config import CONFIG_FILE, load_task, task_to_dict
from snn_icl.episodes.measures import platform_by_trial, release_by_trial, trial_table
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.experiments.figures import SIMULATION_FILE, SIMULATION_META
from snn_icl.storage import files

NOMINAL_STEP_MS = 5
"""Nominal duration of one env step (ms) for agents without a network clock."""
SYNTHETIC_CONSTRUCT = "http://purl.obolibrary.org/obo/NCBITaxon_32630"
"""NCBI taxonomy 'synthetic construct': the species of an artificial agent."""
MISSING_PYNWB = "export-nwb needs pynwb: pip install 'snn-icl[nwb]'"


def _pynwb() -> Any:
    try:
        import pynwb
    except ImportError:
        raise ModuleNotFoundError(MISSING_PYNWB) from None
    return pynwb


def read_simulation(sim_dir: Path) -> tuple[Any, EpisodeRecord, dict[str, Any]]:
    """The task, record and metadata of a simulation directory (ValueError if it is not one)."""
    sim_dir = Path(sim_dir)
    missing = [n for n in (SIMULATION_FILE, CONFIG_FILE) if not (sim_dir / n).is_file()]
    if missing:
        raise ValueError(f"{sim_dir} is not a simulation directory (no {', '.join(missing)}); "
                         "make one with snn-icl simulate")
    task = load_task(sim_dir / CONFIG_FILE)
    rec = EpisodeRecord.from_tensors(files.load_tensors(sim_dir / SIMULATION_FILE))
    meta_path = sim_dir / SIMULATION_META
    meta = files.read_json(meta_path) if meta_path.is_file() else {}
    return task, rec, meta


def _step_ms(task: Any) -> tuple[float, bool]:
    """(ms per env step, whether it is the network's own clock)."""
    ms = getattr(task.agent, "ms_per_step", None)
    return (float(ms), True) if ms is not None else (float(NOMINAL_STEP_MS), False)


def _trials(rec: EpisodeRecord, task: Any, meta: dict[str, Any], step_s: float) -> list[dict]:
    """Rows of the trials table of the one episode of ``rec``."""
    trial = rec.trial[:, 0].long()
    n_trials = int(trial.max()) + 1
    table = trial_table(rec, task.env, n_trials)
    release = release_by_trial(rec, n_trials)[0]
    platform = platform_by_trial(rec, n_trials)[0]  # the one in force: a reversal moves it
    steps = rec.steps
    probe = meta.get("probe_trial", -1)
    probe = probe if isinstance(probe, int) else -1
    protocol = meta.get("protocol", "dmp")  # a name (older simulations) or the settings
    protocol = str(protocol.get("name", "dmp") if isinstance(protocol, dict) else protocol)
    rows = []
    for k in range(n_trials):
        latency = float(table["latency"][0, k])
        if np.isnan(latency):  # never started (no swim step before the episode ended)
            continue
        idx = torch.nonzero(trial == k).flatten()
        start = int(idx[0])
        nxt = torch.nonzero(trial == k + 1).flatten()
        stop = int(nxt[0]) if len(nxt) else steps
        rows.append({
            "start_time": start * step_s, "stop_time": stop * step_s,
            "release_x": float(release[k, 0]), "release_y": float(release[k, 1]),
            "platform_x": float(platform[k, 0]), "platform_y": float(platform[k, 1]),
            "latency": latency, "found": bool(table["success"][0, k] == 1),
            "censored": bool(table["censored"][0, k]),
            "protocol": protocol, "probe": k == probe,
        })
    return rows


TRIAL_COLUMNS = {
    "release_x": "release point x (pool radii, pool centre at 0)",
    "release_y": "release point y (pool radii, pool centre at 0)",
    "platform_x": "centre x of the platform in force in this trial (pool radii; after a reversal "
                  "the new one)",
    "platform_y": "centre y of the platform in force in this trial (pool radii)",
    "latency": "escape latency (swim steps); a trial still running at the end of the episode is "
               "censored at the trial time-out (see 'censored')",
    "found": "the trial reached the platform (not a time-out, not censored)",
    "censored": "the trial was still running when the episode ended",
    "protocol": "protocol of the episode (docs/protocols.md: 'dmp' delayed matching to place, "
                "'reversal', 'probe', 'reference', 'cued')",
    "probe": "probe trial (platform removed)",
}


def export_nwb(sim_dir: str | Path, out: str | Path, episode: int | None = None) -> dict[str, Any]:
    """Write episode ``episode`` (default 0) of the simulation in ``sim_dir`` to the NWB file
    ``out`` (atomically). Returns a summary: episode, units, spikes, trials, seconds."""
    pynwb = _pynwb()
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from pynwb.behavior import Position, SpatialSeries
    from pynwb.file import Subject

    sim_dir = Path(sim_dir)
    task, rec, meta = read_simulation(sim_dir)
    episode = 0 if episode is None else episode
    if not 0 <= episode < rec.episodes:
        raise ValueError(f"--episode {episode} is out of range: {sim_dir} holds {rec.episodes} "
                         f"episodes (0-{rec.episodes - 1})")
    n_episodes = rec.episodes
    rec = rec.select(episode)
    step_ms, spiking = _step_ms(task)
    step_s = step_ms / 1000.0
    kind = task.agent.kind
    weights_hash = meta.get("weights_sha256")
    digest = hashlib.sha256((sim_dir / SIMULATION_FILE).read_bytes()).hexdigest()
    started = meta.get("created")
    start_time = (datetime.fromisoformat(started) if started else
                  datetime.fromtimestamp((sim_dir / SIMULATION_FILE).stat().st_mtime, timezone.utc))
    if start_time.tzinfo is None:  # a recorded time without a zone: UTC
        start_time = start_time.replace(tzinfo=timezone.utc)
    clock = (f"network time: one env step = ms_per_step = {step_ms:g} ms of 1-ms network steps"
             if spiking else f"nominal time: the {kind} agent has no network clock; one env step "
             f"= a nominal {step_ms:g} ms (rate {1000 / step_ms:g} Hz)")
    weights = meta.get("weights", "unknown weights")
    nwb = pynwb.NWBFile(
        session_description=(
            f"Episode {episode} of {n_episodes} of a "
            f"simulated Morris water maze ('{task.name}'), {kind} agent with frozen weights "
            f"({weights}); times in s from the first release, {clock}; positions in pool radii."),
        identifier=str(uuid.uuid5(uuid.NAMESPACE_URL, f"snn-icl:{digest}:episode{episode}")),
        session_start_time=start_time,
        session_id=f"{task.name}-episode{episode}",
        notes=json.dumps({"task": task_to_dict(task),
                          "simulation": {k: v for k, v in meta.items() if k != "summary"},
                          "simulation_sha256": digest, "episode": episode}, default=str),
        experiment_description=(
            "One-shot place learning with frozen synapses: an agent meta-trained on Morris "
            "water-maze episodes (a new platform per episode, several trials) finds the platform "
            "again after one visit with its weights frozen, by its recurrent state alone."),
        source_script="snn-icl simulate, then snn-icl export-nwb",
        source_script_file_name="snn_icl/cli.py",
        keywords=["spiking neural network", "LSNN", "Morris water maze", "simulation",
                  "meta-reinforcement learning"],
    )
    nwb.subject = Subject(
        subject_id=f"{kind}-{(weights_hash or 'unhashed')[:12]}",
        description=(f"An artificial agent: {kind} network, weights sha256 "
                     f"{weights_hash or 'not recorded'} ({weights}), task '{task.name}'. Species: "
                     "NCBI 'synthetic construct'; sex 'O' and age 'P0D' are placeholders (an "
                     "artificial agent has neither)."),
        species=SYNTHETIC_CONSTRUCT, sex="O", age="P0D")

    behavior = nwb.create_processing_module("behavior", "Swim path of the agent in the pool.")
    path = SpatialSeries(
        name="swim_path",
        description=("Agent position in pool radii (x, y; pool centre at (0, 0), pool radius "
                     f"{task.env.pool_radius:g}); unit 'n.a.' because the simulated pool has no "
                     f"physical size. Sample t is after t env steps; {clock}."),
        data=rec.position[:, 0].double().numpy(), unit="n.a.",
        reference_frame="pool centre at (0, 0), lengths in pool radii",
        starting_time=0.0, rate=1000.0 / step_ms)
    behavior.add(Position(spatial_series=path, name="Position"))

    for name, description in TRIAL_COLUMNS.items():
        nwb.add_trial_column(name=name, description=description)
    for row in _trials(rec, task, meta, step_s):
        nwb.add_trial(**row)

    n_spikes = 0
    n_units = 0
    if spiking and rec.z is not None:
        z = rec.z[:, 0].numpy()  # [T*k, n] bool
        n_regular = task.agent.n_regular
        nwb.units = pynwb.misc.Units(
            name="units", resolution=0.001,
            description=("Every neuron of the recurrent network; spike in 1-ms step j at (j + 1) "
                         "ms, regular neurons first, then adaptive."))
        nwb.add_unit_column("neuron_type", "'regular' (fixed threshold) or 'adaptive' "
                            "(threshold adaptation)")
        nwb.add_unit_column("adaptation_strength", "beta: threshold increase per spike "
                            "(0 for regular neurons)")
        for j in range(z.shape[1]):
            times = (np.flatnonzero(z[:, j]) + 1) * 1e-3
            adaptive = j >= n_regular
            nwb.add_unit(spike_times=times, neuron_type="adaptive" if adaptive else "regular",
                         adaptation_strength=float(task.agent.beta) if adaptive else 0.0)
            n_spikes += len(times)
        n_units = z.shape[1]
        if rec.A is not None:
            network = nwb.create_processing_module("network", "Internal state of the LSNN.")
            network.add(pynwb.TimeSeries(
                name="adaptive_thresholds",
                description=("Threshold A of every neuron (columns in Units order) after each "
                             "1-ms network step; regular neurons stay at v_th "
                             f"= {task.agent.v_th:g}. Dimensionless membrane-potential units."),
                data=H5DataIO(rec.A[:, 0].float().numpy(), compression="gzip"),
                unit="a.u.", starting_time=0.001, rate=1000.0))

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():  # the temporary name does not end in .nwb; `out` may
            warnings.filterwarnings("ignore", message=".*does not end in '.nwb'")
            with pynwb.NWBHDF5IO(str(tmp), "w") as io:
                io.write(nwb)

    files.atomic_write(out, write)
    return {"episode": episode, "units": n_units, "spikes": n_spikes,
            "trials": len(nwb.trials) if nwb.trials is not None else 0,
            "seconds": rec.steps * step_s}
