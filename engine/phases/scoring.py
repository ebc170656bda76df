"""Where a round's scores come from: the previous round's student on the pool (kept in the run folder,
with MC-dropout passes when a strategy asks), and frozen-model embeddings when the config names another
source. Round 0 has no student: uniform probabilities. The pool is mapped by the run's executor
(engine/executors/), shard by shard here or by Ray actors, and lands in float16 shards selection maps."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .context import RunContext
from ..embeddings import cache_key
from ..executors.functions import FrozenEmbedding, StudentScoring
from ...strategies import EMBEDDINGS, MC_PROBS, QueryStrategy, Scores, mc_passes_of, needs_of
from ...strategies.shards import Shards


def pool_scores(ctx: RunContext, round_: int, strategy: QueryStrategy) -> Scores:
    needs = needs_of(strategy)
    frozen = ctx.config.strategy.embeddings.source != "student"
    if round_ == 0:
        n, c = len(ctx.pool), len(ctx.labels)
        embeddings = pool_embeddings(ctx) if EMBEDDINGS in needs else None
        return Scores(probs=np.full((n, c), 1.0 / c), embeddings=embeddings)
    scores = student_scores(ctx, round_, mc_passes_of(strategy) if MC_PROBS in needs else 0)
    if EMBEDDINGS in needs and frozen:
        scores = replace(scores, embeddings=pool_embeddings(ctx))
    return scores


def student_scores(ctx: RunContext, round_: int, mc_passes: int = 0) -> Scores:
    """The previous round's student on the whole pool, computed once per round and kept in the run folder."""
    saved = ctx.folder.load_scores(round_, mc_passes)
    if saved is not None:
        return saved
    scoring = StudentScoring(ctx.config.student, tuple(ctx.labels), str(ctx.folder.adapter(round_ - 1)),
                             mc_passes, ctx.config.loop.seed + round_, progress=ctx.progress and ctx.executor.kind == "local")
    ctx.folder.save_score_shards(ctx.folder.scores_dir(round_), ctx.pool.sizes, len(ctx.labels), mc_passes,
                                 lambda writer: ctx.executor.map_pool(ctx.pool, scoring, writer.write))
    scores = ctx.folder.load_scores(round_, mc_passes)
    assert scores is not None
    return scores


def pool_embeddings(ctx: RunContext) -> np.ndarray | Shards:
    """The frozen-model embeddings of the pool (source `student` here means its base encoder, what round 0
    has), computed once per model, settings and pool, and kept in the run folder."""
    settings, config = ctx.config.strategy.embeddings, ctx.config
    source = settings.source
    if source == "teacher":
        teacher = config.teacher
        function = FrozenEmbedding(source, teacher.model, settings.max_length, settings.batch_size,
                                   teacher.gguf_file, teacher.cache_dir)
        model = f"{teacher.model}/{teacher.gguf_file or ''}"
    else:
        model = config.student.model if source == "student" else settings.model
        function = FrozenEmbedding(source, model, settings.max_length, settings.batch_size)
    name = f"{source}-{cache_key(source, model, settings.max_length, len(ctx.pool), ctx.pool.fingerprint)}"
    saved = ctx.folder.load_embedding_shards(name)
    if saved is None:
        ctx.folder.save_score_shards(ctx.folder.embeddings_dir(name), ctx.pool.sizes, 0, 0,
                                     lambda writer: ctx.executor.map_pool(ctx.pool, function, writer.write, "embedding"))
        saved = ctx.folder.load_embedding_shards(name)
    assert saved is not None
    return saved


def decided_label_indices(ctx: RunContext) -> np.ndarray:
    """Decided label of each pool item as a class index, -1 where there is none yet."""
    index = {name: i for i, name in enumerate(ctx.labels)}
    out = np.full(len(ctx.pool), -1, dtype=np.int64)
    for pos, label in ctx.store.decided_positions():
        out[pos] = index[label]
    return out
