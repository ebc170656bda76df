"""Human review of the items routing could not accept: simulated from gold, or queued for people."""
from .decisions import DecisionError, import_decisions
from .simulate import simulate_review
from .terminal import review_in_terminal

__all__ = ["DecisionError", "import_decisions", "review_in_terminal", "simulate_review"]
