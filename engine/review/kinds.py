"""How each task kind is reviewed: the batch shape for Label Studio / Argilla, the terminal reviewer, the
decisions file's field, and the web queue's page. The decision's meaning (what is an acceptable value,
what simulated review decides) is the task kind's (engine/tasks/)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..config import JobConfig
from ..tasks.registry import task_kind
from .answers import review_answers_in_terminal
from .batch import Shape, label_shape
from .batch_answers import answer_shape
from .queue import ReviewQueue
from ..store import ReviewRow
from .terminal import review_in_terminal


@dataclass(frozen=True)
class ReviewKind:
    shape: Shape  # review batches
    terminal: Callable[..., dict[str, int]]  # (queue, reviewer, limit=...) -> counts
    decision_key: str  # the field of a decisions file's value
    check: Callable[[Any], str | None]  # why a decided value is not acceptable
    page: str  # the web queue's template
    item_fields: Callable[[ReviewRow], dict[str, Any]]  # what the web page shows beyond the common fields


def _no_fields(item: ReviewRow) -> dict[str, Any]:
    return {}


def _answer_fields(item: ReviewRow) -> dict[str, Any]:
    """A written answer's item: its input, the reference where there is one, and the signals measured."""
    return {"input": item.input or "", "reference": item.gold, "signals": item.signals}


def review_kind(config: JobConfig) -> ReviewKind:
    kind = task_kind(config.task)

    def check(value: Any) -> str | None:
        return kind.check_answer(config, value)

    if config.task.kind == "generation":
        return ReviewKind(answer_shape(check), review_answers_in_terminal, "answer", check, "queue_answers.html",
                          _answer_fields)
    labels = config.task.label_names

    def terminal(queue: ReviewQueue, reviewer: str, **kwargs: Any) -> dict[str, int]:
        return review_in_terminal(queue, labels, reviewer, **kwargs)

    return ReviewKind(label_shape(labels), terminal, "label", check, "queue.html", _no_fields)
