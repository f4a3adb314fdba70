"""FastAPI's TestClient typed as what the client and the demo take: an ``httpx.Client``."""

from __future__ import annotations

from typing import cast

import httpx
from fastapi.testclient import TestClient


def as_httpx_client(client: TestClient) -> httpx.Client:
    """``client`` as the ``httpx.Client`` that :class:`tbal_client.TBALClient` (``http=``) and the driving
    functions of ``examples/demo.py`` are typed to take.

    Starlette's TestClient subclasses ``httpx2.Client`` where httpx2 is installed (huggingface_hub pulls it
    in), ``httpx.Client`` otherwise. The two share the interface those callers use (``request``, ``stream``,
    ``base_url``, ``headers``, ``close``), so the cast states a fact mypy cannot see; it is made here, once.
    One difference stays: an httpx2 transport error is not an ``httpx.TransportError``, so TBALClient does
    not retry it; in process the app's own exceptions propagate anyway.
    """
    return cast(httpx.Client, client)
