"""Expected model change: ask about the items whose label would move the classifier the most.

Both strategies use the gradient of the cross-entropy with respect to a softmax head's weights,
which for features h and label y is (p - onehot(y)) outer h. The student's real head sits on its
own pooled features; `Scores.embeddings` stand in for h (the student's pooled hidden states by
default), so these are the last-layer approximations the papers use, not full-network gradients.
"""
from __future__ import annotations

import numpy as np

from .base import EMBEDDINGS, Scores, SelectionState, require, top_k_unlabeled
from .registry import register
from .shards import row_norms_sq


@register
class ExpectedGradientLength:
    """Utility sum_y p(y|x) |(p - onehot(y)) outer h| = |h| sum_y p_y |p - e_y|.

    Settles, Craven & Ray 2008, "Multiple-Instance Active Learning", NeurIPS; Settles 2009, "Active
    Learning Literature Survey", TR 1648, section 3.4. The outer product's norm factorises, so the
    expectation over labels is O(n (c + d)) without forming any gradient.
    """

    name = "egl"
    needs = frozenset({EMBEDDINGS})

    def utility(self, scores: Scores, state: SelectionState | None = None) -> np.ndarray:
        p = scores.probs.astype(np.float64)
        h = require(scores, self.name, EMBEDDINGS)
        # |p - e_y|^2 = |p|^2 - 2 p_y + 1
        residual = np.sqrt(np.maximum((p * p).sum(axis=1, keepdims=True) - 2.0 * p + 1.0, 0.0))
        return (p * residual).sum(axis=1) * np.sqrt(row_norms_sq(h))

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        return top_k_unlabeled(self.utility(scores, state), state, k, rng)


@register
class BADGE:
    """k-means++ seeding over gradient embeddings g = (p - onehot(argmax p)) outer h.

    Ash, Zhang, Krishnamurthy, Langford & Agarwal 2020, "Deep Batch Active Learning by Diverse,
    Uncertain Gradient Lower Bounds", ICLR. |g| grows with uncertainty and the D^2 seeding spreads
    the batch, so it mixes both without a weight. g is never formed: g_i . g_j = (a_i . a_j)(h_i . h_j)
    with a = p - onehot, so each of the k seeding steps is O(n (c + d)). The first seed is the largest
    gradient, as in the authors' code.
    """

    name = "badge"
    needs = frozenset({EMBEDDINGS})

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        candidates = state.unlabeled_indices
        k = min(k, len(candidates))
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        p = scores.probs[candidates].astype(np.float64)
        a = p.copy()
        a[np.arange(len(a)), p.argmax(axis=1)] -= 1.0
        h = require(scores, self.name, EMBEDDINGS)[candidates]
        a_sq = (a * a).sum(axis=1)
        h_sq = np.einsum("ij,ij->i", h, h, dtype=np.float64)
        g_sq = a_sq * h_sq
        chosen = [int(np.argmax(g_sq))]
        nearest = np.full(len(a), np.inf)
        for _ in range(k - 1):
            j = chosen[-1]
            sq = g_sq + g_sq[j] - 2.0 * (a @ a[j]) * (h @ h[j]).astype(np.float64)
            np.minimum(nearest, np.maximum(sq, 0.0), out=nearest)
            nearest[chosen] = 0.0
            total = nearest.sum()
            if total > 0:
                chosen.append(int(rng.choice(len(a), p=nearest / total)))
            else:  # every remaining gradient equals a chosen one: any other item will do
                rest = np.setdiff1d(np.arange(len(a)), chosen)
                chosen.append(int(rng.choice(rest)))
        return candidates[np.asarray(chosen)].astype(np.int64)
