"""Teacher labeling through Ray Data, for the Ray executor: the calls run in Ray actors, the ledger stays here.

- OpenAI-compatible servers (`teacher.kind: openai`): an HTTP processor of our own, `map_batches` over the
  items on a pool of actors, each holding Quarry's OpenAI client (the same prompts, confidence methods,
  retries and rate limits as the local path; ray.data.llm's HttpRequestProcessorConfig sends one request
  per row and could not run the multi-call confidence methods: self_consistency, p_true).
- vLLM (`teacher.kind: vllm`): ray.data.llm's processor, `build_processor(vLLMEngineProcessorConfig(...))`,
  with the labels as a structured-output choice; confidence is the probability of the generated label
  (its tokens' logprobs summed). It needs GPUs: this code path is not run on this machine.

The driver keeps the call cache and the store: `CachingTeacher` (engine/teacher/cache.py) asks the cache
first with the same keys as the local backend, and every result is cached and committed as it streams
back. A worker that dies mid-batch is restarted and its batch retried by Ray; a result that comes back
twice (a retried batch) is taken once; an item Ray gives up on is recorded as failed (`connection`, a
transient error the label phase asks again). So no item is recorded twice, and none is left without a row.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..core.models import resolve_model_path
from ..executor_config import ExecutorConfig
from ..task import TaskConfig
from ..teacher import Teacher, build_teacher
from ..teacher.base import Example, OnResult, TeacherItem, TeacherResult, Usage, prompt_hash
from ..teacher.openai_compat import OpenAITeacher
from ..teacher.options import OpenAITeacherConfig, TeacherOptions, VLLMTeacherConfig
from ..teacher.parsing import parse_bare
from ..teacher.vllm_offline import VLLMTeacher, sampling_kwargs


def item_row(position: int, item: TeacherItem) -> dict[str, Any]:
    return {"position": position, "item": json.dumps([item.item_id, item.text, [[e.text, e.label] for e in item.examples],
                                                      item.input])}


def item_of(row: str) -> TeacherItem:
    item_id, text, examples, input_ = json.loads(row)
    return TeacherItem(item_id, text, tuple(Example(t, label) for t, label in examples), input_)


def result_json(result: TeacherResult) -> str:
    return json.dumps(dataclasses.asdict(result))


def result_of(text: str) -> TeacherResult:
    fields = json.loads(text)
    fields["usage"] = Usage(**fields["usage"])
    return TeacherResult(**fields)


class _HttpLabeler:
    """A Ray Data actor: Quarry's OpenAI-compatible client, built once, labeling a batch of items at a time."""

    def __init__(self, config: OpenAITeacherConfig, task: TaskConfig):
        self.teacher = OpenAITeacher(config, task, progress=False)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.teacher.label([item_of(str(row)) for row in batch["item"]])
        return {"position": np.asarray(batch["position"], dtype=np.int64),
                "result": np.array([result_json(r) for r in results], dtype=object)}


def stream_results(rows: Iterable[dict[str, Any]], n: int, on_result: OnResult | None) -> list[TeacherResult]:
    """Take each position's first result as it arrives; what never arrives is recorded as failed."""
    results: list[TeacherResult | None] = [None] * n
    failure = ""
    try:
        for row in rows:
            position = int(row["position"])
            if results[position] is None:  # a retried batch's second answer is not a second call
                results[position] = result_of(str(row["result"]))
                if on_result is not None:
                    on_result(position, results[position])
    except Exception as exc:  # Ray gave up on a batch (its retries spent): its items fail, the rest stand
        failure = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    for position, result in enumerate(results):
        if result is None:
            results[position] = TeacherResult(label=None, confidence=None, error="connection",
                                              error_message=f"lost on a Ray worker ({failure or 'no result'})")
            if on_result is not None:
                on_result(position, results[position])
    return results  # type: ignore[return-value]


class RayHttpTeacher:
    """`teacher.kind: openai` with its calls made by Ray actors (executor.actors of them)."""

    def __init__(self, config: OpenAITeacherConfig, task: TaskConfig, executor: ExecutorConfig):
        self.local = OpenAITeacher(config, task, progress=False)  # the prompts and cache keys, as locally
        self.config, self.task, self.executor = config, task, executor
        self.model_id = self.local.model_id

    def cache_key(self, item: TeacherItem) -> str:
        return self.local.cache_key(item)

    def label(self, items: Sequence[TeacherItem], on_result: OnResult | None = None) -> list[TeacherResult]:
        import ray

        if not items:
            return []
        cfg, per_batch = self.executor, self.config.concurrency  # each actor keeps `concurrency` requests in flight
        rows = [item_row(p, item) for p, item in enumerate(items)]
        mapped = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / per_batch)).map_batches(
            _HttpLabeler, fn_constructor_args=(self.config, self.task), batch_size=per_batch, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=cfg.actors), num_cpus=cfg.label_cpus_per_actor,
            max_restarts=cfg.max_restarts, max_task_retries=cfg.max_task_retries)
        return stream_results(mapped.iter_rows(), len(rows), on_result)

    def close(self) -> None:
        self.local.close()


def vllm_processor(config: VLLMTeacherConfig, labels: Sequence[str], executor: ExecutorConfig) -> Callable:
    """ray.data.llm's vLLM processor for labeling: rows (position, messages) -> (position, text, logprob, tokens)."""
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    engine = {"enable_prefix_caching": config.enable_prefix_caching, "seed": config.seed, **config.engine_args}
    processor_config = vLLMEngineProcessorConfig(model_source=resolve_model_path(config.model), engine_kwargs=engine,
                                                 concurrency=executor.actors, batch_size=executor.label_batch_size)
    sampling = {"temperature": config.temperature, "max_tokens": config.max_tokens, "logprobs": 1,
                "structured_outputs": {"choice": list(labels)}}

    def preprocess(row: dict) -> dict:
        return {"position": row["position"], "messages": json.loads(row["messages"]), "sampling_params": sampling}

    def postprocess(row: dict) -> dict:
        steps = row.get("logprobs") or []
        chosen = [step[token]["logprob"] for step, token in zip(steps, row.get("generated_tokens") or []) if token in step]
        return {"position": row["position"], "text": row["generated_text"],
                "logprob": float(sum(chosen)) if chosen and len(chosen) == len(steps) else float("nan"),
                "prompt_tokens": int(row.get("num_input_tokens") or 0),
                "completion_tokens": int(row.get("num_generated_tokens") or 0)}

    return build_processor(processor_config, preprocess=preprocess, postprocess=postprocess)


class RayVLLMTeacher:
    """`teacher.kind: vllm` as a ray.data.llm processor on the cluster's GPUs; keys as the offline vLLM teacher's."""

    def __init__(self, config: VLLMTeacherConfig, task: TaskConfig, executor: ExecutorConfig):
        self.local = VLLMTeacher(config, task, progress=False)  # its messages only: the engine is never started here
        self.config, self.task, self.executor = config, task, executor
        self.model_id = self.local.model_id

    def label(self, items: Sequence[TeacherItem], on_result: OnResult | None = None) -> list[TeacherResult]:
        import ray

        if not items:
            return []
        conversations = self.local.messages(items)
        settings = json.dumps(sampling_kwargs(self.config), sort_keys=True) + ";choice"
        rows = [{"position": p, "messages": json.dumps(m)} for p, m in enumerate(conversations)]
        processed = vllm_processor(self.config, self.task.label_names, self.executor)(ray.data.from_items(rows))

        def results() -> Iterable[dict[str, Any]]:
            for row in processed.iter_rows():
                messages = conversations[int(row["position"])]
                key = prompt_hash(self.model_id, json.dumps(messages), settings)
                label, error, message = parse_bare(row["text"], self.task.label_names)
                usage = Usage(row["prompt_tokens"], row["completion_tokens"])
                result = (TeacherResult(label=None, confidence=None, raw=row["text"], usage=usage, error=error,
                                        error_message=message, prompt_hash=key) if error is not None else
                          TeacherResult(label=label, confidence=None if math.isnan(row["logprob"]) else math.exp(row["logprob"]),
                                        raw=row["text"], usage=usage, prompt_hash=key, confidence_method="logprobs"))
                yield {"position": row["position"], "result": result_json(result)}

        return stream_results(results(), len(rows), on_result)

    def close(self) -> None:
        self.local.close()


def build_ray_teacher(config: TeacherOptions, task: TaskConfig, executor: ExecutorConfig, progress: bool) -> Teacher:
    """The job's teacher with its calls on Ray, behind the driver's call cache and prices; a generation task's
    writers (and the local teacher) stay on the driver."""
    if task.kind != "classification":
        return build_teacher(config, task, progress=progress)
    if isinstance(config, OpenAITeacherConfig):
        return build_teacher(config, task, progress=progress, backend=RayHttpTeacher(config, task, executor))
    if isinstance(config, VLLMTeacherConfig):
        return build_teacher(config, task, progress=progress, backend=RayVLLMTeacher(config, task, executor))
    return build_teacher(config, task, progress=progress)
