"""Schemas of the Label Studio integration: what Label Studio sends to an ML backend (only the fields
tbal reads; the rest is ignored), and the connection, import and export bodies of tbal's own API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, SecretStr

FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
AutoLabelsAs = Literal["predictions", "annotations", "off"]


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
    project: str | None = Field(default=None, description="'<Label Studio project id>.<created_at>'")
    hostname: str | None = Field(default=None, max_length=2048)
    access_token: str | None = Field(default=None, max_length=4096)


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


def _no_credentials(url: HttpUrl | None) -> HttpUrl | None:
    """A Label Studio URL without user:password (the connection would show it, errors would log it)."""
    if url is not None and (url.username or url.password):
        raise ValueError("give the Label Studio URL without user:password; the access token goes in ls_token")
    return url


class ConnectionCreate(BaseModel):
    """Where tbal reads a task's item: ``data[id_field]`` names an existing item by external id; else the
    item is ``ls-<task id>`` and ``data[data_field]`` holds its data (default ``features`` for feature
    projects, ``pixels`` for image projects)."""

    model_config = ConfigDict(extra="forbid")

    data_field: str | None = Field(default=None, pattern=FIELD_PATTERN)
    id_field: str = Field(default="external_id", pattern=FIELD_PATTERN)
    ls_url: Annotated[HttpUrl | None, AfterValidator(_no_credentials)] = Field(
        default=None, description="Label Studio's URL, for the two-way sync"
    )
    ls_project: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="the Label Studio project id"
    )
    ls_token: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="a Label Studio access token (stored encrypted)",
    )
    auto_labels_as: AutoLabelsAs = "predictions"


class ConnectionUpdate(BaseModel):
    """Change the two-way sync settings of a connection (fields left out stay as they are; the secret in the
    backend URL is kept)."""

    model_config = ConfigDict(extra="forbid")

    ls_url: Annotated[HttpUrl | None, AfterValidator(_no_credentials)] = None
    ls_project: int | None = Field(default=None, ge=1, le=2**63 - 1)
    ls_token: SecretStr | None = Field(default=None, min_length=1, max_length=4096)
    auto_labels_as: AutoLabelsAs | None = None


class ConnectionRead(BaseModel):
    project_id: int
    path: str = Field(description="the backend URL's path, with the secret shown as <secret>")
    secret_prefix: str
    data_field: str
    id_field: str
    from_name: str | None = Field(description="the Choices control seen in Label Studio's last /setup")
    to_name: str | None
    data_key: str | None = Field(default=None, description="the labeled object's data key (from /setup)")
    ls_url: str | None = None
    ls_project: int | None = None
    has_token: bool = Field(default=False, description="whether an access token is stored (never shown)")
    auto_labels_as: str = "predictions"
    last_sync_at: datetime | None = None
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
    ties: int = Field(default=0, description="items whose votes tie: no label until one more annotator votes")
    joined_validation: int = Field(
        default=0, description="items that joined the validation set (tbal_purpose)"
    )
    skipped_tasks: list[TaskProblem]


class WebhookResult(BaseModel):
    action: str
    status: str
    round_id: int | None = None
    items_created: int = 0
    labels_written: int = 0
    labels_removed: int = 0
    ties: int = 0
    pending: list[int] = Field(
        default_factory=list, description="raw tasks whose items are made in the background"
    )
    reaped_rounds: list[int] = Field(default_factory=list, description="dead rounds marked failed first")
    skipped_tasks: list[TaskProblem] = Field(default_factory=list)


class SyncResult(BaseModel):
    tasks_created: int = Field(description="queued items pushed as new Label Studio tasks")
    tasks_marked: int = Field(description="tasks whose tbal_purpose was set or changed")
    tasks_linked: int = Field(description="items of this project that have a task in Label Studio")
    annotations: int
    labels_written: int
    labels_removed: int
    ties: int
    auto_labels_written: int
    skipped_tasks: list[TaskProblem]


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    created_at: datetime
    source: str = Field(description="setup, predict, webhook, sync, ...")
    status: int
    reason: str


class StatusRead(BaseModel):
    connection: ConnectionRead | None = Field(description="null: the project has no Label Studio connection")
    open_queries: int
    tasks_linked: int
    last_errors: list[EventRead] = Field(description="the latest refusals, skipped tasks and failed syncs")
