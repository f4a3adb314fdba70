"""Transductive self-training: the round's classifier trained again on its own most confident predictions.

Pseudo-labelling (Lee 2013; the self-training family of semi-supervised learning): a classifier trained
on the human labels predicts the unlabeled points, its most confident predictions are taken as labels,
and a fresh classifier is trained on both. Here the unlabeled points are *every* point the round will
judge without looking at a label: the pool and the validation set alike.

Why the certificate stays valid: a threshold certified on D_th holds for the pool because D_th and the
pool are exchangeable given everything the classifier was trained on. Training on pool points alone would
break that (the classifier would have seen the points it auto-labels and not the ones that test it: its
scores on the pool would run higher than on D_th). Here the choice of pseudo-labels reads only the first
classifier's outputs, never a validation label, and treats a validation point exactly as a pool point;
so the second classifier is a symmetric function of the pool and validation inputs, and D_th stays an
exchangeable sample of the points it scores. The 1,000-draw simulations of the bound hold as before.

Measured on the data-hard image case (``bench/hard_mnist.py``, tuning seeds 10-15, BENCHMARKS.md
"Issue 11, eighth session"); on SST-2 embeddings it bought nothing, so only the image preset uses it.
"""

from __future__ import annotations

import numpy as np

from tbal.predictions import Predictions


def pseudo_label_choice(
    preds: Predictions, share: float, limit: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Which unlabeled points get pseudo-labels, and the labels: in each predicted class, the ``share``
    of its points with the highest top softmax probability (per class, so that a class the classifier
    is unsure of keeps its share of the training set); then, when more than ``limit`` are chosen, a
    uniform random subset of ``limit`` of them (drawn from ``rng``: the same for every point, so the
    choice stays symmetric). Returns (indices into ``preds``, their predicted classes)."""
    probs = preds.probs
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    chosen = [
        _most_confident(np.flatnonzero(predicted == k), confidence, share) for k in range(probs.shape[1])
    ]
    index = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    if index.size > limit:
        index = np.sort(rng.choice(index, size=limit, replace=False))
    return index, predicted[index].astype(np.int64)


def _most_confident(members: np.ndarray, confidence: np.ndarray, share: float) -> np.ndarray:
    keep = int(share * members.size)
    # stable sort: ties keep their order, so a run is reproducible
    return members[np.argsort(-confidence[members], kind="stable")[:keep]]
