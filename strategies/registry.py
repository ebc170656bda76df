"""The strategy registry: a name -> class table that strategy modules add themselves to with
`@register`, and `make_strategy`, which builds one from a job config's name and params.

A new strategy family is one module whose classes carry `@register` (a `name` attribute and
`select()`, see `QueryStrategy`; `needs` when it reads more than probabilities), imported once in
`strategies/__init__.py`. The table is filled at import time and only read afterwards.
"""
from __future__ import annotations

import inspect
from typing import Any, TypeVar

from .base import QueryStrategy, StrategyError, StrategyParamError
from .subsample import Subsampled

STRATEGIES: dict[str, type] = {}

# Candidate subsampling wraps any strategy: its params are read here, not by the strategy.
SUBSAMPLE_PARAMS = {"subsample": "size", "subsample_method": "method", "subsample_neighbours": "neighbours",
                    "subsample_nprobe": "nprobe"}

T = TypeVar("T", bound=type)


def register(cls: T) -> T:
    name = getattr(cls, "name", "")
    if not name or name in STRATEGIES:
        raise TypeError(f"strategy class {cls.__name__}: needs a unique `name`, got {name!r}")
    STRATEGIES[name] = cls
    return cls


def make_strategy(name: str, params: dict[str, Any] | None = None) -> QueryStrategy:
    """Build a strategy by registry name. An unknown name raises StrategyError; a bad parameter
    raises StrategyParamError naming the parameter (the caller adds where the params came from)."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise StrategyError(f"unknown strategy '{name}'; choose one of: {', '.join(sorted(STRATEGIES))}")
    params = dict(params or {})
    wrap = {SUBSAMPLE_PARAMS[key]: params.pop(key) for key in list(params) if key in SUBSAMPLE_PARAMS}
    signature = inspect.signature(cls)
    try:
        signature.bind(**params)
    except TypeError as exc:
        accepted = [p for p in signature.parameters if p not in ("args", "kwargs")] + list(SUBSAMPLE_PARAMS)
        unknown = [p for p in params if p not in signature.parameters]
        if unknown:
            raise StrategyParamError(unknown[0], f"unknown parameter for strategy '{name}' "
                                                 f"(it takes: {', '.join(accepted)})") from None
        raise StrategyError(f"strategy '{name}': {exc}") from None
    strategy = cls(**params)
    if wrap:
        if "size" not in wrap:
            raise StrategyParamError("subsample", "required when subsample_method or subsample_neighbours is set")
        strategy = Subsampled(strategy, **wrap)
    return strategy

