"""Rate maps and Skaggs spatial information, with a circular-shift shuffle control.

Positions and unit activity are pooled over all steps and episodes (the platform moves between
episodes, so these are maps in pool coordinates). A rate map is the activity summed per spatial
bin divided by the time spent there, both smoothed with the same Gaussian (Skaggs et al. 1993):

    rate_i = G * sum(activity in bin i) / G * occupancy_i          (activity units per env step)
    I = sum_i p_i (rate_i / mean) log2(rate_i / mean),  p_i = occupancy share, mean = sum_i p_i rate_i

in bits per spike (LSNN spike counts) or bits per unit activity (rectified LSTM/transformer units).
The shuffle control shifts each episode's activity circularly in time against its positions (by
at least ``min_shift`` steps), which keeps the activity statistics and breaks the link to place;
a unit is spatially informative when its information exceeds the 95th percentile of its own
shuffles. Because every agent here sees a place-cell population code, nearly every unit inherits
some spatial tuning, so a stricter *place-field-like* count also asks for a compact field (at
most ``max_field_fraction`` of the visited bins above half the peak rate) that is stable (rate
maps of even and odd episodes correlate by at least ``min_stability``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def spatial_bins(position: Tensor, pool_radius: float, n_bins: int) -> Tensor:
    """Flat index of the square bin of each position [..., 2] on an n_bins x n_bins grid over
    [-R, R]^2 (row = y, column = x)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins!r}")
    cell = ((position / pool_radius + 1.0) / 2.0 * n_bins).floor().long().clamp(0, n_bins - 1)
    return cell[..., 1] * n_bins + cell[..., 0]


def _gaussian_smooth(maps: Tensor, n_bins: int, sigma_bins: float) -> Tensor:
    """Smooth maps [..., n_bins^2] with a separable Gaussian of ``sigma_bins`` (zero padding)."""
    if sigma_bins <= 0:
        return maps
    radius = max(1, int(math.ceil(3 * sigma_bins)))
    x = torch.arange(-radius, radius + 1, dtype=maps.dtype)
    k = torch.exp(-0.5 * (x / sigma_bins) ** 2)
    k = k / k.sum()
    lead = maps.shape[:-1]
    img = maps.reshape(-1, 1, n_bins, n_bins)
    img = torch.nn.functional.conv2d(img, k.view(1, 1, 1, -1), padding=(0, radius))
    img = torch.nn.functional.conv2d(img, k.view(1, 1, -1, 1), padding=(radius, 0))
    return img.reshape(*lead, n_bins * n_bins)


def rate_maps(activity: Tensor, bins: Tensor, n_bins: int, *, sigma_bins: float = 1.0,
              min_occupancy: float = 1.0) -> tuple[Tensor, Tensor]:
    """Occupancy-normalised rate maps.

    Args:
        activity: [..., T, B, N] activity per env step (the leading dims, e.g. shuffles, batch).
        bins: [T, B] spatial bin of each step (:func:`spatial_bins`).
        min_occupancy: bins with less smoothed occupancy (env steps) are left out (NaN).

    Returns (rate [..., N, n_bins^2] in activity per env step, occupancy [n_bins^2] in steps,
    smoothed; NaN rates where the occupancy is too low).
    """
    if activity.shape[-3:-1] != bins.shape:
        raise ValueError(f"activity [..., T, B, N] must match bins [T, B], got "
                         f"{tuple(activity.shape)} and {tuple(bins.shape)}")
    nb2 = n_bins * n_bins
    flat = bins.reshape(-1)
    act = activity.reshape(*activity.shape[:-3], -1, activity.shape[-1]).double()
    ones = torch.ones(len(flat), dtype=torch.float64)
    occ = torch.zeros(nb2, dtype=torch.float64).index_add_(0, flat, ones)
    sums = torch.zeros(*act.shape[:-2], nb2, act.shape[-1], dtype=torch.float64)
    sums.index_add_(sums.dim() - 2, flat, act)
    occ_s = _gaussian_smooth(occ, n_bins, sigma_bins)
    sums_s = _gaussian_smooth(sums.transpose(-1, -2), n_bins, sigma_bins)  # [..., N, nb2]
    rate = sums_s / occ_s.clamp(min=1e-12)
    rate = torch.where(occ_s >= min_occupancy, rate, torch.full_like(rate, math.nan))
    return rate, occ_s


def skaggs_information(rate: Tensor, occupancy: Tensor) -> Tensor:
    """Skaggs spatial information [...] (bits per unit of activity) of rate maps [..., nb2] with
    occupancy [nb2]; NaN bins are left out. A unit that is silent everywhere gets 0."""
    valid = ~torch.isnan(rate)
    p = torch.where(valid, occupancy.expand_as(rate), torch.zeros_like(rate))
    p = p / p.sum(-1, keepdim=True).clamp(min=1e-12)
    r = torch.where(valid, rate, torch.zeros_like(rate)).clamp(min=0)
    mean = (p * r).sum(-1, keepdim=True)
    ratio = r / mean.clamp(min=1e-300)
    terms = torch.where(ratio > 0, p * ratio * torch.log2(ratio.clamp(min=1e-300)), torch.zeros_like(r))
    return torch.where(mean[..., 0] > 0, terms.sum(-1), torch.zeros_like(mean[..., 0]))


def circular_shifts(activity: Tensor, n_shuffles: int, min_shift: int,
                    generator: torch.Generator) -> Tensor:
    """[S, T, B, N]: each episode's activity [T, B, N] rolled by a random shift in
    [min_shift, T - min_shift] steps (a different shift per shuffle and episode)."""
    T, B = activity.shape[:2]
    if not 0 < min_shift <= T - min_shift:
        raise ValueError(f"min_shift must be in 1..T/2 (T = {T}), got {min_shift!r}")
    shift = torch.randint(min_shift, T - min_shift + 1, (n_shuffles, B), generator=generator)
    idx = (torch.arange(T)[None, :, None] + shift[:, None, :]) % T  # [S, T, B]
    return activity[idx, torch.arange(B)[None, None, :]]


def spatial_information(activity: Tensor, position: Tensor, pool_radius: float, *,
                        n_bins: int = 20, sigma_bins: float = 1.0, n_shuffles: int = 50,
                        min_shift: int | None = None, chunk: int = 10,
                        generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Rate maps, spatial information and the shuffle threshold of every unit.

    Args:
        activity: [T, B, N] activity per env step (spikes, or rectified unit activity).
        position: [T, B, 2] position at each step (pool radii).
        min_shift: smallest circular shift (default T // 10, at least 1).

    Returns ``rate`` [N, n_bins^2], ``occupancy`` [n_bins^2], ``info`` [N], ``shuffle_info``
    [S, N], ``threshold`` [N] (95th percentile of the shuffles), ``mean_activity`` [N],
    ``field_fraction`` [N] and ``stability`` [N] (split-half map correlation).
    """
    if activity.dim() != 3 or position.shape != (*activity.shape[:2], 2):
        raise ValueError(f"activity must be [T, B, N] and position [T, B, 2], got "
                         f"{tuple(activity.shape)} and {tuple(position.shape)}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    T = activity.shape[0]
    min_shift = max(1, T // 10) if min_shift is None else min_shift
    bins = spatial_bins(position, pool_radius, n_bins)
    rate, occ = rate_maps(activity, bins, n_bins, sigma_bins=sigma_bins)
    info = skaggs_information(rate, occ)
    shuffled = []
    for start in range(0, n_shuffles, chunk):  # chunks bound the memory of [S, T, B, N]
        s = min(chunk, n_shuffles - start)
        r, _ = rate_maps(circular_shifts(activity, s, min_shift, generator), bins, n_bins,
                         sigma_bins=sigma_bins)
        shuffled.append(skaggs_information(r, occ))
    shuffle_info = torch.cat(shuffled)
    return {"rate": rate, "occupancy": occ, "info": info, "shuffle_info": shuffle_info,
            "threshold": torch.quantile(shuffle_info, 0.95, dim=0),
            "mean_activity": activity.double().mean((0, 1)),
            "field_fraction": field_fraction(rate),
            "stability": split_half_stability(activity, bins, n_bins, sigma_bins)}


def field_fraction(rate: Tensor) -> Tensor:
    """Share of the visited bins where a unit's rate exceeds half its peak [N] (1: flat)."""
    valid = ~torch.isnan(rate)
    r = torch.where(valid, rate, torch.zeros_like(rate))
    peak = r.amax(-1, keepdim=True)
    above = (r > 0.5 * peak) & valid & (peak > 0)
    return above.sum(-1) / valid.sum(-1).clamp(min=1)


def split_half_stability(activity: Tensor, bins: Tensor, n_bins: int, sigma_bins: float) -> Tensor:
    """Pearson correlation [N] between the rate maps of even and odd episodes (bins visited in
    both); NaN for fewer than 2 episodes or a flat map."""
    if activity.shape[1] < 2:
        return torch.full((activity.shape[-1],), float("nan"), dtype=torch.float64)
    even, _ = rate_maps(activity[:, 0::2], bins[:, 0::2], n_bins, sigma_bins=sigma_bins)
    odd, _ = rate_maps(activity[:, 1::2], bins[:, 1::2], n_bins, sigma_bins=sigma_bins)
    both = ~torch.isnan(even) & ~torch.isnan(odd)
    a = torch.where(both, even, torch.zeros_like(even))
    b = torch.where(both, odd, torch.zeros_like(odd))
    m = both.sum(-1, keepdim=True).clamp(min=1)
    a = torch.where(both, a - a.sum(-1, keepdim=True) / m, a)
    b = torch.where(both, b - b.sum(-1, keepdim=True) / m, b)
    return (a * b).sum(-1) / ((a * a).sum(-1) * (b * b).sum(-1)).sqrt()


def place_field_counts(result: dict[str, Tensor], min_activity: float, *,
                       max_field_fraction: float = 0.2,
                       min_stability: float = 0.5) -> dict[str, float | int | None]:
    """Among units with mean activity of at least ``min_activity`` per env step: how many carry
    spatial information above their shuffle threshold, and how many of those are
    place-field-like (compact, stable field; see the module docstring)."""
    active = result["mean_activity"] >= min_activity
    informative = active & (result["info"] > result["threshold"])
    place = informative & (result["field_fraction"] <= max_field_fraction) \
        & (result["stability"] >= min_stability)
    med = lambda x: float(torch.quantile(x.double(), 0.5)) if len(x) else None  # noqa: E731
    n_active = int(active.sum())
    return {"units": int(len(active)), "active": n_active,
            "above_shuffle": int(informative.sum()), "place_like": int(place.sum()),
            "place_like_fraction_of_active": float(place.sum()) / n_active if n_active else None,
            "info_median_active": med(result["info"][active]),
            "shuffle_p95_median_active": med(result["threshold"][active]),
            "field_fraction_median_active": med(result["field_fraction"][active]),
            "stability_median_active": med(result["stability"][active].nan_to_num(0.0))}
