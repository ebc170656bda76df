"""Where the heavy work of a round runs: this process (`local`) or a Ray cluster (`ray`), behind one
small interface (base.py). The loop hands an executor a function over pool texts and a place to write,
and a teacher config to build the labeling side; it never knows which executor it has."""
from __future__ import annotations

from .base import BatchFunction, Executor, FunctionFactory
from .local import LocalExecutor
from .ray_executor import RayExecutor
from ..executor_config import ExecutorConfig

__all__ = ["BatchFunction", "Executor", "FunctionFactory", "LocalExecutor", "RayExecutor", "make_executor"]


def make_executor(config: ExecutorConfig, progress: bool = True) -> Executor:
    """The executor a config names; Ray is imported (and started or joined) only for `kind: ray`."""
    if config.kind == "ray":
        return RayExecutor(config, progress)
    return LocalExecutor(progress)
