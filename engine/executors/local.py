"""The local executor: today's single process. The function is built once and applied shard by shard,
so a pool of millions streams through; a pool of one shard is scored in one call, exactly as before."""
from __future__ import annotations

import numpy as np

from .base import FunctionFactory, Write
from ..pool import PoolShards
from ..task import TaskConfig
from ..teacher import Teacher, build_teacher
from ..teacher.options import TeacherOptions


class LocalExecutor:
    kind = "local"

    def __init__(self, progress: bool = True):
        self.progress = progress

    def map_pool(self, pool: PoolShards, make: FunctionFactory, write: Write, desc: str = "scoring") -> None:
        function = make()
        for start, texts in pool.iter_texts():
            write(np.arange(start, start + len(texts)), function(texts))

    def build_teacher(self, config: TeacherOptions, task: TaskConfig, progress: bool) -> Teacher:
        return build_teacher(config, task, progress=progress)

    def close(self) -> None:
        pass
