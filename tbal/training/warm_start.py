"""Warm starts: a round whose classifier cannot auto-label continues the previous round's classifier.

Under the ``final`` δ schedule with its whole share on the last planned round (the presets' default,
:mod:`tbal.plan`), the rounds before it have δ_k = 0: under a certifying bound they auto-label nothing,
and their classifiers only rank the next queries and, in the round before the certifying one, fix the
stratum. Training each of them from scratch for ``train.epochs`` epochs is most of a run's cost (with
``mnist-paper``'s ResNet-8 on MNIST, rounds 0-14 took two thirds of a softmax run and nine tenths of a
Colander one). With ``train.warm_start_epochs`` = w > 0 such a *lean* round copies the previous round's
weights (its input standardisation included) and trains w epochs on all of its human training labels,
the new ones included, under the usual cosine schedule from ``lr`` (a warm restart, Loshchilov & Hutter
2017).

Why the guarantee is untouched: a lean round certifies nothing, and the rounds that may auto-label (the
certifying round, rounds past the horizon, every round under the paper rule) still train a fresh
classifier. The stratum stays label-free: a warm classifier has seen human *training* labels only, as a
fresh one has. What changes is which points are queried, so the certifying round's classifier is trained
on other points: measured in BENCHMARKS.md ("Issue 11, eighteenth session"; no preset turns it on).

One thing it does change: a round's AUM (:mod:`tbal.training.aum`, the service's label review) is the
area under the margins of the epochs that round trains. A continued round's classifier meets its new
labels as a fresh one would, but it has fitted the older ones in earlier rounds, so a wrong older label
stands out less there than in the round that first trained on it.

Plain classifiers only: DUQ's centroids and SNGP's covariance are refitted from scratch by their own
training (:func:`tbal.uncertainty.train_uncertainty_model`), so those models always train fresh.
"""

from __future__ import annotations

from tbal.config import TBALConfig
from tbal.networks import Classifier


def wants_previous(config: TBALConfig, may_auto_label: bool) -> bool:
    """Whether a round would continue the previous round's classifier, were there one: warm starts on, the
    round unable to auto-label (:func:`tbal.plan.may_auto_label`), and a plain classifier. The service asks
    this before it loads the last round's artifact."""
    return config.train.warm_start_epochs > 0 and not may_auto_label and config.model.uncertainty == "none"


def warm_start_applies(config: TBALConfig, may_auto_label: bool, previous: Classifier | None) -> bool:
    """Whether a round continues ``previous`` (the previous round's classifier, None where there is none)."""
    return previous is not None and wants_previous(config, may_auto_label)


def continue_from(model: Classifier, previous: Classifier) -> bool:
    """Load ``previous``'s parameters and buffers into the freshly built ``model`` when both are the same
    network (the same names and shapes); False, leaving ``model`` as it is, when they differ (the project
    changed its network, its input shape or its classes between rounds)."""
    mine, theirs = model.state_dict(), previous.state_dict()
    same = (
        model.network == previous.network
        and mine.keys() == theirs.keys()
        and all(mine[k].shape == theirs[k].shape for k in mine)
    )
    if same:
        model.load_state_dict(theirs)  # copies, across devices too
    return same
