"""``tbal`` verbs that drive a running service over HTTP, on top of :mod:`tbal_client.client`.

Registered through the ``tbal.commands`` entry-point group (``client = "tbal_client.cli:register"``, declared
by the ``tbal-client`` distribution in ``client/pyproject.toml``), and runnable without the library as the
``tbal-client`` command or ``python -m tbal_client.cli``. Every verb takes ``--url`` (default ``$TBAL_URL``,
else http://127.0.0.1:8000) and ``--key`` (default ``$TBAL_API_KEY``)::

    export TBAL_URL=http://127.0.0.1:8000 TBAL_API_KEY=$(tbal create-key --name me)
    PID=$(tbal project create --name digits --data digits.npz --set epsilon=0.05)
    tbal items upload --project $PID --data digits.npz
    tbal queue list --project $PID --out queue.jsonl     # label these, then:
    tbal labels post --project $PID --file labels.csv    # columns external_id,label[,annotator]
    tbal round start --project $PID --wait               # exit code 3: nothing left to do
    tbal auto-labels export --project $PID --out auto.csv
    tbal export --project $PID --format manifest --out labels.manifest

Output: ids and results on stdout (one line, or JSON with ``--json``), progress and notes on stderr.
Exit codes: 0 done; 1 the service refused or could not be reached (the reason on stderr); 2 bad input;
3 ``round start`` found the project finished (label budget spent, pool empty, or max_rounds reached).

Over ~400 lines on purpose: each verb's flags (``_register_*``) and its handler are read together, and
splitting one from the other would only trade length for a second file to open; the files the verbs
read and write are in :mod:`tbal_client.files`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tbal_client.client import RetryPolicy, TBALClient, find_images
from tbal_client.files import (
    CommandError,
    read_items,
    read_labels,
    shape_from_data,
    write_csv,
    write_jsonl,
)
from tbal_client.types import APIError, Project, Round, TBALClientError

EXIT_OK = 0
EXIT_SERVICE = 1
EXIT_BAD_INPUT = 2
EXIT_DONE = 3
DONE_FIELDS = ("label_budget", "pool", "max_rounds")
"""409 on these fields when starting a round: the project is finished."""
DEFAULT_URL = "http://127.0.0.1:8000"

Handler = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------------------------------------------
# Parser


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the client verbs: project, items, queue, labels, round, auto-labels, export."""
    common = _common_parser()
    _register_project(subparsers, common)
    _register_items(subparsers, common)
    _register_queue_and_labels(subparsers, common)
    _register_rounds(subparsers, common)
    _register_reads(subparsers, common)


def _register_project(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``tbal project create / list / show / set / delete``."""
    project = subparsers.add_parser("project", help="create, list, show, change or delete projects (HTTP)")
    verbs = project.add_subparsers(dest="verb", metavar="VERB", required=True)
    create = verbs.add_parser(
        "create",
        parents=[common],
        help="create a project; prints its id",
        description="Create a project. With --data, the kind, shape and classes come from the file "
        "(uint8 (n, H, W[, C]) arrays are images, (n, d) ones feature vectors; classes from its "
        "class_names array, else 0..max(y)); flags override them.",
    )
    create.add_argument("--name", required=True)
    create.add_argument(
        "--data", type=Path, help="a .npz (X, optional y / class_names) to take the shape from"
    )
    create.add_argument("--classes", help="comma-separated class names")
    create.add_argument("--data-kind", choices=("features", "image", "text"))
    create.add_argument(
        "--input-shape", help="comma-separated, e.g. 64 or 28,28 (text: none, the encoder's size)"
    )
    create.add_argument("--seed", type=int, default=0)
    _add_settings(create)
    create.set_defaults(func=_project_create)

    listing = verbs.add_parser("list", parents=[common], help="list projects")
    listing.set_defaults(func=_project_list)
    show = verbs.add_parser("show", parents=[common], help="a project with its counts (JSON)")
    show.add_argument(
        "project_id", type=int, nargs="?", default=_env_int("TBAL_PROJECT"), help="default: $TBAL_PROJECT"
    )
    show.set_defaults(func=_project_show)
    change = verbs.add_parser("set", parents=[common], help="change settings (--set NAME=VALUE ...)")
    change.add_argument("project_id", type=int)
    _add_settings(change)
    change.set_defaults(func=_project_set)
    remove = verbs.add_parser("delete", parents=[common], help="delete a project and all its rows")
    remove.add_argument("project_id", type=int)
    remove.add_argument("--yes", action="store_true", help="really delete")
    remove.set_defaults(func=_project_delete)


def _register_items(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``tbal items upload``."""
    items = subparsers.add_parser("items", help="upload items (HTTP)")
    verbs = items.add_subparsers(dest="verb", metavar="VERB", required=True)
    upload = verbs.add_parser(
        "upload",
        parents=[common],
        help="upload a .npz / .npy file, a text file (CSV, JSONL, JSON) or image files, in chunks",
        description="Upload X (and optional external_ids, and y as ground truth for simulations) from a "
        ".npz, or X from a .npy; texts from a .csv / .jsonl / .json file (text projects; --text-column, "
        "--id-column, --label-column); or image files from --images DIR (image projects; --glob "
        "patterns, default every PNG/JPEG/WebP/BMP file and zip/tar archive below DIR). Chunks are "
        "retried on their own; re-sending adds nothing twice.",
    )
    _add_project(upload)
    source = upload.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help=".npz, .npy, .csv, .jsonl or .json")
    source.add_argument("--images", type=Path, help="a folder of image files (or one archive)")
    upload.add_argument(
        "--glob", action="append", default=[], help="with --images: files to take, e.g. '*.png' (repeatable)"
    )
    upload.add_argument(
        "--labels-from-folders", action="store_true", help="with --images: class = the file's folder name"
    )
    upload.add_argument("--text-column", default="text", help="text files: the column of the texts")
    upload.add_argument("--id-column", help="text files: the column of external ids (default: row ids)")
    upload.add_argument("--label-column", help="text files: ground truth (class names or indices)")
    upload.add_argument("--split", default=None, help="use X_<split> / y_<split> arrays (e.g. train)")
    upload.add_argument("--no-ground-truth", action="store_true", help="do not send y")
    upload.add_argument("--id-prefix", default="", help="ids of rows when the file has no external_ids")
    upload.add_argument("--chunk-rows", type=int, help="rows per request (default: about 32 MiB)")
    upload.set_defaults(func=_items_upload)


def _register_queue_and_labels(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``tbal queue list, labels post / simulate``."""
    queue = subparsers.add_parser("queue", help="what humans should label next (HTTP)")
    verbs = queue.add_subparsers(dest="verb", metavar="VERB", required=True)
    qlist = verbs.add_parser("list", parents=[common], help="open queries as JSONL (stdout or --out)")
    _add_project(qlist)
    qlist.add_argument("--out", type=Path, help="write JSONL here instead of stdout")
    qlist.add_argument("--include-data", action="store_true", help="with each item's data")
    qlist.add_argument("--limit", type=int, help="at most this many rows")
    qlist.set_defaults(func=_queue_list)

    labels = subparsers.add_parser("labels", help="post human labels, or simulate them (HTTP)")
    verbs = labels.add_subparsers(dest="verb", metavar="VERB", required=True)
    post = verbs.add_parser(
        "post",
        parents=[common],
        help="post labels from a CSV or JSONL file",
        description="CSV: a header with external_id (or item_id) and label, optionally annotator (several "
        "rows per item with distinct annotators become votes, i.e. a soft label). JSONL: one API label "
        "object per line ({external_id, label | distribution | votes}). Labels are class names unless "
        "--by-index.",
    )
    _add_project(post)
    post.add_argument("--file", type=Path, required=True)
    post.add_argument("--by-index", action="store_true", help="CSV labels are class indices, not names")
    post.add_argument("--source", default="cli")
    post.add_argument("--batch-size", type=int, default=5000)
    post.set_defaults(func=_labels_post)
    simulate = verbs.add_parser(
        "simulate", parents=[common], help="answer the open queue from uploaded ground truth (demos)"
    )
    _add_project(simulate)
    simulate.set_defaults(func=_labels_simulate)


def _register_rounds(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``tbal round start / wait / show / list``."""
    round_ = subparsers.add_parser("round", help="start, wait for, show rounds (HTTP)")
    verbs = round_.add_subparsers(dest="verb", metavar="VERB", required=True)
    start = verbs.add_parser(
        "start",
        parents=[common],
        help="start a round; prints its id (exit 3 when the project is finished)",
    )
    _add_project(start)
    _add_wait(start, "--wait", "wait until it finishes, with a progress line on stderr")
    start.set_defaults(func=_round_start)
    wait = verbs.add_parser("wait", parents=[common], help="wait for a round, with a progress line")
    wait.add_argument("round_id", type=int)
    _add_wait(wait, None, None)
    wait.set_defaults(func=_round_wait)
    rshow = verbs.add_parser("show", parents=[common], help="a round as JSON")
    rshow.add_argument("round_id", type=int)
    rshow.set_defaults(func=_round_show)
    rlist = verbs.add_parser("list", parents=[common], help="a project's rounds, one line each")
    _add_project(rlist)
    rlist.set_defaults(func=_round_list)


def _register_reads(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``tbal auto-labels export, export``."""
    auto = subparsers.add_parser("auto-labels", help="read auto-labels (HTTP)")
    verbs = auto.add_subparsers(dest="verb", metavar="VERB", required=True)
    aexport = verbs.add_parser(
        "export", parents=[common], help="every auto-label as JSONL or CSV (keyset pages)"
    )
    _add_project(aexport)
    aexport.add_argument("--out", type=Path, help="a file (default stdout); .csv gives CSV")
    aexport.add_argument("--format", choices=("jsonl", "csv"), help="default: from --out, else jsonl")
    aexport.add_argument("--round", dest="round_id", type=int, help="only this round (id)")
    aexport.add_argument("--class", dest="class_", help="only this class (name or index)")
    aexport.add_argument("--min-confidence", type=float)
    aexport.set_defaults(func=_auto_labels_export)

    export = subparsers.add_parser(
        "export",
        parents=[common],
        help="the service's export of every label (JSONL, CSV, SageMaker-style manifest) (HTTP)",
    )
    _add_project(export)
    export.add_argument("--format", choices=("jsonl", "csv", "manifest"), default="jsonl")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--job-name", help="the manifest's job name (default: the project's name)")
    export.set_defaults(func=_export)


def _common_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("service")
    group.add_argument(
        "--url",
        default=os.environ.get("TBAL_URL", DEFAULT_URL),
        help="the service's base URL (default: $TBAL_URL, else %(default)s)",
    )
    group.add_argument(
        "--key",
        default=os.environ.get("TBAL_API_KEY"),
        help="an API key from `tbal create-key` (default: $TBAL_API_KEY)",
    )
    group.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    group.add_argument("--retries", type=int, default=4, help="retries of a failed request")
    group.add_argument("--json", action="store_true", help="print the full JSON result on stdout")
    return common


def _add_project(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project",
        type=int,
        default=_env_int("TBAL_PROJECT"),
        required=os.environ.get("TBAL_PROJECT") is None,
        help="the project's id (default: $TBAL_PROJECT)",
    )


def _add_settings(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a project setting, e.g. --set epsilon=0.05 --set hidden=[256,64] (values read as JSON "
        "when they parse)",
    )


def _add_wait(parser: argparse.ArgumentParser, flag: str | None, help_text: str | None) -> None:
    if flag:
        parser.add_argument(flag, action="store_true", help=help_text)
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--timeout-wait", type=float, help="give up waiting after this many seconds")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None


# ---------------------------------------------------------------------------------------------------
# Running a verb


def _client(args: argparse.Namespace) -> TBALClient:
    if args.retries < 0:
        raise CommandError(f"--retries must be ≥ 0, got {args.retries}")
    return TBALClient(
        args.url, key=args.key, timeout_s=args.timeout, retry=RetryPolicy(attempts=args.retries + 1)
    )


def _guarded(handler: Handler) -> Handler:
    """Turn the client's errors into one line on stderr and an exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except CommandError as exc:
            _note(f"tbal: error: {exc}")
            return EXIT_BAD_INPUT
        except APIError as exc:
            hint = " (give --key or set TBAL_API_KEY)" if exc.status == 401 else ""
            _note(f"tbal: error: {exc}{hint}")
            return EXIT_SERVICE
        except TBALClientError as exc:
            _note(f"tbal: error: {exc}")
            return EXIT_SERVICE
        except ValueError as exc:
            _note(f"tbal: error: {exc}")
            return EXIT_BAD_INPUT

    run.__name__ = handler.__name__
    return run


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _warn(project: Project) -> None:
    """The service's warnings on a project's settings (its certificate's needs), on stderr."""
    for warning in project.warnings:
        _note(f"warning: {warning}")


def _emit(args: argparse.Namespace, short: str, payload: Any) -> None:
    print(json.dumps(payload, indent=1, default=str) if args.json else short, flush=True)


# ---------------------------------------------------------------------------------------------------
# Verbs


@_guarded
def _project_create(args: argparse.Namespace) -> int:
    kind, shape, classes = shape_from_data(args.data) if args.data else (None, None, None)
    kind = args.data_kind or kind
    shape = _ints(args.input_shape, "--input-shape") if args.input_shape else shape
    if kind == "text" and shape is None:
        shape = []  # the service takes the encoder's size
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else classes
    missing = [
        flag
        for flag, value in (("--data-kind", kind), ("--input-shape", shape), ("--classes", classes))
        if value is None
    ]
    if missing:
        raise CommandError(f"give {', '.join(missing)} (or --data FILE.npz to take them from)")
    assert kind is not None and shape is not None and classes is not None
    with _client(args) as tb:
        project = tb.create_project(
            args.name,
            classes=classes,
            data_kind=kind,  # type: ignore[arg-type]
            input_shape=shape,
            settings=_parse_settings(args.settings),
            seed=args.seed,
        )
    _note(
        f"project {project.id} ({project.name}): {len(project.classes)} classes, {project.data_kind} "
        f"{project.input_shape}, ε = {project.epsilon}, label budget {project.label_budget}"
    )
    _warn(project)
    _emit(args, str(project.id), project.raw)
    return EXIT_OK


@_guarded
def _project_list(args: argparse.Namespace) -> int:
    with _client(args) as tb:
        projects = tb.list_projects()
    if args.json:
        _emit(args, "", [p.raw for p in projects])
        return EXIT_OK
    for p in projects:
        print(f"{p.id}\t{p.name}\t{p.data_kind} {p.input_shape}\t{len(p.classes)} classes\tε={p.epsilon}")
    return EXIT_OK


@_guarded
def _project_show(args: argparse.Namespace) -> int:
    if args.project_id is None:
        raise CommandError("give the project's id (or set TBAL_PROJECT)")
    with _client(args) as tb:
        project = tb.get_project(args.project_id)
    print(json.dumps(project.raw, indent=1))
    return EXIT_OK


@_guarded
def _project_set(args: argparse.Namespace) -> int:
    settings = _parse_settings(args.settings)
    if not settings:
        raise CommandError("give at least one --set NAME=VALUE")
    with _client(args) as tb:
        project = tb.update_settings(args.project_id, settings)
    _warn(project)
    _emit(args, json.dumps(project.settings), project.raw)
    return EXIT_OK


@_guarded
def _project_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        raise CommandError(f"deleting project {args.project_id} removes all its rows; add --yes")
    with _client(args) as tb:
        tb.delete_project(args.project_id)
    _note(f"project {args.project_id} deleted")
    return EXIT_OK


@_guarded
def _items_upload(args: argparse.Namespace) -> int:
    if args.images is not None or args.data.suffix.lower() in TEXT_SUFFIXES:
        return _raw_upload(args)
    X, external_ids, y = read_items(args.data, args.split)
    if args.no_ground_truth:
        y = None
    progress = _UploadProgress()
    with _client(args) as tb:
        result = tb.upload_items(
            args.project,
            X,
            external_ids=external_ids,
            ground_truth=y,
            id_prefix=args.id_prefix,
            chunk_rows=args.chunk_rows,
            on_chunk=progress,
        )
    _note(
        f"uploaded {result.received} items: {result.inserted} new, {result.skipped} already there, "
        f"{result.ground_truth_added} with ground truth"
    )
    _emit(args, str(result.inserted), result.__dict__)
    return EXIT_OK


TEXT_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")


def _raw_upload(args: argparse.Namespace) -> int:
    """``items upload`` of a text file or of --images."""
    progress = _UploadProgress()
    with _client(args) as tb:
        if args.images is not None:
            if not args.images.exists():
                raise CommandError(f"no such folder or file: {args.images}")
            files = find_images(args.images, args.glob or ("**/*",))
            if not files:
                raise CommandError(f"no image files under {args.images} matching {args.glob or ['**/*']}")
            result = tb.upload_images(
                args.project,
                files,
                root=args.images if args.images.is_dir() else None,
                id_prefix=args.id_prefix,
                labels_from_folders=args.labels_from_folders,
                on_chunk=progress,
            )
        else:
            if not args.data.is_file():
                raise CommandError(f"no such file: {args.data}")
            result = tb.upload_text_file(
                args.project,
                args.data,
                text_column=args.text_column,
                id_column=args.id_column,
                label_column=None if args.no_ground_truth else args.label_column,
                id_prefix=args.id_prefix,
                on_chunk=progress,
            )
    _note(
        f"uploaded {result.received} items: {result.inserted} new, {result.skipped} already there, "
        f"{result.ground_truth_added} with ground truth"
    )
    _emit(args, str(result.inserted), result.__dict__)
    return EXIT_OK


@_guarded
def _queue_list(args: argparse.Namespace) -> int:
    with _client(args) as tb:
        counts = tb.queue_counts(args.project)
        rows = tb.iter_queue(args.project, include_data=args.include_data)
        written = write_jsonl(args.out, (q.__dict__ for q in rows), args.limit)
    _note(
        f"queue: {counts.open_validation} validation and {counts.open_training} training items open"
        + (f"; {written} written to {args.out}" if args.out else "")
    )
    return EXIT_OK


@_guarded
def _labels_post(args: argparse.Namespace) -> int:
    labels = read_labels(args.file, by_index=args.by_index)
    with _client(args) as tb:
        result = tb.post_labels(args.project, labels, source=args.source, batch_size=args.batch_size)
    _note(
        f"{result.received} labels: {result.created} new, {result.updated} updated; "
        f"{result.validation} validation, {result.training} training; "
        f"{result.answered_queries} queries answered"
    )
    _emit(args, str(result.received), result.__dict__)
    return EXIT_OK


@_guarded
def _labels_simulate(args: argparse.Namespace) -> int:
    with _client(args) as tb:
        result = tb.simulate(args.project)
    _note(
        f"answered {result.answered} queries from ground truth: {result.validation} validation, "
        f"{result.training} training"
    )
    _emit(args, str(result.answered), result.__dict__)
    return EXIT_OK


@_guarded
def _round_start(args: argparse.Namespace) -> int:
    with _client(args) as tb:
        try:
            started = tb.start_round(args.project)
        except APIError as exc:
            if exc.status == 409 and exc.field in DONE_FIELDS:
                _note(f"nothing to do: {exc.reason}")
                return EXIT_DONE
            raise
        _note(f"round {started.index} (id {started.id}) queued")
        if not args.wait:
            _emit(args, str(started.id), started.raw)
            return EXIT_OK
        done = _wait(tb, started.id, args)
    return _report_round(args, done)


@_guarded
def _round_wait(args: argparse.Namespace) -> int:
    with _client(args) as tb:
        done = _wait(tb, args.round_id, args)
    return _report_round(args, done)


@_guarded
def _round_show(args: argparse.Namespace) -> int:
    with _client(args) as tb:
        print(json.dumps(tb.get_round(args.round_id).raw, indent=1))
    return EXIT_OK


@_guarded
def _round_list(args: argparse.Namespace) -> int:
    with _client(args) as tb:
        rounds = tb.list_rounds(args.project)
    if args.json:
        _emit(args, "", [r.raw for r in rounds])
        return EXIT_OK
    for r in rounds:
        print(round_line(r))
    return EXIT_OK


@_guarded
def _auto_labels_export(args: argparse.Namespace) -> int:
    fmt = args.format or ("csv" if args.out and args.out.suffix == ".csv" else "jsonl")
    class_ = int(args.class_) if args.class_ and args.class_.isdigit() else args.class_
    with _client(args) as tb:
        rows = tb.iter_auto_labels(
            args.project, round_id=args.round_id, class_=class_, min_confidence=args.min_confidence
        )
        if fmt == "csv":
            written = write_csv(args.out, rows)
        else:
            written = write_jsonl(args.out, (a.__dict__ for a in rows), None)
    _note(f"{written} auto-labels" + (f" written to {args.out}" if args.out else ""))
    return EXIT_OK


@_guarded
def _export(args: argparse.Namespace) -> int:
    with _client(args) as tb:
        size = tb.export(args.project, args.out, format=args.format, job_name=args.job_name)
    _note(f"wrote {size} bytes to {args.out} ({args.format})")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------
# Helpers


def round_line(r: Round) -> str:
    """One line per round: index, id, status, coverage, errors and ε (percentages)."""
    m = r.metrics or {}
    truth = (m.get("true_error") or {}).get("round")
    return (
        f"round {r.index:>3} (id {r.id}) {r.status:<9} auto {m.get('auto_labeled', '-'):>6}  "
        f"coverage {_pct(m.get('coverage_total'))}  bound {_pct(m.get('pooled_error_bound'))}  "
        f"true error {_pct(truth)}  ε {_pct(m.get('epsilon'))}  {r.model_version or ''}"
    )


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def _wait(tb: TBALClient, round_id: int, args: argparse.Namespace) -> Round:
    return tb.wait_round(
        round_id,
        poll_s=args.poll,
        timeout_s=args.timeout_wait,
        progress=not args.quiet,
        raise_on_failure=False,
    )


def _report_round(args: argparse.Namespace, done: Round) -> int:
    _note(round_line(done))
    if not done.succeeded:
        _note(f"tbal: error: round {done.index} failed: {done.error}")
        _emit(args, str(done.id), done.raw)
        return EXIT_SERVICE
    _emit(args, str(done.id), done.raw)
    return EXIT_OK


def _parse_settings(items: Sequence[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--set expects NAME=VALUE, got {item!r}")
        try:
            settings[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            settings[name.strip()] = raw
    return settings


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise CommandError(f"{flag} expects comma-separated integers, got {text!r}") from exc


class _UploadProgress:
    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self._tty:
            end = "\n" if done == total else ""
            print(f"\ruploaded {done}/{total} rows", end=end, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    """A parser with only the client verbs (the ``tbal-client`` command, ``python -m tbal_client.cli``)."""
    parser = argparse.ArgumentParser(
        prog="tbal-client", description="Drive a tbal service over HTTP (see `tbal serve`)."
    )
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.func
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
