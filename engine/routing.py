"""Routing: accept the teacher's label, or send the item to a human, with a reason a person can read.

Pure and deterministic: the same result and student prediction always route the same way, so a
resumed run re-routes a round's recorded teacher calls exactly as the first attempt did.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from .config import RoutingConfig
from .teacher.base import TeacherResult


@dataclass(frozen=True)
class StudentPrediction:
    label: str | None
    confidence: float | None


@dataclass(frozen=True)
class Decision:
    route: Literal["accept", "human"]
    reason: str


def _pair(value: float, threshold: float) -> tuple[str, str]:
    """Both numbers with 2 decimals, or more where 2 would hide the difference (0.7999 vs 0.80)."""
    for places in range(2, 7):
        a, b = f"{value:.{places}f}", f"{threshold:.{places}f}"
        if (a == b) == (value == threshold):
            break
    return a, b


def _compare(what: str, value: float, threshold: float) -> tuple[bool, str]:
    """(value >= threshold, e.g. 'teacher confidence 0.93 >= 0.80')."""
    passed = value >= threshold
    a, b = _pair(value, threshold)
    return passed, f"{what} {a} {'>=' if passed else '<'} {b}"


def _student_says(student: StudentPrediction) -> str:
    conf = "" if student.confidence is None else f" ({student.confidence:.2f})"
    return f"'{student.label}'{conf}"


def audited(item_id: str, rate: float) -> bool:
    """Whether an item is in the audit sample: a fixed pseudo-random draw from its id, so a resumed
    round picks the same items and calibration knows which reviewed items were audits."""
    return int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) / 2**32 < rate


class Router:
    """Applies `RoutingConfig`: a confidence threshold, optionally combined with student agreement;
    with `audit_rate`, a random share of the labels it would accept go to a person anyway."""

    def __init__(self, config: RoutingConfig):
        self.config = config

    def route(self, result: TeacherResult, student: StudentPrediction | None, item_id: str | None = None) -> Decision:
        decision = self._route(result, student)
        rate = self.config.audit_rate
        if decision.route == "accept" and item_id is not None and rate > 0 and audited(item_id, rate):
            return Decision("human", f"audit sample ({rate:.0%} of accepted labels are checked): {decision.reason}")
        return decision

    def _route(self, result: TeacherResult, student: StudentPrediction | None) -> Decision:
        if result.error is not None or result.answer is None:
            kind = result.error or "no label"
            message = f": {result.error_message}" if result.error_message else ""
            return Decision("human", f"teacher failed ({kind}){message}")
        if result.confidence is None:
            return Decision("human", "teacher gave no confidence")
        cfg = self.config
        confident, reason = _compare("teacher confidence", result.confidence, cfg.confidence_threshold)
        agrees = student is not None and student.label == result.label
        if student is None or student.label is None:
            disagreement = "no student prediction"
        else:
            disagreement = f"student says {_student_says(student)}, teacher '{result.label}'"

        if cfg.student_agreement == "ignore":
            return Decision("accept" if confident else "human", reason)
        if cfg.student_agreement == "required":
            if not confident:
                return Decision("human", reason)
            if agrees:
                return Decision("accept", f"{reason} and student agrees")
            return Decision("human", f"{reason} but {disagreement}")
        # sufficient
        if confident:
            return Decision("accept", reason)
        if not agrees:
            return Decision("human", f"{reason} and {disagreement}")
        enough, agreement = _compare("teacher confidence", result.confidence, cfg.agreement_threshold)
        if enough:
            return Decision("accept", f"student agrees and {agreement} (agreement threshold)")
        return Decision("human", f"{reason}; student agrees but {agreement} (agreement threshold)")
