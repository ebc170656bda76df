"""The task kinds by name (`task.kind`)."""
from __future__ import annotations

from ..task import TaskConfig
from .base import TaskKind
from .classification import ClassificationTask
from .generation import GenerationTask

KINDS: dict[str, TaskKind] = {"classification": ClassificationTask(), "generation": GenerationTask()}


def task_kind(task: TaskConfig) -> TaskKind:
    return KINDS[task.kind]
