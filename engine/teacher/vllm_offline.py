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

import json
import math
import time
from typing import Any, Mapping, Sequence

from quarry_al.engine.config import TaskConfig, VLLMTeacherConfig
from quarry_al.engine.core.models import resolve_model_path
from quarry_al.engine.teacher.base import OnResult, TeacherItem, TeacherResult, Usage, distribution_to_result, prompt_hash
from quarry_al.engine.teacher.prompts import load_template, render_messages


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


def label_distribution(label_ids: Mapping[str, Sequence[int]], generated: Sequence[int],
                       top: Sequence[Mapping[int, float]]) -> dict[str, float]:
    """Probabilities of the labels (not normalised) from the logprobs along the generated path.

    A label's probability is the product of its token probabilities while it follows the
    generated tokens, times that of the token where it leaves them (read from that position's
    top logprobs). What comes after is not observed: labels that leave the path by the same
    token share its probability equally. A label whose token is not among the top logprobs
    where it is needed gets 0.
    """
    logps: dict[str, float] = {}
    branch: dict[str, tuple[int, ...]] = {}  # where a label left the path before its end
    for label, ids in label_ids.items():
        logp = 0.0
        for pos, token in enumerate(ids):
            if pos >= len(top):
                break
            step = top[pos].get(token)
            if step is None:
                logp = -math.inf
                break
            logp += step
            if (pos >= len(generated) or generated[pos] != token) and pos < len(ids) - 1:
                branch[label] = tuple(ids[:pos + 1])
                break
        logps[label] = logp
    sharing = {key: list(branch.values()).count(key) for key in set(branch.values())}
    return {label: math.exp(logp) / (sharing[branch[label]] if label in branch else 1)
            for label, logp in logps.items()}


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
            if text not in self.task.label_names:
                result = TeacherResult(label=None, confidence=None, raw=text, usage=usage, error="out_of_set",
                                       error_message=f"answer {text!r} is not a label", prompt_hash=key,
                                       latency_s=latency)
            else:
                result = distribution_to_result(probs, raw=text, usage=usage, prompt_hash=key, latency_s=latency)
            results.append(result)
            if on_result is not None:
                on_result(position, result)
        return results

    def close(self) -> None:
        self._llm = None
