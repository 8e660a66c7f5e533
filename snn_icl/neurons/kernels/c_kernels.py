"""Optional C kernels for the ALIF fast path (CPU, float32/float64).

The project's own numerics, hand-written: at [B, n] = [64, 200] every torch op costs ~4 us
(dispatch plus a pass through L2) and a step needs ~30 of them, so these kernels fuse a step's
element-wise work. They are compiled with the system C compiler on first use (about 0.3 s) and
cached in ``$SNN_ICL_CACHE_DIR`` or ``~/.cache/snn_icl``; without a compiler, or with
``SNN_ICL_NO_C_KERNELS=1``, :class:`snn_icl.neurons.bptt.ALIFSequence` runs instead (same results
up to rounding). torch.utils.cpp_extension was passed over: it needs ninja and a C++ build of
about a minute per machine, for kernels that are plain C.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from snn_icl.neurons.bptt import _BLOCK
from snn_icl.neurons.alif import ALIFParams

_C_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


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
/* One backward step (t = 0-based index of the step); see alif_bptt.ALIFSequence for the equations.    \
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


def _buildc_kernels() -> ctypes.CDLL | None:
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


def c_kernels() -> ctypes.CDLL | None:
    """The compiled kernels, or None (no compiler, build failed, or SNN_ICL_NO_C_KERNELS=1)."""
    global _c_lib, _c_tried
    if os.environ.get("SNN_ICL_NO_C_KERNELS", "") not in ("", "0"):
        return None
    if not _c_tried:
        _c_tried = True
        try:
            _c_lib = _buildc_kernels()
        except Exception:  # any build or load problem: the torch path is always there
            _c_lib = None
    return _c_lib


def c_kernels_available() -> bool:
    """Whether the fast path can use its compiled C kernels (else it runs in torch ops)."""
    return c_kernels() is not None


class ALIFSequenceC(torch.autograd.Function):
    """:class:`snn_icl.neurons.bptt.ALIFSequence` with the per-step element-wise work in the C kernels.

    Same inputs, outputs, saved state and equations; the forward runs whole blocks in C (the
    recurrent input summed over the rows of the neurons that spiked), the backward one C call
    plus one ``addmm`` (``gv_t w_s^T``) per step, and the block matmuls in torch as before.
    """

    @staticmethod
    def forward(ctx, x, w_in_s, v0, a0, z0, r0, w_s, beta, params: ALIFParams, record: bool):
        lib = c_kernels()
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
        lib = c_kernels()
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


def kernels_for(x: torch.Tensor) -> bool:
    """Whether the C kernels can run the sequence ``x`` (CPU, float32/float64, compiled)."""
    return x.device.type == "cpu" and x.dtype in _C_SUFFIX and c_kernels() is not None
