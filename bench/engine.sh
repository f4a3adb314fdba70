#!/usr/bin/env bash
# The engine benchmarks of BENCHMARKS.md (issue: the auto-labeling engine). Each line writes a markdown
# table to stdout and every round's record to bench/results/<name>.json.
# Usage: bash bench/engine.sh mnist|mnist-reference|mnist-tuned-seed|mnist-floor-seed|mnist-tuned-grid|mnist-baselines|sst2|time|time-valid   (from the repository root, after `make env`)
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
  mnist-tuned-seed)  # one seed of the tuned preset, one confidence function and bound (run several in parallel)
    C="${CONFIDENCE:-colander}"; B="${BOUND:-paper}"; S="${SEED:-0}"
    $TBAL run --data "$DATA/mnist_test.npz" --preset mnist-paper --confidence "$C" --bound "$B" \
      --seeds "$S" --threads "$THREADS" --json "$OUT/mnist-tuned-$C-$B-s$S.json" ;;
  mnist-floor-seed)  # the same with a validation floor (FLOOR points; loop.validation_floor)
    C="${CONFIDENCE:-colander}"; B="${BOUND:-paper}"; S="${SEED:-0}"; F="${FLOOR:?set FLOOR}"
    $TBAL run --data "$DATA/mnist_test.npz" --preset mnist-paper --confidence "$C" --bound "$B" \
      --set loop.validation_floor="$F" --seeds "$S" --threads "$THREADS" \
      --json "$OUT/mnist-floor$F-$C-$B-s$S.json" ;;
  mnist-tuned-grid)  # the six confidence functions x both bounds x seeds, two runs at a time, skipping done ones
    for s in ${SEEDS:-0 1 2 3 4}; do for c in colander softmax temperature histogram scaling-binning dirichlet; do
      for b in paper valid; do
        test -s "$OUT/mnist-tuned-$c-$b-s$s.json" || echo "$c $b $s"
      done; done; done |
      xargs -P "${JOBS:-2}" -L 1 sh -c 'CONFIDENCE=$0 BOUND=$1 SEED=$2 bash bench/engine.sh mnist-tuned-seed > "bench/results/mnist-tuned-$0-$1-s$2.log" 2>&1' ;;
  mnist-baselines)  # the other calibrators
    $TBAL bench --data "$DATA/mnist_test.npz" --preset mnist-paper --threads "$THREADS" --seeds "${SEEDS:-0,1,2,3,4}" \
      --confidences "${CONFIDENCES:-temperature,histogram,scaling-binning,dirichlet}" --bounds paper,valid \
      --json "$OUT/mnist-baselines-${TAG:-main}.json" ;;
  sst2)  # text embeddings, pool of 20k, the text-paper budgets
    $TBAL bench --data "$DATA/sst2_minilm.npz" --preset text-paper --pool-size 20000 --threads "$THREADS" \
      --seeds "${SEEDS:-0,1,2}" --confidences "${CONFIDENCES:-softmax,temperature,colander}" --bounds "${BOUNDS:-paper,valid}" \
      --json "$OUT/sst2-${TAG:-main}.json" ;;
  time)  # wall time of one full MNIST run and where it goes (per-stage timings are in the JSON)
    /usr/bin/time -v $TBAL run --data "$DATA/mnist_test.npz" --preset mnist-paper --confidence colander \
      --bound paper --seeds 0 --json "$OUT/mnist-time.json" ;;
  time-valid)  # the same under the valid bound, the default, where the preset continues the classifier in
    # every round (train.warm_start_epochs 20); WARM=0 times fresh classifiers every round
    /usr/bin/time -v $TBAL run --data "$DATA/mnist_test.npz" --preset mnist-paper --confidence colander \
      --bound valid --seeds 0 --set train.warm_start_epochs="${WARM:-20}" --json "$OUT/mnist-time-valid-w${WARM:-20}.json" ;;
  *) echo "usage: bash bench/engine.sh mnist|mnist-reference|mnist-tuned-seed|mnist-floor-seed|mnist-tuned-grid|mnist-baselines|sst2|time|time-valid" >&2; exit 2 ;;
esac
