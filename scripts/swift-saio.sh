#!/usr/bin/env bash
# swift-saio.sh — a single-node OpenStack Swift ("Swift all in one") for tests and local use.
#
# Runs Debian's Swift 2.30.1 packages on 127.0.0.1 with TempAuth and the s3api middleware, so one
# server speaks both the Swift API (auth v1.0) and the S3 API. Everything it owns (confs, rings,
# data, logs, pid files, its own memcached) lives in the directory it is given, so several
# instances can run side by side as independent "regions".
#
# Usage:
#   swift-saio.sh start DIR [--port P]  start (or finish starting) the instance in DIR; proxy on P
#                                       (default 18080, or the port DIR was last started with),
#                                       object/container/account servers on P+1..P+3, memcached on P+4
#   swift-saio.sh stop DIR              stop every process of the instance (by pid file, never by name)
#   swift-saio.sh status DIR            show each process; exit 0 when all run and answer, else 3
#   swift-saio.sh stop-proxy DIR        stop only the proxy (simulates an outage: connection refused)
#   swift-saio.sh start-proxy DIR       start the proxy again and wait until it answers
#   swift-saio.sh env DIR [SUFFIX]      print `export SWIFTFS_TEST_*=...` lines (suffix e.g. B -> _B)
#   swift-saio.sh sync-on DIR REALMS    opt-in: Swift container sync between instances. Copies REALMS (a
#                                       container-sync-realms.conf naming this and the peer instances'
#                                       proxies) into DIR, adds the container_sync middleware to the proxy
#                                       (restarted) and runs the swift-container-sync daemon (every 2 s);
#                                       `start` keeps it on afterwards. Nothing changes without it.
#
# Accounts (TempAuth; S3 access key = account:user, secret = key):
#   test:tester / testing    (.admin of account AUTH_test)     — the one tests use
#   test:tester3 / testing3  (plain user of AUTH_test, no rights unless granted by ACL)
#   admin:admin / admin      (.admin .reseller_admin)
#
# Environment: SWIFT_SAIO_TIMEOUT (seconds to wait for readiness, default 90).

set -euo pipefail

readonly DEFAULT_PORT=18080
readonly READY_TIMEOUT="${SWIFT_SAIO_TIMEOUT:-90}"
readonly COMPONENTS=(memcached object container account proxy)
readonly SWIFT_CONF=/etc/swift/swift.conf

die() { echo "swift-saio: $*" >&2; exit 1; }
say() { echo "swift-saio: $*"; }

usage() {
  sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------------------------------------
# Layout of DIR
#   DIR/port                  proxy port the confs were written for
#   DIR/{account,container,object}.{builder,ring.gz}   rings (swift_dir = DIR)
#   DIR/etc/*.conf            server confs
#   DIR/node/d1               the one "disk"
#   DIR/run/NAME.pid          pid (= process group id) of each running component
#   DIR/log/NAME.log          console log of each component
# ---------------------------------------------------------------------------------------------

component_port() { # NAME BASEPORT
  local base=$2
  case $1 in
    proxy) echo "$base" ;;
    object) echo $((base + 1)) ;;
    container) echo $((base + 2)) ;;
    account) echo $((base + 3)) ;;
    memcached) echo $((base + 4)) ;;
    *) die "unknown component $1" ;;
  esac
}

pid_file() { echo "$DIR/run/$1.pid"; }
log_file() { echo "$DIR/log/$1.log"; }

# Prints the pid of a component if its pid file names a live process, else nothing (status 1).
running_pid() {
  local f pid
  f=$(pid_file "$1")
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

port_open() { # PORT -> 0 when something accepts connections on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

healthy() { # NAME
  local port
  port=$(component_port "$1" "$PORT")
  if [[ $1 == memcached ]]; then
    port_open "$port"
  else
    [[ $(curl -s --max-time 3 "http://127.0.0.1:$port/healthcheck" 2>/dev/null) == OK ]]
  fi
}

# The proxy is only really usable when TempAuth (memcached) and the account server answer through it.
proxy_usable() {
  local headers token url code
  headers=$(curl -s --max-time 5 -D - -o /dev/null \
    -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' \
    "http://127.0.0.1:$PORT/auth/v1.0" 2>/dev/null) || return 1
  token=$(printf '%s\n' "$headers" | tr -d '\r' | sed -n 's/^[Xx]-[Aa]uth-[Tt]oken: //p' | head -n1)
  url=$(printf '%s\n' "$headers" | tr -d '\r' | sed -n 's/^[Xx]-[Ss]torage-[Uu]rl: //p' | head -n1)
  [[ -n $token && -n $url ]] || return 1
  code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -I -H "X-Auth-Token: $token" "$url" 2>/dev/null) || return 1
  [[ $code == 204 || $code == 200 ]]
}

read_recorded_port() {
  [[ -s $DIR/port ]] && cat "$DIR/port"
}

resolve_port() { # sets PORT from --port, else DIR/port, else default
  local recorded
  recorded=$(read_recorded_port || true)
  if [[ -n ${REQUESTED_PORT:-} ]]; then
    PORT=$REQUESTED_PORT
  elif [[ -n $recorded ]]; then
    PORT=$recorded
  else
    PORT=$DEFAULT_PORT
  fi
  [[ $PORT =~ ^[0-9]+$ ]] && ((PORT >= 1024 && PORT <= 65530)) || die "bad port '$PORT'"
}

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------

# /etc/swift/swift.conf is read by every server whatever swift_dir says (hash prefix/suffix and
# storage policies). Write it when missing; leave an existing one alone when it has what we need.
ensure_swift_conf() {
  if [[ -f $SWIFT_CONF ]]; then
    if grep -Eq '^[[:space:]]*swift_hash_path_(prefix|suffix)[[:space:]]*=' "$SWIFT_CONF"; then
      return 0
    fi
    local backup
    backup="$SWIFT_CONF.bak.$(date +%Y%m%d%H%M%S)"
    cp -p "$SWIFT_CONF" "$backup"
    say "$SWIFT_CONF has no swift_hash_path_prefix/suffix; saved it as $backup and writing a new one"
  fi
  mkdir -p "$(dirname "$SWIFT_CONF")"
  cat >"$SWIFT_CONF" <<'EOF'
# Written by swiftfs scripts/swift-saio.sh (a single-node test Swift).
[swift-hash]
swift_hash_path_prefix = changeme
swift_hash_path_suffix = changeme

[storage-policy:0]
name = Policy-0
default = yes
EOF
}

write_backend_conf() { # NAME PORT
  local name=$1 port=$2
  cat >"$DIR/etc/$name-server.conf" <<EOF
# Written by swift-saio.sh for the instance in $DIR
[DEFAULT]
swift_dir = $DIR
devices = $DIR/node
mount_check = false
bind_ip = 127.0.0.1
bind_port = $port
# one process per server (no forked worker): stop kills exactly the recorded pid
workers = 0
user = root
# test disks: no 1% free-space reserve, no preallocation (avoids spurious 507s)
disable_fallocate = true
fallocate_reserve = 0
log_name = $name-server
log_level = INFO

[pipeline:main]
pipeline = healthcheck $name-server

[filter:healthcheck]
use = egg:swift#healthcheck

[app:$name-server]
use = egg:swift#$name
EOF
}

write_proxy_conf() {
  local memcached_port
  memcached_port=$(component_port memcached "$PORT")
  cat >"$DIR/etc/proxy-server.conf" <<EOF
# Written by swift-saio.sh for the instance in $DIR
[DEFAULT]
swift_dir = $DIR
bind_ip = 127.0.0.1
bind_port = $PORT
# one process per server (no forked worker): stop kills exactly the recorded pid
workers = 0
user = root
log_name = proxy-server
log_level = INFO

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
# One node: after a 507/503 from it the proxy would refuse it for 60 s; keep that to 1 s in tests.
error_suppression_interval = 1
node_timeout = 10
conn_timeout = 2

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$memcached_port

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_admin_admin = admin .admin .reseller_admin
user_test_tester = testing .admin
user_test_tester3 = testing3

[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true
allow_object_versioning = true

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:symlink]
use = egg:swift#symlink
EOF
}

# Builds the three one-device rings (2^8 partitions, 1 replica) in one Python process (the same as
# `swift-ring-builder X create 8 1 1; add r1z1-127.0.0.1:PORT/d1 100; rebalance`, 1 s instead of 9 s).
build_rings() {
  rm -f "$DIR"/{account,container,object}.{builder,ring.gz}
  rm -rf "$DIR/backups"
  # /usr/bin/python3: the interpreter Debian's swift package is installed for (not a pyenv shim)
  /usr/bin/python3 - "$DIR" "$(component_port account "$PORT")" "$(component_port container "$PORT")" \
    "$(component_port object "$PORT")" <<'PYEOF' || die "could not build the rings in $DIR"
import os, sys
from swift.common.ring import RingBuilder
swift_dir = sys.argv[1]
for name, port in zip(('account', 'container', 'object'), map(int, sys.argv[2:5])):
    builder = RingBuilder(8, 1, 1)
    builder.add_dev({'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port,
                     'replication_ip': '127.0.0.1', 'replication_port': port,
                     'device': 'd1', 'weight': 100.0, 'meta': ''})
    builder.rebalance()
    builder.get_ring().save(os.path.join(swift_dir, name + '.ring.gz'))
    builder.save(os.path.join(swift_dir, name + '.builder'))
PYEOF
  local r
  for r in account container object; do
    [[ -s $DIR/$r.ring.gz ]] || die "could not build the $r ring in $DIR"
  done
}

# Writes confs and rings when DIR is new or the port changed (data in node/d1 is kept: with one
# device every partition lives on d1 whatever the ports are).
prepare_dir() {
  mkdir -p "$DIR"/{etc,node/d1,run,log}
  local recorded
  recorded=$(read_recorded_port || true)
  if [[ $recorded != "$PORT" || ! -s $DIR/object.ring.gz || ! -s $DIR/etc/proxy-server.conf ]]; then
    if [[ -n $recorded && $recorded != "$PORT" ]]; then
      say "port changes from $recorded to $PORT: rewriting confs and rings in $DIR"
    fi
    local r
    for r in object container account; do
      write_backend_conf "$r" "$(component_port "$r" "$PORT")"
    done
    write_proxy_conf
    if sync_enabled; then write_sync_confs; fi
    build_rings
    echo "$PORT" >"$DIR/port"
  fi
}

# Container sync (opt-in, see sync-on): DIR/sync-realms marks it on.
sync_enabled() { [[ -f $DIR/sync-realms ]]; }

write_sync_confs() {
  local memcached_port
  memcached_port=$(component_port memcached "$PORT")
  # The proxy: container_sync before authentication (it authorises the peer's signed sync requests).
  if ! grep -q '^pipeline = .* container_sync ' "$DIR/etc/proxy-server.conf"; then
    sed -i 's/^pipeline = catch_errors gatekeeper healthcheck proxy-logging cache /&container_sync /' "$DIR/etc/proxy-server.conf"
    printf '\n[filter:container_sync]\nuse = egg:swift#container_sync\n' >>"$DIR/etc/proxy-server.conf"
  fi
  grep -q '^pipeline = .* container_sync ' "$DIR/etc/proxy-server.conf" || die "could not add container_sync to the proxy pipeline"
  # The daemon's internal client reads this instance's rings (its built-in conf would read /etc/swift).
  cat >"$DIR/etc/internal-client.conf" <<EOF
# Written by swift-saio.sh for the instance in $DIR
[DEFAULT]
swift_dir = $DIR
[pipeline:main]
pipeline = catch_errors proxy-logging cache symlink proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:symlink]
use = egg:swift#symlink
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$memcached_port
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:catch_errors]
use = egg:swift#catch_errors
EOF
  cat >"$DIR/etc/container-sync.conf" <<EOF
# Written by swift-saio.sh for the instance in $DIR
[DEFAULT]
swift_dir = $DIR
devices = $DIR/node
mount_check = false
bind_ip = 127.0.0.1
bind_port = $(component_port container "$PORT")
user = root
log_name = container-sync
log_level = INFO

[container-sync]
interval = 2
container_time = 30
internal_client_conf_path = $DIR/etc/internal-client.conf
EOF
}

launch_sync() {
  running_pid container-sync >/dev/null && return 0
  echo "=== $(date -Is) starting container-sync" >>"$(log_file container-sync)"
  setsid swift-container-sync "$DIR/etc/container-sync.conf" -v </dev/null >>"$(log_file container-sync)" 2>&1 9>&- &
  echo $! >"$(pid_file container-sync)"
  sleep 1
  running_pid container-sync >/dev/null || { tail -n 20 "$(log_file container-sync)" >&2; die "swift-container-sync exited at once"; }
}

cmd_sync_on() { # REALMS_FILE
  local realms=$1
  [[ -s $realms ]] || die "sync-on: realms file '$realms' is missing or empty"
  [[ -s $DIR/etc/proxy-server.conf ]] || die "no instance in $DIR (run start first)"
  with_lock
  resolve_port
  cp "$realms" "$DIR/container-sync-realms.conf"
  write_sync_confs
  touch "$DIR/sync-realms"
  terminate proxy
  launch proxy
  wait_ready proxy || die "the proxy did not come back with container_sync"
  terminate container-sync
  launch_sync
  say "container sync on in $DIR (realms: $DIR/container-sync-realms.conf)"
}

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

# Starts a component in its own session (process group id = its pid) so that stop can kill it and
# any worker it forks as a group, without ever matching processes by name.
launch() { # NAME
  local name=$1 port log
  port=$(component_port "$name" "$PORT")
  log=$(log_file "$name")
  if port_open "$port"; then
    die "port $port (for $name) is already in use by another process; pick another --port"
  fi
  {
    echo "=== $(date -Is) starting $name on 127.0.0.1:$port"
  } >>"$log"
  case $name in
    memcached)
      setsid memcached -u root -l 127.0.0.1 -p "$port" -U 0 -m 64 -c 1024 </dev/null >>"$log" 2>&1 9>&- &
      ;;
    *)
      setsid "swift-$name-server" "$DIR/etc/$name-server.conf" -v </dev/null >>"$log" 2>&1 9>&- &
      ;;
  esac
  echo $! >"$(pid_file "$name")"
}

# Kills a component's process group, waits for it to go, escalates to SIGKILL after 10 s.
terminate() { # NAME
  local name=$1 pid i
  pid=$(running_pid "$name") || { rm -f "$(pid_file "$name")"; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 -- "-$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$(pid_file "$name")"
  [[ $name == container-sync ]] && return 0 # listens on no port
  # wait for the listening socket to be released so a restart can bind it
  local port
  port=$(component_port "$name" "$PORT")
  for ((i = 0; i < 50; i++)); do
    port_open "$port" || break
    sleep 0.1
  done
}

show_failure() { # NAMES...
  local name
  echo "swift-saio: the instance in $DIR did not become ready within ${READY_TIMEOUT}s" >&2
  for name in "$@"; do
    echo "---- $name ($(log_file "$name")), last 25 lines:" >&2
    tail -n 25 "$(log_file "$name")" >&2 2>/dev/null || echo "(no log)" >&2
  done
}

# Waits until every named component runs and answers; on timeout prints logs and fails.
wait_ready() { # NAMES...
  local deadline=$((SECONDS + READY_TIMEOUT)) name pending
  while :; do
    pending=()
    for name in "$@"; do
      if ! running_pid "$name" >/dev/null; then
        echo "swift-saio: $name is not running (it exited; see its log)" >&2
        show_failure "$name"
        return 1
      fi
      healthy "$name" || pending+=("$name")
    done
    if ((${#pending[@]} == 0)); then
      local want_proxy=0
      for name in "$@"; do [[ $name == proxy ]] && want_proxy=1; done
      if ((want_proxy == 0)) || proxy_usable; then
        return 0
      fi
      pending=(proxy)
    fi
    if ((SECONDS >= deadline)); then
      show_failure "${pending[@]}"
      return 1
    fi
    sleep 0.5
  done
}

with_lock() {
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock -w 120 9 || die "timed out waiting for the lock on $DIR"
}

cmd_start() {
  with_lock
  resolve_port
  local recorded
  recorded=$(read_recorded_port || true)
  if [[ -n $recorded && $recorded != "$PORT" ]]; then
    local c
    for c in "${COMPONENTS[@]}"; do
      if running_pid "$c" >/dev/null; then
        die "the instance in $DIR is running on port $recorded; stop it before starting it on $PORT"
      fi
    done
  fi
  # every port we are about to bind must be free (checked before anything is written or started)
  local c started=() t0=$SECONDS busy=()
  for c in "${COMPONENTS[@]}"; do
    if ! running_pid "$c" >/dev/null && port_open "$(component_port "$c" "$PORT")"; then
      busy+=("$(component_port "$c" "$PORT") ($c)")
    fi
  done
  ((${#busy[@]} == 0)) || die "port(s) ${busy[*]} already in use by other processes; choose another --port"
  ensure_swift_conf
  prepare_dir
  for c in "${COMPONENTS[@]}"; do
    if ! running_pid "$c" >/dev/null; then
      launch "$c"
      started+=("$c")
    fi
  done
  if ((${#started[@]} == 0)); then
    if wait_ready "${COMPONENTS[@]}"; then
      say "already running in $DIR (proxy http://127.0.0.1:$PORT)"
      return 0
    fi
    return 1
  fi
  say "starting ${started[*]} in $DIR (proxy port $PORT) ..."
  if ! wait_ready "${COMPONENTS[@]}"; then
    # leave nothing half-started behind: stop what this call started (logs stay in DIR/log)
    for c in "${started[@]}"; do terminate "$c"; done
    say "stopped ${started[*]} again; logs are in $DIR/log"
    return 1
  fi
  if sync_enabled; then launch_sync; fi
  say "ready after $((SECONDS - t0))s: Swift http://127.0.0.1:$PORT/auth/v1.0 (test:tester/testing), S3 http://127.0.0.1:$PORT"
}

cmd_stop() {
  [[ -d $DIR ]] || { say "nothing in $DIR"; return 0; }
  with_lock
  resolve_port
  local c i
  terminate container-sync # (opt-in; nothing to do without it)
  # proxy first, memcached last
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c=${COMPONENTS[i]}
    terminate "$c"
  done
  say "stopped the instance in $DIR"
}

cmd_stop_proxy() {
  [[ -d $DIR ]] || die "no instance in $DIR"
  with_lock
  resolve_port
  terminate proxy
  if port_open "$PORT"; then
    die "port $PORT still accepts connections after stopping the proxy"
  fi
  say "proxy stopped (port $PORT refuses connections)"
}

cmd_start_proxy() {
  [[ -s $DIR/etc/proxy-server.conf ]] || die "no instance in $DIR (run start first)"
  with_lock
  resolve_port
  local c
  for c in memcached object container account; do
    running_pid "$c" >/dev/null || die "$c of the instance in $DIR is not running; use start"
  done
  if running_pid proxy >/dev/null && healthy proxy; then
    say "proxy already running on port $PORT"
    return 0
  fi
  terminate proxy
  local t0=$SECONDS
  launch proxy
  wait_ready proxy
  say "proxy ready on port $PORT after $((SECONDS - t0))s"
}

cmd_status() {
  [[ -d $DIR ]] || { say "no instance in $DIR"; return 3; }
  resolve_port
  local c pid ok=0 state
  for c in "${COMPONENTS[@]}"; do
    if pid=$(running_pid "$c"); then
      if healthy "$c"; then state="running (pid $pid), answering"; else state="running (pid $pid), NOT answering"; ok=1; fi
    else
      state="stopped"
      ok=1
    fi
    printf '%-10s port %-5s %s\n' "$c" "$(component_port "$c" "$PORT")" "$state"
  done
  return $((ok == 0 ? 0 : 3))
}

cmd_env() {
  local suffix=${1:-}
  [[ -n $suffix ]] && suffix="_$suffix"
  resolve_port
  local base="http://127.0.0.1:$PORT" abs_dir
  abs_dir=$(cd "$DIR" 2>/dev/null && pwd || echo "$DIR")
  printf "export SWIFTFS_TEST_ST_AUTH%s='%s'\n" "$suffix" "$base/auth/v1.0"
  printf "export SWIFTFS_TEST_ST_USER%s='%s'\n" "$suffix" "test:tester"
  printf "export SWIFTFS_TEST_ST_KEY%s='%s'\n" "$suffix" "testing"
  printf "export SWIFTFS_TEST_S3_ENDPOINT%s='%s'\n" "$suffix" "$base"
  printf "export SWIFTFS_TEST_SAIO_DIR%s='%s'\n" "$suffix" "$abs_dir"
}

# ---------------------------------------------------------------------------------------------

main() {
  (($# >= 2)) || usage
  local cmd=$1
  DIR=$2
  shift 2
  [[ -n $DIR ]] || usage
  [[ $cmd == start ]] && mkdir -p "$DIR"
  if [[ -d $DIR ]]; then DIR=$(cd "$DIR" && pwd); fi
  REQUESTED_PORT=""
  local env_suffix=""
  while (($#)); do
    case $1 in
      --port) (($# >= 2)) || usage; REQUESTED_PORT=$2; shift 2 ;;
      --port=*) REQUESTED_PORT=${1#--port=}; shift ;;
      *)
        if [[ ($cmd == env || $cmd == sync-on) && -z $env_suffix ]]; then env_suffix=$1; shift; else usage; fi
        ;;
    esac
  done
  case $cmd in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    stop-proxy) cmd_stop_proxy ;;
    start-proxy) cmd_start_proxy ;;
    env) cmd_env "$env_suffix" ;;
    sync-on) [[ -n $env_suffix ]] || usage; cmd_sync_on "$env_suffix" ;;
    *) usage ;;
  esac
}

main "$@"
