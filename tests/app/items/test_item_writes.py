"""The set-based writes of items, their texts and ground truth (one statement a chunk on SQLite, COPY or
arrays on PostgreSQL) store exactly what the rows say, in order, skip what the project holds, and keep
any string as it was; the id lookup on the driver's cursor; image decoding on one thread or several."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.db.bulk import ID_CHUNK
from app.db.models import Project
from app.items import repository as items_repo
from app.items.raw import images as raw_images
from app.items.raw.texts import write_texts
from tests.app.conftest import text_project

MakeProject = Callable[..., dict[str, Any]]
ODD = [
    "plain",
    'a "quote", a \\ backslash',
    "emoji 😀, accents é ü, CJK 漢字",
    "tab\tnewline\ncarriage\r",
    "control \x01 \x1f",
    "[1, 2]",
    '{"a": 1}',
    "null",
    "  spaces  ",
    "line\u2028separator",
]


def _stored(factory: sessionmaker[Session], pid: int) -> list[tuple[int, str, bytes, int | None, str]]:
    with factory() as session:
        rows = session.execute(
            text(
                "SELECT i.id, i.external_id, i.data, g.label, t.text FROM items i "
                "LEFT JOIN ground_truth g ON g.item_id = i.id "
                "LEFT JOIN item_texts t ON t.project_id = i.project_id AND t.external_id = i.external_id "
                "WHERE i.project_id = :p ORDER BY i.id"
            ),
            {"p": pid},
        ).all()
    return [(int(r[0]), str(r[1]), bytes(r[2]), r[3], str(r[4])) for r in rows]


def test_text_items_are_stored_as_given_in_order_and_known_ones_skipped(
    make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = text_project(make_project, "hashing:16")["id"]
    rng = np.random.default_rng(0)
    ids = [f"id {s}" for s in ODD]
    X = rng.standard_normal((len(ODD), 16)).astype(np.float32)
    truth = np.array([i % 3 - 1 for i in range(len(ODD))], dtype=np.int64)  # -1, 0, 1, -1, ...
    first = 6
    with session_factory() as session:
        project = session.get(Project, pid)
        assert project is not None
        done = write_texts(session, project, ids[:first], ODD[:first], X[:first], truth[:first], 4)
        assert (done.inserted, done.ground_truth_added) == (first, int((truth[:first] >= 0).sum()))
        # again with all of them, other texts and features for the known ones: only the new ones go in
        changed = [f"other {t}" for t in ODD]
        done = write_texts(session, project, ids, changed, X + 1, truth, 4)
        assert (done.inserted, done.ground_truth_added) == (len(ODD) - first, int((truth[first:] >= 0).sum()))
    rows = _stored(session_factory, pid)
    assert [r[1] for r in rows] == ids
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)  # ids in upload order
    assert [r[4] for r in rows] == ODD[:first] + changed[first:]
    expected = np.concatenate([X[:first], X[first:] + 1])
    np.testing.assert_array_equal(np.stack([np.frombuffer(r[2], dtype="<f4") for r in rows]), expected)
    assert [-1 if r[3] is None else r[3] for r in rows] == truth.tolist()


def test_ids_by_external_finds_the_projects_ids_beyond_one_chunk(
    make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = text_project(make_project, "hashing:16")["id"]
    other = text_project(make_project, "hashing:16")["id"]
    n = ID_CHUNK + 3
    ids = [f"r{i}" for i in range(n)] + [f"id {s}" for s in ODD]
    X = np.zeros((len(ids), 16), dtype=np.float32)
    none = np.full(len(ids), -1, dtype=np.int64)
    with session_factory() as session:
        project = session.get(Project, pid)
        assert project is not None
        write_texts(session, project, ids, ["t"] * len(ids), X, none, 5_000)
        found = items_repo.ids_by_external(session, pid, [*ids[::-1], "missing", "r0 "])
        stored: dict[str, int] = dict(
            session.execute(text("SELECT external_id, id FROM items WHERE project_id = :p"), {"p": pid}).all()
        )
        assert items_repo.ids_by_external(session, other, ids) == {}
        assert items_repo.ids_by_external(session, pid, []) == {}
    assert found == stored and len(found) == len(ids)


def _image(seed: int, side: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("side", [8, 48])  # ~0.2 KB and ~7 KB a file: one thread, then several
def test_decoding_on_one_thread_or_several_gives_the_same(side: int, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [_image(i, side) for i in range(9)]
    files[4] = b"not an image"
    monkeypatch.setattr(raw_images, "DECODE_THREADS", 2)
    threaded = sum(map(len, files)) >= raw_images.THREADED_FILE_BYTES * len(files)
    assert threaded == (side == 48)
    pixels, problems = raw_images.decode_files(files, (8, 8, 3))
    monkeypatch.setattr(raw_images, "DECODE_THREADS", 1)
    alone, alone_problems = raw_images.decode_files(files, (8, 8, 3))
    np.testing.assert_array_equal(pixels, alone)
    assert problems == alone_problems
    assert [p is None for p in problems] == [i != 4 for i in range(9)]
    assert not pixels[4].any()
