"""The queue page's JSON API: lease the next item, decide, renew and release leases, bring back the last
decision. Every write needs the session's CSRF token (header X-CSRF-Token) and no foreign Origin; a request
without a live session gets 401, so the page can log in again and resubmit what it holds.

Bodies are checked strictly before they touch the queue: malformed JSON (or nesting too deep to parse) is
422, `correct` must be a real boolean, item ids are strings in JSON lists (a comma in an id is just a
character), numbers stay within what SQLite stores.
"""
from __future__ import annotations

import json
import math
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..answers import answer_diff
from ..queue import Conflict
from .context import AppContext
from .site import Site, require_csrf, require_session

MAX_HELD = 4  # items one page may hold: the current one, the prefetched one, and a few put aside while correcting
MAX_ID_CHARS = 1000
_SQLITE_INT_MAX = 2**63 - 1
_MAX_TIME = 1e12  # seconds since the epoch: far beyond any lease, well inside a float's exact range


async def json_body(request: Request) -> Any:
    """The parsed JSON body (an empty body is {}), or None when it is not JSON or nests too deep to parse."""
    raw = await request.body()
    try:
        return json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        return None


def item_ids(value: Any, field: str) -> list[str]:
    """A JSON list of at most MAX_HELD item ids (strings), or 422."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_HELD or not all(
            isinstance(x, str) and 0 < len(x) <= MAX_ID_CHARS for x in value):
        raise HTTPException(422, f"{field}: expected a list of at most {MAX_HELD} item ids (strings)")
    return value


def timestamp(value: Any) -> float | None:
    """A lease expiry the client echoes back, if it is a plain finite number in range; else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not -_MAX_TIME < value < _MAX_TIME or not math.isfinite(value):
        return None
    return float(value)


def add_api(app: FastAPI, ctx: AppContext, site: Site) -> None:
    def writer(request: Request):
        return require_csrf(site, ctx.store(), request, request.headers.get("x-csrf-token"))

    @app.post("/api/next")
    async def next_item(request: Request) -> dict[str, Any]:
        """Lease the next item (held items first); `exclude` lists the items already on the page, for prefetch."""
        body = await json_body(request)
        session = await run_in_threadpool(writer, request)
        if not isinstance(body, dict):
            raise HTTPException(422, 'expected {"exclude": [item ids]}')
        skip = item_ids(body.get("exclude"), "exclude")

        def lease() -> dict[str, Any]:
            held = ctx.queue().lease(session.reviewer, exclude=skip, max_held=len(skip) + 1)
            return {"item": None if held is None else ctx.item_json(held.item, held.expires_at),
                    "pending": ctx.store().pending_count()}

        return await run_in_threadpool(lease)

    @app.post("/api/decide")
    async def decide(request: Request) -> Response:
        body = await json_body(request)
        session = await run_in_threadpool(writer, request)
        if not isinstance(body, dict) or not isinstance(body.get("item_id"), str):
            raise HTTPException(422, 'expected {"item_id": ..., "label": ... or null, "correct": true or false}')
        label, correct, how = body.get("label"), body.get("correct", False), body.get("how")
        problem = None if label is None else ctx.review.check(label)
        if problem:
            raise HTTPException(422, problem)
        if not isinstance(correct, bool):
            raise HTTPException(422, f"correct: expected true or false, not {correct!r}")
        if how not in (None, "edit", "rewrite"):
            raise HTTPException(422, "how: must be edit or rewrite")

        def apply() -> dict[str, Any]:
            queue = ctx.queue()
            if correct:
                if label is None:
                    raise Conflict("a correction picks a label")
                outcome = queue.correct(session.reviewer, body["item_id"], label, via="web", edit=how)
            else:
                outcome = queue.decide(session.reviewer, body["item_id"], label, via="web", edit=how)
            return {"ok": True, "decision_id": outcome.record.id, "kind": outcome.record.kind,
                    "complete": outcome.complete, "pending": ctx.store().pending_count()}

        try:
            return JSONResponse(await run_in_threadpool(apply))
        except Conflict as exc:
            return JSONResponse({"ok": False, "conflict": str(exc)}, status_code=409)

    @app.post("/api/renew")
    async def renew(request: Request) -> dict[str, Any]:
        """The page is still open: extend its leases. Per item the new expiry, or null when the lease is gone."""
        body = await json_body(request)
        session = await run_in_threadpool(writer, request)
        if not isinstance(body, dict):
            raise HTTPException(422, 'expected {"item_ids": [item ids]}')
        ids = item_ids(body.get("item_ids"), "item_ids")
        renewed = await run_in_threadpool(lambda: ctx.queue().renew(session.reviewer, ids))
        return {"leases": [{"item_id": i, "expires_at": at, "expires_in": None if at is None else ctx.config.review.lease_s}
                           for i, at in renewed.items()]}

    @app.post("/api/release")
    async def release(request: Request) -> dict[str, bool]:
        """The page is closing: give held items back at once instead of when their leases expire."""
        body = await json_body(request)
        session = await run_in_threadpool(writer, request)
        leases = body.get("leases", []) if isinstance(body, dict) else []
        leases = leases if isinstance(leases, list) else []
        for lease in [x for x in leases if isinstance(x, dict) and isinstance(x.get("item_id"), str)][:MAX_HELD]:
            expires = timestamp(lease.get("expires_at"))
            await run_in_threadpool(lambda i=lease["item_id"], e=expires: ctx.queue().release(session.reviewer, i, e))
        return {"ok": True}

    @app.get("/api/undo")
    def undo(request: Request, before: int | None = Query(None, ge=1, le=_SQLITE_INT_MAX)) -> dict[str, Any]:
        """The reviewer's previous decision with its item, to be corrected (a new record, not an erase)."""
        session = require_session(ctx.store(), request)
        queue = ctx.queue()
        record = queue.previous_decision(session.reviewer, before=before)
        if record is None:
            return {"item": None}
        item = queue.item(record.item_id)
        if item is None:
            return {"item": None}
        return {"item": ctx.item_json(item), "decision": {"id": record.id, "label": record.label, "kind": record.kind,
                                                          "diff": answer_diff(item.teacher_label, record.label)}}
