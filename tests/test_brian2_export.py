"""The frozen LSNN in Brian2 against the torch LSNN: spikes, closed loop, knobs, export, CLI.

Default runs use Brian2's numpy target (no compiler); the shipped network on 32 episodes with
the cython target is marked slow.
"""

import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.lsnn_factory import lsnn
from typer.testing import CliRunner

# Brian2 2.9 parses equations with pyparsing's pre-3.1 method names (camelCase): harmless noise,
# at import (here) and when equations are parsed (pytestmark).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import brian2  # noqa: F401
from snn_icl.brian2.export import brian2_rollout, spec_from_agent
from snn_icl.brian2.standalone import BiologyOptions, BrianLSNN, LSNNSpec, WaterMazeNP
from snn_icl.cli import app
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.envs.water_maze import WaterMaze
from snn_icl.models.lsnn import LSNN
from snn_icl.episodes.rollout import rollout

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pyparsing",
                                        "ignore::DeprecationWarning:brian2")
runner = CliRunner()
T = 1000  # 1-ms steps of the open-loop comparisons


def random_lsnn(seed=0, n_in=10, n_regular=20, n_adaptive=20, **neuron):
    """A random LSNN whose neurons sit near threshold and fire irregularly (at the default
    N(0, 1)/sqrt(fan_in) weights most neurons are either silent or fire at the refractory limit,
    where a changed weight or a rounding difference would show in no spike)."""
    torch.manual_seed(seed)
    net = lsnn(n_in, n_regular, n_adaptive, **neuron).double()
    with torch.no_grad():
        net.w_in.copy_(net.w_in.abs() * 0.03)
        net.w_rec.mul_(0.3)
    return net


def spec_of(net: LSNN) -> LSNNSpec:
    p = net.params
    return LSNNSpec(net.w_in.detach().numpy().copy(), net.w_rec_masked().detach().numpy().copy(),
                    net.n_regular, tau_m=p.tau_m_ms, tau_a=p.tau_a_ms, v_th=p.v_th, beta=p.beta,
                    n_ref=p.n_ref)


def torch_run(net: LSNN, x: np.ndarray):
    with torch.no_grad():
        z, _, trace = net(torch.from_numpy(x), record=True)
    return z.numpy().astype(np.int64), trace.v.numpy(), trace.A.numpy()


def current_input(batch=2, seed=1):
    return np.random.default_rng(seed).random((T, batch, 10))


def poisson_input(batch=2, seed=2, p=0.5):
    return (np.random.default_rng(seed).random((T, batch, 10)) < p).astype(np.float64)


# ----------------------------------------------------------------------------- open loop


@pytest.mark.parametrize("inputs, neuron", [
    (current_input, {}),
    (poisson_input, {}),
    (poisson_input, {"tau_a": 200.0, "n_ref": 4, "beta": 3.0, "tau_m": 10.0}),
    (current_input, {"n_ref": 0}),
], ids=["current", "poisson", "poisson-other-constants", "current-no-refractory"])
def test_brian2_spikes_equal_torch_for_1000_steps(inputs, neuron):
    net = random_lsnn(**neuron)
    x = inputs()
    z, v, A = torch_run(net, x)
    out = BrianLSNN(spec_of(net), batch=2, record_state=True).run_input(x)
    assert 0.01 < z.mean() < 0.5, "the comparison needs an active, non-saturated network"
    np.testing.assert_array_equal(out["z"], z)  # every spike time of every neuron
    np.testing.assert_allclose(out["v"], v, rtol=0, atol=1e-9)
    np.testing.assert_allclose(out["A"], A, rtol=0, atol=1e-12)
    if neuron.get("beta", 1.7) > 0:
        assert A[:, :, 20:].max() > net.params.v_th * 1.01  # adaptation is exercised


def test_one_changed_weight_or_threshold_changes_the_spikes():
    net = random_lsnn()
    x = current_input()
    z, _, _ = torch_run(net, x)
    spec = spec_of(net)
    busiest = int(z[:, 0].sum(0).argmax())
    w_rec = spec.w_rec.copy()
    w_rec[busiest, (busiest + 1) % spec.n] += 0.5
    changed = BrianLSNN(replace(spec, w_rec=w_rec), batch=2).run_input(x)["z"]
    assert not np.array_equal(changed, z)
    higher = BrianLSNN(replace(spec, v_th=spec.v_th * 1.05), batch=2).run_input(x)["z"]
    assert not np.array_equal(higher, z)


def test_network_is_reset_between_runs_and_copies_are_independent():
    net = random_lsnn()
    x = current_input(batch=2)
    b2net = BrianLSNN(spec_of(net), batch=2)
    first = b2net.run_input(x)["z"]
    again = b2net.run_input(x)["z"]
    np.testing.assert_array_equal(first, again)
    alone = BrianLSNN(spec_of(net), batch=1).run_input(x[:, 1])["z"]
    np.testing.assert_array_equal(alone[:, 0], first[:, 1])


# ----------------------------------------------------------------------------- closed loop


def tiny_agent(tiny_task, **agent_overrides):
    from snn_icl.config import make_agent
    from snn_icl.models import frozen

    task = replace(tiny_task, agent=replace(tiny_task.agent, **agent_overrides))
    agent = frozen(make_agent(task)).double()
    with torch.no_grad():  # untrained heads barely move the swimmer: make it swim
        agent.mean_head.weight.normal_(0.0, 1.0 / agent.n ** 0.5)
    return agent, task


@pytest.mark.parametrize("deterministic, input_mode", [(True, "current"), (False, "poisson")])
def test_closed_loop_trajectory_equals_torch(tiny_task, deterministic, input_mode):
    agent, task = tiny_agent(tiny_task, input_mode=input_mode)
    runs = []
    for run in (rollout, brian2_rollout):
        env = WaterMaze(task.env, num_envs=3, seed=7, dtype=torch.float64)
        runs.append(run(agent, env, generator=torch.Generator().manual_seed(3),
                        deterministic=deterministic, record=True))
    ref, b2 = runs
    assert ref.z.any() and (ref.position[1:] - ref.position[:-1]).norm(dim=-1).mean() > 0.05
    assert torch.equal(ref.z, b2.z)
    torch.testing.assert_close(b2.A, ref.A, rtol=0, atol=1e-12)
    torch.testing.assert_close(b2.position, ref.position, rtol=0, atol=1e-12)
    torch.testing.assert_close(b2.action, ref.action, rtol=0, atol=1e-12)
    for key in ("trial", "latency", "trial_end", "reward"):
        assert torch.equal(getattr(ref, key), getattr(b2, key)), key


def maze_np(cfg):
    return WaterMazeNP(**{k: getattr(cfg, k) for k in WaterMazeNP.__dataclass_fields__})


def torch_kwargs(protocol):
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in protocol.items()}


def _probe_ran_to_timeout(info, cfg):
    """Trial 1 (the probe) ended in both episodes by a time-out, with reward 0."""
    ends = [(int(i["latency"][b]), bool(i["escaped"][b])) for i in info for b in range(2)
            if i["trial_end"][b] and i["ended_trial"][b] == 1]
    return len(ends) == 2 and all(end == (cfg.trial_timeout, False) for end in ends)


# (reset options, a check on the torch infos that the protocol was exercised)
MAZE_PROTOCOLS = {
    "dmp": ({}, lambda info, cfg: True),
    "reversal-opposite": ({"reversal_trial": 2},
                          lambda info, cfg: not torch.equal(info[0]["platform"], info[-1]["platform"])),
    "reversal-displacement-clipped": (
        {"reversal_trial": 1, "reversal_platform": "displacement", "reversal_displacement": (0.6, 0.0)},
        lambda info, cfg: abs(float(info[-1]["platform"][0].norm()) - cfg.platform_centre_radius) < 1e-12),
    "reversal-centres": ({"reversal_trial": 1, "reversal_platform": np.array([[0.5, 0.5], [-0.5, 0.0]])},
                         lambda info, cfg: info[-1]["platform"][1].tolist() == [-0.5, 0.0]),
    "probe": ({"probe_trial": 1}, _probe_ran_to_timeout),
    "atlantis-per-episode": ({"probe_trial": np.array([1, 2]), "probe_steps": np.array([3, 1])},
                             lambda info, cfg: any(not bool(i["platform_present"].all()) for i in info)),
    "dark-delay": ({"dark_after_trial": 0, "dark_steps": 5},
                   lambda info, cfg: sum(int(i["dark"][0]) for i in info) == 5),
    "iti-dark": ({"iti_dark_steps": 2, "dark_after_trial": 1, "dark_steps": np.array([4, 0])},
                 lambda info, cfg: sum(int(i["dark"].sum()) for i in info) >= 8),
    # "env": config fields, not reset options
    "dark-delay-recall-cue": ({"dark_after_trial": 0, "dark_steps": 5,
                               "env": {"recall_cue_steps": 2, "recall_cue_level": 0.1}},
                              lambda info, cfg: sum(int(i["dark"][0]) for i in info) == 5),
    "dark-delay-recall-cue-channel": ({"dark_after_trial": 0, "dark_steps": 5,
                                       "env": {"recall_cue_steps": 2, "recall_cue_level": 1.0,
                                               "recall_cue_input": "channel"}},
                                      lambda info, cfg: sum(int(i["dark"][0]) for i in info) == 5),
}


@pytest.mark.parametrize("protocol", MAZE_PROTOCOLS, ids=list(MAZE_PROTOCOLS))
def test_numpy_water_maze_matches_torch(tiny_task, protocol):
    options, exercised = MAZE_PROTOCOLS[protocol]
    options = dict(options)
    cfg = replace(tiny_task.env, episode_steps=60, **options.pop("env", {}))
    gen = np.random.default_rng(0)
    platform = np.array([[0.2, -0.3], [-0.1, 0.4]])
    angles = gen.uniform(0, 2 * np.pi, (2, cfg.max_trials))
    env = WaterMaze(cfg, num_envs=2, dtype=torch.float64)
    obs_t = env.reset(platform=torch.from_numpy(platform), release_angles=torch.from_numpy(angles),
                      **torch_kwargs(options))
    np_env = maze_np(cfg)
    state = np_env.reset(2, gen, platform, angles, **options)
    ended, infos = 0, []
    for _ in range(cfg.episode_steps):
        np.testing.assert_allclose(np_env.observe(state), obs_t.numpy(), atol=1e-12)
        toward = state["platform"] - state["position"] + gen.normal(0, 0.3, (2, 2))
        obs_t, reward, _, info = env.step(torch.from_numpy(toward))
        state, np_info = np_env.step(state, toward)
        infos.append(info)
        np.testing.assert_allclose(state["position"], info["position"].numpy(), atol=1e-12)
        np.testing.assert_allclose(state["platform"], info["platform"].numpy(), atol=1e-12)
        np.testing.assert_allclose(np_info["platform"], info["platform"].numpy(), atol=1e-12)
        np.testing.assert_array_equal(np_info["reward"], reward.numpy())
        for key in ("latency", "trial_end", "ended_trial", "trial", "platform_present", "dark"):
            np.testing.assert_array_equal(np_info[key], info[key].numpy(), err_msg=key)
        ended += int(info["trial_end"].sum())
    np.testing.assert_allclose(np_env.observe(state), obs_t.numpy(), atol=1e-12)
    assert ended >= 6 and exercised(infos, cfg), "the protocol must act within the episode"


@pytest.mark.parametrize("options, message", [
    ({"probe_trial": -2}, "probe_trial must be an integer >= -1"),
    ({"probe_steps": -1}, "probe_steps must be an integer >= 0"),
    ({"dark_steps": -3}, "dark_steps must be an integer >= 0"),
    ({"dark_steps": 2.5}, "dark_steps must be an integer"),
    ({"iti_dark_steps": -1}, "iti_dark_steps must be an integer >= 0"),
    ({"dark_after_trial": -2}, "dark_after_trial must be an integer >= -1"),
    ({"reversal_trial": 0}, "reversal_trial must be a trial index in 1.."),
    ({"reversal_trial": 2, "reversal_platform": "mirror"}, "reversal_platform must be one of"),
    ({"reversal_trial": 2, "reversal_platform": "displacement"}, "needs reversal_displacement"),
    ({"reversal_trial": 2, "reversal_platform": np.array([0.9, 0.0])}, "must lie within"),
])
def test_bad_protocol_values_are_one_line_errors(tiny_task, options, message):
    with pytest.raises(ValueError, match=message):
        maze_np(tiny_task.env).reset(2, np.random.default_rng(0), **options)


# (reset options, a check on the standalone loop that the protocol acted)
STANDALONE_PROTOCOLS = {
    "dmp": ({}, lambda ctrl, cfg, platform: True),
    "reversal": ({"reversal_trial": 2},
                 lambda ctrl, cfg, platform: np.array_equal(ctrl.platforms[-1], -platform)),
    "probe-dark": ({"probe_trial": 1, "dark_after_trial": 0, "dark_steps": 3},
                   lambda ctrl, cfg, platform: (ctrl.latency[:, 1] == cfg.trial_timeout).all()),
}


@pytest.mark.parametrize("protocol", STANDALONE_PROTOCOLS)
def test_standalone_closed_loop_equals_torch(tiny_task, protocol):
    """The exported script's own loop (HeadsController, WaterMazeNP) against the torch rollout:
    the same spikes, paths, platforms and latencies, spike for spike."""
    from snn_icl.brian2.standalone import HeadsController

    options, acted = STANDALONE_PROTOCOLS[protocol]
    agent, task = tiny_agent(tiny_task)
    cfg = task.env
    gen = np.random.default_rng(5)
    platform = np.array([[0.3, -0.2], [-0.4, 0.1], [0.0, 0.5]])
    angles = gen.uniform(0, 2 * np.pi, (3, cfg.max_trials))
    env = WaterMaze(cfg, num_envs=3, dtype=torch.float64)
    ref = rollout(agent, env, deterministic=True, record=True, platform=torch.from_numpy(platform),
                  release_angles=torch.from_numpy(angles), **options)
    net = BrianLSNN(spec_from_agent(agent), batch=3)
    ctrl = HeadsController(net, maze_np(cfg), gen, platform, angles, **options)
    z = net.run_closed_loop(ctrl, cfg.episode_steps)
    assert ref.z.any() and (ref.position[1:] - ref.position[:-1]).norm(dim=-1).mean() > 0.05
    np.testing.assert_array_equal(z > 0, ref.z.numpy())
    np.testing.assert_allclose(np.stack(ctrl.positions), ref.position.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.stack(ctrl.platforms), ref.platform_t.numpy(), rtol=0, atol=1e-12)
    latency = np.full_like(ctrl.latency, np.nan)
    for t, b in zip(*np.nonzero(ref.trial_end.numpy())):  # trial[t]: the trial swum at step t
        latency[b, int(ref.trial[t, b])] = ref.latency[t, b]
    np.testing.assert_array_equal(ctrl.latency, latency)
    assert acted(ctrl, cfg, platform)


# ----------------------------------------------------------------------------- biology knobs


def chain_spec(n_ref=2):
    """Neuron 0 is driven by the input, neuron 1 only by neuron 0 (strong synapse)."""
    w_rec = np.zeros((2, 2))
    w_rec[0, 1] = 0.3  # one input or presynaptic spike: v = (1 - alpha) 0.3 = 0.0146 > v_th
    return LSNNSpec(np.array([[0.3, 0.0]]), w_rec, n_regular=2, n_ref=n_ref)


@pytest.mark.parametrize("delay", [0.0, 1.0, 3.0])
def test_delay_postpones_the_postsynaptic_spike(delay):
    x = np.zeros((20, 1))
    x[0] = 1.0
    z = BrianLSNN(chain_spec(), options=BiologyOptions(delay_ms=delay)).run_input(x)["z"][:, 0]
    assert np.flatnonzero(z[:, 0]).tolist() == [0]
    assert np.flatnonzero(z[:, 1]).tolist() == [1 + delay]


def test_knobs_off_is_exact_and_each_knob_changes_the_spikes():
    net = random_lsnn()
    x = current_input()
    z, v, _ = torch_run(net, x)
    spec = spec_of(net)
    assert BiologyOptions().is_exact and not BiologyOptions(delay_ms=1).is_exact
    for options in (BiologyOptions(delay_ms=1.0), BiologyOptions(noise_sigma=0.01),
                    BiologyOptions(silenced_fraction=0.25), BiologyOptions(integration="exact"),
                    BiologyOptions(integration="euler", dt_ms=0.5)):
        out = BrianLSNN(spec, batch=2, options=options).run_input(x)["z"]
        assert out.sum() > 0 and not np.array_equal(out, z), options
    b2net = BrianLSNN(spec, batch=2, options=BiologyOptions(silenced_fraction=0.25))
    silent = b2net.group.silent[:].reshape(2, 40)
    assert (silent == silent[0]).all() and silent[0].sum() == 10  # 25 % of 40, the same in each copy
    silenced = b2net.run_input(x)["z"]
    assert silenced[:, :, silent[0]].sum() == 0 and z[:, :, silent[0]].sum() > 0
    noisy = [BrianLSNN(spec, batch=2, options=BiologyOptions(noise_sigma=0.01)).run_input(x, seed=s)["z"]
             for s in (1, 1, 2)]
    assert np.array_equal(noisy[0], noisy[1]) and not np.array_equal(noisy[0], noisy[2])


def test_continuous_exact_integration_equals_the_map_below_threshold():
    net = random_lsnn()
    x = current_input() * 1e-3  # far below threshold: no spike, v is the leaky integral
    z, v, _ = torch_run(net, x)
    assert z.sum() == 0
    for method, tol in (("exact", 1e-12), ("euler", None)):
        out = BrianLSNN(spec_of(net), batch=2, options=BiologyOptions(integration=method),
                        record_state=("v",)).run_input(x)
        if tol is None:  # Euler's first step: v = dt/tau_m I = 0.05 I, not (1 - alpha) I = 0.0488 I
            np.testing.assert_allclose(out["v"][0], v[0] * 0.05 / (1 - net.params.alpha), rtol=1e-9)
        else:
            np.testing.assert_allclose(out["v"], v, rtol=0, atol=tol)


@pytest.mark.parametrize("kwargs, message", [
    ({"integration": "rk4"}, "integration must be one of"),
    ({"integration": "discrete", "dt_ms": 0.5}, "dt_ms must be 1"),
    ({"integration": "exact", "dt_ms": 0.3}, "dt_ms must divide 1 ms"),
    ({"delay_ms": 0.5}, "multiple of dt_ms"),
    ({"silenced_fraction": 1.0}, "silenced_fraction must be < 1"),
    ({"noise_sigma": -1.0}, "noise_sigma must be a finite number >= 0"),
])
def test_bad_options_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BiologyOptions(**kwargs)


def test_bad_specs_and_agents_are_rejected(tiny_task):
    from snn_icl.models.lstm import LSTMAgent

    with pytest.raises(ValueError, match="zero diagonal"):
        LSNNSpec(np.ones((2, 3)), np.ones((3, 3)), n_regular=1)
    with pytest.raises(ValueError, match="needs an LSNN agent, got LSTMAgent"):
        spec_from_agent(LSTMAgent(5))
    agent, _ = tiny_agent(tiny_task, backend="norse")
    with pytest.raises(ValueError, match="bellec dynamics"):
        spec_from_agent(agent)
    with pytest.raises(ValueError, match="x must have shape"):
        BrianLSNN(chain_spec()).run_input(np.zeros((5, 3)))


# ----------------------------------------------------------------------------- export and CLI


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_task):
    from snn_icl.storage.checkpoint import save_checkpoint

    agent, task = tiny_agent(tiny_task)
    return save_checkpoint(tmp_path / "tiny.safetensors", task, agent.float(), iteration=0)


# Run the script with torch and snn_icl made unimportable: it must need only brian2 and numpy.
_BLOCKED = ("import sys, runpy; sys.modules['torch'] = None; sys.modules['snn_icl'] = None; "
            "sys.argv = ['lsnn_brian2.py'] + sys.argv[1:]; "
            "runpy.run_path('lsnn_brian2.py', run_name='__main__')")


def test_exported_script_runs_without_snn_icl_and_reproduces_torch(tmp_path, tiny_checkpoint):
    from snn_icl.storage.checkpoint import load_agent

    out = tmp_path / "export"
    result = runner.invoke(app, ["export-brian2", str(tiny_checkpoint), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("lsnn_brian2.py", "weights.npz", "params.json", "README.txt"):
        assert (out / name).is_file()
    x = np.load(out / "reference_input.npy")
    agent, _, _ = load_agent(tiny_checkpoint)
    with torch.no_grad():
        z_torch, _ = agent.double().net(torch.from_numpy(x))
    np.testing.assert_array_equal(np.load(out / "reference_spikes.npy"), z_torch.numpy())
    run = subprocess.run([sys.executable, "-c", _BLOCKED, "--input", "reference_input.npy",
                          "--out", "z.npz"], cwd=out, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    z_brian = np.load(out / "z.npz")["z"]
    assert z_torch.sum() > 0
    np.testing.assert_array_equal(z_brian, z_torch.numpy())
    run = subprocess.run([sys.executable, "-c", _BLOCKED, "--episodes", "2"], cwd=out,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "median latency by trial" in run.stdout, run.stderr


def test_standalone_main_passes_the_protocol_flags_to_the_maze(tmp_path, tiny_task, monkeypatch, capsys):
    from dataclasses import asdict

    from snn_icl.brian2 import standalone

    agent, task = tiny_agent(tiny_task)
    spec_from_agent(agent).save(tmp_path, env=asdict(task.env))
    flags = ["--weights", str(tmp_path), "--episodes", "2"]
    # a probe on trial 1, 3 dark steps after trial 0, and the platform displaced at trial 2 start
    result = standalone.main(flags + ["--probe-trial", "1", "--dark-after-trial", "0", "--dark-steps",
                                      "3", "--reversal-trial", "2", "--displacement", "0.6", "0"])
    assert "median latency by trial" in capsys.readouterr().out
    assert (result["latency"][:, 1] == task.env.trial_timeout).all()
    first, last = result["platform"][:, 0], result["platform"][:, -1]
    moved = maze_np(task.env).reversal_centres(first, 2, "displacement", (0.6, 0.0))
    assert np.abs(last - first).max() > 0.1 and np.array_equal(last, moved)

    seen = {}  # every flag reaches the maze under the reset option's name
    monkeypatch.setattr(standalone, "run_episodes", lambda *a, **kw: seen.update(kw) or {
        "latency_by_trial": [], "latency_trials2_4": None, "one_shot_ratio": None,
        "goals_per_episode": 0.0})
    standalone.main(flags + ["--probe-trial", "3", "--probe-steps", "4", "--dark-after-trial", "1",
                             "--dark-steps", "5", "--iti-dark-steps", "2", "--reversal-trial", "4",
                             "--reversal", "opposite"])
    assert {k: v for k, v in seen.items() if k not in ("options", "target")} == {
        "probe_trial": 3, "probe_steps": 4, "dark_after_trial": 1, "dark_steps": 5,
        "iti_dark_steps": 2, "reversal_trial": 4, "reversal_platform": "opposite",
        "reversal_displacement": None}
    with pytest.raises(SystemExit) as exit_:
        standalone.main(flags + ["--dark-steps", "-1"])
    assert exit_.value.code == 2 and "dark_steps must be an integer >= 0" in capsys.readouterr().err


def test_export_rejects_a_non_lsnn_checkpoint(tmp_path):
    result = runner.invoke(app, ["export-brian2", "pretrained:lstm", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "needs an LSNN agent" in result.output


def test_cli_simulate_checkpoint_with_brian2_backend(tmp_path, tiny_checkpoint, tiny_task):
    from snn_icl.storage.files import load_tensors

    sims = {}
    for backend in ("torch", "brian2"):
        out = tmp_path / backend
        result = runner.invoke(app, ["simulate", str(tiny_checkpoint), "-n", "2", "--out", str(out),
                                     "--backend", backend, "--target", "numpy", "--deterministic"])
        assert result.exit_code == 0, result.output
        sims[backend] = EpisodeRecord.from_tensors(load_tensors(out / "simulation.safetensors"))
    steps, ms = tiny_task.env.episode_steps, tiny_task.agent.ms_per_step
    assert sims["brian2"].z.shape == sims["torch"].z.shape == (steps * ms, 2, 24)
    assert sims["brian2"].A.shape == sims["torch"].A.shape
    # float32 torch neurons against float64 Brian2: the same episodes, nearly the same swim
    assert torch.equal(sims["brian2"].platform, sims["torch"].platform)
    zb, zt = sims["brian2"].z, sims["torch"].z
    # enough spikes that agreement means something (silent rasters agree everywhere): the tiny
    # agent fires on ~15% of (ms, neuron) entries
    assert zt.float().mean() >= 0.05 and zb.float().mean() >= 0.05
    # agreement among the entries where either simulator spikes, not the agreeing zeros
    assert (zb == zt)[zb | zt].float().mean() > 0.95
    assert abs(int(zb.sum()) - int(zt.sum())) <= 0.05 * int(zt.sum())
    result = runner.invoke(app, ["simulate", str(tiny_checkpoint), "--out", str(tmp_path / "x"),
                                 "--backend", "nest"])
    assert result.exit_code == 2 and "--backend must be torch or brian2" in result.output
    result = runner.invoke(app, ["simulate", "pretrained:lstm", "--out", str(tmp_path / "x"),
                                 "--backend", "brian2"])
    assert result.exit_code == 2 and "needs an LSNN agent, got LSTMAgent" in result.output


# ----------------------------------------------------------------------------- shipped network


@pytest.mark.slow
def test_shipped_network_behaves_the_same_in_brian2():
    """32 held-out episodes, float64 in both simulators, cython target (compiles once)."""
    from snn_icl.brian2.export import compare_simulators
    from snn_icl.storage.checkpoint import load_agent, pretrained_path

    agent, task, _ = load_agent(pretrained_path())
    result = compare_simulators(agent, task, 32, 1)
    agree = result["agreement"]
    assert agree["identical_latencies"] and agree["max_position_difference"] < 1e-9
    assert agree["episodes_identical_spikes"] == 32
    assert result["brian2"]["latency_by_trial"] == result["torch"]["latency_by_trial"]
    assert result["brian2"]["one_shot_ratio"] > 1.5


def test_compare_and_knob_sweep_run_on_the_tiny_task(tiny_task):
    import matplotlib.pyplot as plt

    from snn_icl.brian2.export import (compare_markdown, compare_simulators, plot_sweep, sweep_knobs,
                                       sweep_markdown)

    agent, task = tiny_agent(tiny_task)
    result = compare_simulators(agent, task, 3, 0, target="numpy")
    agree = result["agreement"]
    assert agree["episodes_identical_spikes"] == 3 and agree["identical_latencies"]
    assert result["torch"]["latency_by_trial"] == result["brian2"]["latency_by_trial"]
    assert "| one-shot ratio |" in compare_markdown(result)
    sweep = {"delay_ms": [0.0, 2.0], "integration": [("exact", 0.5)]}
    rows = sweep_knobs(agent, task, 3, 0, sweep=sweep, target="numpy")
    assert [(r["knob"], r["value"]) for r in rows] == [("delay_ms", "0"), ("delay_ms", "2"),
                                                       ("integration", "exact, dt 0.5 ms")]
    assert rows[0]["latency_trial1"] == result["brian2"]["latency_by_trial"][0]
    assert sweep_markdown(rows).count("\n") == 2 + len(rows)
    plt.close(plot_sweep(rows))
