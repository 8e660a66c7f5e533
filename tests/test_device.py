"""Devices: --device / [train] device reach the model, the env's tensors and Adam's state; CPU runs
are identical to the default; checkpoints are device-independent; a GPU where there is none is a
one-line error. This machine has no GPU: what needs one is checked with meta tensors (shape and
device propagation without data) where the code path allows it."""

import csv
import json

import pytest
import torch
from typer.testing import CliRunner

from snn_icl.cli import app
from snn_icl.config import (ConfigError, load_task, make_agent, replace, resolve_device,
                            same_but_device, task_to_dict)
from snn_icl.envs import family as families
from snn_icl.envs import icl_regression as reg
from snn_icl.envs.water_maze import observe, reset_state, step_state
from snn_icl.experiments import sweep as sw
from snn_icl.models.agent import module_device, random_like, sample_action
from snn_icl.neurons.fast import fast_backend, kernels_available
from snn_icl.storage import files
from snn_icl.storage.checkpoint import CHECKPOINT_FILE, Checkpoint, load_agent, load_into
from snn_icl.train.ppo import collect, new_state
from snn_icl.train.run_dir import train_run
from tests.conftest import TASKS

runner = CliRunner()
META = torch.device("meta")


def _metrics(run):
    with (run / "metrics.csv").open() as f:
        return [{k: v for k, v in row.items() if "time" not in k and "seconds" not in k}
                for row in csv.DictReader(f)]


def _no_gpu_case():
    """A GPU this machine lacks, and the words of the error about it."""
    if not torch.cuda.is_available():
        return "cuda", "no CUDA device is available"
    return "cuda:999", "CUDA device(s)"


# --- training ----------------------------------------------------------------------------------
def test_device_cpu_trains_exactly_as_the_default_and_its_checkpoint_loads_anywhere(
        tmp_path, tiny_task_path):
    default, cpu = tmp_path / "default", tmp_path / "cpu"
    train_run(tiny_task_path, default, progress=False, stop_after=2)
    result = runner.invoke(app, ["train", str(tiny_task_path), "--device", "cpu", "--out", str(cpu),
                                 "--stop-after", "2"])
    assert result.exit_code == 0, result.output
    assert load_task(cpu / "config.toml").train.device == "cpu"
    a, b = Checkpoint(default / CHECKPOINT_FILE), Checkpoint(cpu / CHECKPOINT_FILE)
    assert a.tensors.keys() == b.tensors.keys() and any(k.startswith("optim.") for k in a.tensors)
    for key in a.tensors:
        assert torch.equal(a.tensors[key], b.tensors[key]), key
    assert _metrics(default) == _metrics(cpu)
    # the checkpoint holds CPU tensors and loads onto an explicit device, Adam's state included
    assert all(t.device.type == "cpu" for t in b.tensors.values())
    agent, task, counters = load_agent(cpu / CHECKPOINT_FILE, device="cpu")
    assert counters["iteration"] == 2
    assert {p.device.type for p in agent.parameters()} == {"cpu"}
    state = new_state(task, make_agent(task).to(resolve_device("cpu")))
    load_into(b, state.agent, task, state.optimizer, state.generator)
    for group in state.optimizer.param_groups:
        for p in group["params"]:
            for name, value in state.optimizer.state[p].items():
                if name != "step":
                    assert value.device == p.device, name
    # and resumes there: a config that differs in the device only describes the same run
    result = runner.invoke(app, ["train", str(tiny_task_path), "--device", "cpu", "--out", str(cpu),
                                 "--resume"])
    assert result.exit_code == 0, result.output
    cuda = replace(task, train={"device": "cuda"})  # valid in a file; checked when a run starts
    assert same_but_device(cuda, task) == task and cuda != task


def test_the_env_and_the_batch_follow_the_agents_device(tiny_task):
    state = new_state(tiny_task, make_agent(tiny_task))
    assert module_device(state.agent) == torch.device("cpu")
    batch = collect(state, tiny_task)
    assert {t.device for t in batch.tensors().values()} == {module_device(state.agent)}
    assert module_device(make_agent(tiny_task).to(META)) == META
    assert module_device(object()) == torch.device("cpu")  # a random policy, another simulator


def test_a_gpu_where_there_is_none_and_an_unknown_device_are_one_line_errors(tmp_path,
                                                                             tiny_task_path):
    gpu, words = _no_gpu_case()
    task = tmp_path / "gpu.toml"
    files.write_toml(task, task_to_dict(replace(load_task(tiny_task_path),
                                                train={"device": gpu})))
    for args, culprit in [(["train", str(task), "--out", str(tmp_path / "r1")], "[train] device"),
                          (["train", str(tiny_task_path), "--device", gpu, "--out",
                            str(tmp_path / "r2")], "--device"),
                          (["evaluate", "pretrained", "--device", gpu, "--out",
                            str(tmp_path / "e.json")], "--device"),
                          (["sweep", str(tiny_task_path), "--seeds", "0", "--device", gpu,
                            "--out", str(tmp_path / "s1")], "--device"),
                          (["sweep", str(task), "--seeds", "0", "--out", str(tmp_path / "s2")],
                           "[train] device")]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and culprit in lines[0] and words in lines[0], lines
    assert not any((tmp_path / name).exists() for name in ("r1", "r2", "e.json", "s1", "s2"))
    result = runner.invoke(app, ["evaluate", "pretrained", "--device", "tpu", "--out",
                                 str(tmp_path / "e.json")])
    assert result.exit_code == 2 and "allowed: cpu, cuda" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[train]\ndevice = "gpu"\n')
    result = runner.invoke(app, ["train", str(bad), "--out", str(tmp_path / "r3")])
    assert result.exit_code == 2 and "device must be one of ['cpu', 'cuda']" in result.output


# --- the sweep passes the device to every run --------------------------------------------------
def test_sweep_device_reaches_every_run_and_a_rerun_may_change_it(tmp_path, tiny_task_path):
    task = load_task(tiny_task_path)
    specs, resolved = sw.expand([task], [sw.parse_set("train.lr=1e-3,3e-4")], [0, 1], tmp_path,
                                device="cuda")
    assert len(specs) == 4 and {c.train.device for c in resolved.values()} == {"cuda"}
    _, kept = sw.expand([task], [], [0], tmp_path)
    assert {c.train.device for c in kept.values()} == {task.train.device}
    out = tmp_path / "sweep"
    # Slurm: the GPUs are on the runs' nodes, so the name only is checked here
    grid = sw.prepare([tiny_task_path], [], "0", out, ["snn-icl"], "slurm", device="cuda")
    assert {load_task(s.task_path).train.device for s in grid.specs} == {"cuda"}
    grid = sw.prepare([tiny_task_path], [], "0", out, ["snn-icl"], "local", device="cpu")
    assert {load_task(s.task_path).train.device for s in grid.specs} == {"cpu"}
    gpu, words = _no_gpu_case()
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        sw.prepare([tiny_task_path], [], "0", out, ["snn-icl"], "local", device=gpu)


# --- supervised in-context training ------------------------------------------------------------
def test_supervised_training_on_cpu_equals_the_default_and_batches_move(tmp_path):
    text = ('name = "icl_dev"\n[env]\nfamily = "icl_regression"\nd = 3\nn_examples = 4\n'
            '[agent]\nkind = "lsa"\n[train]\niterations = 3\nbatch_episodes = 32\nlr = 0.01\n'
            'threads = 1\nminibatches = 1\ntrack_every = 2\ncheckpoint_minutes = 0.01\n')
    path = tmp_path / "icl_dev.toml"
    path.write_text(text)
    train_run(path, tmp_path / "a", progress=False)
    train_run(path, tmp_path / "b", progress=False, device="cpu")
    a, b = Checkpoint(tmp_path / "a" / CHECKPOINT_FILE), Checkpoint(tmp_path / "b" / CHECKPOINT_FILE)
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
    batch = reg.sample(load_task(path).env, 4, torch.Generator().manual_seed(0))
    moved = families.to_device(batch, META)
    tensors = [t for t in moved if isinstance(t, torch.Tensor)]
    assert type(moved) is type(batch) and len(tensors) == 5 and all(t.device == META for t in tensors)
    assert moved.passes == batch.passes  # plain values travel as they are


# --- the pieces a GPU run goes through, on meta tensors ----------------------------------------
def test_env_reset_and_step_keep_their_tensors_on_the_device_asked_for(tiny_task):
    cfg = tiny_task.env
    g_meta, g_cpu = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    options = {"atlantis": (0.5, 5), "iti_dark_steps": 2, "reversal_trial": 2}
    state = reset_state(cfg, 4, g_meta, device=META, **options)
    reset_state(cfg, 4, g_cpu, **options)
    # the draws are made on the CPU generator whatever the device: the same stream is consumed
    assert torch.equal(g_meta.get_state(), g_cpu.get_state())
    assert {t.device for t in state} == {META}
    new, reward, info = step_state(cfg, state, torch.zeros(4, 2, device=META))
    assert {t.device for t in new} == {META} and reward.device == META
    assert {t.device for t in info.values()} == {META}
    assert observe(cfg, new).device == META


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_agents_act_and_replay_on_the_device_of_their_weights(tiny_task, kind):
    task = replace(tiny_task, agent={"kind": kind})
    agent = make_agent(task).to(META)
    out = agent.act(torch.zeros(4, task.env.obs_dim, device=META), agent.initial_state(4),
                    generator=torch.Generator().manual_seed(0))
    assert out.policy.mean.device == META and out.net_input.device == META
    assert sample_action(out.policy, torch.Generator().manual_seed(0)).device == META
    policy = agent.evaluate_sequence(torch.stack([out.net_input] * 3), None)
    assert policy.mean.shape == (3, 4, 2) and policy.value.device == META


@pytest.mark.parametrize("kind", ["lsa", "transformer", "lstm"])
def test_predictors_run_on_the_device_of_their_weights(kind):
    task = replace(load_task(TASKS / "icl_regression_lsa.toml"), agent={"kind": kind})
    model = make_agent(task).to(META)
    tokens = torch.zeros(task.env.episode_steps, 4, task.env.obs_dim, device=META)
    assert model(tokens).device == META
    assert {f.device for f in model.features(tokens).values()} == {META}


def test_random_draws_come_from_the_cpu_generator_on_every_device():
    g_meta, g_cpu = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert random_like("randn", torch.empty(6, 2, device=META), g_meta).device == META
    on_cpu = random_like("randn", torch.empty(6, 2), g_cpu)
    assert torch.equal(on_cpu, torch.randn(6, 2, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(g_meta.get_state(), g_cpu.get_state())


def test_the_lsnn_runs_its_torch_ops_path_off_the_cpu():
    assert fast_backend(torch.empty(2, 1, 3, device=META)) == "torch"
    assert fast_backend(torch.empty(2, 1, 3, dtype=torch.float16)) == "torch"
    assert fast_backend(torch.empty(2, 1, 3)) == ("numba" if kernels_available() else "torch")


def test_evaluate_device_cpu_writes_the_default_result(tmp_path, tiny_task_path):
    run = tmp_path / "run"
    train_run(tiny_task_path, run, progress=False, stop_after=1)
    results = []
    for name, extra in (("a.json", []), ("b.json", ["--device", "cpu"])):
        result = runner.invoke(app, ["evaluate", str(run), "-n", "4", "--seed", "3",
                                     "--out", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
        data = json.loads((tmp_path / name).read_text())
        data.pop("versions")
        results.append(data)
    assert results[0] == results[1]


def test_running_out_of_gpu_memory_is_a_one_line_error_that_keeps_the_run(
        tmp_path, tiny_task_path, monkeypatch):
    import snn_icl.train.ppo as ppo

    real_update = ppo.ppo_update

    def update(state, batch, task):
        if state.iteration >= 1:  # the first iteration trains and is recorded; the second fails
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0")
        return real_update(state, batch, task)

    monkeypatch.setattr(ppo, "ppo_update", update)
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tiny_task_path), "--out", str(run)])
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: out of GPU memory (CUDA out of memory") and "smaller" in last
    assert "Traceback" not in result.output
    with (run / "metrics.csv").open() as f:
        assert [int(row["iteration"]) for row in csv.DictReader(f)] == [1]
    # any other RuntimeError is a bug and keeps its traceback
    monkeypatch.setattr(ppo, "ppo_update", lambda *a: (_ for _ in ()).throw(RuntimeError("bug")))
    result = runner.invoke(app, ["train", str(tiny_task_path), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_the_host_memory_check_counts_the_iteration_on_cpu_and_only_the_weights_on_a_gpu(
        monkeypatch):
    import snn_icl.config as config
    from snn_icl.train.run_dir import check_memory

    task = replace(load_task(TASKS / "water_maze.toml"), train={"batch_episodes": 16384})
    assert config.training_bytes(task) > 2**36 > 2**20 > config.weight_bytes(task) > 0
    monkeypatch.setattr(config, "available_bytes", lambda: 2**30)
    with pytest.raises(ConfigError, match="a training iteration needs about .* GiB"):
        check_memory(task)
    check_memory(replace(task, train={"device": "cuda"}))  # the batch lives on the card
    monkeypatch.setattr(config, "available_bytes", lambda: 2**10)
    with pytest.raises(ConfigError, match="the network's weights"):
        check_memory(replace(task, train={"device": "cuda"}))
