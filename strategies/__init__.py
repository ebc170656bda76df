"""Query strategies and their registry.

A new strategy family is one module with a class (a `name` attribute and `select()`, see
`strategies.base.QueryStrategy`) plus one entry in `_CLASSES` below; its constructor's keyword
arguments are the `strategy.params` of a job config.
"""
from __future__ import annotations

import inspect
from typing import Any

from strategies.base import QueryStrategy, Scores, SelectionState, top_k_unlabeled
from strategies.random_sampling import RandomSampling
from strategies.uncertainty import Entropy, LeastConfidence, Margin

_CLASSES: tuple[type, ...] = (
    RandomSampling,
    LeastConfidence,
    Margin,
    Entropy,
)

STRATEGIES: dict[str, type] = {cls.name: cls for cls in _CLASSES}


def make_strategy(name: str, params: dict[str, Any] | None = None) -> QueryStrategy:
    """Build a strategy by registry name; unknown names and parameters are one-line ValueErrors."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ValueError(f"unknown strategy '{name}'; choose one of: {', '.join(sorted(STRATEGIES))}")
    params = dict(params or {})
    signature = inspect.signature(cls)
    try:
        signature.bind(**params)
    except TypeError as exc:
        accepted = [p for p in signature.parameters if p not in ("args", "kwargs")]
        unknown = [p for p in params if p not in signature.parameters]
        problem = f"unknown parameter '{unknown[0]}'" if unknown else str(exc)
        takes = ", ".join(accepted) if accepted else "no parameters"
        raise ValueError(f"strategy '{name}': {problem} (it takes: {takes})") from None
    return cls(**params)


__all__ = ["STRATEGIES", "QueryStrategy", "Scores", "SelectionState", "make_strategy", "top_k_unlabeled",
           "RandomSampling", "LeastConfidence", "Margin", "Entropy"]
