"""A clean stop on SIGTERM, the signal `kill`, Slurm (at a time limit, on preemption or
`scancel`) and container runtimes send before they kill a process.

Without it SIGTERM ends a training run at once and the iterations since its last checkpoint
(up to ``[train] checkpoint_minutes``) are trained again on resume. With it the iteration under
way finishes, a checkpoint is written and run.json says ``stopped`` with ``stopped_by:
"SIGTERM"``; ``--resume`` (or the same sweep command) continues from there, exactly. A second
SIGTERM stops at once, as Ctrl-C does, keeping the last checkpoint: a stop that takes too long
can always be forced.

The handler can only be installed from the main thread (a Python rule); a run trained in another
thread keeps the default (SIGTERM ends the process).
"""

from __future__ import annotations

import contextlib
import faulthandler
import signal
import sys
import threading
from typing import Any, Callable, Iterator

_requested: list[str] = []
"""Names of the stop signals received and not yet consumed (this process)."""
_training = [False]
"""Whether a run in this process is honouring stop requests now."""
_sticky = [False]
"""A sweep's pool worker: once asked to stop, it starts no further run."""


def _on_signal(signum: int, frame: Any) -> None:
    if _requested and _training[0]:
        raise KeyboardInterrupt(f"{signal.Signals(signum).name} again: stopping at once")
    _requested.append(signal.Signals(signum).name)


def requested() -> str | None:
    """The signal that asked this process to stop ("SIGTERM"), or None."""
    return _requested[0] if _requested else None


def dump_stacks_on_sigusr1() -> None:
    """``kill -USR1 PID`` prints the stack of every thread of this process to stderr and the
    process goes on: where a command that will not stop, or will not finish, is. (Unix only;
    elsewhere nothing changes.) The process's own stderr (file descriptor 2), also when
    ``sys.stderr`` is replaced by one without a file (pytest's capture, a notebook)."""
    stream = sys.__stderr__
    if hasattr(signal, "SIGUSR1") and stream is not None:
        faulthandler.register(signal.SIGUSR1, file=stream, all_threads=True, chain=False)


def stop_worker_on_sigterm() -> None:
    """For a sweep's pool worker, once at its start: SIGTERM is recorded whenever it arrives
    (also between runs, or before the first), and :func:`requested` stays set, so the worker
    stops the run it trains and starts no other."""
    _sticky[0] = True
    signal.signal(signal.SIGTERM, _on_signal)


@contextlib.contextmanager
def sigterm_handled_by(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` takes SIGTERM for the block and the previous handler is restored after it;
    outside the main thread (where Python cannot install one) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        # None: the previous handler was not set from Python (the default, then)
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[Callable[[], str | None]]:
    """While training: SIGTERM asks for a clean stop (the returned callable then gives its name;
    the trainer checks it after every iteration); a second one raises KeyboardInterrupt."""
    with sigterm_handled_by(_on_signal):
        _training[0] = True
        try:
            yield requested
        finally:
            _training[0] = False
            if not _sticky[0]:
                _requested.clear()
