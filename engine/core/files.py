"""Atomic writes: a file (or folder) is either the old one or the whole new one, never half of one,
whatever moment a run is killed at."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary sibling of `path`, then move it into place in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)
        tmp.replace(path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_arrays(path: str | Path, **arrays: np.ndarray) -> Path:
    """An .npz of named arrays (np.savez adds no suffix to an open file handle)."""
    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez(handle, **arrays)
    return atomic_write(path, write)


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as saved:
        return {name: saved[name] for name in saved.files}


def cached_array(path: str | Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The array saved at `path` (its one member, whatever its name), or compute() saved there first."""
    path = Path(path)
    if path.is_file():
        (saved,) = load_arrays(path).values()
        return saved
    value = compute()
    save_arrays(path, array=value)
    return value
