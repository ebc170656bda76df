"""A job's records: pool, seed and eval rows validated (engine/sources.py reads them from any source), the
pool staged on disk as it streams in (engine/staged_pool.py), the eval split and max_pool applied.

Every problem is a one-line DataError that names the file, the line (or row) and the field, so a
user can fix the file without reading a traceback. Bad rows either stop the load (the default) or,
with on_bad_row="skip", are dropped and reported in `skipped`: never dropped silently.
Line numbers are 1-based (as editors show them); rows of parquet files, datasets and JSON arrays
are 0-based indexes (as pandas and `datasets` number them).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from .config import DataConfig
from .records import Record
from .sources import DataError, Fields, allowed, check_text_column, raw_rows
from .staged_pool import StagedPool, stage_records

R = TypeVar("R")


@dataclass(frozen=True)
class JobData:
    pool: Sequence[Record]  # a StagedPool: read from disk shard by shard
    seed: list[Record]
    eval: list[Record]
    skipped: list[str]  # one message per bad row dropped under on_bad_row="skip"


class _BadRow(Exception):
    """A row-level problem; the caller turns it into a DataError or a `skipped` message."""


# ------------------------------------------------------------------------------------------- validation


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
        raise _BadRow(f"field '{field}': unknown label {value!r} (allowed: {allowed(names)})")
    return value


def read_records(source: str, **options: Any) -> list[Record]:
    """iter_records, as a list."""
    return list(iter_records(source, **options))


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
    for raw in raw_rows(source, fields):
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
    for raw in raw_rows(source, fields):
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
    for raw in raw_rows(source, fields):
        if isinstance(raw.value, dict):
            has_ids, found_text = has_ids or fields.id in raw.value, found_text or fields.text in raw.value
            if has_ids and found_text:
                return True
            keys.update(dict.fromkeys(raw.value))
    if keys and not found_text:
        check_text_column(source, list(keys), fields.text, "rows have")
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
        kept = np.fromiter((item_id not in seed_ids for item_id in pool.column("item_id")), dtype=bool, count=len(pool))
        pool = pool.subset(np.flatnonzero(kept))
        if not len(pool):
            raise DataError(f"{data.pool}: data.pool: every item is also in the seed file {data.seed}")
    if data.split is not None:
        pool, evaluation = _carve_eval(pool, data.split.eval_size, data.split.seed, data.max_pool, data.pool,
                                       data.label_field)
    else:
        pool = _cap(pool, data.max_pool, 0)
    return JobData(pool=pool, seed=seed, eval=evaluation, skipped=skipped)
