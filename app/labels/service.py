"""Human labels: validation of a batch, aggregation of votes into a soft label, and the write.

A batch is checked whole before anything is written (unknown item or class, a distribution that does
not sum to 1, votes for a class that does not exist, an item twice): one bad label rejects the batch.
Labels of items the service did not ask for are accepted; such a pool item becomes a training item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Project
from app.errors import Invalid
from app.items import repository as items_repo
from app.labels import repository as labels_repo
from app.labels.schemas import HumanLabelCreate, HumanLabelsCreate, LabelsResult
from app.projects.classes import class_index

SUM_TOLERANCE = 1e-4
VALIDATION_ROLES = ("validation", "removed")


@dataclass(frozen=True)
class LabelValue:
    """A resolved label: hard class, optional distribution (K,), optional votes {annotator: class}."""

    item_id: int
    label: int
    distribution: list[float] | None = None
    votes: dict[str, int] | None = None


def post_labels(session: Session, project: Project, body: HumanLabelsCreate) -> LabelsResult:
    """Check and write a batch of labels in one transaction."""
    item_ids = _resolve_items(session, project, body.labels)
    values = [
        _aggregate(project.classes, entry, item_id, i)
        for i, (entry, item_id) in enumerate(zip(body.labels, item_ids, strict=True))
    ]
    result = write_labels(session, project, values, source=body.source)
    session.commit()
    return result


def write_labels(
    session: Session, project: Project, values: list[LabelValue], *, source: str
) -> LabelsResult:
    """Upsert ``values`` (already checked), move asked-for-nothing pool items to training, and mark their
    queries answered. Does not commit."""
    ids = [v.item_id for v in values]
    roles = items_repo.roles_by_id(session, project.id, ids)
    existing = labels_repo.existing_label_items(session, ids)
    now = utcnow()
    labels_repo.upsert_human_labels(
        session,
        [
            {
                "project_id": project.id,
                "item_id": v.item_id,
                "label": v.label,
                "distribution": v.distribution,
                "votes": v.votes,
                "source": source,
                "created_at": now,
                "updated_at": now,
            }
            for v in values
        ],
    )
    items_repo.set_role(session, [i for i in ids if roles.get(i) == "pool"], "train", only_from="pool")
    answered = labels_repo.mark_answered(session, ids)
    n_val = sum(1 for i in ids if roles.get(i) in VALIDATION_ROLES)
    return LabelsResult(
        received=len(values),
        created=sum(1 for i in ids if i not in existing),
        updated=sum(1 for i in ids if i in existing),
        validation=n_val,
        training=len(values) - n_val,
        answered_queries=answered,
    )


def _resolve_items(session: Session, project: Project, entries: list[HumanLabelCreate]) -> list[int]:
    externals = [e.external_id for e in entries if e.external_id is not None]
    by_external = items_repo.ids_by_external(session, project.id, externals)
    ids: list[int] = []
    for i, entry in enumerate(entries):
        if entry.external_id is not None:
            found = by_external.get(entry.external_id)
            if found is None:
                raise Invalid(
                    f"labels.{i}.external_id",
                    f"no item with external id {entry.external_id!r} in this project",
                )
            ids.append(found)
        else:
            assert entry.item_id is not None
            ids.append(entry.item_id)
    known = items_repo.roles_by_id(session, project.id, ids)
    seen: dict[int, int] = {}
    for i, item_id in enumerate(ids):
        if item_id not in known:
            raise Invalid(f"labels.{i}.item_id", f"no item {item_id} in this project")
        if item_id in seen:
            raise Invalid(
                f"labels.{i}",
                f"item {item_id} is labeled twice in this batch (entries {seen[item_id]} and {i})",
            )
        seen[item_id] = i
    return ids


def _aggregate(classes: list[str], entry: HumanLabelCreate, item_id: int, i: int) -> LabelValue:
    k = len(classes)
    if entry.label is not None:
        return LabelValue(item_id, class_index(classes, entry.label, f"labels.{i}.label"))
    if entry.distribution is not None:
        field = f"labels.{i}.distribution"
        dist = np.asarray(entry.distribution, dtype=np.float64)
        if dist.shape != (k,):
            raise Invalid(field, f"expected {k} probabilities (one per class), got {dist.shape[0]}")
        if not np.isfinite(dist).all() or (dist < 0).any():
            raise Invalid(field, "probabilities must be finite and non-negative")
        total = float(dist.sum())
        if not math.isclose(total, 1.0, abs_tol=SUM_TOLERANCE):
            raise Invalid(field, f"probabilities must sum to 1 (±{SUM_TOLERANCE}), got {total:.6g}")
        dist = dist / total
        return LabelValue(item_id, int(np.argmax(dist)), distribution=dist.tolist())
    assert entry.votes is not None
    if not entry.votes:
        raise Invalid(f"labels.{i}.votes", "expected at least one vote")
    votes = {who: class_index(classes, cls, f"labels.{i}.votes.{who}") for who, cls in entry.votes.items()}
    counts = np.bincount(np.fromiter(votes.values(), dtype=np.int64), minlength=k).astype(np.float64)
    dist = counts / counts.sum()
    return LabelValue(item_id, int(np.argmax(dist)), distribution=dist.tolist(), votes=votes)
