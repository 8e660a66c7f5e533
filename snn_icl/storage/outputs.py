"""Output directories: one owner at a time (an OS file lock), and one kind of output each.

    with claim(run, "training run"):     # refuses a directory another process is writing,
        ...                              # and one that holds another kind of output

The lock is ``fcntl.flock`` on ``DIR/.lock`` (released by the OS when the process ends, even
on SIGKILL, so a killed run never leaves a stale lock); the file holds the owner's PID and
command for the message a second process gets. The kind is recorded in ``DIR/.snn-icl-output``;
directories written before it existed are recognised by their files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from pathlib import Path
from typing import Iterator

from snn_icl.storage import files

LOCK = ".lock"
KIND = ".snn-icl-output"
_KNOWN_FILES = {"checkpoint.safetensors": "training run", "simulation.safetensors": "simulation",
                "compare.md": "compare", "retention.md": "retention", "analysis.json": "analysis",
                "sweep.json": "sweep", "report.md": "report"}


def kind_of(directory: Path) -> str | None:
    """The kind of output a directory holds (None: empty or not ours)."""
    marker = directory / KIND
    if marker.is_file():
        try:
            return json.loads(marker.read_text())["kind"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{marker} is corrupt; remove it if {directory} is yours") from None
    for name, kind in _KNOWN_FILES.items():
        if (directory / name).exists():
            return kind
    return None


def _check_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"--out {directory} is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the output directory {directory}: {err.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"the output directory {directory} is not writable")


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files of atomic writes (``.NAME.*.tmp``) a killed process left.
    Only safe while holding the directory's lock."""
    removed = []
    for tmp in directory.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


@contextlib.contextmanager
def claim(directory: str | Path, kind: str, *, overwrite: bool = False) -> Iterator[Path]:
    """Own ``directory`` for writing output of ``kind`` until the block ends.

    Raises ValueError (one line naming the directory) when it is a file, cannot be created or
    written, holds another kind of output (unless ``overwrite``), or another process holds it.
    """
    directory = Path(directory)
    _check_directory(directory)
    lock_path = directory / LOCK
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            raise ValueError(f"{directory} is in use by {holder}; wait for it to finish or choose "
                             "another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} ({' '.join(Path(a).name for a in sys.argv[:2])})"
                      .encode(), 0)
        found = kind_of(directory)
        if found is not None and found != kind and not overwrite:
            raise ValueError(f"{directory} holds a {found}, not a {kind}; choose another --out "
                             "(or pass --overwrite to replace it)")
        if found != kind:
            files.write_json(directory / KIND, {"kind": kind})
        remove_stale_temporaries(directory)
        yield directory
    finally:
        os.close(fd)  # closing the descriptor releases the lock
