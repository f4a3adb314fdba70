"""Colander on SST-2 embeddings, one round outside the loop (tuning seeds only, never the benchmark's
0–4): which Colander settings rank the text classifier's points best, and what the papers' rule and the
valid bound then certify (BENCHMARKS.md, "Issue 11, sixth session", Colander on text).

Per seed: the ``text-paper`` classifier trained on 2,000 random labels, 1,600 validation points split at
ν = 0.5 into D_cal (fits Colander) and D_th (thresholds), a pool of 18,000. Softmax sets its thresholds
on all 1,600 points (it fits nothing), as the loop does. Printed per setting: the within-class AUROC of
correctness on the pool, the papers' rule (ê + 0.25·sqrt(ê(1−ê)), n₀ 10) and the valid bound (pooled,
δ_k 0.045) coverage and true error on the pool.

Usage: .venv/bin/python bench/sst2_colander_tune.py [--seeds 10,11,12] [--settings paper,mnist,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from sst2_one_certificate import split

from tbal.confidence.colander import Colander
from tbal.config import ColanderConfig, FamiliesName, ThresholdConfig, preset, resolved_thresholds
from tbal.evaluation import auroc
from tbal.models import build_model
from tbal.predictions import Predictions, predict
from tbal.thresholds import estimate_thresholds
from tbal.training.train import one_hot, train_classifier

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2_minilm.npz"
DELTA_K = 0.045

PAPER = ColanderConfig.paper_network()
DEFAULT = ColanderConfig()  # the residual network tuned on MNIST (the library's defaults)
SETTINGS: dict[str, ColanderConfig] = {
    "paper-network": PAPER,  # the paper's g on raw z
    "default": DEFAULT,
    "default-wd1": dataclasses.replace(DEFAULT, weight_decay=1.0),
    "default-wd001": dataclasses.replace(DEFAULT, weight_decay=0.01),
    "default-lam100": dataclasses.replace(DEFAULT, lam=100.0),
    "default-alpha10": dataclasses.replace(DEFAULT, alpha=10.0),
    "default-500ep": dataclasses.replace(DEFAULT, epochs=500),
    "paper-std": dataclasses.replace(PAPER, standardize=True),
    "paper-std-wd01": dataclasses.replace(PAPER, standardize=True, weight_decay=0.1),
}


def within_class_auroc(scores: np.ndarray, predicted: np.ndarray, correct: np.ndarray) -> float:
    """Mean over predicted classes of the AUROC of ``scores`` for telling correct from wrong points."""
    aurocs = [
        auroc(scores[(predicted == c) & correct], scores[(predicted == c) & ~correct])
        for c in np.unique(predicted)
        if 0 < correct[predicted == c].sum() < (predicted == c).sum()
    ]
    return float(np.mean(aurocs))


def certify(
    s_th: np.ndarray,
    p_th: np.ndarray,
    ok_th: np.ndarray,
    s_pool: np.ndarray,
    p_pool: np.ndarray,
    ok_pool: np.ndarray,
    config: ThresholdConfig,
) -> tuple[float, float]:
    """Coverage and true error on the pool of the thresholds ``config`` sets on D_th."""
    result = estimate_thresholds(s_th, p_th, ok_th, 2, config, delta=DELTA_K)
    auto = s_pool >= result.thresholds[p_pool]
    return float(auto.mean()), float(1 - ok_pool[auto].mean()) if auto.any() else 0.0


def evaluate(
    name: str,
    s_th: np.ndarray,
    th: Predictions,
    ok_th: np.ndarray,
    s_pool: np.ndarray,
    pool: Predictions,
    ok_pool: np.ndarray,
    families: FamiliesName,
) -> dict[str, Any]:
    paper = ThresholdConfig(bound="paper", min_points=10)
    valid = dataclasses.replace(ThresholdConfig(), pooled_families=families)
    row: dict[str, Any] = {"setting": name, "auroc": within_class_auroc(s_pool, pool.predicted, ok_pool)}
    for bound, config in (("paper", paper), ("valid", valid)):
        cov, err = certify(s_th, th.predicted, ok_th, s_pool, pool.predicted, ok_pool, config)
        row[f"{bound}_coverage"], row[f"{bound}_error"] = cov, err
    print(
        f"  {name:16s} AUROC {row['auroc']:.3f}  paper {100 * row['paper_coverage']:5.1f} % at "
        f"{100 * row['paper_error']:4.2f} %  valid {100 * row['valid_coverage']:5.1f} % at "
        f"{100 * row['valid_error']:4.2f} %",
        flush=True,
    )
    return row


def run_seed(X: np.ndarray, y: np.ndarray, seed: int, settings: list[str]) -> list[dict[str, Any]]:
    config = preset("text-paper")
    tr, va, po = split(seed, len(y))
    model = build_model(config.model, (X.shape[1],), 2)
    train_classifier(model, X[tr], one_hot(y[tr], 2), config.train, seed=seed)
    val, pool = predict(model, X[va]), predict(model, X[po])
    ok_val, ok_pool = val.predicted == y[va], pool.predicted == y[po]
    print(f"seed {seed}: accuracy on the pool {100 * ok_pool.mean():.1f} %", flush=True)
    softmax_families = resolved_thresholds(config).pooled_families
    rows = [
        evaluate("softmax", val.probs.max(1), val, ok_val, pool.probs.max(1), pool, ok_pool, softmax_families)
    ]
    half = np.random.default_rng(seed + 1).permutation(len(va))
    cal, th = half[: len(va) // 2], half[len(va) // 2 :]
    val_cal, val_th = val.subset(cal), val.subset(th)
    for name in settings:
        colander = Colander(2, SETTINGS[name]).fit(val_cal, y[va][cal], seed=seed)
        rows.append(
            evaluate(
                name, colander.score(val_th), val_th, ok_val[th], colander.score(pool), pool, ok_pool, "both"
            )
        )
    rows.append(
        evaluate(
            "softmax-on-Dth",
            val_th.probs.max(1),
            val_th,
            ok_val[th],
            pool.probs.max(1),
            pool,
            ok_pool,
            softmax_families,
        )
    )
    for row in rows:
        row["seed"] = seed
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="10,11,12")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = np.load(DATA)
    X, y = data["X_train"].astype(np.float32), data["y_train"].astype(np.int64)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rows += run_seed(X, y, seed, args.settings.split(","))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
