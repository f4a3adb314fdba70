"""An in-memory Label Studio for the sync tests: the REST calls tbal makes (``app.integrations.
label_studio.client``), answered the way Label Studio 1.23.2 answers them (paths, pagination, import with
``return_task_ids``, prediction import, JSON export with annotations), behind an ``httpx.MockTransport``.
Every ``/api/`` call needs ``Authorization: Token <token>``; files under ``/data/upload/`` too."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

URL = "http://label-studio.test:8080"
TOKEN = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeLabelStudio:
    project: int = 7
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    down: bool = False
    _next_task: int = 1
    _next_annotation: int = 1000

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- what a team does in Label Studio ----------------------------------------------------------

    def add_task(self, data: dict[str, Any]) -> int:
        task_id = self._next_task
        self._next_task += 1
        self.tasks[task_id] = {"id": task_id, "data": data, "annotations": [], "predictions": []}
        return task_id

    def annotate(self, task_id: int, choice: str | None, user: int, *, cancelled: bool = False) -> int:
        annotation_id = self._next_annotation
        self._next_annotation += 1
        result = [] if choice is None else [_choice(choice)]
        self.tasks[task_id]["annotations"].append(
            {
                "id": annotation_id,
                "task": task_id,
                "completed_by": user,
                "result": result,
                "was_cancelled": cancelled,
            }
        )
        return annotation_id

    def delete_annotation(self, annotation_id: int) -> None:
        for task in self.tasks.values():
            task["annotations"] = [a for a in task["annotations"] if a["id"] != annotation_id]

    def by_external(self, external_id: str) -> list[dict[str, Any]]:
        return [t for t in self.tasks.values() if t["data"].get("external_id") == external_id]

    # -- the API ---------------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        url = urlparse(str(request.url))
        path, query = url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.calls.append(f"{request.method} {path}")
        if request.headers.get("Authorization") != f"Token {TOKEN}":
            return httpx.Response(401, json={"detail": "Authentication credentials were not provided."})
        if path.startswith("/data/upload/"):
            body = self.files.get(path)
            return httpx.Response(200, content=body) if body is not None else httpx.Response(404)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "tasks"] and len(parts) == 2 and request.method == "GET":
            return self._list(
                int(query["project"]), int(query.get("page", 1)), int(query.get("page_size", 100))
            )
        if parts[:2] == ["api", "projects"] and int(parts[2]) != self.project:
            return httpx.Response(404, json={"detail": "Not found."})
        if parts[:2] == ["api", "projects"] and parts[3:] == ["import"] and request.method == "POST":
            ids = [self.add_task(t["data"]) for t in _json_body(request)]
            return httpx.Response(201, json={"task_count": len(ids), "task_ids": ids})
        if parts[:2] == ["api", "projects"] and parts[3:] == ["import", "predictions"]:
            predictions = _json_body(request)
            for p in predictions:
                self.tasks[p["task"]]["predictions"].append(p)
            return httpx.Response(201, json={"created": len(predictions)})
        if parts[:2] == ["api", "projects"] and parts[3:] == ["export"]:
            return httpx.Response(200, json=[_exported(t) for t in self.tasks.values()])
        if parts[:2] == ["api", "tasks"] and len(parts) == 3 and request.method == "PATCH":
            self.tasks[int(parts[2])]["data"] = _json_body(request)["data"]
            return httpx.Response(200, json=self.tasks[int(parts[2])])
        if parts[:2] == ["api", "tasks"] and parts[3:] == ["annotations"]:
            annotation_id = self.annotate(int(parts[2]), None, user=1)
            self.tasks[int(parts[2])]["annotations"][-1]["result"] = _json_body(request)["result"]
            return httpx.Response(201, json={"id": annotation_id})
        return httpx.Response(404, json={"detail": f"no route {request.method} {path}"})

    def _list(self, project: int, page: int, size: int) -> httpx.Response:
        tasks = [{"id": t["id"], "data": t["data"]} for t in self.tasks.values()]
        chunk = tasks[(page - 1) * size : page * size]
        if page > 1 and not chunk:
            return httpx.Response(404, json={"detail": "Invalid page."})
        return httpx.Response(200, json={"tasks": chunk, "total": len(tasks)})


def _json_body(request: httpx.Request) -> Any:
    """``request``'s JSON body; the routes that read one are sent one by the client under test."""
    assert request.content, f"{request.method} {request.url.path}: no body"
    return json.loads(request.content)


def _choice(choice: str) -> dict[str, Any]:
    return {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [choice]}}


def _exported(task: dict[str, Any]) -> dict[str, Any]:
    """A task as ``exportType=JSON`` has it (predictions as ids)."""
    return {
        "id": task["id"],
        "data": task["data"],
        "annotations": task["annotations"],
        "predictions": list(range(len(task["predictions"]))),
    }
