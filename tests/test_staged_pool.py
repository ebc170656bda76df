"""A job's pool is staged on disk as it is read: same records as a list would hold, memory that does not grow
with the pool, row numbers that stay right across read batches."""
from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from quarry_al.engine.config import DataConfig, SplitConfig  # noqa: E402
from quarry_al.engine.data import DataError, load_job_data, read_records  # noqa: E402
from quarry_al.engine.records import Record  # noqa: E402
from quarry_al.engine.staged_pool import StagedPool, stage_records  # noqa: E402

LABELS = ["pos", "neg"]


def parquet_pool(path: Path, n: int, bad_row: int | None = None) -> Path:
    labels = [LABELS[i % 2] for i in range(n)]
    if bad_row is not None:
        labels[bad_row] = "maybe"
    pq.write_table(pa.table({"id": [f"p{i}" for i in range(n)], "text": [f"headline number {i} " + "about things " * 15
                                                                          for i in range(n)], "label": labels}), path)
    return path


def test_a_staged_pool_reads_back_as_the_records_in_order():
    records = [Record(f"i{i}", f"text {i}", LABELS[i % 2] if i % 3 else None, f"f.jsonl:{i + 1}",
                      "in" if i % 5 == 0 else None) for i in range(250)]
    pool = stage_records(iter(records), shard_rows=100)
    assert isinstance(pool, StagedPool) and len(pool) == 250
    assert list(pool) == records and pool == records
    assert pool[0] == records[0] and pool[-1] == records[-1] and pool[95:105] == records[95:105]
    picked = pool.subset([240, 3, 120, 99])  # any order in, file order out
    assert list(picked) == [records[i] for i in (3, 99, 120, 240)]
    assert picked[1:3] == [records[99], records[120]] and list(picked.column("item_id")) == ["i3", "i99", "i120", "i240"]
    assert list(picked.subset([0, 3])) == [records[3], records[240]]  # a view of a view


def test_the_staging_folder_goes_with_the_last_view():
    pool = stage_records(iter([Record("a", "t", None, "f:1")]))
    folder = pool._folder.path
    view = pool.subset([0])
    del pool
    assert folder.is_dir() and list(view) == [Record("a", "t", None, "f:1")]
    del view
    assert not folder.exists()


def test_the_job_pool_is_staged_and_split_as_before(tmp_path):
    rows = [{"id": f"p{i}", "text": f"text {i}", "label": LABELS[i % 2]} for i in range(300)]
    source = tmp_path / "pool.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = load_job_data(DataConfig(pool=str(source), split=SplitConfig(eval_size=40, seed=3), max_pool=200), LABELS)
    assert isinstance(data.pool, StagedPool) and (len(data.pool), len(data.eval)) == (200, 40)
    every = read_records(str(source), label_names=LABELS)
    positions = {r.item_id: i for i, r in enumerate(every)}
    assert [positions[r.item_id] for r in data.pool] == sorted(positions[r.item_id] for r in data.pool)  # file order
    assert not {r.item_id for r in data.pool} & {r.item_id for r in data.eval}
    again = load_job_data(DataConfig(pool=str(source), split=SplitConfig(eval_size=40, seed=3), max_pool=200), LABELS)
    assert again.pool == data.pool and again.eval == data.eval  # seeded: the same split every time


def test_a_bad_row_past_the_first_read_batch_is_named_by_its_row(tmp_path):
    source = parquet_pool(tmp_path / "pool.parquet", 70_000, bad_row=69_123)
    with pytest.raises(DataError, match=r"pool.parquet:row 69123: field 'label': unknown label 'maybe'"):
        load_job_data(DataConfig(pool=str(source)), LABELS)


def test_loading_a_large_pool_keeps_python_memory_flat(tmp_path):
    """200k rows: a list of the records holds 123 MB of Python objects (traced peak); the staged pool holds one read batch,
    one staging shard and the ids (for duplicates)."""
    source = parquet_pool(tmp_path / "pool.parquet", 200_000)
    tracemalloc.start()
    try:
        data = load_job_data(DataConfig(pool=str(source), split=SplitConfig(eval_size=500, seed=0)), LABELS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (len(data.pool), len(data.eval)) == (199_500, 500)
    assert peak < 70e6, f"peak {peak / 1e6:.0f} MB of Python objects while loading"
    assert data.pool[123_456].text.startswith("headline number")
