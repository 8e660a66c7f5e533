"""Cross-validated linear decoding of the platform position from network state variables.

For each time bin (e.g. env steps since the first platform visit, aligned per episode) a ridge
decoder maps one state variable [d] to the platform centre (x, y). Folds are over EPISODES, never
over time steps: steps of one episode share their platform, so a split over steps would let the
decoder memorise episodes. The ridge penalty is chosen per outer fold by an inner cross-validation
over the remaining folds (nested, so the reported error never sees its test episodes).

Chance level, two ways: the error of predicting the training folds' mean platform, and decoders
fit to platform labels shuffled across episodes (same features, same procedure).

scikit-learn is not a dependency of this project (and not installed in its environment), so the
ridge is closed-form in torch: per fold the sufficient statistics (n, sum x, sum x x^T, sum x y^T)
are summed, features are centred and scaled on the training folds, and one eigendecomposition of the
training Gram matrix serves every penalty and every label shuffle.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

LAMBDAS = tuple(10.0 ** k for k in range(-3, 4))
"""Ridge penalties relative to the mean feature variance (lambda * n is added to the scaled Gram)."""


@dataclass
class DecodeResult:
    """Decoding error per bin (pool radii, mean Euclidean distance on held-out episodes)."""

    error: Tensor
    """[K] decoder error (NaN where a bin has too few episodes)."""
    chance_mean: Tensor
    """[K] error of predicting the training folds' mean platform."""
    chance_shuffle: Tensor
    """[S, K] error of decoders fit to shuffled platform labels."""
    n_episodes: Tensor
    """[K] episodes with samples in each bin."""
    n_samples: Tensor
    """[K] samples (episode x step) in each bin."""


def time_since_first_visit(on_platform: Tensor) -> Tensor:
    """Env steps since the first platform contact of each episode [T, B] (negative before it).

    ``on_platform`` [T, B] bool is the contact seen in observation t (the rollout's
    ``on_platform[:-1]``); an episode without contact gets values below -T."""
    if on_platform.dim() != 2:
        raise ValueError(f"on_platform must be [T, B], got {tuple(on_platform.shape)}")
    contact = on_platform.bool()
    T = contact.shape[0]
    never = torch.full((contact.shape[1],), 2 * T, dtype=torch.long)
    first = torch.where(contact.any(0), contact.to(torch.uint8).argmax(0), never)
    return torch.arange(T)[:, None] - first[None, :]


def bin_labels(values: Tensor, edges: Tensor) -> Tensor:
    """Bin index of each value (bins [edges[i], edges[i+1])), -1 outside [edges[0], edges[-1])."""
    idx = torch.bucketize(values, edges, right=True) - 1
    return torch.where((idx >= 0) & (idx < len(edges) - 1), idx, torch.full_like(idx, -1))


def _folds(episode: Tensor, n_folds: int, generator: torch.Generator) -> tuple[Tensor, int]:
    """Fold of each sample: the episodes present are shuffled and dealt round-robin."""
    present = torch.unique(episode)
    order = present[torch.randperm(len(present), generator=generator)]
    fold_of = torch.empty(int(episode.max()) + 1, dtype=torch.long)
    fold_of[order] = torch.arange(len(order)) % n_folds
    return fold_of[episode], len(present)


def _eigh(C: Tensor) -> tuple[Tensor, Tensor]:
    """Eigen-decomposition of symmetric [P, d, d]. Where torch's LAPACK fails to converge (many
    repeated eigenvalues when there are fewer samples than features; it depends on the CPU), the
    decomposition is taken from numpy's, another LAPACK build, rather than stop the analysis."""
    try:
        return torch.linalg.eigh(C)
    except torch.linalg.LinAlgError:
        import numpy as np

        evals, Q = np.linalg.eigh(C.detach().cpu().double().numpy())
        return torch.from_numpy(evals).to(C), torch.from_numpy(Q).to(C)


def _ridge_bin(X: Tensor, Ys: Tensor, fold: Tensor, n_folds: int,
               lambdas: Tensor) -> tuple[Tensor, Tensor]:
    """Nested-CV ridge on one bin. X [n, d], Ys [S, n, 2] (label sets: true + shuffles), fold [n].

    Returns (Euclidean error per sample [S, n], error of the training mean per sample [n])."""
    # a feature constant over the bin (a silent neuron) is a centred zero in every fold: dropping
    # it changes no prediction, and it adds repeated zero eigenvalues that LAPACK may not resolve
    n_features = X.shape[1]  # the scale below stays per feature of the full set
    varies = (X != X[:1]).any(0)
    varies[0] |= not bool(varies.any())  # all constant: keep one, so the shapes stay non-empty
    X = X[:, varies]
    F = n_folds
    onehot = torch.nn.functional.one_hot(fold, F).to(X)  # [n, F]
    nf = onehot.sum(0)  # [F]
    sx = onehot.T @ X  # [F, d]
    sxx = torch.stack([X[fold == f].T @ X[fold == f] for f in range(F)])  # [F, d, d]
    sy = torch.einsum("nf,snk->sfk", onehot, Ys)  # [S, F, 2]
    sxy = torch.einsum("nf,ni,snk->sfik", onehot, X, Ys)  # [S, F, d, 2]

    # training sets: (outer f, inner g) leave out folds f and g; (f, f) leaves out f only
    pairs = [(f, g) for f in range(F) for g in range(F)]
    keep = torch.ones(len(pairs), F, dtype=X.dtype)
    for p, (f, g) in enumerate(pairs):
        keep[p, f] = 0
        keep[p, g] = 0
    n = keep @ nf  # [P]
    mx = (keep @ sx) / n[:, None]  # [P, d]
    C = torch.einsum("pf,fij->pij", keep, sxx) - n[:, None, None] * mx[:, :, None] * mx[:, None, :]
    # One scale per training set (root mean feature variance), not one per feature: per-feature
    # z-scoring blows up features that are nearly constant in training (a rarely firing neuron,
    # a place cell far from the visited positions) when they move in the test episodes.
    std = (torch.diagonal(C, dim1=1, dim2=2).sum(-1) / (n * n_features)).clamp(min=1e-24).sqrt()
    std = std[:, None]  # [P, 1]
    Cs = C / std[:, :, None] ** 2
    evals, Q = _eigh(Cs)  # [P, d], [P, d, d]
    my = torch.einsum("pf,sfk->spk", keep, sy) / n[None, :, None]  # [S, P, 2]
    Cxy = torch.einsum("pf,sfik->spik", keep, sxy) - n[None, :, None, None] * mx[None, :, :, None] \
        * my[:, :, None, :]
    Cxy = Cxy / std[None, :, :, None]
    QtC = torch.einsum("pji,spjk->spik", Q, Cxy)  # [S, P, d, 2]: targets in the eigenbasis
    shrink = 1.0 / (evals[None] + lambdas[:, None, None] * n[None, :, None])  # [L, P, d]

    def predict(p: int, rows: Tensor) -> Tensor:
        """Predictions of training set p on ``rows`` for every shuffle and penalty [S, L, m, 2]."""
        ZQ = ((X[rows] - mx[p]) / std[p]) @ Q[p]  # [m, d]
        return my[:, p, None, None, :] + torch.einsum("mj,lj,sjk->slmk", ZQ, shrink[:, p], QtC[:, p])

    S = Ys.shape[0]
    val = torch.zeros(S, F, len(lambdas), dtype=X.dtype)
    for p, (f, g) in enumerate(pairs):  # inner CV: validation error of each penalty
        rows = fold == g
        if f != g and bool(rows.any()):
            val[:, f] += (predict(p, rows) - Ys[:, None, rows]).pow(2).sum((-1, -2))
    err = torch.zeros(S, X.shape[0], dtype=X.dtype)
    err_mean = torch.zeros(X.shape[0], dtype=X.dtype)
    for f in range(F):  # outer folds: the penalty the inner CV chose, tested on fold f
        p, rows = f * F + f, fold == f
        best = val[:, f].argmin(-1)  # [S]
        pred = predict(p, rows)[torch.arange(S), best]  # [S, m, 2]
        err[:, rows] = (pred - Ys[:, rows]).norm(dim=-1)
        err_mean[rows] = (my[0, p][None, :] - Ys[0, rows]).norm(dim=-1)
    return err, err_mean


def decode(features: Tensor, target: Tensor, labels: Tensor, n_labels: int, *, n_folds: int = 5,
           n_shuffles: int = 5, min_episodes: int = 8, lambdas: tuple[float, ...] = LAMBDAS,
           generator: torch.Generator | None = None) -> DecodeResult:
    """Decode ``target`` from ``features`` separately in each label bin, cross-validated over episodes.

    Args:
        features: [T, B, d] one state variable per env step and episode.
        target: [B, 2] what to decode (the platform centre, pool radii), constant in an episode.
        labels: [T, B] bin of each sample in 0..n_labels-1, -1 to leave it out.
        n_folds: outer folds over episodes (fewer when a bin has fewer than 2 per fold).
        n_shuffles: label shuffles across episodes for the chance level.
        min_episodes: bins with fewer episodes give NaN.
    """
    if features.dim() != 3 or features.shape[:2] != labels.shape:
        raise ValueError(f"features must be [T, B, d] matching labels [T, B], got "
                         f"{tuple(features.shape)} and {tuple(labels.shape)}")
    if target.shape != (features.shape[1], 2):
        raise ValueError(f"target must be [B={features.shape[1]}, 2], got {tuple(target.shape)}")
    if n_folds < 2 or min_episodes < 4:
        raise ValueError(f"need n_folds >= 2 and min_episodes >= 4, got {n_folds}, {min_episodes}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    B = features.shape[1]
    X_all = features.double().reshape(-1, features.shape[-1])
    ep_all = torch.arange(B).expand(features.shape[0], B).reshape(-1)
    lab_all = labels.reshape(-1)
    perms = torch.stack([torch.arange(B)] + [torch.randperm(B, generator=generator)
                                              for _ in range(n_shuffles)])  # [S, B]
    Y_ep = target.double()[perms]  # [S, B, 2]
    lam = torch.tensor(lambdas, dtype=torch.float64)
    nan = torch.full((n_labels,), float("nan"), dtype=torch.float64)
    error, chance_mean = nan.clone(), nan.clone()
    chance_shuffle = torch.full((n_shuffles, n_labels), float("nan"), dtype=torch.float64)
    n_ep = torch.zeros(n_labels, dtype=torch.long)
    n_samples = torch.zeros(n_labels, dtype=torch.long)
    for k in range(n_labels):  # a loop over time bins; everything inside is batched
        rows = lab_all == k
        n_samples[k] = int(rows.sum())
        if not bool(rows.any()):
            continue
        ep = ep_all[rows]
        folds = min(n_folds, len(torch.unique(ep)) // 2)
        fold, n_ep[k] = _folds(ep, max(folds, 2), generator)
        if n_ep[k] < min_episodes:
            continue
        err, err_mean = _ridge_bin(X_all[rows], Y_ep[:, ep], fold, max(folds, 2), lam)
        error[k] = err[0].mean()
        chance_shuffle[:, k] = err[1:].mean(-1)
        chance_mean[k] = err_mean.mean()
    return DecodeResult(error, chance_mean, chance_shuffle, n_ep, n_samples)
