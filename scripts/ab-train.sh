#!/usr/bin/env bash
# A/B comparison of two spindle binaries on secure training, as docs/perf.md
# measures them: N parties as separate processes plus the online dealer on
# 127.0.0.1 (scripts/launch-local.sh, `--job train`, the embedded MNIST
# sample), the binaries alternating in ABBA order, one line per run with
# party 0's median training iteration of the epoch, then both medians and
# their ratio (old / new: above 1 means the new binary is faster).
#
#   scripts/ab-train.sh OLD_BINARY NEW_BINARY PARTIES MODEL BATCH ITERATIONS [PAIRS]
#   e.g. scripts/ab-train.sh /tmp/spindle-old target/release/spindle 3 lenet 64 8 3
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 6 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
old=$1 new=$2 n=$3 model=$4 batch=$5 iters=$6 pairs=${7:-3}
for b in "$old" "$new"; do
  [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }
done
run() {
  # The party log's last lines hold the phases; party 0's median iteration.
  SPINDLE="$1" SHOW=12 scripts/launch-local.sh "$n" --job train --model "$model" \
    --batch "$batch" --train-limit $((batch * iters)) --test-limit 64 --epochs 1 2>&1 |
    grep -A12 "^party 0" | grep "median iteration" | head -n 1 |
    grep -o "[0-9.]* \(ms\|s\)\b" | head -n 1 |
    awk '{ if ($2 == "s") print $1 * 1000; else print $1 }' || true
}
label="$model train"
# shellcheck source=scripts/ab-abba.sh
. scripts/ab-abba.sh
abba
