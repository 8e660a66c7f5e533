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
  hand-written BPTT through the equations above, in torch ops (``_ALIFSequence``, any device
  and dtype) or, on CPU in float32/float64, with small C kernels compiled on first use
  (``_ALIFSequenceC``; see :func:`c_kernels_available`). Measured at n_in = 66, n = 200,
  B = 64, T = 1000, 1 thread: forward+backward 0.62 s (autograd loop), 0.29 s (torch fast
  path), 0.19 s (C kernels); the matmul floor is 0.10 s.

Units: times in ms, voltages and thresholds in the same arbitrary unit as ``v_th``, ``r`` in steps.
Shapes: ``B`` batch, ``n`` neurons, ``T`` steps.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import numbers
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

__all__ = [
    "ALIFParams",
    "ALIFState",
    "SpikeFunction",
    "spike_fn",
    "alif_step",
    "alif_sequence",
    "alif_sequence_autograd",
    "initial_alif_state",
    "c_kernels_available",
]


def _check_positive(name: str, value: float) -> None:
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
            _check_positive(name, getattr(self, name))
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


# Steps per block: the fast path computes input currents, pseudo-derivatives and weight gradients
# for a block of steps at once (amortising the per-op overhead, which dominates at [B, n] size),
# while a block's [K, B, n] temporaries stay in cache (fresh [T, B, n] buffers cost page faults
# and memory bandwidth that are as expensive here as the arithmetic).
_BLOCK = 16


class _ALIFSequence(torch.autograd.Function):
    """The ALIF dynamics over a whole sequence with a hand-written BPTT backward.

    Takes the weights pre-scaled by ``1 - alpha`` (``w_in_s``, ``w_s``), so a step reads
    ``v_t = alpha v_{t-1} + x_t w_in_s + z_{t-1} w_s - A_t z_{t-1}``; autograd carries the
    factor (and the diagonal mask) to the weight gradients outside.

    Forward runs :func:`alif_step`'s equations under no_grad and keeps only the spikes ``z`` and
    voltages ``v`` (``[T, B, n]``) plus ``a`` at the start of every block; the backward recomputes
    ``a`` and ``A`` block by block. Refractoriness is tracked without the counter: a spike at
    step s blocks steps s+1..s+n_ref, and at most one spike falls into any n_ref consecutive
    steps, so ``ready_t = 1 - sum_{k=1..n_ref} z_{t-k} - [t <= r_0]``.

    Backward, from t = T down to 1, with ``psi_t = gamma max(0, 1 - |v~_t|) ready_t`` and ``g*``
    the total derivative of the loss w.r.t. a variable::

        gz_t = dL/dz_t (direct) + gv_{t+1} w_s^T - A_{t+1} gv_{t+1} + (1-rho) ga_{t+1}
        gv_t = dL/dv_t (direct) + gz_t psi_t / A_t + alpha gv_{t+1}
        gA_t = -gz_t psi_t v_t / A_t^2 - z_{t-1} gv_t
        ga_t = dL/da_t (direct) + beta gA_t + rho ga_{t+1}
        dL/dx_t = gv_t w_in_s^T,   dL/dw_in_s = sum_t x_t^T gv_t,   dL/dw_s = sum_t z_{t-1}^T gv_t

    and the initial-state gradients are the t = 0 instances: ``gv_0 = alpha gv_1``,
    ``ga_0 = rho ga_1`` and ``gz_0`` as above.
    """

    @staticmethod
    def forward(ctx, x, w_in_s, v0, a0, z0, r0, w_s, beta, params: ALIFParams, record: bool):
        alpha, rho, n_ref = params.alpha, params.rho, params.n_ref
        T, B, n_in = x.shape
        n = w_s.shape[0]
        v_th = torch.tensor(params.v_th, dtype=x.dtype, device=x.device)
        z_all = x.new_empty(T, B, n)
        v_all = x.new_empty(T, B, n)
        a_all = x.new_empty(T, B, n) if record else None
        a_start = x.new_empty((T + _BLOCK - 1) // _BLOCK, B, n)  # a before each block
        # Refractory at t: a spike in the last n_ref steps (tracked in `ready` as
        # 1 - their count, updated by +-1 per step), or still blocked from before t = 1.
        ready = torch.ones_like(v0)
        r0_max = int(r0.max().item()) if r0.numel() else 0
        blocked_at_start = [(r0 >= step).to(x.dtype) for step in range(1, min(r0_max, T) + 1)]
        v, a, z = v0, a0, z0
        for blk, start in enumerate(range(0, T, _BLOCK)):
            stop = min(start + _BLOCK, T)
            a_start[blk].copy_(a)
            u_blk = (x[start:stop].reshape(-1, n_in) @ w_in_s).view(stop - start, B, n)
            for t, u_t in enumerate(u_blk.unbind(0), start):
                # a_t = rho a_{t-1} + (1 - rho) z_{t-1}   (lerp: z + rho (a - z))
                a = torch.lerp(z, a, rho, out=a_all[t]) if record else torch.lerp(z, a, rho)
                A = torch.addcmul(v_th, a, beta)  # A_t = v_th + beta a_t
                # v_t = alpha v_{t-1} + (1 - alpha)(x_t W_in + z_{t-1} W_rec) - A_t z_{t-1}
                v = torch.addmm(u_t, z, w_s, out=v_all[t]).add_(v, alpha=alpha)
                v.addcmul_(A, z, value=-1.0)
                z_t = torch.gt(v, A, out=z_all[t])  # (v - A)/A > 0  <=>  v > A  (A > 0)
                if t < len(blocked_at_start):
                    z_t.mul_(ready - blocked_at_start[t])
                elif n_ref > 0:
                    z_t.mul_(ready)
                if n_ref > 0:
                    ready.sub_(z_t)
                    if t >= n_ref:
                        ready.add_(z_all[t - n_ref])
                z = z_t
        # r_T = n_ref - (steps since the last spike), or what is left of r_0.
        r_T = torch.clamp(r0 - T, min=0)
        for k in range(min(n_ref, T)):
            r_T = torch.maximum(r_T, z_all[T - 1 - k] * (n_ref - k))
        ctx.save_for_backward(x, w_in_s, z_all, v_all, a_all if record else a_start, z0, r0, w_s, beta)
        ctx.params, ctx.record = params, record
        ctx.mark_non_differentiable(r_T)
        ctx.set_materialize_grads(False)
        # clones: outputs must not be views of other outputs or of saved buffers
        return z_all, v.clone(), a.clone(), r_T, (v_all if record else None), a_all

    @staticmethod
    def backward(ctx, gz_out, gv_T, ga_T, _g_r, gv_out, ga_out):
        x, w_in_s, z_all, v_all, a_src, z0, r0, w_s, beta = ctx.saved_tensors
        p: ALIFParams = ctx.params
        alpha, rho, gamma, n_ref = p.alpha, p.rho, p.gamma, p.n_ref
        T, B, n_in = x.shape
        n = w_s.shape[0]
        need = ctx.needs_input_grad
        v_th = torch.tensor(p.v_th, dtype=x.dtype, device=x.device)
        r0_max = int(r0.max().item()) if r0.numel() else 0
        w_s_t, w_in_s_t = w_s.t(), w_in_s.t()
        neg_beta = -beta

        g_x = torch.empty_like(x) if need[0] else None
        g_w_in = x.new_zeros(n_in, n) if need[1] else None
        g_w = x.new_zeros(n, n) if need[6] else None
        gv_blk = x.new_empty(_BLOCK, B, n)
        zero = torch.zeros_like(z0)
        gv_next, ga_next = zero, zero
        carry = zero  # dL/dz_t through step t+1
        n_blocks = (T + _BLOCK - 1) // _BLOCK
        for blk in range(n_blocks - 1, -1, -1):
            start, stop = blk * _BLOCK, min((blk + 1) * _BLOCK, T)
            L = stop - start
            if start > 0:
                z_prev = z_all[start - 1 : stop - 1]  # z_{t-1} for the block's steps
            else:
                z_prev = torch.cat([z0.unsqueeze(0), z_all[: stop - 1]])
            # Recompute a_t (bit-identical ops) and A_t for the block.
            if ctx.record:
                a_blk = a_src[start:stop]
            else:
                a_blk = x.new_empty(L, B, n)
                a = a_src[blk]
                for i in range(L):
                    a = torch.lerp(z_prev[i], a, rho, out=a_blk[i])
            A_blk = torch.addcmul(v_th, a_blk, beta)
            w = v_all[start:stop] / A_blk  # v~ + 1
            psi = (w - 1.0).abs_().neg_().add_(1.0).clamp_(min=0.0)  # max(0, 1 - |v~|)
            # Refractory steps pass no gradient: psi *= ready_t.
            if n_ref > 0 or r0_max > 0:
                not_ready = torch.zeros_like(psi)
                for k in range(1, n_ref + 1):
                    lo = max(start, k)
                    if lo < stop:
                        not_ready[lo - start :] += z_all[lo - k : stop - k]
                for t in range(start, min(stop, r0_max)):
                    not_ready[t - start] += (r0 >= t + 1).to(x.dtype)
                psi.mul_(not_ready.neg_().add_(1.0))
            p_v = psi.mul_(gamma).div_(A_blk)  # dz/dv = psi / A
            q_a = (p_v * w).mul_(neg_beta)  # beta dz/dA = -beta psi v / A^2
            q_z = z_prev * neg_beta  # -beta z_{t-1}
            for t in range(stop - 1, start - 1, -1):
                i = t - start
                gz = carry if gz_out is None else carry + gz_out[t]
                if t == T - 1 and gv_T is not None:
                    gv = torch.addcmul(gv_T, gz, p_v[i], out=gv_blk[i])
                else:
                    gv = torch.mul(gz, p_v[i], out=gv_blk[i])
                if t < T - 1:
                    gv.add_(gv_next, alpha=alpha)
                if gv_out is not None:
                    gv.add_(gv_out[t])
                # ga_t = beta gA_t + rho ga_{t+1},  beta gA_t = -gz beta psi v / A^2 - beta z_{t-1} gv
                ga = torch.mul(gz, q_a[i]).addcmul_(q_z[i], gv)
                if t < T - 1:
                    ga.add_(ga_next, alpha=rho)
                elif ga_T is not None:
                    ga.add_(ga_T)
                if ga_out is not None:
                    ga.add_(ga_out[t])
                # dL/dz_{t-1} through step t: gv w_s^T - A_t gv + (1 - rho) ga
                carry = torch.addmm(torch.mul(A_blk[i], gv), gv, w_s_t, beta=-1.0)
                carry.add_(ga, alpha=1.0 - rho)
                gv_next, ga_next = gv, ga
            gv_next = gv_next.clone()  # gv_blk is overwritten by the next block
            # The block's share of the weight and input gradients, while gv is in cache.
            g = gv_blk[:L].view(L * B, n)
            if g_w is not None:
                g_w.addmm_(z_prev.reshape(L * B, n).t(), g)
            if g_w_in is not None:
                g_w_in.addmm_(x[start:stop].reshape(L * B, n_in).t(), g)
            if g_x is not None:
                torch.mm(g, w_in_s_t, out=g_x[start:stop].view(L * B, n_in))

        g_v0 = gv_next * alpha if need[2] else None
        g_a0 = ga_next * rho if need[3] else None
        g_z0 = carry if need[4] else None
        return g_x, g_w_in, g_v0, g_a0, g_z0, None, g_w, None, None, None


# --------------------------------------------------------------------------------------------
# Optional C kernels for the fast path (CPU, float32/float64).
#
# At [B, n] = [64, 200] every torch op costs ~4 us (dispatch plus a pass through L2), and a step
# needs ~30 of them; these kernels fuse a step's element-wise work (and, in the forward, the
# recurrent input z_{t-1} W_rec, summed over the rows of the neurons that spiked). They are
# compiled with the system C compiler on first use and cached; without a compiler, or with
# SNN_ICL_NO_C_KERNELS=1, the pure-torch fast path runs instead (same results up to rounding).
# --------------------------------------------------------------------------------------------
_C_SOURCE = r"""
#include <string.h>

#define DEFINE(T, SUF)                                                                         \
/* Forward over K steps of one block. u: (1-alpha) x_t W_in [K,B,n]; W: (1-alpha) W_rec [n,n] \
   (row = presynaptic); v, a, z, r: running state [B,n], updated in place; rec: scratch [n];  \
   z_out, v_out (and a_out unless NULL): [K,B,n]. */                                          \
void alif_forward_block_##SUF(                                                                 \
    int K, int B, int n, int n_ref, const T* restrict u, const T* restrict W,                  \
    const T* restrict beta, double v_th_, double alpha_, double rho_,                          \
    T* restrict v, T* restrict a, T* restrict z, T* restrict r, T* restrict rec,               \
    T* restrict z_out, T* restrict v_out, T* restrict a_out)                                   \
{                                                                                              \
    const T v_th = (T)v_th_, alpha = (T)alpha_, rho = (T)rho_, omr = (T)(1.0 - rho_);          \
    const T nref = (T)n_ref;                                                                   \
    const long Bn = (long)B * n;                                                               \
    for (int k = 0; k < K; ++k) {                                                              \
        for (int b = 0; b < B; ++b) {                                                          \
            const long o = (long)b * n;                                                        \
            T* restrict zb = z + o;                                                            \
            const T* restrict ub = u + k * Bn + o;                                             \
            for (int j = 0; j < n; ++j) rec[j] = ub[j];                                        \
            for (int i = 0; i < n; ++i) {  /* z_{t-1} W: only the rows that spiked */          \
                const T zi = zb[i];                                                            \
                if (zi != 0) {                                                                 \
                    const T* restrict Wi = W + (long)i * n;                                    \
                    for (int j = 0; j < n; ++j) rec[j] += zi * Wi[j];                          \
                }                                                                              \
            }                                                                                  \
            T* restrict vb = v + o; T* restrict ab = a + o; T* restrict rb = r + o;            \
            T* restrict zo = z_out + k * Bn + o; T* restrict vo = v_out + k * Bn + o;          \
            for (int j = 0; j < n; ++j) {                                                      \
                const T zp = zb[j];                                                            \
                const T an = rho * ab[j] + omr * zp;                                           \
                const T A = v_th + beta[j] * an;                                               \
                const T vn = alpha * vb[j] + rec[j] - A * zp;                                  \
                const T rr = rb[j];                                                            \
                const T sp = (rr == (T)0 && vn > A) ? (T)1 : (T)0;                             \
                const T rd = rr - (T)1;                                                        \
                rb[j] = sp != (T)0 ? nref : (rd > (T)0 ? rd : (T)0);                           \
                ab[j] = an; vb[j] = vn; zb[j] = sp; zo[j] = sp; vo[j] = vn;                    \
            }                                                                                  \
            if (a_out) memcpy(a_out + k * Bn + o, ab, sizeof(T) * n);                          \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
                                                                                               \
/* a_t for the K steps of a block from a before it and the spikes z_{t-1}. */                  \
void alif_recompute_a_##SUF(int K, int B, int n, double rho_, const T* restrict a_start,       \
                            const T* restrict z_first, const T* restrict z_blk,                \
                            T* restrict a_out)                                                 \
{                                                                                              \
    const T rho = (T)rho_, omr = (T)(1.0 - rho_);                                              \
    const long Bn = (long)B * n;                                                               \
    for (int k = 0; k < K; ++k) {                                                              \
        const T* restrict ap = k ? a_out + (k - 1) * Bn : a_start;                             \
        const T* restrict zp = k ? z_blk + (k - 1) * Bn : z_first;                             \
        T* restrict ak = a_out + k * Bn;                                                       \
        for (long q = 0; q < Bn; ++q) ak[q] = rho * ap[q] + omr * zp[q];                       \
    }                                                                                          \
}                                                                                              \
                                                                                               \
/* One backward step (t = 0-based index of the step); see _ALIFSequence for the equations.    \
   Writes gv_t, ga_t and partial = (1 - rho) ga_t - A_t gv_t (the caller adds gv_t W^T). */    \
void alif_backward_step_##SUF(                                                                 \
    int B, int n, int n_ref, int t, const T* restrict v_t, const T* restrict a_t,              \
    const T* restrict z_all, const T* restrict z_prev, const T* restrict r0,                   \
    const T* restrict beta, double v_th_, double rho_, double gamma_,                          \
    const T* restrict gz_out, const T* restrict gv_out, const T* restrict ga_out,              \
    const T* restrict carry, const T* restrict gv_next, double fv_,                            \
    const T* restrict ga_next, double fa_,                                                     \
    T* restrict gv, T* restrict ga, T* restrict partial, T* restrict blocked)                  \
{                                                                                              \
    const T v_th = (T)v_th_, gamma = (T)gamma_, fv = (T)fv_, fa = (T)fa_;                      \
    const T omr = (T)(1.0 - rho_), tt = (T)t;                                                  \
    const long Bn = (long)B * n;                                                               \
    const int kmax = n_ref < t ? n_ref : t;                                                    \
    /* refractory at t: blocked since before t = 1, or a spike in the last n_ref steps */      \
    for (long q = 0; q < Bn; ++q) blocked[q] = r0[q] > tt ? (T)1 : (T)0;                       \
    for (int k = 1; k <= kmax; ++k) {                                                          \
        const T* restrict zk = z_all + (long)(t - k) * Bn;                                     \
        for (long q = 0; q < Bn; ++q) blocked[q] += zk[q];                                     \
    }                                                                                          \
    for (int b = 0; b < B; ++b) {                                                              \
        const long o = (long)b * n;                                                            \
        for (int j = 0; j < n; ++j) {                                                          \
            const long q = o + j;                                                              \
            const T A = v_th + beta[j] * a_t[q];                                               \
            const T inv_A = (T)1 / A;                                                          \
            const T v = v_t[q];                                                                \
            const T s = (v - A) * inv_A;                                                       \
            const T m = (T)1 - (s < 0 ? -s : s);                                               \
            const T psi = (blocked[q] == (T)0 && m > (T)0) ? gamma * m : (T)0;                 \
            const T gz = carry[q] + gz_out[q];                                                 \
            const T g_v = gz * psi * inv_A + fv * gv_next[q] + gv_out[q];                      \
            const T gA = -gz * psi * v * inv_A * inv_A - z_prev[q] * g_v;                      \
            const T g_a = beta[j] * gA + fa * ga_next[q] + ga_out[q];                          \
            gv[q] = g_v; ga[q] = g_a;                                                          \
            partial[q] = omr * g_a - A * g_v;                                                  \
        }                                                                                      \
    }                                                                                          \
}

DEFINE(float, f32)
DEFINE(double, f64)
"""
_C_FLAGS = ["-O3", "-march=native", "-std=c99", "-shared", "-fPIC"]
_c_lib: ctypes.CDLL | None = None
_c_tried = False


def _cpu_fingerprint() -> str:
    """What -march=native depends on, for the cache key."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [l for l in f if l.startswith(("model name", "flags"))][:2]
        return "".join(lines)
    except OSError:
        return platform.processor() + platform.machine()


def _build_c_kernels() -> ctypes.CDLL | None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    key = hashlib.sha256(
        "\0".join([_C_SOURCE, cc, *_C_FLAGS, _cpu_fingerprint()]).encode()
    ).hexdigest()[:16]
    cache = os.environ.get("SNN_ICL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "snn_icl"
    )
    so_path = Path(cache) / f"alif_kernels_{key}.so"
    if not so_path.exists():
        so_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=so_path.parent) as tmp:
            src, out = Path(tmp) / "alif_kernels.c", Path(tmp) / "alif_kernels.so"
            src.write_text(_C_SOURCE)
            subprocess.run([cc, *_C_FLAGS, "-o", str(out), str(src)], check=True,
                           capture_output=True, timeout=120)
            os.replace(out, so_path)  # atomic: concurrent builders never see half a file
    lib = ctypes.CDLL(str(so_path))
    P, I, D = ctypes.c_void_p, ctypes.c_int, ctypes.c_double
    for suffix in ("f32", "f64"):
        getattr(lib, f"alif_forward_block_{suffix}").argtypes = [I, I, I, I, P, P, P, D, D, D] + [P] * 8
        getattr(lib, f"alif_recompute_a_{suffix}").argtypes = [I, I, I, D, P, P, P, P]
        getattr(lib, f"alif_backward_step_{suffix}").argtypes = (
            [I, I, I, I] + [P] * 6 + [D, D, D] + [P] * 5 + [D, P, D] + [P] * 4
        )
    return lib


def _c_kernels() -> ctypes.CDLL | None:
    """The compiled kernels, or None (no compiler, build failed, or SNN_ICL_NO_C_KERNELS=1)."""
    global _c_lib, _c_tried
    if os.environ.get("SNN_ICL_NO_C_KERNELS", "") not in ("", "0"):
        return None
    if not _c_tried:
        _c_tried = True
        try:
            _c_lib = _build_c_kernels()
        except Exception:  # any build or load problem: the torch path is always there
            _c_lib = None
    return _c_lib


def c_kernels_available() -> bool:
    """Whether the fast path can use its compiled C kernels (else it runs in torch ops)."""
    return _c_kernels() is not None


class _ALIFSequenceC(torch.autograd.Function):
    """:class:`_ALIFSequence` with the per-step element-wise work in the C kernels.

    Same inputs, outputs, saved state and equations; the forward runs whole blocks in C (the
    recurrent input summed over the rows of the neurons that spiked), the backward one C call
    plus one ``addmm`` (``gv_t w_s^T``) per step, and the block matmuls in torch as before.
    """

    @staticmethod
    def forward(ctx, x, w_in_s, v0, a0, z0, r0, w_s, beta, params: ALIFParams, record: bool):
        lib = _c_kernels()
        forward_block = getattr(lib, f"alif_forward_block_{_C_SUFFIX[x.dtype]}")
        T, B, n_in = x.shape
        n = w_s.shape[0]
        x, w_s, beta = x.contiguous(), w_s.contiguous(), beta.contiguous()
        z_all = x.new_empty(T, B, n)
        v_all = x.new_empty(T, B, n)
        a_all = x.new_empty(T, B, n) if record else None
        a_start = x.new_empty((T + _BLOCK - 1) // _BLOCK, B, n)
        # Running state, updated in place by the kernel.
        v, a, z, r = (s.detach().clone().contiguous() for s in (v0, a0, z0, r0))
        rec = x.new_empty(n)
        step_bytes = B * n * x.element_size()
        for blk, start in enumerate(range(0, T, _BLOCK)):
            stop = min(start + _BLOCK, T)
            a_start[blk].copy_(a)
            u_blk = (x[start:stop].reshape(-1, n_in) @ w_in_s).view(stop - start, B, n)
            forward_block(
                stop - start, B, n, params.n_ref, u_blk.data_ptr(), w_s.data_ptr(),
                beta.data_ptr(), params.v_th, params.alpha, params.rho, v.data_ptr(),
                a.data_ptr(), z.data_ptr(), r.data_ptr(), rec.data_ptr(),
                z_all.data_ptr() + start * step_bytes, v_all.data_ptr() + start * step_bytes,
                a_all.data_ptr() + start * step_bytes if record else None,
            )
        ctx.save_for_backward(
            x, w_in_s, z_all, v_all, a_all if record else a_start, z0.detach().contiguous(),
            r0.detach().contiguous(), w_s, beta,
        )
        ctx.params, ctx.record = params, record
        ctx.mark_non_differentiable(r)
        ctx.set_materialize_grads(False)
        return z_all, v, a, r, (v_all if record else None), a_all

    @staticmethod
    def backward(ctx, gz_out, gv_T, ga_T, _g_r, gv_out, ga_out):
        x, w_in_s, z_all, v_all, a_src, z0, r0, w_s, beta = ctx.saved_tensors
        p: ALIFParams = ctx.params
        lib = _c_kernels()
        suffix = _C_SUFFIX[x.dtype]
        backward_step = getattr(lib, f"alif_backward_step_{suffix}")
        recompute_a = getattr(lib, f"alif_recompute_a_{suffix}")
        T, B, n_in = x.shape
        n = w_s.shape[0]
        need = ctx.needs_input_grad
        step_bytes = B * n * x.element_size()
        w_s_t, w_in_s_t = w_s.t(), w_in_s.t()

        g_x = torch.empty_like(x) if need[0] else None
        g_w_in = x.new_zeros(n_in, n) if need[1] else None
        g_w = x.new_zeros(n, n) if need[6] else None
        gv_blk = x.new_empty(_BLOCK, B, n)
        gv_views = gv_blk.unbind(0)
        a_blk = x.new_empty(_BLOCK, B, n)
        zeros = x.new_zeros(B, n)
        ga_buf = (x.new_empty(B, n), x.new_empty(B, n))
        gv_keep = x.new_empty(B, n)  # gv of the first step of a block, for the block before
        partial, blocked = x.new_empty(B, n), x.new_empty(B, n)
        carry = torch.zeros_like(zeros)  # dL/dz_t through step t+1

        def per_step(g):
            """g [T, B, n] or None -> function t -> (pointer to a contiguous [B, n], keep-alive)."""
            if g is None:
                return lambda t: (zeros.data_ptr(), None)
            if g.is_contiguous():
                base = g.data_ptr()
                return lambda t: (base + t * step_bytes, None)
            return lambda t: ((s := g[t].contiguous()).data_ptr(), s)

        gz_at, gv_at, ga_at = per_step(gz_out), per_step(gv_out), per_step(ga_out)
        z_ptr, v_ptr, r0_ptr, beta_ptr = z_all.data_ptr(), v_all.data_ptr(), r0.data_ptr(), beta.data_ptr()
        gv_T = None if gv_T is None else gv_T.contiguous()
        ga_T = None if ga_T is None else ga_T.contiguous()
        gv_next_ptr, fv = (zeros.data_ptr(), 0.0) if gv_T is None else (gv_T.data_ptr(), 1.0)
        ga_next_ptr, fa = (zeros.data_ptr(), 0.0) if ga_T is None else (ga_T.data_ptr(), 1.0)
        n_blocks = (T + _BLOCK - 1) // _BLOCK
        for blk in range(n_blocks - 1, -1, -1):
            start, stop = blk * _BLOCK, min((blk + 1) * _BLOCK, T)
            L = stop - start
            if ctx.record:
                a_ptr = a_src.data_ptr() + start * step_bytes
            else:
                z_first = z_ptr + (start - 1) * step_bytes if start > 0 else z0.data_ptr()
                recompute_a(L, B, n, p.rho, a_src[blk].data_ptr(), z_first,
                            z_ptr + start * step_bytes, a_blk.data_ptr())
                a_ptr = a_blk.data_ptr()
            for t in range(stop - 1, start - 1, -1):
                i = t - start
                (gz_p, k1), (gv_p, k2), (ga_p, k3) = gz_at(t), gv_at(t), ga_at(t)
                ga = ga_buf[t % 2]
                backward_step(
                    B, n, p.n_ref, t, v_ptr + t * step_bytes, a_ptr + i * step_bytes, z_ptr,
                    z_ptr + (t - 1) * step_bytes if t > 0 else z0.data_ptr(), r0_ptr, beta_ptr,
                    p.v_th, p.rho, p.gamma, gz_p, gv_p, ga_p, carry.data_ptr(), gv_next_ptr, fv,
                    ga_next_ptr, fa, gv_views[i].data_ptr(), ga.data_ptr(), partial.data_ptr(),
                    blocked.data_ptr(),
                )
                carry = torch.addmm(partial, gv_views[i], w_s_t)
                gv_next_ptr, fv, ga_next_ptr, fa = gv_views[i].data_ptr(), p.alpha, ga.data_ptr(), p.rho
            gv_keep.copy_(gv_views[0])  # gv_blk is overwritten by the next block
            gv_next_ptr = gv_keep.data_ptr()
            g = gv_blk[:L].view(L * B, n)
            if g_w is not None:
                if start > 0:
                    g_w.addmm_(z_all[start - 1 : stop - 1].reshape(L * B, n).t(), g)
                else:
                    g_w.addmm_(z0.t(), gv_views[0])
                    if L > 1:
                        g_w.addmm_(z_all[: stop - 1].reshape(-1, n).t(), gv_blk[1:L].reshape(-1, n))
            if g_w_in is not None:
                g_w_in.addmm_(x[start:stop].reshape(L * B, n_in).t(), g)
            if g_x is not None:
                torch.mm(g, w_in_s_t, out=g_x[start:stop].view(L * B, n_in))

        ga_first = ga_buf[0]  # t = 0 wrote ga_buf[0]
        g_v0 = gv_keep * p.alpha if need[2] else None
        g_a0 = ga_first * p.rho if need[3] else None
        g_z0 = carry if need[4] else None
        return g_x, g_w_in, g_v0, g_a0, g_z0, None, g_w, None, None, None


_C_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def alif_sequence(
    x: torch.Tensor,
    w_in: torch.Tensor,
    state: ALIFState,
    w_rec: torch.Tensor,
    beta: torch.Tensor,
    params: ALIFParams,
    record: bool = False,
) -> tuple[torch.Tensor, ALIFState, tuple[torch.Tensor, torch.Tensor] | None]:
    """Run the ALIF dynamics over ``x`` ``[T, B, n_in]`` with the fast hand-written BPTT.

    Same arguments and returns as :func:`alif_sequence_autograd`: spikes equal, values and
    gradients equal up to floating-point rounding. Gradients flow to ``x``, ``w_in``, ``w_rec``
    and ``state.v``, ``state.a``, ``state.z`` (never to ``state.r`` or ``beta``), through the
    spikes, the final state and the recorded traces alike.
    """
    if x.dim() != 3 or x.shape[0] == 0:
        raise ValueError(f"x must have shape [T >= 1, B, n_in], got {tuple(x.shape)}")
    scale = 1.0 - params.alpha
    use_c = x.device.type == "cpu" and x.dtype in _C_SUFFIX and _c_kernels() is not None
    function = _ALIFSequenceC if use_c else _ALIFSequence
    # (1 - alpha) goes on the small weight matrices; autograd carries it (and any mask applied
    # by the caller) to their gradients.
    z, v_T, a_T, r_T, v, a = function.apply(
        x, w_in * scale, state.v, state.a, state.z, state.r, w_rec * scale, beta, params, record
    )
    return z, ALIFState(v_T, a_T, z[-1], r_T), ((v, a) if record else None)
