"""Students: the models a run fine-tunes on its labels each round and scores the pool with.

`encoder.Student` is a Hugging Face sequence classifier (MiniLM by default) tuned with LoRA or fully.
"""
from .encoder import Student, TrainStats

__all__ = ["Student", "TrainStats"]
