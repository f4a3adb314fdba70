"""Audit mode: how wrong a round's auto-labels really are, from a uniform sample reviewed by humans.

With the project setting ``audit_size`` = k, each round sends k of its auto-labeled items, drawn uniformly
without replacement, to the human queue (purpose ``audit``; see
:func:`app.services.round_runner._sample_audit`). Once humans label them, the share of answered items
whose human label differs from the auto-label estimates the round's auto-labeling error without bias, and
the exact binomial (Clopper–Pearson, 1934) interval bounds it:

    lower = B(α/2; m, n − m + 1),  upper = B(1 − α/2; m + 1, n − m)

with m wrong out of n answered, B(q; a, b) the q-quantile of the Beta(a, b) distribution, lower = 0 when
m = 0 and upper = 1 when m = n; α = δ of the project. Sampling without replacement from a finite round
makes the binomial interval slightly conservative. The report sits beside what the round promised:
ε, and its pooled bound estimated on D_th.
"""

from __future__ import annotations

from typing import Any

from scipy.stats import beta
from sqlalchemy.orm import Session

from app.db.models import Round
from app.repositories import rounds as rounds_repo
from app.schemas.audit import AuditRead


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
    """The audit report of ``round_`` (see the module docstring)."""
    metrics: dict[str, Any] = round_.metrics or {}
    delta = float(metrics.get("delta") or 0.05)
    epsilon = metrics.get("epsilon")
    sampled, answered, wrong = rounds_repo.audit_counts(session, round_.id)
    interval = clopper_pearson(wrong, answered, delta) if answered else None
    if sampled == 0:
        verdict = "not audited"
    elif interval is None:
        verdict = "pending"
    elif epsilon is not None and interval[0] > float(epsilon):
        verdict = "exceeds"
    else:
        verdict = "consistent"
    return AuditRead(
        round_id=round_.id,
        project_id=round_.project_id,
        round_index=round_.index,
        auto_labeled=metrics.get("auto_labeled"),
        sampled=sampled,
        answered=answered,
        wrong=wrong,
        audited_error=wrong / answered if answered else None,
        interval=interval,
        confidence=1.0 - delta,
        epsilon=epsilon,
        promised_bound=metrics.get("pooled_error_bound"),
        estimated_error=metrics.get("pooled_estimated_error"),
        verdict=verdict,  # type: ignore[arg-type]
    )
