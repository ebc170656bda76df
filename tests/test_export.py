"""The flat JSONL export keeps what the teacher said on items a person decided, and reads back as a seed file,
even with texts holding U+2028, U+2029 or U+0085 (which JSON writes unescaped and str.splitlines breaks at).

A real run database, routed and reviewed by hand (the loop's label and review steps without models), then
the real `quarry export` command and the real data loader.
"""
from __future__ import annotations

import json
from pathlib import Path

from quarry_al.engine.cli import main
from quarry_al.engine.config import load_config
from quarry_al.engine.data import load_job_data
from quarry_al.engine.review.queue import ReviewQueue
from quarry_al.engine.store import Store
from quarry_al.engine.teacher.base import TeacherResult

TEXTS = {"a": "Refund please\u2028order 12", "b": "Parcel lost\u2029again", "c": "App\u0085crashes", "d": "plain text"}
GOLD = {"a": "billing", "b": "shipping", "c": "technical", "d": "billing"}


def make_run(run_dir: Path) -> None:
    config = {"name": "export", "task": {"labels": ["billing", "shipping", "technical"], "instruction": "Classify."},
              "data": {"pool": "pool.jsonl", "eval": "eval.jsonl"}, "review": {"mode": "queue"}}
    with Store(run_dir / "quarry.db") as store:
        store.initialize(json.dumps(config), [(k, t, GOLD[k]) for k, t in TEXTS.items()], [])
        store.create_round(0, "random", [(k, None, None, None) for k in TEXTS], {})
        said = {"a": ("billing", 0.95), "b": ("billing", 0.4), "c": ("technical", 0.3), "d": ("shipping", 0.2)}
        for item_id, (label, conf) in said.items():
            store.record_teacher_call(item_id, 0, "m", TeacherResult(label, conf))
        store.commit_routing(0, [("a", "billing", 0.95, "teacher confidence 0.95 >= 0.80")],
                             [{"item_id": k, "reason": "low confidence", "teacher_label": said[k][0],
                               "teacher_confidence": said[k][1], "teacher_raw": "", "student_label": None,
                               "student_confidence": None} for k in ("b", "c", "d")], {})
        queue = ReviewQueue(store)
        queue.decide("ana", "b", "shipping", via="test", require_lease=False)  # corrects the teacher
        queue.decide("ana", "c", "technical", via="test", require_lease=False)  # keeps the teacher's label
        # "d" stays pending: not exported


def test_jsonl_export_keeps_the_teachers_answer_and_reads_back_as_a_seed_file(tmp_path, capsys):
    run_dir = tmp_path / "run"
    make_run(run_dir)
    out = tmp_path / "export.jsonl"
    assert main(["export", str(run_dir), "--format", "jsonl", "--out", str(out)]) == 0
    assert "\u2028" in out.read_text(encoding="utf-8")  # written unescaped (ensure_ascii=False)
    rows = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").split("\n")[:-1])}
    assert set(rows) == {"a", "b", "c"}
    assert (rows["a"]["source"], rows["a"]["teacher_label"], rows["a"]["teacher_confidence"]) == ("teacher", "billing", 0.95)
    assert (rows["b"]["source"], rows["b"]["label"], rows["b"]["reviewer"]) == ("human", "shipping", "ana")
    assert (rows["b"]["teacher_label"], rows["b"]["teacher_confidence"]) == ("billing", 0.4)
    assert (rows["c"]["label"], rows["c"]["teacher_label"], rows["c"]["teacher_confidence"]) == ("technical", "technical", 0.3)

    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"id": f"p{i}", "text": f"new text {i}"}) + "\n" for i in range(3)))
    job = tmp_path / "job.yaml"
    job.write_text(f"name: again\ntask: {{labels: [billing, shipping, technical], instruction: Classify.}}\n"
                   f"data: {{pool: {pool}, seed: {out}, eval: {out}}}\n")
    config = load_config(job)
    data = load_job_data(config.data, config.task.label_names)
    assert {r.item_id: (r.text, r.label) for r in data.seed} == {k: (TEXTS[k], rows[k]["label"]) for k in rows}
