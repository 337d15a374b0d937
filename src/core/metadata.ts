/**
 * FsState: the whole metadata of a volume in memory (inodes, directory entries, extent maps, xattrs) and every
 * POSIX rule about it. Pure: no I/O and no clock (callers pass `now`, in ms).
 *
 * Namespace operations are split in two so that the caller can make the change durable in between:
 *   const batch = state.planMkdir(...)   // validates, throws FsError with the errno Linux gives; changes nothing
 *   wal.reserve(batch)                   // (caller) may fail, e.g. ENOSPC: nothing changed
 *   state.apply(batch)                   // applies; never throws for a batch that plan*() just produced
 * A plan must be applied before any other plan is made (callers do both synchronously).
 *
 * Rules follow Linux on ext4 (fs/namei.c order of checks): see the comments of each plan. Notes:
 *  - EXDEV cannot happen: a volume is one filesystem.
 *  - Permission checks (EACCES) are left to the kernel (FUSE default_permissions).
 *  - Inode numbers are never reused within a volume's life: `nextIno` only grows, and applying an `inode`
 *    record with ino >= nextIno bumps it, so replaying the journal reproduces it.
 *  - Open counts (opened/planClosed) are runtime state, not journaled: after a crash, inodes with nlink 0 are
 *    orphans that planFreeOrphans() frees.
 *  - apply() throws a plain Error only for records that cannot come from a plan (a damaged journal).
 */

import { fsError } from './errors.js';
import { ExtentMap, type FlatExtents } from './extent-map.js';
import {
  NAME_MAX,
  PATH_MAX,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  ROOT_INO,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  XATTR_CREATE,
  XATTR_REPLACE,
  XATTR_SIZE_MAX,
  type Attr,
  type Caller,
  type DataRef,
  type DirEntry,
  type ExtentPiece,
  type MetaRecord,
  type StatFs,
} from './types.js';

/** Largest file size (EFBIG beyond). */
export const MAX_FILE_SIZE = 2 ** 50;
/** Most hard links of a non-directory (ext4's EXT4_LINK_MAX). */
export const LINK_MAX = 65000;
/** Block size reported by statfs and used to count used blocks. */
export const STATFS_BSIZE = 4096;
/** Capacity reported by statfs: 2^50 bytes, 2^32 inodes (an object store has no fixed size). */
const STATFS_BLOCKS = MAX_FILE_SIZE / STATFS_BSIZE;
const STATFS_FILES = 2 ** 32;
/** Total bytes of names + values of the xattrs of one inode (ENOSPC beyond). */
export const XATTR_TOTAL_MAX = 1024 * 1024;
const XATTR_NAME_MAX = 255;
const XATTR_NAMESPACES = ['user.', 'trusted.', 'security.', 'system.'];

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o010;

export interface Snapshot {
  /** Format version of the snapshot encoding. */
  v: 1;
  nextIno: number;
  [key: string]: unknown;
}

/**
 * One inode in a snapshot: `a` = [ino, mode, nlink, uid, gid, size, rdev, atime, mtime, ctime, btime],
 * `t` symlink target, `x` xattrs as [name, base64] pairs, `e` flat extents, `d` entries as a flat
 * [name, ino, ...] list, `p` the parent of a directory.
 */
interface SnapInode {
  a: number[];
  t?: string;
  x?: [string, string][];
  e?: FlatExtents;
  d?: (string | number)[];
  p?: number;
}

interface Inode {
  attr: Attr;
  /** Symlink target. */
  target: string | undefined;
  xattrs: Map<string, Buffer> | undefined;
  /** Regular files only. */
  extents: ExtentMap | undefined;
  /** Directories only: name -> ino, in insertion order. */
  entries: Map<string, number> | undefined;
  /** Directories only: the directory holding it ('..'); the root's parent is itself. */
  parent: number;
}

function isDirMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR;
}
function isRegMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFREG;
}

function blocksOf(attr: Attr): number {
  return isRegMode(attr.mode) ? Math.ceil(attr.size / STATFS_BSIZE) : 0;
}

function utf8Length(s: string): number {
  // Each UTF-16 code unit is at most 3 UTF-8 bytes: short strings need no counting.
  return s.length * 3 <= NAME_MAX ? s.length : Buffer.byteLength(s, 'utf8');
}

function attrToArray(a: Attr): number[] {
  return [a.ino, a.mode, a.nlink, a.uid, a.gid, a.size, a.rdev, a.atime, a.mtime, a.ctime, a.btime];
}

function attrFromArray(x: number[]): Attr {
  const [ino, mode, nlink, uid, gid, size, rdev, atime, mtime, ctime, btime] = x as [number, number, number, number, number, number, number, number, number, number, number];
  return { ino, mode, nlink, uid, gid, size, rdev, atime, mtime, ctime, btime };
}

function corrupt(what: string): Error {
  return new Error(`swiftfs: damaged metadata record: ${what}`);
}

/** Where a path's last component lives. */
interface Place {
  /** The directory holding the last component. */
  dir: number;
  name: string;
  /** The inode it names, if any. */
  ino: number | undefined;
}

export class FsState {
  private readonly inodes = new Map<number, Inode>();
  private nextInoValue = ROOT_INO + 1;
  /** Open handle counts by inode (runtime only). */
  private readonly openCounts = new Map<number, number>();
  /** Inodes with nlink 0 that still exist. */
  private readonly orphanSet = new Set<number>();
  /** Regular files with at least one WAL ref. */
  private readonly walInos = new Set<number>();
  private usedBlocks = 0;

  private constructor() {}

  /** A fresh filesystem: just the root directory (ino 1), owned by `root`, mode 0755, times = now. */
  static create(now: number, root: Caller = { uid: 0, gid: 0 }, rootMode = 0o755): FsState {
    const s = new FsState();
    s.apply([
      {
        t: 'inode',
        attr: { ino: ROOT_INO, mode: S_IFDIR | (rootMode & 0o7777), nlink: 2, uid: root.uid, gid: root.gid, size: 0, rdev: 0, atime: now, mtime: now, ctime: now, btime: now },
      },
    ]);
    s.inodes.get(ROOT_INO)!.parent = ROOT_INO;
    return s;
  }

  /** Rebuilds a state from snapshot() output. */
  static restore(snapshot: Snapshot): FsState {
    if (!snapshot || snapshot.v !== 1 || !Array.isArray(snapshot['inodes']) || typeof snapshot.nextIno !== 'number') {
      throw new Error('swiftfs: unsupported or damaged metadata snapshot');
    }
    const s = new FsState();
    s.nextInoValue = snapshot.nextIno;
    for (const si of snapshot['inodes'] as SnapInode[]) {
      const attr = attrFromArray(si.a);
      const node: Inode = {
        attr,
        target: si.t,
        xattrs: si.x ? new Map(si.x.map(([k, v]) => [k, Buffer.from(v, 'base64')])) : undefined,
        extents: isRegMode(attr.mode) ? (si.e ? ExtentMap.fromFlat(si.e) : new ExtentMap()) : undefined,
        entries: undefined,
        parent: si.p ?? 0,
      };
      if (isDirMode(attr.mode)) {
        const entries = new Map<string, number>();
        const d = si.d ?? [];
        for (let k = 0; k + 1 < d.length; k += 2) entries.set(d[k] as string, d[k + 1] as number);
        node.entries = entries;
      }
      s.inodes.set(attr.ino, node);
      s.usedBlocks += blocksOf(attr);
      if (attr.nlink === 0) s.orphanSet.add(attr.ino);
      if (node.extents && node.extents.walRefCount > 0) s.walInos.add(attr.ino);
    }
    if (!s.inodes.get(ROOT_INO)?.entries) throw new Error('swiftfs: metadata snapshot has no root directory');
    return s;
  }

  snapshot(): Snapshot {
    const inodes: SnapInode[] = [];
    for (const node of this.inodes.values()) {
      const si: SnapInode = { a: attrToArray(node.attr) };
      if (node.target !== undefined) si.t = node.target;
      if (node.xattrs && node.xattrs.size > 0) si.x = [...node.xattrs].map(([k, v]) => [k, v.toString('base64')]);
      if (node.extents && node.extents.count > 0) si.e = node.extents.toFlat();
      if (node.entries) {
        const d: (string | number)[] = [];
        for (const [name, ino] of node.entries) d.push(name, ino);
        si.d = d;
        si.p = node.parent;
      }
      inodes.push(si);
    }
    return { v: 1, nextIno: this.nextInoValue, inodes };
  }

  // ---- extra read-only helpers (added beyond the fixed interface) ----

  /** The next inode number that will be allocated. */
  get nextIno(): number {
    return this.nextInoValue;
  }

  /** Number of inodes (including the root and orphans). */
  get inodeCount(): number {
    return this.inodes.size;
  }

  /** Whether the inode exists. */
  has(ino: number): boolean {
    return this.inodes.has(ino);
  }

  /** Whether the inode has open handles. */
  isOpen(ino: number): boolean {
    return (this.openCounts.get(ino) ?? 0) > 0;
  }

  /** Inodes with nlink 0 that still exist (open unlinked files, or crash leftovers). */
  orphans(): number[] {
    return [...this.orphanSet];
  }

  /** Number of extents of a regular file (0 for others): the committer's fragmentation measure. */
  extentCount(ino: number): number {
    return this.inodes.get(ino)?.extents?.count ?? 0;
  }

  /** Regular files that still have WAL refs. */
  filesWithWalRefs(): number[] {
    return [...this.walInos];
  }

  // ---- lookups (throw FsError ENOENT, ENOTDIR, ENAMETOOLONG, EINVAL as Linux would) ----

  /** Resolves an absolute path to an inode number, without following a final symlink. */
  lookup(path: string): number {
    const parts = this.parsePath(path, 'lookup');
    return this.walk(parts, parts.length, 'lookup', path);
  }

  getattr(ino: number): Attr {
    return { ...this.node(ino, 'getattr').attr };
  }

  /** Entries of a directory, without '.' and '..', in a stable order. ENOTDIR for a non-directory. */
  readdir(ino: number): DirEntry[] {
    const node = this.node(ino, 'readdir');
    if (!node.entries) throw fsError('ENOTDIR', 'readdir');
    const out: DirEntry[] = [];
    for (const [name, child] of node.entries) {
      const c = this.inodes.get(child);
      if (c) out.push({ name, attr: { ...c.attr } });
    }
    return out;
  }

  readlink(ino: number): string {
    const node = this.node(ino, 'readlink');
    if ((node.attr.mode & S_IFMT) !== S_IFLNK || node.target === undefined) throw fsError('EINVAL', 'readlink');
    return node.target;
  }

  getxattr(ino: number, name: string): Buffer {
    const v = this.xattrOf(ino, name);
    if (v === undefined) throw fsError('ENODATA', 'getxattr');
    return v;
  }

  /** The value of xattr `name`, or undefined when the inode has none: getxattr without an exception. */
  xattrOf(ino: number, name: string): Buffer | undefined {
    const node = this.node(ino, 'getxattr');
    this.checkXattrName(name, 'getxattr');
    const v = node.xattrs?.get(name);
    return v === undefined ? undefined : Buffer.from(v);
  }

  /** Whether any inode has an xattr whose name `matches` (a scan of every inode: for mount-time decisions). */
  anyXattr(matches: (name: string) => boolean): boolean {
    for (const node of this.inodes.values()) {
      if (node.xattrs) for (const name of node.xattrs.keys()) if (matches(name)) return true;
    }
    return false;
  }

  listxattr(ino: number): string[] {
    const node = this.node(ino, 'listxattr');
    return node.xattrs ? [...node.xattrs.keys()] : [];
  }

  /** Pieces covering [off, min(off+len, size)): data refs and holes, in order, with no gaps. */
  extents(ino: number, off: number, len: number): ExtentPiece[] {
    const node = this.node(ino, 'read');
    if (node.entries) throw fsError('EISDIR', 'read');
    if (!node.extents) return [];
    if (off < 0 || len < 0) throw fsError('EINVAL', 'read');
    return node.extents.pieces(off, len, node.attr.size);
  }

  statfs(): StatFs {
    const bfree = Math.max(0, STATFS_BLOCKS - this.usedBlocks);
    const ffree = Math.max(0, STATFS_FILES - this.inodes.size);
    return {
      bsize: STATFS_BSIZE,
      frsize: STATFS_BSIZE,
      blocks: STATFS_BLOCKS,
      bfree,
      bavail: bfree,
      files: STATFS_FILES,
      ffree,
      favail: ffree,
      namemax: NAME_MAX,
    };
  }

  /** Every data object id the state refers to (for garbage collection). */
  referencedObjects(): Set<string> {
    const out = new Set<string>();
    for (const node of this.inodes.values()) node.extents?.collectObjects(out);
    return out;
  }

  /** Every WAL ref still in the state (dirty data not yet rewritten to objects). */
  hasWalRefs(): boolean {
    return this.walInos.size > 0;
  }

  // ---- plans: validate and return the batch; change nothing ----

  /**
   * open(O_CREAT): EEXIST if the name exists and `exclusive`; EISDIR if it is a directory; otherwise when
   * the name exists the batch is empty (the caller opens the existing file, found with lookup()).
   */
  planCreate(path: string, mode: number, caller: Caller, now: number, exclusive: boolean): MetaRecord[] {
    const parts = this.parsePath(path, 'open');
    if (parts.length === 0) throw fsError(exclusive ? 'EEXIST' : 'EISDIR', 'open', path);
    const place = this.place(parts, 'open', path);
    if (place.ino !== undefined) {
      if (exclusive) throw fsError('EEXIST', 'open', path);
      if (this.inodes.get(place.ino)!.entries) throw fsError('EISDIR', 'open', path);
      return [];
    }
    return this.newNodeBatch(place, S_IFREG | (mode & 0o7777), 0, caller, now, undefined);
  }

  /** mknod(2): regular files, fifos, sockets, devices; EPERM for a directory type, EINVAL for others. */
  planMknod(path: string, mode: number, rdev: number, caller: Caller, now: number): MetaRecord[] {
    let type = mode & S_IFMT;
    if (type === 0) type = S_IFREG;
    if (type === S_IFDIR) throw fsError('EPERM', 'mknod', path);
    if (type !== S_IFREG && type !== S_IFIFO && type !== S_IFSOCK && type !== S_IFCHR && type !== S_IFBLK) throw fsError('EINVAL', 'mknod', path);
    const parts = this.parsePath(path, 'mknod');
    if (parts.length === 0) throw fsError('EEXIST', 'mknod', path);
    const place = this.place(parts, 'mknod', path);
    if (place.ino !== undefined) throw fsError('EEXIST', 'mknod', path);
    const dev = type === S_IFCHR || type === S_IFBLK ? rdev : 0;
    return this.newNodeBatch(place, type | (mode & 0o7777), dev, caller, now, undefined);
  }

  planMkdir(path: string, mode: number, caller: Caller, now: number): MetaRecord[] {
    const parts = this.parsePath(path, 'mkdir');
    if (parts.length === 0) throw fsError('EEXIST', 'mkdir', path);
    const place = this.place(parts, 'mkdir', path);
    if (place.ino !== undefined) throw fsError('EEXIST', 'mkdir', path);
    return this.newNodeBatch(place, S_IFDIR | (mode & 0o1777), 0, caller, now, undefined);
  }

  planSymlink(target: string, path: string, caller: Caller, now: number): MetaRecord[] {
    if (target.length === 0) throw fsError('ENOENT', 'symlink', path);
    if (Buffer.byteLength(target, 'utf8') >= PATH_MAX) throw fsError('ENAMETOOLONG', 'symlink', path);
    const parts = this.parsePath(path, 'symlink');
    if (parts.length === 0) throw fsError('EEXIST', 'symlink', path);
    const place = this.place(parts, 'symlink', path);
    if (place.ino !== undefined) throw fsError('EEXIST', 'symlink', path);
    return this.newNodeBatch(place, S_IFLNK | 0o777, 0, caller, now, target);
  }

  /** link(2): the existing path is resolved first, then the new name (EEXIST), then EPERM for a directory. */
  planLink(existing: string, path: string, now: number): MetaRecord[] {
    const src = this.lookupFor(existing, 'link');
    const parts = this.parsePath(path, 'link');
    if (parts.length === 0) throw fsError('EEXIST', 'link', path);
    const place = this.place(parts, 'link', path);
    if (place.ino !== undefined) throw fsError('EEXIST', 'link', path);
    const node = this.inodes.get(src)!;
    if (node.entries) throw fsError('EPERM', 'link', existing);
    if (node.attr.nlink >= LINK_MAX) throw fsError('EMLINK', 'link', existing);
    const parent = this.inodes.get(place.dir)!;
    return [
      { t: 'link', dir: place.dir, name: place.name, ino: src },
      { t: 'inode', attr: { ...node.attr, nlink: node.attr.nlink + 1, ctime: now } },
      { t: 'inode', attr: { ...parent.attr, mtime: now, ctime: now } },
    ];
  }

  /** Unlink; if the last link goes and the inode is not open, the batch also frees it. */
  planUnlink(path: string, now: number): MetaRecord[] {
    const parts = this.parsePath(path, 'unlink');
    if (parts.length === 0) throw fsError('EISDIR', 'unlink', path);
    const place = this.place(parts, 'unlink', path);
    if (place.ino === undefined) throw fsError('ENOENT', 'unlink', path);
    const node = this.inodes.get(place.ino)!;
    if (node.entries) throw fsError('EISDIR', 'unlink', path);
    const parent = this.inodes.get(place.dir)!;
    const batch: MetaRecord[] = [
      { t: 'unlink', dir: place.dir, name: place.name },
      { t: 'inode', attr: { ...parent.attr, mtime: now, ctime: now } },
    ];
    const nlink = node.attr.nlink - 1;
    if (nlink <= 0 && !this.isOpen(place.ino)) batch.push({ t: 'free', ino: place.ino });
    else batch.push({ t: 'inode', attr: { ...node.attr, nlink: Math.max(0, nlink), ctime: now } });
    return batch;
  }

  /** rmdir(2): EBUSY for the root, ENOTDIR for a non-directory, ENOTEMPTY. */
  planRmdir(path: string, now: number): MetaRecord[] {
    const parts = this.parsePath(path, 'rmdir');
    if (parts.length === 0) throw fsError('EBUSY', 'rmdir', path);
    const place = this.place(parts, 'rmdir', path);
    if (place.ino === undefined) throw fsError('ENOENT', 'rmdir', path);
    const node = this.inodes.get(place.ino)!;
    if (!node.entries) throw fsError('ENOTDIR', 'rmdir', path);
    if (node.entries.size > 0) throw fsError('ENOTEMPTY', 'rmdir', path);
    const parent = this.inodes.get(place.dir)!;
    const batch: MetaRecord[] = [
      { t: 'unlink', dir: place.dir, name: place.name },
      { t: 'inode', attr: { ...parent.attr, nlink: parent.attr.nlink - 1, mtime: now, ctime: now } },
    ];
    if (this.isOpen(place.ino)) batch.push({ t: 'inode', attr: { ...node.attr, nlink: 0, ctime: now } });
    else batch.push({ t: 'free', ino: place.ino });
    return batch;
  }

  /**
   * rename(2) and renameat2 flags RENAME_NOREPLACE / RENAME_EXCHANGE, with the checks in the order of
   * fs/namei.c do_renameat2 and vfs_rename.
   */
  planRename(from: string, to: string, flags: number, now: number): MetaRecord[] {
    const S = 'rename';
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) !== 0) throw fsError('EINVAL', S, from);
    if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) throw fsError('EINVAL', S, from);
    const exchange = (flags & RENAME_EXCHANGE) !== 0;
    const fParts = this.parsePath(from, S);
    const tParts = this.parsePath(to, S);
    const fDir = this.walkParent(fParts, S, from);
    const tDir = this.walkParent(tParts, S, to);
    if (fParts.length === 0) throw fsError('EBUSY', S, from);
    if (tParts.length === 0) throw fsError('EBUSY', S, to);
    const fName = fParts[fParts.length - 1]!;
    const tName = tParts[tParts.length - 1]!;
    this.checkName(fName, S, from);
    const fIno = this.inodes.get(fDir)!.entries!.get(fName);
    if (fIno === undefined) throw fsError('ENOENT', S, from);
    this.checkName(tName, S, to);
    const tIno = this.inodes.get(tDir)!.entries!.get(tName);
    if (tIno !== undefined && (flags & RENAME_NOREPLACE)) throw fsError('EEXIST', S, to);
    if (tIno === undefined && exchange) throw fsError('ENOENT', S, to);
    const fNode = this.inodes.get(fIno)!;
    const tNode = tIno === undefined ? undefined : this.inodes.get(tIno)!;
    const fIsDir = fNode.entries !== undefined;
    const tIsDir = tNode?.entries !== undefined;
    // The source must not be an ancestor of the target; the target must not be an ancestor of the source.
    if (fIsDir && this.isAncestorOrSelf(fIno, tDir)) throw fsError('EINVAL', S, from);
    if (tIno !== undefined && tIsDir && this.isAncestorOrSelf(tIno, fDir)) throw fsError(exchange ? 'EINVAL' : 'ENOTEMPTY', S, to);
    if (fIno === tIno) return []; // the same inode (the same entry, or two hard links): nothing to do
    if (tNode && !exchange) {
      if (fIsDir && !tIsDir) throw fsError('ENOTDIR', S, to);
      if (!fIsDir && tIsDir) throw fsError('EISDIR', S, to);
      if (tIsDir && tNode.entries!.size > 0) throw fsError('ENOTEMPTY', S, to);
    }

    const changed = new Map<number, Attr>();
    const attrOf = (ino: number): Attr => {
      let a = changed.get(ino);
      if (!a) {
        a = { ...this.inodes.get(ino)!.attr };
        changed.set(ino, a);
      }
      return a;
    };
    const batch: MetaRecord[] = [];
    let free: number | undefined;
    if (exchange) {
      batch.push({ t: 'link', dir: fDir, name: fName, ino: tIno! });
      batch.push({ t: 'link', dir: tDir, name: tName, ino: fIno });
      attrOf(fIno).ctime = now;
      attrOf(tIno!).ctime = now;
      if (fDir !== tDir) {
        if (fIsDir) {
          attrOf(fDir).nlink--;
          attrOf(tDir).nlink++;
        }
        if (tIsDir) {
          attrOf(tDir).nlink--;
          attrOf(fDir).nlink++;
        }
      }
    } else {
      batch.push({ t: 'unlink', dir: fDir, name: fName });
      batch.push({ t: 'link', dir: tDir, name: tName, ino: fIno });
      attrOf(fIno).ctime = now;
      if (fIsDir && fDir !== tDir) {
        attrOf(fDir).nlink--;
        attrOf(tDir).nlink++;
      }
      if (tIno !== undefined) {
        const ta = attrOf(tIno);
        ta.ctime = now;
        if (tIsDir) {
          ta.nlink = 0;
          attrOf(tDir).nlink--;
        } else {
          ta.nlink = Math.max(0, ta.nlink - 1);
        }
        if (ta.nlink === 0 && !this.isOpen(tIno)) {
          free = tIno;
          changed.delete(tIno);
        }
      }
    }
    const fd = attrOf(fDir);
    fd.mtime = fd.ctime = now;
    const td = attrOf(tDir);
    td.mtime = td.ctime = now;
    for (const attr of changed.values()) batch.push({ t: 'inode', attr });
    if (free !== undefined) batch.push({ t: 'free', ino: free });
    return batch;
  }

  /** truncate/ftruncate: EISDIR for a directory, EINVAL for other non-regular files or a negative size, EFBIG. */
  planTruncate(ino: number, size: number, now: number): MetaRecord[] {
    const node = this.node(ino, 'truncate');
    if (node.entries) throw fsError('EISDIR', 'truncate');
    if (!node.extents) throw fsError('EINVAL', 'truncate');
    if (!Number.isSafeInteger(size) || size < 0) throw fsError('EINVAL', 'truncate');
    if (size > MAX_FILE_SIZE) throw fsError('EFBIG', 'truncate');
    return [{ t: 'trunc', ino, size, mtime: now }];
  }

  /** One write record; EISDIR/EINVAL/EFBIG checks. `ref` is where the caller stored the bytes. */
  planWrite(ino: number, off: number, len: number, ref: DataRef, now: number): MetaRecord[] {
    const node = this.node(ino, 'write');
    if (node.entries) throw fsError('EISDIR', 'write');
    if (!node.extents) throw fsError('EINVAL', 'write');
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0) throw fsError('EINVAL', 'write');
    if (off + len > MAX_FILE_SIZE) throw fsError('EFBIG', 'write');
    if (len === 0) return [];
    return [{ t: 'write', ino, off, len, ref, mtime: now }];
  }

  /** chmod: keeps the file type bits; sets ctime. */
  planChmod(ino: number, mode: number, now: number): MetaRecord[] {
    const node = this.node(ino, 'chmod');
    return [{ t: 'inode', attr: { ...node.attr, mode: (node.attr.mode & S_IFMT) | (mode & 0o7777), ctime: now } }];
  }

  /**
   * uid or gid of -1 (0xffffffff) leaves that one unchanged. As Linux's chown_common + notify_change do, a
   * non-directory loses S_ISUID, and S_ISGID when group-executable.
   */
  planChown(ino: number, uid: number, gid: number, now: number): MetaRecord[] {
    const node = this.node(ino, 'chown');
    const a = { ...node.attr, ctime: now };
    if (uid !== -1 && uid !== 0xffffffff) a.uid = uid;
    if (gid !== -1 && gid !== 0xffffffff) a.gid = gid;
    if (!node.entries) {
      a.mode &= ~S_ISUID;
      if (a.mode & S_IXGRP) a.mode &= ~S_ISGID;
    }
    return [{ t: 'inode', attr: a }];
  }

  planUtimens(ino: number, atime: number, mtime: number, now: number): MetaRecord[] {
    const node = this.node(ino, 'utimens');
    return [{ t: 'inode', attr: { ...node.attr, atime, mtime, ctime: now } }];
  }

  /**
   * setxattr: ERANGE for an empty or too long name, ENOTSUP outside the user/trusted/security/system
   * namespaces, E2BIG for a value over XATTR_SIZE_MAX (as Linux),
   * EPERM for user.* on anything but regular files and directories, EEXIST/ENODATA for
   * XATTR_CREATE/XATTR_REPLACE, ENOSPC past XATTR_TOTAL_MAX per inode.
   */
  planSetxattr(ino: number, name: string, value: Buffer, flags: number, now: number): MetaRecord[] {
    const S = 'setxattr';
    const node = this.node(ino, S);
    if ((flags & ~(XATTR_CREATE | XATTR_REPLACE)) !== 0) throw fsError('EINVAL', S);
    this.checkXattrName(name, S);
    if (value.length > XATTR_SIZE_MAX) throw fsError('E2BIG', S);
    if (name.startsWith('user.') && !node.entries && !node.extents) throw fsError('EPERM', S);
    const old = node.xattrs?.get(name);
    if (old !== undefined && (flags & XATTR_CREATE)) throw fsError('EEXIST', S);
    if (old === undefined && (flags & XATTR_REPLACE)) throw fsError('ENODATA', S);
    let total = Buffer.byteLength(name) + value.length;
    if (node.xattrs) for (const [k, v] of node.xattrs) if (k !== name) total += Buffer.byteLength(k) + v.length;
    if (total > XATTR_TOTAL_MAX) throw fsError('ENOSPC', S);
    return [{ t: 'xattr', ino, name, value: value.toString('base64'), ctime: now }];
  }

  planRemovexattr(ino: number, name: string, now: number): MetaRecord[] {
    const S = 'removexattr';
    const node = this.node(ino, S);
    this.checkXattrName(name, S);
    if (name.startsWith('user.') && !node.entries && !node.extents) throw fsError('EPERM', S);
    if (node.xattrs?.get(name) === undefined) throw fsError('ENODATA', S);
    return [{ t: 'xattr', ino, name, value: null, ctime: now }];
  }

  // ---- open files (so that unlinked open files keep their data until the last close) ----

  opened(ino: number): void {
    this.node(ino, 'open');
    this.openCounts.set(ino, (this.openCounts.get(ino) ?? 0) + 1);
  }

  /**
   * Counts one handle closed (this part takes effect at once: open counts are runtime state) and returns
   * the batch to apply when that was the last handle of an orphan (nlink 0): a free record, or [].
   */
  planClosed(ino: number): MetaRecord[] {
    const n = (this.openCounts.get(ino) ?? 0) - 1;
    if (n > 0) {
      this.openCounts.set(ino, n);
      return [];
    }
    this.openCounts.delete(ino);
    const node = this.inodes.get(ino);
    if (node && node.attr.nlink === 0) return [{ t: 'free', ino }];
    return [];
  }

  /** Inodes with nlink 0 that nobody has open (left by a crash): one batch freeing them. */
  planFreeOrphans(): MetaRecord[] {
    const batch: MetaRecord[] = [];
    for (const ino of this.orphanSet) if (!this.isOpen(ino)) batch.push({ t: 'free', ino });
    return batch;
  }

  // ---- applying ----

  /** Applies a batch (from a plan, the WAL or a journal segment) in order. */
  apply(batch: readonly MetaRecord[]): void {
    for (const rec of batch) {
      switch (rec.t) {
        case 'inode':
          this.applyInode(rec.attr, rec.target);
          break;
        case 'link': {
          const dir = this.inodes.get(rec.dir);
          const child = this.inodes.get(rec.ino);
          if (!dir?.entries || !child) throw corrupt(`link ${rec.dir}/${rec.name} -> ${rec.ino}`);
          dir.entries.set(rec.name, rec.ino);
          if (child.entries) child.parent = rec.dir;
          break;
        }
        case 'unlink': {
          const dir = this.inodes.get(rec.dir);
          if (!dir?.entries) throw corrupt(`unlink ${rec.dir}/${rec.name}`);
          dir.entries.delete(rec.name);
          break;
        }
        case 'free': {
          const node = this.inodes.get(rec.ino);
          if (!node || rec.ino === ROOT_INO) throw corrupt(`free ${rec.ino}`);
          this.usedBlocks -= blocksOf(node.attr);
          this.inodes.delete(rec.ino);
          this.orphanSet.delete(rec.ino);
          this.walInos.delete(rec.ino);
          break;
        }
        case 'write': {
          const node = this.inodes.get(rec.ino);
          if (!node?.extents) throw corrupt(`write ${rec.ino}`);
          node.extents.write(rec.off, rec.len, rec.ref);
          const size = Math.max(node.attr.size, rec.off + rec.len);
          this.setSize(node, size);
          node.attr.mtime = node.attr.ctime = rec.mtime;
          this.noteWalRefs(node);
          break;
        }
        case 'trunc': {
          const node = this.inodes.get(rec.ino);
          if (!node?.extents) throw corrupt(`trunc ${rec.ino}`);
          if (rec.size < node.attr.size) node.extents.truncate(rec.size);
          this.setSize(node, rec.size);
          node.attr.mtime = node.attr.ctime = rec.mtime;
          this.noteWalRefs(node);
          break;
        }
        case 'xattr': {
          const node = this.inodes.get(rec.ino);
          if (!node) throw corrupt(`xattr ${rec.ino}`);
          if (rec.value === null) node.xattrs?.delete(rec.name);
          else (node.xattrs ??= new Map()).set(rec.name, Buffer.from(rec.value, 'base64'));
          node.attr.ctime = rec.ctime;
          break;
        }
        default:
          throw corrupt(`unknown record ${JSON.stringify(rec)}`);
      }
    }
  }

  /** Rewrites WAL refs to object refs after an upload: for each write record of a committed batch. */
  rebase(ino: number, off: number, len: number, from: DataRef, to: DataRef): void {
    const node = this.inodes.get(ino);
    if (!node?.extents) return; // freed or truncated away since: nothing refers to that data any more
    node.extents.rebase(off, len, from, to);
    this.noteWalRefs(node);
  }

  // ---- internals ----

  private applyInode(src: Attr, target: string | undefined): void {
    const attr = { ...src };
    const node = this.inodes.get(attr.ino);
    if (node) {
      if ((node.attr.mode & S_IFMT) !== (attr.mode & S_IFMT)) throw corrupt(`inode ${attr.ino} changes type`);
      this.usedBlocks += blocksOf(attr) - blocksOf(node.attr);
      if (node.extents && attr.size < node.attr.size) node.extents.truncate(attr.size);
      node.attr = attr;
      if (target !== undefined) node.target = target;
    } else {
      const isDir = isDirMode(attr.mode);
      this.inodes.set(attr.ino, {
        attr,
        target,
        xattrs: undefined,
        extents: isRegMode(attr.mode) ? new ExtentMap() : undefined,
        entries: isDir ? new Map() : undefined,
        parent: 0,
      });
      this.usedBlocks += blocksOf(attr);
    }
    if (attr.ino >= this.nextInoValue) this.nextInoValue = attr.ino + 1;
    if (attr.nlink === 0) this.orphanSet.add(attr.ino);
    else this.orphanSet.delete(attr.ino);
  }

  private setSize(node: Inode, size: number): void {
    this.usedBlocks += Math.ceil(size / STATFS_BSIZE) - Math.ceil(node.attr.size / STATFS_BSIZE);
    node.attr.size = size;
  }

  private noteWalRefs(node: Inode): void {
    if (node.extents && node.extents.walRefCount > 0) this.walInos.add(node.attr.ino);
    else this.walInos.delete(node.attr.ino);
  }

  private node(ino: number, syscall: string): Inode {
    const node = this.inodes.get(ino);
    if (!node) throw fsError('ENOENT', syscall);
    return node;
  }

  /** Splits an absolute path into components. ENOENT for '', EINVAL if relative, ENAMETOOLONG >= PATH_MAX. */
  private parsePath(path: string, syscall: string): string[] {
    if (typeof path !== 'string' || path.length === 0) throw fsError('ENOENT', syscall, path);
    if (path.charCodeAt(0) !== 0x2f) throw fsError('EINVAL', syscall, path);
    if (path.length >= PATH_MAX / 3 && Buffer.byteLength(path, 'utf8') >= PATH_MAX) throw fsError('ENAMETOOLONG', syscall, path);
    const parts = path.split('/');
    let k = 0;
    for (const p of parts) if (p.length > 0) parts[k++] = p;
    parts.length = k;
    return parts;
  }

  private checkName(name: string, syscall: string, path: string): void {
    if (utf8Length(name) > NAME_MAX) throw fsError('ENAMETOOLONG', syscall, path);
    if (name === '.' || name === '..' || name.includes('\0')) throw fsError('EINVAL', syscall, path);
  }

  /** Walks the first `count` components from the root. */
  private walk(parts: string[], count: number, syscall: string, path: string): number {
    let cur = ROOT_INO;
    for (let k = 0; k < count; k++) {
      const node = this.inodes.get(cur)!;
      if (!node.entries) throw fsError('ENOTDIR', syscall, path);
      const name = parts[k]!;
      this.checkName(name, syscall, path);
      const next = node.entries.get(name);
      if (next === undefined) throw fsError('ENOENT', syscall, path);
      cur = next;
    }
    return cur;
  }

  /** The directory that holds the last component (the root for the root itself); ENOTDIR if not one. */
  private walkParent(parts: string[], syscall: string, path: string): number {
    const dir = this.walk(parts, Math.max(0, parts.length - 1), syscall, path);
    if (!this.inodes.get(dir)!.entries) throw fsError('ENOTDIR', syscall, path);
    return dir;
  }

  /** Parent directory, last name (checked) and what it names now; parts must not be empty. */
  private place(parts: string[], syscall: string, path: string): Place {
    const dir = this.walkParent(parts, syscall, path);
    const name = parts[parts.length - 1]!;
    this.checkName(name, syscall, path);
    return { dir, name, ino: this.inodes.get(dir)!.entries!.get(name) };
  }

  private lookupFor(path: string, syscall: string): number {
    const parts = this.parsePath(path, syscall);
    return this.walk(parts, parts.length, syscall, path);
  }

  /** Whether directory `a` is `b` or one of its ancestors. */
  private isAncestorOrSelf(a: number, b: number): boolean {
    let cur = b;
    for (;;) {
      if (cur === a) return true;
      if (cur === ROOT_INO) return false;
      const node = this.inodes.get(cur);
      if (!node || node.parent === 0 || node.parent === cur) return false;
      cur = node.parent;
    }
  }

  private checkXattrName(name: string, syscall: string): void {
    if (name.length === 0 || Buffer.byteLength(name, 'utf8') > XATTR_NAME_MAX) throw fsError('ERANGE', syscall);
    const ns = XATTR_NAMESPACES.find((p) => name.startsWith(p));
    if (!ns) throw fsError('ENOTSUP', syscall);
    if (name.length === ns.length) throw fsError('EINVAL', syscall);
  }

  /** The batch creating a new inode named by `place`, and updating its parent. */
  private newNodeBatch(place: Place, mode: number, rdev: number, caller: Caller, now: number, target: string | undefined): MetaRecord[] {
    const parent = this.inodes.get(place.dir)!;
    const isDir = isDirMode(mode);
    let gid = caller.gid;
    let m = mode;
    if (parent.attr.mode & S_ISGID) {
      // BSD group semantics of setgid directories, as Linux's inode_init_owner.
      gid = parent.attr.gid;
      if (isDir) m |= S_ISGID;
    }
    const ino = this.nextInoValue;
    const attr: Attr = {
      ino,
      mode: m,
      nlink: isDir ? 2 : 1,
      uid: caller.uid,
      gid,
      size: target === undefined ? 0 : Buffer.byteLength(target, 'utf8'),
      rdev,
      atime: now,
      mtime: now,
      ctime: now,
      btime: now,
    };
    const inodeRec: MetaRecord = target === undefined ? { t: 'inode', attr } : { t: 'inode', attr, target };
    return [
      inodeRec,
      { t: 'link', dir: place.dir, name: place.name, ino },
      { t: 'inode', attr: { ...parent.attr, nlink: parent.attr.nlink + (isDir ? 1 : 0), mtime: now, ctime: now } },
    ];
  }
}
