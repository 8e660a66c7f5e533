"""Data-parallel PPO on several CPU processes (``[train] processes = N``): one run, N cores.

Process 0 is the training process (run directory, Adam, checkpoints, metrics); it starts N - 1
helpers. Every iteration each process collects ``batch_episodes / N`` whole episodes with the same
weights, and at every minibatch step the N gradients are averaged (torch.distributed, gloo, on
this machine), so an iteration is the PPO update one process would make on the whole batch:
advantages are normalised over the whole minibatch, losses are means over all of its episodes.
(The dark-rate penalty is a mean over each process's own dark steps, averaged over processes.)
Only process 0 holds Adam: it clips the averaged gradient, steps, and sends the new weights to
the helpers, so nothing but the weights has to stay in step, and a checkpoint is process 0's
state exactly as with one process.

Randomness: each iteration process 0 draws every helper's generator seed and env seed from the
run's generator, so an N-process run is reproducible from its task file and seed and resumes
exactly (helpers keep nothing across iterations but the weights they are sent). It is a
different stream of draws from the one-process run's.

torch's DistributedDataParallel was passed over: it averages gradients in hooks prepared by the
module's ``forward``, while the agents are trained through ``evaluate_sequence``, and it would
need Adam's state in every process; one flat all-reduce per step and a broadcast of the weights
are all that is needed here.
"""

from __future__ import annotations

import datetime
import multiprocessing
import signal
import socket
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from snn_icl.train.errors import HelperError, NonFiniteError

TIMEOUT = datetime.timedelta(minutes=15)
"""Longest wait for another process at a collective step (a dead helper is noticed at once:
its connection closes)."""
_STOP, _ITERATE = 0, 1


def helper_seeds(generator: torch.Generator, world: int) -> Tensor:
    """Each helper's (generator seed, env seed) for one iteration, [world - 1, 2] int64, drawn
    from the run's generator; env seeds are even, as every training env seed (evaluation seeds
    are odd)."""
    draws = torch.randint(0, 2 ** 40, (world - 1, 2), generator=generator)
    return draws * torch.tensor([1, 2])


class Sync:
    """The collective steps of a PPO iteration, seen from one process (rank) of ``world``."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world

    def plan(self, iteration: int = 0, generator: torch.Generator | None = None,
             stop: bool = False) -> tuple[int, int, int] | None:
        """Start an iteration. Process 0 draws a (generator seed, env seed) pair per helper from
        ``generator`` and sends them with the iteration; every process gets back ``(iteration,
        generator seed, env seed)`` for itself (process 0: its own generator goes on, the seeds
        are unused), or None when ``stop``."""
        msg = torch.zeros(2 + 2 * self.world, dtype=torch.int64)
        if self.rank == 0:
            msg[0], msg[1] = (_STOP if stop else _ITERATE), iteration
            if not stop:
                msg[4:] = helper_seeds(generator, self.world).reshape(-1)
        dist.broadcast(msg, src=0)
        if int(msg[0]) == _STOP:
            return None
        gen_seed, env_seed = (int(v) for v in msg[2 + 2 * self.rank:4 + 2 * self.rank])
        return int(msg[1]), gen_seed, env_seed

    def moments(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation (n - 1) over every process's advantages ``a`` [T, b]."""
        s = torch.stack([a.sum(), a.pow(2).sum(), torch.tensor(float(a.numel()))]).double()
        dist.all_reduce(s)
        n = s[2]
        mean = s[0] / n
        var = (s[1] - n * mean ** 2) / (n - 1)
        return mean.to(a.dtype), var.clamp(min=0).sqrt().to(a.dtype)

    def gradients(self, agent: nn.Module, loss: Tensor) -> Tensor:
        """Replace every parameter's gradient by its mean over the processes; returns the mean
        loss (for the finiteness check: a helper's NaN shows here)."""
        params = list(agent.parameters())
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                          for p in params] + [loss.detach().reshape(1)])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            if p.grad is not None:
                p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        return flat[-1]

    def weights(self, agent: nn.Module) -> None:
        """Process 0's weights to every helper."""
        with torch.no_grad():
            flat = parameters_to_vector(agent.parameters()).contiguous()
            dist.broadcast(flat, src=0)
            if self.rank:
                vector_to_parameters(flat, agent.parameters())

    def gather(self, obj: Any) -> list[Any] | None:
        """Every process's ``obj`` on process 0 (in rank order); None on the helpers."""
        out = [None] * self.world if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0)
        return out


def mean_stats(per_process: list[dict[str, float]]) -> dict[str, float]:
    """Diagnostics averaged over the processes that logged each one (in process 0's order)."""
    keys = list(dict.fromkeys(k for stats in per_process for k in stats))
    return {k: sum(s[k] for s in per_process if k in s) / sum(k in s for s in per_process)
            for k in keys}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


Work = Callable[[Any, nn.Module, Sync, tuple[int, int, int]], None]
"""A helper's share of one iteration: ``work(task, agent, sync, plan)`` (a module-level function,
so that a spawned process can import it)."""


@contextmanager
def data_parallel(task: Any, agent: nn.Module, work: Work) -> Iterator[Sync | None]:
    """Start ``task.train.processes - 1`` helpers for ``agent``'s run, each doing ``work`` every
    iteration, and yield process 0's :class:`Sync` (None with one process). On leaving, helpers
    are told to stop (or, after an error, killed)."""
    world = task.train.processes
    if world == 1:
        yield None
        return
    from snn_icl.config import task_to_dict

    ctx = multiprocessing.get_context("spawn")
    # one pipe per helper to say it is ready (pipes hold no semaphore that a killed helper
    # could leave behind)
    pipes = [ctx.Pipe(duplex=False) for _ in range(1, world)]
    address = f"tcp://127.0.0.1:{_free_port()}"
    helpers = [ctx.Process(target=_helper, args=(rank, world, address, task_to_dict(task),
                                                 pipes[rank - 1][1], work),
                           name=f"snn-icl-helper-{rank}") for rank in range(1, world)]
    for h in helpers:
        h.start()
    sync = Sync(0, world)
    ok = False
    try:
        _wait_ready([receive for receive, _ in pipes], helpers)
        dist.init_process_group("gloo", init_method=address, rank=0, world_size=world,
                                timeout=TIMEOUT)
        sync.weights(agent)
        try:
            yield sync
        except NonFiniteError:
            raise
        except RuntimeError as err:  # a collective step failed: say which helper stopped
            for h in helpers:  # the broken connection can be seen before the exit is
                h.join(timeout=5)
            dead = [f"{h.name} (exit code {h.exitcode})" for h in helpers if not h.is_alive()]
            if dead:
                raise HelperError(f"data-parallel training stopped: {', '.join(dead)} ended "
                                  f"({err})") from err
            raise
        sync.plan(stop=True)
        ok = True
    finally:
        for h in helpers:
            h.join(timeout=30 if ok else 0)
            if h.is_alive():
                h.kill()
                h.join()
        if dist.is_initialized():
            dist.destroy_process_group()
        for receive, send in pipes:
            receive.close()
            send.close()


def _wait_ready(pipes: list[Any], helpers: list[Any]) -> None:
    """Wait until every helper has built its agent (a helper that dies first is reported)."""
    for pipe, helper in zip(pipes, helpers):
        while not pipe.poll(0.5):
            if not helper.is_alive():
                raise HelperError(f"data-parallel helper {helper.name} ended before training "
                                  f"began (exit code {helper.exitcode})")
        pipe.recv()


def _helper(rank: int, world: int, address: str, task_dict: dict[str, Any], ready: Any,
            work: Work) -> None:  # ready: the sending end of a pipe
    """A helper process: receive the weights, then ``work`` on each iteration's plan until
    process 0 says stop (or goes away)."""
    # the training process decides when to stop; a Ctrl-C or SIGTERM to the process group
    # reaches it, and it stops the helpers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # tqdm's default lock is a multiprocessing semaphore, which a helper killed after an error
    # would leave registered (a warning at exit); a helper draws no bars
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    from snn_icl.config import make_agent, task_from_dict

    task = task_from_dict(task_dict)
    torch.set_num_threads(task.train.threads)
    agent = make_agent(task)
    ready.send(rank)
    dist.init_process_group("gloo", init_method=address, rank=rank, world_size=world,
                            timeout=TIMEOUT)
    sync = Sync(rank, world)
    sync.weights(agent)
    while (plan := sync.plan()) is not None:
        work(task, agent, sync, plan)
    dist.destroy_process_group()
