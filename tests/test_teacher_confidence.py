"""Confidence methods of the chat teacher, on the real llama.cpp server (requests seen at a
proxy), and their pure parts on hand-made inputs; the token bucket on a fake clock."""
from __future__ import annotations

import asyncio
import json
import math
from types import SimpleNamespace

import pytest

from quarry_al.engine.config import TaskConfig
from quarry_al.engine.teacher import TeacherItem, build_backend
from quarry_al.engine.teacher.confidence import majority_vote, p_true, verbalized_confidence
from quarry_al.engine.teacher.openai_compat import OpenAITeacher
from quarry_al.engine.teacher.options import OpenAITeacherConfig
from quarry_al.engine.teacher.ratelimit import TokenBucket
from fault_proxy import Fault, FaultProxy

TASK = TaskConfig(labels=["positive", "negative", "neutral"], instruction="Classify the sentiment.",
                  description="Short reviews.")
ITEMS = [TeacherItem(f"k{i}", text) for i, text in enumerate(["I love this phone, it is perfect.",
                                                              "Awful. It broke and support ignored me."])]


def make(proxy: FaultProxy, **overrides) -> OpenAITeacher:
    config = OpenAITeacherConfig(base_url=proxy.base_url, model="smollm2", api_key_env="QUARRY_TEST_NO_SUCH_API_KEY",
                                 cache=False, **overrides)
    teacher = build_backend(config, TASK, progress=False)
    assert isinstance(teacher, OpenAITeacher)
    return teacher


def answered(proxy: FaultProxy) -> list[dict]:
    """Bodies of the requests the server answered with 200 (not llama-cpp-python's one refusal of json_schema)."""
    return [a.body for a in proxy.forwarded() if a.status == 200]


def test_self_consistency_samples_k_answers_and_reports_agreement(proxy):
    results = make(proxy, confidence="self_consistency", samples=4, sample_temperature=1.0).label(ITEMS)
    bodies = answered(proxy)
    assert len(bodies) == 4 * len(ITEMS)
    assert sorted(b["seed"] for b in bodies) == sorted(list(range(4)) * len(ITEMS))
    assert all(b["temperature"] == 1.0 and "logprobs" not in b for b in bodies)
    for result in results:
        assert result.ok and result.confidence_method == "self_consistency"
        assert result.confidence in (0.25, 0.5, 0.75, 1.0)  # agreement of k=4 samples
        assert result.distribution[result.label] == max(result.distribution.values())
        assert math.isclose(sum(result.distribution.values()), 1.0)
        assert len(json.loads(result.raw)) == 4  # every sample's answer is kept
        assert result.usage.completion_tokens >= 4  # all samples paid for


def test_self_consistency_votes_on_the_samples_that_arrived(proxy):
    proxy.by_item[ITEMS[0].text] = [Fault("status", status=500)]  # one of its 3 samples fails, with no retry
    [result] = make(proxy, confidence="self_consistency", samples=3, max_retries=0).label(ITEMS[:1])
    assert result.ok, result
    assert len(json.loads(result.raw)) == 2 and result.confidence in (0.5, 1.0)
    assert len(answered(proxy)) == 2  # the two good answers were paid once, and used

    proxy.by_item[ITEMS[0].text] = [Fault("status", status=500)] * 2  # most samples fail: the item fails
    [result] = make(proxy, confidence="self_consistency", samples=3, max_retries=0).label(ITEMS[:1])
    assert result.error == "server" and result.label is None


def test_verbalized_asks_for_a_number_and_reads_it(proxy):
    results = make(proxy, confidence="verbalized").label(ITEMS)
    first = answered(proxy)[0]
    assert "confidence" in first["messages"][-1]["content"]
    assert first["response_format"]["schema"]["required"] == ["label", "confidence"]
    for result in results:
        assert result.confidence_method == "verbalized"
        if result.ok:  # a 135M model may fail to give a usable number even under the grammar
            stated = json.loads(result.raw)["confidence"]
            assert result.confidence == pytest.approx(stated / 100)
        else:
            assert result.error == "unparsable" and result.label is None and result.raw


def test_p_true_asks_a_second_question(proxy):
    results = make(proxy, confidence="p_true").label(ITEMS)
    bodies = answered(proxy)
    assert len(bodies) == 2 * len(ITEMS)
    verifications = [b for b in bodies if "response_format" not in b]
    assert len(verifications) == len(ITEMS)
    for body in verifications:
        assert body["max_tokens"] == 1 and body["logprobs"] and body["top_logprobs"] == 20
        assert body["messages"][-2]["role"] == "assistant"
        assert "Proposed label:" in body["messages"][-1]["content"]
    for result in results:
        assert result.ok and result.confidence_method == "p_true"
        assert result.confidence is None or 0 <= result.confidence <= 1
        assert (result.confidence is None) == bool(result.confidence_note)  # an unknown confidence says why
    assert any(r.confidence is not None for r in results)  # SmolLM2 does put True/False among its top tokens


def test_logprobs_method_is_recorded(proxy):
    [result] = make(proxy).label(ITEMS[:1])
    assert result.ok and result.confidence_method == "logprobs" and result.confidence is not None


# -- pure parts ------------------------------------------------------------------------------------

def test_majority_vote_counts_failed_samples_against_agreement():
    labels = ["a", "b", "c"]
    vote = majority_vote(["b", "a", "b", None], labels)
    assert (vote.label, vote.confidence) == ("b", 0.5)
    assert vote.distribution == {"b": 2 / 3, "a": 1 / 3}
    assert majority_vote(["c", "a"], labels).label == "a"  # a tie goes to the label listed first
    assert majority_vote([None, None], labels) == majority_vote([], labels)
    assert majority_vote([None], labels).label is None


def test_verbalized_confidence_bounds():
    assert verbalized_confidence({"confidence": 85}) == (0.85, "")
    assert verbalized_confidence({"confidence": 0})[0] == 0.0  # a stated 0 is a measured value
    for bad in ({"confidence": 101}, {"confidence": "high"}, {}, {"confidence": True}, {"confidence": float("nan")}):
        value, problem = verbalized_confidence(bad)
        assert value is None and problem


def _tok(token: str, logprob: float, top=()):
    return SimpleNamespace(token=token, logprob=logprob, top_logprobs=[SimpleNamespace(token=t, logprob=l) for t, l in top])


def test_p_true_normalises_true_against_false():
    content = [_tok("True", -0.2, [("True", -0.2), (" true", -2.0), ("False", -1.0), ("Yes", -3.0)])]
    expected = (math.exp(-0.2) + math.exp(-2.0)) / (math.exp(-0.2) + math.exp(-2.0) + math.exp(-1.0))
    assert p_true(content).confidence == pytest.approx(expected) and p_true(content).reason == ""
    unseen = p_true([_tok("Maybe", -0.1, [("Maybe", -0.1), ("Yes", -1.0)])])
    assert unseen.confidence is None and "neither True nor False" in unseen.reason
    for empty in (None, []):
        assert p_true(empty).confidence is None and "without logprobs" in p_true(empty).reason


def test_token_bucket_spacing_and_debt():
    now = [0.0]
    bucket = TokenBucket(per_minute=120, clock=lambda: now[0])  # 2 per second, holds 2
    assert bucket.delay_for(1) == 0
    asyncio.run(bucket.acquire(2))  # two taken at once, no wait
    assert bucket.delay_for(1) == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.delay_for(1) == 0
    tokens = TokenBucket(per_minute=600, clock=lambda: now[0])  # 10 per second, holds 10
    asyncio.run(tokens.acquire(40))  # bigger than the bucket: taken when full, leaving it 30 in debt
    assert tokens.delay_for(5) == pytest.approx(3.5)
    tokens.settle(estimated=40, actual=20)  # it used fewer: the difference comes back
    assert tokens.delay_for(5) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        TokenBucket(per_minute=0)


def test_extra_body_goes_on_labeling_requests_only(proxy):
    [result] = make(proxy, confidence="p_true", extra_body={"top_k": 1}).label(ITEMS[:1])
    assert result.ok
    label_request, verify_request = answered(proxy)
    assert label_request["top_k"] == 1 and "response_format" in label_request
    # The yes/no check must not be held to the label set by, e.g., vLLM's guided_choice.
    assert "top_k" not in verify_request and "response_format" not in verify_request
