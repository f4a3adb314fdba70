"""Tables of the service (SQLAlchemy 2.0 typed models).

No ORM relationships: every query is explicit (repositories), so nothing lazy-loads by accident.
Item data are raw little-endian bytes (float32 features, uint8 images), never JSON lists of floats.
Deleting a project deletes its rows through ``ON DELETE CASCADE``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdType, UTCDateTime, utcnow

DATA_KINDS = ("features", "image", "text")
"""text: items are strings; their encoder's features are stored like a feature project's (``items.data``)."""
ITEM_ROLES = ("pool", "validation", "train", "removed", "audit")
"""pool: not drawn nor asked for; validation: drawn for the validation set; train: asked for (or labeled
unasked) as a training label; removed: a validation item inside a round's auto-labeled region; audit: an
auto-labeled item sampled for human review (its human label checks the auto-label, never trains)."""
ROUND_STATUSES = ("queued", "running", "succeeded", "failed")
ACTIVE_ROUND_STATUSES = ("queued", "running")
QUERY_PURPOSES = ("validation", "training", "audit")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    classes: Mapped[list[str]] = mapped_column(JSON)
    data_kind: Mapped[str] = mapped_column(String(16))
    input_shape: Mapped[list[int]] = mapped_column(JSON)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    base_config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The preset's (or the library's default) configuration as it was when the project took it (creation,
    or a PATCH of ``preset``), as ``tbal.config.config_to_dict`` writes it: ``settings`` apply on top of it,
    so a later tbal release does not change a running project. NULL in projects created before migration
    0008, which resolve their preset as the installed library defines it."""
    followed: Mapped[list[str] | None] = mapped_column(JSON)
    """The names of the ``settings`` the service chose rather than the user (``app.projects.config``,
    ``FOLLOWING``): they follow what they followed when the user changes it. NULL in projects created
    before migration 0011, whose followed counts are told by their values."""
    seed: Mapped[int] = mapped_column(IdType, default=0)
    sets_drawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint(_in("data_kind", DATA_KINDS), name="data_kind"),)


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    role: Mapped[str] = mapped_column(String(16), default="pool")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        CheckConstraint(_in("role", ITEM_ROLES), name="role"),
        Index("ix_items_project_id_role_id", "project_id", "role", "id"),
    )


class ItemText(Base):
    """The text of an item of a text project (what humans and Label Studio see), beside its features in
    ``items.data``. Keyed by the item's (project, external id), so it is written in the same transaction
    as the item, before the item's id is known; only the project's cascade deletes it (items are only
    ever deleted with their project)."""

    __tablename__ = "item_texts"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class GroundTruth(Base):
    """True labels given at ingestion: used only by simulations and audits, never by a round."""

    __tablename__ = "ground_truth"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[int] = mapped_column(Integer)


class HumanLabel(Base):
    __tablename__ = "human_labels"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), unique=True)
    label: Mapped[int] = mapped_column(Integer)
    distribution: Mapped[list[float] | None] = mapped_column(JSON)
    votes: Mapped[dict[str, int] | None] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(32), default="api")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_human_labels_project_id_id", "project_id", "id"),)


class Claimed:
    """Columns of background work claimed by one runner at a time (rounds, ingest jobs): how many times it
    was started, and when it was created, started, last heard of (the heartbeat) and finished."""

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Round(Claimed, Base):
    __tablename__ = "rounds"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    stage: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    n_queries: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    model_version: Mapped[str | None] = mapped_column(String(128))
    artifact_path: Mapped[str | None] = mapped_column(String(1024))
    error: Mapped[str | None] = mapped_column(Text)
    claim_token: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        UniqueConstraint("project_id", "index"),
        CheckConstraint(_in("status", ROUND_STATUSES), name="status"),
        # At most one queued or running round per project, whatever number of API processes.
        Index(
            "uq_rounds_project_id_active",
            "project_id",
            unique=True,
            sqlite_where=text(_in("status", ACTIVE_ROUND_STATUSES)),
            postgresql_where=text(_in("status", ACTIVE_ROUND_STATUSES)),
        ),
    )


class AutoLabel(Base):
    __tablename__ = "auto_labels"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # No foreign keys to items and rounds (migration 0004): their checks ran a query per row, and the one
    # on items locked every item row; a 1M-row COPY into this table took 19.5 s of PostgreSQL CPU with
    # them and 8.7 s without (same run, BENCHMARKS.md "Scale"). Items and rounds are only ever deleted
    # with their project, whose cascade (project_id, above) removes these rows.
    item_id: Mapped[int] = mapped_column(IdType)
    round_id: Mapped[int] = mapped_column(IdType)
    label: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("project_id", "item_id"),
        Index("ix_auto_labels_project_id_id", "project_id", "id"),
        Index("ix_auto_labels_round_id_id", "round_id", "id"),
        Index("ix_auto_labels_project_id_label_id", "project_id", "label", "id"),
    )


class LabelQuery(Base):
    """An item the service asked humans to label (the queue is the unanswered ones)."""

    __tablename__ = "queries"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), unique=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id", ondelete="SET NULL"))
    purpose: Mapped[str] = mapped_column(String(16))
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint(_in("purpose", QUERY_PURPOSES), name="purpose"),
        Index("ix_queries_project_id_answered_id", "project_id", "answered", "id"),
    )


class ProjectStratum(Base):
    """The stratum a round of the project fixed (``loop.targeted_validation``; :mod:`tbal.plan`, "The
    stratum"), at most one per project, written with its members (:class:`StratumItem`) in that round's
    transaction. This row, not the members, says that it was fixed: a stratum may have no member (nothing
    of the pool was left after the round), and the rounds after it still certify inside it only."""

    __tablename__ = "strata"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"))
    cut: Mapped[float | None] = mapped_column(Float)
    """The classifier's probability of its class at and above which an item is in it; NULL: +inf (empty)."""
    targeted: Mapped[int] = mapped_column(Integer)
    """Validation items the round drew inside it (paid from ``validation_size``, not ``label_budget``)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StratumItem(Base):
    """An item in its project's stratum: a pool or validation item of the round that fixed it whose
    classifier's probability reached the cut; ``targeted``: drawn inside it as a validation item. Items
    uploaded later have no row: they are outside it. No foreign key to items (as ``auto_labels``, migration
    0004: a stratum's rows are written in one bulk insert); items are only deleted with their project,
    whose cascade (through ``strata``) removes these rows."""

    __tablename__ = "stratum_items"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("strata.project_id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(IdType, primary_key=True)
    targeted: Mapped[bool] = mapped_column(Boolean)


class ApiKey(Base):
    """An API key: only the sha256 of the secret is stored, and a short prefix to recognise it.
    An admin key uses every project and manages keys; any other key uses only its ``api_key_projects``."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiKeyProject(Base):
    """A project that a non-admin key may use (read and write)."""

    __tablename__ = "api_key_projects"

    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (Index("ix_api_key_projects_project_id", "project_id"),)


class LabelStudioConnection(Base):
    """A project's Label Studio ML-backend connection: the sha256 of the secret in its URL, where a task's
    data are read from, and the Choices control last seen in Label Studio's ``/setup``."""

    __tablename__ = "label_studio_connections"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    secret_prefix: Mapped[str] = mapped_column(String(16))
    data_field: Mapped[str] = mapped_column(String(64))
    id_field: Mapped[str] = mapped_column(String(64))
    from_name: Mapped[str | None] = mapped_column(String(255))
    to_name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # Two-way sync (migration 0005): Label Studio's URL, its project, and an access token (encrypted).
    ls_url: Mapped[str | None] = mapped_column(String(2048))
    ls_project: Mapped[int | None] = mapped_column(IdType)
    ls_token: Mapped[str | None] = mapped_column(Text)
    auto_labels_as: Mapped[str] = mapped_column(
        String(16), default="predictions", server_default="predictions"
    )
    data_key: Mapped[str | None] = mapped_column(String(64))
    """The task data key of the labeled object (``value="$text"`` -> ``text``), read at ``/setup``."""
    object_tag: Mapped[str | None] = mapped_column(String(32))
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LabelStudioTask(Base):
    """An item's task in the connected Label Studio project (pushed by tbal or found there), the purpose
    written into its data, and the round whose auto-label was written back to it."""

    __tablename__ = "label_studio_tasks"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(IdType)
    purpose: Mapped[str | None] = mapped_column(String(16))
    auto_label_round: Mapped[int | None] = mapped_column(IdType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("project_id", "item_id"),
        UniqueConstraint("project_id", "task_id"),
    )


class LabelStudioEvent(Base):
    """What went wrong between Label Studio and tbal (a refused call, a skipped task, a failed sync): the
    connection's status shows the latest ones."""

    __tablename__ = "label_studio_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_label_studio_events_project_id_id", "project_id", "id"),)


class LabelStudioAnnotation(Base):
    """One Label Studio annotation of an item: its annotator and class (None: cancelled, or no usable
    choice). An item's human label is the aggregate of its annotations (webhooks and imported exports)."""

    __tablename__ = "label_studio_annotations"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    annotation_id: Mapped[int] = mapped_column(IdType)
    task_id: Mapped[int] = mapped_column(IdType)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator: Mapped[str] = mapped_column(String(255))
    label: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("project_id", "annotation_id"),
        Index("ix_label_studio_annotations_item_id_annotation_id", "item_id", "annotation_id"),
    )


JOB_KINDS = ("texts", "images")
JOB_STATUSES = ("queued", "running", "succeeded", "failed")
ACTIVE_JOB_STATUSES = ("queued", "running")


class IngestJob(Claimed, Base):
    """A large upload of raw items (texts, image files) whose encoding / decoding runs as background work
    (:mod:`app.items.jobs_run`). ``done`` counts the items handled so far (stored, skipped as known, or
    refused); ``errors`` keeps the first refused items (``{"index", "item", "reason"}``), ``n_errors`` all
    of them."""

    __tablename__ = "ingest_jobs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    ground_truth_added: Mapped[int] = mapped_column(Integer, default=0)
    n_errors: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(_in("kind", JOB_KINDS), name="kind"),
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        Index("ix_ingest_jobs_project_id_id", "project_id", "id"),
    )


class IngestJobChunk(Base):
    """Consecutive raw items of a job (``seq``: the first one's place in the upload; ``n`` of them,
    serialised together in ``data``: :mod:`app.items.jobs_chunks`), stored durably when the upload is accepted
    and deleted in the transaction that stores its items (or records why they were refused): what is
    left is what the job still has to do."""

    __tablename__ = "ingest_job_chunks"

    job_id: Mapped[int] = mapped_column(ForeignKey("ingest_jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
