"""The look of the i-th condition in every figure: ten colours (matplotlib's tab10), then the
same ten with the next line style, so that up to 40 conditions in one figure never share a
look and none is dropped (a colour list zipped with the conditions stops at ten)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

LINE_STYLES = ("-", "--", "-.", ":")
"""Line styles in the order conditions 0-9, 10-19, 20-29 and 30-39 use them."""


def colour(i: int) -> Any:
    """RGBA colour of condition ``i`` (0-based): tab10, repeating every ten."""
    return plt.get_cmap("tab10")(i % 10)


def line_style(i: int) -> str:
    """Line style of condition ``i``: solid for the first ten, then dashed, dash-dot, dotted."""
    return LINE_STYLES[(i // 10) % len(LINE_STYLES)]
