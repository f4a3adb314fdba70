"""Encoders: spec parsing, the hashing encoder, MiniLM against the stored SST-2 embeddings, image decoding
(PNG round trip of CIFAR-10, modes, resize / crop, bad files) and a frozen backbone loaded from a file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tbal.config import ConfigError
from tbal.encoders import (
    ENCODER_NAMES,
    MAX_TEXT_CHARS,
    EncoderConfig,
    HashingEncoder,
    make_encoder,
    make_text_encoder,
    parse_encoder,
)
from tbal.encoders import images as images_mod
from tbal.encoders.backbone import MEAN, STD, ImageBackboneEncoder
from tbal.encoders.images import ImageError, decode_image, decode_images
from tbal.encoders.sentence import MINILM_DIM, SentenceTransformerEncoder, minilm_directory
from tbal.errors import TBALInputError

SST2_SLICE = 48
FLOAT16_ATOL = 1e-3
"""float16 keeps 11 significant bits: |x| < 0.5 is stored within 2.5e-4; 1e-3 leaves room for BLAS order."""

# ------------------------------------------------------------------------------------------------- specs


def test_specs_parse_and_round_trip() -> None:
    assert parse_encoder("minilm") == EncoderConfig("minilm")
    assert parse_encoder("hashing").dim == 1024
    assert parse_encoder("hashing:256") == EncoderConfig("hashing", dim=256)
    assert parse_encoder("hashing:256").spec == "hashing:256"
    st = parse_encoder("sentence-transformers:/models/x")
    assert st.path == "/models/x" and st.spec == "sentence-transformers:/models/x" and st.kind == "text"
    assert parse_encoder("image-backbone:/m.pt2").kind == "image"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("bert", "valid names: " + ", ".join(ENCODER_NAMES)),
        ("", "expected a name"),
        ("hashing:abc", "integer dim"),
        ("hashing:4", "hashing dim must be in"),
        ("sentence-transformers", "needs a path"),
        ("minilm:/x", "takes no path"),
    ],
)
def test_bad_specs_say_why(spec: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_encoder(spec)


def test_missing_model_directory_and_image_encoder_for_text(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a sentence-transformers model directory"):
        make_encoder(f"sentence-transformers:{tmp_path}")
    (tmp_path / "m.pt2").write_bytes(b"x")
    with pytest.raises(ConfigError, match="encodes images"):
        make_text_encoder(f"image-backbone:{tmp_path / 'm.pt2'}")


# ----------------------------------------------------------------------------------------------- hashing


def test_hashing_is_deterministic_normalised_and_ranks_overlap() -> None:
    enc = make_text_encoder("hashing:512")
    assert isinstance(enc, HashingEncoder) and enc.dim == 512
    texts = ["a gripping, funny film", "a funny, gripping film !", "tax forms and spreadsheets"]
    X = enc.encode(texts)
    assert X.shape == (3, 512) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(X, make_text_encoder("hashing:512").encode(texts))  # no fitted state
    np.testing.assert_array_equal(X[:1], enc.encode(texts[:1]))  # independent of the batch
    assert X[0] @ X[1] > 0.5 > X[0] @ X[2]


@pytest.mark.parametrize(
    ("texts", "says"),
    [
        (["ok", "   "], "text 1: empty text"),
        (["ok", 3], "text 1: expected a string"),
        (["x" * (MAX_TEXT_CHARS + 1)], "longer than"),
        (["a\x00b"], "NUL"),
        ("one string", "sequence of strings"),
    ],
)
def test_bad_texts_name_the_item(texts: object, says: str) -> None:
    with pytest.raises(TBALInputError, match=says):
        make_text_encoder("hashing").encode(texts)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ MiniLM


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEncoder:
    enc = make_text_encoder(EncoderConfig("minilm", batch_size=16))
    assert isinstance(enc, SentenceTransformerEncoder)
    return enc


def test_minilm_matches_the_stored_sst2_embeddings(
    shared_data: Path, minilm: SentenceTransformerEncoder
) -> None:
    with np.load(shared_data / "sst2_minilm.npz") as z:
        texts = bytes(z["text_train_utf8"]).decode("utf-8").split("\n")[:SST2_SLICE]
        stored = z["X_train"][:SST2_SLICE].astype(np.float32)
    X = minilm.encode(texts)
    assert X.shape == (SST2_SLICE, MINILM_DIM) and X.dtype == np.float32
    np.testing.assert_allclose(X, stored, atol=FLOAT16_ATOL, rtol=0)
    # and not trivially: another sentence's embedding is far away
    assert np.abs(X[1:] - stored[:-1]).max() > 0.1


def test_a_model_directory_reads_its_dimension_without_loading() -> None:
    enc = make_encoder(f"sentence-transformers:{minilm_directory()}")
    assert isinstance(enc, SentenceTransformerEncoder)
    assert enc.dim == MINILM_DIM and enc._model is None


# ------------------------------------------------------------------------------------------------ images


def _png(arr: np.ndarray, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_cifar_pngs_decode_to_the_same_arrays(shared_data: Path) -> None:
    with np.load(shared_data / "cifar10_test_cifar10h.npz") as z:
        X = z["X"][:64]
    files = [_png(x) for x in X]
    np.testing.assert_array_equal(decode_images(files, (32, 32, 3)), X)


def test_modes_formats_and_resizing() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(20, 40, 3), dtype=np.uint8)
    grey = decode_image(_png(rgb), (20, 40))
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(grey, expected)
    assert decode_image(_png(rgb), (20, 40, 1)).shape == (20, 40, 1)
    assert decode_image(_png(rgb[:, :, 0]), (20, 40, 3)).shape == (20, 40, 3)  # grey -> RGB
    # BMP and WebP (lossless) are exact at the same size; JPEG is close
    np.testing.assert_array_equal(decode_image(_png(rgb, "BMP"), (20, 40, 3)), rgb)
    np.testing.assert_array_equal(decode_image(_png(rgb, "WEBP", lossless=True), (20, 40, 3)), rgb)
    smooth = np.repeat(np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], 20, 0).repeat(3, 2)
    jpeg = decode_image(_png(smooth, "JPEG", quality=95), (20, 40, 3))
    assert np.abs(jpeg.astype(int) - smooth).mean() < 3
    # a wide image is scaled to cover 10x10 and its centre kept: the middle column of the gradient
    out = decode_image(_png(smooth), (10, 10, 3))
    assert out.shape == (10, 10, 3) and abs(int(out[5, 5, 0]) - 128) < 20
    # 16-bit grey keeps its top 8 bits
    wide = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(wide).save(buf, format="PNG")
    np.testing.assert_array_equal(decode_image(buf.getvalue(), (8, 8)), (wide >> 8).astype(np.uint8))
    # transparent pixels over white when alpha is dropped
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    assert decode_image(_png(rgba), (4, 4, 3)).min() == 255


def test_bad_image_files_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    png = _png(np.zeros((64, 64, 3), dtype=np.uint8) + 7)
    with pytest.raises(ImageError, match="not a PNG, JPEG, WEBP, BMP image"):
        decode_image(b"hello, not an image", (8, 8))
    with pytest.raises(ImageError, match="empty file"):
        decode_image(b"", (8, 8))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(png[: len(png) // 2], (8, 8))
    gif = io.BytesIO()
    Image.new("L", (4, 4)).save(gif, format="GIF")
    with pytest.raises(ImageError, match="not a PNG"):
        decode_image(gif.getvalue(), (4, 4))
    monkeypatch.setattr(images_mod, "MAX_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(png, (8, 8))
    with pytest.raises(ImageError, match="image 1: "):
        decode_images([_png(np.zeros((4, 4), np.uint8)), b"junk"], (4, 4))
    with pytest.raises(ImageError, match="expected an image shape"):
        decode_image(png, (8, 8, 2))


# ---------------------------------------------------------------------------------------------- backbone


def test_a_frozen_backbone_loads_from_an_exported_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
    ).eval()
    program = torch.export.export(
        net, (torch.zeros(2, 3, 16, 16),), dynamic_shapes=({0: torch.export.Dim("n", min=1)},)
    )
    path = tmp_path / "backbone.pt2"
    torch.export.save(program, str(path))
    enc = make_encoder(EncoderConfig("image-backbone", path=str(path), batch_size=4))
    assert isinstance(enc, ImageBackboneEncoder)
    enc.image_shape = (16, 16, 3)
    images = np.random.default_rng(1).integers(0, 256, size=(10, 16, 16, 3), dtype=np.uint8)
    X = enc.encode(images)
    assert enc.dim == 32 and X.shape == (10, 32) and X.dtype == np.float32
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        np.testing.assert_allclose(X, net(x).numpy(), atol=1e-5)
    with pytest.raises(TBALInputError, match="expected uint8 images"):
        enc.encode(images[:, :8])
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"not a program")
    with pytest.raises(ConfigError, match=r"torch\.export\.save"):
        ImageBackboneEncoder(EncoderConfig("image-backbone", path=str(junk)), (16, 16, 3)).encode(images)
