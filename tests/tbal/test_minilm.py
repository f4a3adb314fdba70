"""MiniLM fine-tuned as the classifier (``model.name = "minilm"``) and its ``minilm-tokens`` inputs: the
ids, the pretrained weights really loaded, seeded training, chunked scoring, a saved round read back, and
the inputs it refuses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from tbal.artifacts import RoundArtifacts, load_artifacts, save_artifacts
from tbal.confidence import make_confidence
from tbal.config import MINILM_TRAINING, ConfidenceConfig, ConfigError, ModelConfig, TrainConfig, preset
from tbal.data import DataError, load_dataset
from tbal.encoders import encoder_for_model, make_text_encoder, parse_encoder
from tbal.errors import TBALInputError
from tbal.minilm import MAX_TOKENS, PAD_ID, SCORE_CHUNK, tokenize
from tbal.models import Classifier, build_model
from tbal.predictions import predict
from tbal.training.train import one_hot, train_classifier

POSITIVE = ["a wonderful , moving film", "great acting and a lovely story", "funny and warm", "a delight"]
NEGATIVE = ["a dull , boring mess", "the worst film of the year", "tedious and badly acted", "awful"]
CLS_ID, SEP_ID = 101, 102


def _texts_and_labels() -> tuple[list[str], np.ndarray]:
    texts = POSITIVE + NEGATIVE
    return texts, np.array([1] * len(POSITIVE) + [0] * len(NEGATIVE))


def _model(seed: int = 0, dropout: float = 0.1) -> Classifier:
    return build_model(ModelConfig(name="minilm", dropout=dropout), (MAX_TOKENS,), 2, seed=seed)


def test_tokens_are_word_piece_ids_padded_and_cut() -> None:
    ids = tokenize(["a good film", "word " * 500, ""])
    assert ids.shape == (3, MAX_TOKENS) and ids.dtype == np.float32
    assert ids[0, 0] == CLS_ID and ids[0, 4] == SEP_ID and (ids[0, 5:] == PAD_ID).all()
    assert ids[1, -1] == SEP_ID and (ids[1] != PAD_ID).all()  # a long text is cut to MAX_TOKENS
    assert list(ids[2, :2]) == [CLS_ID, SEP_ID]
    assert tokenize([]).shape == (0, MAX_TOKENS)


def test_the_token_encoder_is_a_text_encoder_spec() -> None:
    config = parse_encoder("minilm-tokens")
    encoder = make_text_encoder(config)
    assert config.spec == "minilm-tokens" and encoder.dim == MAX_TOKENS
    assert np.array_equal(encoder.encode(["a good film"]), tokenize(["a good film"]))
    with pytest.raises(ConfigError, match="takes no path"):
        parse_encoder("minilm-tokens:/tmp/x")


def test_the_pretrained_encoder_gives_minilms_sentence_embedding() -> None:
    """Before any training the pooled features are all-MiniLM-L6-v2's sentence embedding (which the
    ``minilm`` encoder L2-normalises): the package's weights were loaded, not drawn."""
    texts, _ = _texts_and_labels()
    model = _model().eval()
    features = predict(model, tokenize(texts)).features
    embedding = make_text_encoder("minilm").encode(texts)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    assert np.abs(unit - embedding).max() < 1e-4


def test_training_is_seeded_and_fits_the_labels() -> None:
    texts, y = _texts_and_labels()
    X = tokenize(texts)
    config = TrainConfig(epochs=6, batch_size=8)
    first = train_classifier(_model(), X, one_hot(y, 2), config, seed=3, device=torch.device("cpu"))
    second = train_classifier(_model(), X, one_hot(y, 2), config, seed=3, device=torch.device("cpu"))
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert (predict(first, X).predicted == y).all()
    assert TrainConfig().for_network("minilm") == MINILM_TRAINING


def test_a_large_batch_is_scored_in_chunks_of_like_length() -> None:
    """Scoring more than SCORE_CHUNK texts sorts them by length and cuts each chunk's padding: the same
    outputs as scoring them a few at a time."""
    texts, _ = _texts_and_labels()
    X = tokenize([t + " !" * (i % 7) for i, t in enumerate(texts * 10)])
    assert X.shape[0] > SCORE_CHUNK
    model = _model().eval()
    whole = predict(model, X)
    small = predict(model, X, batch_size=8)
    assert np.abs(whole.logits - small.logits).max() < 1e-4
    assert np.abs(whole.features - small.features).max() < 1e-4


def test_a_saved_round_reads_back(tmp_path: Path) -> None:
    texts, y = _texts_and_labels()
    X = tokenize(texts)
    model = train_classifier(
        _model(), X, one_hot(y, 2), TrainConfig(epochs=1, batch_size=4), seed=0, device=torch.device("cpu")
    )
    artifacts = RoundArtifacts(
        model=model,
        confidence=make_confidence(ConfidenceConfig(name="softmax"), 2),
        thresholds=np.array([0.9, 0.9]),
        model_config=ModelConfig(name="minilm", dropout=0.1),
        input_shape=(MAX_TOKENS,),
        num_classes=2,
        encoder="minilm-tokens",
    )
    save_artifacts(tmp_path / "round.pt", artifacts)
    loaded = load_artifacts(tmp_path / "round.pt")
    assert loaded.encoder == "minilm-tokens"
    assert np.array_equal(predict(loaded.model, X).logits, predict(model, X).logits)


def test_inputs_that_are_not_token_ids_are_refused() -> None:
    model = _model().eval()
    embeddings = np.full((2, MAX_TOKENS), 0.25, dtype=np.float32)
    with pytest.raises(TBALInputError, match="minilm-tokens"):
        predict(model, embeddings)
    with pytest.raises(TBALInputError, match="minilm-tokens"):
        predict(model, np.full((2, MAX_TOKENS), 40_000, dtype=np.float32))
    with pytest.raises(ConfigError, match="word-piece ids"):
        build_model(ModelConfig(name="minilm"), (1, 28, 28), 10)


def test_the_encoder_follows_the_model() -> None:
    fine_tuned, mlp = ModelConfig(name="minilm"), ModelConfig(name="mlp")
    assert encoder_for_model(fine_tuned) == "minilm-tokens"
    assert encoder_for_model(mlp) == encoder_for_model(None) == "minilm"
    assert encoder_for_model(mlp, "hashing:64") == "hashing:64"
    with pytest.raises(ConfigError, match="reads word pieces"):
        encoder_for_model(fine_tuned, "minilm")
    with pytest.raises(ConfigError, match="only model 'minilm' reads"):
        encoder_for_model(mlp, "minilm-tokens")


def test_an_npz_gives_its_texts_to_a_text_encoder(tmp_path: Path) -> None:
    texts, y = _texts_and_labels()
    path = tmp_path / "texts.npz"
    utf8 = np.frombuffer("\n".join(texts).encode(), dtype=np.uint8)
    np.savez(path, X_train=np.zeros((len(y), 3), np.float16), y_train=y, text_train_utf8=utf8)
    assert load_dataset(path).X.shape == (len(y), 3)
    assert np.array_equal(load_dataset(path, text_encoder="minilm-tokens").X, tokenize(texts))
    np.savez(path, X=np.zeros((len(y), 3)), y=y)
    with pytest.raises(DataError, match=r"'text_utf8'.*CSV"):
        load_dataset(path, text_encoder="minilm-tokens")
    np.savez(path, X=np.zeros((len(y), 3)), y=y, text_utf8=utf8[: utf8.tobytes().rindex(b"\n")])
    with pytest.raises(DataError, match="7 lines of text for 8 labels"):
        load_dataset(path, text_encoder="minilm-tokens")


def test_the_fine_tuning_preset() -> None:
    config = preset("text-finetune")
    assert config.model.name == "minilm" and config.loop.planned_rounds == 5
    assert config.train.for_network("minilm") == MINILM_TRAINING
    paper = preset("text-paper").loop
    assert dataclasses.replace(config.loop, batch_size=paper.batch_size) == paper
