"""Threshold search: brute-force references, known answers, edge cases, and the guarantee by simulation."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest
from scipy.stats import beta

from tbal.config import BoundName, GuaranteeName, ThresholdConfig
from tbal.errors import TBALInputError
from tbal.thresholds import PoolContext, ThresholdResult, auto_label_mask, estimate_thresholds
from tests.tbal.simulated_scores import A_K, B_K, draw_population, true_errors

INF = math.inf

# ---------------------------------------------------------------------------------------------------
# Brute-force reference: plain loops over every candidate, written from the rules, not from the module.


def bf_upper(bound: str, m: int, n: int, delta: float) -> float:
    if bound == "valid":
        return 1.0 if m == n else float(beta.ppf(1 - delta, m + 1, n - m))
    return min(1.0, m / n + math.sqrt(math.log(1 / delta) / (2 * n)))


def bf_walk(keys: list[float], wrong: list[bool], bound: str, eps: float, delta: float) -> float:
    """Fixed sequence over the distinct keys, largest (most confident) first. Candidates where even zero
    mistakes could not pass are skipped; then stop at the first failure. Returns the last passing key."""
    last = -INF
    started = False
    for v in sorted(set(keys), reverse=True):
        n = sum(1 for x in keys if x >= v)
        m = sum(1 for x, w in zip(keys, wrong, strict=True) if x >= v and w)
        if not started:
            if bf_upper(bound, 0, n, delta) > eps:
                continue
            started = True
        if bf_upper(bound, m, n, delta) <= eps:
            last = v
        else:
            break
    return last


def bf_paper(keys: list[float], wrong: list[bool], eps: float, c1: float, n0: int) -> float:
    best = INF
    for v in set(keys):
        n = sum(1 for x in keys if x >= v)
        m = sum(1 for x, w in zip(keys, wrong, strict=True) if x >= v and w)
        e = m / n
        if n > n0 and e + c1 * math.sqrt(e * (1 - e)) <= eps:
            best = min(best, v)
    return best


def bf_thresholds(s, yhat, wrong, k: int, cfg: ThresholdConfig, divisor: int) -> tuple[list[float], str]:
    """Reference thresholds and which rule produced them ('per-class', 'common' or 'rank')."""
    s, yhat, wrong = list(map(float, s)), list(map(int, yhat)), list(map(bool, wrong))
    if cfg.bound == "paper" or cfg.guarantee == "per-class":
        out = []
        for c in range(k):
            keys = [x for x, y in zip(s, yhat, strict=True) if y == c]
            ws = [w for w, y in zip(wrong, yhat, strict=True) if y == c]
            if not keys:
                out.append(INF)
            elif cfg.bound == "paper":
                out.append(bf_paper(keys, ws, cfg.epsilon, cfg.c1, cfg.min_points))
            else:
                t = bf_walk(keys, ws, cfg.bound, cfg.epsilon, cfg.delta / divisor / k)
                out.append(INF if t == -INF else t)
        return out, "per-class"
    delta = cfg.delta / divisor / 2
    # family 1: one common cut over all points
    cut = bf_walk(s, wrong, cfg.bound, cfg.epsilon, delta)
    common = [INF] * k
    if cut > -INF:
        for x, y in zip(s, yhat, strict=True):
            if x >= cut:
                common[y] = cut
    # family 2: equal within-class share r = #{same class, score ≥ mine} / #{same class}
    share = []
    for x, y in zip(s, yhat, strict=True):
        same = [z for z, yy in zip(s, yhat, strict=True) if yy == y]
        share.append(sum(1 for z in same if z >= x) / len(same))
    rho = bf_walk([-r for r in share], wrong, cfg.bound, cfg.epsilon, delta)
    rank = [INF] * k
    if rho > -INF:
        for x, y, r in zip(s, yhat, share, strict=True):
            if r <= -rho:
                rank[y] = min(rank[y], x)

    def covered(t: list[float]) -> int:
        return sum(1 for x, y in zip(s, yhat, strict=True) if x >= t[y])

    return (common, "common") if covered(common) >= covered(rank) else (rank, "rank")


def random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    k = int(rng.integers(1, 5))
    n = int(rng.integers(0, 400))
    ties = rng.random() < 0.5
    s = rng.integers(0, 25, n) / 25.0 if ties else rng.random(n)  # heavy ties half of the time
    yhat = rng.integers(0, k, n)
    scale = rng.uniform(0.5, 1.0, k)  # classes on different score scales now and then
    if rng.random() < 0.5:
        s = s * scale[yhat]
    p_wrong = rng.uniform(0.05, 0.6) * (1 - s) ** 2
    wrong = rng.random(n) < p_wrong
    return s, yhat, wrong, k


CONFIGS = [
    ThresholdConfig(bound="valid", guarantee="per-class", epsilon=0.2, delta=0.2),
    ThresholdConfig(bound="valid", guarantee="per-class", epsilon=0.1, delta=0.1),
    ThresholdConfig(bound="valid", guarantee="pooled", epsilon=0.2, delta=0.2),
    ThresholdConfig(bound="valid", guarantee="pooled", epsilon=0.1, delta=0.05),
    ThresholdConfig(bound="hoeffding", guarantee="per-class", epsilon=0.3, delta=0.2),
    ThresholdConfig(bound="hoeffding", guarantee="pooled", epsilon=0.25, delta=0.2),
    ThresholdConfig(bound="paper", guarantee="per-class", epsilon=0.1, min_points=5),
    ThresholdConfig(bound="paper", guarantee="pooled", epsilon=0.05, c1=0.5, min_points=3),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.bound}-{c.guarantee}-{c.epsilon}")
def test_search_matches_brute_force(cfg: ThresholdConfig) -> None:
    # the brute force is the plain fixed sequence from the first place a pass is possible
    cfg = dataclasses.replace(cfg, fallback_share=0.0, walk_start_share=0.0)
    rng = np.random.default_rng(12345)
    rules: dict[str, int] = {}
    passed = 0
    for _ in range(60):
        s, yhat, wrong, k = random_case(rng)
        divisor = int(rng.integers(1, 3))
        got = estimate_thresholds(s, yhat, ~wrong, k, cfg, delta_divisor=divisor)
        want, rule = bf_thresholds(s, yhat, wrong, k, cfg, divisor)
        np.testing.assert_array_equal(got.thresholds, np.array(want))
        rules[rule] = rules.get(rule, 0) + 1
        passed += int(np.isfinite(got.thresholds).any())
        check_summary(got, s, yhat, wrong, k, cfg)
    assert passed >= 10, "the random cases should certify something often enough to test the search"
    if cfg.guarantee == "pooled" and cfg.bound != "paper":
        assert set(rules) == {"common", "rank"}, f"both pooled families should be chosen at times: {rules}"


def check_summary(got: ThresholdResult, s, yhat, wrong, k: int, cfg: ThresholdConfig) -> None:
    """Per-class and pooled statistics recomputed by loops at the returned thresholds."""
    per_class = cfg.bound == "paper" or cfg.guarantee == "per-class"
    tot_n = tot_m = 0
    for c in range(k):
        above = [w for x, y, w in zip(s, yhat, wrong, strict=True) if y == c and x >= got.thresholds[c]]
        n, m = len(above), sum(above)
        tot_n, tot_m = tot_n + n, tot_m + m
        assert got.n_points[c] == n
        if n == 0:
            assert math.isnan(got.estimated_error[c]) and math.isnan(got.error_bound[c])
            continue
        assert got.estimated_error[c] == pytest.approx(m / n)
        if not per_class:
            assert math.isnan(got.error_bound[c])
        elif cfg.bound == "paper":
            e = m / n
            assert got.error_bound[c] == pytest.approx(e + cfg.c1 * math.sqrt(e * (1 - e)))
            assert got.error_bound[c] <= cfg.epsilon + 1e-12
        else:
            assert got.error_bound[c] == pytest.approx(bf_upper(cfg.bound, m, n, got.delta_used), rel=1e-9)
            assert got.error_bound[c] <= cfg.epsilon
    if tot_n == 0:
        assert math.isnan(got.pooled_estimated_error) and math.isnan(got.pooled_error_bound)
        return
    assert got.pooled_estimated_error == pytest.approx(tot_m / tot_n)
    if cfg.bound != "paper":
        assert got.pooled_error_bound == pytest.approx(
            bf_upper(cfg.bound, tot_m, tot_n, got.delta_used), rel=1e-9
        )
    if not per_class:
        assert got.pooled_error_bound <= cfg.epsilon


# ---------------------------------------------------------------------------------------------------
# Known answers


def test_clopper_pearson_needs_59_clean_points_at_5_percent() -> None:
    """With no mistake, U(0, n) = 1 − δ^(1/n) ≤ 0.05 needs n ≥ ln 0.05 / ln 0.95 = 58.4 (ARCHITECTURE.md)."""
    cfg = ThresholdConfig(bound="valid", guarantee="per-class", epsilon=0.05, delta=0.05, fallback_share=0.0)
    for n, certified in [(58, False), (59, True)]:
        s = np.linspace(0.5, 1.0, n)
        r = estimate_thresholds(s, np.zeros(n, dtype=int), np.ones(n, dtype=bool), 1, cfg)
        assert r.thresholds[0] == (0.5 if certified else INF)
        if certified:
            assert r.error_bound[0] == pytest.approx(1 - 0.05 ** (1 / 59))
            assert r.n_points[0] == 59 and r.estimated_error[0] == 0.0


def test_hoeffding_needs_600_clean_points_at_5_percent() -> None:
    """sqrt(ln(1/δ)/(2n)) ≤ 0.05 ⇔ n ≥ ln 20 / 0.005 = 599.1."""
    cfg = ThresholdConfig(
        bound="hoeffding", guarantee="per-class", epsilon=0.05, delta=0.05, fallback_share=0.0
    )
    for n, certified in [(599, False), (600, True)]:
        s = np.linspace(0.0, 1.0, n)
        r = estimate_thresholds(s, np.zeros(n, dtype=int), np.ones(n, dtype=bool), 1, cfg)
        assert np.isfinite(r.thresholds[0]) == certified


def test_walk_stops_at_the_first_failure() -> None:
    """A mistake early in the plain sequence (no fallback) stops the walk, even if lower candidates
    would pass again; the paper rule instead takes the smallest passing candidate."""
    n = 400
    s = np.arange(n, 0, -1) / n  # distinct, decreasing
    wrong = np.zeros(n, dtype=bool)
    wrong[[60, 61, 62]] = True  # mistakes right after the 60th point: U(1, 61) ≈ 0.076 > 0.05
    cfg = ThresholdConfig(
        bound="valid",
        guarantee="per-class",
        epsilon=0.05,
        delta=0.05,
        fallback_share=0.0,
        walk_start_share=0.0,
    )
    r = estimate_thresholds(s, np.zeros(n, dtype=int), ~wrong, 1, cfg)
    assert r.thresholds[0] == s[60 - 1] and r.n_points[0] == 60  # the last point before the mistakes
    assert bf_upper("valid", 3, 400, 0.05) <= 0.05  # the whole set would pass on its own
    paper = estimate_thresholds(s, np.zeros(n, dtype=int), ~wrong, 1, ThresholdConfig(bound="paper"))
    assert paper.thresholds[0] == s[-1]


def test_ties_enter_together() -> None:
    """All points with an equal score enter at once: 60 clean points then a block of 10 tied points with
    one mistake; the threshold is either above the block or at it, never inside it."""
    s = np.r_[np.linspace(1.0, 0.9, 60), np.full(10, 0.5)]
    wrong = np.zeros(70, dtype=bool)
    wrong[65] = True
    cfg = ThresholdConfig(bound="paper", min_points=60, epsilon=0.05, c1=0.0)
    r = estimate_thresholds(s, np.zeros(70, dtype=int), ~wrong, 1, cfg)
    assert r.thresholds[0] == 0.5 and r.n_points[0] == 70  # n > 60 only once the block is in


def test_paper_rule_counts_more_than_min_points() -> None:
    s = np.linspace(1.0, 0.0, 30)
    ok = np.ones(30, dtype=bool)
    for n0, want in [(30, INF), (29, 0.0)]:
        r = estimate_thresholds(
            s, np.zeros(30, dtype=int), ok, 1, ThresholdConfig(bound="paper", min_points=n0)
        )
        assert r.thresholds[0] == want


def test_delta_bookkeeping() -> None:
    rng = np.random.default_rng(0)
    s, yhat, ok = rng.random(300), rng.integers(0, 3, 300), np.ones(300, dtype=bool)
    per = estimate_thresholds(
        s, yhat, ok, 3, ThresholdConfig(guarantee="per-class", delta=0.06), delta_divisor=4
    )
    assert per.delta_used == pytest.approx(0.06 / 4 / 3)
    pooled = estimate_thresholds(
        s, yhat, ok, 3, ThresholdConfig(guarantee="pooled", delta=0.06), delta_divisor=4
    )
    assert pooled.delta_used == pytest.approx(0.06 / 4 / 2)  # two families at δ/2 each
    assert math.isnan(estimate_thresholds(s, yhat, ok, 3, ThresholdConfig(bound="paper")).delta_used)


def test_pooled_certifies_classes_too_small_for_per_class() -> None:
    """The point of the pooled guarantee: 8 classes of 30 clean points each; per class 30 < 59 points
    certify nothing (at δ/8 even fewer), pooled 240 points certify every class."""
    k, m = 8, 30
    s = np.tile(np.linspace(0.6, 1.0, m), k)
    yhat = np.repeat(np.arange(k), m)
    ok = np.ones(k * m, dtype=bool)
    per = estimate_thresholds(s, yhat, ok, k, ThresholdConfig(guarantee="per-class"))
    pooled = estimate_thresholds(s, yhat, ok, k, ThresholdConfig(guarantee="pooled"))
    assert np.isinf(per.thresholds).all()
    np.testing.assert_array_equal(pooled.thresholds, np.full(k, 0.6))
    assert pooled.pooled_error_bound == pytest.approx(1 - 0.025 ** (1 / 240))


# ---------------------------------------------------------------------------------------------------
# Edge cases and input checks


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.bound}-{c.guarantee}")
def test_empty_class_and_empty_input(cfg: ThresholdConfig) -> None:
    rng = np.random.default_rng(1)
    s = rng.random(500)
    yhat = rng.integers(0, 2, 500)  # class 2 of 3 never predicted
    r = estimate_thresholds(s, yhat, np.ones(500, dtype=bool), 3, cfg)
    assert r.thresholds[2] == INF and r.n_points[2] == 0 and math.isnan(r.estimated_error[2])
    assert np.isfinite(r.thresholds[:2]).all()  # all correct: classes 0 and 1 are certified
    e = estimate_thresholds(np.zeros(0), np.zeros(0, dtype=int), np.zeros(0, dtype=bool), 3, cfg)
    assert np.isinf(e.thresholds).all() and (e.n_points == 0).all()
    assert math.isnan(e.pooled_estimated_error) and math.isnan(e.pooled_error_bound)
    assert e.thresholds.dtype == np.float64 and e.n_points.dtype == np.int64


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.bound}-{c.guarantee}")
def test_all_correct_takes_every_point_and_all_wrong_takes_none(cfg: ThresholdConfig) -> None:
    rng = np.random.default_rng(2)
    s, yhat = rng.random(2000), rng.integers(0, 2, 2000)
    good = estimate_thresholds(s, yhat, np.ones(2000, dtype=bool), 2, cfg)
    assert auto_label_mask(s, yhat, good.thresholds).all()  # the walk reaches the lowest candidate
    assert good.n_points.sum() == 2000 and good.pooled_estimated_error == 0.0
    bad = estimate_thresholds(s, yhat, np.zeros(2000, dtype=bool), 2, cfg)
    assert np.isinf(bad.thresholds).all() and bad.n_points.sum() == 0


@pytest.mark.parametrize("bound", ["valid", "hoeffding"])
@pytest.mark.parametrize("guarantee", ["per-class", "pooled"])
def test_tiny_epsilon_certifies_nothing(bound: BoundName, guarantee: GuaranteeName) -> None:
    rng = np.random.default_rng(3)
    s, yhat = rng.random(3000), rng.integers(0, 3, 3000)
    cfg = ThresholdConfig(bound=bound, guarantee=guarantee, epsilon=1e-5)
    r = estimate_thresholds(s, yhat, np.ones(3000, dtype=bool), 3, cfg)
    assert np.isinf(r.thresholds).all()
    # the paper rule has no n in its bound: with a mistake in every region it certifies nothing either
    ok = np.ones(3000, dtype=bool)
    for c in range(3):
        ok[np.flatnonzero(yhat == c)[np.argmax(s[yhat == c])]] = False
    r = estimate_thresholds(s, yhat, ok, 3, ThresholdConfig(bound="paper", epsilon=1e-5))
    assert np.isinf(r.thresholds).all()


@pytest.mark.parametrize(
    ("scores", "predicted", "correct", "k", "match"),
    [
        (np.zeros((4, 1)), np.zeros(4, int), np.ones(4, bool), 2, "scores of shape"),
        (np.zeros(4), np.zeros(3, int), np.ones(4, bool), 2, r"predicted of shape \(4,\)"),
        (np.zeros(4), np.zeros(4, int), np.ones(3, bool), 2, r"correct of shape \(4,\)"),
        (np.zeros(4), np.array([0, 1, 2, 0]), np.ones(4, bool), 2, r"predicted in \[0, 2\)"),
        (np.zeros(4), np.array([0, -1, 1, 0]), np.ones(4, bool), 2, r"predicted in \[0, 2\)"),
        (np.zeros(4), np.zeros(4, float), np.ones(4, bool), 2, "integer class indices"),
        (np.array([0.1, np.nan, 0.2, 0.3]), np.zeros(4, int), np.ones(4, bool), 2, "finite scores"),
        (np.zeros(4), np.zeros(4, int), np.array([0, 1, 2, 1]), 2, "booleans"),
        (np.zeros(4), np.zeros(4, int), np.ones(4, bool), 0, "num_classes"),
    ],
)
def test_invalid_inputs_raise(scores, predicted, correct, k, match) -> None:
    with pytest.raises(TBALInputError, match=match):
        estimate_thresholds(scores, predicted, correct, k, ThresholdConfig())


def test_invalid_config_and_divisor_raise() -> None:
    s, y, c = np.zeros(3), np.zeros(3, int), np.ones(3, bool)
    with pytest.raises(TBALInputError, match="delta_divisor"):
        estimate_thresholds(s, y, c, 1, ThresholdConfig(), delta_divisor=0)
    with pytest.raises(TBALInputError, match="ThresholdConfig"):
        estimate_thresholds(s, y, c, 1, {"bound": "valid"})  # type: ignore[arg-type]


def test_auto_label_mask() -> None:
    s = np.array([0.9, 0.5, 0.7, 0.7, 0.2])
    y = np.array([0, 0, 1, 2, 1])
    t = np.array([0.6, 0.7, INF])
    np.testing.assert_array_equal(auto_label_mask(s, y, t), [True, False, True, False, False])
    with pytest.raises(TBALInputError, match="thresholds of shape"):
        auto_label_mask(s, y, t[None, :])
    with pytest.raises(TBALInputError, match=r"predicted in \[0, 3\)"):
        auto_label_mask(s, np.array([0, 0, 3, 2, 1]), t)
    with pytest.raises(TBALInputError, match=r"predicted of shape \(5,\)"):
        auto_label_mask(s, y[:4], t)
    with pytest.raises(TBALInputError, match="NaN"):
        auto_label_mask(s, y, np.array([0.1, np.nan, 0.2]))


def test_large_input_is_not_quadratic() -> None:
    """10,000 D_th points: each walk is linear in the candidates (about 0.1 s on an idle core). The bound
    of 2 s only catches a quadratic walk (minutes here), not a loaded machine (the old 0.25 s did fail
    under load); timing claims belong in benchmarks."""
    rng = np.random.default_rng(4)
    n, k = 10_000, 10
    s = rng.random(n)
    yhat = rng.integers(0, k, n)
    ok = rng.random(n) > 0.2 * (1 - s) ** 2
    for cfg in (ThresholdConfig(), ThresholdConfig(guarantee="per-class"), ThresholdConfig(bound="paper")):
        estimate_thresholds(s, yhat, ok, k, cfg)  # warm-up
        start = time.perf_counter()
        r = estimate_thresholds(s, yhat, ok, k, cfg)
        assert time.perf_counter() - start < 2.0, f"{cfg.bound}/{cfg.guarantee} took too long"
        assert np.isfinite(r.thresholds).sum() >= k // 2  # the walks go deep into the data


# ---------------------------------------------------------------------------------------------------
# The guarantee by simulation
#
# The population (K = 4 classes, score b_k·u, P(wrong) = a_k (1 − u)²) is in tests/tbal/simulated_scores.py.
# A draw violates the guarantee when the true error of what it auto-labels exceeds ε. Over R draws the
# violation count is Binomial(R, p) with p ≤ δ for a valid rule; we accept up to δ + 3·sqrt(δ(1−δ)/R),
# a 3-sigma margin (false failure rate ≈ 0.1% at p = δ, less since the tests are conservative).

DRAWS = 1000


def violation_rates(cfg: ThresholdConfig, n: int, seed: int) -> tuple[float, float, float]:
    """Share of draws whose pooled error exceeds ε, share where some class's error does, mean coverage."""
    rng = np.random.default_rng(seed)
    k = len(A_K)
    pooled_bad = class_bad = 0
    coverage = 0.0
    for _ in range(DRAWS):
        yhat, wrong, score = draw_population(rng, n)
        r = estimate_thresholds(score, yhat, ~wrong, k, cfg)
        pooled, per_class = true_errors(r.thresholds)
        pooled_bad += pooled > cfg.epsilon
        class_bad += bool((per_class > cfg.epsilon).any())
        q = np.clip(np.where(np.isfinite(r.thresholds), r.thresholds / B_K, 1.0), 0.0, 1.0)
        coverage += float((1 - q).mean())
    return pooled_bad / DRAWS, class_bad / DRAWS, coverage / DRAWS


def slack(delta: float) -> float:
    return 3 * math.sqrt(delta * (1 - delta) / DRAWS)


@pytest.mark.parametrize(
    ("cfg", "n"),
    [
        (ThresholdConfig(bound="valid", guarantee="pooled", epsilon=0.05, delta=0.05), 1200),
        (ThresholdConfig(bound="valid", guarantee="per-class", epsilon=0.05, delta=0.05), 1200),
        (ThresholdConfig(bound="hoeffding", guarantee="pooled", epsilon=0.1, delta=0.1), 1200),
        (ThresholdConfig(epsilon=0.05, delta=0.05, fallback_share=0.3, fallback_checkpoints=3), 1200),
        (ThresholdConfig(guarantee="per-class", fallback_share=0.3, fallback_checkpoints=3), 1200),
        (ThresholdConfig(epsilon=0.1, delta=0.2, fallback_share=0.5, fallback_checkpoints=4), 300),
        (ThresholdConfig(pooled_families="common"), 1200),
        (ThresholdConfig(pooled_families="rank", epsilon=0.1, delta=0.2), 300),
        (ThresholdConfig(pooled_families="common", walk_step=0.1), 1200),
        (ThresholdConfig(pooled_families="common", walk_start_share=0.3), 1200),
        (ThresholdConfig(pooled_families="both", walk_start_share=0.3), 1200),
        (ThresholdConfig(pooled_families="both", walk_start_share=0.35), 300),
    ],
    ids=[
        "valid-pooled",
        "valid-per-class",
        "hoeffding-pooled",
        "fallback-pooled",
        "fallback-per-class",
        "fallback-pooled-small",
        "common-cut-alone",
        "equal-rank-alone-small",
        "common-cut-walk-step",
        "common-cut-late-start",
        "both-families-late-start",
        "both-families-start-035-small",
    ],
)
def test_valid_bounds_hold_by_simulation(cfg: ThresholdConfig, n: int) -> None:
    pooled_rate, class_rate, coverage = violation_rates(cfg, n, seed=7)
    assert coverage > 0.05, "the rule should auto-label something, or the check says nothing"
    if cfg.guarantee == "pooled":
        assert pooled_rate <= cfg.delta + slack(cfg.delta), pooled_rate
    else:
        assert class_rate <= cfg.delta + slack(cfg.delta), class_rate


def certified_on_a_line(n: int, mistakes: list[int], config: ThresholdConfig) -> ThresholdResult:
    """One class, n distinct decreasing scores, wrong exactly at the ranks ``mistakes`` (0-based)."""
    s = np.linspace(1.0, 0.0, n, endpoint=False)
    wrong = np.zeros(n, dtype=bool)
    wrong[mistakes] = True
    return estimate_thresholds(s, np.zeros(n, dtype=np.int64), ~wrong, 1, config)


def test_fallback_resumes_after_an_early_failure() -> None:
    """Two mistakes among the 60 most confident points stop the plain walk at once; the fallback walk
    resumes at a checkpoint further down, where the clean points that follow outweigh them."""
    first = ThresholdConfig(delta=0.05, walk_start_share=0.0)  # the walks start where a pass is possible
    plain = certified_on_a_line(600, [5, 9], dataclasses.replace(first, fallback_share=0.0))
    resumed = certified_on_a_line(600, [5, 9], dataclasses.replace(first, fallback_share=0.3))
    assert not np.isfinite(plain.thresholds[0])
    assert np.isfinite(resumed.thresholds[0]) and resumed.n_points[0] == 600


def test_walk_step_tests_only_the_kept_candidates() -> None:
    """One mistake just after the first point that can pass stops the dense walk there; a walk that
    doubles its count at each step never tests that point, and the clean points that follow the
    mistake outweigh it at the kept candidates further down."""
    common = ThresholdConfig(pooled_families="common", fallback_share=0.0, walk_start_share=0.0)
    dense = certified_on_a_line(400, [60], common)
    doubling = certified_on_a_line(400, [60], dataclasses.replace(common, walk_step=1.0))
    assert dense.n_points[0] == 60  # 59 clean points are the fewest that can pass at δ = 0.05
    assert doubling.n_points[0] == 236  # kept: n = 59, 118, 236 (472 is past the end)


def test_a_late_start_survives_a_mistake_among_the_most_confident_points() -> None:
    """One mistake just after the first point that can pass ends a walk that starts there; a walk that
    starts where three mistakes could pass (within the top 30 % of 600 points) certifies everything."""
    plain = ThresholdConfig(pooled_families="common", fallback_share=0.0, walk_start_share=0.0)
    first = certified_on_a_line(600, [65], plain)
    late = certified_on_a_line(600, [65], dataclasses.replace(plain, walk_start_share=0.3))
    assert first.n_points[0] == 65
    assert late.n_points[0] == 600


def test_the_default_start_survives_two_early_mistakes_on_a_stratum_sized_d_th() -> None:
    """A stratum's D_th: 420 points, two mistakes among the 60 most confident, then one in every 35 from
    rank 160 (2.4 % in all). A start within the top 30 % (the default until the fourteenth session: 102
    points, where one mistake can pass) fails, and so do the checkpoints, at a tenth of δ; the default
    start, within the top 35 % (134 points, where two can), certifies all 420."""
    mistakes = [30, 60, *range(160, 420, 35)]
    default = ThresholdConfig(pooled_families="common")
    before = certified_on_a_line(420, mistakes, dataclasses.replace(default, walk_start_share=0.3))
    now = certified_on_a_line(420, mistakes, default)
    assert default.walk_start_share == 0.35
    assert before.n_points[0] == 0
    assert now.n_points[0] == 420


def test_paper_rule_breaks_the_guarantee_by_simulation() -> None:
    """Same population, small D_th (about 60 points a class): the paper rule exceeds ε far more often
    than δ = 0.05 would allow, for a class and for the pool."""
    cfg = ThresholdConfig(bound="paper", epsilon=0.05, min_points=10)
    pooled_rate, class_rate, _ = violation_rates(cfg, 240, seed=8)
    assert class_rate > 0.05 + 5 * slack(0.05), class_rate
    assert pooled_rate > 0.05 + slack(0.05), pooled_rate


def dataset_violation_rate(cfg: ThresholdConfig, n_th: int, n_pool: int, humans: int, seed: int) -> tuple:
    """The ``dataset`` guarantee by simulation: D_th and a pool drawn from the population above; a draw
    violates the guarantee when the auto-labeled pool points' mistakes / (humans + auto-labels) > ε."""
    from tbal.thresholds import DatasetContext

    rng = np.random.default_rng(seed)
    k = len(A_K)
    bad = 0
    coverage = 0.0
    for _ in range(DRAWS):
        yhat, wrong, score = draw_population(rng, n_th)
        p_hat, p_wrong, p_score = draw_population(rng, n_pool)
        context = DatasetContext(pool_scores=p_score, pool_predicted=p_hat, human_labels=humans)
        r = estimate_thresholds(score, yhat, ~wrong, k, cfg, dataset=context)
        auto = p_score >= r.thresholds[p_hat]
        bad += (p_wrong & auto).sum() / (humans + auto.sum()) > cfg.epsilon
        coverage += auto.mean()
    return bad / DRAWS, coverage / DRAWS


def test_dataset_guarantee_holds_by_simulation_and_covers_more() -> None:
    """The error of the whole labeled set (humans taken as correct) stays ≤ ε in at least 1 − δ of the
    draws (3-sigma margin, false-failure rate ≈ 0.1 %), and it auto-labels more than the pooled guarantee
    on the auto-labels alone, since the human labels leave room for mistakes."""
    cfg = ThresholdConfig(guarantee="dataset", epsilon=0.05, delta=0.1)
    rate, coverage = dataset_violation_rate(cfg, n_th=600, n_pool=3000, humans=1000, seed=9)
    assert rate <= cfg.delta + slack(cfg.delta), rate
    _, pooled_coverage = dataset_violation_rate(
        ThresholdConfig(guarantee="pooled", epsilon=0.05, delta=0.1),
        n_th=600,
        n_pool=3000,
        humans=1000,
        seed=9,
    )
    assert coverage > pooled_coverage + 0.02, (coverage, pooled_coverage)


def test_dataset_guarantee_needs_its_context() -> None:
    s, yhat, ok = np.array([0.9, 0.8]), np.array([0, 1]), np.array([True, True])
    with pytest.raises(TBALInputError, match="dataset"):
        estimate_thresholds(s, yhat, ok, 2, ThresholdConfig(guarantee="dataset"))


def test_pooled_families_auto_walks_the_common_cut_alone_for_comparable_scores() -> None:
    """``auto``: softmax and temperature scaling (one scale for every class) walk the common cut at the
    whole δ; other confidence functions walk both families at δ/2 each."""
    from tbal.config import preset, resolved_thresholds, with_overrides

    base = preset("mnist-paper")
    assert base.thresholds.pooled_families == "auto"
    assert resolved_thresholds(base).pooled_families == "common"
    colander = with_overrides(base, {"confidence.name": "colander"})
    assert resolved_thresholds(colander).pooled_families == "both"
    pinned = with_overrides(base, {"thresholds.pooled_families": "both"})
    assert resolved_thresholds(pinned).pooled_families == "both"

    rng = np.random.default_rng(5)
    s = rng.random(800)
    yhat = rng.integers(0, 3, 800)
    wrong = rng.random(800) < 0.08 * (1 - s)  # mistakes rarer at high scores
    one = estimate_thresholds(s, yhat, ~wrong, 3, ThresholdConfig(pooled_families="common"), delta=0.05)
    two = estimate_thresholds(s, yhat, ~wrong, 3, ThresholdConfig(pooled_families="both"), delta=0.05)
    assert one.delta_used == pytest.approx(0.05) and two.delta_used == pytest.approx(0.025)
    covered = [int((s >= r.thresholds[yhat]).sum()) for r in (one, two)]
    assert covered[0] > 0 and one.pooled_error_bound <= 0.05


# ---------------------------------------------------------------------------------------------------
# finite_pool: the auto-labels of a finite pool, D_th a uniform sample of the pool and D_th together.


def test_the_rest_test_is_exact_for_every_count_of_mistakes() -> None:
    """Brute force over a small region (N = 100 points, n = 50 of them in D_th): for every number M of
    mistakes in it, the chance that the test passes while the rest (the 50 points beside D_th's) is more
    than ε wrong is at most δ, summed exactly over D_th's hypergeometric mistake counts."""
    from scipy.stats import hypergeom

    from tbal.thresholds import _rest_passes

    total, n, eps, delta = 100, 50, 0.1, 0.05
    rest = total - n
    m = np.arange(n + 1)
    passes = _rest_passes(m.astype(float), np.full(m.shape, n), np.full(m.shape, rest), eps, delta)
    assert passes[:1].all() and not passes.all()  # it certifies a clean D_th, not every one
    worst = 0.0
    for mistakes in range(total + 1):
        rest_wrong = (mistakes - m) / rest > eps
        worst = max(worst, float(hypergeom.pmf(m, total, mistakes, n)[passes & rest_wrong].sum()))
    assert 0.0 < worst <= delta, worst  # > 0: the test uses its level, it is not merely strict


def finite_pool_rates(cfg: ThresholdConfig, total: int, n_th: int, draws: int, seed: int) -> tuple:
    """One finite population of ``total`` points (the module's simulated scores); each draw takes D_th
    uniformly from it and auto-labels the rest above the thresholds. (share of draws whose auto-labels are
    more than ε wrong, mean share of the rest auto-labeled)."""
    from tbal.thresholds import PoolContext

    rng = np.random.default_rng(seed)
    yhat, wrong, score = draw_population(rng, total)
    bad, coverage = 0, 0.0
    for _ in range(draws):
        in_th = np.zeros(total, dtype=bool)
        in_th[rng.choice(total, n_th, replace=False)] = True
        pool = PoolContext(score[~in_th], yhat[~in_th])
        r = estimate_thresholds(score[in_th], yhat[in_th], ~wrong[in_th], len(A_K), cfg, pool=pool)
        auto = (score >= r.thresholds[yhat]) & ~in_th
        bad += bool(auto.any() and wrong[auto].mean() > cfg.epsilon)
        coverage += auto.sum() / (total - n_th)
    return bad / draws, coverage / draws


def test_finite_pool_holds_for_the_auto_labels_where_the_population_bound_does_not() -> None:
    """D_th half of a finite population of 2,000: the Clopper–Pearson walk, valid for the population
    error, leaves auto-labels more than ε wrong in more of the draws than δ (about 9 % at δ = 5 % with
    3,000 points; a D_th with few mistakes leaves more to the rest); ``finite_pool`` stays within δ
    (3-sigma margin over 400 draws, false-failure rate ≈ 0.1 %) and still certifies most of what the
    other walk does."""
    plain = ThresholdConfig(pooled_families="common", epsilon=0.05, delta=0.05, finite_pool=False)
    finite = dataclasses.replace(plain, finite_pool=True)
    draws = 400
    margin = 3 * math.sqrt(0.05 * 0.95 / draws)
    finite_rate, finite_coverage = finite_pool_rates(finite, 2000, 1000, draws, seed=7)
    plain_rate, plain_coverage = finite_pool_rates(plain, 2000, 1000, draws, seed=7)
    assert finite_rate <= 0.05 + margin, finite_rate
    assert plain_rate > finite_rate, (plain_rate, finite_rate)
    assert finite_coverage > 0.7 * plain_coverage > 0.1, (finite_coverage, plain_coverage)


def _half_d_th_half_pool(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, slice, PoolContext]:
    """3,000 points of two classes, mistakes likelier at low scores: (scores, ŷ, correct, D_th's rows,
    the other half as the pool's context)."""
    rng = np.random.default_rng(seed)
    s = rng.random(3000)
    yhat = rng.integers(0, 2, 3000)
    ok = rng.random(3000) > 0.06 * (1 - s)
    rest = slice(1500, None)
    return s, yhat, ok, slice(0, 1500), PoolContext(s[rest], yhat[rest])


def test_finite_pool_without_a_pool_is_the_plain_bound_and_covers_every_walk() -> None:
    """Without the pool's scores the rest is the endless population, whose test is the plain bound's (a
    dataset context serves as the pool); the per-class walk, the equal-rank family and the dataset
    guarantee take the rest's test too, and it is the library's default."""
    from tbal.thresholds import DatasetContext

    s, yhat, ok, th, pool = _half_d_th_half_pool(seed=3)
    assert ThresholdConfig().finite_pool
    plain = ThresholdConfig(finite_pool=False)
    without_pool = estimate_thresholds(s[th], yhat[th], ok[th], 2, ThresholdConfig())
    np.testing.assert_array_equal(
        without_pool.thresholds, estimate_thresholds(s[th], yhat[th], ok[th], 2, plain).thresholds
    )
    for cfg in (
        ThresholdConfig(pooled_families="common", finite_pool=False),
        ThresholdConfig(pooled_families="rank", finite_pool=False),
        ThresholdConfig(guarantee="per-class", finite_pool=False),
    ):
        before = estimate_thresholds(s[th], yhat[th], ok[th], 2, cfg, pool=pool)
        after = estimate_thresholds(
            s[th], yhat[th], ok[th], 2, dataclasses.replace(cfg, finite_pool=True), pool=pool
        )
        assert np.isfinite(after.thresholds).any(), cfg
        assert (after.thresholds >= before.thresholds).all(), cfg  # a stricter test: no lower threshold
    dataset = DatasetContext(pool.pool_scores, pool.pool_predicted, human_labels=500)
    both = ThresholdConfig(guarantee="dataset", finite_pool=True)
    assert np.isfinite(
        estimate_thresholds(s[th], yhat[th], ok[th], 2, both, dataset=dataset).thresholds
    ).any()


def test_under_finite_pool_the_reported_bound_is_the_rests_and_is_within_epsilon_where_certified() -> None:
    """The bound a round reports is the one that certified: on the rest's error, ≤ ε exactly where the
    rest's test passes (the walk's own test, at the same δ), and it agrees with the test's definition,
    the most mistakes the test does not reject, by brute force."""
    from scipy.stats import hypergeom

    from tbal.thresholds import _rest_passes, _rest_upper_bound

    for n, rest, delta in ((40, 60, 0.05), (300, 120, 0.01), (15, 400, 0.1)):
        for m in range(0, 6):
            bound = _rest_upper_bound(m, n, rest, delta)
            most = max(M for M in range(m, m + rest + 1) if hypergeom.cdf(m, n + rest, M, n) > delta)
            assert bound == pytest.approx((most - m) / rest)
            for eps in (0.02, 0.05, 0.1):
                passes = bool(_rest_passes(np.array([m]), np.array([n]), np.array([rest]), eps, delta)[0])
                assert passes == (bound <= eps), (n, rest, m, eps)
    s, yhat, ok, th, pool = _half_d_th_half_pool(seed=5)
    for cfg in (ThresholdConfig(), ThresholdConfig(guarantee="per-class")):
        r = estimate_thresholds(s[th], yhat[th], ok[th], 2, cfg, pool=pool)
        bounds = (
            r.error_bound[np.isfinite(r.thresholds)]
            if cfg.guarantee == "per-class"
            else [r.pooled_error_bound]
        )
        assert len(bounds) and all(0.0 <= b <= cfg.epsilon for b in bounds), (cfg.guarantee, bounds)


def test_under_finite_pool_the_walk_starts_where_the_rests_test_can_pass() -> None:
    """The walk's start and checkpoints are placed by the test the walk runs: with D_th a sixth of a small
    region (60 validation points beside 300 pool points, all correct, ε 0.1), the binomial bound's first
    possible place (33 clean points) is one where the rest's test cannot pass, and a walk started there
    certified nothing; started where the rest's test can pass it certifies the whole region."""
    from tbal.thresholds import PoolContext, _Candidates, _could_pass, _start_index

    rng = np.random.default_rng(11)
    s, pool_scores = rng.random(60), rng.random(300)
    predicted = np.zeros(60, dtype=np.int64)
    pool = PoolContext(pool_scores, np.zeros(300, dtype=np.int64))
    cfg = ThresholdConfig(epsilon=0.1, delta=0.045)
    result = estimate_thresholds(s, predicted, np.ones(60, dtype=bool), 1, cfg, pool=pool)
    assert result.thresholds[0] == s.min() and result.pooled_error_bound <= 0.1
    n = np.arange(1, 61, dtype=np.float64)
    cand = _Candidates(np.sort(s)[::-1], n, np.zeros(60), rest=np.round(n * 5))
    level = 0.7 * 0.045
    start = _start_index(cand, "valid", 0.1, level, 0.35)
    clean = _could_pass(cand, "valid", 0.1, level, 0)
    assert clean[start] and not clean[:start].any() and cand.n[start] > 33
