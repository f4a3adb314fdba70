"""The fuzzing of tests/app/test_fuzz.py and tests/soak/test_fuzz_postgres.py (a helper module, not a
test module). Hostile input: schemathesis generates requests from the OpenAPI schema (valid and invalid
bodies, parameters and headers) and sends them with an admin key; no answer may be a 5xx.

Bounded for CI: ``TBAL_FUZZ_EXAMPLES`` examples per operation (default 5: about a minute in all);
``make soak`` runs it with 150. The database is a migrated SQLite file holding one project with items,
labels and a finished round, so that routes with ``{project_id}`` / ``{round_id}`` = 1 reach real rows.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Err

from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.main import create_app
from app.projects.keys_service import create_key
from app.settings import Settings

EXAMPLES = int(os.environ.get("TBAL_FUZZ_EXAMPLES", "5"))
SECRET: dict[str, str] = {}
SPARED = {("DELETE", "/api/v1/keys/{key_id}"), ("DELETE", "/api/v1/projects/{project_id}")}
"""Not fuzzed: they would revoke the fuzzer's own key or delete the seeded project
(tests/app/projects/test_access.py and test_projects.py cover them)."""


def _seed_project(client: TestClient) -> None:
    """Project 1 with items, labels and one finished round (small: the fuzzer may start more rounds)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=3.0, size=(3, 4))
    y = rng.integers(0, 3, size=120)
    X = (centers[y] + rng.normal(scale=0.3, size=(120, 4))).astype(np.float32)
    created = client.post(
        "/api/v1/projects",
        json={
            "name": "fuzzed",
            "classes": ["a", "b", "c"],
            "data_kind": "features",
            "input_shape": [4],
            "settings": {
                "validation_size": 40,
                "seed_size": 20,
                "label_budget": 30,
                "batch_size": 5,
                "model": "mlp",
                "hidden": [8],
                "epochs": 3,
            },
        },
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    items = [
        {"external_id": f"i{i}", "features": X[i].tolist(), "ground_truth": int(y[i])} for i in range(120)
    ]
    assert client.post(f"/api/v1/projects/{pid}/items", json={"items": items}).status_code == 200
    assert client.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
    assert client.post(f"/api/v1/projects/{pid}/rounds").status_code == 202
    client.app.state.tbal.dispatcher.wait_idle(120)  # type: ignore[attr-defined]


@contextlib.contextmanager
def seeded_app(database_url: str, tmp: Path) -> Iterator[Any]:
    """The application on a migrated ``database_url`` with an admin key (in ``SECRET``) and project 1."""
    config = Settings(
        database_url=database_url,
        artifacts_dir=tmp / "artifacts",
        upload_dir=tmp / "uploads",
        train_device="cpu",
        torch_threads=1,
        max_request_bytes=4 * 1024**2,
        max_json_bytes=1024**2,
        max_batch_items=500,
        round_time_limit_s=20,  # a fuzzed PATCH may ask for huge models: rounds it starts stop soon
    )
    upgrade(config)
    engine = make_engine(config)
    _key, SECRET["value"] = create_key(make_session_factory(engine), "fuzz")
    engine.dispose()
    app = create_app(config)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {SECRET['value']}"
        _seed_project(client)
        yield app


def _fuzz_operation(operation: Any, mode: GenerationMode, secret: str, examples: int) -> list[str]:
    """Send ``examples`` generated requests to one operation; the 5xx answers, described."""
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(headers={**(case.headers or {}), "Authorization": f"Bearer {secret}"})
        if response.status_code >= 500 and len(failures) < 3:
            failures.append(
                f"{case.method} {case.formatted_path} ({mode.value}) -> {response.status_code}: "
                f"{response.text[:300]}\n  {case.as_curl_command()}"
            )

    with contextlib.suppress(Unsatisfiable):  # nothing invalid to generate (no parameters): nothing sent
        run()
    return failures


def fuzz(app: Any, examples: int = EXAMPLES) -> None:
    """Every operation of the schema (but ``SPARED``), valid and invalid requests; fails on a 5xx."""
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # a part of the schema schemathesis cannot read: fail on its reason
            raise result.err()
        operation = result.ok()
        operations += 1
        if (operation.method.upper(), operation.path) in SPARED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz_operation(operation, mode, SECRET["value"], examples)
    assert operations >= 30, f"only {operations} operations in the schema"
    assert not failures, "\n".join(failures)


# -- crafted binary bodies (issue 15): what schemathesis cannot produce --------------------------------

DESCRS = [
    "'<f4'", "'<f8'", "'>f4'", "'|u1'", "'<i8'", "'|b1'", "'<U3'", "'|S2'", "'<c8'", "'<M8[s]'", "'|O'",
    "'|V4'", "'<U0'", "[('a', '<f4')]", "('<f4', (2,))", "'xyz'", "None", "1",
]  # fmt: skip
MEMBER_NAMES = ["X", "y", "external_ids", "junk", "../X", "X.npy", ""]


@st.composite
def npy_files(draw: Any) -> bytes:
    """An .npy file with a drawn header (shape with negative, huge or odd entries, any dtype text,
    fortran order, version, a length field that may lie) and a short body."""
    dims = draw(st.lists(st.one_of(st.integers(-3, 12), st.integers(-(2**64), 2**64)), max_size=4))
    shape = draw(st.sampled_from(["({})".format("".join(f"{d}, " for d in dims)), str(dims), "'x'", "()"]))
    descr = draw(st.sampled_from(DESCRS))
    fortran = draw(st.sampled_from(["False", "True", "0"]))
    header = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}".encode()
    header += b" " * draw(st.integers(0, 80)) + b"\n"
    version = draw(st.sampled_from([1, 2, 3, 9]))
    length = draw(st.one_of(st.just(len(header)), st.integers(0, 2**16 - 1)))
    field = struct.pack("<H", length % 2**16) if version == 1 else struct.pack("<I", length)
    body = draw(st.binary(max_size=96))
    return b"\x93NUMPY" + bytes([version, 0]) + field + header + body


def _npy(shape: tuple[int, ...], descr: str, body: bytes) -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}".encode() + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


@st.composite
def matching_members(draw: Any) -> bytes:
    """An .npz whose X fits project 1 (n rows of 4 float32 from drawn bytes: NaN and all) and whose
    external_ids / y have n entries of a drawn dtype filled with drawn bytes (any code point, NUL...)."""
    n = draw(st.integers(1, 3))
    members = {"X": _npy((n, 4), "<f4", draw(st.binary(min_size=16 * n, max_size=16 * n)))}
    for name, descrs in (
        ("external_ids", ["<U2", ">U2", "|S3", "<i8", "<f4"]),
        ("y", ["<i8", "|u1", "<i2", "|b1"]),
    ):
        if draw(st.booleans()):
            descr = draw(st.sampled_from(descrs))
            if descr[1] == "U":  # code points: valid ones, surrogates, NUL, and past U+10FFFF
                chars = n * int(descr[2:])
                points = st.one_of(
                    st.integers(0, 0x10FFFF), st.integers(0xD800, 0xDFFF), st.integers(0x110000, 2**32 - 1)
                )
                codes = draw(st.lists(points, min_size=chars, max_size=chars))
                raw = struct.pack(f"{descr[0]}{chars}I", *codes)
            else:
                size = n * int(descr[2:])
                raw = draw(st.binary(min_size=size, max_size=size))
            members[name] = _npy((n,), descr, raw)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


@st.composite
def upload_bodies(draw: Any) -> bytes:
    """A raw .npy, an .npz of 1-3 drawn members (stored or deflated), or one whose arrays fit but hold
    drawn bytes; sometimes cut short."""
    kind = draw(st.sampled_from(["npy", "npz", "matching"]))
    if kind == "npy":
        body = draw(npy_files())
    elif kind == "matching":
        body = draw(matching_members())
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for _ in range(draw(st.integers(1, 3))):
                method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
                name = draw(st.sampled_from(MEMBER_NAMES)) + ".npy"
                archive.writestr(name, draw(npy_files()), compress_type=method)
        body = buffer.getvalue()
    if kind == "matching":  # whole: their point is what the arrays hold
        return body
    cut = draw(st.one_of(st.none(), st.integers(0, max(0, len(body) - 1))))
    return body if cut is None else body[:cut]


def fuzz_uploads(app: Any, examples: int) -> dict[int, int]:
    """Send ``examples`` drawn upload bodies to project 1 of ``app`` (already started); fails on a 5xx or
    a 4xx without field and reason. The count of each status."""
    client = TestClient(app)
    headers = {"Authorization": f"Bearer {SECRET['value']}", "Content-Type": "application/octet-stream"}
    seen: dict[int, int] = {}

    @given(body=upload_bodies())
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None)
    def send(body: bytes) -> None:
        response = client.post("/api/v1/projects/1/items/upload", content=body, headers=headers)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, f"{response.status_code}: {response.text[:300]} for {body[:200]!r}"
        if response.status_code >= 400:
            detail = response.json()["detail"]
            assert detail["field"] and detail["reason"], detail

    send()
    return seen
