"""What a person reads about a run: a status table in the terminal, and a report with charts."""
from __future__ import annotations

import html
import json
import shlex
from pathlib import Path
from typing import Any

from .calibration import ReviewedItem, answer_signal_aurocs, precision_curve, reliability_bins, signal_aurocs
from .charts import calibration_chart, recall_chart, run_chart
from .config import RoutingConfig
from .core.files import write_text
from .quality import DataQuality, Tally, data_quality
from .run_folder import RunFolder
from .store import Store
from .threshold import reviewed_items


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


# Each task kind's evaluation columns in `quarry status`: (heading, metrics key).
_EVALUATION = {"classification": (("acc", "eval_accuracy"), ("macro-F1", "eval_macro_f1"),
                                  ("teacher-acc", "teacher_accuracy_vs_gold")),
               "generation": (("eval-NLL", "eval_nll"), ("kept-as-is", "teacher_acceptance_rate"),
                              ("teacher-pass", "teacher_pass_rate"))}


def _kind(config: dict[str, Any]) -> str:
    return (config.get("task") or {}).get("kind", "classification")


def status_text(store: Store) -> str:
    config = json.loads(store.config_json())
    rounds = store.rounds()
    evaluation = _EVALUATION[_kind(config)]
    lines = [f"job {config['name']}: {len(rounds)} rounds"]
    header = ("round", "phase", "strategy", "labels", "teacher", "human", "pending", *(h for h, _ in evaluation), "human%")
    table = [header]
    for r in rounds:
        m = r.metrics or {}
        share = m.get("human_share")
        table.append((str(r.round), r.phase, r.strategy, _num(m.get("labeled_total")), _num(m.get("labeled_by_teacher")),
                      _num(m.get("labeled_by_human")), _num(m.get("pending_review")),
                      *(_num(m.get(key)) for _, key in evaluation), "-" if share is None else f"{100 * share:.0f}"))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines += ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in table]
    usage = store.teacher_usage()
    if usage["calls"]:
        lines.append(f"teacher: {usage['calls']} calls ({usage['cached']} from the cache, {usage['failed']} failed), "
                     f"{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion tokens paid, "
                     f"cost {usage['cost']:.4f}")
    lines += recall_lines(store.history())
    lines += quality_lines(data_quality(store))
    stop = store.meta("stop_reason")
    if stop:
        lines.append(f"stopped: {stop}")
    return "\n".join(lines)


def recall_lines(history: list[dict[str, Any]]) -> list[str]:
    """The last round's recall per class, lowest first: where the student still misses a class."""
    recall = history[-1].get("eval_recall") if history else None
    if not recall:
        return []
    ranked = sorted(recall.items(), key=lambda item: item[1])
    return [f"recall per class (round {history[-1]['round']}, lowest first): "
            + ", ".join(f"{label} {value:.2f}" for label, value in ranked)]


def _tally(tally: Tally) -> str:
    return f"{tally.right} of {tally.total} right ({tally.share:.3f})"


def rule_text(quality: DataQuality) -> str:
    """What routing does now, and the precision it delivers as measured by people."""
    rule, target = quality.rule, quality.target_precision
    if rule is None:
        return "routing: no round routed yet"
    if quality.accepts_nothing:
        wait = f"until reviewed teacher labels show precision >= {target:g} (routing.target_precision)" if target \
            else "(calibration found no threshold)"
        return f"routing now: accepts no teacher label {wait}; every label comes from a person"
    agreement = {"ignore": "", "required": " when the student agrees",
                 "sufficient": f" (or >= {rule.agreement_threshold:.3f} when the student agrees)"}[rule.student_agreement]
    text = f"routing now: accepts teacher labels at confidence >= {rule.confidence_threshold:.3f}{agreement}; "
    point = quality.accepted_precision
    if point is None:
        text += ("their precision is unmeasured: no person has checked a label this rule accepts "
                 "(set routing.audit_rate, or routing.target_precision)")
    else:
        text += (f"their precision {point.precision:.3f} (Wilson 95% lower bound {point.precision_lower:.3f}) "
                 f"on {point.accepted} reviewed or audited items")
    return text + (f"; target {target:g}" if target else "")


def quality_lines(quality: DataQuality) -> list[str]:
    """Data quality for `quarry status` and the end of a run: who labeled, what routing delivers, gold checks."""
    counts = quality.counts
    share = quality.human_share
    human = f"human {counts['human']}" + (" (simulated from gold: review.mode simulate)" if quality.simulated else "")
    lines = [f"labels: teacher {counts['teacher']}, {human}, seed {counts['seed']}"
             + ("" if share is None else f"; human share {100 * share:.0f}%") + f"; pending reviews {quality.pending}",
             rule_text(quality)]
    if quality.kept is not None:
        lines.append(f"reviewed teacher labels: people kept {quality.kept.right} of {quality.kept.total} "
                     f"({quality.kept.share:.3f})")
    if quality.accepted_vs_gold is not None:
        lines.append(f"accepted teacher labels vs gold: {_tally(quality.accepted_vs_gold)}")
    if quality.exported_vs_gold is not None:
        lines.append(f"exported labels vs gold: {_tally(quality.exported_vs_gold)}")
    return lines


def run_summary(store: Store, run_dir: str, reason: str, rerun: str) -> str:
    """The end of `quarry run`: why it stopped, where the run is, how good its data is, what to do next."""
    quality = data_quality(store)
    folder = shlex.quote(run_dir)
    steps = []
    if quality.pending:
        steps += [(f"quarry review {folder}", f"decide the {quality.pending} pending items at the terminal"),
                  (f"quarry serve {folder}", "... or in the browser (quarry reviewers add NAME first)"),
                  (rerun, "then continue the job with the decided labels")]
    steps += [(f"quarry status {folder}", "rounds, labels by source, data quality"),
              (f"quarry export {folder} --format chat --out {shlex.quote(str(Path(run_dir) / 'dataset.jsonl'))}",
               "the data set (or --format alpaca, jsonl)"),
              (f"quarry report {folder}", f"charts in {Path(run_dir) / 'report.html'}")]
    width = max(len(command) for command, _ in steps)
    return "\n".join([f"stopped: {reason}", f"run folder: {run_dir}", *quality_lines(quality), "next:",
                      *(f"  {command.ljust(width)}  # {why}" for command, why in steps)])


_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}"
          "td,th{padding:4px 10px;text-align:right}th{font-weight:600;border-bottom:1px solid #ccc}"
          "tr:nth-child(even){background:#f5f5f5}.quality{background:#f7f9fc;border-left:4px solid #4e79a7;"
          "padding:.6em 1.2em}.quality li{margin:.2em 0}.note{color:#555;max-width:60em}")


def write_report(store: Store, folder: RunFolder) -> Path:
    """report.html: data quality first, then the run's charts (report.png), every round's metrics under
    readable names, and the teacher's calibration (calibration.png)."""
    history = store.history()
    config = json.loads(store.config_json())
    quality = data_quality(store)
    if history:
        run_chart(history, folder.report_file("report.png"))
    chart = "<img src='report.png' width='100%' alt='learning curve, who labeled, how right the labels are'>" \
        if history else "<p>No finished round yet.</p>"
    if recall_chart(history, folder.report_file("recall.png")) is not None:
        chart += ("<h2>Recall per class</h2><p class='note'>Rare classes are where active learning pays off: a "
                  "class whose recall stays low needs labels a strategy is not finding.</p>"
                  "<img src='recall.png' width='100%' alt='recall per class against labels'>")
    columns = _REPORT_COLUMNS[_kind(config)]
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(key, m.get(key)))}</td>" for key, _ in columns)
                   + "</tr>" for m in history)
    header = "".join(f"<th title='{html.escape(key)}'>{html.escape(name)}</th>" for key, name in columns)
    return write_text(folder.report_file("report.html"),
        f"<!doctype html><meta charset='utf-8'><title>Quarry report: {html.escape(config['name'])}</title>"
        f"<style>{_STYLE}</style><h1>{html.escape(config['name'])}</h1>"
        f"<p>{html.escape('stopped: ' + store.meta('stop_reason') if store.meta('stop_reason') else 'running')}</p>"
        "<h2>Data quality</h2><ul class='quality'>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in quality_lines(quality)) + "</ul>"
        + chart + f"<h2>Rounds</h2><table><tr>{header}</tr>{rows}</table>"
        + _calibration_section(store, folder, quality, len(config.get("task", {}).get("labels", []))))


_SIGNALS = {"teacher": "teacher confidence", "student": "student support (agrees with the teacher, and how surely)",
            "teacher+student": "both, averaged"}


def _calibration_section(store: Store, folder: RunFolder, quality: DataQuality, label_count: int) -> str:
    """The reliability diagram and precision-by-threshold curve of the reviewed teacher labels (audits weighted
    by 1/audit rate), and how well each confidence signal separates right from wrong teacher labels."""
    routing = RoutingConfig.model_validate(json.loads(store.config_json()).get("routing", {}))
    items = reviewed_items(store, routing)
    if not items:
        return "<h2>Teacher calibration</h2><p>No reviewed teacher labels yet.</p>"
    rule = quality.rule or routing
    curve = precision_curve(items, rule.student_agreement, rule.agreement_threshold)
    counts, gold = quality.counts, quality.accepted_vs_gold
    accepted_vs_gold = None if gold is None else (
        counts["teacher"] / (counts["teacher"] + counts["human"]), gold.share, gold.total)
    calibration_chart(reliability_bins(items), curve, len(items), routing.target_precision,
                      1 / label_count if label_count else None, quality.accepted_precision, accepted_vs_gold,
                      folder.report_file("calibration.png"))
    aurocs = _auroc_section(items, routing)
    audited = sum(1 for i in items if i.weight != 1.0)
    return ("<h2>Teacher calibration</h2>"
            f"<p class='note'>{len(items)} teacher labels a person reviewed ({audited} of them audits of accepted "
            "labels, each standing for 1/audit rate accepted labels). Left: per bin of teacher confidence, how often "
            "the person kept the teacher's label, with its Wilson 95% interval and the number of labels; an honest "
            "teacher's points lie on the diagonal, and a point below it is a teacher surer than it is right. Right: "
            "the precision a confidence threshold would deliver against the share of labels it would accept, measured "
            "on reviewed items; where the pool has gold labels, the labels accepted so far against it. Labels "
            "accepted without an audit were never seen by a person and are in neither curve.</p>"
            f"<p>{html.escape(rule_text(quality))}</p>"
            "<img src='calibration.png' width='100%' alt='reliability diagram and precision by threshold'>" + aurocs)


_ANSWER_SIGNALS = {"judge": "judge: the teacher's grade of its answer", "self_consistency": "self-consistency of samples",
                   "student_nll": "student's NLL of the answer", "length": "answer length (the baseline)"}


def _auroc_section(items: list[ReviewedItem], routing: RoutingConfig) -> str:
    """Which signal tells right teacher labels from wrong ones; for written answers, the answers people kept as
    they were from those they changed, each signal beside the length baseline."""
    note = ("<p class='note'>AUROC is the chance that a right teacher {what} scores higher on the signal than a "
            "wrong one: 0.5 is a coin toss, 1.0 separates them perfectly.</p>")
    if any(i.signals for i in items):
        rows = "".join(
            f"<tr><td style='text-align:left'>{html.escape(_ANSWER_SIGNALS.get(name, name))}"
            f"{' (routing)' if name == routing.signal else ''}</td><td>{_num(value)}</td><td>{count}</td></tr>"
            for name, (value, count) in answer_signal_aurocs(items).items())
        return ("<h3>Which signal tells answers people kept as they were from those they changed</h3>"
                + note.format(what="answer (kept unedited)")
                + f"<table><tr><th style='text-align:left'>signal</th><th>AUROC</th><th>answers</th></tr>{rows}</table>")
    rows = "".join(f"<tr><td style='text-align:left'>{html.escape(_SIGNALS.get(name, name))}</td>"
                   f"<td>{_num(value)}</td></tr>" for name, value in signal_aurocs(items).items())
    return ("<h3>Which signal tells right teacher labels from wrong ones</h3>" + note.format(what="label")
            + f"<table><tr><th style='text-align:left'>signal</th><th>AUROC</th></tr>{rows}</table>")


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "routing_threshold":
        return "none" if value > 1 else f"{value:.3f}"
    if key == "human_share":
        return f"{100 * value:.0f}%"
    if key == "teacher_cost":
        return f"{value:.4f}"
    if key.startswith("seconds_"):
        return f"{value:.1f}"
    return _num(value)


# Metric keys of metrics.jsonl and the names the report gives them, per task kind.
_CLASSIFICATION_COLUMNS = (
    ("round", "round"), ("labeled_total", "labels"), ("labeled_by_teacher", "by teacher"),
    ("labeled_by_human", "by people"), ("pending_review", "pending"), ("eval_accuracy", "student accuracy"),
    ("eval_macro_f1", "student macro-F1"), ("human_share", "human share"),
    ("teacher_accuracy_vs_gold", "teacher right (gold)"), ("accepted_accuracy_vs_gold", "accepted right (gold)"),
    ("dataset_accuracy_vs_gold", "all labels right (gold)"), ("routing_threshold", "threshold"),
    ("calibrated_precision_lower", "precision lower bound"), ("teacher_prompt_tokens", "prompt tokens"),
    ("teacher_cost", "teacher cost"), ("seconds_scoring", "s scoring"), ("seconds_labeling", "s labeling"),
    ("seconds_training", "s training"))
_REPORT_COLUMNS = {
    "classification": _CLASSIFICATION_COLUMNS,
    "generation": (
        ("round", "round"), ("labeled_total", "answers"), ("labeled_by_teacher", "by teacher"),
        ("labeled_by_human", "by people"), ("pending_review", "pending"), ("eval_nll", "student eval NLL"),
        ("teacher_acceptance_rate", "kept as is"), ("teacher_pass_rate", "teacher passes check"),
        ("accepted_pass_rate", "accepted pass check"), ("human_share", "human share"),
        ("routing_threshold", "threshold"), ("calibrated_precision_lower", "precision lower bound"),
        ("teacher_prompt_tokens", "prompt tokens"), ("teacher_completion_tokens", "completion tokens"),
        ("teacher_cost", "teacher cost"), ("seconds_scoring", "s scoring"), ("seconds_labeling", "s labeling"),
        ("seconds_training", "s training")),
}
