"""Uncertainty sampling: ask about the items the student is least sure of.

Each strategy is a utility over the student's class probabilities (higher = more informative)
plus `top_k_unlabeled`, which ranks the unlabeled items by it and breaks ties at random.
Survey: Settles 2009, "Active Learning Literature Survey", Computer Sciences Technical
Report 1648, University of Wisconsin-Madison, section 3.1.
"""
from __future__ import annotations

import numpy as np

from strategies.base import Scores, SelectionState, top_k_unlabeled


class _Uncertainty:
    """Shared select(): the k unlabeled items with the highest utility, most informative first."""

    name = ""

    def utility(self, scores: Scores) -> np.ndarray:
        raise NotImplementedError

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        return top_k_unlabeled(self.utility(scores), state, k, rng)


class LeastConfidence(_Uncertainty):
    """Utility 1 - max_c p(c|x): the student's doubt about its own best guess.

    Lewis & Gale 1994, "A sequential algorithm for training text classifiers", SIGIR.
    Looks only at the top class, so it cannot tell a two-way tie from a spread-out doubt.
    """

    name = "least_confidence"

    def utility(self, scores: Scores) -> np.ndarray:
        return 1.0 - scores.probs.max(axis=1)


class Margin(_Uncertainty):
    """Utility 1 - (p1 - p2), p1 and p2 the two highest probabilities: the smallest margin first.

    Scheffer, Decomain & Wrobel 2001, "Active hidden Markov models for information extraction",
    IDA (Intelligent Data Analysis). Targets items near a decision boundary between two classes.
    """

    name = "margin"

    def utility(self, scores: Scores) -> np.ndarray:
        top = np.sort(scores.probs, axis=1)
        second = top[:, -2] if top.shape[1] > 1 else 0.0
        return 1.0 - (top[:, -1] - second)


class Entropy(_Uncertainty):
    """Utility -sum_c p log p (0 log 0 = 0): the uncertainty of the whole distribution.

    Shannon 1948, "A mathematical theory of communication", Bell System Technical Journal;
    as a query strategy, Settles 2009, "Active Learning Literature Survey", TR 1648,
    U. Wisconsin-Madison. Uses every class, so it prefers a uniform spread over a two-way tie.
    """

    name = "entropy"

    def utility(self, scores: Scores) -> np.ndarray:
        p = scores.probs
        return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)  # log 1 = 0 where p = 0
