"""Reviewing written answers (task.kind generation) on a real run database: the queue's edit and rewrite
records, simulated review by the task's check, the terminal reviewer, decisions files, Label Studio and
Argilla batches, and the web app's API over a real server. No model is needed: the answers are hand-made
(tests/answerdb.py)."""
import json
import re

import httpx
import pytest

from answerdb import CONFIG, ITEMS, make_answer_db
from quarry_al.engine.config import config_from_dict
from quarry_al.engine.review import DecisionError, import_decisions, simulate_review
from quarry_al.engine.review.answers import answer_diff, review_answers_in_terminal
from quarry_al.engine.review.auth import add_reviewer
from quarry_al.engine.review.batch import BatchError, export_batch, import_batch
from quarry_al.engine.review.kinds import review_kind
from quarry_al.engine.review.queue import ReviewQueue
from quarry_al.engine.store import Store
from quarry_al.engine.tasks.registry import task_kind
from webserver import running_server

JOB = config_from_dict(CONFIG)


@pytest.fixture
def store(tmp_path):
    with Store(make_answer_db(tmp_path / "quarry.db")) as store:
        yield store


def labels(store) -> dict[str, tuple[str, str]]:
    return {r.item_id: (r.label, r.source) for r in store.current_labels()}


def kinds(store) -> dict[str, str]:
    return {r.item_id: r.kind for r in store.review_log()}


def test_queue_records_accept_edit_and_rewrite(store):
    queue = ReviewQueue(store)
    queue.decide("ana", "a2", ITEMS[2][3], via="test", require_lease=False)  # the teacher's answer as it was
    queue.decide("ana", "a3", "12", via="test", require_lease=False, edit="edit")
    queue.decide("ana", "a4", "LEMON", via="test", require_lease=False, edit="rewrite")
    queue.decide("ana", "a6", ITEMS[6][3], via="test", require_lease=False, edit="edit")  # "edited" into the same text: an accept
    assert kinds(store) == {"a2": "accept", "a3": "edit", "a4": "rewrite", "a6": "accept"}
    assert labels(store)["a3"] == ("12", "human") and labels(store)["a4"] == ("LEMON", "human")
    with pytest.raises(ValueError, match="edit must be one of"):
        queue.decide("ana", "a5", "Jupiter", via="test", require_lease=False, edit="paste")


def test_simulated_review_accepts_what_passes_the_check_and_rewrites_the_rest(store):
    decided = simulate_review(store, lambda pending: task_kind(JOB.task).simulated_decisions(JOB, pending))
    assert decided == 6
    current = labels(store)
    # contains: "120 minutes" and "Lima" contain their references; "13", "Lemon" and "six" do not.
    assert current["a2"] == (ITEMS[2][3], "human") and current["a6"] == ("Lima", "human")
    assert current["a3"] == ("12", "human") and current["a7"] == ("6", "human")
    assert current["a4"] == ("Lemon", "human")  # the check ignores case unless told otherwise
    assert kinds(store) == {"a2": "accept", "a3": "rewrite", "a4": "accept", "a5": "rewrite", "a6": "accept",
                            "a7": "rewrite"}


def test_an_exact_check_is_stricter():
    from quarry_al.engine.tasks.checks import AnswerCheck, normalize
    from quarry_al.engine.task import CheckConfig

    assert normalize("The capital is  Paris!") == "capital is paris"
    assert normalize("The capital is  Paris!", case_sensitive=True) == "capital is Paris"
    exact, contains = AnswerCheck(CheckConfig(kind="exact")), AnswerCheck(CheckConfig(kind="contains"))
    answers, references = ["The capital of France is Paris.", "paris", "Parisian food"], ["Paris"] * 3
    assert exact.passes(answers, references) == [False, True, False]
    assert contains.passes(answers, references) == [True, True, False]  # whole words only
    cased = AnswerCheck(CheckConfig(kind="contains", case_sensitive=True))
    assert cased.passes(answers, references) == [True, False, False]


def test_terminal_accept_edit_rewrite_skip_and_undo(store):
    keys = iter(["a", "e", "r", "s", "u", "e", "q"])
    edits = iter(["12", "LEMON", "Jupiter, the fifth planet"])
    said: list[str] = []
    counts = review_answers_in_terminal(ReviewQueue(store), "ana", ask=lambda _: next(keys), say=said.append,
                                        edit=lambda start: next(edits))
    assert counts == {"accepted": 1, "edited": 1, "rewritten": 1, "skipped": 1, "revised": 1}
    log = store.review_log()
    assert [(r.item_id, r.kind) for r in log[:4]] == [("a2", "accept"), ("a3", "edit"), ("a4", "rewrite"), ("a5", "skip")]
    # u corrected the latest decision (the skip of a5) with an edit: a new record, the old one kept
    assert (log[4].item_id, log[4].kind, log[4].supersedes) == ("a5", "edit", log[3].id)
    assert labels(store)["a5"] == ("Jupiter, the fifth planet", "human")
    assert any("-13" in line and "+12" in line for line in said)  # the diff of the edit was shown


def test_diff_is_unified():
    diff = answer_diff("line one\nline two", "line one\nline 2")
    assert diff.splitlines()[:2] == ["--- teacher", "+++ reviewer"] and "-line two" in diff and "+line 2" in diff
    assert answer_diff("same", "same") == ""


def test_decisions_file_answers(store, tmp_path):
    good = tmp_path / "d.jsonl"
    good.write_text(json.dumps({"id": "a3", "answer": "12"}) + "\n" + json.dumps({"id": "a4", "answer": "LEMON",
                                                                                  "how": "rewrite"}) + "\n"
                    + json.dumps({"id": "a5", "skip": True}) + "\n")
    kind = review_kind(JOB)
    summary = import_decisions(ReviewQueue(store), good, [], "importer", check=kind.check, key="answer")
    assert (summary.decided, summary.skipped) == (2, 1)
    assert kinds(store) == {"a3": "edit", "a4": "rewrite", "a5": "skip"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a6", "answer": "  "}) + "\n")
    with pytest.raises(DecisionError, match=r"bad\.jsonl:1: an answer must be a non-empty string"):
        import_decisions(ReviewQueue(store), bad, [], "importer", check=kind.check, key="answer")


@pytest.mark.parametrize("fmt", ["label-studio", "argilla"])
def test_batches_round_trip(store, tmp_path, fmt):
    shape = review_kind(JOB).shape
    path = tmp_path / "batch.json"
    assert export_batch(ReviewQueue(store), path, fmt, shape) == 6
    records = json.loads(path.read_text())
    by_id = {}
    for record in records:
        item_id = record["data"]["quarry_id"] if fmt == "label-studio" else record["id"]
        by_id[item_id] = record
    first = by_id["a3"]
    if fmt == "label-studio":
        assert first["data"]["instruction"] == ITEMS[3][0] and first["data"]["reference"] == "12"
        assert first["predictions"][0]["result"][0]["value"] == {"text": ["13"]}
        first["annotations"] = [{"completed_by": {"email": "bo@x"}, "result": [
            {"from_name": "answer", "to_name": "instruction", "type": "textarea", "value": {"text": ["12"]}}]}]
        by_id["a6"]["annotations"] = [{"completed_by": 7, "result": [
            {"from_name": "answer", "type": "textarea", "value": {"text": ["Lima"]}}]}]
    else:
        assert first["fields"] == {"instruction": ITEMS[3][0], "input": "", "reference": "12"}
        assert first["suggestions"]["answer"]["value"] == "13"
        first["responses"] = {"answer": [{"value": "12", "user_id": "bo", "status": "submitted"}]}
        by_id["a6"]["responses"] = {"answer": [{"value": "Lima", "user_id": "7"}]}
    path.write_text(json.dumps(records))
    result = import_batch(ReviewQueue(store), path, [], shape=shape)
    assert (result.decided, result.skipped, result.conflicts) == (2, 0, [])
    assert kinds(store) == {"a3": "edit", "a6": "accept"}
    if fmt == "argilla":
        records[0]["responses"] = {"answer": [{"value": "", "user_id": "x"}]}
        path.write_text(json.dumps(records))
        with pytest.raises(BatchError, match="an answer must be a non-empty string"):
            import_batch(ReviewQueue(store), path, [], shape=shape)


def login(url: str, token: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=30)
    nonce = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data={"token": token, "csrf": nonce}).status_code == 303
    page = client.get("/queue").text
    assert "review_answers.js" in page and 'id="editor"' in page  # the answers' queue page
    return client, re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def test_web_api_edits_rewrites_and_undo_with_a_diff(tmp_path):
    db = make_answer_db(tmp_path / "quarry.db")
    with Store(db) as store:
        token = add_reviewer(store, "ana")
    with running_server(db) as url:
        client, csrf = login(url, token)
        headers = {"X-CSRF-Token": csrf}
        item = client.post("/api/next", headers=headers).json()["item"]
        assert (item["item_id"], item["text"], item["reference"]) == ("a2", ITEMS[2][0], "120 minutes")
        assert item["teacher_label"] == ITEMS[2][3] and item["signals"]["judge"] == 3.0
        empty = client.post("/api/decide", headers=headers, json={"item_id": "a2", "label": " "})
        assert empty.status_code == 422 and "non-empty" in empty.text
        bad_how = client.post("/api/decide", headers=headers, json={"item_id": "a2", "label": "x", "how": "paste"})
        assert bad_how.status_code == 422
        edited = client.post("/api/decide", headers=headers,
                             json={"item_id": "a2", "label": "120 minutes (2 x 60)", "how": "edit"})
        assert edited.json()["kind"] == "edit"
        item = client.post("/api/next", headers=headers).json()["item"]
        assert item["item_id"] == "a3"
        assert client.post("/api/decide", headers=headers,
                           json={"item_id": "a3", "label": "12", "how": "rewrite"}).json()["kind"] == "rewrite"
        undo = client.get("/api/undo").json()
        assert undo["decision"]["label"] == "12" and "-13" in undo["decision"]["diff"]
        corrected = client.post("/api/decide", headers=headers,
                                json={"item_id": "a3", "label": "13", "correct": True})
        assert corrected.json()["kind"] == "accept"
    with Store(db) as store:
        assert [(r.item_id, r.kind) for r in store.review_log()] == [("a2", "edit"), ("a3", "rewrite"), ("a3", "accept")]
        assert labels(store)["a3"] == ("13", "human")


def test_calibrated_routing_counts_kept_answers_as_correct(store):
    """Calibration over written answers: an answer a person accepted unedited is a right one, an edited or
    rewritten one a wrong one, at the confidence of the routing signal (here the judge's)."""
    from quarry_al.engine.threshold import reviewed_items, routing_for_round

    queue = ReviewQueue(store)
    for item_id, answer, edit in [("a2", ITEMS[2][3], None), ("a3", "12", "edit"), ("a4", ITEMS[4][3], None),
                                  ("a5", "Jupiter", "rewrite"), ("a6", ITEMS[6][3], None), ("a7", "6", "edit")]:
        queue.decide("ana", item_id, answer, via="test", require_lease=False, edit=edit)
    items = {i.teacher_label: i for i in reviewed_items(store, JOB.routing)}
    assert [items[ITEMS[n][3]].correct for n in range(2, 8)] == [True, False, True, False, True, False]
    assert items[ITEMS[4][3]].teacher_confidence == 1.0 and items[ITEMS[4][3]].signals["judge"] == 5.0
    # kept: a2 (0.5), a4 (1.0), a6 (0.25); changed: a3 (0.75), a5 (0.0), a7 (0.5): half of them right
    loose = routing_for_round(store, JOB.routing.model_copy(update={"target_precision": 0.2, "min_reviewed": 6}), 1)
    assert loose.calibration is not None and loose.calibration.reviewed == 6
    assert loose.config.confidence_threshold == 0.0 and loose.calibration.precision == 0.5
    strict = routing_for_round(store, JOB.routing.model_copy(update={"target_precision": 0.95, "min_reviewed": 6}), 1)
    assert strict.config.confidence_threshold > 1.0  # six reviews cannot show 95 %: nothing is accepted
