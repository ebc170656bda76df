"""The embedded local teacher writing answers (task.kind generation): the same model as engine/teacher/local.py,
generating with transformers on this machine, in batches of `teacher.batch_size` prompts.

Per batch: the answers (greedy at temperature 0, else sampled with `generation.seed`), then the
self-consistency samples, then the judge, whose grade probabilities are the five digits' likelihoods as
the answer's first token (the model cannot answer outside them). Every item of a batch is handed to
`on_result` as soon as its batch is done, so the loop commits it before the next batch is paid for.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.lm import label_logprobs, make_batch
from ..core.models import load_causal_lm
from ..task import TaskConfig
from .answers import GRADES, Agreement, AnswerPrompts, answer_estimate, answer_signals, cut_at_stop, expected_grade
from .base import OnResult, TeacherItem, TeacherResult, Usage
from .estimate import Estimate, TokenizerLoader
from .options import LocalTeacherConfig


class LocalWriter:
    def __init__(self, config: LocalTeacherConfig, task: TaskConfig, progress: bool = True):
        self.config, self.task, self.progress = config, task, progress
        self.options = config.generation
        self.model_id = f"local:{config.model}" + (f"/{config.gguf_file}" if config.gguf_file else "")
        self.prompts = AnswerPrompts(self.options, task)
        self.params = self.prompts.params({"max_length": config.max_length})
        self.tokenizer, self.model = load_causal_lm(config.model, config.gguf_file, config.cache_dir)
        self.model.to(torch.device(config.device)).eval()
        self.end_id = self.tokenizer.convert_tokens_to_ids(self.tokenizer.eos_token)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.end_id
        self.grade_ids = [self.tokenizer(g, add_special_tokens=False)["input_ids"] for g in GRADES]
        self.judge, self.consistency = answer_signals(self.options)
        self.agreement = Agreement(self.options.embedding_model) if self.consistency else None

    def cache_key(self, item: TeacherItem) -> str:
        return self.prompts.key(self.model_id, item, self.params)

    def _ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        room = self.config.max_length
        return ids[-room:] if len(ids) > room else ids  # keep the end: the instruction's last part and the cue

    @torch.inference_mode()
    def _generate(self, prompts: list[list[int]], temperature: float, seed: int) -> list[tuple[str, int]]:
        """(answer text, generated tokens) per prompt, from one left-padded batch."""
        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids):], mask[row, width - len(ids):] = torch.tensor(ids), 1
        sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0} if temperature > 0 else {
            "do_sample": False}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            output = self.model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                         max_new_tokens=self.options.max_tokens, pad_token_id=self.pad_id,
                                         eos_token_id=self.end_id, **sampling)
        results = []
        for row in output[:, width:].tolist():
            tokens = row[:row.index(self.end_id)] if self.end_id in row else row
            text = cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), self.options.stop)
            results.append((text, len(tokens) + (self.end_id in row)))
        return results

    @torch.inference_mode()
    def _grades(self, prompts: list[list[int]]) -> list[float | None]:
        batch = make_batch(prompts, [[]] * len(prompts), self.pad_id)
        logprobs = label_logprobs(self.model, batch, self.grade_ids, self.pad_id)[0]
        probs = torch.softmax(logprobs.float(), dim=-1).cpu().numpy()
        return [expected_grade(dict(zip(GRADES, row.tolist()))) for row in probs]

    def _batch(self, items: Sequence[TeacherItem]) -> list[TeacherResult]:
        started = time.perf_counter()
        prompts = [self._ids(self.prompts.answer(item)) for item in items]
        answers = self._generate(prompts, self.options.temperature, self.options.seed)
        prompt_tokens = np.array([len(p) for p in prompts])
        completion = np.array([n for _, n in answers])
        signals: list[dict[str, float]] = [{} for _ in items]
        if self.agreement is not None:
            samples = [self._generate(prompts, self.options.sample_temperature, self.options.seed + 1 + i)
                       for i in range(self.options.samples)]
            for row, (text, _) in enumerate(answers):
                signals[row]["self_consistency"] = self.agreement([text] + [s[row][0] for s in samples])
            prompt_tokens = prompt_tokens * (1 + self.options.samples)
            completion = completion + np.sum([[n for _, n in s] for s in samples], axis=0)
        if self.judge:
            judged = [self._ids(self.prompts.judge(item, text)) for item, (text, _) in zip(items, answers)]
            for row, grade in enumerate(self._grades(judged)):
                if grade is not None:
                    signals[row]["judge"] = grade
            prompt_tokens = prompt_tokens + np.array([len(p) for p in judged])
        latency = (time.perf_counter() - started) / len(items)
        results = []
        for row, (item, (text, _)) in enumerate(zip(items, answers)):
            usage = Usage(int(prompt_tokens[row]), int(completion[row]))
            common = dict(raw=text, usage=usage, prompt_hash=self.cache_key(item), latency_s=latency,
                          confidence_method="generation")
            if not text:
                results.append(TeacherResult(label=None, confidence=None, error="unparsable",
                                             error_message="empty answer", **common))
            else:
                results.append(TeacherResult(label=None, confidence=None, text=text, signals=signals[row], **common))
        return results

    def label(self, items: Sequence[TeacherItem], on_result: OnResult | None = None) -> list[TeacherResult]:
        """Answers in the order of `items`, in batches of similar prompt length (`on_result` may fire out of order)."""
        items = list(items)
        lengths = [len(item.text) + len(item.input) for item in items]
        order = sorted(range(len(items)), key=lengths.__getitem__)
        results: list[TeacherResult | None] = [None] * len(items)
        with tqdm(total=len(items), desc="teacher writing", unit="item", disable=not self.progress, leave=False) as bar:
            for start in range(0, len(order), self.config.batch_size):
                rows = order[start:start + self.config.batch_size]
                for position, result in zip(rows, self._batch([items[i] for i in rows])):
                    results[position] = result
                    if on_result is not None:
                        on_result(position, result)
                bar.update(len(rows))
        return [r for r in results if r is not None]

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]


def estimate(config: LocalTeacherConfig, task: TaskConfig, *, sample: Sequence[str], shown: str,
             load_tokenizer: TokenizerLoader) -> Estimate:
    """`quarry plan` for answers: the prompt once per answer and sample, the judge's prompt with an answer in
    it; answers counted at `max_tokens` (an upper bound: most stop sooner)."""
    return answer_estimate(config.generation, task, config.model, "teacher.model", sample, shown, load_tokenizer)
