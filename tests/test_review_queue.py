"""The shared review queue on a real SQLite run database: leases, conflicts, corrections, overlap, migration."""
import sqlite3
import threading

import pytest
from sklearn.metrics import cohen_kappa_score

from quarry_al.engine.core.stats import cohen_kappa, fleiss_kappa
from quarry_al.engine.review.agreement import agreement
from quarry_al.engine.review.queue import Conflict, ReviewQueue, final_label
from quarry_al.engine.store import SCHEMA_VERSION, Store
from reviewdb import LABELS, make_review_db


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def store(tmp_path):
    with Store(make_review_db(tmp_path / "quarry.db", pending=4)) as store:
        yield store


def test_two_reviewers_never_get_the_same_item(store):
    queue = ReviewQueue(store)
    a, b = queue.lease("ana", max_held=1), queue.lease("bo", max_held=1)
    assert a.item.item_id != b.item.item_id
    assert queue.lease("ana", max_held=1).item.item_id == a.item.item_id  # asking again returns the held item
    with pytest.raises(Conflict, match="leased to bo"):
        queue.decide("ana", b.item.item_id, "billing", via="test", require_lease=False)
    with pytest.raises(Conflict, match="not leased to you"):
        queue.decide("ana", b.item.item_id, "billing", via="test")
    assert store.pending_count() == 4


def test_prefetch_holds_two_and_no_more(store):
    queue = ReviewQueue(store)
    first = queue.lease("ana")
    second = queue.lease("ana", exclude=[first.item.item_id])
    assert second.item.item_id != first.item.item_id
    assert queue.lease("ana", exclude=[first.item.item_id, second.item.item_id]) is None


def test_expired_lease_goes_to_the_next_reviewer_and_the_late_decision_is_refused(store):
    clock = Clock()
    queue = ReviewQueue(store, lease_s=60, clock=clock)
    held = queue.lease("ana", max_held=1).item.item_id
    clock.now += 61
    assert queue.lease("bo", max_held=1).item.item_id == held
    with pytest.raises(Conflict, match="now leased to bo .your lease expired"):
        queue.decide("ana", held, "billing", via="test")
    queue.decide("bo", held, "shipping", via="test")
    assert {r.item_id: r.label for r in store.current_labels()}[held] == "shipping"


def test_expired_but_untaken_lease_still_decides(store):
    clock = Clock()
    queue = ReviewQueue(store, lease_s=60, clock=clock)
    held = queue.lease("ana", max_held=1).item.item_id
    clock.now += 3600
    assert queue.decide("ana", held, "billing", via="test").complete


def test_decision_is_an_audit_record_and_a_correction_appends(store):
    queue = ReviewQueue(store)
    item = queue.lease("ana", max_held=1).item
    first = queue.decide("ana", item.item_id, item.teacher_label, via="web")
    assert first.record.kind == "accept" and first.complete
    assert first.record.shown["teacher_confidence"] == item.teacher_confidence
    assert first.record.shown["student_label"] == item.student_label
    with pytest.raises(Conflict, match="already decided it; correct it instead"):
        queue.decide("ana", item.item_id, "billing", via="web", require_lease=False)
    other = next(x for x in LABELS if x != item.teacher_label)
    fixed = queue.correct("ana", item.item_id, other, via="web")
    assert fixed.record.kind == "relabel" and fixed.record.supersedes == first.record.id
    assert [r.label for r in queue.log()] == [item.teacher_label, other]  # nothing overwritten
    history = store.label_history(item.item_id)
    assert [(r.label, r.source) for r in history][-2:] == [(item.teacher_label, "human"), (other, "human")]
    assert queue.previous_decision("ana").id == fixed.record.id
    with pytest.raises(Conflict, match="choose a label, not a skip"):
        queue.correct("ana", item.item_id, None, via="web")
    with pytest.raises(Conflict, match="no decision on it to correct"):
        queue.correct("bo", item.item_id, "billing", via="web")


def test_skip_completes_without_a_label_and_can_be_corrected_to_one(store):
    queue = ReviewQueue(store)
    item = queue.lease("ana").item
    assert queue.decide("ana", item.item_id, None, via="web").final_label is None
    assert item.item_id not in {r.item_id for r in store.current_labels() if r.source == "human"}
    assert store.reviews(status="skipped")[0].item_id == item.item_id
    queue.correct("ana", item.item_id, "technical", via="web")
    assert store.reviews(status="decided")[0].item_id == item.item_id


def test_overlap_needs_distinct_reviewers_then_takes_the_majority(tmp_path):
    with Store(make_review_db(tmp_path / "q.db", pending=1)) as store:
        queue = ReviewQueue(store, overlap=3)
        leases = [queue.lease(name, max_held=1) for name in ("ana", "bo", "cy")]
        assert len({lease.item.item_id for lease in leases}) == 1  # one item, three reviewers
        assert queue.lease("dee") is None  # three slots taken
        item = leases[0].item.item_id
        assert not queue.decide("ana", item, "billing", via="t").complete
        assert queue.lease("ana") is None  # never the same item twice to one reviewer
        assert not queue.decide("bo", item, "shipping", via="t").complete
        outcome = queue.decide("cy", item, "shipping", via="t")
        assert outcome.complete and outcome.final_label == "shipping"
        label = [r for r in store.current_labels() if r.item_id == item][0]
        assert (label.label, label.reviewer, label.reason) == ("shipping", "bo+cy", "2 of 3 reviewers chose it")
        assert queue.correct("ana", item, "shipping", via="t").final_label == "shipping"
        assert len([r for r in store.label_history(item) if r.source == "human"]) == 1


def test_final_label_majority_skips_abstain_ties_go_first():
    assert final_label([(1, "a"), (2, "b"), (3, "b")]) == "b"
    assert final_label([(5, "b"), (2, "a")]) == "a"
    assert final_label([(1, None), (2, None), (3, "c")]) == "c"
    assert final_label([(1, None)]) is None


def test_concurrent_queues_on_one_file_decide_each_item_exactly_once(tmp_path):
    path = make_review_db(tmp_path / "q.db", pending=60)
    decided: list[str] = []
    conflicts: list[str] = []
    lock = threading.Lock()

    def reviewer(name: str) -> None:
        with Store(path) as store:
            queue = ReviewQueue(store)
            while (lease := queue.lease(name, max_held=1)) is not None:
                try:
                    queue.decide(name, lease.item.item_id, lease.item.teacher_label, via="thread")
                    with lock:
                        decided.append(lease.item.item_id)
                except Conflict as exc:
                    with lock:
                        conflicts.append(str(exc))

    threads = [threading.Thread(target=reviewer, args=(f"r{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert conflicts == [] and len(decided) == 60 == len(set(decided))
    with Store(path) as store:
        assert store.pending_count() == 0
        assert len(store.review_log()) == 60


def test_two_reviewers_racing_for_one_item_exactly_one_wins(tmp_path):
    path = make_review_db(tmp_path / "q.db", pending=10)
    items = [f"i{n:04d}" for n in range(6, 16)]
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, list[str]] = {"ana": [], "bo": []}
    errors: list[BaseException] = []

    def reviewer(name: str, label: str) -> None:
        try:
            with Store(path) as store:  # each its own connection, as two servers would have
                queue = ReviewQueue(store)
                for item in items:
                    barrier.wait()  # both decide the same item at the same moment
                    try:
                        queue.decide(name, item, label, via="race", require_lease=False)
                        results[name].append(item)
                    except Conflict:
                        pass
        except BaseException as exc:  # e.g. "database is locked": reported below, and the other stops waiting
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=reviewer, args=args) for args in (("ana", "billing"), ("bo", "shipping"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e for e in errors if not isinstance(e, threading.BrokenBarrierError)] == []
    assert sorted(results["ana"] + results["bo"]) == items  # every item won exactly once
    with Store(path) as store:
        log = store.review_log()
        assert sorted(r.item_id for r in log) == items
        winners = {r.item_id: r.reviewer for r in log}
        human = {r.item_id: r for r in store.current_labels() if r.source == "human"}
        assert all(human[i].reviewer == winners[i] for i in items)
        assert store.pending_count() == 0


def test_kappas_match_references():
    a = ["x", "x", "y", "y", "z", "x", "y", "z"]
    b = ["x", "y", "y", "y", "z", "x", "x", "z"]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(["x", "x"], ["x", "x"]) is None
    # Fleiss (1971) as worked on Wikipedia: 10 items, 14 raters, 5 categories -> 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    ratings = [[str(c) for c, count in enumerate(row) for _ in range(count)] for row in table]
    assert fleiss_kappa(ratings) == pytest.approx(0.2099, abs=1e-4)


def test_agreement_per_reviewer_and_overall():
    current = [("1", "ana", "a"), ("1", "bo", "a"), ("2", "ana", "b"), ("2", "bo", "a"),
               ("3", "ana", "b"), ("3", "bo", "b"), ("4", "ana", None), ("4", "bo", "a")]
    finals = {"1": "a", "2": "b", "3": "b", "4": "a"}
    log = [("ana", 10.0, None), ("bo", 11.0, None), ("ana", 14.0, None), ("ana", 20.0, 1)]
    result = agreement(current, finals, log)
    assert result.pairs[("ana", "bo")][0] == 3
    assert result.pairs[("ana", "bo")][1] == pytest.approx(cohen_kappa_score(["a", "b", "b"], ["a", "a", "b"]))
    assert (result.fleiss_items, result.fleiss_raters) == (3, 2)
    ana, bo = result.reviewers
    assert (ana.decisions, ana.corrections, ana.agreement_with_final, ana.median_s_per_item) == (4, 1, 1.0, 5.0)
    assert bo.agreement_with_final == pytest.approx(3 / 4)


def test_version_1_database_is_migrated_with_audit_records(tmp_path):
    path = make_review_db(tmp_path / "old.db", pending=3)
    conn = sqlite3.connect(path)
    # Make it what a version 1 run looked like: a decided and a skipped review, no new tables.
    conn.executescript("""
        DROP TABLE review_log; DROP TABLE leases; DROP TABLE reviewers; DROP TABLE sessions;
        UPDATE meta SET value = '1' WHERE key = 'schema_version';
        UPDATE reviews SET status = 'decided', decided_at = 5 WHERE item_id = 'i0006';
        UPDATE reviews SET status = 'skipped', decided_at = 6 WHERE item_id = 'i0007';
        INSERT INTO labels (item_id, label, source, confidence, round, reason, reviewer, created_at)
            VALUES ('i0006', 'technical', 'human', NULL, 0, 'terminal review', 'ana', 5);
    """)
    conn.close()
    with Store(path) as store:
        assert store.meta("schema_version") == str(SCHEMA_VERSION)
        queue = ReviewQueue(store)
        log = {r.item_id: r for r in queue.log()}
        assert (log["i0006"].reviewer, log["i0006"].kind, log["i0006"].label) == ("ana", "relabel", "technical")
        assert log["i0006"].shown["teacher_label"] == "billing" and log["i0007"].kind == "skip"
        assert queue.lease("bo").item.item_id == "i0008"  # the queue works on the migrated file
    with Store(path) as store:  # a second open does not migrate twice
        assert len(ReviewQueue(store).log()) == 2


def test_a_stale_release_does_not_drop_a_renewed_lease(store):
    clock = Clock()
    queue = ReviewQueue(store, lease_s=60, clock=clock)
    old = queue.lease("ana", max_held=1)
    clock.now += 5
    renewed = queue.lease("ana", max_held=1)  # the page was reloaded: same item, new expiry
    assert renewed.item.item_id == old.item.item_id and renewed.expires_at > old.expires_at
    queue.release("ana", old.item.item_id, old.expires_at)  # the old page's late goodbye
    assert queue.lease("bo", max_held=1).item.item_id != old.item.item_id
    queue.release("ana", renewed.item.item_id, renewed.expires_at)
    assert queue.lease("cy", max_held=1).item.item_id == old.item.item_id
