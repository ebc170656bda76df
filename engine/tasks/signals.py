"""A written answer's confidence signals, and how each becomes a confidence in [0, 1] (higher: the answer is
likelier to be accepted as it is), the scale routing thresholds and calibration work on.

- `judge`: the teacher's expected grade 1-5 of its own answer (engine/teacher/answers.py) -> (grade - 1) / 4;
- `self_consistency`: mean pairwise cosine of the answer and its samples' embeddings -> clipped to [0, 1];
- `student_nll`: the student's mean NLL per token of the answer after the instruction (a fluent,
  expected answer is likelier right) -> exp(-NLL), the geometric mean of the tokens' probabilities;
- `length`: the answer's words, the baseline every signal must beat -> 1 / (1 + words / 20): shorter is surer
  (any decreasing map gives the same ranking, hence the same AUROC).

Raw values are what the store and the report keep; `confidence` is applied when routing reads them.
"""
from __future__ import annotations

import math

SIGNALS = ("judge", "self_consistency", "student_nll", "length")


def words(answer: str) -> int:
    return len(answer.split())


def confidence(signal: str, value: float) -> float:
    if signal == "judge":
        return min(1.0, max(0.0, (value - 1.0) / 4.0))
    if signal == "self_consistency":
        return min(1.0, max(0.0, value))
    if signal == "student_nll":
        return math.exp(-max(0.0, value))
    if signal == "length":
        return 1.0 / (1.0 + max(0.0, value) / 20.0)
    raise ValueError(f"unknown signal {signal!r}; expected one of {SIGNALS}")


def confidences(signals: dict[str, float]) -> dict[str, float]:
    """Every known signal of an answer as a confidence (unknown names are left out)."""
    return {name: confidence(name, value) for name, value in signals.items() if name in SIGNALS}
