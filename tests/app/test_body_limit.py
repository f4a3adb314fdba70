"""Oversized bodies are refused with 413 before they are read whole, through a real uvicorn server and a
raw socket: a Content-Length over the limit is refused before any byte of the body is sent, and a
chunked body without Content-Length is refused while the client is still sending it."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.main import create_app
from app.projects.keys_service import create_key
from app.settings import Settings

LIMIT = 256 * 1024
JSON_LIMIT = 64 * 1024
CHUNK = 16 * 1024
SENT_AT_MOST = 64 * CHUNK  # 1 MiB: four times the limit


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    tmp: Path = tmp_path_factory.mktemp("limit")
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'limit.sqlite'}",
        artifacts_dir=tmp / "artifacts",
        upload_dir=tmp / "uploads",
        max_request_bytes=LIMIT,
        max_json_bytes=JSON_LIMIT,
    )
    upgrade(settings)
    engine = make_engine(settings)
    _key, secret = create_key(make_session_factory(engine), "limit")
    engine.dispose()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    body = json.dumps(
        {"name": "limit", "classes": ["a", "b"], "data_kind": "features", "input_shape": [2]}
    ).encode()
    status, _ = _exchange(
        port, "POST", "/api/v1/projects", secret, body, {"Content-Type": "application/json"}
    )
    assert status == 201
    try:
        yield port, secret
    finally:
        srv.should_exit = True
        thread.join(10)


def _head(method: str, path: str, secret: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {secret}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return status, json.loads(rest[:length])


def _exchange(
    port: int, method: str, path: str, secret: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, object]]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_head(method, path, secret, {**headers, "Content-Length": str(len(body))}) + body)
        return _read_response(sock)


def test_a_declared_length_over_the_limit_is_refused_before_the_body(server: tuple[int, str]) -> None:
    port, secret = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(10 * 1024**3)}
        sock.sendall(_head("POST", "/api/v1/projects/1/items/upload", secret, headers))  # no body at all
        status, body = _read_response(sock)
    assert status == 413
    assert body["detail"]["field"] == "body"  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "content_type", "limit"),
    [
        ("/api/v1/projects/1/items/upload", "application/octet-stream", LIMIT),
        ("/api/v1/projects/1/items/upload", "Multipart/Form-Data; boundary=x", LIMIT),
        ("/api/v1/projects/1/items", "application/json", JSON_LIMIT),
        # issue 15, item 4: media types compare case-insensitively, parameters aside ...
        ("/api/v1/projects/1/items", "APPLICATION/JSON", JSON_LIMIT),
        ("/api/v1/projects/1/items", "Application/Json ; charset=utf-8", JSON_LIMIT),
        # ... and bodies the framework would read whole to refuse them get the in-memory limit too
        ("/api/v1/projects/1/items", "text/plain", JSON_LIMIT),
        ("/api/v1/projects/1/items", "application/x-www-form-urlencoded", JSON_LIMIT),
        ("/api/v1/projects/1/labels", "", JSON_LIMIT),
        ("/api/v1/projects/1/items/upload", "application/x-foo", JSON_LIMIT),
    ],
)
def test_a_chunked_body_is_refused_while_it_is_sent(
    server: tuple[int, str], path: str, content_type: str, limit: int
) -> None:
    port, secret = server
    headers = {"Transfer-Encoding": "chunked"}
    if content_type:
        headers["Content-Type"] = content_type
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_head("POST", path, secret, headers))
        if content_type.lower().startswith("multipart/"):  # a well-formed start: then one long file part
            part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.npy"\r\n\r\n'
            sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        sent = 0
        answered = False
        while sent < SENT_AT_MOST:
            try:
                sock.sendall(f"{CHUNK:x}\r\n".encode() + b"[" * CHUNK + b"\r\n")
            except OSError:  # the server answered and closed: it read no more
                answered = True
                break
            sent += CHUNK
            if select.select([sock], [], [], 0.02)[0]:
                answered = True
                break
        assert answered, f"no answer after {sent} bytes of a body over the {limit}-byte limit"
        assert sent <= limit + 4 * CHUNK, f"the server let {sent} bytes in before answering (limit {limit})"
        status, body = _read_response(sock)
    assert status == 413
    assert body["detail"]["field"] == "body"  # type: ignore[index]


@pytest.mark.parametrize(
    "content_type", ["APPLICATION/JSON", "application/JSON; charset=utf-8", "text/plain"]
)
def test_a_declared_length_over_the_in_memory_limit_is_refused(
    server: tuple[int, str], content_type: str
) -> None:
    """Issue 15, item 4: ``APPLICATION/JSON`` (parsed as JSON all the same) and other in-memory bodies
    get 413 from their Content-Length alone when it is over the JSON limit, under the upload limit."""
    port, secret = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        headers = {"Content-Type": content_type, "Content-Length": str(JSON_LIMIT + 1)}
        sock.sendall(_head("POST", "/api/v1/projects/1/items", secret, headers))  # no body at all
        status, body = _read_response(sock)
    assert status == 413
    assert str(JSON_LIMIT) in body["detail"]["reason"]  # type: ignore[index]
