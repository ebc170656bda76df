"""What a classification round selects from: the student's scores of the pool (the previous round's
student; a causal LM's untrained one in round 0), with MC-dropout passes when a strategy asks, and
frozen-model embeddings when the config names another source; an encoder's round 0 is uniform.

The pool is mapped by the run's executor (engine/executors/): here, shard by shard with the student
already in memory; or by Ray actors that each load the round's adapter once. Either way the outputs
land in the run folder as score shards (engine/score_shards.py) that selection memory-maps.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..embeddings import cache_key
from ..executors.functions import FrozenEmbedding, StudentScoring, student_function
from ...strategies import EMBEDDINGS, MC_PROBS, QueryStrategy, Scores, mc_passes_of, needs_of
from ...strategies.shards import Shards


def classification_scores(ctx: Any, round_: int, strategy: QueryStrategy) -> Scores:
    needs = needs_of(strategy)
    frozen = ctx.config.strategy.embeddings.source != "student"
    if round_ == 0 and ctx.config.student.kind != "causal":
        n, c = len(ctx.pool), len(ctx.labels)
        embeddings = pool_embeddings(ctx) if EMBEDDINGS in needs else None
        return Scores(probs=np.full((n, c), 1.0 / c), embeddings=embeddings)
    scores = student_scores(ctx, round_, mc_passes_of(strategy) if MC_PROBS in needs else 0)
    if EMBEDDINGS in needs and frozen:
        scores = replace(scores, embeddings=pool_embeddings(ctx))
    return scores


def student_scores(ctx: Any, round_: int, mc_passes: int = 0) -> Scores:
    """The round's student on the whole pool, computed once per round and kept in the run folder."""
    saved = ctx.folder.load_scores(round_, mc_passes)
    if saved is not None:
        return saved
    executor, mc_seed = ctx.models.get_executor(), ctx.config.loop.seed + round_
    if executor.kind == "local":  # the student this process already holds (trained in the round before)
        student = ctx.models.student_for(round_)
        make: Any = lambda: student_function(student, mc_passes, mc_seed, ctx.progress)  # noqa: E731
    else:
        adapter = None if round_ == 0 else str(ctx.folder.adapter(round_ - 1))
        make = StudentScoring(ctx.config.student, tuple(ctx.labels), adapter, mc_passes, mc_seed)
    ctx.folder.save_score_shards(ctx.folder.scores_dir(round_), ctx.pool.sizes, len(ctx.labels), mc_passes,
                                 lambda writer: executor.map_pool(ctx.pool, make, writer.write))
    scores = ctx.folder.load_scores(round_, mc_passes)
    assert scores is not None
    return scores


def pool_embeddings(ctx: Any) -> np.ndarray | Shards:
    """The frozen-model embeddings of the pool (source `student` here means its base encoder, what round 0
    has), computed once per model, settings and pool, and kept in the run folder."""
    settings, config = ctx.config.strategy.embeddings, ctx.config
    source, local = settings.source, ctx.models.get_executor().kind == "local"
    if source == "teacher":
        teacher = config.teacher
        function = FrozenEmbedding(source, teacher.model, settings.max_length, settings.batch_size,
                                   teacher.gguf_file, teacher.cache_dir, progress=ctx.progress and local)
        model = f"{teacher.model}/{teacher.gguf_file or ''}"
    else:
        model = config.student.model if source == "student" else settings.model
        function = FrozenEmbedding(source, model, settings.max_length, settings.batch_size,
                                   progress=ctx.progress and local)
    name = f"{source}-{cache_key(source, model, settings.max_length, len(ctx.pool), ctx.pool.fingerprint)}"
    saved = ctx.folder.load_embedding_shards(name)
    if saved is None:
        executor = ctx.models.get_executor()
        ctx.folder.save_score_shards(ctx.folder.embeddings_dir(name), ctx.pool.sizes, 0, 0,
                                     lambda writer: executor.map_pool(ctx.pool, function, writer.write, "embedding"))
        saved = ctx.folder.load_embedding_shards(name)
    assert saved is not None
    return saved


def decided_label_indices(ctx: Any) -> np.ndarray:
    """Decided label of each pool item as a class index, -1 where there is none yet."""
    index = {name: i for i, name in enumerate(ctx.labels)}
    out = np.full(len(ctx.pool), -1, dtype=np.int64)
    for pos, label in ctx.store.decided_positions():
        out[pos] = index[label]
    return out
