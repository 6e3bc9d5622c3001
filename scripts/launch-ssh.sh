#!/usr/bin/env bash
# Starts the dealer and every party of a cluster file on their hosts over ssh,
# runs one job, and exits non-zero if any member failed.
#
#   scripts/launch-ssh.sh hosts.toml [job args for every member, e.g. --m 512 --k 512 --n 512]
#
# hosts.toml is a cluster file (docs/transport.md). For each member NAME
# (dealer, party0, party1, ...) the private key is expected next to its
# certificate as NAME.key (what `spindle keygen --name NAME` writes). The
# script copies the binary, the cluster file, all certificates and the
# member's own key (only its own) to REMOTE_DIR on the member's host, then
# starts it there. Generate missing keys first with
#   spindle keygen --name NAME --out DIR
#
# Env: SPINDLE (local binary, default target/release/spindle), REMOTE_DIR
# (default /tmp/spindle-run), SSH / SCP (default ssh / scp; add options such
# as -i or -o via SSH_OPTS), PARTY_ARGS (extra args for parties only).
#
# Status: exercised with a fake ssh on one machine, not yet on real hosts.
set -euo pipefail
cd "$(dirname "$0")/.."

CFG=${1:?usage: $0 hosts.toml [job args]}
shift
SPINDLE=${SPINDLE:-target/release/spindle}
REMOTE_DIR=${REMOTE_DIR:-/tmp/spindle-run}
SSH=${SSH:-ssh}
SCP=${SCP:-scp}
SSH_OPTS=${SSH_OPTS:-}
LOGDIR=${LOGDIR:-$(mktemp -d -t spindle-ssh.XXXXXX)}
[ -x "$SPINDLE" ] || cargo build --release --bin spindle >&2

members=$("$SPINDLE" hosts --config "$CFG")
quoted_args=$(printf ' %q' "$@")

certs=$(echo "$members" | awk '$4 != "-" {print $4}')
# Remote layout: REMOTE_DIR/{spindle, cluster.toml, certs/*.pem, certs/NAME.key};
# the cluster file is rewritten so that certificates point into certs/.
remote_cfg=$(mktemp)
sed -E 's#^([[:space:]]*cert[[:space:]]*=[[:space:]]*")[^"]*/([^"/]+)"#\1certs/\2"#' "$CFG" >"$remote_cfg"

# Copy everything first (members sharing a host share REMOTE_DIR), then start.
while read -r name host _port cert; do
  [ -n "$name" ] || continue
  if [ "$cert" = "-" ]; then
    echo "$name has no certificate in $CFG (plaintext is not supported by this launcher)" >&2
    exit 1
  fi
  key="$(dirname "$cert")/$name.key"
  [ -f "$key" ] || { echo "missing key $key for $name" >&2; exit 1; }
  # shellcheck disable=SC2086
  $SSH $SSH_OPTS "$host" "mkdir -p $REMOTE_DIR/certs"
  # shellcheck disable=SC2086
  $SCP $SSH_OPTS -q "$SPINDLE" "$host:$REMOTE_DIR/spindle"
  # shellcheck disable=SC2086
  $SCP $SSH_OPTS -q "$remote_cfg" "$host:$REMOTE_DIR/cluster.toml"
  # shellcheck disable=SC2086
  $SCP $SSH_OPTS -q $certs "$key" "$host:$REMOTE_DIR/certs/"
done <<<"$members"
rm -f "$remote_cfg"

pids=()
names=()
while read -r name host _port _cert; do
  [ -n "$name" ] || continue
  if [ "$name" = dealer ]; then
    cmd="cd $REMOTE_DIR && ./spindle dealer --config cluster.toml --key certs/dealer.key$quoted_args"
  else
    id=${name#party}
    cmd="cd $REMOTE_DIR && ./spindle party --config cluster.toml --party $id --key certs/$name.key$quoted_args ${PARTY_ARGS:-}"
  fi
  # shellcheck disable=SC2086
  $SSH $SSH_OPTS "$host" "$cmd" >"$LOGDIR/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
done <<<"$members"

status=0
for k in "${!pids[@]}"; do
  if wait "${pids[$k]}"; then
    tail -n 1 "$LOGDIR/${names[$k]}.log"
  else
    status=1
    echo "${names[$k]} FAILED:" >&2
    tail -n 5 "$LOGDIR/${names[$k]}.log" >&2
  fi
done
echo "logs in $LOGDIR" >&2
exit $status
