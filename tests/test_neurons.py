"""The ALIF numerics against the equations of docs/design.md#the-neuron-model-the-contract-a-hidden-reference-checks-it.

A reference written here from the equations (plain loop, float64, its own surrogate) is compared
with the LSNN (bellec backend, both implementations) for spikes, voltages, thresholds and
gradients; plus analytic checks (sub-threshold decay, refractoriness, threshold jump).
"""

import math

import pytest
import torch

from tests.lsnn_factory import lsnn

from snn_icl.models.lsnn import LSNN
from snn_icl.neurons import ALIFParams, ALIFState, alif_step, kernels_available, initial_alif_state

torch.set_num_threads(1)


@pytest.fixture(params=["kernels", "torch", "autograd"])
def impl(request, monkeypatch):
    """The three implementations of the bellec dynamics: the fast path with its compiled kernels, the
    fast path in torch ops, and the per-step autograd loop. Set ``net.fast = impl != "autograd"``."""
    if request.param == "kernels":
        monkeypatch.delenv("SNN_ICL_NO_KERNELS", raising=False)
        monkeypatch.delenv("SNN_ICL_NO_C_KERNELS", raising=False)
        if not kernels_available():
            pytest.skip("no compiled kernels (numba missing?): the fast path runs in torch ops")
    elif request.param == "torch":
        monkeypatch.setenv("SNN_ICL_NO_KERNELS", "1")
    return request.param


# --------------------------------------------------------------------------------------------
# Reference: the equations, written once more, as directly as possible.
# --------------------------------------------------------------------------------------------
class RefSpike(torch.autograd.Function):
    """H(u) = [u > 0]; dH/du := gamma * max(0, 1 - |u|)."""

    @staticmethod
    def forward(ctx, u, gamma):
        ctx.save_for_backward(u)
        ctx.gamma = gamma
        return torch.where(u > 0, torch.ones_like(u), torch.zeros_like(u))

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * ctx.gamma * torch.relu(1 - u.abs()), None


def reference_lsnn(x, w_in, w_rec, n_regular, n_adaptive, *, tau_m=20.0, tau_a=1200.0,
                   v_th=0.01, beta=1.7, n_ref=2, gamma=0.3, dt=1.0):
    """x [T, B, n_in] -> z, v, A, a (each [T, B, n]); all state zero at t = 0."""
    T, B, _ = x.shape
    n = n_regular + n_adaptive
    alpha = math.exp(-dt / tau_m)
    rho = math.exp(-dt / tau_a)
    b = torch.tensor([0.0] * n_regular + [beta] * n_adaptive, dtype=x.dtype)
    w = w_rec * (1 - torch.eye(n, dtype=x.dtype))  # no autapses
    v = torch.zeros(B, n, dtype=x.dtype)
    a = torch.zeros(B, n, dtype=x.dtype)
    z = torch.zeros(B, n, dtype=x.dtype)
    r = torch.zeros(B, n, dtype=torch.long)
    zs, vs, As, as_ = [], [], [], []
    for t in range(T):
        a = rho * a + (1 - rho) * z
        A = v_th + b * a
        v = alpha * v + (1 - alpha) * (x[t] @ w_in + z @ w) - A * z
        z_new = RefSpike.apply((v - A) / A, gamma)
        z_new = torch.where(r == 0, z_new, torch.zeros_like(z_new))
        r = torch.where(z_new > 0, torch.full_like(r, n_ref), torch.clamp(r - 1, min=0))
        z = z_new
        zs.append(z), vs.append(v), As.append(A), as_.append(a)
    return torch.stack(zs), torch.stack(vs), torch.stack(As), torch.stack(as_)


def _active_setup(seed=0, T=300, B=3, n_in=8, n_regular=12, n_adaptive=12, scale=0.5):
    """Inputs and a net in float64 with plenty of spikes, blocked spikes and sub-threshold time."""
    torch.manual_seed(seed)
    net = lsnn(n_in, n_regular, n_adaptive).double()
    # Slow input modulation so that some neurons are driven hard (refractoriness matters) and
    # others hover near threshold (non-zero pseudo-derivatives).
    t = torch.arange(T, dtype=torch.float64)[:, None, None]
    phase = torch.rand(1, B, n_in, dtype=torch.float64) * 6.3
    x = scale * (torch.sin(t / 40.0 + phase) + 0.3 * torch.randn(T, B, n_in, dtype=torch.float64))
    return net, x


def test_matches_reference_forward_and_gradients(impl):
    net, x = _active_setup()
    net.fast = impl != "autograd"
    x_ours = x.clone().requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)
    w_in_ref = net.w_in.detach().clone().requires_grad_(True)
    w_rec_ref = net.w_rec.detach().clone().requires_grad_(True)

    z, state, trace = net(x_ours, record=True)
    z_r, v_r, A_r, a_r = reference_lsnn(x_ref, w_in_ref, w_rec_ref, 12, 12)

    # The run exercises what it should: spikes, refractory blocks, adaptation, near-threshold time.
    blocked = ((v_r > A_r) & (z_r == 0)).sum().item()
    near = ((v_r - A_r).abs() < A_r).double().mean().item()
    assert z_r.sum() > 200 and blocked > 50 and near > 0.05
    assert (A_r[..., 12:] > 0.0101).any()

    assert torch.equal(z, z_r)
    torch.testing.assert_close(trace.v, v_r, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(trace.A, A_r, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(trace.a, a_r, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(state.v, v_r[-1], rtol=1e-9, atol=1e-12)

    # A scalar loss through the spikes (filtered, like the readout) and the voltages.
    torch.manual_seed(1)
    c = torch.randn(24, dtype=torch.float64)
    kappa = math.exp(-1 / 20)

    def loss_of(z_, v_):
        zeta = torch.zeros_like(z_[0])
        total = 0.0
        for z_t in z_.unbind(0):
            zeta = kappa * zeta + (1 - kappa) * z_t
            total = total + (zeta @ c).pow(2).sum()
        return total + 0.1 * v_.pow(2).sum()

    loss_of(z, trace.v).backward()
    loss_of(z_r, v_r).backward()

    assert net.w_rec.grad.abs().sum() > 0 and x_ours.grad.abs().sum() > 0
    torch.testing.assert_close(net.w_in.grad, w_in_ref.grad, rtol=1e-8, atol=1e-12)
    off = 1 - torch.eye(24, dtype=torch.float64)
    torch.testing.assert_close(net.w_rec.grad, w_rec_ref.grad * off, rtol=1e-8, atol=1e-12)
    assert torch.all(net.w_rec.grad.diagonal() == 0)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-8, atol=1e-12)


def test_alif_step_matches_reference_one_step():
    torch.manual_seed(3)
    p = ALIFParams(tau_m_ms=15.0, tau_a_ms=300.0, v_th=0.02, n_ref=1, gamma=0.5)
    B, n = 4, 6
    beta = torch.tensor([0.0, 0.0, 0.0, 2.0, 2.0, 2.0], dtype=torch.float64)
    w = torch.randn(n, n, dtype=torch.float64).fill_diagonal_(0.0)
    i_in = torch.randn(B, n, dtype=torch.float64) * 0.5
    s = ALIFState(
        v=torch.rand(B, n, dtype=torch.float64) * 0.03,
        a=torch.rand(B, n, dtype=torch.float64) * 0.01,
        z=(torch.rand(B, n) < 0.5).double(),
        r=torch.randint(0, 2, (B, n)).double(),
    )
    z, s1, A = alif_step(i_in, s, w, beta, p)
    alpha, rho = math.exp(-1 / 15), math.exp(-1 / 300)
    a = rho * s.a + (1 - rho) * s.z
    A_ref = 0.02 + beta * a
    v = alpha * s.v + (1 - alpha) * (i_in + s.z @ w) - A_ref * s.z
    z_ref = ((v - A_ref) / A_ref > 0).double() * (s.r == 0).double()
    torch.testing.assert_close(A, A_ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(s1.v, v, rtol=1e-12, atol=1e-15)
    assert torch.equal(z, z_ref) and torch.equal(s1.z, z_ref)
    assert torch.equal(s1.r, torch.where(z_ref > 0, 1.0, torch.clamp(s.r - 1, min=0)).double())


def test_params_derived_and_units():
    p = ALIFParams()
    assert (p.tau_m_ms, p.tau_a_ms, p.v_th, p.beta, p.n_ref, p.gamma, p.dt_ms) == (
        20.0, 1200.0, 0.01, 1.7, 2, 0.3, 1.0
    )
    assert p.alpha == pytest.approx(math.exp(-1 / 20), rel=1e-15)
    assert p.rho == pytest.approx(math.exp(-1 / 1200), rel=1e-15)
    assert ALIFParams(dt_ms=0.5, tau_m_ms=10.0).alpha == pytest.approx(math.exp(-0.05))
    with pytest.raises(ValueError, match="tau_m_ms"):
        ALIFParams(tau_m_ms=0.0)
    with pytest.raises(ValueError, match="n_ref"):
        ALIFParams(n_ref=1.5)


def test_subthreshold_decay_is_alpha_per_step(impl):
    # One input pulse at t = 1, then nothing: v_1 = (1 - alpha) x_1 W_in, v_t = alpha^(t-1) v_1.
    net = lsnn(3, 2, 2, tau_m=25.0, fast=impl != "autograd").double()
    with torch.no_grad():
        net.w_in.copy_(torch.tensor([[0.1, 0.05, 0.02, 0.08]] * 3, dtype=torch.float64))
    x = torch.zeros(50, 1, 3, dtype=torch.float64)
    x[0] = 0.5
    z, _, trace = net(x, record=True)
    alpha = math.exp(-1 / 25)
    v1 = (1 - alpha) * (0.5 * 3 * torch.tensor([0.1, 0.05, 0.02, 0.08], dtype=torch.float64))
    assert z.sum() == 0 and (v1 < 0.01).all()  # sub-threshold throughout
    expected = v1 * alpha ** torch.arange(50, dtype=torch.float64)[:, None, None]
    torch.testing.assert_close(trace.v, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(trace.v[1:] / trace.v[:-1], torch.full((49, 1, 4), alpha, dtype=torch.float64))
    assert torch.all(trace.A == 0.01)  # no spikes: threshold stays at v_th


@pytest.mark.parametrize("n_ref", [0, 1, 2, 5])
def test_refractory_period_blocks_spikes(impl, n_ref):
    # Huge constant input: every neuron fires as often as refractoriness allows, i.e. every
    # n_ref + 1 steps, starting at t = 1 (beta = 0 so the threshold does not grow).
    net = lsnn(2, 3, 0, n_ref=n_ref, fast=impl != "autograd").double()
    with torch.no_grad():
        net.w_in.fill_(10.0)
        net.w_rec.zero_()
    x = torch.full((40, 2, 2), 100.0, dtype=torch.float64)
    z, state = net(x)
    expected = torch.zeros(40, dtype=torch.float64)
    expected[:: n_ref + 1] = 1.0
    assert torch.equal(z, expected[:, None, None].expand(40, 2, 3))
    # r after the last step: n_ref if the neuron spiked at T, else counting down.
    last_spike = 39 - (39 % (n_ref + 1))
    assert torch.all(state.r == max(n_ref - (39 - last_spike), 0))


def test_refractory_neuron_has_zero_gradient(impl):
    # A spike blocked by refractoriness must not pass gradient, although v is near threshold.
    net, x = _active_setup(seed=2)
    net.fast = False
    x = x.requires_grad_(True)
    z, _, trace = net(x, record=True)
    z.sum().backward()
    g_fast = x.grad.clone()
    net.fast = impl != "autograd"
    x.grad = None
    z2, _ = net(x)
    z2.sum().backward()
    torch.testing.assert_close(x.grad, g_fast, rtol=1e-9, atol=1e-13)
    # Refractory steps: z == 0 although the neuron was above threshold.
    blocked = (trace.v > trace.A) & (z == 0)
    assert blocked.any()


def test_adaptive_threshold_jump_per_spike():
    # One spike of an adaptive neuron at t = 1 raises a by (1 - rho) at t = 2, so A jumps by
    # beta (1 - rho); afterwards a decays by rho per step. Regular neurons keep A = v_th.
    net = lsnn(1, 1, 1, beta=2.0, tau_a=100.0).double()
    with torch.no_grad():
        net.w_in.fill_(1.0)
        net.w_rec.zero_()
    alpha = math.exp(-1 / 20)
    x = torch.zeros(20, 1, 1, dtype=torch.float64)
    x[0] = 0.015 / (1 - alpha)  # v_1 = 0.015: one spike, then sub-threshold
    z, _, trace = net(x, record=True)
    assert z[0].tolist() == [[1.0, 1.0]] and z[1:].sum() == 0
    rho = math.exp(-1 / 100)
    a = (1 - rho) * rho ** torch.arange(19, dtype=torch.float64)
    torch.testing.assert_close(trace.A[1:, 0, 1], 0.01 + 2.0 * a, rtol=1e-12, atol=0)
    assert torch.all(trace.A[:, 0, 0] == 0.01)
    # Reset by subtraction of the threshold: v_2 = alpha v_1 - A_2 z_1.
    v1 = trace.v[0, 0]
    torch.testing.assert_close(trace.v[1, 0], alpha * v1 - trace.A[1, 0], rtol=1e-12, atol=1e-15)


def test_initial_state_is_zero():
    s = initial_alif_state(2, 5, dtype=torch.float64)
    assert all(torch.equal(t, torch.zeros(2, 5, dtype=torch.float64)) for t in s)
    assert s._fields == ("v", "a", "z", "r")
