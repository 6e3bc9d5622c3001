#!/usr/bin/env bash
# A/B comparison of two spindle binaries on Transformer inference latency,
# as issue 26 measures it: N parties as separate processes plus the dealer
# on 127.0.0.1 (scripts/launch-local.sh, `--job infer`), optionally over an
# emulated link, the binaries alternating in ABBA order, one line per run
# with party 0's inference phase (model load excluded), then both medians
# and their ratio (old / new: above 1 means the new binary is faster).
# Each run's rounds are printed to stderr.
#
#   scripts/ab-infer.sh OLD_BINARY NEW_BINARY PARTIES LINK MODEL_DIR [PAIRS] [TEXT]
#   e.g. scripts/ab-infer.sh /tmp/spindle-old target/release/spindle 2 wan ../shared/data/minilm 1
#
# LINK: none (plain loopback TCP), lan, wan or RATE:LATENCY. TEXT defaults
# to "The quick brown fox jumps over the lazy dog." (12 tokens).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 5 ]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
old=$1 new=$2 n=$3 link=$4 model=$5 pairs=${6:-1}
text=${7:-"The quick brown fox jumps over the lazy dog."}
for b in "$old" "$new"; do
  [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }
done
link_args=""
[ "$link" = none ] || link_args="--link $link"
run() {
  local line
  # "party 0: inference 13520.4 ms, sent 22.10 MiB in 625 rounds"
  line=$(SPINDLE="$1" SHOW=6 PARTY_ARGS="$link_args" scripts/launch-local.sh "$n" --job infer \
    --model "$model" --text "$text" 2>&1 | grep "^party 0: inference " | head -n 1) || true
  [ -n "$line" ] || return 0
  echo "  $1: $line" >&2
  echo "$line" | awk '{print $4}'
}
label="infer $n parties, link $link"
# shellcheck source=scripts/ab-abba.sh
source scripts/ab-abba.sh
abba
