"""Token entropy: ask for the instructions the causal student is least sure how to answer.

A generation task has no class distribution; its uncertainty is the student's next-token entropy,
averaged over its own greedy draft (engine/students/causal.py computes it without any teacher call).
"""
from __future__ import annotations

import numpy as np

from .base import TOKEN_ENTROPY, Scores, SelectionState, require, top_k_unlabeled
from .registry import register


@register
class TokenEntropy:
    """Utility: the mean token entropy of the student's draft answer, highest first.

    Sequence-level uncertainty sampling by mean token entropy: Settles & Craven 2008, "An Analysis of
    Active Learning Strategies for Sequence Labeling Tasks", EMNLP (token entropy); for LLM answers,
    Malinin & Gales 2021, "Uncertainty Estimation in Autoregressive Structured Prediction", ICLR.
    Averaged (not summed) over tokens, so long answers are not preferred for their length alone.
    """

    name = "token_entropy"
    needs = frozenset({TOKEN_ENTROPY})

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        entropy = require(scores, self.name, TOKEN_ENTROPY)
        return top_k_unlabeled(np.nan_to_num(entropy, nan=-np.inf), state, k, rng)
