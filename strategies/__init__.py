"""Query strategies and their registry.

A new strategy family is one module with a class (a `name` attribute and `select()`, see
`strategies.base.QueryStrategy`; `needs` when it reads more than probabilities) plus one entry in
`_CLASSES` below; its constructor's keyword arguments are the `strategy.params` of a job config.
Every strategy also takes the candidate-subsampling params of `strategies.subsample`.
"""
from __future__ import annotations

import inspect
from typing import Any

from quarry_al.strategies.base import (EMBEDDINGS, MC_PROBS, QueryStrategy, Scores, SelectionState, mc_passes_of, needs_of,
                             top_k_unlabeled)
from quarry_al.strategies.contrastive import CAL
from quarry_al.strategies.diversity import CoreSet, InformationDensity, KMeansSampling
from quarry_al.strategies.error_reduction import ExpectedErrorReduction
from quarry_al.strategies.hybrid import Adaptive, TwoStage, WeightedMixture
from quarry_al.strategies.model_change import BADGE, ExpectedGradientLength
from quarry_al.strategies.random_sampling import RandomSampling
from quarry_al.strategies.subsample import Subsampled
from quarry_al.strategies.uncertainty import BALD, Entropy, LeastConfidence, Margin

_CLASSES: tuple[type, ...] = (
    RandomSampling,
    LeastConfidence,
    Margin,
    Entropy,
    BALD,
    KMeansSampling,
    CoreSet,
    InformationDensity,
    ExpectedGradientLength,
    BADGE,
    ExpectedErrorReduction,
    CAL,
    WeightedMixture,
    TwoStage,
    Adaptive,
)

STRATEGIES: dict[str, type] = {cls.name: cls for cls in _CLASSES}

_SUBSAMPLE_PARAMS = {"subsample": "size", "subsample_method": "method", "subsample_neighbours": "neighbours"}


def make_strategy(name: str, params: dict[str, Any] | None = None) -> QueryStrategy:
    """Build a strategy by registry name; unknown names and bad parameters are one-line ValueErrors."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ValueError(f"unknown strategy '{name}'; choose one of: {', '.join(sorted(STRATEGIES))}")
    params = dict(params or {})
    wrap = {_SUBSAMPLE_PARAMS[key]: params.pop(key) for key in list(params) if key in _SUBSAMPLE_PARAMS}
    signature = inspect.signature(cls)
    try:
        signature.bind(**params)
    except TypeError as exc:
        accepted = [p for p in signature.parameters if p not in ("args", "kwargs")] + list(_SUBSAMPLE_PARAMS)
        unknown = [p for p in params if p not in signature.parameters]
        if unknown:
            raise ValueError(f"strategy.params.{unknown[0]}: unknown parameter for strategy '{name}' "
                             f"(it takes: {', '.join(accepted)})") from None
        raise ValueError(f"strategy '{name}': {exc}") from None
    strategy = cls(**params)
    if wrap:
        if "size" not in wrap:
            raise ValueError("strategy.params.subsample: required when subsample_method or subsample_neighbours is set")
        strategy = Subsampled(strategy, **wrap)
    return strategy


__all__ = ["STRATEGIES", "QueryStrategy", "Scores", "SelectionState", "make_strategy", "needs_of", "mc_passes_of",
           "top_k_unlabeled",
           "EMBEDDINGS", "MC_PROBS", "RandomSampling", "LeastConfidence", "Margin", "Entropy", "BALD",
           "KMeansSampling", "CoreSet", "InformationDensity", "ExpectedGradientLength", "BADGE",
           "ExpectedErrorReduction", "CAL", "WeightedMixture", "TwoStage", "Adaptive", "Subsampled"]
