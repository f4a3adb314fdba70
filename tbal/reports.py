"""The typed report of one service round: what the round decided and measured, as the service stores it
(``rounds.metrics``, JSON) and serves it (``GET /rounds/{id}``: the same keys as always).

Readers (the audit's δ, the label review, the evaluation report, the δ already spent) parse the stored
JSON with :meth:`RoundReport.from_dict` and read typed fields instead of string keys; the writer builds a
:class:`RoundReport` and stores :meth:`RoundReport.to_dict`. ``from_dict(r.to_dict()) == r``.

Fields every round has written since the first version (ε, δ, the bound, counts, thresholds) are
required: a stored report without them raises :class:`RoundReportError`, never a default (an audit at a
made-up δ would state a confidence the round never had). Fields added later (``delta_round``,
``input_scale``, the reliability diagram, the evaluation, the label review, the audit and top-up counts)
are None in the reports of rounds that ran before them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tbal.errors import TBALInputError


class RoundReportError(TBALInputError):
    """A stored round report lacks a field or holds one of the wrong type."""


@dataclass(frozen=True)
class ClassReport:
    """One class of a round: its threshold (None: +inf, not auto-labeled), the error estimated on D_th
    and its upper bound, the D_th points above the threshold, and the pool items auto-labeled."""

    class_name: str  # stored as "class"
    index: int
    threshold: float | None
    estimated_error: float | None
    error_bound: float | None
    n_points: int
    auto_labeled: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.class_name,
            "index": self.index,
            "threshold": self.threshold,
            "estimated_error": self.estimated_error,
            "error_bound": self.error_bound,
            "n_points": self.n_points,
            "auto_labeled": self.auto_labeled,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ClassReport:
        return cls(
            class_name=str(_required(raw, "class", "thresholds[]")),
            index=int(_required(raw, "index", "thresholds[]")),
            threshold=_opt_float(raw.get("threshold")),
            estimated_error=_opt_float(raw.get("estimated_error")),
            error_bound=_opt_float(raw.get("error_bound")),
            n_points=int(raw.get("n_points") or 0),
            auto_labeled=int(raw.get("auto_labeled") or 0),
        )


@dataclass(frozen=True)
class TrueError:
    """The auto-labels' error against the ground truth uploaded with the items (where there is one)."""

    round: float | None
    round_known: int
    round_wrong: int
    total: float | None
    total_known: int
    total_wrong: int


@dataclass(frozen=True)
class Reliability:
    """Reliability diagram of the confidence function on D_th (:func:`tbal.metrics.reliability_diagram`)."""

    source: str
    n: int
    ece: float | None
    edges: list[float]
    accuracy: list[float | None]
    confidence: list[float | None]
    counts: list[int]


@dataclass(frozen=True)
class LabelReview:
    """Training labels AUM flags as probably wrong, lowest AUM first (columns of equal length)."""

    signal: str
    fraction: float
    training_labels: int
    below_zero: int
    flagged: int
    stored: int
    item_id: list[int]
    aum: list[float]
    label: list[int]
    predicted: list[int]


@dataclass(frozen=True)
class RoundReport:
    """One round's report (keys and meaning of each field as served by the API's ``metrics``)."""

    pool_size: int
    auto_labeled: int
    auto_labeled_total: int
    coverage: float
    coverage_total: float
    validation_labels: int
    validation_removed: int
    training_labels: int
    human_labels: int
    queries: int
    thresholds: list[ClassReport]
    pooled_estimated_error: float | None
    pooled_error_bound: float | None
    delta_used: float | None
    epsilon: float
    delta: float  # the run's δ (the audit's 1 − confidence)
    bound: str
    guarantee: str
    rounds_total: int | None  # the planned rounds P
    delta_round: float | None  # δ_k, this round's share (tbal.plan); None before it was recorded
    delta_schedule: str | None
    seed: int | None
    input_scale: float | None  # divisor of the pixels (images); also in the round's artifact
    true_error: TrueError | None
    auto_labeled_round_rows: int | None
    reliability: Reliability | None
    evaluation: (
        dict[str, Any] | None
    )  # tbal.evaluation.EvaluationReport's keys, plus source / human_distributions
    label_review: LabelReview | None
    audit_sampled: int | None = None
    validation_left: int | None = None
    validation_queued: int | None = None
    auto_mistakes_bound: float | None = None  # dataset guarantee: certified bound on this round's mistakes
    # validation labels the classifier also trained on (loop.train_outside_stratum); absent in older reports
    validation_labels_trained: int | None = None
    encoder: str | None = None  # text projects: the encoder spec that made the features (key absent else)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in ``rounds.metrics`` and served by the API."""
        out = dataclasses.asdict(self)
        out["thresholds"] = [c.to_dict() for c in self.thresholds]
        if self.encoder is None:
            del out["encoder"]
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> RoundReport:
        """Parse a stored report; :class:`RoundReportError` names a missing required field."""
        if not isinstance(raw, dict):
            raise RoundReportError(f"expected a round report (a JSON object), got {type(raw).__name__}")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in _NESTED:
                values[f.name] = _NESTED[f.name](raw.get(f.name))
            elif f.name in _REQUIRED:
                values[f.name] = _REQUIRED[f.name](_required(raw, f.name, "report"))
            elif f.name == "timings":
                values[f.name] = {str(k): float(v) for k, v in (raw.get("timings") or {}).items()}
            else:
                values[f.name] = raw.get(f.name)
        return cls(**values)


def _required(raw: dict[str, Any], key: str, where: str) -> Any:
    if raw.get(key) is None:
        raise RoundReportError(f"the round's {where} has no {key!r}")
    return raw[key]


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _dataclass_or_none(kind: type[Any]) -> Any:
    def parse(value: Any) -> Any:
        if not isinstance(value, dict):
            return None
        names = {f.name for f in dataclasses.fields(kind)}
        try:
            return kind(**{k: v for k, v in value.items() if k in names})
        except TypeError as exc:  # a field missing
            raise RoundReportError(f"the round's {kind.__name__} is incomplete: {exc}") from exc

    return parse


def _classes(value: Any) -> list[ClassReport]:
    if not isinstance(value, list):
        raise RoundReportError(f"the round's report has no per-class 'thresholds' list, got {value!r}")
    return [ClassReport.from_dict(c) for c in value]


_REQUIRED: dict[str, Any] = {
    "pool_size": int,
    "auto_labeled": int,
    "auto_labeled_total": int,
    "coverage": float,
    "coverage_total": float,
    "validation_labels": int,
    "validation_removed": int,
    "training_labels": int,
    "human_labels": int,
    "queries": int,
    "epsilon": float,
    "delta": float,
    "bound": str,
    "guarantee": str,
}
_NESTED: dict[str, Any] = {
    "thresholds": _classes,
    "true_error": _dataclass_or_none(TrueError),
    "reliability": _dataclass_or_none(Reliability),
    "label_review": _dataclass_or_none(LabelReview),
    "evaluation": lambda value: dict(value) if isinstance(value, dict) else None,
}
