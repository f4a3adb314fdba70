"""The client's types do not drift from the server's: every key the client reads from an answer is a
property of that answer's schema in the service's OpenAPI document (and a key it reads with ``data[...]``
is a required one), and every JSON body it sends is accepted by the request schema. The keys are found
by walking the client's own source (its ``from_json`` methods and the functions that read answers), so a
field added to the client is checked without editing this file. Also: ``tbal_client`` imports nothing
outside the standard library, httpx and numpy; its text-file reader agrees with the library's."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

import tbal_client
import tbal_client.client as client_module
import tbal_client.types as types_module
from app.main import create_app
from app.settings import Settings
from tbal.errors import DataError
from tbal.text_files import read_text_records as library_reader
from tbal_client import APIError, Label, TBALClient
from tbal_client.text_files import MAX_TEXT_CHARS, TextFileError
from tbal_client.text_files import read_text_records as client_reader
from tests.client.openapi_checks import API, Schema, answer_schema, assert_reads_match, keys_read, resolve
from tests.in_process import as_httpx_client


def test_the_source_walk_finds_what_a_method_reads() -> None:
    """A guard against a check that never fires."""
    required, optional = keys_read(types_module.Round.from_json)
    assert {"id", "project_id", "status", "created_at"} <= required
    assert {"stage", "metrics", "finished_at"} <= optional
    assert keys_read(types_module.IngestResult.from_json)[0] == set(
        types_module.IngestResult.__dataclass_fields__
    )
    assert keys_read(client_module._predict_result, "p")[0] == {
        "label",
        "class_name",
        "confidence",
        "clears_threshold",
    }


COUNTS = frozenset({"counts"})
READERS: list[tuple[Callable[..., Any], str, str, bool, str]] = [
    (types_module.Project.from_json, "GET", "/projects/{project_id}", False, "data"),
    (types_module.IngestResult.from_json, "POST", "/projects/{project_id}/items/upload", False, "data"),
    (types_module.IngestResult.from_json, "POST", "/projects/{project_id}/items/texts", False, "data"),
    (types_module.IngestResult.from_json, "POST", "/projects/{project_id}/items/images", False, "data"),
    (types_module.LabelsResult.from_json, "POST", "/projects/{project_id}/labels", False, "data"),
    (types_module.SimulateResult.from_json, "POST", "/projects/{project_id}/simulate", False, "data"),
    (types_module.QueueItem.from_json, "GET", "/projects/{project_id}/queue", True, "data"),
    (TBALClient.queue_counts, "GET", "/projects/{project_id}/queue", False, "page"),
    (types_module.Round.from_json, "GET", "/rounds/{round_id}", False, "data"),
    (types_module.Round.from_json, "POST", "/projects/{project_id}/rounds", False, "data"),
    (types_module.Round.from_json, "GET", "/projects/{project_id}/rounds", True, "data"),
    (types_module.AutoLabel.from_json, "GET", "/projects/{project_id}/auto-labels", True, "data"),
    (types_module.HumanLabel.from_json, "GET", "/projects/{project_id}/labels", True, "data"),
    (client_module._predict_result, "POST", "/projects/{project_id}/predict", False, "last"),
    (client_module._predict_result, "POST", "/projects/{project_id}/predict/texts", False, "last"),
    (client_module._predict_result, "POST", "/projects/{project_id}/predict/images", False, "last"),
    (TBALClient.predict, "POST", "/projects/{project_id}/predict", False, "data"),
]


@pytest.mark.parametrize(
    ("function", "method", "path", "items", "variable"),
    READERS,
    ids=[f"{r[0].__qualname__}-{r[1]} {r[2]}" for r in READERS],
)
def test_what_the_client_reads_is_in_the_answer_schema(
    spec: Schema, function: Callable[..., Any], method: str, path: str, items: bool, variable: str
) -> None:
    assert_reads_match(spec, answer_schema(spec, method, API + path, items=items), function, variable)


@pytest.mark.parametrize(
    ("method", "path", "items"),
    [("POST", "/projects", False), ("PATCH", "/projects/{project_id}", False), ("GET", "/projects", True)],
)
def test_projects_without_counts(spec: Schema, method: str, path: str, items: bool) -> None:
    """Creating, updating and listing answer a project without its counts; the client reads them with
    ``.get`` and leaves ``Project.counts`` None."""
    schema = answer_schema(spec, method, API + path, items=items)
    assert_reads_match(spec, schema, types_module.Project.from_json, absent=COUNTS)


def test_nested_answers_project_counts_and_predictions(spec: Schema) -> None:
    project = answer_schema(spec, "GET", f"{API}/projects/{{project_id}}")
    assert_reads_match(
        spec, resolve(spec, project["properties"]["counts"]), types_module.ProjectCounts.from_json
    )
    for path in ("/predict", "/predict/texts", "/predict/images"):
        answer = answer_schema(spec, "POST", f"{API}/projects/{{project_id}}{path}")
        one = resolve(spec, resolve(spec, answer["properties"]["predictions"])["items"])
        assert_reads_match(spec, one, client_module._predict_result, "p")


def test_pages_carry_the_cursor_the_client_follows(spec: Schema) -> None:
    """``paginate`` reads ``items`` and ``next_after_id`` (``next_after_rank`` for the label review)."""
    for path, cursor in [
        ("/projects/{project_id}/queue", "next_after_id"),
        ("/projects/{project_id}/rounds", "next_after_id"),
        ("/projects/{project_id}/auto-labels", "next_after_id"),
        ("/projects/{project_id}/labels", "next_after_id"),
        ("/projects/{project_id}/label-review", "next_after_rank"),
    ]:
        page = answer_schema(spec, "GET", API + path)
        assert {"items", cursor} <= set(page["properties"]), path


def test_summary_and_evaluation_are_json_objects(spec: Schema) -> None:
    """The client hands these back as dicts; they must stay JSON objects."""
    for path in ("/projects/{project_id}/summary", "/rounds/{round_id}/evaluation"):
        schema = answer_schema(spec, "GET", API + path)
        assert schema.get("type") == "object" and schema.get("properties"), path


# ---------------------------------------------------------------------------------------------------
# What the client sends


def schema_problems(spec: Schema, schema: Schema, value: Any, where: str = "body") -> list[str]:
    """Why ``value`` does not fit ``schema`` (objects: unknown and missing keys; arrays: each element;
    unions: at least one option fits). Types of scalars are left to the server's tests."""
    schema = resolve(spec, schema)
    if "anyOf" in schema or "oneOf" in schema:
        options: list[Schema] = schema.get("anyOf") or schema.get("oneOf") or []
        fits = [schema_problems(spec, option, value, where) for option in options]
        return [] if any(not f for f in fits) else [f"{where}: fits no option ({fits})"]
    if isinstance(value, dict) and schema.get("properties") is not None:
        properties = schema["properties"]
        problems = [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            problems += [f"{where}: unknown key {k!r}" for k in value if k not in properties]
        for key, inner in value.items():
            if key in properties:
                problems += schema_problems(spec, properties[key], inner, f"{where}.{key}")
        return problems
    if isinstance(value, list) and "items" in schema:
        return [
            p for i, v in enumerate(value) for p in schema_problems(spec, schema["items"], v, f"{where}[{i}]")
        ]
    return []


def request_schema(spec: Schema, method: str, url_path: str) -> Schema:
    for template, operations in spec["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", r"[^/]+", template), url_path) and method.lower() in operations:
            return operations[method.lower()]["requestBody"]["content"]["application/json"]["schema"]
    raise AssertionError(f"no operation {method} {url_path} in the OpenAPI document")


@pytest.fixture
def recorded(service_settings: Settings, api_key: str) -> Iterator[tuple[TBALClient, list[httpx.Request]]]:
    """The client over the app in process, every request it sends kept."""
    sent: list[httpx.Request] = []
    with TestClient(create_app(service_settings)) as http:
        http.event_hooks["request"].append(sent.append)
        yield TBALClient(http=as_httpx_client(http), key=api_key), sent


def test_the_bodies_the_client_sends_fit_the_request_schemas(
    spec: Schema, recorded: tuple[TBALClient, list[httpx.Request]]
) -> None:
    tb, sent = recorded
    project = tb.create_project(
        "drift", classes=["a", "b", "c"], data_kind="features", input_shape=[4], settings={"epsilon": 0.1}
    )
    tb.update_settings(project.id, {"label_budget": 500})
    rng = np.random.default_rng(0)
    tb.upload_items(project.id, rng.random((12, 4)).astype(np.float32), ground_truth=rng.integers(0, 3, 12))
    by_name_or_index: dict[str, int | str] = {"0": "a", "1": 2}
    tb.post_labels(project.id, by_name_or_index)
    tb.post_labels(
        project.id,
        [
            Label(external_id="2", distribution=[0.2, 0.3, 0.5]),
            Label(item_id=4, votes={"ann": "b", "bob": 1}),
        ],
    )
    with pytest.raises(APIError) as refused:  # no model yet: 409, but the body was sent and is checked
        tb.predict(project.id, rng.random((3, 4)).astype(np.float32))
    assert refused.value.status == 409
    text_project = tb.create_project("drift-texts", classes=["neg", "pos"], data_kind="text")
    with pytest.raises(APIError):
        tb.predict_texts(text_project.id, ["good", "bad"])
    bodies = [r for r in sent if r.headers.get("content-type", "").startswith("application/json")]
    paths = {(r.method, re.sub(r"/\d+", "/N", r.url.path)) for r in bodies}
    assert paths >= {
        ("POST", f"{API}/projects"),
        ("PATCH", f"{API}/projects/N"),
        ("POST", f"{API}/projects/N/labels"),
        ("POST", f"{API}/projects/N/predict"),
        ("POST", f"{API}/projects/N/predict/texts"),
    }, paths
    problems = [
        f"{r.method} {r.url.path}: {p}"
        for r in bodies
        for p in schema_problems(spec, request_schema(spec, r.method, r.url.path), json.loads(r.content))
    ]
    assert problems == []


def test_the_schema_check_catches_an_unknown_and_a_missing_key(spec: Schema) -> None:
    schema = request_schema(spec, "POST", f"{API}/projects/1/labels")
    assert schema_problems(spec, schema, {"labels": [{"external_id": "1", "label": 0}]}) == []
    assert schema_problems(spec, schema, {"labelz": []}) != []
    assert schema_problems(spec, schema, {"labels": [], "colour": "red"}) != []


# ---------------------------------------------------------------------------------------------------
# The package's own imports, and its copy of the text reader


ALLOWED_ROOTS = {"httpx", "numpy", "tbal_client", "__future__"}


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_tbal_client_imports_only_the_standard_library_httpx_and_numpy() -> None:
    files = sorted(Path(tbal_client.__file__).parent.rglob("*.py"))
    assert len(files) >= 4
    outside = {
        f"{path.name}: {root}"
        for path in files
        for root in imported_roots(path.read_text(encoding="utf-8"))
        if root not in ALLOWED_ROOTS and root not in sys.stdlib_module_names
    }
    assert outside == set()
    assert imported_roots("import torch\ndef f():\n    from tbal.data import x\n") == {"torch", "tbal"}


READER_CASES: list[tuple[bytes, dict[str, Any]]] = [
    (b"review,stars\ngood,1\nbad,0\n", {"text_column": "review", "label_column": "stars"}),
    (b'{"text": "a", "key": 7}\n\n{"text": "b", "key": "x"}\n', {"id_column": "key"}),
    (b'["one", "two"]', {}),
    (b'["one", ""]', {}),
    (b"text\nok\n", {"text_column": "body"}),
    (b'[{"text": "a", "label": true}]', {"label_column": "label"}),
    (b"\xff\xfe", {}),
    (b"{not json", {}),
    (b"   ", {}),
    (("[" + json.dumps("x" * (MAX_TEXT_CHARS + 1)) + "]").encode(), {}),
    (b'["nul\\u0000"]', {}),
]


@pytest.mark.parametrize(("data", "kwargs"), READER_CASES)
def test_the_client_reads_text_files_as_the_library_does(data: bytes, kwargs: dict[str, Any]) -> None:
    try:
        expected: Any = library_reader(data, **kwargs)
    except DataError as exc:
        with pytest.raises(TextFileError) as refused:
            client_reader(data, **kwargs)
        assert str(refused.value) == str(exc)
        return
    got = client_reader(data, **kwargs)
    assert (got.texts, got.ids, got.labels) == (expected.texts, expected.ids, expected.labels)


_BLOCKED_IMPORT = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "tbal", "app", "worker", "fastapi", "sqlalchemy", "sklearn"}:
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
import tbal_client, tbal_client.cli
print(sorted({m.split(".")[0] for m in sys.modules} & {"torch", "tbal", "app", "scipy"}))
"""


def test_tbal_client_imports_with_torch_and_the_library_blocked() -> None:
    """At run time too: with torch, tbal, app and the service stack unimportable, the package and its
    command verbs still import."""
    done = subprocess.run(
        [sys.executable, "-c", _BLOCKED_IMPORT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(tbal_client.__file__).parent.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
