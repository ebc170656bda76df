"""Failure handling of the chat teacher against the real llama.cpp server, through a proxy that
injects faults (tests/fault_proxy.py): every item ends labeled or recorded as failed, none is
lost, none is paid twice; Retry-After is honoured; a 400 is not retried; rate limits space the
requests; the loop asks transiently failed items again and records every call."""
from __future__ import annotations

import json
import time
from typing import get_args


from quarry_al.engine.config import DataConfig, JobConfig, SplitConfig, TaskConfig
from quarry_al.engine.phases import RunContext, label_round
from quarry_al.engine.run_folder import RunFolder
from quarry_al.engine.store import Store
from quarry_al.engine.teacher import TeacherItem, TeacherResult, build_backend
from quarry_al.engine.teacher.base import ErrorKind
from quarry_al.engine.teacher.openai_compat import OpenAITeacher
from quarry_al.engine.teacher.options import OpenAITeacherConfig
from fault_proxy import Fault, status

NO_KEY = "QUARRY_TEST_NO_SUCH_API_KEY"
TASK = TaskConfig(labels=["positive", "negative", "neutral"], instruction="Classify the sentiment of the review.",
                  description="The texts are short product and movie reviews.")
TEXTS = [
    "I absolutely loved this movie, it was wonderful!",
    "Terrible product, it broke after one day.",
    "The package arrived on Tuesday.",
    "Best purchase I have made all year.",
    "I hate it so much, never again.",
    "It is a blue phone case with two pockets.",
    "Great value and fast shipping.",
    "The screen cracked in a week.",
]
ITEMS = [TeacherItem(f"t{i}", text) for i, text in enumerate(TEXTS)]


def teacher_config(base_url: str, **overrides) -> OpenAITeacherConfig:
    return OpenAITeacherConfig(base_url=base_url, model="smollm2", api_key_env=NO_KEY, cache=False, **overrides)


def make_teacher(base_url: str, **overrides) -> OpenAITeacher:
    teacher = build_backend(teacher_config(base_url, **overrides), TASK, progress=False)
    assert isinstance(teacher, OpenAITeacher)
    teacher.transport.backoff_initial_s = 0.05  # short backoff: the tests measure Retry-After, not the backoff
    teacher.transport.backoff_jitter_s = 0.05
    return teacher


def label_all(teacher: OpenAITeacher, items: list[TeacherItem]) -> list[TeacherResult]:
    """Label, checking that each position is reported exactly once and matches the returned list."""
    seen: dict[int, TeacherResult] = {}

    def on_result(position: int, result: TeacherResult) -> None:
        assert position not in seen, f"item {position} reported twice"
        seen[position] = result

    results = teacher.label(items, on_result=on_result)
    assert len(results) == len(items) and sorted(seen) == list(range(len(items)))
    assert all(seen[i] is results[i] for i in range(len(items)))
    return results


def test_every_fault_kind_ends_labeled_none_lost_none_paid_twice(proxy):
    # One of each fault, in front of the first requests; the last two are for one item: it
    # fails for good (max_retries=2 gives 3 tries), and is recorded so, not lost.
    doomed = TEXTS[5]
    proxy.script = [status(429, Retry_After="0"), status(500), Fault("drop"), Fault("malformed"), status(503)]
    proxy.by_item[doomed] = [status(502), status(502), status(502)]
    results = label_all(make_teacher(proxy.base_url, concurrency=3, max_retries=2), ITEMS)

    for item, result in zip(ITEMS, results):
        if item.text == doomed:
            assert result.error == "server" and result.label is None and result.confidence is None
            assert "after 3 attempts" in result.error_message
        else:
            assert result.ok, (item, result)
            assert result.label in TASK.label_names
    paid = proxy.paid()
    # Each labeled item was answered by the server exactly once; the doomed one never reached it.
    assert paid == {text: 1 for text in TEXTS if text != doomed}
    faults = [a.fault for a in proxy.log()]
    assert faults.count("drop") == 1 and faults.count("malformed") == 1
    assert [a.status for a in proxy.log() if a.item_text == doomed] == [502, 502, 502]


def test_timeout_is_retried_and_then_reported(proxy):
    slow = TEXTS[0]
    # A timeout long enough for the real answer on a loaded machine; the held request outlasts it.
    proxy.by_item[slow] = [Fault("delay", seconds=15.5)]
    teacher = make_teacher(proxy.base_url, timeout_s=15.0, max_retries=1, concurrency=1)
    [result] = label_all(teacher, ITEMS[:1])
    assert result.ok, result  # the second try passed
    assert [a.fault for a in proxy.log() if a.item_text == slow][:1] == ["delay"]
    assert proxy.paid() == {slow: 1}

    proxy.by_item[slow] = [Fault("delay", seconds=1.5)] * 2
    [result] = label_all(make_teacher(proxy.base_url, timeout_s=1.0, max_retries=1), ITEMS[:1])
    assert result.error == "timeout" and result.label is None
    assert "after 2 attempts" in result.error_message
    assert proxy.paid() == {slow: 1}  # nothing more was paid


def test_retry_after_is_honoured(proxy):
    proxy.script = [status(429, Retry_After="2")]
    [result] = label_all(make_teacher(proxy.base_url, max_retries=2), ITEMS[:1])
    assert result.ok, result
    first, second = proxy.log()[0], proxy.log()[1]
    assert first.status == 429
    assert second.at - first.at >= 2.0  # the backoff alone would be ~0.1 s


def test_client_error_is_not_retried(proxy):
    proxy.script = [status(400)] * 3
    [result] = label_all(make_teacher(proxy.base_url, max_retries=3), ITEMS[:1])
    assert result.error == "other" and "400" in result.error_message
    assert [a.status for a in proxy.log()] == [400]


def test_requests_per_minute_spaces_requests(proxy):
    # Warm the teacher's response-format choice first (llama-cpp-python refuses json_schema once).
    teacher = make_teacher(proxy.base_url, concurrency=4, requests_per_minute=60)
    label_all(teacher, ITEMS[:1])
    proxy.arrivals.clear()
    started = time.monotonic()
    results = label_all(teacher, ITEMS[1:5])
    assert all(r.ok for r in results)
    times = sorted(a.at for a in proxy.log())
    assert len(times) == 4
    # 60 per minute: one per second, whatever the concurrency (a little slack for the clock).
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.9, gaps
    assert time.monotonic() - started >= 2.9


def test_tokens_per_minute_slows_requests(proxy):
    teacher = make_teacher(proxy.base_url, concurrency=4)
    label_all(teacher, ITEMS[:1])  # settle the response format; no limits yet
    prompt = sum(len(m["content"]) for m in teacher.messages(TEXTS[1])) / 4 + teacher.config.max_tokens
    # The bucket holds one second's worth, half a request: each request waits for refills.
    limited = make_teacher(proxy.base_url, concurrency=4, tokens_per_minute=prompt * 30)
    limited.transport.response_format_mode = teacher.transport.response_format_mode
    proxy.arrivals.clear()
    label_all(limited, ITEMS[1:4])
    times = sorted(a.at for a in proxy.log())
    assert times[-1] - times[0] >= 1.5, times


# -- the loop: failed calls are recorded, asked again, and routed ---------------------------------

def _run(tmp_path, teacher_cfg: OpenAITeacherConfig, name: str = "faults") -> RunContext:
    config = JobConfig(name=name, task=TASK, data=DataConfig(pool="unused.jsonl", split=SplitConfig(eval_size=1)),
                       teacher=teacher_cfg)
    store = Store(tmp_path / name / "quarry.db")
    store.initialize(json.dumps(config.model_dump(mode="json")), [(i.item_id, i.text, None) for i in ITEMS[:4]], [])
    store.create_round(0, "random", [(i.item_id, None, None, None) for i in ITEMS[:4]], {})
    logs: list[str] = []
    return RunContext(config, RunFolder(tmp_path / name), store, [], progress=False, log=logs.append)


def test_loop_asks_failed_items_again_then_routes_the_rest(tmp_path, proxy):
    flaky, dead = TEXTS[1], TEXTS[2]
    proxy.by_item[flaky] = [status(500)] * 2  # fails the first pass (max_retries=1), passes the second
    proxy.by_item[dead] = [status(503)] * 4  # fails both passes
    run = _run(tmp_path, teacher_config(proxy.base_url, max_retries=1, failed_passes=1))
    run.models.teacher = make_teacher(proxy.base_url, max_retries=1)
    label_round(run, 0, {})

    calls = run.store.teacher_calls(0)
    by_item: dict[str, list] = {}
    for call in calls:
        by_item.setdefault(call.item_id, []).append(call.error)
    assert by_item == {"t0": [None], "t1": ["server", None], "t2": ["server", "server"], "t3": [None]}
    assert proxy.paid() == {TEXTS[0]: 1, flaky: 1, TEXTS[3]: 1}
    # Every item of the round is either an accepted label or a pending review: none is lost.
    labeled = {r.item_id for r in run.store.current_labels()}
    reviewed = {r.item_id: r for r in run.store.reviews()}
    assert labeled | set(reviewed) == {"t0", "t1", "t2", "t3"} and not labeled & set(reviewed)
    assert reviewed["t2"].reason.startswith("teacher failed (server)")
    assert all(c.result.confidence_method == "logprobs" for c in calls)
    run.store.close()


def test_loop_resume_asks_only_transient_failures(tmp_path, proxy):
    run = _run(tmp_path, teacher_config(proxy.base_url, max_retries=0, failed_passes=0))
    run.models.teacher = make_teacher(proxy.base_url, max_retries=0)
    # A kill after the calls were recorded: t0 labeled, t1 unparsable (an answer: not asked again),
    # t2 timed out (transport: asked again); t3 never asked.
    ok = TeacherResult(label="positive", confidence=0.9, prompt_hash="h")
    run.store.record_teacher_call("t0", 0, run.models.teacher.model_id, ok)
    run.store.record_teacher_call("t1", 0, run.models.teacher.model_id,
                                  TeacherResult(label=None, confidence=None, raw="meh", error="unparsable",
                                                error_message="answer is not JSON"))
    run.store.record_teacher_call("t2", 0, run.models.teacher.model_id,
                                  TeacherResult(label=None, confidence=None, error="timeout", error_message="slow"))
    label_round(run, 0, {})
    assert proxy.paid() == {TEXTS[2]: 1, TEXTS[3]: 1}
    latest = run.store.latest_teacher_calls(0)
    assert latest["t1"].error == "unparsable" and latest["t2"].error is None and latest["t3"].error is None
    run.store.close()


def test_error_kinds_are_the_typed_ones():
    assert {"timeout", "rate_limit", "server", "connection", "bad_response", "unparsable", "out_of_set",
            "other"} == set(get_args(ErrorKind))
