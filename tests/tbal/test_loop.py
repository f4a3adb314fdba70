"""run_round / run_tbal on small synthetic data: bookkeeping, budgets, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from tbal import loop as loop_module
from tbal.config import ConfigError, LoopConfig, TBALConfig, with_overrides
from tbal.data import make_dataset
from tbal.errors import TBALInputError
from tbal.loop import RoundInput, Stratum, run_round, run_tbal
from tbal.plan import RoundPlan
from tbal.predictions import predict
from tbal.training.train import one_hot
from tests.tbal.synthetic import blobs_8d


def _config(**overrides: object) -> TBALConfig:
    base = {
        "model.name": "mlp",
        "model.hidden": "32,16",
        "train.epochs": 5,
        "loop.label_budget": 120,
        "loop.seed_size": 60,
        "loop.batch_size": 20,
        "loop.validation_size": 300,
        "thresholds.bound": "paper",
    }
    base.update(overrides)
    return with_overrides(TBALConfig(), base)


def test_loop_respects_the_budget_and_keeps_sets_apart() -> None:
    X, y = blobs_8d()
    result = run_tbal(make_dataset(X, y), _config(), seed=1)
    rounds = result.rounds
    assert [r.round for r in rounds] == list(range(len(rounds)))
    assert len(rounds) <= 4  # 1 seed round + (120 - 60) / 20 query rounds
    assert rounds[-1].human_training_labels <= 120
    # auto-labels are unique pool points and never validation points
    assert np.unique(result.auto_labeled_index).size == result.auto_labeled_index.size
    assert result.pool_size == 1200 - 300
    assert result.coverage == pytest.approx(result.auto_labeled_index.size / result.pool_size)
    totals = [r.auto_labeled_total for r in rounds]
    assert totals == sorted(totals)
    assert result.coverage > 0.5  # separable blobs: most of the pool is auto-labeled
    assert result.true_error is not None and result.true_error <= 0.05


def test_loop_is_reproducible_for_a_seed() -> None:
    X, y = blobs_8d()
    a = run_tbal(make_dataset(X, y), _config(), seed=3)
    b = run_tbal(make_dataset(X, y), _config(), seed=3)
    assert np.array_equal(a.auto_labeled_index, b.auto_labeled_index)
    assert [r.thresholds for r in a.rounds] == [r.thresholds for r in b.rounds]


def test_validation_points_in_the_auto_labeled_region_are_removed() -> None:
    X, y = blobs_8d()
    result = run_tbal(make_dataset(X, y), _config(), seed=2)
    first = result.rounds[0]
    if first.auto_labeled_round > 0:
        assert first.validation_remaining < 300


def test_budget_larger_than_the_data_is_refused() -> None:
    X, y = blobs_8d(n=100)
    with pytest.raises(TBALInputError, match="budget larger than the data"):
        run_tbal(make_dataset(X, y), _config(), seed=0)


@pytest.mark.parametrize("uncertainty", ["sngp", "duq"])
def test_rounds_train_uncertainty_models_with_their_own_procedure(
    uncertainty: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SNGP's covariance and DUQ's loss are part of their training: a round must use them."""
    import tbal.uncertainty as uncertainty_module

    called: list[str] = []
    real_cov, real_duq = uncertainty_module.fit_sngp_covariance, uncertainty_module.train_duq

    def spy_cov(*args: object, **kwargs: object) -> object:
        called.append("sngp-covariance")
        return real_cov(*args, **kwargs)  # type: ignore[arg-type]

    def spy_duq(*args: object, **kwargs: object) -> object:
        called.append("duq")
        return real_duq(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(uncertainty_module, "fit_sngp_covariance", spy_cov)
    monkeypatch.setattr(uncertainty_module, "train_duq", spy_duq)
    X, y = blobs_8d(n=600)
    config = _config(**{"model.uncertainty": uncertainty, "loop.label_budget": 80, "loop.seed_size": 60})
    result = run_tbal(make_dataset(X, y), config, seed=0)
    expected = "sngp-covariance" if uncertainty == "sngp" else "duq"
    assert called == [expected] * len(result.rounds)


def test_validation_floor_tops_up_from_the_pool_within_the_budget() -> None:
    """Blobs are easy: round 0 auto-labels most of the pool and removes most validation points. With a
    floor, later rounds draw new validation points from the pool that is left, paid from N_t."""
    X, y = blobs_8d()
    floor = 250
    whole = {"loop.targeted_validation": 0}  # all of N_v from round 0, so that round 0 depletes it
    plain = run_tbal(make_dataset(X, y), _config(**whole), seed=1)
    topped = run_tbal(make_dataset(X, y), _config(**whole, **{"loop.validation_floor": floor}), seed=1)
    assert all(r.validation_added == 0 for r in plain.rounds)
    assert plain.rounds[0].validation_remaining < floor  # the premise: round 0 depleted the set

    added = [r.validation_added for r in topped.rounds]
    # the round queues its top-up for the next round, at most one batch (as the service does)
    assert added[0] == min(20, floor - topped.rounds[0].validation_remaining + added[0])
    assert added[0] > 0
    for before, r in zip(topped.rounds, topped.rounds[1:], strict=False):
        # a round buys one batch in all: its top-up plus its training queries
        assert before.validation_added + before.queried <= 20
        assert r.human_validation_labels == before.human_validation_labels + before.validation_added
        assert r.human_training_labels == before.human_training_labels + before.queried
    last = topped.rounds[-1]
    # the humans' total is unchanged: top-ups replace training labels
    assert last.human_training_labels + last.human_validation_labels - 300 <= 120
    assert last.human_validation_labels == 300 + sum(added[:-1])
    assert np.unique(topped.auto_labeled_index).size == topped.auto_labeled_index.size
    # round 0 is the same run with or without the floor (the top-up draw has its own random stream)
    assert topped.rounds[0].thresholds == plain.rounds[0].thresholds


def test_validation_floor_must_be_a_non_negative_integer() -> None:
    from tbal.config import ConfigError

    with pytest.raises(ConfigError, match="validation_floor"):
        _config(**{"loop.validation_floor": -1})


def test_a_run_with_a_stratum_draws_its_validation_points_in_two_parts() -> None:
    """loop.targeted_validation: N_v − k at the start, k more by the round before the last planned one;
    the humans' validation total is N_v, and the run stays within the budget and ε on easy blobs."""
    X, y = blobs_8d()
    config = _config(
        **{
            "thresholds.bound": "valid",
            "loop.targeted_validation": 100,
            "loop.stratum_share": 0.6,
        }
    )
    result = run_tbal(make_dataset(X, y), config, seed=1)
    rounds = result.rounds
    assert config.loop.planned_rounds == 4 and len(rounds) >= 3
    assert [r.human_validation_labels for r in rounds[:3]] == [200, 200, 200]
    assert [r.validation_added for r in rounds[:3]] == [0, 0, 100]  # round 2 = planned_rounds − 2
    if len(rounds) > 3:
        assert rounds[3].human_validation_labels == 300
    assert result.true_error is None or result.true_error <= 0.05
    assert result.pool_size == 1200 - 300  # all of N_v leaves the pool, the stratum's points too


@pytest.mark.parametrize(("confidence", "uniform"), [("softmax", 30), ("temperature", 150)])
def test_a_confidence_fitted_on_labels_keeps_its_calibration_points_uniform(
    confidence: str, uniform: int
) -> None:
    """tbal.config.targeted_count: with 0.9 of N_v (300) asked inside the stratum, softmax, which fits
    nothing, draws 30 uniform points at the start; temperature scaling keeps ν·N_v = 150 of them for its
    D_cal (the stratum's points are not a sample of the pool), and the stratum draws the other 150."""
    X, y = blobs_8d()
    config = _config(
        **{
            "thresholds.bound": "valid",
            "loop.targeted_validation": 0.9,
            "loop.calibration_fraction": 0.5,
            "confidence.name": confidence,
        }
    )
    result = run_tbal(make_dataset(X, y), config, seed=1)
    rounds = result.rounds
    assert rounds[0].human_validation_labels == uniform
    assert [r.validation_added for r in rounds[:3]] == [0, 0, 300 - uniform]
    assert result.pool_size == 1200 - 300


def _stratum_inputs(confidence_learns: bool) -> tuple[RoundInput, TBALConfig]:
    rng = np.random.default_rng(4)
    config = _config(
        **{
            "thresholds.bound": "valid",
            "thresholds.split_delta_over_rounds": False,
            "confidence.name": "histogram" if confidence_learns else "softmax",
            "loop.calibration_fraction": 0.5,
            # the population bound: histogram's 108 D_th points in the stratum certify its region's
            # population but not, at δ/2 for each family, a rest of 228 pool points beside them (that is
            # finite_pool's price where D_th is a third of the region; these tests are of the stratum)
            "thresholds.finite_pool": False,
        }
    )
    n_val = 300
    targeted = np.zeros(n_val, dtype=bool)
    targeted[rng.choice(n_val, 60, replace=False)] = True
    in_val = targeted | (rng.random(n_val) < 0.5)
    pool_in = rng.random(900 - 100 - n_val) < 0.5
    stratum = Stratum(pool=pool_in, validation=in_val, targeted=targeted)
    return _blob_round(n_queries=10, stratum=stratum), config


def _blob_round(**fields: object) -> RoundInput:
    """A round on 900 blob points: 100 training labels, 300 validation points, the rest the pool."""
    X, y = blobs_8d(n=900)
    return RoundInput(
        X[:100],
        one_hot(y[:100], 3),
        X[100:400],
        y[100:400],
        X[400:],
        3,
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("confidence_learns", [False, True])
def test_a_round_under_a_stratum_certifies_and_auto_labels_inside_it(confidence_learns: bool) -> None:
    inputs, config = _stratum_inputs(confidence_learns)
    stratum = inputs.stratum
    assert stratum is not None
    out = run_round(inputs, config, seed=3)
    assert out.auto_mask.any(), "easy blobs: the round should auto-label, or the check says nothing"
    assert not (out.auto_mask & ~stratum.pool).any()
    assert not (out.val_removed & ~stratum.validation).any()
    assert stratum.validation[out.th_index].all()
    # every targeted point is in D_th (none spent on fitting the confidence function)
    assert set(np.flatnonzero(stratum.targeted)) <= set(out.th_index.tolist())
    assert not stratum.targeted[out.cal_index].any()
    # D_cal holds ν of the whole validation set (0.5 of 300), all of them uniform points
    assert out.cal_index.size == (150 if confidence_learns else 0)
    assert out.stratum_cut is None and out.targeted_index.size == 0  # this round fixes none


@pytest.mark.parametrize(("confidence_learns", "setting"), [(False, True), (False, False), (True, True)])
def test_a_certifying_round_may_train_on_the_validation_points_outside_its_stratum(
    confidence_learns: bool, setting: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``loop.train_outside_stratum``: the round trains on its 100 training labels and the validation
    points outside the stratum (no test of the round reads them), never on D_th's; not with a confidence
    function fitted on labels (its D_cal is drawn from those points) nor with the setting off. Its report
    card is on the validation points it did not train on."""
    inputs, config = _stratum_inputs(confidence_learns)
    config = with_overrides(config, {"loop.train_outside_stratum": setting})
    stratum = inputs.stratum
    assert stratum is not None
    seen: list[np.ndarray] = []
    real = loop_module.train_uncertainty_model

    def spy(model: object, X: np.ndarray, targets: np.ndarray, *args: object, **kwargs: object) -> object:
        seen.append(X)
        return real(model, X, targets, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop_module, "train_uncertainty_model", spy)
    out = run_round(inputs, config, seed=3)
    outside = np.flatnonzero(~stratum.validation)
    trains_outside = setting and not confidence_learns
    expected = np.concatenate([inputs.X_train, inputs.X_val[outside]]) if trains_outside else inputs.X_train
    assert len(seen) == 1 and np.array_equal(seen[0], expected)
    assert outside.size > 100 and np.intersect1d(out.th_index, outside).size == 0
    assert out.evaluation is not None
    unseen = stratum.validation.sum() if trains_outside else stratum.validation.size
    assert out.evaluation.n == unseen
    assert out.trained_validation_index.tolist() == (outside.tolist() if trains_outside else [])


def test_training_outside_the_stratum_is_a_yes_or_no() -> None:
    with pytest.raises(ConfigError, match="train_outside_stratum must be true or false"):
        LoopConfig(train_outside_stratum=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'loop\.train_outside_stratum': expected bool"):
        _config(**{"loop.train_outside_stratum": "maybe"})


@pytest.mark.parametrize("confidence", ["softmax", "histogram"])
def test_the_round_that_fixes_the_stratum_draws_inside_it(confidence: str) -> None:
    config = _config(
        **{"thresholds.bound": "valid", "loop.validation_floor": 320, "confidence.name": confidence}
    )
    plan = RoundPlan(
        round_index=2,
        seed=11,
        delta=0.0,
        query_budget=20,
        validation_floor=320,
        targeted=50,
        validation_reserved=50,
        stratum_share=0.4,
    )
    out = run_round(_blob_round(plan=plan), config)
    assert out.stratum_cut is not None and out.pool_in_stratum is not None and out.val_in_stratum is not None
    assert out.targeted_index.size == 50
    assert out.pool_in_stratum[out.targeted_index].all()
    taken = np.concatenate([out.query_index, out.top_up_index, np.flatnonzero(out.auto_mask)])
    assert np.intersect1d(out.targeted_index, taken).size == 0
    # the top-up counts the targeted points towards the floor: 320 − 300 − 50 < 0, no top-up
    assert out.top_up_index.size == 0 and out.query_index.size == 20
    left = ~out.auto_mask
    left[out.query_index] = False
    share = out.pool_in_stratum[left].mean()
    assert 0.4 <= share <= 0.45  # the top 40 % of the pool left (ties go in)
    # ranked by the classifier's own probability, never by a confidence function fitted on labels
    inputs = _blob_round(plan=plan)
    assert np.array_equal(
        out.pool_in_stratum, predict(out.model, inputs.X_pool).probs.max(1) >= out.stratum_cut
    )
    assert np.array_equal(
        out.val_in_stratum, predict(out.model, inputs.X_val).probs.max(1) >= out.stratum_cut
    )


def _every_pool_row(inputs: RoundInput, *args: object) -> np.ndarray:
    """A stand-in for ``tbal.loop._pool_rows_read`` that makes every round score its whole pool."""
    return np.arange(len(inputs.X_pool))


def _idle_plan(**fields: object) -> RoundPlan:
    """A round that certifies nothing (δ_k = 0) and fixes no stratum, with 20 queries and a floor of 320
    (so it also draws 20 validation top-ups from the pool)."""
    base: dict[str, object] = {
        "round_index": 0,
        "seed": 5,
        "delta": 0.0,
        "query_budget": 40,
        "validation_floor": 320,
    }
    return RoundPlan(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize("guarantee", ["pooled", "dataset"])
def test_a_round_that_reads_nothing_of_its_pool_leaves_it_unscored(
    guarantee: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """δ_k = 0, no stratum to fix and random queries: the round's decisions (queries, top-ups, thresholds,
    removals, its report card) are those of the same round that scores its pool, which it does not."""
    config = _config(
        **{"thresholds.bound": "valid", "query.strategy": "random", "thresholds.guarantee": guarantee}
    )
    unscored = run_round(_blob_round(plan=_idle_plan()), config)
    monkeypatch.setattr(loop_module, "_pool_rows_read", _every_pool_row)
    scored = run_round(_blob_round(plan=_idle_plan()), config)
    assert unscored.pool_predicted is None and unscored.pool_scores is None
    assert scored.pool_predicted is not None and scored.pool_predicted.size == 500
    assert np.array_equal(unscored.query_index, scored.query_index) and unscored.query_index.size == 20
    assert np.array_equal(unscored.top_up_index, scored.top_up_index) and unscored.top_up_index.size == 20
    assert not unscored.auto_mask.any() and unscored.auto_mask.size == 500
    assert unscored.auto_predicted.size == 0 and unscored.auto_scores.size == 0
    assert np.array_equal(unscored.val_removed, scored.val_removed)
    assert np.array_equal(unscored.th_scores, scored.th_scores)
    for name in ("thresholds", "estimated_error", "error_bound", "n_points"):
        np.testing.assert_array_equal(getattr(unscored.thresholds, name), getattr(scored.thresholds, name))
    assert unscored.evaluation == scored.evaluation


@pytest.mark.parametrize(
    ("change", "plan_fields"),
    [
        ({"query.strategy": "margin-random"}, {}),  # the queries read the classifier
        ({}, {"delta": 0.01}),  # the round may certify
        ({}, {"targeted": 30, "validation_reserved": 30, "stratum_share": 0.5}),  # it fixes the stratum
    ],
)
def test_a_round_that_needs_its_pool_scores_it(
    change: dict[str, object], plan_fields: dict[str, object]
) -> None:
    config = _config(**{"thresholds.bound": "valid", "query.strategy": "random", **change})
    out = run_round(_blob_round(plan=_idle_plan(**plan_fields)), config)
    assert out.pool_predicted is not None and out.pool_scores is not None and out.pool_scores.size == 500


def test_a_run_is_the_same_whether_its_idle_rounds_score_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run_tbal`` under the ``final`` schedule with random queries: the rounds before the one that fixes
    the stratum certify nothing and score no pool; their records count the classifier's accuracy on a
    uniform sample of ``ACCURACY_SAMPLE`` pool points, and the run's auto-labels are those of a run whose
    every round scores its pool."""
    X, y = blobs_8d(n=1600)
    config = _config(**{"thresholds.bound": "valid", "query.strategy": "random"})
    monkeypatch.setattr(loop_module, "ACCURACY_SAMPLE", 400)
    lean = run_tbal(make_dataset(X, y), config, seed=2)
    rounds = lean.rounds
    assert [r.delta_round > 0 for r in rounds] == [False, False, False, True]
    # rounds 0 and 1 are idle: a sample of 400 of the pool; round 2 fixes the stratum (the library's
    # default) and scores the whole pool it has; round 3 certifies inside the stratum and scores its
    # points only: a sample again
    assert [r.classifier_accuracy_points for r in rounds] == [400, 400, rounds[1].pool_remaining, 400]
    monkeypatch.setattr(loop_module, "_pool_rows_read", _every_pool_row)
    full = run_tbal(make_dataset(X, y), config, seed=2)
    assert lean.coverage > 0.3, "the run should auto-label, or the comparison says nothing"
    assert np.array_equal(lean.auto_labeled_index, full.auto_labeled_index)
    assert np.array_equal(lean.auto_labels, full.auto_labels)
    assert [r.queried for r in lean.rounds] == [r.queried for r in full.rounds]
    assert [r.thresholds for r in lean.rounds] == [r.thresholds for r in full.rounds]
    # the sample's accuracy estimates the whole pool's (standard error ≤ 2.5 points at 400)
    for sampled, whole in zip(rounds[:2], full.rounds[:2], strict=True):
        assert whole.classifier_accuracy_points > 1000
        assert sampled.classifier_accuracy_pool == pytest.approx(whole.classifier_accuracy_pool, abs=0.08)


@pytest.mark.parametrize("guarantee", ["pooled", "dataset"])
@pytest.mark.parametrize("strategy", ["random", "margin-random"])
def test_a_round_under_a_stratum_scores_the_stratum_only_where_its_queries_read_no_score(
    guarantee: str, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside a stratum nothing outside it is auto-labeled or tested, so with random queries the round
    scores the stratum's pool points only (-1 / NaN elsewhere) and decides as the same round scoring its
    whole pool; queries ranked by the classifier still need every point's score."""
    inputs, config = _stratum_inputs(confidence_learns=False)
    config = with_overrides(
        config,
        {"query.strategy": strategy, "thresholds.guarantee": guarantee, "thresholds.finite_pool": True},
    )
    stratum = inputs.stratum
    assert stratum is not None
    lean = run_round(inputs, config, seed=3)
    monkeypatch.setattr(loop_module, "_pool_rows_read", _every_pool_row)
    whole = run_round(inputs, config, seed=3)
    assert lean.pool_predicted is not None and lean.pool_scores is not None
    assert whole.pool_scores is not None
    expected_scored = stratum.pool if strategy == "random" else np.ones_like(stratum.pool)
    assert np.array_equal(lean.pool_scored, expected_scored) and whole.pool_scored.all()
    assert (lean.pool_predicted[~lean.pool_scored] == -1).all()
    assert np.isnan(lean.pool_scores[~lean.pool_scored]).all()
    assert lean.auto_mask.sum() > 50, "easy blobs: the round should auto-label, or the check says nothing"
    assert np.array_equal(lean.auto_mask, whole.auto_mask)
    assert np.array_equal(lean.auto_predicted, whole.auto_predicted)
    assert np.array_equal(lean.auto_scores, whole.auto_scores)
    assert np.array_equal(lean.pool_scores[lean.pool_scored], whole.pool_scores[lean.pool_scored])
    assert np.array_equal(lean.query_index, whole.query_index) and lean.query_index.size == 10
    assert np.array_equal(lean.top_up_index, whole.top_up_index)
    assert np.array_equal(lean.val_removed, whole.val_removed)
    for name in ("thresholds", "estimated_error", "error_bound", "n_points"):
        np.testing.assert_array_equal(getattr(lean.thresholds, name), getattr(whole.thresholds, name))
