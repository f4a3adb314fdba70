"""The schemathesis fuzz of ``tests/app/test_fuzz.py`` (``tests/app/fuzzing.py``) with many more examples
per operation (``TBAL_SOAK_FUZZ_EXAMPLES``, default 150), then its crafted upload bodies (40 times as
many), on PostgreSQL. No 5xx allowed."""

from __future__ import annotations

import os
from pathlib import Path

from tests.app.conftest import postgres_schema_url  # noqa: F401  (fixture: a migrated schema)
from tests.app.fuzzing import fuzz, fuzz_uploads, seeded_app

EXAMPLES = int(os.environ.get("TBAL_SOAK_FUZZ_EXAMPLES", "150"))


def test_no_server_error_on_postgres(postgres_schema_url: str, tmp_path: Path) -> None:  # noqa: F811
    with seeded_app(postgres_schema_url, tmp_path) as app:
        fuzz(app, EXAMPLES)
        fuzz_uploads(app, 40 * EXAMPLES)  # crafted .npy/.npz bodies (NUL ids reach PostgreSQL here)
