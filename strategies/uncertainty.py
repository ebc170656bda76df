"""Uncertainty sampling: ask about the items the student is least sure of.

Each strategy is a utility over the student's class probabilities (higher = more informative)
plus `top_k_unlabeled`, which ranks the unlabeled items by it and breaks ties at random.
Survey: Settles 2009, "Active Learning Literature Survey", Computer Sciences Technical
Report 1648, University of Wisconsin-Madison, section 3.1.
"""
from __future__ import annotations

import numpy as np

from ..engine.core.stats import entropy
from .base import MC_PROBS, Scores, SelectionState, StrategyParamError, require, top_k_unlabeled
from .registry import register


class _Uncertainty:
    """Shared select(): the k unlabeled items with the highest utility, most informative first."""

    name = ""

    def utility(self, scores: Scores, state: SelectionState | None = None) -> np.ndarray:
        raise NotImplementedError

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        return top_k_unlabeled(self.utility(scores, state), state, k, rng)


@register
class LeastConfidence(_Uncertainty):
    """Utility 1 - max_c p(c|x): the student's doubt about its own best guess.

    Lewis & Gale 1994, "A sequential algorithm for training text classifiers", SIGIR.
    Looks only at the top class, so it cannot tell a two-way tie from a spread-out doubt.
    """

    name = "least_confidence"

    def utility(self, scores: Scores, state: SelectionState | None = None) -> np.ndarray:
        return 1.0 - scores.probs.max(axis=1)


@register
class Margin(_Uncertainty):
    """Utility 1 - (p1 - p2), p1 and p2 the two highest probabilities: the smallest margin first.

    Scheffer, Decomain & Wrobel 2001, "Active hidden Markov models for information extraction",
    IDA (Intelligent Data Analysis); called "breaking ties" by Luo et al. 2005, "Active learning to
    recognize multiple types of plankton", JMLR. Targets items near a decision boundary between two
    classes; equal margins are ordered at random by `top_k_unlabeled`.
    """

    name = "margin"

    def utility(self, scores: Scores, state: SelectionState | None = None) -> np.ndarray:
        top = np.sort(scores.probs, axis=1)
        second = top[:, -2] if top.shape[1] > 1 else 0.0
        return 1.0 - (top[:, -1] - second)


@register
class Entropy(_Uncertainty):
    """Utility -sum_c p log p (0 log 0 = 0): the uncertainty of the whole distribution.

    Shannon 1948, "A mathematical theory of communication", Bell System Technical Journal;
    as a query strategy, Settles 2009, "Active Learning Literature Survey", TR 1648,
    U. Wisconsin-Madison. Uses every class, so it prefers a uniform spread over a two-way tie.
    """

    name = "entropy"

    def utility(self, scores: Scores, state: SelectionState | None = None) -> np.ndarray:
        return entropy(scores.probs, axis=1)


@register
class BALD(_Uncertainty):
    """Utility H[mean_t p_t] - mean_t H[p_t]: the mutual information between the label and the weights.

    Houlsby, Huszar, Ghahramani & Lengyel 2011, "Bayesian Active Learning for Classification and
    Preference Learning", arXiv:1112.5745; with MC dropout as the posterior, Gal, Islam & Ghahramani
    2017, "Deep Bayesian Active Learning with Image Data", ICML. High where the T stochastic passes
    disagree with each other, not where they agree on a flat distribution (aleatoric doubt).
    `mc_passes` is how many dropout passes the loop runs for it.
    """

    name = "bald"
    needs = frozenset({MC_PROBS})

    def __init__(self, mc_passes: int = 10):
        if not isinstance(mc_passes, int) or mc_passes < 2:
            raise StrategyParamError("mc_passes", f"must be an integer >= 2, got {mc_passes!r}")
        self.mc_passes = mc_passes

    def utility(self, scores: Scores, state: SelectionState | None = None) -> np.ndarray:
        mc = require(scores, self.name, MC_PROBS)
        return entropy(mc.mean(axis=0), axis=1) - entropy(mc, axis=2).mean(axis=0)
