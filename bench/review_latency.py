"""Review web app: key press to next item shown, and many reviewers deciding at once.

Builds run databases with the real Store from the demo support messages (configs/demo_data), serves
each with `quarry serve` in its own process, then
  1. drives headless Chromium (Debian's chromium via playwright) through scripted sessions of
     --items decisions (mostly Enter, some number keys and skips), one pressing keys as fast as the
     driver can and one pausing --pace-ms before each key like a reader, and reads in the page the
     time from the key event to the next item in the DOM and to the first animation frame after it;
     it also reports the interval as the driver sees it (press -> item id changed, via playwright);
  2. lets --reviewers threads with httpx each log in and decide until the queue is empty, every
     reviewer also trying to decide a random item it does not hold, then audits the database:
     every accepted decision has exactly one audit record and one human label, none twice, none lost.

    .venv/bin/python bench/review_latency.py [--items 200] [--reviewers 20] [--pending 600]
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import socket
import statistics
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

LABELS = ["billing", "shipping", "technical", "account", "feedback"]


def build_db(path: Path, pending: int, labeled: int = 60) -> list[str]:
    texts = [json.loads(line) for line in (REPO / "configs/demo_data/pool.jsonl").read_text().splitlines()]
    rows = [(f"b{n:05d}", texts[n % len(texts)]["text"] + ("" if n < len(texts) else f" (#{n})"),
             texts[n % len(texts)]["label"]) for n in range(labeled + pending)]
    config = {"name": "review-bench", "task": {"labels": LABELS, "instruction": "Classify."},
              "data": {"pool": "pool.jsonl", "eval": "eval.jsonl"}, "review": {"mode": "queue"}}
    rng = random.Random(0)
    with Store(path) as store:
        store.initialize(json.dumps(config), rows, [])
        store.create_round(0, "random", [(r[0], None, rng.choice(LABELS), 0.5) for r in rows], {})
        store.commit_routing(
            0, accepted=[(r[0], r[2], 0.95, "bench") for r in rows[:labeled]],
            to_review=[{"item_id": r[0], "reason": "teacher confidence below 0.80", "teacher_label": r[2],
                        "teacher_confidence": round(rng.uniform(0.3, 0.79), 2), "teacher_raw": json.dumps({"label": r[2]}),
                        "student_label": rng.choice(LABELS), "student_confidence": 0.5} for r in rows[labeled:]],
            timings={})
    return [r[0] for r in rows[labeled:]]


class Server:
    """`quarry serve` in its own process, so the browser driver and the server do not share a GIL."""

    def __init__(self, run_dir: Path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "engine", "serve", str(run_dir), "--port", str(self.port)],
                                        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/login")
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("quarry serve did not start")
                time.sleep(0.1)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def browser_session(run_dir: Path, items: int, pace_ms: int) -> dict:
    from playwright.sync_api import sync_playwright

    with Store(run_dir / "quarry.db") as store:
        token = add_reviewer(store, "bench")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    server = Server(run_dir)
    keys = ["Enter"] * 6 + ["2", "4", "s"]
    driver_ms = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_context(bypass_csp=True).new_page()
            page.goto(f"{server.url}/login")
            page.fill("#token", token)
            page.click("#login")
            page.wait_for_selector("#card:not([hidden])")
            for n in range(items):
                page.wait_for_timeout(pace_ms)  # a reviewer reads before pressing; 0: as fast as the driver goes
                before = page.get_attribute("#card", "data-item-id")
                started = time.perf_counter()
                page.keyboard.press(keys[n % len(keys)])
                page.wait_for_function("b => document.querySelector('#card').dataset.itemId !== b", arg=before)
                driver_ms.append((time.perf_counter() - started) * 1000)
            page.wait_for_function(f"window.quarryTimings.length >= {items}")
            page.wait_for_function(f"document.querySelector('#done').textContent === '{items}'")
            in_page = page.evaluate("window.quarryTimings")
            in_dom = page.evaluate("window.quarryDomTimings")
            misses = page.evaluate("window.quarryPrefetchMisses")
            browser.close()
    finally:
        server.close()
    with Store(run_dir / "quarry.db") as store:
        recorded = len(store.review_log())
    return {"items": items, "pace_ms": pace_ms, "decisions_recorded": recorded, "prefetch_misses": misses,
            "in_dom_ms": summary(in_dom), "in_page_ms": summary(in_page),
            "driver_ms": summary(driver_ms)}


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p95": ordered[max(0, round(0.95 * len(ordered)) - 1)],
            "max": ordered[-1], "n": len(ordered)}


def concurrency(run_dir: Path, item_ids: list[str], reviewers: int) -> dict:
    with Store(run_dir / "quarry.db") as store:
        tokens = {f"r{n:02d}": add_reviewer(store, f"r{n:02d}") for n in range(reviewers)}
    server = Server(run_dir)
    accepted: dict[str, list[str]] = {name: [] for name in tokens}
    conflicts, refused, wrongly_allowed = [], [0], []
    lock = threading.Lock()
    try:
        clients = {}
        for name, token in tokens.items():
            client = httpx.Client(base_url=server.url, timeout=60)
            nonce = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
            client.post("/login", data={"token": token, "csrf": nonce})
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/queue").text).group(1)
            clients[name] = (client, csrf)
        barrier = threading.Barrier(reviewers + 1)

        def work(name: str) -> None:
            client, csrf = clients[name]
            rng = random.Random(name)
            barrier.wait()
            while (item := client.post("/api/next", headers={"X-CSRF-Token": csrf}).json()["item"]) is not None:
                other = rng.choice([i for i in item_ids[:50] if i != item["item_id"]] if rng.random() < 0.5 else
                                   [i for i in item_ids if i != item["item_id"]])  # half: contested, early items
                grab = client.post("/api/decide", json={"item_id": other, "label": "billing"},
                                   headers={"X-CSRF-Token": csrf})
                response = client.post("/api/decide", json={"item_id": item["item_id"], "label": item["teacher_label"]},
                                       headers={"X-CSRF-Token": csrf})
                with lock:
                    if grab.status_code == 409:
                        refused[0] += 1
                    else:
                        wrongly_allowed.append(grab.text)
                    if response.status_code == 200:
                        accepted[name].append(item["item_id"])
                    else:
                        conflicts.append(response.text)

        threads = [threading.Thread(target=work, args=(name,)) for name in tokens]
        for t in threads:
            t.start()
        barrier.wait()
        started = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        server.close()
    decided = [i for items in accepted.values() for i in items]
    with Store(run_dir / "quarry.db") as store:
        log = [(r.item_id, r.reviewer) for r in store.review_log()]
        human = {r.item_id for r in store.current_labels() if r.source == "human"}
        pending = store.pending_count()
    owner = {i: n for n, items in accepted.items() for i in items}
    lost = len([i for i in decided if i not in human]) + len([1 for i, who in log if owner.get(i) != who])
    return {"reviewers": reviewers, "items": len(item_ids), "decisions": len(decided),
            "distinct_items": len(set(decided)), "seconds": elapsed, "decisions_per_s": len(decided) / elapsed,
            "requests_per_s": (len(decided) + refused[0] + len(wrongly_allowed) + len(conflicts)
                               + len(decided) + len(conflicts) + reviewers) / elapsed,  # next + grab + decide
            "conflicts_on_own_items": len(conflicts), "foreign_grabs_refused": refused[0],
            "foreign_grabs_allowed": len(wrongly_allowed), "audit_records": len(log), "lost": lost,
            "still_pending": pending}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--pending", type=int, default=600, help="items in the concurrency run")
    parser.add_argument("--pace-ms", type=int, nargs="+", default=[0, 300],
                        help="pause before each key press, one session per value")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "review_latency.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sessions = []
        for pace in args.pace_ms:
            session_dir = Path(tmp) / f"browser-{pace}"
            build_db(session_dir / "quarry.db", pending=args.items + 10)
            sessions.append(browser_session(session_dir, args.items, pace))
        crowd_dir = Path(tmp) / "crowd"
        crowd = concurrency(crowd_dir, build_db(crowd_dir / "quarry.db", pending=args.pending), args.reviewers)
    print(f"\nKey press -> next item shown: scripted headless Chromium sessions of {args.items} decisions")
    print(f"{'pause before each key':<22}{'measured':<36}{'median ms':>10}{'p95 ms':>10}{'max ms':>10}{'not prefetched':>16}")
    for latency in sessions:
        for name, key in (("in page: key event -> item in DOM", "in_dom_ms"),
                          ("in page: key event -> next frame", "in_page_ms"),
                          ("driver: press -> id changed", "driver_ms")):
            stats = latency[key]
            print(f"{str(latency['pace_ms']) + ' ms':<22}{name:<36}{stats['median']:>10.1f}{stats['p95']:>10.1f}"
                  f"{stats['max']:>10.1f}{latency['prefetch_misses']:>16}")
        assert latency["decisions_recorded"] == args.items
    print(f"\nConcurrency: {crowd['reviewers']} reviewers (threads, httpx) on {crowd['items']} items")
    print(f"{'decisions':>10}{'distinct':>10}{'seconds':>9}{'dec/s':>8}{'conflicts':>11}{'grabs refused':>15}"
          f"{'grabs allowed':>15}{'lost':>6}{'pending':>9}")
    print(f"{crowd['decisions']:>10}{crowd['distinct_items']:>10}{crowd['seconds']:>9.2f}{crowd['decisions_per_s']:>8.1f}"
          f"{crowd['conflicts_on_own_items']:>11}{crowd['foreign_grabs_refused']:>15}{crowd['foreign_grabs_allowed']:>15}"
          f"{crowd['lost']:>6}{crowd['still_pending']:>9}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"latency": sessions, "concurrency": crowd, "cpu_count": __import__("os").cpu_count()},
                              indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
