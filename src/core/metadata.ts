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
 * STUB: the interface is fixed; the implementation is being written (see DESIGN.md).
 */

import type { Attr, Caller, DataRef, DirEntry, ExtentPiece, MetaRecord, StatFs } from './types.js';

export interface Snapshot {
  /** Format version of the snapshot encoding. */
  v: 1;
  nextIno: number;
  [key: string]: unknown;
}

export class FsState {
  /** A fresh filesystem: just the root directory (ino 1), owned by `root`, mode 0755, times = now. */
  static create(now: number, root: Caller = { uid: 0, gid: 0 }, rootMode = 0o755): FsState {
    void now; void root; void rootMode;
    throw new Error('not implemented');
  }

  /** Rebuilds a state from snapshot() output. */
  static restore(snapshot: Snapshot): FsState {
    void snapshot;
    throw new Error('not implemented');
  }

  snapshot(): Snapshot {
    throw new Error('not implemented');
  }

  // ---- lookups (throw FsError ENOENT, ENOTDIR, ENAMETOOLONG, EINVAL as Linux would) ----
  /** Resolves an absolute path to an inode number, without following a final symlink. */
  lookup(path: string): number { void path; throw new Error('not implemented'); }
  getattr(ino: number): Attr { void ino; throw new Error('not implemented'); }
  /** Entries of a directory, without '.' and '..', in a stable order. ENOTDIR for a non-directory. */
  readdir(ino: number): DirEntry[] { void ino; throw new Error('not implemented'); }
  readlink(ino: number): string { void ino; throw new Error('not implemented'); }
  getxattr(ino: number, name: string): Buffer { void ino; void name; throw new Error('not implemented'); }
  listxattr(ino: number): string[] { void ino; throw new Error('not implemented'); }
  /** Pieces covering [off, min(off+len, size)): data refs and holes, in order, with no gaps. */
  extents(ino: number, off: number, len: number): ExtentPiece[] { void ino; void off; void len; throw new Error('not implemented'); }
  statfs(): StatFs { throw new Error('not implemented'); }
  /** Every data object id the state refers to (for garbage collection). */
  referencedObjects(): Set<string> { throw new Error('not implemented'); }
  /** Every WAL ref still in the state (dirty data not yet rewritten to objects). */
  hasWalRefs(): boolean { throw new Error('not implemented'); }

  // ---- plans: validate and return the batch; change nothing ----
  planCreate(path: string, mode: number, caller: Caller, now: number, exclusive: boolean): MetaRecord[] { void path; void mode; void caller; void now; void exclusive; throw new Error('not implemented'); }
  planMknod(path: string, mode: number, rdev: number, caller: Caller, now: number): MetaRecord[] { void path; void mode; void rdev; void caller; void now; throw new Error('not implemented'); }
  planMkdir(path: string, mode: number, caller: Caller, now: number): MetaRecord[] { void path; void mode; void caller; void now; throw new Error('not implemented'); }
  planSymlink(target: string, path: string, caller: Caller, now: number): MetaRecord[] { void target; void path; void caller; void now; throw new Error('not implemented'); }
  planLink(existing: string, path: string, now: number): MetaRecord[] { void existing; void path; void now; throw new Error('not implemented'); }
  /** Unlink; if the last link goes and the inode is not open, the batch also frees it. */
  planUnlink(path: string, now: number): MetaRecord[] { void path; void now; throw new Error('not implemented'); }
  planRmdir(path: string, now: number): MetaRecord[] { void path; void now; throw new Error('not implemented'); }
  /** rename(2) and renameat2 flags RENAME_NOREPLACE / RENAME_EXCHANGE. */
  planRename(from: string, to: string, flags: number, now: number): MetaRecord[] { void from; void to; void flags; void now; throw new Error('not implemented'); }
  planTruncate(ino: number, size: number, now: number): MetaRecord[] { void ino; void size; void now; throw new Error('not implemented'); }
  /** One write record; EISDIR/EINVAL/EFBIG checks. `ref` is where the caller stored the bytes. */
  planWrite(ino: number, off: number, len: number, ref: DataRef, now: number): MetaRecord[] { void ino; void off; void len; void ref; void now; throw new Error('not implemented'); }
  planChmod(ino: number, mode: number, now: number): MetaRecord[] { void ino; void mode; void now; throw new Error('not implemented'); }
  /** uid or gid of -1 (0xffffffff) leaves that one unchanged. */
  planChown(ino: number, uid: number, gid: number, now: number): MetaRecord[] { void ino; void uid; void gid; void now; throw new Error('not implemented'); }
  planUtimens(ino: number, atime: number, mtime: number, now: number): MetaRecord[] { void ino; void atime; void mtime; void now; throw new Error('not implemented'); }
  planSetxattr(ino: number, name: string, value: Buffer, flags: number, now: number): MetaRecord[] { void ino; void name; void value; void flags; void now; throw new Error('not implemented'); }
  planRemovexattr(ino: number, name: string, now: number): MetaRecord[] { void ino; void name; void now; throw new Error('not implemented'); }

  // ---- open files (so that unlinked open files keep their data until the last close) ----
  opened(ino: number): void { void ino; throw new Error('not implemented'); }
  /** The batch to apply when the last handle of an orphan (nlink 0) closes: a free record, or []. */
  planClosed(ino: number): MetaRecord[] { void ino; throw new Error('not implemented'); }
  /** Inodes with nlink 0 that nobody has open (left by a crash): batches freeing them. */
  planFreeOrphans(): MetaRecord[] { throw new Error('not implemented'); }

  // ---- applying ----
  /** Applies a batch (from a plan, the WAL or a journal segment) in order. */
  apply(batch: readonly MetaRecord[]): void { void batch; throw new Error('not implemented'); }
  /** Rewrites WAL refs to object refs after an upload: for each write record of a committed batch. */
  rebase(ino: number, off: number, len: number, from: DataRef, to: DataRef): void { void ino; void off; void len; void from; void to; throw new Error('not implemented'); }
}
