#!/usr/bin/env bash
# figures.sh — the FUSE door's figures, through a swiftfs mount over a real Swift.
#
#   ST_AUTH=... ST_USER=... ST_KEY=... test/fuse/figures.sh [WORKDIR]
#   (or: eval "$(scripts/swift-saio.sh env DIR)"; it then maps SWIFTFS_TEST_ST_* to ST_*)
#
# Needs root (FUSE, dropping the page cache), fio, and a built tree (npx tsc -p tsconfig.json).
# Each figure is the wall time of the command shown, printed as "FIGURE name: value"; the commands are the
# ones listed in native-notes/kernel.md. For write and read, the CPU time the mount daemon used is printed
# too: on a loaded machine it is steadier than the wall time.
#
#  1. sequential write of 1 GiB + fsync       dd if=rand1g of=M/seq bs=1M conv=fsync
#  2. sequential read of 1 GiB, cold          new empty cache dir, remount, drop the page cache, dd of=/dev/null
#     ... and warm                            drop the page cache only (the swiftfs cache is warm), dd again
#  3. untar 5000 small files, then durable    tar -xf tree.tar && sync M/tree (fsync: in mode remote it
#                                             commits every change made before it on the volume)
#  4. ls -lR of that tree (5000 files)        after dropping the kernel's caches
#  5. fio 4 KiB random writes, fsync every 64 writes, 30 s, in both fsync modes (remote, local)
#  6. fio 4 KiB random reads of a 256 MiB file, 20 s, right after 10 s of random writes to it, as bench/ runs
#     them: fio drops the file's pages first (its default --invalidate=1: posix_fadvise DONTNEED), so this is
#     mostly the cost of a 4 KiB read request on a warm swiftfs cache while the page cache refills; twice.
#     Then twice with --invalidate=0 (fio keeps what the page cache holds: fully warm once it is full). The
#     daemon's adapter counters (reads served) are printed after each pass.
#
# FIGURES=write,read,untar,ls,randwrite,randread selects some of them (default: all); read needs write.

set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
CLI="$REPO/dist/src/cli/main.js"
WORK="${1:-/var/tmp/swiftfs-figures}"
export ST_AUTH="${ST_AUTH:-${SWIFTFS_TEST_ST_AUTH:?set ST_AUTH or SWIFTFS_TEST_ST_AUTH}}"
export ST_USER="${ST_USER:-${SWIFTFS_TEST_ST_USER:-test:tester}}"
export ST_KEY="${ST_KEY:-${SWIFTFS_TEST_ST_KEY:-testing}}"
export SWIFTFS_RUN_DIR="$WORK/run"
export UV_THREADPOOL_SIZE=64

M="$WORK/mnt"
CACHE="$WORK/cache"
mkdir -p "$WORK" "$M"
VOL="swift://figures-$(date +%s)"

FIGURES="${FIGURES:-write,read,untar,ls,randwrite,randread}"
want() { [[ ",$FIGURES," == *",$1,"* ]]; }
say() { echo "[figures $(date +%T)] $*" >&2; }
figure() { echo "FIGURE $1: $2"; }
secs() { local s=$1 e=$2; awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", (e - s) / 1e9 }'; }
now() { date +%s%N; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
mnt() { node "$CLI" mount "$VOL" "$M" --cache-dir "$CACHE" --log-file "$WORK/daemon.log" "$@" >/dev/null; }
umnt() { node "$CLI" unmount "$M" >/dev/null; }
cleanup() { mountpoint -q "$M" && umnt || true; }
daemon_pid() { node "$CLI" status --json | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s)[0].pid))"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
cpu_figure() { # NAME PID TICKS_BEFORE
  figure "$1" "$(awk -v a="$3" -v b="$(cpu_ticks "$2")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')"
}
trap cleanup EXIT

if [ ! -f "$WORK/rand1g" ]; then
  say "making 1 GiB of random data and a 5000-file tree"
  head -c 1073741824 /dev/urandom > "$WORK/rand1g"
fi
if [ ! -f "$WORK/tree.tar" ]; then
  rm -rf "$WORK/tree" && mkdir -p "$WORK/tree"
  for d in $(seq 1 50); do
    mkdir -p "$WORK/tree/d$d"
    for f in $(seq 1 100); do head -c $(( ((d * 100 + f) * 7919) % 16384 + 100 )) /dev/urandom > "$WORK/tree/d$d/f$f"; done
  done
  tar -C "$WORK" -cf "$WORK/tree.tar" tree
fi
cat "$WORK/rand1g" > /dev/null # in the page cache: the source is not what is measured

rm -rf "$CACHE"; mnt
say "mounted $VOL on $M"

# 1. sequential write 1 GiB + fsync
if want write; then
pid=$(daemon_pid); c=$(cpu_ticks "$pid")
s=$(now); dd if="$WORK/rand1g" of="$M/seq" bs=1M conv=fsync status=none; e=$(now)
cpu_figure "  daemon CPU during the write (s)" "$pid" "$c"
t=$(secs "$s" "$e"); figure "seq write 1 GiB + fsync (s)" "$t"
figure "seq write MiB/s" "$(awk -v t="$t" 'BEGIN { printf "%.0f", 1024 / t }')"
node "$CLI" status --json > "$WORK/status-after-write.json"
fi

# 2. read cold (fresh cache, dropped page cache) and warm (swiftfs cache warm, page cache dropped)
if want read; then
umnt; rm -rf "$CACHE"; mnt; drop
pid=$(daemon_pid); c=$(cpu_ticks "$pid")
s=$(now); dd if="$M/seq" of=/dev/null bs=1M status=none; e=$(now)
t=$(secs "$s" "$e"); figure "seq read 1 GiB cold (s)" "$t"; figure "seq read cold MiB/s" "$(awk -v t="$t" 'BEGIN { printf "%.0f", 1024 / t }')"
cpu_figure "  daemon CPU during the cold read (s)" "$pid" "$c"
drop
c=$(cpu_ticks "$pid")
s=$(now); dd if="$M/seq" of=/dev/null bs=1M status=none; e=$(now)
t=$(secs "$s" "$e"); figure "seq read 1 GiB warm (s)" "$t"; figure "seq read warm MiB/s" "$(awk -v t="$t" 'BEGIN { printf "%.0f", 1024 / t }')"
cpu_figure "  daemon CPU during the warm read (s)" "$pid" "$c"
cmp "$M/seq" "$WORK/rand1g" && say "read back == written"
fi

# 3. untar 5000 files, then make it durable
if want untar; then
s=$(now); tar -C "$M" -xf "$WORK/tree.tar"; m=$(now); sync "$M/tree/d1/f1"; e=$(now)
figure "untar 5000 files (s)" "$(secs "$s" "$m")"
figure "untar 5000 files + durable (s)" "$(secs "$s" "$e")"
fi

# 4. ls -lR of the tree, kernel caches dropped
if want ls && [ -d "$M/tree" ]; then
drop
s=$(now); ls -lR "$M/tree" > /dev/null; e=$(now)
figure "ls -lR 5000 files (s)" "$(secs "$s" "$e")"
fi

# 5. fio 4 KiB random writes with an fsync every 64 writes, both fsync modes
want randwrite && for mode in remote local; do
  umnt; mnt --fsync "$mode"
  fio --name=randw --filename="$M/fio-$mode.dat" --size=256M --bs=4k --rw=randwrite --ioengine=psync --fsync=64 \
      --runtime=30 --time_based --numjobs=1 --output-format=json > "$WORK/fio-$mode.json" 2>"$WORK/fio-$mode.err"
  iops=$(node -e "const j=require('$WORK/fio-$mode.json'); console.log(Math.round(j.jobs[0].write.iops))")
  figure "fio 4k randwrite fsync=64 IOPS (fsync $mode)" "$iops"
done

# 6. fio 4 KiB random reads, right after random writes to the same file, then again
if want randread; then
  umnt; mnt
  fio --name=randw --filename="$M/fio-rr.dat" --size=256M --bs=4k --rw=randwrite --ioengine=psync --fsync=64 \
      --runtime=10 --time_based --output-format=json > "$WORK/fio-rr-w.json" 2>"$WORK/fio-rr-w.err"
  reads() { node "$CLI" status --json | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const f=JSON.parse(s)[0].fuse;console.log(f.ops.read?f.ops.read.count:0)})"; }
  for pass in 1 2 keep1 keep2; do
    inv=1; [[ $pass == keep* ]] && inv=0
    before=$(reads)
    fio --name=randr --filename="$M/fio-rr.dat" --size=256M --bs=4k --rw=randread --ioengine=psync --iodepth=1 --invalidate=$inv \
        --runtime=20 --time_based --randrepeat=1 --norandommap --output-format=json > "$WORK/fio-rr-$pass.json" 2>"$WORK/fio-rr-$pass.err"
    iops=$(node -e "const j=require('$WORK/fio-rr-$pass.json'); console.log(Math.round(j.jobs[0].read.iops))")
    figure "fio 4k randread 256 MiB after randwrite, invalidate=$inv, pass $pass (IOPS)" "$iops"
    figure "  ... FUSE reads served by the daemon in pass $pass" "$(( $(reads) - before ))"
  done
fi
umnt
say "done; daemon log: $WORK/daemon.log"
