"""Reading what a round recorded about itself (see :mod:`app.rounds.report`): the human training
labels whose AUM says they are probably wrong, and its classifier's evaluation on the validation set.

Both are written with the round's other metrics, in the one transaction that finishes it, and read back
through its typed report (:class:`tbal.reports.RoundReport`: ``label_review``, ``evaluation``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.models import Project, Round
from app.errors import Conflict, NotFound
from app.labels import repository as labels_repo
from app.rounds import repository as rounds_repo
from app.rounds.reports_schemas import EvaluationRead, LabelReviewItem, LabelReviewPage
from tbal.reports import RoundReport, RoundReportError


def finished_round(session: Session, project: Project, round_id: int | None) -> Round:
    """Round ``round_id`` of ``project`` (404 when it is another project's or does not exist), or its latest
    succeeded round; 409 when that round has not succeeded or none has."""
    if round_id is None:
        latest = rounds_repo.last_succeeded(session, project.id)
        if latest is None:
            raise Conflict("round", f"no round of project {project.id} has finished yet; start one first")
        return latest
    round_ = rounds_repo.get(session, round_id)
    if round_ is None or round_.project_id != project.id:
        raise NotFound("round_id", f"no round {round_id} in project {project.id}")
    return _succeeded(round_)


def label_review(
    session: Session, project: Project, round_: Round, *, after_rank: int, limit: int
) -> LabelReviewPage:
    """One page of the round's flagged training labels, lowest AUM first, with their items' external ids
    and current human labels."""
    review = _report(round_, "label review").label_review
    if review is None:
        raise _not_recorded(round_, "label review")
    ids = review.item_id[after_rank : after_rank + limit]
    rows = labels_repo.items_with_labels(session, project.id, ids)
    names = list(project.classes)
    items = []
    for offset, item_id in enumerate(ids):
        rank = after_rank + offset
        row = rows.get(item_id)
        items.append(
            LabelReviewItem(
                rank=rank + 1,
                item_id=item_id,
                external_id=row.external_id if row is not None else None,
                label=names[row.label] if row is not None and row.label is not None else None,
                round_label=names[review.label[rank]],
                predicted=names[review.predicted[rank]],
                aum=review.aum[rank],
            )
        )
    end = after_rank + len(ids)
    return LabelReviewPage(
        project_id=project.id,
        round_id=round_.id,
        round_index=round_.index,
        model_version=round_.model_version,
        training_labels=review.training_labels,
        fraction=review.fraction,
        below_zero=review.below_zero,
        flagged=review.flagged,
        stored=review.stored,
        items=items,
        next_after_rank=end if end < len(review.item_id) else None,
    )


def round_evaluation(round_: Round) -> EvaluationRead:
    """The round's evaluation report (409 when the round has not succeeded or ran before it existed)."""
    evaluation = _report(_succeeded(round_), "evaluation").evaluation
    if evaluation is None:
        raise _not_recorded(round_, "evaluation")
    return EvaluationRead(
        round_id=round_.id,
        project_id=round_.project_id,
        round_index=round_.index,
        model_version=round_.model_version,
        **evaluation,
    )


def _succeeded(round_: Round) -> Round:
    if round_.status != "succeeded":
        raise Conflict("round_id", f"round {round_.id} is {round_.status}; only a finished round has reports")
    return round_


def _report(round_: Round, what: str) -> RoundReport:
    """The round's typed report; 409 naming ``what`` was asked for when the stored one is incomplete."""
    try:
        return RoundReport.from_dict(round_.metrics)
    except RoundReportError as exc:
        raise _not_recorded(round_, what, f"its report is incomplete: {exc}") from exc


def _not_recorded(round_: Round, what: str, why: str = "it ran before it existed") -> Conflict:
    return Conflict("round_id", f"round {round_.id} recorded no {what} ({why})")
