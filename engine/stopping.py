"""Stopping criteria: after each finished round, should the loop ask for more labels?

Pure functions of the finished rounds' metrics and the label count, so a resumed run
decides exactly as an uninterrupted one.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from engine.config import LoopConfig


def _num(x: float) -> str:
    """3 decimals, or enough significant digits when 3 would round the number."""
    return f"{x:.3f}" if abs(x - round(x, 3)) < 1e-9 else f"{x:.6g}"


def remaining_budget(loop: LoopConfig, items_requested: int) -> int | None:
    """Items that may still be sent for labeling; None when there is no budget."""
    if loop.label_budget is None:
        return None
    return max(0, loop.label_budget - items_requested)


def stop_reason(history: Sequence[Mapping[str, Any]], loop: LoopConfig, items_requested: int) -> str | None:
    """Why to stop now (a short sentence), or None to run another round.

    `history` holds the metrics of the finished rounds in order: round 0, then query rounds 1...
    """
    if history and int(history[-1]["round"]) >= loop.rounds:
        return f"max rounds reached ({loop.rounds})"
    if loop.label_budget is not None and items_requested >= loop.label_budget:
        return f"label budget spent ({items_requested}/{loop.label_budget})"
    stopping = loop.stopping
    values = [float(h[stopping.metric]) for h in history]
    patience = stopping.plateau_patience
    if patience is not None and len(values) > patience:
        if max(values[-patience:]) <= max(values[:-patience]) + stopping.plateau_min_delta:
            return (f"plateau: {stopping.metric} did not improve by more than "
                    f"{_num(stopping.plateau_min_delta)} for {patience} rounds")
    k = stopping.min_gain_rounds
    if stopping.min_gain is not None and len(values) > k:
        gain = values[-1] - values[-1 - k]
        if gain < stopping.min_gain:
            shown = ("+" if gain >= 0 else "") + _num(gain)
            return f"gain below {_num(stopping.min_gain)} over the last {k} rounds ({stopping.metric} {shown})"
    return None
