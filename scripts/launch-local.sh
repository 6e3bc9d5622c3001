#!/usr/bin/env bash
# Starts N parties and the dealer as separate processes on 127.0.0.1 with
# freshly generated certificates (mutual TLS), runs one job, and exits
# non-zero if any process failed.
#
#   scripts/launch-local.sh N [extra args for every process, e.g. --m 256 --k 256 --n 256]
#   scripts/launch-local.sh 3 --job train --model lenet --epochs 1 --batch 128 --data DIR
#
# Env: SPINDLE (binary, default target/release/spindle), BASE_PORT (default
# 7100: dealer on BASE_PORT, party i on BASE_PORT+1+i), WORKDIR (default a
# fresh temp dir; holds certs/, cluster.toml and one log per process),
# PARTY_ARGS (extra args for parties only, e.g. "--link wan --check"),
# DEALER_ARGS (extra args for the dealer only, e.g. "--online"), SHOW
# (lines of each log to print at the end, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:?usage: $0 N [extra args]}
shift
SPINDLE=${SPINDLE:-target/release/spindle}
BASE_PORT=${BASE_PORT:-7100}
WORKDIR=${WORKDIR:-$(mktemp -d -t spindle-local.XXXXXX)}
if [ ! -x "$SPINDLE" ]; then
  echo "building $SPINDLE" >&2
  cargo build --release --bin spindle >&2
fi
mkdir -p "$WORKDIR/certs"

cfg="$WORKDIR/cluster.toml"
{
  echo "session = \"local-$$-$(date +%s)\""
  echo
  echo "[dealer]"
  echo "host = \"127.0.0.1\""
  echo "port = $BASE_PORT"
  echo "cert = \"certs/dealer.pem\""
} >"$cfg"
"$SPINDLE" keygen --name dealer --out "$WORKDIR/certs" --host 127.0.0.1 --force >/dev/null
for ((i = 0; i < N; i++)); do
  "$SPINDLE" keygen --name "party$i" --out "$WORKDIR/certs" --host 127.0.0.1 --force >/dev/null
  {
    echo
    echo "[[party]]"
    echo "id = $i"
    echo "host = \"127.0.0.1\""
    echo "port = $((BASE_PORT + 1 + i))"
    echo "cert = \"certs/party$i.pem\""
  } >>"$cfg"
done

pids=()
names=()
# shellcheck disable=SC2086
"$SPINDLE" dealer --config "$cfg" --key "$WORKDIR/certs/dealer.key" "$@" ${DEALER_ARGS:-} \
  >"$WORKDIR/dealer.log" 2>&1 &
pids+=($!)
names+=(dealer)
for ((i = 0; i < N; i++)); do
  # shellcheck disable=SC2086
  "$SPINDLE" party --config "$cfg" --party "$i" --key "$WORKDIR/certs/party$i.key" \
    --output "$WORKDIR/party$i.json" "$@" ${PARTY_ARGS:-} >"$WORKDIR/party$i.log" 2>&1 &
  pids+=($!)
  names+=("party$i")
done

status=0
for k in "${!pids[@]}"; do
  if wait "${pids[$k]}"; then
    tail -n "${SHOW:-1}" "$WORKDIR/${names[$k]}.log"
  else
    status=1
    echo "${names[$k]} FAILED:" >&2
    tail -n 5 "$WORKDIR/${names[$k]}.log" >&2
  fi
done
echo "logs, certificates and results in $WORKDIR" >&2
exit $status
