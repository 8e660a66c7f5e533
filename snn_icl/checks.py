"""Config validation shared by every layer (the bottom of the package: imports nothing of it)."""

from __future__ import annotations

from typing import Any


def check_value(cond: bool, key: str, msg: str, value: Any) -> None:
    """Config validation: ``ValueError("{key} {msg}, got {value!r}")`` unless ``cond``."""
    if not cond:
        raise ValueError(f"{key} {msg}, got {value!r}")
