"""The store package on real SQLite files: every module's operations, typed rows only, rollback, reopening."""
import dataclasses
import json
import sqlite3

import pytest

from quarry_al.engine.store import (SCHEMA_VERSION, DecisionRecord, Item, LabelRow, ReviewRow, RoundRow, SelectionRow,
                                    Session, SettledReview, Store, StoreError, TeacherCall)
from quarry_al.engine.store.call_cache import CallCacheFile
from quarry_al.engine.teacher.base import TeacherResult, Usage
from reviewdb import make_review_db


def _no_raw_rows(value) -> bool:
    """True when nothing in `value` (recursively) is a sqlite3.Row or a tuple standing in for one."""
    if isinstance(value, sqlite3.Row):
        return False
    if dataclasses.is_dataclass(value):
        return all(_no_raw_rows(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return all(_no_raw_rows(k) and _no_raw_rows(v) for k, v in value.items())
    if isinstance(value, (list, set)):
        return all(_no_raw_rows(v) for v in value)
    return not isinstance(value, tuple)


@pytest.fixture
def run(tmp_path):
    """A small run by hand: 4 pool items and a seed label; round 1 selects 3, accepts 1, sends 2 to review."""
    with Store(tmp_path / "run" / "quarry.db") as store:  # the folder is made on open
        assert not store.is_initialized()
        with pytest.raises(StoreError, match="not an initialized run database"):
            store.config_json()
        store.initialize('{"name": "t"}', [(f"p{n}", f"pool text {n}", "a" if n % 2 else "b") for n in range(4)],
                         [("s0", "seed text", "a")])
        store.create_round(1, "random", [("p2", 0.9, "a", 0.6), ("p0", 0.5, "b", 0.7), ("p1", None, None, None)],
                           {"select": 1.0})
        for item, label, conf in (("p2", "b", 0.95), ("p0", "b", 0.4), ("p1", None, None)):
            result = TeacherResult(label=label, confidence=conf, distribution={"a": 0.1, "b": 0.9} if label else None,
                                   raw="{}", usage=Usage(10, 2), error=None if label else "timeout",
                                   prompt_hash="h", latency_s=0.5, cost=0.01, confidence_method="logprobs")
            store.record_teacher_call(item, 1, "m1", result)
        store.record_teacher_call("p0", 1, "m2", TeacherResult(label="a", confidence=0.5, cached=True))
        store.commit_routing(1, accepted=[("p2", "b", 0.95, "confident")],
                             to_review=[{"item_id": item, "reason": "unsure", "teacher_label": "a",
                                         "teacher_confidence": 0.5, "teacher_raw": "{}", "student_label": "b",
                                         "student_confidence": 0.7} for item in ("p0", "p1")],
                             timings={"select": 1.0, "label": 2.0})
        yield store


def test_setup_items_and_meta(run):
    assert run.is_initialized() and json.loads(run.config_json()) == {"name": "t"}
    assert run.meta("schema_version") == str(SCHEMA_VERSION)
    run.set_meta("k", "v")
    run.set_meta("k", "w")
    assert run.meta("k") == "w" and run.meta("missing") is None
    pool = run.pool_items()
    assert [i.item_id for i in pool] == ["p0", "p1", "p2", "p3"] and all(isinstance(i, Item) for i in pool)
    assert pool[1] == Item(pos=2, item_id="p1", text="pool text 1", gold="a", origin="pool")
    assert set(run.items_by_id(["p3", "s0", "nope"])) == {"p3", "s0"}
    assert run.items_by_id(["s0"])["s0"].origin == "seed"
    assert run.requested_ids() == {"s0", "p0", "p1", "p2"} and run.items_requested() == 3


def test_rounds_phases_and_selection(run):
    selection = run.selection(1)
    assert [s.item_id for s in selection] == ["p2", "p0", "p1"] and all(isinstance(s, SelectionRow) for s in selection)
    assert (selection[0].rank, selection[0].utility, selection[0].student_label, selection[0].text) == (0, 0.9, "a", "pool text 2")
    opened = run.open_round()
    assert isinstance(opened, RoundRow) and (opened.phase, opened.timings) == ("labeled", {"select": 1.0, "label": 2.0})
    assert run.history() == []
    run.set_phase(1, "done", metrics={"eval_accuracy": 0.5})
    assert run.open_round() is None and run.history() == [{"eval_accuracy": 0.5}]
    run.set_stop_reason("budget")
    assert run.rounds()[0].stop_reason == "budget" and run.meta("stop_reason") == "budget"


def test_teacher_calls_come_back_with_their_results(run):
    calls = run.teacher_calls(1)
    assert len(calls) == 4 and all(isinstance(c, TeacherCall) for c in calls)
    first = calls[0]
    assert (first.item_id, first.model, first.label, first.error) == ("p2", "m1", "b", None)
    assert first.result.distribution == {"a": 0.1, "b": 0.9} and first.result.usage == Usage(10, 2)
    assert first.result.confidence_method == "logprobs" and not first.result.cached
    assert calls[2].error == "timeout" and calls[2].label is None
    latest = run.latest_teacher_calls()
    assert latest["p0"].model == "m2" and latest["p0"].result.cached
    assert run.teacher_calls(2) == [] and run.teacher_models() == {"p2": "m1", "p0": "m2", "p1": "m1"}
    usage = run.teacher_usage()
    assert (usage["calls"], usage["cached"], usage["failed"], usage["prompt_tokens"]) == (4, 1, 1, 30)
    assert usage["cost"] == pytest.approx(0.03) and run.teacher_usage(7)["calls"] == 0


def test_labels_are_append_only_and_current_is_latest(run):
    assert run.label_counts() == {"seed": 1, "teacher": 1, "human": 0}
    current = run.current_labels()
    assert [(r.item_id, r.label, r.source) for r in current] == [("p2", "b", "teacher"), ("s0", "a", "seed")]
    assert all(isinstance(r, LabelRow) for r in current) and current[0].gold == "b"
    before = run.latest_label_id()
    with run.review_transaction() as tx:
        tx.add_human_label("p2", "a", 1, "checked", "ana", 5.0)
    assert run.latest_label_id() == before + 1
    assert [(r.label, r.source) for r in run.label_history("p2")] == [("b", "teacher"), ("a", "human")]
    assert len(run.label_history()) == 3 and run.label_counts() == {"seed": 1, "teacher": 0, "human": 1}


def test_review_reads_and_a_failed_transaction_leaves_nothing(run):
    pending = run.reviews(status="pending")
    assert [r.item_id for r in pending] == ["p0", "p1"] and all(isinstance(r, ReviewRow) for r in pending)
    assert run.review("p0") == pending[0] and run.review("p2") is None
    assert run.pending_count() == 2 and run.pending_count(1) == 2 and run.pending_count(2) == 0
    assert run.reviews(round_=2) == [] and run.review_counts() == {"pending": 2}
    with pytest.raises(RuntimeError, match="refused"):
        with run.review_transaction() as tx:
            tx.append_decision("p0", "ana", "accept", "a", {"teacher_label": "a"}, None, "test", 1.0)
            tx.settle("p0", "decided", 1.0)
            raise RuntimeError("refused")
    assert run.review_log() == [] and run.review_counts() == {"pending": 2}


def test_leases_decisions_and_settled_reviews(run):
    with run.review_transaction() as tx:
        assert tx.next_open_item("ana", now=10.0, overlap=1) == "p0"
        tx.put_lease("p0", "ana", 10.0, 70.0)
        assert tx.held_lease("ana", 20.0) == "p0" and tx.held_lease("ana", 20.0, exclude=["p0"]) is None
        assert tx.live_leases("ana", 20.0) == 1 and tx.live_leases("ana", 80.0) == 0
        assert tx.next_open_item("bo", now=20.0, overlap=1) == "p1"  # p0 is held
        assert tx.next_open_item("bo", now=80.0, overlap=1) == "p0"  # ana's lease has expired
        assert tx.other_holders("p0", "bo", 20.0) == ["ana"] and tx.lease_expiry("p0", "ana") == 70.0
    assert run.leased_count(20.0) == 1 and run.leased_count(80.0) == 0
    run.release_lease("ana", "p0", expires_at=69.0)  # not that lease: it stays
    assert run.leased_count(20.0) == 1
    run.release_lease("ana", "p0")
    assert run.leased_count(20.0) == 0
    with run.review_transaction() as tx:
        first = tx.append_decision("p0", "ana", "relabel", "b", {"teacher_label": "a"}, None, "test", 30.0)
        tx.add_human_label("p0", "b", 1, "test review (relabel)", "ana", 30.0)
        tx.settle("p0", "decided", 30.0)
        skip = tx.append_decision("p1", "ana", "skip", None, {"teacher_label": "a"}, None, "test", 31.0)
        tx.settle("p1", "skipped", 31.0)
        fix = tx.append_decision("p0", "ana", "accept", "a", {"teacher_label": "a"}, first.id, "test", 32.0)
        assert [d.id for d in tx.current_decisions("p0")] == [fix.id]
        assert tx.latest_label("p0").source == "human" and tx.latest_label("p3") is None
    assert isinstance(fix, DecisionRecord) and fix.supersedes == first.id
    assert run.review_log() == [first, skip, fix]  # the correction appends; nothing is overwritten
    assert run.current_decisions() == [skip, fix] and run.current_decisions("p0") == [fix]
    assert run.previous_decision("ana") == fix and run.previous_decision("ana", before=fix.id).item_id == "p1"
    assert run.previous_decision("bo") is None
    settled = run.settled_reviews()
    assert settled == [SettledReview("p0", "decided", "a", 0.5, "b"), SettledReview("p1", "skipped", "a", 0.5, None)]
    assert run.review_counts() == {"decided": 1, "skipped": 1}


def test_reviewer_tokens_and_sessions_are_hashes(run):
    run.set_reviewer_token("ana", "hash-1", 1.0)
    run.add_session("sid-1", "ana", "csrf-1", expires_at=100.0, now=1.0)
    assert run.reviewer_with_token("hash-1") == "ana" and run.session("sid-1", 50.0) == Session("ana", "csrf-1")
    assert run.session("sid-1", 101.0) is None  # expired
    run.set_reviewer_token("ana", "hash-2", 2.0)  # a new token ends the old sessions
    assert run.reviewer_with_token("hash-1") is None and run.session("sid-1", 50.0) is None
    run.set_reviewer_token("bo", "hash-3", 3.0)
    assert [(r.name, r.token_hash) for r in run.reviewers()] == [("ana", "hash-2"), ("bo", "hash-3")]
    run.add_session("sid-2", "bo", "c2", expires_at=10.0, now=3.0)
    run.add_session("sid-3", "bo", "c3", expires_at=200.0, now=20.0)  # opening one drops those expired
    run.add_session("sid-2", "bo", "c2", expires_at=300.0, now=20.0)  # so its id is free again
    run.delete_session("sid-3")
    assert run.session("sid-3", 21.0) is None and run.session("sid-2", 21.0) == Session("bo", "c2")


def test_every_read_returns_typed_rows(tmp_path):
    from quarry_al.engine.review.queue import ReviewQueue

    with Store(make_review_db(tmp_path / "q.db", pending=3)) as store:
        queue = ReviewQueue(store)
        lease = queue.lease("ana")
        queue.decide("ana", lease.item.item_id, "billing", via="t")
        store.set_reviewer_token("ana", "h", 1.0)
        store.add_session("s", "ana", "c", 10.0, 1.0)
        reads = [store.pool_items(), store.items_by_id(["i0000"]), store.requested_ids(), store.rounds(),
                 store.open_round(), store.history(), store.selection(0), store.teacher_calls(),
                 store.latest_teacher_calls(), store.teacher_usage(), store.teacher_models(), store.reviews(),
                 store.review("i0006"), store.current_labels(), store.label_counts(), store.label_history(),
                 store.review_counts(), store.settled_reviews(), store.review_log(), store.current_decisions(),
                 store.previous_decision("ana"), store.reviewers(), store.session("s", 2.0)]
        assert all(_no_raw_rows(r) for r in reads)


def test_reopening_keeps_the_version_and_the_data(tmp_path):
    path = make_review_db(tmp_path / "q.db", pending=2)
    for _ in range(2):
        with Store(path) as store:
            assert store.meta("schema_version") == str(SCHEMA_VERSION) and store.pending_count() == 2


def test_call_cache_file(tmp_path):
    cache = CallCacheFile(tmp_path / "cache.db")
    assert cache.get("k") is None and cache.count() == 0
    cache.put("k", "m", '{"label": "a"}', 1.0)
    cache.put("k", "m", '{"label": "b"}', 2.0)  # the newer answer replaces the older
    assert cache.get("k") == '{"label": "b"}' and cache.count() == 1
    cache.close()
