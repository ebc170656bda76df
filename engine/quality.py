"""How good a run's data is, from the store: what people said about the teacher's labels, and (where the
pool has gold labels, as in benchmarks and the demo) how many labels are right.

`accepted_precision` is what routing promises: the precision of the labels the routing rule in force
accepts, measured on every reviewed item that rule would accept (items reviewed before the threshold
fell to them, and audits of accepted labels, weighted by 1/audit_rate), with its Wilson 95% lower bound.
With a fixed threshold and no audits nobody ever sees an accepted label: it is None, and says so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from .calibration import NOTHING_ACCEPTED, CurvePoint, rule_precision
from .config import RoutingConfig
from .store import LabelRow, Store
from .threshold import reviewed_items, round_rule


@dataclass(frozen=True)
class Tally:
    right: int
    total: int

    @property
    def share(self) -> float:
        return self.right / self.total


@dataclass(frozen=True)
class DataQuality:
    counts: dict[str, int]  # current labels by source: seed, teacher, human
    pending: int
    simulated: bool  # review.mode simulate: the "human" labels are the pool's gold labels
    target_precision: float | None
    rule: RoutingConfig | None  # the routing in force (the latest round's); None before any round
    kept: Tally | None  # reviewed teacher labels the person kept (unweighted)
    accepted_precision: CurvePoint | None  # see the module docstring; None when no person checked such a label
    accepted_vs_gold: Tally | None  # accepted teacher labels against gold, where gold is known
    exported_vs_gold: Tally | None  # every current label (what `quarry export` writes) against gold

    @property
    def human_share(self) -> float | None:
        decided = self.counts["human"] + self.counts["teacher"]
        return self.counts["human"] / decided if decided else None

    @property
    def accepts_nothing(self) -> bool:
        return self.rule is not None and self.rule.confidence_threshold >= NOTHING_ACCEPTED


def _tally(rows: list[LabelRow]) -> Tally | None:
    judged = [r for r in rows if r.gold is not None]
    return Tally(sum(r.label == r.gold for r in judged), len(judged)) if judged else None


def _kind(config: dict) -> str:
    return (config.get("task") or {}).get("kind", "classification")


def data_quality(store: Store) -> DataQuality:
    config = json.loads(store.config_json())
    routing = RoutingConfig.model_validate(config.get("routing", {}))
    rounds = store.rounds()
    rule = round_rule(store, rounds[-1].round, routing) if rounds else None
    items = reviewed_items(store, routing)
    precision = None
    if rule is not None:
        point = rule_precision(items, rule.confidence_threshold, rule.student_agreement, rule.agreement_threshold)
        precision = point if point.accepted else None
    labels = store.current_labels()
    return DataQuality(
        counts=store.label_counts(), pending=store.pending_count(),
        simulated=config.get("review", {}).get("mode", "simulate") == "simulate",
        target_precision=routing.target_precision, rule=rule,
        kept=Tally(sum(i.correct for i in items), len(items)) if items else None, accepted_precision=precision,
        # Written answers are not compared with their references by equality: their metrics have the task's check.
        **({"accepted_vs_gold": None, "exported_vs_gold": None} if _kind(config) == "generation" else {
            "accepted_vs_gold": _tally([r for r in labels if r.source == "teacher"]), "exported_vs_gold": _tally(labels)}))
