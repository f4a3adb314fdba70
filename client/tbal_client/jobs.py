"""Ingest jobs as the client sees them: a raw upload larger than the service's ``sync_ingest_max_items``
answers 202 with a job, whose items the service encodes in the background; :meth:`TBALClient.get_job`
reads one, :meth:`TBALClient.wait_job` polls it until it is final (and the upload methods wait for the
job of a chunk the service answered with one, so they return what was stored either way).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tbal_client.types import TBALClientError, WaitTimeout

if TYPE_CHECKING:
    from tbal_client.client import TBALClient

FINAL_JOB_STATUSES = ("succeeded", "failed")


@dataclass(frozen=True)
class JobItemError:
    """An item the job refused: its position in the upload, its external id, and why."""

    index: int
    item: str
    reason: str


@dataclass(frozen=True)
class Job:
    """An ingest job: ``done`` of ``total`` items handled (stored, skipped as known, or refused)."""

    id: int
    project_id: int
    kind: str
    status: str
    total: int
    done: int
    progress: float
    inserted: int
    skipped: int
    ground_truth_added: int
    n_errors: int
    errors: list[JobItemError]
    reason: str | None
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_JOB_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            id=int(data["id"]),
            project_id=int(data["project_id"]),
            kind=str(data["kind"]),
            status=str(data["status"]),
            total=int(data["total"]),
            done=int(data["done"]),
            progress=float(data["progress"]),
            inserted=int(data["inserted"]),
            skipped=int(data["skipped"]),
            ground_truth_added=int(data["ground_truth_added"]),
            n_errors=int(data["n_errors"]),
            errors=[JobItemError(int(e["index"]), str(e["item"]), str(e["reason"])) for e in data["errors"]],
            reason=data.get("reason"),
            attempts=int(data["attempts"]),
            created_at=str(data["created_at"]),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            raw=dict(data),
        )

    def ingest_fields(self) -> dict[str, int]:
        """What the job stored, as an upload's 200 answer says it (``IngestResult``'s fields; refused
        items count as neither inserted nor skipped)."""
        return {
            "received": self.total,
            "inserted": self.inserted,
            "skipped": self.skipped,
            "ground_truth_added": self.ground_truth_added,
        }


class JobFailed(TBALClientError):
    """A waited-for job failed, or refused items; ``job`` holds it (``job.reason``, ``job.errors``)."""

    def __init__(self, job: Job) -> None:
        first = f"; first: {job.errors[0].item}: {job.errors[0].reason}" if job.errors else ""
        why = job.reason if job.status == "failed" else f"{job.n_errors} items refused{first}"
        super().__init__(f"ingest job {job.id} {job.status}: {why}")
        self.job = job


def wait(
    client: TBALClient,
    project_id: int,
    job_id: int,
    *,
    poll_s: float,
    timeout_s: float | None,
    raise_on_errors: bool,
) -> Job:
    """Poll the job until it is final (see :meth:`TBALClient.wait_job`)."""
    if poll_s < 0:
        raise ValueError(f"poll_s must be ≥ 0, got {poll_s}")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        job = client.get_job(project_id, job_id)
        if job.is_final:
            if raise_on_errors and (job.status == "failed" or job.n_errors):
                raise JobFailed(job)
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise WaitTimeout(
                f"ingest job {job_id} still {job.status} ({job.done}/{job.total}) after {timeout_s} s"
            )
        client._sleep(poll_s)
