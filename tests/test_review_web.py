"""The review web app over a real uvicorn server and a real run database: login, CSRF, escaping, concurrency.

Requests go through httpx over a loopback socket; nothing is mocked.
"""
import hashlib
import random
import re
import threading
import time

import httpx
import pytest

from quarry_al.engine.review.auth import add_reviewer
from quarry_al.engine.review.queue import ReviewQueue
from quarry_al.engine.store import Store
from reviewdb import make_review_db
from webserver import running_server

SCRIPT = "<script>document.title='pwned'</script><b>bold?</b>"
CFG_TOKEN = "config-token-7QmZ2vXr9KpL4sTn8WcYbR3uJhDe"
HASHED_TOKEN = "hashed-token-Hq8Vn3Kd7Rz2Lp9Wt5Xm4Cb6Jf1Gs0Ya"
EVE_TOKEN = "eve-token-Pz4Lw9Qs2Nd7Kr5Vt8Ym3Bx6Hc1Jg0Fa"


@pytest.fixture
def run(tmp_path):
    db = make_review_db(tmp_path / "quarry.db", pending=8, texts={6: SCRIPT},
                        review={"reviewers": {"cfg": CFG_TOKEN,
                                              "hashed": "sha256:" + hashlib.sha256(HASHED_TOKEN.encode()).hexdigest(),
                                              "<b>eve</b>": EVE_TOKEN}})
    with Store(db) as store:
        token = add_reviewer(store, "ana")
    with running_server(db) as url:
        yield db, url, token


def login(url: str, token: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=30)
    page = client.get("/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = client.post("/login", data={"token": token, "csrf": nonce})
    assert response.status_code == 303, response.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/queue").text).group(1)
    return client, csrf


def next_item(client: httpx.Client, csrf: str) -> dict | None:
    response = client.post("/api/next", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200, response.text
    return response.json()["item"]


def state(db) -> tuple[int, int, int]:
    with Store(db) as store:
        log = len(store.review_log())
        return store.pending_count(), log, len(store.current_labels())


def test_session_cookie_is_httponly_and_strict(run):
    _, url, token = run
    client = httpx.Client(base_url=url)
    nonce = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    cookie = client.post("/login", data={"token": token, "csrf": nonce}).headers["set-cookie"]
    assert "quarry_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_config_token_logs_in_and_wrong_token_is_refused(run):
    db, url, _ = run
    for token, name in ((CFG_TOKEN, "cfg"), (HASHED_TOKEN, "hashed")):
        client, csrf = login(url, token)
        assert next_item(client, csrf) is not None
        assert f'id="reviewer">{name}<' in client.get("/queue").text
    fresh = httpx.Client(base_url=url)
    nonce = re.search(r'name="csrf" value="([^"]+)"', fresh.get("/login").text).group(1)
    refused = fresh.post("/login", data={"token": "not-a-token", "csrf": nonce})
    assert refused.status_code == 403 and "unknown token" in refused.text
    assert "quarry_session" not in fresh.cookies
    assert fresh.post("/api/next").status_code == 401  # no session: the page goes to the login


def test_login_without_its_csrf_nonce_is_refused(run):
    _, url, token = run
    client = httpx.Client(base_url=url)
    client.get("/login")
    assert client.post("/login", data={"token": token, "csrf": "forged"}).status_code == 403
    assert "quarry_session" not in client.cookies


def test_state_changes_need_session_and_csrf_and_change_nothing_otherwise(run):
    db, url, token = run
    client, csrf = login(url, token)
    item = next_item(client, csrf)["item_id"]
    before = state(db)
    anonymous = httpx.Client(base_url=url)
    attempts = [
        anonymous.post("/api/decide", json={"item_id": item, "label": "billing"}, headers={"X-CSRF-Token": csrf}),
        client.post("/api/decide", json={"item_id": item, "label": "billing"}),
        client.post("/api/decide", json={"item_id": item, "label": "billing"}, headers={"X-CSRF-Token": "wrong"}),
        client.post("/api/decide", json={"item_id": item, "label": "billing"},
                    headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"}),
        client.post("/api/decide", content=b"not json"),
        client.post("/api/release", json={"leases": [{"item_id": item}]}),
        client.post("/logout", data={"csrf": "wrong"}),
        anonymous.post("/api/next", headers={"X-CSRF-Token": csrf}),
        client.post("/api/next"),
    ]
    # 401: no session (the page logs in again); 403: a session, but no or a wrong CSRF token, or a foreign Origin.
    assert [r.status_code for r in attempts] == [401, 403, 403, 403, 403, 403, 403, 401, 403]
    assert state(db) == before
    assert next_item(client, csrf)["item_id"] == item  # the lease survived the forged release
    ok = client.post("/api/decide", json={"item_id": item, "label": "billing"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and state(db)[0] == before[0] - 1
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert client.post("/api/next", headers={"X-CSRF-Token": csrf}).status_code == 401  # session gone server-side


def test_pages_escape_item_text_and_forbid_inline_script(run):
    db, url, token = run
    client, csrf = login(url, token)
    first = next_item(client, csrf)
    assert first["text"] == SCRIPT  # JSON carries it verbatim; the page puts it in textContent
    client.post("/api/decide", json={"item_id": first["item_id"], "label": "shipping"}, headers={"X-CSRF-Token": csrf})
    # The labeled item with the script now shows up in the dashboard's similar-items data and pages.
    response = client.get("/dashboard")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "<script>document" not in response.text
    eve, _ = login(url, EVE_TOKEN)  # names from the config are untrusted too
    for page in (eve.get("/queue").text, eve.get("/dashboard").text):
        assert "&lt;b&gt;eve&lt;/b&gt;" in page and "<b>eve</b>" not in page


def test_bad_label_is_refused(run):
    db, url, token = run
    client, csrf = login(url, token)
    item = next_item(client, csrf)["item_id"]
    response = client.post("/api/decide", json={"item_id": item, "label": "refund"}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 422 and "refund" in response.text


def test_twenty_reviewers_at_once_every_decision_exactly_once(tmp_path):
    db = make_review_db(tmp_path / "quarry.db", pending=200)
    with Store(db) as store:
        tokens = {f"r{n:02d}": add_reviewer(store, f"r{n:02d}") for n in range(20)}
    with running_server(db) as url:
        sessions = {name: login(url, token) for name, token in tokens.items()}
        accepted: dict[str, list[str]] = {name: [] for name in tokens}
        conflicts = []
        barrier = threading.Barrier(len(tokens))

        everything = [f"i{n:04d}" for n in range(6, 206)]
        stolen = []

        def reviewer(name: str) -> None:
            client, csrf = sessions[name]
            rng = random.Random(name)
            barrier.wait()
            while True:
                # Also try to take an item that is not ours: it must be refused, whatever its state.
                grab = client.post("/api/decide", json={"item_id": rng.choice(everything), "label": "billing"},
                                   headers={"X-CSRF-Token": csrf})
                if grab.status_code != 409:
                    stolen.append(grab.text)
                item = next_item(client, csrf)
                if item is None:
                    return
                response = client.post("/api/decide", json={"item_id": item["item_id"], "label": item["teacher_label"]},
                                       headers={"X-CSRF-Token": csrf})
                if response.status_code == 200:
                    accepted[name].append(item["item_id"])
                else:
                    assert response.status_code == 409, response.text
                    conflicts.append(response.json()["conflict"])

        threads = [threading.Thread(target=reviewer, args=(name,)) for name in tokens]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    decided = [item for items in accepted.values() for item in items]
    assert stolen == []
    assert len(decided) == 200 == len(set(decided))  # every item once, none twice
    assert sum(1 for items in accepted.values() if items) > 1  # the work really was shared
    with Store(db) as store:
        assert store.pending_count() == 0
        log = ReviewQueue(store).log()
        assert sorted(r.item_id for r in log) == sorted(decided)  # one audit record per accepted decision
        assert {r.item_id: r.reviewer for r in log} == {i: n for n, items in accepted.items() for i in items}
        human = [r for r in store.current_labels() if r.source == "human"]
        assert len(human) == 200
    print(f"20 reviewers: 200 decisions in {elapsed:.2f}s, {len(conflicts)} conflicts")


def test_quarry_serve_binds_loopback_by_default(tmp_path):
    import socket
    import subprocess
    import sys

    make_review_db(tmp_path / "quarry.db", pending=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "engine", "serve", str(tmp_path), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/login").status_code == 200
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        listening = [line for line in open("/proc/net/tcp").read().splitlines()[1:]
                     if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"]
        assert [line.split()[1] for line in listening] == [f"0100007F:{port:04X}"]  # 127.0.0.1 only
    finally:
        process.terminate()
        out = process.communicate(timeout=10)[0]
    assert f"http://127.0.0.1:{port}/" in out


def test_a_waiting_queue_mode_round_picks_up_decisions_made_in_the_app(tmp_path):
    """The loop's review step (review.wait) polls the same database the app writes; it goes on once all is decided."""
    import json

    from quarry_al.engine.config import config_from_dict
    from quarry_al.engine.phases import RunContext, review_round
    from quarry_al.engine.run_folder import RunFolder

    db = make_review_db(tmp_path / "quarry.db", pending=3, review={"wait": True, "poll_s": 0.05})
    with Store(db) as store:
        token = add_reviewer(store, "ana")
        config = config_from_dict(json.loads(store.config_json()))
    messages: list[str] = []
    finished = threading.Event()

    def loop_side() -> None:
        with Store(db) as store:
            run = RunContext(config, RunFolder(tmp_path), store, [], progress=False, log=messages.append)
            review_round(run, 0, {})
        finished.set()

    waiter = threading.Thread(target=loop_side)
    with running_server(db) as url:
        waiter.start()
        client, csrf = login(url, token)
        for _ in range(3):
            assert not finished.is_set()  # still waiting while anything is pending
            item = next_item(client, csrf)
            client.post("/api/decide", json={"item_id": item["item_id"], "label": "billing"},
                        headers={"X-CSRF-Token": csrf})
        waiter.join(timeout=20)
    assert finished.is_set() and "waiting for 3 reviews" in messages[0] and "quarry serve" in messages[0]
    with Store(db) as store:
        assert store.rounds()[0].phase == "reviewed"
        assert sum(r.source == "human" for r in store.current_labels()) == 3


def test_overlap_sends_each_item_to_two_reviewers_over_http(tmp_path):
    db = make_review_db(tmp_path / "quarry.db", pending=2, review={"overlap": 2})
    with Store(db) as store:
        tokens = {name: add_reviewer(store, name) for name in ("ana", "bo", "cy")}
    with running_server(db) as url:
        clients = {name: login(url, token) for name, token in tokens.items()}
        firsts = {name: next_item(*clients[name])["item_id"] for name in ("ana", "bo", "cy")}
        assert firsts["ana"] == firsts["bo"] != firsts["cy"]  # two slots on the first item, the third goes on
        for name, label in (("ana", "billing"), ("bo", "technical")):
            client, csrf = clients[name]
            response = client.post("/api/decide", json={"item_id": firsts["ana"], "label": label},
                                   headers={"X-CSRF-Token": csrf})
            assert response.json()["complete"] == (name == "bo")
        page = clients["cy"][0].get("/dashboard").text
        assert re.search(r"Fleiss' κ over 1 items with 2 reviewers each", page)
    with Store(db) as store:
        label = [r for r in store.current_labels() if r.item_id == firsts["ana"]][0]
        assert (label.label, label.reviewer, label.reason) == ("billing", "ana", "1 of 2 reviewers chose it")
