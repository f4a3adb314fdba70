"""Raw items: text for ``data_kind: "text"`` projects and image files for image projects.

- :mod:`.encoders`: the project's encoder (chosen, checked, built once per process, recorded per round);
- :mod:`.texts`: texts encoded and stored beside their strings (``item_texts``);
- :mod:`.images`: image files decoded by Pillow to the project's shape (or a backbone's features);
- :mod:`.archives`: zip / tar archives of image files, refused when unsafe;
- :mod:`.checks`: the project's kind, external ids.

Entry points for other parts of the service (the Label Studio integration creates items from task data
with them): :func:`ingest_texts` (external ids, strings, optional classes) and :func:`ingest_images`
(named files). Both check every item first, then write everything in one transaction and commit (all or
nothing), idempotent on external id like the array uploads: items whose id exists are skipped (and are
not encoded again). Large uploads are stored first and encoded as a background job
(:mod:`app.items.jobs_run`), which uses the same pieces item by item.
"""

from __future__ import annotations

from app.items.raw.archives import (
    IMAGE_SUFFIXES,
    MAX_ARCHIVE_BYTES,
    MAX_ARCHIVE_MEMBERS,
    MAX_MEMBER_RATIO,
    ImageFile,
    archive_images,
    is_archive,
)
from app.items.raw.checks import MAX_EXTERNAL_ID, require_kind
from app.items.raw.encoders import (
    check_encoder_allowed,
    check_project_settings,
    check_settings_change,
    encoder_config,
    encoder_spec,
    image_encoder,
    require_image_files,
    round_record,
    service_device,
    takes_image_files,
    text_encoder,
    with_model_encoder,
)
from app.items.raw.images import (
    DECODE_THREADS,
    MAX_PREDICT_FILES,
    fetch_images,
    ingest_images,
    predict_items_of_images,
)
from app.items.raw.texts import encode_texts, ingest_text_file, ingest_texts
from tbal.encoders.images import FORMATS, MAX_FILE_BYTES

__all__ = [
    "DECODE_THREADS",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "MAX_ARCHIVE_BYTES",
    "MAX_ARCHIVE_MEMBERS",
    "MAX_EXTERNAL_ID",
    "MAX_FILE_BYTES",
    "MAX_MEMBER_RATIO",
    "MAX_PREDICT_FILES",
    "ImageFile",
    "archive_images",
    "check_encoder_allowed",
    "check_project_settings",
    "check_settings_change",
    "encode_texts",
    "encoder_config",
    "encoder_spec",
    "fetch_images",
    "image_encoder",
    "ingest_images",
    "ingest_text_file",
    "ingest_texts",
    "is_archive",
    "predict_items_of_images",
    "require_image_files",
    "require_kind",
    "round_record",
    "service_device",
    "takes_image_files",
    "text_encoder",
    "with_model_encoder",
]
