"""Raw rows from every source form a job reads: JSON Lines or a JSON array, CSV, Parquet, a `save_to_disk`
folder, or a dataset on the hub; streamed (a batch of rows at a time) wherever the format allows.

A row is a RawRow: its value (a dict, or the message of a row that did not parse) and where it is, as
"path:line" (1-based, as editors show them) or "path:row N" (0-based, as pandas and `datasets` number
them). Problems with a source as a whole are one-line DataErrors naming it; engine/data.py validates rows.
"""
from __future__ import annotations

import csv
import json
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from .core.errors import QuarryError

BATCH_ROWS = 16_384  # rows read from a parquet file or a dataset at a time
_MAX_NAMES_SHOWN = 8
_FILE_KINDS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class DataError(QuarryError, ValueError):
    """A data problem, phrased as one line that names the file, the line (or row) and the field."""


class Fields(NamedTuple):
    """The names of a row's fields (data.id_field, text_field, label_field, and any more a task kind reads)."""

    id: str
    text: str
    label: str
    extra: tuple[str, ...] = ()  # e.g. a generation task's input field

    def columns(self) -> list[str]:
        return list(dict.fromkeys([self.id, self.text, self.label, *self.extra]))


@dataclass(frozen=True)
class RawRow:
    """One row as read, before validation; `value` is a dict, or an error message for a row that did not parse."""

    where: str  # "path:17" or "path:row 3"
    position: str  # "line 17" or "row 3", for "first at ..." in duplicate messages
    auto_id: str  # the id used when the id field is absent from every row of the file
    value: dict[str, Any] | str


def _split_source(source: str) -> tuple[str, str | None]:
    """`path::split` names a split of a saved DatasetDict; `hf:NAME[:SPLIT]` a split on the hub."""
    if source.startswith("hf:"):
        name, _, split = source[3:].partition(":")
        return name, split or None
    if "::" in source:
        path, _, split = source.rpartition("::")
        return path, split or None
    return source, None


def _stem(source: str) -> str:
    """The prefix of generated ids: the file's stem, or the dataset's last name part."""
    name, _ = _split_source(source)
    return Path(name).stem or name


def _line_raw(source: str, line: int, value: dict[str, Any] | str) -> RawRow:
    return RawRow(f"{source}:{line}", f"line {line}", f"{_stem(source)}:{line}", value)


def _row_raw(source: str, row: int, value: dict[str, Any] | str) -> RawRow:
    return RawRow(f"{source}:row {row}", f"row {row}", f"{_stem(source)}:{row}", value)


def _read_text(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None


def _as_object(value: Any) -> dict[str, Any] | str:
    return value if isinstance(value, dict) else f"row is not a JSON object (got {type(value).__name__})"


def _json_rows(path: Path, source: str) -> Iterator[RawRow]:
    """JSON Lines, streamed line by line, or (a `.json` file whose first character is '[') one JSON array of objects."""
    if path.suffix.lower() == ".json" and _first_character(path, source) == "[":
        try:
            items = json.loads(_read_text(path, source))
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(items, list):
            raise DataError(f"{source}: expected a JSON array of objects, got {type(items).__name__}")
        for index, item in enumerate(items):
            yield _row_raw(source, index, _as_object(item))
        return
    # newline="\n": lines end at "\n" only; str.splitlines and universal newlines also break at "\r", U+2028,
    # U+2029, U+0085 and others, which JSON allows unescaped inside strings (json.dumps(ensure_ascii=False) writes them).
    try:
        with path.open(encoding="utf-8-sig", newline="\n") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.removesuffix("\n").removesuffix("\r")
                if not line.strip():
                    continue
                try:
                    value: Any = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield _line_raw(source, number, f"not valid JSON: {exc.msg} (column {exc.colno})")
                    continue
                yield _line_raw(source, number, _as_object(value))
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None


def _first_character(path: Path, source: str) -> str:
    with path.open(encoding="utf-8-sig") as handle:
        try:
            while (chunk := handle.read(4096)) and not chunk.strip():
                pass
        except UnicodeDecodeError as exc:
            raise DataError(f"{source}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    return chunk.lstrip()[:1]


def _csv_rows(path: Path, source: str, text_field: str) -> Iterator[RawRow]:
    """A header row names the fields; a record's line is where it ends (the same line unless quoted newlines)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            if reader.fieldnames:
                check_text_column(source, reader.fieldnames, text_field, "header has")
            for row in reader:
                yield _line_raw(source, reader.line_num, {k: v for k, v in row.items() if k is not None})
        except csv.Error as exc:
            raise DataError(f"{source}:{reader.line_num}: not valid CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{source}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    if not reader.fieldnames:
        raise DataError(f"{source}: empty CSV file (no header row)")


def _columns_rows(source: str, columns: dict[str, list[Any]], count: int, first: int = 0) -> Iterator[RawRow]:
    for index in range(count):
        yield _row_raw(source, first + index, {name: values[index] for name, values in columns.items()})


def _parquet_rows(path: Path, source: str, fields: Fields) -> Iterator[RawRow]:
    """Only the fields we use are read, a batch of rows at a time: a wide or long parquet file stays cheap."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{source}: cannot read parquet: {first_line(exc)}") from None
    names = parquet.schema_arrow.names
    check_text_column(source, names, fields.text, "file has")
    wanted = [name for name in fields.columns() if name in names]
    first = 0
    try:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
            columns = {name: batch.column(name).to_pylist() for name in wanted}
            yield from _columns_rows(source, columns, batch.num_rows, first)
            first += batch.num_rows
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{source}: cannot read parquet: {first_line(exc)}") from None


def _dataset_rows(dataset: Any, source: str, fields: Fields) -> Iterator[RawRow]:
    """A `datasets.Dataset`, a batch of rows at a time; ClassLabel ints become their names (and -1, "no label", None)."""
    check_text_column(source, dataset.column_names, fields.text, "dataset has")
    wanted = [name for name in fields.columns() if name in dataset.column_names]
    feature = dataset.features.get(fields.label)
    for first in range(0, dataset.num_rows, BATCH_ROWS):
        batch = dataset.select_columns(wanted)[first:first + BATCH_ROWS]
        columns = {name: list(batch[name]) for name in wanted}
        if fields.label in columns and hasattr(feature, "int2str"):
            columns[fields.label] = [_class_name(feature, v) for v in columns[fields.label]]
        yield from _columns_rows(source, columns, len(columns[fields.text]), first)


def _class_name(feature: Any, value: Any) -> Any:
    if isinstance(value, numbers.Integral) and 0 <= value < feature.num_classes:
        return feature.int2str(int(value))
    return None if value == -1 else value


def _pick_split(dataset: Any, source: str, split: str | None) -> Any:
    import datasets

    if isinstance(dataset, datasets.Dataset):
        if split is not None:
            raise DataError(f"{source}: the folder holds a single Dataset, not a DatasetDict; drop '::{split}'")
        return dataset
    split = split or "train"
    if split not in dataset:
        raise DataError(f"{source}: no split '{split}' (splits: {', '.join(dataset)}); name one with 'path::split'")
    return dataset[split]


def _folder_rows(path: Path, source: str, split: str | None, fields: Fields) -> Iterator[RawRow]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # not a save_to_disk folder, or a damaged one
        raise DataError(f"{source}: not a folder written by datasets' save_to_disk: {first_line(exc)}") from None
    yield from _dataset_rows(_pick_split(loaded, source, split), source, fields)


def _hub_rows(source: str, fields: Fields) -> Iterator[RawRow]:
    """Needs network access (or the local hub cache); any failure names the source."""
    import datasets

    name, split = _split_source(source)
    try:
        dataset = datasets.load_dataset(name, split=split or "train")
    except Exception as exc:  # offline, unknown name, unknown split, ...
        raise DataError(f"{source}: cannot load from the Hugging Face hub: {first_line(exc)}") from None
    yield from _dataset_rows(dataset, source, fields)


def raw_rows(source: str, fields: Fields) -> Iterator[RawRow]:
    """Dispatch on the source's form: hub name, save_to_disk folder, or file by extension."""
    if source.startswith("hf:"):
        yield from _hub_rows(source, fields)
        return
    location, split = _split_source(source)
    path = Path(location)
    if not path.exists():
        raise DataError(f"{source}: file not found")
    if path.is_dir():
        yield from _folder_rows(path, source, split, fields)
        return
    kind = _FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(_FILE_KINDS))
        raise DataError(f"{source}: unknown file type '{path.suffix}' (expected {known}, a save_to_disk folder, "
                        f"or hf:NAME[:SPLIT])")
    if kind == "json":
        yield from _json_rows(path, source)
    elif kind == "csv":
        yield from _csv_rows(path, source, fields.text)
    else:
        yield from _parquet_rows(path, source, fields)


def check_text_column(source: str, columns: list[str], text_field: str, what: str) -> None:
    """A missing text column is a wrong data.text_field far more often than a bad file: show what is there."""
    if text_field not in columns:
        raise DataError(f"{source}: no column {text_field!r} (data.text_field); the {what} {allowed(list(columns))}")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def allowed(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_NAMES_SHOWN])
    more = len(names) - _MAX_NAMES_SHOWN
    return f"{shown}, ... and {more} more" if more > 0 else shown
