"""engine.data.read_instruction_records: instruction rows from JSONL, CSV and parquet, with the same
one-line errors (file, line or row, field) and skip rules as the classification reader."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from quarry_al.engine.data import DataError
from quarry_al.engine.instructions import InstructionRecord, read_instruction_records

ROWS = [
    {"id": "a", "instruction": "Reverse the word.", "input": "cat", "output": "tac"},
    {"id": "b", "instruction": "What is 2 + 2?", "output": "4"},
    {"id": "c", "instruction": "Name a colour.", "input": None},
]
EXPECTED = [("a", "Reverse the word.", "cat", "tac"), ("b", "What is 2 + 2?", "", "4"), ("c", "Name a colour.", "", None)]


def write_jsonl(path: Path, rows: list, raw_lines: dict[int, str] | None = None) -> Path:
    lines = [json.dumps(r) for r in rows]
    for number, text in sorted((raw_lines or {}).items()):
        lines.insert(number - 1, text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fields(records: list[InstructionRecord]) -> list[tuple[str, str, str, str | None]]:
    return [(r.item_id, r.instruction, r.input, r.output) for r in records]


def test_jsonl_input_optional_output_optional(tmp_path):
    path = write_jsonl(tmp_path / "pool.jsonl", ROWS)
    records = read_instruction_records(str(path))
    assert fields(records) == EXPECTED
    assert records[1].where == f"{path}:2"


def test_csv_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pool.csv"
    path.write_text('id,instruction,input,output\na,Reverse the word.,cat,tac\nb,"What is 2 + 2?",,4\n', encoding="utf-8")
    assert fields(read_instruction_records(str(path))) == EXPECTED[:2]
    path = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"instruction": ["Reverse the word.", "Name a colour."], "output": ["tac", None]}), path)
    assert fields(read_instruction_records(str(path))) == [("pool:0", "Reverse the word.", "", "tac"),
                                                           ("pool:1", "Name a colour.", "", None)]


BAD_ROWS = [
    ('{"id": "x", "input": "cat"}', "field 'instruction' is missing"),
    ('{"id": "x", "instruction": "  "}', "field 'instruction' is empty"),
    ('{"id": "x", "instruction": "Do it.", "input": 3}', "field 'input' must be a string, got int"),
    ('{"id": "x", "instruction": "Do it.", "output": ["a"]}', "field 'output' must be a string, got list"),
    ('{"id": "a", "instruction": "Again."}', "duplicate id 'a' (first at line 1)"),
    ("{broken", "not valid JSON: "),
]


@pytest.mark.parametrize("line, message", BAD_ROWS, ids=[m for _, m in BAD_ROWS])
def test_bad_row_is_one_line_naming_file_line_and_field(tmp_path, line, message):
    path = write_jsonl(tmp_path / "pool.jsonl", ROWS, raw_lines={2: line})
    with pytest.raises(DataError) as caught:
        read_instruction_records(str(path))
    assert str(caught.value).startswith(f"{path}:2: {message}") and "\n" not in str(caught.value)
    if "duplicate" not in message:  # duplicates always raise; other bad rows may be skipped and reported
        skipped: list[str] = []
        records = read_instruction_records(str(path), on_bad_row="skip", skipped=skipped)
        assert fields(records) == EXPECTED and skipped == [str(caught.value)]


def test_output_required_for_references(tmp_path):
    path = write_jsonl(tmp_path / "eval.jsonl", ROWS)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:3: field 'output' is missing$"):
        read_instruction_records(str(path), require_output=True)


def test_custom_field_names(tmp_path):
    path = write_jsonl(tmp_path / "pool.jsonl", [{"key": 1, "prompt": "Say hi.", "context": "", "response": "hi"}])
    records = read_instruction_records(str(path), id_field="key", instruction_field="prompt", input_field="context",
                                       output_field="response")
    assert fields(records) == [("1", "Say hi.", "", "hi")]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found"):
        read_instruction_records(str(tmp_path / "nope.jsonl"))
