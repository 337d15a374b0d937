/**
 * The fuse-native binding (2.2.6, libfuse 2.9 high-level API), loaded lazily, typed, and corrected.
 *
 * swiftfs runs fuse-native's C built from source with our patch (native-notes/patches/, applied by
 * scripts/build-fuse-native.mjs at `npm install`): the patched binding exports `swiftfs_patch_level`, and
 *  - passes mtime to utimens with flags for UTIME_OMIT / UTIME_NOW, and sets libfuse's flag_utime_omit_ok,
 *    so that setting only one of atime/mtime (touch -m, tar x, rsync -t) reaches us instead of being dropped;
 *  - passes the calling process's uid/gid (fuse_get_context) to create, mkdir, mknod and symlink;
 *  - lets open and create answer "keep the cached pages" (fi->keep_cache; patch level 2).
 * The npm prebuild (unpatched) still works, with the old limits: `bindingInfo()` says which one is loaded and
 * the daemon logs a warning for the prebuild.
 *
 * Defects of fuse-native's JS (and of the unpatched C) that matter to a filesystem people trust, all checked
 * against its index.js / fuse-native.c and on a real mount (native-notes/fuse-native.md):
 *  1. `_op_fgetattr` calls `ops.getattr(path)`: the handle is dropped. Overridden to call `ops.fgetattr(path, fh)`.
 *  2. Unpatched binding only: the C `utimens` dispatcher passes atime twice (`FUSE_UINT64_TO_INTS_ARGV(l->atime,
 *     5)`): mtime never reaches JS. The thread-locals struct it copies from is a Buffer that JS allocated
 *     (`_malloc`) and that is handed to every handler as its first argument; mtime sits right after atime in
 *     it. We read it from there, after checking that the atime field holds the atime we were given (so a
 *     different layout is detected, logged, and degrades to the old behaviour instead of reading garbage).
 *  3. `_op_getxattr` copies the value into libfuse's buffer without checking its size and returns the full
 *     length (libfuse would then send bytes past its buffer); `_op_listxattr` likewise. Overridden to answer
 *     ERANGE when the caller's buffer is too small, and the exact size for a size query.
 *  4. Its stat/statvfs conversions wrap values above 2^32 and force nlink >= 1: getattr, fgetattr, readdir and
 *     statfs take ready arrays from ./stat.ts instead.
 *
 * Loading needs libfuse.so.2 (Debian: libfuse2) at run time; `loadFuseNative()` turns the loader's failure
 * into an explanation.
 */

import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { toStatArray, type FuseStat } from './stat.js';

/** A time given to utimens: ms since the epoch, or "leave it" (UTIME_OMIT), or "the current time" (UTIME_NOW). */
export type FuseTime = number | 'omit' | 'now';

/** The process that made a request (from fuse_get_context; only with the patched binding). */
export interface FuseCaller {
  uid: number;
  gid: number;
}

/** A fuse-native op callback: a result code (0 or a negative errno, or a byte count for read/write) and a value. */
export type FuseCallback<T = never> = [T] extends [never] ? (code: number) => void : (code: number, value?: T) => void;

/** The op table fuse-native calls (the shapes of its index.js, with our fgetattr/utimens/xattr fixes). */
export interface FuseOps {
  init?(cb: (code: number) => void): void;
  access?(path: string, mode: number, cb: (code: number) => void): void;
  statfs?(path: string, cb: (code: number, statfs?: Uint32Array) => void): void;
  getattr(path: string, cb: (code: number, stat?: FuseStat) => void): void;
  fgetattr?(path: string, fh: number, cb: (code: number, stat?: FuseStat) => void): void;
  flush?(path: string, fh: number, cb: (code: number) => void): void;
  fsync?(path: string, datasync: number, fh: number, cb: (code: number) => void): void;
  fsyncdir?(path: string, datasync: number, fh: number, cb: (code: number) => void): void;
  readdir?(path: string, cb: (code: number, names?: string[], stats?: FuseStat[]) => void): void;
  truncate?(path: string, size: number, cb: (code: number) => void): void;
  ftruncate?(path: string, fh: number, size: number, cb: (code: number) => void): void;
  /** 'omit'/'now' only come from the patched binding (the prebuild's libfuse drops single-time updates). */
  utimens?(path: string, atime: FuseTime, mtime: FuseTime, cb: (code: number) => void): void;
  readlink?(path: string, cb: (code: number, target?: string) => void): void;
  chown?(path: string, uid: number, gid: number, cb: (code: number) => void): void;
  chmod?(path: string, mode: number, cb: (code: number) => void): void;
  /** `caller` is undefined with the unpatched binding (also for create, mkdir, symlink). */
  mknod?(path: string, mode: number, dev: number, caller: FuseCaller | undefined, cb: (code: number) => void): void;
  setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: (code: number) => void): void;
  /** Our shape (fixed): `size` is the caller's buffer size (0: a size query). */
  getxattr?(path: string, name: string, size: number, cb: (code: number, value?: Buffer) => void): void;
  /** Our shape (fixed). */
  listxattr?(path: string, cb: (code: number, names?: string[]) => void): void;
  removexattr?(path: string, name: string, cb: (code: number) => void): void;
  /** `keepCache`: the kernel keeps the file's cached pages across this open (patch level 2; else ignored). */
  open?(path: string, flags: number, cb: (code: number, fh?: number, keepCache?: boolean) => void): void;
  opendir?(path: string, flags: number, cb: (code: number, fh?: number) => void): void;
  read?(path: string, fh: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void;
  write?(path: string, fh: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void;
  release?(path: string, fh: number, cb: (code: number) => void): void;
  releasedir?(path: string, fh: number, cb: (code: number) => void): void;
  create?(path: string, mode: number, caller: FuseCaller | undefined, cb: (code: number, fh?: number, keepCache?: boolean) => void): void;
  unlink?(path: string, cb: (code: number) => void): void;
  rename?(from: string, to: string, cb: (code: number) => void): void;
  link?(existing: string, newPath: string, cb: (code: number) => void): void;
  symlink?(target: string, path: string, caller: FuseCaller | undefined, cb: (code: number) => void): void;
  mkdir?(path: string, mode: number, caller: FuseCaller | undefined, cb: (code: number) => void): void;
  rmdir?(path: string, cb: (code: number) => void): void;
}

/** Per-op timeouts of fuse-native: ms, or false for none. */
export type FuseTimeouts = { default: number } & Partial<Record<string, number | false>>;

/** The options fuse-native's constructor understands (the subset we use). */
export interface FuseNativeOptions {
  timeout?: number | false | FuseTimeouts;
  force?: boolean;
  mkdir?: boolean;
  debug?: boolean;
  allowOther?: boolean;
  defaultPermissions?: boolean;
  maxRead?: number;
  fsname?: string;
  subtype?: string;
  kernelCache?: boolean;
  autoCache?: boolean;
  entryTimeout?: number;
  attrTimeout?: number;
}

/** An instance of the (fixed) fuse-native class. */
export interface FuseInstance {
  readonly mnt: string;
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  /** The `-o...` argument fuse-native will pass to libfuse (for logs and tests). */
  _fuseOptions(): string;
  /**
   * After the mount is gone (we ran fusermount ourselves): lets go of the native handle that keeps the event
   * loop alive. fuse-native's own unmount() would run `fusermount -uz` first, which fails once unmounted.
   */
  detach(): void;
  /**
   * Turns the binding's answer-in-C for kernel-probed xattr names on or off (isKernelProbedXattr); false when
   * the binding cannot (patch level < 3) or the mount has not started.
   */
  setXattrShortcut(on: boolean): boolean;
}

export interface FuseNativeModule {
  /** The corrected class. */
  Fuse: new (mountpoint: string, ops: FuseOps, opts: FuseNativeOptions) => FuseInstance;
  /** fuse-native's package version. */
  version: string;
  /** Which binary was loaded, and what it can do. */
  binding: FuseBindingInfo;
}

/** The loaded native binding. */
export interface FuseBindingInfo {
  /** The .node file node-gyp-build loaded (build/Release/fuse.node when built from source). */
  file: string;
  /** swiftfs's patch level of the C (0: the unpatched npm prebuild). */
  patchLevel: number;
  /** utimens sees UTIME_OMIT / UTIME_NOW (setting only one of atime/mtime works). */
  singleTimeUpdate: boolean;
  /** create/mkdir/mknod/symlink get the calling process's uid/gid. */
  callerIdentity: boolean;
  /** open/create can tell the kernel to keep the file's cached pages (fi->keep_cache). */
  keepCache: boolean;
  /** getxattr of the kernel-probed names can be answered in C (patch level 3; FuseInstance.setXattrShortcut). */
  xattrShortcut: boolean;
}

/**
 * The xattr names the kernel asks for on its own: security.* (security.capability before every write(2),
 * security.selinux for `ls -l`) and the POSIX ACLs (`ls -l`). The same test as the patched C
 * (swiftfs_kernel_probed_xattr).
 */
export function isKernelProbedXattr(name: string): boolean {
  return name.startsWith('security.') || name === 'system.posix_acl_access' || name === 'system.posix_acl_default';
}

/** The patch level of native-notes/patches/ this code knows (scripts/build-fuse-native.mjs builds it). */
export const SWIFTFS_PATCH_LEVEL = 3;

/** Bits of the patched utimens' flags argument (fuse-native.c SWIFTFS_UTIME_*). */
const UTIME_ATIME_OMIT = 1;
const UTIME_ATIME_NOW = 2;
const UTIME_MTIME_OMIT = 4;
const UTIME_MTIME_NOW = 8;
/** Bits of the patched open/create answer (fuse-native.c SWIFTFS_OPEN_*). */
const OPEN_KEEP_CACHE = 1;

/** Decodes one time of the patched utimens. */
export function decodeFuseTime(ms: number, flags: number, omitBit: number, nowBit: number): FuseTime {
  if (flags & omitBit) return 'omit';
  if (flags & nowBit) return 'now';
  return ms;
}

/** Byte offsets in fuse-native 2.2.6's `fuse_thread_locals_t` on LP64 Linux (see the header comment). */
const LOCALS_ATIME_OFFSET = 104;
const LOCALS_MTIME_OFFSET = 112;

let loaded: FuseNativeModule | undefined;
let mtimeFixWarned = false;

/** Called when the utimens fix cannot read mtime (logged once by the caller's logger). */
let onUtimensFallback: (() => void) | undefined;

export function setUtimensFallbackHandler(fn: () => void): void {
  onUtimensFallback = fn;
}

export class FuseUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FuseUnavailableError';
  }
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type Signal = (code: number, ...values: unknown[]) => void;

/** Loads fuse-native and builds the corrected class (once). Throws FuseUnavailableError with a remedy. */
export function loadFuseNative(): FuseNativeModule {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  let Base: any;
  let binding: any;
  let bindingFile = 'unknown';
  let version = 'unknown';
  try {
    const pkgPath = require.resolve('fuse-native/package.json');
    version = String((require(pkgPath) as { version?: unknown }).version);
    Base = require('fuse-native');
    // The same .node module fuse-native loaded (require caches it): for the op numbers.
    const requireFromFuse = createRequire(pkgPath);
    const gypBuild = requireFromFuse('node-gyp-build');
    bindingFile = String(gypBuild.resolve(dirname(pkgPath)));
    binding = gypBuild(dirname(pkgPath));
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const hint = /libfuse|\.so/.test(message)
      ? 'the FUSE 2 library is missing: install it (Debian/Ubuntu: apt-get install libfuse2 fuse3)'
      : 'the fuse-native module could not be loaded';
    throw new FuseUnavailableError(`cannot use FUSE: ${hint} (${message})`, { cause: err });
  }
  if (version !== '2.2.6') {
    // The overrides below follow 2.2.6's internals exactly; another version may differ.
    process.emitWarning(`swiftfs was written against fuse-native 2.2.6, found ${version}`);
  }
  const opUtimens: number = binding.op_utimens;
  const patchLevel = typeof binding.swiftfs_patch_level === 'number' ? (binding.swiftfs_patch_level as number) : 0;
  const patched = patchLevel >= 1;
  const keepCache = patchLevel >= 2;
  const xattrShortcut = patchLevel >= 3 && typeof binding.swiftfs_set_xattr_shortcut === 'function';
  const callerOf = (uid: unknown, gid: unknown): FuseCaller | undefined =>
    patched && typeof uid === 'number' && typeof gid === 'number' ? { uid, gid } : undefined;

  class FixedFuse extends Base {
    _utimensLocals: Buffer | null = null;

    constructor(mountpoint: string, ops: FuseOps, opts: FuseNativeOptions) {
      super(mountpoint, ops, opts);
      // Fix 2 (unpatched binding): remember the thread-locals buffer of the utimens call being dispatched (ops
      // run one at a time on the JS thread, and _op_utimens is called synchronously from this handler).
      const handlers: ((...args: unknown[]) => unknown)[] = (this as any)._handlers;
      const original = handlers[opUtimens];
      if (original && !patched) {
        handlers[opUtimens] = (nativeHandler: unknown, opCode: unknown, ...args: unknown[]) => {
          this._utimensLocals = Buffer.isBuffer(nativeHandler) ? nativeHandler : null;
          try {
            return original(nativeHandler, opCode, ...args);
          } finally {
            this._utimensLocals = null;
          }
        };
      }
    }

    setXattrShortcut(on: boolean): boolean {
      if (!xattrShortcut || !(this as any)._thread) return false;
      binding.swiftfs_set_xattr_shortcut((this as any)._thread, on ? 1 : 0);
      return true;
    }

    detach(): void {
      binding.fuse_native_unmount((this as any).mnt, (this as any)._thread);
    }

    _op_statfs(signal: Signal, path: string): void {
      (this as any).ops.statfs(path, (code: number, statfs?: Uint32Array) => {
        if (code) return signal(code);
        return signal(0, statfs ?? new Uint32Array(11));
      });
    }

    _op_getattr(signal: Signal, path: string): void {
      (this as any).ops.getattr(path, (code: number, stat?: FuseStat) => {
        if (code) return signal(code);
        return signal(0, toStatArray(stat));
      });
    }

    // Fix 1: pass the handle.
    _op_fgetattr(signal: Signal, path: string, fh: number): void {
      const ops: FuseOps = (this as any).ops;
      const done = (code: number, stat?: FuseStat): void => {
        if (code) return signal(code);
        return signal(0, toStatArray(stat));
      };
      if (ops.fgetattr) ops.fgetattr(path, fh, done);
      else ops.getattr(path, done);
    }

    _op_readdir(signal: Signal, path: string): void {
      (this as any).ops.readdir(path, (code: number, names?: string[], stats?: FuseStat[]) => {
        if (code) return signal(code);
        const list = names ?? [];
        const arrays = stats && stats.length === list.length ? stats.map((s) => toStatArray(s)) : [];
        return signal(0, list, arrays);
      });
    }

    _op_utimens(signal: Signal, path: string, atimeLow: number, atimeHigh: number, mtimeLow?: number, mtimeHigh?: number, flags?: number): void {
      const atime = atimeLow + atimeHigh * 4294967296;
      if (patched) {
        const mtime = (mtimeLow ?? 0) + (mtimeHigh ?? 0) * 4294967296;
        const f = flags ?? 0;
        (this as any).ops.utimens(
          path,
          decodeFuseTime(atime, f, UTIME_ATIME_OMIT, UTIME_ATIME_NOW),
          decodeFuseTime(mtime, f, UTIME_MTIME_OMIT, UTIME_MTIME_NOW),
          (code: number) => signal(code),
        );
        return;
      }
      let mtime = atime;
      const locals = this._utimensLocals;
      if (locals && locals.length >= LOCALS_MTIME_OFFSET + 8 && Number(locals.readBigUInt64LE(LOCALS_ATIME_OFFSET)) === atime) {
        mtime = Number(locals.readBigUInt64LE(LOCALS_MTIME_OFFSET));
      } else if (!mtimeFixWarned) {
        mtimeFixWarned = true;
        onUtimensFallback?.();
      }
      (this as any).ops.utimens(path, atime, mtime, (code: number) => signal(code));
    }

    // The caller's identity (patched binding): one more argument pair for the ops that create an inode. open
    // and create may answer keep_cache (patch level 2; the unpatched C reads only the code and the handle).
    _op_open(signal: Signal, path: string, flags: number): void {
      (this as any).ops.open(path, flags, (code: number, fh?: number, keep?: boolean) =>
        code < 0 ? signal(code) : signal(code, fh ?? 0, keep && keepCache ? OPEN_KEEP_CACHE : 0));
    }

    _op_create(signal: Signal, path: string, mode: number, uid?: number, gid?: number): void {
      (this as any).ops.create(path, mode, callerOf(uid, gid), (code: number, fh?: number, keep?: boolean) =>
        code < 0 ? signal(code) : signal(code, fh ?? 0, keep && keepCache ? OPEN_KEEP_CACHE : 0));
    }

    _op_mkdir(signal: Signal, path: string, mode: number, uid?: number, gid?: number): void {
      (this as any).ops.mkdir(path, mode, callerOf(uid, gid), (code: number) => signal(code));
    }

    _op_mknod(signal: Signal, path: string, mode: number, dev: number, uid?: number, gid?: number): void {
      (this as any).ops.mknod(path, mode, dev, callerOf(uid, gid), (code: number) => signal(code));
    }

    _op_symlink(signal: Signal, target: string, path: string, uid?: number, gid?: number): void {
      (this as any).ops.symlink(target, path, callerOf(uid, gid), (code: number) => signal(code));
    }

    // Fix 3: size checks.
    _op_getxattr(signal: Signal, path: string, name: string, valueBuf: Buffer): void {
      (this as any).ops.getxattr(path, name, valueBuf.length, (code: number, value?: Buffer) => {
        if (code) return signal(code, valueBuf.buffer);
        const v = value ?? Buffer.alloc(0);
        if (valueBuf.length === 0) return signal(v.length, valueBuf.buffer);
        if (v.length > valueBuf.length) return signal(-34 /* ERANGE */, valueBuf.buffer);
        v.copy(valueBuf);
        return signal(v.length, valueBuf.buffer);
      });
    }

    _op_listxattr(signal: Signal, path: string, listBuf: Buffer): void {
      (this as any).ops.listxattr(path, (code: number, names?: string[]) => {
        if (code) return signal(code, listBuf.buffer);
        const list = names ?? [];
        let size = 0;
        for (const n of list) size += Buffer.byteLength(n) + 1;
        if (listBuf.length === 0) return signal(size, listBuf.buffer);
        if (size > listBuf.length) return signal(-34 /* ERANGE */, listBuf.buffer);
        let at = 0;
        for (const n of list) {
          at += listBuf.write(n, at);
          listBuf[at++] = 0;
        }
        return signal(at, listBuf.buffer);
      });
    }
  }

  loaded = {
    Fuse: FixedFuse as unknown as FuseNativeModule['Fuse'],
    version,
    binding: { file: bindingFile, patchLevel, singleTimeUpdate: patched, callerIdentity: patched, keepCache, xattrShortcut },
  };
  return loaded;
}
/* eslint-enable @typescript-eslint/no-explicit-any */
