#!/usr/bin/env bash
# Small pools, where the validation points are a large share of the region a certificate speaks of
# (BENCHMARKS.md, "Issue 11, twenty-fifth session"): the presets' budgets on the first P items of SST-2's
# embeddings (text-paper) and of MNIST (mnist-paper), under the population bound (finite_pool=false) and the
# certificate on the auto-labels (the default). Writes bench/results/small-pools/<case>.json; two runs at a
# time. OLD_TREE=DIR runs the code of another checkout (e.g. a git worktree of the commit before the walk's
# start moved to the rest's test) and names its files old-*.
# Usage: bash bench/small_pools.sh [SEEDS (SST-2's; default "10 11 ... 19")]; MNIST_SEEDS (default "10 11 12")
# (from the repository root, after make env)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
DATA="$(realpath "${TBAL_SHARED_DATA:-../shared/data}")"
OUT="$ROOT/bench/results/small-pools"
OLD_TREE="${OLD_TREE:-}"
SEEDS="${1:-10 11 12 13 14 15 16 17 18 19}"
MNIST_SEEDS="${MNIST_SEEDS:-10 11 12}"
mkdir -p "$OUT"

run() {  # NAME FINITE_POOL SEED tbal-run-options...
  local name=$1 finite=$2 seed=$3; shift 3
  local prefix="" tree="$ROOT"
  if [ -n "${OLD_TREE:-}" ]; then
    [ "$finite" = true ] || return 0  # the population bound's walk is the same code in both
    prefix="old-"; tree="$OLD_TREE"
  fi
  local file="$OUT/$prefix$name-$finite-s$seed.json"
  test -s "$file" && return 0
  # from the tree's own folder: `python -m` puts the working directory first on the path
  (cd "$tree" && PYTHONPATH="$tree" OMP_NUM_THREADS=1 "$ROOT/.venv/bin/python" -m tbal.cli run "$@" \
    --seeds "$seed" --threads 1 --quiet --set "thresholds.finite_pool=$finite" --json "$file" > "$file.log" 2>&1)
}
export -f run
export ROOT DATA OUT OLD_TREE

cases() {
  for seed in $SEEDS; do
    for finite in false true; do
      echo "sst2-6000 $finite $seed --data $DATA/sst2_minilm.npz --preset text-paper --pool-size 6000"
      echo "sst2-10000 $finite $seed --data $DATA/sst2_minilm.npz --preset text-paper --pool-size 10000"
      # a small project: 3,000 sentences, 500 training and 500 validation labels (the seed and the floor
      # follow the budgets by the preset's shares)
      echo "sst2-3000-n500 $finite $seed --data $DATA/sst2_minilm.npz --preset text-paper --pool-size 3000 --budget 500 --validation-size 500"
      # feature vectors with the library's defaults (what a features project without a preset runs)
      echo "sst2-6000-bare $finite $seed --data $DATA/sst2_minilm.npz --preset none --pool-size 6000"
    done
  done
  for seed in $MNIST_SEEDS; do  # five to six minutes a run on one busy core
    for finite in false true; do
      echo "mnist-2500 $finite $seed --data $DATA/mnist_test.npz --preset mnist-paper --pool-size 2500"
    done
  done
}

cases | xargs -P "${JOBS:-2}" -L 1 bash -c 'run "$@"' _
