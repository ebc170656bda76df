"""`quarry` / `python -m engine`: argument parsing only; the work happens in engine/commands.py, imported once
the arguments are good, so `--help` and a mistyped flag answer at once instead of after torch has loaded."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .core.errors import QuarryError

# engine/export.py's FORMATS, written out so that parsing imports nothing heavy (tests/test_export_trl.py
# checks that the two agree).
EXPORT_FORMATS = ("chat", "sharegpt", "alpaca", "dpo", "jsonl")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quarry", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start a job, or resume it if its run folder exists")
    run.add_argument("config")
    run.add_argument("--run-dir", help="where the run lives (default: the config's run_dir, else runs/<name>)")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a config value")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(command_function="cmd_run")

    plan = commands.add_parser("plan", help="render a sample prompt; estimate the job's teacher calls, tokens and cost")
    plan.add_argument("config")
    plan.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a config value")
    plan.set_defaults(command_function="cmd_plan")

    status = commands.add_parser("status", help="rounds, labels by source, pending reviews, last metrics")
    status.add_argument("run_dir")
    status.set_defaults(command_function="cmd_status")

    review = commands.add_parser("review", help="decide the items routed to humans")
    review.add_argument("run_dir")
    review.add_argument("--reviewer", default=os.environ.get("USER", "reviewer"))
    review.add_argument("--decisions", help="import decisions from a JSONL file instead of asking: {\"id\", \"label\"} "
                        "(generation: {\"id\", \"answer\"}) or {\"id\", \"skip\": true}")
    review.add_argument("--limit", type=int, help="stop after this many items")
    review.add_argument("--export-batch", metavar="FILE", help="write the pending items for Label Studio or Argilla")
    review.add_argument("--import-batch", metavar="FILE", help="feed back decisions made in Label Studio or Argilla")
    review.add_argument("--format", choices=("label-studio", "argilla"),
                        help="batch format (export default: label-studio; import: detected from the file)")
    review.set_defaults(command_function="cmd_review")

    serve = commands.add_parser("serve", help="the review web app over a run (loopback by default)")
    serve.add_argument("run_dir")
    serve.add_argument("--host", help="address to bind (default: the config's review.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: the config's review.port, 8765)")
    serve.set_defaults(command_function="cmd_serve")

    reviewers = commands.add_parser("reviewers", help="login tokens for the review web app: add, remove, list")
    reviewer_actions = reviewers.add_subparsers(dest="action", required=True)
    add = reviewer_actions.add_parser("add", help="create or replace a reviewer's token (printed once)")
    add.add_argument("name")
    add.add_argument("run_dir")
    remove = reviewer_actions.add_parser("remove", help="delete a reviewer's token and end their sessions")
    remove.add_argument("name")
    remove.add_argument("run_dir")
    listing = reviewer_actions.add_parser("list", help="reviewers who can log in")
    listing.add_argument("run_dir")
    reviewers.set_defaults(command_function="cmd_reviewers")

    export = commands.add_parser("export", help="write the labeled data set")
    export.add_argument("run_dir")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="chat",
                        help="chat, sharegpt, alpaca (SFT), dpo (preference pairs of changed answers), jsonl (flat)")
    export.add_argument("--out", required=True)
    export.set_defaults(command_function="cmd_export")

    report = commands.add_parser("report", help="write report.html with learning curves and label sources")
    report.add_argument("run_dir")
    report.set_defaults(command_function="cmd_report")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands = importlib.import_module(".commands", __package__)  # heavy: after the arguments are checked
        return getattr(commands, args.command_function)(args)
    except QuarryError as exc:
        print(f"quarry: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("quarry: interrupted; `quarry run` on the same config resumes", file=sys.stderr)
        return 130
