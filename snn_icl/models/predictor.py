"""Sequence predictors: the models of the supervised in-context tasks (snn_icl.envs.family).

A predictor reads a whole sequence of tokens ``[T, B, d_in]`` and predicts ``[B, d_out]`` at its
last token (the query). It is the same idea as an agent without the policy: the kinds share the
water-maze agents' building blocks (the LSNN network, the LSTM cell, the transformer's MLP) but
are registered apart, because a supervised ``[agent]`` table is read against this registry.

Every kind has ``kind``, ``config_class``, ``from_config(cfg, d_in, d_out, max_tokens)``,
``forward(tokens) -> [B, d_out]`` and ``features(tokens) -> {name: [B, f]}`` (its internal state
at the query, for linear probes); ``spiking = True`` marks a kind whose gradients are surrogates
(as for the agents).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_PREDICTORS: dict[str, type] = {}


def register_predictor(cls: type) -> type:
    """Class decorator: make ``cls`` buildable from a supervised task's ``[agent]`` table."""
    if cls.kind in _PREDICTORS and _PREDICTORS[cls.kind] is not cls:
        raise ValueError(f"predictor kind {cls.kind!r} is registered already")
    _PREDICTORS[cls.kind] = cls
    return cls


def predictor_kinds() -> list[str]:
    return sorted(_PREDICTORS)


def predictor_class(kind: str) -> type:
    """The predictor registered as ``kind``; an error naming the known kinds."""
    if kind not in _PREDICTORS:
        raise ValueError(f"unknown predictor kind {kind!r} for a supervised task "
                         f"(known: {', '.join(predictor_kinds())})")
    return _PREDICTORS[kind]


def build_predictor(cfg: Any, d_in: int, d_out: int, max_tokens: int,
                    seed: int | None = None) -> nn.Module:
    """The predictor of config ``cfg``, weights drawn from ``seed`` (the global RNG is forked)."""
    cls = predictor_class(cfg.kind)
    if seed is None:
        return cls.from_config(cfg, d_in, d_out, max_tokens)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls.from_config(cfg, d_in, d_out, max_tokens)


STORE_HEAD = "store_head"
"""The attribute (and state-dict prefix) of the training-only store decoder."""


def add_store_head(predictor: nn.Module, d_target: int) -> None:
    """Give ``predictor`` (a kind with ``forward_with_store``) a linear decoder of what the
    context determines ([..., d_target]) from its store after the last example: the auxiliary
    store loss of training (``[train] store_loss``). Prediction never reads it; a checkpoint
    with one loads into a predictor without it and back."""
    n_store = predictor.head.in_features
    setattr(predictor, STORE_HEAD, nn.Linear(n_store, d_target))
