"""What a task kind supplies: everything the loop, review and export do differently for classification
and for generation (instruction -> answer) data. One module per kind implements `TaskKind`
(engine/tasks/classification.py, engine/tasks/generation.py); engine/tasks/registry.py picks it.

The phases (engine/phases/) and the review, export and report rooms call these methods and hold no
`if kind ==` of their own. `ctx` is the run's engine.phases.RunContext (typed loosely here so that
the context, which carries the kind, need not import the kinds).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

from ..config import JobConfig
from ..data import JobData
from ..store import LabelRow, ReviewRow, SelectionRow
from ..teacher import TeacherItem, TeacherResult
from ...strategies import QueryStrategy, Scores


@dataclass(frozen=True)
class Turns:
    """A labeled item as one exchange, the shape every export format is written from."""

    system: str  # "" when there is none
    instruction: str  # Alpaca's instruction
    input: str  # Alpaca's input ("" when none)
    user: str  # the user's message
    answer: str  # the assistant's answer: a label, or a written answer


@dataclass(frozen=True)
class Routable:
    """A selected item as routing sees it: the teacher's result (its confidence the kind's), what the
    student predicted, and every confidence signal measured (generation; None for classification)."""

    row: SelectionRow
    result: TeacherResult
    signals: dict[str, float] | None = None


@dataclass(frozen=True)
class SimulatedDecision:
    answer: str  # what the simulated person decides: a label, or an answer text
    edit: str | None = None  # generation: "rewrite" when the reference replaces the teacher's answer


class TaskKind(Protocol):
    name: str

    # --- data ------------------------------------------------------------------------------
    def load_data(self, config: JobConfig) -> JobData:
        """Pool, seed and eval records (records' `label` is the gold label or the reference answer)."""
        ...

    def plan_texts(self, data: JobData) -> list[str]:
        """What `quarry plan` renders prompts from: the pool items as the teacher's user turn."""
        ...

    # --- the loop --------------------------------------------------------------------------
    def new_student(self, config: JobConfig) -> Any:
        """A fresh, untrained student (fit, save, load, trained)."""
        ...

    def pool_scores(self, ctx: Any, round_: int, strategy: QueryStrategy) -> Scores:
        """What round `round_`'s strategy selects from (round 0 included)."""
        ...

    def predictions(self, ctx: Any, round_: int, scores: Scores, rows: Sequence[int]) -> list[tuple[str | None, float | None]]:
        """(student label, its confidence) recorded with each chosen pool row, for routing and review."""
        ...

    def label_indices(self, ctx: Any) -> np.ndarray:
        """(n_pool,) each pool item's decided class index, -1 where undecided (strategies' `labels`)."""
        ...

    def teacher_items(self, ctx: Any, round_: int, rows: Sequence[SelectionRow]) -> list[TeacherItem]:
        ...

    def routable(self, ctx: Any, round_: int, rows: Sequence[SelectionRow],
                 results: Sequence[TeacherResult]) -> list[Routable]:
        """Each selected item's result with the confidence routing reads (computed signals for generation)."""
        ...

    def simulated_decisions(self, config: JobConfig, reviews: Sequence[ReviewRow]) -> list[SimulatedDecision]:
        """What simulated review decides for pending items, from their gold labels or references."""
        ...

    def train_and_evaluate(self, ctx: Any, round_: int, student: Any, labels: Sequence[LabelRow],
                           timings: dict[str, float]) -> dict[str, Any]:
        """Fit `student` on every label so far, save it as the round's adapter, evaluate it; returns the
        round's metrics (engine/metrics.py's common ones included), timings filled in."""
        ...

    def summary(self, metrics: dict[str, Any]) -> str:
        """The round's evaluation in one phrase, for the log."""
        ...

    # --- review, export ----------------------------------------------------------------------
    def check_answer(self, config: JobConfig, answer: Any) -> str | None:
        """Why a person's decision value is not acceptable (None: it is)."""
        ...

    def turns(self, config: JobConfig, row: LabelRow) -> Turns:
        ...

    def flat_record(self, row: LabelRow) -> dict[str, Any]:
        """The `jsonl` export's own fields of a labeled item (provenance comes beside them)."""
        ...
