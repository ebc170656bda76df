"""The typed rows the store returns: frozen dataclasses, so no sqlite3.Row leaves the store package."""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from ..teacher.base import TeacherResult, Usage

_T = TypeVar("_T")


def _build(cls: type[_T], row: sqlite3.Row, **override: Any) -> _T:
    """The dataclass from the row's columns of the same names (`override` for those that need decoding)."""
    return cls(**{f.name: override[f.name] if f.name in override else row[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class Item:
    pos: int
    item_id: str
    text: str  # generation: the instruction
    gold: str | None  # generation: the reference answer
    origin: str
    input: str | None = None  # generation: the instruction's input

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Item":
        return _build(cls, row)


@dataclass(frozen=True)
class RoundRow:
    round: int
    phase: str
    strategy: str
    timings: dict[str, float]
    metrics: dict[str, Any] | None
    stop_reason: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "RoundRow":
        return _build(cls, row, timings=json.loads(row["timings"]),
                      metrics=json.loads(row["metrics"]) if row["metrics"] else None)


@dataclass(frozen=True)
class LabelRow:
    item_id: str
    text: str
    label: str  # generation: the answer text
    source: str
    confidence: float | None
    round: int
    reason: str
    reviewer: str | None
    gold: str | None
    input: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "LabelRow":
        return _build(cls, row)


@dataclass(frozen=True)
class SelectionRow:
    """An item a round chose, with what the student predicted for it then."""

    item_id: str
    text: str
    gold: str | None
    round: int
    rank: int
    utility: float | None
    student_label: str | None
    student_confidence: float | None
    input: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "SelectionRow":
        return _build(cls, row)


@dataclass(frozen=True)
class TeacherCall:
    """One recorded teacher call: the answer (or typed error) as the backend gave it, and its bill."""

    id: int
    item_id: str
    round: int
    model: str
    created_at: float
    result: TeacherResult

    @property
    def error(self) -> str | None:
        return self.result.error

    @property
    def label(self) -> str | None:
        return self.result.label

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "TeacherCall":
        result = TeacherResult(
            label=row["label"], confidence=row["confidence"],
            distribution=json.loads(row["distribution"]) if row["distribution"] else None, raw=row["raw"],
            usage=Usage(row["prompt_tokens"], row["completion_tokens"]), error=row["error"],
            error_message=row["error_message"], prompt_hash=row["prompt_hash"], latency_s=row["latency_s"],
            cached=bool(row["cached"]), cost=row["cost"], confidence_method=row["confidence_method"] or "",
            text=row["text"], signals=json.loads(row["signals"]) if row["signals"] else None,
            confidence_note=row["confidence_note"])
        return _build(cls, row, result=result)


@dataclass(frozen=True)
class ReviewRow:
    item_id: str
    text: str
    round: int
    status: str
    reason: str
    teacher_label: str | None  # generation: the teacher's answer text
    teacher_confidence: float | None
    teacher_raw: str | None
    student_label: str | None
    student_confidence: float | None
    gold: str | None  # generation: the reference answer
    input: str | None = None  # generation: the instruction's input
    signals: dict[str, float] | None = None  # generation: every confidence signal measured for the answer

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "ReviewRow":
        return _build(cls, row, signals=json.loads(row["signals"]) if row["signals"] else None)


@dataclass(frozen=True)
class SettledReview:
    """A review that is no longer pending, with the item's latest human label (None: skipped, never labeled)."""

    item_id: str
    status: str
    teacher_label: str | None
    teacher_confidence: float | None
    human_label: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "SettledReview":
        return _build(cls, row)


@dataclass(frozen=True)
class DecisionRecord:
    """One row of the append-only review log: a reviewer's decision and what they were shown."""

    id: int
    item_id: str
    reviewer: str
    kind: str  # accept (the teacher's answer) | relabel | edit | rewrite | skip
    label: str | None
    shown: dict[str, Any]
    supersedes: int | None
    via: str
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "DecisionRecord":
        return _build(cls, row, shown=json.loads(row["shown"]))


@dataclass(frozen=True)
class Lease:
    item: ReviewRow
    reviewer: str
    expires_at: float


@dataclass(frozen=True)
class Reviewer:
    name: str
    token_hash: str
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Reviewer":
        return _build(cls, row)


@dataclass(frozen=True)
class Session:
    """A live web session: who it belongs to and the CSRF token its state-changing requests must carry."""

    reviewer: str
    csrf: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Session":
        return _build(cls, row)


@dataclass(frozen=True)
class LoginSlot:
    """A login attempt allowed to check its token (`attempt` is its id), or refused for `retry_after_s`."""

    attempt: int | None
    retry_after_s: float = 0.0
