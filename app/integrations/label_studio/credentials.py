"""The Label Studio access token at rest: encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from the
``cryptography`` package) under the service's ``secret_key``, never logged and never returned by the API
(the connection's read says only whether a token is set).

The key: ``TBAL_SECRET_KEY`` (a Fernet key, or any passphrase: its SHA-256 becomes the key); without it, a
key file ``secret.key`` in ``artifacts_dir``, created on first use with mode 0600 (the API and the workers
already share that folder for the round artifacts). A token encrypted under another key cannot be read:
the sync then says so (set the token again).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from app.errors import Invalid
from app.settings import Settings

KEY_FILE = "secret.key"


def _fernet(settings: Settings) -> Fernet:
    if settings.secret_key is not None:
        raw = settings.secret_key.get_secret_value().encode()
        try:
            return Fernet(raw)
        except ValueError:
            return Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest()))
    return Fernet(_key_file(Path(settings.artifacts_dir) / KEY_FILE))


def _key_file(path: Path) -> bytes:
    if path.is_file():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def encrypt(settings: Settings, token: str) -> str:
    return _fernet(settings).encrypt(token.encode()).decode("ascii")


def decrypt(settings: Settings, stored: str) -> str:
    """The token; :class:`Invalid` when it was encrypted under another key."""
    try:
        return _fernet(settings).decrypt(stored.encode("ascii")).decode()
    except (InvalidToken, ValueError) as exc:
        raise Invalid(
            "ls_token",
            "the stored Label Studio token cannot be decrypted with this service's secret_key "
            "(was TBAL_SECRET_KEY changed?); set the token again",
        ) from exc
