"""`python -m engine` from a checkout: the `quarry` command, on this checkout's code whatever copy is installed."""
import sys
import types
from pathlib import Path

if __package__ == "engine":  # the checkout's folder, not the installed quarry_al.engine
    checkout = types.ModuleType("quarry_al")
    checkout.__path__ = [str(Path(__file__).resolve().parent.parent)]
    sys.modules.setdefault("quarry_al", checkout)

from quarry_al.engine.cli import main  # noqa: E402

raise SystemExit(main())
