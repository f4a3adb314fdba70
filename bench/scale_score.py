"""Score a pool of N items × 384 float32 on the CPU as a round does: the classifier's forward pass
(``tbal.predictions.predict``), the confidence function's scores and the per-class threshold test, beside
the limit underneath: the same matrix products as plain ``torch.mm`` calls, no framework around them.

    .venv/bin/python bench/scale_score.py --n 1000000

For each MLP (the default / ``text-paper`` 384-1000-500-30-10, and a small 384-256-10), each torch
thread count (1, 2) and each batch size, it reports items/s. No database: this is the library alone.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scale_common import RssSampler, conditions, save

MODELS: dict[str, tuple[int, ...]] = {"mlp-1000-500-30": (1000, 500, 30), "mlp-256": (256,)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[4096])
    parser.add_argument("--confidence", default="softmax")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["no_grad"],
        choices=["no_grad", "inference_mode"],
        help="no_grad: predict as it is (it uses torch.no_grad); inference_mode: inside torch.inference_mode",
    )
    parser.add_argument("--out", default="scale-score")
    args = parser.parse_args()
    record: dict[str, Any] = {
        "n": args.n,
        "dim": args.dim,
        "confidence": args.confidence,
        "before": conditions(),
        "runs": [],
    }
    rng = np.random.default_rng(0)
    X = rng.standard_normal(size=(args.n, args.dim), dtype=np.float32)
    for name in args.models:
        hidden = MODELS[name]
        for threads, batch, mode in itertools.product(args.threads, args.batches, args.modes):
            run = _score(args, X, name, hidden, threads, batch, mode)
            record["runs"].append(run)
            print(
                f"{name} threads={threads} batch={batch} {mode}: "
                f"predict {run['predict_items_per_s']:,.0f}/s, "
                f"confidence+thresholds {run['score_items_per_s']:,.0f}/s, whole "
                f"{run['items_per_s']:,.0f}/s; plain mm {run['mm_items_per_s']:,.0f}/s "
                f"(ratio {run['ratio_to_mm']:.2f}); per CPU s: whole {run['items_per_cpu_s']:,.0f}/s, "
                f"plain mm {run['mm_items_per_cpu_s']:,.0f}/s; CPU/wall {run['cpu_per_wall']:.2f}; "
                f"peak +{run['peak_rss_delta_mb']:,.0f} MiB"
            )
            save(args.out, record)
    record["after"] = conditions()
    print(f"saved {save(args.out, record)}")
    return 0


def _score(
    args: argparse.Namespace,
    X: np.ndarray,
    name: str,
    hidden: tuple[int, ...],
    threads: int,
    batch: int,
    mode: str,
) -> dict[str, Any]:
    import torch

    from tbal.confidence import make_confidence
    from tbal.config import ConfidenceConfig, ModelConfig
    from tbal.models import build_model
    from tbal.predictions import predict
    from tbal.thresholds import auto_label_mask

    torch.set_num_threads(threads)
    k = args.classes
    model = build_model(ModelConfig(name="mlp", hidden=hidden), (args.dim,), k, seed=0)
    rng = np.random.default_rng(1)
    val = predict(model, X[:2000])
    confidence = make_confidence(ConfidenceConfig(name=args.confidence), k)
    confidence.fit(val, rng.integers(0, k, size=2000), seed=0)
    thresholds = np.full(k, 0.5)
    with RssSampler() as sampler:
        rss0, _ = sampler.reset()
        cpu0 = time.process_time()
        start = time.perf_counter()
        with torch.inference_mode() if mode == "inference_mode" else contextlib.nullcontext():
            preds = predict(model, X, batch_size=batch)
        t_predict = time.perf_counter() - start
        cpu_predict = time.process_time() - cpu0
        start2 = time.perf_counter()
        scores = confidence.score(preds)
        mask = auto_label_mask(scores, preds.predicted, thresholds)
        t_score = time.perf_counter() - start2
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0
    del preds, scores, mask
    mm_cpu0 = time.process_time()
    mm_s = _plain_mm(model, X, batch)
    mm_cpu = time.process_time() - mm_cpu0
    n = X.shape[0]
    return {
        "model": name,
        "threads": threads,
        "batch": batch,
        "mode": mode,
        "predict_s": t_predict,
        "score_s": t_score,
        "predict_items_per_s": n / t_predict,
        "score_items_per_s": n / t_score,
        "items_per_s": n / wall,
        "mm_s": mm_s,
        "mm_items_per_s": n / mm_s,
        "ratio_to_mm": mm_s / t_predict,
        "cpu_per_wall": cpu / wall,
        "predict_items_per_cpu_s": n / cpu_predict,
        "items_per_cpu_s": n / cpu,
        "mm_items_per_cpu_s": n / mm_cpu,
        "ratio_to_mm_cpu": mm_cpu / cpu_predict,
        "peak_rss_delta_mb": sampler.peak_mb - rss0,
        "loadavg": os.getloadavg()[0],
    }


def _plain_mm(model: Any, X: np.ndarray, batch: int) -> float:
    """The model's linear layers as bare ``addmm`` calls (no activations, no copies out): the floor
    the forward pass stands on."""
    import torch

    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    weights = [(layer.weight.detach().t().contiguous(), layer.bias.detach()) for layer in layers]
    start = time.perf_counter()
    with torch.inference_mode():
        for begin in range(0, X.shape[0], batch):
            h = torch.from_numpy(X[begin : begin + batch])
            for w, b in weights:
                h = torch.addmm(b, h, w)
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())
