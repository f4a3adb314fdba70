"""The library stays pure: no module of ``tbal`` pulls in the service stack (ARCHITECTURE.md, layout)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import tbal

SERVICE_PACKAGES = ("fastapi", "starlette", "celery", "sqlalchemy", "alembic", "redis", "psycopg")
CLIENT_PACKAGES = ("httpx", "tbal_client")
"""The HTTP client lives in ``tbal_client``; the library neither speaks HTTP nor depends on it."""
PACKAGE_DIR = Path(tbal.__file__).resolve().parent

_PROBE = """
import importlib, json, pkgutil, sys
import tbal
names = [m.name for m in pkgutil.walk_packages(tbal.__path__, "tbal.")]
for name in names:
    importlib.import_module(name)
banned = {banned!r}
loaded = sorted(m for m in sys.modules if m.split(".")[0] in banned)
print(json.dumps({{"modules": names, "loaded": loaded}}))
"""


def test_importing_every_tbal_module_loads_no_service_package() -> None:
    code = _PROBE.format(banned=SERVICE_PACKAGES)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PACKAGE_DIR.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "tbal.thresholds" in report["modules"] and "tbal.query" in report["modules"]
    assert report["loaded"] == [], f"service packages imported by tbal: {report['loaded']}"


def service_imports(
    source: str, filename: str = "<string>", banned: tuple[str, ...] = SERVICE_PACKAGES
) -> list[tuple[int, str]]:
    """(line, package) for every absolute import of a ``banned`` package in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots = [node.module.split(".")[0]]
        else:
            continue
        found += [(node.lineno, root) for root in roots if root in banned]
    return found


def test_no_tbal_source_file_imports_a_service_package() -> None:
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(files) > 5
    offending = [
        f"{path.relative_to(PACKAGE_DIR.parent)}:{line} {root}"
        for path in files
        for line, root in service_imports(path.read_text(encoding="utf-8"), str(path))
    ]
    assert offending == [], offending


def test_no_tbal_source_file_imports_httpx_or_the_client() -> None:
    offending = [
        f"{path.relative_to(PACKAGE_DIR.parent)}:{line} {root}"
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        for line, root in service_imports(path.read_text(encoding="utf-8"), str(path), CLIENT_PACKAGES)
    ]
    assert offending == [], offending
    assert service_imports("import httpx\nfrom tbal_client import TBALClient\n", banned=CLIENT_PACKAGES) == [
        (1, "httpx"),
        (2, "tbal_client"),
    ]


def test_the_static_check_sees_both_import_forms() -> None:
    """A guard against a check that never fires: nested, aliased and from-imports are found."""
    source = (
        "import numpy, sqlalchemy.orm as o\ndef f():\n    from celery import Celery\nfrom . import redis\n"
    )
    assert service_imports(source) == [(1, "sqlalchemy"), (3, "celery")]
