"""`quarry` / `python -m engine`: argument parsing only; the work happens in the rooms it calls."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
from pathlib import Path

from .config import config_from_dict, load_config
from .core.errors import QuarryError
from .run_folder import RunFolder
from .student_config import recipe_warnings

# engine/export.py FORMATS (not imported here: it brings the task kinds and their models with it).
EXPORT_FORMATS = ("chat", "sharegpt", "alpaca", "dpo", "jsonl")


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def _open_store(run_dir: str):
    from .store import Store, StoreError

    path = RunFolder(Path(run_dir)).database
    if not path.is_file():
        raise StoreError(f"{run_dir}: no run here (missing quarry.db); start one with `quarry run CONFIG`")
    return Store(path)


def _config(store):
    return config_from_dict(json.loads(store.config_json()))


def _queue(store):
    from .review.queue import ReviewQueue

    review = _config(store).review
    return ReviewQueue(store, overlap=review.overlap, lease_s=review.lease_s)


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)
    _quiet_libraries()
    from .loop import default_run_dir, run_job
    from .report import run_summary

    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config)
    reason = run_job(config, run_dir, progress=not args.no_progress)
    rerun = shlex.join(["quarry", "run", args.config, *(["--run-dir", args.run_dir] if args.run_dir else []),
                        *(part for pair in args.set for part in ("--set", pair))])
    with _open_store(str(run_dir)) as store:
        print(run_summary(store, str(run_dir), reason, rerun))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)
    _quiet_libraries()
    from .plan import make_plan, plan_text

    print(plan_text(make_plan(config)))
    for warning in recipe_warnings(config.student):
        print(f"warning: {warning}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .report import status_text

    with _open_store(args.run_dir) as store:
        print(status_text(store))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from .review import import_decisions
    from .review.kinds import review_kind

    with _open_store(args.run_dir) as store:
        config = _config(store)
        kind = review_kind(config)
        if args.export_batch:
            from .review.batch import export_batch

            fmt = args.format or "label-studio"
            count = export_batch(_queue(store), args.export_batch, fmt, kind.shape)
            print(f"wrote {count} pending items to {args.export_batch} ({fmt})\n{kind.shape.setup_hint(fmt)}")
        elif args.import_batch:
            from .review.batch import import_batch

            result = import_batch(_queue(store), args.import_batch, config.task.label_names, args.format,
                                  default_reviewer=args.reviewer, shape=kind.shape)
            print(f"decided {result.decided}, skipped {result.skipped}, not applied {len(result.conflicts)}"
                  + "".join(f"\n  {c}" for c in result.conflicts[:10]) + f"\npending {store.pending_count()}")
        elif args.decisions:
            summary = import_decisions(_queue(store), args.decisions, config.task.label_names, reviewer=args.reviewer,
                                       check=kind.check, key=kind.decision_key)
            print(f"decided {summary.decided}, skipped {summary.skipped}, "
                  f"already decided or not pending {len(summary.not_pending)}")
        else:
            counts = kind.terminal(_queue(store), reviewer=args.reviewer, limit=args.limit)
            print(", ".join(f"{k} {v}" for k, v in counts.items()) + f"; pending {store.pending_count()}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .review.web.app import serve

    with _open_store(args.run_dir) as store:
        review = _config(store).review
        path = store.path
    serve(path, args.host or review.host, args.port or review.port)
    return 0


def cmd_reviewers(args: argparse.Namespace) -> int:
    from .review.auth import add_reviewer, remove_reviewer, reviewer_names

    with _open_store(args.run_dir) as store:
        if args.action == "add":
            token = add_reviewer(store, args.name)
            print(f"reviewer {args.name}: token {token}\n(shown once; only its hash is stored; log in at `quarry serve`)")
        elif args.action == "remove":
            ended = remove_reviewer(store, args.name, _config(store).review.reviewers)
            print(f"reviewer {args.name} removed; {ended} open sessions ended")
        else:
            configured = sorted(_config(store).review.reviewers)
            for name in reviewer_names(store):
                print(f"{name}\t(quarry reviewers add)")
            for name in configured:
                print(f"{name}\t(config review.reviewers)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    with _open_store(args.run_dir) as store:
        count = export(store, _config(store), args.format, args.out)
    print(f"wrote {count} records to {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    with _open_store(args.run_dir) as store:
        page = write_report(store, RunFolder(Path(args.run_dir)))
    print(f"wrote {page}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quarry", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start a job, or resume it if its run folder exists")
    run.add_argument("config")
    run.add_argument("--run-dir", help="where the run lives (default: the config's run_dir, else runs/<name>)")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a config value")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=cmd_run)

    plan = commands.add_parser("plan", help="render a sample prompt; estimate the job's teacher calls, tokens and cost")
    plan.add_argument("config")
    plan.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a config value")
    plan.set_defaults(func=cmd_plan)

    status = commands.add_parser("status", help="rounds, labels by source, pending reviews, last metrics")
    status.add_argument("run_dir")
    status.set_defaults(func=cmd_status)

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
    review.set_defaults(func=cmd_review)

    serve = commands.add_parser("serve", help="the review web app over a run (loopback by default)")
    serve.add_argument("run_dir")
    serve.add_argument("--host", help="address to bind (default: the config's review.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: the config's review.port, 8765)")
    serve.set_defaults(func=cmd_serve)

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
    reviewers.set_defaults(func=cmd_reviewers)

    export = commands.add_parser("export", help="write the labeled data set")
    export.add_argument("run_dir")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="chat",
                        help="chat, sharegpt, alpaca (SFT), dpo (preference pairs of changed answers), jsonl (flat)")
    export.add_argument("--out", required=True)
    export.set_defaults(func=cmd_export)

    report = commands.add_parser("report", help="write report.html with learning curves and label sources")
    report.add_argument("run_dir")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except QuarryError as exc:
        print(f"quarry: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("quarry: interrupted; `quarry run` on the same config resumes", file=sys.stderr)
        return 130
