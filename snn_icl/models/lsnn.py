r"""LSNN: one recurrent population of regular and adaptive LIF neurons (Bellec et al. 2018).

    from snn_icl.models.lsnn import LSNN
    net = LSNN(n_in, n_regular, n_adaptive, ALIFParams())  # .w_in [n_in, n], .w_rec [n, n]
    z, state = net(x)                               # x [T, B, n_in] -> z [T, B, n]
    z, state, trace = net(x, state, record=True)    # trace.v, trace.A, trace.a: [T, B, n]

The neurons are the ALIF neurons of :mod:`snn_icl.neurons` (equations there): ``n_regular``
neurons with ``beta = 0`` first, then ``n_adaptive`` with ``beta = beta``. ``state`` carries the
network across calls: running T = 1000 steps at once equals running 10 chunks of 100 with the
state passed back in, values and gradients alike.

Two backends:

``backend="bellec"`` (default)
    The dynamics of :mod:`snn_icl.neurons` (the project's contract). ``fast=True`` (default) runs
    the whole sequence as one autograd Function with a hand-written BPTT
    (:func:`snn_icl.neurons.alif_sequence`; on CPU in float32/float64 with the numba kernels of
    :mod:`snn_icl.neurons.kernels`, else in torch ops, which is what runs on a GPU:
    :func:`snn_icl.neurons.fast.fast_backend`; ``SNN_ICL_NO_KERNELS=1`` forces torch ops);
    ``fast=False`` traces every step with autograd
    (:func:`snn_icl.neurons.alif_sequence_autograd`). They give the same spikes and, up to
    rounding, the same values and gradients (to x, w_in, w_rec and the passed-in state's v, a,
    z; never to r), about 3x apart in speed.

``backend="norse"``
    norse's LSNN step (:func:`norse.torch.functional.lsnn.lsnn_step`) on the same ``w_in`` /
    ``w_rec`` (transposed as norse expects), parameters mapped into
    :class:`norse.torch.functional.lsnn.LSNNParameters` in seconds: ``dt = 1e-3 dt``,
    ``tau_mem_inv = 1000/tau_m``, ``tau_adapt_inv = 1000/tau_a``, ``tau_syn_inv = 1000/tau_syn``,
    ``v_th``, ``beta`` per neuron (0 for regular), ``v_leak = v_reset = 0``, surrogate
    ``method="triangle", alpha=gamma``. Its state is norse's ``LSNNState(z, v, i, b)`` with
    ``b`` the threshold itself (starts at ``v_th``). Per step norse computes::

        v'  = v + dt/tau_m (i - v)                    Euler decay towards the current i
        i'  = i - dt/tau_syn i                        synaptic current decay
        b'  = b + dt/tau_a (v_th - b)                 threshold relaxes to v_th
        z   = H(v' - b')                               no refractory period
        v   = (1 - z) v'                               hard reset to 0 (gradient detached)
        i   = i' + x W_in + z_{prev} W_rec             input enters v one step later
        b   = b' + beta z                              threshold jumps by beta per spike

    Differences from ``bellec``: Euler factors ``1 - dt/tau`` instead of ``exp(-dt/tau)``; a
    synaptic current between input and membrane (with the default ``tau_syn = dt`` the current
    lasts exactly one step, so there is no filtering, only a one-step delay of the input); hard
    reset to 0 instead of subtracting the threshold, with the reset detached from the gradient;
    no refractory period (``n_ref`` is ignored); the input is not scaled by ``1 - alpha``; the
    threshold jumps by ``beta`` per spike (``bellec``: by ``beta (1 - rho)``, ~1/1200 of that
    with the defaults, so the same ``beta`` adapts far more strongly in norse); the surrogate
    acts on the unnormalised ``v - b``. ``trace.v`` is norse's ``v`` after reset, ``trace.A`` the
    threshold ``b`` used for the step's spike and ``trace.a = trace.A - v_th``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import NamedTuple

import torch
from torch import nn

from snn_icl.neurons.alif import check_positive
from snn_icl.neurons import (
    ALIFParams,
    ALIFState,
    alif_sequence,
    alif_sequence_autograd,
    initial_alif_state,
)

__all__ = ["LSNN", "LSNNTrace"]

BACKENDS = ("bellec", "norse")


class LSNNTrace(NamedTuple):
    """Per-step internals recorded by ``LSNN(..., record=True)``; every field ``[T, B, n]``.

    Attributes:
        v: membrane potential after the step (voltage units).
        A: threshold the step's spike was tested against (voltage units).
        a: adaptation (bellec: trace ``a_t``; norse: threshold excess ``b - v_th``).
    """

    v: torch.Tensor
    A: torch.Tensor
    a: torch.Tensor


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")


class LSNN(nn.Module):
    """Recurrent population of ``n_regular`` LIF and ``n_adaptive`` ALIF neurons.

    Args:
        n_in: number of inputs.
        n_regular: regular neurons (``beta = 0``), indices ``[0, n_regular)``.
        n_adaptive: adaptive neurons (``beta = beta``), indices ``[n_regular, n)``.
        params: the neuron parameters (:class:`~snn_icl.neurons.alif.ALIFParams`: tau_m_ms,
            tau_a_ms, v_th, beta of the adaptive neurons, n_ref (bellec only), gamma (bellec: the
            height of ``dz/dv~``; norse: triangle on ``v - b``), dt_ms); default ``ALIFParams()``.
        backend: ``"bellec"`` (the contract) or ``"norse"`` (norse's LSNN dynamics, see module doc).
        fast: bellec only: hand-written BPTT over the whole sequence (True) or per-step autograd.
        tau_syn: norse only: synaptic time constant (ms); ``None`` means ``dt`` (no filtering).

    Parameters (trained): ``w_in [n_in, n]``, ``w_rec [n, n]`` (row = presynaptic neuron), both
    ``N(0, 1)/sqrt(fan_in)`` at init (fan_in ``n_in`` and ``n``). The diagonal of ``w_rec`` is
    zeroed at init and masked in every forward, so it gets zero gradient and stays zero under any
    optimizer (Adam included).
    """

    def __init__(
        self,
        n_in: int,
        n_regular: int,
        n_adaptive: int,
        params: ALIFParams | None = None,
        *,
        backend: str = "bellec",
        fast: bool = True,
        tau_syn: float | None = None,
    ):
        super().__init__()
        _check_int("n_in", n_in, 1)
        _check_int("n_regular", n_regular, 0)
        _check_int("n_adaptive", n_adaptive, 0)
        if n_regular + n_adaptive < 1:
            raise ValueError(
                f"n_regular + n_adaptive must be >= 1, got n_regular={n_regular!r}, "
                f"n_adaptive={n_adaptive!r}"
            )
        params = ALIFParams() if params is None else params
        if not isinstance(params, ALIFParams):
            raise ValueError(f"params must be an ALIFParams, got {params!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if not isinstance(fast, bool):
            raise ValueError(f"fast must be True or False, got {fast!r}")
        if tau_syn is not None:
            check_positive("tau_syn", tau_syn)

        self.n_in = int(n_in)
        self.n_regular = int(n_regular)
        self.n_adaptive = int(n_adaptive)
        self.params = params
        self.backend = backend
        self.fast = fast
        self.tau_syn_ms = float(params.dt_ms if tau_syn is None else tau_syn)

        n = self.n
        self.w_in = nn.Parameter(torch.randn(n_in, n) / math.sqrt(n_in))
        self.w_rec = nn.Parameter(torch.randn(n, n) / math.sqrt(n))
        with torch.no_grad():
            self.w_rec.fill_diagonal_(0.0)
        # Buffers follow .double() / .to(device) with the parameters.
        self.register_buffer("rec_mask", 1.0 - torch.eye(n), persistent=False)

    @property
    def n(self) -> int:
        """Number of neurons, ``n_regular + n_adaptive``."""
        return self.n_regular + self.n_adaptive

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"n_in={self.n_in}, n_regular={self.n_regular}, n_adaptive={self.n_adaptive}, "
            f"tau_m={p.tau_m_ms}, tau_a={p.tau_a_ms}, v_th={p.v_th}, beta={p.beta}, "
            f"n_ref={p.n_ref}, gamma={p.gamma}, dt={p.dt_ms}, backend={self.backend!r}, fast={self.fast}"
        )

    def set_beta(self, beta: float) -> None:
        """Set the adaptation strength of the adaptive neurons (a training schedule, ``[train]
        beta_ramp_iterations``; the agents' ``without_adaptation``); the weights are untouched."""
        self.params = dataclasses.replace(self.params, beta=float(beta))

    def beta_vector(self, dtype=None, device=None) -> torch.Tensor:
        """Adaptation strength per neuron ``[n]``: 0 for the regular, ``beta`` for the adaptive
        neurons. Built in the requested dtype (not kept as a float32 buffer that ``.double()``
        would convert, inexactly, from 1.7f)."""
        dtype = self.w_rec.dtype if dtype is None else dtype
        device = self.w_rec.device if device is None else device
        beta = torch.zeros(self.n, dtype=dtype, device=device)
        beta[self.n_regular :] = self.params.beta
        return beta

    def w_rec_masked(self) -> torch.Tensor:
        """``w_rec`` with its diagonal forced to zero (differentiable; diagonal gradient 0)."""
        return self.w_rec * self.rec_mask

    def initial_state(self, batch: int, device=None, dtype=None):
        """State at t = 0 for ``batch`` sequences (bellec: :class:`ALIFState` of zeros ``[B, n]``;
        norse: norse's ``LSNNState`` with ``z = v = i = 0``, ``b = v_th``). Defaults to the
        parameters' device and dtype."""
        _check_int("batch", batch, 1)
        device = self.w_rec.device if device is None else device
        dtype = self.w_rec.dtype if dtype is None else dtype
        if self.backend == "bellec":
            return initial_alif_state(batch, self.n, device=device, dtype=dtype)
        from norse.torch.functional.lsnn import LSNNState

        zeros = lambda: torch.zeros(batch, self.n, device=device, dtype=dtype)  # noqa: E731
        b = torch.full((batch, self.n), self.params.v_th, device=device, dtype=dtype)
        return LSNNState(z=zeros(), v=zeros(), i=zeros(), b=b)

    def forward(self, x: torch.Tensor, state=None, record: bool = False):
        """Run the network over ``x`` ``[T, B, n_in]`` (one step = ``dt`` ms).

        Args:
            x: input ``[T, B, n_in]`` (spikes or currents), same dtype as the parameters.
            state: state to continue from (as returned by a previous call), or ``None`` for the
                state at t = 0.
            record: also return an :class:`LSNNTrace` of ``v``, ``A`` and ``a``.

        Returns:
            ``(z, state)`` or ``(z, state, trace)``; ``z`` is ``[T, B, n]``.
        """
        if x.dim() != 3 or x.shape[-1] != self.n_in or x.shape[0] < 1:
            raise ValueError(
                f"x must have shape [T >= 1, B, n_in={self.n_in}], got {tuple(x.shape)}"
            )
        if state is None:
            state = self.initial_state(x.shape[1], device=x.device, dtype=x.dtype)
        if self.backend == "norse":
            return self._forward_norse(x, state, record)

        w_rec = self.w_rec_masked()
        beta = self.beta_vector(x.dtype, x.device)
        state = ALIFState(*state)
        run = alif_sequence if self.fast else alif_sequence_autograd
        z, state, va = run(x, self.w_in, state, w_rec, beta, self.params, record)
        if not record:
            return z, state
        v, a = va
        A = self.params.v_th + beta * a
        return z, state, LSNNTrace(v=v, A=A, a=a)

    def norse_parameters(self, dtype=None, device=None):
        """This module's neuron parameters as norse's ``LSNNParameters`` (SI units, see module doc)."""
        from norse.torch.functional.lsnn import LSNNParameters

        p = self.params
        dtype = self.w_rec.dtype if dtype is None else dtype
        device = self.w_rec.device if device is None else device
        t = lambda value: torch.as_tensor(value, dtype=dtype, device=device)  # noqa: E731
        return LSNNParameters(
            tau_syn_inv=t(1000.0 / self.tau_syn_ms),
            tau_mem_inv=t(1000.0 / p.tau_m_ms),
            tau_adapt_inv=t(1000.0 / p.tau_a_ms),
            v_leak=t(0.0),
            v_th=t(p.v_th),
            v_reset=t(0.0),
            beta=self.beta_vector(dtype, device),
            method="triangle",
            alpha=p.gamma,
        )

    def _forward_norse(self, x, state, record):
        from norse.torch.functional.lsnn import LSNNState, lsnn_step

        p = self.norse_parameters(dtype=x.dtype, device=x.device)
        dt_s = 1e-3 * self.params.dt_ms
        state = LSNNState(*state)
        w_in_t = self.w_in.t()  # norse: i += linear(x, W) = x @ W.T
        w_rec_t = self.w_rec_masked().t()
        zs, vs, bs = [], [], []
        for x_t in x.unbind(0):
            if record:
                # The threshold the spike of this step is tested against (after decay).
                bs.append(state.b + dt_s * p.tau_adapt_inv * (p.v_th - state.b))
            z, state = lsnn_step(x_t, state, w_in_t, w_rec_t, p, dt_s)
            zs.append(z)
            if record:
                vs.append(state.v)
        z = torch.stack(zs)
        if not record:
            return z, state
        A = torch.stack(bs)
        return z, state, LSNNTrace(v=torch.stack(vs), A=A, a=A - self.params.v_th)
