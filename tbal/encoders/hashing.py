"""A text encoder that needs no model: hashed word uni- and bigram counts (scikit-learn's
``HashingVectorizer``, the "hashing trick" of Weinberger et al., ICML 2009), sublinear term frequency
1 + log(tf), L2-normalised rows.

No inverse document frequency: an IDF is fitted on a corpus, and an item's features must not depend on
which other items were uploaded before it (the service encodes each upload once). For the smallest
installs and fast tests; on SST-2 it is a weaker representation than MiniLM.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tbal.encoders.base import EncoderConfig, TextEncoder


class HashingEncoder(TextEncoder):
    """``hashing`` / ``hashing:<dim>``: (n,) strings -> (n, dim) float32, unit L2 norm (0 for a text
    with no word token)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self._vectorizer: Any = None

    @property
    def dim(self) -> int:
        return self.config.dim

    def _encode(self, batch: list[str]) -> np.ndarray:
        if self._vectorizer is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            self._vectorizer = HashingVectorizer(
                n_features=self.config.dim,
                ngram_range=(1, 2),
                alternate_sign=False,
                norm=None,
                lowercase=True,
                dtype=np.float32,
            )
        counts = self._vectorizer.transform(batch).toarray()  # (n, dim) raw term counts
        tf = np.where(counts > 0, 1.0 + np.log(np.maximum(counts, 1.0)), 0.0).astype(np.float32)
        norms = np.linalg.norm(tf, axis=1, keepdims=True)
        return tf / np.maximum(norms, np.float32(1e-12))
