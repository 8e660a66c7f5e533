"""The LSNN module: API contract, state continuation, weights, dtypes, the fast BPTT against
per-step autograd, and the norse backend against norse itself."""

import os
import math

import pytest
import torch

from tests.lsnn_factory import lsnn

from snn_icl.models.lsnn import LSNN, LSNNTrace
from snn_icl.neurons import ALIFState, kernels_available

torch.set_num_threads(1)
F64 = torch.float64


def _select(name, monkeypatch):
    if name == "kernels":
        monkeypatch.delenv("SNN_ICL_NO_KERNELS", raising=False)
        monkeypatch.delenv("SNN_ICL_NO_C_KERNELS", raising=False)
        if not kernels_available():
            if os.environ.get("CI"):  # CI installs numba: the compiled path must be checked
                pytest.fail("compiled kernels unavailable in CI (numba missing?)")
            pytest.skip("no compiled kernels here (numba missing?): the fast path runs in torch ops")
    elif name == "torch":
        monkeypatch.setenv("SNN_ICL_NO_KERNELS", "1")
    return name


@pytest.fixture(params=["kernels", "torch", "autograd"])
def impl(request, monkeypatch):
    """The three implementations of the bellec dynamics: the fast path with its compiled kernels, the
    fast path in torch ops, and the per-step autograd loop. Set ``net.fast = impl != "autograd"``."""
    return _select(request.param, monkeypatch)


@pytest.fixture(params=["kernels", "torch"])
def fast_impl(request, monkeypatch):
    """The two fast-path implementations, each compared with the autograd loop."""
    return _select(request.param, monkeypatch)


def _net_and_input(seed=0, T=200, B=3, n_in=6, n_regular=10, n_adaptive=10, **kw):
    torch.manual_seed(seed)
    net = lsnn(n_in, n_regular, n_adaptive, **kw).double()
    t = torch.arange(T, dtype=F64)[:, None, None]
    x = 0.5 * torch.sin(t / 30.0 + torch.rand(1, B, n_in, dtype=F64) * 6.3)
    x = x + 0.2 * torch.randn(T, B, n_in, dtype=F64)
    return net, x


def test_api_shapes_and_init():
    torch.manual_seed(0)
    net = lsnn(66, 100, 100)
    assert net.n == 200
    assert net.w_in.shape == (66, 200) and net.w_rec.shape == (200, 200)
    assert isinstance(net.w_in, torch.nn.Parameter) and isinstance(net.w_rec, torch.nn.Parameter)
    assert torch.all(net.w_rec.diagonal() == 0)
    # N(0, 1) / sqrt(fan_in)
    assert net.w_in.std().item() == pytest.approx(1 / math.sqrt(66), rel=0.05)
    off = net.w_rec[~torch.eye(200, dtype=torch.bool)]
    assert off.std().item() == pytest.approx(1 / math.sqrt(200), rel=0.05)
    assert abs(off.mean().item()) < 0.005

    x = torch.rand(7, 4, 66)
    z, state = net(x)
    assert z.shape == (7, 4, 200) and z.dtype == torch.float32
    assert set(z.unique().tolist()) <= {0.0, 1.0}
    assert isinstance(state, tuple) and state._fields == ("v", "a", "z", "r")
    assert all(s.shape == (4, 200) for s in state)
    z2, state2, trace = net(x, state, record=True)
    assert isinstance(trace, LSNNTrace)
    assert trace.v.shape == trace.A.shape == trace.a.shape == (7, 4, 200)
    s0 = net.initial_state(4)
    assert all(torch.equal(s, torch.zeros(4, 200)) for s in s0)
    assert net.initial_state(2, dtype=F64).v.dtype == F64


def test_regular_first_then_adaptive():
    # A spike of every neuron: the threshold rises only in the adaptive block [n_regular, n).
    net = lsnn(1, 3, 2)
    with torch.no_grad():
        net.w_in.fill_(1.0)
        net.w_rec.zero_()
    x = torch.zeros(5, 1, 1)
    x[0] = 100.0
    _, _, trace = net(x, record=True)
    assert torch.all(trace.A[1:, 0, :3] == 0.01)
    assert torch.all(trace.A[1:, 0, 3:] > 0.01)


def test_chunked_state_equals_one_long_run(impl):
    net, x = _net_and_input(T=1000, B=2, n_regular=8, n_adaptive=8, fast=impl != "autograd")
    x.requires_grad_(True)
    c = torch.randn(16, dtype=F64)
    z_full, s_full, tr_full = net(x, record=True)
    ((z_full @ c).sum() + tr_full.v.pow(2).sum()).backward()
    grads_full = [net.w_in.grad.clone(), net.w_rec.grad.clone(), x.grad.clone()]
    net.zero_grad()
    x.grad = None

    state, zs, vs = None, [], []
    for x_chunk in x.split(100):
        z, state, tr = net(x_chunk, state, record=True)  # state carried with its graph
        zs.append(z)
        vs.append(tr.v)
    z_chunks, v_chunks = torch.cat(zs), torch.cat(vs)
    ((z_chunks @ c).sum() + v_chunks.pow(2).sum()).backward()

    assert z_full.sum() > 100
    assert torch.equal(z_full, z_chunks)
    torch.testing.assert_close(tr_full.v, v_chunks, rtol=1e-12, atol=1e-15)
    for a, b in zip(s_full, state):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    for g_full, g in zip(grads_full, [net.w_in.grad, net.w_rec.grad, x.grad]):
        torch.testing.assert_close(g, g_full, rtol=1e-9, atol=1e-12)


def _random_state(B, n, n_ref=2):
    """A mid-sequence state, with gradients wanted for v, a, z."""
    torch.manual_seed(5)
    return ALIFState(
        v=(torch.rand(B, n, dtype=F64) * 0.02).requires_grad_(True),
        a=(torch.rand(B, n, dtype=F64) * 0.02).requires_grad_(True),
        z=(torch.rand(B, n) < 0.3).double().requires_grad_(True),
        r=torch.randint(0, n_ref + 1, (B, n)).double(),
    )


def _run_and_grads(net, x, state, record):
    for p in net.parameters():
        p.grad = None
    x = x.detach().clone().requires_grad_(True)
    state = ALIFState(*[s.detach().clone().requires_grad_(s.requires_grad) for s in state])
    torch.manual_seed(9)
    c = torch.randn(net.n, dtype=F64)
    out = net(x, state, record=record)
    z, s_T = out[0], out[1]
    loss = (z * torch.linspace(0.0, 1.0, z.shape[0], dtype=F64)[:, None, None] @ c).sum()
    loss = loss + (s_T.v.sum() + 3.0 * s_T.a.sum() + (s_T.z @ c).sum())
    if record:
        trace = out[2]
        loss = loss + trace.v.pow(2).sum() * 10 + trace.A.sum() + trace.a.pow(2).sum()
    loss.backward()
    values = [z, *s_T] + (list(out[2]) if record else [])
    grads = [net.w_in.grad, net.w_rec.grad, x.grad, state.v.grad, state.a.grad, state.z.grad]
    return values, grads


@pytest.mark.parametrize("record", [False, True])
@pytest.mark.parametrize("n_ref", [0, 2, 3])
def test_fast_bptt_equals_autograd_loop(fast_impl, record, n_ref):
    net, x = _net_and_input(T=200, n_ref=n_ref)
    state = _random_state(3, 20, n_ref)
    net.fast = False
    v_slow, g_slow = _run_and_grads(net, x, state, record)
    net.fast = True
    v_fast, g_fast = _run_and_grads(net, x, state, record)

    z = v_slow[0]
    assert z.sum() > 100
    if n_ref > 0:
        _, _, trace = net(x, state, record=True)
        assert ((trace.v > trace.A) & (z == 0)).sum() > 20  # refractoriness exercised
    assert torch.equal(v_fast[0], z)
    for a, b in zip(v_fast[1:], v_slow[1:]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
    for a, b in zip(g_fast, g_slow):
        assert b.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
    assert torch.all(g_fast[1].diagonal() == 0)


def test_fast_path_length_one_and_float32(impl):
    torch.manual_seed(1)
    net = lsnn(4, 3, 3)
    x = torch.randn(1, 2, 4) * 5
    net.fast = False
    z_slow, s_slow = net(x)
    net.fast = impl != "autograd"
    z_fast, s_fast = net(x)
    assert torch.equal(z_slow, z_fast)
    for a, b in zip(s_slow, s_fast):
        torch.testing.assert_close(a, b)


def test_fast_path_odd_states_and_lengths(fast_impl):
    # r_0 beyond n_ref (a state from elsewhere), n_ref longer than the sequence, T not a
    # multiple of the block size, and inputs that do not require gradients.
    for T, n_ref, r_max in ((7, 10, 12), (37, 1, 4), (1, 2, 2)):
        net, x = _net_and_input(T=T, n_ref=n_ref)
        x = x * 5
        state = _random_state(3, 20, r_max)
        results = []
        for fast in (False, True):
            net.fast = fast
            net.zero_grad()
            s0 = ALIFState(*[s.detach().clone().requires_grad_(s.requires_grad) for s in state])
            z, s_T = net(x, s0)
            ((z * torch.arange(20, dtype=F64)).sum() + s_T.v.sum()).backward()
            results.append([z, *s_T, net.w_rec.grad.clone(), net.w_in.grad.clone(), s0.v.grad, s0.z.grad])
        assert results[0][0].sum() > 0
        assert torch.equal(results[0][0], results[1][0])
        for a, b in zip(results[1], results[0]):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


def test_kernels_used_when_available(monkeypatch):
    monkeypatch.delenv("SNN_ICL_NO_KERNELS", raising=False)
    monkeypatch.delenv("SNN_ICL_NO_C_KERNELS", raising=False)
    net, x = _net_and_input(T=5)
    z, _ = net(x)
    name = type(z.grad_fn).__name__
    assert ("ALIFSequenceNumba" in name) == kernels_available(), name
    for var in ("SNN_ICL_NO_KERNELS", "SNN_ICL_NO_C_KERNELS"):  # the new name and the old one
        monkeypatch.setenv(var, "1")
        z, _ = net(x)
        assert type(z.grad_fn).__name__ == "ALIFSequenceBackward"
        monkeypatch.delenv(var)


def test_zero_diagonal_stays_zero_under_adam():
    net, x = _net_and_input(T=100)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        z, _, trace = net(x, record=True)
        (z.mean() + trace.v.pow(2).mean() - z[:, :, 0].mean()).backward()
        assert torch.all(net.w_rec.grad.diagonal() == 0)
        assert net.w_rec.grad.abs().sum() > 0
        opt.step()
    assert torch.all(net.w_rec.diagonal() == 0)
    assert not torch.equal(net.w_rec, _net_and_input(T=100)[0].w_rec)  # it did train


def test_float64_and_float32():
    torch.manual_seed(0)
    net32 = lsnn(5, 4, 4)
    net64 = lsnn(5, 4, 4)
    net64.load_state_dict(net32.state_dict())
    net64.double()
    x = torch.rand(50, 2, 5)
    z32, s32, tr32 = net32(x, record=True)
    z64, s64, tr64 = net64(x.double(), record=True)
    assert z32.dtype == torch.float32 and z64.dtype == F64
    assert s64.v.dtype == F64 and tr64.A.dtype == F64 and net64.w_rec.dtype == F64
    # the float64 run really computes in float64: its thresholds are not float32 numbers cast up
    assert (tr64.A != tr64.A.float().double()).any()
    # enough spikes that agreement means something (an all-silent network agrees everywhere)
    assert z64.sum() >= 0.05 * z64.numel() and z32.sum() >= 0.05 * z32.numel()
    # float32 follows float64 until rounding decides a spike differently: compare the spikes
    # where either run spikes (not the agreeing zeros), and the traces up to the first difference
    either = (z32 > 0) | (z64.float() > 0)
    assert (z32 == z64.float())[either].float().mean() > 0.9
    differ = (z32 != z64.float()).flatten(1).any(1)
    t1 = int(differ.float().argmax()) if differ.any() else len(z32)
    assert t1 >= 10
    torch.testing.assert_close(tr32.A[:t1].double(), tr64.A[:t1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tr32.v[:t1].double(), tr64.v[:t1], rtol=1e-4, atol=1e-5)
    z64.sum().backward()
    assert net64.w_in.grad.dtype == F64


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n_in=0), "n_in"),
        (dict(n_regular=-1), "n_regular"),
        (dict(n_adaptive=-2), "n_adaptive"),
        (dict(n_regular=0, n_adaptive=0), "n_regular"),
        (dict(tau_m=0.0), "tau_m"),
        (dict(tau_m=-5.0), "tau_m"),
        (dict(tau_a=0.0), "tau_a"),
        (dict(v_th=0.0), "v_th"),
        (dict(v_th=float("nan")), "v_th"),
        (dict(n_ref=-1), "n_ref"),
        (dict(n_ref=1.5), "n_ref"),
        (dict(gamma=0.0), "gamma"),
        (dict(dt=0.0), "dt"),
        (dict(dt=-1.0), "dt"),
        (dict(backend="brian2"), "backend"),
        (dict(beta=-0.1), "beta"),
        (dict(n_in=2.5), "n_in"),
    ],
)
def test_bad_constructor_arguments_raise_value_error(kwargs, name):
    args = dict(n_in=3, n_regular=2, n_adaptive=2)
    args.update(kwargs)
    n_in, n_regular, n_adaptive = args.pop("n_in"), args.pop("n_regular"), args.pop("n_adaptive")
    with pytest.raises(ValueError, match=name) as info:
        lsnn(n_in, n_regular, n_adaptive, **args)
    bad = kwargs[name] if name in kwargs else None
    if bad is not None:
        assert repr(bad) in str(info.value) or str(bad) in str(info.value)


def test_bad_input_shape_raises():
    net = lsnn(3, 2, 2)
    with pytest.raises(ValueError, match="n_in=3"):
        net(torch.zeros(5, 2, 4))
    with pytest.raises(ValueError, match="shape"):
        net(torch.zeros(5, 3))


# --------------------------------------------------------------------------------------------
# norse backend
# --------------------------------------------------------------------------------------------
def _norse_setup(dtype=torch.float32):
    torch.manual_seed(4)
    net = lsnn(6, 8, 8, backend="norse", tau_m=10.0, tau_a=200.0, v_th=0.2, beta=0.3).to(dtype)
    x = (torch.rand(150, 3, 6) < 0.2).to(dtype) * 4.0
    return net, x


def _norse_weights(net):
    # norse computes i += x @ W.T: our [n_in, n] / [n, n] (row = presynaptic) transposed.
    return (
        torch.nn.Parameter(net.w_in.detach().t().clone()),
        torch.nn.Parameter(net.w_rec_masked().detach().t().clone()),
    )


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_norse_backend_matches_norse_cell(dtype):
    from norse.torch import LSNNRecurrentCell

    net, x = _norse_setup(dtype)
    w_in, w_rec = _norse_weights(net)
    cell = LSNNRecurrentCell(6, 16, p=net.norse_parameters(dtype), dt=1e-3, autapses=False,
                             input_weights=w_in, recurrent_weights=w_rec)
    state, zs, vs = None, [], []
    for x_t in x:
        z, state = cell(x_t, state)
        zs.append(z)
        vs.append(state.v)
    z_ref, v_ref = torch.stack(zs), torch.stack(vs)

    z, s, trace = net(x, record=True)
    assert z_ref.sum() > 50 and (z_ref.sum(dim=(0, 1)) > 0).sum() > 4
    assert (trace.A[..., 8:] > 0.4).any()  # threshold adaptation in the adaptive block
    assert torch.all(trace.A[..., :8] == trace.A[0, 0, 0])  # none in the regular block
    assert torch.equal(z, z_ref)
    torch.testing.assert_close(trace.v, v_ref, rtol=0, atol=0)
    torch.testing.assert_close(s.b, state.b, rtol=0, atol=0)
    torch.testing.assert_close(s.i, state.i, rtol=0, atol=0)


def test_norse_backend_matches_norse_recurrent_and_chunks():
    from norse.torch import LSNNRecurrent

    net, x = _norse_setup()
    w_in, w_rec = _norse_weights(net)
    layer = LSNNRecurrent(6, 16, p=net.norse_parameters(), dt=1e-3, autapses=False,
                          input_weights=w_in, recurrent_weights=w_rec)
    z_ref, s_ref = layer(x)
    z, s = net(x)
    assert torch.equal(z, z_ref)
    torch.testing.assert_close(s.v, s_ref.v, rtol=0, atol=0)
    # state carried across chunks, norse-style
    z1, s1 = net(x[:70])
    z2, s2 = net(x[70:], s1)
    assert torch.equal(torch.cat([z1, z2]), z)
    # gradients flow to both weight matrices, none to the missing autapses
    z.sum().backward()
    assert net.w_in.grad.abs().sum() > 0 and net.w_rec.grad.abs().sum() > 0
    assert torch.all(net.w_rec.grad.diagonal() == 0)


def test_norse_parameter_mapping():
    net = lsnn(2, 1, 2, backend="norse", tau_m=20.0, tau_a=1200.0, v_th=0.01, beta=1.7, dt=1.0)
    p = net.norse_parameters()
    assert p.tau_mem_inv.item() == pytest.approx(50.0)
    assert p.tau_adapt_inv.item() == pytest.approx(1000.0 / 1200.0)
    assert p.tau_syn_inv.item() == pytest.approx(1000.0)  # tau_syn = dt: no synaptic filter
    assert p.v_th.item() == pytest.approx(0.01)
    assert p.beta.tolist() == pytest.approx([0.0, 1.7, 1.7])
    s = net.initial_state(3)
    assert torch.all(s.b == 0.01) and torch.all(s.v == 0)
    # The dynamics are not the bellec ones.
    torch.manual_seed(0)
    bellec = lsnn(2, 1, 2)
    bellec.load_state_dict(net.state_dict())
    x = torch.rand(100, 2, 2) * 0.5
    _, _, tr_n = net(x, record=True)
    _, _, tr_b = bellec(x, record=True)
    assert not torch.allclose(tr_n.v, tr_b.v)
