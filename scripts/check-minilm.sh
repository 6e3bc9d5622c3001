#!/usr/bin/env bash
# The full-model acceptance check of issue 6: secure 3-party inference of
# all-MiniLM-L6-v2 on every sentence of reference.json, each embedding
# compared with sentence-transformers' (cosine >= 0.9999) and with the
# plaintext twin. The test suite runs a 1-layer cut; this runs all 6 layers.
#
#   scripts/check-minilm.sh [MODEL_DIR] [PARTIES]
#
# MODEL_DIR defaults to ../shared/data/minilm; SPINDLE to target/release/spindle.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-../shared/data/minilm}
PARTIES=${2:-3}
SPINDLE=${SPINDLE:-target/release/spindle}
if [ ! -x "$SPINDLE" ]; then
  cargo build --release --bin spindle >&2
fi
out=$("$SPINDLE" infer --model "$DIR" --reference "$DIR/reference.json" --parties "$PARTIES" --check)
echo "$out"
worst=$(echo "$out" | awk '/cosine with the reference/ {print $NF}' | sort -g | head -n 1)
count=$(echo "$out" | grep -c "cosine with the reference" || true)
if [ "$count" -eq 0 ]; then
  echo "FAILED: no cosine printed" >&2
  exit 1
fi
if awk -v w="$worst" 'BEGIN { exit !(w >= 0.9999) }'; then
  echo "OK: $count sentences, lowest cosine with the reference $worst (>= 0.9999)"
else
  echo "FAILED: lowest cosine with the reference $worst < 0.9999" >&2
  exit 1
fi
