"""Receiving a binary upload into a temporary file, streamed (the body is never held whole in memory):
a raw body (``application/octet-stream``) or a multipart form with a ``file`` part."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastapi import Request
from starlette.datastructures import UploadFile

from app.errors import Invalid
from app.middleware import media_type
from app.settings import Settings

CHUNK = 1 << 20

UPLOAD_OPENAPI: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


async def receive_upload(request: Request, settings: Settings) -> Path:
    """Write the uploaded file to a temporary path and return it (the caller deletes it)."""
    directory = str(settings.upload_dir) if settings.upload_dir else None
    if directory:
        os.makedirs(directory, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="tbal-upload-", suffix=".bin", dir=directory)
    path = Path(name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            if media_type(request.headers.get("content-type", "").encode("latin-1")) == "multipart/form-data":
                async with request.form(max_files=1, max_fields=8) as form:
                    upload = form.get("file")
                    if not isinstance(upload, UploadFile):
                        raise Invalid(
                            "file", "expected a multipart part named 'file' holding the .npy/.npz file"
                        )
                    while chunk := await upload.read(CHUNK):
                        out.write(chunk)
                        size += len(chunk)
            else:
                async for chunk in request.stream():
                    out.write(chunk)
                    size += len(chunk)
        if size == 0:
            raise Invalid("body", "empty upload: send a .npy or .npz file as the body or as the 'file' part")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
