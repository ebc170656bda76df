"""vLLM's offline engine as the teacher, for batch jobs on a GPU machine (`teacher.kind: vllm`).

One `LLM.chat` call labels the whole batch; decoding is constrained to the label set
(vLLM's structured outputs, `choice`), so every answer is a label; the confidence is a
distribution over the labels read from the returned token logprobs.

vLLM is imported only when the first batch is labeled, so choosing another backend never
imports it and the package's tests need neither vLLM nor a GPU. Its structured-output
parameters were renamed in v0.12 (`GuidedDecodingParams`/`guided_decoding` became
`StructuredOutputsParams`/`structured_outputs`); both are supported.
"""
from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.errors import TeacherUnavailable
from ..task import TaskConfig
from ..core.models import check_model, resolve_model_path
from .base import OnResult, TeacherItem, TeacherResult, Usage, distribution_to_result, prompt_hash
from .confidence import label_distribution
from .estimate import Estimate, TokenizerLoader, answer_tokens, mean_prompt_tokens, token_counter
from .options import VLLMTeacherConfig
from .parsing import parse_bare
from .preflight import Preflight
from .prompts import load_template, render_messages


def sampling_kwargs(config: VLLMTeacherConfig) -> dict[str, Any]:
    """SamplingParams arguments, apart from the structured-output constraint (named per vLLM version)."""
    return {"temperature": config.temperature, "max_tokens": config.max_tokens, "logprobs": config.top_logprobs,
            "seed": config.seed}


def make_sampling_params(vllm: Any, config: VLLMTeacherConfig, labels: Sequence[str]) -> Any:
    """`vllm.SamplingParams` constrained to `labels`, for the installed vLLM's structured-output API."""
    params_module = vllm.sampling_params
    kwargs = sampling_kwargs(config)
    if hasattr(params_module, "StructuredOutputsParams"):  # vLLM >= 0.12
        return vllm.SamplingParams(structured_outputs=params_module.StructuredOutputsParams(choice=list(labels)),
                                   **kwargs)
    if hasattr(params_module, "GuidedDecodingParams"):  # vLLM 0.6 - 0.11
        return vllm.SamplingParams(guided_decoding=params_module.GuidedDecodingParams(choice=list(labels)), **kwargs)
    raise RuntimeError("teacher.kind vllm: this vLLM has neither StructuredOutputsParams nor GuidedDecodingParams; "
                       "install vllm>=0.6")


def parse_output(output: Any, labels: Sequence[str], label_ids: Mapping[str, Sequence[int]]) -> tuple[str, dict[str, float]]:
    """(raw text, distribution over labels) of one vLLM RequestOutput."""
    completion = output.outputs[0]
    text = completion.text.strip()
    generated = list(completion.token_ids)
    top = [{token: float(getattr(lp, "logprob", lp)) for token, lp in position.items()}
           for position in (completion.logprobs or [])]
    probs = label_distribution({name: label_ids[name] for name in labels}, generated, top)
    if probs.get(text) == 0.0 and len(top) == len(generated):
        # The constraint let the model spell the label with other tokens than the tokenizer's: its own path counts.
        probs[text] = math.exp(sum(step[token] for step, token in zip(top, generated) if token in step))
    return text, probs


class VLLMTeacher:
    def __init__(self, config: VLLMTeacherConfig, task: TaskConfig, progress: bool = True):
        self.config = config
        self.task = task
        self.progress = progress
        self.model_id = f"vllm:{config.model}"
        self.template = load_template(config.prompt)
        self._llm: Any = None
        self._vllm: Any = None
        self._label_ids: dict[str, list[int]] = {}

    def _engine(self) -> Any:
        if self._llm is None:
            try:
                import vllm
            except ImportError as exc:
                raise RuntimeError(f"teacher.kind vllm: vLLM is not installed ({exc}); on a GPU machine: "
                                   "pip install 'quarry[vllm]'") from None
            self._vllm = vllm
            self._llm = vllm.LLM(model=resolve_model_path(self.config.model), seed=self.config.seed,
                                 enable_prefix_caching=self.config.enable_prefix_caching, **self.config.engine_args)
            tokenizer = self._llm.get_tokenizer()
            self._label_ids = {name: tokenizer.encode(name, add_special_tokens=False) for name in self.task.label_names}
        return self._llm

    def messages(self, items: Sequence[TeacherItem]) -> list[list[dict[str, str]]]:
        return [render_messages(self.template, self.task, item.text, output="label", examples=item.examples)
                for item in items]

    def label(self, items: Sequence[TeacherItem], on_result: OnResult | None = None) -> list[TeacherResult]:
        if not items:
            return []
        llm = self._engine()
        conversations = self.messages(items)
        params = make_sampling_params(self._vllm, self.config, self.task.label_names)
        started = time.perf_counter()
        outputs = llm.chat(conversations, params, use_tqdm=self.progress)
        latency = (time.perf_counter() - started) / len(items)  # one call for the batch: each item's share
        settings = json.dumps(sampling_kwargs(self.config), sort_keys=True)
        results = []
        for position, (messages, output) in enumerate(zip(conversations, outputs)):
            usage = Usage(prompt_tokens=len(output.prompt_token_ids or []),
                          completion_tokens=len(output.outputs[0].token_ids))
            key = prompt_hash(self.model_id, json.dumps(messages), settings + ";choice")
            text, probs = parse_output(output, self.task.label_names, self._label_ids)
            _, error, message = parse_bare(text, self.task.label_names)
            if error is not None:
                result = TeacherResult(label=None, confidence=None, raw=text, usage=usage, error=error,
                                       error_message=message, prompt_hash=key, latency_s=latency)
            else:
                result = distribution_to_result(probs, raw=text, usage=usage, prompt_hash=key, latency_s=latency)
            results.append(result)
            if on_result is not None:
                on_result(position, result)
        return results

    def close(self) -> None:
        self._llm = None


def estimate(config: VLLMTeacherConfig, task: TaskConfig, *, sample: Sequence[str], shown: str,
             load_tokenizer: TokenizerLoader) -> Estimate:
    """`quarry plan`: one generation per item, the label and nothing else. Never imports vLLM: tokens are
    counted with the model's tokenizer when the model is on this machine, else as characters / 4."""
    template = load_template(config.prompt)

    def render(text: str) -> list[dict[str, str]]:
        return render_messages(template, task, text, output="label")

    local = Path(resolve_model_path(config.model)).is_dir()
    count, how = token_counter(config.model if local else None, "teacher.model", load_tokenizer,
                               f"teacher.model {config.model!r} is not on this machine: its tokenizer is unknown")
    longest = max(task.label_names, key=len)
    answer = float(min(config.max_tokens, answer_tokens(count, longest)))
    return Estimate(1, mean_prompt_tokens(count, render, sample), answer, how, render(shown))


def preflight(config: VLLMTeacherConfig, task: TaskConfig) -> Preflight:
    """Before any work, cheaply: vLLM is installed (found, not imported: that takes seconds and a GPU) and
    the model can be found (core.models.check_model); the engine loads it with the first batch."""
    if importlib.util.find_spec("vllm") is None:
        raise TeacherUnavailable("teacher.kind vllm: vLLM is not installed here; on a GPU machine: "
                                 "pip install 'quarry-al[vllm]'")
    found = check_model(config.model, "teacher.model")
    return Preflight(target=f"model {config.model}", detail=f"found ({found}); vLLM is installed")
