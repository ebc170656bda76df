"""Benches measure the code beside them: `quarry_al` is imported from this checkout, not an installed copy."""
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_package = types.ModuleType("quarry_al")
_package.__path__ = [str(REPO)]
sys.modules.setdefault("quarry_al", _package)
