"""tbal_client: a typed HTTP client of the tbal service and the ``tbal`` verbs built on it.

It is a distribution of its own, ``tbal-client`` (``client/pyproject.toml``; ``pip install ./client``),
that needs only httpx and numpy (no torch, nothing of the library ``tbal`` or of the service ``app``;
``tests/client/test_client_types.py`` walks its imports and ``tests/client/test_client_distribution.py``
builds the wheel), so a labeling script on another machine can drive a service without installing the
model stack. :mod:`tbal_client.client` holds the client, :mod:`tbal_client.types` its request and
response types and its errors, :mod:`tbal_client.jobs` ingest jobs; :mod:`tbal_client.cli` the command
verbs (the ``tbal-client`` command, ``python -m tbal_client.cli``, or the ``tbal`` command through the
``tbal.commands`` entry point where the library is installed too) and :mod:`tbal_client.files` the files
they read and write; :mod:`tbal_client.text_files` reads text files.
"""

from tbal_client.client import ProgressLine, RetryPolicy, TBALClient, find_images
from tbal_client.jobs import Job, JobFailed, JobItemError
from tbal_client.text_files import TextFileError
from tbal_client.types import (
    APIError,
    AutoLabel,
    HumanLabel,
    IngestResult,
    Label,
    LabelsResult,
    Prediction,
    PredictResult,
    Project,
    ProjectCounts,
    QueueCounts,
    QueueItem,
    Round,
    RoundFailed,
    ServiceUnreachable,
    SimulateResult,
    TBALClientError,
    WaitTimeout,
)

__all__ = [
    "APIError",
    "AutoLabel",
    "HumanLabel",
    "IngestResult",
    "Job",
    "JobFailed",
    "JobItemError",
    "Label",
    "LabelsResult",
    "PredictResult",
    "Prediction",
    "ProgressLine",
    "Project",
    "ProjectCounts",
    "QueueCounts",
    "QueueItem",
    "RetryPolicy",
    "Round",
    "RoundFailed",
    "ServiceUnreachable",
    "SimulateResult",
    "TBALClient",
    "TBALClientError",
    "TextFileError",
    "WaitTimeout",
    "find_images",
]
