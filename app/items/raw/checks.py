"""Checks every raw upload shares: the project's kind and the items' external ids."""

from __future__ import annotations

from app.db.models import Project
from app.errors import Invalid
from app.items.schemas import IngestResult

MAX_EXTERNAL_ID = 255


def require_kind(project: Project, kind: str) -> None:
    """422 on ``data_kind`` unless the project holds ``kind`` items (texts: text, files: image)."""
    if project.data_kind != kind:
        what = {"text": "texts", "image": "image files"}[kind]
        raise Invalid("data_kind", f"this project holds {project.data_kind}; {what} go to {kind} projects")


def check_id(ext: str, field: str) -> None:
    """422 on ``field`` unless ``ext`` is a storable external id (1..255 characters, no NUL, Unicode)."""
    if not isinstance(ext, str) or not 1 <= len(ext) <= MAX_EXTERNAL_ID or "\x00" in ext:
        raise Invalid(field, f"external ids must have 1..{MAX_EXTERNAL_ID} characters, no NUL")
    try:
        ext.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Invalid(field, "external ids must be valid Unicode") from exc


def upload_result(received: int, stored: IngestResult) -> IngestResult:
    """What an upload of ``received`` items did, from what writing its new ones did (the others were
    known: skipped)."""
    return IngestResult(
        received=received,
        inserted=stored.inserted,
        skipped=received - stored.inserted,
        ground_truth_added=stored.ground_truth_added,
    )
