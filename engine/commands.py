"""What each `quarry` command does: a thin layer over the rooms, imported by engine/cli.py only once the
arguments parsed (this module brings torch, transformers and scikit-learn with the rooms it calls)."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import warnings
from pathlib import Path

import transformers

from .config import config_from_dict, load_config
from .export import export as export_run
from .loop import default_run_dir, run_job
from .plan import make_plan, plan_text
from .report import run_summary, status_text, write_report
from .review import import_decisions
from .review.auth import add_reviewer, remove_reviewer, reviewer_names
from .review.batch import export_batch, import_batch
from .review.kinds import review_kind
from .review.queue import ReviewQueue
from .review.web.app import serve as serve_review
from .run_folder import RunFolder
from .store import Store, StoreError
from .student_config import recipe_warnings


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def _open_store(run_dir: str):
    path = RunFolder(Path(run_dir)).database
    if not path.is_file():
        raise StoreError(f"{run_dir}: no run here (missing quarry.db); start one with `quarry run CONFIG`")
    return Store(path)


def _config(store):
    return config_from_dict(json.loads(store.config_json()))


def _queue(store):
    review = _config(store).review
    return ReviewQueue(store, overlap=review.overlap, lease_s=review.lease_s)


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)
    _quiet_libraries()
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
    print(plan_text(make_plan(config)))
    for warning in recipe_warnings(config.student):
        print(f"warning: {warning}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with _open_store(args.run_dir) as store:
        print(status_text(store))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    with _open_store(args.run_dir) as store:
        config = _config(store)
        kind = review_kind(config)
        if args.export_batch:
            fmt = args.format or "label-studio"
            count = export_batch(_queue(store), args.export_batch, fmt, kind.shape)
            print(f"wrote {count} pending items to {args.export_batch} ({fmt})\n{kind.shape.setup_hint(fmt)}")
        elif args.import_batch:
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
    with _open_store(args.run_dir) as store:
        review = _config(store).review
        path = store.path
    serve_review(path, args.host or review.host, args.port or review.port)
    return 0


def cmd_reviewers(args: argparse.Namespace) -> int:
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
    with _open_store(args.run_dir) as store:
        count = export_run(store, _config(store), args.format, args.out)
    print(f"wrote {count} records to {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    with _open_store(args.run_dir) as store:
        page = write_report(store, RunFolder(Path(args.run_dir)))
    print(f"wrote {page}")
    return 0
