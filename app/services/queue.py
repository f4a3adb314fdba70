"""The queue of items humans should label next, and drawing the validation and seed sets.

The validation set (``validation_size``) and the seed training set (``seed_size`` less the training
labels already given) are drawn once, uniformly at random from the unlabeled pool with the project's
seed, on the first queue read, simulation or round start after items exist. Later changes to those
settings do not redraw them. Later training queries come from rounds.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Project
from app.errors import Invalid
from app.repositories import items as items_repo
from app.repositories import labels as labels_repo
from app.repositories import projects as projects_repo
from app.schemas.queue import QueueItem, QueuePage, SimulateResult
from app.services.arrays import from_bytes, layout_of
from app.services.labels import LabelValue, write_labels
from app.services.project_config import build_config
from tbal.plan import draw_initial_sets


def ensure_sets_drawn(session: Session, project: Project) -> bool:
    """Draw the validation and seed sets if not done yet and the pool has items; commits when it draws.
    True when this call drew them. Concurrent callers: exactly one draws (conditional update)."""
    if project.sets_drawn_at is not None:
        return False
    pool = items_repo.unlabeled_pool_ids(session, project.id)
    if pool.size == 0:
        return False
    now = utcnow()
    if not projects_repo.claim_set_drawing(session, project.id, now):
        session.rollback()
        session.refresh(project)
        return False
    config = build_config(project.settings)
    have_train = items_repo.count_items(session, project.id, role="train")
    validation, seed_set = draw_initial_sets(pool, config, project.seed, training_labels=have_train)
    items_repo.set_role(session, validation, "validation", only_from="pool")
    items_repo.set_role(session, seed_set, "train", only_from="pool")
    labels_repo.add_queries(session, project.id, validation, "validation", None, now)
    labels_repo.add_queries(session, project.id, seed_set, "training", None, now)
    session.commit()
    project.sets_drawn_at = now
    return True


def read_queue(
    session: Session, project: Project, *, after_id: int, limit: int, include_data: bool
) -> QueuePage:
    ensure_sets_drawn(session, project)
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
