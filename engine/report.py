"""What a person reads about a run: a status table in the terminal, and a report with charts."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from engine.store import Store


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def status_text(store: Store) -> str:
    config = json.loads(store.config_json())
    rounds = store.rounds()
    counts = store.label_counts()
    lines = [f"job {config['name']}: {len(rounds)} rounds, labels: seed {counts['seed']}, teacher {counts['teacher']}, "
             f"human {counts['human']}; pending reviews {store.pending_count()}"]
    header = ("round", "phase", "strategy", "labels", "teacher", "human", "pending", "acc", "macro-F1", "teacher-acc", "human%")
    table = [header]
    for r in rounds:
        m = r.metrics or {}
        share = m.get("human_share")
        table.append((str(r.round), r.phase, r.strategy, _num(m.get("labeled_total")), _num(m.get("labeled_by_teacher")),
                      _num(m.get("labeled_by_human")), _num(m.get("pending_review")), _num(m.get("eval_accuracy")),
                      _num(m.get("eval_macro_f1")), _num(m.get("teacher_accuracy_vs_gold")),
                      "-" if share is None else f"{100 * share:.0f}"))
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


def write_report(store: Store, run_dir: Path) -> Path:
    """report.html beside a learning-curve and a label-source chart (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = store.history()
    fig, (curve, sources) = plt.subplots(1, 2, figsize=(11, 4))
    x = [m["labeled_total"] for m in history]
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
    chart = run_dir / "report.png"
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_num(m.get(k)))}</td>" for k in _REPORT_COLUMNS) + "</tr>"
                   for m in history)
    page = run_dir / "report.html"
    page.write_text(
        "<!doctype html><meta charset='utf-8'><title>Quarry report</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:right}"
        "tr:nth-child(even){background:#f3f3f3}</style>"
        f"<h1>{html.escape(json.loads(store.config_json())['name'])}</h1>"
        f"<p>{html.escape(store.meta('stop_reason') or 'running')}</p><img src='report.png' width='900'>"
        "<table><tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in _REPORT_COLUMNS) + f"</tr>{rows}</table>",
        encoding="utf-8")
    return page


_REPORT_COLUMNS = ("round", "labeled_total", "labeled_by_teacher", "labeled_by_human", "pending_review",
                   "eval_accuracy", "eval_macro_f1", "teacher_accuracy_vs_gold", "human_share", "prompt_tokens", "teacher_cost",
                   "seconds_scoring", "seconds_labeling", "seconds_training")
