"""Issue 15: hostile bodies get a 4xx naming the field, never a 500, nothing written, bounded memory.

Crafted ``.npy`` headers (negative, overflowing, object, record dimensions and dtypes, oversized
headers), decompression bombs in ``.npz`` members, NUL and lone surrogates in every text that reaches
the database, booleans as classes, malformed JSON, out-of-range query values. Each runs on SQLite and
PostgreSQL (PostgreSQL refuses NUL in text: that is where item 2 was a 500).
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Invalid
from app.items import npy_files
from app.settings import Settings
from tests.app.conftest import TABLES, Api, blobs, count_rows

MakeProject = Callable[..., dict[str, Any]]
MAX_INFLATED = 8 * 1024**2
BOMB_BYTES = 64 * 1024**2
"""What the bomb's X inflates to: 8 times MAX_INFLATED (2,000 times its compressed size)."""
OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The suite's settings with a small inflation limit (the bombs stay small and fast)."""
    return Settings(
        database_url=database_url,
        artifacts_dir=tmp_path / "artifacts",
        upload_dir=tmp_path / "uploads",
        train_device="cpu",
        torch_threads=1,
        db_pool_size=4,
        max_inflated_bytes=MAX_INFLATED,
    )


def npy_bytes(shape: str, descr: str = "'<f4'", body: bytes = b"", version: int = 1) -> bytes:
    """A .npy file whose header says ``shape`` and ``descr`` literally (any text), then ``body``."""
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}"
    length_field = struct.Struct("<H" if version == 1 else "<I")
    prefix = len(npy_files.NPY_MAGIC) + 2 + length_field.size
    padded = header + " " * (-(prefix + len(header) + 1) % 64) + "\n"
    return npy_files.NPY_MAGIC + bytes([version, 0]) + length_field.pack(len(padded)) + padded.encode() + body


def npz_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


def bomb(header_shape: str, zeros: int) -> bytes:
    """A compressed .npz whose X has the header ``header_shape`` (float32) and ``zeros`` zero bytes,
    written chunk by chunk (never held whole)."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("X.npy", "w", force_zip64=True) as member,
    ):
        member.write(npy_bytes(header_shape))
        chunk = bytes(1 << 20)
        for start in range(0, zeros, len(chunk)):
            member.write(chunk[: min(len(chunk), zeros - start)])
    return buffer.getvalue()


@pytest.fixture(scope="module")
def wide_bomb() -> bytes:
    """64 MiB of zeros, compressed to ~64 KiB, as X of shape (n, 5) (the projects here take 4)."""
    return bomb(f"({BOMB_BYTES // 20}, 5)", BOMB_BYTES)


@pytest.fixture(scope="module")
def right_bomb() -> bytes:
    """64 MiB of zeros as X of shape (n, 4): the right width, but more than MAX_INFLATED."""
    return bomb(f"({BOMB_BYTES // 16}, 4)", BOMB_BYTES)


@pytest.fixture
def pid(make_project: MakeProject) -> Iterator[int]:
    yield int(make_project()["id"])


def _upload(api: Api, pid: int, body: bytes, **params: str) -> Any:
    return api.post(f"/api/v1/projects/{pid}/items/upload", content=body, headers=OCTET, params=params)


def _refused(response: Any, field: str, status: int = 422) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail["field"] == field, detail
    return str(detail["reason"])


# -- item 1: crafted .npy headers ---------------------------------------------------------------------

BAD_HEADERS = [
    ("negative rows", npy_bytes("(-1, 4)", body=bytes(16)), "dimension"),
    ("negative width", npy_bytes("(1, -4)", body=bytes(16)), "dimension"),
    ("overflowing size", npy_bytes(f"({2**62}, 4)", body=bytes(16)), "truncated"),
    ("overflowing int64 product", npy_bytes(f"({2**62}, {2**62}, 4)", body=bytes(16)), "file.X"),
    ("object dtype", npy_bytes("(1, 4)", descr="'|O'", body=bytes(32)), "dtype"),
    ("record dtype", npy_bytes("(1, 4)", descr="[('a', '<f4')]", body=bytes(16)), "dtype"),
    ("void dtype", npy_bytes("(1, 4)", descr="'|V4'", body=bytes(16)), "dtype"),
    ("more rows than bytes", npy_bytes("(1000, 4)", body=bytes(16)), "truncated"),
    ("header of 60,000 bytes", npy_bytes("(1, 4)" + " " * 60_000, body=bytes(16)), "header"),
    ("unsupported version", b"\x93NUMPY\x09\x00" + bytes(64), "version"),
    # found by the fuzz test's crafted bodies: numpy's fallback parser raised tokenize.TokenError (a 500)
    ("unclosed header", b"\x93NUMPY\x01\x00" + struct.pack("<H", 17) + b"{'descr': '<f4',\n", "header"),
]


@pytest.mark.parametrize(("name", "raw", "words"), BAD_HEADERS, ids=[c[0] for c in BAD_HEADERS])
@pytest.mark.parametrize("wrapping", ["npy", "npz", "npz-compressed"])
def test_crafted_npy_headers_are_422(
    api: Api,
    pid: int,
    session_factory: sessionmaker[Session],
    name: str,
    raw: bytes,
    words: str,
    wrapping: str,
) -> None:
    before = {t: count_rows(session_factory, t) for t in TABLES}
    body = raw
    if wrapping != "npy":
        compression = zipfile.ZIP_DEFLATED if wrapping == "npz-compressed" else zipfile.ZIP_STORED
        body = npz_bytes({"X": raw}, compression)
    if wrapping == "npz-compressed" and name == "overflowing size":
        words = "inflate"  # the compressed reader refuses by the limit before it looks for the bytes
    reason = _refused(_upload(api, pid, body), "file.X")
    if words != "file.X":
        assert words in reason, reason
    assert {t: count_rows(session_factory, t) for t in TABLES} == before


def test_a_valid_header_still_reads(api: Api, pid: int) -> None:
    X = blobs(3)[0]
    raw = npy_bytes("(3, 4)", body=X.tobytes())
    assert _upload(api, pid, raw, id_prefix="h").json()["inserted"] == 3
    assert (
        _upload(api, pid, npz_bytes({"X": raw}, zipfile.ZIP_DEFLATED), id_prefix="z").json()["inserted"] == 3
    )


def test_a_v2_header_length_of_2_gib_is_not_read() -> None:
    raw = npy_files.NPY_MAGIC + b"\x02\x00" + struct.pack("<I", 2**31) + b"{"
    with pytest.raises(Invalid, match="at most 10000"):
        npy_files.read_header(io.BytesIO(raw))


def test_a_stored_member_cannot_map_its_neighbours_bytes(api: Api, pid: int) -> None:
    """An uncompressed member's header may not claim the bytes of the members after it."""
    short = npy_bytes("(50, 4)", body=bytes(16))  # 800 bytes claimed, 16 held
    filler = npy_bytes("(100,)", descr="'<i8'", body=bytes(800))
    _refused(_upload(api, pid, npz_bytes({"X": short, "y": filler})), "file.X")


# -- item 3: decompression bombs -------------------------------------------------------------------


def _peak_while(call: Callable[[], Any]) -> tuple[Any, int]:
    """(what ``call`` returned or raised, peak bytes traced meanwhile: numpy reports its buffers)."""
    tracemalloc.start()
    try:
        try:
            result: Any = call()
        except Invalid as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_bomb_of_the_wrong_width_is_refused_from_its_header(tmp_path: Path, wide_bomb: bytes) -> None:
    assert len(wide_bomb) < BOMB_BYTES // 500
    path = tmp_path / "bomb.npz"
    path.write_bytes(wide_bomb)

    def check(field: str, header: npy_files.ArrayHeader) -> None:
        if header.shape[1:] != (4,):
            raise Invalid(field, f"wrong width {header.shape}")

    result, peak = _peak_while(lambda: npy_files.open_npz(path, max_inflated_bytes=2**40, check=check))
    assert isinstance(result, Invalid) and "wrong width" in result.reason
    assert peak < 2 * 1024**2, f"peak {peak} bytes while refusing a {BOMB_BYTES}-byte bomb"


def test_a_bomb_over_the_limit_is_refused_before_it_is_inflated(tmp_path: Path, right_bomb: bytes) -> None:
    path = tmp_path / "bomb.npz"
    path.write_bytes(right_bomb)
    result, peak = _peak_while(lambda: npy_files.open_npz(path, max_inflated_bytes=MAX_INFLATED))
    assert isinstance(result, Invalid) and "inflates to" in result.reason
    assert peak < 2 * 1024**2, f"peak {peak} bytes"


def test_a_member_longer_than_its_header_stops_one_byte_past_it(tmp_path: Path) -> None:
    """The header says 32 bytes; the stream holds 64 MiB more: reading stops right after the 33rd."""
    path = tmp_path / "long.npz"
    path.write_bytes(bomb("(2, 4)", BOMB_BYTES))
    result, peak = _peak_while(lambda: npy_files.open_npz(path, max_inflated_bytes=2**40))
    assert isinstance(result, Invalid) and "more data" in result.reason
    assert peak < 2 * 1024**2, f"peak {peak} bytes"


def test_a_member_shorter_than_its_header_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "short.npz"
    path.write_bytes(npz_bytes({"X": npy_bytes("(100, 4)", body=bytes(16))}, zipfile.ZIP_DEFLATED))
    with pytest.raises(Invalid, match="truncated"):
        npy_files.open_npz(path, max_inflated_bytes=2**40)


def test_bombs_through_the_api_are_422_and_write_nothing(
    api: Api,
    pid: int,
    session_factory: sessionmaker[Session],
    wide_bomb: bytes,
    right_bomb: bytes,
) -> None:
    assert "shape (n, 4)" in _refused(_upload(api, pid, wide_bomb), "file.X")
    assert f"at most {MAX_INFLATED}" in _refused(_upload(api, pid, right_bomb), "file.X")
    assert count_rows(session_factory, "items") == 0


def test_unexpected_members_are_refused_before_they_are_read(api: Api, pid: int) -> None:
    body = npz_bytes({"X": npy_bytes("(1, 4)", body=bytes(16)), "junk": npy_bytes("(1,)", body=bytes(4))})
    assert "unexpected array" in _refused(_upload(api, pid, body), "file.junk")


# -- items 2, 5, 6: the string rules and classes -----------------------------------------------------

NUL = "a\x00b"
SURROGATE_JSON = '"a\\ud800b"'
"""A lone surrogate, as JSON text (Python's json.loads keeps it; PostgreSQL cannot store it)."""


def test_nul_in_id_prefix_is_422(api: Api, pid: int) -> None:
    X = blobs(2)[0]
    raw = npy_bytes("(2, 4)", body=X.tobytes())
    assert "NUL" in _refused(_upload(api, pid, raw, id_prefix=NUL), "id_prefix")
    assert _upload(api, pid, raw, id_prefix="ok-").json()["inserted"] == 2


def test_bad_external_ids_in_a_file_are_422(api: Api, pid: int) -> None:
    X = blobs(2)[0]
    for ids, words in ((np.array(["a", NUL]), "NUL"), (np.array(["a", "\ud800"]), "surrogate")):
        buffer = io.BytesIO()
        np.savez(buffer, X=X, external_ids=ids)
        assert words in _refused(_upload(api, pid, buffer.getvalue()), "file.external_ids")


def _raw_json(api: Api, url: str, text: str) -> Any:
    return api.post(url, content=text.encode(), headers={"Content-Type": "application/json"})


def test_class_names_follow_the_string_rules(api: Api, session_factory: sessionmaker[Session]) -> None:
    base = '{"name": "p%s", "data_kind": "features", "input_shape": [4], "classes": ["x", %s]}'
    for i, cls in enumerate(('"a\\u0000b"', SURROGATE_JSON, '""', '"' + "c" * 201 + '"')):
        response = _raw_json(api, "/api/v1/projects", base % (i, cls))
        _refused(response, "classes.1")
    assert count_rows(session_factory, "projects") == 0


def test_labels_refuse_nul_surrogates_and_booleans(api: Api, pid: int) -> None:
    url = f"/api/v1/projects/{pid}/labels"
    X = blobs(2)[0]
    _upload(api, pid, npy_bytes("(2, 4)", body=X.tobytes()), id_prefix="i")
    cases = [
        ('{"labels": [{"external_id": "i0", "label": true}]}', "labels.0.label"),
        ('{"labels": [{"external_id": "i0", "label": 1.0}]}', "labels.0.label"),
        ('{"labels": [{"external_id": "i0", "votes": {"a\\u0000": 1}}]}', "labels.0.votes"),
        ('{"labels": [{"external_id": "i0", "votes": {"ann": true}}]}', "labels.0.votes"),
        ('{"labels": [{"external_id": "i0", "label": ' + SURROGATE_JSON + "}]}", "labels.0.label"),
        ('{"labels": [{"external_id": ' + SURROGATE_JSON + ', "label": 1}]}', "labels.0.external_id"),
        ('{"labels": [{"external_id": "i0", "label": 1}], "source": "a\\u0000"}', "source"),
    ]
    for text, field in cases:
        response = _raw_json(api, url, text)
        assert response.status_code == 422, (text, response.text)
        assert response.json()["detail"]["field"].startswith(field), (text, response.json())
    ok = _raw_json(
        api, url, '{"labels": [{"external_id": "i0", "label": 1}, {"external_id": "i1", "label": "c"}]}'
    )
    assert ok.status_code == 200, ok.text


def test_items_refuse_boolean_ground_truth(api: Api, pid: int) -> None:
    text = '{"items": [{"external_id": "t", "features": [1, 2, 3, 4], "ground_truth": true}]}'
    _refused(_raw_json(api, f"/api/v1/projects/{pid}/items", text), "items.0.ground_truth.int")


def test_key_and_settings_names_follow_the_string_rules(api: Api, pid: int) -> None:
    assert _raw_json(api, "/api/v1/keys", '{"name": ' + SURROGATE_JSON + "}").status_code == 422
    patch = api.client.patch(
        f"/api/v1/projects/{pid}",
        content=b'{"settings": {"colander": {"a\\u0000": 1.0}}}',
        headers={**api.headers, "Content-Type": "application/json"},
    )
    assert patch.status_code == 422, patch.text


# -- item 12: malformed JSON, confidence range --------------------------------------------------------


def test_malformed_json_says_where(api: Api, pid: int) -> None:
    response = _raw_json(api, f"/api/v1/projects/{pid}/items", '{"items": [\n  {"external_id": "a",}\n]}')
    reason = _refused(response, "body")
    assert "line 2, column 23" in reason and "malformed JSON" in reason, reason


@pytest.mark.parametrize("params", [{"min_confidence": "2"}, {"max_confidence": "-0.1"}])
def test_confidence_filters_are_probabilities(api: Api, pid: int, params: dict[str, str]) -> None:
    response = api.get(f"/api/v1/projects/{pid}/auto-labels", params=params)
    assert response.status_code == 422, response.text


def test_min_confidence_above_max_is_422(api: Api, pid: int) -> None:
    params = {"min_confidence": "0.9", "max_confidence": "0.1"}
    _refused(api.get(f"/api/v1/projects/{pid}/auto-labels", params=params), "min_confidence")
    assert api.get(f"/api/v1/projects/{pid}/auto-labels", params={"min_confidence": "1"}).status_code == 200


def test_a_second_start_while_the_first_is_queued_says_queued(api: Api, make_project: MakeProject) -> None:
    """Issue 15, item 12: the 409 names the first round's real status (no worker takes it here)."""
    from tests.app.conftest import RecordingDispatcher, ready_project

    pid = ready_project(api, make_project)
    state = api.client.app.state.tbal  # type: ignore[attr-defined]
    real, state.dispatcher = state.dispatcher, RecordingDispatcher()
    try:
        first = api.post(f"/api/v1/projects/{pid}/rounds")
        assert first.status_code == 202 and first.json()["status"] == "queued", first.text
        reason = _refused(api.post(f"/api/v1/projects/{pid}/rounds"), "round", 409)
        assert f"round {first.json()['id']} is queued" in reason, reason
    finally:
        state.dispatcher = real


def test_a_huge_json_feature_list_is_refused_before_it_is_converted(api: Api, pid: int) -> None:
    """A JSON item whose features are far longer than the project's width is refused from its length
    (no float64 array of it is made); numbers stay as parsed (list[float | int], not new floats)."""
    text = '{"items": [{"external_id": "j", "features": [' + "0," * 200_000 + "0]}]}"
    reason = _refused(_raw_json(api, f"/api/v1/projects/{pid}/items", text), "items.0.features")
    assert "200001 values" in reason, reason


def test_multipart_media_type_is_case_insensitive(api: Api, pid: int) -> None:
    X = blobs(2)[0]
    raw = npy_bytes("(2, 4)", body=X.tobytes())
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.npy"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + raw
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = api.post(
        f"/api/v1/projects/{pid}/items/upload",
        content=body,
        headers={"Content-Type": f"Multipart/Form-Data; boundary={boundary}"},
        params={"id_prefix": "m"},
    )
    assert response.status_code == 200 and response.json()["inserted"] == 2, response.text


def test_external_ids_beyond_unicode_are_422(api: Api, pid: int) -> None:
    """A '<U2' array may hold any 32-bit values; past U+10FFFF numpy's tolist() raised SystemError (a 500)."""
    X = blobs(2)[0]
    ids = np.frombuffer(struct.pack("<4I", 97, 0, 0xFFFFFFFF, 0), dtype="<U2")
    buffer = io.BytesIO()
    np.savez(buffer, X=X, external_ids=ids)
    assert "row 1" in _refused(_upload(api, pid, buffer.getvalue()), "file.external_ids")


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_member_twice_is_422(api: Api, pid: int) -> None:
    one, other = npy_bytes("(1, 4)", body=bytes(16)), npy_bytes("(2, 4)", body=bytes(32))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("X.npy", one)
        archive.writestr("X.npy", other)
    assert "more than once" in _refused(_upload(api, pid, buffer.getvalue()), "file")


@pytest.mark.parametrize("name", ["preset", "bound", "model", "confidence", "query_strategy", "encoder"])
def test_setting_names_follow_the_string_rules(api: Api, pid: int, name: str) -> None:
    text = '{"settings": {"%s": "a\\u0000b"}}' % name  # noqa: UP031  (JSON braces)
    response = api.client.patch(
        f"/api/v1/projects/{pid}",
        content=text.encode(),
        headers={**api.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["field"].startswith(f"settings.{name}"), response.json()


def test_a_huge_zip_directory_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """20,000 empty members (a 2 MB body; 2 GiB of them would be 20 M entries, one object each in
    zipfile): refused from the end record's directory size."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(20_000):
            archive.writestr(f"{i}.npy", b"")
    path = tmp_path / "many.npz"
    path.write_bytes(buffer.getvalue())
    result, peak = _peak_while(lambda: npy_files.open_npz(path, max_inflated_bytes=2**30))
    assert isinstance(result, Invalid) and "directory" in result.reason, result
    assert peak < 1024**2, f"peak {peak} bytes"


def test_a_zip64_directory_size_counts_too(tmp_path: Path) -> None:
    """The zip64 end record is what zipfile believes: a small classic record does not hide a big one."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("X.npy", npy_bytes("(1, 4)", body=bytes(16)))
    raw = buffer.getvalue()
    end = raw.rfind(b"PK\x05\x06")
    (offset,) = struct.unpack_from("<L", raw, end + 16)
    zip64_end = struct.pack("<4sQ2H2L2Q2Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1, 10**9, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    path = tmp_path / "zip64.npz"
    path.write_bytes(raw[:end] + zip64_end + locator + raw[end:])
    with pytest.raises(Invalid, match="directory is 1000000000 bytes"):
        npy_files.open_npz(path, max_inflated_bytes=2**30)
