"""Audit schemas: a round's audited error beside the bound it promised."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class AuditRead(BaseModel):
    round_id: int
    project_id: int
    round_index: int
    auto_labeled: int | None = Field(description="auto-labels the round wrote (the audited population)")
    sampled: int = Field(description="auto-labels sampled uniformly for human review (purpose 'audit')")
    answered: int = Field(description="sampled items with a human label so far")
    wrong: int = Field(description="answered items whose human label differs from the auto-label")
    audited_error: float | None = Field(description="wrong / answered; null before the first answer")
    interval: tuple[float, float] | None = Field(
        description="two-sided Clopper–Pearson interval of the round's auto-labeling error at `confidence`"
    )
    confidence: float = Field(description="1 − δ of the project's settings")
    epsilon: float | None = Field(description="the error the round promised to stay under")
    promised_bound: float | None = Field(
        description="the round's pooled upper bound on its error (estimated on D_th), as it reported it"
    )
    estimated_error: float | None = Field(description="the round's pooled error estimate on D_th")
    verdict: Literal["not audited", "pending", "consistent", "exceeds"] = Field(
        description="exceeds: the interval lies wholly above ε (the promise failed for this round, at the "
        "stated confidence); consistent: it does not; pending: no answer yet"
    )


class AuditPage(BaseModel):
    items: list[AuditRead]
    next_after_id: int | None
