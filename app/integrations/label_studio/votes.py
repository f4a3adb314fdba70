"""Label Studio annotations -> human labels (votes of annotators).

Every annotation of an item is kept (``label_studio_annotations``: annotator and class, or none when it
was cancelled or has no single choice among the project's classes). An item's human label is the
aggregate of its usable annotations, one vote per annotator (the latest annotation of an annotator
counts), written through the service's label path (:func:`app.labels.service.post_labels`: votes ->
a distribution, argmax as the hard class). When no usable annotation is left, the Label Studio label is
removed. Webhooks and imported exports go through the same functions.

Ties (the rule, chosen on purpose): when the annotators' votes tie for the most votes (one annotator says
A, another B), the item gets **no** label yet: its Label Studio label is removed, its query stays open,
and it waits for one more annotator (the next sync leaves the task in Label Studio's queue). A tie broken
by class order would put an arbitrary class into the validation set, whose labels certify the
auto-labels' error; an unanimous or majority vote is written as the soft label of the votes (argmax as
the hard class).

Annotations that tbal itself wrote back (auto-labels as annotations, ``result[].tbal == "auto-label"``)
are recorded but never count as a human vote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Project
from app.integrations.label_studio import repository as repo
from app.integrations.label_studio.predictions import AUTO_LABEL_MARKER
from app.integrations.label_studio.schemas import LSAnnotation
from app.labels.schemas import HumanLabelCreate, HumanLabelsCreate
from app.labels.service import post_labels


@dataclass(frozen=True)
class Vote:
    """An annotation read: annotator, class index (None: not usable) and why not."""

    annotator: str
    label: int | None
    problem: str | None = None


@dataclass(frozen=True)
class Aggregated:
    written: int
    removed: int
    ties: int = 0
    """items whose votes tie (no label until one more annotator votes)"""


def annotator_of(completed_by: int | str | dict[str, Any] | None) -> str:
    """A stable annotator key: ``ls-user-<id>`` (exports and webhooks carry the user's id, or an object
    with ``id`` / ``email``)."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("id") or completed_by.get("email")
    return f"ls-user-{completed_by if completed_by is not None else 'unknown'}"


def read_vote(annotation: LSAnnotation, classes: list[str], from_name: str | None) -> Vote:
    """The class an annotation chose: its ``choices`` results (of control ``from_name`` when known) must
    name exactly one class of the project. Cancelled annotations choose nothing."""
    who = annotator_of(annotation.completed_by)
    if annotation.was_cancelled:
        return Vote(who, None, "cancelled")
    if any(r.get("tbal") == AUTO_LABEL_MARKER for r in annotation.result):
        return Vote(who, None, "tbal's own auto-label, written back to Label Studio")
    chosen: list[str] = []
    for result in annotation.result:
        if result.get("type") != "choices":
            continue
        if from_name is not None and result.get("from_name") != from_name:
            continue
        value = result.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if isinstance(choices, list):
            chosen.extend(str(c) for c in choices)
    if len(chosen) != 1:
        return Vote(who, None, f"expected exactly one choice, got {chosen}")
    if chosen[0] not in classes:
        return Vote(who, None, f"choice {chosen[0]!r} is not a class of the project")
    return Vote(who, classes.index(chosen[0]))


def record(
    session: Session,
    project: Project,
    entries: Sequence[tuple[int, int, int, Vote]],
) -> None:
    """Upsert annotations = [(annotation id, task id, item id, vote)] (not committed)."""
    now = utcnow()
    repo.upsert_annotations(
        session,
        [
            {
                "project_id": project.id,
                "annotation_id": annotation_id,
                "task_id": task_id,
                "item_id": item_id,
                "annotator": vote.annotator[:255],
                "label": vote.label,
                "updated_at": now,
            }
            for annotation_id, task_id, item_id, vote in entries
        ],
    )


def forget(
    session: Session, project: Project, *, annotation_ids: Sequence[int] = (), task_ids: Sequence[int] = ()
) -> list[int]:
    """Delete annotations (by id, or all of deleted tasks); returns their items (not committed)."""
    return repo.delete_annotations(session, project.id, annotation_ids=annotation_ids, task_ids=task_ids)


def aggregate(session: Session, project: Project, item_ids: Sequence[int]) -> Aggregated:
    """Rewrite the Label Studio labels of ``item_ids`` from their annotations and commit (with whatever
    :func:`record` / :func:`forget` left in the session)."""
    ids = sorted(set(item_ids))
    repo.lock_items(session, project.id, ids)
    found: dict[int, dict[str, int | str]] = {
        item_id: dict(pairs) for item_id, pairs in repo.annotations_of(session, ids).items()
    }
    # dict(pairs): a later annotation of an annotator wins
    tied = {item_id for item_id, by_annotator in found.items() if is_tie(by_annotator)}
    removed = repo.remove_labels(session, project.id, [i for i in ids if i not in found or i in tied])
    labels = [
        HumanLabelCreate(item_id=item_id, votes=by_annotator)
        for item_id, by_annotator in found.items()
        if item_id not in tied
    ]
    if labels:
        post_labels(session, project, HumanLabelsCreate(labels=labels, source=repo.SOURCE))
    else:
        session.commit()
    return Aggregated(written=len(labels), removed=removed, ties=len(tied))


def is_tie(by_annotator: dict[str, int | str]) -> bool:
    """Whether two or more classes share the most votes (one vote per annotator)."""
    counts = Counter(by_annotator.values()).most_common(2)
    return len(counts) == 2 and counts[0][1] == counts[1][1]
