r"""Adaptive leaky integrate-and-fire (ALIF) neurons: parameters, state, surrogate spike and dynamics.

This is the bottom layer of snn-icl: pure tensor numerics, no modules, nothing imported from the
rest of the package. The LSNN module (:mod:`snn_icl.models.lsnn`) wraps these functions in a time
loop.

The dynamics (Bellec et al. 2018, discrete time, one step = ``dt_ms``). For a population of ``n``
neurons with per-neuron adaptation strength ``beta`` (0 for regular neurons), input current
``I_t = x_t W_in`` and recurrent weights ``W_rec`` (zero diagonal), all state zero at t = 0::

    alpha = exp(-dt/tau_m)          membrane decay per step
    rho   = exp(-dt/tau_a)          adaptation decay per step

    a_t = rho * a_{t-1} + (1 - rho) * z_{t-1}                          adaptation trace
    A_t = v_th + beta * a_t                                            adaptive threshold
    v_t = alpha * v_{t-1} + (1 - alpha) * (I_t + z_{t-1} W_rec) - A_t * z_{t-1}
    z_t = H((v_t - A_t) / A_t)   if r_{t-1} == 0   else 0              spike, H(u) = [u > 0]
    r_t = n_ref  if z_t  else  max(r_{t-1} - 1, 0)                     refractory steps left

Gradients use the pseudo-derivative ``dz/dv~ = gamma * max(0, 1 - |v~|)`` with
``v~ = (v - A) / A``; they flow through every path (v, a, A and the reset term ``A_t z_{t-1}``).
A refractory neuron outputs 0 with zero gradient.

The same equations are implemented here three times, tested against each other (and against a
reference written in the tests) to ~1e-10 in float64:

* :func:`alif_step` / :func:`alif_sequence_autograd` — one step in plain autograd-traced torch
  ops, looped over time (readable; the reference).
* :func:`alif_sequence` — the fast path: the whole sequence as one
  :class:`torch.autograd.Function` whose forward runs under ``no_grad`` and whose backward is a
  hand-written BPTT through the equations above, in torch ops (:mod:`snn_icl.neurons.bptt`, any
  device and dtype) or, on CPU in float32/float64, with the whole time loop compiled by numba
  (:mod:`snn_icl.neurons.kernels.numba_kernels`; see :func:`kernels_available`).

Measured with ``python bench/lsnn_throughput.py --threads 1`` (n_in = 66, n = 200, B = 64,
T = 1000, float32, forward + backward, medians of 5, LSNN at ~110 Hz; AMD EPYC, 2 logical CPUs,
shared): the T recurrent matmuls and their 2 T backward matmuls alone (the "floor") 0.215 s;
compiled kernels 0.215 s (1.00 x floor); torch-ops fast path 0.47 s; autograd loop 0.81 s;
norse's LSNNRecurrent 0.67 s. With ``--threads 2``: floor 0.152 s, kernels 0.227 s (1.50 x),
torch ops 0.43 s, autograd 0.79 s, norse 0.67 s. At the PPO minibatch (``--batch 32``, 1 thread)
floor 0.128 s, kernels 0.138 s.

Units: times in ms, voltages and thresholds in the same arbitrary unit as ``v_th``, ``r`` in steps.
Shapes: ``B`` batch, ``n`` neurons, ``T`` steps.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = [
    "ALIFParams",
    "ALIFState",
    "SpikeFunction",
    "spike_fn",
    "alif_step",
    "alif_sequence_autograd",
    "initial_alif_state",
]


def check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class ALIFParams:
    """Parameters of an ALIF population (shared by all neurons; ``beta`` is per neuron elsewhere).

    Attributes:
        tau_m_ms: membrane time constant (ms).
        tau_a_ms: adaptation time constant (ms); 1200 ms spans several trials of the water maze.
        v_th: baseline firing threshold (voltage units).
        beta: adaptation strength of the *adaptive* neurons (voltage units per unit of ``a``);
            regular neurons use 0. Functions take the per-neuron vector, see :func:`alif_step`.
        n_ref: refractory period (steps) during which a neuron that just spiked stays silent.
        gamma: height of the triangular pseudo-derivative ``dz/dv~`` (dimensionless).
        dt_ms: integration step (ms).
    """

    tau_m_ms: float = 20.0
    tau_a_ms: float = 1200.0
    v_th: float = 0.01
    beta: float = 1.7
    n_ref: int = 2
    gamma: float = 0.3
    dt_ms: float = 1.0

    def __post_init__(self) -> None:
        for name in ("tau_m_ms", "tau_a_ms", "v_th", "gamma", "dt_ms"):
            check_positive(name, getattr(self, name))
        if isinstance(self.beta, bool) or not isinstance(self.beta, numbers.Real):
            raise ValueError(f"beta must be a real number, got {self.beta!r}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be a finite number >= 0, got {self.beta!r}")
        if isinstance(self.n_ref, bool) or not isinstance(self.n_ref, numbers.Integral):
            raise ValueError(f"n_ref must be an integer number of steps, got {self.n_ref!r}")
        if self.n_ref < 0:
            raise ValueError(f"n_ref must be >= 0, got {self.n_ref!r}")

    @property
    def alpha(self) -> float:
        """Membrane decay factor per step, ``exp(-dt/tau_m)`` (dimensionless)."""
        return math.exp(-self.dt_ms / self.tau_m_ms)

    @property
    def rho(self) -> float:
        """Adaptation decay factor per step, ``exp(-dt/tau_a)`` (dimensionless)."""
        return math.exp(-self.dt_ms / self.tau_a_ms)


class ALIFState(NamedTuple):
    """State of an ALIF population after a step; every field is ``[B, n]``.

    Attributes:
        v: membrane potential (voltage units).
        a: adaptation trace (dimensionless; the threshold is ``v_th + beta * a``).
        z: spikes of the last step (0.0 or 1.0).
        r: refractory steps left (a float tensor holding non-negative integers).
    """

    v: torch.Tensor
    a: torch.Tensor
    z: torch.Tensor
    r: torch.Tensor


def initial_alif_state(
    batch: int, n: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> ALIFState:
    """All-zero state ``[batch, n]`` (the state at t = 0)."""
    zeros = lambda: torch.zeros(batch, n, device=device, dtype=dtype)  # noqa: E731
    return ALIFState(v=zeros(), a=zeros(), z=zeros(), r=zeros())


class SpikeFunction(torch.autograd.Function):
    """Heaviside spike ``z = H(v~)`` with the triangular pseudo-derivative.

    Forward: ``z = 1.0 if v~ > 0 else 0.0``. Backward: ``dz/dv~ = gamma * max(0, 1 - |v~|)``
    (Bellec et al. 2018), ``v~ = (v - A) / A`` the threshold-normalised voltage.
    """

    @staticmethod
    def forward(ctx, v_scaled: torch.Tensor, gamma: float) -> torch.Tensor:
        ctx.save_for_backward(v_scaled)
        ctx.gamma = gamma
        return (v_scaled > 0).to(v_scaled.dtype)

    @staticmethod
    def backward(ctx, grad_z: torch.Tensor):
        (v_scaled,) = ctx.saved_tensors
        pseudo = ctx.gamma * torch.clamp(1.0 - v_scaled.abs(), min=0.0)
        return grad_z * pseudo, None


def spike_fn(v_scaled: torch.Tensor, gamma: float) -> torch.Tensor:
    """Spike of threshold-normalised voltage ``v_scaled`` with pseudo-derivative height ``gamma``."""
    return SpikeFunction.apply(v_scaled, gamma)


def alif_step(
    i_in: torch.Tensor,
    state: ALIFState,
    w_rec: torch.Tensor,
    beta: torch.Tensor,
    params: ALIFParams,
) -> tuple[torch.Tensor, ALIFState, torch.Tensor]:
    """One step of the ALIF dynamics (plain autograd ops)::

        a_t = rho * a_{t-1} + (1 - rho) * z_{t-1}
        A_t = v_th + beta * a_t
        v_t = alpha * v_{t-1} + (1 - alpha) * (i_in + z_{t-1} W_rec) - A_t * z_{t-1}
        z_t = H((v_t - A_t) / A_t)   if r_{t-1} == 0   else 0
        r_t = n_ref  if z_t  else  max(r_{t-1} - 1, 0)

    Args:
        i_in: input current ``x_t W_in`` for this step, ``[B, n]``.
        state: state after step t-1 (:class:`ALIFState`, fields ``[B, n]``).
        w_rec: recurrent weights ``[n, n]`` (row = presynaptic), diagonal already zero.
        beta: adaptation strength per neuron ``[n]`` (0 for regular neurons).
        params: :class:`ALIFParams` (``params.beta`` is ignored here; ``beta`` is used).

    Returns:
        ``(z_t, state_t, A_t)``: spikes ``[B, n]``, the new state, and the threshold ``[B, n]``.
    """
    alpha, rho = params.alpha, params.rho
    v, a, z, r = state
    a_new = rho * a + (1.0 - rho) * z
    A = params.v_th + beta * a_new
    v_new = alpha * v + (1.0 - alpha) * (i_in + z @ w_rec) - A * z
    ready = (r == 0).to(v_new.dtype)  # refractory neurons: output 0, gradient 0
    z_new = spike_fn((v_new - A) / A, params.gamma) * ready
    r_new = torch.where(z_new > 0, torch.full_like(r, params.n_ref), torch.clamp(r - 1, min=0))
    return z_new, ALIFState(v_new, a_new, z_new, r_new), A


def alif_sequence_autograd(
    x: torch.Tensor,
    w_in: torch.Tensor,
    state: ALIFState,
    w_rec: torch.Tensor,
    beta: torch.Tensor,
    params: ALIFParams,
    record: bool = False,
) -> tuple[torch.Tensor, ALIFState, tuple[torch.Tensor, torch.Tensor] | None]:
    """Run :func:`alif_step` over ``x`` ``[T, B, n_in]``, autograd tracing every step.

    Args:
        x: inputs ``[T, B, n_in]``.
        w_in: input weights ``[n_in, n]``.
        state, w_rec, beta, params: as for :func:`alif_step`.
        record: also return the traces ``(v, a)``, each ``[T, B, n]``.

    Returns:
        ``(z [T, B, n], final state, (v, a) if record else None)``.
    """
    T, B, n_in = x.shape
    # One matmul for all T steps: [T*B, n_in] @ [n_in, n].
    i_in = (x.reshape(T * B, n_in) @ w_in).reshape(T, B, -1)
    zs, vs, as_ = [], [], []
    # unbind, not i_in[t]: indexing in the loop makes the backward O(T^2) (measured here).
    for i_t in i_in.unbind(0):
        z, state, _ = alif_step(i_t, state, w_rec, beta, params)
        zs.append(z)
        if record:
            vs.append(state.v)
            as_.append(state.a)
    trace = (torch.stack(vs), torch.stack(as_)) if record else None
    return torch.stack(zs), state, trace
