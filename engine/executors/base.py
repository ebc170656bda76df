"""The executor interface: map a function over the pool's shards (score, embed) and label a batch.

A `FunctionFactory` is a small picklable object; calling it builds the `BatchFunction` (loading its
model) once per worker: once in this process for the local executor, once per Ray actor for the Ray
executor. A batch function maps texts to arrays with one row per text (probs (m, c), embeddings (m, d),
mc_probs (m, T, c)); the executor hands each batch's arrays to `write(positions, arrays)` on the driver,
in whatever order batches finish.
"""
from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from ..pool import PoolShards
from ..task import TaskConfig
from ..teacher import Teacher
from ..teacher.options import TeacherOptions


class BatchFunction(Protocol):
    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]: ...


FunctionFactory = Callable[[], BatchFunction]
Write = Callable[[np.ndarray, dict[str, np.ndarray]], None]


class Executor(Protocol):
    kind: str

    def map_pool(self, pool: PoolShards, make: FunctionFactory, write: Write, desc: str = "scoring") -> None:
        """Apply the function to every pool text; `write(positions, outputs)` runs on the driver per batch."""
        ...

    def build_teacher(self, config: TeacherOptions, task: TaskConfig, progress: bool) -> Teacher:
        """The job's teacher (behind the call cache), run where this executor runs labeling."""
        ...

    def close(self) -> None: ...

