"""What every phase works with: the job's config and task kind, the run's store and folder, the pool
(Parquet shards), the executor that maps functions over it, and the models (each built when a phase
first needs it)."""
from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from typing import Any, Callable, Sequence

from ..config import JobConfig
from ..data import Record
from ..executors import Executor, make_executor
from ..pool import PoolColumn, PoolShards, write_pool
from ..run_folder import RunFolder, RunFolderError
from ..store import Store
from ..tasks.base import TaskKind
from ..tasks.registry import task_kind
from ..teacher import Teacher

Log = Callable[[str], None]


@dataclass
class Models:
    """The student and the teacher of a run, built on first use and kept for the rest of it."""

    config: JobConfig
    kind: TaskKind
    folder: RunFolder
    progress: bool
    log: Log
    executor: Executor | None = None  # None until first needed: then the one the config names
    student: Any = None  # the kind's student (engine/students/)
    teacher: Teacher | None = None

    def get_executor(self) -> Executor:
        """Ray starts (or is joined) only when a phase first maps the pool or labels through it."""
        if self.executor is None:
            self.executor = make_executor(self.config.executor, self.progress)
        return self.executor

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
            self.teacher = self.get_executor().build_teacher(teacher, self.config.task, progress=self.progress)
        return self.teacher

    def close(self) -> None:
        if self.teacher is not None:
            self.teacher.close()
        if self.executor is not None:
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
    executor: InitVar[Executor | None] = None  # None: the one the config names, made when first needed
    pool: PoolShards = field(init=False)  # pool position -> row: the row order of every score array
    kind: TaskKind = field(init=False)  # what the task's kind does differently (engine/tasks/)
    models: Models = field(init=False)
    pool_ids: Sequence[str] = field(init=False)  # columns of the pool, read from its shards on first use
    pool_texts: Sequence[str] = field(init=False)  # generation: the instructions

    def __post_init__(self, executor: Executor | None) -> None:
        self.pool = open_pool(self.folder, self.store, self.config.executor.shard_rows)
        self.pool_ids, self.pool_texts = PoolColumn(self.pool, "item_id"), PoolColumn(self.pool, "text")
        self.kind = task_kind(self.config.task)
        self.models = Models(self.config, self.kind, self.folder, self.progress, self.log, executor)

    @property
    def labels(self) -> list[str]:
        return self.config.task.label_names
