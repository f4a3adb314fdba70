"""The dashboard's routes.

- ``GET /dashboard``: the page (HTML, no data in it, so no key needed to load it);
- ``GET /dashboard/static/{name}``: its stylesheet and scripts (hand-written SVG charts, no build step);
- ``GET /api/v1/projects/{id}/summary`` and ``GET /api/v1/dashboard/projects``: the numbers, with an API
  key like the rest of the API. The page keeps the key in the browser's localStorage (typed in, or
  given once as ``/dashboard#key=...``: a fragment never reaches the server or its logs) and sends it as
  ``Authorization: Bearer``.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, HTMLResponse

import tbal
from app.api.deps import CallerDep, ProjectDep, SessionDep, require_api_key
from app.api.pagination import AfterId, Limit
from app.dashboard import service
from app.dashboard.schemas import ProjectsOverview, ProjectSummary
from app.errors import NotFound

API_PREFIX = "/api/v1"
HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
STATIC_FILES = {p.name: p for p in STATIC_DIR.iterdir() if p.suffix in STATIC_TYPES}
"""The only files served: those shipped in ``static/`` (a name, never a path, picks one)."""
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=True)
api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_api_key)], tags=["dashboard"])


@lru_cache(maxsize=1)
def _page() -> str:
    digest = hashlib.sha256(b"".join(p.read_bytes() for _, p in sorted(STATIC_FILES.items())))
    return (
        (HERE / "page.html")
        .read_text(encoding="utf-8")
        .replace("{{asset_version}}", digest.hexdigest()[:12])
        .replace("{{version}}", tbal.__version__)
        .replace("{{api_prefix}}", API_PREFIX)
    )


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page() -> HTMLResponse:
    """The dashboard (``?project=ID`` for one project)."""
    return HTMLResponse(_page(), headers=PAGE_HEADERS)


@router.get("/dashboard/static/{name}", include_in_schema=False)
def dashboard_static(name: str) -> FileResponse:
    path = STATIC_FILES.get(name)
    if path is None:
        raise NotFound("name", f"no dashboard file {name!r}")
    return FileResponse(
        path,
        media_type=STATIC_TYPES[path.suffix],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@api.get("/projects/{project_id}/summary")
def project_summary(
    *,
    project: ProjectDep,
    session: SessionDep,
    round_index: Annotated[
        int | None, Query(ge=0, le=2**31 - 1, description="per-class figures of this round (default: latest)")
    ] = None,
) -> ProjectSummary:
    """The dashboard's numbers for one project: counts and per-class figures aggregated in SQL, each
    round's recorded metrics, the reliability diagram of a round, the head of the queue and the running
    round's stage and progress. Its size does not grow with the number of items."""
    return service.project_summary(session, project, round_index)


@api.get("/dashboard/projects")
def projects_overview(
    *, session: SessionDep, caller: CallerDep, after_id: AfterId = 0, limit: Limit = 100
) -> ProjectsOverview:
    """One row per project the key may use (items, labels, coverage, the last round), keyset-paginated."""
    key_id = None if caller.is_admin else caller.key_id
    return service.projects_overview(session, after_id=after_id, limit=limit, key_id=key_id)


router.include_router(api)
