"""Memory analyses (snn_icl.analysis) on planted signals and on the tiny task with untrained agents."""

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from snn_icl.analysis import attention, decoding, place_fields
from snn_icl.analysis.ablations import heading, partners, reset_hook, swap_hook
from snn_icl.analysis.states import Capture, cache_capacity, chain, install_cache, run_batches
from snn_icl.config import make_agent, replace
from snn_icl.models import frozen


SMALL = {"lsnn": {}, "lstm": {"hidden_size": 16},
         "transformer": {"n_layer": 2, "n_head": 2, "n_embd": 16, "context_window": 64}}


def _task(tiny_task, kind):
    if kind == tiny_task.agent.kind:
        return tiny_task
    return replace(tiny_task, agent={"kind": kind, **SMALL[kind]})


def _agent(task):
    return frozen(make_agent(task))


class Probe:
    """Hook keeping, per step, the new-trial mask and the given components after earlier hooks."""

    def __init__(self, agent, names):
        self.agent, self.names, self.steps = agent, names, []

    def __call__(self, state, info):
        self.steps.append((info["new_trial"].clone(), info["trial"].clone(),
                           {n: self.agent.get_component(state, n).clone() for n in self.names}))
        return state


# --- decoding -------------------------------------------------------------------------------

def test_decoder_recovers_planted_signal_and_gives_chance_on_noise():
    g = torch.Generator().manual_seed(0)
    T, B, d = 12, 40, 8
    target = torch.rand(B, 2, generator=g) * 1.6 - 0.8
    mix = torch.randn(2, d, generator=g)
    labels = decoding.bin_labels(torch.arange(T)[:, None].expand(T, B).double(),
                                 torch.tensor([0.0, 6.0, 12.0]))
    signal = (target @ mix)[None].expand(T, B, d) + 0.05 * torch.randn(T, B, d, generator=g)
    r = decoding.decode(signal, target, labels, 2, generator=g)
    assert (r.error < 0.05).all() and (r.chance_mean > 0.4).all()
    assert (r.n_episodes == B).all() and (r.n_samples == 6 * B).all()
    noise = decoding.decode(torch.randn(T, B, d, generator=g), target, labels, 2, generator=g)
    assert (noise.error > 0.8 * noise.chance_mean).all()
    assert (r.chance_shuffle > 0.8 * r.chance_mean).all()  # shuffled labels: chance too


def test_decoder_ignores_silent_features_and_survives_a_lapack_failure(monkeypatch):
    """Features constant over a bin (silent neurons) are dropped without changing the decoding
    (at any constant), and when torch's eigh does not converge (CPU-dependent, with fewer samples
    than features) the decoding is the same from numpy's."""
    g = torch.Generator().manual_seed(1)
    T, B, d = 4, 24, 30  # 48 samples per bin, 30 + 60 features
    target = torch.rand(B, 2, generator=g) * 1.6 - 0.8
    signal = (target @ torch.randn(2, d, generator=g))[None].expand(T, B, d) \
        + 0.3 * torch.randn(T, B, d, generator=g)
    labels = decoding.bin_labels(torch.arange(T)[:, None].expand(T, B).double(),
                                 torch.tensor([0.0, 2.0, 4.0]))
    silent = torch.cat([signal, torch.zeros(T, B, 60)], -1)
    runs = [decoding.decode(x, target, labels, 2, generator=torch.Generator().manual_seed(0))
            for x in (silent, silent + torch.cat([torch.zeros(d), torch.ones(60)]))]

    def eigh_that_fails(c):
        raise torch.linalg.LinAlgError("linalg.eigh: failed to converge")

    monkeypatch.setattr(torch.linalg, "eigh", eigh_that_fails)
    runs.append(decoding.decode(silent, target, labels, 2, generator=torch.Generator().manual_seed(0)))
    for r in runs[1:]:
        torch.testing.assert_close(r.error, runs[0].error)
        torch.testing.assert_close(r.chance_shuffle, runs[0].chance_shuffle)
    assert (runs[0].error < 0.8 * runs[0].chance_mean).all()


def test_time_since_first_visit_and_bad_input():
    onp = torch.tensor([[0, 0], [1, 0], [0, 0], [1, 0]], dtype=torch.bool)
    since = decoding.time_since_first_visit(onp)
    assert since[:, 0].tolist() == [-1, 0, 1, 2]
    assert (since[:, 1] < -4).all()  # never on the platform
    with pytest.raises(ValueError, match="features must be"):
        decoding.decode(torch.zeros(3, 4), torch.zeros(4, 2), torch.zeros(3, 4, dtype=torch.long), 1)


# --- ablations ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, names", [("lsnn", ("a",)), ("lstm", ("c",)),
                                         ("transformer", ("kv",))])
def test_swap_gives_each_episode_its_partners_state(tiny_task, kind, names):
    task = _task(tiny_task, kind)
    agent = _agent(task)
    B = 6
    donors = Capture(agent, names, trial=1, capacity=cache_capacity(agent, task))
    run_batches(agent, task, B, 3, hook_for=lambda i, s: donors)
    assert donors.captured.all(), "every tiny episode reaches trial 2"
    partner = partners(B)
    seen = []

    def check(state, info):
        rows = (info["new_trial"] & (info["trial"] == 1)).nonzero().squeeze(1)
        if len(rows):
            seen.append(rows)
            for i in rows.tolist():
                j = int(partner[i])
                if kind == "transformer":
                    n = int(donors.length[j])
                    assert int(state.start[i]) == state.t - n
                    assert torch.equal(state.k[:, i, :, state.k.shape[3] - n:],
                                       donors.k[:, j, :, donors.k.shape[3] - n:])
                    assert torch.equal(state.v[:, i, :, state.v.shape[3] - n:],
                                       donors.v[:, j, :, donors.v.shape[3] - n:])
                else:
            
                    assert torch.equal(agent.get_component(state, names[0])[i], donors.values[names[0]][j])
                    assert not torch.equal(donors.values[names[0]][i], donors.values[names[0]][j])
        return state

    swap = swap_hook(agent, names, donors, partner)
    run_batches(agent, task, B, 3, hook_for=lambda i, s: chain(swap, check))
    assert sorted(torch.cat(seen).tolist()) == list(range(B))
    assert partner.tolist() == [1, 0, 3, 2, 5, 4] and partners(3).tolist() == [1, 0, 2]


def test_cache_install_keeps_others_and_self_install_is_a_noop(tiny_task):
    task = _task(tiny_task, "transformer")
    agent = _agent(task)
    obs = torch.rand(5, 3, task.env.obs_dim, generator=torch.Generator().manual_seed(1))
    state = agent.initial_state(3)
    for t in range(4):
        state = agent.act(obs[t], state).state
    # episode 0 gets a 2-token memory (its own last two tokens); 1 gets its own full cache back
    k, v = state.k[:, [0, 1]], state.v[:, [0, 1]]
    new = install_cache(state, torch.tensor([0, 1]), k, v, torch.tensor([2, 4]))
    ref = agent.act(obs[4], state).policy.mean
    out = agent.act(obs[4], new).policy.mean
    assert torch.allclose(out[1:], ref[1:], atol=1e-6)  # self-install and untouched: no change
    short = agent.act(obs[4], state._replace(start=torch.tensor([2, 0, 0]))).policy.mean
    assert torch.allclose(out[0], short[0], atol=1e-6)  # the same as forgetting steps 0-1


def test_reset_a_zeroes_it_at_trial_starts_only(tiny_task):
    task = _task(tiny_task, "lsnn")
    agent = _agent(task)
    intact, reset = Probe(agent, ("a", "v")), Probe(agent, ("a", "v"))
    run_batches(agent, task, 4, 2, hook_for=lambda i, s: intact)
    run_batches(agent, task, 4, 2, hook_for=lambda i, s: chain(reset_hook(agent, ("a",)), reset))
    starts = torch.stack([s[0] for s in reset.steps])  # [T, B]
    a = torch.stack([s[2]["a"] for s in reset.steps])
    a_intact = torch.stack([s[2]["a"] for s in intact.steps])
    assert starts.any() and (a[starts] == 0).all()
    assert (a[~starts].abs().sum(-1) > 0).any(), "a is not zero between trial starts"
    t0 = int(starts.any(1).nonzero()[0])  # the first reset: before it both runs are identical
    assert torch.equal(a[:t0], a_intact[:t0])
    assert torch.equal(a[t0][~starts[t0]], a_intact[t0][~starts[t0]])
    assert torch.equal(reset.steps[t0][2]["v"], intact.steps[t0][2]["v"])  # v is kept


def test_heading_towards_own_and_other_platform():
    trial = torch.tensor([[0, 0], [1, 1], [1, 1], [1, 1]])
    position = torch.tensor([[[0.0, 0.0]] * 2, [[1.0, 0.0]] * 2, [[0.8, 0.0]] * 2,
                             [[0.6, 0.0]] * 2])
    own = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    other = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    h = heading(position, trial, own, other, n_steps=2)
    assert torch.allclose(h["cos_own"], torch.tensor([1.0, -0.0]), atol=1e-6)
    assert h["closer_to_other"].tolist() == [False, True] and h["valid"].all()


# --- place fields ---------------------------------------------------------------------------

def test_skaggs_information_uniform_vs_planted_place_cell():
    g = torch.Generator().manual_seed(0)
    T, B = 100, 20
    r = torch.sqrt(torch.rand(T, B, generator=g)) * 0.95
    phi = torch.rand(T, B, generator=g) * 6.2832
    position = torch.stack([r * torch.cos(phi), r * torch.sin(phi)], -1)
    centre = torch.tensor([0.4, -0.3])
    place = torch.exp(-((position - centre) ** 2).sum(-1) / (2 * 0.1 ** 2))
    activity = torch.stack([torch.ones(T, B), place], -1)
    res = place_fields.spatial_information(activity, position, 1.0, n_shuffles=20, generator=g)
    assert abs(float(res["info"][0])) < 1e-9  # uniform rate: no information
    assert float(res["info"][1]) > 2.0 and res["info"][1] > res["threshold"][1]
    assert not res["info"][0] > res["threshold"][0]
    counts = place_fields.place_field_counts(res, 1e-3)
    assert counts["above_shuffle"] == 1 and counts["place_like"] == 1
    assert res["field_fraction"][1] < 0.2 and res["stability"][1] > 0.9


# --- attention ------------------------------------------------------------------------------

def test_attention_share_on_constructed_example():
    trial = torch.tensor([[0], [0], [1], [1]])  # [T, B]
    on_platform = torch.tensor([[0], [1], [0], [0]], dtype=torch.bool)
    mask = attention.platform_key_mask(trial, on_platform)
    assert mask[0].nonzero().tolist() == [[2, 1], [3, 1]]  # queries 2, 3 see platform key 1
    visible = torch.ones(4, 4, dtype=torch.bool).tril()[None]
    uniform = visible.double() / visible.sum(-1, keepdim=True)
    obs, exp = attention.retrieval_share(uniform[:, None], mask, visible)
    assert torch.allclose(obs[0, 0], exp[0])
    assert torch.allclose(exp[0], torch.tensor([0, 0, 1 / 3, 1 / 4]).double())
    focused = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    focused[0, 0, :, 0] = 1.0
    focused[0, 0, 2:, 0], focused[0, 0, 2:, 1] = 0.0, 1.0  # later trial: all on the platform key
    obs, _ = attention.retrieval_share(focused, mask, visible)
    assert obs[0, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
    queries = torch.tensor([[False, False, True, True]])
    shares = {"observed": obs[None], "expected": exp, "queries": queries}
    s = attention.retrieval_summary(shares, trial, max_lag=2)
    assert s["queries"] == 2 and s["layers"][0]["share"] == 1.0
    assert s["layers"][0]["ratio"] == pytest.approx(1 / ((1 / 3 + 1 / 4) / 2))


# --- CLI ------------------------------------------------------------------------------------

def test_analyze_cli_on_tiny_checkpoints(tmp_path, tiny_task):
    from snn_icl.storage.checkpoint import save_checkpoint
    from snn_icl.cli import app

    paths = []
    for kind in ("lsnn", "transformer"):
        task = _task(tiny_task, kind)
        paths.append(str(save_checkpoint(tmp_path / kind / "checkpoint.safetensors", task,
                                         make_agent(task))))
    out = tmp_path / "analysis"
    result = CliRunner().invoke(app, ["analyze", *paths, "--out", str(out), "--episodes", "8",
                                      "--seed", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "analysis.json").read_text())
    assert set(data["agents"]) == {"lsnn", "transformer"}
    lsnn, tr = data["agents"]["lsnn"], data["agents"]["transformer"]
    assert {"a (adaptive)", "v", "zeta", "input"} <= set(lsnn["decoding"]["variables"])
    assert {"intact", "reset_a", "swap_a", "beta_zero"} <= set(lsnn["ablations"])
    assert "zone_first_episodes" in lsnn["ablations"]["swap_a"]
    assert "reaching first the partner's platform" in result.output
    assert "swap_kv" in tr["ablations"] and tr["attention_retrieval"]["layers"]
    assert lsnn["place_fields"]["units"] == 24
    for name in data["figures"]:
        assert (out / name).stat().st_size > 0
    assert "decoding.png" in data["figures"] and "ablations.png" in data["figures"]
    bad = CliRunner().invoke(app, ["analyze", str(tmp_path / "nowhere"), "--out", str(out)])
    assert bad.exit_code == 2 and "no checkpoint" in bad.output
