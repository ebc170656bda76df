"""The review app under attack, over real uvicorn servers and real run databases (httpx and raw sockets on
loopback; nothing mocked): login throttling that parallel connections and a second server process cannot
get around, one-time login forms, weak config tokens refused and never stored, the body cap, the Host
allow-list, a public URL behind a trusted proxy, malformed input that used to answer 500, and the
security headers on every error."""
from __future__ import annotations

import json
import re
import socket
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi import FastAPI

from quarry_al.engine.cli import main
from quarry_al.engine.config import ReviewConfig, config_from_dict
from quarry_al.engine.core.errors import ConfigError
from quarry_al.engine.review.auth import add_reviewer
from quarry_al.engine.review.queue import ReviewQueue
from quarry_al.engine.review.web.guard import Guard
from quarry_al.engine.store import Store
from reviewdb import make_review_db
from webserver import running_app, running_server

STRONG = "cfg-token-7QmZ2vXr9KpL4sTn8WcYbR3uJhDe5Ga"


def nonce_of(text: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', text).group(1)


def attempt(url: str, token: str, headers: dict | None = None) -> httpx.Response:
    """One login attempt as a browser makes it: a fresh form, then the POST."""
    with httpx.Client(base_url=url, timeout=60, headers=headers or {}) as client:
        return client.post("/login", data={"token": token, "csrf": nonce_of(client.get("/login").text)})


def login(url: str, token: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=30)
    response = client.post("/login", data={"token": token, "csrf": nonce_of(client.get("/login").text)})
    assert response.status_code == 303, response.text
    return client, re.search(r'name="csrf-token" content="([^"]+)"', client.get("/queue").text).group(1)


# -- login throttling -----------------------------------------------------------------------------

def test_parallel_guessing_is_held_to_the_per_client_limit(tmp_path):
    db = make_review_db(tmp_path / "quarry.db", pending=2, review={"login_attempts": 3, "login_window_s": 60})
    with Store(db) as store:
        token = add_reviewer(store, "ana")
    with running_server(db) as url:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda n: attempt(url, f"guess-{n}"), range(32)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [403] * 3 + [429] * 29  # 3 tokens checked; every other attempt refused unchecked
        throttled = [r for r in answers if r.status_code == 429]
        assert all(0 < int(r.headers["retry-after"]) <= 60 for r in throttled), [r.headers for r in throttled[:2]]
        assert all("too many login attempts" in r.text for r in throttled)
        assert attempt(url, token).status_code == 429  # the right token too, while the client is locked out


def test_successful_logins_do_not_count_and_a_form_is_good_once(tmp_path):
    db = make_review_db(tmp_path / "quarry.db", pending=2, review={"login_attempts": 2})
    with Store(db) as store:
        token = add_reviewer(store, "ana")
    with running_server(db) as url:
        assert [attempt(url, token).status_code for _ in range(4)] == [303] * 4
        client = httpx.Client(base_url=url)
        nonce = nonce_of(client.get("/login").text)
        first = client.post("/login", data={"token": "wrong", "csrf": nonce})
        assert first.status_code == 403 and "unknown token" in first.text
        # The used form, replayed with its cookie (another connection, as a parallel guesser would): refused unchecked.
        replay = httpx.post(f"{url}/login", data={"token": token, "csrf": nonce}, headers={"Cookie": f"quarry_login={nonce}"})
        assert replay.status_code == 403 and "was used or has expired" in replay.text
        assert "quarry_session" not in replay.cookies
        fresh = nonce_of(first.text)  # each answer carries a fresh form (and its cookie)
        assert fresh != nonce and client.post("/login", data={"token": token, "csrf": fresh}).status_code == 303


def test_two_server_processes_share_one_count_and_the_total_limit_holds(tmp_path):
    """Two apps over one database (two workers), many clients behind a trusted proxy: the overall limit
    holds across them, because the count lives in the run database."""
    db = make_review_db(tmp_path / "quarry.db", pending=2,
                        review={"login_attempts": 100, "login_attempts_total": 5, "trusted_proxies": ["127.0.0.1"]})
    with running_server(db) as one, running_server(db) as two:
        def guess(n: int) -> int:
            return attempt((one, two)[n % 2], f"guess-{n}", {"X-Forwarded-For": f"203.0.113.{n}"}).status_code

        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(guess, range(24)))
    assert sorted(statuses) == [403] * 5 + [429] * 19


def test_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path):
    db = make_review_db(tmp_path / "quarry.db", pending=2, review={"login_attempts": 2})
    with running_server(db) as url:
        # Not a trusted proxy: a new X-Forwarded-For per attempt does not make a new client.
        statuses = [attempt(url, "x", {"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in range(4)]
    assert statuses == [403, 403, 429, 429]


# -- tokens: strength, storage, removal -----------------------------------------------------------

def test_weak_config_tokens_are_refused_and_tokens_are_stored_hashed(tmp_path):
    for weak in ("4821", "config-token-123", "ab" * 40):
        with pytest.raises(ValueError, match="token too weak"):
            ReviewConfig(reviewers={"ana": weak})
    assert ReviewConfig(reviewers={"ana": "sha256:" + "0" * 64}).reviewers["ana"] == "sha256:" + "0" * 64
    with pytest.raises(ValueError, match="64 hex digits"):
        ReviewConfig(reviewers={"ana": "sha256:abc"})
    dumped = ReviewConfig(reviewers={"ana": STRONG}).model_dump(mode="json")["reviewers"]
    assert dumped["ana"].startswith("sha256:") and STRONG not in json.dumps(dumped)
    # A run database made before this (schema 2) with the token in its config snapshot: opened, it keeps the hash.
    db = make_review_db(tmp_path / "old.db", pending=1, review={"reviewers": {"ana": STRONG}})
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with Store(db) as store:
        snapshot = store.config_json()
    assert STRONG not in snapshot and json.loads(snapshot)["review"]["reviewers"]["ana"].startswith("sha256:")
    with running_server(db) as url:
        assert attempt(url, STRONG).status_code == 303  # the hashed form still logs in
    with pytest.raises(ConfigError, match=r"run database's config: review.reviewers: ana: token too weak"):
        config_from_dict({**json.loads(snapshot), "review": {"reviewers": {"ana": "4821"}}})


def test_reviewers_remove_deletes_the_token_and_ends_sessions(tmp_path, capsys):
    db = make_review_db(tmp_path / "quarry.db", pending=2, review={"reviewers": {"cfg": STRONG}})
    with Store(db) as store:
        token = add_reviewer(store, "ana")
    with running_server(db) as url:
        client, csrf = login(url, token)
        config_client, config_csrf = login(url, STRONG)
        assert main(["reviewers", "remove", "ana", str(tmp_path)]) == 0
        assert "1 open sessions ended" in capsys.readouterr().out
        assert client.post("/api/next", headers={"X-CSRF-Token": csrf}).status_code == 401
        assert attempt(url, token).status_code == 403
        assert main(["reviewers", "remove", "cfg", str(tmp_path)]) == 2  # in the config: say where to remove it
        assert "the config's review.reviewers lists them" in capsys.readouterr().err
        assert config_client.post("/api/next", headers={"X-CSRF-Token": config_csrf}).status_code == 401
        assert main(["reviewers", "remove", "nobody", str(tmp_path)]) == 2


# -- the body cap ---------------------------------------------------------------------------------

def raw_request(port: int, head: bytes, body_chunks=(), read_first: bool = False) -> tuple[int, bytes]:
    """Send a request over a plain socket; with `read_first`, read the answer before sending any body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        if not read_first:
            try:
                for chunk in body_chunks:
                    sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and closed before the body ended
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return int(answer.split(b" ", 2)[1]), answer


def test_oversized_bodies_get_413_before_they_are_read(tmp_path):
    db = make_review_db(tmp_path / "quarry.db", pending=2)
    with running_server(db) as url:
        port = int(url.rsplit(":", 1)[1])
        # A 200 MB Content-Length: answered before a single body byte is sent.
        head = (f"POST /api/decide HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {200 * 2**20}\r\n\r\n").encode()
        status, answer = raw_request(port, head, read_first=True)
        assert status == 413 and b"content-security-policy" in answer.lower()
        # Chunked, no length: refused once the streamed bytes pass 64 KB.
        head = (f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        chunk = b"a" * 16384
        chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 64  # 1 MB in all, if it were all read
        assert raw_request(port, head, chunks)[0] == 413
        # A 16 MB login form: refused at once, and the server keeps answering meanwhile.
        started = time.perf_counter()
        response = httpx.post(f"{url}/login", content=b"csrf=x&token=x" + b"&a=b" * (4 * 2**20),
                              headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=60)
        assert response.status_code == 413 and time.perf_counter() - started < 10
        assert httpx.get(f"{url}/login").status_code == 200
        # Just under the cap is a normal request.
        assert httpx.post(f"{url}/api/decide", content=b"{" + b" " * 60_000 + b"}",
                          headers={"Content-Type": "application/json"}).status_code == 401


# -- Host header, public URL, trusted proxy -------------------------------------------------------

def test_host_header_allow_list_and_public_url_behind_a_trusted_proxy(tmp_path):
    db = make_review_db(tmp_path / "quarry.db", pending=2, review={
        "public_url": "https://review.example.org", "trusted_proxies": ["127.0.0.1/32"]})
    with Store(db) as store:
        token = add_reviewer(store, "ana")
    with running_server(db) as url:
        port = url.rsplit(":", 1)[1]
        for host, expected in (("evil.example", 400), (f"evil.example:{port}", 400), ("", 400),
                               (f"localhost:{port}", 200), (f"127.0.0.1:{port}", 200), ("review.example.org", 200)):
            response = httpx.get(f"{url}/login", headers={"Host": host})
            assert response.status_code == expected, host
            assert response.headers["x-frame-options"] == "DENY"
        # Through the proxy: the browser is on https://review.example.org; Origin passes, the cookie is Secure.
        proxied = {"Host": "review.example.org", "X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
        # (The cookies are Secure, so httpx, talking plain http to the app, would not send them: sent by hand.)
        form = httpx.get(f"{url}/login", headers=proxied)
        assert "Secure" in form.headers["set-cookie"]
        nonce = nonce_of(form.text)
        response = httpx.post(f"{url}/login", data={"token": token, "csrf": nonce}, headers={
            **proxied, "Origin": "https://review.example.org", "Cookie": f"quarry_login={nonce}"})
        assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]
        nonce = nonce_of(httpx.get(f"{url}/login", headers=proxied).text)
        refused = httpx.post(f"{url}/login", data={"token": token, "csrf": nonce}, headers={
            **proxied, "Origin": "https://evil.example", "Cookie": f"quarry_login={nonce}"})
        assert refused.status_code == 403 and "cross-origin" in refused.text
    # Without a trusted proxy, X-Forwarded-Proto is not believed: plain http, no Secure flag.
    db2 = make_review_db(tmp_path / "plain.db", pending=1)
    with Store(db2) as store:
        token2 = add_reviewer(store, "bo")
    with running_server(db2) as url:
        client = httpx.Client(base_url=url, headers={"X-Forwarded-Proto": "https"})
        response = client.post("/login", data={"token": token2, "csrf": nonce_of(client.get("/login").text)})
        assert response.status_code == 303 and "Secure" not in response.headers["set-cookie"]


# -- malformed input ------------------------------------------------------------------------------

def test_malformed_input_gets_4xx_never_500(tmp_path):
    db = tmp_path / "quarry.db"
    with Store(db) as store:  # item ids with commas, and the ids a comma split would make of them
        config = {"name": "ids", "task": {"labels": ["a", "b"], "instruction": "x"},
                  "data": {"pool": "p", "eval": "e"}, "review": {"mode": "queue"}}
        ids = ["x,1", "x", "1"]
        store.initialize(json.dumps(config), [(i, f"text {i}", None) for i in ids], [])
        store.create_round(0, "random", [(i, None, None, None) for i in ids], {})
        store.commit_routing(0, accepted=[], timings={}, to_review=[
            {"item_id": i, "reason": "r", "teacher_label": "a", "teacher_confidence": 0.5, "teacher_raw": "",
             "student_label": None, "student_confidence": None} for i in ids])
        token = add_reviewer(store, "ana")
    with running_server(db) as url:
        client, csrf = login(url, token)
        h = {"X-CSRF-Token": csrf}
        first = client.post("/api/next", json={}, headers=h).json()["item"]["item_id"]
        assert first == "x,1"
        # The prefetch excludes exactly the item on screen: "x" comes next (a comma split would have skipped it).
        assert client.post("/api/next", json={"exclude": ["x,1"]}, headers=h).json()["item"]["item_id"] == "x"
        nonascii = [(b"X-CSRF-Token", "\u00e9t\u00e9".encode())]
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        answers = {
            "non-ASCII CSRF header": client.post("/api/decide", json={"item_id": first, "label": "a"}, headers=nonascii),
            "non-ASCII login token": httpx.post(f"{url}/login", content="token=x&csrf=%C3%A9t%C3%A9".encode(),
                                                headers=form),
            "before past SQLite's range": client.get(f"/api/undo?before={2**70}"),
            "before negative": client.get("/api/undo?before=-5"),
            "nested JSON": client.post("/api/decide", content=b"[" * 30_000 + b"]" * 30_000,
                                       headers={**h, "Content-Type": "application/json"}),
            "correct as a string": client.post("/api/decide", json={"item_id": first, "label": "a", "correct": "no"},
                                               headers=h),
            "label as a list": client.post("/api/decide", json={"item_id": first, "label": ["a"]}, headers=h),
            "exclude not a list": client.post("/api/next", json={"exclude": "x,1"}, headers=h),
            "huge expiry": client.post("/api/release", content=b'{"leases": [{"item_id": "x", "expires_at": 1'
                                       + b"0" * 400 + b"}]}", headers={**h, "Content-Type": "application/json"}),
            "many form fields": httpx.post(f"{url}/login", content=b"&".join([b"a=b"] * 5000), headers=form),
        }
        codes = {name: r.status_code for name, r in answers.items()}
        assert codes == {"non-ASCII CSRF header": 403, "non-ASCII login token": 403, "before past SQLite's range": 422,
                         "before negative": 422, "nested JSON": 422, "correct as a string": 422,
                         "label as a list": 422, "exclude not a list": 422, "huge expiry": 200,
                         "many form fields": 400}
        assert all("content-security-policy" in r.headers for r in answers.values())
        with Store(db) as store:
            assert store.review_log() == []  # "correct": "no" did not count as a correction, nor as anything


def test_security_headers_on_every_error_500_included(tmp_path):
    app = FastAPI()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    with running_app(Guard(app, {"127.0.0.1"}, 1024, lambda h: h.split(":")[0])) as url:
        responses = [httpx.get(f"{url}/boom"), httpx.get(f"{url}/nothing"), httpx.put(f"{url}/boom"),
                     httpx.post(f"{url}/boom", content=b"x" * 4096)]
    assert [r.status_code for r in responses] == [500, 404, 405, 413]
    for r in responses:
        assert "default-src 'none'" in r.headers["content-security-policy"] and r.headers["x-content-type-options"] == "nosniff"
    db = make_review_db(tmp_path / "quarry.db", pending=1, review={"login_attempts": 1})
    with running_server(db) as url:
        attempt(url, "wrong")
        throttled = attempt(url, "wrong")
    assert throttled.status_code == 429 and "content-security-policy" in throttled.headers


# -- leases over HTTP -----------------------------------------------------------------------------

def test_renew_extends_own_leases_and_reports_lost_ones(tmp_path):
    db = make_review_db(tmp_path / "quarry.db", pending=3, review={"lease_s": 1})
    with Store(db) as store:
        token = add_reviewer(store, "ana")
    with running_server(db) as url:
        client, csrf = login(url, token)
        h = {"X-CSRF-Token": csrf}
        first = client.post("/api/next", json={}, headers=h).json()["item"]
        second = client.post("/api/next", json={"exclude": [first["item_id"]]}, headers=h).json()["item"]
        time.sleep(1.2)  # both leases lapse
        with Store(db) as store:
            taken = ReviewQueue(store, lease_s=60).lease("bo", exclude=[], max_held=3)  # bo takes the first one
        assert taken.item.item_id == first["item_id"]
        renewed = client.post("/api/renew", json={"item_ids": [first["item_id"], second["item_id"]]}, headers=h).json()
        leases = {r["item_id"]: r["expires_at"] for r in renewed["leases"]}
        assert leases[first["item_id"]] is None  # lapsed and taken: gone
        assert leases[second["item_id"]] > second["expires_at"]  # lapsed but nobody took it: renewed
        assert client.post("/api/renew", json={"item_ids": ["no-such"]}, headers=h).json()["leases"][0]["expires_at"] is None


def test_item_json_shows_the_calibrated_distribution_not_raw_scores(tmp_path):
    from quarry_al.engine.teacher import TeacherResult

    db = make_review_db(tmp_path / "quarry.db", pending=1)
    with Store(db) as store:
        token = add_reviewer(store, "ana")
        store.record_teacher_call("i0006", 0, "local:x", TeacherResult(
            label="technical", confidence=0.6, distribution={"billing": 0.1, "shipping": 0.3, "technical": 0.6},
            raw='{"billing": -1.0, "shipping": -5.0, "technical": -3.0}', confidence_method="label_likelihood"))
    with running_server(db) as url:
        client, csrf = login(url, token)
        item = client.post("/api/next", json={}, headers={"X-CSRF-Token": csrf}).json()["item"]
    assert [t["label"] for t in item["teacher_top"]] == ["technical", "shipping", "billing"]
    assert item["teacher_top"][0]["p"] == pytest.approx(0.6) and item["teacher_raw"] == ""


def test_serve_refuses_a_weak_token_in_a_stored_config_with_one_line(tmp_path):
    import subprocess
    import sys

    make_review_db(tmp_path / "quarry.db", pending=1, review={"reviewers": {"ana": "4821"}})
    from pathlib import Path

    done = subprocess.run([sys.executable, "-m", "engine", "serve", str(tmp_path), "--port", "1"],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "review.reviewers" in lines[0] and "ana: token too weak" in lines[0]
