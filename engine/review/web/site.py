"""Where the review app is served and who may talk to it: the Host names it answers, the origins its forms
may come from, which peers' X-Forwarded-* headers it believes, and the per-request checks (session,
CSRF token, Origin) every route uses.

Behind an HTTPS proxy, `review.public_url` names the origin reviewers use (its host is allowed, its origin
passes the Origin check, and the session cookie is `Secure` there), and `review.trusted_proxies` lists the
peers whose X-Forwarded-Proto / X-Forwarded-For are taken for the scheme and the client's address (the
login throttle counts per client); from anyone else those headers are ignored.
"""
from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from .. import auth
from ...config import ReviewConfig
from ...store import Store

SESSION_COOKIE = "quarry_session"
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str | None:
    """The host name of a Host header ("Example.org:8765" -> "example.org", "[::1]:80" -> "::1")."""
    try:
        return urlsplit(f"//{host_header}").hostname
    except ValueError:
        return None


def same_token(sent: str | None, expected: str) -> bool:
    """Constant-time comparison that any string can go through (non-ASCII ones included)."""
    return bool(sent) and hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Site:
    allowed_hosts: frozenset[str]
    public_origin: str | None
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def of(cls, review: ReviewConfig, bind_host: str) -> "Site":
        hosts = set(_LOOPBACK_NAMES)
        if bind_host not in _WILDCARDS:
            hosts.add(host_name(bind_host) or bind_host)
        public = urlsplit(review.public_url) if review.public_url else None
        if public is not None and public.hostname:
            hosts.add(public.hostname)
        origin = f"{public.scheme}://{public.netloc}".lower() if public is not None else None
        return cls(frozenset(h.lower() for h in hosts), origin,
                   tuple(ipaddress.ip_network(p, strict=False) for p in review.trusted_proxies))

    # --- what the request says, believed as far as its peer is trusted ---------------------------------
    def _trusted(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client's address: the peer, or behind trusted proxies the last X-Forwarded-For hop they did not add."""
        address = peer or "unknown"
        if forwarded_for and self._trusted(address):
            for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
                address = hop
                if not self._trusted(hop):
                    break
        return address

    def scheme(self, request: Request) -> str:
        forwarded = request.headers.get("x-forwarded-proto")
        if forwarded and self._trusted(request.client.host if request.client else None):
            return forwarded.split(",")[0].strip().lower()
        return request.url.scheme

    def client_of(self, request: Request) -> str:
        return self.client(request.client.host if request.client else None, request.headers.get("x-forwarded-for"))

    def origins(self, request: Request) -> Sequence[str]:
        own = f"{self.scheme(request)}://{request.headers.get('host', '')}".lower()
        return (own, self.public_origin) if self.public_origin else (own,)

    def secure_cookie(self, request: Request) -> bool:
        """Secure when the browser is on HTTPS: the request says so (directly, or through a trusted
        proxy), or it came for the public URL's host and that URL is https."""
        if self.scheme(request) == "https":
            return True
        if self.public_origin and self.public_origin.startswith("https://"):
            return host_name(request.headers.get("host", "")) == urlsplit(self.public_origin).hostname
        return False

    # --- the checks every route makes ------------------------------------------------------------------
    def check_origin(self, request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None and origin.lower() not in self.origins(request):
            raise HTTPException(403, "cross-origin request refused")


def session_of(store: Store, request: Request) -> auth.Session | None:
    return auth.find_session(store, request.cookies.get(SESSION_COOKIE))


def require_session(store: Store, request: Request) -> auth.Session:
    """The request's live session; 401 (not 403) when there is none, so the page knows to log in again."""
    session = session_of(store, request)
    if session is None:
        raise HTTPException(401, "not logged in (the session ended); log in again")
    return session


def require_csrf(site: Site, store: Store, request: Request, sent: str | None) -> auth.Session:
    """Every state-changing request: no foreign Origin, a live session, and its CSRF token."""
    site.check_origin(request)
    session = require_session(store, request)
    if not same_token(sent, session.csrf):
        raise HTTPException(403, "missing or wrong CSRF token")
    return session
