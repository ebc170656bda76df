"""The routing threshold of a round, calibrated from the run's reviews, and its record in the store.

Each round's routing settings are kept in the run's meta table (`routing.round-NNN`), because
a reviewed item's weight depends on the rule it was routed by: an item that rule would have
accepted reached a person only as an audit, and stands for 1/audit_rate accepted items.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .calibration import NOTHING_ACCEPTED, Calibration, ReviewedItem, accepts, choose_threshold
from .config import RoutingConfig
from .store import Store


@dataclass(frozen=True)
class RoundRouting:
    config: RoutingConfig  # the settings the round routes by (threshold calibrated or fixed)
    calibration: Calibration | None  # None while too few items are reviewed, or without a target


def _key(round_: int) -> str:
    return f"routing.round-{round_:03d}"


def _saved_rule(saved: str | None, fallback: RoutingConfig) -> RoutingConfig:
    # Not re-validated: a calibrated threshold above 1 (accept nothing) is outside the config's range.
    return fallback.model_copy(update=json.loads(saved)) if saved else fallback


def round_rule(store: Store, round_: int, fallback: RoutingConfig) -> RoutingConfig:
    """The routing settings round `round_` routed by (its calibrated threshold included)."""
    return _saved_rule(store.meta(_key(round_)), fallback)


def reviewed_items(store: Store, fallback: RoutingConfig) -> list[ReviewedItem]:
    """Decided reviews of answered teacher calls, each weighted by how it reached the person."""
    human = {row.item_id: row.label for row in store.current_labels() if row.source == "human"}
    items = []
    for review in store.reviews(status="decided"):
        if review.item_id not in human or review.teacher_label is None or review.teacher_confidence is None:
            continue
        rule = round_rule(store, review.round, fallback)
        agrees = review.student_label is not None and review.student_label == review.teacher_label
        would_accept = bool(accepts(np.array([review.teacher_confidence]), np.array([agrees]), rule.confidence_threshold,
                                    rule.student_agreement, rule.agreement_threshold)[0])
        weight = 1.0 / rule.audit_rate if would_accept and rule.audit_rate > 0 else 1.0
        items.append(ReviewedItem(review.teacher_label, review.teacher_confidence, human[review.item_id],
                                  review.student_label, review.student_confidence, weight, review.signals))
    return items


def calibrate(items: list[ReviewedItem], config: RoutingConfig) -> Calibration | None:
    if config.target_precision is None or len(items) < config.min_reviewed:
        return None
    return choose_threshold(items, config.target_precision, config.student_agreement, config.agreement_threshold)


def routing_for_round(store: Store, config: RoutingConfig, round_: int) -> RoundRouting:
    """The round's routing from every review decided so far, recorded in the store before it is used.

    With a target precision nothing is accepted until reviewed items show a threshold that meets it:
    `confidence_threshold` is a promise only the reviews can make, so it is not used in the meantime.
    """
    calibration = calibrate(reviewed_items(store, config), config)
    if config.target_precision is not None:
        threshold = NOTHING_ACCEPTED if calibration is None else calibration.threshold
        update = {"confidence_threshold": threshold}
        if threshold == NOTHING_ACCEPTED:  # student agreement must not let labels in either
            update["agreement_threshold"] = NOTHING_ACCEPTED
        config = config.model_copy(update=update)
    store.set_meta(_key(round_), json.dumps(config.model_dump(mode="json")))
    store.set_meta(_key(round_) + ".calibration", json.dumps(None if calibration is None else {
        "precision": calibration.precision, "precision_lower": calibration.precision_lower,
        "accepted_share": calibration.accepted_share, "reviewed": calibration.reviewed}))
    return RoundRouting(config, calibration)


def routing_metrics(store: Store, round_: int) -> dict[str, float | None]:
    """`routing_threshold` the round used, and `calibrated_precision` (the estimate it was chosen on)."""
    saved, cal = store.meta(_key(round_)), store.meta(_key(round_) + ".calibration")
    threshold = json.loads(saved)["confidence_threshold"] if saved else None
    calibration = json.loads(cal) if cal else None
    return {"routing_threshold": threshold,
            "calibrated_precision": None if calibration is None else calibration["precision"],
            "calibrated_precision_lower": None if calibration is None else calibration["precision_lower"]}
