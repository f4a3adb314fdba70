"""A typed Python client of the tbal service, built on httpx; it imports nothing of the server.

::

    from tbal_client import TBALClient

    with TBALClient("http://127.0.0.1:8000", key="tbal_...") as tb:
        project = tb.create_project("digits", classes=[str(c) for c in range(10)],
                                    data_kind="features", input_shape=[64], settings={"epsilon": 0.05})
        tb.upload_items(project.id, X)                     # (n, d) array, sent in chunks, with retries
        for item in tb.iter_queue(project.id): ...          # what humans should label next
        tb.post_labels(project.id, {"17": 3, "42": "7"})    # external id -> class (index or name)
        done = tb.run_round(project.id, progress=True)      # start, then wait with a progress line
        for a in tb.iter_auto_labels(project.id): ...       # keyset pages under the hood
        tb.export(project.id, "labels.jsonl")               # human labels first, then auto-labels

Everything the service answers comes back as frozen dataclasses (``Project``, ``Round``, ``AutoLabel``...),
each keeping the full JSON in ``raw``. A non-2xx answer raises :class:`APIError` carrying the status and the
service's ``{"field", "reason"}``.

Retries (:class:`RetryPolicy`): requests that are safe to repeat (reads, uploads and labels, which the
service applies idempotently by external id) are retried on connection errors, timeouts and 429/500/502/
503/504, with exponential backoff and jitter (``Retry-After`` is honoured). Requests that are not
(creating a project, starting a round) are retried only when the service cannot have acted on them: the
connection was never made, or the answer was 429 or 503.

The types it sends and receives, and its errors, are in :mod:`tbal_client.types`. This module stays over
~400 lines on purpose: :class:`TBALClient` is one class with one short method per endpoint (about 40),
each a few lines around ``_request``; split across files they would only be harder to find.
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import httpx
import numpy as np

from tbal_client.text_files import read_text_records
from tbal_client.types import (
    APIError,
    AutoLabel,
    ClassRef,
    HumanLabel,
    IngestResult,
    Label,
    LabelsInput,
    LabelsResult,
    Prediction,
    PredictResult,
    Project,
    QueueCounts,
    QueueItem,
    Round,
    RoundFailed,
    ServiceUnreachable,
    SimulateResult,
    WaitTimeout,
    _class_ref,
)

if TYPE_CHECKING:
    from tbal_client.jobs import Job

API_PREFIX = "/api/v1"
EXPORT_FORMATS = ("jsonl", "csv", "manifest")
ExportFormat = Literal["jsonl", "csv", "manifest"]

DEFAULT_CHUNK_BYTES = 32 * 1024**2
"""Upload chunks are sized to about this many bytes of item data."""
DEFAULT_LABEL_BATCH = 5_000
"""Labels per request (the service takes at most ``TBAL_MAX_BATCH_ITEMS``, 10,000 by default)."""
DEFAULT_PAGE_SIZE = 1_000
DEFAULT_TEXT_CHUNK = 2_000
"""Texts per upload request (each is encoded by the service before it answers)."""
DEFAULT_IMAGE_CHUNK = 256
"""Image files per multipart request."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_PAGE_SIZE = 10_000


# ---------------------------------------------------------------------------------------------------
# Retries


@dataclass(frozen=True)
class RetryPolicy:
    """How requests are retried.

    ``attempts``: tries in all (1 = no retry). The wait before retry r (r = 1, 2, ...) is
    ``min(max_backoff_s, backoff_s · 2^(r−1))`` times a factor drawn uniformly from [1 − jitter, 1 + jitter],
    or the server's ``Retry-After`` (seconds) when it sends one, capped at ``max_backoff_s``.
    """

    attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    jitter: float = 0.25
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    unsafe_retry_statuses: frozenset[int] = frozenset({429, 503})
    """Statuses on which a request that is not safe to repeat is still retried (nothing was done)."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be ≥ 1, got {self.attempts}")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError(f"backoff times must be ≥ 0, got {self.backoff_s} and {self.max_backoff_s}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def wait_s(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        if retry_after is not None:
            return min(self.max_backoff_s, max(0.0, retry_after))
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (retry - 1))
        return base * rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)


NO_RETRY = RetryPolicy(attempts=1)


# ---------------------------------------------------------------------------------------------------
# Progress line


class ProgressLine:
    """Writes a round's stage and progress to ``stream`` (stderr by default): one line rewritten in place
    on a terminal, a new line per change of stage elsewhere (logs stay short). No dependency."""

    WIDTH = 24

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last: tuple[Any, ...] | None = None
        self._started = time.monotonic()

    def __call__(self, round_: Round) -> None:
        key: tuple[Any, ...] = (round_.id, round_.status, round_.stage)
        if self._tty:
            key += (round(round_.progress, 2),)
        if key == self._last:
            return
        self._last = key
        filled = round(self.WIDTH * min(max(round_.progress, 0.0), 1.0))
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        elapsed = time.monotonic() - self._started
        text = (
            f"round {round_.index}: {round_.status:<9} {round_.stage or '-':<10} [{bar}] "
            f"{100 * round_.progress:5.1f}%  {elapsed:5.0f} s"
        )
        if self._tty:
            end = "\n" if round_.is_final else ""
            self._stream.write(f"\r{text}{end}")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()


# ---------------------------------------------------------------------------------------------------
# The client


class TBALClient:
    """The service's HTTP API as methods. ``url``: where ``tbal serve`` listens; ``key``: an API key from
    ``tbal create-key`` (sent as ``Authorization: Bearer``). ``http``: an existing ``httpx.Client`` to use
    instead (its base URL, headers and timeouts are kept; e.g. FastAPI's TestClient); ``transport``: an httpx
    transport for the client made here (tests). ``sleep`` and ``rng`` drive the retry waits."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        key: str | None = None,
        *,
        timeout_s: float = 60.0,
        upload_timeout_s: float = 600.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if timeout_s <= 0 or upload_timeout_s <= 0:
            raise ValueError(f"timeouts must be positive, got {timeout_s} and {upload_timeout_s}")
        self.retry = retry if retry is not None else RetryPolicy()
        self.upload_timeout_s = upload_timeout_s
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._auth = {"Authorization": f"Bearer {key}"} if key else {}
        if http is not None:
            self._http, self._owned = http, False
        else:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
            self._http = httpx.Client(base_url=url, timeout=timeout_s, transport=transport)
            self._owned = True

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> TBALClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the service ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /health`` (no key needed): ``{"status": "ok", "database": "ok", "broker": "ok" | "none",
        "dispatcher": ...}``; a 503 (:class:`APIError`, ``field`` database or broker) when one is down."""
        return dict(self._json("GET", "/health"))

    # -- projects ---------------------------------------------------------------------------------

    def create_project(
        self,
        name: str,
        *,
        classes: Sequence[str],
        data_kind: Literal["features", "image", "text"],
        input_shape: Sequence[int] = (),
        settings: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> Project:
        """A new project. ``input_shape``: [d] for feature vectors, [H, W] or [H, W, C] for uint8 images,
        nothing for text (the encoder's size: word pieces for the default ``text-finetune``, 384 for
        ``settings={"encoder": "minilm"}``, the frozen sentence embedding); ``settings``: ε, δ, model,
        budgets... (see the API's ProjectSettings; unset ones from the preset, which is the data kind's
        when ``settings`` names none: ``text-finetune`` for texts, ``text-paper`` where they choose a
        feature encoder, another model or a label budget under 1,000; ``mnist-paper`` for images;
        ``vectors`` for feature vectors; ``{"preset": None}`` for the library's defaults)."""
        body = {
            "name": name,
            "classes": [str(c) for c in classes],
            "data_kind": data_kind,
            "input_shape": [int(s) for s in input_shape],
            "settings": dict(settings or {}),
            "seed": int(seed),
        }
        data = self._json("POST", f"{API_PREFIX}/projects", json=body, expected=201, idempotent=False)
        return Project.from_json(data)

    def list_projects(self) -> list[Project]:
        return [Project.from_json(p) for p in self.paginate(f"{API_PREFIX}/projects", items_key=None)]

    def get_project(self, project_id: int) -> Project:
        """The project with its counts (items, pool, labels, open queries, budget used, rounds)."""
        return Project.from_json(self._json("GET", f"{API_PREFIX}/projects/{int(project_id)}"))

    def find_project(self, name: str) -> Project | None:
        return next((p for p in self.list_projects() if p.name == name), None)

    def update_settings(self, project_id: int, settings: Mapping[str, Any]) -> Project:
        """Replace the given settings one by one (409 while a round is queued or running)."""
        data = self._json(
            "PATCH", f"{API_PREFIX}/projects/{int(project_id)}", json={"settings": dict(settings)}
        )
        return Project.from_json(data)

    def delete_project(self, project_id: int) -> None:
        self._request("DELETE", f"{API_PREFIX}/projects/{int(project_id)}", expected=(204,))

    # -- items ------------------------------------------------------------------------------------

    def upload_items(
        self,
        project_id: int,
        X: np.ndarray,
        *,
        external_ids: Sequence[str] | np.ndarray | None = None,
        ground_truth: Sequence[int] | np.ndarray | None = None,
        id_prefix: str = "",
        chunk_rows: int | None = None,
        on_chunk: Callable[[int, int], None] | None = None,
    ) -> IngestResult:
        """Upload items as ``.npz`` chunks (binary, never JSON lists of floats), each retried on its own.

        ``X``: (n, d) feature vectors (sent as float32) or (n, H, W[, C]) uint8 images. ``external_ids``:
        (n,) strings naming the items (default ``<id_prefix><row>``, as the service names rows of one
        file). ``ground_truth``: (n,) class indices, −1 for unknown (for simulations and audits only: a
        round never reads it). ``chunk_rows``: rows per request (default: about 32 MiB of data).
        ``on_chunk(rows_done, rows_total)`` is called after each chunk. Re-sending rows adds nothing twice
        (idempotent on external id); the returned counts are summed over the chunks.
        """
        X = _check_items(X)
        n = X.shape[0]
        ids = _external_ids(external_ids, n, id_prefix)
        truth = _ground_truth(ground_truth, n)
        if chunk_rows is None:
            row_bytes = max(1, int(np.prod(X.shape[1:], dtype=np.int64)) * X.dtype.itemsize)
            chunk_rows = max(1, DEFAULT_CHUNK_BYTES // row_bytes)
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be ≥ 1, got {chunk_rows}")
        total = IngestResult(0, 0, 0, 0)
        path = f"{API_PREFIX}/projects/{int(project_id)}/items/upload"
        extra: dict[str, Any] = {"timeout": self.upload_timeout_s} if self._owned else {}
        for start in range(0, n, chunk_rows):
            stop = min(n, start + chunk_rows)
            buffer = io.BytesIO()
            arrays: dict[str, np.ndarray] = {"X": X[start:stop], "external_ids": ids[start:stop]}
            if truth is not None:
                arrays["y"] = truth[start:stop]
            np.savez(buffer, **arrays)  # type: ignore[arg-type]
            data = self._json(
                "POST",
                path,
                content=buffer.getvalue(),
                headers={"Content-Type": "application/octet-stream"},
                **extra,
            )
            total = total + IngestResult.from_json(data)
            if on_chunk is not None:
                on_chunk(stop, n)
        return total

    def iter_items(
        self, project_id: int, *, role: str | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """Items in id order (external id, role, whether each has a human / an auto-label)."""
        params = {"role": role} if role else {}
        yield from self.paginate(
            f"{API_PREFIX}/projects/{int(project_id)}/items", params, page_size=page_size
        )

    def upload_texts(
        self,
        project_id: int,
        texts: Sequence[str],
        *,
        external_ids: Sequence[str] | None = None,
        ground_truth: Sequence[ClassRef | None] | None = None,
        id_prefix: str = "",
        chunk_rows: int = DEFAULT_TEXT_CHUNK,
        on_chunk: Callable[[int, int], None] | None = None,
    ) -> IngestResult:
        """Upload texts to a text project as JSON Lines chunks (each retried on its own); the service
        encodes them with the project's encoder. ``external_ids`` default to ``<id_prefix><row>``;
        ``ground_truth``: class names or indices (None: unknown), for simulations and audits only.
        Re-sending adds nothing twice (idempotent on external id)."""
        n = len(texts)
        ids = (
            [str(e) for e in external_ids]
            if external_ids is not None
            else [f"{id_prefix}{i}" for i in range(n)]
        )
        if len(ids) != n or (ground_truth is not None and len(ground_truth) != n):
            raise ValueError(f"expected {n} external ids and ground-truth values, like the texts")
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be ≥ 1, got {chunk_rows}")
        total = IngestResult(0, 0, 0, 0)
        path = f"{API_PREFIX}/projects/{int(project_id)}/items/texts/upload"
        params = {"format": "jsonl", "id_column": "id", "text_column": "text"}
        if ground_truth is not None:
            params["label_column"] = "label"
        extra: dict[str, Any] = {"timeout": self.upload_timeout_s} if self._owned else {}
        for start in range(0, n, chunk_rows):
            stop = min(n, start + chunk_rows)
            rows = []
            for i in range(start, stop):
                row: dict[str, Any] = {"id": ids[i], "text": texts[i]}
                if ground_truth is not None:
                    row["label"] = ground_truth[i]
                rows.append(json.dumps(row, ensure_ascii=False))
            data = self._ingested(
                project_id,
                path,
                params=params,
                content="\n".join(rows).encode("utf-8"),
                headers={"Content-Type": "application/octet-stream"},
                **extra,
            )
            total = total + IngestResult.from_json(data)
            if on_chunk is not None:
                on_chunk(stop, n)
        return total

    def upload_text_file(
        self,
        project_id: int,
        path: str | Path,
        *,
        text_column: str = "text",
        id_column: str | None = None,
        label_column: str | None = None,
        format: Literal["json", "jsonl", "csv"] | None = None,
        id_prefix: str = "",
        chunk_rows: int = DEFAULT_TEXT_CHUNK,
        on_chunk: Callable[[int, int], None] | None = None,
    ) -> IngestResult:
        """A CSV (with a header), JSONL or JSON-list file of texts, read here (UTF-8, checked row by row:
        a bad row raises :class:`~tbal_client.text_files.TextFileError` naming it before anything is sent)
        and uploaded with :meth:`upload_texts`. Without ``id_column`` rows get ``<id_prefix><row>``, as
        the service names them."""
        fmt = format or {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}.get(
            Path(path).suffix.lower()
        )
        records = read_text_records(
            Path(path).read_bytes(),
            fmt=fmt,
            text_column=text_column,
            id_column=id_column,
            label_column=label_column,
        )
        return self.upload_texts(
            project_id,
            records.texts,
            external_ids=records.ids,
            ground_truth=records.labels,
            id_prefix=id_prefix,
            chunk_rows=chunk_rows,
            on_chunk=on_chunk,
        )

    def upload_images(
        self,
        project_id: int,
        files: Sequence[str | Path],
        *,
        root: str | Path | None = None,
        id_prefix: str = "",
        labels_from_folders: bool = False,
        chunk_files: int = DEFAULT_IMAGE_CHUNK,
        on_chunk: Callable[[int, int], None] | None = None,
    ) -> IngestResult:
        """Upload PNG/JPEG/WebP/BMP files (or zip/tar archives of them) to an image project, as multipart
        requests of ``chunk_files`` files, each retried on its own. Each item's id is
        ``<id_prefix><path relative to root>`` (default root: the files' common folder), so
        ``labels_from_folders`` can read the class from the folder (``cat/001.png``). The service decodes
        and resizes each image to the project's input shape."""
        paths = [Path(f) for f in files]
        if not paths:
            raise ValueError("no image files to upload")
        if chunk_files < 1:
            raise ValueError(f"chunk_files must be ≥ 1, got {chunk_files}")
        base = Path(root) if root is not None else Path(os.path.commonpath([p.parent for p in paths]))
        names = [p.relative_to(base).as_posix() if p.is_relative_to(base) else p.name for p in paths]
        total = IngestResult(0, 0, 0, 0)
        path = f"{API_PREFIX}/projects/{int(project_id)}/items/images"
        params = {"id_prefix": id_prefix, "labels_from_folders": str(labels_from_folders).lower()}
        extra: dict[str, Any] = {"timeout": self.upload_timeout_s} if self._owned else {}
        for start in range(0, len(paths), chunk_files):
            stop = min(len(paths), start + chunk_files)
            parts = [
                ("files", (names[i], paths[i].read_bytes(), "application/octet-stream"))
                for i in range(start, stop)
            ]
            data = self._ingested(project_id, path, params=params, files=parts, **extra)
            total = total + IngestResult.from_json(data)
            if on_chunk is not None:
                on_chunk(stop, len(paths))
        return total

    # -- ingest jobs (tbal_client.jobs) -------------------------------------------------------------

    def get_job(self, project_id: int, job_id: int) -> Job:
        """An ingest job: a raw upload the service encodes in the background (status, done / total,
        what it stored, the items it refused)."""
        from tbal_client.jobs import Job

        return Job.from_json(self._json("GET", f"{API_PREFIX}/projects/{int(project_id)}/jobs/{int(job_id)}"))

    def wait_job(
        self,
        project_id: int,
        job_id: int,
        *,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        raise_on_errors: bool = True,
    ) -> Job:
        """Poll the job until it is final; raises :class:`~tbal_client.jobs.JobFailed` when it failed or
        refused items (unless ``raise_on_errors`` is False), :class:`WaitTimeout` after ``timeout_s``."""
        from tbal_client.jobs import wait

        return wait(
            self, project_id, job_id, poll_s=poll_s, timeout_s=timeout_s, raise_on_errors=raise_on_errors
        )

    def _ingested(self, project_id: int, path: str, **kwargs: Any) -> Any:
        """POST one upload chunk; its answer as a 200 says it, also when the service answered 202 with an
        ingest job (then once the job is done)."""
        response = self._request("POST", path, expected=(200, 202), **kwargs)
        if response.status_code == 200:
            return response.json()
        return self.wait_job(project_id, int(response.json()["id"])).ingest_fields()

    # -- the queue and human labels -----------------------------------------------------------------

    def queue_counts(self, project_id: int) -> QueueCounts:
        """Open queries by purpose (the upload of items drew the validation and seed sets)."""
        page = self._json("GET", f"{API_PREFIX}/projects/{int(project_id)}/queue", params={"limit": 1})
        return QueueCounts(int(page["open_validation"]), int(page["open_training"]))

    def iter_queue(
        self, project_id: int, *, include_data: bool = False, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[QueueItem]:
        """The items to label next, each with its purpose (validation or training)."""
        params = {"include_data": "true"} if include_data else {}
        for row in self.paginate(
            f"{API_PREFIX}/projects/{int(project_id)}/queue", params, page_size=page_size
        ):
            yield QueueItem.from_json(row)

    def post_labels(
        self,
        project_id: int,
        labels: LabelsInput,
        *,
        source: str = "api",
        batch_size: int = DEFAULT_LABEL_BATCH,
    ) -> LabelsResult:
        """Human labels: ``{external_id: class}``, :class:`Label` objects or API-shaped dicts. Sent in
        batches of ``batch_size``; each batch is applied whole or not at all (a re-sent batch updates the
        same labels, so retries are safe); the counts are summed over the batches."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if isinstance(labels, Mapping):
            bodies = [Label(external_id=str(k), label=v).to_json() for k, v in labels.items()]
        else:
            bodies = [lab.to_json() if isinstance(lab, Label) else dict(lab) for lab in labels]
        if not bodies:
            raise ValueError("expected at least one label, got none")
        total = LabelsResult(0, 0, 0, 0, 0, 0)
        path = f"{API_PREFIX}/projects/{int(project_id)}/labels"
        for start in range(0, len(bodies), batch_size):
            body = {"labels": bodies[start : start + batch_size], "source": source}
            total = total + LabelsResult.from_json(self._json("POST", path, json=body))
        return total

    def simulate(self, project_id: int) -> SimulateResult:
        """Answer every open query from the items' ground truth (demos and benchmarks; 422 when an item
        has none)."""
        return SimulateResult.from_json(
            self._json("POST", f"{API_PREFIX}/projects/{int(project_id)}/simulate")
        )

    def iter_human_labels(
        self, project_id: int, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[HumanLabel]:
        for row in self.paginate(f"{API_PREFIX}/projects/{int(project_id)}/labels", page_size=page_size):
            yield HumanLabel.from_json(row)

    # -- rounds -----------------------------------------------------------------------------------

    def start_round(self, project_id: int) -> Round:
        """Queue a round (202). 409 with ``field`` label_budget / pool / max_rounds when the project is
        done, validation_labels / training_labels when humans must label first, round when one runs."""
        data = self._json(
            "POST", f"{API_PREFIX}/projects/{int(project_id)}/rounds", expected=202, idempotent=False
        )
        return Round.from_json(data)

    def get_round(self, round_id: int) -> Round:
        return Round.from_json(self._json("GET", f"{API_PREFIX}/rounds/{int(round_id)}"))

    def list_rounds(self, project_id: int) -> list[Round]:
        return [Round.from_json(r) for r in self.paginate(f"{API_PREFIX}/projects/{int(project_id)}/rounds")]

    def wait_round(
        self,
        round_id: int,
        *,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        progress: bool | Callable[[Round], None] | None = False,
        raise_on_failure: bool = True,
    ) -> Round:
        """Poll the round until it is final. ``progress``: True for a progress line on stderr, or a
        callable given the round at each poll. Raises :class:`RoundFailed` (unless ``raise_on_failure``
        is False) and :class:`WaitTimeout` after ``timeout_s``."""
        if poll_s < 0:
            raise ValueError(f"poll_s must be ≥ 0, got {poll_s}")
        report: Callable[[Round], None] | None = ProgressLine() if progress is True else progress or None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            round_ = self.get_round(round_id)
            if report is not None:
                report(round_)
            if round_.is_final:
                if raise_on_failure and not round_.succeeded:
                    raise RoundFailed(round_)
                return round_
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(
                    f"round {round_.index} (id {round_id}) still {round_.status} "
                    f"({round_.stage}, {100 * round_.progress:.0f}%) after {timeout_s:.0f} s"
                )
            self._sleep(poll_s)

    def run_round(
        self,
        project_id: int,
        *,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        progress: bool | Callable[[Round], None] | None = False,
    ) -> Round:
        """Start a round and wait for it (see :meth:`wait_round`)."""
        started = self.start_round(project_id)
        return self.wait_round(started.id, poll_s=poll_s, timeout_s=timeout_s, progress=progress)

    # -- auto-labels, export, predictions ----------------------------------------------------------

    def iter_auto_labels(
        self,
        project_id: int,
        *,
        round_id: int | None = None,
        class_: ClassRef | None = None,
        min_confidence: float | None = None,
        max_confidence: float | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[AutoLabel]:
        """Every auto-label (optionally of one round, one class, a confidence range), in id order, read
        in keyset pages: memory holds one page, and rows written meanwhile are not skipped."""
        params: dict[str, Any] = {}
        if round_id is not None:
            params["round_id"] = int(round_id)
        if class_ is not None:
            params["class"] = str(_class_ref(class_))
        if min_confidence is not None:
            params["min_confidence"] = float(min_confidence)
        if max_confidence is not None:
            params["max_confidence"] = float(max_confidence)
        path = f"{API_PREFIX}/projects/{int(project_id)}/auto-labels"
        for row in self.paginate(path, params, page_size=page_size):
            yield AutoLabel.from_json(row)

    def export(
        self,
        project_id: int,
        dest: str | Path | IO[bytes],
        *,
        format: ExportFormat = "jsonl",
        job_name: str | None = None,
    ) -> int:
        """Stream the project's labels (human labels first, then auto-labels) as JSONL, CSV or a SageMaker
        Ground Truth style manifest into ``dest`` (a path, written atomically, or a binary file). Returns
        the bytes written. A path is retried from the start on a transient error; a file object is not
        (bytes may already be in it)."""
        if format not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {format!r}; valid: {', '.join(EXPORT_FORMATS)}")
        params = {"format": format, **({"job_name": job_name} if job_name else {})}
        path = f"{API_PREFIX}/projects/{int(project_id)}/export"
        if not isinstance(dest, (str, Path)):
            return self._stream_to(path, params, dest, attempts=1)
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                written = self._stream_to(path, params, out, attempts=self.retry.attempts)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return written

    def predict(self, project_id: int, X: np.ndarray, *, batch_size: int = 1_000) -> PredictResult:
        """Class, confidence and whether each row of ``X`` clears its class's threshold, by the latest
        model version (409 before the first round)."""
        X = _check_items(X)
        kind = "image" if X.dtype == np.uint8 and X.ndim >= 3 else "features"
        predictions: list[Prediction] = []
        version, round_id = "", 0
        path = f"{API_PREFIX}/projects/{int(project_id)}/predict"
        for start in range(0, X.shape[0], batch_size):
            items = [{kind: row.tolist()} for row in X[start : start + batch_size]]
            data = self._json("POST", path, json={"items": items})
            version, round_id = str(data["model_version"]), int(data["round_id"])
            predictions += [
                Prediction(
                    int(p["label"]), str(p["class_name"]), float(p["confidence"]), bool(p["clears_threshold"])
                )
                for p in data["predictions"]
            ]
        return PredictResult(model_version=version, round_id=round_id, predictions=predictions)

    def predict_texts(self, project_id: int, texts: Sequence[str], *, batch_size: int = 500) -> PredictResult:
        """:meth:`predict` for a text project's raw texts (encoded by the service; nothing stored)."""
        path = f"{API_PREFIX}/projects/{int(project_id)}/predict/texts"
        parts = [
            self._json("POST", path, json={"texts": list(texts[start : start + batch_size])})
            for start in range(0, len(texts), batch_size)
        ]
        return _predict_result(parts)

    def predict_images(
        self, project_id: int, files: Sequence[str | Path], *, batch_size: int = 100
    ) -> PredictResult:
        """:meth:`predict` for image files (decoded, and run through the project's backbone when it has
        one, by the service; nothing stored), in the order given."""
        path = f"{API_PREFIX}/projects/{int(project_id)}/predict/images"
        paths = [Path(f) for f in files]
        parts = []
        for start in range(0, len(paths), batch_size):
            chunk = [
                ("files", (p.name, p.read_bytes(), "application/octet-stream"))
                for p in paths[start : start + batch_size]
            ]
            parts.append(self._json("POST", path, files=chunk))
        return _predict_result(parts)

    def round_evaluation(self, round_id: int) -> dict[str, Any]:
        """The round's classifier on its validation set: accuracy, ECE, NLL, cross-entropy vs humans."""
        return dict(self._json("GET", f"{API_PREFIX}/rounds/{int(round_id)}/evaluation"))

    def iter_label_review(
        self, project_id: int, *, round_id: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """Human training labels that are probably wrong, lowest AUM first (of the latest finished round,
        or ``round_id``): rank, item_id, external_id, label, round_label, predicted, aum."""
        params = {} if round_id is None else {"round_id": int(round_id)}
        path = f"{API_PREFIX}/projects/{int(project_id)}/label-review"
        return self.paginate(path, params, page_size=page_size, cursor="after_rank")

    def summary(self, project_id: int) -> dict[str, Any]:
        """The dashboard's numbers for one project (aggregated by the service; see ``/dashboard``)."""
        return dict(self._json("GET", f"{API_PREFIX}/projects/{int(project_id)}/summary"))

    # -- HTTP -------------------------------------------------------------------------------------

    def paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        items_key: str | None = "items",
        cursor: str = "after_id",
    ) -> Iterator[dict[str, Any]]:
        """Every row of a keyset-paginated listing (``after_id`` / ``limit``; the next ``after_id`` is the
        page's ``next_after_id``, or the last row's ``id`` when the listing is a bare list). ``cursor``
        names another key pair (``after_rank`` / ``next_after_rank`` for the label review)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be in 1..{MAX_PAGE_SIZE}, got {page_size}")
        after_id = 0
        while True:
            query = {**(params or {}), cursor: after_id, "limit": page_size}
            page = self._json("GET", path, params=query)
            rows = page if items_key is None else page[items_key]
            yield from rows
            if items_key is None:
                if len(rows) < page_size:
                    return
                after_id = int(rows[-1]["id"])
            else:
                if page.get(f"next_{cursor}") is None:
                    return
                after_id = int(page[f"next_{cursor}"])

    def _json(
        self,
        method: str,
        path: str,
        *,
        expected: int = 200,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> Any:
        return self._request(method, path, expected=(expected,), idempotent=idempotent, **kwargs).json()

    def _request(
        self,
        method: str,
        path: str,
        *,
        expected: tuple[int, ...] = (200,),
        idempotent: bool = True,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries (see the module docstring); raise :class:`APIError` on an unexpected status."""
        merged = {**self._auth, **(headers or {})}
        policy = self.retry
        for attempt in range(1, policy.attempts + 1):
            last = attempt == policy.attempts
            try:
                response = self._http.request(method, path, headers=merged, **kwargs)
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if last or not (idempotent or never_sent):
                    raise ServiceUnreachable(
                        f"{method} {path}: {type(exc).__name__}: {exc or 'no answer'} "
                        f"(after {attempt} attempt{'s' if attempt > 1 else ''}) at {self.base_url}"
                    ) from exc
                self._sleep(policy.wait_s(attempt, self._rng))
                continue
            if response.status_code in expected:
                return response
            retryable = policy.retry_statuses if idempotent else policy.unsafe_retry_statuses
            if last or response.status_code not in retryable:
                raise _api_error(method, path, response)
            self._sleep(policy.wait_s(attempt, self._rng, _retry_after(response)))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _stream_to(self, path: str, params: Mapping[str, Any], out: IO[bytes], *, attempts: int) -> int:
        for attempt in range(1, attempts + 1):
            written = 0
            if attempt > 1 and hasattr(out, "seek"):
                out.seek(0)
                out.truncate()
            try:
                with self._http.stream("GET", path, params=dict(params), headers=self._auth) as response:
                    if response.status_code != 200:
                        response.read()
                        if attempt < attempts and response.status_code in self.retry.retry_statuses:
                            self._sleep(self.retry.wait_s(attempt, self._rng, _retry_after(response)))
                            continue
                        raise _api_error("GET", path, response)
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        written += len(chunk)
                return written
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise ServiceUnreachable(f"GET {path}: {type(exc).__name__}: {exc}") from exc
                self._sleep(self.retry.wait_s(attempt, self._rng))
        raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------------
# Helpers


def _predict_result(parts: Sequence[Mapping[str, Any]]) -> PredictResult:
    """The answers of consecutive ``/predict*`` requests as one result."""
    predictions = [
        Prediction(int(p["label"]), str(p["class_name"]), float(p["confidence"]), bool(p["clears_threshold"]))
        for data in parts
        for p in data["predictions"]
    ]
    if not parts:
        return PredictResult(model_version="", round_id=0, predictions=[])
    last = parts[-1]
    return PredictResult(
        model_version=str(last["model_version"]), round_id=int(last["round_id"]), predictions=predictions
    )


def _api_error(method: str, path: str, response: httpx.Response) -> APIError:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:2000]
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict) and "reason" in detail:
        field_, reason = str(detail.get("field", "request")), str(detail["reason"])
    else:
        field_, reason = "response", str(detail if detail is not None else body)[:500]
    return APIError(method, path, response.status_code, field_, reason, body)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def _check_items(X: np.ndarray) -> np.ndarray:
    """(n, d) float32 features or (n, H, W[, C]) uint8 images; other float/int dtypes become float32."""
    arr = np.asarray(X)
    if arr.ndim < 2:
        raise ValueError(f"expected items of shape (n, d) or (n, H, W[, C]), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("expected at least one item, got 0 rows")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"expected numeric items (float features or uint8 images), got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError("expected finite values, got NaN or infinity in the items")
    return arr


def _external_ids(ids: Sequence[str] | np.ndarray | None, n: int, prefix: str) -> np.ndarray:
    if ids is None:
        return np.asarray([f"{prefix}{i}" for i in range(n)])
    arr = np.asarray([str(s) for s in ids])
    if arr.shape != (n,):
        raise ValueError(f"expected {n} external ids (one per row of X), got {arr.shape[0]}")
    if len(set(arr.tolist())) != n:
        raise ValueError("expected distinct external ids, got duplicates")
    return arr


def _ground_truth(y: Sequence[int] | np.ndarray | None, n: int) -> np.ndarray | None:
    if y is None:
        return None
    arr = np.asarray(y)
    if arr.shape != (n,) or arr.dtype.kind not in "iu":
        raise ValueError(
            f"expected ground_truth of shape ({n},) with class indices, got {arr.dtype} {arr.shape}"
        )
    return arr.astype(np.int64)


def find_images(root: str | Path, patterns: Sequence[str] = ("**/*",)) -> list[Path]:
    """Image files (PNG/JPEG/WebP/BMP by suffix, or zip/tar archives) under ``root`` matching any of the
    glob ``patterns`` (relative to ``root``, e.g. ``*.png`` or ``cats/**/*.jpg``), sorted, hidden ones
    skipped. ``root`` may itself be a file."""
    base = Path(root)
    if base.is_file():
        return [base]
    if not base.is_dir():
        raise FileNotFoundError(f"no such folder: {base}")
    archives = (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz")
    found: set[Path] = set()
    for pattern in patterns:
        for path in base.glob(pattern):
            rel = path.relative_to(base)
            if not path.is_file() or any(part.startswith(".") for part in rel.parts):
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES + archives:
                found.add(path)
    return sorted(found)
