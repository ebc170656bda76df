"""The `executor` section of a job's config: where scoring, embedding and labeling run (engine/executors/).

    executor:
      kind: ray            # local (the default: this process) | ray
      address: null        # null: a private Ray on this machine; "auto" or "ray://head:10001": a running cluster
      actors: 2            # scoring actors, each holding the student once
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ExecutorConfig(BaseModel):
    """Where scoring, embedding and labeling run: this process, or Ray (a private one on this machine,
    or a running cluster). The loop is the same either way (engine/executors/)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local", "ray"] = "local"
    address: str | None = None  # ray: None starts Ray on this machine; "auto" or "ray://host:port" joins a cluster
    num_cpus: int | None = Field(default=None, gt=0)  # ray on this machine: CPUs it may use (None: all)
    object_store_mb: int | None = Field(default=None, gt=0)  # ray on this machine: object store size
    actors: int = Field(default=1, gt=0)  # scoring actors, each holding the student once
    cpus_per_actor: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=4096, gt=0)  # pool rows per map_batches batch
    max_restarts: int = Field(default=3, ge=0)  # a dead actor is restarted this often ...
    max_task_retries: int = Field(default=3, ge=0)  # ... and its batches retried
    label_cpus_per_actor: float = Field(default=0.25, gt=0)  # an HTTP labeling actor mostly waits on the server
    label_batch_size: int = Field(default=64, gt=0)  # vLLM processor: items per engine batch
    shard_rows: int = Field(default=100_000, gt=0)  # pool rows per Parquet shard of a new run folder
    runtime_env: dict[str, Any] = Field(default_factory=dict)  # ray.init runtime_env (pip, env_vars, working_dir...)

    @model_validator(mode="after")
    def _local_only_options(self) -> "ExecutorConfig":
        if self.address is not None and (self.num_cpus is not None or self.object_store_mb is not None):
            raise ValueError("num_cpus and object_store_mb size a Ray started on this machine: "
                             "leave them out with an address (the cluster has its own)")
        if self.address is not None and not (self.address == "auto" or self.address.startswith("ray://")):
            raise ValueError(f"address must be null, 'auto' or 'ray://host:port', not {self.address!r}")
        return self
