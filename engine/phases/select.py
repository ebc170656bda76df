"""Select: the round's strategy picks the items to label from the task kind's scores, and the choice is
committed with what the student predicted for each (routing compares the teacher against it)."""
from __future__ import annotations

import time

import numpy as np

from .context import RunContext
from ..stopping import remaining_budget
from ...strategies import SelectionState, make_strategy


def select_round(ctx: RunContext, round_: int) -> str | None:
    """Choose and commit round `round_`'s items; returns a stop reason when there is nothing left to ask."""
    config, store = ctx.config, ctx.store
    k = config.loop.initial_labels if round_ == 0 else config.loop.batch_size
    budget_left = remaining_budget(config.loop, store.items_requested())
    if budget_left is not None:
        k = min(k, budget_left)
    labeled = store.requested_mask(len(ctx.pool))
    if round_ > 0 and (k <= 0 or labeled.all()):
        return "pool exhausted" if labeled.all() else "label budget spent"
    name, params = ((config.strategy.cold_start, config.strategy.cold_start_params) if round_ == 0
                    else (config.strategy.name, config.strategy.params))
    strategy = make_strategy(name, params)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    scores = ctx.kind.pool_scores(ctx, round_, strategy)
    timings["scoring_s"] = time.perf_counter() - started
    started = time.perf_counter()
    state = SelectionState(labeled=labeled, round=round_, history=tuple(store.history()),
                           labels=ctx.kind.label_indices(ctx),
                           previous_probs=ctx.folder.load_probs(round_ - 1) if round_ >= 2 else None)
    chosen = strategy.select(scores, state, k, np.random.default_rng([config.loop.seed, round_]))
    utility = strategy.utility(scores, state) if hasattr(strategy, "utility") else None
    timings["selecting_s"] = time.perf_counter() - started
    predictions = ctx.kind.predictions(ctx, round_, scores, chosen)
    rows = ctx.pool.rows_at(chosen)
    store.add_pool_items([(row.pos, row.item_id, row.text, row.gold, row.input) for row in rows])  # the ledger's items
    selected = [(row.item_id, None if utility is None else float(utility[i]), label, confidence)
                for i, row, (label, confidence) in zip(chosen, rows, predictions)]
    store.create_round(round_, name, selected, timings)
    ctx.log(f"round {round_}: selected {len(selected)} items by {name}")
    return None
