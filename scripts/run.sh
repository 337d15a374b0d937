#!/usr/bin/env bash
# run.sh — the main job: prepares the machine (scripts/setup-debian.sh), makes sure there is an
# object store, then runs the swiftfs CLI (by default `plugin`, the Docker volume plugin).
#
# When the environment names no store (none of ST_AUTH, OS_AUTH_URL, AWS_ACCESS_KEY_ID,
# SWIFTFS_CONFIG), it starts the embedded local Swift (scripts/swift-saio.sh) with its data in
# /var/lib/swiftfs/local-swift (proxy on port 8080 unless taken) and exports ST_AUTH/ST_USER/ST_KEY.
# That Swift keeps running after swiftfs exits; stop it with
#   bash scripts/swift-saio.sh stop /var/lib/swiftfs/local-swift
#
#   sudo bash scripts/run.sh                  # Docker volume plugin
#   sudo bash scripts/run.sh --help           # any other swiftfs command line
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly LOCAL_SWIFT_DIR=${SWIFTFS_LOCAL_SWIFT_DIR:-/var/lib/swiftfs/local-swift}
say() { echo "run: $*"; }

say "preparing the machine (scripts/setup-debian.sh)"
bash scripts/setup-debian.sh

port_range_free() { # BASE -> 0 when BASE..BASE+4 all refuse connections on 127.0.0.1
  local p
  for ((p = $1; p <= $1 + 4; p++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then return 1; fi
  done
  return 0
}

if [[ -n ${ST_AUTH:-} || -n ${OS_AUTH_URL:-} || -n ${AWS_ACCESS_KEY_ID:-} || -n ${SWIFTFS_CONFIG:-} ]]; then
  say "using the object store configured in the environment" \
    "($(for v in ST_AUTH OS_AUTH_URL AWS_ACCESS_KEY_ID SWIFTFS_CONFIG; do [[ -n ${!v:-} ]] && printf '%s ' "$v"; done)set)"
else
  say "no object store configured (ST_AUTH, OS_AUTH_URL, AWS_ACCESS_KEY_ID or SWIFTFS_CONFIG):"
  say "using the embedded local Swift in $LOCAL_SWIFT_DIR (single node, data stays on this machine)"
  port_args=()
  if bash scripts/swift-saio.sh status "$LOCAL_SWIFT_DIR" >/dev/null 2>&1; then
    say "local Swift already running"
  elif [[ -s $LOCAL_SWIFT_DIR/port ]] && port_range_free "$(cat "$LOCAL_SWIFT_DIR/port")"; then
    : # restart on the port it had before
  else
    port=""
    for base in 8080 8180 8280 8380 8480 9080 9180; do
      if port_range_free "$base"; then port=$base; break; fi
    done
    [[ -n $port ]] || { echo "run: ERROR: no free port range for the local Swift (tried 8080..9180)" >&2; exit 1; }
    [[ $port == 8080 ]] || say "port 8080 is taken: the local Swift uses port $port"
    port_args=(--port "$port")
  fi
  bash scripts/swift-saio.sh start "$LOCAL_SWIFT_DIR" "${port_args[@]}"
  eval "$(bash scripts/swift-saio.sh env "$LOCAL_SWIFT_DIR" | sed -n \
    -e "s/^export SWIFTFS_TEST_ST_AUTH=/export ST_AUTH=/p" \
    -e "s/^export SWIFTFS_TEST_ST_USER=/export ST_USER=/p" \
    -e "s/^export SWIFTFS_TEST_ST_KEY=/export ST_KEY=/p")"
  say "ST_AUTH=$ST_AUTH ST_USER=$ST_USER (key in ST_KEY); stop it later with:" \
    "bash scripts/swift-saio.sh stop $LOCAL_SWIFT_DIR"
fi

readonly CLI=dist/src/cli/main.js
[[ -f $CLI ]] || { echo "run: ERROR: $CLI was not built (npm run build)" >&2; exit 1; }
if (($# == 0)); then
  set -- plugin
fi
say "exec node $CLI $*"
exec node "$CLI" "$@"
