"""Bursty in-context classification (Reddy 2023, ICLR 2024; Chan et al. 2022): the task family.

The task's world is K classes in D dimensions, class means ``mu_k ~ N(0, I_D / D)``, and a fixed
map from classes to L labels (each class's label uniform on 0..L-1). Both come from
``classes_seed`` (not from the training seed), so training, tracking and evaluation see the same
classes. An item of class k is

    x = (mu_k + eps * eta) / sqrt(1 + eps^2),    eta ~ N(0, I_D / D)   (a fresh eta per item)

A sequence holds N item-label pairs, then a query item whose label is to be predicted. Training
sequences are *bursty* with probability ``p_bursty`` (defaults: B = 4, N = 8, so every bursty
sequence holds 2 classes, 4 items each, in random order, and the query's class is one of them),
else iid: N context classes and the query's class drawn independently from the rank-frequency
(Zipf) distribution ``p(k) ~ k^-alpha`` (k = 1..K). The classes of the bursts are drawn from the
same distribution, distinct (iid draws conditioned on being distinct). B = 0 means no bursty
sequences at all (as p_bursty = 0).

Tokens (Reddy's separate item and label tokens; the position is the model's business, e.g. the
transformer's learnt position embedding, ``positions = true``):

    item token   [x; 0_L]            (D + L numbers)
    label token  [0_D; onehot(l)]
    tokens [2N + 1, batch, D + L]    time-major: x_1, l_1, ..., x_N, l_N, x_q

so the label of the query must be either recalled from the weights (in-weights learning, IWL)
or copied from the label token after the matching item (in-context learning, ICL: Reddy's
induction-head circuit). The loss is the cross-entropy of L logits at the query.

Held-out measures (:func:`novel_batch`, :func:`flip_batch`, :func:`iwl_batch`), each on
sequences of bursts of ``eval_burst`` items (default 4):

- ``icl_novel_accuracy``: classes never seen in training (fresh means), each sequence giving its
  classes distinct random labels; the query's class is in the context;
- ``icl_flip_accuracy``: trained classes whose labels in the context are shifted by a random
  non-zero offset modulo L from the trained map (so differ from it); the query's class is in the
  context and the answer is its in-context label;
- ``iwl_accuracy``: trained classes with their trained labels, the query's class absent from the
  context (N iid context classes drawn without it); the answer is the trained label.

Chance is 1/L for each. Everything here is pure tensor numerics.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from snn_icl.checks import check_value as _check


@dataclass(frozen=True)
class BurstyConfig:
    """The ``[env]`` table of ``family = "icl_bursty"`` (defaults: Reddy 2023's, where noted)."""

    family: Literal["icl_bursty"] = "icl_bursty"
    n_classes: int = 512
    """K, classes of the training world (Reddy varies it over powers of two; large K favours
    ICL)."""
    n_labels: int = 32
    """L, labels (Reddy: 32)."""
    n_pairs: int = 8
    """N, item-label pairs before the query (Reddy: 8)."""
    item_dim: int = 63
    """D, item dimension (Reddy: 63)."""
    eps: float = 0.1
    """Within-class noise epsilon (Reddy's ICL regime: 0.1)."""
    burstiness: int = 4
    """B, items per class in a bursty sequence; divides N (0: no bursty sequences)."""
    alpha: float = 0.0
    """Zipf exponent of the class frequencies p(k) ~ k^-alpha (0: uniform, Reddy's ICL
    regime)."""
    p_bursty: float = 1.0
    """Fraction of bursty training sequences; the rest are iid (Reddy's p_B)."""
    classes_seed: int = 0
    """Seed of the class means and the class -> label map (the task's world)."""
    eval_burst: int = 4
    """Items per class in the held-out ICL sequences; divides N."""

    def __post_init__(self) -> None:
        for key in ("n_classes", "n_labels", "n_pairs", "item_dim"):
            _check(getattr(self, key) >= 1, key, "must be >= 1", getattr(self, key))
        _check(self.n_labels >= 2, "n_labels", "must be >= 2", self.n_labels)
        _check(self.eps >= 0, "eps", "must be >= 0", self.eps)
        _check(self.burstiness >= 0 and (self.burstiness == 0 or self.n_pairs % self.burstiness == 0),
               "burstiness", f"must be 0 or divide n_pairs = {self.n_pairs}", self.burstiness)
        _check(self.burstiness == 0 or self.n_classes >= self.n_pairs // self.burstiness,
               "n_classes", f"must be >= n_pairs / burstiness = "
               f"{self.n_pairs // max(self.burstiness, 1)}", self.n_classes)
        _check(self.n_classes >= 2, "n_classes", "must be >= 2 (the IWL test draws context "
               "classes other than the query's)", self.n_classes)
        _check(self.alpha >= 0, "alpha", "must be >= 0", self.alpha)
        _check(0.0 <= self.p_bursty <= 1.0, "p_bursty", "must be in [0, 1]", self.p_bursty)
        _check(self.eval_burst >= 1 and self.n_pairs % self.eval_burst == 0, "eval_burst",
               f"must divide n_pairs = {self.n_pairs}", self.eval_burst)
        _check(self.n_pairs // self.eval_burst <= self.n_labels, "eval_burst",
               f"gives more classes per sequence than n_labels = {self.n_labels}", self.eval_burst)

    @property
    def obs_dim(self) -> int:
        """Numbers per token, D + L."""
        return self.item_dim + self.n_labels

    @property
    def episode_steps(self) -> int:
        """Tokens of a sequence, 2N + 1."""
        return 2 * self.n_pairs + 1

    @property
    def out_dim(self) -> int:
        """Logits a model predicts at the query: L."""
        return self.n_labels

    @property
    def chance(self) -> float:
        """Accuracy of guessing, 1/L."""
        return 1.0 / self.n_labels


class World(NamedTuple):
    """The trained classes."""

    means: Tensor
    """Class means mu_k [K, D]."""
    labels: Tensor
    """Class -> label map [K] (int64 in 0..L-1)."""
    freq: Tensor
    """Class frequencies p(k) ~ k^-alpha [K] (sum 1)."""


class BurstyBatch(NamedTuple):
    """``batch`` sequences of N pairs and a query."""

    items: Tensor
    """Context items [batch, N, D]."""
    labels: Tensor
    """Context labels [batch, N] (int64)."""
    query: Tensor
    """Query item [batch, D]."""
    target: Tensor
    """Query label [batch] (int64)."""
    classes: Tensor
    """Context classes [batch, N] (int64; novel classes: -1 - index within the sequence)."""
    query_class: Tensor
    """Query class [batch] (int64; novel classes as in ``classes``)."""
    n_labels: int
    """L."""


def world(cfg: BurstyConfig) -> World:
    """The classes of ``cfg`` (from ``classes_seed``; cached, the same tensors each call)."""
    return _world(cfg.n_classes, cfg.item_dim, cfg.n_labels, cfg.alpha, cfg.classes_seed)


@functools.lru_cache(maxsize=8)
def _world(k: int, d: int, n_labels: int, alpha: float, seed: int) -> World:
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=gen) / math.sqrt(d)
    labels = torch.randint(0, n_labels, (k,), generator=gen)
    return World(means, labels, zipf(k, alpha))


def zipf(k: int, alpha: float) -> Tensor:
    """Rank-frequency distribution p(r) = r^-alpha / sum_r r^-alpha over ranks r = 1..k [k]."""
    p = torch.arange(1, k + 1, dtype=torch.float64).pow(-alpha)
    return (p / p.sum()).float()


def exemplars(means: Tensor, eps: float, generator: torch.Generator) -> Tensor:
    """Noisy items (mu + eps * eta) / sqrt(1 + eps^2), eta ~ N(0, I/D), of means [..., D]."""
    eta = torch.randn(means.shape, generator=generator) / math.sqrt(means.shape[-1])
    return (means + eps * eta) / math.sqrt(1.0 + eps ** 2)


def _bursts(batch: int, n_pairs: int, burst: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Which of the N/B burst classes each context slot holds [batch, N] (a random order, each
    class B times), and the query's burst [batch]."""
    n_cls = n_pairs // burst
    slot = torch.arange(n_pairs).repeat(batch, 1) % n_cls  # [batch, N]
    order = torch.rand(batch, n_pairs, generator=generator).argsort(dim=1)
    return slot.gather(1, order), torch.randint(0, n_cls, (batch,), generator=generator)


def _draw_distinct(freq: Tensor, batch: int, n: int, generator: torch.Generator) -> Tensor:
    """``n`` distinct classes per sequence from frequencies ``freq`` [K] -> [batch, n]: draws
    with replacement, rows holding a repeat drawn again (sampling without replacement)."""
    out = torch.multinomial(freq, batch * n, replacement=True, generator=generator).view(batch, n)
    while True:
        srt = out.sort(dim=1).values
        bad = (srt[:, 1:] == srt[:, :-1]).any(dim=1).nonzero()[:, 0]
        if len(bad) == 0:
            return out
        out[bad] = torch.multinomial(freq, len(bad) * n, replacement=True,
                                     generator=generator).view(len(bad), n)


def _draw_except(freq: Tensor, avoid: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` classes per sequence iid from ``freq`` [K], none equal to ``avoid`` [batch]
    (rejection) -> [batch, n]."""
    out = torch.multinomial(freq, len(avoid) * n, replacement=True, generator=generator).view(-1, n)
    while True:
        bad = (out == avoid[:, None]).nonzero()
        if len(bad) == 0:
            return out
        out[bad[:, 0], bad[:, 1]] = torch.multinomial(freq, len(bad), replacement=True,
                                                      generator=generator)


def sample(cfg: BurstyConfig, batch: int, generator: torch.Generator) -> BurstyBatch:
    """Training sequences: bursty with probability ``p_bursty`` (query class in the context),
    else iid from the Zipf frequencies (module docstring); labels from the trained map."""
    w = world(cfg)
    n = cfg.n_pairs
    iid_ctx = torch.multinomial(w.freq, batch * n, replacement=True, generator=generator).view(batch, n)
    iid_q = torch.multinomial(w.freq, batch, replacement=True, generator=generator)
    if cfg.burstiness > 0:
        bclasses = _draw_distinct(w.freq, batch, n // cfg.burstiness, generator)
        slot, q = _bursts(batch, n, cfg.burstiness, generator)
        bursty = torch.rand(batch, generator=generator) < cfg.p_bursty
        ctx = torch.where(bursty[:, None], bclasses.gather(1, slot), iid_ctx)
        qc = torch.where(bursty, bclasses.gather(1, q[:, None])[:, 0], iid_q)
    else:
        ctx, qc = iid_ctx, iid_q
    return _make(cfg, w.means[ctx], w.labels[ctx], w.means[qc], w.labels[qc], ctx, qc, generator)


def _make(cfg: BurstyConfig, ctx_means: Tensor, ctx_labels: Tensor, q_mean: Tensor,
          target: Tensor, ctx: Tensor, qc: Tensor, generator: torch.Generator) -> BurstyBatch:
    items = exemplars(ctx_means, cfg.eps, generator)
    query = exemplars(q_mean, cfg.eps, generator)
    return BurstyBatch(items, ctx_labels, query, target, ctx, qc, cfg.n_labels)


def novel_batch(cfg: BurstyConfig, batch: int, generator: torch.Generator) -> BurstyBatch:
    """ICL on novel classes: N/eval_burst fresh class means per sequence (never trained), each
    with a distinct random label, bursts of ``eval_burst``; the query's class is in the context."""
    n_cls = cfg.n_pairs // cfg.eval_burst
    means = torch.randn(batch, n_cls, cfg.item_dim, generator=generator) / math.sqrt(cfg.item_dim)
    labels = torch.rand(batch, cfg.n_labels, generator=generator).argsort(dim=1)[:, :n_cls]
    slot, q = _bursts(batch, cfg.n_pairs, cfg.eval_burst, generator)
    rows = torch.arange(batch)
    ctx_means = means[rows[:, None], slot]
    return _make(cfg, ctx_means, labels.gather(1, slot), means[rows, q], labels.gather(1, q[:, None])[:, 0],
                 -1 - slot, -1 - q, generator)


def flip_batch(cfg: BurstyConfig, batch: int, generator: torch.Generator) -> BurstyBatch:
    """ICL against the weights: trained classes (Zipf, distinct) in bursts of ``eval_burst``, the
    labels in the context (and the target) are the trained labels shifted by one random offset
    in 1..L-1 per sequence (mod L), so every one differs from the trained map."""
    w = world(cfg)
    n_cls = cfg.n_pairs // cfg.eval_burst
    classes = _draw_distinct(w.freq, batch, n_cls, generator)
    shift = torch.randint(1, cfg.n_labels, (batch, 1), generator=generator)
    slot, q = _bursts(batch, cfg.n_pairs, cfg.eval_burst, generator)
    ctx, qc = classes.gather(1, slot), classes.gather(1, q[:, None])[:, 0]
    flipped = lambda c, s: (w.labels[c] + s) % cfg.n_labels  # noqa: E731
    return _make(cfg, w.means[ctx], flipped(ctx, shift), w.means[qc], flipped(qc, shift[:, 0]),
                 ctx, qc, generator)


def iwl_batch(cfg: BurstyConfig, batch: int, generator: torch.Generator) -> BurstyBatch:
    """IWL: a trained query class (Zipf) with its trained label; N context classes drawn iid
    (Zipf) from the other classes, with their trained labels."""
    w = world(cfg)
    qc = torch.multinomial(w.freq, batch, replacement=True, generator=generator)
    ctx = _draw_except(w.freq, qc, cfg.n_pairs, generator)
    return _make(cfg, w.means[ctx], w.labels[ctx], w.means[qc], w.labels[qc], ctx, qc, generator)


def tokens(b: BurstyBatch) -> Tensor:
    """The sequence as tokens [2N + 1, batch, D + L]: ``[x_i; 0]``, ``[0; onehot(l_i)]``, ...,
    the query ``[x_q; 0]``."""
    batch, n, d = b.items.shape
    L = b.n_labels
    item_tok = torch.cat([b.items, b.items.new_zeros(batch, n, L)], dim=-1)
    label_tok = torch.cat([b.items.new_zeros(batch, n, d),
                           F.one_hot(b.labels, L).to(b.items.dtype)], dim=-1)
    pairs = torch.stack([item_tok, label_tok], dim=2).reshape(batch, 2 * n, d + L)
    query = torch.cat([b.query, b.query.new_zeros(batch, L)], dim=-1)
    return torch.cat([pairs, query[:, None]], dim=1).transpose(0, 1)


def loss(logits: Tensor, b: BurstyBatch) -> Tensor:
    """Cross-entropy (nats) of the logits at the query [batch, L] against the query's label."""
    return F.cross_entropy(logits, b.target)


def accuracy(logits: Tensor, b: BurstyBatch) -> float:
    """Fraction of sequences whose arg-max logit is the query's label."""
    return float((logits.argmax(dim=-1) == b.target).float().mean())
