"""The vLLM offline teacher without vLLM or a GPU: its pure parts, and its flow against a stand-in module.

vLLM cannot run here (it needs a GPU and its own CUDA torch), so `FakeVLLM` below stands in for
the `vllm` module: it records what the teacher asks and answers in the shape of vLLM's
RequestOutput. That the real engine accepts these calls is checked only on a GPU machine.
"""
from __future__ import annotations

import math
import subprocess
import sys
import types
from dataclasses import dataclass, field

import pytest

from conftest import CHECKOUT_PRELUDE
from quarry_al.engine.config import TaskConfig
from quarry_al.engine.teacher import TeacherItem, build_teacher
from quarry_al.engine.teacher.base import Example
from quarry_al.engine.teacher.confidence import label_distribution
from quarry_al.engine.teacher.options import VLLMTeacherConfig
from quarry_al.engine.teacher.vllm_offline import make_sampling_params, parse_output

TASK = TaskConfig(labels=["positive", "negative", "neutral"], instruction="Sentiment?", description="Reviews.")
CONFIG = VLLMTeacherConfig(model="some/model", top_logprobs=5, engine_args={"gpu_memory_utilization": 0.5})
# Token ids of the stand-in tokenizer: 'neutral' shares its first token with 'negative'.
IDS = {"positive": [11], "negative": [12, 13], "neutral": [12, 14]}


def params_module(name: str | None) -> types.SimpleNamespace:
    module = types.SimpleNamespace(sampling_params=types.SimpleNamespace())
    if name:
        setattr(module.sampling_params, name, lambda **kw: (name, kw))
    module.SamplingParams = lambda **kw: kw
    return module


class TestSamplingParams:
    def test_current_vllm_uses_structured_outputs(self):
        params = make_sampling_params(params_module("StructuredOutputsParams"), CONFIG, TASK.label_names)
        assert params["structured_outputs"] == ("StructuredOutputsParams", {"choice": TASK.label_names})
        assert params["logprobs"] == 5 and params["temperature"] == 0.0 and "guided_decoding" not in params

    def test_older_vllm_uses_guided_decoding(self):
        params = make_sampling_params(params_module("GuidedDecodingParams"), CONFIG, TASK.label_names)
        assert params["guided_decoding"] == ("GuidedDecodingParams", {"choice": TASK.label_names})

    def test_neither_is_a_clear_error(self):
        with pytest.raises(RuntimeError, match="neither StructuredOutputsParams nor GuidedDecodingParams"):
            make_sampling_params(params_module(None), CONFIG, TASK.label_names)


class TestDistribution:
    def test_labels_along_and_off_the_path(self):
        # Generated 'negative' (12, 13); at step 0 'positive' (11) had log 0.2, at step 1 'neutral' (14) log 0.25.
        top = [{12: math.log(0.7), 11: math.log(0.2)}, {13: math.log(0.75), 14: math.log(0.25)}]
        probs = label_distribution(IDS, [12, 13], top)
        assert probs["positive"] == pytest.approx(0.2)
        assert probs["negative"] == pytest.approx(0.7 * 0.75)
        assert probs["neutral"] == pytest.approx(0.7 * 0.25)

    def test_labels_leaving_by_the_same_token_share_it(self):
        probs = label_distribution(IDS, [11], [{11: math.log(0.9), 12: math.log(0.06)}])
        assert probs["positive"] == pytest.approx(0.9)
        assert probs["negative"] == probs["neutral"] == pytest.approx(0.03)

    def test_label_missing_from_top_logprobs_gets_zero(self):
        assert label_distribution(IDS, [11], [{11: 0.0}])["negative"] == 0.0

    def test_parse_output_falls_back_to_the_generated_path(self):
        # The model spelled 'positive' as two tokens (21, 22) the tokenizer would not produce.
        output = fake_output("positive", [21, 22], [{21: math.log(0.6), 12: math.log(0.3)}, {22: math.log(0.5)}])
        text, probs = parse_output(output, TASK.label_names, IDS)
        assert text == "positive" and probs["positive"] == pytest.approx(0.3)
        assert probs["negative"] == probs["neutral"] == pytest.approx(0.15)


@dataclass
class Logprob:
    logprob: float


def fake_output(text: str, token_ids: list[int], top: list[dict[int, float]], prompt_len: int = 30):
    completion = types.SimpleNamespace(text=text, token_ids=token_ids,
                                       logprobs=[{t: Logprob(lp) for t, lp in step.items()} for step in top])
    return types.SimpleNamespace(outputs=[completion], prompt_token_ids=list(range(prompt_len)))


@dataclass
class FakeVLLM:
    """Stands in for the `vllm` module (see the module docstring)."""

    answers: list
    calls: list = field(default_factory=list)

    def module(self) -> types.ModuleType:
        fake = types.ModuleType("vllm")
        fake.sampling_params = types.SimpleNamespace(StructuredOutputsParams=lambda **kw: ("structured", kw))
        fake.SamplingParams = lambda **kw: kw
        outer = self

        class LLM:
            def __init__(self, **kwargs):
                outer.calls.append(("init", kwargs))

            def get_tokenizer(self):
                return types.SimpleNamespace(encode=lambda text, add_special_tokens: IDS[text])

            def chat(self, conversations, params, use_tqdm):
                outer.calls.append(("chat", conversations, params))
                return outer.answers[:len(conversations)]

        fake.LLM = LLM
        return fake


def test_one_chat_call_for_the_batch(monkeypatch):
    fake = FakeVLLM([fake_output("positive", [11], [{11: math.log(0.8), 12: math.log(0.1)}]),
                     fake_output("negative", [12, 13], [{12: math.log(0.9)}, {13: math.log(0.6), 14: math.log(0.4)}]),
                     fake_output("maybe", [99], [{99: 0.0}])])
    monkeypatch.setitem(sys.modules, "vllm", fake.module())
    teacher = build_teacher(CONFIG, TASK, progress=False)
    items = [TeacherItem("a", "Great!"), TeacherItem("b", "Awful.", (Example("Fine.", "neutral"),)),
             TeacherItem("c", "Hm.")]
    seen = []
    results = teacher.label(items, on_result=lambda i, r: seen.append(i))
    inits = [c for c in fake.calls if c[0] == "init"]
    chats = [c for c in fake.calls if c[0] == "chat"]
    assert len(inits) == 1 and inits[0][1]["gpu_memory_utilization"] == 0.5 and inits[0][1]["enable_prefix_caching"]
    assert len(chats) == 1 and len(chats[0][1]) == 3
    assert chats[0][2]["structured_outputs"] == ("structured", {"choice": TASK.label_names})
    assert chats[0][1][1][1:3] == [{"role": "user", "content": "Text: Fine."}, {"role": "assistant", "content": "neutral"}]
    assert seen == [0, 1, 2]
    assert results[0].label == "positive" and results[0].confidence == pytest.approx(0.8 / 0.9)
    assert results[0].distribution["neutral"] == pytest.approx(0.05 / 0.9)
    assert results[1].label == "negative" and results[1].distribution["neutral"] == pytest.approx(0.9 * 0.4 / 0.9)
    assert results[1].usage.prompt_tokens == 30 and results[1].usage.completion_tokens == 2
    assert results[2].error == "out_of_set" and results[2].raw == "maybe" and results[2].confidence is None
    assert len({r.prompt_hash for r in results}) == 3
    teacher.label(items[:1])
    assert len([c for c in fake.calls if c[0] == "init"]) == 1  # the engine is made once


def test_vllm_is_imported_only_when_labeling():
    code = """
import sys
from quarry_al.engine.config import TaskConfig
from quarry_al.engine.teacher.options import OpenAITeacherConfig, VLLMTeacherConfig
import quarry_al.engine.loop, quarry_al.engine.teacher.vllm_offline
from quarry_al.engine.teacher import TeacherItem, build_teacher
task = TaskConfig(labels=["a", "b"], instruction="x")
build_teacher(OpenAITeacherConfig(model="m", base_url="http://127.0.0.1:9/v1"), task)
teacher = build_teacher(VLLMTeacherConfig(model="m"), task)
assert "vllm" not in sys.modules, "vllm imported before labeling"
try:
    teacher.label([TeacherItem("1", "t")])
except RuntimeError as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", CHECKOUT_PRELUDE + code], capture_output=True, text=True, timeout=120,
                          env={"HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": "x", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    if "vllm" not in done.stdout:  # vLLM happens to be installed here: the error case does not apply
        pytest.skip("vllm is installed")
    assert "teacher.kind vllm: vLLM is not installed" in done.stdout and "pip install 'quarry[vllm]'" in done.stdout


def test_config_rejects_unknown_keys():
    from quarry_al.engine.config import JobConfig
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="gpu_util"):
        JobConfig.model_validate({"name": "x", "task": {"labels": ["a", "b"], "instruction": "i"},
                                  "data": {"pool": "p", "eval": "e"},
                                  "teacher": {"kind": "vllm", "model": "m", "gpu_util": 0.5}})
