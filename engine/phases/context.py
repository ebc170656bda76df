"""What every phase works with: the job's config, the run's store and folder, the pool (Parquet shards),
the executor that maps functions over it, and the models (loaded once, when a phase first needs them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..config import JobConfig
from ..data import Record
from ..executors import Executor, make_executor
from ..pool import PoolColumn, PoolShards, write_pool
from ..run_folder import RunFolder, RunFolderError
from ..store import Store
from ..students import Student
from ..teacher import Teacher

Log = Callable[[str], None]


@dataclass
class Models:
    """The student and the teacher of a run, built on first use and kept for the rest of it."""

    config: JobConfig
    folder: RunFolder
    progress: bool
    log: Log
    executor: Executor
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
            self.teacher = self.executor.build_teacher(teacher, self.config.task, progress=self.progress)
        return self.teacher

    def close(self) -> None:
        if self.teacher is not None:
            self.teacher.close()
        self.executor.close()


def open_pool(folder: RunFolder, store: Store, shard_rows: int) -> PoolShards:
    """The run's pool shards; a run made before they existed (its pool in the store) gets them now, once."""
    if PoolShards.exists(folder.pool_dir):
        return PoolShards(folder.pool_dir)
    if store.pool_layout() != "items":
        raise RunFolderError(f"{folder.pool_dir}: the pool's shards are missing from the run folder")
    return write_pool(folder.pool_dir, store.iter_pool_rows(), shard_rows)


@dataclass
class RunContext:
    config: JobConfig
    folder: RunFolder
    store: Store
    eval_records: list[Record]
    progress: bool = True
    log: Log = print
    executor: Executor | None = None  # None: the one the config names
    pool: PoolShards = field(init=False)  # pool position -> row: the row order of every score array
    pool_ids: Sequence[str] = field(init=False)  # columns of the pool, read from its shards on first use
    pool_texts: Sequence[str] = field(init=False)
    models: Models = field(init=False)

    def __post_init__(self) -> None:
        self.pool = open_pool(self.folder, self.store, self.config.executor.shard_rows)
        self.pool_ids, self.pool_texts = PoolColumn(self.pool, "item_id"), PoolColumn(self.pool, "text")
        if self.executor is None:
            self.executor = make_executor(self.config.executor, self.progress)
        self.models = Models(self.config, self.folder, self.progress, self.log, self.executor)

    @property
    def labels(self) -> list[str]:
        return self.config.task.label_names
