"""A wrong or dead teacher server fails fast and loud instead of turning into a review queue.

Against the real llama.cpp server (llama-cpp-python serving SmolLM2-135M) through the fault proxy
(tests/fault_proxy.py): the preflight names the URL, the model and the error for a closed port, a bad
key, an unknown model, a timeout and a garbage body; a server killed mid-round stops the round before
routing with its calls kept, and the round resumes once the server is back, paying for nothing twice.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, LlamaServer, free_port, llama_server_or_skip
from fault_proxy import PASS, Fault, FaultProxy, status
from quarry_al.engine.config import DataConfig, JobConfig, SplitConfig, TaskConfig
from quarry_al.engine.core.errors import QuarryError, TeacherUnavailable
from quarry_al.engine.phases import RunContext, label_round
from quarry_al.engine.run_folder import RunFolder
from quarry_al.engine.store import Store
from quarry_al.engine.teacher import build_backend
from quarry_al.engine.teacher.options import OpenAITeacherConfig
from quarry_al.engine.teacher.preflight import describe, preflight_teacher

NO_KEY = "QUARRY_TEST_NO_SUCH_API_KEY"
TASK = TaskConfig(labels=["positive", "negative", "neutral"], instruction="Classify the sentiment of the review.")
TEXTS = [f"Review {n}: " + text for n, text in enumerate([
    "I absolutely loved this movie.", "Terrible product, it broke after one day.", "The package arrived on Tuesday.",
    "Best purchase of the year.", "I hate it, never again.", "A blue phone case with two pockets.",
    "Great value and fast shipping.", "The screen cracked in a week."])]


def config(base_url: str, **overrides) -> OpenAITeacherConfig:
    return OpenAITeacherConfig(base_url=base_url, model="smollm2", api_key_env=NO_KEY, cache=False, **overrides)


def fails_with(options: OpenAITeacherConfig) -> str:
    with pytest.raises(TeacherUnavailable) as caught:
        preflight_teacher(options, TASK)
    message = str(caught.value)
    assert "\n" not in message and options.base_url in message and f"model {options.model}" in message
    return message


# -- the preflight ------------------------------------------------------------------------------

def test_preflight_passes_on_a_live_server_and_prices_its_request(proxy):
    report = preflight_teacher(config(proxy.base_url, price_input_per_mtok=1000.0), TASK)
    assert report.usage.prompt_tokens > 0 and report.detail == "answered"
    line = describe(report, config(proxy.base_url, price_input_per_mtok=1000.0))
    assert proxy.base_url in line and "not one of the run's teacher calls" in line and "cost 0.0" in line
    assert [a.body.get("max_tokens") for a in proxy.log() if a.body] == [1]  # one tiny request (after GET /models)


def test_preflight_names_url_model_and_error(proxy):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    assert "cannot connect ([Errno 111] Connection refused)" in fails_with(config(closed))
    proxy.script = [status(401)]
    assert "401 unauthorized: the server refused the key in $" + NO_KEY in fails_with(config(proxy.base_url))
    unknown = fails_with(OpenAITeacherConfig(base_url=proxy.base_url, model="no-such-model", api_key_env=NO_KEY))
    assert "does not serve this model; it serves: smollm2" in unknown
    proxy.script = [status(404), status(404)]  # a server that lists no models, and 404s the completion
    assert "404 not found" in fails_with(config(proxy.base_url))
    proxy.script = [Fault("delay", seconds=3)]
    assert "no answer within teacher.timeout_s=1 s (timeout)" in fails_with(config(proxy.base_url, timeout_s=1))
    proxy.script = [PASS, Fault("malformed")]
    assert "garbage body" in fails_with(config(proxy.base_url))


def test_quarry_run_on_a_closed_port_exits_2_before_any_work(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "engine", "run", "configs/demo.yaml", "--run-dir", str(run_dir), "--no-progress",
         "--set", "teacher.kind=openai", "--set", f"teacher.base_url={url}", "--set", "teacher.model=smollm2"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"quarry: error: teacher unavailable: {url} (model smollm2): cannot connect ([Errno 111] Connection refused)"]
    assert not run_dir.exists()  # nothing was loaded, selected or stored


# -- the breaker ----------------------------------------------------------------------------------

@pytest.fixture
def own_server():
    """A llama.cpp server of this test's own, which it kills and starts again (one thread: the session's
    server runs beside it)."""
    server = LlamaServer(llama_server_or_skip(), free_port(), threads=1)
    server.start()
    yield server
    server.close()


def make_run(tmp_path: Path, options: OpenAITeacherConfig, texts: list[str] = TEXTS) -> RunContext:
    job = JobConfig(name="breaker", task=TASK, data=DataConfig(pool="unused.jsonl", split=SplitConfig(eval_size=1)),
                    teacher=options)
    store = Store(tmp_path / "quarry.db")
    if not store.is_initialized():
        store.initialize(json.dumps(job.model_dump(mode="json")), [(f"t{i}", t, None) for i, t in enumerate(texts)], [])
        store.create_round(0, "random", [(f"t{i}", None, None, None) for i in range(len(texts))], {})
    run = RunContext(job, RunFolder(tmp_path), store, [], progress=False, log=lambda message: None)
    teacher = build_backend(options, TASK, progress=False)
    teacher.transport.backoff_initial_s = teacher.transport.backoff_jitter_s = 0.05
    run.models.teacher = teacher
    return run


def test_server_killed_mid_round_stops_it_and_resume_pays_nothing_twice(tmp_path, own_server):
    proxy = FaultProxy(own_server.base_url.rsplit("/v1", 1)[0])
    try:
        options = config(proxy.base_url, concurrency=1, max_retries=1, failed_passes=1, stop_after_failures=3)
        outcome: list[BaseException | None] = []

        def label() -> None:  # in its own thread, with its own Store (a connection stays on its thread)
            run = make_run(tmp_path, options)
            try:
                label_round(run, 0, {})
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                outcome.append(exc)
            finally:
                run.store.close()

        worker = threading.Thread(target=label)
        worker.start()
        deadline = time.monotonic() + 300
        while sum(proxy.paid().values()) < 4:
            assert worker.is_alive() and time.monotonic() < deadline, f"the round ended before the kill: {outcome!r}"
            time.sleep(0.05)
        own_server.kill()
        worker.join(timeout=300)
        error = outcome[0]
        assert isinstance(error, TeacherUnavailable) and isinstance(error, QuarryError)
        message = str(error)
        assert "\n" not in message and proxy.base_url in message and "model smollm2" in message
        assert "3 teacher calls in a row failed" in message and "calls made so far are kept" in message

        with Store(tmp_path / "quarry.db") as store:
            calls = store.teacher_calls(0)
            answered = {c.item_id for c in calls if c.error is None}
            assert len(answered) >= 4 and sum(c.error is not None for c in calls) == 3
            assert store.rounds()[0].phase == "selected"  # not routed: a dead server is no review queue
            assert store.reviews() == [] and store.current_labels() == []

        own_server.start()  # the server is back; `quarry run` would resume the round just so
        resumed = make_run(tmp_path, options)
        label_round(resumed, 0, {})
        assert resumed.store.rounds()[0].phase == "labeled"
        by_item: dict[str, list] = {}
        for call in resumed.store.teacher_calls(0):
            by_item.setdefault(call.item_id, []).append(call.error)
        assert all(errors == [None] for item, errors in by_item.items() if item in answered)  # not asked again
        assert all(errors[-1] is None for errors in by_item.values()) and len(by_item) == len(TEXTS)
        paid = proxy.paid()
        assert {text: paid.get(text, 0) for text in TEXTS} == {text: 1 for text in TEXTS}  # each paid once
        resumed.store.close()
    finally:
        proxy.close()


def test_failures_of_some_items_on_a_live_server_do_not_stop_the_round(tmp_path, proxy):
    """Item-specific failures in a row (the probe finds the server alive): the round goes on and those items
    go to people, as before."""
    for text in TEXTS[:4]:
        proxy.by_item[text] = [status(500)] * 4
    options = config(proxy.base_url, concurrency=1, max_retries=0, failed_passes=1, stop_after_failures=2)
    run = make_run(tmp_path, options, TEXTS[:5])
    label_round(run, 0, {})
    assert run.store.rounds()[0].phase == "labeled"
    reviews = {r.item_id: r.reason for r in run.store.reviews()}
    assert all(reviews[f"t{i}"].startswith("teacher failed (server)") for i in range(4))
    probes = [a for a in proxy.log() if a.item_text is None and a.body.get("max_tokens") == 1]
    assert probes  # the breaker asked the server, which answered
    run.store.close()


def test_quarry_run_stops_with_exit_2_when_every_call_fails_then_resumes(tmp_path, proxy):
    """The whole CLI: the preflight passes, then every labeling request is dropped; `quarry run` exits 2
    with one line and routes nothing; run again once requests pass, it finishes the job."""
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "engine", "run", "configs/demo.yaml", "--run-dir", str(run_dir), "--no-progress",
            "--set", "teacher.kind=openai", "--set", f"teacher.base_url={proxy.base_url}", "--set", "teacher.model=smollm2",
            "--set", f"teacher.api_key_env={NO_KEY}", "--set", "teacher.cache=false", "--set", "teacher.max_retries=0",
            "--set", "teacher.stop_after_failures=4", "--set", "loop.initial_labels=6", "--set", "loop.rounds=0",
            "--set", "loop.label_budget=null", "--set", "student.min_steps=5", "--set", "student.max_steps=5"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proxy.script = [PASS, PASS] + [Fault("drop")] * 40  # the preflight's two requests pass; then nothing does
    first = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 2, first.stderr
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("quarry: error: teacher unavailable: ") and "4 teacher calls in a row failed" in last
    with Store(run_dir / "quarry.db") as store:
        assert store.rounds()[0].phase == "selected" and store.reviews() == []
        failed_before = len(store.teacher_calls(0))
    assert failed_before == 4
    proxy.script = []
    second = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert second.returncode == 0, second.stderr
    with Store(run_dir / "quarry.db") as store:
        assert store.rounds()[0].phase == "done"
        calls = store.teacher_calls(0)
        assert sum(c.error is None for c in calls) == 6 and len(calls) == failed_before + 6
    paid = proxy.paid()
    assert all(count == 1 for text, count in paid.items() if text is not None)  # no item paid twice
