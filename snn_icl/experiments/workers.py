"""Independent measurements of many networks in worker processes, one torch thread each.

Measurements of different networks share nothing, so on a machine with few cores they run best
side by side, one thread each (a 200-neuron network on a batch of 64 episodes is too small for
two threads to pay). The workers are forkserver processes (no copy of the parent's torch state)
that die with the parent, also after kill -9 (:func:`snn_icl.experiments.sweep.die_with`).
"""

from __future__ import annotations

from typing import Any, Callable

from tqdm.auto import tqdm


def _start(parent: int) -> None:
    import torch

    from snn_icl.experiments.sweep import die_with

    torch.set_num_threads(1)
    die_with(parent)


def in_processes(fn: Callable[..., Any], calls: list[tuple[Any, ...]], *, workers: int = 1,
                 preload: str | None = None, desc: str = "networks",
                 progress: bool = True) -> list[Any]:
    """``[fn(*args) for args in calls]``, in that order, one torch thread each; with ``workers``
    > 1 in that many processes at once. ``fn`` must be a module-level function (``preload``: its module, imported
    once by the forkserver). The numbers are the same as one by one: each call seeds itself."""
    bar = tqdm(total=len(calls), desc=desc, disable=not progress)
    if workers <= 1 or len(calls) <= 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in the workers: the same speed whatever else runs
        try:
            out = []
            for args in calls:
                out.append(fn(*args))
                bar.update(1)
        finally:
            torch.set_num_threads(threads)
        bar.close()
        return out
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("forkserver")
    if preload:
        ctx.set_forkserver_preload([preload])
    results: list[Any] = [None] * len(calls)
    with ProcessPoolExecutor(max_workers=min(workers, len(calls)), mp_context=ctx,
                             initializer=_start, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(fn, *args): i for i, args in enumerate(calls)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update(1)
    bar.close()
    return results
