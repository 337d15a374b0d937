#!/usr/bin/env bash
# docker-engine.sh — a private Docker engine for the swiftfs Docker tests.
#
# Runs Debian's dockerd with everything it owns under one directory (data root, exec root, its socket,
# pid file, log), no networking set-up on the host (--iptables=false --bridge=none: containers run with
# --network none), and imports an offline test image made from busybox-static (no registry needed). It
# does not touch /var/lib/docker, /var/run/docker.sock or any other engine on the machine. (Legacy volume
# plugins are still discovered in the machine-wide /run/docker/plugins: tests use unique socket names.)
#
# Usage:
#   docker-engine.sh install             apt-get install docker.io busybox-static when missing (root)
#   docker-engine.sh start DIR           start the engine of DIR (or finish starting it); imports the image
#   docker-engine.sh stop DIR            stop it (SIGTERM, then SIGKILL after 20 s), by pid file only
#   docker-engine.sh status DIR          exit 0 when it runs and answers, else 3
#   docker-engine.sh env DIR             print `export DOCKER_HOST=...` for the docker CLI
#
# The test image is `swiftfs-test-busybox:latest` (busybox applets in /bin, entrypoint none).
# Environment: DOCKER_ENGINE_TIMEOUT (seconds to wait for the engine, default 60).

set -euo pipefail

readonly READY_TIMEOUT="${DOCKER_ENGINE_TIMEOUT:-60}"
readonly TEST_IMAGE=swiftfs-test-busybox:latest

die() { echo "docker-engine: $*" >&2; exit 1; }
say() { echo "docker-engine: $*" >&2; }

usage() {
  sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

docker_cli() {
  # Debian's CLI matches the engine; any other docker on PATH is used only if it is missing.
  if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker || die "no docker CLI"; fi
}

cmd_install() {
  local need=()
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  [ -x /bin/busybox ] && file_is_static /bin/busybox || need+=(busybox-static)
  [ ${#need[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${need[*]}; install them as root: apt-get install -y ${need[*]}"
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; } ||
    die "apt-get install ${need[*]} failed"
}

file_is_static() {
  # busybox (the dynamic Debian package) also exists; the test image needs the static one.
  dpkg -S "$1" 2>/dev/null | grep -q '^busybox-static:'
}

pid_of() { # DIR -> pid of dockerd if running
  local f="$1/docker.pid"
  [ -s "$f" ] || return 1
  local pid
  pid=$(cat "$f")
  [ -d "/proc/$pid" ] || return 1
  grep -q dockerd "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

answers() { # DIR
  DOCKER_HOST="unix://$1/docker.sock" timeout 10 "$(docker_cli)" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

import_image() { # DIR
  local docker
  docker=$(docker_cli)
  export DOCKER_HOST="unix://$1/docker.sock"
  if "$docker" image inspect "$TEST_IMAGE" >/dev/null 2>&1; then return 0; fi
  local root="$1/image-rootfs"
  rm -rf "$root"
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/data" "$root/proc" "$root/sys" "$root/dev"
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  tar -C "$root" -c . | "$docker" import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$TEST_IMAGE" >/dev/null
  rm -rf "$root"
  say "imported $TEST_IMAGE"
}

cmd_start() {
  local dir="$1"
  cmd_install
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ ${#dir} -le 60 ] || die "DIR must be a short path (unix socket paths are limited): $dir"
  if pid_of "$dir" >/dev/null; then
    say "already running (pid $(pid_of "$dir"))"
  else
    mkdir -p "$dir/data" "$dir/exec"
    rm -f "$dir/docker.sock"
    # setsid: its own session, so that a test runner's signals to its group do not reach it.
    setsid dockerd \
      --data-root "$dir/data" \
      --exec-root "$dir/exec" \
      --pidfile "$dir/docker.pid" \
      -H "unix://$dir/docker.sock" \
      --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
      --storage-driver overlay2 \
      --log-level warn \
      >>"$dir/dockerd.log" 2>&1 </dev/null &
    local waited=0
    until answers "$dir"; do
      sleep 0.5
      waited=$((waited + 1))
      if [ $waited -ge $((READY_TIMEOUT * 2)) ]; then
        tail -n 30 "$dir/dockerd.log" >&2 || true
        die "engine did not answer within ${READY_TIMEOUT}s (log: $dir/dockerd.log)"
      fi
    done
    say "engine up (pid $(pid_of "$dir"), socket $dir/docker.sock)"
  fi
  import_image "$dir"
}

cmd_stop() {
  local dir="$1"
  local pid
  if ! pid=$(pid_of "$dir"); then
    say "not running"
    return 0
  fi
  kill -TERM "$pid"
  local waited=0
  while [ -d "/proc/$pid" ]; do
    sleep 0.5
    waited=$((waited + 1))
    if [ $waited -ge 40 ]; then
      say "engine did not stop in 20 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
  done
  # containerd (started by dockerd) exits with it; its shims exit with their containers.
  say "stopped"
}

cmd_status() {
  local dir="$1"
  if pid_of "$dir" >/dev/null && answers "$dir"; then
    echo "running (pid $(pid_of "$dir"))"
    return 0
  fi
  echo "not running"
  return 3
}

main() {
  [ $# -ge 1 ] || usage
  local cmd="$1"
  shift
  case "$cmd" in
    install) cmd_install ;;
    start) [ $# -eq 1 ] || usage; cmd_start "$1" ;;
    stop) [ $# -eq 1 ] || usage; cmd_stop "$1" ;;
    status) [ $# -eq 1 ] || usage; cmd_status "$1" ;;
    env) [ $# -eq 1 ] || usage; echo "export DOCKER_HOST=unix://$(cd "$1" && pwd)/docker.sock" ;;
    *) usage ;;
  esac
}

main "$@"
