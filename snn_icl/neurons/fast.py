"""The fast path of the ALIF dynamics: one call for a whole sequence, with a hand-written BPTT.

Dispatches to the compiled kernels (:mod:`snn_icl.neurons.kernels.numba_kernels`: the whole time
loop, forward and backward, compiled by numba) when they can run the sequence (CPU,
float32/float64, numba installed), else to the same algorithm in torch ops
(:mod:`snn_icl.neurons.bptt`; any device and dtype). When nothing needs a gradient (acting, under
``torch.no_grad``), the compiled forward is called directly, outside autograd.

Devices (the one place this is decided, :func:`fast_backend`): the numba kernels are CPU-only.
On a GPU (``[train] device = "cuda"``, ``--device cuda``) and for any other dtype the fast path
runs in torch ops, which work on every device; the two give the same spikes and, up to rounding,
the same values and gradients (tests/test_kernels.py, tests/test_neurons.py).

Measured with ``python bench/lsnn_throughput.py --threads 1`` (B = 64, T = 1000, float32,
forward + backward): compiled 0.215 s, torch ops 0.47 s, the matmul floor 0.215 s; details in
:mod:`snn_icl.neurons.alif`.
"""

from __future__ import annotations

import torch

from snn_icl.neurons.alif import ALIFParams, ALIFState
from snn_icl.neurons.bptt import ALIFSequence
from snn_icl.neurons.kernels import numba_kernels
from snn_icl.neurons.kernels.numba_kernels import kernels_available

__all__ = ["alif_sequence", "fast_backend", "kernels_available"]


def fast_backend(x: torch.Tensor) -> str:
    """Which implementation of the fast path runs the sequence ``x``: "numba" (the compiled
    kernels: CPU tensors in float32/float64, numba installed, not ``SNN_ICL_NO_KERNELS=1``) or
    "torch" (torch ops: every other case, in particular every CUDA tensor)."""
    return "numba" if numba_kernels.kernels_for(x) else "torch"


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
    # (1 - alpha) goes on the small weight matrices; autograd carries it (and any mask applied
    # by the caller) to their gradients.
    args = (x, w_in * scale, state.v, state.a, state.z, state.r, w_rec * scale, beta, params, record)
    if fast_backend(x) == "numba":
        z, v_T, a_T, r_T, v, a = numba_kernels.run(*args)
    else:
        z, v_T, a_T, r_T, v, a = ALIFSequence.apply(*args)
    return z, ALIFState(v_T, a_T, z[-1], r_T), ((v, a) if record else None)

