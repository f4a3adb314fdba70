"""The dashboard's numbers: counts and per-class figures aggregated in SQL (:mod:`app.dashboard.queries`),
per-round figures from the metrics each round recorded when it finished (rounds are few), and the
running round's stage and progress from its row."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.dashboard import queries
from app.dashboard.schemas import (
    ProjectOverview,
    ProjectsOverview,
    ProjectSummary,
    QueueEntry,
    ReliabilityBin,
    RoundState,
    SummaryClass,
    SummaryCounts,
    SummaryProject,
    SummaryReliability,
    SummaryRound,
)
from app.db.models import ACTIVE_ROUND_STATUSES, AutoLabel, HumanLabel, Item, Project, Round
from app.errors import NotFound
from app.labels import repository as labels_repo
from app.projects import keys_repository as keys_repo
from app.projects.config import project_config
from tbal.config import TBALConfig
from tbal.plan import certificate_warnings
from tbal.reports import ClassReport, RoundReport, RoundReportError

logger = logging.getLogger(__name__)

MAX_ROUNDS_SHOWN = 500
QUEUE_HEAD = 8


def project_summary(session: Session, project: Project, round_index: int | None = None) -> ProjectSummary:
    """Everything the project page shows, in one read; its size does not grow with the items. The
    per-class figures and the reliability diagram are those of round ``round_index`` (default: the
    latest that succeeded)."""
    started = time.perf_counter()
    config = project_config(project)
    roles = queries.items_by_role(session, project.id)
    human = _HumanByClass.of(
        queries.human_labels_by_role_and_class(session, project.id), len(project.classes)
    )
    auto_by_class = queries.auto_labels_by_class(session, project.id)
    round_rows = queries.rounds(session, project.id, MAX_ROUNDS_SHOWN)
    head = queries.queue_head(session, project.id, QUEUE_HEAD)
    counts = _counts(session, project, config, roles, human, sum(auto_by_class.values()))
    shown = _shown_round(round_rows, round_index)
    report = _report(shown)
    active = next((r for r in reversed(round_rows) if r.status in ACTIVE_ROUND_STATUSES), None)
    return ProjectSummary(
        project=_summary_project(project, config),
        counts=counts,
        classes=_classes(project, report, auto_by_class, counts.items, human),
        classes_round_index=shown.index if shown else None,
        rounds=[summary_round(r) for r in round_rows],
        rounds_shown=len(round_rows),
        rounds_total=round_rows[-1].index + 1 if round_rows else 0,
        reliability=_reliability(shown, report),
        queue_head=[QueueEntry(external_id=e, purpose=p, round_id=r) for e, p, r in head],
        active_round=round_state(active) if active else None,
        query_ms=round(1000 * (time.perf_counter() - started), 2),
    )


@dataclass(frozen=True)
class _HumanByClass:
    """Human labels per class (K,) of the validation and the training items, and all of them."""

    validation: list[int]
    training: list[int]
    total: int

    @classmethod
    def of(cls, rows: list[tuple[str, int, int]], k: int) -> _HumanByClass:
        """From (role, label, count) rows; labels outside 0..K-1 count only in the total."""
        validation, training = [0] * k, [0] * k
        for role, label, n in rows:
            if 0 <= label < k and role in ("validation", "train"):
                (validation if role == "validation" else training)[label] += n
        return cls(validation, training, sum(n for _, _, n in rows))


def _counts(
    session: Session,
    project: Project,
    config: TBALConfig,
    roles: dict[str, int],
    human: _HumanByClass,
    n_auto: int,
) -> SummaryCounts:
    """The project's counts: items by role, labels, coverage, the label budget and the open queue."""
    n_items = sum(roles.values())
    open_by_purpose = queries.open_queries_by_purpose(session, project.id)
    unlabeled = queries.unlabeled_pool(session, project.id, n_pool=roles.get("pool", 0), n_auto=n_auto)
    answered_top_ups, budget_queued = queries.budget_queries(session, project.id)
    return SummaryCounts(
        items=n_items,
        roles={role: roles.get(role, 0) for role in ("pool", "validation", "train", "removed")},
        unlabeled_pool=unlabeled,
        # queued items are still unlabeled (audit queries are about auto-labeled items)
        unlabeled=unlabeled + open_by_purpose.get("validation", 0) + open_by_purpose.get("training", 0),
        human_labels=human.total,
        validation_labels=sum(human.validation),
        validation_removed=roles.get("removed", 0),
        training_labels=sum(human.training),
        auto_labels=n_auto,
        coverage=n_auto / n_items if n_items else 0.0,
        budget_used=roles.get("train", 0) + labels_repo.count_validation_top_ups(session, project.id),
        budget_labeled=sum(human.training) + answered_top_ups,
        budget_queued=budget_queued,
        label_budget=config.loop.label_budget,
        open_validation=open_by_purpose.get("validation", 0),
        open_training=open_by_purpose.get("training", 0),
    )


def _shown_round(round_rows: list[Round], round_index: int | None) -> Round | None:
    """The succeeded round whose per-class figures the page shows: ``round_index``, else the latest."""
    succeeded = [r for r in round_rows if r.status == "succeeded" and r.metrics]
    if round_index is None:
        return succeeded[-1] if succeeded else None
    found = next((r for r in succeeded if r.index == round_index), None)
    if found is None:
        shown = ", ".join(str(r.index) for r in succeeded[-20:]) or "none yet"
        raise NotFound("round_index", f"no succeeded round {round_index}; succeeded: {shown}")
    return found


def _classes(
    project: Project,
    report: RoundReport | None,
    auto_by_class: dict[int, int],
    n_items: int,
    human: _HumanByClass,
) -> list[SummaryClass]:
    """One row per class: the shown round's threshold and bounds, auto-labels and human labels now."""
    per_class = {c.index: c for c in report.thresholds} if report else {}
    return [
        SummaryClass(
            index=i,
            name=name,
            **_class_figures(per_class.get(i)),
            auto_labels=auto_by_class.get(i, 0),
            coverage=auto_by_class.get(i, 0) / n_items if n_items else 0.0,
            validation_left=human.validation[i],
            training_labels=human.training[i],
        )
        for i, name in enumerate(project.classes)
    ]


def _summary_project(project: Project, config: TBALConfig) -> SummaryProject:
    cfg = config.thresholds
    return SummaryProject(
        id=project.id,
        name=project.name,
        classes=list(project.classes),
        data_kind=project.data_kind,
        input_shape=list(project.input_shape),
        created_at=project.created_at,
        epsilon=cfg.epsilon,
        delta=cfg.delta,
        bound=cfg.bound,
        guarantee=cfg.guarantee,
        confidence=config.confidence.name,
        model=config.model.name,
        query_strategy=config.query.strategy,
        label_budget=config.loop.label_budget,
        validation_size=config.loop.validation_size,
        batch_size=config.loop.batch_size,
        warnings=certificate_warnings(config, len(project.classes)),
    )


def summary_round(r: Round) -> SummaryRound:
    """A round's row of the page: its state, and its figures (from its typed report) when it finished."""
    duration = (r.finished_at - r.started_at).total_seconds() if r.finished_at and r.started_at else None
    return SummaryRound(
        id=r.id,
        index=r.index,
        status=r.status,
        stage=r.stage,
        progress=r.progress,
        n_queries=r.n_queries,
        model_version=r.model_version,
        error=r.error,
        created_at=r.created_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
        duration_s=duration,
        **_round_figures(_report(r)),
    )


def _report(r: Round | None) -> RoundReport | None:
    """The round's typed report (:class:`tbal.reports.RoundReport`); None when it has none, or an
    incomplete one (logged: the page then shows the round without figures rather than failing)."""
    if r is None or not r.metrics:
        return None
    try:
        return RoundReport.from_dict(r.metrics)
    except RoundReportError as exc:
        logger.warning("round %s: its report is not shown: %s", r.id, exc)
        return None


def _round_figures(report: RoundReport | None) -> dict[str, Any]:
    if report is None:
        return {}
    estimated, bound, kind = _round_error(report)
    truth = report.true_error
    return {
        "pool_size": report.pool_size,
        "auto_labeled": report.auto_labeled,
        "auto_labeled_total": report.auto_labeled_total,
        "coverage": _finite(report.coverage),
        "coverage_total": _finite(report.coverage_total),
        "human_labels": report.human_labels,
        "training_labels": report.training_labels,
        "validation_labels": report.validation_labels,
        "validation_labels_trained": report.validation_labels_trained,
        "validation_removed": report.validation_removed,
        "estimated_error": estimated,
        "error_bound": bound,
        "error_bound_kind": kind,
        "true_error": _finite(truth.round) if truth else None,
        "true_error_known": truth.round_known if truth else None,
        "true_error_total": _finite(truth.total) if truth else None,
        "epsilon": _finite(report.epsilon),
        "delta": _finite(report.delta),
        "delta_round": _finite(report.delta_round) if report.delta_round is not None else None,
        "delta_schedule": report.delta_schedule,
        "rounds_planned": report.rounds_total,
    }


def _class_figures(c: ClassReport | None) -> dict[str, Any]:
    """A class's figures in the round's report (all None when the report has no such class)."""
    if c is None:
        return {
            k: None for k in ("threshold", "estimated_error", "error_bound", "n_points", "auto_labeled_round")
        }
    return {
        "threshold": _finite(c.threshold),
        "estimated_error": _finite(c.estimated_error),
        "error_bound": _finite(c.error_bound),
        "n_points": c.n_points,
        "auto_labeled_round": c.auto_labeled,
    }


def round_state(r: Round) -> RoundState:
    return RoundState(
        id=r.id, index=r.index, status=r.status, stage=r.stage, progress=r.progress, started_at=r.started_at
    )


def projects_overview(
    session: Session, *, after_id: int, limit: int, key_id: int | None = None
) -> ProjectsOverview:
    """One row per project: a GROUP BY per table over the page's projects, never a query per project.
    With ``key_id``, only the projects that (non-admin) key may use."""
    if key_id is None:
        projects = queries.projects_page(session, after_id=after_id, limit=limit)
    else:
        projects = keys_repo.projects_page(session, key_id, after_id=after_id, limit=limit)
    ids = [p.id for p in projects]
    items = queries.count_per_project(session, Item.project_id, ids)
    auto = queries.count_per_project(session, AutoLabel.project_id, ids)
    human = queries.count_per_project(session, HumanLabel.project_id, ids)
    n_rounds = queries.count_per_project(session, Round.project_id, ids)
    last = queries.latest_rounds(session, ids)
    rows = [
        ProjectOverview(
            id=p.id,
            name=p.name,
            data_kind=p.data_kind,
            n_classes=len(p.classes),
            items=items.get(p.id, 0),
            auto_labels=auto.get(p.id, 0),
            human_labels=human.get(p.id, 0),
            coverage=auto.get(p.id, 0) / items[p.id] if items.get(p.id) else 0.0,
            rounds=n_rounds.get(p.id, 0),
            last_round=round_state(last[p.id]) if p.id in last else None,
            created_at=p.created_at,
        )
        for p in projects
    ]
    return ProjectsOverview(items=rows, next_after_id=ids[-1] if len(ids) == limit else None)


def _round_error(report: RoundReport) -> tuple[float | None, float | None, Any]:
    """(estimated error, error bound, which bound) of a round: the pooled figures when the round has them
    (pooled guarantee), else the largest per-class bound among the classes it auto-labeled, with the
    estimated error of all their D_th points together."""
    estimated, bound = _finite(report.pooled_estimated_error), _finite(report.pooled_error_bound)
    if bound is not None:
        return estimated, bound, "pooled"
    certified = [
        c
        for c in report.thresholds
        if _finite(c.threshold) is not None and _finite(c.error_bound) is not None
    ]
    if not certified:
        return estimated, None, None
    bound = max(float(c.error_bound or 0.0) for c in certified)
    points = sum(c.n_points for c in certified)
    if estimated is None and points:
        estimated = sum((c.estimated_error or 0.0) * c.n_points for c in certified) / points
    return estimated, bound, "max over classes"


def _reliability(latest: Round | None, report: RoundReport | None) -> SummaryReliability | None:
    diagram = report.reliability if report is not None else None
    if latest is None or diagram is None:
        return None
    edges = [float(e) for e in diagram.edges]
    counts, accuracy, confidence = diagram.counts, diagram.accuracy, diagram.confidence
    if len(edges) != len(counts) + 1 or not len(counts) == len(accuracy) == len(confidence):
        return None
    return SummaryReliability(
        round_id=latest.id,
        round_index=latest.index,
        source=diagram.source,
        n=diagram.n or sum(counts),
        ece=_finite(diagram.ece),
        bins=[
            ReliabilityBin(
                lo=edges[b],
                hi=edges[b + 1],
                count=int(counts[b]),
                accuracy=_finite(accuracy[b]),
                confidence=_finite(confidence[b]),
            )
            for b in range(len(counts))
        ],
    )


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
