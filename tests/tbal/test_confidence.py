"""Confidence functions: the factory, the shared contract, and the calibrators against known answers.

Colander has its own file (test_confidence_colander.py). Data are seeded synthetic Predictions built
directly (no classifier training).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import pickle
from collections.abc import Callable

import numpy as np
import pytest

from tbal.confidence import (
    Colander,
    ConfidenceFunction,
    DirichletCalibration,
    HistogramBinning,
    KernelConfidence,
    ScalingBinning,
    SoftmaxConfidence,
    TemperatureScaling,
    make_confidence,
)
from tbal.confidence._common import TIE_BREAK, UniformMassBins
from tbal.confidence.temperature import LOG_T_BOUNDS, fit_temperature, temperature_nll
from tbal.config import (
    CONFIDENCE_NAMES,
    LABEL_FREE_SCORES,
    ColanderConfig,
    ConfidenceConfig,
    ConfidenceName,
    ConfigError,
    TBALConfig,
    with_overrides,
)
from tbal.errors import TBALInputError
from tbal.metrics import expected_calibration_error, negative_log_likelihood
from tbal.predictions import Predictions

FAST_COLANDER = ColanderConfig(epochs=20, batch_size=64)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sample_labels(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row drawn from the row's distribution."""
    return (probs.cumsum(axis=1) > rng.random((probs.shape[0], 1))).argmax(axis=1).astype(np.int64)


def _planted(
    n: int, k: int, temperature: float, rng: np.random.Generator, d: int = 3
) -> tuple[Predictions, np.ndarray]:
    """Labels drawn from softmax(z), the classifier reports z·T: miscalibrated by a known T."""
    z = rng.normal(size=(n, k)) * 1.5
    y = _sample_labels(_softmax(z), rng)
    features = rng.normal(size=(n, d)).astype(np.float32)
    return Predictions((z * temperature).astype(np.float32), features), y


def _as_inputs_of(name: str, preds: Predictions) -> Predictions:
    """The kernel confidence scores log kernel values (≤ 0, as DUQ's logits are): give it log-softmax
    logits, which carry the same ranking; every other function gets the raw logits."""
    if name != "kernel":
        return preds
    z = preds.logits.astype(np.float64)
    log_probs = z - z.max(axis=1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    return Predictions(log_probs.astype(np.float32), preds.features)


def _build(name: ConfidenceName, k: int) -> ConfidenceFunction:
    return make_confidence(
        ConfidenceConfig(name=name, colander=FAST_COLANDER, histogram_points_per_bin=10), k
    )


# --- the factory ---------------------------------------------------------------------------------------


def test_make_confidence_builds_each_name_with_its_hyperparameters() -> None:
    classes: dict[ConfidenceName, type[ConfidenceFunction]] = {
        "softmax": SoftmaxConfidence,
        "temperature": TemperatureScaling,
        "histogram": HistogramBinning,
        "scaling-binning": ScalingBinning,
        "dirichlet": DirichletCalibration,
        "colander": Colander,
        "kernel": KernelConfidence,
    }
    assert set(classes) == set(CONFIDENCE_NAMES)
    for name, cls in classes.items():
        fn = make_confidence(ConfidenceConfig(name=name), 4)
        assert type(fn) is cls and fn.name == name and fn.num_classes == 4
    config = ConfidenceConfig(
        name="histogram",
        histogram_points_per_bin=42,
        scaling_binning_bins=7,
        dirichlet_reg=0.5,
        colander=ColanderConfig(lam=3.0),
    )
    histogram = make_confidence(config, 3)
    assert isinstance(histogram, HistogramBinning) and histogram.points_per_bin == 42
    sb = make_confidence(dataclasses.replace(config, name="scaling-binning"), 3)
    assert isinstance(sb, ScalingBinning) and sb.n_bins == 7
    dirichlet = make_confidence(dataclasses.replace(config, name="dirichlet"), 3)
    assert isinstance(dirichlet, DirichletCalibration) and dirichlet.reg == 0.5
    colander = make_confidence(dataclasses.replace(config, name="colander"), 3)
    assert isinstance(colander, Colander) and colander.config.lam == 3.0


def test_make_confidence_rejects_an_unknown_name_listing_the_valid_ones() -> None:
    config = ConfidenceConfig()
    object.__setattr__(config, "name", "platt")  # bypass the config's own check
    with pytest.raises(ConfigError) as info:
        make_confidence(config, 3)
    assert "'platt'" in str(info.value)
    for name in CONFIDENCE_NAMES:
        assert name in str(info.value)
    with pytest.raises(ConfigError, match="softmax, temperature"):
        ConfidenceConfig(name="platt")  # type: ignore[arg-type]


def test_kernel_confidence_needs_a_model_with_a_kernel_score() -> None:
    """``kernel`` thresholds DUQ's own certainty; chosen with any other model, the configuration says so
    when it is built (not mid-round, when the first raw logit > 0 reaches the score)."""
    with pytest.raises(ConfigError, match=r"confidence\.name 'kernel'.*model\.uncertainty in duq.*'none'"):
        with_overrides(TBALConfig(), {"confidence.name": "kernel"})
    with pytest.raises(ConfigError, match=r"got model\.uncertainty 'sngp'"):
        with_overrides(TBALConfig(), {"confidence.name": "kernel", "model.uncertainty": "sngp"})
    config = with_overrides(TBALConfig(), {"confidence.name": "kernel", "model.uncertainty": "duq"})
    assert type(make_confidence(config.confidence, 3)) is KernelConfidence
    with pytest.raises(TBALInputError, match="log-scores ≤ 0"):  # raw logits, whatever the config said
        KernelConfidence(2).fit(*_planted(20, 2, 1.0, np.random.default_rng(0))).score(
            Predictions(np.array([[2.0, -1.0]], np.float32), np.zeros((1, 3), np.float32))
        )


def test_make_confidence_rejects_too_few_classes() -> None:
    with pytest.raises(TBALInputError, match="at least 2 classes, got 1"):
        make_confidence(ConfidenceConfig(), 1)


@pytest.mark.parametrize(
    "build",
    [
        lambda: HistogramBinning(3, points_per_bin=0),
        lambda: ScalingBinning(3, n_bins=0),
        lambda: DirichletCalibration(3, reg=-1.0),
        lambda: DirichletCalibration(3, max_iter=0),
        lambda: Colander(3, selection_fraction=1.0),
        lambda: Colander(3, snapshot_every=0),
        lambda: Colander(3, {"lam": 1.0}),  # type: ignore[arg-type]
    ],
)
def test_hyperparameters_are_checked_in_init(build: Callable[[], object]) -> None:
    with pytest.raises(ConfigError):
        build()


# --- the shared contract -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIDENCE_NAMES)
def test_contract_shapes_range_determinism_and_pickling(name: ConfidenceName) -> None:
    rng = np.random.default_rng(1)
    cal, y = _planted(120, 3, 2.0, rng)
    test, _ = _planted(50, 3, 2.0, rng)
    cal, test = _as_inputs_of(name, cal), _as_inputs_of(name, test)
    fn = _build(name, 3)
    assert fn.fit(cal, y, seed=5) is fn
    scores = fn.score(test)
    assert scores.shape == (50,) and scores.dtype == np.float64
    assert np.all(np.isfinite(scores)) and scores.min() >= 0.0 and scores.max() <= 1.0
    again = _build(name, 3).fit(cal, y, seed=5).score(test)
    np.testing.assert_array_equal(scores, again)
    restored = pickle.loads(pickle.dumps(fn))
    np.testing.assert_array_equal(restored.score(test), scores)


@pytest.mark.parametrize("name", CONFIDENCE_NAMES)
def test_scores_depend_on_each_point_alone_never_on_labels(name: ConfidenceName) -> None:
    """A score is a function of the point's own logits and features: scoring D_cal in another order, or
    mixed with other points, gives the same values (an implementation that looked up the labels it was
    fitted on, by position, would fail). ŷ comes from the logits: scoring cannot see labels."""
    rng = np.random.default_rng(2)
    cal, y = _planted(120, 3, 2.0, rng)
    cal = _as_inputs_of(name, cal)
    fn = _build(name, 3).fit(cal, y, seed=0)
    base = fn.score(cal)
    order = rng.permutation(len(cal))
    np.testing.assert_allclose(fn.score(cal.subset(order)), base[order], rtol=0, atol=1e-12)
    other, _ = _planted(30, 3, 2.0, rng)
    other = _as_inputs_of(name, other)
    mixed = Predictions(
        np.concatenate([other.logits, cal.logits[:40]]), np.concatenate([other.features, cal.features[:40]])
    )
    np.testing.assert_allclose(fn.score(mixed)[30:], base[:40], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", CONFIDENCE_NAMES)
def test_input_validation(name: ConfidenceName) -> None:
    rng = np.random.default_rng(3)
    cal, y = _planted(60, 3, 1.0, rng)
    cal = _as_inputs_of(name, cal)
    fn = _build(name, 3)
    with pytest.raises(TBALInputError, match="call fit"):
        fn.score(cal)
    with pytest.raises(TBALInputError, match=r"labels of shape \(60,\)"):
        fn.fit(cal, y[:-1])
    with pytest.raises(TBALInputError, match=r"labels must be in \[0, 3\)"):
        fn.fit(cal, np.full(60, 3))
    with pytest.raises(TBALInputError, match=r"logits of shape \(n, 3\)"):
        fn.fit(Predictions(cal.logits[:, :2], cal.features), y)
    fn.fit(cal, y)
    with pytest.raises(TBALInputError, match=r"logits of shape \(n, 3\)"):
        fn.score(Predictions(np.zeros((5, 4), np.float32), np.zeros((5, 3), np.float32)))
    with pytest.raises(TBALInputError, match=r"features of shape \(5, d\)"):
        fn.score(Predictions(np.zeros((5, 3), np.float32), np.zeros((4, 3), np.float32)))


@pytest.mark.parametrize("name", [n for n in CONFIDENCE_NAMES if n not in ("softmax", "kernel")])
def test_learned_functions_refuse_an_empty_calibration_set(name: ConfidenceName) -> None:
    empty = Predictions(np.zeros((0, 3), np.float32), np.zeros((0, 2), np.float32))
    with pytest.raises(TBALInputError, match=r"expected at least \d calibration points, got 0"):
        _build(name, 3).fit(empty, np.zeros(0, np.int64))


def test_scaling_binning_needs_three_points() -> None:
    cal, y = _planted(2, 3, 1.0, np.random.default_rng(0))
    with pytest.raises(TBALInputError, match="at least 3 calibration points, got 2"):
        ScalingBinning(3).fit(cal, y)


# --- softmax and temperature scaling -------------------------------------------------------------------


def test_softmax_score_is_the_max_probability_in_float64() -> None:
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [30.0, 0.0, 0.0]], np.float32)
    scores = SoftmaxConfidence(3).fit(Predictions(logits, np.zeros((3, 1), np.float32)), np.zeros(3, int))
    out = scores.score(Predictions(logits, np.zeros((3, 1), np.float32)))
    np.testing.assert_allclose(out[:2], [math.exp(2) / (math.exp(2) + 1 + math.exp(-1)), 1 / 3], rtol=1e-12)
    assert out[2] < 1.0  # float32 softmax would round this to exactly 1.0


@pytest.mark.parametrize("t_true", [0.5, 2.5])
def test_temperature_matches_grid_nll_minimum_and_recovers_the_planted_t(t_true: float) -> None:
    cal, y = _planted(5000, 4, t_true, np.random.default_rng(4))
    fn = TemperatureScaling(4).fit(cal, y)
    # Brute force: a coarse grid over the whole search range, then a fine grid around its minimum.
    coarse = np.linspace(*LOG_T_BOUNDS, 401)
    best = coarse[np.argmin([temperature_nll(cal.logits, y, math.exp(v)) for v in coarse])]
    step = (coarse[1] - coarse[0]) / 200
    fine = best + step * np.arange(-400, 401)
    nll = np.array([temperature_nll(cal.logits, y, math.exp(v)) for v in fine])
    assert 0 < nll.argmin() < fine.size - 1  # an interior minimum: the fine grid brackets it
    assert abs(math.log(fn.temperature) - fine[nll.argmin()]) <= step
    assert temperature_nll(cal.logits, y, fn.temperature) <= nll.min() + 1e-9
    assert fn.temperature == pytest.approx(t_true, rel=0.08)
    expected = _softmax(cal.logits.astype(np.float64) / fn.temperature).max(axis=1)
    np.testing.assert_allclose(fn.score(cal), expected, rtol=1e-12)


def test_temperature_nll_matches_a_direct_computation() -> None:
    logits = np.array([[1.0, 2.0], [3.0, -1.0]])
    y = np.array([0, 0])
    direct = -np.mean(np.log(_softmax(logits / 2.0)[[0, 1], y]))
    assert temperature_nll(logits, y, 2.0) == pytest.approx(direct, rel=1e-12)
    assert fit_temperature(logits, y) > 0


# --- binning -------------------------------------------------------------------------------------------


def test_uniform_mass_bins_by_hand() -> None:
    bins = UniformMassBins(np.array([6.0, 1.0, 4.0, 2.0, 5.0, 3.0]), 3)
    np.testing.assert_array_equal(bins.edges, [2.5, 4.5])
    bins.set_values(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), np.array([0, 1, 1, 1, 0, 0]))
    np.testing.assert_allclose(bins.values, [0.5, 1.0, 0.0])
    np.testing.assert_allclose(bins.value(np.array([0.0, 2.5, 4.4, 9.0])), [0.5, 1.0, 1.0, 0.0])


def test_uniform_mass_bins_merge_bins_emptied_by_ties() -> None:
    # Cuts at [.5 .5 | .5 .5 | .9 .9] give edges 0.5 and 0.7; 0.5 itself falls above the edge 0.5, so
    # the lowest bin would be empty: it is merged.
    bins = UniformMassBins(np.array([0.5, 0.5, 0.5, 0.5, 0.9, 0.9]), 3)
    np.testing.assert_array_equal(bins.edges, [0.7])
    assert UniformMassBins(np.full(10, 0.3), 4).n_bins == 1
    assert UniformMassBins(np.array([0.1, 0.2]), 10).n_bins == 2  # never more bins than points


def _two_class_logits(top: list[float], predicted: list[int]) -> np.ndarray:
    """Logits whose softmax gives probability top[i] to class predicted[i] (top > 0.5)."""
    out = np.zeros((len(top), 2))
    for i, (s, c) in enumerate(zip(top, predicted, strict=True)):
        out[i, c], out[i, 1 - c] = math.log(s), math.log(1 - s)
    return out.astype(np.float32)


def test_histogram_binning_by_hand() -> None:
    # Class 0: 6 points -> 2 bins of 3 at the cut 0.85: accuracies 1/3 and 1.
    # Class 1: 2 points (< 3 a bin) -> pooled binning of all 8 points, 2 bins of 4 cut at 0.75:
    #   sorted (0.55 ✓, 0.6 ✗, 0.65 ✗, 0.7 ✓ | 0.8 ✗, 0.9 ✓, 0.95 ✓, 0.99 ✓) -> 1/2 and 3/4.
    top = [0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.55, 0.65]
    predicted = [0, 0, 0, 0, 0, 0, 1, 1]
    correct = np.array([0, 1, 0, 1, 1, 1, 1, 0], bool)
    y = np.where(correct, predicted, 1 - np.array(predicted))
    cal = Predictions(_two_class_logits(top, predicted), np.zeros((8, 1), np.float32))
    fn = HistogramBinning(2, points_per_bin=3).fit(cal, y)
    assert set(fn.class_bins) == {0}
    np.testing.assert_allclose(fn.class_bins[0].values, [1 / 3, 1.0])
    assert fn.pooled_bins is not None
    np.testing.assert_allclose(fn.pooled_bins.values, [0.5, 0.75])

    new_top = [0.82, 0.88, 0.74, 0.76, 0.61, 0.7]
    new = Predictions(_two_class_logits(new_top, [0, 0, 1, 1, 0, 0]), np.zeros((6, 1), np.float32))
    scores = fn.score(new)
    np.testing.assert_allclose(scores, [1 / 3, 1.0, 0.5, 0.75, 1 / 3, 1 / 3], atol=2 * TIE_BREAK)
    assert scores[5] > scores[4]  # the tie-break ranks points of one bin by their raw score
    assert scores[0] > scores[5]


def test_scaling_binning_follows_kumar_et_al_by_hand() -> None:
    """Rebuild the three steps independently from the documented split and compare."""
    rng = np.random.default_rng(6)
    cal, y = _planted(31, 3, 2.0, rng)
    fn = ScalingBinning(3, n_bins=3).fit(cal, y, seed=11)
    part1, part2, part3 = np.array_split(np.random.default_rng(11).permutation(31), 3)
    t = fit_temperature(cal.logits[part1], y[part1])
    assert fn.temperature == pytest.approx(t, rel=1e-12)
    g = _softmax(cal.logits.astype(np.float64) / t).max(axis=1)
    g2 = np.sort(g[part2])  # 10 points -> bins of 4, 3, 3
    edges = [(g2[3] + g2[4]) / 2, (g2[6] + g2[7]) / 2]
    assert fn.bins is not None
    np.testing.assert_allclose(fn.bins.edges, edges, rtol=1e-12)
    which3 = np.searchsorted(edges, g[part3], side="right")
    which2 = np.searchsorted(edges, g2, side="right")
    # Bin value: mean g of the T3 points in the bin (of the T2 points when no T3 point falls in it).
    expected = [
        g[part3][which3 == b].mean() if np.any(which3 == b) else g2[which2 == b].mean() for b in range(3)
    ]
    np.testing.assert_allclose(fn.bins.values, expected, rtol=1e-12)
    # Each value is a mean of scaled confidences inside its bin, so it lies inside the bin.
    lows, highs = np.r_[0.0, edges], np.r_[edges, 1.0]
    assert np.all((fn.bins.values >= lows) & (fn.bins.values <= highs))
    test, _ = _planted(20, 3, 2.0, rng)
    g_test = _softmax(test.logits.astype(np.float64) / t).max(axis=1)
    values = np.asarray(expected)[np.searchsorted(edges, g_test, side="right")]
    np.testing.assert_allclose(fn.score(test), (1 - TIE_BREAK) * values + TIE_BREAK * g_test, rtol=1e-12)


@pytest.mark.parametrize(
    "fn",
    [
        TemperatureScaling(4),
        HistogramBinning(4, points_per_bin=100),
        ScalingBinning(4, n_bins=15),
        DirichletCalibration(4, reg=1e-3),
    ],
    ids=lambda fn: fn.name,
)
def test_calibrators_remove_a_planted_overconfidence(fn: ConfidenceFunction) -> None:
    rng = np.random.default_rng(7)
    cal, y_cal = _planted(4000, 4, 2.5, rng)
    test, y_test = _planted(20000, 4, 2.5, rng)
    correct = test.predicted == y_test
    raw = expected_calibration_error(SoftmaxConfidence(4).fit(cal, y_cal).score(test), correct)
    calibrated = expected_calibration_error(fn.fit(cal, y_cal, seed=0).score(test), correct)
    assert raw > 0.1
    assert calibrated < 0.04  # measured 0.007–0.021 over seeds; raw ≈ 0.2


# --- Dirichlet calibration -----------------------------------------------------------------------------


def _mixed_log_space(n: int, rng: np.random.Generator) -> tuple[Predictions, np.ndarray, np.ndarray]:
    """Labels from softmax(z); the classifier reports A·z + c with A = 1.6·I + 0.8·P (P a cyclic
    permutation, constant row sums): the Dirichlet family holds the exact inverse, temperature
    scaling does not."""
    k = 4
    z = rng.normal(size=(n, k)) * 1.5
    p_true = _softmax(z)
    y = _sample_labels(p_true, rng)
    a = 1.6 * np.eye(k) + 0.8 * np.roll(np.eye(k), 1, axis=1)
    logits = z @ a.T + np.array([0.5, -0.5, 1.0, 0.0])
    return Predictions(logits.astype(np.float32), np.zeros((n, 1), np.float32)), y, p_true


def test_dirichlet_reduces_nll_towards_the_true_probabilities() -> None:
    rng = np.random.default_rng(8)
    cal, y_cal, _ = _mixed_log_space(3000, rng)
    test, y_test, p_true = _mixed_log_space(20000, rng)
    dirichlet = DirichletCalibration(4, reg=1e-3).fit(cal, y_cal)
    nll_raw = negative_log_likelihood(test.probs, y_test)
    nll_dir = negative_log_likelihood(dirichlet.calibrated_probs(test), y_test)
    nll_true = negative_log_likelihood(p_true, y_test)
    t = TemperatureScaling(4).fit(cal, y_cal).temperature
    nll_ts = negative_log_likelihood(_softmax(test.logits.astype(np.float64) / t), y_test)
    assert nll_dir < nll_raw - 0.1
    assert nll_dir < nll_ts - 0.01
    assert nll_dir < nll_true + 0.01
    scores = dirichlet.score(test)
    q = dirichlet.calibrated_probs(test)
    np.testing.assert_allclose(scores, q[np.arange(len(test)), test.predicted], rtol=1e-12)


def test_dirichlet_regulariser_shrinks_w_towards_diagonal() -> None:
    cal, y, _ = _mixed_log_space(1500, np.random.default_rng(9))
    off = 1.0 - np.eye(4)
    norms, biases = [], []
    for reg in [0.0, 0.01, 0.1, 1.0, 10.0, 100.0]:
        fn = DirichletCalibration(4, reg=reg).fit(cal, y)
        norms.append(float(np.linalg.norm(fn.weight * off)))
        biases.append(float(np.linalg.norm(fn.bias)))
    assert all(b <= a + 1e-6 for a, b in itertools.pairwise(norms)), norms
    assert norms[-1] < 0.05 * norms[0], norms
    assert biases[-1] < 0.05 * biases[0], biases


def test_dirichlet_stays_near_identity_on_calibrated_data() -> None:
    cal, y = _planted(5000, 3, 1.0, np.random.default_rng(10))
    fn = DirichletCalibration(3, reg=1e-2).fit(cal, y)
    np.testing.assert_allclose(fn.weight, np.eye(3), atol=0.15)


@pytest.mark.parametrize("name", CONFIDENCE_NAMES)
def test_the_label_free_scores_are_those_that_learn_nothing(name: ConfidenceName) -> None:
    """tbal.config.LABEL_FREE_SCORES (what the stratum's draw and the D_cal split read from the
    configuration) names exactly the confidence functions whose fitting uses no label."""
    function = make_confidence(ConfidenceConfig(name=name), 3)
    assert function.learns_from_labels == (name not in LABEL_FREE_SCORES)
