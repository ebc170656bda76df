"""OpenAITeacher against a real OpenAI-compatible server (llama-cpp-python serving SmolLM2-135M).

Faults (429, 5xx, 400, answers that are not JSON or not a label) come from a small HTTP proxy
in the test that forwards to the real server and injects them by request count.
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import astuple
from types import SimpleNamespace
from typing import get_args

import httpx
import pytest

from conftest import free_port
from quarry_al.engine.config import ConfigError, TaskConfig
from quarry_al.engine.teacher import TeacherItem, TeacherResult, build_backend
from quarry_al.engine.teacher.base import ErrorKind, prompt_hash
from quarry_al.engine.teacher.confidence import LabelConfidence, label_confidence
from quarry_al.engine.teacher.openai_compat import OpenAITeacher
from quarry_al.engine.teacher.options import OpenAITeacherConfig
from quarry_al.engine.teacher.parsing import parse_label
from quarry_al.engine.teacher.prompts import load_template, render_messages
from fault_proxy import Fault, FaultProxy, status

NO_KEY = "QUARRY_TEST_NO_SUCH_API_KEY"
TASK = TaskConfig(
    labels=["positive", "negative", "neutral"],
    instruction="Classify the sentiment of the review.",
    description="The texts are short product and movie reviews.",
)
TEXTS = [
    "I absolutely loved this movie, it was wonderful!",
    "Terrible product, it broke after one day. A waste of money.",
    "The package arrived on Tuesday.",
    "Best purchase I have made all year, highly recommended.",
    "I hate it so much, never again.",
    "It is a blue phone case with two pockets.",
]
ITEMS = [TeacherItem(item_id=f"t{i}", text=text) for i, text in enumerate(TEXTS)]


def make_teacher(base_url: str, **overrides) -> OpenAITeacher:
    config = OpenAITeacherConfig(base_url=base_url, model="smollm2", api_key_env=NO_KEY, **overrides)
    teacher = build_backend(config, TASK)  # the bare backend: no cache between these tests
    assert isinstance(teacher, OpenAITeacher)
    teacher.transport.backoff_initial_s = 0.1  # keep the retry tests short
    teacher.transport.backoff_jitter_s = 0.1
    return teacher


def check_result(result: TeacherResult) -> None:
    """The contract of every result: a label of the set with a confidence, or a typed error."""
    if result.error is None:
        assert result.label in TASK.label_names
        assert result.confidence is None or 0 < result.confidence <= 1
    else:
        assert result.error in get_args(ErrorKind)
        assert result.label is None and result.confidence is None
        assert result.error_message


# -- against the real server --------------------------------------------------------------------

def test_labels_real_texts(llama_server, monkeypatch):
    monkeypatch.delenv(NO_KEY, raising=False)
    teacher = make_teacher(llama_server, concurrency=4)
    seen: list[tuple[int, TeacherResult]] = []
    results = teacher.label(ITEMS, on_result=lambda position, result: seen.append((position, result)))
    teacher.close()

    assert len(results) == len(ITEMS)
    assert sorted(position for position, _ in seen) == list(range(len(ITEMS)))  # once per item
    for position, result in seen:
        assert results[position] is result
    template = load_template("classify.j2")
    for item, result in zip(ITEMS, results):
        check_result(result)
        # The grammar keeps the answer inside the label set, and the server returns logprobs.
        assert result.ok, result
        assert json.loads(result.raw)["label"] == result.label
        assert result.confidence is not None and 0 < result.confidence <= 1
        if result.distribution is not None:
            assert set(result.distribution) <= set(TASK.label_names)
            assert math.isclose(sum(result.distribution.values()), 1.0)
        assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
        assert result.latency_s > 0
        # In input order: each result carries the key of its own item's prompt.
        messages = render_messages(template, TASK, item.text, output="json")
        assert result.prompt_hash == prompt_hash(teacher.model_id, json.dumps(messages), teacher.params)
    assert len({r.prompt_hash for r in results}) == len(ITEMS)
    assert teacher.model_id == f"openai:smollm2@{llama_server}"


def test_concurrency_does_not_change_labels(llama_server):
    serial = make_teacher(llama_server, concurrency=1, temperature=0.0).label(ITEMS)
    parallel = make_teacher(llama_server, concurrency=4, temperature=0.0).label(ITEMS)
    assert [r.label for r in serial] == [r.label for r in parallel]
    assert all(r.ok for r in serial + parallel)


def test_label_from_inside_a_running_event_loop(llama_server):
    teacher = make_teacher(llama_server)

    async def caller() -> list[TeacherResult]:
        return teacher.label(ITEMS[:2])

    results = asyncio.run(caller())
    assert [r.ok for r in results] == [True, True]


def test_closed_port_gives_connection_errors_without_raising():
    teacher = make_teacher(f"http://127.0.0.1:{free_port()}/v1", max_retries=1, timeout_s=2.0)
    started = time.monotonic()
    results = teacher.label(ITEMS[:3])
    assert time.monotonic() - started < 20
    assert [r.error for r in results] == ["connection"] * 3
    for result in results:
        check_result(result)
        assert "after 2 attempts" in result.error_message


def test_missing_api_key_without_base_url_raises_one_line(monkeypatch):
    monkeypatch.delenv(NO_KEY, raising=False)
    config = OpenAITeacherConfig(model="gpt-4o-mini", api_key_env=NO_KEY)
    with pytest.raises(ConfigError) as caught:
        OpenAITeacher(config, TASK)
    message = str(caught.value)
    assert NO_KEY in message and "\n" not in message

    monkeypatch.setenv(NO_KEY, "sk-test")
    teacher = OpenAITeacher(config, TASK)  # no request is made here
    assert teacher.model_id == "openai:gpt-4o-mini@api.openai.com"


# -- faults, injected by a proxy in front of the real server --------------------------------------

def test_server_error_then_success_is_retried(proxy):
    proxy.script = [status(500)]
    [result] = make_teacher(proxy.base_url, max_retries=2).label(ITEMS[:1])
    assert result.ok, result
    assert entries(proxy)[0] == ("status", 500)
    assert entries(proxy)[-1] == ("pass", 200)


def test_rate_limit_honours_retry_after(proxy):
    proxy.script = [status(429, Retry_After="1")]
    started = time.monotonic()
    [result] = make_teacher(proxy.base_url, max_retries=2).label(ITEMS[:1])
    assert result.ok, result
    assert time.monotonic() - started >= 1.0
    assert entries(proxy)[0] == ("status", 429)


def test_server_errors_exhaust_retries(proxy):
    proxy.script = [status(503)] * 3
    [result] = make_teacher(proxy.base_url, max_retries=2).label(ITEMS[:1])
    check_result(result)
    assert result.error == "server"
    assert entries(proxy) == [("status", 503)] * 3


def test_client_error_is_not_retried(proxy):
    proxy.script = [status(400)] * 5
    [result] = make_teacher(proxy.base_url, max_retries=3).label(ITEMS[:1])
    check_result(result)
    assert result.error == "other"
    assert "400" in result.error_message
    assert entries(proxy) == [("status", 400)]  # one request, no retry


def entries(proxy: FaultProxy) -> list[tuple[str, int | None]]:
    """(fault, status) of every request, in arrival order."""
    return [(a.fault, a.status) for a in proxy.log()]


def rewrite(content: str) -> Fault:
    return Fault("rewrite", content=content)


def answered(proxy: FaultProxy) -> list[tuple[str, int | None]]:
    """The proxy's log less llama-cpp-python's one 500 refusing the json_schema response format
    (the teacher then switches to the server's own form)."""
    return [entry for entry in entries(proxy) if entry != ("pass", 500)]


def test_answer_that_is_not_json_is_unparsable_after_a_stricter_retry(proxy):
    proxy.script = [rewrite("Sure! The sentiment is positive."), rewrite("It is positive.")]
    [result] = make_teacher(proxy.base_url).label(ITEMS[:1])
    check_result(result)
    assert result.error == "unparsable"
    assert "stricter prompt" in result.error_message
    # Both answers are kept for the reviewer, in order.
    assert result.raw.index("Sure! The sentiment is positive.") < result.raw.index("It is positive.")
    assert result.usage.prompt_tokens > 0  # the calls were paid for, and say so
    assert answered(proxy) == [("rewrite", 200), ("rewrite", 200)]
    # The stricter follow-up carries the first answer and names the problem.
    follow_up = proxy.log()[-1].body["messages"]
    assert follow_up[-2] == {"role": "assistant", "content": "Sure! The sentiment is positive."}
    assert "not JSON" in follow_up[-1]["content"] and "positive, negative, neutral" in follow_up[-1]["content"]


def test_label_outside_the_set_is_asked_again_and_then_answered(proxy):
    proxy.script = [rewrite('{"label": "mixed"}')]
    [result] = make_teacher(proxy.base_url).label(ITEMS[:1])
    check_result(result)
    assert result.ok, result  # the real server answered the stricter prompt inside the set
    assert answered(proxy) == [("rewrite", 200), ("pass", 200)]
    assert "'mixed' is not one of" in proxy.log()[-1].body["messages"][-1]["content"]


def test_label_outside_the_set_twice_is_out_of_set(proxy):
    proxy.script = [rewrite('{"label": "mixed"}'), rewrite('{"label": "unsure"}')]
    [result] = make_teacher(proxy.base_url).label(ITEMS[:1])
    check_result(result)
    assert result.error == "out_of_set"
    assert '{"label": "mixed"}' in result.raw and '{"label": "unsure"}' in result.raw


def test_fenced_answer_in_other_case_is_accepted(proxy):
    proxy.script = [rewrite('```json\n{"label": "Negative"}\n```')]
    [result] = make_teacher(proxy.base_url).label(ITEMS[:1])
    assert result.ok and result.label == "negative"
    assert result.confidence is None  # the rewritten answer has no logprobs: unknown, not 0
    assert result.confidence_note == "the response has no token logprobs"  # and the result says why


def test_logprobs_off_says_why_there_is_no_confidence(proxy):
    [result] = make_teacher(proxy.base_url, logprobs=False).label(ITEMS[:1])
    assert result.ok and result.confidence is None
    assert result.confidence_note == "teacher.logprobs is false: no logprobs asked for"


# -- parsing and token alignment (pure functions) --------------------------------------------------

def test_parse_label_leniency_is_harmless():
    labels = TASK.label_names
    assert parse_label(' {"label": "neutral"} \n', labels) == ("neutral", None, "")
    assert parse_label('{"label": "POSITIVE"}', labels)[0] == "positive"
    assert parse_label('{"label": "positive!"}', labels)[1] == "out_of_set"
    assert parse_label('{"answer": "positive"}', labels)[1] == "unparsable"
    assert parse_label(' Positive\n', labels)[0] == "positive"  # a bare label (vLLM's guided_choice)
    assert parse_label('positive, I think', labels)[1] == "unparsable"
    assert parse_label(None, labels)[1] == "unparsable"
    assert parse_label(' Positive\n', labels, bare=False)[1] == "unparsable"  # when more than the label is asked


def test_teacher_parses_answers_with_parse_label():
    """The teacher's own parsing is parse_label's, plus the confidence a verbalized answer must carry."""
    plain = make_teacher("http://127.0.0.1:9/v1")
    for answer in (' {"label": "neutral"} \n', '{"label": "POSITIVE"}', '{"label": "positive!"}', " Positive\n", None):
        label, data, error, message = plain._parse(answer)
        assert (label, error, message) == parse_label(answer, TASK.label_names) and data is None
    verbalized = make_teacher("http://127.0.0.1:9/v1", confidence="verbalized")
    assert verbalized._parse('{"label": "Positive", "confidence": 80}') == (
        "positive", {"label": "Positive", "confidence": 80}, None, "")
    assert verbalized._parse(" positive ")[2] == "unparsable"  # a bare label has no confidence
    assert verbalized._parse('{"label": "positive"}')[2:] == (
        "unparsable", "\"confidence\" is missing or not a number: None")
    assert verbalized._parse('{"label": "happy", "confidence": 80}')[2] == "out_of_set"


def _token(text: str, logprob: float, top: list[tuple[str, float]] = ()):
    return SimpleNamespace(token=text, logprob=logprob,
                           top_logprobs=[SimpleNamespace(token=t, logprob=lp) for t, lp in top])


def test_label_confidence_walks_tokens_across_the_value():
    labels = TASK.label_names
    # '{"label": "positive"}' split so that tokens straddle the value's quotes.
    content = [
        _token('{"', -0.1), _token("label", -0.1), _token('":', -0.1),
        _token(' "pos', -0.5, [(' "pos', -0.5), (' "neg', -1.5), (' "ne', -2.0), ("I", -3.0)]),
        _token("itive", -0.2), _token('"}', -0.1),
    ]
    confidence, distribution, reason = astuple(label_confidence(content, "positive", labels))
    assert math.isclose(confidence, math.exp(-0.7)) and reason == ""  # joint probability of ' "pos' + 'itive' only
    # ' "ne' could begin negative or neutral: not attributed; "I" cannot be a label.
    assert set(distribution) == {"positive", "negative"}
    expected = math.exp(-0.7) / (math.exp(-0.7) + math.exp(-1.5))
    assert math.isclose(distribution["positive"], expected)

    bare = [_token("neg", -0.4, [("neg", -0.4), ("pos", -1.2)]), _token("ative", -0.1)]
    confidence, distribution, _ = astuple(label_confidence(bare, "negative", labels))
    assert math.isclose(confidence, math.exp(-0.5))
    assert math.isclose(distribution["positive"], math.exp(-1.2) / (math.exp(-0.5) + math.exp(-1.2)))
    no_top = [_token('{"label": "', -0.1), _token("neutral", -0.3), _token('"}', -0.1)]
    confidence, distribution, _ = astuple(label_confidence(no_top, "neutral", labels))
    assert math.isclose(confidence, math.exp(-0.3)) and distribution is None


def test_every_missing_logprob_confidence_has_its_reason():
    labels = TASK.label_names

    def reason(content, label="positive") -> str:
        measured = label_confidence(content, label, labels)
        assert measured.confidence is None and measured.distribution is None
        return measured.reason

    assert reason(None) == reason([]) == "the response has no token logprobs"
    assert reason([_token('{"answer": "', -0.1), _token("positive", -0.2), _token('"}', -0.1)]) == \
        "the logprob tokens do not spell the answer's label"
    assert reason([_token('{"label": ""}', -0.1)]) == "the label's string is empty in the logprob tokens"
    for broken in (None, float("nan"), float("-inf")):
        assert reason([_token('{"label": "', -0.1), _token("positive", broken), _token('"}', -0.1)]) == \
            "a token of the label has no finite logprob"
    masked = reason([_token('{"label": "', -0.1), _token("positive", -9999.0), _token('"}', -0.1)])
    assert masked == "the label's tokens have logprob -9999: masked by the server, not measured"
    assert label_confidence([_token("positive", -0.2)], "positive", labels) == LabelConfidence(math.exp(-0.2))


def test_a_programming_error_raises_instead_of_failing_the_item(monkeypatch):
    """Only the transport's and the API's exceptions become an item's error; a bug stops the batch."""
    teacher = make_teacher("http://127.0.0.1:9/v1", max_retries=0)

    async def request(*args, **kwargs):
        raise error

    monkeypatch.setattr(teacher.transport, "_request", request)
    for error in (TypeError("a bug"), KeyError("choices")):
        with pytest.raises(type(error)):
            teacher.label(ITEMS[:2])
    # Network errors the SDK did not wrap are still the item's, typed.
    error = httpx.ConnectError("refused")
    assert [r.error for r in teacher.label(ITEMS[:2])] == ["connection", "connection"]
    error = asyncio.TimeoutError()
    assert teacher.label(ITEMS[:1])[0].error == "timeout"


def test_bare_label_answer_is_taken(proxy):
    """What a server constrained by vLLM's guided_choice answers: the label and nothing else."""
    proxy.script = [rewrite("negative")]
    [result] = make_teacher(proxy.base_url).label(ITEMS[:1])
    assert result.ok and result.label == "negative"
    assert answered(proxy) == [("rewrite", 200)]  # no stricter retry was needed
