"""The teacher's prompt templates (Jinja2), shipped as package data."""
