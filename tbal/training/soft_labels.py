"""Aggregating several human labels per item: vote counts, majority vote, Dawid–Skene.

Human labels arrive in two shapes:

- vote counts ``counts`` (n, K): how many annotators chose class k for item i (CIFAR-10H, Peterson et al.,
  "Human uncertainty makes classification more robust", ICCV 2019, has about 51 votes an image);
- annotations with annotator ids, one row per (item, annotator, label) triple, when who voted is known.

From counts: :func:`votes_to_distribution` (the soft label, counts / row sum), :func:`majority_vote` (the
hard label) and :func:`sample_votes` (one vote drawn per item, a simulated single human). From annotations
with ids: :func:`dawid_skene`, the EM estimate of every annotator's confusion matrix and of each item's
class posterior (Dawid & Skene, "Maximum Likelihood Estimation of Observer Error-Rates Using the EM
Algorithm", Applied Statistics 28(1), 1979), which down-weights (or even inverts) unreliable annotators
where a plain vote count cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tbal.errors import TBALInputError

__all__ = [
    "DawidSkeneResult",
    "counts_from_annotations",
    "dawid_skene",
    "majority_vote",
    "sample_votes",
    "votes_to_distribution",
]


def votes_to_distribution(counts: np.ndarray) -> np.ndarray:
    """(n, K) non-negative vote counts → (n, K) float32 distributions counts[i] / Σ_k counts[i, k].

    Every item needs at least one vote."""
    c = _check_counts(counts)
    totals = c.sum(axis=1, keepdims=True)
    return (c / totals).astype(np.float32)


def majority_vote(counts: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """(n, K) vote counts → (n,) int64 class with the most votes.

    Ties: the lowest class index when ``rng`` is None, else one of the tied classes drawn uniformly."""
    c = _check_counts(counts)
    if rng is None:
        return c.argmax(axis=1).astype(np.int64)
    tied = c == c.max(axis=1, keepdims=True)  # (n, K) the classes sharing the top count
    # a uniform random key per cell, kept only on the tied cells: its argmax is a uniform tied class
    keys = np.where(tied, rng.random(c.shape), -1.0)
    return keys.argmax(axis=1).astype(np.int64)


def sample_votes(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n,) int64: one vote per item drawn with probability counts[i, k] / Σ_k counts[i, k] (a single
    simulated annotator who is as noisy as the crowd)."""
    dist = votes_to_distribution(counts).astype(np.float64)  # (n, K)
    cumulative = np.cumsum(dist, axis=1)  # (n, K)
    u = rng.random((dist.shape[0], 1)) * cumulative[:, -1:]  # (n, 1), scaled so rounding cannot overshoot
    return np.minimum((u >= cumulative).sum(axis=1), dist.shape[1] - 1).astype(np.int64)


def counts_from_annotations(
    items: np.ndarray, labels: np.ndarray, n_items: int, num_classes: int
) -> np.ndarray:
    """Annotations (one row per vote: ``items`` (m,), ``labels`` (m,)) → (n_items, K) int64 vote counts."""
    items_i, _, labels_i = _check_annotations(items, np.zeros_like(items), labels, n_items, num_classes)
    counts = np.zeros((n_items, num_classes), dtype=np.int64)
    np.add.at(counts, (items_i, labels_i), 1)
    return counts


@dataclass(frozen=True)
class DawidSkeneResult:
    """The EM estimate of Dawid & Skene (1979).

    posteriors: (n, K) P(true class of item i = k | all labels), float64, rows sum to 1.
    confusion: (A, K, K) π[a, k, l] = P(annotator a says l | true class k), rows sum to 1.
    priors: (K,) class proportions. log_likelihood: the marginal log-likelihood of the labels at the end.
    iterations: EM iterations run; converged: whether the largest posterior change fell below ``tol``.
    """

    posteriors: np.ndarray
    confusion: np.ndarray
    priors: np.ndarray
    log_likelihood: float
    iterations: int
    converged: bool

    @property
    def labels(self) -> np.ndarray:
        """(n,) int64 most probable class of each item."""
        return self.posteriors.argmax(axis=1).astype(np.int64)


def dawid_skene(
    items: np.ndarray,
    annotators: np.ndarray,
    labels: np.ndarray,
    *,
    n_items: int,
    num_classes: int,
    n_annotators: int | None = None,
    max_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> DawidSkeneResult:
    """Dawid–Skene EM over annotations given as three (m,) integer arrays: item i, annotator a, label l.

    Model (Dawid & Skene 1979): the true class t_i ~ Categorical(p); annotator a labels item i with l with
    probability π[a, t_i, l], independently given t_i. EM, started from the vote proportions (their
    initialisation):

    - M-step: p_k = (1/n) Σ_i T_ik;  π[a, k, l] ∝ s + Σ_{(i, a, l) votes} T_ik  (s = ``smoothing``, a
      Dirichlet pseudo-count that keeps an unseen cell away from log 0; s = 0 is the paper's MLE);
    - E-step: T_ik ∝ p_k · Π_{(i, a, l) votes} π[a, k, l].

    Stops when max |ΔT| < ``tol`` or after ``max_iter`` iterations. Items without any vote keep the prior.
    """
    if not isinstance(max_iter, int) or max_iter < 1:
        raise TBALInputError(f"expected max_iter to be a positive integer, got {max_iter!r}")
    if not (tol > 0.0 and smoothing >= 0.0):
        raise TBALInputError(f"expected tol > 0 and smoothing ≥ 0, got tol={tol!r}, smoothing={smoothing!r}")
    item_i, ann_i, label_i = _check_annotations(items, annotators, labels, n_items, num_classes)
    n_ann = int(ann_i.max()) + 1 if n_annotators is None and ann_i.size else int(n_annotators or 0)
    if ann_i.size and ann_i.max() >= n_ann:
        raise TBALInputError(f"expected annotator ids in [0, {n_ann}), got up to {int(ann_i.max())}")
    k = num_classes
    counts = np.zeros((n_items, k))
    np.add.at(counts, (item_i, label_i), 1.0)
    voted = counts.sum(axis=1) > 0  # (n,) items with at least one vote
    posteriors = np.full((n_items, k), 1.0 / k)
    posteriors[voted] = counts[voted] / counts[voted].sum(axis=1, keepdims=True)

    converged = False
    iterations = 0
    priors, confusion = _m_step(posteriors, item_i, ann_i, label_i, n_ann, smoothing)
    log_likelihood = float("nan")
    for iterations in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
        new_posteriors, log_likelihood = _e_step(priors, confusion, item_i, ann_i, label_i, n_items)
        change = float(np.abs(new_posteriors - posteriors).max(initial=0.0))
        posteriors = new_posteriors
        priors, confusion = _m_step(posteriors, item_i, ann_i, label_i, n_ann, smoothing)
        if change < tol:
            converged = True
            break
    return DawidSkeneResult(posteriors, confusion, priors, log_likelihood, iterations, converged)


def _m_step(
    posteriors: np.ndarray,
    item_i: np.ndarray,
    ann_i: np.ndarray,
    label_i: np.ndarray,
    n_ann: int,
    smoothing: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Class priors (K,) and confusion matrices (A, K, K) from the current posteriors (n, K)."""
    k = posteriors.shape[1]
    priors = posteriors.mean(axis=0)  # (K,)
    confusion = np.full((n_ann, k, k), smoothing)  # (A, K, K) pseudo-counts
    # every vote (i, a, l) adds T_i· to column l of annotator a's matrix: confusion[a, :, l] += T[i, :]
    np.add.at(confusion.transpose(0, 2, 1), (ann_i, label_i), posteriors[item_i])
    row_sums = confusion.sum(axis=2, keepdims=True)
    # an annotator who never saw class k (row sum 0, only possible with smoothing 0) gets a uniform row
    confusion = np.divide(confusion, row_sums, out=np.full_like(confusion, 1.0 / k), where=row_sums > 0)
    return priors, confusion


def _e_step(
    priors: np.ndarray,
    confusion: np.ndarray,
    item_i: np.ndarray,
    ann_i: np.ndarray,
    label_i: np.ndarray,
    n_items: int,
) -> tuple[np.ndarray, float]:
    """Posteriors (n, K) and the marginal log-likelihood Σ_i log Σ_k p_k Π π[a, k, l]."""
    with np.errstate(divide="ignore"):
        log_conf = np.log(confusion)  # (A, K, K)
        log_post = np.tile(np.log(priors), (n_items, 1))  # (n, K)
    np.add.at(log_post, item_i, log_conf[ann_i, :, label_i])  # each vote adds log π[a, ·, l]
    top = log_post.max(axis=1, keepdims=True)  # (n, 1)
    weights = np.exp(log_post - top)
    totals = weights.sum(axis=1, keepdims=True)
    return weights / totals, float(np.sum(top[:, 0] + np.log(totals[:, 0])))


def _check_counts(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[1] < 2:
        raise TBALInputError(f"expected vote counts of shape (n, K) with K ≥ 2, got {c.shape}")
    c = c.astype(np.float64)
    if not np.all(np.isfinite(c)) or (c < 0).any():
        raise TBALInputError("expected non-negative finite vote counts")
    empty = np.flatnonzero(c.sum(axis=1) <= 0)
    if empty.size:
        raise TBALInputError(f"every item needs at least one vote; item {int(empty[0])} has none")
    return c


def _check_annotations(
    items: np.ndarray, annotators: np.ndarray, labels: np.ndarray, n_items: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = [np.asarray(a) for a in (items, annotators, labels)]
    if any(a.ndim != 1 for a in arrays) or len({a.shape for a in arrays}) != 1:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise TBALInputError(f"expected items, annotators and labels of one shape (m,), got {shapes}")
    if any(a.size and not np.issubdtype(a.dtype, np.integer) for a in arrays):
        raise TBALInputError("expected integer items, annotators and labels")
    if not isinstance(n_items, int) or n_items < 1 or num_classes < 2:
        raise TBALInputError(f"expected n_items ≥ 1 and num_classes ≥ 2, got {n_items!r}, {num_classes!r}")
    item_i, ann_i, label_i = (a.astype(np.int64) for a in arrays)
    for name, values, high in (("items", item_i, n_items), ("labels", label_i, num_classes)):
        if values.size and (values.min() < 0 or values.max() >= high):
            raise TBALInputError(f"expected {name} in [0, {high}), got [{values.min()}, {values.max()}]")
    if ann_i.size and ann_i.min() < 0:
        raise TBALInputError(f"expected annotator ids ≥ 0, got {ann_i.min()}")
    return item_i, ann_i, label_i
