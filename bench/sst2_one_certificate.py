"""One certificate on SST-2 embeddings, outside the loop (tuning seeds only): how the fixed-sequence walk,
the fallback walk and an ensemble of classifiers change the valid bound's coverage (BENCHMARKS.md,
"Coverage under the valid bound").

Per seed: 2,000 random training labels, 1,600 validation points (all of them D_th, as for softmax), a
pool of 18,000; thresholds at δ_k = 0.045 (the final round's share), ε = 0.05.

- ``families``: the pooled guarantee's nested families (common cut alone at δ_k, both at δ_k / 2, equal
  rank alone) on a logistic regression, on SST-2 (as above) and on MNIST pixels (300 random training
  labels, 500 validation points, the rest the pool), to choose ``thresholds.pooled_families``.
- ``targeted``: validation points drawn where the threshold will land (the top share q of the pool by the
  score, q chosen on a first uniform part of N_v, the certificate on the rest drawn inside it) against
  1,600 uniform points.

- ``labels``: the text-paper classifier on 1,200 to 48,000 random labels: accuracy, oracle coverage and
  the noise-free ceiling of one certificate (bench/certificate_ceiling.py) on 2,400 validation points.

Usage: .venv/bin/python bench/sst2_one_certificate.py labels|walks|ensemble|families|targeted \
    [--seeds 10,11,12]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tbal import thresholds as th
from tbal.config import ThresholdConfig, preset
from tbal.metrics import label_knowing_coverage
from tbal.models import build_model
from tbal.predictions import predict
from tbal.thresholds import estimate_thresholds
from tbal.training.train import one_hot, train_classifier

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2_minilm.npz"
DELTA_K = 0.045
MNIST = DATA.with_name("mnist_test.npz")
# The walks as these modes measured them: they start where a pass is possible (walk_start_share 0)
BEFORE = ThresholdConfig(walk_start_share=0.0)


def split(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return order[:2000], order[2000:3600], order[3600:21600]


def certify(
    probs_val: np.ndarray,
    y_val: np.ndarray,
    probs_pool: np.ndarray,
    y_pool: np.ndarray,
    config: ThresholdConfig,
) -> tuple[float, float]:
    """Coverage and true error on the pool of the thresholds certified on the validation set."""
    s_val, yhat_val = probs_val.max(1), probs_val.argmax(1)
    s_pool, yhat_pool = probs_pool.max(1), probs_pool.argmax(1)
    k = probs_val.shape[1]
    result = estimate_thresholds(s_val, yhat_val, yhat_val == y_val, k, config, delta=DELTA_K)
    auto = s_pool >= result.thresholds[yhat_pool]
    error = float(np.mean(yhat_pool[auto] != y_pool[auto])) if auto.any() else 0.0
    return float(auto.mean()), error


def oracle_coverage(probs_pool: np.ndarray, y_pool: np.ndarray, epsilon: float) -> float:
    """The largest share of the pool, most confident first, whose true error is ≤ ε (labels known)."""
    return label_knowing_coverage(probs_pool.max(1), probs_pool.argmax(1) == y_pool, epsilon)


def walks(X: np.ndarray, y: np.ndarray, seed: int) -> None:
    """A logistic regression (scikit-learn) scored by max probability, under three walks."""
    from sklearn.linear_model import LogisticRegression

    tr, va, po = split(seed, len(y))
    model = LogisticRegression(C=0.5, max_iter=2000).fit(X[tr], y[tr])
    pv, pp = model.predict_proba(X[va]), model.predict_proba(X[po])
    accuracy = float(np.mean(pp.argmax(1) == y[po]))
    oracle = [100 * oracle_coverage(pp, y[po], e) for e in (0.05, 0.025)]
    print(
        f"seed {seed} accuracy {100 * accuracy:.1f} %, oracle coverage {oracle[0]:.1f} % at ε 5 %, "
        f"{oracle[1]:.1f} % at 2.5 %"
    )
    for name, config in (
        ("plain walk", replace(BEFORE, fallback_share=0.0)),
        ("fallback 0.3", replace(BEFORE, fallback_share=0.3)),
        ("fallback 0.5, 4 restarts", replace(BEFORE, fallback_share=0.5, fallback_checkpoints=4)),
    ):
        coverage, error = certify(pv, y[va], pp, y[po], config)
        print(f"seed {seed} {name:26s} coverage {100 * coverage:5.1f} %  error {100 * error:4.2f} %")


def ensemble(X: np.ndarray, y: np.ndarray, seed: int) -> None:
    """The text-paper MLP, alone and averaged over 3 or 5 seeds, under the default walk."""
    tr, va, po = split(seed, len(y))
    outputs = []
    for member in range(5):
        model = _text_mlp(X[tr], y[tr], seed * 100 + member)
        outputs.append((predict(model, X[va]).probs, predict(model, X[po]).probs))
    for k in (1, 3, 5):
        pv = np.mean([o[0] for o in outputs[:k]], axis=0)
        pp = np.mean([o[1] for o in outputs[:k]], axis=0)
        coverage, error = certify(pv, y[va], pp, y[po], BEFORE)
        print(f"seed {seed} {k} member(s)  coverage {100 * coverage:5.1f} %  error {100 * error:4.2f} %")


def logistic_regressions(
    X: np.ndarray, y: np.ndarray, seed: int
) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, validation probabilities, validation labels, pool probabilities, pool labels) of a logistic
    regression on SST-2 (2,000 training labels, 1,600 validation) and on MNIST pixels (300, 500)."""
    from sklearn.linear_model import LogisticRegression

    with np.load(MNIST) as z:
        pixels, digits = z["X"].reshape(len(z["y"]), -1).astype(np.float32) / 255, z["y"].astype(np.int64)
    for name, (data, labels_, n_train, n_val, c) in {
        "sst2": (X, y, 2000, 1600, 0.5),
        "mnist": (pixels, digits, 300, 500, 0.05),
    }.items():
        order = np.random.default_rng(seed).permutation(len(labels_))
        tr, va, po = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
        model = LogisticRegression(C=c, max_iter=3000).fit(data[tr], labels_[tr])
        yield name, model.predict_proba(data[va]), labels_[va], model.predict_proba(data[po]), labels_[po]


def families(X: np.ndarray, y: np.ndarray, seed: int) -> None:
    """Coverage of each pooled family on SST-2 and MNIST logistic regressions (max probability)."""
    for name, pv, y_val, pp, _ in logistic_regressions(X, y, seed):
        k = pp.shape[1]
        s_val, yhat_val, wrong_val = pv.max(1), pv.argmax(1), pv.argmax(1) != y_val
        s_pool, yhat_pool = pp.max(1), pp.argmax(1)
        config = BEFORE
        cuts = {
            "both at δ/2": th._pooled_walks(s_val, yhat_val, wrong_val, k, config, DELTA_K, th._Context())[0],
            "common at δ": th._common_cut(s_val, yhat_val, wrong_val, k, config, DELTA_K, th._Context())[0],
            "rank at δ": th._equal_rank_cut(s_val, yhat_val, wrong_val, k, config, DELTA_K, th._Context())[0],
        }
        shown = "  ".join(f"{key} {100 * np.mean(s_pool >= t[yhat_pool]):5.1f} %" for key, t in cuts.items())
        print(f"seed {seed} {name:5s} coverage: {shown}")


def targeted(X: np.ndarray, y: np.ndarray, seed: int) -> None:
    """1,600 uniform validation points against a uniform part (400–800) that picks the stratum and the
    rest drawn inside it (the certificate uses those only, so the choice costs no δ)."""
    from sklearn.linear_model import LogisticRegression

    order = np.random.default_rng(seed).permutation(len(y))
    tr, pool = order[:2000], order[2000:21600]
    probs = LogisticRegression(C=0.5, max_iter=2000).fit(X[tr], y[tr]).predict_proba(X[pool])
    s, yhat = probs.max(1), probs.argmax(1)
    wrong = yhat != y[pool]
    for n_uniform in (1600, 400, 600, 800):
        rng = np.random.default_rng(seed * 7 + 1)
        perm = rng.permutation(pool.size)
        uniform, rest = perm[:n_uniform], perm[n_uniform:]
        cut = -1.0
        if n_uniform < 1600:  # the stratum: 1.5 x the pool share whose uniform estimate is <= ε
            o = np.argsort(-s[uniform])
            ok = np.flatnonzero(np.cumsum(wrong[uniform][o]) / np.arange(1, o.size + 1) <= 0.05)
            share = min(1.0, 1.5 * np.mean(s[rest] >= s[uniform][o][ok[-1]])) if ok.size else 1.0
            cut = float(np.quantile(s[rest], 1 - share)) if share < 1 else -1.0
            inside = rest[s[rest] >= cut]
            d_th = rng.choice(inside, size=min(1600 - n_uniform, inside.size), replace=False)
        else:
            d_th = uniform
        result = estimate_thresholds(s[d_th], yhat[d_th], ~wrong[d_th], 2, BEFORE, delta=DELTA_K)
        labeled = np.zeros(pool.size, dtype=bool)
        labeled[uniform] = labeled[d_th] = True
        auto = (s >= result.thresholds[yhat]) & (s >= cut) & ~labeled
        print(f"seed {seed} uniform {n_uniform:4d}: coverage {100 * auto.sum() / (~labeled).sum():5.1f} %")


def labels(X: np.ndarray, y: np.ndarray, seed: int) -> None:
    """The text-paper classifier on 1,200 to 48,000 random labels: how far more labels lift its accuracy,
    the oracle coverage at ε and the noise-free ceiling of one certificate on 2,400 validation points at
    δ_k (the text preset's N_v with its floor), on the same pool of 18,000. Shows whether the
    representation or the number of labels caps SST-2's coverage under the valid bound."""
    order = np.random.default_rng(seed).permutation(len(y))
    pool, rest = order[:18_000], order[18_000:]
    for n in (1200, 2000, 8000, 48_000):
        tr = rest[:n]
        probs = predict(_text_mlp(X[tr], y[tr], seed), X[pool]).probs
        accuracy, oracle, ceiling = _ranking_figures(probs.max(1), probs.argmax(1) == y[pool])
        print(
            f"seed {seed} {n:6d} labels: accuracy {accuracy:.1f} %, oracle coverage {oracle:.1f} %, "
            f"noise-free ceiling (2,400 validation points) {ceiling:.1f} %",
            flush=True,
        )


def _ranking_figures(score: np.ndarray, correct: np.ndarray) -> tuple[float, float, float]:
    """(accuracy, oracle coverage at ε, noise-free ceiling of one certificate on 2,400 validation points
    at δ_k), in %, of a pool ranked by ``score``."""
    from certificate_ceiling import noise_free_ceiling

    wrong = ~correct[np.argsort(-score, kind="stable")]
    rate = np.cumsum(wrong) / np.arange(1, wrong.size + 1)
    return (
        100 * float(correct.mean()),
        100 * label_knowing_coverage(score, correct, 0.05),
        100 * noise_free_ceiling(rate, 2400, DELTA_K),
    )


def _neighbour_mean(X: np.ndarray, probs: np.ndarray, k: int) -> np.ndarray:
    """Each point's probabilities averaged over its ``k`` nearest points (cosine, itself included): a
    label-free smoothing of the scores over the pool's own geometry."""
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    out = np.empty_like(probs)
    for start in range(0, len(X), 2000):
        similarity = unit[start : start + 2000] @ unit.T
        nearest = np.argpartition(-similarity, k, axis=1)[:, :k]
        out[start : start + 2000] = probs[nearest].mean(axis=1)
    return out


def heads(X: np.ndarray, y: np.ndarray, seed: int) -> None:
    """Classifiers and scores on the frozen embeddings at the text preset's certifying round (1,200 random
    training labels, as with its floor): accuracy, oracle coverage at ε and the noise-free ceiling of one
    certificate on 2,400 validation points, on one pool of 18,000. Which head or score ranks the pool best:
    the text-paper MLP alone and averaged over 5 seeds, its probabilities averaged over each point's k
    nearest pool points, logistic regressions, and the MLP's score recalibrated per predicted class
    (isotonic) on the training labels' out-of-fold predictions, or on the pool's own labels (an oracle: what
    any per-class recalibration could add)."""
    from sklearn.linear_model import LogisticRegression

    order = np.random.default_rng(seed).permutation(len(y))
    pool, tr = order[:18_000], order[18_000:19_200]
    members = [_text_mlp(X[tr], y[tr], seed * 100 + member) for member in range(5)]
    first = predict(members[0], X[pool]).probs
    variants = {"mlp": first, "mlp x5": np.mean([predict(m, X[pool]).probs for m in members], axis=0)}
    for k in (5, 10, 20, 50):
        variants[f"mlp, {k}-nn mean"] = _neighbour_mean(X[pool], first, k)
    for c in (0.5, 2.0):
        regression = LogisticRegression(C=c, max_iter=3000).fit(X[tr], y[tr])
        variants[f"logreg C {c}"] = regression.predict_proba(X[pool])
    oof = _out_of_fold(X[tr], y[tr], seed)
    scores = {name: (p.max(1), p.argmax(1)) for name, p in variants.items()}
    predicted = first.argmax(1)
    scores["mlp, per-class iso (training OOF)"] = (
        _per_class_isotonic(first, oof.max(1), oof.argmax(1) == y[tr], oof.argmax(1)),
        predicted,
    )
    scores["mlp, per-class iso (pool's labels)"] = (
        _per_class_isotonic(first, first.max(1), predicted == y[pool], predicted),
        predicted,
    )
    for name, (score, guess) in scores.items():
        accuracy, oracle, ceiling = _ranking_figures(score, guess == y[pool])
        print(
            f"seed {seed} {name:34s} accuracy {accuracy:.1f} %, oracle {oracle:.1f} %, "
            f"ceiling {ceiling:.1f} %",
            flush=True,
        )


def _text_mlp(X: np.ndarray, y: np.ndarray, seed: int) -> torch.nn.Module:
    """The text-paper preset's classifier trained on (X, y) with ``seed``."""
    config = preset("text-paper")
    model = build_model(config.model, (X.shape[1],), 2)
    train_classifier(model, X, one_hot(y, 2), config.train, seed=seed)
    return model


def _out_of_fold(X: np.ndarray, y: np.ndarray, seed: int, folds: int = 5) -> np.ndarray:
    """Each training row's probabilities from the text-paper MLP trained on the other folds."""
    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    probs = np.empty((len(y), 2))
    for f in range(folds):
        model = _text_mlp(X[fold != f], y[fold != f], seed * 100 + 50 + f)
        probs[fold == f] = predict(model, X[fold == f]).probs
    return probs


def _per_class_isotonic(
    probs: np.ndarray, fit_score: np.ndarray, fit_correct: np.ndarray, fit_predicted: np.ndarray
) -> np.ndarray:
    """P(correct | predicted class, score) fitted per predicted class (isotonic) on the ``fit_*`` points
    and read at ``probs``' top scores; ties broken by the raw score."""
    from sklearn.isotonic import IsotonicRegression

    score, predicted = probs.max(1), probs.argmax(1)
    out = np.empty_like(score)
    for c in np.unique(predicted):
        fit = fit_predicted == c
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(fit_score[fit], fit_correct[fit].astype(float))
        out[predicted == c] = iso.predict(score[predicted == c]) + 1e-6 * score[predicted == c]
    return out


def steps(X: np.ndarray, y: np.ndarray, seed: int) -> None:
    """Coverage and true error of the default walk testing every candidate or only those that
    ``thresholds.walk_step`` keeps, on the ``families`` logistic regressions (SST-2 and MNIST pixels),
    common cut at δ_k as for softmax."""
    variants = {f"step {r}": {"walk_step": r, "walk_start_share": 0.0} for r in (0.0, 0.05, 0.1, 0.2, 0.3)}
    _compare_walks(X, y, seed, variants)  # the start as it was when these were measured


def starts(X: np.ndarray, y: np.ndarray, seed: int) -> None:
    """The same for where the walk starts (``thresholds.walk_start_share``)."""
    _compare_walks(X, y, seed, {f"start {f}": {"walk_start_share": f} for f in (0.0, 0.1, 0.2, 0.3, 0.4)})


def _compare_walks(X: np.ndarray, y: np.ndarray, seed: int, variants: dict[str, dict[str, float]]) -> None:
    for name, pv, y_val, pp, y_pool in logistic_regressions(X, y, seed):
        shown = []
        for label, changes in variants.items():
            config = ThresholdConfig(pooled_families="common", **changes)  # type: ignore[arg-type]
            result = estimate_thresholds(pv.max(1), pv.argmax(1), pv.argmax(1) == y_val, pp.shape[1],
                                         config, delta=DELTA_K)  # fmt: skip
            auto = pp.max(1) >= result.thresholds[pp.argmax(1)]
            error = float(np.mean(pp.argmax(1)[auto] != y_pool[auto])) if auto.any() else 0.0
            shown.append(f"{label}: {100 * auto.mean():5.1f} % ({100 * error:.2f} %)")
        print(f"seed {seed} {name:5s} " + "  ".join(shown), flush=True)


MODES = {
    "labels": labels,
    "heads": heads,
    "steps": steps,
    "starts": starts,
    "walks": walks,
    "ensemble": ensemble,
    "families": families,
    "targeted": targeted,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=tuple(MODES))
    parser.add_argument("--seeds", default="10,11,12")
    args = parser.parse_args()
    with np.load(DATA) as z:
        X, y = z["X_train"].astype(np.float32), z["y_train"].astype(np.int64)
    for seed in (int(s) for s in args.seeds.split(",")):
        MODES[args.what](X, y, seed)


if __name__ == "__main__":
    main()
