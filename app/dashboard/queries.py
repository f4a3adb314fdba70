"""SQL aggregates behind the dashboard. Every query is a count or a GROUP BY over an index whose leading
column is ``project_id`` (or a join from a small set, the human labels): nothing returns one row per item,
so a project of a million items answers in milliseconds to a few hundred on SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import AutoLabel, HumanLabel, Item, LabelQuery, Project, Round
from app.labels import repository as labels_repo


def items_by_role(session: Session, project_id: int) -> dict[str, int]:
    """{role: items} (index ``project_id, role, id``)."""
    stmt = select(Item.role, func.count()).where(Item.project_id == project_id).group_by(Item.role)
    return {str(role): int(n) for role, n in session.execute(stmt)}


NON_POOL_ROLES = ("validation", "train", "removed")


def unlabeled_pool(session: Session, project_id: int, *, n_pool: int, n_auto: int) -> int:
    """Pool items with neither a human nor an auto-label (what the next round sees), given ``n_pool``
    (items of role pool) and ``n_auto`` (auto-labels of the project).

    The same number as :func:`app.items.repository.count_pool`, without its anti-join over every pool
    item: with P the pool items, A the auto-labeled and H the human-labeled ones,
    |P − (A ∪ H)| = |P| − (|A| − |A − P|) − |P ∩ H| + |P ∩ A ∩ H| (− the set difference), where every
    term but |P| and |A| is counted from the small sets: the items humans were asked about (validation,
    train, removed) and the human labels.
    """
    auto_not_pool = session.scalar(
        select(func.count())
        .select_from(Item)
        .join(AutoLabel, (AutoLabel.project_id == Item.project_id) & (AutoLabel.item_id == Item.id))
        .where(Item.project_id == project_id, Item.role.in_(NON_POOL_ROLES))
    )
    human_pool = session.scalar(
        select(func.count())
        .select_from(HumanLabel)
        .join(Item, Item.id == HumanLabel.item_id)
        .where(HumanLabel.project_id == project_id, Item.role == "pool")
    )
    human_auto_pool = session.scalar(
        select(func.count())
        .select_from(HumanLabel)
        .join(Item, Item.id == HumanLabel.item_id)
        .join(AutoLabel, (AutoLabel.project_id == Item.project_id) & (AutoLabel.item_id == Item.id))
        .where(HumanLabel.project_id == project_id, Item.role == "pool")
    )
    pool_auto = n_auto - int(auto_not_pool or 0)
    return n_pool - pool_auto - int(human_pool or 0) + int(human_auto_pool or 0)


def human_labels_by_role_and_class(session: Session, project_id: int) -> list[tuple[str, int, int]]:
    """(item role, class, human labels) over the project's human labels (a small set: the budget)."""
    stmt = (
        select(Item.role, HumanLabel.label, func.count())
        .join(Item, Item.id == HumanLabel.item_id)
        .where(HumanLabel.project_id == project_id)
        .group_by(Item.role, HumanLabel.label)
    )
    return [(str(role), int(label), int(n)) for role, label, n in session.execute(stmt)]


def auto_labels_by_class(session: Session, project_id: int) -> dict[int, int]:
    """{class: auto-labels} (index ``project_id, label, id``)."""
    stmt = (
        select(AutoLabel.label, func.count())
        .where(AutoLabel.project_id == project_id)
        .group_by(AutoLabel.label)
    )
    return {int(label): int(n) for label, n in session.execute(stmt)}


def open_queries_by_purpose(session: Session, project_id: int) -> dict[str, int]:
    stmt = (
        select(LabelQuery.purpose, func.count())
        .where(LabelQuery.project_id == project_id, LabelQuery.answered.is_(False))
        .group_by(LabelQuery.purpose)
    )
    return {str(purpose): int(n) for purpose, n in session.execute(stmt)}


def budget_queries(session: Session, project_id: int) -> tuple[int, int]:
    """(answered, open) queries paid from ``label_budget`` that are not training labels yet or are
    top-ups: every training query, and the validation top-ups rounds made
    (:func:`app.labels.repository.is_validation_top_up`: neither the validation set drawn at the start
    nor the items drawn inside the stratum are paid from the budget)."""
    paid = (LabelQuery.purpose == "training") | labels_repo.is_validation_top_up()
    stmt = (
        select(LabelQuery.purpose, LabelQuery.answered, func.count())
        .where(LabelQuery.project_id == project_id, paid)
        .group_by(LabelQuery.purpose, LabelQuery.answered)
    )
    answered_top_ups = waiting = 0
    for purpose, answered, n in session.execute(stmt):
        if not answered:
            waiting += int(n)
        elif purpose == "validation":
            answered_top_ups += int(n)
    return answered_top_ups, waiting


def queue_head(session: Session, project_id: int, limit: int) -> list[tuple[str, str, int | None]]:
    """(external id, purpose, round id) of the first ``limit`` open queries."""
    stmt = (
        select(Item.external_id, LabelQuery.purpose, LabelQuery.round_id)
        .join(Item, Item.id == LabelQuery.item_id)
        .where(LabelQuery.project_id == project_id, LabelQuery.answered.is_(False))
        .order_by(LabelQuery.id)
        .limit(limit)
    )
    return [(str(ext), str(purpose), rid) for ext, purpose, rid in session.execute(stmt)]


def rounds(session: Session, project_id: int, limit: int) -> list[Round]:
    """The last ``limit`` rounds, oldest first."""
    stmt = select(Round).where(Round.project_id == project_id).order_by(Round.index.desc()).limit(limit)
    return list(reversed(list(session.scalars(stmt))))


def projects_page(session: Session, *, after_id: int, limit: int) -> list[Project]:
    stmt = select(Project).where(Project.id > after_id).order_by(Project.id).limit(limit)
    return list(session.scalars(stmt))


def count_per_project(session: Session, column: Any, project_ids: Sequence[int]) -> dict[int, int]:
    """{project id: rows} of the table of ``column`` (a ``project_id`` column), one GROUP BY."""
    if not project_ids:
        return {}
    stmt = select(column, func.count()).where(column.in_(list(project_ids))).group_by(column)
    return {int(pid): int(n) for pid, n in session.execute(stmt)}


def latest_rounds(session: Session, project_ids: Sequence[int]) -> dict[int, Round]:
    """{project id: its round of highest index}."""
    if not project_ids:
        return {}
    last = (
        select(Round.project_id, func.max(Round.index).label("index"))
        .where(Round.project_id.in_(list(project_ids)))
        .group_by(Round.project_id)
        .subquery()
    )
    stmt = select(Round).join(last, (Round.project_id == last.c.project_id) & (Round.index == last.c.index))
    return {r.project_id: r for r in session.scalars(stmt)}
