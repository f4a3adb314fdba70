"""Reading uploaded ``.npy`` / ``.npz`` files without loading them whole: ``.npy`` files and the
uncompressed members of ``.npz`` files (``np.savez``) are memory-mapped; compressed members are read
into memory one at a time (``np.savez_compressed`` leaves no other way)."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import Invalid

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # the zip local file header, 30 bytes


def sniff(path: Path) -> str:
    """'npy' or 'npz' by the file's first bytes; :class:`Invalid` for anything else."""
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGIC):
        return "npz"
    raise Invalid("file", "expected a .npy or .npz file (numpy.save / numpy.savez), got other bytes")


def open_npy(path: Path, offset: int = 0) -> np.ndarray:
    """Memory-map the .npy array that starts at byte ``offset`` of ``path``."""
    with path.open("rb") as f:
        f.seek(offset)
        try:
            version = np.lib.format.read_magic(f)
            shape, fortran, dtype = _read_header(f, version)
        except ValueError as exc:
            raise Invalid("file", f"not a readable .npy array: {exc}") from exc
        data_offset = f.tell()
    if dtype.hasobject:
        raise Invalid("file", "object arrays are not accepted (save plain numeric or string arrays)")
    if int(np.prod(shape)) == 0:
        return np.empty(shape, dtype=dtype)
    size = path.stat().st_size
    needed = data_offset + int(np.prod(shape)) * dtype.itemsize
    if needed > size:
        raise Invalid("file", f"truncated array: header says {shape} {dtype}, the file is too short")
    return np.memmap(
        path, dtype=dtype, mode="r", offset=data_offset, shape=shape, order="F" if fortran else "C"
    )


def _read_header(f: Any, version: tuple[int, int]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    return tuple(shape), bool(fortran), np.dtype(dtype)


def open_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file by name (without ``.npy``): memory maps where stored uncompressed."""
    out: dict[str, np.ndarray] = {}
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise Invalid("file", f"not a readable .npz file: {exc}") from exc
    with archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[: -len(".npy")]
            if info.compress_type == zipfile.ZIP_STORED:
                out[name] = open_npy(path, _member_data_offset(path, info))
            else:
                with archive.open(info) as member:
                    try:
                        out[name] = np.lib.format.read_array(member, allow_pickle=False)
                    except ValueError as exc:
                        raise Invalid(f"file.{name}", f"not a readable array: {exc}") from exc
    return out


def _member_data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    with path.open("rb") as f:
        f.seek(info.header_offset)
        header = f.read(_LOCAL_HEADER.size)
    fields = _LOCAL_HEADER.unpack(header)
    if fields[0] != ZIP_MAGIC:
        raise Invalid("file", f"corrupt .npz member {info.filename}")
    name_len, extra_len = fields[-2], fields[-1]
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
