#!/usr/bin/env bash
# setup-debian.sh — prepares a Debian 12 machine (as root) to build, test and run swiftfs.
#
# 1. Debian packages: OpenStack Swift 2.30.1 + memcached (the local/test object store), FUSE
#    (libfuse2 for fuse-native, fuse3 for fusermount3), Docker (docker.io, busybox-static for offline
#    test images), and the tools the tests and benchmarks use (sqlite3, postgresql-15, fio, rclone,
#    s3fs, curl, git), and build-essential + python3 (npm ci builds fuse-native's patched C:
#    scripts/build-fuse-native.mjs). The apt step is skipped at once when all of them are installed.
# 2. npm ci (only when node_modules is missing or older than package-lock.json).
# 3. npm run build (skipped when SWIFTFS_SETUP_SKIP_BUILD=1, e.g. by scripts/test.sh whose `npm test`
#    builds anyway).
# Idempotent; safe to run again. apt's output goes to $SWIFTFS_SETUP_LOG (shown when apt fails).

set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
readonly PACKAGES=(
  swift swift-proxy swift-account swift-container swift-object python3-swiftclient memcached
  libfuse2 fuse3 curl git sqlite3 postgresql-15 fio rclone s3fs docker.io busybox-static
  build-essential python3 librsvg2-bin
  # not pulled in without recommends, but wanted: TLS roots, and docker on AppArmor kernels
  ca-certificates apparmor
)
readonly LOG=${SWIFTFS_SETUP_LOG:-/var/log/swiftfs-setup.log}
readonly NODE_MIN=20.18.1

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (sudo bash scripts/setup-debian.sh)"
if [[ -r /etc/os-release ]]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  [[ ${ID:-} == debian && ${VERSION_ID:-} == 12 ]] || say "warning: made for Debian 12, this is ${PRETTY_NAME:-unknown}"
fi

installed() { # PKG -> 0 when dpkg has it fully installed
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# ------------------------------------------------------------------------------------------------
# 1. Debian packages

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
  if ((${#missing[@]} == 0)); then
    say "Debian packages: all ${#PACKAGES[@]} installed"
    return 0
  fi
  say "Debian packages missing: ${missing[*]}"
  : >"$LOG"
  export DEBIAN_FRONTEND=noninteractive

  say "apt-get update ..."
  if ! apt-get update -q >>"$LOG" 2>&1; then
    tail -n 20 "$LOG" >&2
    die "apt-get update failed (full log: $LOG)"
  fi

  # every missing package must exist in the configured repositories
  local unavailable=() candidate
  for p in "${missing[@]}"; do
    candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
    [[ -n $candidate && $candidate != "(none)" ]] || unavailable+=("$p")
  done
  if ((${#unavailable[@]})); then
    die "not available from apt (check /etc/apt/sources.list for bookworm main): ${unavailable[*]}"
  fi

  # docker.io conflicts with Docker's own docker-ce packages: an installed docker-ce engine will do
  if [[ " ${missing[*]} " == *" docker.io "* ]]; then
    local other
    for other in docker-ce docker-ce-cli docker-ce-rootless-extras moby-engine podman-docker; do
      if installed "$other"; then
        say "note: docker.io conflicts with the installed '$other'; keeping '$other' and not installing docker.io"
        missing=("${missing[@]/docker.io/}")
        break
      fi
    done
  fi
  local wanted=()
  for p in "${missing[@]}"; do [[ -n $p ]] && wanted+=("$p"); done
  ((${#wanted[@]})) || return 0

  # dry run first: say what would conflict instead of letting apt remove things silently
  local simulation removals=()
  if ! simulation=$(apt-get install -s -q --no-install-recommends "${wanted[@]}" 2>&1); then
    echo "$simulation" | tail -n 20 >&2
    die "apt-get cannot install: ${wanted[*]} (see above)"
  fi
  mapfile -t removals < <(echo "$simulation" | awk '/^Remv / {print $2}')
  if ((${#removals[@]})); then
    local r bad=()
    for r in "${removals[@]}"; do
      # busybox-static replaces busybox (same programs, statically linked): that one is expected
      [[ $r == busybox ]] || bad+=("$r")
    done
    if ((${#bad[@]})); then
      die "installing ${wanted[*]} would REMOVE ${bad[*]} (conflict); resolve that by hand and run again"
    fi
    say "note: busybox-static replaces busybox"
  fi

  # No systemd (containers, CI): keep package scripts from starting system-wide memcached, postgres,
  # dockerd — swiftfs's scripts start their own instances — unless a policy is already in place.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -d /run/systemd/system && ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, from swiftfs setup-debian.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    added_policy=1
  fi
  say "apt-get install ${wanted[*]} (log: $LOG) ..."
  local rc=0
  apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${wanted[@]}" >>"$LOG" 2>&1 || rc=$?
  ((added_policy)) && rm -f "$policy"
  if ((rc != 0)); then
    tail -n 30 "$LOG" >&2
    die "apt-get install failed (full log: $LOG)"
  fi
  for p in "${wanted[@]}"; do installed "$p" || die "package $p is still not installed (see $LOG)"; done
  say "Debian packages installed"
}

# ------------------------------------------------------------------------------------------------
# 2. Node and npm dependencies

version_ge() { # A B -> A >= B (dotted versions)
  [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1) == "$2" ]]
}

check_node() {
  command -v node >/dev/null || die "node is not installed: swiftfs needs Node >= $NODE_MIN (Debian 12's nodejs is 18; use NodeSource's nodejs 20)"
  command -v npm >/dev/null || die "npm is not installed"
  local v
  v=$(node -p 'process.versions.node')
  version_ge "$v" "$NODE_MIN" || die "Node $v is too old: swiftfs needs Node >= $NODE_MIN"
  say "node $v, npm $(npm --version)"
}

install_node_modules() {
  cd "$REPO_ROOT"
  local hidden=node_modules/.package-lock.json
  if [[ -f $hidden && ! package-lock.json -nt $hidden && ! package.json -nt $hidden ]] &&
    [[ -d node_modules/typescript && -d node_modules/@aws-sdk/client-s3 ]]; then
    say "node_modules: up to date with package-lock.json"
    # npm ci's postinstall builds fuse-native's patched C; make sure that build is there (fast when it is)
    node scripts/build-fuse-native.mjs >/dev/null || die "building fuse-native's patched C failed (node scripts/build-fuse-native.mjs)"
    return 0
  fi
  say "npm ci ..."
  local out
  if ! out=$(npm ci --no-audit --no-fund --loglevel=error 2>&1); then
    echo "$out" | tail -n 30 >&2
    die "npm ci failed"
  fi
  say "node_modules installed"
}

build() {
  cd "$REPO_ROOT"
  if [[ ${SWIFTFS_SETUP_SKIP_BUILD:-0} == 1 ]]; then
    say "build: skipped here (SWIFTFS_SETUP_SKIP_BUILD=1)"
    return 0
  fi
  say "npm run build ..."
  local out
  if ! out=$(npm run build --silent 2>&1); then
    echo "$out" | tail -n 40 >&2
    die "the TypeScript build failed (npm run build)"
  fi
  say "built into dist/"
}

check_fuse() {
  [[ -c /dev/fuse ]] || say "warning: /dev/fuse is missing: FUSE mounts (and the fuse/docker tests) will not work here"
}

# ------------------------------------------------------------------------------------------------

t0=$SECONDS
lock_file=/run/lock/swiftfs-setup.lock
[[ -d /run/lock && -w /run/lock ]] || lock_file=/tmp/swiftfs-setup.lock
exec 8>"$lock_file"
flock -w 900 8 || die "another setup-debian.sh is still running"
install_packages
check_node
install_node_modules
build
check_fuse
say "done in $((SECONDS - t0)) s"
