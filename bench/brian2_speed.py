"""Wall time per simulated second of the shipped LSNN in Brian2, next to torch, same input.

The network is the shipped checkpoint (51 inputs, 100 regular + 100 adaptive neurons, float64
everywhere). Entries, each on the same input (an episode's recorded place-cell input):

    compile        Brian2 cython target, first run with an empty code cache: code generation +
                   C compilation + the run (reported minus the cached run: the compile time)
    brian2-cython  the same network again, compiled code cached (in memory and on disk)
    brian2-numpy   Brian2's numpy target (no compiler)
    torch          snn_icl's LSNN forward (numba-compiled kernels where numba is installed), no autograd

for B = 1 copy and B = --batch copies (one NeuronGroup of B x 200 neurons, block-diagonal
synapses), open loop; then the closed loop (water maze coupled every 5 ms) of --batch episodes.
Wall time per simulated second: seconds of wall clock per 1 s (1000 steps of 1 ms) of network
time, for all B copies together. 1 thread (OMP_NUM_THREADS=1), median of --repeats.

    OMP_NUM_THREADS=1 python bench/brian2_speed.py [--batch 32] [--repeats 3] [--seconds 5]

Brian2 has a fixed cost per ``run`` call (it garbage-collects and prepares every code object,
~0.3-0.5 s here); it is reported separately ("set-up", a 1-step run), the per-second figure is
the rest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import brian2 as b2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from snn_icl.brian2.export import rollout_batches_backend, spec_from_agent  # noqa: E402
from snn_icl.brian2.standalone import BrianLSNN  # noqa: E402
from snn_icl.storage.checkpoint import load_agent, resolve  # noqa: E402
from snn_icl.envs.water_maze import WaterMaze  # noqa: E402
from snn_icl.episodes.rollout import rollout  # noqa: E402


def episode_input(agent, task, batch: int) -> np.ndarray:
    """x [T = 1000 ms, batch, n_in]: the network input of held-out episodes (float64)."""
    env = WaterMaze(task.env, batch, seed=1, dtype=torch.float64)
    sim = rollout(agent, env, deterministic=True)
    return sim.net_input.transpose(1, 2).reshape(-1, batch, agent.obs_dim).numpy()


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_second(run, x: np.ndarray, repeats: int) -> tuple[float, float]:
    """(wall s per simulated s beyond the set-up, set-up s per run): a T-step run minus a 1-step run."""
    setup = timed(lambda: run(x[:1]), repeats)
    total = timed(lambda: run(x), repeats)
    return (total - setup) / (len(x) / 1000.0), setup


def open_loop(agent, spec, x: np.ndarray, repeats: int) -> dict[str, tuple[float, float]]:
    batch = x.shape[1]
    out = {}
    with tempfile.TemporaryDirectory() as cache:  # an empty cache: measure the compilation
        b2.prefs.codegen.runtime.cython.cache_dir = cache
        t0 = time.perf_counter()
        net = BrianLSNN(spec, batch, target="cython")
        net.run_input(x[:1])
        first = time.perf_counter() - t0
        out["brian2-cython"] = per_second(net.run_input, x, repeats)
        out["compile"] = (first - out["brian2-cython"][1], 0.0)
    b2.prefs.codegen.runtime.cython.cache_dir = None
    net = BrianLSNN(spec, batch, target="numpy")
    out["brian2-numpy"] = per_second(net.run_input, x, max(1, repeats // 2))
    xt = torch.from_numpy(x)
    with torch.no_grad():
        agent.net(xt)  # compiles (or loads) the kernels once
        out["torch"] = per_second(agent.net, xt, repeats)
    return out


def closed_loop(agent, task, batch: int, repeats: int) -> dict[str, float]:
    seconds = task.env.episode_steps * task.agent.ms_per_step / 1000.0
    run = lambda backend: rollout_batches_backend(agent, task.env, batch, 1, backend=backend,  # noqa: E731
                                                  batch=batch, target="cython")
    run("brian2")  # warm-up; the code objects are those of the open-loop runs (cached)
    return {name: timed(lambda: run(name), repeats) / seconds for name in ("brian2", "torch")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="simulated seconds of open-loop input")
    args = parser.parse_args()
    torch.set_num_threads(1)
    agent, task, _ = load_agent(resolve("pretrained"))
    agent = agent.double()
    spec = spec_from_agent(agent)
    print(f"shipped LSNN: {spec.n_in} inputs, {spec.n} neurons, 1 thread, {args.seconds} s of input; "
          "wall seconds per simulated second (1 s = 1000 steps of 1 ms, all B copies together) "
          "beyond a fixed set-up per run")
    print(f"| entry | B = 1: s / sim. s | set-up (s) | B = {args.batch}: s / sim. s | set-up (s) |")
    print("|---|---|---|---|---|")
    rows = {b: open_loop(agent, spec, np.tile(episode_input(agent, task, b), (args.seconds, 1, 1)),
                         args.repeats) for b in (1, args.batch)}
    for name in ("brian2-cython", "brian2-numpy", "torch"):
        (a, sa), (b, sb) = rows[1][name], rows[args.batch][name]
        print(f"| {name} | {a:.3f} | {sa:.3f} | {b:.3f} | {sb:.3f} |")
    print(f"\ncython compile, once (then cached in memory and in the cache dir): "
          f"{rows[1]['compile'][0]:.1f} s (B = {args.batch} afterwards compiles nothing: "
          f"{rows[args.batch]['compile'][0]:.1f} s)")
    loop = closed_loop(agent, task, args.batch, args.repeats)
    print(f"\nclosed loop, {args.batch} water-maze episodes of 1 s at once (env step every 5 ms): "
          f"brian2-cython {loop['brian2']:.3f} s, torch {loop['torch']:.3f} s per simulated second")


if __name__ == "__main__":
    main()
