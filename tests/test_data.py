"""engine.data: every source format, every bad-row kind (error and skip), splits, caps and seed removal."""
from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from quarry_al.engine.config import DataConfig, SplitConfig  # noqa: E402
from quarry_al.engine.data import DataError, JobData, Record, load_job_data, read_records  # noqa: E402

LABELS = ["pos", "neg"]
ROWS = [
    {"id": "a", "text": "good film", "label": "pos"},
    {"id": "b", "text": "bad film", "label": "neg"},
    {"id": 7, "text": "fine, I guess", "label": "pos"},
]
EXPECTED = [("a", "good film", "pos"), ("b", "bad film", "neg"), ("7", "fine, I guess", "pos")]


def write_jsonl(path: Path, rows: list, *, raw_lines: dict[int, str] | None = None) -> Path:
    """Rows as JSON Lines; raw_lines puts verbatim text at given 1-based line numbers."""
    lines = [json.dumps(r) for r in rows]
    for number, text in sorted((raw_lines or {}).items()):
        lines.insert(number - 1, text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def triples(records: list[Record]) -> list[tuple[str, str, str | None]]:
    return [(r.item_id, r.text, r.label) for r in records]


def make_pool(tmp_path: Path, n: int, name: str = "pool.jsonl") -> Path:
    rows = [{"id": f"p{i}", "text": f"text number {i}", "label": LABELS[i % 2]} for i in range(n)]
    return write_jsonl(tmp_path / name, rows)


# ------------------------------------------------------------------------------------------- formats


def test_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "pool.jsonl", ROWS, raw_lines={2: "", 4: "   "})  # blank lines ignored
    records = read_records(str(path), label_names=LABELS)
    assert triples(records) == EXPECTED
    assert [r.where for r in records] == [f"{path}:1", f"{path}:3", f"{path}:5"]


def test_json_array(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    records = read_records(str(path), label_names=LABELS)
    assert triples(records) == EXPECTED
    assert records[2].where == f"{path}:row 2"


def test_json_file_with_json_lines(tmp_path):
    path = write_jsonl(tmp_path / "pool.json", ROWS)
    assert triples(read_records(str(path))) == EXPECTED


def test_csv(tmp_path):
    path = tmp_path / "pool.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text", "label", "extra"])
        writer.writeheader()
        for row in ROWS:
            writer.writerow({**row, "extra": "x"})
    records = read_records(str(path), label_names=LABELS)
    assert triples(records) == EXPECTED
    assert records[0].where == f"{path}:2"


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"id": [str(r["id"]) for r in ROWS], "text": [r["text"] for r in ROWS],
                             "label": [r["label"] for r in ROWS], "extra": [1, 2, 3]}), path)
    records = read_records(str(path), label_names=LABELS)
    assert triples(records) == EXPECTED
    assert records[1].where == f"{path}:row 1"


def test_save_to_disk_dataset_and_dict(tmp_path):
    import datasets

    columns = {"id": [str(r["id"]) for r in ROWS], "text": [r["text"] for r in ROWS],
               "label": [r["label"] for r in ROWS]}
    single = tmp_path / "single"
    datasets.Dataset.from_dict(columns).save_to_disk(str(single))
    assert triples(read_records(str(single), label_names=LABELS)) == EXPECTED

    # A DatasetDict with a ClassLabel column: "train" by default, `::split` to pick another.
    features = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=LABELS)})
    encoded = {**columns, "label": [LABELS.index(v) for v in columns["label"]]}
    folder = tmp_path / "dict"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict(encoded, features=features),
        "test": datasets.Dataset.from_dict({k: v[:1] for k, v in encoded.items()}, features=features),
    }).save_to_disk(str(folder))
    records = read_records(str(folder), label_names=LABELS)
    assert triples(records) == EXPECTED
    assert records[0].where == f"{folder}:row 0"
    assert triples(read_records(f"{folder}::test", label_names=LABELS)) == EXPECTED[:1]
    with pytest.raises(DataError, match=r"no split 'dev' \(splits: train, test\)"):
        read_records(f"{folder}::dev")


def test_unknown_extension_and_missing_file(tmp_path):
    path = tmp_path / "pool.txt"
    path.write_text("hello\n")
    with pytest.raises(DataError, match=r"pool\.txt: unknown file type '\.txt'"):
        read_records(str(path))
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found"):
        read_records(str(tmp_path / "nope.jsonl"))


def test_hub_failure_names_the_source():
    with pytest.raises(DataError, match=r"^hf:quarry-no-such-org/no-such-dataset:test: cannot load"):
        read_records("hf:quarry-no-such-org/no-such-dataset:test")


# ------------------------------------------------------------------------------------------ bad rows

BAD_ROWS = [
    # (verbatim line 2, expected message after "path:2: ")
    ("{not json", "not valid JSON: "),
    ("[1, 2]", "row is not a JSON object (got list)"),
    ('"just a string"', "row is not a JSON object (got str)"),
    ('{"id": "x", "label": "pos"}', "field 'text' is missing"),
    ('{"id": "x", "text": "", "label": "pos"}', "field 'text' is empty"),
    ('{"id": "x", "text": "   ", "label": "pos"}', "field 'text' is empty"),
    ('{"id": "x", "text": null, "label": "pos"}', "field 'text' is missing"),
    ('{"id": "x", "text": 42, "label": "pos"}', "field 'text' must be a string, got int"),
    ('{"text": "no id here", "label": "pos"}', "field 'id' is missing"),
    ('{"id": "", "text": "t", "label": "pos"}', "field 'id' is empty"),
    ('{"id": 1.5, "text": "t", "label": "pos"}', "field 'id' must be a string or an integer, got float"),
    ('{"id": "x", "text": "t", "label": "meh"}', "field 'label': unknown label 'meh' (allowed: 'pos', 'neg')"),
]


@pytest.mark.parametrize("line, message", BAD_ROWS, ids=[m for _, m in BAD_ROWS])
def test_bad_row_error_and_skip(tmp_path, line, message):
    path = write_jsonl(tmp_path / "pool.jsonl", ROWS, raw_lines={2: line})
    with pytest.raises(DataError) as caught:
        read_records(str(path), label_names=LABELS)
    text = str(caught.value)
    assert text.startswith(f"{path}:2: {message}")
    assert "\n" not in text

    skipped: list[str] = []
    records = read_records(str(path), label_names=LABELS, on_bad_row="skip", skipped=skipped)
    assert triples(records) == EXPECTED
    assert len(skipped) == 1 and skipped[0] == text


def test_skip_reports_every_bad_row(tmp_path):
    path = write_jsonl(tmp_path / "pool.jsonl", ROWS, raw_lines={1: "{oops", 3: '{"id": "q"}'})
    skipped: list[str] = []
    records = read_records(str(path), on_bad_row="skip", skipped=skipped)
    assert len(records) == 3
    assert [s.split(": ")[0] for s in skipped] == [f"{path}:1", f"{path}:3"]


def test_skip_needs_a_list(tmp_path):
    with pytest.raises(ValueError, match="skipped"):
        read_records(str(make_pool(tmp_path, 3)), on_bad_row="skip")


def test_bad_rows_in_csv_and_parquet_name_line_and_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pool.csv"
    path.write_text("id,text,label\na,good,pos\nb,,neg\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:3: field 'text' is empty$"):
        read_records(str(path))

    path = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["good", None]}), path)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:row 1: field 'text' is missing$"):
        read_records(str(path))


def test_missing_text_column_lists_the_columns_and_names_the_key(tmp_path):
    path = tmp_path / "pool.csv"
    path.write_text("id,body,label\na,good,x\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: no column 'text' \(data.text_field\); "
                                        r"the header has 'id', 'body', 'label'$"):
        read_records(str(path))
    assert triples(read_records(str(path), text_field="body")) == [("a", "good", "x")]
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text('{"id": "a", "body": "good"}\n{"id": "b", "content": "fine"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"pool.jsonl: no column 'text' \(data.text_field\); "
                                        r"the rows have 'id', 'body', 'content'$"):
        read_records(str(jsonl))
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"id": ["a"], "body": ["good"], "extra": [1]}), parquet)
    with pytest.raises(DataError, match=r"pool.parquet: no column 'text' \(data.text_field\); "
                                        r"the file has 'id', 'body', 'extra'$"):
        read_records(str(parquet))


def test_a_row_without_text_among_rows_with_it_names_its_line(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text('{"id": "a", "text": "good"}\n{"id": "b", "body": "fine"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"pool.jsonl:2: field 'text' is missing$"):
        read_records(str(path))


def test_json_lines_keep_unicode_line_separators_inside_strings(tmp_path):
    """U+2028, U+2029 and U+0085 are legal unescaped in JSON strings (json.dumps(ensure_ascii=False)
    writes them so); only "\n" ends a JSON Lines record."""
    texts = ["one\u2028two", "three\u2029four", "five\u0085six", "crlf line"]
    content = "".join(json.dumps({"id": f"r{i}", "text": t}, ensure_ascii=False) + ("\r\n" if i == 3 else "\n")
                      for i, t in enumerate(texts))
    path = tmp_path / "pool.jsonl"
    path.write_bytes(content.encode("utf-8"))
    assert [r.text for r in read_records(str(path))] == texts
    path.write_bytes((content + '{"id": "bad"\n').encode("utf-8"))
    with pytest.raises(DataError, match=r"pool.jsonl:5: not valid JSON"):
        read_records(str(path))


def test_custom_field_names(tmp_path):
    path = write_jsonl(tmp_path / "pool.jsonl", [{"uid": 3, "sentence": "hi", "gold": "neg"}])
    records = read_records(str(path), id_field="uid", text_field="sentence", label_field="gold", label_names=LABELS)
    assert triples(records) == [("3", "hi", "neg")]


# -------------------------------------------------------------------------------------- ids and labels


def test_ids_generated_only_when_absent_from_every_row(tmp_path):
    path = write_jsonl(tmp_path / "reviews.jsonl", [{"text": "one"}, {"text": "two"}], raw_lines={2: ""})
    assert [r.item_id for r in read_records(str(path))] == ["reviews:1", "reviews:3"]


def test_duplicate_id_is_always_an_error(tmp_path):
    rows = [{"id": "x", "text": "a"}, {"id": "y", "text": "b"}, {"id": "x", "text": "c"}]
    path = write_jsonl(tmp_path / "pool.jsonl", rows)
    expected = rf"^{re.escape(str(path))}:3: duplicate id 'x' \(first at line 1\)$"
    with pytest.raises(DataError, match=expected):
        read_records(str(path))
    with pytest.raises(DataError, match=expected):
        read_records(str(path), on_bad_row="skip", skipped=[])
    # An int id and its string form are the same id.
    path = write_jsonl(tmp_path / "ints.jsonl", [{"id": 5, "text": "a"}, {"id": "5", "text": "b"}])
    with pytest.raises(DataError, match=r"ints\.jsonl:2: duplicate id '5' \(first at line 1\)"):
        read_records(str(path))


def test_duplicate_id_in_rows_names_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "a"], "text": ["x", "y", "z"]}), path)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:row 2: duplicate id 'a' \(first at row 0\)$"):
        read_records(str(path))


def test_labels_optional_in_pool_required_when_asked(tmp_path):
    path = write_jsonl(tmp_path / "seed.jsonl", [{"id": "a", "text": "t", "label": "pos"},
                                                  {"id": "b", "text": "u"},
                                                  {"id": "c", "text": "v", "label": ""}])
    assert [r.label for r in read_records(str(path), label_names=LABELS)] == ["pos", None, None]
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:2: field 'label' is missing$"):
        read_records(str(path), require_label=True, label_names=LABELS)


def test_unknown_label_message_truncates_a_long_label_set(tmp_path):
    names = [f"label-{i}" for i in range(30)]
    path = write_jsonl(tmp_path / "eval.jsonl", [{"id": "a", "text": "t", "label": "other"}])
    with pytest.raises(DataError) as caught:
        read_records(str(path), require_label=True, label_names=names)
    message = str(caught.value)
    assert "unknown label 'other'" in message and "'label-0'" in message
    assert "'label-29'" not in message and "and 22 more" in message


# ------------------------------------------------------------------------------------------ job data


def job(tmp_path: Path, **fields) -> DataConfig:
    fields.setdefault("pool", str(tmp_path / "pool.jsonl"))
    return DataConfig(**fields)


def test_split_sizes_determinism_and_no_overlap(tmp_path):
    make_pool(tmp_path, 100)
    config = job(tmp_path, split=SplitConfig(eval_size=30, seed=3))
    first = load_job_data(config, LABELS)
    assert isinstance(first, JobData)
    assert (len(first.pool), len(first.eval), first.seed, first.skipped) == (70, 30, [], [])
    pool_ids, eval_ids = {r.item_id for r in first.pool}, {r.item_id for r in first.eval}
    assert not pool_ids & eval_ids
    assert pool_ids | eval_ids == {f"p{i}" for i in range(100)}
    # File order is kept on both sides.
    for records in (first.pool, first.eval):
        positions = [int(r.item_id[1:]) for r in records]
        assert positions == sorted(positions)
    assert load_job_data(config, LABELS) == first
    other = load_job_data(job(tmp_path, split=SplitConfig(eval_size=30, seed=4)), LABELS)
    assert {r.item_id for r in other.eval} != eval_ids


def test_split_must_leave_a_pool(tmp_path):
    make_pool(tmp_path, 10)
    with pytest.raises(DataError, match=r"eval_size is 10, but the pool has only 10 items"):
        load_job_data(job(tmp_path, split=SplitConfig(eval_size=10)), LABELS)


def test_split_needs_gold_labels_on_drawn_items(tmp_path):
    write_jsonl(tmp_path / "pool.jsonl", [{"id": str(i), "text": f"t{i}"} for i in range(5)])
    with pytest.raises(DataError, match=r"field 'label' is missing.*drawn for evaluation"):
        load_job_data(job(tmp_path, split=SplitConfig(eval_size=2)), LABELS)


def test_max_pool_cap_is_a_seeded_sample_in_file_order(tmp_path):
    make_pool(tmp_path, 100)
    capped = load_job_data(job(tmp_path, max_pool=10, eval=str(make_pool(tmp_path, 4, "eval.jsonl"))), LABELS)
    positions = [int(r.item_id[1:]) for r in capped.pool]
    assert len(positions) == 10 and positions == sorted(positions)
    assert positions != list(range(10))  # a random sample, not the head of the file
    assert load_job_data(job(tmp_path, max_pool=10, eval=str(tmp_path / "eval.jsonl")), LABELS) == capped
    assert len(capped.eval) == 4

    with_split = load_job_data(job(tmp_path, max_pool=20, split=SplitConfig(eval_size=30, seed=1)), LABELS)
    assert (len(with_split.pool), len(with_split.eval)) == (20, 30)
    assert not {r.item_id for r in with_split.pool} & {r.item_id for r in with_split.eval}
    # The cap does not change which items go to eval.
    uncapped = load_job_data(job(tmp_path, split=SplitConfig(eval_size=30, seed=1)), LABELS)
    assert uncapped.eval == with_split.eval
    assert set(with_split.pool) <= set(uncapped.pool)


def test_seed_items_leave_the_pool_and_never_reach_eval(tmp_path):
    make_pool(tmp_path, 20)
    seed = write_jsonl(tmp_path / "seed.jsonl", [{"id": "p0", "text": "text number 0", "label": "pos"},
                                                  {"id": "p5", "text": "text number 5", "label": "neg"},
                                                  {"id": "extra", "text": "only in seed", "label": "pos"}])
    data = load_job_data(job(tmp_path, seed=str(seed), split=SplitConfig(eval_size=5)), LABELS)
    seed_ids = {"p0", "p5", "extra"}
    assert {r.item_id for r in data.seed} == seed_ids
    assert not seed_ids & {r.item_id for r in data.pool}
    assert not seed_ids & {r.item_id for r in data.eval}
    assert len(data.pool) + len(data.eval) == 18


def test_seed_and_eval_files_need_gold_labels(tmp_path):
    make_pool(tmp_path, 5)
    unlabeled = write_jsonl(tmp_path / "eval.jsonl", [{"id": "e1", "text": "t"}])
    with pytest.raises(DataError, match=rf"^{re.escape(str(unlabeled))}:1: field 'label' is missing$"):
        load_job_data(job(tmp_path, eval=str(unlabeled)), LABELS)
    with pytest.raises(DataError, match=rf"^{re.escape(str(unlabeled))}:1: field 'label' is missing$"):
        load_job_data(job(tmp_path, seed=str(unlabeled), split=SplitConfig(eval_size=1)), LABELS)


def test_eval_file_may_overlap_the_pool(tmp_path):
    pool = make_pool(tmp_path, 5)
    data = load_job_data(job(tmp_path, eval=str(pool)), LABELS)
    assert len(data.pool) == len(data.eval) == 5
    assert data.skipped == []


def test_skip_mode_collects_messages_from_every_file(tmp_path):
    write_jsonl(tmp_path / "pool.jsonl", ROWS, raw_lines={2: "{bad"})
    bad_eval = write_jsonl(tmp_path / "eval.jsonl", [{"id": "e1", "text": "t", "label": "pos"},
                                                      {"id": "e2", "text": "u", "label": "zzz"}])
    data = load_job_data(job(tmp_path, eval=str(bad_eval), on_bad_row="skip"), LABELS)
    assert (len(data.pool), len(data.eval)) == (3, 1)
    assert [s.split(": ")[0] for s in data.skipped] == [f"{tmp_path / 'pool.jsonl'}:2", f"{bad_eval}:2"]


def test_a_file_with_no_usable_rows_is_an_error(tmp_path):
    write_jsonl(tmp_path / "pool.jsonl", [], raw_lines={1: "{bad"})
    with pytest.raises(DataError, match=r"data\.pool: no usable records"):
        load_job_data(job(tmp_path, on_bad_row="skip", split=SplitConfig(eval_size=1)), LABELS)


# ------------------------------------------------------------------------------------- the real data

AG_NEWS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ag_news" / "test.jsonl"


@pytest.mark.skipif(not AG_NEWS.is_file(), reason=f"{AG_NEWS} is not there")
def test_ag_news_split_and_cap():
    labels = ["World", "Sports", "Business", "Sci/Tech"]
    config = DataConfig(pool=str(AG_NEWS), split=SplitConfig(eval_size=2600, seed=0), max_pool=5000)
    data = load_job_data(config, labels)
    assert (len(data.pool), len(data.eval), data.skipped) == (5000, 2600, [])
    assert {r.label for r in data.pool} == set(labels)
    assert {r.label for r in data.eval} == set(labels)
    assert not {r.item_id for r in data.pool} & {r.item_id for r in data.eval}
