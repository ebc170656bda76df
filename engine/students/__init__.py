"""Students: the models a run fine-tunes on its labels each round and scores the pool with.

`encoder.Student` is a Hugging Face sequence classifier (MiniLM by default) tuned with LoRA or fully.
`causal.CausalStudent` is a causal LM (SmolLM2-135M-Instruct by default) with LoRA for instruction data;
`causal_classifier.CausalClassifier` puts it behind encoder.Student's interface (`student.kind: causal`).
"""
from .causal import CausalStudent, GenerationScores, Pair
from .causal_classifier import CausalClassifier
from .encoder import Student
from .training import TrainStats

__all__ = ["Student", "TrainStats", "CausalStudent", "CausalClassifier", "GenerationScores", "Pair"]
