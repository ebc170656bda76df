"""Stopping criteria: after each finished round, should the loop ask for more labels?

Pure functions of the finished rounds' metrics and the label count, so a resumed run
decides exactly as an uninterrupted one. Beside round and budget limits and the performance
plateau (on accuracy, macro-F1, or a generation task's eval NLL, where lower is better; `min_gain`
is then the fall of the NLL), two label-free criteria read metrics of a fixed stop set of pool items
(`stop_set_metrics`, recorded by the loop each round):

- stabilizing predictions: Cohen's kappa between consecutive rounds' predictions on the stop set,
  averaged over the last `stabilizing_window` pairs, reaches `stabilizing_kappa` (Bloodgood &
  Vijay-Shanker 2009, "A Method for Stopping Active Learning Based on Stabilizing Predictions and
  the Need for User-Adjustable Stopping", CoNLL; they use 0.99 over a window of 3);
- overall uncertainty: the mean entropy on the stop set, divided by log(c) so it is in [0, 1], falls
  to `max_uncertainty` (Zhu, Wang & Hovy 2008, "Multi-criteria-based strategy to stop active
  learning for data annotation", COLING).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .config import LoopConfig
from .core.stats import cohen_kappa, entropy


LOWER_IS_BETTER = frozenset({"eval_nll"})


def _num(x: float) -> str:
    """3 decimals, or enough significant digits when 3 would round the number."""
    return f"{x:.3f}" if abs(x - round(x, 3)) < 1e-9 else f"{x:.6g}"


def remaining_budget(loop: LoopConfig, items_requested: int) -> int | None:
    """Items that may still be sent for labeling; None when there is no budget."""
    if loop.label_budget is None:
        return None
    return max(0, loop.label_budget - items_requested)


def stop_set_indices(pool_size: int, size: int, seed: int) -> np.ndarray:
    """The fixed stop set: `size` pool positions drawn once from the run's seed (all of a smaller pool)."""
    if pool_size <= size:
        return np.arange(pool_size)
    return np.sort(np.random.default_rng([seed, 4242]).choice(pool_size, size=size, replace=False))


def cohens_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Agreement of two rounds' predictions beyond chance (Cohen 1960); 1.0 when both are one identical
    constant (reviewers' kappa is undefined there, but predictions that did not change are stable)."""
    a, b = np.asarray(a), np.asarray(b)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError("kappa needs two non-empty labelings of the same length")
    kappa = cohen_kappa(a.tolist(), b.tolist())
    return 1.0 if kappa is None else kappa


def stop_set_metrics(probs: np.ndarray, previous_predictions: np.ndarray | None) -> dict[str, float | None]:
    """A round's stop-set metrics from its student's probabilities there (and the round before's predictions)."""
    c = probs.shape[1]
    mean_entropy = float(entropy(np.clip(probs.astype(np.float64), 0.0, 1.0), axis=1).mean())
    kappa = None if previous_predictions is None else cohens_kappa(previous_predictions, probs.argmax(axis=1))
    return {"stop_set_kappa": kappa, "stop_set_uncertainty": mean_entropy / float(np.log(c)) if c > 1 else 0.0}


def stop_reason(history: Sequence[Mapping[str, Any]], loop: LoopConfig, items_requested: int) -> str | None:
    """Why to stop now (a short sentence), or None to run another round.

    `history` holds the metrics of the finished rounds in order: round 0, then query rounds 1...
    """
    if history and int(history[-1]["round"]) >= loop.rounds:
        return f"max rounds reached ({loop.rounds})"
    if loop.label_budget is not None and items_requested >= loop.label_budget:
        return f"label budget spent ({items_requested}/{loop.label_budget})"
    stopping = loop.stopping
    # Improvement is upward; a metric where lower is better (eval_nll) is read negated.
    sign = -1.0 if stopping.metric in LOWER_IS_BETTER else 1.0
    values = [sign * float(h[stopping.metric]) for h in history]
    patience = stopping.plateau_patience
    if patience is not None and len(values) > patience:
        if max(values[-patience:]) <= max(values[:-patience]) + stopping.plateau_min_delta:
            return (f"plateau: {stopping.metric} did not improve by more than "
                    f"{_num(stopping.plateau_min_delta)} for {patience} rounds")
    k = stopping.min_gain_rounds
    if stopping.min_gain is not None and len(values) > k:
        gain = values[-1] - values[-1 - k]
        if gain < stopping.min_gain:
            change = sign * gain  # the metric's own change: a fall of eval_nll is a gain
            shown = ("+" if change >= 0 else "") + _num(change)
            return f"gain below {_num(stopping.min_gain)} over the last {k} rounds ({stopping.metric} {shown})"
    window = stopping.stabilizing_window
    kappas = [h.get("stop_set_kappa") for h in history[-window:]]
    if stopping.stabilizing_kappa is not None and len(kappas) == window and None not in kappas:
        mean = float(np.mean(kappas))
        if mean >= stopping.stabilizing_kappa:
            return (f"stabilizing predictions: mean kappa {_num(mean)} >= {_num(stopping.stabilizing_kappa)} "
                    f"over the last {window} rounds")
    uncertainty = history[-1].get("stop_set_uncertainty") if history else None
    if stopping.max_uncertainty is not None and uncertainty is not None and uncertainty <= stopping.max_uncertainty:
        return f"overall uncertainty {_num(uncertainty)} <= {_num(stopping.max_uncertainty)} on the stop set"
    return None
