"""What the tbal service answers and what the client sends, as frozen dataclasses (each answer keeps its
full JSON in ``raw``), and the client's errors. ``tests/client/test_client_types.py`` checks every key
these types read against the server's OpenAPI schema, so they cannot drift from it unnoticed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FINAL_STATUSES = ("succeeded", "failed")
ClassRef = int | str
"""A class given by its index (0..K-1) or its name."""


# ---------------------------------------------------------------------------------------------------
# Errors


class TBALClientError(Exception):
    """Base class of the client's errors."""


class APIError(TBALClientError):
    """The service answered with an error status. ``field`` and ``reason`` come from its
    ``{"detail": {"field", "reason"}}`` body (``field`` is "response" when the body has another shape)."""

    def __init__(self, method: str, path: str, status: int, field: str, reason: str, body: Any) -> None:
        super().__init__(f"{method} {path}: {status} {field}: {reason}")
        self.method = method
        self.path = path
        self.status = status
        self.field = field
        self.reason = reason
        self.body = body


class ServiceUnreachable(TBALClientError):
    """No answer after every retry (connection refused, timeouts, ...); the message names the last error."""


class RoundFailed(TBALClientError):
    """A waited-for round ended with status ``failed``; ``round`` holds it (``round.error``: the reason)."""

    def __init__(self, round_: Round) -> None:
        super().__init__(f"round {round_.index} (id {round_.id}) failed: {round_.error}")
        self.round = round_


class WaitTimeout(TBALClientError):
    """A round was not final within the time given to :meth:`TBALClient.wait_round`."""


# ---------------------------------------------------------------------------------------------------
# What the service answers


@dataclass(frozen=True)
class ProjectCounts:
    items: int
    pool: int
    validation_labels: int
    training_labels: int
    human_labels: int
    auto_labels: int
    open_queries: int
    budget_used: int
    label_budget: int
    rounds: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProjectCounts:
        return cls(**{name: int(data[name]) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Project:
    """A project; ``config`` is the effective library configuration of its ``settings``; ``followed`` the
    settings the service chose for it (None from a service or project that does not say); ``certificate``
    what its certificate needs (None under the papers' rule or the dataset guarantee, or from a service
    that does not say); ``counts`` only from :meth:`TBALClient.get_project`."""

    id: int
    name: str
    classes: list[str]
    data_kind: str
    input_shape: list[int]
    seed: int
    settings: dict[str, Any]
    config: dict[str, Any]
    created_at: str
    counts: ProjectCounts | None = None
    followed: list[str] | None = None
    certificate: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def warnings(self) -> list[str]:
        """What the service says of the settings' certificate (e.g. too few validation points to hold
        one); empty where it says nothing."""
        return [str(w) for w in (self.certificate or {}).get("warnings", [])]

    @property
    def epsilon(self) -> float:
        return float(self.config["thresholds"]["epsilon"])

    @property
    def label_budget(self) -> int:
        return int(self.config["loop"]["label_budget"])

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Project:
        counts, followed, certificate = data.get("counts"), data.get("followed"), data.get("certificate")
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            classes=[str(c) for c in data["classes"]],
            data_kind=str(data["data_kind"]),
            input_shape=[int(s) for s in data["input_shape"]],
            seed=int(data["seed"]),
            settings=dict(data.get("settings") or {}),
            config=dict(data.get("config") or {}),
            created_at=str(data["created_at"]),
            counts=ProjectCounts.from_json(counts) if counts else None,
            followed=None if followed is None else [str(n) for n in followed],
            certificate=dict(certificate) if certificate else None,
            raw=dict(data),
        )


@dataclass(frozen=True)
class IngestResult:
    received: int
    inserted: int
    skipped: int
    ground_truth_added: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IngestResult:
        return cls(**{name: int(data[name]) for name in cls.__dataclass_fields__})

    def __add__(self, other: IngestResult) -> IngestResult:
        return IngestResult(
            self.received + other.received,
            self.inserted + other.inserted,
            self.skipped + other.skipped,
            self.ground_truth_added + other.ground_truth_added,
        )


@dataclass(frozen=True)
class LabelsResult:
    received: int
    created: int
    updated: int
    validation: int
    training: int
    answered_queries: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelsResult:
        return cls(**{name: int(data[name]) for name in cls.__dataclass_fields__})

    def __add__(self, other: LabelsResult) -> LabelsResult:
        return LabelsResult(
            *(getattr(self, n) + getattr(other, n) for n in LabelsResult.__dataclass_fields__)
        )


@dataclass(frozen=True)
class SimulateResult:
    answered: int
    validation: int
    training: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SimulateResult:
        return cls(**{name: int(data[name]) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class QueueItem:
    """An item the service wants a human label for; ``data`` only when asked for (``include_data``)."""

    query_id: int
    item_id: int
    external_id: str
    purpose: str
    round_id: int | None
    data: list[Any] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueueItem:
        return cls(
            query_id=int(data["query_id"]),
            item_id=int(data["item_id"]),
            external_id=str(data["external_id"]),
            purpose=str(data["purpose"]),
            round_id=None if data.get("round_id") is None else int(data["round_id"]),
            data=data.get("data"),
        )


@dataclass(frozen=True)
class QueueCounts:
    open_validation: int
    open_training: int

    @property
    def total(self) -> int:
        return self.open_validation + self.open_training


@dataclass(frozen=True)
class Round:
    """A round: status (queued, running, succeeded, failed), stage and progress in [0, 1] while it runs;
    ``metrics`` (see the API's RoundRead) and ``model_version`` once it succeeded, ``error`` if it failed."""

    id: int
    project_id: int
    index: int
    status: str
    stage: str | None
    progress: float
    n_queries: int
    metrics: dict[str, Any] | None
    model_version: str | None
    error: str | None
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Round:
        return cls(
            id=int(data["id"]),
            project_id=int(data["project_id"]),
            index=int(data["index"]),
            status=str(data["status"]),
            stage=data.get("stage"),
            progress=float(data.get("progress") or 0.0),
            n_queries=int(data.get("n_queries") or 0),
            metrics=data.get("metrics"),
            model_version=data.get("model_version"),
            error=data.get("error"),
            attempts=int(data.get("attempts") or 0),
            created_at=str(data["created_at"]),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class AutoLabel:
    id: int
    item_id: int
    external_id: str
    round_id: int
    label: int
    class_name: str
    confidence: float
    created_at: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AutoLabel:
        return cls(
            id=int(data["id"]),
            item_id=int(data["item_id"]),
            external_id=str(data["external_id"]),
            round_id=int(data["round_id"]),
            label=int(data["label"]),
            class_name=str(data["class_name"]),
            confidence=float(data["confidence"]),
            created_at=str(data["created_at"]),
        )


@dataclass(frozen=True)
class HumanLabel:
    id: int
    item_id: int
    external_id: str
    role: str
    label: int
    class_name: str
    distribution: list[float] | None
    votes: dict[str, int] | None
    source: str
    created_at: str
    updated_at: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HumanLabel:
        return cls(
            id=int(data["id"]),
            item_id=int(data["item_id"]),
            external_id=str(data["external_id"]),
            role=str(data["role"]),
            label=int(data["label"]),
            class_name=str(data["class_name"]),
            distribution=data.get("distribution"),
            votes=data.get("votes"),
            source=str(data["source"]),
            created_at=str(data["created_at"]),
            updated_at=str(data["updated_at"]),
        )


@dataclass(frozen=True)
class Prediction:
    label: int
    class_name: str
    confidence: float
    clears_threshold: bool


@dataclass(frozen=True)
class PredictResult:
    model_version: str
    round_id: int
    predictions: list[Prediction]


# ---------------------------------------------------------------------------------------------------
# What the client sends


@dataclass(frozen=True)
class Label:
    """A human label for one item, named by ``external_id`` or ``item_id``: exactly one of ``label`` (a
    class index or name), ``distribution`` (K probabilities) or ``votes`` ({annotator: class})."""

    external_id: str | None = None
    item_id: int | None = None
    label: ClassRef | None = None
    distribution: Sequence[float] | None = None
    votes: Mapping[str, ClassRef] | None = None

    def __post_init__(self) -> None:
        if (self.external_id is None) == (self.item_id is None):
            raise ValueError(
                f"give exactly one of external_id or item_id, got {self.external_id!r} / {self.item_id!r}"
            )
        given = [n for n in ("label", "distribution", "votes") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of label, distribution or votes, got {given or 'none'}")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = (
            {"external_id": self.external_id} if self.external_id is not None else {"item_id": self.item_id}
        )
        if self.label is not None:
            body["label"] = _class_ref(self.label)
        elif self.distribution is not None:
            body["distribution"] = [float(p) for p in self.distribution]
        else:
            assert self.votes is not None
            body["votes"] = {str(k): _class_ref(v) for k, v in self.votes.items()}
        return body


LabelsInput = Mapping[str, ClassRef] | Iterable[Label | Mapping[str, Any]]
"""``{external_id: class}``, or :class:`Label` objects, or dicts in the API's shape."""


def _class_ref(value: ClassRef) -> ClassRef:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"expected a class index or name, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    return str(value)
