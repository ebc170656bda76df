"""One base for every failure of the user's input: the CLI prints it as one line and exits 2."""
from __future__ import annotations


class QuarryError(Exception):
    """A problem the user can fix (a config key, a data row, a run folder, a decision file...),
    phrased as one line that names the file, key, line or URL. Anything else is a bug."""


class ConfigError(QuarryError, ValueError):
    """A config problem, phrased as one line that names the file and the key. Here, not in engine/config.py,
    so the light modules that config.py builds on (the teacher options and registry, the prompts) can raise it."""


class TeacherUnavailable(QuarryError):
    """The teacher's server cannot be reached or refuses us (wrong URL, key or model, or down mid-run),
    phrased as one line that names the URL, the model and the error. Nothing is routed while it lasts:
    the calls made so far stay recorded, and `quarry run` resumes once the server is back."""
