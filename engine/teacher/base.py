"""The teacher interface: label a batch, say how sure, never write the store.

A failure is a typed error on the result (and a confidence of None), never a silent None
or a dropped item: the loop records every result and routes failures to a human.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol, Sequence

ErrorKind = Literal["timeout", "rate_limit", "server", "connection", "bad_response", "unparsable", "out_of_set", "other"]

# Failures of the transport, not of the answer: the same call may well succeed later, so a failed
# item is asked again (`teacher.failed_passes`, and on resume) instead of being given to a human.
TRANSIENT_ERRORS: frozenset[str] = frozenset({"timeout", "rate_limit", "server", "connection", "bad_response"})


@dataclass(frozen=True)
class Example:
    """A labeled text shown to the teacher as a few-shot example."""

    text: str
    label: str


@dataclass(frozen=True)
class TeacherItem:
    item_id: str
    text: str  # classification: the text to label; generation: the instruction
    examples: tuple[Example, ...] = ()  # few-shot examples for this item, fixed ones first
    input: str = ""  # generation: the instruction's input ("" when none)


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
    prompt_hash: str = ""  # identifies the call: model, rendered prompt(s), sampling parameters, confidence method
    latency_s: float = 0.0
    cached: bool = False  # answered from the teacher cache: nothing paid for this call
    cost: float = 0.0  # what this call cost at the configured prices (0 when cached)
    confidence_method: str = ""  # logprobs | self_consistency | verbalized | p_true; "" if the backend does not say
    # What qualifies `confidence`: why it is None on an answered item (the server sent no logprobs), or that
    # the teacher saw only part of the item (its text was cut to fit the prompt)
    confidence_note: str = ""
    text: str | None = None  # generation: the answer the teacher wrote (`label` stays None)
    signals: dict[str, float] | None = None  # generation: confidence signals measured with the answer (judge, ...)

    @property
    def answer(self) -> str | None:
        """What the teacher answered: the label of a classification item, the text of a generation one."""
        return self.label if self.label is not None else self.text

    @property
    def ok(self) -> bool:
        return self.error is None and self.answer is not None


OnResult = Callable[[int, TeacherResult], None]


class Teacher(Protocol):
    """Labels items with one of `labels`; `model_id` identifies the model for the call records."""

    model_id: str

    def label(self, items: Sequence[TeacherItem], on_result: OnResult | None = None) -> list[TeacherResult]:
        """Results in the order of `items`; `on_result(position, result)` fires as each one completes,
        so the caller can commit it before the next is paid for."""
        ...

    def close(self) -> None: ...

    # Optional: `cache_key(item) -> str`, the `prompt_hash` its call will have. A teacher whose
    # prompt depends on more than its config and the item's text (few-shot examples) must have it.


def prompt_hash(model_id: str, prompt: str, params: str = "") -> str:
    """Key of one call: the same model, prompt and sampling parameters give the same answer's price."""
    return hashlib.sha256(f"{model_id}\x00{params}\x00{prompt}".encode()).hexdigest()[:32]


def call_cost(usage: Usage, price_input_per_mtok: float, price_output_per_mtok: float) -> float:
    """Price of one call's tokens; prices are per million tokens, from the config."""
    return (usage.prompt_tokens * price_input_per_mtok + usage.completion_tokens * price_output_per_mtok) / 1e6


def distribution_to_result(distribution: dict[str, float], raw: str = "", **extra) -> TeacherResult:
    """The most probable label of a normalised distribution over the label set, with its probability."""
    total = sum(distribution.values())
    if total <= 0:
        return TeacherResult(label=None, confidence=None, raw=raw, error="unparsable",
                             error_message="empty distribution over labels", **extra)
    normalised = {k: v / total for k, v in distribution.items()}
    best = max(normalised, key=normalised.__getitem__)
    return TeacherResult(label=best, confidence=normalised[best], distribution=normalised, raw=raw, **extra)
