#!/usr/bin/env bash
# Rebuild data/mnist-sample/: the first N (default 512) images and labels of
# the MNIST t10k split as gzipped IDX files whose headers say N.
#
# Usage: scripts/make-mnist-sample.sh [MNIST_DIR] [OUT_DIR] [N]
#   MNIST_DIR  holds t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz
#              (default ../shared/data/mnist; scripts/fetch-mnist.sh makes one)
#   OUT_DIR    default data/mnist-sample
#   N          default 512
#
# The output is byte-for-byte reproducible (gzip -n -9 stores no name or time).

set -euo pipefail

SRC="${1:-../shared/data/mnist}"
OUT="${2:-data/mnist-sample}"
N="${3:-512}"

die() { echo "make-mnist-sample: error: $*" >&2; exit 1; }

[[ "$N" =~ ^[0-9]+$ && "$N" -ge 1 && "$N" -le 10000 ]] || die "N must be 1..10000, got '$N'"
for f in t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [[ -f "$SRC/$f" ]] || die "$SRC/$f not found (run scripts/fetch-mnist.sh DIR first)"
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/mnist-sample.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"

# 4-byte big-endian u32 as a printf escape string.
be32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }

# cut FILE HEADER_LEN RECORD_LEN NEW_HEADER OUT: keep the first N records after
# the header and write NEW_HEADER in front. Works on files, not pipes, so no
# writer dies of SIGPIPE.
cut_idx() {
  local file="$1" hlen="$2" rlen="$3" header="$4" out="$5"
  gzip -dc "$file" >"$TMP/raw"
  head -c $((hlen + N * rlen)) "$TMP/raw" >"$TMP/head"
  [[ $(stat -c %s "$TMP/head") -eq $((hlen + N * rlen)) ]] || die "$file is too short"
  { printf "$header"; tail -c +$((hlen + 1)) "$TMP/head"; } | gzip -n -9 >"$out"
}

# Images: magic 0x00000803, n, 28, 28; 784 bytes per image.
cut_idx "$SRC/t10k-images-idx3-ubyte.gz" 16 784 \
  "\\x00\\x00\\x08\\x03$(be32 "$N")\\x00\\x00\\x00\\x1c\\x00\\x00\\x00\\x1c" \
  "$OUT/t10k-images-$N-idx3-ubyte.gz"
# Labels: magic 0x00000801, n; 1 byte per label.
cut_idx "$SRC/t10k-labels-idx1-ubyte.gz" 8 1 \
  "\\x00\\x00\\x08\\x01$(be32 "$N")" \
  "$OUT/t10k-labels-$N-idx1-ubyte.gz"

ls -l "$OUT"/t10k-*-"$N"-idx?-ubyte.gz
