"""The time loops of the ALIF fast path, written for numba's nopython mode.

Plain Python over numpy arrays (runnable, slowly, without numba); :mod:`.numba_kernels`
compiles them with ``numba.njit(cache=True, nogil=True)`` on first use. The equations and the
names are those of :class:`snn_icl.neurons.bptt.ALIFSequence` (its docstring has the BPTT); the
weights arrive pre-scaled by ``1 - alpha`` (``w_in_s``, ``w_s``).

Scalars arrive in ``consts = [v_th, alpha, rho, 1 - rho, gamma, 1, 0, n_ref]`` of the arrays' dtype, so a
float32 run computes in float32. No fastmath: the backward recomputes ``a_t`` with the forward's
very expression and must get the same bits.
"""

import numpy as np


def forward_loop(x2, w_in_s, w_s, beta, consts, n_ref, block, v, a, z, r, z_out, v_out, a_out,
                 a_start, store_v, store_a, store_start):
    """Run T steps in place on the state ``v, a, z, r`` ``[B, n]`` (the state after the last step).

    x2: inputs ``[T * B, n_in]`` (time-major rows); writes spikes ``z_out [T, B, n]``, and when
    asked the voltages ``v_out``, the adaptation ``a_out`` (``[T, B, n]``) and ``a`` before each
    block of ``block`` steps (``a_start [ceil(T / block), B, n]``). The recurrent input
    ``z_{t-1} w_s`` is the sum of the rows of ``w_s`` of the neurons that spiked (spikes are
    sparse); the input current ``x_t w_in_s`` is one BLAS matmul per block.
    """
    T = z_out.shape[0]
    B, n = v.shape
    v_th, alpha, rho, omr = consts[0], consts[1], consts[2], consts[3]
    one, zero, nref = consts[5], consts[6], consts[7]
    rec = np.empty(n, dtype=v.dtype)
    for start in range(0, T, block):
        K = min(block, T - start)
        if store_start:
            a_start[start // block] = a
        u = np.dot(x2[start * B:(start + K) * B], w_in_s)  # [K * B, n]
        for k in range(K):
            t = start + k
            for b in range(B):
                row = k * B + b
                for j in range(n):
                    rec[j] = u[row, j]
                for i in range(n):  # z_{t-1} w_s: only the rows of the neurons that spiked
                    zi = z[b, i]
                    if zi != 0:
                        for j in range(n):
                            rec[j] += zi * w_s[i, j]
                for j in range(n):
                    zp = z[b, j]
                    an = rho * a[b, j] + omr * zp
                    A = v_th + beta[j] * an
                    vn = alpha * v[b, j] + rec[j] - A * zp
                    rr = r[b, j]
                    sp = one if (rr == zero and vn > A) else zero
                    rd = rr - one
                    r[b, j] = nref if sp != zero else (rd if rd > zero else zero)
                    a[b, j] = an
                    v[b, j] = vn
                    z[b, j] = sp
                    z_out[t, b, j] = sp
                    if store_v:
                        v_out[t, b, j] = vn
                    if store_a:
                        a_out[t, b, j] = an


def backward_loop(x2, w_in_s, w_s, beta, consts, n_ref, block, z_all, v_all, a_src, a_is_full,
                  z0, r0, gz_out, has_gz, gv_out, has_gv, ga_out, has_ga, gv_T, has_gv_T, ga_T,
                  has_ga_T, need_x, need_w_in, need_w, g_x, g_w_in, g_w, gv_first, ga_first,
                  carry):
    """BPTT from t = T - 1 down to 0 (equations: :class:`snn_icl.neurons.bptt.ALIFSequence`).

    ``a_src`` is ``a`` at every step (``a_is_full``) or before every block, from which each
    block's ``a_t`` is recomputed. Optional incoming gradients come with a flag (the array is
    then a placeholder). Accumulates into ``g_w_in [n_in, n]`` and ``g_w [n, n]`` and writes
    ``g_x [T * B, n_in]``; on return ``gv_first``, ``ga_first`` hold ``gv``, ``ga`` of step 0 and
    ``carry`` holds ``dL/dz_0``-through-step-1, i.e. the gradient of the initial ``z``.

    Per step one dense BLAS matmul, ``gv_t w_s^T``; ``dL/dw_s += z_{t-1}^T gv_t`` sums the rows of
    ``gv_t`` of the neurons that spiked; the input gradients are two matmuls per block.
    """
    T, B, n = z_all.shape
    n_in = x2.shape[1]
    v_th, alpha, rho, omr, gamma = consts[0], consts[1], consts[2], consts[3], consts[4]
    one, zero = consts[5], consts[6]
    w_s_t = np.ascontiguousarray(w_s.T)
    w_in_s_t = np.ascontiguousarray(w_in_s.T)
    gv_blk = np.empty((block, B, n), dtype=v_all.dtype)
    a_blk = np.empty((block, B, n), dtype=v_all.dtype)
    gvn = np.zeros((B, n), dtype=v_all.dtype)  # gv_{t+1}
    gan = np.zeros((B, n), dtype=v_all.dtype)  # ga_{t+1}
    if has_gv_T:
        gvn[:] = gv_T
    if has_ga_T:
        gan[:] = ga_T
    fv, fa = one, one  # factors of gv_{t+1}, ga_{t+1}: 1 for the final state's gradients
    carry[:] = zero
    n_blocks = (T + block - 1) // block
    for blk in range(n_blocks - 1, -1, -1):
        start = blk * block
        stop = min(start + block, T)
        L = stop - start
        if not a_is_full:  # a_t of the block, with the forward's expression
            for i in range(L):
                t = start + i
                for b in range(B):
                    for j in range(n):
                        ap = a_src[blk, b, j] if i == 0 else a_blk[i - 1, b, j]
                        zp = (z0[b, j] if t == 0 else z_all[t - 1, b, j])
                        a_blk[i, b, j] = rho * ap + omr * zp
        for t in range(stop - 1, start - 1, -1):
            i = t - start
            kmax = min(n_ref, t)
            for b in range(B):
                for j in range(n):
                    a_t = a_src[t, b, j] if a_is_full else a_blk[i, b, j]
                    A = v_th + beta[j] * a_t
                    inv_A = one / A
                    vt = v_all[t, b, j]
                    s = (vt - A) * inv_A
                    m = one - abs(s)
                    ready = r0[b, j] <= t
                    for k in range(1, kmax + 1):
                        if z_all[t - k, b, j] != zero:
                            ready = False
                    psi = gamma * m if (ready and m > zero) else zero
                    gz = carry[b, j]
                    if has_gz:
                        gz += gz_out[t, b, j]
                    zp = z0[b, j] if t == 0 else z_all[t - 1, b, j]
                    g_v = gz * psi * inv_A + fv * gvn[b, j]
                    if has_gv:
                        g_v += gv_out[t, b, j]
                    gA = -gz * psi * vt * inv_A * inv_A - zp * g_v
                    g_a = beta[j] * gA + fa * gan[b, j]
                    if has_ga:
                        g_a += ga_out[t, b, j]
                    gv_blk[i, b, j] = g_v
                    gvn[b, j] = g_v
                    gan[b, j] = g_a
                    carry[b, j] = omr * g_a - A * g_v
            fv, fa = alpha, rho
            # dL/dz_{t-1} through step t: gv_t w_s^T - A_t gv_t + (1 - rho) ga_t
            carry += np.dot(gv_blk[i], w_s_t)
            if need_w:  # dL/dw_s += z_{t-1}^T gv_t, over the neurons that spiked
                for b in range(B):
                    for q in range(n):
                        zq = z0[b, q] if t == 0 else z_all[t - 1, b, q]
                        if zq != zero:
                            for j in range(n):
                                g_w[q, j] += zq * gv_blk[i, b, j]
        g = gv_blk[:L].reshape(L * B, n)
        if need_w_in:
            g_w_in += np.dot(x2[start * B:stop * B].T, g)
        if need_x:
            g_x[start * B:stop * B] = np.dot(g, w_in_s_t)
    gv_first[:] = gvn
    ga_first[:] = gan
