"""Warm starts (``train.warm_start_epochs``, :mod:`tbal.training.warm_start`): every round, or only those
that cannot auto-label (``train.warm_start_rounds``), continues the previous round's classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import tbal.loop as loop
from tbal.config import ConfigError, ModelConfig, TBALConfig, TrainConfig, with_overrides
from tbal.data import make_dataset
from tbal.loop import run_tbal
from tbal.models import Classifier, build_model
from tbal.training.warm_start import continue_from, warm_start_applies
from tests.tbal.synthetic import blobs_8d, three_round_mlp


def _config(**overrides: object) -> TBALConfig:
    """An MLP on 8-d blobs, 3 planned rounds (the seed, two batches), the final δ schedule."""
    return three_round_mlp(**{"train.epochs": 6, "train.warm_start_epochs": 2, **overrides})


@dataclass
class Training:
    """One training a run started: its rows, its epochs, and whether it continued earlier weights."""

    rows: int
    epochs: int | None
    continued: bool


def _record_trainings(monkeypatch: pytest.MonkeyPatch) -> list[Training]:
    """Every training of a run, fresh (through train_uncertainty_model) or continued (train_classifier with
    reinitialize False), in order."""
    seen: list[Training] = []
    fresh, continued = loop.train_uncertainty_model, loop.train_classifier

    def spy_fresh(
        model: Classifier, X: np.ndarray, targets: np.ndarray, train: TrainConfig, *a: Any, **k: Any
    ) -> Any:
        seen.append(Training(int(X.shape[0]), train.epochs, False))
        return fresh(model, X, targets, train, *a, **k)

    def spy_continued(
        model: Classifier, X: np.ndarray, targets: np.ndarray, train: TrainConfig, **k: Any
    ) -> Any:
        seen.append(Training(int(X.shape[0]), train.epochs, not k.get("reinitialize", True)))
        return continued(model, X, targets, train, **k)

    monkeypatch.setattr(loop, "train_uncertainty_model", spy_fresh)
    monkeypatch.setattr(loop, "train_classifier", spy_continued)
    return seen


def test_every_round_continues_the_last_classifier_the_certifying_one_included(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Round 0 has nothing to continue; rounds 1 (δ_k 0) and 2 (the certifying one) continue the previous
    round's classifier for warm_start_epochs epochs."""
    trainings = _record_trainings(monkeypatch)
    X, y = blobs_8d(600)
    result = run_tbal(make_dataset(X, y), _config(), seed=0)
    assert [r.delta_round > 0 for r in result.rounds] == [False, False, True]
    assert [(t.rows, t.epochs, t.continued) for t in trainings] == [
        (60, 6, False),
        (80, 2, True),
        (100, 2, True),
    ]


def test_the_certifying_rounds_self_trained_classifier_stays_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """With self-training, the certifying round continues its first classifier and trains the second one,
    on the human labels and the first one's pseudo-labels, from scratch."""
    trainings = _record_trainings(monkeypatch)
    X, y = blobs_8d(600)
    config = _config(**{"train.pseudo_label_share": 0.5, "train.pseudo_label_epochs": 3})
    run_tbal(make_dataset(X, y), config, seed=0)
    assert [(t.epochs, t.continued) for t in trainings] == [(6, False), (2, True), (2, True), (3, False)]
    assert trainings[-1].rows > 100  # the human labels and the pseudo-labels


def test_lean_rounds_only_leave_the_certifying_round_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """With warm_start_rounds "lean" only round 1 (δ_k 0) continues; the certifying round 2 trains a fresh
    classifier for train.epochs."""
    trainings = _record_trainings(monkeypatch)
    X, y = blobs_8d(600)
    run_tbal(make_dataset(X, y), _config(**{"train.warm_start_rounds": "lean"}), seed=0)
    assert [(t.rows, t.epochs, t.continued) for t in trainings] == [
        (60, 6, False),
        (80, 2, True),
        (100, 6, False),
    ]


def test_off_under_the_paper_rule_and_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    trainings = _record_trainings(monkeypatch)
    X, y = blobs_8d(600)
    run_tbal(make_dataset(X, y), _config(**{"thresholds.bound": "paper"}), seed=0)
    run_tbal(make_dataset(X, y), _config(**{"train.warm_start_epochs": 0}), seed=0)
    assert len(trainings) == 6 and not any(t.continued for t in trainings)
    assert TBALConfig().train.warm_start_epochs == 0


def test_a_continued_round_ranks_other_queries_than_a_fresh_one() -> None:
    """The warm classifier is what ranks round 1's queries: the runs part there (a test that the setting
    reaches the round, not only the spy)."""
    X, y = blobs_8d(600)
    warm = run_tbal(make_dataset(X, y), _config(), seed=0)
    cold = run_tbal(make_dataset(X, y), _config(**{"train.warm_start_epochs": 0}), seed=0)
    assert np.array_equal(warm.queried_rows[0], cold.queried_rows[0])
    assert not np.array_equal(warm.queried_rows[1], cold.queried_rows[1])


def test_it_applies_to_plain_classifiers_under_a_certifying_bound_in_the_rounds_named() -> None:
    config = _config()
    previous = build_model(config.model, (8,), 3)
    assert warm_start_applies(config, False, previous)
    assert warm_start_applies(config, True, previous)  # "every": the certifying round continues too
    lean = _config(**{"train.warm_start_rounds": "lean"})
    assert warm_start_applies(lean, False, previous)
    assert not warm_start_applies(lean, True, previous)  # the round may auto-label: fresh
    assert not warm_start_applies(config, False, None)  # nothing to continue
    assert not warm_start_applies(_config(**{"train.warm_start_epochs": 0}), False, previous)
    assert not warm_start_applies(_config(**{"thresholds.bound": "paper"}), True, previous)
    sngp = _config(**{"model.uncertainty": "sngp"})
    assert not warm_start_applies(sngp, False, previous)


def test_continuing_copies_every_weight_and_buffer_of_the_same_network_only() -> None:
    previous = build_model(ModelConfig(name="mlp", hidden=(16,)), (8,), 3)
    with torch.no_grad():
        previous.input_mean.fill_(0.25)
    model = build_model(ModelConfig(name="mlp", hidden=(16,)), (8,), 3)
    assert continue_from(model, previous)
    for name, value in previous.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    wider = build_model(ModelConfig(name="mlp", hidden=(32,)), (8,), 3)
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    assert not continue_from(wider, previous)  # another network: left as built
    assert all(torch.equal(wider.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("train.warm_start_epochs", -1),
        ("train.warm_start_epochs", 1.5),
        ("train.warm_start_epochs", "some"),
        ("train.warm_start_rounds", "all"),
        ("train.warm_start_rounds", 1),
    ],
)
def test_bad_values_are_refused_by_name(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        with_overrides(TBALConfig(), {key: value})
