#!/usr/bin/env bash
# The inter-batch pipeline on a CNN, parties as processes on 127.0.0.1:
# LeNet classifies COUNT MNIST test images in micro-batches of BATCH,
# with 1 micro-batch in flight (the serial engine) and with K, in ABBA
# order, PAIRS pairs; prints party 0's classify time of each run, the
# medians, the throughput ratio and party 0's bytes and rounds.
#
#   scripts/bench-classify.sh N LINK COUNT BATCH K PAIRS WEIGHTS DATA
#   scripts/bench-classify.sh 2 wan 640 64 4 2 /tmp/lenet.safetensors ../shared/data/mnist
#
# LINK: none (plain loopback TCP), lan, wan or RATE:LATENCY. WEIGHTS: a
# LeNet state dict (`spindle classify --help`); DATA: an MNIST folder.
set -euo pipefail
cd "$(dirname "$0")/.."
n=$1 link=$2 count=$3 batch=$4 k=$5 pairs=$6 weights=$7 data=$8
link_args=""
[ "$link" = none ] || link_args="--link $link"
run() {
  local w
  w=$(mktemp -d -t spindle-bench-classify.XXXXXX)
  WORKDIR=$w SHOW=0 PARTY_ARGS="$link_args" scripts/launch-local.sh "$n" --job classify \
    --weights "$weights" --data "$data" --count "$count" --micro-batch "$batch" \
    --in-flight "$1" >/dev/null 2>&1 || { echo "run failed, logs in $w" >&2; return 1; }
  # "party 0: classify 1234.5 ms, sent 2.1 GiB in 520 rounds"
  grep -h "^party 0: classify " "$w/party0.log" | tail -1
  rm -rf "$w"
}
t1=() tk=()
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 1 ]; then order="1 $k"; else order="$k 1"; fi
  for f in $order; do
    line=$(run "$f")
    t=$(echo "$line" | awk '{print $4}')
    echo "in-flight $f: $line"
    if [ "$f" = 1 ]; then t1+=("$t"); else tk+=("$t"); fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
m1=$(median "${t1[@]}") mk=$(median "${tk[@]}")
echo "medians: in-flight 1 $m1 ms, in-flight $k $mk ms, throughput ratio $(awk -v a="$m1" -v b="$mk" 'BEGIN {printf "%.2f", a/b}')x ($count images, $n parties, link $link)"
