"""Warm starts: a round continues the previous round's classifier instead of training a fresh one.

With ``train.warm_start_epochs`` = w > 0 a round copies the previous round's weights (its input
standardisation included) and trains w epochs on all of its human training labels, the new ones included,
under the usual cosine schedule from ``lr`` (a warm restart, Loshchilov & Hutter 2017), instead of
``train.epochs`` from scratch. Which rounds (``train.warm_start_rounds``):

- ``"every"``: every round under a certifying bound, the certifying one included. Its self-trained second
  classifier (:mod:`tbal.training.self_training`) is still fresh, trained on the continued one's
  pseudo-labels. Measured on three distorted-MNIST cases, tuning seeds only (BENCHMARKS.md, "Issue 11,
  nineteenth session"): 16 rounds of continued training build a better classifier from the same 500
  labels than one trained from nothing on them, and the certificate follows it.
- ``"lean"``: only the rounds that cannot auto-label (δ_k = 0 under the ``final`` δ schedule,
  :func:`tbal.plan.may_auto_label`); the certifying round trains fresh. Cheaper rounds, but on a case of
  classes of unequal difficulty the certifying round's fresh classifier, trained on the points the
  continued ones queried, was far worse than either (BENCHMARKS.md, "Issue 11, eighteenth session").

Under the paper rule every round trains fresh, as the papers' rounds do, so that it stays a reproduction.

Why the guarantee is untouched: a continued classifier has seen the human *training* labels and, after a
self-training round, predicted labels of unlabeled points; never a validation label, as a fresh one never
has. The thresholds are still estimated on D_th points the classifier never saw labeled, and the stratum
is still chosen from scores alone; what changes is the classifier, which any certificate takes as given.

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
    """Whether a round would continue the previous round's classifier, were there one: warm starts on, a
    plain classifier, a certifying bound, and a round that ``train.warm_start_rounds`` names (every one, or
    only those that cannot auto-label: :func:`tbal.plan.may_auto_label`). The service asks this before it
    loads the last round's artifact."""
    train = config.train
    on = train.warm_start_epochs > 0 and config.model.uncertainty == "none"
    if not on or config.thresholds.bound == "paper":
        return False
    return train.warm_start_rounds == "every" or not may_auto_label


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
