"""Zip and tar archives of image files: their members as named files, with the archive refused when a
path escapes, a member is a link or device, or it expands too much (see :func:`archive_images`)."""

from __future__ import annotations

import io
import posixpath
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app.errors import Invalid

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_ARCHIVE_MEMBERS = 100_000
MAX_ARCHIVE_BYTES = 2 << 30
"""Most bytes all images of one archive may expand to."""
MAX_MEMBER_RATIO = 100
"""Largest expansion ratio of one compressed zip member (a PNG or JPEG barely compresses further)."""
IGNORED_PARTS = ("__MACOSX",)
LOCAL_HEADER = struct.Struct("<4s22xHH")
"""A zip member's local file header (APPNOTE 4.3.7): its signature, then 22 bytes we skip, then the
lengths of its file name and extra field, which precede the member's data."""


@dataclass(frozen=True)
class ImageFile:
    """One uploaded image: its name (file name or archive path, the item's id after ``id_prefix``)."""

    name: str
    data: bytes


def is_archive(name: str, head: bytes) -> bool:
    """A zip or tar (plain, gzip, bzip2, xz) file, by its first bytes or its name."""
    lower = name.lower()
    if lower.endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return True
    return head.startswith((b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ")) or head[257:262] == b"ustar"


def archive_images(data: bytes | Path, field: str = "file") -> list[ImageFile]:
    """The image files of a zip or tar archive, named by their paths inside it. Refused (422 on
    ``field``): paths that are absolute or climb out (``..``), links and devices, more than
    :data:`MAX_ARCHIVE_MEMBERS` files, more than :data:`MAX_ARCHIVE_BYTES` expanded, a zip member that
    expands more than :data:`MAX_MEMBER_RATIO` times. Folders, hidden files and ``__MACOSX`` are skipped;
    a file with another suffix than PNG/JPEG/WebP/BMP is an error naming it."""
    source: Path | io.BytesIO = data if isinstance(data, Path) else io.BytesIO(data)
    head = _head(source)
    if head.startswith(b"PK"):
        return list(_zip_members(source, field))
    return list(_tar_members(source, field))


def _head(source: Path | io.BytesIO) -> bytes:
    if isinstance(source, Path):
        with source.open("rb") as handle:
            return handle.read(4)
    return source.getvalue()[:4]


def _zip_members(source: Path | io.BytesIO, field: str) -> Iterator[ImageFile]:
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as exc:
        raise Invalid(field, f"not a readable zip archive: {exc}") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        _check_members(len(infos), sum(i.file_size for i in infos), field)
        handle = archive.fp
        for info in infos:
            name = _member_name(info.filename, field)
            if name is None:
                continue
            if info.file_size > MAX_MEMBER_RATIO * max(info.compress_size, 1) and info.file_size > 1 << 20:
                raise Invalid(f"{field}.{name}", f"expands more than {MAX_MEMBER_RATIO} times (zip bomb?)")
            try:
                stored = _stored_member(handle, info) if handle is not None else None
                yield ImageFile(name, stored if stored is not None else archive.read(info))
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise Invalid(f"{field}.{name}", f"cannot read this archive member: {exc}") from exc


def _stored_member(handle: IO[bytes], info: zipfile.ZipInfo) -> bytes | None:
    """A member stored without compression or encryption (what image archives hold: PNG and JPEG do
    not compress further), read straight from the archive and checked against its CRC-32; None for
    any other member (:meth:`zipfile.ZipFile.read` reads it). The same bytes as ``read``, without its
    per-member objects (~40 % of reading a small PNG's member)."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    handle.seek(info.header_offset)
    header = handle.read(LOCAL_HEADER.size)
    if len(header) != LOCAL_HEADER.size:
        raise zipfile.BadZipFile("truncated local file header")
    signature, name_length, extra_length = LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local file header")
    handle.seek(name_length + extra_length, io.SEEK_CUR)
    data = handle.read(info.file_size)
    if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
        raise zipfile.BadZipFile("truncated, or its CRC-32 does not match")
    return data


def _tar_members(source: Path | io.BytesIO, field: str) -> Iterator[ImageFile]:
    try:
        if isinstance(source, Path):
            archive = tarfile.open(name=source, mode="r:*")  # noqa: SIM115 (closed by the with below)
        else:
            archive = tarfile.open(fileobj=source, mode="r:*")  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise Invalid(field, f"not a readable zip or tar archive: {exc}") from exc
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise Invalid(field, f"truncated or corrupt tar archive: {exc}") from exc
        files = [m for m in members if not m.isdir()]
        _check_members(len(files), sum(m.size for m in files), field)
        for member in files:
            name = _member_name(member.name, field)
            if name is None:
                continue
            if not member.isreg() or stat.S_ISLNK(member.mode):
                raise Invalid(f"{field}.{name}", "links and special files are not accepted in archives")
            handle = archive.extractfile(member)
            if handle is None:
                raise Invalid(f"{field}.{name}", "cannot read this archive member")
            yield ImageFile(name, handle.read())


def _check_members(count: int, expanded: int, field: str) -> None:
    if count > MAX_ARCHIVE_MEMBERS:
        raise Invalid(field, f"{count} files in the archive; at most {MAX_ARCHIVE_MEMBERS}")
    if expanded > MAX_ARCHIVE_BYTES:
        raise Invalid(field, f"the archive expands to {expanded} bytes; at most {MAX_ARCHIVE_BYTES}")


def _member_name(name: str, field: str) -> str | None:
    """The member's path as an item name (normalised as :class:`~pathlib.PurePosixPath` does: no empty
    or ``.`` parts); None for one to skip; 422 for one that escapes. String operations: a path object a
    member cost as much as reading a small PNG."""
    raw = name.replace("\\", "/")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if raw.startswith("/") or ".." in parts or (parts and parts[0].endswith(":")):
        raise Invalid(field, f"archive member {name!r} has a path outside the archive")
    if any(part.startswith(".") or part in IGNORED_PARTS for part in parts):
        return None
    if not parts or posixpath.splitext(parts[-1])[1].lower() not in IMAGE_SUFFIXES:
        raise Invalid(f"{field}.{name}", f"not an image file name; expected {', '.join(IMAGE_SUFFIXES)}")
    return "/".join(parts)
