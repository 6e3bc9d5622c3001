#!/usr/bin/env bash
# The inter-batch pipeline in training, parties as processes on 127.0.0.1:
# N-party LeNet training steps of batch BATCH on the embedded MNIST sample,
# each step's batch as micro-batches of MICRO with 1 (serial) or K in
# flight, ABBA order, PAIRS pairs; then one run with the batch in one
# piece. Prints party 0's median iteration and its traffic per run, the
# medians and the ratio.
#
#   scripts/bench-train-pipeline.sh N LINK BATCH MICRO K ITERS PAIRS
#   scripts/bench-train-pipeline.sh 3 wan 64 32 2 4 1
#
# LINK: none (plain loopback TCP), lan, wan or RATE:LATENCY.
set -euo pipefail
cd "$(dirname "$0")/.."
n=$1 link=$2 batch=$3 micro=$4 k=$5 iters=$6 pairs=$7
link_args=""
[ "$link" = none ] || link_args="--link $link"
run() {
  # party 0: epoch 1: median iteration (traffic: mean) 1234.5 ms, sent 12 MiB in 96 rounds
  PARTY_ARGS="$link_args" SHOW=12 scripts/launch-local.sh "$n" --job train --model lenet \
    --batch "$batch" --train-limit $((batch * iters)) --test-limit 64 --epochs 1 "$@" 2>&1 |
    grep "^party 0: epoch 1: median iteration" | head -n 1
}
t1=() tk=()
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 1 ]; then order="1 $k"; else order="$k 1"; fi
  for f in $order; do
    line=$(run --micro-batch "$micro" --in-flight "$f")
    echo "micro-batches of $micro, in-flight $f: $line"
    t=$(echo "$line" | grep -o "[0-9.]* ms" | head -n 1 | awk '{print $1}')
    if [ "$f" = 1 ]; then t1+=("$t"); else tk+=("$t"); fi
  done
done
echo "whole batch: $(run)"
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
m1=$(median "${t1[@]}") mk=$(median "${tk[@]}")
echo "medians: in-flight 1 $m1 ms, in-flight $k $mk ms, ratio $(awk -v a="$m1" -v b="$mk" 'BEGIN {printf "%.2f", a/b}')x ($n parties, link $link, batch $batch in micro-batches of $micro)"
