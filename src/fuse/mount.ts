/**
 * Mounting and unmounting one FUSE filesystem with fuse-native: the options we give libfuse and why, stale
 * mount detection and cleanup before mounting, per-op timeouts, and the unmount sequence.
 *
 * Options (native-notes/kernel.md has the measurements):
 *  - big_writes, max_write=1 MiB, max_read=1 MiB, max_readahead=1 MiB: without big_writes libfuse 2 gets 4 KiB
 *    writes (512 MiB took 40 s). fuse-native's option builder knows none of these; they ride inside `fsname`,
 *    since fuse-native joins the options with commas into one `-o` argument. The kernel still caps each
 *    request at 32 pages (128 KiB): libfuse 2.9 cannot negotiate FUSE_MAX_PAGES. Writes therefore arrive in
 *    128 KiB pieces, which the write-size histogram of the adapter shows.
 *  - use_ino: st_ino is the core's inode number (stable across remounts), not libfuse's node id.
 *  - default_permissions: the kernel checks mode bits and ownership; the core does not repeat it.
 *  - no hard_remove: see ./adapter.ts (with it, unlinked open files answer ENOENT).
 *  - attr/entry timeout 1 s, negative timeout 10 s (read-write). This daemon is the volume's only writer and
 *    every change passes through this kernel, which updates what it caches for the inode it changes. So the
 *    kernel keeps a file's pages across opens (the adapter answers keep_cache at open, with the patched
 *    binding): a file read or written once is then read from memory. Except for hard links: libfuse 2's
 *    high-level API gives each *name* its own kernel inode, so a write through one name leaves the other
 *    name's cached size and pages stale. The adapter drops the pages at each open of a file that has (had)
 *    several names, and the 1 s attribute timeout bounds how long the size seen through another name can lag
 *    (measured: native-notes/kernel.md). kernel_cache (keep pages across opens no matter what) would make
 *    that lag unbounded for hard links, so it is not used. With the unpatched binding (no keep_cache from
 *    JS), libfuse's auto_cache instead (it keeps pages when mtime and size did not change since it last saw
 *    them: any write drops them at the next open). Negative entries ("no such file") can be cached longer:
 *    every name created on the volume is created through this kernel, which drops the negative entry then.
 *    A read-only mount may follow another host's writes: no negative caching.
 *  - allow_other when asked (needed for other users, e.g. postgres, and for Docker containers).
 *  - fsname = the volume's address, subtype swiftfs: /proc/mounts shows "swift://vol /mnt fuse.swiftfs".
 *  - No writeback cache: libfuse 2.9 cannot ask for it, and it would let the kernel hold dirty pages that
 *    fsync must then push through in a way we do not control.
 *
 * Timeouts: fuse-native answers ETIMEDOUT by itself when a handler has not called back after 15 s. For an op
 * that changes something, that answer is a lie (the change may still happen after the caller was told it
 * failed), and a write or fsync may legitimately wait for uploads (backpressure, fsync remote). So ops that
 * change state have no timeout: the core bounds them (store timeouts and retries). Ops that only read get a
 * bound so that a shell never hangs on them: metadata 60 s, read 120 s (a cold block may need a download).
 * write must stay without one: the adapter hands libfuse's write buffer to the core without copying it,
 * which is safe only because nothing answers (and frees that buffer) before the core is done.
 */

import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { Logger } from '../core/log.js';
import {
  SWIFTFS_PATCH_LEVEL,
  loadFuseNative,
  setUtimensFallbackHandler,
  type FuseBindingInfo,
  type FuseInstance,
  type FuseNativeOptions,
  type FuseOps,
  type FuseTimeouts,
} from './native.js';

export interface FuseMountOptions {
  /** Absolute path of the directory to mount on. */
  mountpoint: string;
  /** Shown as the source in /proc/mounts (e.g. the volume's address). */
  fsname: string;
  readOnly?: boolean;
  allowOther?: boolean;
  /** Kernel attribute/entry cache, seconds. Default: 1 (see the header: hard links). */
  attrTimeout?: number;
  entryTimeout?: number;
  /** Caching of "no such file", seconds. Default: 10 read-write, 0 read-only. */
  negativeTimeout?: number;
  /** libfuse debug output on stderr. */
  debug?: boolean;
  /** Raise the kernel's readahead and background-request limits for this mount (root only; best effort). */
  tuneKernel?: boolean;
  /**
   * The ops answer keep_cache at open (the adapter with the patched binding): libfuse's auto_cache is then off.
   * FuseMount sets it from the loaded binding.
   */
  keepCacheByOpen?: boolean;
}

/** Largest write/read request we ask for (the kernel grants 128 KiB with libfuse 2; see the header). */
export const MAX_REQUEST = 1024 * 1024;

/** Ops that change nothing: bounded by fuse-native's timeout. Every other op has none. */
export const OP_TIMEOUTS: FuseTimeouts = {
  default: 60_000,
  read: 120_000,
  readdir: 120_000,
  // Everything that changes state, or waits for uploads: never answered ETIMEDOUT behind the core's back.
  init: false,
  write: false,
  flush: false,
  fsync: false,
  fsyncdir: false,
  release: false,
  releasedir: false,
  create: false,
  open: false,
  truncate: false,
  ftruncate: false,
  utimens: false,
  chmod: false,
  chown: false,
  mknod: false,
  mkdir: false,
  rmdir: false,
  unlink: false,
  rename: false,
  link: false,
  symlink: false,
  setxattr: false,
  removexattr: false,
};

/** Characters allowed in fsname (others would split the option list or confuse /proc/mounts). */
function cleanFsname(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._:/@+%-]/g, '_').slice(0, 200);
  return cleaned === '' ? 'swiftfs' : cleaned;
}

/** The fuse-native options and the raw libfuse options for a mount (pure; tested). */
export function buildFuseOptions(opts: FuseMountOptions): { native: FuseNativeOptions; raw: string[] } {
  const ro = opts.readOnly === true;
  const raw = [
    'big_writes',
    `max_write=${MAX_REQUEST}`,
    `max_readahead=${MAX_REQUEST}`,
    'use_ino',
    `negative_timeout=${opts.negativeTimeout ?? (ro ? 0 : 10)}`,
  ];
  if (opts.keepCacheByOpen !== true) raw.push('auto_cache');
  if (ro) raw.push('ro');
  const native: FuseNativeOptions = {
    fsname: `${cleanFsname(opts.fsname)},${raw.join(',')}`,
    subtype: 'swiftfs',
    defaultPermissions: true,
    allowOther: opts.allowOther === true,
    maxRead: MAX_REQUEST,
    attrTimeout: opts.attrTimeout ?? 1,
    entryTimeout: opts.entryTimeout ?? 1,
    timeout: OP_TIMEOUTS,
    debug: opts.debug === true,
    force: false,
    mkdir: false,
  };
  return { native, raw };
}

// ------------------------------------------------------------------ /proc/self/mountinfo

export interface MountEntry {
  mountPoint: string;
  /** "major:minor" of the mounted filesystem. */
  device: string;
  fsType: string;
  source: string;
}

function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    const device = left[2];
    const mountPoint = left[4];
    const fsType = right[0];
    if (device === undefined || mountPoint === undefined || fsType === undefined) continue;
    out.push({ mountPoint: unescapeMountPath(mountPoint), device, fsType, source: unescapeMountPath(right[1] ?? '') });
  }
  return out;
}

export async function readMounts(): Promise<MountEntry[]> {
  try {
    return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  } catch {
    return [];
  }
}

/** The topmost mount at exactly `dir`. */
export async function mountAt(dir: string): Promise<MountEntry | undefined> {
  let found: MountEntry | undefined;
  for (const m of await readMounts()) if (m.mountPoint === dir) found = m;
  return found;
}

// ------------------------------------------------------------------ helpers around processes

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a program with a deadline; never throws (ENOENT gives code null). */
export function runProgram(file: string, args: string[], timeoutMs = 10_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr, timedOut: false });
      const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
      resolve({ code: typeof e.code === 'number' ? e.code : null, stdout: stdout ?? '', stderr: stderr ?? String(e.message), timedOut: e.killed === true });
    });
  });
}

/**
 * Does the mount at `dir` answer? Asked from a child process (`stat`), with a deadline, so that a hung FUSE
 * daemon can block neither this process's thread pool nor this function. 'dead' = ENOTCONN (the daemon is
 * gone), 'hung' = no answer in time.
 *
 * It looks up a random name below `dir` rather than `dir` itself: the kernel answers stat of the root from
 * its attribute cache for a while even after the daemon died, but an unknown name must be asked for.
 */
export async function probeMount(dir: string, timeoutMs = 5000): Promise<'ok' | 'dead' | 'hung' | 'error'> {
  const probe = `${dir}/.swiftfs-probe-${process.pid}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const r = await runProgram('stat', ['-c', '%i', '--', probe], timeoutMs);
  if (r.timedOut) return 'hung';
  if (/not connected|connection abort/i.test(r.stderr)) return 'dead';
  if (r.code === 0 || /no such file/i.test(r.stderr)) return 'ok';
  return 'error';
}

/** Detaches whatever is mounted at `dir`, lazily: `fusermount -uz`, else `umount -l`. */
export async function detachMount(dir: string): Promise<void> {
  const a = await runProgram('fusermount', ['-uz', '--', dir]);
  if (a.code === 0) return;
  const b = await runProgram('umount', ['-l', '--', dir]);
  if (b.code === 0) return;
  if (!(await mountAt(dir))) return;
  throw new Error(`cannot detach the mount at ${dir}: ${a.stderr.trim() || b.stderr.trim()}`);
}

export class MountpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MountpointError';
  }
}

/**
 * Makes `dir` ready to be mounted on: it must be an existing directory; a dead FUSE mount there (ENOTCONN, or
 * a FUSE mount that does not answer and whose daemon `isServedByLiveDaemon` says is gone) is detached first.
 * A live mount, or a mount of another kind, is an error.
 */
export async function prepareMountpoint(dir: string, log: Logger, isServedByLiveDaemon: (dir: string) => Promise<boolean>): Promise<void> {
  const existing = await mountAt(dir);
  if (existing) {
    const isFuse = existing.fsType === 'fuse' || existing.fsType.startsWith('fuse.');
    if (!isFuse) throw new MountpointError(`${dir} is already a mount point (${existing.fsType} from ${existing.source})`);
    const live = await isServedByLiveDaemon(dir);
    const probe = await probeMount(dir);
    if (probe === 'ok' && live) throw new MountpointError(`${dir} is already mounted (${existing.source}) by a running swiftfs`);
    if (probe === 'ok' && existing.fsType !== 'fuse.swiftfs') throw new MountpointError(`${dir} is already mounted (${existing.fsType} from ${existing.source})`);
    if (probe === 'ok') throw new MountpointError(`${dir} is already mounted (${existing.source}); its daemon is not registered here: unmount it first`);
    if (probe === 'hung' && live) throw new MountpointError(`${dir} is mounted by a running swiftfs that does not answer; stop it first`);
    log.warn({ mountpoint: dir, source: existing.source, fsType: existing.fsType, state: probe }, 'removing a stale FUSE mount');
    await detachMount(dir);
    if (await mountAt(dir)) throw new MountpointError(`${dir}: a stale mount is still there after detaching it`);
  }
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new MountpointError(`mount point ${dir} does not exist`);
    throw new MountpointError(`mount point ${dir}: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) throw new MountpointError(`mount point ${dir} is not a directory`);
}

// ------------------------------------------------------------------ the mount

export interface UnmountOptions {
  /** When the mount is busy, detach it lazily (processes keep their open files until they close them). */
  lazyIfBusy?: boolean;
}

/**
 * One mounted filesystem. `mount()` resolves once the kernel has sent INIT (the mount is usable). Must never
 * be used synchronously from this process (a sync fs call here into our own mount deadlocks: the handler
 * runs on this same thread).
 */
export class FuseMount {
  readonly mountpoint: string;
  readonly options: FuseMountOptions;
  private readonly log: Logger;
  private readonly fuse: FuseInstance;
  /** The native binding serving this mount (patched, or the npm prebuild). */
  readonly binding: FuseBindingInfo;
  private mounted = false;
  private watchTimer: NodeJS.Timeout | undefined;

  private constructor(ops: FuseOps, options: FuseMountOptions, log: Logger) {
    this.mountpoint = resolvePath(options.mountpoint);
    this.options = options;
    this.log = log;
    const { Fuse, binding } = loadFuseNative();
    this.binding = binding;
    setUtimensFallbackHandler(() => log.error('fuse-native utimens: cannot read mtime (unexpected binding layout); mtime is set to atime'));
    this.fuse = new Fuse(this.mountpoint, ops, buildFuseOptions({ ...options, keepCacheByOpen: binding.keepCache }).native);
  }

  /** Mounts `ops` at options.mountpoint (which prepareMountpoint has checked). */
  static async mount(ops: FuseOps, options: FuseMountOptions, log: Logger): Promise<FuseMount> {
    const m = new FuseMount(ops, options, log);
    await new Promise<void>((resolve, reject) => {
      m.fuse.mount((err) => (err ? reject(new Error(`FUSE mount at ${m.mountpoint} failed: ${err.message}`, { cause: err })) : resolve()));
    });
    m.mounted = true;
    log.info({ mountpoint: m.mountpoint, options: m.fuse._fuseOptions(), binding: m.binding }, 'mounted');
    if (m.binding.patchLevel < SWIFTFS_PATCH_LEVEL) {
      log.warn(
        { binding: m.binding.file, patchLevel: m.binding.patchLevel, want: SWIFTFS_PATCH_LEVEL },
        'fuse-native is not built with swiftfs\'s patch (run: node scripts/build-fuse-native.mjs): setting only one of atime/mtime (touch -m, tar x) is ignored, and new files are owned by --uid/--gid or the mounting user, not by their creator',
      );
    }
    if (options.tuneKernel !== false) await m.tuneKernel();
    return m;
  }

  /**
   * getxattr of the names the kernel probes by itself (security.*, POSIX ACLs) answered ENODATA by the binding,
   * with no round trip to JS (on), or by the ops (off). Only right while no file has such an attribute.
   * Returns whether the binding did it (patch level 3).
   */
  setXattrShortcut(on: boolean): boolean {
    return this.mounted && this.fuse.setXattrShortcut(on);
  }

  get isMounted(): boolean {
    return this.mounted;
  }

  /**
   * Raises this connection's readahead (the kernel offers 128 KiB and libfuse cannot raise it) and its limit
   * of concurrent background requests (12 by default), so that sequential reads keep several 128 KiB
   * requests in flight. Root only; silently skipped otherwise.
   */
  private async tuneKernel(): Promise<void> {
    const entry = await mountAt(this.mountpoint);
    if (!entry) return;
    const minor = entry.device.split(':')[1];
    const settings: [string, string][] = [
      [`/sys/class/bdi/${entry.device}/read_ahead_kb`, String(MAX_REQUEST / 1024 * 4)],
      [`/sys/fs/fuse/connections/${minor}/max_background`, '64'],
      [`/sys/fs/fuse/connections/${minor}/congestion_threshold`, '48'],
    ];
    for (const [file, value] of settings) {
      try {
        await writeFile(file, value);
      } catch (err) {
        this.log.debug({ file, err: (err as Error).message }, 'kernel tuning skipped');
      }
    }
  }

  /** Calls `onGone` if the mount disappears from under us (`fusermount -u` or `umount` by someone else). */
  watch(onGone: () => void, intervalMs = 2000): void {
    this.stopWatching();
    this.watchTimer = setInterval(() => {
      void mountAt(this.mountpoint).then((entry) => {
        if (!this.mounted || this.watchTimer === undefined) return;
        if (!entry || (entry.fsType !== 'fuse.swiftfs' && entry.fsType !== 'fuse')) {
          this.stopWatching();
          this.mounted = false;
          this.fuse.detach();
          onGone();
        }
      });
    }, intervalMs);
    this.watchTimer.unref();
  }

  private stopWatching(): void {
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.watchTimer = undefined;
  }

  /**
   * Unmounts: `fusermount -u`; when busy and `lazyIfBusy`, `fusermount -uz` (processes holding files open keep
   * using them until they close them, and this daemon must keep serving them). Resolves 'lazy' in that case.
   */
  async unmount(opts: UnmountOptions = {}): Promise<'done' | 'lazy'> {
    this.stopWatching();
    if (!this.mounted) return 'done';
    const r = await runProgram('fusermount', ['-u', '--', this.mountpoint], 30_000);
    let how: 'done' | 'lazy' = 'done';
    if (r.code !== 0 && (await mountAt(this.mountpoint))) {
      if (!opts.lazyIfBusy) throw new Error(`cannot unmount ${this.mountpoint}: ${r.stderr.trim() || 'fusermount failed'}`);
      this.log.warn({ mountpoint: this.mountpoint, reason: r.stderr.trim() }, 'mount busy: detaching lazily');
      await detachMount(this.mountpoint);
      how = 'lazy';
    }
    this.mounted = false;
    this.fuse.detach();
    this.log.info({ mountpoint: this.mountpoint, how }, 'unmounted');
    return how;
  }
}
