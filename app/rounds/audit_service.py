"""Audit mode: how wrong a round's auto-labels really are, from a uniform sample reviewed by humans.

With the project setting ``audit_size`` = k, each round sends k of its auto-labeled items, drawn uniformly
without replacement, to the human queue (purpose ``audit``; see
:func:`app.rounds.write.sample_audit`). Once humans label them, the share of answered items
whose human label differs from the auto-label estimates the round's auto-labeling error without bias, and
the exact binomial (Clopper–Pearson, 1934) interval bounds it:

    lower = B(α/2; m, n − m + 1),  upper = B(1 − α/2; m + 1, n − m)

with m wrong out of n answered, B(q; a, b) the q-quantile of the Beta(a, b) distribution, lower = 0 when
m = 0 and upper = 1 when m = n; α = δ, as the round's report states it. Sampling without replacement
from a finite round makes the binomial interval slightly conservative. The report sits beside what the
round promised: ε, and its pooled bound estimated on D_th.
"""

from __future__ import annotations

from scipy.stats import beta
from sqlalchemy.orm import Session

from app.db.models import Project, Round
from app.errors import Conflict, NotFound
from app.projects.config import project_config
from app.rounds import repository as rounds_repo
from app.rounds.audit_schemas import AuditRead
from tbal.reports import RoundReport, RoundReportError


def clopper_pearson(wrong: int, n: int, alpha: float) -> tuple[float, float]:
    """Two-sided exact interval for a binomial proportion with ``wrong`` successes in ``n`` trials, at
    confidence 1 − ``alpha`` (Clopper & Pearson, Biometrika 1934)."""
    if n <= 0 or not 0 <= wrong <= n:
        raise ValueError(f"expected 0 <= wrong <= n and n > 0, got wrong={wrong}, n={n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"expected alpha in (0, 1), got {alpha}")
    lower = 0.0 if wrong == 0 else float(beta.ppf(alpha / 2, wrong, n - wrong + 1))
    upper = 1.0 if wrong == n else float(beta.ppf(1 - alpha / 2, wrong + 1, n - wrong))
    return lower, upper


def round_audit(session: Session, round_: Round) -> AuditRead:
    """The audit report of ``round_`` (see the module docstring). δ is the one the round's report was
    certified under; a round without a report (queued, running, failed: nothing auto-labeled, nothing
    to audit) states the project's configured δ."""
    report = _report(round_)
    delta = report.delta if report is not None else _project_delta(session, round_.project_id)
    sampled, answered, wrong = rounds_repo.audit_counts(session, round_.id)
    interval = clopper_pearson(wrong, answered, delta) if answered else None
    epsilon = report.epsilon if report is not None else None
    if sampled == 0:
        verdict = "not audited"
    elif interval is None:
        verdict = "pending"
    elif epsilon is not None and interval[0] > epsilon:
        verdict = "exceeds"
    else:
        verdict = "consistent"
    return AuditRead(
        round_id=round_.id,
        project_id=round_.project_id,
        round_index=round_.index,
        auto_labeled=report.auto_labeled if report is not None else None,
        sampled=sampled,
        answered=answered,
        wrong=wrong,
        audited_error=wrong / answered if answered else None,
        interval=interval,
        confidence=1.0 - delta,
        epsilon=epsilon,
        promised_bound=report.pooled_error_bound if report is not None else None,
        estimated_error=report.pooled_estimated_error if report is not None else None,
        verdict=verdict,  # type: ignore[arg-type]
    )


def _report(round_: Round) -> RoundReport | None:
    """The round's typed report, None when it has none yet; 409 when the stored one is incomplete (an
    audit at a δ the round did not state would claim a confidence nobody certified)."""
    if not round_.metrics:
        return None
    try:
        return RoundReport.from_dict(round_.metrics)
    except RoundReportError as exc:
        raise Conflict(
            "round_id", f"round {round_.id} has an incomplete report, nothing to audit: {exc}"
        ) from exc


def _project_delta(session: Session, project_id: int) -> float:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound("project_id", f"no project {project_id}")
    return project_config(project).thresholds.delta
