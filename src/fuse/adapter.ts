/**
 * The FUSE adapter: every fuse-native op translated to one VolumeFs call, and nothing more.
 *
 * - Errors become errnos through the core's one table (`toErrno`). An error the core did not mean to raise
 *   (a bug, an unexpected failure) answers EIO and is logged with the op and path (identical ones at most once
 *   a minute, with a count of those suppressed).
 * - Each op is timed and counted (FuseOpObserver: Prometheus histograms in the daemon), and logged at debug.
 * - Write buffers belong to libfuse and are detached by fuse-native as soon as we answer. The core gets them
 *   without a copy: VolumeFs.write is done with its buffer when it resolves (it copies what it keeps), and we
 *   answer only then; fuse-native never answers a write behind our back (no timeout for write: ./mount.ts
 *   OP_TIMEOUTS). This saves a 128 KiB allocation and copy per write (measured: native-notes/kernel.md).
 *   Read results are copied into libfuse's buffer: reads do have a timeout, after which libfuse reuses the
 *   buffer, so the core must not be handed it. The core reads into buffers of ours, reused from a small pool
 *   (a 128 KiB allocation per read otherwise: garbage the size of everything read).
 * - Handles are the core's (>= 1; fuse-native carries them as uint32 and treats 0 as "none").
 * - Unlinked open files: we do not use libfuse's `hard_remove` (with it, libfuse itself answers ENOENT to
 *   every read, write and fstat of an unlinked open file, because its path lookup fails; checked on this
 *   kernel). Without it, libfuse 2 "hides" such a file by renaming it to `.fuse_hiddenXXXXXXXXYYYYYYYY` in
 *   the same directory and unlinks that name after the last release. We recognise that rename (the target
 *   name pattern, and an open handle on the source) and turn it into a real unlink in the core, which keeps
 *   an open inode's data until its last handle is released. So no `.fuse_hidden` name ever exists in the
 *   volume (`rm -rf` of the parent works, a crash leaves nothing behind), and the ops libfuse later sends
 *   with the hidden name are answered through the handles. One difference from Linux remains: the directory
 *   that held such a file cannot be removed (ENOTEMPTY) until the file is closed, as with libfuse's own
 *   hidden files and NFS's .nfsXXXX files (see rmdir below).
 * - New files, directories, nodes and symlinks are owned by the process that creates them (the patched
 *   binding passes its uid/gid from fuse_get_context), unless the mount says otherwise (`owner`: --uid/--gid);
 *   with the unpatched prebuild, by `caller` (the mounting user). The mount's umask is cleared from their mode
 *   on top of the caller's own umask (which the kernel applied).
 * - utimens may get 'omit' (leave that time as it is) or 'now' for either time (the patched binding sets
 *   libfuse's flag_utime_omit_ok: `touch -m`, `touch -a`, `tar x` set only one time).
 * - The kernel's page cache of a file is kept across opens (keep_cache), so that data read or written once is
 *   served from memory afterwards: every change of a read-write volume passes through this mount, and through
 *   the kernel inode that caches it... except with hard links. libfuse 2's high-level API gives each *name*
 *   its own kernel inode: a write through one name leaves the pages cached under another name stale. So a
 *   file that has (or had, during this mount) more than one name gets its pages dropped at each open instead
 *   (close-to-open consistency, as NFS). Needs the patched binding (level 2); without it the mount uses
 *   libfuse's auto_cache (./mount.ts).
 * - The kernel asks for `security.capability` before every write(2) and for `security.selinux` and
 *   `system.posix_acl_access` for every entry `ls -l` shows. While no file of the volume has such an attribute,
 *   the patched binding (level 3) answers those itself (ENODATA) without a round trip here (the daemon turns
 *   that on at mount: ./daemon.ts); `beforeKernelProbedXattr` turns it off before such an attribute is set.
 */

import { dirname } from 'node:path';
import { ERRNO, FsError, errnoNameOf, toErrno } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { O_CREAT, O_RDWR, type Caller, type VolumeFs } from '../core/types.js';
import { isKernelProbedXattr, type FuseCaller, type FuseOps, type FuseTime } from './native.js';
import { attrToStat, toStatfsArray, type FuseStat } from './stat.js';

/** Receives one observation per op (the daemon feeds Prometheus with it). */
export interface FuseOpObserver {
  /** `result` is "ok" or the errno name answered (the shape of src/metrics.ts VolumeMetrics.op). */
  op(name: string, result: string, seconds: number): void;
  /** Bytes moved by one read or write. */
  bytes(name: 'read' | 'write', bytes: number): void;
}

export interface FuseAdapterOptions {
  fs: VolumeFs;
  log: Logger;
  /**
   * Owner of files, directories, nodes and symlinks created through the mount when the binding does not say
   * who the calling process is (the unpatched fuse-native prebuild).
   */
  caller: Caller;
  /** Owner of everything created through the mount, whoever creates it (--uid / --gid); per field. */
  owner?: { uid?: number; gid?: number };
  /** Permission bits cleared from the mode of new files and directories (octal, e.g. 0o022). Default 0. */
  umask?: number;
  observer?: FuseOpObserver;
  /** Log every op at debug level (off unless the log level is debug or trace: it costs an object per op). */
  debugOps?: boolean;
  /**
   * Keep the kernel's cached pages of a file across opens (default true; see the header). Must be false for a
   * mount whose files can change without passing through it (a read-only mount that follows a volume written
   * elsewhere; none does today).
   */
  keepPageCache?: boolean;
  /**
   * How fsync on a directory is made durable. Default: the core's `fsyncdir(path, datasync)` if it has one,
   * else `syncAll()` (everything committed: always enough, since namespace changes are journaled in order).
   */
  fsyncdir?: (path: string, datasync: boolean) => Promise<void>;
  /**
   * Called synchronously before a setxattr of a name the kernel probes by itself (isKernelProbedXattr), before
   * the core sees it: the daemon turns off the binding's answer-in-C shortcut for those names there.
   */
  beforeKernelProbedXattr?: () => void;
}

/** Counters of the adapter, for `swiftfs status` and the write-size check of bench/. */
export interface FuseAdapterStats {
  openHandles: number;
  /** Handles of files unlinked while open (libfuse's hidden files), still open. */
  unlinkedOpen: number;
  ops: Record<string, { count: number; errors: number; seconds: number }>;
  /** Count of writes by size bucket: key = the smallest power of two >= the size, in bytes. */
  writeSizes: Record<string, number>;
  readSizes: Record<string, number>;
  unexpectedErrors: number;
}

export interface FuseAdapter {
  ops: FuseOps;
  stats(): FuseAdapterStats;
}

/** libfuse 2.9 hide_node(): "%s/.fuse_hidden%08x%08x" (node id, counter) in the same directory. */
const ERRNO_NAMES = new Map<number, string>(Object.entries(ERRNO).map(([name, n]) => [n, name]));

function resultName(code: number): string {
  return code >= 0 ? 'ok' : (ERRNO_NAMES.get(-code) ?? `E${-code}`);
}

const HIDDEN_NAME = /^\.fuse_hidden[0-9a-f]{16}$/;
/** Reads up to this size borrow a pooled buffer (the kernel's largest FUSE read with libfuse 2.9). */
const POOLED_READ_SIZE = 128 * 1024;
/** Pooled read buffers kept for reuse (as many reads as the kernel keeps in flight, more or less). */
const READ_POOL_MAX = 64;
const EIO = -5;
const UNEXPECTED_LOG_INTERVAL_MS = 60_000;

function bucketOf(size: number): string {
  let b = 1;
  while (b < size) b *= 2;
  return String(b);
}

function baseName(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? path : path.slice(i + 1);
}

export function createFuseAdapter(options: FuseAdapterOptions): FuseAdapter {
  const { fs, log, caller, observer } = options;
  const ownerUid = options.owner?.uid;
  const ownerGid = options.owner?.gid;
  const umask = (options.umask ?? 0) & 0o7777;
  const debugOps = options.debugOps === true;
  const coreFsyncdir = (fs as Partial<{ fsyncdir(path: string, datasync: boolean): Promise<void> }>).fsyncdir;
  const coreReadInto = (fs as Partial<{ readInto(fh: number, target: Buffer, length: number, position: number): Promise<number> }>).readInto;
  const coreXattrOf = (fs as Partial<{ xattrOf(path: string, name: string): Buffer | undefined }>).xattrOf;
  const readPool: Buffer[] = [];
  const fsyncdir = options.fsyncdir ?? (coreFsyncdir ? (p: string, d: boolean) => coreFsyncdir.call(fs, p, d) : () => fs.syncAll());

  /** Open handles and the path each was last known by (kept right across renames, for hidden files). */
  const handles = new Map<number, string>();
  /** libfuse hidden name -> the handles that keep the unlinked file open. */
  const hidden = new Map<string, Set<number>>();
  /** Inodes with more than one name now or earlier in this mount: their cached pages are dropped at open. */
  const linked = new Set<number>();
  const keepPageCache = options.keepPageCache !== false;

  const opStats: FuseAdapterStats['ops'] = {};
  const writeSizes: Record<string, number> = {};
  const readSizes: Record<string, number> = {};
  let unexpectedErrors = 0;
  const unexpectedSeen = new Map<string, { at: number; suppressed: number }>();

  function record(op: string, started: bigint, code: number): void {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const s = (opStats[op] ??= { count: 0, errors: 0, seconds: 0 });
    s.count++;
    s.seconds += seconds;
    if (code < 0) s.errors++;
    observer?.op(op, resultName(code), seconds);
  }

  function errnoFor(op: string, path: string, err: unknown): number {
    const { known } = errnoNameOf(err);
    if (!known) {
      unexpectedErrors++;
      const message = err instanceof Error ? err.message : String(err);
      const key = `${op}\0${message}`;
      const now = Date.now();
      const seen = unexpectedSeen.get(key);
      if (seen && now - seen.at < UNEXPECTED_LOG_INTERVAL_MS) {
        seen.suppressed++;
      } else {
        if (unexpectedSeen.size > 1000) unexpectedSeen.clear();
        unexpectedSeen.set(key, { at: now, suppressed: 0 });
        log.error({ op, path, err, suppressedSinceLast: seen?.suppressed ?? 0 }, `unexpected error in FUSE ${op}: answered EIO`);
      }
      return EIO;
    }
    return toErrno(err);
  }

  /**
   * Runs one op: `work` resolves to the success reply (0 or a byte count, and an optional value); a rejection
   * becomes a negative errno. Never throws: fuse-native must always get exactly one answer.
   */
  function run<T>(op: string, path: string, reply: (code: number, value?: T) => void, work: () => Promise<[number, T?]>): void {
    const started = process.hrtime.bigint();
    let promise: Promise<[number, T?]>;
    try {
      promise = work();
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      ([code, value]) => {
        record(op, started, code);
        if (debugOps) log.debug({ op, path, result: code }, 'fuse op');
        reply(code, value);
      },
      (err: unknown) => {
        const code = errnoFor(op, path, err);
        record(op, started, code);
        if (debugOps) log.debug({ op, path, result: code, err: errnoNameOf(err).name }, 'fuse op failed');
        reply(code);
      },
    );
  }

  const modeOf = (mode: number): number => mode & ~umask;

  /** The owner of a new inode: the mount's override, else the calling process, else the mount's default. */
  function ownerOf(from: FuseCaller | undefined): Caller {
    return { uid: ownerUid ?? from?.uid ?? caller.uid, gid: ownerGid ?? from?.gid ?? caller.gid };
  }

  /** The handle to answer for a hidden (unlinked, still open) path, if it is one. */
  function hiddenHandle(path: string): number | undefined {
    const set = hidden.get(path);
    if (!set) return undefined;
    for (const fh of set) return fh;
    return undefined;
  }

  async function statOf(path: string): Promise<FuseStat> {
    const fh = hiddenHandle(path);
    return attrToStat(fh !== undefined ? await fs.fgetattr(fh) : await fs.getattr(path));
  }

  function noteOpen(path: string, fh: number): number {
    if (!Number.isInteger(fh) || fh < 1 || fh > 0x7fffffff) {
      throw new Error(`the core returned handle ${fh}; FUSE needs 1..2^31-1`);
    }
    handles.set(fh, path);
    return fh;
  }

  /** May the kernel keep the pages it caches for this open file's name (see the header)? */
  async function keepCacheOf(fh: number): Promise<boolean> {
    if (!keepPageCache) return false;
    try {
      const attr = await fs.fgetattr(fh);
      if (attr.nlink > 1) linked.add(attr.ino);
      return !linked.has(attr.ino);
    } catch {
      return false; // never fail an open that succeeded: dropping the pages is always right
    }
  }

  type Opened = { fh: number; keep: boolean };
  const openReply = (cb: (code: number, fh?: number, keepCache?: boolean) => void) => (code: number, v?: Opened): void => cb(code, v?.fh, v?.keep);

  function renamed(from: string, to: string): void {
    const prefix = `${from}/`;
    for (const [fh, p] of handles) {
      if (p === from) handles.set(fh, to);
      else if (p.startsWith(prefix)) handles.set(fh, to + p.slice(from.length));
    }
    for (const [p, set] of [...hidden]) {
      if (p.startsWith(prefix)) {
        hidden.delete(p);
        hidden.set(to + p.slice(from.length), set);
      }
    }
  }

  /** Is this rename libfuse hiding an open file that is being unlinked (or replaced by a rename)? */
  function isHide(from: string, to: string): number[] | undefined {
    if (!HIDDEN_NAME.test(baseName(to)) || dirname(from) !== dirname(to)) return undefined;
    const fhs: number[] = [];
    for (const [fh, p] of handles) if (p === from) fhs.push(fh);
    return fhs.length > 0 ? fhs : undefined;
  }

  const ops: FuseOps = {
    init(cb) {
      cb(0);
    },

    access(path, _mode, cb) {
      // The kernel checks permissions itself (default_permissions); access(2) only needs the file to exist.
      run('access', path, cb, async () => {
        await statOf(path);
        return [0];
      });
    },

    statfs(path, cb) {
      run('statfs', path, cb, async () => [0, toStatfsArray(await fs.statfs())]);
    },

    getattr(path, cb) {
      run('getattr', path, cb, async () => [0, await statOf(path)]);
    },

    fgetattr(path, fh, cb) {
      run('fgetattr', path, cb, async () => [0, fh > 0 && handles.has(fh) ? attrToStat(await fs.fgetattr(fh)) : await statOf(path)]);
    },

    readdir(path, cb) {
      const reply = (code: number, value?: { names: string[]; stats: FuseStat[] }): void => cb(code, value?.names, value?.stats);
      run('readdir', path, reply, async () => {
        const [entries, self] = await Promise.all([fs.readdir(path), fs.getattr(path)]);
        const parent = path === '/' ? self : await fs.getattr(dirname(path));
        const names = ['.', '..'];
        const stats = [attrToStat(self), attrToStat(parent)];
        for (const e of entries) {
          names.push(e.name);
          stats.push(attrToStat(e.attr));
        }
        return [0, { names, stats }];
      });
    },

    readlink(path, cb) {
      run('readlink', path, cb, async () => [0, await fs.readlink(path)]);
    },

    open(path, flags, cb) {
      run('open', path, openReply(cb), async () => {
        const fh = noteOpen(path, await fs.open(path, flags));
        return [0, { fh, keep: await keepCacheOf(fh) }];
      });
    },

    create(path, mode, from, cb) {
      // fuse-native passes the mode only, not the open flags: the kernel sends CREATE only after a failed
      // lookup, and checks O_EXCL itself; the handle is opened read-write (the kernel enforces the access mode).
      run('create', path, openReply(cb), async () => {
        const fh = noteOpen(path, await fs.create(path, modeOf(mode), O_CREAT | O_RDWR, ownerOf(from)));
        return [0, { fh, keep: await keepCacheOf(fh) }];
      });
    },

    read(path, fh, buf, len, pos, cb) {
      const reply = (code: number): void => cb(code);
      run('read', path, reply, async () => {
        let data: Buffer;
        if (coreReadInto && len <= POOLED_READ_SIZE) {
          // Ours until the core resolves, even if fuse-native timed the request out meanwhile.
          const tmp = readPool.pop() ?? Buffer.allocUnsafeSlow(POOLED_READ_SIZE);
          try {
            const got = await coreReadInto.call(fs, fh, tmp, len, pos);
            data = tmp.subarray(0, got);
            data.copy(buf, 0, 0, Math.min(got, buf.length));
          } finally {
            if (readPool.length < READ_POOL_MAX) readPool.push(tmp);
          }
        } else {
          data = await fs.read(fh, len, pos);
          data.copy(buf, 0, 0, Math.min(data.length, len, buf.length));
        }
        const n = Math.min(data.length, len, buf.length);
        readSizes[bucketOf(n)] = (readSizes[bucketOf(n)] ?? 0) + 1;
        observer?.bytes('read', n);
        return [n];
      });
    },

    write(path, fh, buf, len, pos, cb) {
      const reply = (code: number): void => cb(code);
      // libfuse's buffer, valid until we answer, which is after the core is done with it (see the header).
      const data = len === buf.length ? buf : buf.subarray(0, len);
      run('write', path, reply, async () => {
        const n = await fs.write(fh, data, pos);
        writeSizes[bucketOf(len)] = (writeSizes[bucketOf(len)] ?? 0) + 1;
        observer?.bytes('write', n);
        return [n];
      });
    },

    flush(path, fh, cb) {
      run('flush', path, cb, async () => {
        if (fh > 0) await fs.flush(fh);
        return [0];
      });
    },

    fsync(path, datasync, fh, cb) {
      // fuse-native's order is (path, datasync, fh), whatever its README says.
      run('fsync', path, cb, async () => {
        if (fh > 0) await fs.fsync(fh, datasync !== 0);
        else await fsyncdir(path, datasync !== 0);
        return [0];
      });
    },

    fsyncdir(path, datasync, _fh, cb) {
      run('fsyncdir', path, cb, async () => {
        await fsyncdir(path, datasync !== 0);
        return [0];
      });
    },

    release(path, fh, cb) {
      run('release', path, cb, async () => {
        handles.delete(fh);
        for (const set of hidden.values()) set.delete(fh);
        await fs.release(fh);
        return [0];
      });
    },

    releasedir(_path, _fh, cb) {
      cb(0);
    },

    truncate(path, size, cb) {
      run('truncate', path, cb, async () => {
        const fh = hiddenHandle(path);
        if (fh !== undefined) await fs.ftruncate(fh, size);
        else await fs.truncate(path, size);
        return [0];
      });
    },

    ftruncate(path, fh, size, cb) {
      run('ftruncate', path, cb, async () => {
        if (fh > 0 && handles.has(fh)) await fs.ftruncate(fh, size);
        else await fs.truncate(path, size);
        return [0];
      });
    },

    utimens(path, atime, mtime, cb) {
      run('utimens', path, cb, async () => {
        if (atime === 'omit' && mtime === 'omit') return [0]; // utimensat(2): nothing changes, not even ctime
        const now = Date.now();
        // An omitted time keeps its value, read here: the kernel holds the inode's lock across a setattr, so no
        // write through this name runs in between (through another hard link it could: its mtime may then be
        // lost to ours, a window of microseconds).
        const current = atime === 'omit' || mtime === 'omit' ? await statOf(path) : undefined;
        const value = (t: FuseTime, kept: number | undefined): number => (t === 'now' ? now : t === 'omit' ? kept! : t);
        await fs.utimens(path, value(atime, current?.atime), value(mtime, current?.mtime));
        return [0];
      });
    },

    chmod(path, mode, cb) {
      run('chmod', path, cb, async () => {
        await fs.chmod(path, mode);
        return [0];
      });
    },

    chown(path, uid, gid, cb) {
      run('chown', path, cb, async () => {
        await fs.chown(path, uid, gid);
        return [0];
      });
    },

    mknod(path, mode, dev, from, cb) {
      run('mknod', path, cb, async () => {
        await fs.mknod(path, modeOf(mode), dev, ownerOf(from));
        return [0];
      });
    },

    mkdir(path, mode, from, cb) {
      run('mkdir', path, cb, async () => {
        await fs.mkdir(path, modeOf(mode), ownerOf(from));
        return [0];
      });
    },

    rmdir(path, cb) {
      run('rmdir', path, cb, async () => {
        // A directory holding a file that was unlinked while open is empty in the volume, but libfuse still
        // has the file's node under it: removing the directory would make libfuse answer ENOENT to every
        // later read, write and fstat of that open file. So it stays until the file is closed (libfuse's own
        // behaviour without hard_remove, and NFS's with its .nfsXXXX files).
        for (const [p, set] of hidden) {
          if (set.size > 0 && dirname(p) === path) throw new FsError('ENOTEMPTY', `${path} holds a file that was unlinked while still open`);
        }
        await fs.rmdir(path);
        return [0];
      });
    },

    unlink(path, cb) {
      run('unlink', path, cb, async () => {
        const set = hidden.get(path);
        if (set) {
          // libfuse removing a hidden file after its last release: the core unlinked it already.
          if (set.size === 0) hidden.delete(path);
          return [0];
        }
        await fs.unlink(path);
        return [0];
      });
    },

    rename(from, to, cb) {
      run('rename', from, cb, async () => {
        const hiding = isHide(from, to);
        if (hiding) {
          await fs.unlink(from);
          hidden.set(to, new Set(hiding));
          for (const fh of hiding) handles.set(fh, to);
          return [0];
        }
        await fs.rename(from, to, 0);
        renamed(from, to);
        return [0];
      });
    },

    link(existing, newPath, cb) {
      run('link', newPath, cb, async () => {
        await fs.link(existing, newPath);
        linked.add((await fs.getattr(newPath)).ino);
        return [0];
      });
    },

    symlink(target, path, from, cb) {
      run('symlink', path, cb, async () => {
        await fs.symlink(target, path, ownerOf(from));
        return [0];
      });
    },

    setxattr(path, name, value, _position, flags, cb) {
      const copy = Buffer.from(value); // libfuse's memory, detached when we answer
      if (isKernelProbedXattr(name)) options.beforeKernelProbedXattr?.();
      run('setxattr', path, cb, async () => {
        await fs.setxattr(path, name, copy, flags);
        return [0];
      });
    },

    getxattr(path, name, _size, cb) {
      // The kernel asks for security.capability before every write(2) (kernel.md, "getxattr traffic"): a
      // missing attribute is answered without an exception when the core can say so.
      if (coreXattrOf) {
        run('getxattr', path, cb, async () => {
          const value = coreXattrOf.call(fs, path, name);
          return value === undefined ? [-ERRNO.ENODATA] : [0, value];
        });
        return;
      }
      run('getxattr', path, cb, async () => [0, await fs.getxattr(path, name)]);
    },

    listxattr(path, cb) {
      run('listxattr', path, cb, async () => [0, await fs.listxattr(path)]);
    },

    removexattr(path, name, cb) {
      run('removexattr', path, cb, async () => {
        await fs.removexattr(path, name);
        return [0];
      });
    },
  };

  function stats(): FuseAdapterStats {
    let unlinkedOpen = 0;
    for (const set of hidden.values()) unlinkedOpen += set.size;
    return {
      openHandles: handles.size,
      unlinkedOpen,
      ops: structuredClone(opStats),
      writeSizes: { ...writeSizes },
      readSizes: { ...readSizes },
      unexpectedErrors,
    };
  }

  return { ops, stats };
}
