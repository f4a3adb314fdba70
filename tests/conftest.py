"""Shared fixtures: where the real data sets are (../shared/data beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TBAL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder with the real data sets; CI has it beside the clone, so it must exist there."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared data folder missing: {SHARED_DATA}")
        pytest.skip(f"shared data folder missing: {SHARED_DATA}")
    return SHARED_DATA
