"""Where a round's scores come from: the previous round's student on the pool (cached in the run
folder, with MC-dropout passes when a strategy asks), and frozen-model embeddings when the config
names another source. Round 0 has no student: uniform probabilities."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..embeddings import pool_embeddings
from .context import RunContext
from ...strategies import EMBEDDINGS, MC_PROBS, QueryStrategy, Scores, mc_passes_of, needs_of


def pool_scores(ctx: RunContext, round_: int, strategy: QueryStrategy) -> Scores:
    needs = needs_of(strategy)
    frozen = ctx.config.strategy.embeddings.source != "student"
    if round_ == 0:
        n, c = len(ctx.pool_ids), len(ctx.labels)
        embeddings = pool_embeddings(ctx.folder, ctx.config, ctx.pool_texts, ctx.progress) if EMBEDDINGS in needs else None
        return Scores(probs=np.full((n, c), 1.0 / c), embeddings=embeddings)
    scores = student_scores(ctx, round_, mc_passes_of(strategy) if MC_PROBS in needs else 0)
    if EMBEDDINGS in needs and frozen:
        scores = replace(scores, embeddings=pool_embeddings(ctx.folder, ctx.config, ctx.pool_texts, ctx.progress))
    return scores


def student_scores(ctx: RunContext, round_: int, mc_passes: int = 0) -> Scores:
    """The previous round's student on the whole pool, computed once per round and kept in the run folder."""
    saved = ctx.folder.load_scores(round_, mc_passes)
    if saved is not None:
        return saved
    student = ctx.models.trained_student(round_)
    scores = student.score(ctx.pool_texts, progress=ctx.progress, mc_passes=mc_passes,
                           mc_seed=ctx.config.loop.seed + round_)
    ctx.folder.save_scores(round_, scores)
    return scores


def decided_label_indices(ctx: RunContext) -> np.ndarray:
    """Decided label of each pool item as a class index, -1 where there is none yet."""
    index = {name: i for i, name in enumerate(ctx.labels)}
    decided = {row.item_id: index[row.label] for row in ctx.store.current_labels()}
    return np.array([decided.get(item_id, -1) for item_id in ctx.pool_ids], dtype=np.int64)
