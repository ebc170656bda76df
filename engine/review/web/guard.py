"""The outermost layer of the review app (plain ASGI, around FastAPI and its error handling):

- a Host header outside the allow-list (the bind address, localhost, `review.public_url`'s host) gets 400,
  so a DNS-rebinding page cannot talk to a loopback server under its own name;
- a body over the cap gets 413 before it is read: at once when Content-Length says so, else as soon as
  the streamed bytes pass it (a 200 MB POST used to be read whole, +400 MB of RSS per request, and a
  16 MB login form held the event loop for 10 s);
- every response, the errors of any layer below included (404, 405, 413, 429, 500), carries the security
  headers.
"""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Collection

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make form posts send Origin: null
)


class BodyTooLarge(Exception):
    pass


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


class Guard:
    """Host allow-list, body cap and security headers around `app` (see the module docstring)."""

    def __init__(self, app: ASGIApp, allowed_hosts: Collection[str], max_body: int,
                 host_name: Callable[[str], str | None]):
        self.app, self.allowed_hosts, self.max_body, self.host_name = app, allowed_hosts, max_body, host_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = _with_security_headers(send)
        host = (_header(scope, b"host") or b"").decode("latin-1")
        if self.host_name(host) not in self.allowed_hosts:
            return await _error(send, 400, "unknown Host header; set review.public_url to serve under another name")
        length = _header(scope, b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.max_body):
            return await _error(send, 413, f"request body over {self.max_body} bytes")
        await self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app counting the body as it streams in; past the cap, the app's answer (the 500 of the
        exception raised into it) is dropped and a 413 goes out instead."""
        state = {"received": 0, "over": False, "started": False}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body:
                    state["over"] = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await _error(send, 413, f"request body over {self.max_body} bytes")


def _with_security_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dict(SECURITY_HEADERS)]
            headers += list(SECURITY_HEADERS)
            if not any(k.lower() == b"cache-control" for k, _ in headers):
                headers.append((b"cache-control", b"no-store"))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _error(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
