"""Few-shot selection on hand-made embeddings, and the prompt's shared prefix up to the item."""
from __future__ import annotations

import json
import os

import numpy as np

from quarry_al.engine.config import TaskConfig
from quarry_al.engine.examples import with_examples
from quarry_al.engine.store import LabelRow
from quarry_al.engine.teacher.base import Example, TeacherItem
from quarry_al.engine.teacher.fewshot import (choose_examples, estimate_tokens, fixed_examples, mmr, tfidf, within_budget)
from quarry_al.engine.teacher.options import FewShotConfig
from quarry_al.engine.teacher.prompts import load_template, render_messages

TASK = TaskConfig(labels=["sports", "politics", "tech"], instruction="Topic?", description="News headlines.")


def unit(*angles_deg: float) -> np.ndarray:
    a = np.radians(angles_deg)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


class TestMMR:
    # Query along x. 'a' candidates cluster around it; 'b' is less relevant and off in z.
    EMB = np.array([[1.0, 0.0, 0.0], [0.95, 0.31, 0.0], [0.9, 0.44, 0.0], [0.6, 0.0, 0.8]])
    LABELS = ["a", "a", "a", "b"]

    def test_most_similar_first_then_another_label(self):
        assert mmr(np.array([1.0, 0, 0]), self.EMB, self.LABELS, k=2) == [0, 3]

    def test_pure_relevance_ignores_labels(self):
        assert mmr(np.array([1.0, 0, 0]), self.EMB, self.LABELS, k=3, relevance_weight=1.0) == [0, 1, 2]

    def test_excluded_and_short_pool(self):
        assert mmr(np.array([1.0, 0, 0]), self.EMB, self.LABELS, k=9, exclude=[0]) == [1, 3, 2]


def test_fixed_examples_are_each_labels_most_typical():
    emb = unit(0, 10, 20, 80, 90, 100, 180)
    labels = ["a", "a", "a", "b", "b", "b", "c"]
    assert fixed_examples(emb, labels, ["c", "a", "b"], per_label=1) == [6, 1, 4]
    assert fixed_examples(emb, labels, ["a", "b", "c"], per_label=0) == []


def test_budget_keeps_fixed_first_and_most_relevant_last():
    fixed = [Example("f" * 40, "a")]
    picked = [Example("best " * 10, "b"), Example("second " * 10, "a"), Example("third " * 60, "c")]
    budget = estimate_tokens(fixed[0]) + estimate_tokens(picked[0]) + estimate_tokens(picked[1])
    kept = within_budget(fixed, picked, budget)
    assert kept == [fixed[0], picked[1], picked[0]]
    assert sum(estimate_tokens(e) for e in kept) <= budget
    assert within_budget(fixed, picked, 1) == []


def test_choose_examples_per_item():
    cands = [Example(t, l) for t, l in [("goal", "sports"), ("match", "sports"), ("vote", "politics"),
                                        ("senate", "politics"), ("chip", "tech")]]
    emb = np.array([[1, 0.1, 0], [1, 0, 0.1], [0.5, 1, 0], [0.5, 1, 0.2], [0.2, 0, 1]])
    items = np.array([[1, 0.2, 0.1], [0.4, 1, 0.1]])
    blocks = choose_examples(items, emb, cands, TASK.label_names, k=2, per_label_fixed=0)
    assert blocks[0][-1].label == "sports" and blocks[1][-1].label == "politics"  # nearest is last
    assert {e.label for e in blocks[0]} == {"sports", "politics"}  # diversity: the second is another label
    fixed = choose_examples(items, emb, cands, TASK.label_names, k=1, per_label_fixed=1)
    assert fixed[0][:3] == fixed[1][:3] and [e.label for e in fixed[0][:3]] == TASK.label_names
    assert len(fixed[0]) == 4 and fixed[0][3] not in fixed[0][:3]


def test_item_never_sees_its_own_text():
    cands = [Example("same text", "sports"), Example("other", "tech")]
    blocks = choose_examples(unit(0), unit(0, 90), cands, TASK.label_names, k=2, per_label_fixed=1,
                             item_texts=["same text"])
    assert [e.text for e in blocks[0]] == ["other"]


def test_tfidf_similarity():
    vectors = tfidf(["the match ended with a late goal", "a late goal won the match", "the senate passed the vote"])
    sims = vectors @ vectors.T
    assert np.allclose(np.diag(sims), 1.0)
    assert sims[0, 1] > sims[0, 2]
    small = tfidf(["a b c", "a b", "a"], max_terms=2)  # keeps the words most texts share: a, b
    assert small.shape == (3, 2) and np.allclose(np.linalg.norm(small, axis=1), 1.0)


def prefix_len(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def test_prompts_share_everything_up_to_the_item():
    template = load_template("classify.j2")
    for output in ("label", "json"):
        a = json.dumps(render_messages(template, TASK, "Stocks fell on Monday", output))
        b = json.dumps(render_messages(template, TASK, "Striker signs new deal", output))
        start = a.index("Stocks fell")
        assert start == b.index("Striker signs") and a[:start] == b[:start]
        assert a[:start].endswith('"Text: ')


def test_fixed_examples_stay_in_the_shared_prefix():
    template = load_template("classify.j2")
    fixed = (Example("Cup final tonight", "sports"), Example("New phone out", "tech"))
    a = json.dumps(render_messages(template, TASK, "item one", "label", fixed + (Example("vote", "politics"),)))
    b = json.dumps(render_messages(template, TASK, "item two", "label", fixed + (Example("match", "sports"),)))
    shared = a[:prefix_len(a, b)]
    assert "Cup final tonight" in shared and "New phone out" in shared
    assert shared.endswith('{"role": "assistant", "content": "tech"}, {"role": "user", "content": "Text: ')


def test_examples_are_earlier_turns():
    messages = render_messages(load_template("classify.j2"), TASK, "x", "json",
                               [Example('say "hi"', "tech"), Example("vote", "politics")])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1:5] == [{"role": "user", "content": 'Text: say "hi"'}, {"role": "assistant", "content": '{"label": "tech"}'},
                             {"role": "user", "content": "Text: vote"}, {"role": "assistant", "content": '{"label": "politics"}'}]
    assert messages[-1] == {"role": "user", "content": "Text: x"}
    assert render_messages(load_template("classify.j2"), TASK, "x", "label", [Example("a", "tech")])[2]["content"] == "tech"


def label_row(item_id: str, text: str, label: str, source: str) -> LabelRow:
    return LabelRow(item_id, text, label, source, None, 0, "", None, None)


class TestWithExamples:
    LABELS = [label_row("p1", "late goal wins the cup", "sports", "human"),
              label_row("s1", "senate passes the budget vote", "politics", "seed"),
              label_row("p2", "new chip doubles speed", "tech", "teacher")]
    POOL = ["late goal wins the cup", "new chip doubles speed", "striker scores a late goal", "budget vote delayed"]

    def items(self):
        return [TeacherItem("p3", self.POOL[2]), TeacherItem("p4", self.POOL[3])]

    def test_off_by_default(self):
        assert with_examples(FewShotConfig(), self.items(), self.LABELS, TASK.label_names, None,
                             self.POOL) == self.items()

    def test_tfidf_before_the_student_exists(self):
        out = with_examples(FewShotConfig(k=1), self.items(), self.LABELS, TASK.label_names, None,
                            self.POOL)
        assert [i.examples for i in out] == [(Example("late goal wins the cup", "sports"),),
                                             (Example("senate passes the budget vote", "politics"),)]

    def test_teacher_labels_only_with_source_all(self):
        cfg = FewShotConfig(per_label=1)
        reviewed = with_examples(cfg, self.items(), self.LABELS, TASK.label_names, None, self.POOL)
        every = with_examples(cfg.model_copy(update={"source": "all"}), self.items(), self.LABELS, TASK.label_names,
                              None, self.POOL)
        assert [e.label for e in reviewed[0].examples] == ["sports", "politics"]
        assert [e.label for e in every[0].examples] == ["sports", "politics", "tech"]

    def test_student_embeddings_of_the_pool(self):
        # Embeddings that contradict the words: item p3 sits next to the tech text, p4 next to the sports one.
        pool_emb = np.array([[1.0, 0, 0], [0, 1.0, 0], [0.1, 1.0, 0], [1.0, 0.1, 0]])
        asked = []

        def embed(texts):
            asked.append(texts)
            return np.array([[0, 0, 1.0]] * len(texts))  # the seed text: far from everything

        out = with_examples(FewShotConfig(k=1, source="all"), self.items(), self.LABELS, TASK.label_names,
                            pool_emb, self.POOL, embed)
        assert asked == [["senate passes the budget vote"]]  # only the text the cache lacks
        assert [i.examples[0].label for i in out] == ["tech", "sports"]
        tfidf_out = with_examples(FewShotConfig(k=1, source="all", embeddings="tfidf"), self.items(), self.LABELS,
                                  TASK.label_names, pool_emb, self.POOL, embed)
        assert [i.examples[0].label for i in tfidf_out] == ["sports", "politics"]
