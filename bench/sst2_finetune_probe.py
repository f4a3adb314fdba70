"""What a classifier on SST-2 ranks: accuracy and the oracle coverage at ≤ ε of one certificate (the largest
top share of the pool, by max softmax, that is at most ε wrong, found with the labels) for classifiers
trained on the same random training labels (issue 11, twentieth session).

    .venv/bin/python bench/sst2_finetune_probe.py --seeds 10 --train 2000 --pool 18000 --threads 2

Arms: ``emb-lr`` (logistic regression on the frozen MiniLM embedding of the file), ``tfidf-lr`` (logistic
regression on word uni- and bigram TF-IDF of the sentences), ``ensemble`` (the two averaged), ``minilm``
(``model.name=minilm``: MiniLM fine-tuned by the engine's training loop with its network's training). The
training labels and the pool are the first ``--train`` and the next ``--pool`` of a seeded permutation of
SST-2's training split. Tuning seeds only (10+).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from tbal.metrics import label_knowing_coverage

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2_minilm.npz"
ARMS = ("emb-lr", "tfidf-lr", "ensemble", "minilm")


def linear_probabilities(texts: list[str], X: np.ndarray, y: np.ndarray, n_train: int) -> dict[str, Any]:
    """Pool probabilities of the logistic regressions (embedding, TF-IDF) and of their average."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    embedding = LogisticRegression(C=1.0, max_iter=2000).fit(X[:n_train], y[:n_train])
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)  # label-free
    words = LogisticRegression(C=10.0, max_iter=2000).fit(tfidf[:n_train], y[:n_train])
    p_emb = embedding.predict_proba(X[n_train:])
    p_words = words.predict_proba(tfidf[n_train:])
    return {"emb-lr": p_emb, "tfidf-lr": p_words, "ensemble": (p_emb + p_words) / 2}


def fine_tuned_probabilities(texts: list[str], y: np.ndarray, n_train: int, seed: int) -> np.ndarray:
    import torch

    from tbal.config import ModelConfig, TrainConfig
    from tbal.minilm import MAX_TOKENS, tokenize
    from tbal.models import build_model
    from tbal.predictions import predict
    from tbal.training.train import one_hot, train_classifier

    ids = tokenize(texts)
    model = build_model(ModelConfig(name="minilm"), (MAX_TOKENS,), 2, seed=seed)
    train_classifier(
        model, ids[:n_train], one_hot(y[:n_train], 2), TrainConfig(), seed=seed, device=torch.device("cpu")
    )
    return predict(model, ids[n_train:]).probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", default="10")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=18000)
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    arms = [a for a in args.arms.split(",") if a]
    archive = np.load(args.data)
    X_all, y_all = archive["X_train"].astype(np.float32), archive["y_train"]
    texts_all = bytes(archive["text_train_utf8"]).decode().split("\n")
    results: list[dict[str, Any]] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rows = np.random.default_rng(seed).permutation(len(y_all))[: args.train + args.pool]
        texts, X, y = [texts_all[i] for i in rows], X_all[rows], y_all[rows]
        started = time.perf_counter()
        probabilities = linear_probabilities(texts, X, y, args.train) if set(arms) - {"minilm"} else {}
        if "minilm" in arms:
            probabilities["minilm"] = fine_tuned_probabilities(texts, y, args.train, seed)
        for arm in arms:
            p = probabilities[arm]
            correct = p.argmax(axis=1) == y[args.train :]
            row = {
                "seed": seed,
                "arm": arm,
                "accuracy": float(correct.mean()),
                "oracle_coverage": label_knowing_coverage(p.max(axis=1), correct, args.epsilon),
            }
            results.append(row)
            print(f"seed {seed} {arm:9s} accuracy {row['accuracy']:.3f} oracle {row['oracle_coverage']:.3f}")
        print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    if args.json:
        settings = {k: str(v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"args": settings, "rows": results}))


if __name__ == "__main__":
    main()
