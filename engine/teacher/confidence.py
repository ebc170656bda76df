"""Confidence methods of the chat teacher, as pure functions of what the server answered.

- logprobs: the label tokens' probability (see `openai_compat.label_confidence`).
- self_consistency: k answers sampled at a temperature; confidence = share of the k that gave the
  majority label (Wang et al. 2023, "Self-Consistency Improves Chain of Thought Reasoning in
  Language Models", ICLR).
- verbalized: the model states a 0-100 confidence in its JSON answer (Tian et al. 2023, "Just Ask
  for Calibration", EMNLP).
- p_true: a second call shows the model its label and asks whether it is correct; confidence =
  P("True") against P("False") at the answer's first token (Kadavath et al. 2022, "Language Models
  (Mostly) Know What They Know", arXiv:2207.05221).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Sequence

ConfidenceMethod = Literal["logprobs", "self_consistency", "verbalized", "p_true"]


@dataclass(frozen=True)
class Vote:
    """Majority label of k samples, its agreement rate, and the share of each label among valid votes."""

    label: str | None
    confidence: float | None
    distribution: dict[str, float] | None


def majority_vote(answers: Sequence[str | None], labels: Sequence[str]) -> Vote:
    """Agreement rate of the majority label over all k samples: a sample that gave no usable label
    counts against the agreement. Ties go to the label listed first in the task."""
    votes = Counter(a for a in answers if a is not None)
    if not votes or not answers:
        return Vote(None, None, None)
    order = {label: i for i, label in enumerate(labels)}
    best = max(votes, key=lambda label: (votes[label], -order.get(label, len(order))))
    valid = sum(votes.values())
    return Vote(best, votes[best] / len(answers), {label: count / valid for label, count in votes.items()})


def verbalized_schema(labels: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": list(labels)},
            "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
        },
        "required": ["label", "confidence"],
        "additionalProperties": False,
    }


def verbalized_confidence(data: dict[str, Any]) -> tuple[float | None, str]:
    """(confidence in [0, 1], problem) from a parsed answer's "confidence" member (0-100)."""
    value = data.get("confidence")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"\"confidence\" is missing or not a number: {value!r}"
    if not math.isfinite(value) or not 0 <= value <= 100:
        return None, f"\"confidence\" {value!r} is not between 0 and 100"
    return float(value) / 100.0, ""


def p_true(logprobs_content: Sequence[Any] | None) -> float | None:
    """P("True") / (P("True") + P("False")) from the top logprobs at the answer's first token
    (tokens compared without surrounding spaces and letter case). None when neither was seen:
    an unknown confidence, not a 0."""
    if not logprobs_content:
        return None
    first = logprobs_content[0]
    candidates = list(getattr(first, "top_logprobs", None) or [])
    if not candidates:
        candidates = [first]
    mass = {"true": 0.0, "false": 0.0}  # " True" and "True" are different tokens: both count
    for candidate in candidates:
        token = (getattr(candidate, "token", None) or "").strip().casefold()
        logprob = getattr(candidate, "logprob", None)
        if token in mass and logprob is not None and math.isfinite(logprob):
            mass[token] += math.exp(logprob)
    total = mass["true"] + mass["false"]
    return mass["true"] / total if total > 0 else None
