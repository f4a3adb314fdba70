"""Hostile input: no request generated from the OpenAPI schema, and no crafted upload body, is answered
with a 5xx (the machinery: tests/app/fuzzing.py).

Bounded for CI: ``TBAL_FUZZ_EXAMPLES`` examples per operation (default 5: about a minute in all);
``make soak`` runs it with 150.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.app.fuzzing import EXAMPLES, fuzz, fuzz_uploads, seeded_app


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    with seeded_app(f"sqlite:///{tmp / 'fuzz.sqlite'}", tmp) as app:
        yield app


def test_no_server_error(fuzz_app: Any) -> None:
    fuzz(fuzz_app)


@pytest.mark.filterwarnings("ignore:Duplicate name")  # drawn .npz may repeat a member: a 422 each time
def test_crafted_upload_bodies_are_never_a_server_error(fuzz_app: Any) -> None:
    """Drawn .npy headers and .npz members against the upload of project 1: 200 or a 4xx naming a field
    (``make soak`` runs it with 100 × 40 examples here and on PostgreSQL)."""
    seen = fuzz_uploads(fuzz_app, 40 * EXAMPLES)
    assert sum(n for status, n in seen.items() if 400 <= status < 500) > 0, seen
