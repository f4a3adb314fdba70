"""Why a Label Studio task was labeled: ``data.tbal_purpose`` (validation / training), written by tbal
when it pushes or exports its queue, decides the role an imported label takes.

The validation set must be labels the classifier never trains on, drawn uniformly (the thresholds'
guarantee rests on it: Vishwakarma et al., 2023, "Promises and Pitfalls of Threshold-based
Auto-labeling"). So, before the annotations of an import are recorded:

- a task that names its purpose gives its item (still in the pool) that role: ``validation`` joins the
  validation set (never trained on), ``training`` the training labels;
- in a project whose sets are not drawn yet (a fresh project built from an export), the labeled tasks that
  name no purpose are split the way the service draws from the pool: a uniform sample (the project's seed)
  of ``n_v / (n_v + seed_size)`` of them (n_v = ``validation_size`` less the stratum's
  ``targeted_validation``, which a later round draws), at most what the validation set still lacks,
  joins the validation set, the rest are training labels; the import then counts as the project's
  drawing of its sets, so its first round runs on them (later validation comes from ``validation_floor``);
  an open draw that an upload made (``app.labels.queue_service``) is undone first, unless a sync pushed it;
- items that already have a role keep it (a training item never becomes validation: it may have been
  trained on).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Project
from app.integrations.label_studio import repository as ls_repo
from app.integrations.label_studio import votes
from app.integrations.label_studio.schemas import LSExportTask
from app.items import repository as items_repo
from app.labels import repository as labels_repo
from app.labels.queue_service import sets_open, undo_open_draw
from app.projects import repository as projects_repo
from app.projects.config import project_config
from tbal.config import targeted_count

PURPOSE_KEY = "tbal_purpose"
ROLE_OF = {"validation": "validation", "training": "train"}


@dataclass(frozen=True)
class Purposes:
    validation: int
    """items that joined the validation set"""
    training: int
    drew_sets: bool
    """this import drew the project's sets (a fresh project)"""


def apply_purposes(
    session: Session,
    project: Project,
    tasks: Sequence[LSExportTask],
    item_ids: Sequence[int | None],
    *,
    draw: bool,
) -> Purposes:
    """Give the labeled pool items of ``tasks`` their roles (see the module docstring; ``draw``: split
    the unnamed ones when the project's sets are not drawn yet). Not committed."""
    labeled: dict[int, str | None] = {}
    for task, item_id in zip(tasks, item_ids, strict=True):
        if item_id is None or not _has_usable_vote(task, project.classes):
            continue
        purpose = task.data.get(PURPOSE_KEY)
        labeled[item_id] = purpose if isinstance(purpose, str) and purpose in ROLE_OF else None
    if draw and labeled and _draw_undoable(session, project):
        undo_open_draw(session, project)  # the upload's open draw: this import draws the sets instead
    roles = items_repo.roles_by_id(session, project.id, list(labeled))
    in_pool = {i: p for i, p in labeled.items() if roles.get(i) == "pool"}
    validation = sorted(i for i, p in in_pool.items() if p == "validation")
    training = sorted(i for i, p in in_pool.items() if p == "training")
    drew = False
    if draw and project.sets_drawn_at is None and labeled:
        unnamed = np.array(sorted(i for i, p in in_pool.items() if p is None), dtype=np.int64)
        n_val = _validation_share(session, project, len(unnamed), len(validation))
        order = np.random.default_rng(project.seed).permutation(len(unnamed))
        validation = sorted([*validation, *(int(i) for i in unnamed[order[:n_val]])])
        training = sorted([*training, *(int(i) for i in unnamed[order[n_val:]])])
        drew = projects_repo.claim_set_drawing(session, project.id, utcnow())
        if drew:
            project.sets_drawn_at = utcnow()
    now = utcnow()
    n_val = items_repo.set_role(session, validation, "validation", only_from="pool")
    asked = np.array(validation, dtype=np.int64)
    labels_repo.add_queries(session, project.id, asked, "validation", None, now)
    n_train = items_repo.set_role(session, training, "train", only_from="pool")
    return Purposes(validation=n_val, training=n_train, drew_sets=drew)


def _draw_undoable(session: Session, project: Project) -> bool:
    """The project's sets were drawn by an upload, are still open, and no sync has pushed them to Label
    Studio as tasks (a pushed queue is what its annotators are labeling: it stays)."""
    if project.sets_drawn_at is None or not sets_open(session, project.id):
        return False
    return not ls_repo.has_tasks(session, project.id)


def _validation_share(session: Session, project: Project, n_unnamed: int, n_named: int) -> int:
    config = project_config(project)
    loop = config.loop
    # the stratum's points (tbal.plan) are drawn by a later round, not from the first labels
    initial = loop.validation_size - targeted_count(config)
    have = items_repo.count_items(session, project.id, "validation") + n_named
    lacking = max(0, initial - have)
    share = initial / max(1, initial + loop.seed_size)
    return min(lacking, int(np.floor(n_unnamed * share)))


def _has_usable_vote(task: LSExportTask, classes: list[str]) -> bool:
    return any(votes.read_vote(a, classes, None).label is not None for a in task.annotations)
