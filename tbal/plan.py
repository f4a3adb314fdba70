"""The round plan: the one place where the loop's policy is written, used by :func:`tbal.loop.run_tbal`
and by the service's round (``app/rounds``) alike.

A round's plan says

- its **seed** (:func:`round_seed`: the run's seed and the round's index mixed by ``SeedSequence``);
- its **share of δ**, δ_k, from a schedule whose shares sum to at most δ for *any* number of rounds
  (:func:`delta_share`), capped by what earlier rounds left unspent, so that a project that changes its
  budget mid-way, or runs past its planned rounds, still holds "with probability ≥ 1 − δ, every round's
  auto-labels have true error ≤ ε" (a union bound over the rounds: Σ_k δ_k ≤ δ);
- its **query budget**: how many human labels it may queue for the next round (one batch, within
  N_t = ``label_budget``, which counts the seed, the training queries and the validation top-ups);
- how that budget splits, once the round knows how many validation points its removals left
  (:meth:`RoundPlan.split_queries`): the top-up that brings the validation set back to the floor (drawn
  uniformly from the pool left, :func:`draw_top_up`), and training queries for the rest.

δ schedules (``thresholds.delta_schedule``), over the planned rounds P (``loop.planned_rounds``) and a
reserve ``thresholds.delta_tail`` τ for rounds past them:

- ``uniform``: δ_k = (1 − τ)·δ / P for k < P — the papers' split, every round tested alike;
- ``final``: the last planned round (the one that runs when the budget is spent, with the best classifier
  and the most labels) gets the share ``thresholds.delta_final_share`` f of (1 − τ)·δ, the others share
  the rest equally. Why: a Clopper–Pearson certificate with no mistake needs n ≥ ln δ_k / ln(1 − ε) points
  of D_th inside the auto-labeled region (126 at δ_k = δ/32, 72 at δ/2), and validation points in certified
  regions are removed, so every certificate uses up validation points that later rounds need. Fewer, larger
  certificates at a larger δ_k reach further (BENCHMARKS.md, "δ spending").
- past the horizon, round P − 1 + j (j ≥ 1) gets τ·δ·2^(−j): Σ_k δ_k = (1 − τ)·δ + τ·δ·(1 − 2^(−J)) < δ.
- a round inside the horizon that runs with no label of N_t left (a project stopped early by lowering
  ``label_budget``, or one whose users gave the training labels unasked) is the last round the budget
  allows: under ``final`` it gets the final share, so stopping early still auto-labels. Every share is
  capped by δ − (what earlier rounds spent), so the sum stays ≤ δ whatever the order of events.

With ``thresholds.split_delta_over_rounds`` false every round is tested at δ (a per-round guarantee
only, as before; not valid over a run).

The stratum (k > 0, :func:`tbal.config.targeted_count`: ``loop.targeted_validation``, capped for a
confidence function fitted on labels so that ⌈ν·N_v⌉ stay uniform for its D_cal): k of the N_v validation
labels are not drawn at the start. The round before the certifying one (the one before the last planned
round, or the one whose queries spend the rest of N_t, whichever comes first) fixes a *stratum* R without
looking at any label: the pool points left after its auto-labels and queries whose classifier gives its
predicted class a probability at least the cut that keeps the top ``loop.stratum_share`` q of them
(:func:`stratum_cut`), and the validation points above the same cut; with ``loop.stratum_error_factor``
c > 0, q widens to the largest top share whose mean of 1 − p(ŷ), the classifier's own expected error, is
at most c·ε. (The classifier's probability, not the confidence function's score: a confidence function
fitted on D_cal would tie R to validation labels.) It draws the k validation points uniformly from R's
pool points (after any uniform top-up). Every later round certifies on the validation points inside R and
auto-labels inside R only. Why that is valid without weights: the uniform validation points inside R are a
uniform sample of R, and the k drawn from the rest of R make the union a uniform sample of R again,
exchangeable with R's points left to auto-label, so the Clopper–Pearson test holds inside R as it does on
the whole pool (D_cal, which fits a confidence function on labels, takes uniform points only, and a
uniform random part of them leaves the rest uniform). Why it helps: the certificate's walk starts among
the most confident points, where a few unlucky mistakes among a handful of validation points end it; R
holds several times more validation points there (BENCHMARKS.md, "The stratum in the loop").

The plan is pure: a function of a :class:`RunState` (counts the caller reads from memory or from the
database) and the configuration; it never draws the training queries (the round ranks them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tbal.config import LABEL_FREE_SCORES, TBALConfig, resolved_thresholds, targeted_count
from tbal.errors import TBALInputError
from tbal.thresholds import fewest_clean_points

TOP_UP_STREAM = 0x70B07
"""Second word of the validation top-up draw's seed (the first is the round's seed): a stream of its own,
so that runs without a floor draw exactly what they drew before."""

TARGETED_STREAM = 0x57A7
"""Second word of the stratum's validation draw (``loop.targeted_validation``): a stream of its own too."""


_ROUNDING_MARGIN = 1.0 - 1e-9
"""The schedule spends δ·(1 − 1e-9): floating-point sums of the shares then stay ≤ δ."""


@dataclass(frozen=True)
class RunState:
    """What the plan needs to know of a run before a round.

    round_index: the round's index k (0 for the first round).
    training_labels: human training items so far (labeled or queued), the seed included.
    validation_top_ups: validation labels bought from N_t so far (``loop.validation_floor``).
    delta_spent: Σ of the δ shares earlier rounds were tested at.
    stratum_drawn: an earlier round fixed the stratum and drew the targeted validation points.
    """

    round_index: int
    training_labels: int
    validation_top_ups: int = 0
    delta_spent: float = 0.0
    stratum_drawn: bool = False

    def __post_init__(self) -> None:
        for name in ("round_index", "training_labels", "validation_top_ups"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise TBALInputError(f"expected {name} to be an integer ≥ 0, got {value!r}")
        if not (0.0 <= float(self.delta_spent) <= 1.0):
            raise TBALInputError(f"expected delta_spent in [0, 1], got {self.delta_spent!r}")


@dataclass(frozen=True)
class QuerySplit:
    """How a round's query budget is spent: training queries and validation top-ups."""

    training: int
    top_up: int


@dataclass(frozen=True)
class RoundPlan:
    """What one round may spend (see the module docstring).

    seed: the round's seed (the confidence split, the queries, the top-up draw).
    delta: δ_k, the δ this round's thresholds are certified at (0: the round certifies nothing).
    query_budget: human labels the round may queue for the next round (training + top-up).
    validation_floor: the fewest validation points (labeled or queued) the round should leave.
    targeted: validation points this round draws inside the stratum it fixes (0: it fixes none).
    validation_reserved: validation points of N_v the stratum has yet to draw (this round's or a later
    round's): they count towards the floor, so that the rounds before it do not buy top-ups from N_t for
    points N_v will pay.
    stratum_share: the share of the pool left that the stratum keeps at least (``loop.stratum_share``).
    stratum_error: c·ε (``loop.stratum_error_factor`` times ε): the stratum widens to the largest top
    share whose mean of 1 − p(ŷ) is at most this (:func:`stratum_cut`); 0 keeps ``stratum_share``.
    """

    round_index: int
    seed: int
    delta: float
    query_budget: int
    validation_floor: int = 0
    targeted: int = 0
    validation_reserved: int = 0
    stratum_share: float = 1.0
    stratum_error: float = 0.0

    def split_queries(self, validation_left: int, pool_left: int) -> QuerySplit:
        """Split the query budget once the round knows ``validation_left`` (validation points, labeled
        or queued, after its removals) and ``pool_left`` (pool points neither auto-labeled nor queried).

        The top-up is the shortfall below the floor (the validation points the stratum has yet to draw
        count towards it), at most the budget and the pool; the rest of the budget goes to training
        queries (never more than the pool holds)."""
        if validation_left < 0 or pool_left < 0:
            raise TBALInputError(
                f"expected validation_left and pool_left ≥ 0, got {validation_left} and {pool_left}"
            )
        shortfall = self.validation_floor - validation_left - self.validation_reserved
        top_up = min(max(0, shortfall), self.query_budget, pool_left)
        training = min(self.query_budget - top_up, pool_left - top_up)
        return QuerySplit(training=training, top_up=top_up)


def plan_round(state: RunState, config: TBALConfig, *, run_seed: int) -> RoundPlan:
    """The plan of round ``state.round_index`` of a run seeded ``run_seed``.

    query_budget = min(batch, N_t − training labels − top-ups so far), 0 once the budget is spent;
    delta = min(δ_k of the schedule, δ − delta_spent) (0 for the paper rule, which has no δ).
    """
    loop = config.loop
    budget_left = loop.label_budget - state.training_labels - state.validation_top_ups
    return RoundPlan(
        round_index=int(state.round_index),
        seed=round_seed(run_seed, int(state.round_index)),
        delta=_capped_share(state, config, budget_left),
        query_budget=max(0, min(loop.batch_size, budget_left)),
        validation_floor=loop.validation_floor,
        targeted=targeted_count(config) if _fixes_stratum(state, config, budget_left) else 0,
        validation_reserved=0 if state.stratum_drawn else targeted_count(config),
        stratum_share=loop.stratum_share,
        stratum_error=loop.stratum_error_factor * config.thresholds.epsilon,
    )


def may_auto_label(plan: RoundPlan, config: TBALConfig) -> bool:
    """Whether a round under ``plan`` can auto-label anything: δ_k > 0, or the paper rule (which spends no
    δ). Under the ``final`` schedule only the last planned round and those past it can; the others only
    rank queries (and one fixes the stratum), which is what self-training and lean warm starts
    (``train.warm_start_rounds`` lean) go by."""
    return plan.delta > 0 or config.thresholds.bound == "paper"


def _fixes_stratum(state: RunState, config: TBALConfig, budget_left: int) -> bool:
    """Whether this round fixes the stratum: none was fixed yet, and the next round is the certifying
    one (the last planned round, or the first with no label of N_t left: this round's queries spend the
    rest)."""
    if targeted_count(config) == 0 or state.stratum_drawn:
        return False
    before_last = state.round_index == config.loop.planned_rounds - 2
    spends_the_rest = 0 < budget_left <= config.loop.batch_size
    return before_last or spends_the_rest


def delta_share(round_index: int, config: TBALConfig, *, budget_spent: bool = False) -> float:
    """δ_k of the schedule (see the module docstring); Σ_k δ_k ≤ δ for any number of rounds.

    ``budget_spent``: no label of N_t is left for this round to queue. Under the ``final`` schedule such a
    round inside the horizon is the last one the budget allows, whatever its index (the user lowered
    ``label_budget`` to stop early, or gave the labels unasked): it gets the final share. Were several such
    rounds to run, :func:`plan_round` caps each at what earlier rounds left, so Σ_k δ_k ≤ δ still holds.
    """
    if round_index < 0:
        raise TBALInputError(f"expected round_index ≥ 0, got {round_index}")
    th = config.thresholds
    if not th.split_delta_over_rounds:
        return th.delta
    horizon = config.loop.planned_rounds
    delta = th.delta * _ROUNDING_MARGIN
    inside = (1.0 - th.delta_tail) * delta
    if round_index >= horizon:
        return th.delta_tail * delta * 2.0 ** -(round_index - horizon + 1)
    if th.delta_schedule == "uniform" or horizon == 1:
        return inside / horizon
    if round_index == horizon - 1 or budget_spent:
        return inside * th.delta_final_share
    return inside * (1.0 - th.delta_final_share) / (horizon - 1)


def _capped_share(state: RunState, config: TBALConfig, budget_left: int) -> float:
    if config.thresholds.bound == "paper":
        return 0.0
    share = delta_share(int(state.round_index), config, budget_spent=budget_left <= 0)
    if not config.thresholds.split_delta_over_rounds:
        return share
    return max(0.0, min(share, config.thresholds.delta - float(state.delta_spent)))


def round_seed(run_seed: int, round_index: int) -> int:
    """Independent, reproducible seed per round (``SeedSequence`` mixing, not seed + i)."""
    return int(np.random.SeedSequence([run_seed, round_index]).generate_state(1)[0])


def draw_initial_sets(
    ids: np.ndarray, config: TBALConfig, run_seed: int, *, training_labels: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The validation set (N_v) and the seed training set drawn uniformly from ``ids`` (the pool, sorted),
    as the papers do it: one permutation seeded by the run; (validation ids, seed ids), each sorted.
    ``training_labels`` the user already gave count towards the seed. Fewer than asked when ``ids`` is
    short (validation first). The :func:`tbal.config.targeted_count` points of N_v are left for the
    stratum."""
    loop = config.loop
    order = np.random.default_rng(run_seed).permutation(ids.size)
    n_val = min(loop.validation_size - targeted_count(config), ids.size)
    n_seed = min(max(0, loop.seed_size - training_labels), ids.size - n_val)
    return np.sort(ids[order[:n_val]]), np.sort(ids[order[n_val : n_val + n_seed]])


def draw_top_up(candidates: np.ndarray, n: int, plan: RoundPlan) -> np.ndarray:
    """``n`` of ``candidates`` (the pool left after the round: not auto-labeled, not queried; sorted)
    drawn uniformly without replacement from the plan's top-up stream, sorted. Such points have the
    distribution of the pool the next round auto-labels and were never trained on: valid validation
    points."""
    return uniform_sample(candidates, n, plan.seed, TOP_UP_STREAM)


def stratum_cut(pool_probs: np.ndarray, share: float, error: float = 0.0) -> float:
    """The classifier's probability p(ŷ) at and above which a point is in the stratum: the ⌈q·n⌉-th
    highest of the pool's (ties go in; +inf for an empty pool), where q is ``share`` or, with ``error``
    > 0, the largest top share whose mean of 1 − p(ŷ) is ≤ ``error`` when that is larger. Set by the
    classifier's probabilities alone, never by a label."""
    if pool_probs.size == 0:
        return float("inf")
    ranked = np.sort(pool_probs)[::-1]
    keep = max(1, int(np.ceil(share * ranked.size)))
    if error > 0:
        expected_error = np.cumsum(1.0 - ranked) / np.arange(1, ranked.size + 1)
        keep = max(keep, int(np.searchsorted(expected_error, error, side="right")))
    return float(ranked[keep - 1])


def draw_targeted(candidates: np.ndarray, n: int, plan: RoundPlan) -> np.ndarray:
    """``n`` of ``candidates`` (the stratum's pool points left after the round's queries and top-ups;
    sorted) drawn uniformly without replacement from the plan's targeted stream, sorted."""
    return uniform_sample(candidates, n, plan.seed, TARGETED_STREAM)


def uniform_sample(ids: np.ndarray, k: int, seed: int, stream: int) -> np.ndarray:
    """min(k, len(ids)) of ``ids`` drawn uniformly without replacement from the random stream
    (``seed``, ``stream``), sorted."""
    k = min(int(k), int(ids.size))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng([seed, stream])
    return np.sort(rng.choice(ids, size=k, replace=False)).astype(np.int64)


@dataclass(frozen=True)
class CertificateNeeds:
    """What a run's certificate on the auto-labels needs before its test can pass anywhere, from the
    configuration alone (:func:`certificate_needs`): a project whose validation points cannot meet it
    auto-labels nothing, whatever its classifier, and is told so before its first round.

    delta_round: δ_k of the round that certifies with the largest share of δ (the last planned round under
    the ``final`` schedule, every planned round under ``uniform``).
    level: the level the walk's first candidate is tested at: δ_k, divided by K under the ``per-class``
    guarantee and by 2 where both pooled families are walked, times 1 − ``thresholds.fallback_share``.
    clean_points: the fewest D_th points, every one right, a region needs for that test to pass (with the
    exact binomial bound n ≥ ln(level) / ln(1 − ε); Hoeffding's n ≥ ln(1 / level) / (2ε²)); under
    ``per-class``, each class's region of its own points. (Under ``finite_pool`` only a region that labels
    one or two pool points passes with fewer.)
    per_class: the ``per-class`` guarantee (a certificate per class).
    num_classes: K.
    validation_points: the D_th points the certifying round holds at most: the validation set (N_v, or the
    floor where the label budget pays for the top-ups), less D_cal for a confidence function fitted on
    labels. Inside a stratum only its points are tested, so fewer still.
    """

    delta_round: float
    level: float
    clean_points: int
    per_class: bool
    num_classes: int
    validation_points: int

    @property
    def can_certify(self) -> bool:
        """Whether the validation points can hold a certificate at all (not whether they will)."""
        return self.validation_points >= self.clean_points

    @property
    def every_class_can(self) -> bool:
        """Whether a class of average size can hold its own certificate (always, but for ``per-class``)."""
        return not self.per_class or self.validation_points >= self.num_classes * self.clean_points

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "delta_round": self.delta_round,
            "level": self.level,
            "clean_points": self.clean_points,
            "per_class": self.per_class,
            "validation_points": self.validation_points,
            "can_certify": self.can_certify,
            "every_class_can": self.every_class_can,
        }

    def warnings(self) -> list[str]:
        """What the user should hear before the run: nothing can be auto-labeled, or (per class) only the
        classes that hold far more than their share of the validation points."""
        region = "a class's region" if self.per_class else "the region it labels"
        need = (
            f"a certificate at δ_k = {self.delta_round:.4g} needs at least {self.clean_points} validation "
            f"points (D_th) with no mistake in {region}"
        )
        if not self.can_certify:
            return [
                f"no round can auto-label anything: {need}, and the round that certifies has at most "
                f"{self.validation_points}; raise validation_size (or validation_floor), epsilon or delta"
            ]
        if not self.every_class_can:
            return [
                f"under the per-class guarantee {need}, and the round that certifies has at most "
                f"{self.validation_points} for {self.num_classes} classes: only a class holding "
                f"{self.clean_points} of them can be auto-labeled; the pooled guarantee (the default) "
                "certifies every class's auto-labels together and needs them once"
            ]
        return []


def certificate_needs(config: TBALConfig, num_classes: int) -> CertificateNeeds | None:
    """The :class:`CertificateNeeds` of ``config`` for ``num_classes`` classes, or None where the rule
    has no such minimum: the papers' rule (not a bound) and the ``dataset`` guarantee (its tolerance is
    on the human and auto-labels together, so the auto-labels' own may be above ε)."""
    th = resolved_thresholds(config)
    if th.bound == "paper" or th.guarantee == "dataset":
        return None
    if num_classes < 1:
        raise TBALInputError(f"expected num_classes ≥ 1, got {num_classes}")
    horizon = config.loop.planned_rounds
    delta_round = max(delta_share(k, config) for k in (0, horizon - 1))
    per_class = th.guarantee == "per-class"
    level = delta_round / (num_classes if per_class else 1)
    level /= 2 if th.pooled_families == "both" and not per_class else 1
    level *= 1.0 - th.fallback_share
    return CertificateNeeds(
        delta_round=delta_round,
        level=level,
        clean_points=fewest_clean_points(th.bound, th.epsilon, level),
        per_class=per_class,
        num_classes=num_classes,
        validation_points=_most_threshold_points(config),
    )


def certificate_warnings(config: TBALConfig, num_classes: int) -> list[str]:
    """:meth:`CertificateNeeds.warnings` of ``config``, none where the rule has no minimum."""
    needs = certificate_needs(config, num_classes)
    return [] if needs is None else needs.warnings()


def _most_threshold_points(config: TBALConfig) -> int:
    """The D_th points the certifying round holds at most (see :class:`CertificateNeeds`)."""
    loop = config.loop
    top_ups = min(max(0, loop.validation_floor - loop.validation_size), loop.label_budget - loop.seed_size)
    validation = loop.validation_size + top_ups
    if config.confidence.name in LABEL_FREE_SCORES:
        return validation
    return validation - round(loop.calibration_fraction * validation)
