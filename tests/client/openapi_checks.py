"""Checks of the client against the service's OpenAPI document, shared by the client's type tests
(tests/client/test_client_types.py, test_client_jobs.py): which keys a client function reads from an
answer (walking its source), the answer and request schemas, and the assertion that the two agree."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import tbal_client.types as types_module

Schema = dict[str, Any]
API = "/api/v1"


# ---------------------------------------------------------------------------------------------------
# What the client reads, from its source


def keys_read(function: Callable[..., Any], variable: str = "data") -> tuple[set[str], set[str]]:
    """(required, optional): the string keys ``function`` reads from ``variable`` as ``variable["k"]``
    and as ``variable.get("k")``; a ``cls.__dataclass_fields__`` comprehension reads every field."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    required: set[str] = set()
    optional: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_name(node.value, variable):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                required.add(node.slice.value)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and _is_name(node.func.value, variable)
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            optional.add(str(node.args[0].value))
        elif isinstance(node, ast.Attribute) and node.attr == "__dataclass_fields__":
            owner = function.__qualname__.split(".")[0]
            required |= set(getattr(types_module, owner).__dataclass_fields__)
    return required, optional - required


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


# ---------------------------------------------------------------------------------------------------
# The server's schemas


def resolve(spec: Schema, schema: Schema) -> Schema:
    """``schema`` with ``$ref`` followed and a nullable ``anyOf: [X, null]`` reduced to X."""
    while True:
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        elif "anyOf" in schema:
            options = [s for s in schema["anyOf"] if s.get("type") != "null"]
            if len(options) != 1:
                return schema
            schema = options[0]
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


def answer_schema(spec: Schema, method: str, path: str, *, items: bool = False) -> Schema:
    """The JSON schema of the 2xx answer of ``method path`` (of its elements when ``items``: a bare
    list, or a page's ``items``)."""
    responses = spec["paths"][path][method.lower()]["responses"]
    status = next(code for code in responses if code.startswith("2"))
    schema = resolve(spec, responses[status]["content"]["application/json"]["schema"])
    if items:
        if schema.get("type") != "array":
            schema = resolve(spec, schema["properties"]["items"])
        schema = resolve(spec, schema["items"])
    return schema


def assert_reads_match(
    spec: Schema,
    schema: Schema,
    function: Callable[..., Any],
    variable: str = "data",
    absent: frozenset[str] = frozenset(),
) -> None:
    """``absent``: keys read with ``.get`` that this answer leaves out on purpose (a project's ``counts``
    come only with the detail)."""
    required, optional = keys_read(function, variable)
    assert absent <= optional, f"{absent - optional} are read as required"
    optional -= absent
    assert required or optional, f"{function.__qualname__} reads nothing from {variable}"
    properties = set(schema.get("properties", {}))
    where = f"{function.__qualname__} vs {schema.get('title')}"
    assert (required | optional) - properties == set(), f"{where}: keys the server does not send"
    assert required - set(schema.get("required", [])) == set(), f"{where}: read as required, optional there"
