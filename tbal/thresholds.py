"""Per-class threshold estimation and the error bounds.

(Why one module of ~600 lines: the bounds, the walks, plain and fallback, the two pooled families and the
dataset guarantee's tolerances make up one certificate, and the validity argument below covers them
together; the brute-force and simulation tests in tests/tbal/test_thresholds.py check them as one.)

Points of D_th are grouped by their **predicted** class ŷ; the candidate thresholds of a class are the
distinct scores observed in it (all points with an equal score enter together). For a candidate t,
``n(t)`` is the number of points of the class with ``s ≥ t``, ``m(t)`` the number of them that are wrong,
and ``ê(t) = m(t) / n(t)``.

Bounds (:class:`tbal.config.ThresholdConfig` ``bound``)
-------------------------------------------------------
``paper`` — the reference behaviour of Vishwakarma et al., "Promises and Pitfalls of Threshold-based
Auto-labeling" (NeurIPS 2023) and "Pearls from Pebbles" (NeurIPS 2024), kept for reproduction only:
a candidate counts when ``n(t) > n₀`` (``min_points``) and ``ê + C₁·sqrt(ê(1−ê)) ≤ ε``; the threshold is
the *smallest* such candidate. It has no δ and is not a confidence bound (it is 0 when no mistake is
seen), so it exceeds ε far more often than any δ (tests/tbal/test_thresholds.py shows it).

``valid`` (default) — Learn-then-Test fixed-sequence testing (Angelopoulos, Bates, Candès, Jordan, Lei,
"Learn then Test", 2021) with the exact Clopper–Pearson upper bound

    U(m, n) = Beta⁻¹(1 − δ'; m + 1, n − m)      (U = 1 when m = n),

the p with P(Bin(n, p) ≤ m) = δ'. Candidates are walked from the most to the least confident; the walk
stops at the first candidate whose bound exceeds ε and the threshold is the last (lowest) one that passed.
Candidates where the test could not pass even with zero mistakes (U(0, n) > ε, i.e. n < ln δ' / ln(1−ε),
≈ 59 points for ε = δ' = 0.05) carry no information from the labels: the sequence starts at the first
candidate whose n(t) is large enough. That start depends on the scores only, never on the labels, so
no correction for the walk is needed. Nothing passes → +inf (the class is not auto-labeled).

``hoeffding`` — the same walk with U = ê + sqrt(ln(1/δ') / (2n)) (clipped at 1).

Guarantees (``guarantee``)
--------------------------
``per-class`` — one walk per class at δ' = δ / (delta_divisor · K): with probability ≥ 1 − δ/delta_divisor,
every class's auto-labels have true error ≤ ε at once (union bound over the K classes, K = num_classes
whether or not a class has points, to stay conservative).

``pooled`` (default) — certifies the error of all of the round's auto-labels together while keeping
per-class thresholds. A fixed-sequence walk needs a one-parameter, nested family of threshold *vectors*
whose order does not depend on D_th's labels; the bound is then the Clopper–Pearson (or Hoeffding)
bound on the pooled count of mistakes among all D_th points inside the family member. Two such
families are walked, each at δ'/2 with δ' = δ / delta_divisor, and the one that auto-labels more D_th
points is kept (Bonferroni: both certificates hold at once with probability ≥ 1 − δ', so picking one
afterwards, by any rule, keeps the guarantee):

1. *common cut*: t[k](λ) = λ for every class with a D_th point at or above λ, +inf for a class with
   none (the walk has not seen it, so it is not auto-labeled); λ walks down the distinct D_th scores.
   Best when scores are comparable across classes (softmax, temperature scaling): it takes the points
   most likely to be right first, whatever their class.
2. *equal within-class rank*: r_i = #{j: ŷ_j = ŷ_i, s_j ≥ s_i} / #{j: ŷ_j = ŷ_i}; the cut ρ walks up the
   distinct r values and every class auto-labels its top share ρ (t[k](ρ) = the lowest class-k score
   with r ≤ ρ). Best when scores are on different scales per class (e.g. per-class histogram binning,
   where one class's top bin can hold early mistakes that stop the common cut).

Both families depend on D_th's scores and predictions only. Measured (logistic regression on MNIST and
SST-2 embeddings, D_cal 500, D_th 500–2000, ε = δ = 0.05, 30–50 D_th draws each, coverage of the
rest): each family alone collapses on some confidence function — common cut 9% vs equal rank 45% on
histogram-binned MNIST, equal rank 3% vs common cut 19% on Colander MNIST, equal rank 4% vs 14% on
SST-2 softmax — while the better of the two at δ'/2 never collapsed and lost 0–22% (median ≈ 8%) of
the better family's coverage on those and on synthetic populations; the share of draws above ε stayed
at or below δ, up to sampling noise. Per-class ``error_bound`` is nan in this mode: no class is
certified on its own, ``pooled_error_bound`` is the certificate.

Which families are walked is ``pooled_families`` (decided from the configuration alone, so it costs no
δ): ``both`` as above, or ``common`` / ``rank`` alone at the whole δ'. The default, ``auto``, walks the
common cut alone for softmax and temperature scaling, whose scores mean the same in every class (the
equal-rank family only ever lost there: SST-2 and MNIST proxies, 16 tuning seeds each, common cut at δ
19.1 % / 49.9 % coverage vs 17.5 % / 47.6 % for both at δ/2; BENCHMARKS.md), and both for the others.

For ``bound="paper"`` the pooled guarantee falls back to the per-class paper rule (the paper's rule is
per class); ``delta_used`` is nan for ``paper``.

The auto-labels of a finite pool (``finite_pool``)
--------------------------------------------------
The bounds above speak of the *population* error of a region: the chance that a point drawn as D_th was
drawn, above the threshold, is wrong. What a user counts is the error of the auto-labels themselves, the
pool points above it, of which D_th's points are not part. When D_th is a uniform sample of a finite set
(the pool and D_th together, inside the stratum), the two differ: a D_th that happened to hold few
mistakes leaves more of them to the rest. With N points in the region, n of them in D_th with m mistakes,
M mistakes in all, the rest's error is r = (M − m)/(N − n), and r > ε exactly when M ≥ M* = m +
⌊ε·(N − n)⌋ + 1. Given M, D_th's mistakes m are hypergeometric (n draws from N points, M of them wrong),
and of the M ≥ M* the smallest makes a small m likeliest; so each candidate is tested by
P(Hypergeometric(N, M*, n) ≤ m) ≤ δ' (N − n counted on the pool, label-free) instead of the
Clopper–Pearson bound at ε, and the walk keeps its argument: a certified region whose rest is above ε
passed a test whose null was true. The binomial bound treated D_th as drawn from an endless population;
the hypergeometric one knows the population is the region's N points, which narrows it, while the
rest's error is higher than the region's when D_th held few mistakes, which widens it. Replayed on
SST-2's certifying rounds (BENCHMARKS.md, "Issue 11, twenty-fourth session"), the plain test's
auto-labels went over ε in more of the validation draws than the round's δ_k, its regions with their
D_th points in fewer: the difference is this one. It composes with the ``dataset`` guarantee (whose
tolerance is itself one on the auto-labels).

Validity caveat: the tests are exact for thresholds fixed in advance. Here candidates and the start of
the walk are D_th scores (label-free but random); the guarantee then holds when the probability of a
mistake does not increase with the score within a class (what a confidence function is for), which the
simulations in tests/tbal/test_thresholds.py check; it is not claimed for adversarial scores.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.special import betainc, betaincinv
from scipy.stats import hypergeom

from tbal.config import ThresholdConfig
from tbal.errors import TBALInputError

_FIRST_CHUNK = 64  # candidates evaluated in chunks that double, so that the walk can stop early


@dataclass(frozen=True)
class ThresholdResult:
    """Per-class thresholds from D_th.

    thresholds: (K,) float64; +inf for a class that is not auto-labeled this round.
    estimated_error: (K,) empirical error among D_th points of predicted class k with score ≥ t[k]
        (nan where none).
    error_bound: (K,) the upper bound that certified t[k] (nan where not certified; nan for every class
        under the pooled guarantee, where ``pooled_error_bound`` is the certificate).
    n_points: (K,) int, D_th points of predicted class k with score ≥ t[k].
    pooled_estimated_error / pooled_error_bound: over all D_th points above their class's threshold
        (nan when nothing passes). Under ``finite_pool`` with a pool, ``error_bound`` and
        ``pooled_error_bound`` bound the error of the pool points the thresholds auto-label (the rest),
        which is what was certified; the estimate stays D_th's.
    delta_used: the δ each test was run at, after the splits across rounds and classes (per-class) or
        across the two pooled families (pooled: δ / (2·rounds)); nan for the paper rule, which has none.
    """

    thresholds: np.ndarray
    estimated_error: np.ndarray
    error_bound: np.ndarray
    n_points: np.ndarray
    pooled_estimated_error: float
    pooled_error_bound: float
    delta_used: float
    auto_mistakes_bound: float = float("nan")  # dataset guarantee: mistakes among this round's auto-labels


@dataclass(frozen=True)
class PoolContext:
    """The pool the round would auto-label, label-free: pool_scores / pool_predicted (n_p,) its
    confidence and ŷ. What ``finite_pool`` counts the rest of each candidate region on."""

    pool_scores: np.ndarray
    pool_predicted: np.ndarray

    def pool_scores_by_class(self) -> list[np.ndarray]:
        """The pool's scores per predicted class, each sorted increasing (K = max class + 1)."""
        k = int(self.pool_predicted.max()) + 1 if self.pool_predicted.size else 0
        return [np.sort(self.pool_scores[self.pool_predicted == c]) for c in range(k)]


@dataclass(frozen=True)
class DatasetContext(PoolContext):
    """What the ``dataset`` guarantee needs beyond D_th: the pool the round would auto-label and what
    is labeled already.

    pool_scores / pool_predicted: (n_p,) the pool's confidence and ŷ (label-free).
    human_labels: human-labeled items so far (training and validation; taken as correct).
    auto_labels: items auto-labeled by earlier rounds; mistakes_bound: Σ of their certified mistake bounds.

    The labeled data set after the round holds H + A + N_a items, N_a the round's auto-labels; its
    error is at most (M + mistakes among the N_a) / (H + A + N_a), which is ≤ ε when the new auto-labels'
    error is ≤ ε_eff(N_a) = (ε·(H + A + N_a) − M) / N_a. N_a of every candidate is counted on the pool
    (label-free), so each candidate of the walk is tested at its own tolerance ε_eff ≥ ε: the
    guarantee of PAC labeling (Candès, Ilyas & Zrnic, "Probably Approximately Correct Labels", 2025) on
    the whole labeled set, human labels taken as correct, in TBAL's loop.
    """

    human_labels: int
    auto_labels: int = 0
    mistakes_bound: float = 0.0

    def tolerance(self, epsilon: float, n_auto: np.ndarray) -> np.ndarray:
        """(c,) ε_eff for candidates that auto-label ``n_auto`` pool points (ε where none)."""
        n = np.asarray(n_auto, dtype=np.float64)
        slack = epsilon * (self.human_labels + self.auto_labels) - self.mistakes_bound
        return np.where(n > 0, epsilon + slack / np.maximum(n, 1.0), epsilon)


def estimate_thresholds(
    scores: np.ndarray,
    predicted: np.ndarray,
    correct: np.ndarray,
    num_classes: int,
    config: ThresholdConfig,
    *,
    delta_divisor: int = 1,
    delta: float | None = None,
    dataset: DatasetContext | None = None,
    pool: PoolContext | None = None,
) -> ThresholdResult:
    """Thresholds from D_th: ``scores`` (n,), ``predicted`` (n,) ŷ, ``correct`` (n,) bool 1[y = ŷ].
    ``delta``: the round's share δ_k of δ (:func:`tbal.plan.delta_share`; 0 certifies nothing); None
    = ``config.delta`` / ``delta_divisor`` (how many rounds δ is split over, 1 = this round alone).
    ``dataset``: what the ``dataset`` guarantee needs; ``pool``: the pool that ``finite_pool`` counts on
    (a ``dataset`` context serves as well); without either, the rest is the endless population and the
    regions are tested by the plain bound (module docstring, "The auto-labels of a finite pool").

    See the module docstring for the rules (paper / valid / hoeffding, per-class / pooled).
    """
    if not isinstance(config, ThresholdConfig):
        raise TBALInputError(f"expected config to be a ThresholdConfig, got {type(config).__name__}")
    k = _check_num_classes(num_classes)
    if (
        isinstance(delta_divisor, bool)
        or not isinstance(delta_divisor, (int, np.integer))
        or delta_divisor < 1
    ):
        raise TBALInputError(f"expected delta_divisor to be a positive integer, got {delta_divisor!r}")
    if delta is not None and not (isinstance(delta, (float, int)) and 0.0 <= delta < 1.0):
        raise TBALInputError(f"expected delta in [0, 1), got {delta!r}")
    s = _check_scores(scores, "scores")
    n = s.shape[0]
    yhat = _check_labels(predicted, "predicted", n, k)
    ok = _check_correct(correct, n)
    round_delta = config.delta / int(delta_divisor) if delta is None else float(delta)
    if config.guarantee == "dataset" and config.bound != "paper" and dataset is None:
        raise TBALInputError("the dataset guarantee needs the pool's scores and the labels so far (dataset=)")
    context = dataset if config.guarantee == "dataset" and config.bound != "paper" else None
    finite = config.finite_pool and config.bound != "paper"
    rest = (pool if pool is not None else dataset) if finite else None
    return _compute(s, yhat, ~ok, k, config, round_delta, _Context(context, rest))


def auto_label_mask(scores: np.ndarray, predicted: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(n,) bool: score ≥ thresholds[ŷ]. ``thresholds`` (K,) may hold +inf (class not auto-labeled)."""
    t = np.asarray(thresholds)
    if t.ndim != 1 or t.shape[0] == 0:
        raise TBALInputError(f"expected thresholds of shape (K,) with K ≥ 1, got shape {t.shape}")
    if not np.issubdtype(t.dtype, np.number) or np.isnan(t.astype(np.float64)).any():
        raise TBALInputError("expected real thresholds (+inf allowed), got NaN or a non-numeric array")
    s = _check_scores(scores, "scores")
    yhat = _check_labels(predicted, "predicted", s.shape[0], t.shape[0])
    return s >= t.astype(np.float64)[yhat]


# ---------------------------------------------------------------------------------------------------
# Input checks


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise TBALInputError(f"expected num_classes to be a positive integer, got {num_classes!r}")
    return int(num_classes)


def _check_scores(scores: np.ndarray, name: str) -> np.ndarray:
    s = np.asarray(scores)
    if s.ndim != 1:
        raise TBALInputError(f"expected {name} of shape (n,), got shape {s.shape}")
    if s.size and not (np.issubdtype(s.dtype, np.floating) or np.issubdtype(s.dtype, np.integer)):
        raise TBALInputError(f"expected real {name}, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise TBALInputError(f"expected finite {name}, got {int((~np.isfinite(s)).sum())} NaN or infinite")
    return s


def _check_labels(labels: np.ndarray, name: str, n: int, k: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise TBALInputError(f"expected {name} of shape ({n},), got shape {y.shape}")
    if y.size == 0:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        raise TBALInputError(f"expected integer class indices in {name}, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= k:
        raise TBALInputError(f"expected {name} in [0, {k}), got values in [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def _check_correct(correct: np.ndarray, n: int) -> np.ndarray:
    c = np.asarray(correct)
    if c.shape != (n,):
        raise TBALInputError(f"expected correct of shape ({n},), got shape {c.shape}")
    if c.dtype == np.bool_:
        return c
    if c.size and (not np.issubdtype(c.dtype, np.number) or not np.isin(c, (0, 1)).all()):
        raise TBALInputError("expected correct to be booleans (or 0/1), got other values")
    return c.astype(bool)


# ---------------------------------------------------------------------------------------------------
# Bounds


def _upper_bound(bound: str, errors: np.ndarray, n: np.ndarray, delta: float) -> np.ndarray:
    """Upper confidence bound on the error rate from ``errors`` mistakes among ``n`` points (n ≥ 1)."""
    m = np.asarray(errors, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    if bound == "valid":
        out = np.ones(np.broadcast(m, nn).shape)
        below = m < nn
        mb, nb = np.broadcast_to(m, out.shape)[below], np.broadcast_to(nn, out.shape)[below]
        out[below] = betaincinv(mb + 1.0, nb - mb, 1.0 - delta)  # Clopper–Pearson
        return out
    # hoeffding
    return np.minimum(1.0, m / nn + np.sqrt(math.log(1.0 / delta) / (2.0 * nn)))


def _passes(
    bound: str, errors: np.ndarray, n: np.ndarray, epsilon: float | np.ndarray, delta: float
) -> np.ndarray:
    """U(errors, n) ≤ ε, vectorised. For Clopper–Pearson, U ≤ ε ⇔ P(Bin(n, ε) ≤ m) ≤ δ (m < n), and
    P(Bin(n, ε) ≤ m) = I_{1−ε}(n − m, m + 1) is cheaper than the inverse."""
    if bound == "valid":
        m = np.asarray(errors, dtype=np.float64)
        nn = np.asarray(n, dtype=np.float64)
        below = m < nn
        cdf = betainc(np.where(below, nn - m, 1.0), m + 1.0, 1.0 - epsilon)
        return below & (cdf <= delta)
    return _upper_bound(bound, errors, n, delta) <= epsilon


def fewest_clean_points(bound: str, epsilon: float, level: float) -> int:
    """The fewest points, none of them a mistake, with which the test of ``bound`` ("valid": exact
    binomial, n ≥ ln(level) / ln(1 − ε); "hoeffding": n ≥ ln(1 / level) / (2ε²)) passes at ``level``:
    no region with fewer D_th points can be certified, whatever its labels. The finite-pool test of the
    auto-labels needs about as many where the region's pool points far outnumber its D_th points."""
    if bound not in ("valid", "hoeffding"):
        raise TBALInputError(f"expected bound valid or hoeffding, got {bound!r}")
    if not (0.0 < epsilon < 1.0 and 0.0 < level < 1.0):
        raise TBALInputError(f"expected epsilon and level in (0, 1), got {epsilon!r} and {level!r}")
    if bound == "valid":
        guess = math.log(level) / math.log1p(-epsilon)
    else:
        guess = math.log(1.0 / level) / (2.0 * epsilon**2)
    # the closed form bounds the search; the walks' own search settles n on the test (floating point can
    # put the closed form one off)
    n = _min_points_with_errors(bound, epsilon, level, 0, math.ceil(guess) + 1)
    assert n is not None  # the test passes at the closed form's n, rounded up, plus one
    return n


def _paper_bound(est: np.ndarray, c1: float) -> np.ndarray:
    """ê + C₁·sqrt(ê(1−ê)) (Vishwakarma et al. 2023, 2024; not a confidence bound)."""
    return est + c1 * np.sqrt(est * (1.0 - est))


# ---------------------------------------------------------------------------------------------------
# Search


@dataclass(frozen=True)
class _Candidates:
    """Distinct scores of a group, most confident first: value (c,), n (c,) points with s ≥ value,
    errors (c,) mistakes among them."""

    value: np.ndarray
    n: np.ndarray
    errors: np.ndarray
    epsilon: np.ndarray | None = None  # (c,) per-candidate tolerance (``dataset`` guarantee), else ε
    rest: np.ndarray | None = None  # (c,) pool points beside D_th's in each region (``finite_pool``)

    def tolerance(self, epsilon: float, lo: int, hi: int) -> np.ndarray | float:
        return epsilon if self.epsilon is None else self.epsilon[lo:hi]

    def passes(self, bound: str, epsilon: float, delta: float, lo: int, hi: int) -> np.ndarray:
        """(hi − lo,) whether candidates lo..hi pass at level δ: their regions' error is below the
        tolerance by ``bound``, or under ``finite_pool`` their rests' by the exact test of
        :func:`_rest_passes`, which then stands for either valid bound."""
        eps = self.tolerance(epsilon, lo, hi)
        if self.rest is None:
            return _passes(bound, self.errors[lo:hi], self.n[lo:hi], eps, delta)
        return _rest_passes(self.errors[lo:hi], self.n[lo:hi], self.rest[lo:hi], eps, delta)


@dataclass(frozen=True)
class _Context:
    """What a walk tests its candidates against beyond D_th: the ``dataset`` guarantee's context, and the
    pool whose rest ``finite_pool`` certifies (None: not used)."""

    dataset: DatasetContext | None = None
    pool: PoolContext | None = None

    def tested(
        self, cand: _Candidates, epsilon: float, pool_counts: Callable[[PoolContext], np.ndarray]
    ) -> _Candidates:
        """``cand`` with each candidate's tolerance (the dataset guarantee's ε_eff for the pool points it
        would auto-label, ``pool_counts``: (c,) of them), and those counts kept for :func:`_rest_passes`
        under ``finite_pool``; ``cand`` as it is when neither applies."""
        source = self.dataset if self.dataset is not None else self.pool
        if source is None:
            return cand
        counts = pool_counts(source)
        tolerance = np.full(counts.shape, epsilon)
        if self.dataset is not None:
            tolerance = self.dataset.tolerance(epsilon, counts)
        rest = counts if self.pool is not None else None
        return dataclasses.replace(cand, epsilon=tolerance, rest=rest)


def _rest_passes(
    errors: np.ndarray, n: np.ndarray, rest: np.ndarray, epsilon: float | np.ndarray, delta: float
) -> np.ndarray:
    """Whether each region's rest (``rest`` pool points beside its n D_th points, m = ``errors`` of them
    wrong) is certified at most ε wrong at level δ, D_th being a uniform sample of the region's n + rest
    points: the rest holds more than ε·rest mistakes only if the region holds M ≥ M* = m + ⌊ε·rest⌋ + 1,
    and of all such M this one makes m or fewer mistakes in D_th likeliest, so the test is
    P(Hypergeometric(n + rest, M*, n) ≤ m) ≤ δ (module docstring, "The auto-labels of a finite pool"). A
    region with no pool point beside D_th's labels nothing and passes."""
    m = np.asarray(errors, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    r = np.asarray(rest, dtype=np.float64)
    total = nn + r
    least_wrong = m + np.floor(np.asarray(epsilon) * r) + 1.0  # M*: the fewest mistakes of a failing rest
    possible = (r > 0) & (least_wrong <= total)
    tail = np.zeros(np.broadcast(m, nn, r).shape)
    if possible.any():
        tail[possible] = hypergeom.cdf(
            np.broadcast_to(m, tail.shape)[possible],
            total[possible],
            np.broadcast_to(least_wrong, tail.shape)[possible],
            np.broadcast_to(nn, tail.shape)[possible],
        )
    return tail <= delta


def _candidates(scores: np.ndarray, wrong: np.ndarray) -> _Candidates:
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # last index of each run of equal scores
    errors = np.cumsum(wrong[order], dtype=np.int64)[ends]
    return _Candidates(value=s[ends], n=ends + 1, errors=errors)


def _fixed_sequence(
    cand: _Candidates,
    bound: str,
    epsilon: float,
    delta: float,
    fallback: tuple[float, int] = (0.0, 0),
    start_share: float = 0.0,
) -> tuple[int, float] | None:
    """(index of the lowest candidate certified by the walk, the level α it passed at), or None.

    ``fallback`` = (η, J): with η = 0 the plain fixed-sequence walk at level δ, which stops at its first
    failure. With η > 0 the *fallback procedure* (Wiens, "A fixed sequence Bonferroni procedure for testing
    multiple endpoints", Pharmaceutical Statistics 2003; Wiens & Dmitrienko 2005): the same order, the
    start (:func:`_start_index`, ``start_share``) gets the weight (1 − η)·δ and J checkpoints get
    η·δ / J each (with a late start a checkpoint may come before it: any order of weights keeps the
    level); candidate i is
    tested at α_i = w_i + α_{i−1} if candidate i − 1 passed, else w_i. So one early failure (a few
    mistakes among the most confident points) no longer ends the walk: it resumes at the next checkpoint
    with its own share. Checkpoint j sits at the first candidate with n(t) ≥ the fewest points with which
    (2^j − 1) mistakes could pass at level η·δ / J — positions that depend on the counts n(t) only, never
    on the labels. The procedure controls the family-wise error at δ under any dependence, so every
    candidate that passes is certified at once and the lowest one is kept.
    """
    share, checkpoints = fallback
    if share <= 0.0 or checkpoints <= 0:
        return _plain_sequence(cand, bound, epsilon, delta, start_share)
    weights = _fallback_weights(cand, bound, epsilon, delta, share, checkpoints, start_share)
    tested = np.flatnonzero(weights > 0)
    if tested.size == 0:
        return None
    best: tuple[int, float] | None = None
    alpha = 0.0
    for i in range(int(tested[0]), cand.n.shape[0]):
        alpha = weights[i] + alpha  # α carried only while the walk passes (reset below on a failure)
        if alpha > 0.0 and bool(cand.passes(bound, epsilon, alpha, i, i + 1)[0]):
            best = (i, alpha)
        else:
            alpha = 0.0
    return best


def _fallback_weights(
    cand: _Candidates,
    bound: str,
    epsilon: float,
    delta: float,
    share: float,
    checkpoints: int,
    start_share: float = 0.0,
) -> np.ndarray:
    """(c,) the fallback weights over the candidates (they sum to at most δ; see :func:`_fixed_sequence`)."""
    weights = np.zeros(cand.n.shape[0])
    main = (1.0 - share) * delta
    start = _start_index(cand, bound, epsilon, main, start_share)
    if start < weights.size:
        weights[start] += main
    extra = share * delta / checkpoints
    for j in range(1, checkpoints + 1):
        at = _first_could_pass(cand, bound, epsilon, extra, 2**j - 1)
        if at < weights.size:
            weights[at] += extra
    return weights


def _could_pass(cand: _Candidates, bound: str, epsilon: float, level: float, errors: int) -> np.ndarray:
    """(c,) whether each candidate would pass at ``level`` with ``errors`` mistakes among its D_th points:
    its own test on its counts (n, and the rest under ``finite_pool``), no label read. A region with no
    pool point beside D_th's passes the rest's test whatever its labels, but labels nothing: no place to
    start a walk."""
    c = cand.n.shape[0]
    hypothetical = dataclasses.replace(cand, errors=np.full(c, float(errors)))
    labels_some = np.ones(c, dtype=bool) if cand.rest is None else cand.rest > 0
    return (cand.n > errors) & labels_some & hypothetical.passes(bound, epsilon, level, 0, c)


def _first_could_pass(cand: _Candidates, bound: str, epsilon: float, level: float, errors: int) -> int:
    """The first candidate at which ``errors`` mistakes could pass at ``level`` (c where none): with the
    rest's test, counted on the candidates themselves; else the fewest points of the binomial bound."""
    if cand.rest is None:
        n_max = int(cand.n[-1]) if cand.n.size else 0
        need = _min_points_with_errors(bound, epsilon, level, errors, n_max)
        return int(np.searchsorted(cand.n, need)) if need is not None else cand.n.shape[0]
    hits = np.flatnonzero(_could_pass(cand, bound, epsilon, level, errors))
    return int(hits[0]) if hits.size else cand.n.shape[0]


def _start_index(cand: _Candidates, bound: str, epsilon: float, level: float, start_share: float) -> int:
    """The candidate a walk at ``level`` starts at: the first at which m mistakes could pass, for the
    most mistakes m that could pass within the top ``start_share`` of D_th's points
    (:func:`_most_mistakes_within`; m = 0, the first place a pass is possible at all, when
    ``start_share`` is 0 or no m ≥ 1 fits).

    Why start later: with a low error among the most confident points, one mistake among the first 60–80
    D_th points (a chance of about a half on MNIST-like data) fails a walk that starts where only a
    perfect run can pass, and the fallback's checkpoints, at a tenth of δ each, rarely recover. A start
    that allows m mistakes survives them and loses only regions smaller than the start. The place
    depends on the counts alone (|D_th|, and under ``finite_pool`` the pool points above each candidate),
    never on the labels, so the walk keeps its level. Under ``finite_pool`` the places come from the
    rest's own test, which needs more clean points than Clopper–Pearson where D_th is a large share of
    the region: a place set by the binomial bound would sit where no run with its m mistakes can pass.
    """
    first = _first_could_pass(cand, bound, epsilon, level, 0)
    most = _most_mistakes_within(cand, bound, epsilon, level, start_share)
    # passing is monotone in m, so the place for `most` is at or after `first`, and within the share
    return first if most == 0 else _first_could_pass(cand, bound, epsilon, level, most)


def _most_mistakes_within(
    cand: _Candidates, bound: str, epsilon: float, level: float, start_share: float
) -> int:
    """The most mistakes that could pass at the top ``start_share`` of D_th's points: on that many points
    by the binomial bound (at the tolerance ε, the smallest a candidate can have), or under
    ``finite_pool`` at the last candidate within it, on its rest (0 where it labels nothing)."""
    limit = int(start_share * (int(cand.n[-1]) if cand.n.size else 0))
    if cand.rest is None:
        mistakes = np.arange(limit, dtype=np.float64)
        passing = _passes(bound, mistakes, np.full(limit, limit), epsilon, level)
    else:
        within = int(np.searchsorted(cand.n, limit, side="right")) - 1  # the last candidate with n ≤ limit
        if within < 0 or cand.rest[within] <= 0:
            return 0
        at_limit = _subset(cand, np.full(int(cand.n[within]), within))  # that candidate, once per m
        mistakes = np.arange(at_limit.n.shape[0], dtype=np.float64)
        passing = dataclasses.replace(at_limit, errors=mistakes).passes(
            bound, epsilon, level, 0, mistakes.size
        )
    hits = np.flatnonzero(passing)
    return int(hits[-1]) if hits.size else 0


def _min_points_with_errors(bound: str, epsilon: float, delta: float, errors: int, n_max: int) -> int | None:
    """Fewest n ≤ n_max with which ``errors`` mistakes pass at level δ, or None."""
    if n_max <= errors:
        return None
    n = np.arange(errors + 1, n_max + 1)
    ok = np.flatnonzero(_passes(bound, np.full(n.shape, float(errors)), n, epsilon, delta))
    return int(n[ok[0]]) if ok.size else None


def _plain_sequence(
    cand: _Candidates, bound: str, epsilon: float, delta: float, start_share: float = 0.0
) -> tuple[int, float] | None:
    """The plain fixed-sequence walk: from its start (:func:`_start_index`) down to the first failure;
    (the index of the last candidate that passed, δ), or None."""
    start = _start_index(cand, bound, epsilon, delta, start_share)
    i, chunk = start, _FIRST_CHUNK
    while i < cand.n.shape[0]:
        j = min(cand.n.shape[0], i + chunk)
        failed = np.flatnonzero(~cand.passes(bound, epsilon, delta, i, j))
        if failed.size:
            first_fail = i + int(failed[0])
            return (first_fail - 1, delta) if first_fail > start else None
        i, chunk = j, 2 * chunk
    return (cand.n.shape[0] - 1, delta) if cand.n.shape[0] > start else None


def _walk(cand: _Candidates, config: ThresholdConfig, delta: float) -> tuple[int, float] | None:
    """The configured walk over ``cand`` at level δ (:func:`_fixed_sequence`), on the candidates that
    ``config.walk_step`` keeps (:func:`_on_grid`); the index returned is into ``cand``."""
    fallback = (config.fallback_share, config.fallback_checkpoints)
    share = config.walk_start_share
    if config.walk_step <= 0.0:
        return _fixed_sequence(cand, config.bound, config.epsilon, delta, fallback, share)
    level = (1.0 - config.fallback_share) * delta
    start = _start_index(cand, config.bound, config.epsilon, level, share)
    start_count = int(cand.n[start]) if start < cand.n.shape[0] else int(cand.n[-1]) + 1
    kept = _on_grid(cand.n, start_count, config.walk_step)
    walk = _fixed_sequence(_subset(cand, kept), config.bound, config.epsilon, delta, fallback, share)
    return None if walk is None else (int(kept[walk[0]]), walk[1])


def _on_grid(n: np.ndarray, start: int, step: float) -> np.ndarray:
    """Indices of the candidates a walk with ``walk_step`` = ``step`` tests: the first whose count n(t)
    reaches ``start``, then each first one whose count reaches (1 + step)× that of the last one kept.

    Why fewer tests: a walk stops at its first failure, and a count of mistakes that runs near the bound
    crosses it somewhere along a dense walk far more often than at a few fixed places (for a random walk
    near its boundary, about twice as often: the reflection principle). The places depend on the counts
    n(t) alone, which the scores fix before any label is read, so the walk stays a fixed sequence of
    hypotheses and keeps its level (Wiens 2003); the price is that the certified region ends at a kept
    candidate, at most a factor 1 + step below the last one that would pass.
    """
    kept: list[int] = []
    i = int(np.searchsorted(n, start))
    while i < n.size:
        kept.append(i)
        i = int(np.searchsorted(n, n[i] * (1.0 + step)))  # > i: n is increasing and step > 0
    return np.asarray(kept, dtype=np.int64)


def _subset(cand: _Candidates, kept: np.ndarray) -> _Candidates:
    epsilon = None if cand.epsilon is None else cand.epsilon[kept]
    rest = None if cand.rest is None else cand.rest[kept]
    return _Candidates(cand.value[kept], cand.n[kept], cand.errors[kept], epsilon, rest)


def _paper_search(cand: _Candidates, epsilon: float, c1: float, min_points: int) -> int | None:
    """Index of the smallest candidate with n(t) > n₀ and ê + C₁·sqrt(ê(1−ê)) ≤ ε, or None."""
    ok = (cand.n > min_points) & (_paper_bound(cand.errors / cand.n, c1) <= epsilon)
    hits = np.flatnonzero(ok)
    return int(hits[-1]) if hits.size else None


def _rest_upper_bound(errors: float, n: float, rest: float, delta: float) -> float:
    """Upper bound at level δ on the error of a region's rest (``rest`` pool points beside its n D_th
    points, ``errors`` of them wrong): (M_U − m) / rest, M_U the most mistakes in the region that the test
    of :func:`_rest_passes` does not reject (P(Hypergeometric(n + rest, M, n) ≤ m) > δ; the probability
    falls with M, so bisection). ≤ ε exactly where that test passes; 0 for an empty rest."""
    if rest <= 0:
        return 0.0
    m, drawn, total = round(errors), round(n), round(n + rest)
    low, high = m, m + round(rest)  # low is never rejected (cdf = 1 at M = m); is high?
    if hypergeom.cdf(m, total, high, drawn) > delta:
        return 1.0
    while high - low > 1:  # invariant: low not rejected, high rejected
        mid = (low + high) // 2
        if hypergeom.cdf(m, total, mid, drawn) > delta:
            low = mid
        else:
            high = mid
    return (low - m) / rest


def _compute(
    scores: np.ndarray,
    predicted: np.ndarray,
    wrong: np.ndarray,
    k: int,
    config: ThresholdConfig,
    round_delta: float,
    context: _Context,
) -> ThresholdResult:
    thresholds = np.full(k, np.inf)
    per_class = config.bound == "paper" or config.guarantee == "per-class"
    if config.bound == "paper":
        delta = float("nan")
    else:
        delta = round_delta / (k if config.guarantee == "per-class" else 1)
        if delta <= 0.0:  # the round's share of δ is 0: it certifies nothing
            return _summarise(thresholds, scores, predicted, wrong, k, config, 0.0, per_class)

    passed_at = float("nan")
    if per_class:
        order = np.argsort(predicted, kind="stable")
        bounds = np.searchsorted(predicted[order], np.arange(k + 1))
        for c in range(k):
            rows = order[bounds[c] : bounds[c + 1]]
            if rows.size == 0:
                continue
            cand = _candidates(scores[rows], wrong[rows])
            cand = context.tested(cand, config.epsilon, partial(_class_pool_counts, c, cand.value))
            if config.bound == "paper":
                idx = _paper_search(cand, config.epsilon, config.c1, config.min_points)
            else:
                walk = _walk(cand, config, delta)
                idx = None if walk is None else walk[0]
            if idx is not None:
                thresholds[c] = cand.value[idx]
    else:
        thresholds, passed_at, delta = _pooled_walks(scores, predicted, wrong, k, config, delta, context)
    result = _summarise(thresholds, scores, predicted, wrong, k, config, delta, per_class, context.pool)
    if context.dataset is None or not np.isfinite(passed_at):
        return result
    bound = _mistakes_bound(result, thresholds, context.dataset, config, passed_at)
    return dataclasses.replace(result, auto_mistakes_bound=bound)


def _pooled_walks(
    scores: np.ndarray,
    predicted: np.ndarray,
    wrong: np.ndarray,
    k: int,
    config: ThresholdConfig,
    delta: float,
    context: _Context,
) -> tuple[np.ndarray, float, float]:
    """(thresholds, the level the kept walk passed at, the δ each walk was tested at) of the pooled
    families ``config.pooled_families`` names: one family at δ, or both at δ/2 each (Bonferroni), the
    one that auto-labels more D_th points kept. ``auto`` here (a caller that did not resolve it from the
    confidence function, :func:`tbal.config.resolved_thresholds`) walks both."""
    families = config.pooled_families
    if families == "common":
        return (*_common_cut(scores, predicted, wrong, k, config, delta, context), delta)
    if families == "rank":
        return (*_equal_rank_cut(scores, predicted, wrong, k, config, delta, context), delta)
    delta /= 2
    common = _common_cut(scores, predicted, wrong, k, config, delta, context)
    ranked = _equal_rank_cut(scores, predicted, wrong, k, config, delta, context)
    covered = [int((scores >= t[predicted]).sum()) for t, _ in (common, ranked)]
    return (*(common if covered[0] >= covered[1] else ranked), delta)


def _mistakes_bound(
    result: ThresholdResult,
    thresholds: np.ndarray,
    dataset: DatasetContext,
    config: ThresholdConfig,
    alpha: float,
) -> float:
    """Upper bound on the mistakes among the pool points the round auto-labels, at the level the
    certificate passed at: N_a · U(m, n; α) (what the next rounds of a ``dataset`` guarantee carry)."""
    n_auto = float(_pool_counts_at(dataset, thresholds[None, :])[0])
    m = result.n_points.sum() * result.pooled_estimated_error
    bound = _upper_bound(config.bound, np.array(m), np.array(result.n_points.sum()), alpha)
    return float(n_auto * bound)


def _common_cut(
    scores: np.ndarray,
    predicted: np.ndarray,
    wrong: np.ndarray,
    k: int,
    config: ThresholdConfig,
    delta: float,
    context: _Context | None = None,
) -> tuple[np.ndarray, float]:
    """Pooled family 1: t[k](λ) = λ for every class with a D_th point at or above λ (+inf otherwise),
    λ walked down the distinct D_th scores. (K,) thresholds and the level the cut passed at (nan: none)."""
    thresholds = np.full(k, np.inf)
    if scores.size == 0:
        return thresholds, float("nan")
    cand = _candidates(scores, wrong)
    top = np.full(k, -np.inf)
    np.maximum.at(top, predicted, scores)
    present = cand.value[:, None] <= top[None, :]  # (c, K): class k is in the family member
    cand = (context or _Context()).tested(
        cand, config.epsilon, partial(_pool_counts, cuts=cand.value, present=present)
    )
    walk = _walk(cand, config, delta)
    if walk is None:
        return thresholds, float("nan")
    cut = cand.value[walk[0]]
    thresholds[np.bincount(predicted[scores >= cut], minlength=k) > 0] = cut
    return thresholds, walk[1]


def _equal_rank_cut(
    scores: np.ndarray,
    predicted: np.ndarray,
    wrong: np.ndarray,
    k: int,
    config: ThresholdConfig,
    delta: float,
    context: _Context | None = None,
) -> tuple[np.ndarray, float]:
    """Pooled family 2: every class auto-labels the same top share of its D_th points. With
    r_i = #{j : ŷ_j = ŷ_i, s_j ≥ s_i} / #{j : ŷ_j = ŷ_i} (computed from the scores only), the cut ρ walks
    up the distinct r values and t[k](ρ) = the lowest class-k score with r ≤ ρ (+inf if none). (K,)
    thresholds and the level the cut passed at (nan: none)."""
    thresholds = np.full(k, np.inf)
    if scores.size == 0:
        return thresholds, float("nan")
    share = np.empty_like(scores)
    order = np.lexsort((scores, predicted))  # by class, then by increasing score
    sorted_class = predicted[order]
    starts = np.searchsorted(sorted_class, np.arange(k + 1))
    for c in range(k):
        rows = order[starts[c] : starts[c + 1]]
        if rows.size:
            s_c = scores[rows]  # increasing
            share[rows] = (rows.size - np.searchsorted(s_c, s_c, side="left")) / rows.size
    cand = _candidates(-share, wrong)  # most confident = smallest share first
    context = context or _Context()
    if context.dataset is not None or context.pool is not None:
        members = np.stack([_rank_member(-v, share, scores, predicted, k) for v in cand.value])  # (c, K)
        cand = context.tested(cand, config.epsilon, partial(_pool_counts_at, thresholds=members))
    walk = _walk(cand, config, delta)
    if walk is None:
        return thresholds, float("nan")
    return _rank_member(-cand.value[walk[0]], share, scores, predicted, k), walk[1]


def _rank_member(
    rho: float, share: np.ndarray, scores: np.ndarray, predicted: np.ndarray, k: int
) -> np.ndarray:
    """(K,) thresholds of the equal-rank family member ρ."""
    thresholds = np.full(k, np.inf)
    inside = share <= rho
    np.minimum.at(thresholds, predicted[inside], scores[inside])
    return thresholds


def _pool_counts(pool: PoolContext, cuts: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(c,) pool points a common cut λ_c auto-labels: Σ_k present[c, k]·#{pool of class k: s ≥ λ_c}."""
    counts = np.zeros(cuts.shape[0])
    for c, sorted_scores in enumerate(pool.pool_scores_by_class()):
        counts += present[:, c] * (sorted_scores.size - np.searchsorted(sorted_scores, cuts, side="left"))
    return counts


def _pool_counts_at(pool: PoolContext, thresholds: np.ndarray) -> np.ndarray:
    """(c,) pool points each row of ``thresholds`` (c, K) auto-labels."""
    counts = np.zeros(thresholds.shape[0])
    for c, sorted_scores in enumerate(pool.pool_scores_by_class()):
        counts += sorted_scores.size - np.searchsorted(sorted_scores, thresholds[:, c], side="left")
    return counts


def _class_pool_counts(k: int, cuts: np.ndarray, pool: PoolContext) -> np.ndarray:
    """(c,) pool points of predicted class ``k`` with a score at or above each cut (per-class walks)."""
    by_class = pool.pool_scores_by_class()
    if k >= len(by_class):
        return np.zeros(cuts.shape[0])
    return by_class[k].size - np.searchsorted(by_class[k], cuts, side="left").astype(np.float64)


def _summarise(
    thresholds: np.ndarray,
    scores: np.ndarray,
    predicted: np.ndarray,
    wrong: np.ndarray,
    k: int,
    config: ThresholdConfig,
    delta: float,
    per_class: bool,
    rest_of: PoolContext | None = None,
) -> ThresholdResult:
    """The result's estimates and bounds: Clopper–Pearson (or Hoeffding, or the paper's rule) on the D_th
    points above the thresholds; under ``finite_pool`` (``rest_of``, the pool), the bound on the error of
    the rest the thresholds auto-label (:func:`_rest_upper_bound`), the quantity that was certified."""
    above = scores >= thresholds[predicted]
    n_k = np.bincount(predicted[above], minlength=k).astype(np.int64)
    m_k = np.bincount(predicted[above], weights=wrong[above].astype(np.float64), minlength=k)
    has = n_k > 0
    est = np.full(k, np.nan)
    est[has] = m_k[has] / n_k[has]
    err_bound = np.full(k, np.nan)
    if per_class and has.any():
        if config.bound == "paper":
            err_bound[has] = _paper_bound(est[has], config.c1)
        elif rest_of is not None:
            for c in np.flatnonzero(has):
                rest = float(_class_pool_counts(int(c), thresholds[c : c + 1], rest_of)[0])
                err_bound[c] = _rest_upper_bound(m_k[c], n_k[c], rest, delta)
        else:
            err_bound[has] = _upper_bound(config.bound, m_k[has], n_k[has], delta)
    n_all = int(n_k.sum())
    pooled_est = pooled_bound = float("nan")
    if n_all:
        m_all = float(m_k.sum())
        pooled_est = m_all / n_all
        if config.bound == "paper":
            pooled_bound = float(_paper_bound(np.array(pooled_est), config.c1))
        elif rest_of is not None:
            rest = float(_pool_counts_at(rest_of, thresholds[None, :])[0])
            pooled_bound = _rest_upper_bound(m_all, n_all, rest, delta)
        else:
            pooled_bound = float(_upper_bound(config.bound, np.array(m_all), np.array(n_all), delta))
    return ThresholdResult(
        thresholds=thresholds,
        estimated_error=est,
        error_bound=err_bound,
        n_points=n_k,
        pooled_estimated_error=pooled_est,
        pooled_error_bound=pooled_bound,
        delta_used=delta,
    )
