"""The compiled fast path of the ALIF dynamics (CPU, float32/float64), with numba.

Why numba and not C: the previous version compiled C source from a Python string with the
system compiler and ``-march=native`` at first use, and still made a few torch/ctypes calls per
time step. numba needs no system compiler (it is a PyPI wheel, as are its BLAS through scipy),
compiles the *whole* time loop (forward and backward) into one call, and its on-disk cache
(``cache=True``) is keyed by the CPU name and features (numba's ``magic_tuple``): a cache entry
compiled for one CPU is never loaded on another, which recompiles and adds its own entry.

What the loops do (:mod:`._alif_loops`): the forward sums the rows of ``w_rec`` of the neurons
that spiked (spikes are sparse) instead of a dense matmul per step; the backward makes one BLAS
call per step (``gv_t w_rec^T``, dense), sums ``dL/dw_rec`` over the spikes, and does the input
gradients as two matmuls per block of steps. numba's ``np.dot`` calls scipy's OpenBLAS, held
at one thread before each call (threadpoolctl, ``BLAS_THREADS``): its threads and torch's
OpenMP threads wait for work by spinning, and with both at two threads on two cores an
evaluation that alternates short kernel calls (one env step) with torch ops ran 4.5x slower
(``bench/eval_threads.py``: 45.6 s against 10.2 s for 256 episodes); a whole training sequence
is as fast with one BLAS thread (``bench/lsnn_throughput.py --threads 2 --blas-threads 1``,
then ``2``: 0.322 s against 0.328 s).

First use compiles (seconds; then loaded from the cache in ``__pycache__`` next to this file,
or numba's user-wide cache when that is read-only; ``NUMBA_CACHE_DIR`` overrides both, and with
no writable place at all the loops are compiled once per process). The first use holds a lock,
so a second thread waits for the compile instead of silently taking another path. When the
kernels cannot be used (numba, scipy or threadpoolctl missing, a compile error), the fast path
runs in torch ops (:mod:`snn_icl.neurons.bptt`, same results up to rounding) and a warning
saying why is issued once. ``SNN_ICL_NO_KERNELS=1`` (or the older ``SNN_ICL_NO_C_KERNELS=1``)
forces the torch-ops path without a warning.

Measured with ``python bench/lsnn_throughput.py --threads 1`` (n_in = 66, n = 200, B = 64,
T = 1000, float32; forward + backward): 0.215 s, the same as the matmul floor and 2.2x faster
than the same algorithm in torch ops (numbers and machine in :mod:`snn_icl.neurons.alif`). What
made the difference, measured here: ``error_model="numpy"`` (without it no loop with a division
vectorises), element-wise passes with one store each (else LLVM's aliasing checks give up), no
array views in the hot loops (numba reference-counts each), branch-free spike index lists and
four spike rows per pass, and the [T, B, n] buffers from numpy (transparent huge pages: their
first touch cost a third of the forward with torch's allocator).
"""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np
import torch

from snn_icl.neurons.alif import ALIFParams
from snn_icl.neurons.bptt import _BLOCK

__all__ = ["ALIFSequenceNumba", "kernels_available", "kernels_for", "forward_no_grad"]

_DTYPES = (torch.float32, torch.float64)
_ENV_OFF = ("SNN_ICL_NO_KERNELS", "SNN_ICL_NO_C_KERNELS")

_lock = threading.Lock()
_loaded = False  # whether a load was attempted (under _lock)
_kernels = None  # (forward_loop, backward_loop, set_blas_threads) once compiled, else None
_failure: str | None = None  # why the kernels cannot run


def disabled_by_env() -> bool:
    """Whether ``SNN_ICL_NO_KERNELS`` (or ``SNN_ICL_NO_C_KERNELS``) forces the torch-ops path."""
    return any(os.environ.get(name, "") not in ("", "0") for name in _ENV_OFF)


BLAS_THREADS = 1
"""Threads of the BLAS calls inside the compiled loops (see the module docstring for why one)."""


def _blas_thread_setter():
    """A function n -> None that sets the threads of the BLAS numba's np.dot calls (scipy's)."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library numba's np.dot calls)
    from threadpoolctl import ThreadpoolController

    libs = [lib for lib in ThreadpoolController().lib_controllers
            if lib.user_api == "blas" and "scipy" in os.path.basename(lib.filepath)]
    current = [None]

    def set_threads(n: int) -> None:
        if n != current[0]:
            for lib in libs:
                lib.set_num_threads(n)
            current[0] = n

    return set_threads


def _jit(fn, warn: bool = True):
    """``numba.njit`` with the on-disk cache where numba finds a writable place for it.

    ``error_model="numpy"``: a float division by zero gives inf instead of raising, which is what
    lets LLVM vectorise the loops (seen here: no packed division without it).
    """
    import numba

    try:
        return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError as err:  # "cannot cache function ...: no locator available" (read-only)
        if warn:
            warnings.warn(f"snn_icl: numba cannot cache the ALIF kernels ({err}); they are "
                          "compiled once per process (seconds)", RuntimeWarning, stacklevel=4)
        return numba.njit(cache=False, nogil=True, error_model="numpy")(fn)


def _compile():
    """Compile (or load from numba's cache) both loops in both dtypes and check them on a tiny run."""
    from snn_icl.neurons.kernels import _alif_loops

    set_threads = _blas_thread_setter()
    forward_loop = _jit(_alif_loops.forward_loop)
    backward_loop = _jit(_alif_loops.backward_loop, warn=False)
    for dtype in _DTYPES:  # compile now, under the lock, rather than at some later first call
        with torch.enable_grad():  # the caller may be under no_grad
            x = torch.ones(3, 2, 2, dtype=dtype, requires_grad=True)
            w_in = torch.ones(2, 3, dtype=dtype, requires_grad=True)
            w = torch.ones(3, 3, dtype=dtype, requires_grad=True)
            state = [torch.zeros(2, 3, dtype=dtype) for _ in range(4)]
            beta = torch.ones(3, dtype=dtype)
            p = ALIFParams()
            kernels = (forward_loop, backward_loop, set_threads)
            out = _apply(kernels, x, w_in, *state, w, beta, p, False)
            torch.autograd.grad(out[0].sum() + out[1].sum(), (x, w_in, w))
            forward_no_grad(kernels, x.detach(), w_in.detach(), *state, w.detach(), beta, p)
    return forward_loop, backward_loop, set_threads


def _load():
    """The compiled kernels, or None; compiles on the first call (other callers wait)."""
    global _loaded, _kernels, _failure
    if _loaded:
        return _kernels
    with _lock:
        if _loaded:
            return _kernels
        try:
            _kernels = _compile()
        except ImportError as err:  # numba, scipy or threadpoolctl not installed
            _failure = f"cannot import {err.name or err}: {err}"
        except Exception as err:
            # numba's compile errors (numba.core.errors.NumbaError and the LLVM errors under it)
            # share no base class with the other failures, so the test is done here, narrowly.
            from numba.core.errors import NumbaError

            if not isinstance(err, (NumbaError, OSError)):
                raise
            _failure = f"{type(err).__name__}: {err}"
        if _kernels is None:
            warnings.warn(
                f"snn_icl: the compiled ALIF kernels cannot run ({_failure}); the fast path runs "
                "in torch ops (same results, about 2x slower). Set SNN_ICL_NO_KERNELS=1 to choose "
                "that path without this warning.", RuntimeWarning, stacklevel=3)
        _loaded = True
    return _kernels


def failure_reason() -> str | None:
    """Why the kernels cannot run (None when they can, or were not tried yet)."""
    return _failure


def kernels_available() -> bool:
    """Whether the fast path can use its compiled kernels (else it runs in torch ops).

    Compiles them on the first call (seconds, or a cache load); False with
    ``SNN_ICL_NO_KERNELS=1``.
    """
    return not disabled_by_env() and _load() is not None


def kernels_for(x: torch.Tensor) -> bool:
    """Whether the compiled kernels can run the sequence ``x`` (CPU, float32/float64, loaded)."""
    return (x.device.type == "cpu" and x.dtype in _DTYPES and not disabled_by_env()
            and _load() is not None)


def _consts(p: ALIFParams, dtype: torch.dtype) -> np.ndarray:
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    return np.array([p.v_th, p.alpha, p.rho, 1.0 - p.rho, p.gamma, 1.0, 0.0, float(p.n_ref)],
                    dtype=np_dtype)


def _empty(shape, dtype: torch.dtype) -> torch.Tensor:
    """``torch.empty`` through numpy, whose allocator asks for transparent huge pages: the
    [T, B, n] buffers are fresh each call, and their first touch page by page (4 KiB) costs as much
    as a third of the forward at T = 1000, B = 64 (measured; the torch allocator does not ask)."""
    return torch.from_numpy(np.empty(shape, dtype=np.float32 if dtype == torch.float32 else np.float64))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


_EMPTY3 = {dt: np.zeros((0, 0, 0), dtype=np.float32 if dt == torch.float32 else np.float64)
           for dt in _DTYPES}


def forward_no_grad(kernels, x, w_in_s, v0, a0, z0, r0, w_s, beta, params: ALIFParams,
                    record: bool = False):
    """The forward alone, outside autograd: ``(z [T, B, n], v_T, a_T, r_T, v, a)`` like
    :class:`ALIFSequenceNumba` (``v``, ``a`` ``[T, B, n]`` only with ``record``, else None)."""
    forward_loop, _, set_threads = kernels
    T, B, n_in = x.shape
    n = w_s.shape[0]
    set_threads(BLAS_THREADS)
    v, a, z, r = (s.detach().clone(memory_format=torch.contiguous_format) for s in (v0, a0, z0, r0))
    z_all = _empty((T, B, n), x.dtype)
    v_all = _empty((T, B, n), x.dtype) if record else None
    a_all = _empty((T, B, n), x.dtype) if record else None
    empty = _EMPTY3[x.dtype]
    forward_loop(
        _np(x).reshape(T * B, n_in), _np(w_in_s), _np(w_s), _np(beta), _consts(params, x.dtype),
        params.n_ref, _BLOCK, v.numpy(), a.numpy(), z.numpy(), r.numpy(), z_all.numpy(),
        v_all.numpy() if record else empty, a_all.numpy() if record else empty, empty,
        record, record, False,
    )
    return z_all, v, a, r, v_all, a_all


class ALIFSequenceNumba(torch.autograd.Function):
    """:class:`snn_icl.neurons.bptt.ALIFSequence` with the whole time loop compiled by numba.

    Same inputs (plus the kernels in front), outputs and equations; one compiled call for the
    forward and one for the backward.
    """

    @staticmethod
    def forward(ctx, kernels, x, w_in_s, v0, a0, z0, r0, w_s, beta, params: ALIFParams, record: bool):
        forward_loop = kernels[0]
        T, B, n_in = x.shape
        n = w_s.shape[0]
        x, w_in_s, w_s, beta = (t.contiguous() for t in (x, w_in_s, w_s, beta))
        kernels[2](BLAS_THREADS)
        v, a, z, r = (s.detach().clone(memory_format=torch.contiguous_format) for s in (v0, a0, z0, r0))
        z_all = _empty((T, B, n), x.dtype)
        v_all = _empty((T, B, n), x.dtype)
        a_all = _empty((T, B, n), x.dtype) if record else None
        a_start = _empty(((T + _BLOCK - 1) // _BLOCK, B, n), x.dtype)
        empty = _EMPTY3[x.dtype]
        forward_loop(
            x.detach().numpy().reshape(T * B, n_in), w_in_s.detach().numpy(), w_s.detach().numpy(),
            beta.detach().numpy(), _consts(params, x.dtype), params.n_ref, _BLOCK, v.numpy(),
            a.numpy(), z.numpy(), r.numpy(), z_all.numpy(), v_all.numpy(),
            a_all.numpy() if record else empty, empty if record else a_start.numpy(),
            True, record, not record,
        )
        ctx.save_for_backward(x, w_in_s, z_all, v_all, a_all if record else a_start,
                              z0.detach().contiguous(), r0.detach().contiguous(), w_s, beta)
        ctx.params, ctx.record, ctx.kernels = params, record, kernels
        ctx.mark_non_differentiable(r)
        ctx.set_materialize_grads(False)
        return z_all, v, a, r, (v_all if record else None), a_all

    @staticmethod
    def backward(ctx, gz_out, gv_T, ga_T, _g_r, gv_out, ga_out):
        x, w_in_s, z_all, v_all, a_src, z0, r0, w_s, beta = ctx.saved_tensors
        p: ALIFParams = ctx.params
        _, backward_loop, set_threads = ctx.kernels
        T, B, n_in = x.shape
        n = w_s.shape[0]
        need = ctx.needs_input_grad  # (kernels, x, w_in_s, v0, a0, z0, r0, w_s, beta, ...)
        set_threads(BLAS_THREADS)
        empty3 = _EMPTY3[x.dtype]
        empty2 = empty3.reshape(0, 0)

        def arr(g, empty):
            return (empty, False) if g is None else (_np(g), True)

        (gv, has_gv), (ga, has_ga) = arr(gv_out, empty3), arr(ga_out, empty3)
        # dL/dz the same at every step (z.sum(), z.mean(): an expanded tensor): one step of it
        gz_bcast = gz_out is not None and gz_out.stride(0) == 0
        gz, has_gz = arr(gz_out[:1] if gz_bcast else gz_out, empty3)
        (gvT, has_gvT), (gaT, has_gaT) = arr(gv_T, empty2), arr(ga_T, empty2)
        g_x = _empty(x.shape, x.dtype) if need[1] else None
        g_w_in = x.new_zeros(n_in, n) if need[2] else None
        g_w = x.new_zeros(n, n) if need[7] else None
        gv_first, ga_first, carry = x.new_empty(B, n), x.new_empty(B, n), x.new_empty(B, n)
        N = lambda t: t.detach().numpy()  # noqa: E731  (saved tensors, contiguous)
        backward_loop(
            N(x).reshape(T * B, n_in), N(w_in_s), N(w_s), N(beta), _consts(p, x.dtype), p.n_ref,
            _BLOCK, N(z_all), N(v_all), N(a_src), ctx.record, N(z0), N(r0), gz, has_gz, gz_bcast,
            gv, has_gv, ga, has_ga, gvT, has_gvT,
            gaT, has_gaT, need[1], need[2], need[7],
            g_x.numpy().reshape(T * B, n_in) if need[1] else empty2,
            g_w_in.numpy() if need[2] else empty2, g_w.numpy() if need[7] else empty2,
            gv_first.numpy(), ga_first.numpy(), carry.numpy(),
        )
        g_v0 = gv_first * p.alpha if need[3] else None
        g_a0 = ga_first * p.rho if need[4] else None
        g_z0 = carry if need[5] else None
        return None, g_x, g_w_in, g_v0, g_a0, g_z0, None, g_w, None, None, None


def _apply(kernels, x, w_in_s, v0, a0, z0, r0, w_s, beta, params, record):
    return ALIFSequenceNumba.apply(kernels, x, w_in_s, v0, a0, z0, r0, w_s, beta, params, record)


def run(x, w_in_s, v0, a0, z0, r0, w_s, beta, params: ALIFParams, record: bool):
    """The sequence with the compiled kernels (call :func:`kernels_for` first): outside autograd
    when nothing needs a gradient, else through :class:`ALIFSequenceNumba`."""
    kernels = _load()
    if torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, w_in_s, v0, a0, z0, w_s)
    ):
        return _apply(kernels, x, w_in_s, v0, a0, z0, r0, w_s, beta, params, record)
    return forward_no_grad(kernels, x, w_in_s, v0, a0, z0, r0, w_s, beta, params, record)
