"""The run folder: every file a run keeps beside its database, and the one way each is written.

    quarry.db                 the store (engine/store): the run's state; everything else derives from it
    pool/                     the pool's texts as Parquet shards (engine/pool.py)
    adapters/round-NNN/       the student trained in round NNN
    scores/round-NNN/         the pool scores a classification round selected from (engine/score_shards.py:
                              probs, float16 embedding shards[, mc_probs])
    scores/round-NNN.npz      the same as one file: generation rounds ([token_entropy, ifd]) and runs made
                              before the sharded layout
    stop_set/round-NNN.npy    round NNN's predictions on the stop set (for the next round's kappa)
    embeddings/SOURCE-KEY/    frozen-model pool embeddings (float16 shards), keyed by model, settings and pool
    metrics.jsonl             one line per finished round, rewritten from the store
    report.html, *.png        `quarry report`

Every write is atomic (engine/core/files.py): a kill leaves the old file or the new one, never half.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .core.errors import QuarryError
from .core.files import atomic_write, cached_array, load_arrays, save_arrays, write_text
from .score_shards import ScoreWriter, complete, read_embeddings, read_probs, read_scores
from ..strategies.base import IFD, MC_PROBS, TOKEN_ENTROPY, Scores
from ..strategies.shards import Shards

_OPTIONAL_SCORES = (MC_PROBS, TOKEN_ENTROPY, IFD)


class RunFolderError(QuarryError):
    pass


@dataclass(frozen=True)
class RunFolder:
    root: Path

    def check(self) -> "RunFolder":
        """Fail before any work when the run cannot live here: a file in the way, or a folder we cannot write."""
        for path in (self.root, *self.root.parents):
            if not path.exists():
                continue
            if not path.is_dir():
                where = "the run folder" if path == self.root else f"{path}"
                raise RunFolderError(f"{self.root}: {where} is a file, not a folder; give --run-dir a folder")
            if not os.access(path, os.W_OK | os.X_OK):
                raise RunFolderError(f"{self.root}: cannot write in {path}; give --run-dir a folder you can write")
            return self
        return self

    def create(self) -> "RunFolder":
        self.check().root.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def database(self) -> Path:
        return self.root / "quarry.db"

    @property
    def pool_dir(self) -> Path:
        return self.root / "pool"

    # --- the student of each round ------------------------------------------------------
    def adapter(self, round_: int) -> Path:
        return self.root / "adapters" / f"round-{round_:03d}"

    def save_adapter(self, round_: int, save: Callable[[Path], None]) -> Path:
        """`save(folder)` writes the model (save_pretrained); the folder replaces the round's old one whole."""
        return atomic_write(self.adapter(round_), save)

    # --- pool scores a selection was made from ------------------------------------------
    def scores_path(self, round_: int) -> Path:
        """Where runs made before the sharded layout kept a round's scores (still read)."""
        return self.root / "scores" / f"round-{round_:03d}.npz"

    def scores_dir(self, round_: int) -> Path:
        return self.root / "scores" / f"round-{round_:03d}"

    def save_score_shards(self, folder: Path, sizes: Sequence[int], classes: int, mc_passes: int,
                          fill: Callable[[ScoreWriter], None]) -> Path:
        """`fill(writer)` writes every pool row; the folder then replaces the old one whole."""
        def write(tmp: Path) -> None:
            writer = ScoreWriter(tmp, sizes, classes, mc_passes)
            fill(writer)
            writer.finish()
        return atomic_write(folder, write)

    def save_scores(self, round_: int, scores: Scores) -> None:
        arrays = {"probs": scores.probs}
        for name in ("embeddings", *_OPTIONAL_SCORES):
            if getattr(scores, name) is not None:
                arrays[name] = getattr(scores, name)
        save_arrays(self.scores_path(round_), **arrays)

    def load_scores(self, round_: int, mc_passes: int = 0) -> Scores | None:
        """The round's saved scores; None when missing or lacking the `mc_passes` MC-dropout passes asked for."""
        if complete(self.scores_dir(round_)):
            return read_scores(self.scores_dir(round_), mc_passes)
        path = self.scores_path(round_)
        if not path.is_file():
            return None
        saved = load_arrays(path)
        mc = saved.get("mc_probs")
        if mc_passes and (mc is None or len(mc) != mc_passes):
            return None
        return Scores(probs=saved["probs"], embeddings=saved.get("embeddings"), mc_probs=mc if mc_passes else None,
                      token_entropy=saved.get(TOKEN_ENTROPY), ifd=saved.get(IFD))

    def load_probs(self, round_: int) -> np.ndarray | None:
        if round_ >= 0 and complete(self.scores_dir(round_)):
            return read_probs(self.scores_dir(round_))
        path = self.scores_path(round_)
        return load_arrays(path)["probs"] if round_ >= 0 and path.is_file() else None

    def load_pool_embeddings(self, round_: int) -> np.ndarray | Shards | None:
        if complete(self.scores_dir(round_)):
            return read_embeddings(self.scores_dir(round_))
        path = self.scores_path(round_)
        return load_arrays(path).get("embeddings") if path.is_file() else None

    # --- stop set -------------------------------------------------------------------------
    def stop_set_path(self, round_: int) -> Path:
        return self.root / "stop_set" / f"round-{round_:03d}.npy"

    def save_stop_set(self, round_: int, predictions: np.ndarray) -> None:
        def write(tmp: Path) -> None:
            with tmp.open("wb") as handle:
                np.save(handle, predictions)
        atomic_write(self.stop_set_path(round_), write)

    def load_stop_set(self, round_: int) -> np.ndarray | None:
        path = self.stop_set_path(round_)
        return np.load(path) if round_ >= 0 and path.is_file() else None

    # --- frozen-model embeddings ----------------------------------------------------------
    def embeddings(self, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The array cached as embeddings/NAME.npz, or compute() cached there first."""
        return cached_array(self.root / "embeddings" / f"{name}.npz", compute)

    def embeddings_dir(self, name: str) -> Path:
        """Frozen-model pool embeddings as float16 shards (engine/score_shards.py), computed by an executor."""
        return self.root / "embeddings" / name

    def load_embedding_shards(self, name: str) -> np.ndarray | Shards | None:
        return read_embeddings(self.embeddings_dir(name)) if complete(self.embeddings_dir(name)) else None

    # --- metrics and report ---------------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    def write_metrics(self, history: Sequence[dict[str, Any]]) -> None:
        """metrics.jsonl derives from the store and is rewritten whole."""
        write_text(self.metrics_path, "".join(json.dumps(m) + "\n" for m in history))

    def report_file(self, name: str) -> Path:
        return self.root / name
