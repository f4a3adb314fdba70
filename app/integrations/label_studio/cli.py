"""``tbal label-studio-sync``: sync connected Label Studio projects now (push the queue, pull missed
annotations, write auto-labels back), against the database of the ``TBAL_*`` settings."""

from __future__ import annotations

import argparse
import json
import sys

from app.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync = subparsers.add_parser(
        "label-studio-sync",
        help="sync Label Studio projects now (queue pushed, missed annotations pulled, auto-labels written)",
        description="Without --project, every connection that has a Label Studio URL, project and token.",
    )
    sync.add_argument("--project", type=int, action="append", default=[], dest="projects", metavar="ID")
    sync.set_defaults(func=_sync)


def _sync(args: argparse.Namespace) -> int:
    from app.db.session import make_engine, make_session_factory
    from app.errors import DomainError
    from app.integrations.label_studio import repository as repo
    from app.integrations.label_studio.sync import sync_project
    from app.projects import repository as projects_repo

    settings = Settings()
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    failed = 0
    try:
        with factory() as session:
            ids = args.projects or repo.synced_connections(session)
        for project_id in ids:
            with factory() as session:
                project = projects_repo.get(session, project_id)
                if project is None:
                    print(f"project {project_id}: no such project", file=sys.stderr)
                    failed += 1
                    continue
                try:
                    result = sync_project(session, project, settings)
                except DomainError as exc:
                    session.rollback()
                    repo.add_event(session, project_id, "sync", exc.status, f"{exc.field}: {exc.reason}", 200)
                    session.commit()
                    print(f"project {project_id}: {exc.field}: {exc.reason}", file=sys.stderr)
                    failed += 1
                    continue
                print(json.dumps({"project": project_id, **result.model_dump()}))
    finally:
        engine.dispose()
    return 1 if failed else 0
