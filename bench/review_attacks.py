"""The review web app under attack: token guessing, body floods, a foreign Host header, malformed input.

Serves a small run database with `quarry serve` in its own process (so its RSS is its own) and measures
  1. guessing: --connections parallel clients POST /login with wrong tokens for --seconds; guesses/s are
     the attempts the server checked (answers other than 429), and, with a 4-digit token in the config
     (`review.reviewers`), how long until it falls (if the server accepts such a token at all);
  2. floods: an unauthenticated POST of --flood-mb (with a Content-Length, then chunked without one), and
     a --form-mb login form: the status, the server's peak RSS growth (/proc/PID/status, sampled every
     10 ms) and the event-loop stall (the slowest answer to GET /favicon.ico polled every 10 ms meanwhile);
  3. a foreign Host header, the malformed inputs that used to answer 500, and the security headers on
     error responses.

    .venv/bin/python bench/review_attacks.py --label before|after [--seconds 20] [--connections 64]

Prints a table; writes bench/results/review_attacks_<label>.json.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from _checkout import REPO  # noqa: E402  (this checkout's quarry_al, not an installed one)

from quarry_al.engine.review.auth import add_reviewer  # noqa: E402
from quarry_al.engine.store import Store  # noqa: E402

WEAK_TOKEN = "4821"
LABELS = ["billing", "shipping", "technical"]


def build_db(path: Path, reviewers: dict[str, str]) -> None:
    config = {"name": "attack-bench", "task": {"labels": LABELS, "instruction": "Route the message."},
              "data": {"pool": "pool.jsonl", "eval": "eval.jsonl"},
              "review": {"mode": "queue", "reviewers": reviewers}}
    rows = [(f"i{n:03d}", f"message {n}", LABELS[n % 3]) for n in range(20)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with Store(path) as store:
        store.initialize(json.dumps(config), rows, [])
        store.create_round(0, "random", [(r[0], None, None, None) for r in rows], {})
        store.commit_routing(0, accepted=[], timings={}, to_review=[
            {"item_id": r[0], "reason": "bench", "teacher_label": r[2], "teacher_confidence": 0.5,
             "teacher_raw": "{}", "student_label": None, "student_confidence": None} for r in rows])


class Server:
    def __init__(self, run_dir: Path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "engine", "serve", str(run_dir), "--port", str(self.port)],
                                        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"{self.url}/favicon.ico")
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    out = self.process.communicate(timeout=10)[0] if self.process.poll() is not None else ""
                    raise RuntimeError(f"quarry serve did not start: {out.strip()[-300:]}")
                time.sleep(0.1)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_weak_or_refused(tmp: Path) -> tuple[Server | None, str]:
    """Serve a run whose config names a 4-digit token; a server that refuses it says why."""
    run_dir = tmp / "weak"
    build_db(run_dir / "quarry.db", {"weak": WEAK_TOKEN})
    try:
        return Server(run_dir), ""
    except RuntimeError as exc:
        return None, str(exc)


def _nonce(text: str) -> str | None:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    return found.group(1) if found else None


def guessing(url: str, connections: int, seconds: float, candidates: list[str] | None) -> dict:
    """Parallel wrong guesses (or the candidates, if given); an attacker that reuses a login nonce while
    the server lets it, and takes the fresh one from each answer page when it does not."""
    counts = {"checked": 0, "throttled": 0, "other": 0}
    found: dict[str, float] = {}
    lock = threading.Lock()
    queue = list(candidates or [])
    random.Random(0).shuffle(queue)
    stop_at = time.monotonic() + seconds
    started = time.monotonic()
    retry_after: list[str] = []

    def attacker(n: int) -> None:
        client = httpx.Client(base_url=url, timeout=30)
        nonce = _nonce(client.get("/login").text)
        while time.monotonic() < stop_at and not found:
            with lock:
                guess = queue.pop() if queue else f"guess-{n}-{random.random()}"
            try:
                response = client.post("/login", data={"token": guess, "csrf": nonce or ""})
            except httpx.HTTPError:
                with lock:
                    counts["other"] += 1
                continue
            with lock:
                if response.status_code == 303:
                    found[guess] = time.monotonic() - started
                elif response.status_code == 429:
                    counts["throttled"] += 1
                    retry_after.append(response.headers.get("retry-after", ""))
                    if candidates:
                        queue.append(guess)  # not checked: try it again later
                elif response.status_code == 403 and "unknown token" in response.text:
                    counts["checked"] += 1
                else:
                    counts["other"] += 1
            fresh = _nonce(response.text)
            if fresh:
                nonce = fresh
            elif response.status_code in (403, 429):
                nonce = _nonce(client.get("/login").text)
        client.close()

    threads = [threading.Thread(target=attacker, args=(n,)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return {"connections": connections, "seconds": elapsed, **counts,
            "guesses_per_s": counts["checked"] / elapsed, "found_after_s": next(iter(found.values()), None),
            "retry_after_sample": retry_after[:3]}


class Probe:
    """GET /favicon.ico every 10 ms in a thread: the slowest answer is the event loop's stall."""

    def __init__(self, url: str):
        self.url, self.latencies, self._stop = url, [], threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                client.get(f"{self.url}/favicon.ico")
                self.latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.01)

    def stop(self) -> float:
        self._stop.set()
        self.thread.join()
        return max(self.latencies) if self.latencies else 0.0


def flood(server: Server, path: str, size_mb: float, chunked: bool, form: bool = False) -> dict:
    """One large unauthenticated POST; the server's RSS growth and stall while it is handled."""
    size = int(size_mb * 1024 * 1024)
    peak, base = [0], server.rss_kb()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], server.rss_kb())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    probe = Probe(server.url)
    started = time.perf_counter()
    chunk = b"a" * (1024 * 1024)
    headers = {"Content-Type": "application/x-www-form-urlencoded" if form else "application/json"}

    def body():
        sent = 0
        while sent < size:
            piece = chunk[:min(len(chunk), size - sent)]
            sent += len(piece)
            yield piece

    try:
        if form:
            content: object = b"csrf=x&token=x" + b"&a=b" * ((size - 14) // 4)  # many fields: the slow parse
        else:
            content = body() if chunked else b"a" * size
        response = httpx.post(f"{server.url}{path}", content=content, headers=headers, timeout=300)
        status = response.status_code
    except httpx.HTTPError as exc:
        status = f"{type(exc).__name__}"
    elapsed = time.perf_counter() - started
    stall = probe.stop()
    done.set()
    sampler.join()
    return {"path": path, "mb": size_mb, "chunked": chunked, "form": form, "status": status,
            "seconds": round(elapsed, 2), "rss_growth_mb": round((peak[0] - base) / 1024, 1),
            "stall_ms": round(stall, 1)}


def _status(request) -> object:
    """The status of a request (with "-" when it lacks the security headers), or the name of the
    error it ended in (a dropped connection)."""
    try:
        response = request()
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return response.status_code if "content-security-policy" in response.headers else f"{response.status_code}-"


def malformed(url: str, token: str) -> dict:
    """Status codes of the inputs that used to make 500s, and of a foreign Host header."""
    client = httpx.Client(base_url=url, timeout=30)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    out: dict[str, object] = {}
    client.get("/login")
    out["login: non-ASCII csrf"] = _status(lambda: client.post("/login", content="token=x&csrf=%C3%A9t%C3%A9".encode(),
                                                               headers=form))
    client = httpx.Client(base_url=url, timeout=30)
    client.post("/login", data={"token": token, "csrf": _nonce(client.get("/login").text) or ""})
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/queue").text)
    csrf_value = csrf.group(1) if csrf else ""
    json_headers = {"X-CSRF-Token": csrf_value, "Content-Type": "application/json"}
    attempts = {
        "decide: non-ASCII X-CSRF-Token": lambda: client.post(
            "/api/decide", json={"item_id": "i000", "label": "billing"},
            headers=[(b"X-CSRF-Token", "\u00e9t\u00e9".encode("utf-8"))]),
        "undo: before=2**70": lambda: client.get(f"/api/undo?before={2**70}"),
        "decide: JSON nested 30,000 deep": lambda: client.post(
            "/api/decide", content=b"[" * 30_000 + b"]" * 30_000, headers=json_headers),
        "decide: correct=\"no\"": lambda: client.post(
            "/api/decide", json={"item_id": "i000", "label": "billing", "correct": "no"}, headers=json_headers),
        "release: expires_at=10**400": lambda: client.post(
            "/api/release", content=b'{"leases": [{"item_id": "i000", "expires_at": 1' + b"0" * 400 + b"}]}",
            headers=json_headers),
        "Host: evil.example": lambda: httpx.get(f"{url}/login", headers={"Host": "evil.example"}),
    }
    for name, request in attempts.items():
        out[name] = _status(request)
        client = httpx.Client(base_url=url, timeout=30, cookies=client.cookies)  # a 500 may have closed it
    headers = {}
    for name, request in (("404", lambda: client.get("/no-such-page")),
                          ("405", lambda: client.put("/login")),
                          ("413", lambda: client.post("/login", content=b"a" * (2 * 1024 * 1024), headers=form))):
        try:
            response = request()
        except httpx.HTTPError as exc:
            headers[name] = {"status": type(exc).__name__}
            continue
        headers[name] = {"status": response.status_code,
                         "csp": "content-security-policy" in response.headers,
                         "nosniff": response.headers.get("x-content-type-options") == "nosniff"}
    out["security headers on errors"] = headers
    client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True, help="before | after: names the results file")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--flood-mb", type=float, default=200.0)
    parser.add_argument("--form-mb", type=float, default=16.0)
    args = parser.parse_args()
    results: dict[str, object] = {"label": args.label}
    with tempfile.TemporaryDirectory() as tmp:
        weak, refused = start_weak_or_refused(Path(tmp))
        if weak is not None:
            try:
                results["weak_config_token"] = guessing(weak.url, args.connections, args.seconds * 3,
                                                        [f"{n:04d}" for n in range(10_000)])
            finally:
                weak.close()
        else:
            results["weak_config_token"] = {"refused": refused}
        tokens = {}
        for name in ("guess", "rest"):  # the guessing locks this client out: the rest gets a server of its own
            build_db(Path(tmp) / name / "quarry.db", {})
            with Store(Path(tmp) / name / "quarry.db") as store:
                tokens[name] = add_reviewer(store, "ana")
        server = Server(Path(tmp) / "guess")
        try:
            results["guessing"] = guessing(server.url, args.connections, args.seconds, None)
        finally:
            server.close()
        server = Server(Path(tmp) / "rest")
        try:
            results["malformed"] = malformed(server.url, tokens["rest"])
            idle = Probe(server.url)  # the slowest answer with nothing else going on: this machine's noise
            time.sleep(3)
            results["idle_stall_ms"] = round(idle.stop(), 1)
            results["floods"] = [flood(server, "/api/decide", args.flood_mb, chunked=False),
                                 flood(server, "/api/decide", args.flood_mb, chunked=True),
                                 flood(server, "/login", args.form_mb, chunked=False, form=True)]
        finally:
            server.close()
    g, w = results["guessing"], results["weak_config_token"]
    print(f"\nguessing, {g['connections']} connections, {g['seconds']:.0f} s: {g['guesses_per_s']:.1f} guesses/s checked, "
          f"{g['throttled']} answered 429 (Retry-After e.g. {g['retry_after_sample']})")
    if "refused" in w:
        print(f"4-digit config token: refused: {w['refused'].split('error: ')[-1][:150]}")
    else:
        print(f"4-digit config token: {w['guesses_per_s']:.1f} guesses/s, found after "
              f"{w['found_after_s'] if w['found_after_s'] is not None else 'not found in ' + str(round(w['seconds'])) + ' s'}")
    print(f"\nslowest GET /favicon.ico over 3 idle seconds: {results['idle_stall_ms']} ms (this machine's noise)")
    print(f"{'flood':<40}{'status':>10}{'s':>8}{'RSS +MB':>10}{'stall ms':>10}")
    for f in results["floods"]:
        name = f"{f['path']} {f['mb']:.0f} MB " + ("form" if f["form"] else "chunked" if f["chunked"] else "Content-Length")
        print(f"{name:<40}{str(f['status']):>10}{f['seconds']:>8}{f['rss_growth_mb']:>10}{f['stall_ms']:>10}")
    print()
    for name, value in results["malformed"].items():
        print(f"{name:<36}{value}")
    out = REPO / "bench" / "results" / f"review_attacks_{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
