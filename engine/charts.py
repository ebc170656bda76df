"""The report's charts, drawn from plain numbers (a round's metrics, reviewed teacher labels): the run at a
glance (learning curve, who labeled, how right the labels are) and the teacher's calibration."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .calibration import CurvePoint, ReliabilityBin
from .core.files import atomic_write

SOURCES = (("labeled_by_seed", "seed file", "#9e9e9e"), ("labeled_by_teacher", "teacher (accepted)", "#f28e2b"),
           ("labeled_by_human", "people", "#4e79a7"))
MIN_CURVE_ITEMS = 10  # a precision from fewer reviewed items is a guess, not a curve
QUALITY = (("dataset_accuracy_vs_gold", "all labels (the export)", "#59a14f", "o"),
           ("accepted_accuracy_vs_gold", "accepted teacher labels", "#f28e2b", "s"),
           ("teacher_accuracy_vs_gold", "teacher on every item asked", "#bab0ac", "^"))


def _matplotlib() -> tuple[Any, Any]:
    """pyplot and ticker, loaded when a chart is drawn: matplotlib takes about a second to import, which
    `quarry status` and the end of `quarry run` (they import the report module) should not pay."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, whatever the machine has
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    return plt, ticker


def _tidy(ax: Any, title: str) -> None:
    ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(alpha=0.25)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    _matplotlib()[0].close(fig)
    return path


def _values(history: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pairs = [(m["round"], m[key]) for m in history if m.get(key) is not None]
    return [r for r, _ in pairs], [v for _, v in pairs]


def run_chart(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Learning curve, labels by source per round, and (where gold is known) how many labels are right."""
    plt, ticker = _matplotlib()
    gold = any(m.get("dataset_accuracy_vs_gold") is not None for m in history)
    fig, axes = plt.subplots(1, 3 if gold else 2, figsize=(15 if gold else 10.5, 4.2))
    curve, sources = axes[0], axes[1]
    labels = [m["labeled_total"] for m in history]
    curve.set_xlabel("labels so far")
    if "eval_nll" in history[0]:  # a generation task: the student's NLL of the references, lower is better
        curve.plot(labels, [m["eval_nll"] for m in history], marker="o", color="#4e79a7", label="eval NLL")
        curve.set_ylabel("student's NLL per reference token")
    else:
        curve.plot(labels, [m["eval_accuracy"] for m in history], marker="o", color="#4e79a7", label="accuracy")
        curve.plot(labels, [m["eval_macro_f1"] for m in history], marker="s", color="#76b7b2", label="macro-F1")
        curve.set_ylabel("student on the evaluation set")
        curve.set_ylim(0, 1.02)
        curve.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    if len(labels) <= 12:
        curve.set_xticks(labels)  # a tick at each round's label count
    else:
        curve.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    curve.legend(frameon=False, loc="lower right")
    _tidy(curve, "Learning curve")

    rounds = [m["round"] for m in history]
    bottom = [0] * len(history)
    for key, name, color in SOURCES:
        values = [m.get(key) or 0 for m in history]
        if not any(values):
            continue  # no legend entry for a source that labeled nothing
        bars = sources.bar(rounds, values, bottom=bottom, label=name, color=color, width=0.7)
        sources.bar_label(bars, labels=[str(v) if v else "" for v in values], label_type="center", fontsize=8,
                          color="white")
        bottom = [b + v for b, v in zip(bottom, values)]
    for round_, total in zip(rounds, bottom):
        sources.annotate(str(total), (round_, total), textcoords="offset points", xytext=(0, 3), ha="center",
                         fontsize=9, fontweight="bold")
    sources.set_xlabel("round")
    sources.set_ylabel("labels (cumulative)")
    sources.set_xticks(rounds)
    sources.set_ylim(0, max(bottom, default=0) * 1.12 + 1)
    handles, names = sources.get_legend_handles_labels()
    if handles:  # top of the stack first, as the bars show it
        sources.legend(handles[::-1], names[::-1], frameon=False, loc="upper left")
    _tidy(sources, "Who labeled")

    if gold:
        quality = axes[2]
        for key, name, color, marker in QUALITY:
            x, y = _values(history, key)
            if x:
                quality.plot(x, y, marker=marker, color=color, label=name)
        quality.set_xlabel("round")
        quality.set_ylabel("share right (against the pool's gold labels)")
        quality.set_ylim(0, 1.02)
        quality.set_xticks(rounds)
        quality.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        quality.legend(frameon=False, loc="best", fontsize=9)
        _tidy(quality, "How right the labels are")
    return _save(fig, path)


def recall_chart(history: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Recall of every class against the labels so far, the weakest classes named in the legend first:
    the view where a strategy that finds the rare class shows it. None when no round measured recall."""
    rounds = [m for m in history if m.get("eval_recall")]
    if not rounds:
        return None
    plt, ticker = _matplotlib()
    classes = sorted(rounds[-1]["eval_recall"], key=rounds[-1]["eval_recall"].get)
    fig, ax = plt.subplots(figsize=(10.5, 4.2))
    palette = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for index, label in enumerate(classes):
        points = [(m["labeled_total"], m["eval_recall"][label]) for m in rounds if label in m["eval_recall"]]
        ax.plot([x for x, _ in points], [y for _, y in points], marker=".", color=palette(index % palette.N),
                label=f"{label} ({points[-1][1]:.2f})", linewidth=2.2 if index < 3 else 1.0)
    ax.set_xlabel("labels so far")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_ylabel("recall on the evaluation set")
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5),
              title="class (last recall), weakest first", title_fontsize=8, ncol=1 if len(classes) <= 16 else 2)
    _tidy(ax, "Recall per class")
    return _save(fig, path)


def calibration_chart(bins: Sequence[ReliabilityBin], curve: Sequence[CurvePoint], reviewed: int,
                      target: float | None, chance: float | None, chosen: CurvePoint | None,
                      accepted_vs_gold: tuple[float, float, int] | None, path: Path) -> Path:
    """Left: a reliability diagram (teacher confidence against how often people kept its label, per bin, with
    Wilson 95% intervals and counts). Right: the precision a threshold would deliver against the share it would
    accept, on reviewed items (drawn where at least MIN_CURVE_ITEMS back a point), the rule in force, and
    (share, precision, count) of the labels accepted so far against gold, where gold is known."""
    plt, ticker = _matplotlib()
    fig, (diagram, routing) = plt.subplots(1, 2, figsize=(12, 4.6))
    diagram.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, label="honest confidence")
    if chance is not None:
        diagram.axhline(chance, linestyle=":", color="#bab0ac", linewidth=1, label=f"chance ({chance:.0%})")
    if target is not None:
        diagram.axhline(target, color="#e15759", linewidth=1, label=f"target precision {target:g}")
    x = [b.confidence for b in bins]
    y = [b.accuracy for b in bins]
    errors = [[max(0.0, b.accuracy - b.interval[0]) for b in bins], [max(0.0, b.interval[1] - b.accuracy) for b in bins]]
    diagram.errorbar(x, y, yerr=errors, fmt="o", color="#4e79a7", ecolor="#a0cbe8", elinewidth=3, capsize=0,
                     markersize=7, label="observed (Wilson 95% interval)")
    for b in bins:
        diagram.annotate(f"n={b.count}", (b.confidence, b.interval[1]), textcoords="offset points", xytext=(0, 4),
                         ha="center", fontsize=8, color="#555555")
    diagram.set_xlim(0, 1)
    diagram.set_ylim(0, 1.08)
    diagram.set_xlabel("teacher confidence (bins of 0.1)")
    diagram.set_ylabel("share people kept the teacher's label")
    diagram.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    diagram.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    diagram.legend(frameon=False, loc="upper left", fontsize=8)
    _tidy(diagram, f"Is the teacher's confidence honest? ({reviewed} reviewed)")

    points = sorted((p for p in curve if p.precision is not None and p.accepted >= MIN_CURVE_ITEMS),
                    key=lambda p: p.accepted_share)
    if points:
        share = [p.accepted_share for p in points]
        routing.fill_between(share, [p.precision_lower for p in points], [p.precision for p in points],
                             color="#a0cbe8", alpha=0.5, step="post", label="down to its 95% lower bound (Wilson)")
        routing.step(share, [p.precision for p in points], where="post", color="#4e79a7",
                     label="precision on reviewed items")
    else:
        routing.text(0.5, 0.55, f"fewer than {MIN_CURVE_ITEMS} reviewed items that any threshold\nwould accept: "
                     "no curve to draw yet", ha="center", va="center", color="#777777", transform=routing.transAxes)
    if target is not None:
        routing.axhline(target, color="#e15759", linewidth=1, label=f"target {target:g}")
    if chosen is not None and chosen.precision is not None:
        routing.plot([chosen.accepted_share], [chosen.precision], marker="*", color="#e15759", markersize=14,
                     linestyle="none", label=f"threshold in force {chosen.threshold:.2f}")
    if accepted_vs_gold is not None:
        share, right, count = accepted_vs_gold
        routing.plot([share], [right], marker="X", color="#f28e2b", markersize=11, linestyle="none",
                     label=f"labels accepted so far, right against gold: {right:.0%} of {count}")
    routing.set_xlim(0, 1.02)
    routing.set_ylim(0, 1.08)
    routing.set_xlabel("share of teacher labels accepted")
    routing.set_ylabel("precision of the accepted labels")
    routing.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    routing.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    if routing.get_legend_handles_labels()[0]:
        routing.legend(frameon=False, loc="lower left", fontsize=8)
    _tidy(routing, "What routing delivers")
    return _save(fig, path)
