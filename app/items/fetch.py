"""Fetching a file by URL for an upload, refusing addresses that are not public (SSRF).

A URL must be ``http`` or ``https``; every address its host resolves to must be public (not private,
loopback, link-local, multicast, reserved or unspecified: :attr:`ipaddress.IPv4Address.is_global`) unless
the operator allows private URLs; redirects are followed by hand (at most :data:`MAX_REDIRECTS`), each
target checked the same way; the body is read up to ``max_bytes``. The check is made on the resolved
addresses before connecting; a DNS answer that changes between the check and the connection (rebinding)
is not caught here: deployments that must resist it fetch through an egress proxy.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import httpx

from app.errors import Invalid

MAX_REDIRECTS = 3
MAX_URL_CHARS = 2048


def check_public_url(url: str, field: str, *, allow_private: bool) -> None:
    """422 on ``field`` for a URL that is not http(s), has no host, or resolves to a non-public address."""
    if len(url) > MAX_URL_CHARS:
        raise Invalid(field, f"URL longer than {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise Invalid(field, "the URL's port is not a number in 0..65535") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(field, f"expected an http(s) URL with a host, got {_shown(url)}")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port or None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Invalid(field, f"cannot resolve the host of {_shown(url)}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            raise Invalid(
                field,
                f"{_shown(url)} resolves to a non-public address ({address}); "
                "the operator can allow it with TBAL_ALLOW_PRIVATE_URLS",
            )


def fetch_bytes(url: str, field: str, *, max_bytes: int, timeout_s: float, allow_private: bool) -> bytes:
    """The body of ``url`` (GET, status 200), at most ``max_bytes``; 422 on ``field`` otherwise."""
    with httpx.Client(follow_redirects=False, timeout=timeout_s) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            check_public_url(url, field, allow_private=allow_private)
            try:
                with client.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise Invalid(field, f"{_shown(url)} answered HTTP {response.status_code}")
                    return _read_capped(response, max_bytes, url, field)
            except httpx.HTTPError as exc:
                raise Invalid(field, f"cannot fetch {_shown(url)}: {type(exc).__name__}") from exc
    raise Invalid(field, f"more than {MAX_REDIRECTS} redirects from {_shown(url)}")


def _read_capped(response: httpx.Response, max_bytes: int, url: str, field: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise Invalid(field, f"{_shown(url)} is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _shown(url: str) -> str:
    """The URL without its query and credentials (they may carry tokens), for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
