"""Quarry: active learning with an LLM teacher, a LoRA student and human review."""
