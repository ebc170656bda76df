"""Calibrated routing: pick the confidence threshold from what people said about the teacher.

Everything here is a pure function of arrays of reviewed items (teacher label and confidence,
the person's label, optionally the student's prediction), so it is tested on hand-made numbers.

Why weights: the items people review are not a random sample. Items the rule would have
accepted reach a person only as a random audit sample (`routing.audit_rate`), so each audited
item stands for 1/audit_rate accepted items; items routed to a person because they were not
confident enough are all reviewed (weight 1). Without audits nothing is known above the
threshold in use, and the threshold can only move down, never up.

The precision a threshold must meet is checked on a conservative estimate: the Wilson score
lower bound (95%, one-sided z = 1.645 by default) of the weighted precision, computed with
Kish's effective sample size so that heavy audit weights do not pass for many observations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from .core.stats import auroc, wilson_interval, wilson_lower
from .tasks.signals import SIGNALS, confidence

AgreementMode = Literal["ignore", "required", "sufficient"]


@dataclass(frozen=True)
class ReviewedItem:
    teacher_label: str
    teacher_confidence: float
    human_label: str
    student_label: str | None = None
    student_confidence: float | None = None
    weight: float = 1.0  # how many teacher-labeled items this one stands for (1/audit rate for audits)
    signals: dict[str, float] | None = None  # generation: every confidence signal of the answer (raw values)

    @property
    def correct(self) -> bool:
        return self.teacher_label == self.human_label

    @property
    def agrees(self) -> bool:
        return self.student_label is not None and self.student_label == self.teacher_label


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    accepted_share: float  # weighted share of items the rule accepts at this threshold
    precision: float | None  # weighted precision of the accepted ones; None when none is accepted
    precision_lower: float | None  # Wilson lower bound at the effective sample size
    accepted: int  # reviewed items accepted (unweighted)


@dataclass(frozen=True)
class Calibration:
    threshold: float  # > 1 means nothing is accepted: no threshold met the target
    precision: float | None
    precision_lower: float | None
    accepted_share: float
    reviewed: int
    curve: tuple[CurvePoint, ...]


NOTHING_ACCEPTED = math.nextafter(1.0, 2.0)


def accepts(confidence: np.ndarray, agrees: np.ndarray, threshold: float, mode: AgreementMode,
            agreement_threshold: float) -> np.ndarray:
    """Which items `engine.routing.Router` accepts at `threshold` (vectorised; a test holds the two equal)."""
    confident = confidence >= threshold
    if mode == "ignore":
        return confident
    if mode == "required":
        return confident & agrees
    return confident | (agrees & (confidence >= agreement_threshold))


def _arrays(items: Sequence[ReviewedItem]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (np.array([i.teacher_confidence for i in items], dtype=float), np.array([i.agrees for i in items], dtype=bool),
            np.array([i.correct for i in items], dtype=float), np.array([i.weight for i in items], dtype=float))


def _point(arrays: tuple[np.ndarray, ...], threshold: float, mode: AgreementMode, agreement_threshold: float,
           z: float) -> CurvePoint:
    conf, agrees, correct, weight = arrays
    mask = accepts(conf, agrees, threshold, mode, agreement_threshold)
    w = weight[mask]
    if w.sum() <= 0:
        return CurvePoint(threshold, 0.0, None, None, 0)
    precision = float((w * correct[mask]).sum() / w.sum())
    effective = float(w.sum() ** 2 / (w ** 2).sum())
    return CurvePoint(threshold, float(w.sum() / weight.sum()), precision,
                      wilson_lower(precision * effective, effective, z), int(mask.sum()))


def precision_curve(items: Sequence[ReviewedItem], mode: AgreementMode = "ignore", agreement_threshold: float = 0.5,
                    z: float = 1.645) -> tuple[CurvePoint, ...]:
    """Precision of the accepted labels against the share accepted, at every distinct teacher confidence
    (lowest threshold first) and finally at a threshold that accepts nothing."""
    if not items:
        return ()
    arrays = _arrays(items)
    return tuple(_point(arrays, threshold, mode, agreement_threshold, z)
                 for threshold in [*np.unique(arrays[0]).tolist(), NOTHING_ACCEPTED])


def rule_precision(items: Sequence[ReviewedItem], threshold: float, mode: AgreementMode = "ignore",
                   agreement_threshold: float = 0.5, z: float = 1.645) -> CurvePoint:
    """Precision of the labels one routing rule accepts, measured on the reviewed items it would accept
    (audits weighted by 1/audit_rate), with its Wilson lower bound at the effective sample size."""
    if not items:
        return CurvePoint(threshold, 0.0, None, None, 0)
    return _point(_arrays(items), threshold, mode, agreement_threshold, z)


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int  # reviewed items whose teacher confidence falls in [low, high)
    confidence: float  # their mean teacher confidence
    accuracy: float  # share the person agreed with (weighted)
    interval: tuple[float, float]  # Wilson 95% interval of the accuracy, at the effective sample size


def reliability_bins(items: Sequence[ReviewedItem], bins: int = 10) -> list[ReliabilityBin]:
    """Observed accuracy of reviewed teacher labels per confidence bin (the last bin includes 1.0):
    a calibrated teacher's bins lie on the diagonal. Empty bins are left out."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    for k in range(bins):
        low, high = float(edges[k]), float(edges[k + 1])
        members = [i for i in items if low <= i.teacher_confidence < high or (k == bins - 1 and i.teacher_confidence >= high)]
        if not members:
            continue
        w = np.array([i.weight for i in members], dtype=float)
        right = np.array([i.correct for i in members], dtype=float)
        accuracy = float((w * right).sum() / w.sum())
        effective = float(w.sum() ** 2 / (w ** 2).sum())
        out.append(ReliabilityBin(low, high, len(members), float(np.mean([i.teacher_confidence for i in members])),
                                  accuracy, wilson_interval(accuracy * effective, effective)))
    return out


def choose_threshold(items: Sequence[ReviewedItem], target_precision: float, mode: AgreementMode = "ignore",
                     agreement_threshold: float = 0.5, z: float = 1.645) -> Calibration:
    """The lowest threshold (the most labels accepted) whose precision lower bound meets the target;
    if none does, a threshold above 1 that sends everything to people."""
    curve = precision_curve(items, mode, agreement_threshold, z)
    for point in curve:
        if point.precision_lower is not None and point.precision_lower >= target_precision:
            return Calibration(point.threshold, point.precision, point.precision_lower, point.accepted_share,
                               len(items), curve)
    last = curve[-1] if curve else CurvePoint(NOTHING_ACCEPTED, 0.0, None, None, 0)
    return Calibration(NOTHING_ACCEPTED, last.precision, last.precision_lower, last.accepted_share, len(items), curve)


def student_support(item: ReviewedItem) -> float | None:
    """How much the student backs the teacher's label, in [0, 1]: agreements rank above disagreements,
    a sure agreement highest, a sure disagreement lowest."""
    if item.student_label is None or item.student_confidence is None:
        return None
    if item.agrees:
        return 0.5 + item.student_confidence / 2
    return (1 - item.student_confidence) / 2


def signal_aurocs(items: Sequence[ReviewedItem]) -> dict[str, float | None]:
    """How well each confidence signal separates the teacher's right labels from its wrong ones.

    `teacher+student` averages teacher confidence and student support (items without a
    student prediction are left out of the student signals).
    """
    correct = [i.correct for i in items]
    result: dict[str, float | None] = {"teacher": auroc([i.teacher_confidence for i in items], correct)}
    with_student = [(i, student_support(i)) for i in items if student_support(i) is not None]
    result["student"] = auroc([s for _, s in with_student], [i.correct for i, _ in with_student])
    result["teacher+student"] = auroc([(i.teacher_confidence + s) / 2 for i, s in with_student],
                                      [i.correct for i, _ in with_student])
    return result


def answer_signal_aurocs(items: Sequence[ReviewedItem]) -> dict[str, tuple[float | None, int]]:
    """Generation: (AUROC, items measured) of each signal for telling answers people kept as they were from
    those they changed; `length` is the baseline every other signal must beat."""
    result: dict[str, tuple[float | None, int]] = {}
    for name in SIGNALS:
        measured = [(confidence(name, i.signals[name]), i.correct) for i in items if i.signals and name in i.signals]
        if measured:
            result[name] = (auroc([c for c, _ in measured], [ok for _, ok in measured]), len(measured))
    return result
