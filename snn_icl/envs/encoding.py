"""Place-cell population code for positions in the circular pool.

Each place cell k has a centre c_k on a ``place_grid x place_grid`` grid over the square
[-R, R]^2 that encloses the pool (R = pool radius) and an isotropic Gaussian tuning curve

    r_k(p) = exp(-|p - c_k|^2 / (2 sigma^2))          (lengths in pool radii; r_k in (0, 1])

Cell order is row-major with x varying fastest: cell ``k = iy * place_grid + ix`` sits at
``(xs[ix], ys[iy])`` where ``xs = ys = linspace(-R, R, place_grid)`` (a single cell, grid 1,
sits at the pool centre). Corner cells lie outside the pool; they still respond (weakly) to
positions near the wall, which keeps the code simple and the grid regular.

Pure functions, no state: the environment calls them on every observation.
"""

from __future__ import annotations

import torch


def place_cell_centres(
    place_grid: int,
    pool_radius: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Centres of the place cells, shape ``[place_grid**2, 2]`` (pool radii), x fastest."""
    if place_grid < 1:
        raise ValueError(f"place_grid must be >= 1, got {place_grid!r}")
    if place_grid == 1:
        axis = torch.zeros(1, device=device, dtype=dtype)
    else:
        axis = torch.linspace(-pool_radius, pool_radius, place_grid, device=device, dtype=dtype)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")  # [G, G] each; row = y, column = x
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)  # [G*G, 2]


def place_cell_activity(position: torch.Tensor, centres: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian place-cell rates ``exp(-|p - c_k|^2 / (2 sigma^2))``.

    Args:
        position: ``[..., 2]`` positions (pool radii).
        centres: ``[N, 2]`` place-cell centres, e.g. from :func:`place_cell_centres`.
        sigma: tuning width (pool radii), > 0.

    Returns:
        ``[..., N]`` rates in (0, 1], same dtype as ``position``.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    diff = position.unsqueeze(-2) - centres  # [..., N, 2]
    sq_dist = (diff * diff).sum(-1)  # [..., N]
    return torch.exp(-sq_dist / (2.0 * sigma * sigma))


def encode_position(
    position: torch.Tensor, place_grid: int, pool_radius: float, sigma: float
) -> torch.Tensor:
    """Place-cell code of ``position`` ``[..., 2]`` -> ``[..., place_grid**2]`` (convenience)."""
    centres = place_cell_centres(place_grid, pool_radius, device=position.device, dtype=position.dtype)
    return place_cell_activity(position, centres, sigma)
