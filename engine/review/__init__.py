"""Human review of the items routing could not accept: simulated from gold, or queued for people."""
from quarry_al.engine.review.decisions import DecisionError, import_decisions
from quarry_al.engine.review.simulate import simulate_review
from quarry_al.engine.review.terminal import review_in_terminal

__all__ = ["DecisionError", "import_decisions", "review_in_terminal", "simulate_review"]
