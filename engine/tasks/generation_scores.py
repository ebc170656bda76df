"""What a generation round selects from: the causal student's scores of the pool (engine/students/causal.py),
only those the round's strategy reads, computed once per round and kept in the run folder.

- token_entropy (drafts): the student's greedy draft of every pool answer; the priciest, one generation each;
- ifd: two NLL passes over the pool's own outputs (pool items without one get none: NaN);
- embeddings: from whichever pass ran, else one pass over the instructions; or the configured frozen encoder.

Round 0's student is the untrained base model: its drafts and IFD are real scores already, so a round-0
strategy other than random has something to go on.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..embeddings import pool_embeddings
from ..students import Pair
from ...strategies import EMBEDDINGS, IFD, TOKEN_ENTROPY, QueryStrategy, Scores, needs_of
from ...strategies.ifd import misaligned


def pool_pairs(ctx: Any) -> list[Pair]:
    return [Pair(item.text, item.input or "", item.gold) for item in ctx.pool.rows()]


def user_turns(ctx: Any) -> list[str]:
    return [f"{item.text}\n\n{item.input}" if item.input else item.text for item in ctx.pool.rows()]


def _has(scores: Scores, needs: frozenset[str]) -> bool:
    return all(getattr(scores, name) is not None for name in needs if name in (EMBEDDINGS, TOKEN_ENTROPY, IFD))


def generation_scores(ctx: Any, round_: int, strategy: QueryStrategy) -> Scores:
    needs = needs_of(strategy)
    n = len(ctx.pool)
    ones = np.ones((n, 1), dtype=np.float32)
    if not needs:
        return Scores(probs=ones)
    frozen = ctx.config.strategy.embeddings.source != "student"
    saved = ctx.folder.load_scores(round_)
    if saved is not None and _has(saved, needs):
        return saved
    student, pairs = ctx.models.student_for(round_), pool_pairs(ctx)
    entropy = ifd = embeddings = None
    if TOKEN_ENTROPY in needs:
        entropy, _, embeddings, _ = student.drafts(pairs, ctx.progress)
    if IFD in needs:
        ifd = np.full(n, np.nan)
        rows = np.flatnonzero([bool(p.output) for p in pairs])
        if len(rows):
            values, _, _, states = student.ifd([pairs[i] for i in rows], ctx.progress)
            ifd[rows] = values
            flagged = np.flatnonzero(misaligned(ifd))
            if len(flagged):
                ctx.log(f"round {round_}: {len(flagged)} of {len(rows)} pool outputs have IFD >= 1 (the instruction "
                        f"does not make them more likely: probably misaligned pairs), e.g. "
                        + ", ".join(ctx.pool_ids[i] for i in flagged[:5]))
            if embeddings is None and len(rows) == n:
                embeddings = states
    if EMBEDDINGS in needs and frozen:
        embeddings = pool_embeddings(ctx.folder, ctx.config, user_turns(ctx), ctx.progress)
    elif EMBEDDINGS in needs and embeddings is None:
        embeddings = student.score([replace(p, output=None) for p in pairs], ctx.progress, drafts=False).embeddings
    scores = Scores(probs=ones, embeddings=embeddings, token_entropy=entropy, ifd=ifd)
    ctx.folder.save_scores(round_, scores)
    return scores
