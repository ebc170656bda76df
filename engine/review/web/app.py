"""`quarry serve`: the review web app over a run's database.

Server-rendered pages (Jinja2, autoescaped) and one small script that swaps the next item in from
JSON. Security: reviewers log in with a token; the session cookie is HttpOnly and SameSite=Strict;
every state-changing request must carry the session's CSRF token (header or form field) and, when a
browser sends one, a same-origin Origin; a Content-Security-Policy allows only this app's own script.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import secrets
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from ...config import JobConfig, config_from_dict
from .. import auth
from ..answers import answer_diff
from ..dashboard import build_dashboard
from ..kinds import review_kind
from ..queue import Conflict, ReviewQueue
from ..similar import SimilarIndex
from ...store import ReviewRow, Store

HERE = Path(__file__).parent
SESSION_COOKIE = "quarry_session"
LOGIN_COOKIE = "quarry_login"
FAILED_LOGIN_DELAY_S = 0.5
SIMILAR_REFRESH_S = 30.0
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Context:
    """One Store per worker thread (sqlite3 connections stay on the thread that made them)."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self._local = threading.local()
        self._similar_lock = threading.Lock()
        self._similar: tuple[Any, SimilarIndex] | None = None
        self._similar_at = 0.0
        with Store(db_path) as store:
            self.config: JobConfig = config_from_dict(json.loads(store.config_json()))
        self.labels = self.config.task.label_names
        self.review = review_kind(self.config)  # what the task kind shows and accepts

    def store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store(self.db_path)
        return store

    def queue(self) -> ReviewQueue:
        return ReviewQueue(self.store(), overlap=self.config.review.overlap, lease_s=self.config.review.lease_s)

    def similar(self) -> SimilarIndex:
        """Rebuilt when labels were added, at most every SIMILAR_REFRESH_S: each decision adds one, and a
        refit per item would cost more than a slightly stale list of neighbours is worth."""
        store = self.store()
        latest = store.latest_label_id()
        now = time.monotonic()
        with self._similar_lock:
            if self._similar is None or (self._similar[0] != latest and now - self._similar_at >= SIMILAR_REFRESH_S):
                rows = [(r.item_id, r.text, r.label, r.source) for r in store.current_labels()]
                self._similar, self._similar_at = (latest, SimilarIndex(rows)), now
            return self._similar[1]


def _item_json(ctx: _Context, item: ReviewRow, expires_at: float | None = None) -> dict[str, Any]:
    neighbours = ctx.similar().nearest(item.text, k=3, exclude=item.item_id)
    return {
        "item_id": item.item_id, "text": item.text, "round": item.round, "reason": item.reason,
        "teacher_label": item.teacher_label, "teacher_confidence": item.teacher_confidence,
        "teacher_raw": item.teacher_raw, "student_label": item.student_label,
        "student_confidence": item.student_confidence, "expires_at": expires_at,
        "similar": [asdict(n) for n in neighbours], **ctx.review.item_fields(item),
    }


async def _json_body(request: Request) -> Any:
    """The parsed JSON body, or None when it is not JSON (checked after the session and CSRF token)."""
    try:
        return json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def create_app(db_path: str | Path) -> FastAPI:
    ctx = _Context(Path(db_path))
    app = FastAPI(title="Quarry review", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescape on for .html
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"  # no-referrer would make form posts send Origin: null
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def session_of(request: Request) -> auth.Session | None:
        return auth.find_session(ctx.store(), request.cookies.get(SESSION_COOKIE))

    def require_session(request: Request) -> auth.Session:
        session = session_of(request)
        if session is None:
            raise HTTPException(403, "not logged in")
        return session

    def check_origin(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise HTTPException(403, "cross-origin request refused")

    def require_csrf(request: Request, sent: str | None) -> auth.Session:
        """Every state-changing request: a live session, its CSRF token, and no foreign Origin."""
        check_origin(request)
        session = require_session(request)
        if not sent or not hmac.compare_digest(sent, session.csrf):
            raise HTTPException(403, "missing or wrong CSRF token")
        return session

    def page(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"title": ctx.config.name, **values}, status_code=status)

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        return RedirectResponse("/queue" if session_of(request) else "/login", status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        nonce = secrets.token_urlsafe(24)
        response = page(request, "login.html", login_csrf=nonce, error="")
        response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/login")
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = _form(await request.body())
        check_origin(request)
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or not hmac.compare_digest(form.get("csrf", ""), cookie):
            raise HTTPException(403, "missing or wrong CSRF token; reload the login page")

        def sign_in() -> str | None:
            name = auth.authenticate(ctx.store(), form.get("token", ""), ctx.config.review.reviewers)
            return None if name is None else auth.open_session(ctx.store(), name)[0]

        session_id = await run_in_threadpool(sign_in)
        if session_id is None:
            await asyncio.sleep(FAILED_LOGIN_DELAY_S)  # slows guessing; generated tokens are unguessable anyway
            return page(request, "login.html", status=403, login_csrf=cookie, error="unknown token")
        response = RedirectResponse("/queue", status_code=303)
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="strict", path="/",
                            max_age=auth.SESSION_S, secure=request.url.scheme == "https")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        form = _form(await request.body())
        await run_in_threadpool(require_csrf, request, form.get("csrf"))
        await run_in_threadpool(lambda: auth.close_session(ctx.store(), request.cookies.get(SESSION_COOKIE, "")))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/queue", response_class=HTMLResponse)
    def queue_page(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        return page(request, ctx.review.page, session=session, labels=ctx.labels)

    @app.post("/api/next")
    def next_item(request: Request, exclude: str = "") -> dict[str, Any]:
        """Lease the next item (held items first); `exclude` = items already on the client, for prefetch.

        A POST with the CSRF token like every other request that writes (it takes a lease).
        """
        session = require_csrf(request, request.headers.get("x-csrf-token"))
        skip = [x for x in exclude.split(",") if x][:4]
        queue = ctx.queue()
        lease = queue.lease(session.reviewer, exclude=skip, max_held=len(skip) + 1)
        return {"item": None if lease is None else _item_json(ctx, lease.item, lease.expires_at),
                "pending": ctx.store().pending_count()}

    @app.post("/api/decide")
    async def decide(request: Request) -> Response:
        body = await _json_body(request)
        session = await run_in_threadpool(require_csrf, request, request.headers.get("x-csrf-token"))
        if not isinstance(body, dict) or not isinstance(body.get("item_id"), str):
            raise HTTPException(422, "expected {\"item_id\": ..., \"label\": ... or null, \"correct\": bool}")
        label, how = body.get("label"), body.get("how")
        problem = None if label is None else ctx.review.check(label)
        if problem:
            raise HTTPException(422, problem)
        if how not in (None, "edit", "rewrite"):
            raise HTTPException(422, "how: must be edit or rewrite")

        def apply() -> dict[str, Any]:
            queue = ctx.queue()
            if body.get("correct"):
                outcome = queue.correct(session.reviewer, body["item_id"], label, via="web", edit=how)
            else:
                outcome = queue.decide(session.reviewer, body["item_id"], label, via="web", edit=how)
            return {"ok": True, "decision_id": outcome.record.id, "kind": outcome.record.kind,
                    "complete": outcome.complete, "pending": ctx.store().pending_count()}

        try:
            return JSONResponse(await run_in_threadpool(apply))
        except Conflict as exc:
            return JSONResponse({"ok": False, "conflict": str(exc)}, status_code=409)

    @app.post("/api/release")
    async def release(request: Request) -> dict[str, bool]:
        """The page is closing: give held items back at once instead of when their leases expire."""
        body = await _json_body(request)
        session = await run_in_threadpool(require_csrf, request, request.headers.get("x-csrf-token"))
        leases = body.get("leases", []) if isinstance(body, dict) else []
        for lease in [x for x in leases if isinstance(x, dict) and isinstance(x.get("item_id"), str)][:4]:
            expires = lease.get("expires_at") if isinstance(lease.get("expires_at"), (int, float)) else None
            await run_in_threadpool(lambda i=lease["item_id"], e=expires: ctx.queue().release(session.reviewer, i, e))
        return {"ok": True}

    @app.get("/api/undo")
    def undo(request: Request, before: int | None = None) -> dict[str, Any]:
        """The reviewer's previous decision with its item, to be corrected (a new record, not an erase)."""
        session = require_session(request)
        queue = ctx.queue()
        record = queue.previous_decision(session.reviewer, before=before)
        if record is None:
            return {"item": None}
        item = queue.item(record.item_id)
        assert item is not None
        return {"item": _item_json(ctx, item), "decision": {"id": record.id, "label": record.label, "kind": record.kind,
                                                            "diff": answer_diff(item.teacher_label, record.label)}}

    @app.get("/dashboard", response_class=HTMLResponse)
    def dashboard(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        data = build_dashboard(ctx.queue(), ctx.config.name, ctx.config.routing.confidence_threshold)
        return page(request, "dashboard.html", session=session, d=data)

    return app


def serve(db_path: str | Path, host: str, port: int, log: Any = print) -> None:
    """Run the app with uvicorn until interrupted (one process: the leases live in the database anyway)."""
    import uvicorn

    app = create_app(db_path)
    if not is_loopback(host):
        log(f"warning: serving on {host}, reachable from other machines; there is no TLS here, "
            "so put it behind an HTTPS proxy")
    log(f"reviewing {db_path} at http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
