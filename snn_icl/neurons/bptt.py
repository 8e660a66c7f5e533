"""The fast path of the ALIF dynamics in torch ops: a whole sequence as one autograd Function
with a hand-written BPTT backward through the equations of :mod:`snn_icl.neurons`.

Hand-written because autograd's per-step graph costs several times the arithmetic at [B, n] =
[64, 200]; the tests compare it with the autograd loop to ~1e-10 in float64.
"""

from __future__ import annotations

import torch

from snn_icl.neurons.alif import ALIFParams


# Steps per block: the fast path computes input currents, pseudo-derivatives and weight gradients
# for a block of steps at once (amortising the per-op overhead, which dominates at [B, n] size),
# while a block's [K, B, n] temporaries stay in cache (fresh [T, B, n] buffers cost page faults
# and memory bandwidth that are as expensive here as the arithmetic).
_BLOCK = 16


class ALIFSequence(torch.autograd.Function):
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
