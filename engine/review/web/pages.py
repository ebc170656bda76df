"""The review app's pages: login (one-time form tokens, throttled), logout, the queue, the dashboard.

A login attempt goes: same Origin; the form's one-time token, matching the login cookie, used up; a slot
under the login limits (else 429 with Retry-After); then the token is checked. A failed attempt keeps its
slot for `review.login_window_s` and gets a fresh form; a successful one gives its slot back.
"""
from __future__ import annotations

import asyncio
import math
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from .. import auth
from ..dashboard import build_dashboard
from .context import AppContext
from .site import SESSION_COOKIE, Site, require_csrf, same_token, session_of

LOGIN_COOKIE = "quarry_login"
FAILED_LOGIN_DELAY_S = 0.5


def form_fields(body: bytes) -> dict[str, str]:
    """The first value of each field of a urlencoded form (the body is capped, so this stays cheap)."""
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), max_num_fields=100).items()}


async def read_form(request: Request) -> dict[str, str]:
    try:
        return form_fields(await request.body())
    except ValueError:  # more fields than any form of ours has
        raise HTTPException(400, "malformed form") from None


def add_pages(app: FastAPI, ctx: AppContext, site: Site, templates: Jinja2Templates) -> None:
    review = ctx.config.review

    def page(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"title": ctx.config.name, **values}, status_code=status)

    def login_page(request: Request, status: int = 200, error: str = "",
                   headers: dict[str, str] | None = None) -> HTMLResponse:
        """The login form with a fresh one-time token (in the form and in a cookie scoped to /login)."""
        nonce = auth.issue_login_nonce(ctx.store())
        response = page(request, "login.html", status=status, login_csrf=nonce, error=error)
        response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/login",
                            secure=site.secure_cookie(request))
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        return RedirectResponse("/queue" if session_of(ctx.store(), request) else "/login", status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        return login_page(request)

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        site.check_origin(request)
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        # (ctx.store() inside the worker thread: each thread has its own connection)
        if not same_token(form.get("csrf"), cookie) or not await run_in_threadpool(
                lambda: auth.take_login_nonce(ctx.store(), cookie)):
            return await run_in_threadpool(login_page, request, 403, "this login form was used or has expired: try again")
        client = site.client_of(request)
        slot = await run_in_threadpool(lambda: auth.reserve_login(
            ctx.store(), client, review.login_attempts, review.login_attempts_total, review.login_window_s))
        if slot.attempt is None:
            wait = math.ceil(slot.retry_after_s)
            return await run_in_threadpool(login_page, request, 429, f"too many login attempts; try again in {wait} s",
                                           {"Retry-After": str(wait)})

        def sign_in() -> str | None:
            name = auth.authenticate(ctx.store(), form.get("token", ""), review.reviewers)
            if name is None:
                return None
            ctx.store().forget_login_attempt(slot.attempt)
            return auth.open_session(ctx.store(), name)[0]

        session_id = await run_in_threadpool(sign_in)
        if session_id is None:
            await asyncio.sleep(FAILED_LOGIN_DELAY_S)
            return await run_in_threadpool(login_page, request, 403, "unknown token")
        response = RedirectResponse("/queue", status_code=303)
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="strict", path="/",
                            max_age=auth.SESSION_S, secure=site.secure_cookie(request))
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        form = await read_form(request)
        await run_in_threadpool(lambda: require_csrf(site, ctx.store(), request, form.get("csrf")))
        await run_in_threadpool(lambda: auth.close_session(ctx.store(), request.cookies.get(SESSION_COOKIE, "")))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/queue", response_class=HTMLResponse)
    def queue_page(request: Request) -> Response:
        session = session_of(ctx.store(), request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        return page(request, ctx.review.page, session=session, labels=ctx.config.task.labels,
                    lease_s=review.lease_s, poll_s=review.poll_s)

    @app.get("/dashboard", response_class=HTMLResponse)
    def dashboard(request: Request) -> Response:
        session = session_of(ctx.store(), request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        data = build_dashboard(ctx.queue(), ctx.config)
        return page(request, "dashboard.html", session=session, d=data)
