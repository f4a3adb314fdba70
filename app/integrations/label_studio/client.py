"""tbal's calls to Label Studio's REST API (1.23): list, import and update tasks, export annotations, write
predictions and annotations, fetch files that Label Studio hosts.

Authentication as the official SDK does it (``label_studio_sdk`` ``_build_headers``): a legacy token is
sent as ``Authorization: Token <token>``; a personal access token (a JWT refresh token) is exchanged once
at ``POST /api/token/refresh`` for an access token sent as ``Bearer`` (sent as is when the exchange is
refused). The token goes only to the connected Label Studio's own host. Every failure is a
:class:`LabelStudioUnreachable` or :class:`LabelStudioRefused` (424) naming the call and Label Studio's
answer, never the token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlparse

import httpx

from app.db.models import LabelStudioConnection
from app.errors import DomainError
from app.integrations.label_studio import credentials
from app.settings import Settings

PAGE_SIZE = 500
IMPORT_BATCH = 1_000
MAX_ERROR_CHARS = 300
MAX_FILE_BYTES = 64 * 1024**2


class LabelStudioUnreachable(DomainError):
    """Label Studio did not answer (down, wrong URL, timeout). 424 Failed Dependency: the call failed
    because of the service tbal depends on, not because of tbal (the service answers no 5xx for that)."""

    status = 424


class LabelStudioRefused(DomainError):
    """Label Studio answered with an error (wrong token: 401/403, unknown project: 404, ...)."""

    status = 424


def is_jwt(token: str) -> bool:
    parts = token.split(".")
    return len(parts) == 3 and all(parts)


class LabelStudioClient:
    """One Label Studio (``url``) as the user of ``token``. ``transport`` replaces the network (tests)."""

    def __init__(
        self, url: str, token: str, *, timeout: float, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/") + "/"
        self._token = token
        self._auth: str | None = None
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- requests ---------------------------------------------------------------------------------

    def _authorization(self) -> str:
        if self._auth is None:
            self._auth = f"Token {self._token}"
            if is_jwt(self._token):
                self._auth = f"Bearer {self._token}"
                response = self._send("POST", "api/token/refresh", json={"refresh": self._token}, auth=False)
                if response.status_code == 200 and isinstance(response.json().get("access"), str):
                    self._auth = f"Bearer {response.json()['access']}"
        return self._auth

    def _send(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> httpx.Response:
        headers = {"Authorization": self._authorization()} if auth else {}
        try:
            return self._http.request(method, urljoin(self.url, path), headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise LabelStudioUnreachable(
                "ls_url", f"Label Studio at {self.url} did not answer {method} /{path}: {type(exc).__name__}"
            ) from exc

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        response = self._send(method, path, **kw)
        if response.status_code >= 400:
            raise LabelStudioRefused(
                "label_studio",
                f"Label Studio answered {method} /{path.split('?')[0]} with {response.status_code}: "
                f"{response.text[:MAX_ERROR_CHARS]}"
                + (" (is the access token right?)" if response.status_code in (401, 403) else ""),
            )
        if not response.content:
            return None
        try:
            return response.json()
        except json.JSONDecodeError as exc:
            raise LabelStudioRefused(
                "label_studio", f"Label Studio answered {method} /{path} with something that is not JSON"
            ) from exc

    # -- the calls ----------------------------------------------------------------------------------

    def project(self, project: int) -> dict[str, Any]:
        body = self._call("GET", f"api/projects/{project}/")
        return body if isinstance(body, dict) else {}

    def tasks(self, project: int) -> Iterator[dict[str, Any]]:
        """Every task of ``project`` (id and data), page by page."""
        page, seen = 1, 0
        while True:
            body = self._call(
                "GET",
                f"api/tasks/?project={project}&page={page}&page_size={PAGE_SIZE}&resolve_uri=false",
            )
            tasks = body.get("tasks", []) if isinstance(body, dict) else body
            yield from tasks
            seen += len(tasks)
            total = body.get("total") if isinstance(body, dict) else None
            if len(tasks) < PAGE_SIZE or (isinstance(total, int) and seen >= total):
                return
            page += 1

    def import_tasks(self, project: int, tasks: list[dict[str, Any]]) -> list[int]:
        """Create ``tasks`` (``{"data": ...}``); their new ids, in order."""
        ids: list[int] = []
        for start in range(0, len(tasks), IMPORT_BATCH):
            part = tasks[start : start + IMPORT_BATCH]
            body = self._call("POST", f"api/projects/{project}/import?return_task_ids=true", json=part)
            got = body.get("task_ids") if isinstance(body, dict) else None
            if not isinstance(got, list) or len(got) != len(part):
                raise LabelStudioRefused(
                    "label_studio", f"Label Studio's import answered no task ids for {len(part)} tasks"
                )
            ids.extend(int(i) for i in got)
        return ids

    def update_task_data(self, task_id: int, data: dict[str, Any]) -> None:
        self._call("PATCH", f"api/tasks/{task_id}/", json={"data": data})

    def export(self, project: int) -> list[dict[str, Any]]:
        """Every task with its annotations (``exportType=JSON``, all tasks)."""
        body = self._call("GET", f"api/projects/{project}/export?exportType=JSON&download_all_tasks=true")
        return body if isinstance(body, list) else []

    def import_predictions(self, project: int, predictions: list[dict[str, Any]]) -> None:
        """Predictions ``{"task", "result", "score", "model_version"}``, in batches."""
        for start in range(0, len(predictions), IMPORT_BATCH):
            self._call(
                "POST",
                f"api/projects/{project}/import/predictions",
                json=predictions[start : start + IMPORT_BATCH],
            )

    def create_annotation(self, task_id: int, result: list[dict[str, Any]]) -> None:
        self._call(
            "POST", f"api/tasks/{task_id}/annotations/", json={"result": result, "ground_truth": False}
        )

    def owns(self, url: str) -> bool:
        """Whether ``url`` is relative (``/data/upload/...``) or on the connected Label Studio's host."""
        parsed = urlparse(url)
        return not parsed.netloc or parsed.netloc == urlparse(self.url).netloc

    def fetch(self, url: str) -> bytes:
        """A file that Label Studio hosts (``/data/upload/...``, ``/data/local-files/?d=...``), with the
        token; at most :data:`MAX_FILE_BYTES`."""
        target = urljoin(self.url, url.lstrip("/")) if not urlparse(url).netloc else url
        headers = {"Authorization": self._authorization()}
        try:
            with self._http.stream("GET", target, headers=headers) as response:
                if response.status_code >= 400:
                    raise LabelStudioRefused(
                        "image",
                        f"Label Studio answered GET {urlparse(target).path} with {response.status_code}",
                    )
                return read_capped(response, MAX_FILE_BYTES, target)
        except httpx.HTTPError as exc:
            raise LabelStudioUnreachable(
                "image",
                f"Label Studio at {self.url} did not answer GET {urlparse(target).path}: "
                f"{type(exc).__name__}",
            ) from exc


def read_capped(response: httpx.Response, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise LabelStudioRefused("image", f"{urlparse(what).path}: larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def make_client(
    connection: LabelStudioConnection, settings: Settings, transport: httpx.BaseTransport | None = None
) -> LabelStudioClient | None:
    """A client for the connection's Label Studio, or None when it has no URL or token."""
    if not connection.ls_url or not connection.ls_token:
        return None
    token = credentials.decrypt(settings, connection.ls_token)
    return LabelStudioClient(
        connection.ls_url, token, timeout=settings.label_studio_timeout_s, transport=transport
    )
