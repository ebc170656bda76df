"""The one interface every query strategy implements.

Strategies see numbers only (probabilities, embeddings, masks, a generator),
never a model or the store, so each one is testable with hand-made arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np

from ..engine.core.errors import QuarryError


class StrategyError(QuarryError, ValueError):
    """A strategy that cannot be built as asked (an unknown name)."""


class StrategyParamError(StrategyError):
    """A bad strategy parameter. `param` is its path inside the strategy's params (`weights.margin`);
    the caller, who knows where the params came from, adds the key path in front."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param, self.message = param, message

    def under(self, prefix: str) -> "StrategyParamError":
        """The same error for params nested under `prefix` (a hybrid's component)."""
        return StrategyParamError(f"{prefix}.{self.param}", self.message)


# What a strategy may ask the loop to compute beyond class probabilities (its `needs` attribute).
EMBEDDINGS, MC_PROBS = "embeddings", "mc_probs"
TOKEN_ENTROPY, IFD = "token_entropy", "ifd"  # a causal student's generation scores


@dataclass(frozen=True)
class Scores:
    """What the student hands a strategy, computed once per round.

    Rows are pool positions (0..n-1), the same order as `SelectionState.labeled`.
    """

    probs: np.ndarray  # (n, c) class probabilities, rows sum to 1
    embeddings: np.ndarray | None = None  # (n, d) pooled hidden states, or another configured source
    mc_probs: np.ndarray | None = None  # (T, n, c) probabilities of T stochastic (MC dropout) passes
    # Generation tasks (engine/students/causal.py GenerationScores): per-item scores of a causal student.
    token_entropy: np.ndarray | None = None  # (n,) mean token entropy of the student's own draft answer
    ifd: np.ndarray | None = None  # (n,) instruction-following difficulty of the pair; NaN where no output

    def __post_init__(self) -> None:
        if self.probs.ndim != 2:
            raise ValueError(f"probs must be 2-D (n, c), got shape {self.probs.shape}")
        for name in (TOKEN_ENTROPY, IFD):
            value = getattr(self, name)
            if value is not None and value.shape != (len(self.probs),):
                raise ValueError(f"{name} must be 1-D with one value per row ({len(self.probs)}), got {value.shape}")
        if self.embeddings is not None and len(self.embeddings) != len(self.probs):
            raise ValueError("embeddings and probs must have the same number of rows")
        if self.mc_probs is not None and (self.mc_probs.ndim != 3 or self.mc_probs.shape[1:] != self.probs.shape):
            raise ValueError(f"mc_probs must be (T, n, c) with (n, c) = {self.probs.shape}, got {self.mc_probs.shape}")

    def take(self, rows: np.ndarray) -> "Scores":
        """The same scores restricted to some pool rows (candidate subsampling)."""
        return Scores(probs=self.probs[rows],
                      embeddings=None if self.embeddings is None else self.embeddings[rows],
                      mc_probs=None if self.mc_probs is None else self.mc_probs[:, rows],
                      token_entropy=None if self.token_entropy is None else self.token_entropy[rows],
                      ifd=None if self.ifd is None else self.ifd[rows])

    @property
    def n(self) -> int:
        return int(self.probs.shape[0])


@dataclass(frozen=True)
class SelectionState:
    """The run's state a strategy may consult: what is labeled, which round, past metrics."""

    labeled: np.ndarray  # (n,) bool: already labeled or already queued for labeling
    round: int = 0
    history: tuple[dict, ...] = field(default_factory=tuple)  # metrics of finished rounds
    labels: np.ndarray | None = None  # (n,) int class index of decided labels, -1 where none (yet)
    previous_probs: np.ndarray | None = None  # (n, c) the student of the round before last, if any

    @property
    def unlabeled_indices(self) -> np.ndarray:
        return np.flatnonzero(~self.labeled)

    @property
    def labeled_indices(self) -> np.ndarray:
        return np.flatnonzero(self.labeled)

    def take(self, rows: np.ndarray) -> "SelectionState":
        """The same state restricted to some pool rows (candidate subsampling)."""
        return replace(self, labeled=self.labeled[rows],
                       labels=None if self.labels is None else self.labels[rows],
                       previous_probs=None if self.previous_probs is None else self.previous_probs[rows])


@runtime_checkable
class QueryStrategy(Protocol):
    """select() returns pool-wide indices of the k items to label next, most informative first."""

    name: str

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray: ...


def needs_of(strategy: object) -> frozenset[str]:
    """The extra inputs a strategy declared; none for those that only read probabilities."""
    return frozenset(getattr(strategy, "needs", ()))


def mc_passes_of(*strategies: object) -> int:
    """MC-dropout passes the strategies (or their parts) asked the loop for; 0 when none reads `mc_probs`."""
    return max((int(getattr(s, "mc_passes", 0)) for s in strategies), default=0)


def require(scores: Scores, strategy: str, what: str) -> np.ndarray:
    """The input a strategy needs, or a one-line error saying the caller did not compute it."""
    value = getattr(scores, what)
    if value is None:
        raise ValueError(f"strategy '{strategy}' needs scores.{what}, which were not computed")
    return value


def rank_normalise(utility: np.ndarray) -> np.ndarray:
    """Utilities to [0, 1] by rank, so differently scaled utilities can be mixed (ties share a rank)."""
    n = len(utility)
    if n <= 1:
        return np.ones(n)
    _, inverse = np.unique(utility, return_inverse=True)
    top = inverse.max()
    return inverse / top if top > 0 else np.ones(n)


def top_k_unlabeled(utility: np.ndarray, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the k unlabeled items with the highest utility; ties broken at random.

    Random tie-breaking (rather than by position) keeps a strategy from drifting
    towards the head of the pool when many scores are equal, as on a cold start.
    """
    candidates = state.unlabeled_indices
    k = min(k, len(candidates))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    tiebreak = rng.random(len(candidates))
    values = utility[candidates]
    # Only items at or above the k-th largest utility can be chosen: sort those (O(n) instead of O(n log n)).
    top = np.flatnonzero(values >= np.partition(values, len(values) - k)[len(values) - k])
    order = top[np.lexsort((tiebreak[top], -values[top]))]
    return candidates[order[:k]].astype(np.int64)
