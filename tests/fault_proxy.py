"""A fault-injecting HTTP proxy for the teacher tests: it sits between the client and a real
OpenAI-compatible server on 127.0.0.1 and, following a script, answers some requests itself.

Every scripted fault is decided before anything is forwarded, so a faulted request never reaches
the server: what the server answered with 200 is exactly what was paid for, and `paid()` counts
it per item text.
"""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

@dataclass
class Fault:
    """What the proxy does with one request. kind: "pass" (forward), "status" (answer `status` with
    `headers`), "delay" (hold the request `seconds`, then close without answering), "drop" (close
    the connection at once), "malformed" (200 with a body that is not JSON), "rewrite" (forward, and
    put `content` in place of the server's answer, without logprobs; it waits for a request the server
    answers with 200, so llama-cpp-python's refusal of a json_schema request does not use it up)."""

    kind: str
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    content: str = ""


PASS = Fault("pass")


def status(code: int, **headers: str) -> Fault:
    return Fault("status", status=code, headers={k.replace("_", "-"): v for k, v in headers.items()})


@dataclass
class Arrival:
    at: float  # time.monotonic() when the request arrived
    item_text: str | None
    fault: str
    status: int | None  # what the client got: the server's status when forwarded, None when dropped
    body: dict


def item_text(body: dict) -> str | None:
    """The item's text in a chat request: after the last "Text: " of the user messages (follow-up
    questions have none), up to a blank line (an appended instruction)."""
    found = None
    for message in body.get("messages", []):
        content = message.get("content", "")
        if message.get("role") == "user" and "Text: " in content:
            found = content.rsplit("Text: ", 1)[1].strip().split("\n\n")[0]
    return found


class FaultProxy:
    """`script` is consumed one fault per request in arrival order; when it is empty, requests pass.
    `by_item[text]` holds faults for the requests of one item (taken before the general script).
    When the server behind it cannot be reached (killed), requests get 502, as from a reverse proxy."""

    def __init__(self, upstream_root: str):
        self.upstream_root = upstream_root
        self.script: list[Fault] = []
        self.by_item: dict[str, list[Fault]] = {}
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _forward(self, raw: bytes | None):
                body = json.loads(raw) if raw else {}
                text = item_text(body)
                arrived = time.monotonic()
                with proxy._lock:
                    queue = proxy.by_item.get(text or "") or proxy.script
                    fault = queue.pop(0) if queue else PASS

                def note(code: int | None, kind: str = fault.kind) -> None:
                    with proxy._lock:
                        proxy.arrivals.append(Arrival(arrived, text, kind, code, body))

                if fault.kind == "status":
                    note(fault.status)
                    payload = json.dumps({"error": {"message": f"injected {fault.status}", "type": "injected"}})
                    return self._answer(fault.status, payload.encode(), fault.headers)
                if fault.kind == "malformed":
                    note(200)
                    return self._answer(200, b'{"id": "x", "choices": [{"message": {"content": "{\\"lab', {})
                if fault.kind in ("drop", "delay"):
                    note(None)  # noted on arrival: the client may give up and finish before the sleep ends
                    time.sleep(fault.seconds)
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return None
                request = urllib.request.Request(proxy.upstream_root + self.path, data=raw,
                                                 method="POST" if raw is not None else "GET",
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=300) as response:
                        code, payload = response.status, response.read()
                except urllib.error.HTTPError as error:
                    code, payload = error.code, error.read()
                except (urllib.error.URLError, ConnectionError, OSError) as error:  # the server is gone
                    note(502, "upstream_down")  # answered as a reverse proxy does: 502 Bad Gateway
                    body = json.dumps({"error": {"message": f"upstream unreachable: {error}", "type": "bad_gateway"}})
                    return self._answer(502, body.encode(), {})
                if fault.kind == "rewrite" and code != 200:
                    with proxy._lock:
                        queue.insert(0, fault)  # not an answer: the rewrite waits for the next one
                    note(code, "pass")
                    return self._answer(code, payload, {})
                if fault.kind == "rewrite":
                    data = json.loads(payload)
                    data["choices"][0]["message"]["content"] = fault.content
                    data["choices"][0]["logprobs"] = None
                    payload = json.dumps(data).encode()
                note(code)
                return self._answer(code, payload, {})

            def _answer(self, code: int, payload: bytes, headers: dict):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def log(self) -> list[Arrival]:
        """Every request in order of arrival (they are noted when answered, which can differ)."""
        with self._lock:
            return sorted(self.arrivals, key=lambda a: a.at)

    def forwarded(self) -> list[Arrival]:
        """Requests the real server answered (any status), rewritten ones included."""
        return [a for a in self.log() if a.fault in ("pass", "rewrite")]

    def paid(self) -> dict[str | None, int]:
        """Per item text: requests the real server answered with 200 (each one a paid answer)."""
        counts: dict[str | None, int] = {}
        for arrival in self.forwarded():
            if arrival.status == 200:
                counts[arrival.item_text] = counts.get(arrival.item_text, 0) + 1
        return counts

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
