"""The phases of a round, in order: select -> label -> review -> train. Each is a public function of a
`RunContext` and the round, commits its outcome to the store before it returns, and can be rerun on
resume: it reads what is already committed and does only the rest."""
from .context import Log, Models, RunContext
from .label import label_round
from .review import review_round
from .select import select_round
from .train import train_round

__all__ = ["Log", "Models", "RunContext", "label_round", "review_round", "select_round", "train_round"]
