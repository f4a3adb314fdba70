"""The service's settings: one validated object read from ``TBAL_*`` environment variables.

The library (``tbal/``) never reads the environment; the service turns these settings and each project's
settings into the library's :class:`~tbal.config.TBALConfig` (see :mod:`app.projects.config`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; ``TBAL_DATABASE_URL=... tbal serve`` and so on."""

    model_config = SettingsConfigDict(env_prefix="TBAL_", extra="ignore")

    database_url: str = "sqlite:///./var/tbal.sqlite"
    broker_url: str | None = None
    """Celery broker (``redis://...``); None runs rounds in the API process (the embedded default)."""
    result_backend: str | None = None
    artifacts_dir: Path = Path("./var/artifacts")

    round_queue: Literal["default", "gpu"] = "gpu"
    """Celery queue that rounds go to (training is the heavy part; ``gpu`` workers use CUDA when present)."""
    train_device: str = "auto"
    """The library's ``train.device``: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``..."""
    torch_threads: int | None = Field(default=None, ge=1)
    in_process_workers: int = Field(default=1, ge=1, le=8)

    max_request_bytes: int = Field(default=2 * 1024**3, ge=1024)
    """Largest request body (binary uploads); larger ones get 413 before they are read whole."""
    max_json_bytes: int = Field(default=64 * 1024**2, ge=1024)
    """Largest JSON body (JSON batches are parsed in memory: use the binary upload for big batches)."""
    max_inflated_bytes: int = Field(default=1024**3, ge=1024)
    """Most bytes the compressed members of one uploaded .npz may inflate to (they are read into memory;
    uncompressed .npz members and .npy files are memory-mapped and bounded by max_request_bytes)."""
    max_batch_items: int = Field(default=10_000, ge=1, le=100_000)  # le: app.text.MAX_BATCH
    """Most items (or labels) in one JSON request."""
    ingest_chunk_rows: int = Field(default=5_000, ge=1)
    sync_ingest_max_items: int = Field(default=2_000, ge=0)
    """Raw uploads (texts, image files) of at most this many items are encoded in the request and answer
    200 with what was stored; larger ones answer 202 with an ingest job once their raw data are stored,
    and are encoded in the background (``?background=true|false`` decides per request)."""
    ingest_job_batch: int = Field(default=512, ge=1, le=100_000)
    """Items in an ingest job's first batch, encoded and stored in one transaction (its progress moves
    batch by batch); a cheap encoder's batches grow from there (``app.items.jobs_run.BatchSize``)."""
    ingest_processes: int | None = Field(default=None, ge=0, le=64)
    """Worker processes that decode an ingest job's image files and run its cheap text encoder
    (``hashing``), so that the job's own thread only reads, checks and writes: one pool per process that
    runs jobs, started on first use and kept (``app.items.processes``). None: min(CPUs, 4); 0 or 1: on
    the job's own encoding thread."""

    round_time_limit_s: float = Field(default=6 * 3600.0, gt=0)
    round_stale_after_s: float = Field(default=600.0, gt=0)
    """A running round whose heartbeat is older than this may be claimed again (its worker died)."""
    round_reap_after_s: float | None = Field(default=None, gt=0)
    """A running round without a heartbeat for this long is marked failed (its whole worker died, so no
    message will come to take it over). None: 3 × ``round_stale_after_s``, so that a redelivered message
    (which looks again ``round_stale_after_s`` + 5 s after it found the round running) takes it over
    first when its worker is still there."""
    progress_interval_s: float = Field(default=1.0, ge=0)

    upload_dir: Path | None = None
    """Where uploaded files wait while they are ingested (None: the system's temporary folder)."""

    db_pool_size: int = Field(default=10, ge=1)
    db_connect_timeout_s: int = Field(default=5, ge=1)
    db_pool_timeout_s: float = Field(default=10.0, gt=0)
    """Longest wait for a pooled connection before the request answers 503."""
    db_tcp_user_timeout_ms: int = Field(default=30_000, ge=0)
    """PostgreSQL: a connection whose sent data stay unacknowledged this long is dropped (a dead host
    or a cut network fails the request with 503 instead of hanging; 0 = the kernel's default)."""
    broker_timeout_s: float = Field(default=5.0, gt=0)
    """Connect and socket timeout towards the broker when the API enqueues a round (503 past it)."""
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)

    secret_key: SecretStr | None = None
    """Encrypts stored credentials (Label Studio access tokens): a Fernet key or any passphrase (hashed
    into one). None: a key file ``secret.key`` in ``artifacts_dir`` (created on first use, mode 0600; the
    API and the workers share that folder already)."""
    label_studio_sync_interval_s: float = Field(default=300.0, ge=0)
    """How often connected Label Studio projects are synced (queue pushed, missed annotations pulled,
    auto-labels written back); 0 = only at start-up and on demand."""
    label_studio_timeout_s: float = Field(default=30.0, gt=0)
    """Timeout of each call tbal makes to Label Studio."""
    label_studio_predict_budget_s: float = Field(default=20.0, gt=0)
    """Time ``/predict`` may spend creating items from raw task data (Label Studio waits
    ``ML_TIMEOUT_PREDICT``, 100 s by default); the rest are created in the background."""
    allow_private_urls: bool = False
    """Image uploads by URL (``POST /projects/{id}/items/images/urls``) may fetch private, loopback,
    link-local and other non-public addresses (off: a 422 naming the URL)."""
    url_fetch_timeout_s: float = Field(default=30.0, gt=0)
    """Timeout of each image fetched by URL."""
    encoder_model_dirs: list[Path] = Field(default_factory=list)
    """Folders whose model directories text projects may name as ``sentence-transformers:<dir>`` (JSON
    list in ``TBAL_ENCODER_MODEL_DIRS``); empty: only ``minilm`` and ``hashing``. A model directory names
    the Python classes that load it, so which ones the service opens is the operator's choice."""

    @property
    def reap_after_s(self) -> float:
        return self.round_reap_after_s or 3.0 * self.round_stale_after_s

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings from the environment (``create_app`` takes explicit ones in tests)."""
    return Settings()
