"""The teacher interface: label a batch, say how sure, never write the store.

A failure is a typed error on the result (and a confidence of None), never a silent None
or a dropped item: the loop records every result and routes failures to a human.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol, Sequence

ErrorKind = Literal["timeout", "rate_limit", "server", "connection", "unparsable", "out_of_set", "other"]


@dataclass(frozen=True)
class Example:
    """A labeled text shown to the teacher as a few-shot example."""

    text: str
    label: str


@dataclass(frozen=True)
class TeacherItem:
    item_id: str
    text: str
    examples: tuple[Example, ...] = ()  # few-shot examples for this item, fixed ones first


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class TeacherResult:
    label: str | None  # always one of the task's labels, or None
    confidence: float | None  # probability of `label`; None when unknown, never 0 as a stand-in
    distribution: dict[str, float] | None = None  # over the allowed labels, when the backend gives one
    raw: str = ""  # what the model said, kept for review and debugging
    usage: Usage = field(default_factory=Usage)
    error: ErrorKind | None = None
    error_message: str = ""
    prompt_hash: str = ""
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.label is not None


OnResult = Callable[[int, TeacherResult], None]


class Teacher(Protocol):
    """Labels items with one of `labels`; `model_id` identifies the model for the call records."""

    model_id: str

    def label(self, items: Sequence[TeacherItem], on_result: OnResult | None = None) -> list[TeacherResult]:
        """Results in the order of `items`; `on_result(position, result)` fires as each one completes,
        so the caller can commit it before the next is paid for."""
        ...

    def close(self) -> None: ...


def prompt_hash(model_id: str, prompt: str, params: str = "") -> str:
    """Key of one call: the same model, prompt and sampling parameters give the same answer's price."""
    return hashlib.sha256(f"{model_id}\x00{params}\x00{prompt}".encode()).hexdigest()[:32]


def distribution_to_result(distribution: dict[str, float], raw: str = "", **extra) -> TeacherResult:
    """The most probable label of a normalised distribution over the label set, with its probability."""
    total = sum(distribution.values())
    if total <= 0:
        return TeacherResult(label=None, confidence=None, raw=raw, error="unparsable",
                             error_message="empty distribution over labels", **extra)
    normalised = {k: v / total for k, v in distribution.items()}
    best = max(normalised, key=normalised.__getitem__)
    return TeacherResult(label=best, confidence=normalised[best], distribution=normalised, raw=raw, **extra)
