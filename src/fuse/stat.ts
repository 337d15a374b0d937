/**
 * Conversions from the core's attributes (`Attr`, `StatFs`) to what fuse-native hands to libfuse: a stat
 * object, and the Uint32Array layouts its C code reads (`populate_stat`, `populate_statvfs`).
 *
 * fuse-native carries every field as uint32, with 64-bit values (size, blocks, times in ms) split low/high.
 * So inode numbers above 2^32-1 and uids above 2^32-2 cannot be represented; the core allocates inode
 * numbers from 1 upwards, so this is a limit of 4 billion files ever created on a volume.
 */

import type { Attr, StatFs } from '../core/types.js';

/** The stat object our ops hand to the (fixed) fuse-native class. Times in ms since the epoch. */
export interface FuseStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  dev: number;
  nlink: number;
  ino: number;
  rdev: number;
  blksize: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
}

/**
 * The preferred I/O size reported as st_blksize. cp, tar and stdio size their buffers from it; 128 KiB is the
 * largest write the kernel hands a libfuse 2 filesystem (native-notes/kernel.md), so bigger gains nothing.
 */
export const PREFERRED_IO_SIZE = 128 * 1024;

const TWO_32 = 4294967296;
const UINT32_MAX = TWO_32 - 1;

export function attrToStat(attr: Attr): FuseStat {
  return {
    mode: attr.mode,
    uid: attr.uid,
    gid: attr.gid,
    size: attr.size,
    dev: 0,
    nlink: attr.nlink,
    ino: attr.ino,
    rdev: attr.rdev,
    blksize: PREFERRED_IO_SIZE,
    // 512-byte units, as du expects; a sparse file reports its full size (the core does not track holes here).
    blocks: Math.ceil(attr.size / 512),
    atime: attr.atime,
    mtime: attr.mtime,
    ctime: attr.ctime,
  };
}

function setUint64(arr: Uint32Array, at: number, value: number): void {
  const v = Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
  arr[at] = v % TWO_32;
  arr[at + 1] = Math.floor(v / TWO_32);
}

function u32(value: number): number {
  if (!Number.isFinite(value) || value < 0) return 0;
  return value > UINT32_MAX ? UINT32_MAX : Math.floor(value);
}

/** fuse-native's stat layout (index.js getStatArray), without its defaults (nlink 0 stays 0, times stay). */
export function toStatArray(stat: FuseStat | undefined): Uint32Array {
  const ints = new Uint32Array(18);
  if (!stat) return ints;
  ints[0] = u32(stat.mode);
  ints[1] = u32(stat.uid);
  ints[2] = u32(stat.gid);
  setUint64(ints, 3, stat.size);
  ints[5] = u32(stat.dev);
  ints[6] = u32(stat.nlink);
  ints[7] = u32(stat.ino);
  ints[8] = u32(stat.rdev);
  ints[9] = u32(stat.blksize);
  setUint64(ints, 10, stat.blocks);
  setUint64(ints, 12, stat.atime);
  setUint64(ints, 14, stat.mtime);
  setUint64(ints, 16, stat.ctime);
  return ints;
}

/**
 * fuse-native's statvfs layout (index.js getStatfsArray). Every field is uint32: when the block counts do not
 * fit, the fragment size is scaled up (df multiplies f_blocks by f_frsize, so sizes stay right).
 */
export function toStatfsArray(st: StatFs, fsid = 0): Uint32Array {
  let frsize = st.frsize > 0 ? st.frsize : st.bsize > 0 ? st.bsize : 4096;
  let blocks = st.blocks;
  let bfree = st.bfree;
  let bavail = st.bavail;
  while (blocks > UINT32_MAX) {
    frsize *= 2;
    blocks = Math.floor(blocks / 2);
    bfree = Math.floor(bfree / 2);
    bavail = Math.floor(bavail / 2);
  }
  const ints = new Uint32Array(11);
  ints[0] = u32(st.bsize > 0 ? st.bsize : frsize);
  ints[1] = u32(frsize);
  ints[2] = u32(blocks);
  ints[3] = u32(bfree);
  ints[4] = u32(bavail);
  ints[5] = u32(st.files);
  ints[6] = u32(st.ffree);
  ints[7] = u32(st.favail);
  ints[8] = u32(fsid);
  ints[9] = 0;
  ints[10] = u32(st.namemax);
  return ints;
}
