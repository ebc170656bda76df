"""What every phase works with: the job's config and task kind, the run's store and folder, the pool,
and the models (loaded once, when a phase first needs them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..config import JobConfig
from ..data import Record
from ..run_folder import RunFolder
from ..store import Item, Store
from ..tasks.base import TaskKind
from ..tasks.registry import task_kind
from ..teacher import Teacher, build_teacher

Log = Callable[[str], None]


@dataclass
class Models:
    """The student and the teacher of a run, built on first use and kept for the rest of it."""

    config: JobConfig
    kind: TaskKind
    folder: RunFolder
    progress: bool
    log: Log
    student: Any = None  # the kind's student (engine/students/)
    teacher: Teacher | None = None

    def fresh_student(self) -> Any:
        if self.student is None:
            self.student = self.kind.new_student(self.config)
        return self.student

    def trained_student(self, round_: int) -> Any:
        """The student that round `round_` selects with: the one trained in the round before (in memory
        since then, or loaded from its adapter on resume)."""
        student = self.fresh_student()
        if not student.trained:
            student.load(self.folder.adapter(round_ - 1))
        return student

    def student_for(self, round_: int) -> Any:
        """Round 0's untrained student (a causal LM already has opinions), or the one trained before the round."""
        return self.fresh_student() if round_ == 0 else self.trained_student(round_)

    def get_teacher(self) -> Teacher:
        if self.teacher is None:
            teacher = self.config.teacher
            self.log(f"loading teacher {teacher.model} ({teacher.kind})")
            self.teacher = build_teacher(teacher, self.config.task, progress=self.progress)
        return self.teacher

    def close(self) -> None:
        if self.teacher is not None:
            self.teacher.close()


@dataclass
class RunContext:
    config: JobConfig
    folder: RunFolder
    store: Store
    eval_records: list[Record]
    progress: bool = True
    log: Log = print
    pool: list[Item] = field(default_factory=list)  # pool position -> item: the row order of every score array
    kind: TaskKind = field(init=False)  # what the task's kind does differently (engine/tasks/)
    models: Models = field(init=False)
    pool_ids: list[str] = field(init=False)
    pool_texts: list[str] = field(init=False)  # generation: the instructions

    def __post_init__(self) -> None:
        if not self.pool:
            self.pool = self.store.pool_items()
        self.pool_ids = [i.item_id for i in self.pool]
        self.pool_texts = [i.text for i in self.pool]
        self.kind = task_kind(self.config.task)
        self.models = Models(self.config, self.kind, self.folder, self.progress, self.log)

    @property
    def labels(self) -> list[str]:
        return self.config.task.label_names
