"""The round's typed report (:class:`tbal.reports.RoundReport`, stored as ``rounds.metrics``):
counts, thresholds, bounds, δ, true error where ground truth exists, the reliability diagram on D_th, the
evaluation on the validation set and the AUM label review."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from app.labels import repository as labels_repo
from app.rounds import auto_labels_repository as auto_repo
from app.rounds.load import LoadedRound
from tbal.errors import TBALInputError
from tbal.reports import ClassReport, LabelReview, Reliability, RoundReport, TrueError

if TYPE_CHECKING:
    from tbal.loop import RoundOutput

LABEL_REVIEW_MAX = 1000
"""Most labels a round stores for review: bounds the round's metrics row whatever the label budget."""


@dataclass(frozen=True)
class WriteCounts:
    """What the round's write changed: auto-labels inserted, validation items removed, training queries
    and validation top-ups queued, audit items sampled, validation items left, and validation items
    drawn inside the stratum the round fixed (``loop.targeted_validation``)."""

    inserted: int
    removed: int
    queried: int
    audited: int
    validation_left: int
    topped_up: int
    targeted: int = 0


def build_report(
    session: Session,
    round_id: int,
    loaded: LoadedRound,
    output: RoundOutput,
    *,
    counts: WriteCounts,
    timings: dict[str, float],
) -> RoundReport:
    """The round's typed report (:class:`tbal.reports.RoundReport`), stored as its metrics."""
    th = output.thresholds
    n_round, known_round, wrong_round = auto_repo.error_stats(
        session, project_id=loaded.project_id, round_id=round_id
    )
    n_total, known_total, wrong_total = auto_repo.error_stats(session, project_id=loaded.project_id)
    n_pool = int(loaded.pool_ids.size)
    cfg = loaded.config
    return RoundReport(
        pool_size=n_pool,
        auto_labeled=counts.inserted,
        auto_labeled_total=n_total,
        coverage=counts.inserted / n_pool if n_pool else 0.0,
        coverage_total=n_total / loaded.n_items if loaded.n_items else 0.0,
        validation_labels=int(loaded.val_ids.size),
        validation_removed=counts.removed,
        training_labels=int(loaded.train_ids.size),
        validation_labels_trained=int(output.trained_validation_index.size),
        human_labels=labels_repo.count_human_labels(session, loaded.project_id),
        queries=counts.queried,
        thresholds=_class_reports(loaded, output),
        pooled_estimated_error=_num(th.pooled_estimated_error),
        pooled_error_bound=_num(th.pooled_error_bound),
        delta_used=_num(th.delta_used),
        epsilon=cfg.thresholds.epsilon,
        delta=cfg.thresholds.delta,
        bound=cfg.thresholds.bound,
        guarantee=cfg.thresholds.guarantee,
        rounds_total=cfg.loop.planned_rounds,
        delta_round=loaded.plan.delta,
        delta_schedule=cfg.thresholds.delta_schedule,
        seed=loaded.plan.seed,
        input_scale=loaded.input_scale,
        true_error=TrueError(
            round=wrong_round / known_round if known_round else None,
            round_known=known_round,
            round_wrong=wrong_round,
            total=wrong_total / known_total if known_total else None,
            total_known=known_total,
            total_wrong=wrong_total,
        ),
        auto_labeled_round_rows=n_round,
        reliability=_reliability(loaded, output),
        evaluation=_evaluation(loaded, output),
        label_review=_label_review(loaded, output),
        audit_sampled=counts.audited,
        validation_left=counts.validation_left,
        validation_queued=counts.topped_up + counts.targeted,  # as run_tbal's validation_added
        auto_mistakes_bound=_num(th.auto_mistakes_bound) if counts.inserted else None,
        encoder=loaded.inputs.get("encoder"),  # issue 13 hook: the text encoder that made the features
        timings=timings,
    )


def _class_reports(loaded: LoadedRound, output: RoundOutput) -> list[ClassReport]:
    th = output.thresholds
    per_class_auto = np.bincount(output.auto_predicted, minlength=len(loaded.classes))
    return [
        ClassReport(
            class_name=name,
            index=k,
            threshold=_num(th.thresholds[k]),
            estimated_error=_num(th.estimated_error[k]),
            error_bound=_num(th.error_bound[k]),
            n_points=int(th.n_points[k]),
            auto_labeled=int(per_class_auto[k]),
        )
        for k, name in enumerate(loaded.classes)
    ]


def _evaluation(loaded: LoadedRound, output: RoundOutput) -> dict[str, Any] | None:
    """The classifier on the round's validation set (human labels it never trained on): accuracy, ECE
    (10 equal-width bins of the top softmax probability), NLL and, when humans gave distributions, the
    cross-entropy against them (:class:`tbal.evaluation.EvaluationReport`; OOD AUROC and FGSM need inputs
    the service does not have, so they stay out). Values that are not finite become null."""
    report = output.evaluation
    if report is None:
        return None
    values = {k: v for k, v in report.to_dict().items() if not k.startswith(("fgsm", "ood"))}
    return {
        "source": "validation",
        **{k: v if v is None or isinstance(v, int) else _num(v) for k, v in values.items()},
        "human_distributions": loaded.val_soft,
    }


def _label_review(loaded: LoadedRound, output: RoundOutput) -> LabelReview | None:
    """The human training labels that AUM says are probably wrong, lowest AUM first: every label with
    AUM < 0 (its class lost to another on average over training) and at least the lowest
    ``label_review_fraction`` of them (the review budget), at most :data:`LABEL_REVIEW_MAX`. Columns:
    item ids, AUM, the label trained on (argmax of the targets) and the model's predicted class."""
    from tbal.training.aum import likely_mislabeled

    aum, predicted = output.train_aum, output.train_predicted
    if aum is None or predicted is None:
        return None
    below_zero = likely_mislabeled(aum)
    budget = likely_mislabeled(aum, fraction=loaded.label_review_fraction)
    rows = below_zero if below_zero.size > budget.size else budget  # both prefixes of one stable ranking
    stored = rows[:LABEL_REVIEW_MAX]
    return LabelReview(
        signal="aum",
        fraction=loaded.label_review_fraction,
        training_labels=int(aum.size),
        below_zero=int(below_zero.size),
        flagged=int(rows.size),
        stored=int(stored.size),
        item_id=[int(i) for i in loaded.train_ids[stored]],
        aum=[round(float(a), 6) for a in aum[stored]],
        label=[int(c) for c in loaded.targets_train[stored].argmax(axis=1)],
        predicted=[int(c) for c in predicted[stored]],
    )


def _reliability(loaded: LoadedRound, output: RoundOutput, n_bins: int = 10) -> Reliability | None:
    """Reliability diagram of the confidence function on D_th (the human-labeled points that set the
    thresholds), for the dashboard: per equal-width bin, points, mean confidence and accuracy
    (:func:`tbal.metrics.reliability_diagram`), and the ECE, from the D_th scores the round computed.
    None when there is no D_th or the scores are not in [0, 1]."""
    from tbal.metrics import expected_calibration_error, reliability_diagram

    th = np.asarray(output.th_index, dtype=np.int64)
    if th.size == 0:
        return None
    scores = output.th_scores
    correct = np.asarray(output.th_predicted) == loaded.y_val[th]
    try:
        edges, accuracy, confidence, counts = reliability_diagram(scores, correct, n_bins)
    except TBALInputError:
        return None
    return Reliability(
        source="D_th",
        n=int(th.size),
        ece=_num(expected_calibration_error(scores, correct, n_bins)),
        edges=[float(e) for e in edges],
        accuracy=[_num(a) for a in accuracy],
        confidence=[_num(c) for c in confidence],
        counts=[int(c) for c in counts],
    )


def _num(value: Any) -> float | None:
    """A JSON-safe float: None for NaN and infinities."""
    x = float(value)
    return x if math.isfinite(x) else None
