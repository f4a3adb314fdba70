"""The service's verbs of the ``tbal`` command (loaded through the ``tbal.commands`` entry point group):
``serve``, ``migrate``, ``create-key``, ``revoke-key``, ``list-keys``, ``worker``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from app.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the service's subcommands; each sets ``func(args) -> int``."""
    serve = subparsers.add_parser(
        "serve",
        help="run the API (embedded default: SQLite file and in-process rounds)",
        description="Run the API with uvicorn. Settings come from TBAL_* variables (TBAL_DATABASE_URL, "
        "TBAL_BROKER_URL, TBAL_ARTIFACTS_DIR...). On SQLite the migrations run first.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-migrate", action="store_true", help="do not run the migrations on SQLite first")
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API processes (uvicorn workers; each has its own pool of threads and database connections)",
    )
    serve.set_defaults(func=_serve)

    migrate = subparsers.add_parser("migrate", help="apply the database migrations (alembic upgrade head)")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(func=_migrate)

    create_key = subparsers.add_parser(
        "create-key",
        help="create an API key and print its secret once",
        description="Without --project the key is admin: every project, and it can manage keys over "
        "HTTP (POST/GET/DELETE /api/v1/keys). With --project it may use only those projects.",
    )
    create_key.add_argument("--name", required=True, help="who or what uses the key")
    create_key.add_argument(
        "--project",
        type=int,
        action="append",
        default=[],
        dest="projects",
        metavar="ID",
        help="a project the key may use (repeat for several); the key is then not admin",
    )
    create_key.set_defaults(func=_create_key)

    revoke_key = subparsers.add_parser("revoke-key", help="revoke an API key by its id")
    revoke_key.add_argument("--id", type=int, required=True, dest="key_id")
    revoke_key.set_defaults(func=_revoke_key)

    list_keys = subparsers.add_parser("list-keys", help="list API keys (never their secrets)")
    list_keys.set_defaults(func=_list_keys)

    worker = subparsers.add_parser("worker", help="run a Celery worker for rounds (needs TBAL_BROKER_URL)")
    worker.add_argument("--queues", default="default,gpu")
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=_worker)

    from app.integrations.label_studio import cli as label_studio_cli

    label_studio_cli.register(subparsers)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.db.migrate import upgrade
    from app.main import create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings()
    if settings.is_sqlite and not args.no_migrate:
        upgrade(settings)
    if args.workers > 1:  # each process builds its app from the same TBAL_* environment
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            workers=args.workers,
        )
        return 0
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from app.db.migrate import upgrade

    settings = Settings()
    upgrade(settings, args.revision)
    print(f"database at revision {args.revision}: {_safe_url(settings.database_url)}")
    return 0


def _unmigrated(engine: Engine, url: str) -> str | None:
    """Why the key verbs cannot use the database (unreachable, or not migrated to the newest revision:
    its tables are missing or old), as one line that says what to do; None when they can."""
    from app.db.migrate import revisions

    try:
        current, head = revisions(engine)
    except Exception as exc:  # the database itself: unreachable, wrong credentials, bad file path
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        return f"cannot open the database at {_safe_url(url)}: {first}"
    if current != head:
        state = "is not migrated" if current is None else f"is at revision {current}, not {head}"
        return f"the database at {_safe_url(url)} {state}; run `tbal migrate` first"
    return None


def _create_key(args: argparse.Namespace) -> int:
    from app.db.session import make_engine, make_session_factory
    from app.errors import DomainError
    from app.projects.keys_service import create_key

    settings = Settings()
    engine = make_engine(settings)
    try:
        if problem := _unmigrated(engine, settings.database_url):
            print(f"tbal: error: {problem}", file=sys.stderr)
            return 2
        key, secret = create_key(make_session_factory(engine), args.name, project_ids=args.projects)
    except DomainError as exc:
        print(f"tbal: error: {exc.field}: {exc.reason}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    scope = "admin" if key.is_admin else "projects " + ", ".join(map(str, sorted(set(args.projects))))
    print(secret)
    print(f"key {key.id} ({key.name}, {scope}) created; the secret above is shown only once", file=sys.stderr)
    return 0


def _revoke_key(args: argparse.Namespace) -> int:
    from app.db.session import make_engine, make_session_factory
    from app.projects.keys_service import revoke_key

    settings = Settings()
    engine = make_engine(settings)
    try:
        if problem := _unmigrated(engine, settings.database_url):
            print(f"tbal: error: {problem}", file=sys.stderr)
            return 2
        done = revoke_key(make_session_factory(engine), args.key_id)
    finally:
        engine.dispose()
    if not done:
        print(f"no active key {args.key_id}", file=sys.stderr)
        return 1
    print(f"key {args.key_id} revoked")
    return 0


def _list_keys(args: argparse.Namespace) -> int:
    from app.db.session import make_engine, make_session_factory
    from app.projects import keys_repository as repo

    settings = Settings()
    engine = make_engine(settings)
    try:
        if problem := _unmigrated(engine, settings.database_url):
            print(f"tbal: error: {problem}", file=sys.stderr)
            return 2
        with make_session_factory(engine)() as session:
            keys = repo.list_all(session)
            projects = repo.project_ids_by_key(session, [k.id for k in keys])
            for key in keys:
                state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
                scope = "admin" if key.is_admin else "projects " + ",".join(map(str, projects[key.id]))
                print(f"{key.id}\t{key.prefix}…\t{key.name}\t{key.created_at:%Y-%m-%d}\t{state}\t{scope}")
    finally:
        engine.dispose()
    return 0


def _worker(args: argparse.Namespace) -> int:
    from worker.celery_app import celery_app

    celery_app.worker_main(
        ["worker", "-Q", args.queues, "--concurrency", str(args.concurrency), "--loglevel", args.loglevel]
    )
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
