"""How an ingest job's raw items are staged: in chunks of consecutive items, each one row of
``ingest_job_chunks`` holding its items serialised together (a few hundred items a row instead of one,
so that staging, reading back and deleting cost per chunk, not per item).

A chunk's ``seq`` is its first item's place in the upload; its items are ``seq, seq + 1, ...`` (no gaps:
:func:`group` starts a new chunk where the upload's seqs jump). Serialised (format 1): one byte ``0x01``,
the length of a JSON header as a little-endian uint32, the header (ASCII JSON: ``ids``, ``texts``,
``labels`` and ``sizes``: one entry per item, None for a missing text or label, -1 for missing bytes),
then the items' bytes one after another.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

FORMAT = 1
HEAD = struct.Struct("<BI")
CHUNK_ITEMS = 512
"""Items a chunk holds at most unless the caller says (the service: ``ingest_job_batch``)."""
CHUNK_BYTES = 8 << 20
"""Bytes of texts and files a chunk holds at most (one item alone may be larger)."""


class Staged(NamedTuple):
    """One raw item of a job as the upload gave it (``seq``: its place in the upload, from 0)."""

    seq: int
    external_id: str
    text: str | None
    data: bytes | None
    label: Any  # a class name or index, None: unknown


def group(
    rows: Iterable[Staged], items: int = CHUNK_ITEMS, max_bytes: int = CHUNK_BYTES
) -> Iterator[list[Staged]]:
    """``rows`` (in upload order) as chunks of consecutive seqs, at most ``items`` items and about
    ``max_bytes`` bytes each."""
    part: list[Staged] = []
    size = 0
    for row in rows:
        row_bytes = len(row.data or b"") + len(row.text or "")
        if part and (len(part) >= items or size + row_bytes > max_bytes or row.seq != part[-1].seq + 1):
            yield part
            part, size = [], 0
        part.append(row)
        size += row_bytes
    if part:
        yield part


def pack(rows: Sequence[Staged]) -> bytes:
    """One chunk's items serialised (see the module docstring); their seqs are implied by the first."""
    head = json.dumps({
        "ids": [r.external_id for r in rows],
        "texts": [r.text for r in rows],
        "labels": [r.label for r in rows],
        "sizes": [-1 if r.data is None else len(r.data) for r in rows],
    }).encode("ascii")  # fmt: skip
    return b"".join([HEAD.pack(FORMAT, len(head)), head, *(r.data for r in rows if r.data is not None)])


def unpack(seq: int, blob: bytes) -> list[Staged]:
    """The items of the chunk whose first item is ``seq``, as :func:`pack` wrote them."""
    version, length = HEAD.unpack_from(blob)
    if version != FORMAT:
        raise ValueError(f"staged chunk {seq}: unknown format {version}")
    start = HEAD.size + length
    head = json.loads(bytes(blob[HEAD.size : start]))
    view = memoryview(blob)
    rows: list[Staged] = []
    for i, (ext, text, label, size) in enumerate(
        zip(head["ids"], head["texts"], head["labels"], head["sizes"], strict=True)
    ):
        data = None
        if size >= 0:
            data = bytes(view[start : start + size])
            start += size
        rows.append(Staged(seq + i, ext, text, data, label))
    return rows
