"""The base class of every confidence function."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Self

import numpy as np

from tbal.errors import TBALInputError
from tbal.predictions import Predictions


class ConfidenceFunction(ABC):
    """Scores how sure the classifier is of its own prediction ŷ = argmax logits.

    ``fit(cal, y_cal, seed=...)`` learns on D_cal (classifier outputs and human labels of held-out
    validation points) and returns ``self``; ``score(preds)`` returns one score per point, (n,), for the
    classifier's predicted class ŷ (never the true label: at scoring time labels are unknown).
    Scores only need to rank points within a predicted class: thresholds are set per class on D_th.
    Instances must be picklable (the service saves them as round artifacts).
    """

    name: ClassVar[str]
    learns_from_labels: ClassVar[bool] = True
    """False for a score that fits nothing on D_cal (max softmax): the round then sets thresholds on the
    whole validation set instead of splitting off a D_cal it would not use."""

    def __init__(self, num_classes: int) -> None:
        if num_classes < 2:
            raise TBALInputError(f"a confidence function needs at least 2 classes, got {num_classes}")
        self.num_classes = num_classes
        self.fitted = False

    def fit(self, cal: Predictions, y: np.ndarray, *, seed: int = 0) -> Self:
        """Fit on D_cal: ``cal`` (n points), ``y`` (n,) int labels in [0, K)."""
        self._check_predictions(cal)
        y = np.asarray(y)
        if y.shape != (len(cal),):
            raise TBALInputError(f"expected labels of shape ({len(cal)},), got {y.shape}")
        if y.size and (y.min() < 0 or y.max() >= self.num_classes):
            raise TBALInputError(f"labels must be in [0, {self.num_classes}), got [{y.min()}, {y.max()}]")
        self._fit(cal, y.astype(np.int64), seed)
        self.fitted = True
        return self

    def score(self, preds: Predictions) -> np.ndarray:
        """(n,) float64 confidence of each point's predicted class."""
        self._check_predictions(preds)
        if not self.fitted:
            raise TBALInputError(f"{self.name}: call fit(...) before score(...)")
        return np.asarray(self._score(preds), dtype=np.float64)

    def _check_predictions(self, preds: Predictions) -> None:
        if preds.logits.ndim != 2 or preds.logits.shape[1] != self.num_classes:
            raise TBALInputError(
                f"expected logits of shape (n, {self.num_classes}), got {preds.logits.shape}"
            )
        if preds.features.ndim != 2 or preds.features.shape[0] != preds.logits.shape[0]:
            raise TBALInputError(
                f"expected features of shape ({preds.logits.shape[0]}, d), got {preds.features.shape}"
            )

    @abstractmethod
    def _fit(self, cal: Predictions, y: np.ndarray, seed: int) -> None: ...

    @abstractmethod
    def _score(self, preds: Predictions) -> np.ndarray: ...
