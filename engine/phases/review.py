"""Review: simulated reviewers decide at once from gold; a queue either waits for people or lets the
loop go on while they work."""
from __future__ import annotations

import time

from .context import RunContext
from ..review import simulate_review


def review_round(ctx: RunContext, round_: int, timings: dict[str, float]) -> None:
    config, store = ctx.config, ctx.store
    started = time.perf_counter()
    if config.review.mode == "simulate":
        simulate_review(store, lambda pending: ctx.kind.simulated_decisions(config, pending))
    elif config.review.wait and store.pending_count() > 0:
        ctx.log(f"round {round_}: waiting for {store.pending_count()} reviews; decide them with "
                f"`quarry serve {ctx.folder.root}` or `quarry review {ctx.folder.root}` "
                f"(polling every {config.review.poll_s:g}s)")
        while store.pending_count() > 0:
            time.sleep(config.review.poll_s)
    timings["review_s"] = timings.get("review_s", 0.0) + time.perf_counter() - started
    store.set_phase(round_, "reviewed", timings)
