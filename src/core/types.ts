/**
 * Shared types of the filesystem core: attributes, the journal records that describe every metadata change,
 * data references, and `VolumeFs`, the FUSE-agnostic API that every door (FUSE, plugin, tests) drives.
 *
 * See ./DESIGN.md for the volume layout and the durability contract.
 */

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

export const ROOT_INO = 1;
export const NAME_MAX = 255;
export const PATH_MAX = 4096;
/** Largest xattr value, as on ext4. */
export const XATTR_SIZE_MAX = 65536;

/** Attributes of an inode, as stat(2) gives them. Times are ms since the epoch. */
export interface Attr {
  ino: number;
  /** File type bits and permission bits, as st_mode. */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  /** Device number for character/block special files. */
  rdev: number;
  /** ms since the epoch (may carry a fraction for sub-ms precision). */
  atime: number;
  mtime: number;
  ctime: number;
  /** Creation time, ms. */
  btime: number;
}

/**
 * Where a file's bytes live.
 *  - `{ obj, off }`: in the immutable data object `obj` (an object id, see DESIGN.md), starting at byte `off`.
 *  - `{ wal, off }`: not uploaded yet; in local write-ahead log segment number `wal` at byte `off` (never
 *    written to a remote journal segment).
 */
export type DataRef = { obj: string; off: number } | { wal: number; off: number };

/**
 * One metadata change. A batch of records is applied atomically (it is one journal segment, or one local
 * write-ahead log entry); every POSIX operation produces exactly one batch. Records are redo records: applying
 * them in order to the state they were produced against yields the new state.
 */
export type MetaRecord =
  /** Creates or replaces an inode's attributes (not its data, entries or xattrs). `target` for symlinks. */
  | { t: 'inode'; attr: Attr; target?: string }
  /** Sets directory entry `name` in directory `dir` to `ino` (replacing any previous entry). */
  | { t: 'link'; dir: number; name: string; ino: number }
  /** Removes directory entry `name` from directory `dir`. */
  | { t: 'unlink'; dir: number; name: string }
  /** Forgets an inode with all its data and xattrs (its last link is gone and nobody has it open). */
  | { t: 'free'; ino: number }
  /** File data [off, off+len) now lives at `ref`. Grows size to off+len if larger; sets mtime/ctime. */
  | { t: 'write'; ino: number; off: number; len: number; ref: DataRef; mtime: number }
  /** Sets the size; data past it is dropped, a hole is added below it. Sets mtime/ctime. */
  | { t: 'trunc'; ino: number; size: number; mtime: number }
  /** Sets (value base64) or removes (null) an extended attribute. */
  | { t: 'xattr'; ino: number; name: string; value: string | null; ctime: number };

/** A piece of a file as read from the extent map: bytes at `ref`, or a hole (zeros) when ref is null. */
export interface ExtentPiece {
  /** Offset in the file. */
  off: number;
  len: number;
  ref: DataRef | null;
}

export interface DirEntry {
  name: string;
  attr: Attr;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  namemax: number;
}

/** The caller of an operation (the kernel tells FUSE; tests choose). Used for ownership of new files. */
export interface Caller {
  uid: number;
  gid: number;
}

/** open(2) flags the core cares about (Linux values). */
export const O_ACCMODE = 0o3;
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

/**
 * The filesystem API of one mounted volume, keyed by path and by handle, with no FUSE types. Every method
 * rejects with FsError (see ./errors.ts) carrying the errno Linux would give; a store failure underneath
 * surfaces as the errno mapped in errors.ts. Paths are absolute ('/' is the root), already normalised by the
 * kernel (no '.', '..' or '//' components).
 */
export interface VolumeFs {
  getattr(path: string): Promise<Attr>;
  fgetattr(fh: number): Promise<Attr>;
  readdir(path: string): Promise<DirEntry[]>;
  readlink(path: string): Promise<string>;

  /** Opens an existing file (O_CREAT is handled by create). Returns a handle >= 1. */
  open(path: string, flags: number): Promise<number>;
  /** Creates and opens a regular file (fails with EEXIST if it exists and O_EXCL is set). */
  create(path: string, mode: number, flags: number, caller?: Caller): Promise<number>;
  read(fh: number, length: number, position: number): Promise<Buffer>;
  /** Writes all of `data` (the core copies it before resolving if it keeps it). Returns bytes written. */
  write(fh: number, data: Buffer, position: number): Promise<number>;
  /** Called on each close(2) of a descriptor: applies the close durability rule (DESIGN.md). */
  flush(fh: number): Promise<void>;
  /** fsync/fdatasync: returns when the data is durable per the volume's fsync mode. */
  fsync(fh: number, datasync: boolean): Promise<void>;
  /** The last close of a handle. */
  release(fh: number): Promise<void>;
  ftruncate(fh: number, size: number): Promise<void>;

  mknod(path: string, mode: number, rdev: number, caller?: Caller): Promise<void>;
  mkdir(path: string, mode: number, caller?: Caller): Promise<void>;
  symlink(target: string, path: string, caller?: Caller): Promise<void>;
  link(existingPath: string, newPath: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  rename(from: string, to: string, flags?: number): Promise<void>;
  truncate(path: string, size: number): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  chown(path: string, uid: number, gid: number): Promise<void>;
  /** Times in ms since the epoch. */
  utimens(path: string, atime: number, mtime: number): Promise<void>;

  setxattr(path: string, name: string, value: Buffer, flags: number): Promise<void>;
  getxattr(path: string, name: string): Promise<Buffer>;
  listxattr(path: string): Promise<string[]>;
  removexattr(path: string, name: string): Promise<void>;

  statfs(): Promise<StatFs>;
  /** Syncs the whole volume (syncfs / unmount): everything is durable in the store when it resolves. */
  syncAll(): Promise<void>;
}
