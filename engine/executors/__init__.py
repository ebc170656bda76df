"""Where the heavy work of a round runs: this process (`local`) or a Ray cluster (`ray`), behind one
small interface (base.py). The loop hands an executor a function over pool texts and a place to write,
and a teacher config to build the labeling side; it never knows which executor it has."""
from __future__ import annotations

import importlib.util

from .base import BatchFunction, Executor, FunctionFactory
from .local import LocalExecutor
from .ray_executor import RayExecutor
from ..core.errors import ConfigError
from ..executor_config import ExecutorConfig

__all__ = ["BatchFunction", "Executor", "FunctionFactory", "LocalExecutor", "RayExecutor", "check_executor",
           "make_executor"]


def check_executor(config: ExecutorConfig) -> None:
    """Before any work: the executor the config names can run here."""
    if config.kind == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError("executor.kind: ray needs Ray, which is not installed: pip install 'quarry-al[ray]'")


def make_executor(config: ExecutorConfig, progress: bool = True) -> Executor:
    """The executor a config names; Ray is imported (and started or joined) only for `kind: ray`."""
    if config.kind == "ray":
        return RayExecutor(config, progress)
    return LocalExecutor(progress)
