"""Feature vectors for the features-default study (BENCHMARKS.md, "Issue 11, twenty-seventh session").

A project or ``tbal run`` given an .npz of flat vectors (inputs with one axis) gets the data kind
"features", about which nothing else is known. To choose its defaults on more than one kind of vector, this
writes image data sets as the flat vectors a user might bring: the pixel values as they are (not scaled),
one row per image. SST-2's MiniLM embeddings (``sst2_minilm.npz``) are already vectors.

Usage:
    .venv/bin/python bench/flat_vectors.py --out /tmp/vectors [--harder /tmp/harder_mnist.npz]

writes ``mnist.npz`` (10,000 × 784, grey levels 0-255), ``digits.npz`` (1,797 × 64, 0-16) and, with
``--harder`` (``bench/hard_mnist.py write --strength 1.0``), ``harder.npz`` (10,000 × 784); and the
variants the study compared the library's standardisation with, labels unused: ``<name>-unit.npz`` (rows
divided by their mean L2 norm, as SST-2's embeddings are) and ``<name>-col.npz`` (every column standardised
over the file; with ``sst2-col.npz``, SST-2's first 10,000 embeddings so).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SST2_ROWS = 10_000  # bench/coverage.sh's vec-sst2 pool


def write(target: Path, vectors: np.ndarray, labels: np.ndarray) -> None:
    np.savez(target, X=vectors.astype(np.float32), y=labels.astype(np.int64))
    print(f"{target}: {vectors.shape}, values {vectors.min():g}..{vectors.max():g}")


def unit_rows(X: np.ndarray) -> np.ndarray:
    """X divided by the mean L2 norm of its rows (one factor for the whole file)."""
    X64 = X.astype(np.float64)
    return X64 / np.linalg.norm(X64, axis=1).mean()


def standard_columns(X: np.ndarray) -> np.ndarray:
    """Every column of X minus its mean, over its sd (a constant column: over 1)."""
    X64 = X.astype(np.float64)
    sd = X64.std(axis=0)
    sd[sd < 1e-8] = 1.0
    return (X64 - X64.mean(axis=0)) / sd


def flatten(source: Path, out: Path, name: str) -> None:
    """``source``'s X as rows of its pixel values (y kept), written as ``name`` and its two variants."""
    with np.load(source) as archive:
        images, labels = archive["X"], archive["y"]
    vectors = images.reshape(len(images), -1).astype(np.float32)
    write(out / f"{name}.npz", vectors, labels)
    write(out / f"{name}-unit.npz", unit_rows(vectors), labels)
    write(out / f"{name}-col.npz", standard_columns(vectors), labels)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--harder", type=Path, help="an .npz written by bench/hard_mnist.py")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    flatten(SHARED / "mnist_test.npz", args.out, "mnist")
    flatten(SHARED / "sklearn_digits.npz", args.out, "digits")
    if args.harder is not None:
        flatten(args.harder, args.out, "harder")
    with np.load(SHARED / "sst2_minilm.npz") as archive:
        embeddings, labels = archive["X_train"][:SST2_ROWS], archive["y_train"][:SST2_ROWS]
    write(args.out / "sst2-col.npz", standard_columns(embeddings), labels)


if __name__ == "__main__":
    main()
