"""Approximate expected error reduction: the label whose expected effect lowers future loss the most.

Roy & McCallum 2001, "Toward Optimal Active Learning through Sampling Estimation of Error
Reduction", ICML: for each candidate x and each label y, retrain on L + (x, y) and measure the
expected log-loss on the pool, weighted by p(y|x). Done exactly that is one retraining of the
student per candidate and label; here it is made affordable, and approximate, three ways:

- candidates: only the `candidates` most uncertain unlabeled items (by entropy), or a random subset;
- the model: a softmax-regression head on L2-normalised embeddings (not the fine-tuned student),
  fitted once on the labeled items, then moved by `steps` gradient steps on L + (x, y) for all
  candidates x labels at once (batched, vectorised) instead of a retraining to convergence;
- the loss: expected log-loss (the head's own entropy, as in the paper) on `pool_sample` random
  unlabeled items instead of the whole pool.

Cost: O(candidates * c * steps * (|L| + pool_sample) * c * d) flops and memory for
candidates * c heads; with the defaults (100 candidates, 4 classes, 5 steps, 300 labels, 1,000
sampled, d = 384) that is about 1 GFLOP, a fraction of a second on one core. With no labels of
two classes yet there is nothing to retrain, and it falls back to entropy sampling.
"""
from __future__ import annotations

import numpy as np

from ..engine.core.stats import entropy
from .base import EMBEDDINGS, Scores, SelectionState, StrategyParamError, require, top_k_unlabeled
from .registry import register


def _features(emb: np.ndarray) -> np.ndarray:
    """Unit-length rows plus a bias column, so one learning rate suits every embedding source."""
    emb = emb.astype(np.float64)
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return np.hstack([unit, np.ones((len(unit), 1))])


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def fit_softmax_head(x: np.ndarray, y: np.ndarray, c: int, steps: int = 300, learning_rate: float = 2.0,
                     l2: float = 1e-3) -> np.ndarray:
    """Multinomial logistic regression (c, d) by full-batch gradient descent; deterministic."""
    w = np.zeros((c, x.shape[1]))
    onehot = np.eye(c)[y]
    for _ in range(steps):
        grad = (_softmax(x @ w.T) - onehot).T @ x / len(x) + l2 * w
        w -= learning_rate * grad
    return w


@register
class ExpectedErrorReduction:
    """See the module docstring: Roy & McCallum 2001, approximated on a candidate subset and a cheap head."""

    name = "eer"
    needs = frozenset({EMBEDDINGS})

    def __init__(self, candidates: int = 100, prefilter: str = "entropy", pool_sample: int = 1000, steps: int = 5,
                 learning_rate: float = 2.0, l2: float = 1e-3):
        for key, value in (("candidates", candidates), ("pool_sample", pool_sample), ("steps", steps)):
            if not isinstance(value, int) or value < 1:
                raise StrategyParamError(f"{key}", f"must be a positive integer, got {value!r}")
        if prefilter not in ("entropy", "random"):
            raise StrategyParamError("prefilter", f"must be 'entropy' or 'random', got {prefilter!r}")
        self.candidates, self.prefilter, self.pool_sample = candidates, prefilter, pool_sample
        self.steps, self.learning_rate, self.l2 = steps, float(learning_rate), float(l2)

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        c = scores.probs.shape[1]
        labels = state.labels if state.labels is not None else np.full(scores.n, -1)
        known = np.flatnonzero(labels >= 0)
        if len(np.unique(labels[known])) < 2:
            return top_k_unlabeled(entropy(scores.probs, axis=1), state, k, rng)
        unlabeled = state.unlabeled_indices
        candidates = max(self.candidates, k)  # never fewer candidates than the batch asks for
        if self.prefilter == "entropy":
            pool_of_candidates = top_k_unlabeled(entropy(scores.probs, axis=1), state, candidates, rng)
        else:
            pool_of_candidates = rng.choice(unlabeled, size=min(candidates, len(unlabeled)), replace=False)
        sample = rng.choice(unlabeled, size=min(self.pool_sample, len(unlabeled)), replace=False)
        emb = require(scores, self.name, EMBEDDINGS)
        x_l, y_l = _features(emb[known]), labels[known].astype(np.int64)
        x_c, x_s = _features(emb[pool_of_candidates]), _features(emb[sample])
        base = fit_softmax_head(x_l, y_l, c, learning_rate=self.learning_rate, l2=self.l2)
        p_c = _softmax(x_c @ base.T)  # (m, c): the head's own belief about each candidate's label

        # One head per (candidate, label): w has shape (m, c_label, c, d); contractions as plain matmuls.
        m, n_l, d = len(x_c), len(x_l), x_l.shape[1]
        w = np.broadcast_to(base, (m, c, *base.shape)).copy()
        onehot_l, eye = np.eye(c)[y_l], np.eye(c)
        for _ in range(self.steps):
            flat = w.reshape(m * c * c, d)
            p_l = _softmax((flat @ x_l.T).reshape(m, c, c, n_l).transpose(0, 1, 3, 2))  # (m, c, n_l, c)
            residual = (p_l - onehot_l).transpose(0, 1, 3, 2).reshape(m * c * c, n_l)
            grad = (residual @ x_l).reshape(m, c, c, d)
            p_new = _softmax(np.einsum("mykd,md->myk", w, x_c))  # (m, c, c)
            grad += (p_new - eye[None])[..., None] * x_c[:, None, None, :]
            w -= self.learning_rate * (grad / (n_l + 1) + self.l2 * w)
        logits_s = (w.reshape(m * c * c, d) @ x_s.T).reshape(m, c, c, len(x_s)).transpose(0, 1, 3, 2)
        future = entropy(_softmax(logits_s), axis=-1).mean(axis=-1)  # (m, c)
        expected_loss = (p_c * future).sum(axis=1)
        utility = np.full(scores.n, -np.inf)
        utility[pool_of_candidates] = -expected_loss
        # Only the candidates compete; the rest of the pool keeps -inf and is never reached first.
        return top_k_unlabeled(utility, state, min(k, len(pool_of_candidates)), rng)
