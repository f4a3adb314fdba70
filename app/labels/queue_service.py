"""The queue of items humans should label next, and drawing the validation and seed sets.

The validation set (``validation_size``) and the seed training set (``seed_size`` less the training
labels already given) are drawn uniformly at random from the unlabeled pool with the project's seed.
A read never writes (issue 12): they are drawn where the state they depend on changes, in that change's
transaction, after each upload of items and after a change of ``validation_size`` or ``seed_size``.
Until they are *fixed* each such change draws them again from the whole pool, so that a pool uploaded
in several requests (the client sends chunks; an image folder may arrive class by class) is sampled as
a whole and not from its first request; the draw is a function of (pool, settings, seed) alone. They
are fixed once a human answers one of their queries or a round is started; later uploads and setting
changes leave them as they are. A round start, a simulation or a Label Studio sync draws them if
nothing has yet (a project whose items were stored before this rule). Later training queries come
from rounds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Project
from app.errors import Invalid
from app.items import repository as items_repo
from app.items.arrays import from_bytes, layout_of
from app.labels import repository as labels_repo
from app.labels.queue_schemas import QueueItem, QueuePage, SimulateResult
from app.labels.service import LabelValue, write_labels
from app.projects import repository as projects_repo
from app.projects.config import project_config
from tbal.plan import draw_initial_sets


def ensure_sets_drawn(session: Session, project: Project) -> bool:
    """Draw the validation and seed sets if not done yet and the pool has items; commits when it draws.
    True when this call drew them. Concurrent callers: exactly one draws (conditional update)."""
    if project.sets_drawn_at is not None:
        return False
    pool = items_repo.unlabeled_pool_ids(session, project.id)
    if pool.size == 0:
        return False
    if not _draw_sets(session, project, pool):
        session.rollback()
        session.refresh(project)
        return False
    session.commit()
    return True


_DRAW_DEFERRED: ContextVar[bool] = ContextVar("tbal_draw_deferred", default=False)


@contextmanager
def draw_deferred() -> Iterator[None]:
    """Items stored inside this block do not draw the sets: for a caller that stores one upload in
    several transactions (an ingest job's chunks) and calls :func:`redraw_open_sets` once at its end, so
    the sets are drawn once, from the whole upload."""
    token = _DRAW_DEFERRED.set(True)
    try:
        yield
    finally:
        _DRAW_DEFERRED.reset(token)


def redraw_open_sets(session: Session, project: Project) -> bool:
    """After items were stored or the sets' sizes changed: draw the sets from the whole pool unless they
    are fixed, undoing an earlier draw that is still open (module docstring). True when this call drew
    them. Does not commit: the change's own transaction holds the draw. Nothing inside
    :func:`draw_deferred`."""
    if _DRAW_DEFERRED.get():
        return False
    drawn_at = projects_repo.lock_set_drawing(session, project.id)
    if drawn_at is not None:
        if not sets_open(session, project.id):
            return False
        undo_open_draw(session, project)
    pool = items_repo.unlabeled_pool_ids(session, project.id)
    return pool.size > 0 and _draw_sets(session, project, pool)


def sets_open(session: Session, project_id: int) -> bool:
    """Whether a draw of the sets may still be redone: no round was started and no query of the draw
    was answered (so no human has labeled anything because of it)."""
    if projects_repo.has_rounds(session, project_id):
        return False
    return not labels_repo.initial_queries_answered(session, project_id)


def undo_open_draw(session: Session, project: Project) -> None:
    """Put the items of an open draw back into the pool and forget its queries. Does not commit."""
    item_ids = labels_repo.drop_open_initial_queries(session, project.id)
    for role in ("validation", "train"):
        items_repo.set_role(session, item_ids, "pool", only_from=role)
    projects_repo.clear_set_drawing(session, project.id)
    project.sets_drawn_at = None


def _draw_sets(session: Session, project: Project, pool: np.ndarray) -> bool:
    """Claim the drawing (False when another caller did) and write the sets and their queries."""
    now = utcnow()
    if not projects_repo.claim_set_drawing(session, project.id, now):
        return False
    config = project_config(project)
    have_train = items_repo.count_items(session, project.id, role="train")
    validation, seed_set = draw_initial_sets(pool, config, project.seed, training_labels=have_train)
    items_repo.set_role(session, validation, "validation", only_from="pool")
    items_repo.set_role(session, seed_set, "train", only_from="pool")
    labels_repo.add_queries(session, project.id, validation, "validation", None, now)
    labels_repo.add_queries(session, project.id, seed_set, "training", None, now)
    project.sets_drawn_at = now
    return True


def read_queue(
    session: Session, project: Project, *, after_id: int, limit: int, include_data: bool
) -> QueuePage:
    """One page of open queries. Reads only: the sets were drawn when the items came (module docstring)."""
    rows = labels_repo.open_queries_page(session, project.id, after_id=after_id, limit=limit)
    data: dict[int, list[object]] = {}
    if include_data and rows:
        layout = layout_of(project)
        raw = items_repo.data_by_ids(session, project.id, [r.item_id for r in rows])
        for item_id, blob in raw.items():
            arr = from_bytes(layout, np.frombuffer(blob, dtype=np.uint8)[None, :])[0]
            data[item_id] = arr.tolist()
    items = [
        QueueItem(
            query_id=r.id,
            item_id=r.item_id,
            external_id=r.external_id,
            purpose=r.purpose,
            round_id=r.round_id,
            data=data.get(r.item_id),
        )
        for r in rows
    ]
    return QueuePage(
        items=items,
        next_after_id=rows[-1].id if len(rows) == limit else None,
        open_validation=labels_repo.count_open_queries(session, project.id, "validation"),
        open_training=labels_repo.count_open_queries(session, project.id, "training"),
    )


def simulate(session: Session, project: Project) -> SimulateResult:
    """Answer every open query from the items' ground truth (all or nothing: 422 when one lacks it)."""
    ensure_sets_drawn(session, project)
    rows = labels_repo.open_queries_with_truth(session, project.id)
    missing = [r.external_id for r in rows if r.label is None]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise Invalid("ground_truth", f"{len(missing)} queued items have no ground truth: {shown}")
    values = [LabelValue(item_id=r.item_id, label=int(r.label)) for r in rows]
    result = write_labels(session, project, values, source="simulation")
    session.commit()
    return SimulateResult(answered=result.received, validation=result.validation, training=result.training)
