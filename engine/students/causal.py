"""The causal-LM student: a small instruction model (SmolLM2-135M-Instruct by default) with a LoRA
adapter, for instruction data (instruction -> response) and, through causal_classifier.py, classification.

Training is supervised fine-tuning in the model's chat template: the user turn is the instruction
(and its input), the assistant turn the response, and only response tokens carry loss. It is retrained
from the base weights every round, with the step budget of engine/students/training.py.

Selection scores need no teacher call:
- the mean token entropy and the mean NLL of the student's own greedy draft: how unsure it is what to say;
- IFD, Instruction-Following Difficulty = PPL(output | instruction) / PPL(output), where the pool has
  outputs (Li et al. 2024, "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data
  Selection for Instruction Tuning", NAACL; from a small scorer model: Li et al. 2024, "Superfiltering:
  Weak-to-Strong Data Filtering for Fast Instruction-Tuning", ACL). The unconditional PPL is the output
  as the answer to an empty user turn, so the two differ only by the instruction. IFD >= 1 means the
  instruction does not help predict the output: such pairs are flagged as likely misaligned;
- embeddings: the mean last hidden state over the instruction's tokens (the chat template's fixed
  system turn left out: its states are the same for every item), for the diversity strategies.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import StudentConfig
from ..core.lm import TokenBatch, greedy_drafts, label_logprobs, make_batch, response_counts, token_nll
from ..core.models import load_causal_lm
from .training import TrainStats, run_steps
from ...strategies.base import Scores


class PairLike(Protocol):
    """An instruction, its input ("" when none) and, where known, the response (engine.data.InstructionRecord is one)."""

    @property
    def instruction(self) -> str: ...

    @property
    def input(self) -> str: ...

    @property
    def output(self) -> str | None: ...


@dataclass(frozen=True)
class Pair:
    instruction: str
    input: str = ""
    output: str | None = None


def user_turn(pair: PairLike) -> str:
    """The user's message: the instruction, then its input after a blank line (the Alpaca layout)."""
    return f"{pair.instruction}\n\n{pair.input}" if pair.input else pair.instruction


@dataclass(frozen=True)
class GenerationScores:
    """Per-item selection scores, aligned to the input order; NaN where not computed (no output: no IFD;
    drafts off: no draft scores)."""

    token_entropy: np.ndarray  # (n,) mean next-token entropy (nats) over the student's greedy draft
    draft_nll: np.ndarray  # (n,) mean NLL of the draft's tokens
    ifd: np.ndarray  # (n,) exp(cond_nll - uncond_nll)
    cond_nll: np.ndarray  # (n,) mean NLL of the output's tokens after the instruction
    uncond_nll: np.ndarray  # (n,) ... after an empty user turn
    embeddings: np.ndarray  # (n, d) pooled instruction states
    drafts: tuple[str, ...]  # the student's greedy answers ("" when drafts are off)

    def as_scores(self) -> Scores:
        """The strategies' input. A generation task has no classes: probs is one certain column, so
        class-uncertainty strategies see no signal and the generation strategies read their own fields."""
        return Scores(probs=np.ones((len(self.ifd), 1), dtype=np.float32), embeddings=self.embeddings,
                      token_entropy=self.token_entropy, ifd=self.ifd)


def length_batches(lengths: Sequence[int], size: int) -> Iterator[np.ndarray]:
    """Indices in batches of similar length (little padding); results go back by index."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    for start in range(0, len(order), size):
        yield order[start:start + size]


class CausalStudent:
    def __init__(self, config: StudentConfig):
        self.config = config
        self.device = torch.device(config.device)
        self.tokenizer, base = self._load()
        self.model: torch.nn.Module = base.to(self.device).eval()  # the base model until fit or load
        self.hidden_size = int(base.config.hidden_size)
        self._trained = False
        self.end_text = self.tokenizer.eos_token or ""
        self.end_id = self.tokenizer.convert_tokens_to_ids(self.end_text)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.end_id
        # The template's head (system turn, user header) is the same for every prompt: its length is
        # the common prefix of two prompts, and pooling skips it.
        a, b = self._prompt_ids("a"), self._prompt_ids("b")
        self.template_head = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        self.empty_prompt = self._prompt_ids("")

    # --- model ---------------------------------------------------------------------------
    def _load(self) -> tuple[object, torch.nn.Module]:
        causal = self.config.causal
        return load_causal_lm(self.config.model, causal.gguf_file, causal.cache_dir)

    def _fresh_model(self) -> torch.nn.Module:
        model = self._load()[1]
        if self.config.method == "lora":
            from peft import LoraConfig, TaskType, get_peft_model

            lora = self.config.lora
            model = get_peft_model(model, LoraConfig(
                task_type=TaskType.CAUSAL_LM, r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                target_modules=lora.target_modules))
        return model.to(self.device)

    @property
    def trained(self) -> bool:
        return self._trained

    # --- tokens --------------------------------------------------------------------------
    def _prompt_ids(self, user: str) -> list[int]:
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                                  add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _response_ids(self, output: str) -> list[int]:
        return self.tokenizer(output + self.end_text, add_special_tokens=False)["input_ids"]

    def _clip(self, prompt: list[int], response: list[int]) -> tuple[list[int], list[int]]:
        """Fit prompt + response into max_length: a long prompt loses its middle (the template's head and
        the end of the user turn stay), keeping at least half the room; the response loses its end."""
        room = self.config.max_length
        keep = min(len(prompt), max(room // 2, room - len(response)))
        if keep < len(prompt):
            head = min(self.template_head, keep // 2)
            prompt = prompt[:head] + prompt[len(prompt) - (keep - head):]
        return prompt, response[:room - len(prompt)]

    def encode(self, pair: PairLike) -> tuple[list[int], list[int]]:
        """(prompt, response) token ids of a pair with an output, clipped to max_length."""
        if not pair.output:
            raise ValueError(f"pair without an output: {pair.instruction[:60]!r}")
        return self._clip(self._prompt_ids(user_turn(pair)), self._response_ids(pair.output))

    def batch(self, encoded: Sequence[tuple[list[int], list[int]]]) -> TokenBatch:
        """The left-padded batch fit trains on: labels are the response tokens, IGNORE (-100) elsewhere."""
        return make_batch([p for p, _ in encoded], [r for _, r in encoded], self.pad_id, self.template_head)

    # --- training ------------------------------------------------------------------------
    def fit(self, pairs: Sequence[PairLike], seed: int, progress: bool = True) -> TrainStats:
        """Train a fresh adapter on the pairs; deterministic for a seed and an ordered pair list."""
        if not pairs:
            raise ValueError("the student needs at least one pair to train on")
        encoded = [self.encode(pair) for pair in pairs]
        with torch.random.fork_rng(devices=[]):  # seeded LoRA init and dropout, the caller's RNG untouched
            torch.manual_seed(seed)
            model = self._fresh_model()

            def batch_loss(rows: list[int]) -> torch.Tensor:
                batch = self.batch([encoded[i] for i in rows])
                return token_nll(model, batch)[0].sum() / response_counts(batch).sum().clamp(min=1)

            stats = run_steps(model, self.config, len(encoded), seed, progress, batch_loss)
        self.model, self._trained = model, True
        return stats

    # --- persistence ---------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """The LoRA adapter (or the whole model for full fine-tuning); the run folder makes the write atomic."""
        if not self._trained:
            raise RuntimeError("nothing to save: the student has not been trained")
        self.model.save_pretrained(Path(folder))

    def load(self, folder: str | Path) -> None:
        if self.config.method == "lora":
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self._load()[1], Path(folder))
        else:
            from transformers import AutoModelForCausalLM

            self.model = AutoModelForCausalLM.from_pretrained(Path(folder))
        self.model.to(self.device).eval()
        self._trained = True

    # --- scores --------------------------------------------------------------------------
    @torch.inference_mode()
    def _nll_pass(self, encoded: Sequence[tuple[list[int], list[int]]], pool: bool, progress: bool,
                  desc: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(n,) mean response-token NLL of (prompt, response) rows, and with `pool` their (n, d) prompt states."""
        nll = np.full(len(encoded), np.nan)
        embeddings = np.zeros((len(encoded), self.hidden_size), dtype=np.float32) if pool else None
        with tqdm(total=len(encoded), desc=desc, unit="pair", disable=not progress, leave=False) as bar:
            for rows in length_batches([len(p) + len(r) for p, r in encoded], self.config.score_batch_size):
                batch = self.batch([encoded[i] for i in rows])
                tokens, states = token_nll(self.model, batch, pool=pool)
                nll[rows] = (tokens.sum(1) / response_counts(batch).clamp(min=1)).cpu().numpy()
                if embeddings is not None:
                    embeddings[rows] = states.float().cpu().numpy()
                bar.update(len(rows))
        return nll, embeddings

    def response_nll(self, pairs: Sequence[PairLike], progress: bool = False) -> np.ndarray:
        """(n,) mean NLL of each pair's output tokens after its instruction: eval NLL on references, and how
        surprised the student is by a teacher's answer."""
        return self._nll_pass([self.encode(pair) for pair in pairs], False, progress, "response NLL")[0]

    def ifd(self, pairs: Sequence[PairLike], progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """IFD, conditional NLL, unconditional NLL (each (n,)) and pooled instruction states (n, d) of pairs
        with outputs. The unconditional pass scores exactly the same (clipped) output tokens."""
        encoded = [self.encode(pair) for pair in pairs]
        cond, embeddings = self._nll_pass(encoded, True, progress, "IFD (conditional)")
        uncond, _ = self._nll_pass([(self.empty_prompt, r) for _, r in encoded], False, progress, "IFD (output alone)")
        return np.exp(cond - uncond), cond, uncond, embeddings

    @torch.inference_mode()
    def drafts(self, pairs: Sequence[PairLike], progress: bool = False,
               max_new_tokens: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Token entropy and NLL (each (n,)) of the student's greedy drafts, pooled instruction states
        (n, d) and the drafts' text; at most `max_new_tokens` (default student.causal.max_new_tokens)."""
        steps = max_new_tokens or self.config.causal.max_new_tokens
        prompts = [self._clip(self._prompt_ids(user_turn(pair)), [])[0] for pair in pairs]
        entropy, nll, texts = np.full(len(pairs), np.nan), np.full(len(pairs), np.nan), [""] * len(pairs)
        embeddings = np.zeros((len(pairs), self.hidden_size), dtype=np.float32)
        with tqdm(total=len(pairs), desc="drafting", unit="pair", disable=not progress, leave=False) as bar:
            for rows in length_batches([len(p) for p in prompts], self.config.score_batch_size):
                batch = make_batch([prompts[i] for i in rows], [[]] * len(rows), self.pad_id, self.template_head)
                drafted = greedy_drafts(self.model, batch, self.end_id, steps)
                entropy[rows], nll[rows], embeddings[rows] = drafted.token_entropy, drafted.nll, drafted.embeddings
                for row, tokens in zip(rows, drafted.tokens):
                    texts[row] = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
                bar.update(len(rows))
        return entropy, nll, embeddings, texts

    def score(self, pairs: Sequence[PairLike], progress: bool = False, drafts: bool = True) -> GenerationScores:
        """Every selection score of `pairs`: drafts (unless turned off) for all, IFD where there is an output.
        Without drafts the embeddings come from the IFD pass, or the instruction alone where there is no output."""
        n = len(pairs)
        entropy, draft_nll, ifd, cond, uncond = (np.full(n, np.nan) for _ in range(5))
        embeddings, texts = np.zeros((n, self.hidden_size), dtype=np.float32), [""] * n
        if drafts:
            entropy, draft_nll, embeddings, texts = self.drafts(pairs, progress)
        with_output = np.array([bool(pair.output) for pair in pairs], dtype=bool)
        rows, missing = np.flatnonzero(with_output), np.flatnonzero(~with_output)
        if len(rows):
            ifd[rows], cond[rows], uncond[rows], states = self.ifd([pairs[i] for i in rows], progress)
            if not drafts:
                embeddings[rows] = states
        if len(missing) and not drafts:
            encoded = [self._clip(self._prompt_ids(user_turn(pairs[i])), []) for i in missing]
            embeddings[missing] = self._nll_pass(encoded, True, progress, "embedding")[1]
        return GenerationScores(token_entropy=entropy, draft_nll=draft_nll, ifd=ifd, cond_nll=cond, uncond_nll=uncond,
                                embeddings=embeddings, drafts=tuple(texts))

    # --- classification ------------------------------------------------------------------
    @torch.inference_mode()
    def label_scores(self, texts: Sequence[str], label_names: Sequence[str], prompt: str,
                     progress: bool = False, desc: str = "scoring") -> tuple[np.ndarray, np.ndarray]:
        """(n, c) probabilities of each label as the whole assistant answer (label tokens and the end
        token), normalized over the labels, and (n, d) pooled prompt states. `prompt` is the user turn
        with {text} and {labels} (the names joined by ", ")."""
        labels = [self._response_ids(name) for name in label_names]
        longest, joined = max(labels, key=len), ", ".join(label_names)
        prompts = [self._clip(self._prompt_ids(prompt.format(text=text, labels=joined)), longest)[0] for text in texts]
        probs = np.zeros((len(texts), len(labels)), dtype=np.float32)
        embeddings = np.zeros((len(texts), self.hidden_size), dtype=np.float32)
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not progress, leave=False) as bar:
            for rows in length_batches([len(p) for p in prompts], self.config.score_batch_size):
                batch = make_batch([prompts[i] for i in rows], [[]] * len(rows), self.pad_id, self.template_head)
                logprobs, states = label_logprobs(self.model, batch, labels, self.pad_id)
                probs[rows] = torch.softmax(logprobs, dim=-1).cpu().numpy()
                embeddings[rows] = states.float().cpu().numpy()
                bar.update(len(rows))
        return probs, embeddings

    def label_probs(self, texts: Sequence[str], label_names: Sequence[str], prompt: str) -> np.ndarray:
        """(n, c) label probabilities (see label_scores)."""
        return self.label_scores(texts, label_names, prompt)[0]
