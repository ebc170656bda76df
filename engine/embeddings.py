"""Pool embeddings for the strategies that measure distances: from a sentence encoder or the local teacher LLM.

The student's own pooled states come with its scoring pass (`Student.score`); the other two sources
are frozen models, so their pool embeddings are computed once per run and cached in the run folder
(`embeddings/<source>-<hash of the model and settings>.npz`), keyed so a changed model is recomputed.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from .config import JobConfig
from .core.models import load_causal_lm, mean_pooled, resolve_model_path
from .run_folder import RunFolder


def encoder_embeddings(model: str, texts: Sequence[str], batch_size: int = 64, max_length: int = 128,
                       progress: bool = False) -> np.ndarray:
    """Mean-pooled states of any HF encoder (an installed model package, a folder, or a hub name)."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_path(model)
    encoder = AutoModel.from_pretrained(path).eval()
    return mean_pooled(encoder, AutoTokenizer.from_pretrained(path), texts, batch_size, max_length, progress)


def teacher_embeddings(model: str, gguf_file: str | None, cache_dir: str | None, texts: Sequence[str],
                       batch_size: int = 16, max_length: int = 128, progress: bool = False) -> np.ndarray:
    """Mean-pooled last hidden states of the local teacher LLM (the GGUF loaded as the teacher loads it)."""
    tokenizer, lm = load_causal_lm(model, gguf_file, cache_dir)
    # The decoder without its LM head: projecting every token onto the vocabulary would cost more than the rest.
    backbone = lm.get_decoder() if hasattr(lm, "get_decoder") else lm
    return mean_pooled(backbone.eval(), tokenizer, texts, batch_size, max_length, progress, desc="teacher embedding")


def pool_embeddings(folder: RunFolder, config: JobConfig, texts: Sequence[str], progress: bool = False) -> np.ndarray:
    """The frozen-model embeddings of the pool for `config`, cached in the run folder.

    Source `student` here means the student's base encoder before any training (what round 0 has);
    later rounds use the trained student's own pooled states from its scoring pass instead.
    """
    settings = config.strategy.embeddings
    source = settings.source
    if source == "teacher":
        teacher = config.teacher
        model = f"{teacher.model}/{teacher.gguf_file or ''}"
        compute = lambda: teacher_embeddings(teacher.model, teacher.gguf_file, teacher.cache_dir, texts,  # noqa: E731
                                             max_length=settings.max_length, progress=progress)
    else:
        model = config.student.model if source == "student" else settings.model
        compute = lambda: encoder_embeddings(model, texts, settings.batch_size, settings.max_length,  # noqa: E731
                                             progress=progress)
    key = cache_key(source, model, settings.max_length, len(texts), hashlib.sha256("\x00".join(texts).encode()).hexdigest())
    return folder.embeddings(f"{source}-{key}", compute)


def cache_key(*parts: object) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:12]
