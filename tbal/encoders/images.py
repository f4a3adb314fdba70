"""Decoding image files into the uint8 arrays a project stores: PNG, JPEG, WebP and BMP through Pillow.

``decode_image(data, shape)``: the file's bytes -> uint8 array of ``shape`` ((H, W) grey, or (H, W, C)
with C = 1 grey, 3 RGB, 4 RGBA). Steps: open, refuse other formats, refuse more than
:data:`MAX_PIXELS` pixels (a decompression bomb) before decoding, decode fully (a truncated file fails
here), apply the EXIF orientation, convert the mode, and when the size differs resize so that the image
covers H×W (bicubic) and crop the centre. An image already H×W is never resampled, so lossless files give
back exactly the pixels they were written from.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from tbal.errors import TBALInputError

FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
MAX_PIXELS = 64_000_000
"""Most pixels (width × height) of an accepted image file, checked from its header before decoding."""
MAX_FILE_BYTES = 64 << 20


class ImageError(TBALInputError):
    """An image file that cannot be used; the message says why (the caller names the file)."""


def check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """(H, W) or (H, W, C) with C in {1, 3, 4} and positive sizes."""
    shape = tuple(int(s) for s in shape)
    if (
        len(shape) not in (2, 3)
        or any(s <= 0 for s in shape)
        or (len(shape) == 3 and shape[2] not in (1, 3, 4))
    ):
        raise ImageError(f"expected an image shape (H, W) or (H, W, C) with C in 1, 3, 4, got {shape}")
    return shape


def decode_image(data: bytes, shape: Sequence[int]) -> np.ndarray:
    """One image file's bytes -> uint8 array of ``shape``; raises :class:`ImageError` with the reason."""
    target = check_shape(shape)
    if not data:
        raise ImageError("empty file")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"file larger than {MAX_FILE_BYTES} bytes")
    image = _open(data)
    return _to_array(image, target)


def decode_images(files: Sequence[bytes], shape: Sequence[int]) -> np.ndarray:
    """(n,) files -> (n, *shape) uint8; the first bad file raises ImageError naming its index."""
    target = check_shape(shape)
    out = np.empty((len(files), *target), dtype=np.uint8)
    for i, data in enumerate(files):
        try:
            out[i] = decode_image(data, target)
        except ImageError as exc:
            raise ImageError(f"image {i}: {exc}") from exc
    return out


def _open(data: bytes) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except UnidentifiedImageError as exc:
        raise ImageError(f"not a {', '.join(FORMATS)} image") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"too many pixels (decompression bomb): {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"unreadable image header: {exc}") from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(f"{width}x{height} pixels: more than {MAX_PIXELS} (decompression bomb)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as exc:
        raise ImageError(f"cannot decode the {image.format} image (truncated or corrupt): {exc}") from exc
    return image


def _to_array(image: Any, target: tuple[int, ...]) -> np.ndarray:
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: keep the top 8 bits (Pillow's convert("L") would clip everything above 255)
        wide = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((np.minimum(wide, 65535) >> 8).astype(np.uint8), mode="L")
    channels = target[2] if len(target) == 3 else 1
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA") and mode != image.mode and mode != "RGBA":
        image = _flatten_alpha(image)
    if image.mode != mode:
        image = image.convert(mode)
    height, width = target[0], target[1]
    if image.size != (width, height):
        image = ImageOps.fit(image, (width, height), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
    arr = np.asarray(image, dtype=np.uint8)
    return arr.reshape(target)


def _flatten_alpha(image: Any) -> Any:
    """Transparent pixels over white (what a viewer shows), so that dropping alpha keeps the picture."""
    from PIL import Image

    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")
