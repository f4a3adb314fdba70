"""/projects/{id}/rounds and /rounds/{id}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from app.api.deps import CallerDep, DispatcherDep, MetricsDep, ProjectDep, SessionDep, SettingsDep
from app.api.pagination import DEFAULT_LIMIT, AfterId, Limit
from app.projects.keys_service import check_project
from app.rounds import repository as repo
from app.rounds import service
from app.rounds.audit_schemas import AuditPage, AuditRead
from app.rounds.audit_service import round_audit
from app.rounds.liveness import reap_stale_rounds
from app.rounds.reports_schemas import EvaluationRead, LabelReviewPage
from app.rounds.reports_service import finished_round, label_review, round_evaluation
from app.rounds.schemas import RoundPage, RoundRead

router = APIRouter(tags=["rounds"])


@router.post("/projects/{project_id}/rounds", status_code=status.HTTP_202_ACCEPTED)
def start_round(
    *,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    metrics: MetricsDep,
) -> RoundRead:
    """Start a round: it is queued, committed, then sent to a worker. Poll ``GET /rounds/{id}``.
    A running round of the project whose worker died (no heartbeat for ``reap_after_s``) is
    marked failed first, so it does not block the new one (409 while a live round runs)."""
    reap_stale_rounds(session, settings, project_id=project.id)
    round_ = service.start_round(session, project, dispatcher)
    metrics.rounds_started.inc()
    return RoundRead.model_validate(round_)


@router.get("/projects/{project_id}/rounds")
def list_rounds(
    *, project: ProjectDep, session: SessionDep, after_id: AfterId = 0, limit: Limit = DEFAULT_LIMIT
) -> RoundPage:
    rows = repo.page(session, project.id, after_id=after_id, limit=limit)
    return RoundPage(
        items=[RoundRead.model_validate(r) for r in rows],
        next_after_id=rows[-1].id if len(rows) == limit else None,
    )


@router.get("/rounds/{round_id}")
def read_round(
    *, round_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: SessionDep, caller: CallerDep
) -> RoundRead:
    round_ = service.get_round(session, round_id)
    check_project(caller, round_.project_id)
    return RoundRead.model_validate(round_)


@router.get("/rounds/{round_id}/audit")
def read_round_audit(
    *, round_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: SessionDep, caller: CallerDep
) -> AuditRead:
    """Audit mode (project setting ``audit_size``): the error of the round's auto-labels measured on the
    human-labeled audit sample, its Clopper–Pearson interval at 1 − δ, beside ε and the round's bound."""
    round_ = service.get_round(session, round_id)
    check_project(caller, round_.project_id)
    return round_audit(session, round_)


@router.get("/projects/{project_id}/audit")
def list_audits(
    *, project: ProjectDep, session: SessionDep, after_id: AfterId = 0, limit: Limit = DEFAULT_LIMIT
) -> AuditPage:
    """The audit report of each round of the project (keyset pages by round id)."""
    rows = repo.page(session, project.id, after_id=after_id, limit=limit)
    return AuditPage(
        items=[round_audit(session, r) for r in rows],
        next_after_id=rows[-1].id if len(rows) == limit else None,
    )


@router.get("/rounds/{round_id}/evaluation")
def read_round_evaluation(
    *, round_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: SessionDep, caller: CallerDep
) -> EvaluationRead:
    """The round's classifier on its validation set (human labels it never trained on): accuracy, ECE
    (10 bins), NLL and, when humans gave label distributions, the cross-entropy against them. 409 until
    the round has succeeded."""
    round_ = service.get_round(session, round_id)
    check_project(caller, round_.project_id)
    return round_evaluation(round_)


@router.get("/projects/{project_id}/label-review")
def read_label_review(
    *,
    project: ProjectDep,
    session: SessionDep,
    round_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="default: the latest finished")
    ] = None,
    after_rank: Annotated[int, Query(ge=0, le=2**31, description="the last rank seen (0 to start)")] = 0,
    limit: Limit = DEFAULT_LIMIT,
) -> LabelReviewPage:
    """Human training labels that are probably wrong, lowest area under the margin (AUM) first, as the
    round that trained on them measured it: item, its human label, the model's class and the AUM. 409
    when no round has finished (or the given one has not)."""
    round_ = finished_round(session, project, round_id)
    return label_review(session, project, round_, after_rank=after_rank, limit=limit)
