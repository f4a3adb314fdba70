"""Feature vectors for the features-default study (BENCHMARKS.md, "Issue 11, twenty-seventh session").

A project or ``tbal run`` given an .npz of flat vectors (inputs with one axis) gets the data kind
"features", about which nothing else is known. To choose its defaults on more than one kind of vector, this
writes image data sets as the flat vectors a user might bring: the pixel values as they are (not scaled),
one row per image. SST-2's MiniLM embeddings (``sst2_minilm.npz``) are already vectors.

Usage:
    .venv/bin/python bench/flat_vectors.py --out /tmp/vectors [--harder /tmp/harder_mnist.npz]

writes ``mnist.npz`` (10,000 × 784, grey levels 0-255), ``digits.npz`` (1,797 × 64, 0-16) and, with
``--harder`` (``bench/hard_mnist.py write --strength 1.0``), ``harder.npz`` (10,000 × 784).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def flatten(source: Path, target: Path) -> None:
    """``source``'s X as float32 rows of its pixel values (y kept), written to ``target``."""
    with np.load(source) as archive:
        images, labels = archive["X"], archive["y"]
    vectors = images.reshape(len(images), -1).astype(np.float32)
    np.savez(target, X=vectors, y=labels.astype(np.int64))
    print(f"{target}: {vectors.shape}, values {vectors.min():g}..{vectors.max():g}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--harder", type=Path, help="an .npz written by bench/hard_mnist.py")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    flatten(SHARED / "mnist_test.npz", args.out / "mnist.npz")
    flatten(SHARED / "sklearn_digits.npz", args.out / "digits.npz")
    if args.harder is not None:
        flatten(args.harder, args.out / "harder.npz")


if __name__ == "__main__":
    main()
