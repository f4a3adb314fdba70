"""``minilm-tokens``: texts -> MiniLM's word-piece ids (:func:`tbal.minilm.tokenize`), the inputs of the
``minilm`` model, which fine-tunes the encoder itself instead of training a network on its frozen
embedding. :data:`tbal.minilm.MAX_TOKENS` values a text, float32."""

from __future__ import annotations

import numpy as np

from tbal.encoders.base import TextEncoder
from tbal.minilm import MAX_TOKENS, tokenize


class TokenEncoder(TextEncoder):
    """(n,) strings -> (n, MAX_TOKENS) float32 word-piece ids, padded with 0."""

    @property
    def dim(self) -> int:
        return MAX_TOKENS

    def _encode(self, batch: list[str]) -> np.ndarray:
        return tokenize(batch)
