#!/usr/bin/env bash
# The engine benchmarks of BENCHMARKS.md (issue: the auto-labeling engine). Each line writes a markdown
# table to stdout and every round's record to bench/results/<name>.json.
# Usage: bash bench/engine.sh mnist|mnist-reference|mnist-tuned-seed|mnist-baselines|sst2|time   (from the repository root, after `make env`)
set -euo pipefail
cd "$(dirname "$0")/.."
TBAL=".venv/bin/tbal"
DATA="${TBAL_SHARED_DATA:-../shared/data}"
OUT=bench/results
mkdir -p "$OUT"
THREADS="${THREADS:-1}"
# The mnist-paper preset before tuning (the reference code's training and the paper's Colander g): the
# first MNIST table of BENCHMARKS.md was measured with these settings.
MNIST_REFERENCE=(--set loop.calibration_fraction=0.5 --set train.epochs=50 --set train.lr=0.01
  --set train.standardize_inputs=false --set train.augment_shift=0 --set thresholds.min_points=10
  --set confidence.colander.weight_decay=0.01 --set confidence.colander.epochs=500
  --set confidence.colander.standardize=false --set confidence.colander.logit_skip=0)

case "${1:-}" in
  mnist)  # the headline: Colander and softmax, 5 seeds, both bounds
    $TBAL bench --data "$DATA/mnist_test.npz" --preset mnist-paper --threads "$THREADS" --seeds 0,1,2,3,4 \
      --confidences "${CONFIDENCES:-colander,softmax}" --bounds paper,valid --json "$OUT/mnist-${TAG:-main}.json" ;;
  mnist-reference)  # the same grid with the settings before tuning
    $TBAL bench --data "$DATA/mnist_test.npz" --preset mnist-paper --threads "$THREADS" --seeds "${SEEDS:-0,1,2,3,4}" \
      --confidences "${CONFIDENCES:-colander,softmax}" --bounds paper,valid "${MNIST_REFERENCE[@]}" \
      --json "$OUT/mnist-${TAG:-main}.json" ;;
  mnist-tuned-seed)  # one seed of the tuned preset, Colander, paper bound (run seeds in parallel)
    $TBAL run --data "$DATA/mnist_test.npz" --preset mnist-paper --confidence colander --bound paper \
      --seeds "${SEED:-0}" --threads "$THREADS" --json "$OUT/mnist-tuned-colander-paper-s${SEED:-0}.json" ;;
  mnist-baselines)  # the other calibrators
    $TBAL bench --data "$DATA/mnist_test.npz" --preset mnist-paper --threads "$THREADS" --seeds "${SEEDS:-0,1,2,3,4}" \
      --confidences "${CONFIDENCES:-temperature,histogram,scaling-binning,dirichlet}" --bounds paper,valid \
      --json "$OUT/mnist-baselines-${TAG:-main}.json" ;;
  sst2)  # text embeddings, pool of 20k, the text-paper budgets
    $TBAL bench --data "$DATA/sst2_minilm.npz" --preset text-paper --pool-size 20000 --threads "$THREADS" \
      --seeds "${SEEDS:-0,1,2}" --confidences "${CONFIDENCES:-softmax,temperature,colander}" --bounds paper,valid \
      --json "$OUT/sst2-${TAG:-main}.json" ;;
  time)  # wall time of one full MNIST run and where it goes (per-stage timings are in the JSON)
    /usr/bin/time -v $TBAL run --data "$DATA/mnist_test.npz" --preset mnist-paper --confidence colander \
      --bound paper --seeds 0 --json "$OUT/mnist-time.json" ;;
  *) echo "usage: bash bench/engine.sh mnist|mnist-reference|mnist-tuned-seed|mnist-baselines|sst2|time" >&2; exit 2 ;;
esac
