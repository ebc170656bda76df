"""The functions executors map over the pool, as small picklable factories: each builds its model once
where it runs (this process, or a Ray actor) and then maps batches of texts to arrays, one row per text."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import BatchFunction
from ..config import StudentConfig
from ..core.models import load_causal_lm, mean_pooled, resolve_model_path
from ..students import CausalClassifier, Student


def student_function(student: Any, mc_passes: int = 0, mc_seed: int = 0, progress: bool = False) -> BatchFunction:
    """A classification student (encoder.Student or CausalClassifier) as a batch function: class
    probabilities, pooled states and, when asked, MC-dropout passes as (m, T, c)."""
    def score(texts: list[str]) -> dict[str, np.ndarray]:
        scores = student.score(texts, progress=progress, mc_passes=mc_passes, mc_seed=mc_seed)
        out = {"probs": np.asarray(scores.probs, dtype=np.float32), "embeddings": np.asarray(scores.embeddings, dtype=np.float32)}
        if scores.mc_probs is not None:
            out["mc_probs"] = np.ascontiguousarray(scores.mc_probs.transpose(1, 0, 2), dtype=np.float32)
        return out

    return score


@dataclass(frozen=True)
class StudentScoring:
    """The student with a round's adapter (None: untrained, a causal LM's round 0), built once where it runs."""

    config: StudentConfig
    labels: tuple[str, ...]
    adapter: str | None
    mc_passes: int = 0
    mc_seed: int = 0

    def __call__(self) -> BatchFunction:
        kind = CausalClassifier if self.config.kind == "causal" else Student
        student = kind(self.config, list(self.labels))
        if self.adapter is not None:
            student.load(self.adapter)
        return student_function(student, self.mc_passes, self.mc_seed)


@dataclass(frozen=True)
class FrozenEmbedding:
    """A frozen model's mean-pooled states (a sentence encoder, or the local teacher LLM)."""

    source: str  # encoder | teacher | student (its base encoder, before any training)
    model: str
    max_length: int
    batch_size: int
    gguf_file: str | None = None
    cache_dir: str | None = None
    progress: bool = False

    def __call__(self) -> BatchFunction:
        from transformers import AutoModel, AutoTokenizer

        if self.source == "teacher":
            tokenizer, lm = load_causal_lm(self.model, self.gguf_file, self.cache_dir)
            encoder = (lm.get_decoder() if hasattr(lm, "get_decoder") else lm).eval()
            batch = 16
        else:
            path = resolve_model_path(self.model)
            encoder, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
            batch = self.batch_size

        def embed(texts: list[str]) -> dict[str, np.ndarray]:
            vectors = mean_pooled(encoder, tokenizer, texts, batch, self.max_length, self.progress)
            return {"embeddings": np.asarray(vectors, dtype=np.float32)}

        return embed
