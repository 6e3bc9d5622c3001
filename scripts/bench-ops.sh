#!/usr/bin/env bash
# Issue 4's budgets as the issue measures them: each non-linear function
# with the parties as separate processes over TCP + mutual TLS on
# 127.0.0.1 (scripts/launch-local.sh, `spindle party --job op`), once with
# the material expanded as the function asks for it and once expanded
# before the online phase (--expand-ahead). Prints one line per run: the
# median time of K runs, bytes and rounds per run at party 0.
#
#   scripts/bench-ops.sh [N parties, default 2]
#
# PLAINTEXT=1 runs every case over plain TCP (--insecure-plaintext for the
# parties and the dealer: CrypTen's own setting, no TLS) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2}
SPINDLE=${SPINDLE:-target/release/spindle}
[ -x "$SPINDLE" ] || cargo build --release --bin spindle >&2
export SPINDLE
plain="" link="TLS"
if [ "${PLAINTEXT:-0}" = 1 ]; then plain="--insecure-plaintext" link="plain TCP"; fi
export DEALER_ARGS="${DEALER_ARGS:-} $plain"
# op, rows x cols, runs (a dealer store must stay under the 1 GiB frame limit)
cases=(
  "relu 1000 1000 5"
  "exp 1000 1000 3"
  "reciprocal 1000 1000 2"
  "softmax 128 128 5 --max-group 128"
  "softmax 128 128 5"
)
for c in "${cases[@]}"; do
  read -r op m n k extra <<<"$c"
  for ahead in "" "--expand-ahead"; do
    line=$(PARTY_ARGS="$ahead $plain" SHOW=2 scripts/launch-local.sh "$N" --job op --op "$op" \
      --m "$m" --n "$n" --repeat "$k" ${extra:-} 2>&1 | grep "^party 0: $op (median" || true)
    printf '%-40s %-15s %-9s %s\n' "$op ${m}x${n} ${extra:-}" "${ahead:-as-asked}" \
      "$link" "${line:-FAILED}"
  done
done
