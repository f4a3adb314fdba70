"""An evaluation report for one trained classifier: accuracy, calibration, agreement with the human label
distributions, out-of-distribution detection and robustness to a small adversarial perturbation.

The figures are those of the soft-label literature: accuracy, ECE and NLL (Guo et al., "On Calibration of
Modern Neural Networks", ICML 2017), cross-entropy against the human distributions and second-best accuracy
(Peterson et al., "Human uncertainty makes classification more robust", ICCV 2019), OOD AUROC
(Hendrycks & Gimpel, ICLR 2017) and the accuracy under an FGSM attack (Goodfellow, Shlens, Szegedy,
"Explaining and Harnessing Adversarial Examples", ICLR 2015), as tabulated by "Do soft labels enhance
neural network training?".

Everything reads the model through :func:`tbal.predictions.predict`, so a model whose forward pass already
returns its uncertainty-aware log-scores (:mod:`tbal.uncertainty`) is evaluated as it predicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tbal.errors import TBALInputError
from tbal.metrics import NLL_MIN_PROB, expected_calibration_error, negative_log_likelihood
from tbal.models import Classifier
from tbal.predictions import Predictions, predict

__all__ = [
    "EvaluationReport",
    "ScoreFunction",
    "auroc",
    "evaluate_model",
    "evaluate_predictions",
    "fgsm_attack",
    "human_cross_entropy",
    "max_softmax_score",
    "second_best_accuracy",
]

ScoreFunction = Callable[[Predictions], np.ndarray]
"""Maps a model's predictions for n points to (n,) confidence scores (higher = more in-distribution)."""


def max_softmax_score(preds: Predictions) -> np.ndarray:
    """(n,) max_k softmax(z)_k (Hendrycks & Gimpel 2017)."""
    return preds.probs.max(axis=1).astype(np.float64)


@dataclass(frozen=True)
class EvaluationReport:
    """The report of :func:`evaluate_model`; None where the needed input was not given.

    accuracy, ece (``ece_bins`` equal-width bins, top-label), nll (−log p[y]), human_cross_entropy
    (−Σ_k h_k log p_k against the human distributions h), second_best_accuracy (and the items it was
    measured on), ood_auroc (in-distribution points as positives, scored by the given score function),
    fgsm_accuracy / fgsm_drop (accuracy after the attack, and accuracy − that, on the first
    ``fgsm_points`` points), n (points evaluated).
    """

    n: int
    accuracy: float
    ece: float
    nll: float
    ece_bins: int = 10
    human_cross_entropy: float | None = None
    second_best_accuracy: float | None = None
    second_best_items: int | None = None
    ood_auroc: float | None = None
    fgsm_epsilon: float | None = None
    fgsm_points: int | None = None
    fgsm_clean_accuracy: float | None = None
    fgsm_accuracy: float | None = None
    fgsm_drop: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def evaluate_model(
    model: Classifier,
    X: np.ndarray,
    y: np.ndarray,
    *,
    human: np.ndarray | None = None,
    X_ood: np.ndarray | None = None,
    score: ScoreFunction = max_softmax_score,
    fgsm_epsilon: float | None = 0.005,
    fgsm_points: int | None = None,
    n_bins: int = 10,
    device: torch.device | None = None,
) -> EvaluationReport:
    """Evaluate ``model`` on prepared inputs X (n, ...) in [0, 1] with labels y (n,).

    ``human``: (n, K) human label distributions (for the cross-entropy and the second-best accuracy).
    ``X_ood``: prepared out-of-distribution inputs; AUROC of ``score`` separating X (positives) from X_ood.
    ``fgsm_epsilon``: attack size on the [0, 1] input scale (None: no attack), applied to the first
    ``fgsm_points`` points (None: all). Probabilities are softmax(logits) of what the model returns.
    """
    y = _check_labels(y, X.shape[0] if isinstance(X, np.ndarray) else -1, model.num_classes)
    preds = predict(model, X, device=device)
    report = _in_distribution(preds, y, human, n_bins)
    correct = preds.predicted == y
    if X_ood is not None:
        report["ood_auroc"] = auroc(score(preds), score(predict(model, X_ood, device=device)))
    if fgsm_epsilon is not None:
        m = y.size if fgsm_points is None else min(int(fgsm_points), y.size)
        X_adv = fgsm_attack(model, X[:m], y[:m], fgsm_epsilon, device=device)
        adv_accuracy = float(np.mean(predict(model, X_adv, device=device).predicted == y[:m]))
        clean_accuracy = float(correct[:m].mean())
        report.update(
            fgsm_epsilon=float(fgsm_epsilon),
            fgsm_points=m,
            fgsm_clean_accuracy=clean_accuracy,
            fgsm_accuracy=adv_accuracy,
            fgsm_drop=clean_accuracy - adv_accuracy,
        )
    return EvaluationReport(**report)  # type: ignore[arg-type]


def evaluate_predictions(
    preds: Predictions, y: np.ndarray, *, human: np.ndarray | None = None, n_bins: int = 10
) -> EvaluationReport:
    """The in-distribution part of :func:`evaluate_model` (accuracy, ECE, NLL and, with ``human`` (n, K),
    the cross-entropy against the human distributions and the second-best accuracy) from predictions a
    caller already has, e.g. a TBAL round's predictions on its validation set: no forward pass."""
    y = _check_labels(y, preds.probs.shape[0], preds.probs.shape[1])
    return EvaluationReport(**_in_distribution(preds, y, human, n_bins))  # type: ignore[arg-type]


def _in_distribution(
    preds: Predictions, y: np.ndarray, human: np.ndarray | None, n_bins: int
) -> dict[str, float | int | None]:
    probs = preds.probs.astype(np.float64)  # (n, K)
    correct = preds.predicted == y
    report: dict[str, float | int | None] = {
        "n": int(y.size),
        "accuracy": float(correct.mean()) if y.size else float("nan"),
        "ece": expected_calibration_error(np.clip(probs.max(axis=1), 0.0, 1.0), correct, n_bins),
        "nll": negative_log_likelihood(np.clip(probs, 0.0, 1.0), y),
        "ece_bins": n_bins,
    }
    if human is not None:
        report["human_cross_entropy"] = human_cross_entropy(probs, human)
        if probs.shape[1] >= 3:  # with two classes the second choice is fixed by the first
            report["second_best_accuracy"], report["second_best_items"] = second_best_accuracy(probs, human)
    return report


def human_cross_entropy(probs: np.ndarray, human: np.ndarray) -> float:
    """Mean over items of −Σ_k h_ik · log p_ik (Peterson et al. 2019's "crossentropy" against the human
    distributions h); p clipped below at 1e-12 so a class the humans chose but the model rules out costs
    at most 27.6 × its human share. probs, human: (n, K)."""
    p, h = _check_distributions(probs, human)
    if p.shape[0] == 0:
        return float("nan")
    return float(np.mean(-(h * np.log(np.maximum(p, NLL_MIN_PROB))).sum(axis=1)))


def second_best_accuracy(probs: np.ndarray, human: np.ndarray) -> tuple[float, int]:
    """Share of items on which the model's second most probable class is the humans' second choice
    (Peterson et al. 2019), and how many items it is measured on.

    Only items whose human ranking of the top two is strict are counted: h_(1) > h_(2) > h_(3) (so h_(2) > 0
    and neither the first nor the second choice is a tie). nan (0 items) when none qualifies."""
    p, h = _check_distributions(probs, human)
    if h.shape[1] < 3:
        raise TBALInputError(f"second-best accuracy needs at least 3 classes, got {h.shape[1]}")
    order_h = np.argsort(-h, axis=1, kind="stable")  # (n, K) human ranking
    ranked = np.take_along_axis(h, order_h, axis=1)
    eligible = (ranked[:, 0] > ranked[:, 1]) & (ranked[:, 1] > ranked[:, 2])
    if not eligible.any():
        return float("nan"), 0
    model_second = np.argsort(-p, axis=1, kind="stable")[:, 1]
    return float(np.mean(model_second[eligible] == order_h[eligible, 1])), int(eligible.sum())


def auroc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """Area under the ROC curve for telling positives (higher scores expected) from negatives:
    P(s⁺ > s⁻) + ½ P(s⁺ = s⁻), computed as the Mann–Whitney U statistic with mid-ranks for ties."""
    pos = np.asarray(positive_scores, dtype=np.float64).ravel()
    neg = np.asarray(negative_scores, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise TBALInputError(f"AUROC needs both positives and negatives, got {pos.size} and {neg.size}")
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(neg))):
        raise TBALInputError("AUROC needs finite scores")
    ranks = _mid_ranks(np.concatenate([pos, neg]))
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def fgsm_attack(
    model: Classifier,
    X: np.ndarray,
    y: np.ndarray,
    epsilon: float,
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
) -> np.ndarray:
    """Fast gradient sign method (Goodfellow et al. 2015): x' = clip(x + ε · sign(∇_x CE(f(x), y)), 0, 1).

    X: (n, ...) prepared inputs on the [0, 1] scale, the scale ε is measured on; the model's own input
    standardisation is part of its forward pass, so the gradient is taken with respect to the [0, 1]
    inputs. The model runs in eval mode (batch-norm running statistics; an MC Dropout model averages its
    seeded passes, so the attack sees the prediction that is evaluated); the loss is the cross-entropy of
    softmax(logits). Returns float32 (n, ...) adversarial inputs."""
    if not epsilon >= 0.0:
        raise TBALInputError(f"expected epsilon ≥ 0, got {epsilon!r}")
    y = _check_labels(y, X.shape[0], model.num_classes)
    x_all = np.ascontiguousarray(X, dtype=np.float32)
    if x_all.size and (x_all.min() < 0.0 or x_all.max() > 1.0):
        raise TBALInputError("FGSM expects inputs on the [0, 1] scale (prepared images)")
    device = device if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.empty_like(x_all)
    try:
        for start in range(0, x_all.shape[0], batch_size):
            x = torch.from_numpy(x_all[start : start + batch_size]).to(device).requires_grad_(True)
            target = torch.from_numpy(y[start : start + batch_size]).to(device)
            logits, _ = model(x)  # (B, K)
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, target, reduction="sum"), x)
            x_adv = (x.detach() + epsilon * grad.sign()).clamp_(0.0, 1.0)
            out[start : start + x.shape[0]] = x_adv.cpu().numpy()
    finally:
        model.train(was_training)
    return out


def _mid_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of values (n,), tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # boundaries of runs of equal values in the sorted order
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]  # exclusive
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _check_labels(y: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise TBALInputError(f"expected labels of shape ({n},), got {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes):
        raise TBALInputError(f"expected integer labels in [0, {num_classes})")
    return y.astype(np.int64)


def _check_distributions(probs: np.ndarray, human: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    h = np.asarray(human, dtype=np.float64)
    if p.ndim != 2 or h.shape != p.shape:
        raise TBALInputError(
            f"expected probs and human distributions of one shape (n, K), got {p.shape}, {h.shape}"
        )
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(h))) or (p < 0).any() or (h < 0).any():
        raise TBALInputError("expected non-negative finite probabilities")
    return p, h
