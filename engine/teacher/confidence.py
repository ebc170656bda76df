"""Confidence of a teacher's label, as pure functions of what the model answered; shared by the backends.

- logprobs: the label tokens' probability, read from a chat completion's token logprobs
  (`label_confidence`), or from vLLM's token-id logprobs along the generated path (`label_distribution`).
- self_consistency: k answers sampled at a temperature; confidence = share of the k that gave the
  majority label (Wang et al. 2023, "Self-Consistency Improves Chain of Thought Reasoning in
  Language Models", ICLR).
- verbalized: the model states a 0-100 confidence in its JSON answer (Tian et al. 2023, "Just Ask
  for Calibration", EMNLP).
- p_true: a second call shows the model its label and asks whether it is correct; confidence =
  P("True") against P("False") at the answer's first token (Kadavath et al. 2022, "Language Models
  (Mostly) Know What They Know", arXiv:2207.05221).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from .parsing import LABEL_VALUE

ConfidenceMethod = Literal["logprobs", "self_consistency", "verbalized", "p_true"]


@dataclass(frozen=True)
class LabelConfidence:
    """A measured confidence (and distribution over labels, when one was seen), or None and the reason:
    an unknown confidence is never a silent 0, and the reviewer learns why it is unknown."""

    confidence: float | None
    distribution: dict[str, float] | None = None
    reason: str = ""  # why `confidence` is None; "" when it is known

    @classmethod
    def unknown(cls, reason: str) -> "LabelConfidence":
        return cls(None, None, reason)


@dataclass(frozen=True)
class Vote:
    """Majority label of k samples, its agreement rate, and the share of each label among valid votes."""

    label: str | None
    confidence: float | None
    distribution: dict[str, float] | None


def majority_vote(answers: Sequence[str | None], labels: Sequence[str]) -> Vote:
    """Agreement rate of the majority label over all k samples: a sample that gave no usable label
    counts against the agreement. Ties go to the label listed first in the task."""
    votes = Counter(a for a in answers if a is not None)
    if not votes or not answers:
        return Vote(None, None, None)
    order = {label: i for i, label in enumerate(labels)}
    best = max(votes, key=lambda label: (votes[label], -order.get(label, len(order))))
    valid = sum(votes.values())
    return Vote(best, votes[best] / len(answers), {label: count / valid for label, count in votes.items()})


def verbalized_schema(labels: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": list(labels)},
            "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
        },
        "required": ["label", "confidence"],
        "additionalProperties": False,
    }


def verbalized_confidence(data: dict[str, Any]) -> tuple[float | None, str]:
    """(confidence in [0, 1], problem) from a parsed answer's "confidence" member (0-100)."""
    value = data.get("confidence")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"\"confidence\" is missing or not a number: {value!r}"
    if not math.isfinite(value) or not 0 <= value <= 100:
        return None, f"\"confidence\" {value!r} is not between 0 and 100"
    return float(value) / 100.0, ""


def p_true(logprobs_content: Sequence[Any] | None) -> LabelConfidence:
    """P("True") / (P("True") + P("False")) from the top logprobs at the answer's first token
    (tokens compared without surrounding spaces and letter case). Unknown when neither was seen:
    an unknown confidence, not a 0."""
    if not logprobs_content:
        return LabelConfidence.unknown("p_true: the check's answer came without logprobs")
    first = logprobs_content[0]
    candidates = list(getattr(first, "top_logprobs", None) or [])
    if not candidates:
        candidates = [first]
    mass = {"true": 0.0, "false": 0.0}  # " True" and "True" are different tokens: both count
    for candidate in candidates:
        token = (getattr(candidate, "token", None) or "").strip().casefold()
        logprob = getattr(candidate, "logprob", None)
        if token in mass and logprob is not None and math.isfinite(logprob):
            mass[token] += math.exp(logprob)
    total = mass["true"] + mass["false"]
    if total <= 0:
        return LabelConfidence.unknown("p_true: neither True nor False among the top logprobs of the check's answer")
    return LabelConfidence(mass["true"] / total)


def _match_label(fragment: str, closed: bool, labels: Sequence[str]) -> str | None:
    """The one label that a token's part inside the string value can begin (or, when the token
    also closes the string, be); None when no label or several could."""
    if not fragment:
        return None
    for fold in (False, True):
        norm = (lambda s: s.casefold()) if fold else (lambda s: s)
        f = norm(fragment)
        found = [l for l in labels if (norm(l) == f if closed else norm(l).startswith(f))]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            return None
    return None


def label_confidence(logprobs_content: Sequence[Any] | None, label: str, labels: Sequence[str]) -> LabelConfidence:
    """The confidence (and distribution) of `label` from a chat completion's `logprobs.content`.

    The tokens of the label are those overlapping the characters of the "label" string value in
    the concatenated token texts; the confidence is the exponent of the sum of their logprobs.
    The distribution holds the labels seen among the top logprobs at the label's first token
    (first-token probability for the others, the joint probability for the chosen label),
    normalised; labels not seen there are left out, and with no other label seen there is no
    distribution (None). The confidence itself is never normalised."""
    if not logprobs_content:
        return LabelConfidence.unknown("the response has no token logprobs")
    tokens = [getattr(t, "token", None) or "" for t in logprobs_content]
    starts, offset = [], 0
    for token in tokens:
        starts.append(offset)
        offset += len(token)
    text = "".join(tokens)
    match = LABEL_VALUE.search(text)
    if match is not None:
        begin, end = match.span(1)
    elif text.strip().casefold() == label.casefold():  # a bare label (vLLM's guided_choice)
        begin = len(text) - len(text.lstrip())
        end = begin + len(text.strip())
    else:
        return LabelConfidence.unknown("the logprob tokens do not spell the answer's label")
    if end == begin:
        return LabelConfidence.unknown("the label's string is empty in the logprob tokens")
    inside = [i for i, token in enumerate(tokens) if starts[i] < end and starts[i] + len(token) > begin]
    logprobs = [getattr(logprobs_content[i], "logprob", None) for i in inside]
    if any(lp is None or not math.isfinite(lp) for lp in logprobs):
        return LabelConfidence.unknown("a token of the label has no finite logprob")
    total = sum(logprobs)
    confidence = min(1.0, math.exp(total))
    if confidence <= 0.0 or total < -1000:  # -9999 is some servers' stand-in for "masked"
        return LabelConfidence.unknown(f"the label's tokens have logprob {total:g}: masked by the server, not measured")

    first = inside[0]
    top = getattr(logprobs_content[first], "top_logprobs", None) or []
    if not top:
        return LabelConfidence(confidence)
    lead = text[starts[first]:begin]  # the token's characters before the value (e.g. ' "')
    chosen_first = tokens[first]
    probabilities = {label: confidence}
    for alternative in top:
        alt_text, alt_lp = getattr(alternative, "token", None), getattr(alternative, "logprob", None)
        if not alt_text or alt_lp is None or not math.isfinite(alt_lp) or alt_text == chosen_first:
            continue
        if not alt_text.startswith(lead):
            continue
        fragment = alt_text[len(lead):]
        closed = '"' in fragment
        if closed:
            fragment = fragment[: fragment.index('"')]
        other = _match_label(fragment, closed, labels)
        if other is None or other == label:
            continue
        probabilities[other] = probabilities.get(other, 0.0) + math.exp(alt_lp)
    if len(probabilities) < 2:  # only the chosen label seen: {label: 1.0} would claim a certainty never measured
        return LabelConfidence(confidence)
    norm = sum(probabilities.values())
    return LabelConfidence(confidence, {k: v / norm for k, v in probabilities.items()})


def label_distribution(label_ids: Mapping[str, Sequence[int]], generated: Sequence[int],
                       top: Sequence[Mapping[int, float]]) -> dict[str, float]:
    """Probabilities of the labels (not normalised) from token-id logprobs along the generated path
    (vLLM's offline engine, whose decoding is constrained to the labels).

    A label's probability is the product of its token probabilities while it follows the
    generated tokens, times that of the token where it leaves them (read from that position's
    top logprobs). What comes after is not observed: labels that leave the path by the same
    token share its probability equally. A label whose token is not among the top logprobs
    where it is needed gets 0.
    """
    logps: dict[str, float] = {}
    branch: dict[str, tuple[int, ...]] = {}  # where a label left the path before its end
    for label, ids in label_ids.items():
        logp = 0.0
        for pos, token in enumerate(ids):
            if pos >= len(top):
                break
            step = top[pos].get(token)
            if step is None:
                logp = -math.inf
                break
            logp += step
            if (pos >= len(generated) or generated[pos] != token) and pos < len(ids) - 1:
                branch[label] = tuple(ids[:pos + 1])
                break
        logps[label] = logp
    sharing = {key: list(branch.values()).count(key) for key in set(branch.values())}
    return {label: math.exp(logp) / (sharing[branch[label]] if label in branch else 1)
            for label, logp in logps.items()}
