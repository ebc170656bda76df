"""Instruction data rows (Alpaca's instruction, input and output fields), read from any source engine/data.py
reads and validated under the same rules for ids, bad rows and duplicates."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .data import Fields, _BadRow, _label, _text, validated_rows


@dataclass(frozen=True)
class InstructionRecord:
    """One instruction-data row: what the student is asked, and (where known) the reference response."""

    item_id: str
    instruction: str
    input: str  # the instruction's input, "" when the row has none
    output: str | None  # the reference response, when the file has one
    where: str


def _optional_text(row: dict[str, Any], field: str) -> str:
    """An absent or null field is ""; a present one must be a string (empty allowed)."""
    value = row.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadRow(f"field '{field}' must be a string, got {type(value).__name__}")
    return value


def read_instruction_records(source: str, **options: Any) -> list[InstructionRecord]:
    """iter_instruction_records, as a list."""
    return list(iter_instruction_records(source, **options))


def iter_instruction_records(
    source: str,
    *,
    id_field: str = "id",
    instruction_field: str = "instruction",
    input_field: str = "input",
    output_field: str = "output",
    require_output: bool = False,
    on_bad_row: str = "error",
    skipped: list[str] | None = None,
) -> Iterator[InstructionRecord]:
    """Validated instruction rows (Alpaca's fields), in file order, from any source read_records takes.

    `instruction` must be a non-empty string; `input` is optional; `output` follows the label rules
    (absent, null or blank: none; required with `require_output`, as for references to evaluate on).
    Ids, bad rows (on_bad_row, skipped) and duplicate ids are handled as in read_records.
    """
    def build(row: dict[str, Any], item_id: str, where: str) -> InstructionRecord:
        return InstructionRecord(item_id, _text(row, instruction_field), _optional_text(row, input_field),
                                 _label(row, output_field, require_output, None), where)

    return validated_rows(source, Fields(id_field, instruction_field, output_field, (input_field,)), build,
                          on_bad_row, skipped)
