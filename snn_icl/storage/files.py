"""Files: atomic writes, tensors as safetensors, metadata as JSON/TOML, run directories.

Every write goes to a temporary file in the target directory and is renamed into place, so a
crash or a bad value never leaves a half-written file and never clobbers a good one. Nothing is
pickled: tensors go to safetensors, everything else to TOML or JSON.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import tempfile
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Callable

import tomli_w
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file



def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_toml(path: str | Path, data: dict[str, Any]) -> Path:
    return write_text(path, toml_text(data))


def toml_text(data: dict[str, Any]) -> str:
    """``data`` as TOML text (keys whose value is None left out)."""
    return tomli_w.dumps(_drop_none(data))


def _drop_none(data: Any) -> Any:
    # TOML has no null: optional keys left unset are omitted (the loader fills the default).
    if isinstance(data, dict):
        return {k: _drop_none(v) for k, v in data.items() if v is not None}
    return data


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> Path:
    """Save named tensors (made contiguous, bool kept as bool) to a safetensors file."""
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}

    def write(tmp: Path) -> None:
        try:
            save_file(flat, str(tmp), metadata=metadata)
        except SafetensorError as err:  # its I/O errors (a full disk) are not OSErrors
            raise OSError(errno.EIO, f"cannot write tensors ({err})", str(path)) from None

    return atomic_write(path, write)


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tensor file at {path}")
    return load_file(str(path))


def versions() -> dict[str, str]:
    """Versions of the pieces a result depends on, recorded in every run directory."""
    import numpy

    return {"snn_icl": package_version("snn-icl"), "torch": torch.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}
