"""Review batches out to Label Studio / Argilla and back, through the CLI and the shared queue."""
import json

import pytest

from quarry_al.engine.cli import main
from quarry_al.engine.review.batch import BatchError, export_batch, import_batch
from quarry_al.engine.review.queue import ReviewQueue
from quarry_al.engine.store import Store
from reviewdb import LABELS, make_review_db


@pytest.fixture
def run_dir(tmp_path):
    make_review_db(tmp_path / "quarry.db", pending=4, review={"overlap": 2})
    return tmp_path


def annotate_label_studio(tasks, who, choose):
    """What Label Studio's JSON export adds to each task once people annotated it."""
    for n, task in enumerate(tasks):
        task.setdefault("annotations", []).append(
            {"completed_by": who, "was_cancelled": choose(n) is None,
             "result": [] if choose(n) is None else
             [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [choose(n)]}}]})
    return tasks


def test_label_studio_round_trip_with_two_annotators(run_dir, capsys):
    out = run_dir / "batch.json"
    assert main(["review", str(run_dir), "--export-batch", str(out), "--format", "label-studio"]) == 0
    assert '<Choices name="label" toName="text" choice="single"><Choice value="billing"/>' in capsys.readouterr().out
    tasks = json.loads(out.read_text())
    assert len(tasks) == 4
    first = tasks[0]
    assert first["data"]["quarry_id"] == "i0006" and first["data"]["text"].startswith("message 6")
    teacher = first["predictions"][0]
    assert teacher["model_version"] == "quarry-teacher" and teacher["score"] == pytest.approx(0.9)
    assert teacher["result"][0]["value"] == {"choices": ["billing"]}
    annotate_label_studio(tasks, 7, lambda n: LABELS[n % 3])
    annotate_label_studio(tasks, {"id": 8, "email": "bo@example.org"}, lambda n: None if n == 3 else LABELS[0])
    out.write_text(json.dumps(tasks))
    assert main(["review", str(run_dir), "--import-batch", str(out)]) == 0
    assert "decided 7, skipped 1, not applied 0" in capsys.readouterr().out
    with Store(run_dir / "quarry.db") as store:
        assert store.pending_count() == 0  # overlap 2: two annotators each
        labels = {r.item_id: r for r in store.current_labels() if r.source == "human"}
        assert labels["i0006"].label == "billing" and labels["i0006"].reviewer == "label-studio:7+label-studio:bo@example.org"
        assert labels["i0007"].label == "shipping"  # a 1-1 tie goes to the earlier annotation
        log = ReviewQueue(store).log()
        assert {r.via for r in log} == {"import:batch.json"} and len(log) == 8
    # Importing the same file again applies nothing twice.
    assert main(["review", str(run_dir), "--import-batch", str(out)]) == 0
    assert "decided 0, skipped 0, not applied 8" in capsys.readouterr().out


def test_argilla_round_trip(tmp_path):
    with Store(make_review_db(tmp_path / "quarry.db", pending=3)) as store:
        queue = ReviewQueue(store)
        path = tmp_path / "records.json"
        assert export_batch(queue, path, "argilla") == 3
        records = json.loads(path.read_text())
        assert records[0]["id"] == "i0006" and records[0]["fields"]["text"].startswith("message 6")
        assert records[0]["suggestions"]["label"] == {"value": "billing", "score": pytest.approx(0.9),
                                                      "agent": "quarry-teacher"}
        records[0]["responses"] = {"label": [{"value": "technical", "user_id": "u-1", "status": "submitted"}]}
        records[1]["responses"] = {"label": [{"value": None, "user_id": "u-1", "status": "discarded"}]}
        records[2]["responses"] = {"label": [{"value": "billing", "user_id": "u-1", "status": "draft"}]}
        path.write_text("\n".join(json.dumps(r) for r in records))  # JSON Lines works too
        result = import_batch(queue, path, LABELS)
        assert (result.decided, result.skipped, result.conflicts) == (1, 1, [])
        assert store.pending_count() == 1  # the draft is not a decision
        assert {r.item_id: r.label for r in store.current_labels()}["i0006"] == "technical"


def test_import_leaves_items_someone_holds(tmp_path):
    with Store(make_review_db(tmp_path / "quarry.db", pending=2)) as store:
        queue = ReviewQueue(store)
        held = queue.lease("ana", max_held=1).item.item_id
        path = tmp_path / "batch.json"
        export_batch(queue, path, "argilla")
        records = json.loads(path.read_text())
        for r in records:
            r["responses"] = {"label": [{"value": "billing", "user_id": "u-2"}]}
        path.write_text(json.dumps(records))
        result = import_batch(queue, path, LABELS)
        assert result.decided == 1 and len(result.conflicts) == 1 and held in result.conflicts[0]


@pytest.mark.parametrize("content, message", [
    ("{not json", r"batch\.json: not valid JSON"),
    ('{"data": {}}', r"batch\.json: expected a JSON list of records"),
    ('[{"data": {"text": "x"}}]', r"batch\.json: record 1: no data\.quarry_id"),
    ('[{"data": {"quarry_id": "i0006"}, "annotations": [{"result": [{"from_name": "label", "value": {"choices": ["refund"]}}]}]}]',
     r"batch\.json: record 1 \(id i0006\): label 'refund' is not one of"),
    ('[{"data": {"quarry_id": "i0006"}, "annotations": [{"result": []}]}]',
     r"record 1 \(id i0006\): annotation 1 needs exactly one choice"),
    ('[{"fields": {"text": "x"}, "id": "i0006", "responses": {"label": [{"user_id": "u"}]}}, 3]',
     r"record 1 \(id i0006\): response 1 has no 'label' value"),
    ('[{"id": "nope", "fields": {}, "responses": {"label": [{"value": "billing"}]}}]', r"unknown item id 'nope'"),
    ('[{"something": 1}]', r"neither Label Studio tasks"),
])
def test_bad_batches_name_file_and_record_and_change_nothing(tmp_path, content, message):
    with Store(make_review_db(tmp_path / "quarry.db", pending=2)) as store:
        path = tmp_path / "batch.json"
        path.write_text(content)
        with pytest.raises(BatchError, match=message):
            import_batch(ReviewQueue(store), path, LABELS)
        assert store.pending_count() == 2 and ReviewQueue(store).log() == []


def test_cli_reports_a_bad_batch_in_one_line(run_dir, capsys):
    bad = run_dir / "bad.json"
    bad.write_text('[{"data": {"text": "x"}}]')
    assert main(["review", str(run_dir), "--import-batch", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.json: record 1: no data.quarry_id" in err


def test_cli_reviewers_add_stores_only_a_hash(run_dir, capsys):
    assert main(["reviewers", "add", "ana", str(run_dir)]) == 0
    token = capsys.readouterr().out.split("token ")[1].split()[0]
    with Store(run_dir / "quarry.db") as store:
        stored = [(r.name, r.token_hash) for r in store.reviewers()]
    assert stored[0][0] == "ana" and token not in stored[0][1] and len(stored[0][1]) == 64
    assert main(["reviewers", "list", str(run_dir)]) == 0
    assert "ana" in capsys.readouterr().out
    assert main(["reviewers", "add", "<bad name>", str(run_dir)]) == 2
