"""Soak tests: too slow for CI; ``make soak`` runs them (``TBAL_SOAK=1``). Skipped otherwise."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("TBAL_SOAK") == "1":
        return
    skip = pytest.mark.skip(reason="soak test: run with `make soak` (TBAL_SOAK=1)")
    for item in items:
        if "tests/soak/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)
