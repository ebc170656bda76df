"""vLLM's offline engine writing answers (task.kind generation), for batch jobs on a GPU machine.

Three `LLM.chat` calls per batch: the answers (`generation.max_tokens`, `temperature`, `stop`, `seed`), the
self-consistency samples as `n` completions of one request each, and the judge (one token with its top
logprobs: the grade's probabilities). vLLM is imported only when the first batch is written.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Sequence

from ..core.models import resolve_model_path
from ..task import TaskConfig
from .answers import Agreement, AnswerPrompts, answer_estimate, answer_signals, expected_grade, grade_probs_from_top
from .base import OnResult, TeacherItem, TeacherResult, Usage
from .estimate import Estimate, TokenizerLoader
from .options import VLLMTeacherConfig

JUDGE_TOP_LOGPROBS = 20


def judge_top(output: Any) -> list[tuple[str, float]]:
    """(token text, logprob) of the judge's first token alternatives, from a vLLM RequestOutput."""
    completion = output.outputs[0]
    steps = completion.logprobs or []
    if not steps:
        return []
    return [(getattr(lp, "decoded_token", None) or "", float(getattr(lp, "logprob", lp))) for lp in steps[0].values()]


class VLLMWriter:
    def __init__(self, config: VLLMTeacherConfig, task: TaskConfig, progress: bool = True):
        self.config, self.task, self.progress = config, task, progress
        self.options = config.generation
        self.model_id = f"vllm:{config.model}"
        self.prompts = AnswerPrompts(self.options, task)
        self.params = self.prompts.params()
        self.judge, self.consistency = answer_signals(self.options)
        self.agreement = Agreement(self.options.embedding_model) if self.consistency else None
        self._llm: Any = None
        self._vllm: Any = None

    def cache_key(self, item: TeacherItem) -> str:
        return self.prompts.key(self.model_id, item, self.params)

    def _engine(self) -> Any:
        if self._llm is None:
            try:
                import vllm
            except ImportError as exc:
                raise RuntimeError(f"teacher.kind vllm: vLLM is not installed ({exc}); on a GPU machine: "
                                   "pip install 'quarry-al[vllm]'") from None
            self._vllm = vllm
            self._llm = vllm.LLM(model=resolve_model_path(self.config.model), seed=self.config.seed,
                                 enable_prefix_caching=self.config.enable_prefix_caching, **self.config.engine_args)
        return self._llm

    def _params(self, **kwargs: Any) -> Any:
        stop = {"stop": list(self.options.stop)} if self.options.stop and kwargs.get("max_tokens") != 1 else {}
        return self._vllm.SamplingParams(**stop, **kwargs)

    def label(self, items: Sequence[TeacherItem], on_result: OnResult | None = None) -> list[TeacherResult]:
        if not items:
            return []
        llm, opts = self._engine(), self.options
        started = time.perf_counter()
        conversations = [self.prompts.answer(item) for item in items]
        outputs = llm.chat(conversations, self._params(temperature=opts.temperature, max_tokens=opts.max_tokens,
                                                       seed=opts.seed), use_tqdm=self.progress)
        texts = [o.outputs[0].text.strip() for o in outputs]
        prompt_tokens = [len(o.prompt_token_ids or []) for o in outputs]
        completion = [len(o.outputs[0].token_ids) for o in outputs]
        signals: list[dict[str, float]] = [{} for _ in items]
        if self.agreement is not None:
            sampled = llm.chat(conversations, self._params(n=opts.samples, temperature=opts.sample_temperature,
                                                           max_tokens=opts.max_tokens, seed=opts.seed + 1),
                               use_tqdm=self.progress)
            for row, output in enumerate(sampled):
                signals[row]["self_consistency"] = self.agreement([texts[row]] + [c.text.strip() for c in output.outputs])
                prompt_tokens[row] += len(output.prompt_token_ids or []) * opts.samples
                completion[row] += sum(len(c.token_ids) for c in output.outputs)
        if self.judge:
            judged = llm.chat([self.prompts.judge(item, text) for item, text in zip(items, texts)],
                              self._params(temperature=0.0, max_tokens=1, logprobs=JUDGE_TOP_LOGPROBS),
                              use_tqdm=self.progress)
            for row, output in enumerate(judged):
                grade = expected_grade(grade_probs_from_top(judge_top(output)))
                if grade is not None and not math.isnan(grade):
                    signals[row]["judge"] = grade
                prompt_tokens[row] += len(output.prompt_token_ids or [])
                completion[row] += 1
        latency = (time.perf_counter() - started) / len(items)
        results = []
        for row, item in enumerate(items):
            common = dict(raw=texts[row], usage=Usage(prompt_tokens[row], completion[row]),
                          prompt_hash=self.cache_key(item), latency_s=latency, confidence_method="generation")
            result = (TeacherResult(label=None, confidence=None, text=texts[row], signals=signals[row], **common)
                      if texts[row] else TeacherResult(label=None, confidence=None, error="unparsable",
                                                       error_message="empty answer", **common))
            results.append(result)
            if on_result is not None:
                on_result(row, result)
        return results

    def close(self) -> None:
        self._llm = None


def estimate(config: VLLMTeacherConfig, task: TaskConfig, *, sample: Sequence[str], shown: str,
             load_tokenizer: TokenizerLoader) -> Estimate:
    """`quarry plan` for answers; never imports vLLM (the model's tokenizer when the model is on this machine)."""
    local = Path(resolve_model_path(config.model)).is_dir()
    return answer_estimate(config.generation, task, config.model if local else None, "teacher.model", sample, shown,
                           load_tokenizer)
