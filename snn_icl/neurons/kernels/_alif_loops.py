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
    idx = np.empty(n, dtype=np.int64)
    # An input held for all T steps (an observation during one env step): x_t w_in_s once.
    held = T > 1
    for q in range(B, T * B):
        if not held:
            break
        for c in range(x2.shape[1]):
            if x2[q, c] != x2[q % B, c]:
                held = False
    u = np.dot(x2[:B], w_in_s) if held else np.empty((0, n), dtype=v.dtype)
    for start in range(0, T, block):
        K = min(block, T - start)
        if store_start:
            a_start[start // block] = a
        if not held:
            u = np.dot(x2[start * B:(start + K) * B], w_in_s)  # [K * B, n]
        for k in range(K):
            t = start + k
            for b in range(B):
                row = b if held else k * B + b
                # z_{t-1} w_s: the rows of the neurons that spiked. (No array views in the hot
                # loops: numba reference-counts each one.)
                cnt = 0
                for i in range(n):  # branch-free (spikes are unpredictable)
                    idx[cnt] = i
                    cnt += 1 if z[b, i] != zero else 0
                for j in range(n):
                    rec[j] = u[row, j]
                c = 0
                while c + 3 < cnt:  # four rows per pass over rec, added in the same order
                    i0, i1, i2, i3 = idx[c], idx[c + 1], idx[c + 2], idx[c + 3]
                    s0, s1, s2, s3 = z[b, i0], z[b, i1], z[b, i2], z[b, i3]
                    for j in range(n):
                        rec[j] = (((rec[j] + s0 * w_s[i0, j]) + s1 * w_s[i1, j]) + s2 * w_s[i2, j]
                                  + s3 * w_s[i3, j])
                    c += 4
                while c < cnt:
                    i = idx[c]
                    zi = z[b, i]
                    for j in range(n):
                        rec[j] += zi * w_s[i, j]
                    c += 1
                # The element-wise update in passes of one store each: LLVM vectorises a loop only
                # when it can rule out aliasing between its arrays with a few runtime checks.
                for j in range(n):  # a_t = rho a_{t-1} + (1 - rho) z_{t-1}
                    a[b, j] = rho * a[b, j] + omr * z[b, j]
                for j in range(n):  # v_t = alpha v_{t-1} + (1-alpha)(x_t W_in + z_{t-1} W) - A_t z_{t-1}
                    v[b, j] = alpha * v[b, j] + rec[j] - (v_th + beta[j] * a[b, j]) * z[b, j]
                for j in range(n):  # z_t = [v_t > A_t] unless refractory
                    z[b, j] = one if (r[b, j] == zero and v[b, j] > v_th + beta[j] * a[b, j]) else zero
                for j in range(n):  # r_t = n_ref after a spike, else counting down to 0
                    rd = r[b, j] - one
                    r[b, j] = nref if z[b, j] != zero else (rd if rd > zero else zero)
            z_out[t] = z
            if store_v:
                v_out[t] = v
            if store_a:
                a_out[t] = a


def backward_loop(x2, w_in_s, w_s, beta, consts, n_ref, block, z_all, v_all, a_src, a_is_full,
                  z0, r0, gz_out, has_gz, gz_bcast, gv_out, has_gv, ga_out, has_ga, gv_T,
                  has_gv_T, ga_T, has_ga_T, need_x, need_w_in, need_w, g_x, g_w_in, g_w,
                  gv_first, ga_first, carry):
    """BPTT from t = T - 1 down to 0 (equations: :class:`snn_icl.neurons.bptt.ALIFSequence`).

    ``a_src`` is ``a`` at every step (``a_is_full``) or before every block, from which each
    block's ``a_t`` is recomputed. Optional incoming gradients come with a flag (the array is
    then a placeholder; with ``gz_bcast``, ``gz_out [1, B, n]`` is dL/dz of every step).
    Accumulates into ``g_w_in [n_in, n]`` and ``g_w [n, n]`` and writes
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
    zeros = np.zeros((B, n), dtype=v_all.dtype)
    blocked = np.empty((B, n), dtype=v_all.dtype)
    c_v = np.empty(n, dtype=v_all.dtype)
    c_a = np.empty(n, dtype=v_all.dtype)
    g_z = np.empty(n, dtype=v_all.dtype)
    idx = np.empty(n, dtype=np.int64)
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
                a_p = a_src[blk] if i == 0 else a_blk[i - 1]
                z_p = z0 if t == 0 else z_all[t - 1]
                a_i = a_blk[i]
                for b in range(B):
                    for j in range(n):
                        a_i[b, j] = rho * a_p[b, j] + omr * z_p[b, j]
        for t in range(stop - 1, start - 1, -1):
            i = t - start
            # The step's rows, chosen once (the inner loop is then branch-free and vectorises).
            a_t = a_src[t] if a_is_full else a_blk[i]
            v_t = v_all[t]
            z_p = z0 if t == 0 else z_all[t - 1]
            gz_t = (gz_out[0] if gz_bcast else gz_out[t]) if has_gz else zeros
            gv_o = gv_out[t] if has_gv else zeros
            ga_o = ga_out[t] if has_ga else zeros
            gv_t = gv_blk[i]
            # refractory at t: blocked since before t = 1, or a spike in the last n_ref steps
            tt = one * t
            for b in range(B):
                for j in range(n):
                    blocked[b, j] = one if r0[b, j] > tt else zero
            for k in range(1, min(n_ref, t) + 1):
                z_k = z_all[t - k]
                for b in range(B):
                    for j in range(n):
                        blocked[b, j] += z_k[b, j]
            for b in range(B):  # in passes of one store each, so that they vectorise
                for j in range(n):  # dz/dv = psi / A,  psi = gamma max(0, 1 - |v~|) ready
                    A = v_th + beta[j] * a_t[b, j]
                    inv_A = one / A
                    m = one - abs((v_t[b, j] - A) * inv_A)
                    c_v[j] = gamma * m * inv_A if (blocked[b, j] == zero and m > zero) else zero
                for j in range(n):  # beta dz/dA = -beta psi v / A^2 = -beta (dz/dv) v / A
                    c_a[j] = -beta[j] * c_v[j] * v_t[b, j] / (v_th + beta[j] * a_t[b, j])
                for j in range(n):  # gz_t: direct + through step t+1
                    g_z[j] = carry[b, j] + gz_t[b, j]
                for j in range(n):  # gv_t = gz_t psi / A + alpha gv_{t+1} (+ direct)
                    gvn[b, j] = g_z[j] * c_v[j] + fv * gvn[b, j] + gv_o[b, j]
                for j in range(n):  # ga_t = beta gA_t + rho ga_{t+1} (+ direct)
                    gan[b, j] = (g_z[j] * c_a[j] - beta[j] * z_p[b, j] * gvn[b, j] + fa * gan[b, j]
                                 + ga_o[b, j])
                for j in range(n):  # dL/dz_{t-1} through step t, less gv_t w_s^T: (1-rho) ga - A gv
                    carry[b, j] = omr * gan[b, j] - (v_th + beta[j] * a_t[b, j]) * gvn[b, j]
            gv_t[:] = gvn
            fv, fa = alpha, rho
            # dL/dz_{t-1} through step t: gv_t w_s^T - A_t gv_t + (1 - rho) ga_t
            carry += np.dot(gv_t, w_s_t)
            if need_w:  # dL/dw_s += z_{t-1}^T gv_t, over the neurons that spiked
                for b in range(B):
                    cnt = 0
                    for q in range(n):  # branch-free
                        idx[cnt] = q
                        cnt += 1 if z_p[b, q] != zero else 0
                    c = 0
                    while c + 3 < cnt:  # four rows per pass over gv_t
                        q0, q1, q2, q3 = idx[c], idx[c + 1], idx[c + 2], idx[c + 3]
                        s0, s1, s2, s3 = z_p[b, q0], z_p[b, q1], z_p[b, q2], z_p[b, q3]
                        for j in range(n):
                            g = gv_t[b, j]
                            g_w[q0, j] += s0 * g
                            g_w[q1, j] += s1 * g
                            g_w[q2, j] += s2 * g
                            g_w[q3, j] += s3 * g
                        c += 4
                    while c < cnt:
                        q = idx[c]
                        zq = z_p[b, q]
                        for j in range(n):
                            g_w[q, j] += zq * gv_t[b, j]
                        c += 1
        g = gv_blk[:L].reshape(L * B, n)
        if need_w_in:
            g_w_in += np.dot(x2[start * B:stop * B].T, g)
        if need_x:
            g_x[start * B:stop * B] = np.dot(g, w_in_s_t)
    gv_first[:] = gvn
    ga_first[:] = gan
