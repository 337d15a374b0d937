#!/usr/bin/env bash
# build.sh — builds the swiftfs managed Docker plugin without any registry, and optionally enables it.
#
#   plugin/build.sh [--name NAME] [--image] [--no-build] [--enable] [--set KEY=VALUE]... [--keep DIR]
#
#   --name NAME      plugin name (default swiftfs); its driver name is NAME (or NAME:latest)
#   --image          build the rootfs as an image with docker/Dockerfile (also tags swiftfs:local, which can
#                    run the plugin as a privileged container) and export it; default: assemble the same
#                    rootfs directly (same content, much faster: no import/build/export round trip)
#   --no-build       use the existing dist/ (default: run `npx tsc` first)
#   --enable         enable the plugin after creating it (after applying --set)
#   --set KEY=VALUE  `docker plugin set` before enabling (credentials: ST_AUTH=..., ST_USER=..., ST_KEY=...;
#                    host directories: state.source=/dir, cache.source=/dir)
#   --keep DIR       keep the plugin directory (config.json + rootfs/) in DIR
#
# Steps (all offline):
#   1. a base rootfs from this machine's files: node (and the libraries `ldd` lists), libfuse.so.2 (fuse-native's
#      prebuild links it), fusermount, tini (PID 1: reaps the detached mount processes), busybox (sh, umount, for
#      debugging), CA certificates;
#   2. the app: package.json, dist/src and node_modules without dev dependencies (`npm prune --omit=dev`, no
#      network) in /app;
#   3. with --image: `docker import` of the base (swiftfs-base:local), `docker build -f docker/Dockerfile` of the
#      app onto it (classic builder), `docker export` of that image as rootfs/; without: base + /app directly;
#   4. rootfs/ next to plugin/config.json; `docker plugin create`, `set`, `enable`.
#
# The host directories the plugin binds (state and cache, see config.json) are created when missing.
# Uses $DOCKER (default: Debian's /usr/bin/docker if present) and DOCKER_HOST as set.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
name=swiftfs
build=1
image=0
enable=0
keep=""
sets=()

while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --image) image=1; shift ;;
    --enable) enable=1; shift ;;
    --set) sets+=("$2"); shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

DOCKER=${DOCKER:-$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || command -v docker )}
export DOCKER_BUILDKIT=0 # the classic builder works offline with a local base image
say() { echo "build.sh: [$SECONDS s] $*" >&2; }

work=$(mktemp -d /tmp/swiftfs-plugin-build.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

if [ $build -eq 1 ]; then
  say "compiling TypeScript"
  (cd "$repo" && npx tsc -p tsconfig.json >/dev/null) || say "tsc reported type errors (dist/ was still emitted)"
fi
[ -f "$repo/dist/src/cli/main.js" ] || { say "dist/src/cli/main.js is missing: build first"; exit 1; }

# ---------------------------------------------------------------------------------- 1. base rootfs
base="$work/base"
mkdir -p "$base"/{bin,sbin,usr/bin,usr/local/bin,lib,lib64,etc/ssl/certs,tmp,proc,sys,dev,run/docker/plugins,mnt/volumes,var/lib/swiftfs,var/cache/swiftfs}
chmod 1777 "$base/tmp"

copy_with_libs() { # FILE DEST-IN-ROOTFS
  local file="$1" dest="$2"
  install -D -m 0755 "$(readlink -f "$file")" "$base$dest"
  # every shared library it links, at the path the loader expects
  ldd "$file" 2>/dev/null | awk '/=> \//{print $3} /^[[:space:]]*\/lib/{print $1}' | while read -r lib; do
    [ -e "$base$lib" ] && continue
    install -D -m 0755 "$(readlink -f "$lib")" "$base$lib"
  done
}

node_bin=$(command -v node)
copy_with_libs "$node_bin" /usr/local/bin/node
fuse_lib=$(ldconfig -p | awk '/libfuse\.so\.2 /{print $NF; exit}')
[ -n "$fuse_lib" ] || { say "libfuse.so.2 not found: apt-get install libfuse2"; exit 1; }
install -D -m 0755 "$(readlink -f "$fuse_lib")" "$base$fuse_lib"
ldd "$fuse_lib" | awk '/=> \//{print $3}' | while read -r lib; do [ -e "$base$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$base$lib"; done
for tool in fusermount fusermount3; do
  if command -v "$tool" >/dev/null; then copy_with_libs "$(command -v "$tool")" "/usr/bin/$tool"; fi
done
install -m 0755 /usr/bin/tini-static "$base/sbin/tini" 2>/dev/null || { say "tini-static missing: apt-get install tini"; exit 1; }
install -m 0755 /bin/busybox "$base/bin/busybox"
for applet in sh ls cat ps mount umount mkdir rm sleep echo df du grep tail head kill; do ln -sf busybox "$base/bin/$applet"; done
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/"
echo 'root:x:0:0:root:/root:/bin/sh' >"$base/etc/passwd"
echo 'root:x:0:' >"$base/etc/group"
touch "$base/etc/hosts" "$base/etc/resolv.conf"

# ---------------------------------------------------------------------------------- 2. the app
app="$work/app"
mkdir -p "$app/dist"
cp "$repo/package.json" "$repo/package-lock.json" "$app/"
cp -a "$repo/dist/src" "$app/dist/src"
cp -a "$repo/node_modules" "$app/node_modules"
(cd "$app" && npm prune --omit=dev --offline --no-audit --no-fund >/dev/null 2>&1) || say "npm prune failed; shipping node_modules as it is"
find "$app/dist" -name '*.map' -delete

# ---------------------------------------------------------------------------------- 3. the rootfs
plugdir="$work/plugin"
if [ $image -eq 1 ]; then
  say "importing the base image swiftfs-base:local"
  tar -C "$base" -c . | "$DOCKER" import - swiftfs-base:local >/dev/null
  say "building the app image swiftfs:local (docker/Dockerfile)"
  "$DOCKER" build -q -f "$repo/docker/Dockerfile" --build-arg BASE=swiftfs-base:local -t swiftfs:local "$app" >/dev/null
  mkdir -p "$plugdir/rootfs"
  cid=$("$DOCKER" create swiftfs:local)
  "$DOCKER" export "$cid" | tar -x -C "$plugdir/rootfs"
  "$DOCKER" rm "$cid" >/dev/null
else
  mkdir -p "$plugdir"
  mv "$base" "$plugdir/rootfs"
  mv "$app" "$plugdir/rootfs/app"
fi

# ---------------------------------------------------------------------------------- 4. the plugin
cp "$here/config.json" "$plugdir/config.json"
# The host directories bound into the plugin must exist before it is enabled.
for src in $(python3 -c 'import json,sys; [print(m["source"]) for m in json.load(open(sys.argv[1]))["mounts"]]' "$plugdir/config.json" 2>/dev/null || echo "/var/lib/swiftfs/managed-plugin /var/cache/swiftfs/managed-plugin"); do
  mkdir -p "$src"
done

if "$DOCKER" plugin inspect "$name" >/dev/null 2>&1; then
  say "removing the existing plugin $name"
  "$DOCKER" plugin disable -f "$name" >/dev/null 2>&1 || true
  "$DOCKER" plugin rm -f "$name" >/dev/null
fi
say "creating plugin $name"
"$DOCKER" plugin create "$name" "$plugdir" >/dev/null
for kv in "${sets[@]}"; do
  case "$kv" in
    state.source=*|cache.source=*) mkdir -p "${kv#*=}" ;;
  esac
done
if [ ${#sets[@]} -gt 0 ]; then
  say "setting ${#sets[@]} value(s)"
  "$DOCKER" plugin set "$name" "${sets[@]}"
fi
if [ $enable -eq 1 ]; then
  say "enabling plugin $name"
  "$DOCKER" plugin enable --timeout 60 "$name"
fi
if [ -n "$keep" ]; then
  rm -rf "$keep"
  mkdir -p "$(dirname "$keep")"
  mv "$plugdir" "$keep"
fi
say "done: docker volume create -d $name NAME"
