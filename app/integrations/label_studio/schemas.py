"""Schemas of the Label Studio integration: what Label Studio sends to an ML backend (only the fields
tbal reads; the rest is ignored), and the connection, import and export bodies of tbal's own API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"


class LSTask(BaseModel):
    """A Label Studio task: its id and its ``data`` (the rest: annotations, predictions... ignored)."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(ge=0, le=2**63 - 1)
    data: dict[str, Any] = Field(default_factory=dict)


class LSAnnotation(BaseModel):
    """A Label Studio annotation: who made it, its result and whether it was cancelled (skipped)."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(ge=0, le=2**63 - 1)
    result: list[dict[str, Any]] = Field(default_factory=list)
    was_cancelled: bool = False
    completed_by: int | str | dict[str, Any] | None = None
    task: int | None = None


class LSExportTask(LSTask):
    """A task of a Label Studio JSON export (``exportType=JSON``): the task with its annotations."""

    annotations: list[LSAnnotation] = Field(default_factory=list)


class SetupRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_: str = Field(alias="schema", description="the project's label config (XML)")
    project: str | None = None


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tasks: list[LSTask] = Field(min_length=1)
    label_config: str | None = None
    project: str | None = None


class Webhook(BaseModel):
    """A webhook: ``action`` says which of the other fields come with it (``annotation`` and ``task`` are
    lists in ``ANNOTATIONS_CREATED``; ``tasks`` hold only ids in ``TASKS_DELETED``)."""

    model_config = ConfigDict(extra="ignore")

    action: str
    annotation: LSAnnotation | list[LSAnnotation] | None = None
    annotations: list[dict[str, Any]] | None = None
    task: LSTask | list[LSTask] | None = None
    tasks: list[LSTask] | None = None


class ConnectionCreate(BaseModel):
    """Where tbal reads a task's item: ``data[id_field]`` names an existing item by external id; else the
    item is ``ls-<task id>`` and ``data[data_field]`` holds its data (default ``features`` for feature
    projects, ``pixels`` for image projects)."""

    model_config = ConfigDict(extra="forbid")

    data_field: str | None = Field(default=None, pattern=FIELD_PATTERN)
    id_field: str = Field(default="external_id", pattern=FIELD_PATTERN)


class ConnectionRead(BaseModel):
    project_id: int
    path: str = Field(description="the backend URL's path, with the secret shown as <secret>")
    secret_prefix: str
    data_field: str
    id_field: str
    from_name: str | None = Field(description="the Choices control seen in Label Studio's last /setup")
    to_name: str | None
    created_at: datetime


class ConnectionCreated(ConnectionRead):
    secret: str = Field(description="shown once; the URL is the credential")
    url: str = Field(description="enter this in Label Studio: Settings → Model → Connect model → Backend URL")


class TaskProblem(BaseModel):
    task_id: int
    reason: str


class ImportResult(BaseModel):
    tasks: int
    items_created: int
    annotations: int = Field(description="annotations recorded (usable or not)")
    cancelled: int = Field(description="cancelled annotations (dropped from the labels)")
    unusable: int = Field(description="annotations without exactly one choice among the classes")
    labels_written: int
    labels_removed: int
    skipped_tasks: list[TaskProblem]


class WebhookResult(BaseModel):
    action: str
    status: str
    round_id: int | None = None
    items_created: int = 0
    labels_written: int = 0
    labels_removed: int = 0
    skipped_tasks: list[TaskProblem] = Field(default_factory=list)
