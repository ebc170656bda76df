"""`quarry serve`: the review web app over a run's database.

Server-rendered pages (Jinja2, autoescaped; pages.py) and one small script that swaps the next item in
from JSON (api.py). Security: reviewers log in with a token through a throttled, one-time login form; the
session cookie is HttpOnly and SameSite=Strict (and Secure on HTTPS); every state-changing request must
carry the session's CSRF token and, when a browser sends one, an allowed Origin (site.py); around it all,
guard.py refuses foreign Host headers and oversized bodies and puts the security headers (a
Content-Security-Policy that allows only this app's own script) on every response.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from .api import add_api
from .context import AppContext
from .guard import ASGIApp, Guard
from .pages import add_pages
from .site import Site, host_name, is_loopback

HERE = Path(__file__).parent

__all__ = ["create_app", "is_loopback", "serve"]


def create_app(db_path: str | Path, bind_host: str = "127.0.0.1") -> ASGIApp:
    """The app for one run database, as served on `bind_host` (a Host header naming anything but that,
    localhost or `review.public_url`'s host is refused)."""
    ctx = AppContext(Path(db_path))
    review = ctx.config.review
    site = Site.of(review, bind_host)
    app = FastAPI(title="Quarry review", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescape on for .html
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    add_pages(app, ctx, site, templates)
    add_api(app, ctx, site)
    return Guard(app, site.allowed_hosts, review.max_body_kb * 1024, host_name)


def serve(db_path: str | Path, host: str, port: int, log: Any = print) -> None:
    """Run the app with uvicorn until interrupted (one process: the leases and the login throttle live in the
    database anyway). uvicorn's own X-Forwarded-* handling is off: site.py believes only review.trusted_proxies."""
    import uvicorn

    app = create_app(db_path, bind_host=host)
    if not is_loopback(host):
        log(f"warning: serving on {host}, reachable from other machines; there is no TLS here, so put it behind "
            "an HTTPS proxy, and set review.public_url to the address reviewers use (other Host names get 400)")
    log(f"reviewing {db_path} at http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
