"""Reading uploaded ``.npy`` / ``.npz`` files without trusting them and without loading them whole.

Every array's header is read by hand and checked before anything is allocated: a header of at most
:data:`MAX_HEADER_BYTES`, a plain dtype (booleans, integers, floats, byte or unicode strings: no
objects, records or void), at most :data:`MAX_DIMS` dimensions, each ≥ 0, and a byte size (computed
with Python integers, so it cannot overflow) that the file really holds. ``.npy`` files and the
uncompressed members of ``.npz`` files (``np.savez``) are then memory-mapped, within their own bytes.

Compressed members (``np.savez_compressed``) must be inflated into memory. Their header is inflated
first and shown to the caller's ``check`` (an upload checks the item shape there, so a member of the
wrong width is refused after a few hundred inflated bytes); then at most ``max_inflated_bytes`` in all
are inflated, :data:`INFLATE_CHUNK` bytes at a time, straight into an array of the size the header
gives, and a member whose stream holds more or fewer bytes than its header says is refused. A small
body that inflates to gigabytes (a "zip bomb") therefore costs at most ``max_inflated_bytes`` of
memory, and only when its header asks for that much.
"""

from __future__ import annotations

import io
import math
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from app.errors import Invalid

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # the zip local file header, 30 bytes
MAX_HEADER_BYTES = 10_000
"""Longest .npy header accepted (numpy's own safe-load limit)."""
MAX_DIMS = 32
ALLOWED_KINDS = "biufSU"
"""dtype kinds accepted: bool, signed/unsigned integers, floats, byte and unicode strings."""
INFLATE_CHUNK = 1 << 20
MAX_MEMBERS = 16
"""Most members an .npz may have (an upload holds X, external_ids, y)."""
MAX_DIRECTORY_BYTES = 64 * 1024
"""Largest zip central directory read (an upload's few members need a few hundred bytes)."""
_END_MAGIC = b"PK\x05\x06"
_END_RECORD = struct.Struct("<4s4H2LH")  # end of central directory: ..., directory size, offset, comment
_ZIP64_LOCATOR_MAGIC = b"PK\x06\x07"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # magic, disk, offset of the zip64 end record, disks
_ZIP64_END = struct.Struct("<4sQ2H2L2Q2Q")  # ..., entries on disk, entries, directory size, offset
_LENGTH_FIELD = {(1, 0): struct.Struct("<H"), (2, 0): struct.Struct("<I")}


@dataclass(frozen=True)
class ArrayHeader:
    """What an .npy header says: shape, dtype and order; ``nbytes`` is the body's exact length."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran: bool

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


HeaderCheck = Callable[[str, ArrayHeader], None]
"""Called with (member name, header) before an array's data is mapped or inflated; raises
:class:`Invalid` to refuse it."""


def sniff(path: Path) -> str:
    """'npy' or 'npz' by the file's first bytes; :class:`Invalid` for anything else."""
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGIC):
        return "npz"
    raise Invalid("file", "expected a .npy or .npz file (numpy.save / numpy.savez), got other bytes")


def read_header(f: IO[bytes], field: str = "file") -> ArrayHeader:
    """Read and check the .npy header at ``f``'s position, leaving ``f`` at the array's first byte.

    Raises :class:`Invalid` naming ``field`` for a header that is unreadable, too long, or describes an
    array this service does not take (see the module docstring)."""
    preamble = _read_exactly(f, len(NPY_MAGIC) + 2, field, "the .npy header")
    if not preamble.startswith(NPY_MAGIC):
        raise Invalid(field, "not a .npy array (no \\x93NUMPY magic)")
    version = (preamble[-2], preamble[-1])
    length_field = _LENGTH_FIELD.get(version)
    if length_field is None:
        raise Invalid(field, f"unsupported .npy version {version[0]}.{version[1]} (1.0 and 2.0 are read)")
    raw_length = _read_exactly(f, length_field.size, field, "the .npy header")
    (length,) = length_field.unpack(raw_length)
    if length > MAX_HEADER_BYTES:
        raise Invalid(field, f"the .npy header is {length} bytes long; at most {MAX_HEADER_BYTES} are read")
    text = _read_exactly(f, length, field, "the .npy header")
    parse = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        shape, fortran, dtype = parse(io.BytesIO(raw_length + text))
    # numpy parses the header as a Python literal (falling back to tokenizing it): whatever a parser
    # raises on text that is not one is this file's fault
    except (ValueError, TypeError, SyntaxError, tokenize.TokenError, RecursionError) as exc:
        raise Invalid(field, f"not a readable .npy header: {str(exc)[:200]}") from exc
    return _checked_header(tuple(shape), bool(fortran), np.dtype(dtype), field)


def _checked_header(shape: tuple[Any, ...], fortran: bool, dtype: np.dtype[Any], field: str) -> ArrayHeader:
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise Invalid(field, f"object, record and sub-array dtypes are not accepted, got {dtype}")
    if dtype.kind not in ALLOWED_KINDS or dtype.itemsize == 0:
        raise Invalid(field, f"expected a numeric or string array, got dtype {dtype}")
    if len(shape) > MAX_DIMS:
        raise Invalid(field, f"expected at most {MAX_DIMS} dimensions, got {len(shape)}")
    if not all(type(s) is int and s >= 0 for s in shape):
        raise Invalid(field, f"every dimension must be an integer >= 0, got shape {shape}")
    return ArrayHeader(shape=tuple(shape), dtype=dtype, fortran=fortran)


def _read_exactly(f: IO[bytes], n: int, field: str, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise Invalid(field, f"truncated file: {what} ends early")
    return data


def open_npy(
    path: Path,
    offset: int = 0,
    end: int | None = None,
    *,
    field: str = "file",
    check: HeaderCheck | None = None,
) -> np.ndarray:
    """Memory-map the .npy array stored in bytes ``offset..end`` of ``path`` (default: to the file's end),
    after checking its header (and showing it to ``check`` as ``field``)."""
    end = path.stat().st_size if end is None else end
    with path.open("rb") as f:
        f.seek(offset)
        header = read_header(f, field)
        data_offset = f.tell()
    if check is not None:
        check(field, header)
    if header.nbytes > end - data_offset:
        raise Invalid(
            field,
            f"truncated array: the header says shape {header.shape} {header.dtype} "
            f"({header.nbytes} bytes), the file holds {max(0, end - data_offset)}",
        )
    if header.nbytes == 0:
        return np.empty(header.shape, dtype=header.dtype)
    return np.memmap(
        path,
        dtype=header.dtype,
        mode="r",
        offset=data_offset,
        shape=header.shape,
        order="F" if header.fortran else "C",
    )


def open_npz(
    path: Path, *, max_inflated_bytes: int, check: HeaderCheck | None = None
) -> dict[str, np.ndarray]:
    """The arrays of an .npz file by name (without ``.npy``): memory maps where stored uncompressed,
    in-memory arrays (``max_inflated_bytes`` in all at most) where compressed. Each header is shown to
    ``check`` as ``file.<name>`` before its data are read."""
    _check_directory_size(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise Invalid("file", f"not a readable .npz file: {exc}") from exc
    out: dict[str, np.ndarray] = {}
    budget = max_inflated_bytes
    with archive:
        members = [info for info in archive.infolist() if info.filename.endswith(".npy")]
        if len(members) > MAX_MEMBERS:
            raise Invalid("file", f"expected at most {MAX_MEMBERS} arrays in the .npz, got {len(members)}")
        names = [info.filename for info in members]
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise Invalid("file", f"the .npz holds {twice} more than once (which one is meant?)")
        for info in members:
            name = info.filename[: -len(".npy")]
            field = f"file.{name}"
            if info.compress_type == zipfile.ZIP_STORED:
                start = _member_data_offset(path, info)
                out[name] = open_npy(path, start, start + info.compress_size, field=field, check=check)
            else:
                out[name] = _inflate(archive, info, field, budget, check)
                budget -= out[name].nbytes
    return out


def _check_directory_size(path: Path) -> None:
    """Refuse an archive whose central directory is over :data:`MAX_DIRECTORY_BYTES`, from its end
    record, before :mod:`zipfile` reads it: it builds an object per entry (a 19 MB body of 200,000 empty
    members cost 113 MB and 15 s; 2 GiB of them would cost gigabytes)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        start = max(0, size - _END_RECORD.size - 0xFFFF)  # the record, then a comment of 64 KiB at most
        f.seek(start)
        tail = f.read()
        at = tail.rfind(_END_MAGIC)
        if at < 0 or len(tail) - at < _END_RECORD.size:
            raise Invalid("file", "not a readable .npz file: no zip end record")
        directory = _END_RECORD.unpack_from(tail, at)[5]
        locator = at - _ZIP64_LOCATOR.size
        # zipfile takes the zip64 record's figures whenever its locator is there: so does this check
        if locator >= 0 and tail[locator : locator + 4] == _ZIP64_LOCATOR_MAGIC:
            f.seek(_ZIP64_LOCATOR.unpack_from(tail, locator)[2])
            record = f.read(_ZIP64_END.size)
            if len(record) != _ZIP64_END.size:
                raise Invalid("file", "not a readable .npz file: truncated zip64 end record")
            directory = _ZIP64_END.unpack(record)[8]
    if directory > MAX_DIRECTORY_BYTES:
        raise Invalid(
            "file", f"the .npz's directory is {directory} bytes; at most {MAX_DIRECTORY_BYTES} are read"
        )


def _inflate(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, field: str, budget: int, check: HeaderCheck | None
) -> np.ndarray:
    """A compressed member read into memory in bounded chunks (see the module docstring)."""
    try:
        with archive.open(info) as member:
            header = read_header(member, field)
            if check is not None:
                check(field, header)
            if header.nbytes > budget:
                raise Invalid(
                    field,
                    f"the compressed array inflates to {header.nbytes} bytes; at most {budget} more may be "
                    "inflated (send large arrays uncompressed, np.savez, or as a .npy)",
                )
            data = _read_into(member, header.nbytes, field)
            if member.read(1):
                raise Invalid(field, f"the member holds more data than its header's {header.nbytes} bytes")
    # what zipfile / zlib raise on a corrupt, encrypted or oddly compressed member (Invalid passes through)
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        RuntimeError,
        OSError,
        ValueError,
    ) as exc:
        raise Invalid(field, f"not a readable .npz member: {str(exc)[:200]}") from exc
    return data.view(header.dtype).reshape(header.shape, order="F" if header.fortran else "C")


def _read_into(member: IO[bytes], nbytes: int, field: str) -> np.ndarray:
    """Exactly ``nbytes`` from ``member``, read :data:`INFLATE_CHUNK` at a time into one buffer."""
    data = np.empty(nbytes, dtype=np.uint8)
    filled = 0
    while filled < nbytes:
        chunk = member.read(min(INFLATE_CHUNK, nbytes - filled))
        if not chunk:
            raise Invalid(field, f"truncated member: {filled} of the header's {nbytes} bytes")
        data[filled : filled + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        filled += len(chunk)
    return data


def _member_data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    with path.open("rb") as f:
        f.seek(info.header_offset)
        header = f.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or _LOCAL_HEADER.unpack(header)[0] != ZIP_MAGIC:
        raise Invalid("file", f"corrupt .npz member {info.filename}")
    fields = _LOCAL_HEADER.unpack(header)
    name_len, extra_len = fields[-2], fields[-1]
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
