"""What a person reads about a run: a status table in the terminal, and a report with charts."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from .calibration import Calibration, ReviewedItem, answer_signal_aurocs, choose_threshold, precision_curve, signal_aurocs
from .config import RoutingConfig
from .core.files import atomic_write, write_text
from .run_folder import RunFolder
from .store import Store
from .threshold import reviewed_items


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


# Each task kind's evaluation columns: (heading, metrics key).
_EVALUATION = {"classification": (("acc", "eval_accuracy"), ("macro-F1", "eval_macro_f1"),
                                  ("teacher-acc", "teacher_accuracy_vs_gold")),
               "generation": (("eval-NLL", "eval_nll"), ("kept-as-is", "teacher_acceptance_rate"),
                              ("teacher-pass", "teacher_pass_rate"))}


def _kind(config: dict[str, Any]) -> str:
    return (config.get("task") or {}).get("kind", "classification")


def status_text(store: Store) -> str:
    config = json.loads(store.config_json())
    rounds = store.rounds()
    counts = store.label_counts()
    evaluation = _EVALUATION[_kind(config)]
    lines = [f"job {config['name']}: {len(rounds)} rounds, labels: seed {counts['seed']}, teacher {counts['teacher']}, "
             f"human {counts['human']}; pending reviews {store.pending_count()}"]
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
    stop = store.meta("stop_reason")
    if stop:
        lines.append(f"stopped: {stop}")
    return "\n".join(lines)


def write_report(store: Store, folder: RunFolder) -> Path:
    """report.html beside a learning-curve and a label-source chart (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = store.history()
    kind = _kind(json.loads(store.config_json()))
    fig, (curve, sources) = plt.subplots(1, 2, figsize=(11, 4))
    x = [m["labeled_total"] for m in history]
    if kind == "generation":
        curve.plot(x, [m["eval_nll"] for m in history], marker="o", label="eval NLL (lower is better)")
    else:
        curve.plot(x, [m["eval_accuracy"] for m in history], marker="o", label="accuracy")
        curve.plot(x, [m["eval_macro_f1"] for m in history], marker="s", label="macro-F1")
    curve.set_xlabel("labels")
    curve.set_ylabel("evaluation score")
    curve.set_title("Learning curve")
    curve.grid(alpha=0.3)
    curve.legend()
    rounds = [m["round"] for m in history]
    bottom = [0] * len(history)
    for key, name in (("labeled_by_seed", "seed"), ("labeled_by_teacher", "teacher"), ("labeled_by_human", "human")):
        values = [m.get(key, 0) for m in history]
        sources.bar(rounds, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values)]
    sources.set_xlabel("round")
    sources.set_ylabel("labels (cumulative)")
    sources.set_title("Who labeled")
    sources.legend()
    fig.tight_layout()
    atomic_write(folder.report_file("report.png"), lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    calibration = _calibration_section(store, folder, plt)
    columns = _REPORT_COLUMNS[kind]
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_num(m.get(k)))}</td>" for k in columns) + "</tr>"
                   for m in history)
    return write_text(folder.report_file("report.html"),
        "<!doctype html><meta charset='utf-8'><title>Quarry report</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:right}"
        "tr:nth-child(even){background:#f3f3f3}</style>"
        f"<h1>{html.escape(json.loads(store.config_json())['name'])}</h1>"
        f"<p>{html.escape(store.meta('stop_reason') or 'running')}</p><img src='report.png' width='900'>"
        "<table><tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in columns) + f"</tr>{rows}</table>"
        + calibration)


def _calibration_section(store: Store, folder: RunFolder, plt: Any) -> str:
    """Precision of auto-accepted labels against the share accepted (from the reviewed items, audit-weighted),
    and how well each confidence signal separates right from wrong teacher labels."""
    routing = RoutingConfig.model_validate(json.loads(store.config_json()).get("routing", {}))
    items = reviewed_items(store, routing)
    if not items:
        return "<h2>Routing calibration</h2><p>No reviewed teacher labels yet.</p>"
    curve = precision_curve(items, routing.student_agreement, routing.agreement_threshold)
    points = [p for p in curve if p.precision is not None]
    target = routing.target_precision
    chosen: Calibration | None = None if target is None else choose_threshold(
        items, target, routing.student_agreement, routing.agreement_threshold)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p.accepted_share for p in points], [p.precision for p in points], marker=".", label="precision")
    ax.plot([p.accepted_share for p in points], [p.precision_lower for p in points], linestyle="--",
            label="Wilson lower bound")
    if target is not None:
        ax.axhline(target, color="grey", linewidth=0.8, label=f"target {target:g}")
    if chosen is not None and chosen.precision is not None and chosen.accepted_share > 0:
        ax.plot([chosen.accepted_share], [chosen.precision], "r*", markersize=12,
                label=f"threshold {chosen.threshold:.3f}")
    ax.set_xlabel("share of teacher labels auto-accepted")
    ax.set_ylabel("precision of accepted labels")
    ax.set_title(f"Routing calibration ({len(items)} reviewed items)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    atomic_write(folder.report_file("calibration.png"), lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    aurocs = _auroc_table(items, routing)
    audited = sum(1 for i in items if i.weight != 1.0)
    chosen_text = "" if chosen is None else (
        f"<p>Threshold meeting precision {target:g}: "
        + ("none (every label goes to a person)" if chosen.threshold > 1 else
           f"{chosen.threshold:.3f}, accepting {100 * chosen.accepted_share:.0f}% at precision "
           f"{_num(chosen.precision)} (lower bound {_num(chosen.precision_lower)})") + "</p>")
    return ("<h2>Routing calibration</h2>"
            f"<p>{len(items)} reviewed teacher labels, {audited} of them audits of accepted labels "
            "(weighted by 1/audit rate).</p>" + chosen_text + "<img src='calibration.png' width='600'>"
            + aurocs)


def _auroc_table(items: list[ReviewedItem], routing: RoutingConfig) -> str:
    """How well each confidence signal tells right teacher labels from wrong ones; for written answers, answers
    people kept as they were from those they changed, each signal beside the length baseline."""
    if any(i.signals for i in items):
        rows = "".join(
            f"<tr><td>{html.escape(name)}{' (routing)' if name == routing.signal else ''}"
            f"{' (baseline)' if name == 'length' else ''}</td><td>{_num(value)}</td><td>{count}</td></tr>"
            for name, (value, count) in answer_signal_aurocs(items).items())
        return ("<h3>AUROC of each confidence signal (answer kept as it was vs changed by a person)</h3>"
                f"<table><tr><th>signal</th><th>AUROC</th><th>items</th></tr>{rows}</table>")
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{_num(value)}</td></tr>"
                   for name, value in signal_aurocs(items).items())
    return ("<h3>AUROC of each confidence signal (right vs wrong teacher label)</h3>"
            f"<table><tr><th>signal</th><th>AUROC</th></tr>{rows}</table>")


_REPORT_COLUMNS = {
    "classification": ("round", "labeled_total", "labeled_by_teacher", "labeled_by_human", "pending_review",
                       "eval_accuracy", "eval_macro_f1", "teacher_accuracy_vs_gold", "human_share", "routing_threshold",
                       "calibrated_precision", "teacher_prompt_tokens", "teacher_cost",
                       "seconds_scoring", "seconds_labeling", "seconds_training"),
    "generation": ("round", "labeled_total", "labeled_by_teacher", "labeled_by_human", "pending_review", "eval_nll",
                   "teacher_acceptance_rate", "teacher_pass_rate", "accepted_pass_rate", "human_share",
                   "routing_threshold", "calibrated_precision", "teacher_prompt_tokens", "teacher_completion_tokens",
                   "teacher_cost", "seconds_scoring", "seconds_labeling", "seconds_training"),
}
