"""Reading a job's texts: pool, seed and eval records from files, `save_to_disk` folders or the hub.

Every problem is a one-line DataError that names the file, the line (or row) and the field, so a
user can fix the file without reading a traceback. Bad rows either stop the load (the default) or,
with on_bad_row="skip", are dropped and reported in `skipped`: never dropped silently.
Line numbers are 1-based (as editors show them); rows of parquet files, datasets and JSON arrays
are 0-based indexes (as pandas and `datasets` number them).
"""
from __future__ import annotations

import csv
import json
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence, TypeVar

import numpy as np

from .core.errors import QuarryError
from .config import DataConfig
from .records import Record
from .staged_pool import StagedPool, stage_records

_MAX_NAMES_SHOWN = 8
_BATCH_ROWS = 16_384  # rows read from a parquet file or a dataset at a time
R = TypeVar("R")
_FILE_KINDS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class DataError(QuarryError, ValueError):
    """A data problem, phrased as one line that names the file, the line (or row) and the field."""


@dataclass(frozen=True)
class JobData:
    pool: Sequence[Record]  # a StagedPool: read from disk shard by shard
    seed: list[Record]
    eval: list[Record]
    skipped: list[str]  # one message per bad row dropped under on_bad_row="skip"


class Fields(NamedTuple):
    """The names of a row's fields (data.id_field, text_field, label_field, and any more a task kind reads)."""

    id: str
    text: str
    label: str
    extra: tuple[str, ...] = ()  # e.g. a generation task's input field

    def columns(self) -> list[str]:
        return list(dict.fromkeys([self.id, self.text, self.label, *self.extra]))


@dataclass(frozen=True)
class _Raw:
    """One row as read, before validation; `value` is a dict, or an error message for a row that did not parse."""

    where: str  # "path:17" or "path:row 3"
    position: str  # "line 17" or "row 3", for "first at ..." in duplicate messages
    auto_id: str  # the id used when the id field is absent from every row of the file
    value: dict[str, Any] | str


class _BadRow(Exception):
    """A row-level problem; the caller turns it into a DataError or a `skipped` message."""


# ---------------------------------------------------------------------------------------------- reading


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


def _line_raw(source: str, line: int, value: dict[str, Any] | str) -> _Raw:
    return _Raw(f"{source}:{line}", f"line {line}", f"{_stem(source)}:{line}", value)


def _row_raw(source: str, row: int, value: dict[str, Any] | str) -> _Raw:
    return _Raw(f"{source}:row {row}", f"row {row}", f"{_stem(source)}:{row}", value)


def _read_text(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None


def _as_object(value: Any) -> dict[str, Any] | str:
    return value if isinstance(value, dict) else f"row is not a JSON object (got {type(value).__name__})"


def _json_rows(path: Path, source: str) -> Iterator[_Raw]:
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


def _csv_rows(path: Path, source: str, text_field: str) -> Iterator[_Raw]:
    """A header row names the fields; a record's line is where it ends (the same line unless quoted newlines)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            if reader.fieldnames:
                _check_text_column(source, reader.fieldnames, text_field, "header has")
            for row in reader:
                yield _line_raw(source, reader.line_num, {k: v for k, v in row.items() if k is not None})
        except csv.Error as exc:
            raise DataError(f"{source}:{reader.line_num}: not valid CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{source}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    if not reader.fieldnames:
        raise DataError(f"{source}: empty CSV file (no header row)")


def _columns_rows(source: str, columns: dict[str, list[Any]], count: int, first: int = 0) -> Iterator[_Raw]:
    for index in range(count):
        yield _row_raw(source, first + index, {name: values[index] for name, values in columns.items()})


def _parquet_rows(path: Path, source: str, fields: Fields) -> Iterator[_Raw]:
    """Only the fields we use are read, a batch of rows at a time: a wide or long parquet file stays cheap."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{source}: cannot read parquet: {_first_line(exc)}") from None
    names = parquet.schema_arrow.names
    _check_text_column(source, names, fields.text, "file has")
    wanted = [name for name in fields.columns() if name in names]
    first = 0
    try:
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=wanted):
            columns = {name: batch.column(name).to_pylist() for name in wanted}
            yield from _columns_rows(source, columns, batch.num_rows, first)
            first += batch.num_rows
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{source}: cannot read parquet: {_first_line(exc)}") from None


def _dataset_rows(dataset: Any, source: str, fields: Fields) -> Iterator[_Raw]:
    """A `datasets.Dataset`, a batch of rows at a time; ClassLabel ints become their names (and -1, "no label", None)."""
    _check_text_column(source, dataset.column_names, fields.text, "dataset has")
    wanted = [name for name in fields.columns() if name in dataset.column_names]
    feature = dataset.features.get(fields.label)
    for first in range(0, dataset.num_rows, _BATCH_ROWS):
        batch = dataset.select_columns(wanted)[first:first + _BATCH_ROWS]
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


def _folder_rows(path: Path, source: str, split: str | None, fields: Fields) -> Iterator[_Raw]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # not a save_to_disk folder, or a damaged one
        raise DataError(f"{source}: not a folder written by datasets' save_to_disk: {_first_line(exc)}") from None
    yield from _dataset_rows(_pick_split(loaded, source, split), source, fields)


def _hub_rows(source: str, fields: Fields) -> Iterator[_Raw]:
    """Needs network access (or the local hub cache); any failure names the source."""
    import datasets

    name, split = _split_source(source)
    try:
        dataset = datasets.load_dataset(name, split=split or "train")
    except Exception as exc:  # offline, unknown name, unknown split, ...
        raise DataError(f"{source}: cannot load from the Hugging Face hub: {_first_line(exc)}") from None
    yield from _dataset_rows(dataset, source, fields)


def _raw_rows(source: str, fields: Fields) -> Iterator[_Raw]:
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


def _check_text_column(source: str, columns: list[str], text_field: str, what: str) -> None:
    """A missing text column is a wrong data.text_field far more often than a bad file: show what is there."""
    if text_field not in columns:
        raise DataError(f"{source}: no column {text_field!r} (data.text_field); the {what} {_allowed(list(columns))}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ------------------------------------------------------------------------------------------- validation


def _allowed(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_NAMES_SHOWN])
    more = len(names) - _MAX_NAMES_SHOWN
    return f"{shown}, ... and {more} more" if more > 0 else shown


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _item_id(row: dict[str, Any], field: str) -> str:
    if field not in row or row[field] is None:
        raise _BadRow(f"field '{field}' is missing")
    value = row[field]
    if _is_int(value):
        return str(int(value))
    if not isinstance(value, str):
        raise _BadRow(f"field '{field}' must be a string or an integer, got {type(value).__name__}")
    if not value.strip():
        raise _BadRow(f"field '{field}' is empty")
    return value


def _text(row: dict[str, Any], field: str) -> str:
    if field not in row or row[field] is None:
        raise _BadRow(f"field '{field}' is missing")
    value = row[field]
    if not isinstance(value, str):
        raise _BadRow(f"field '{field}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise _BadRow(f"field '{field}' is empty")
    return value


def _label(row: dict[str, Any], field: str, required: bool, names: list[str] | None) -> str | None:
    """An absent, null or empty label means "unlabeled": fine in a pool, a bad row where gold is required."""
    value = row.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _BadRow(f"field '{field}' is missing")
        return None
    if _is_int(value):
        value = str(int(value))
    if not isinstance(value, str):
        raise _BadRow(f"field '{field}' must be a string, got {type(value).__name__}")
    if names is not None and value not in names:
        raise _BadRow(f"field '{field}': unknown label {value!r} (allowed: {_allowed(names)})")
    return value


def read_records(
    source: str,
    *,
    id_field: str = "id",
    text_field: str = "text",
    label_field: str = "label",
    require_label: bool = False,
    label_names: list[str] | None = None,
    on_bad_row: str = "error",
    skipped: list[str] | None = None,
) -> list[Record]:
    """Read and validate one source, in file order (iter_records, as a list)."""
    return list(iter_records(source, id_field=id_field, text_field=text_field, label_field=label_field,
                             require_label=require_label, label_names=label_names, on_bad_row=on_bad_row,
                             skipped=skipped))


def iter_records(
    source: str,
    *,
    id_field: str = "id",
    text_field: str = "text",
    label_field: str = "label",
    require_label: bool = False,
    label_names: list[str] | None = None,
    on_bad_row: str = "error",
    skipped: list[str] | None = None,
) -> Iterator[Record]:
    """Validated records of one source, in file order, as they are read.

    A bad row raises DataError, or with on_bad_row="skip" has its message appended to `skipped`.
    If the id field is absent from every row, ids are "<file stem>:<line or row>": files without ids
    still work, while a file where only some rows lack one is a mistake worth reporting. Duplicate ids
    always raise: they would make labels ambiguous, and skipping either copy would be a guess.
    """
    def build(row: dict[str, Any], item_id: str, where: str) -> Record:
        return Record(item_id, _text(row, text_field), _label(row, label_field, require_label, label_names), where)

    return validated_rows(source, Fields(id_field, text_field, label_field), build, on_bad_row, skipped)


def validated_rows(source: str, fields: Fields, build: Callable[[dict[str, Any], str, str], R], on_bad_row: str,
                   skipped: list[str] | None) -> Iterator[R]:
    """`build(row, item_id, where)` for every row of `source`, in file order, under read_records' rules for ids
    and bad rows. Only the ids seen are kept (for duplicates): the rows stream through."""
    _check_bad_row_mode(on_bad_row, skipped)
    has_ids = _has_ids(source, fields)  # a first pass that stops at the first row with an id
    seen: set[str] = set()
    for raw in _raw_rows(source, fields):
        try:
            if isinstance(raw.value, str):
                raise _BadRow(raw.value)
            item_id = _item_id(raw.value, fields.id) if has_ids else raw.auto_id
            record = build(raw.value, item_id, raw.where)
        except _BadRow as problem:
            message = f"{raw.where}: {problem}"
            if on_bad_row == "error":
                raise DataError(message) from None
            skipped.append(message)  # type: ignore[union-attr]  # checked by _check_bad_row_mode
            continue
        if item_id in seen:
            raise DataError(f"{raw.where}: duplicate id {item_id!r} (first at {_first_position(source, fields, item_id)})")
        seen.add(item_id)
        yield record


def _first_position(source: str, fields: Fields, item_id: str) -> str:
    """Where an id first occurs: read again on the error path, so the happy path keeps no positions."""
    for raw in _raw_rows(source, fields):
        if isinstance(raw.value, dict) and fields.id in raw.value:
            try:
                if _item_id(raw.value, fields.id) == item_id:
                    return raw.position
            except _BadRow:
                continue
    return "an earlier row"


def _has_ids(source: str, fields: Fields) -> bool:
    """Whether any row has the id field; a DataError naming the columns when no row has the text field."""
    keys: dict[str, None] = {}
    has_ids = found_text = False
    for raw in _raw_rows(source, fields):
        if isinstance(raw.value, dict):
            has_ids, found_text = has_ids or fields.id in raw.value, found_text or fields.text in raw.value
            if has_ids and found_text:
                return True
            keys.update(dict.fromkeys(raw.value))
    if keys and not found_text:
        _check_text_column(source, list(keys), fields.text, "rows have")
    return has_ids


def _check_bad_row_mode(on_bad_row: str, skipped: list[str] | None) -> None:
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', not {on_bad_row!r}")
    if on_bad_row == "skip" and skipped is None:
        raise ValueError("on_bad_row='skip' needs a `skipped` list to report the dropped rows in")


# ------------------------------------------------------------------------------------------------- a job


# Reads one role's file: (data config, source, require_label, skipped) -> its records, as they are read.
RoleReader = Callable[[DataConfig, str, bool, list[str]], Iterable[Record]]


def label_reader(label_names: list[str]) -> RoleReader:
    """A classification job's rows: a text and (where given) one of the labels."""
    def read(data: DataConfig, source: str, require_label: bool, skipped: list[str]) -> Iterator[Record]:
        return iter_records(source, id_field=data.id_field, text_field=data.text_field, label_field=data.label_field,
                            require_label=require_label, label_names=label_names, on_bad_row=data.on_bad_row,
                            skipped=skipped)
    return read


def _read_role(data: DataConfig, role: str, source: str, read: RoleReader, require_label: bool,
               skipped: list[str]) -> list[Record]:
    records = list(read(data, source, require_label, skipped))
    if not records:
        raise DataError(f"{source}: data.{role}: no usable records")
    return records


def _carve_eval(pool: StagedPool, eval_size: int, seed: int, max_pool: int | None,
                source: str, label_field: str = "label") -> tuple[StagedPool, list[Record]]:
    """Eval is a seeded random sample of the pool; max_pool then caps the rest with the same shuffle.
    Both keep file order, so results do not depend on the shuffle's order."""
    if eval_size >= len(pool):
        raise DataError(f"{source}: data.split.eval_size is {eval_size}, but the pool has only {len(pool)} "
                        f"items; it must be smaller")
    order = np.random.default_rng(seed).permutation(len(pool))
    rest = order[eval_size:] if max_pool is None else order[eval_size:eval_size + max_pool]
    evaluation = list(pool.subset(order[:eval_size]))
    unlabeled = [r for r in evaluation if r.label is None]
    if unlabeled:
        raise DataError(f"{unlabeled[0].where}: field '{label_field}' is missing, and the item was drawn for evaluation "
                        f"by data.split ({len(unlabeled)} of {eval_size} drawn items have no gold label)")
    return pool.subset(rest), evaluation


def _cap(pool: StagedPool, max_pool: int | None, seed: int) -> StagedPool:
    """A random sample, not the first rows: files are often sorted by label or date."""
    if max_pool is None or max_pool >= len(pool):
        return pool
    return pool.subset(np.random.default_rng(seed).permutation(len(pool))[:max_pool])


def load_job_data(data: DataConfig, label_names: list[str], read: RoleReader | None = None) -> JobData:
    """Pool, seed and eval records for a job, with the eval set carved from the pool when data.split says so.
    `read` reads one file's rows (a task kind's; default: texts with one of `label_names`). The pool is staged
    on disk as it is read (engine/staged_pool.py): a pool of millions never sits in memory.

    Seed items are removed from the pool before the split, so eval never holds an item the student
    trains on, and the pool never asks for a label the seed already gives. Eval read from its own
    file may overlap the pool (by id or text): that is the user's choice and is not reported.
    """
    skipped: list[str] = []
    read = read or label_reader(label_names)
    pool = stage_records(read(data, data.pool, False, skipped))
    if not len(pool):
        raise DataError(f"{data.pool}: data.pool: no usable records")
    seed = _read_role(data, "seed", data.seed, read, True, skipped) if data.seed else []
    evaluation = _read_role(data, "eval", data.eval, read, True, skipped) if data.eval else []
    if seed:
        seed_ids = {r.item_id for r in seed}
        pool = pool.subset([i for i, item_id in enumerate(pool.column("item_id")) if item_id not in seed_ids])
        if not len(pool):
            raise DataError(f"{data.pool}: data.pool: every item is also in the seed file {data.seed}")
    if data.split is not None:
        pool, evaluation = _carve_eval(pool, data.split.eval_size, data.split.seed, data.max_pool, data.pool,
                                       data.label_field)
    else:
        pool = _cap(pool, data.max_pool, 0)
    return JobData(pool=pool, seed=seed, eval=evaluation, skipped=skipped)
