"""The encoder interface: what turns raw items (text, decoded images) into the classifier's inputs.

An encoder is a small class with ``encode(items) -> (n, dim) float32`` and a ``dim`` known before any item
is encoded (the service fixes a text project's ``input_shape`` to ``[dim]`` when the project is created).
Encoders are named by a *spec* string, the value of a project's ``encoder`` setting and of the command's
``--encoder``: ``minilm``, ``minilm-tokens``, ``hashing``, ``hashing:<dim>``,
``sentence-transformers:<local directory>``, ``image-backbone:<file.pt2>``. :class:`EncoderConfig` is the
parsed, checked form of a spec.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from tbal.config import TOKEN_ENCODER, ConfigError
from tbal.errors import TBALInputError

ENCODER_NAMES = ("minilm", TOKEN_ENCODER, "hashing", "sentence-transformers", "image-backbone")
"""Valid encoder names (the part of a spec before ``:``)."""
TEXT_ENCODERS = ("minilm", TOKEN_ENCODER, "hashing", "sentence-transformers")
IMAGE_ENCODERS = ("image-backbone",)
DEFAULT_TEXT_ENCODER = "minilm"
HASHING_DEFAULT_DIM = 1024
HASHING_DIM_RANGE = (16, 1 << 18)
MAX_TEXT_CHARS = 20_000
"""Longest text accepted (characters). MiniLM reads at most 256 word pieces (~1,000 characters): the
limit bounds memory and time per item, not what the model sees."""
MAX_SPEC_CHARS = 1024


@dataclass(frozen=True)
class EncoderConfig:
    """A parsed encoder spec.

    name: one of :data:`ENCODER_NAMES`; path: the model directory (``sentence-transformers``) or the
    exported backbone file (``image-backbone``), else None; dim: the hashing encoder's output size (0 for
    the others: their model says); batch_size: items per forward pass; device: ``cpu``, ``cuda``, ``auto``.
    """

    name: str = DEFAULT_TEXT_ENCODER
    path: str | None = None
    dim: int = 0
    batch_size: int = 64
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.name not in ENCODER_NAMES:
            raise ConfigError(f"encoder: unknown name {self.name!r}; valid names: {', '.join(ENCODER_NAMES)}")
        needs_path = self.name in ("sentence-transformers", "image-backbone")
        if needs_path and not self.path:
            raise ConfigError(f"encoder: {self.name} needs a path: '{self.name}:<path>'")
        if not needs_path and self.path is not None:
            raise ConfigError(f"encoder: {self.name} takes no path, got {self.path!r}")
        if self.name == "hashing":
            low, high = HASHING_DIM_RANGE
            if not low <= self.dim <= high:
                raise ConfigError(f"encoder: hashing dim must be in [{low}, {high}], got {self.dim}")
        elif self.dim != 0:
            raise ConfigError(f"encoder: only hashing takes a dim, got {self.dim} for {self.name}")
        if self.batch_size < 1:
            raise ConfigError(f"encoder: batch_size must be >= 1, got {self.batch_size}")
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise ConfigError(f"encoder: device must be cpu, cuda, cuda:<i> or auto, got {self.device!r}")

    @property
    def kind(self) -> Literal["text", "image"]:
        return "image" if self.name in IMAGE_ENCODERS else "text"

    @property
    def spec(self) -> str:
        """The spec string that parses back to this config (batch size and device aside)."""
        if self.path is not None:
            return f"{self.name}:{self.path}"
        if self.name == "hashing" and self.dim != HASHING_DEFAULT_DIM:
            return f"hashing:{self.dim}"
        return self.name


def parse_encoder(spec: str, *, batch_size: int = 64, device: str = "cpu") -> EncoderConfig:
    """``minilm`` | ``hashing`` | ``hashing:<dim>`` | ``sentence-transformers:<dir>`` |
    ``image-backbone:<file>`` -> :class:`EncoderConfig`; raises ConfigError listing the valid names."""
    if not isinstance(spec, str) or not spec.strip() or len(spec) > MAX_SPEC_CHARS or "\x00" in spec:
        raise ConfigError(f"encoder: expected a name such as {', '.join(ENCODER_NAMES)}, got {spec!r}")
    name, sep, rest = spec.strip().partition(":")
    if name == "hashing":
        if not sep:
            return EncoderConfig("hashing", dim=HASHING_DEFAULT_DIM, batch_size=batch_size, device=device)
        if not rest.isdigit():
            raise ConfigError(f"encoder: expected 'hashing:<dim>' with an integer dim, got {spec!r}")
        return EncoderConfig("hashing", dim=int(rest), batch_size=batch_size, device=device)
    return EncoderConfig(name, path=rest if sep else None, batch_size=batch_size, device=device)


class Encoder(ABC):
    """Raw items -> (n, dim) float32 features. Subclasses implement ``_encode`` on a checked batch and
    import their heavy dependencies (sentence-transformers, Pillow, torch models) only when first used."""

    kind: ClassVar[Literal["text", "image"]]

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of one item's feature vector."""

    def encode(self, items: Sequence[Any] | np.ndarray) -> np.ndarray:
        """(n,) items -> (n, dim) float32, encoded ``config.batch_size`` at a time."""
        batch = self._check(items)
        out = np.empty((len(batch), self.dim), dtype=np.float32)
        step = self.config.batch_size
        for start in range(0, len(batch), step):
            part = self._encode(batch[start : start + step])
            if part.shape != (min(step, len(batch) - start), self.dim):
                raise TBALInputError(
                    f"{self.config.spec}: encoder returned shape {part.shape}, expected (n, {self.dim})"
                )
            out[start : start + step] = part
        return out

    @abstractmethod
    def _check(self, items: Sequence[Any] | np.ndarray) -> Any: ...

    @abstractmethod
    def _encode(self, batch: Any) -> np.ndarray: ...


class TextEncoder(Encoder):
    """An encoder of UTF-8 strings (see :func:`check_texts` for what is accepted)."""

    kind = "text"

    def _check(self, items: Sequence[Any] | np.ndarray) -> list[str]:
        return check_texts(items)


def check_texts(texts: Sequence[Any] | np.ndarray, what: str = "text") -> list[str]:
    """Strings of 1..:data:`MAX_TEXT_CHARS` characters, not blank, no NUL; raises TBALInputError naming the
    first bad one (``text 3: ...``)."""
    if isinstance(texts, str):
        raise TBALInputError("expected a sequence of strings, got one string")
    out = list(texts)
    for i, text in enumerate(out):
        reason = text_problem(text)
        if reason:
            raise TBALInputError(f"{what} {i}: {reason}")
    return out


def text_problem(text: Any) -> str | None:
    """Why ``text`` cannot be encoded, or None when it can."""
    if not isinstance(text, str):
        return f"expected a string, got {type(text).__name__}"
    if not text.strip():
        return "empty text"
    if len(text) > MAX_TEXT_CHARS:
        return f"longer than {MAX_TEXT_CHARS} characters ({len(text)})"
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode (a lone surrogate such as \\ud800)"
    return None
