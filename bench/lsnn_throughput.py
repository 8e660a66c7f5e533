"""Forward+backward time of the LSNN next to norse's LSNNRecurrent and the matmul floor.

Defaults are the training size: n_in = 66, 100 regular + 100 adaptive neurons, batch 64,
T = 1000 steps, 2 threads. Each entry is warmed up once, then timed ``--repeats`` times, the
median is reported (all entries in the same run, interleaved, so they share the machine's load).

    python bench/lsnn_throughput.py                  # full size
    python bench/lsnn_throughput.py --T 200 --repeats 3

Entries:
    floor         the T recurrent matmuls [B, n] @ [n, n] of the forward plus the 2 T matmuls of
                  their backward (grad of the input, grad of the weight), timed alone
    lsnn-fast     LSNN(backend="bellec", fast=True): hand-written BPTT over the whole sequence,
                  with the numba-compiled kernels where numba is installed
                  (the default path)
    lsnn-torch    the same fast path forced into torch ops (SNN_ICL_NO_KERNELS=1)
    lsnn-autograd LSNN(backend="bellec", fast=False): per-step autograd loop
    norse         norse.torch.LSNNRecurrent of the same size

With 2 threads the numbers are only meaningful on an otherwise idle machine: when another
process holds a core, OpenMP's barriers make every multi-threaded op wait (seen here: the floor
going from 0.075 s to 13 s). Compare entries of the same run only.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch


def time_floor(B: int, n: int, T: int, dtype) -> float:
    z = (torch.rand(T, B, n) < 0.05).to(dtype)
    g = torch.randn(T, B, n, dtype=dtype)
    w = torch.randn(n, n, dtype=dtype)
    t0 = time.perf_counter()
    with torch.no_grad():
        for z_t in z.unbind(0):
            torch.mm(z_t, w)
        gw = torch.zeros(n, n, dtype=dtype)
        wt = w.t()
        for z_t, g_t in zip(z.unbind(0), g.unbind(0)):
            torch.mm(g_t, wt)
            gw.addmm_(z_t.t(), g_t)
    return time.perf_counter() - t0


def cpu_model() -> str:
    """The CPU's name: the ratios depend on it (seen here: 2.0 on one 2-core machine, 1.3-1.4 on another)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_module(net: torch.nn.Module, x: torch.Tensor) -> float:
    net.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    z, _ = net(x)
    # The cheapest loss that reaches every spike: the time measured is the network's.
    z.sum().backward()
    return time.perf_counter() - t0


def without_kernels(fn, *args):
    os.environ["SNN_ICL_NO_KERNELS"] = "1"
    try:
        return fn(*args)
    finally:
        del os.environ["SNN_ICL_NO_KERNELS"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, default=1000, help="time steps")
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    parser.add_argument("--n-in", type=int, default=66, help="inputs")
    parser.add_argument("--n-regular", type=int, default=100, help="regular neurons")
    parser.add_argument("--n-adaptive", type=int, default=100, help="adaptive neurons")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="threads of the compiled kernels' BLAS calls (default: "
                        "numba_kernels.BLAS_THREADS, one)")
    parser.add_argument("--float64", action="store_true", help="time in float64")
    parser.add_argument("--no-norse", action="store_true", help="skip norse")
    parser.add_argument("--no-autograd", action="store_true", help="skip the per-step autograd loop")
    args = parser.parse_args()

    from snn_icl.models.lsnn import LSNN
    from snn_icl.neurons import kernels_available

    torch.set_num_threads(args.threads)
    from snn_icl.neurons.kernels import numba_kernels

    if args.blas_threads is not None:
        numba_kernels.BLAS_THREADS = args.blas_threads
    torch.manual_seed(0)
    dtype = torch.float64 if args.float64 else torch.float32
    n = args.n_regular + args.n_adaptive
    T, B = args.T, args.batch
    # Poisson-like input spikes at ~20 Hz per input, scaled so that the network is active.
    x = (torch.rand(T, B, args.n_in) < 0.02).to(dtype) * 5.0

    fast = LSNN(args.n_in, args.n_regular, args.n_adaptive, fast=True).to(dtype)
    entries = {"floor": lambda: time_floor(B, n, T, dtype), "lsnn-fast": lambda: time_module(fast, x)}
    if kernels_available():
        entries["lsnn-torch"] = lambda: without_kernels(time_module, fast, x)
    if not args.no_autograd:
        slow = LSNN(args.n_in, args.n_regular, args.n_adaptive, fast=False).to(dtype)
        slow.load_state_dict(fast.state_dict())
        entries["lsnn-autograd"] = lambda: time_module(slow, x)
    if not args.no_norse:
        from norse.torch import LSNNRecurrent

        norse_net = LSNNRecurrent(args.n_in, n).to(dtype)
        entries["norse"] = lambda: time_module(norse_net, x)

    with torch.no_grad():
        z, _ = fast(x)
    print(
        f"T={T} B={B} n_in={args.n_in} n={n} dtype={str(dtype).removeprefix('torch.')} "
        f"threads={args.threads} (kernel BLAS {numba_kernels.BLAS_THREADS}) repeats={args.repeats}; LSNN rate {z.mean().item() * 1000:.1f} Hz; "
        f"compiled kernels {'on' if kernels_available() else 'off'}\n"
        f"CPU {cpu_model()} ({os.cpu_count()} logical), torch {torch.__version__}"
    )
    times: dict[str, list[float]] = {name: [] for name in entries}
    for fn in entries.values():  # warm-up
        fn()
    for _ in range(args.repeats):
        for name, fn in entries.items():
            times[name].append(fn())
    med = {name: statistics.median(ts) for name, ts in times.items()}

    print(f"{'entry':<14} {'median s':>9} {'min s':>8} {'/ floor':>8}")
    for name, ts in times.items():
        print(f"{name:<14} {med[name]:9.3f} {min(ts):8.3f} {med[name] / med['floor']:8.2f}")
    print(f"ratio lsnn-fast / floor      = {med['lsnn-fast'] / med['floor']:.2f}")
    if "lsnn-torch" in med:
        print(f"ratio lsnn-torch / floor     = {med['lsnn-torch'] / med['floor']:.2f}")
    if "lsnn-autograd" in med:
        print(f"ratio lsnn-autograd / fast   = {med['lsnn-autograd'] / med['lsnn-fast']:.2f}")
    if "norse" in med:
        print(f"ratio norse / lsnn-fast      = {med['norse'] / med['lsnn-fast']:.2f}")
        if "lsnn-autograd" in med:
            print(f"ratio norse / lsnn-autograd  = {med['norse'] / med['lsnn-autograd']:.2f}")


if __name__ == "__main__":
    main()
