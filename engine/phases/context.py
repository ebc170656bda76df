"""What every phase works with: the job's config, the run's store and folder, the pool, and the
models (loaded once, when a phase first needs them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..config import JobConfig
from ..data import Record
from ..run_folder import RunFolder
from ..store import Store
from ..students import Student
from ..teacher import Teacher, build_teacher

Log = Callable[[str], None]


@dataclass
class Models:
    """The student and the teacher of a run, built on first use and kept for the rest of it."""

    config: JobConfig
    folder: RunFolder
    progress: bool
    log: Log
    student: Student | None = None
    teacher: Teacher | None = None

    def fresh_student(self) -> Student:
        if self.student is None:
            self.student = Student(self.config.student, self.config.task.label_names)
        return self.student

    def trained_student(self, round_: int) -> Student:
        """The student that round `round_` selects with: the one trained in the round before (in memory
        since then, or loaded from its adapter on resume)."""
        student = self.fresh_student()
        if not student.trained:
            student.load(self.folder.adapter(round_ - 1))
        return student

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
    pool_ids: list[str] = field(default_factory=list)  # pool position -> item id: row order of every score array
    pool_texts: list[str] = field(default_factory=list)
    models: Models = field(init=False)

    def __post_init__(self) -> None:
        if not self.pool_ids:
            items = self.store.pool_items()
            self.pool_ids = [i.item_id for i in items]
            self.pool_texts = [i.text for i in items]
        self.models = Models(self.config, self.folder, self.progress, self.log)

    @property
    def labels(self) -> list[str]:
        return self.config.task.label_names
