#!/usr/bin/env bash
# A/B comparison of two spindle binaries on one non-linear function, as
# docs/perf.md measures them: 2 parties as separate processes plus a dealer
# process on 127.0.0.1 (scripts/launch-local.sh, `spindle party --job op`,
# material expanded ahead), the binaries alternating in ABBA order (the
# second run of a fixed pair tends to be faster on a busy machine), one
# line per run with party 0's median of K calls, then both medians and
# their ratio.
#
#   scripts/ab-ops.sh OLD_BINARY NEW_BINARY OP ROWS COLS K [PAIRS]
#   e.g. scripts/ab-ops.sh /tmp/spindle-old target/release/spindle exp 1000 1000 3 4
#
# PLAINTEXT=1 runs over plain TCP (--insecure-plaintext for the parties
# and the dealer) instead of TLS.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 6 ]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
old=$1 new=$2 op=$3 m=$4 n=$5 k=$6 pairs=${7:-3}
for b in "$old" "$new"; do
  [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }
done
plain=""
if [ "${PLAINTEXT:-0}" = 1 ]; then plain="--insecure-plaintext"; fi
run() {
  SPINDLE="$1" PARTY_ARGS="--expand-ahead $plain" DEALER_ARGS="$plain" SHOW=1 \
    scripts/launch-local.sh 2 --job op --op "$op" --m "$m" --n "$n" --repeat "$k" 2>&1 |
    grep "^party 0: $op (median" | grep -o "[0-9.]* ms" | cut -d' ' -f1 || true
}
label=$op
# shellcheck source=scripts/ab-abba.sh
. scripts/ab-abba.sh
abba
