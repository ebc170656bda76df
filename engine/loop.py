"""The conductor: one round is select -> label -> review -> train, each step committed.

Resuming is not a separate path: every pass reads the store, finds the first round that is
not done and continues it from its committed phase.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from quarry_al.engine.config import ConfigError, JobConfig
from quarry_al.engine.data import JobData, load_job_data
from quarry_al.engine.examples import with_examples
from quarry_al.engine.embeddings import pool_embeddings
from quarry_al.engine.review import simulate_review
from quarry_al.engine.routing import Router, StudentPrediction
from quarry_al.engine.stopping import remaining_budget, stop_reason, stop_set_indices, stop_set_metrics
from quarry_al.engine.store import Store
from quarry_al.engine.core.stats import classification_metrics
from quarry_al.engine.student import Student
from quarry_al.engine.teacher import Teacher, TeacherItem, TeacherResult, build_teacher
from quarry_al.engine.teacher.base import TRANSIENT_ERRORS
from quarry_al.engine.threshold import routing_for_round, routing_metrics
from quarry_al.strategies import EMBEDDINGS, MC_PROBS, Scores, SelectionState, make_strategy, mc_passes_of, needs_of

Log = Callable[[str], None]

# Sections that define what a run's labels mean; changing them under a run would mix two jobs.
_FIXED_SECTIONS = ("task", "data")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_run_dir(config: JobConfig) -> Path:
    return Path(config.run_dir) if config.run_dir else Path("runs") / config.name


@dataclass
class _Run:
    config: JobConfig
    run_dir: Path
    store: Store
    data: JobData
    progress: bool
    log: Log
    student: Student | None = None
    teacher: Teacher | None = None
    pool_texts: list[str] = field(default_factory=list)
    pool_ids: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return self.config.task.label_names

    def get_student(self) -> Student:
        if self.student is None:
            self.student = Student(self.config.student, self.labels)
        return self.student

    def get_teacher(self) -> Teacher:
        if self.teacher is None:
            self.log(f"loading teacher {self.config.teacher.model} ({self.config.teacher.kind})")
            self.teacher = build_teacher(self.config.teacher, self.config.task, progress=self.progress)
        return self.teacher

    def adapter_dir(self, round_: int) -> Path:
        return self.run_dir / "adapters" / f"round-{round_:03d}"


def run_job(config: JobConfig, run_dir: Path | None = None, *, progress: bool = True, log: Log = _stderr) -> str:
    """Start or resume a job; returns why it stopped (a stopping criterion, or waiting for reviews)."""
    run_dir = Path(run_dir) if run_dir else default_run_dir(config)
    for key, name, params in (("strategy.name", config.strategy.name, config.strategy.params),
                              ("strategy.cold_start", config.strategy.cold_start, config.strategy.cold_start_params)):
        try:
            strategy = make_strategy(name, params)  # a bad strategy or param fails now, not after round 0's training
        except ValueError as exc:
            message = str(exc)
            if key == "strategy.cold_start":
                message = message.replace("strategy.params.", "strategy.cold_start_params.")
            raise ConfigError(f"{key}: {message}" if message.startswith("unknown strategy") else message) from None
        if key == "strategy.cold_start" and MC_PROBS in needs_of(strategy):
            raise ConfigError(f"strategy.cold_start: {name!r} needs MC-dropout passes of a trained student, "
                              "which round 0 does not have (use random or kmeans)")
    data = load_job_data(config.data, config.task.label_names)
    for message in data.skipped:
        log(f"skipped bad row: {message}")
    run_dir.mkdir(parents=True, exist_ok=True)
    with Store(run_dir / "quarry.db") as store:
        _initialize_or_check(store, config, data, log)
        run = _Run(config, run_dir, store, data, progress, log)
        items = store.pool_items()
        run.pool_ids = [i.item_id for i in items]
        run.pool_texts = [i.text for i in items]
        try:
            return _drive(run)
        finally:
            if run.teacher is not None:
                run.teacher.close()


def _initialize_or_check(store: Store, config: JobConfig, data: JobData, log: Log) -> None:
    snapshot = config.model_dump(mode="json")
    if not store.is_initialized():
        if not data.seed and config.loop.initial_labels == 0:
            raise ConfigError("loop.initial_labels: is 0 and there is no data.seed file: the student has nothing to learn from")
        store.initialize(json.dumps(snapshot),
                         [(r.item_id, r.text, r.label) for r in data.pool],
                         [(r.item_id, r.text, r.label) for r in data.seed])
        log(f"new run: {len(data.pool)} pool items, {len(data.seed)} seed labels, {len(data.eval)} eval items")
        return
    stored = json.loads(store.config_json())
    for section in _FIXED_SECTIONS:
        if stored.get(section) != snapshot.get(section):
            raise ConfigError(f"{store.path}: the config's '{section}' section differs from the one this run was "
                              f"started with; use a new --run-dir for a different job")
    if stored != snapshot:
        store.set_meta("config", json.dumps(snapshot))
        log("resuming with changed settings (student, strategy, teacher, routing, review or loop)")
    rounds = store.rounds()
    log(f"resuming: {len([r for r in rounds if r.phase == 'done'])} rounds done")


def _drive(run: _Run) -> str:
    store = run.store
    while True:
        current = store.open_round()
        if current is None:
            history = store.history()
            reason = stop_reason(history, run.config.loop, store.items_requested()) if history else None
            if reason is None:
                reason = _select(run, len(store.rounds()))
            if reason is not None:
                store.set_stop_reason(reason)
                write_metrics_file(run.run_dir, store.history())
                run.log(f"stopped: {reason}")
                return reason
            current = store.open_round()
            assert current is not None
        round_, timings = current.round, dict(current.timings)
        if current.phase == "selected":
            _label(run, round_, timings)
        elif current.phase == "labeled":
            _review(run, round_, timings)
        elif current.phase == "reviewed":
            if not store.current_labels():
                # Queue mode that does not wait, before anyone has decided anything: nothing to train on yet.
                pending = store.pending_count()
                return f"waiting for {pending} pending reviews: no labels to train on yet (quarry review {run.run_dir})"
            _train_and_evaluate(run, round_, timings)


def _select(run: _Run, round_: int) -> str | None:
    """Choose and commit the round's items; returns a stop reason if there is nothing left to ask."""
    config, store = run.config, run.store
    k = config.loop.initial_labels if round_ == 0 else config.loop.batch_size
    budget_left = remaining_budget(config.loop, store.items_requested())
    if budget_left is not None:
        k = min(k, budget_left)
    requested = store.requested_ids()
    labeled = np.array([item_id in requested for item_id in run.pool_ids], dtype=bool)
    if round_ > 0 and (k <= 0 or labeled.all()):
        return "pool exhausted" if labeled.all() else "label budget spent"
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if round_ == 0:
        name, params = config.strategy.cold_start, config.strategy.cold_start_params
    else:
        name, params = config.strategy.name, config.strategy.params
    strategy = make_strategy(name, params)
    needs = needs_of(strategy)
    if round_ == 0:
        scores = Scores(probs=np.full((len(run.pool_ids), len(run.labels)), 1.0 / len(run.labels)),
                        embeddings=pool_embeddings(run.run_dir, config, run.pool_texts, run.progress)
                        if EMBEDDINGS in needs else None)
    else:
        scores = _pool_scores(run, round_, mc_passes_of(strategy) if MC_PROBS in needs else 0)
        if EMBEDDINGS in needs and config.strategy.embeddings.source != "student":
            scores = replace(scores, embeddings=pool_embeddings(run.run_dir, config, run.pool_texts, run.progress))
    timings["scoring_s"] = time.perf_counter() - started
    started = time.perf_counter()
    state = SelectionState(labeled=labeled, round=round_, history=tuple(store.history()),
                           labels=_label_indices(run), previous_probs=_previous_probs(run, round_))
    rng = np.random.default_rng([config.loop.seed, round_])
    chosen = strategy.select(scores, state, k, rng)
    utility = strategy.utility(scores, state) if hasattr(strategy, "utility") else None
    timings["selecting_s"] = time.perf_counter() - started
    predicted = scores.probs.argmax(axis=1)
    selected = [(run.pool_ids[i],
                 None if utility is None else float(utility[i]),
                 None if round_ == 0 else run.labels[predicted[i]],
                 None if round_ == 0 else float(scores.probs[i, predicted[i]])) for i in chosen]
    store.create_round(round_, name, selected, timings)
    run.log(f"round {round_}: selected {len(selected)} items by {name}")
    return None


def _label_indices(run: _Run) -> np.ndarray:
    """Decided label of each pool item as a class index, -1 where there is none yet."""
    index = {name: i for i, name in enumerate(run.labels)}
    decided = {row.item_id: index[row.label] for row in run.store.current_labels()}
    return np.array([decided.get(item_id, -1) for item_id in run.pool_ids], dtype=np.int64)


def _previous_probs(run: _Run, round_: int) -> np.ndarray | None:
    """The pool probabilities the loop scored a round earlier (for strategies that watch predictions change)."""
    cache = run.run_dir / "scores" / f"round-{round_ - 1:03d}.npz"
    if round_ < 2 or not cache.is_file():
        return None
    with np.load(cache) as saved:
        return saved["probs"]


def _pool_scores(run: _Run, round_: int, mc_passes: int = 0) -> Scores:
    """The previous round's student on the whole pool (with MC dropout passes if asked), cached in the run folder."""
    cache = run.run_dir / "scores" / f"round-{round_:03d}.npz"
    if cache.is_file():
        with np.load(cache) as saved:
            mc = saved["mc_probs"] if "mc_probs" in saved.files else None
            if not mc_passes or (mc is not None and len(mc) == mc_passes):
                return Scores(probs=saved["probs"], embeddings=saved["embeddings"], mc_probs=mc if mc_passes else None)
    student = run.get_student()
    if not student.trained:
        student.load(run.adapter_dir(round_ - 1))
    scores = student.score(run.pool_texts, progress=run.progress, mc_passes=mc_passes,
                           mc_seed=run.config.loop.seed + round_)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    extra = {"mc_probs": scores.mc_probs} if mc_passes else {}
    np.savez(tmp, probs=scores.probs, embeddings=scores.embeddings, **extra)
    tmp.replace(cache)
    return scores


def _teacher_items(run: _Run, round_: int, rows: list[Any]) -> list[TeacherItem]:
    """The round's items for the teacher, with few-shot examples when the config asks for them."""

    def embed(texts: list[str]) -> np.ndarray:
        student = run.get_student()
        if not student.trained:
            student.load(run.adapter_dir(round_ - 1))
        return student.score(texts, progress=False).embeddings

    items = [TeacherItem(row.item_id, row.text) for row in rows]
    return with_examples(run.config.teacher.few_shot, items, run.store.current_labels(), run.labels,
                         run.run_dir / "scores" / f"round-{round_:03d}.npz", run.pool_texts,
                         embed if round_ > 0 else None)


def _label(run: _Run, round_: int, timings: dict[str, float]) -> None:
    """Ask the teacher about every selected item without a recorded answer, then route all of them."""
    store = run.store
    selection = store.selection(round_)
    started = time.perf_counter()
    # Items without a call, or whose latest call failed in transport (on resume too), are asked;
    # those failing again get `teacher.failed_passes` more passes, then go to a human like any failure.
    for attempt in range(1 + run.config.teacher.failed_passes):
        done = store.latest_teacher_calls(round_)
        todo = [row for row in selection
                if row.item_id not in done or done[row.item_id].error in TRANSIENT_ERRORS]
        if not todo:
            break
        if attempt:
            run.log(f"round {round_}: asking the teacher again about {len(todo)} items whose calls failed")
        teacher = run.get_teacher()

        def record(position: int, result: TeacherResult) -> None:
            store.record_teacher_call(todo[position].item_id, round_, teacher.model_id, result)

        teacher.label(_teacher_items(run, round_, todo), on_result=record)
    done = store.latest_teacher_calls(round_)
    routing = routing_for_round(store, run.config.routing, round_)
    if routing.calibration is not None:
        blind = "" if routing.config.audit_rate > 0 else " (audit_rate is 0: labels above the threshold are unchecked)"
        threshold = routing.config.confidence_threshold
        chosen = f"{threshold:.3f}" if threshold <= 1 else "none (no threshold meets the target: all to review)"
        run.log(f"round {round_}: calibrated threshold {chosen} from {routing.calibration.reviewed} reviewed items{blind}")
    router = Router(routing.config)
    accepted, to_review = [], []
    for row in selection:
        call = done[row.item_id]
        result = call.result
        student = None if row.student_label is None else StudentPrediction(row.student_label, row.student_confidence)
        decision = router.route(result, student, row.item_id)
        if decision.route == "accept":
            accepted.append((row.item_id, result.label, result.confidence, decision.reason))
        else:
            to_review.append({"item_id": row.item_id, "reason": decision.reason, "teacher_label": result.label,
                              "teacher_confidence": result.confidence, "teacher_raw": result.raw,
                              "student_label": row.student_label, "student_confidence": row.student_confidence})
    timings["labeling_s"] = timings.get("labeling_s", 0.0) + time.perf_counter() - started
    store.commit_routing(round_, accepted, to_review, timings)
    run.log(f"round {round_}: teacher accepted {len(accepted)}, sent {len(to_review)} to review")


def _review(run: _Run, round_: int, timings: dict[str, float]) -> None:
    """Simulated review decides at once; a queue either waits for people or lets the loop go on."""
    config, store = run.config, run.store
    started = time.perf_counter()
    if config.review.mode == "simulate":
        simulate_review(store)
    elif config.review.wait and store.pending_count() > 0:
        run.log(f"round {round_}: waiting for {store.pending_count()} reviews; decide them with "
                f"`quarry serve {run.run_dir}` or `quarry review {run.run_dir}` (polling every {config.review.poll_s:g}s)")
        while store.pending_count() > 0:
            time.sleep(config.review.poll_s)
    timings["review_s"] = timings.get("review_s", 0.0) + time.perf_counter() - started
    store.set_phase(round_, "reviewed", timings)


def _train_and_evaluate(run: _Run, round_: int, timings: dict[str, float]) -> None:
    store, config = run.store, run.config
    labels = store.current_labels()
    student = run.get_student()
    started = time.perf_counter()
    stats = student.fit([r.text for r in labels], [r.label for r in labels], seed=config.student.seed + round_,
                        progress=run.progress)
    student.save(run.adapter_dir(round_))
    timings["training_s"] = time.perf_counter() - started
    started = time.perf_counter()
    predicted = student.predict([r.text for r in run.data.eval], progress=run.progress)
    evaluation = classification_metrics([r.label for r in run.data.eval], predicted, run.labels)
    timings["evaluating_s"] = time.perf_counter() - started
    metrics = round_metrics(store, round_, evaluation, timings)
    metrics.update(train_steps=stats.steps, train_loss=stats.final_loss, **routing_metrics(store, round_))
    if config.loop.stopping.uses_stop_set:
        metrics.update(_stop_set_metrics(run, round_, student))
    store.set_phase(round_, "done", timings, metrics)
    write_metrics_file(run.run_dir, store.history())
    run.log(f"round {round_}: {metrics['labeled_total']} labels (teacher {metrics['labeled_by_teacher']}, "
            f"human {metrics['labeled_by_human']}), eval accuracy {metrics['eval_accuracy']:.3f}, "
            f"macro-F1 {metrics['eval_macro_f1']:.3f}")


def _stop_set_metrics(run: _Run, round_: int, student: Student) -> dict[str, float | None]:
    """Score the fixed stop set; its predictions are kept per round for the next round's kappa."""
    loop = run.config.loop
    rows = stop_set_indices(len(run.pool_texts), loop.stopping.stop_set_size, loop.seed)
    probs = student.score([run.pool_texts[i] for i in rows], progress=run.progress, desc="stop set").probs
    folder = run.run_dir / "stop_set"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"round-{round_:03d}.tmp.npy"
    np.save(tmp, probs.argmax(axis=1))
    tmp.replace(folder / f"round-{round_:03d}.npy")
    previous = folder / f"round-{round_ - 1:03d}.npy"
    before = np.load(previous) if previous.is_file() else None
    if before is not None and len(before) != len(probs):  # stop_set_size changed on resume: a different set
        before = None
    return stop_set_metrics(probs, before)


def _share(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def round_metrics(store: Store, round_: int, evaluation: dict[str, float], timings: dict[str, float]) -> dict[str, Any]:
    counts = store.label_counts()
    labels = store.current_labels()
    calls = store.teacher_calls()
    gold = {row.item_id: row.gold for row in labels}
    gold.update({r.item_id: r.gold for r in store.reviews()})
    judged = [c for c in calls if c.label is not None and gold.get(c.item_id) is not None]
    teacher_labels = [r for r in labels if r.source == "teacher" and r.gold is not None]
    with_gold = [r for r in labels if r.gold is not None]
    return {
        "round": round_,
        "labeled_total": sum(counts.values()),
        "labeled_by_seed": counts["seed"],
        "labeled_by_teacher": counts["teacher"],
        "labeled_by_human": counts["human"],
        "pending_review": store.pending_count(),
        "teacher_calls": len(calls),
        "teacher_failed": sum(1 for c in store.latest_teacher_calls().values() if c.error is not None),
        "teacher_accuracy_vs_gold": _share(sum(c.label == gold[c.item_id] for c in judged), len(judged)),
        "accepted_accuracy_vs_gold": _share(sum(r.label == r.gold for r in teacher_labels), len(teacher_labels)),
        "dataset_accuracy_vs_gold": _share(sum(r.label == r.gold for r in with_gold), len(with_gold)),
        "human_share": _share(counts["human"], counts["human"] + counts["teacher"]),
        **{f"teacher_{key}": value for key, value in store.teacher_usage().items() if key not in ("calls", "failed")},
        **{f"round_teacher_{key}": value for key, value in store.teacher_usage(round_).items()},
        "eval_accuracy": evaluation["accuracy"],
        "eval_macro_f1": evaluation["macro_f1"],
        **{f"seconds_{key.removesuffix('_s')}": round(value, 3) for key, value in timings.items()},
    }


def write_metrics_file(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """metrics.jsonl is derived from the database and rewritten whole, so a kill never leaves it half-written."""
    path = run_dir / "metrics.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(m) + "\n" for m in history), encoding="utf-8")
    tmp.replace(path)
