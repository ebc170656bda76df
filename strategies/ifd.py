"""IFD, instruction-following difficulty: pick the pairs whose instruction helps the student least.

IFD = PPL(output | instruction) / PPL(output) under the student (engine/students/causal.py). High IFD
(below 1): the response is hard to produce even given the instruction, so the pair teaches the most.
IFD >= 1: the instruction makes the output no more likely than it is alone; the pair is probably
misaligned (the answer does not follow from the question) and is flagged.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .base import IFD, Scores, SelectionState, StrategyParamError, require, top_k_unlabeled
from .registry import register


def check_flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise StrategyParamError("exclude_flagged", f"must be true or false, got {value!r}")
    return value


def misaligned(ifd: np.ndarray) -> np.ndarray:
    """(n,) bool: IFD >= 1, the instruction does not make the output more likely (NaN, no output: False)."""
    return np.nan_to_num(ifd, nan=0.0) >= 1.0


def ifd_utility(ifd: np.ndarray) -> np.ndarray:
    """Higher is better: IFD itself below 1 (in (0, 1)); flagged pairs (IFD >= 1) after every unflagged one,
    the least flagged first; pairs without an IFD (no output, NaN) last."""
    return np.where(np.isnan(ifd), -np.inf, np.where(ifd < 1.0, ifd, -np.nan_to_num(ifd)))


def eligible(scores: Scores, state: SelectionState, strategy: str, exclude_flagged: bool) -> SelectionState:
    """The state with flagged pairs (and pairs without an IFD) marked as taken, when they are excluded."""
    ifd = require(scores, strategy, IFD)
    if not exclude_flagged:
        return state
    return replace(state, labeled=state.labeled | ~(ifd < 1.0))


@register
class IFDSampling:
    """The unlabeled pairs of highest IFD below 1, highest first.

    Li et al. 2024, "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data Selection
    for Instruction Tuning", NAACL (Cherry LLM: IFD, computed by the model being tuned, with pairs of
    IFD > 1 left out). With `exclude_flagged` pairs of IFD >= 1 (and without an IFD) are never chosen, so
    fewer than k may come back; otherwise they come after every unflagged pair.
    """

    name = "ifd"
    needs = frozenset({IFD})

    def __init__(self, exclude_flagged: bool = False):
        self.exclude_flagged = check_flag(exclude_flagged)

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        allowed = eligible(scores, state, self.name, self.exclude_flagged)
        return top_k_unlabeled(ifd_utility(require(scores, self.name, IFD)), allowed, k, rng)
