"""The teacher-call cache and prices: a rerun pays nothing twice, errors are never cached, and
the run database records cached calls and cost. Against the real llama.cpp server, counting
the requests that reach it at a proxy."""
from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

from quarry_al.engine.config import ConfigError, DataConfig, JobConfig, SplitConfig, TaskConfig
from quarry_al.engine.metrics import round_metrics
from quarry_al.engine.phases import RunContext, label_round
from quarry_al.engine.run_folder import RunFolder
from quarry_al.engine.report import status_text
from quarry_al.engine.store import Store
from quarry_al.engine.teacher import TeacherItem, TeacherResult, build_teacher
from quarry_al.engine.teacher.base import Usage, call_cost
from quarry_al.engine.teacher.cache import CachingTeacher, TeacherCache, default_cache_path, fallback_key
from quarry_al.engine.teacher.options import LocalTeacherConfig, OpenAITeacherConfig
from fault_proxy import status

NO_KEY = "QUARRY_TEST_NO_SUCH_API_KEY"
TASK = TaskConfig(labels=["positive", "negative", "neutral"], instruction="Classify the sentiment.",
                  description="Short reviews.")
ITEMS = [TeacherItem(f"c{i}", text) for i, text in enumerate([
    "Loved it, five stars.", "Broke on day one.", "It is a box.", "Would buy again!"])]
PRICES = dict(price_input_per_mtok=2.0, price_output_per_mtok=8.0)


def config(base_url: str, cache_path, **overrides) -> OpenAITeacherConfig:
    settings = dict(base_url=base_url, model="smollm2", api_key_env=NO_KEY, cache_path=str(cache_path),
                    max_retries=0, **PRICES)
    return OpenAITeacherConfig(**{**settings, **overrides})


def test_second_run_makes_no_request_and_pays_nothing(tmp_path, proxy):
    cache_file = tmp_path / "cache.db"
    first = build_teacher(config(proxy.base_url, cache_file), TASK, progress=False)
    results = first.label(ITEMS)
    first.close()
    assert all(r.ok and not r.cached for r in results), [(r.label, r.error, r.error_message, r.raw) for r in results]
    for r in results:
        assert r.cost == pytest.approx(call_cost(r.usage, 2.0, 8.0)) and r.cost > 0
    paid_once = proxy.paid()
    assert sum(paid_once.values()) == len(ITEMS)

    proxy.arrivals.clear()
    second = build_teacher(config(proxy.base_url, cache_file), TASK, progress=False)  # a new process, in effect
    seen: list[int] = []
    again = second.label(ITEMS, on_result=lambda position, _: seen.append(position))
    second.close()
    assert proxy.log() == []  # not one request reached the server
    assert sorted(seen) == list(range(len(ITEMS)))
    for before, after in zip(results, again):
        assert after.cached and after.cost == 0.0
        assert (after.label, after.confidence, after.raw, after.prompt_hash) == (
            before.label, before.confidence, before.raw, before.prompt_hash)
        assert after.usage == before.usage  # what the answer cost when it was paid for


def test_cache_key_covers_model_prompt_sampling_and_method(tmp_path, proxy):
    cache_file = tmp_path / "cache.db"
    build_teacher(config(proxy.base_url, cache_file), TASK, progress=False).label(ITEMS[:1])
    proxy.arrivals.clear()
    base_key = build_teacher(config(proxy.base_url, cache_file), TASK, progress=False).key(ITEMS[0])
    (tmp_path / "mine.j2").write_text("### system\nLabel it: {{ label_names | join(', ') }}. JSON only.\n"
                                      "### user\nText: {{ text }}\n")
    for changed in (dict(temperature=0.5), dict(confidence="verbalized"), dict(model="smollm2-other"),
                    dict(prompt=str(tmp_path / "mine.j2")), dict(extra_body={"top_k": 5})):
        teacher = build_teacher(config(proxy.base_url, cache_file, **changed), TASK, progress=False)
        assert teacher.key(ITEMS[0]) != base_key, changed
    # Concurrency, prices and retries say how to pay and wait, not what is answered: same key.
    same = build_teacher(config(proxy.base_url, cache_file, concurrency=9, price_input_per_mtok=5.0), TASK,
                         progress=False)
    assert same.key(ITEMS[0]) == build_teacher(config(proxy.base_url, cache_file), TASK, progress=False).key(ITEMS[0])
    [hit] = same.label(ITEMS[:1])
    assert hit.cached and proxy.log() == []


def test_openai_key_covers_logprobs_and_the_cache_version(tmp_path, monkeypatch):
    """No server needed: the key is computed from the config and the rendered prompt alone."""
    from quarry_al.engine.teacher import cache as teacher_cache
    from quarry_al.engine.teacher.openai_compat import OpenAITeacher

    def key(**overrides) -> str:
        return OpenAITeacher(config("http://127.0.0.1:9/v1", tmp_path / "cache.db", **overrides), TASK,
                             progress=False).cache_key(ITEMS[0])

    base = key()
    assert key(logprobs=False) != base  # no logprobs: no confidence, a different result
    assert key(top_logprobs=2) != base  # fewer alternatives: a different distribution
    # Self-consistency never asks for logprobs, so they do not split its cache.
    assert key(confidence="self_consistency", logprobs=False) == key(confidence="self_consistency")
    monkeypatch.setattr(teacher_cache, "CACHE_VERSION", teacher_cache.CACHE_VERSION + 1)
    assert key() != base


def test_errors_are_never_cached(tmp_path, proxy):
    cache_file = tmp_path / "cache.db"
    proxy.by_item[ITEMS[0].text] = [status(400)]
    [failed, fine] = build_teacher(config(proxy.base_url, cache_file), TASK, progress=False).label(ITEMS[:2])
    assert failed.error == "other" and fine.ok
    assert len(TeacherCache(cache_file)) == 1
    proxy.arrivals.clear()
    [retried, hit] = build_teacher(config(proxy.base_url, cache_file), TASK, progress=False).label(ITEMS[:2])
    assert retried.ok and not retried.cached and hit.cached
    assert proxy.paid() == {ITEMS[0].text: 1}  # only the item that had failed was asked again


def test_cache_false_always_asks(tmp_path, proxy):
    teacher_config = config(proxy.base_url, tmp_path / "cache.db", cache=False)
    for _ in range(2):
        build_teacher(teacher_config, TASK, progress=False).label(ITEMS[:2])
    assert sum(proxy.paid().values()) == 4
    assert not (tmp_path / "cache.db").exists()


def test_new_run_dir_records_cached_calls_and_no_cost(tmp_path, proxy):
    """Two runs of the same job in different run folders: the second pays nothing, and says so."""
    cache_file = tmp_path / "cache.db"
    usage = {}
    for name in ("first", "second"):
        job = JobConfig(name=name, task=TASK, data=DataConfig(pool="unused.jsonl", split=SplitConfig(eval_size=1)),
                        teacher=config(proxy.base_url, cache_file))
        store = Store(tmp_path / name / "quarry.db")
        store.initialize(json.dumps(job.model_dump(mode="json")), [(i.item_id, i.text, None) for i in ITEMS], [])
        store.create_round(0, "random", [(i.item_id, None, None, None) for i in ITEMS], {})
        label_round(RunContext(job, RunFolder(tmp_path / name), store, [], progress=False, log=lambda _: None), 0, {})
        calls = store.teacher_calls(0)
        usage[name] = store.teacher_usage()
        assert len(calls) == len(ITEMS)
        metrics = round_metrics(store, 0, {"accuracy": 0.0, "macro_f1": 0.0}, {})
        assert metrics["teacher_cost"] == pytest.approx(sum(c.result.cost for c in calls))
        assert metrics["round_teacher_cached"] == metrics["teacher_cached"] == usage[name]["cached"]
        status = status_text(store)
        assert f"teacher: {len(ITEMS)} calls ({usage[name]['cached']} from the cache, 0 failed)" in status
        assert f"cost {usage[name]['cost']:.4f}" in status
        if name == "second":
            assert all(c.result.cached and c.result.cost == 0 for c in calls)
        store.close()
    assert sum(proxy.paid().values()) == len(ITEMS)
    assert usage["first"]["cached"] == 0 and usage["first"]["cost"] > 0 and usage["first"]["prompt_tokens"] > 0
    assert usage["second"] == {"calls": len(ITEMS), "cached": len(ITEMS), "failed": 0, "prompt_tokens": 0,
                               "completion_tokens": 0, "cost": 0.0}


class _Counting:
    """A backend without `cache_key` (as the local teacher is): counts what it is asked."""

    model_id = "counting"

    def __init__(self, config, task):
        self.config, self.task, self.asked = config, task, []

    def label(self, items, on_result=None):
        results = []
        for position, item in enumerate(items):
            self.asked.append(item.text)
            result = TeacherResult(label="positive", confidence=0.7, usage=Usage(100, 0))
            results.append(result)
            if on_result is not None:
                on_result(position, result)
        return results

    def close(self):
        pass


def test_backend_without_cache_key_is_cached_by_its_config_and_text(tmp_path):
    """The wrapper works for any backend; this one stands in for the local model, whose real run
    is covered in test_teacher_local.py (loading it here would cost half a minute)."""
    cache = TeacherCache(tmp_path / "cache.db")
    local = LocalTeacherConfig(cache_path=str(tmp_path / "cache.db"))
    backend = _Counting(local, TASK)
    wrapped = CachingTeacher(backend, cache, price_input_per_mtok=1.0, confidence_method="label_likelihood")
    first = wrapped.label(ITEMS[:2])
    assert [r.cost for r in first] == [pytest.approx(1e-4)] * 2
    assert {r.confidence_method for r in first} == {"label_likelihood"}
    second = wrapped.label(ITEMS)
    assert backend.asked == [i.text for i in ITEMS[:2]] + [i.text for i in ITEMS[2:]]
    assert [r.cached for r in second] == [True, True, False, False]
    other = _Counting(local.model_copy(update={"calibrate": False}), TASK)
    assert fallback_key(other, ITEMS[0]) != fallback_key(backend, ITEMS[0])
    assert fallback_key(_Counting(local.model_copy(update={"device": "cuda"}), TASK), ITEMS[0]) == \
        fallback_key(backend, ITEMS[0])
    assert dataclasses.replace(second[0], cached=False, cost=first[0].cost, latency_s=first[0].latency_s) == first[0]


def test_default_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("QUARRY_TEACHER_CACHE", str(tmp_path / "x.db"))
    assert default_cache_path() == tmp_path / "x.db"
    monkeypatch.delenv("QUARRY_TEACHER_CACHE")
    assert default_cache_path().parts[-3:] == (".cache", "quarry", "teacher-cache.db")


def test_old_run_database_gets_the_new_call_columns(tmp_path):
    path = tmp_path / "quarry.db"
    with sqlite3.connect(path) as conn:  # teacher_calls as it was before cost and cache were recorded
        conn.execute("CREATE TABLE teacher_calls (id INTEGER PRIMARY KEY, item_id TEXT NOT NULL, round INTEGER NOT NULL, "
                     "model TEXT NOT NULL, prompt_hash TEXT NOT NULL, label TEXT, confidence REAL, distribution TEXT, "
                     "raw TEXT NOT NULL, error TEXT, error_message TEXT NOT NULL DEFAULT '', prompt_tokens INTEGER "
                     "NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0, latency_s REAL NOT NULL "
                     "DEFAULT 0, created_at REAL NOT NULL)")
        conn.execute("INSERT INTO teacher_calls (item_id, round, model, prompt_hash, raw, prompt_tokens, created_at) "
                     "VALUES ('a', 0, 'm', 'h', '', 10, 0)")
    with Store(path) as store:
        [old] = store.teacher_calls()
        assert (old.result.cached, old.result.cost, old.result.confidence_method) == (False, 0, "")
        assert store.teacher_usage() == {"calls": 1, "cached": 0, "failed": 0, "prompt_tokens": 10,
                                         "completion_tokens": 0, "cost": 0.0}


def test_template_source_is_what_load_template_renders(tmp_path):
    from quarry_al.engine.teacher.prompts import load_template, template_source

    mine = tmp_path / "mine.j2"
    mine.write_text("Label: {{ text }}")
    assert template_source(str(mine)) == "Label: {{ text }}"
    assert load_template(str(mine)).render(text="x") == "Label: x"
    assert "{{" in template_source("classify.j2")  # a file of the prompts package
    assert template_source(str(tmp_path / "missing.j2")) is None
    with pytest.raises(ConfigError, match="teacher.prompt: template not found"):
        load_template(str(tmp_path / "missing.j2"))


def test_entries_from_before_the_confidence_note_still_load(tmp_path):
    cache = TeacherCache(tmp_path / "cache.db")
    noted = TeacherResult(label="positive", confidence=None, raw='{"label": "positive"}', usage=Usage(10, 3),
                          confidence_method="logprobs", confidence_note="the response has no token logprobs")
    assert cache.put("new", "m", noted) and cache.get("new") == noted
    cache.close()
    # An entry as a Quarry without confidence_note wrote it, straight into the file (sqlite3: the old writer).
    with sqlite3.connect(tmp_path / "cache.db") as conn:
        old = {k: v for k, v in json.loads(conn.execute("SELECT result FROM calls").fetchone()[0]).items()
               if k != "confidence_note"}
        conn.execute("INSERT INTO calls VALUES (?, ?, ?, ?)", ("old", "m", json.dumps(old), 0.0))
    cache = TeacherCache(tmp_path / "cache.db")
    assert cache.get("old") == dataclasses.replace(noted, confidence_note="")
    cache.close()
