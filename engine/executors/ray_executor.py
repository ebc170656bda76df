"""The Ray executor: the same functions as the local one, run through Ray Data on a cluster or on this machine.

Scoring and embedding run `map_batches` over the pool's chunks (`batch_size` rows of one Parquet shard
each) on a fixed pool of actors (`executor.actors`): each actor builds the function once (the student
with the round's adapter), then reads each chunk's texts from the shard itself and scores them. Results
stream back to the driver, which writes each chunk at its pool positions, so nothing holds the whole
pool. A dead actor is restarted (`max_restarts`) and its chunks retried (`max_task_retries`) by Ray.
(Chunks, not `read_parquet` blocks: Ray Data reads small shard files as one block, which one actor
would then score alone, and a failure would redo all of it.)

Labeling (engine/executors/ray_llm.py): OpenAI-compatible servers through an HTTP processor of Ray actors,
vLLM as a `ray.data.llm` processor; the local teacher and generation writers stay on the driver. Either
way the call cache and the store sit on the driver: every result is cached and committed as it arrives.

`address: null` starts a private Ray on this machine with `num_cpus` and small memory settings;
"auto" or "ray://host:port" joins a running cluster, whose workers must see the run folder at the
same path (shared storage) and have Quarry installed (or get it from `runtime_env`).
"""
from __future__ import annotations

import sys
from typing import Callable

import numpy as np

from .base import FunctionFactory, Write
from .ray_llm import build_ray_teacher
from ..executor_config import ExecutorConfig
from ..pool import PoolShards, read_range
from ..task import TaskConfig
from ..teacher import Teacher
from ..teacher.options import TeacherOptions


class _Apply:
    """A Ray Data actor: builds the function once, then maps chunks (path, start, stop, first) -> (pos, outputs...)."""

    def __init__(self, make: FunctionFactory, cpus: float):
        import torch

        torch.set_num_threads(max(1, int(cpus)))  # as many threads as CPUs reserved, not one per core of the node
        self.function = make()

    def __call__(self, chunk: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start, stop = int(chunk["start"][0]), int(chunk["stop"][0])
        out = self.function(read_range(str(chunk["path"][0]), start, stop))
        first = int(chunk["first"][0])
        return {"pos": np.arange(first + start, first + stop, dtype=np.int64), **out}


def checkout_hook() -> Callable[[], None] | None:
    """When `quarry_al` is a source checkout put on sys.path by hand (tests, bench), workers on this
    machine must import the same one, not an installed copy: a setup hook that installs it there too.
    It is made in a namespace of its own, so Ray ships it by value (no module to import first)."""
    package = sys.modules.get("quarry_al")
    if package is None or getattr(package, "__file__", None) is not None or package.__spec__ is not None:
        return None
    namespace: dict = {"__name__": "quarry_checkout_hook"}
    exec(f"def install_checkout():\n    import sys, types\n    m = types.ModuleType('quarry_al')\n"
         f"    m.__path__ = [{list(package.__path__)[0]!r}]\n    sys.modules['quarry_al'] = m\n", namespace)
    return namespace["install_checkout"]


class RayExecutor:
    kind = "ray"

    def __init__(self, config: ExecutorConfig, progress: bool = True):
        import ray

        self.config, self.progress = config, progress
        self.started_here = False
        if not ray.is_initialized():
            runtime_env = dict(config.runtime_env)
            hook = checkout_hook() if config.address is None else None
            if hook is not None:
                runtime_env.setdefault("worker_process_setup_hook", hook)
            kwargs: dict = {"include_dashboard": False, "log_to_driver": False, "runtime_env": runtime_env or None}
            if config.address is None:
                kwargs.update(num_cpus=config.num_cpus,
                              object_store_memory=config.object_store_mb * 2**20 if config.object_store_mb else None)
            else:
                kwargs["address"] = config.address
            ray.init(**kwargs)
            self.started_here = True
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        context.execution_options.preserve_order = False

    def map_pool(self, pool: PoolShards, make: FunctionFactory, write: Write, desc: str = "scoring") -> None:
        import ray

        cfg = self.config
        chunks = [{"path": path, "start": start, "stop": stop, "first": pool.first_position(path)}
                  for path, start, stop in pool.chunks(cfg.batch_size)]
        dataset = ray.data.from_items(chunks, override_num_blocks=len(chunks))
        mapped = dataset.map_batches(_Apply, fn_constructor_args=(make, cfg.cpus_per_actor), batch_size=1,
                                     batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=cfg.actors),
                                     num_cpus=cfg.cpus_per_actor,
                                     max_restarts=cfg.max_restarts, max_task_retries=cfg.max_task_retries)
        for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            write(np.asarray(batch.pop("pos")), {name: np.asarray(value) for name, value in batch.items()})

    def build_teacher(self, config: TeacherOptions, task: TaskConfig, progress: bool) -> Teacher:
        return build_ray_teacher(config, task, self.config, progress)

    def close(self) -> None:
        import ray

        if self.started_here and ray.is_initialized():
            ray.shutdown()

