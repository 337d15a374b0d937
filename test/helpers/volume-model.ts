/**
 * Property test harness of a whole Volume against the kernel (test/unit/volume-property.test.ts on the memory
 * store, test/integration/volume-property.test.ts on the real Swift through both its APIs).
 *
 * A run formats a volume, opens it, and drives it through the VolumeFs API with a random sequence of
 * operations, applying each one also to a real directory (KernelReference, ./kernel-reference.ts): paths and
 * handles, open (with O_CREAT/O_EXCL/O_TRUNC/O_APPEND and every access mode), read/write/ftruncate/fstat/
 * fsync/close of handles (writes over a block too, which the volume splits into one WAL entry per block), the
 * namespace operations, utimens, xattrs, syncAll, checkpoints, pauses that let background commits run, writes
 * to distinct files issued at once with an fsync beside them, and:
 *   - restart: a clean close and open again with the same cache directory;
 *   - crash: the volume is abandoned without committing (as a killed process leaves it: Volume.close({abandon}),
 *     the way test/unit/volume-durability.test.ts does it), possibly with one operation still in flight, then
 *       - opened again with the SAME cache directory: everything an operation acknowledged is there (the WAL had
 *         it; the in-flight operation may or may not be);
 *       - or opened on an EMPTY cache directory (a new host): the state is the reference's state at some point
 *         between the last durable point and the crash. Durable points (DESIGN.md's contract): a returned
 *         fsync in mode remote, syncAll, a checkpoint, a close with closeSync, a clean close, and the first commit
 *         of an open. Later changes may be there too, since background commits carry them, but only as a prefix
 *         of the operations: the state must equal the reference as it was after one of them (after one of the
 *         block pieces of a large write; with any subset of parallel writes). The reference is then reset to
 *         that state;
 *   - return: the host of the last new-host crash comes back with its stale cache directory: whatever its WAL
 *     held uncommitted must not be applied over the newer state (lost+found), the state is exactly the reference's;
 *   - peek: a read-only mount on an empty cache directory beside the writer sees a committed state: the
 *     reference's at the last durable point or after one of the operations since.
 * Every operation must fail with the same errno as the kernel's or succeed on both, reads return the kernel's
 * bytes, and (every `compareEvery` operations, and after every restart and crash) the whole tree must agree:
 * names, types, modes, owners, sizes, nlink, hard links, symlink targets, contents, xattrs, mtimes (within
 * the clock tolerance), the open handles' contents, and the inode count (no leaked inodes). At the end the
 * volume is closed and opened read-only on an empty cache directory: the store alone has everything.
 * Error-level log lines of the core fail the run.
 */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import type { ObjectStore } from '../../src/store/object-store.js';
import { Volume, type VolumeOpenOptions } from '../../src/core/volume.js';
import type { Logger } from '../../src/core/log.js';
import { O_ACCMODE, O_APPEND, O_CREAT, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, type Attr } from '../../src/core/types.js';
import {
  KernelReference,
  ShotBuilder,
  XATTR_NAMES,
  attempt,
  attemptAsync,
  byName,
  childPath,
  codeOf,
  dataOf,
  diffTrees,
  inodeCount,
  nsOpArb,
  pathArb,
  seedArb,
  xattrValueOf,
  type NsOp,
  type TreeShot,
} from './kernel-reference.js';

const ROOT = { uid: 0, gid: 0 };
const KiB = 1024;
export const BLOCK = 64 * KiB;
/** Handles open at once (per side). */
const MAX_HANDLES = 4;
/** Two clocks (the kernel's file times and the core's Date.now()) taken within one step of each other. */
const MTIME_TOLERANCE_MS = 30_000;

/** Operations on handles refer to the `h`-th open handle, modulo the number open (ignored when there is none). */
export type VolOp =
  | NsOp
  | { k: 'open'; p: string; flags: number; mode: number }
  | { k: 'fdwrite'; h: number; off: number; len: number; seed: number }
  /**
   * Writes to distinct files (opened, written at once as FUSE's threads issue them, closed), with an fsync beside
   * them: a crash may keep any subset of them (each is one WAL entry, in whatever order they were appended).
   */
  | { k: 'parallel'; writes: { p: string; off: number; len: number; seed: number }[]; fsync: boolean }
  /** Whole aligned blocks written one after the other through a handle (early uploads). */
  | { k: 'stream'; h: number; block: number; blocks: number; seed: number }
  /** off -1: where the previous read of this handle ended (sequential readers get readahead). */
  | { k: 'fdread'; h: number; off: number; len: number }
  | { k: 'ftruncate'; h: number; size: number }
  | { k: 'fstat'; h: number }
  | { k: 'fsync'; h: number; datasync: boolean }
  | { k: 'close'; h: number }
  | { k: 'utimens'; p: string; atime: number; mtime: number }
  | { k: 'stat'; p: string }
  | { k: 'readlink'; p: string }
  | { k: 'readdir'; p: string }
  | { k: 'getxattr'; p: string; name: string }
  | { k: 'listxattr'; p: string }
  | { k: 'syncAll' }
  /** fsync(2) of a directory: a durable point in fsync mode remote. */
  | { k: 'fsyncdir'; p: string }
  | { k: 'checkpoint' }
  | { k: 'wait'; ms: number }
  | { k: 'restart' }
  | { k: 'crash'; newHost: boolean; during: NsOp | null }
  /** A read-only mount on an empty cache directory, while the volume is in use: it sees a committed state. */
  | { k: 'peek' }
  /** The host of the last new-host crash comes back with its stale cache directory (its WAL: lost+found). */
  | { k: 'return' };

/** Options of one run (drawn per run). */
export interface RunConfig {
  fsync: 'remote' | 'local';
  closeSync: boolean;
  commitIntervalMs: number;
  checkpointEvery: number;
  compactAbove: number;
  dirtyLimit: number;
  memoryCacheBytes: number | null;
}

export const configArb: fc.Arbitrary<RunConfig> = fc.record({
  fsync: fc.constantFrom('remote' as const, 'local' as const),
  closeSync: fc.boolean(),
  commitIntervalMs: fc.constantFrom(1, 20, 60_000),
  checkpointEvery: fc.constantFrom(3, 8, 1000),
  compactAbove: fc.constantFrom(0, 2, 16),
  dirtyLimit: fc.constantFrom(256 * KiB, 8 * 1024 * KiB),
  memoryCacheBytes: fc.constantFrom(null, 128 * KiB),
});

const handleArb = fc.integer({ min: 0, max: MAX_HANDLES - 1 });
const accArb = fc.constantFrom(O_RDONLY, O_WRONLY, O_RDWR);
/** open(2) flags: an access mode, O_CREAT (sometimes with O_EXCL), O_TRUNC only when writing, O_APPEND. */
const flagsArb = fc
  .record({ acc: accArb, creat: fc.boolean(), excl: fc.boolean(), trunc: fc.integer({ min: 0, max: 3 }), append: fc.integer({ min: 0, max: 3 }) })
  .map(({ acc, creat, excl, trunc, append }) => acc | (creat ? O_CREAT | (excl ? O_EXCL : 0) : 0) | (acc !== O_RDONLY && trunc === 0 ? O_TRUNC : 0) | (append === 0 ? O_APPEND : 0));
/** Mostly files that SETUP made or O_CREAT makes, so that handles get opened. */
const openPathArb = fc.oneof({ weight: 3, arbitrary: fc.constantFrom('/b', '/a/a', '/c', '/a/c') }, { weight: 1, arbitrary: pathArb });
const TIMES = [1_000_000_000_000, 1_500_000_000_123, 946_684_800_000];

/** The operations of a run: the shared namespace operations, with data sizes spanning several 64 KiB blocks. */
export function volOpArb(opts: { crashes: boolean }): fc.Arbitrary<VolOp> {
  const ns = nsOpArb({ maxOff: 3 * BLOCK, maxLen: BLOCK, maxSize: 4 * BLOCK });
  return fc.oneof(
    { weight: 40, arbitrary: ns },
    { weight: 10, arbitrary: fc.record({ k: fc.constant('open' as const), p: openPathArb, flags: flagsArb, mode: fc.constantFrom(0o644, 0o600, 0o4755) }) },
    {
      weight: 6,
      arbitrary: fc.record({
        k: fc.constant('fdwrite' as const),
        h: handleArb,
        off: fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 3 * BLOCK })),
        // over a block: the volume splits the write at block boundaries (one WAL entry each)
        // not 0: node's writeSync says ok for those without asking the kernel (EBADF on a read-only descriptor)
        len: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 3000 }) }, { weight: 4, arbitrary: fc.integer({ min: 1, max: BLOCK }) }, { weight: 1, arbitrary: fc.integer({ min: BLOCK + 1, max: 3 * BLOCK }) }),
        seed: seedArb,
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        k: fc.constant('parallel' as const),
        writes: fc.array(fc.record({ p: openPathArb, off: fc.integer({ min: 0, max: 3 * BLOCK }), len: fc.integer({ min: 1, max: BLOCK }), seed: seedArb }), { minLength: 2, maxLength: 3 }),
        fsync: fc.boolean(),
      }),
    },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('stream' as const), h: handleArb, block: fc.integer({ min: 0, max: 3 }), blocks: fc.integer({ min: 1, max: 4 }), seed: seedArb }) },
    {
      weight: 5,
      arbitrary: fc.record({
        k: fc.constant('fdread' as const),
        h: handleArb,
        off: fc.oneof(fc.constant(-1), fc.constant(0), fc.integer({ min: 0, max: 4 * BLOCK })),
        // not 0: node's readSync returns 0 for those without asking the kernel (which says EISDIR on a directory)
        len: fc.oneof(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 2 * BLOCK })),
      }),
    },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('ftruncate' as const), h: handleArb, size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 4 * BLOCK })) }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('fstat' as const), h: handleArb }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('fsync' as const), h: handleArb, datasync: fc.boolean() }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('close' as const), h: handleArb }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('utimens' as const), p: pathArb, atime: fc.constantFrom(...TIMES), mtime: fc.constantFrom(...TIMES) }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('stat' as const), p: pathArb }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('readlink' as const), p: pathArb }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('readdir' as const), p: pathArb }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('getxattr' as const), p: pathArb, name: fc.constantFrom(...XATTR_NAMES) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('listxattr' as const), p: pathArb }) },
    { weight: 1, arbitrary: fc.constant({ k: 'syncAll' as const }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('fsyncdir' as const), p: fc.constantFrom('/', '/a', '/a/b') }) },
    { weight: 1, arbitrary: fc.constant({ k: 'checkpoint' as const }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('wait' as const), ms: fc.constantFrom(0, 2, 15, 40) }) },
    { weight: 1, arbitrary: fc.constant({ k: 'restart' as const }) },
    { weight: 1, arbitrary: fc.constant({ k: 'peek' as const }) },
    { weight: opts.crashes ? 2 : 0, arbitrary: fc.constant({ k: 'return' as const }) },
    {
      weight: opts.crashes ? 2 : 0,
      arbitrary: fc.record({ k: fc.constant('crash' as const), newHost: fc.boolean(), during: fc.option(ns, { freq: 2, nil: null }) }),
    },
  );
}

/** What the runs exercised (summed over runs; a test asserts the harness did not degenerate). */
export interface ModelStats {
  runs: number;
  /** Operations compared with the kernel: succeeded on both, failed with the same errno on both. */
  ok: number;
  failed: number;
  /** Operations skipped (their path goes through a symlink, or no such handle). */
  skipped: number;
  restarts: number;
  /** Read-only mounts beside the writer, and how many of them saw a state before the latest. */
  peeks: number;
  peeksEarlier: number;
  /** Stale cache directories brought back after a new-host crash. */
  returns: number;
  crashesSameDir: number;
  crashesNewHost: number;
  /** New-host crashes that came back at a state before the latest (the later operations were not committed). */
  newHostEarlier: number;
  /** Crashes with an operation in flight, and how many of those came back without it. */
  inFlight: number;
  inFlightLost: number;
  treeCompares: number;
  /** [ok, failed, skipped, ms spent (tree comparisons included)] by operation. */
  byOp: Record<string, [number, number, number, number]>;
}

export function emptyStats(): ModelStats {
  return { runs: 0, ok: 0, failed: 0, skipped: 0, restarts: 0, peeks: 0, peeksEarlier: 0, returns: 0, crashesSameDir: 0, crashesNewHost: 0, newHostEarlier: 0, inFlight: 0, inFlightLost: 0, treeCompares: 0, byOp: {} };
}

function count(stats: ModelStats, op: VolOp, i: 0 | 1 | 2): void {
  (stats.byOp[op.k] ??= [0, 0, 0, 0])[i]++;
}

/** Error-level lines of the core's logger (a run fails when there are any). */
function errorLogger(): Logger & { errors: string[] } {
  const errors: string[] = [];
  const none = () => undefined;
  const error = (a: object | string, b?: string) => {
    errors.push(typeof a === 'string' ? a : `${b ?? ''} ${JSON.stringify(a)}`);
  };
  return { errors, error, warn: none, info: none, debug: none } as Logger & { errors: string[] };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface ModelRunOptions {
  store: ObjectStore;
  container: string;
  /** Create the container when formatting (real stores). */
  createContainer?: boolean;
  config: RunConfig;
  /** Extra open options (e.g. timeouts on a real store). */
  open?: Partial<VolumeOpenOptions>;
  /**
   * The single-writer lease's settle delay (VolumeOpenOptions.fenceSettleMs, which every read-write open waits
   * on a store without atomic create-only puts): shorter than the default here, where one writer runs at a time
   * (the abandoned sessions of crashes are dead), but above twice the store's request delays on a loaded host.
   */
  fenceSettleMs: number;
  /** Compare the whole tree every this many operations (and always after restarts and crashes). */
  compareEvery: number;
  /** Counters to add to. */
  stats?: ModelStats;
}

/** A Volume and the kernel reference driven in lockstep. */
export class VolumeModel {
  readonly ref = new KernelReference();
  private v!: Volume;
  private cacheDir = '';
  private readonly cacheDirs: string[] = [];
  /** The cache directory the last new-host crash left behind (its WAL may hold uncommitted entries). */
  private staleDir: string | null = null;
  /** The volume's handle of each open reference handle (same order as ref.handles). */
  private readonly fhs: number[] = [];
  /** Where the last read of each handle ended (same order). */
  private readonly readEnds: number[] = [];
  /** Pictures of the reference since the last durable point (the first one is that point). */
  private history: TreeShot[] = [];
  private readonly log = errorLogger();
  private steps = 0;
  /** What happened, for the failure message. */
  readonly trace: string[] = [];
  private readonly stats: ModelStats;

  constructor(private readonly o: ModelRunOptions) {
    this.stats = o.stats ?? emptyStats();
  }

  private openOptions(cacheDir: string, extra: Partial<VolumeOpenOptions> = {}): VolumeOpenOptions {
    const c = this.o.config;
    return {
      cacheDir,
      walSegmentSize: 2 * 1024 * KiB,
      cacheSize: 64 * 1024 * KiB,
      dirtyLimit: c.dirtyLimit,
      fsync: c.fsync,
      closeSync: c.closeSync,
      commitIntervalMs: c.commitIntervalMs,
      checkpointEvery: c.checkpointEvery,
      compactAbove: c.compactAbove,
      ...(c.memoryCacheBytes !== null ? { memoryCacheBytes: c.memoryCacheBytes } : {}),
      fenceSettleMs: this.o.fenceSettleMs,
      logger: this.log,
      ...this.o.open,
      ...extra,
    };
  }

  private async newCacheDir(): Promise<string> {
    const d = await fsp.mkdtemp(path.join(os.tmpdir(), 'swiftfs-prop-'));
    this.cacheDirs.push(d);
    return d;
  }

  async start(): Promise<void> {
    await Volume.format(this.o.store, this.o.container, { createContainer: this.o.createContainer ?? false, blockSize: BLOCK, root: ROOT, rootMode: 0o755 });
    this.cacheDir = await this.newCacheDir();
    this.v = await Volume.open(this.o.store, this.o.container, this.openOptions(this.cacheDir));
    this.durable();
  }

  /** Marks the current reference state as durable in the store. */
  private durable(): void {
    this.history = [this.ref.shot()];
  }

  /** Notes the reference's state after an operation that may have changed it. */
  private changed(): void {
    this.history.push(this.ref.shot());
  }

  private agree(op: VolOp, ours: string | undefined, real: string | undefined): void {
    assert.equal(ours, real, `${JSON.stringify(op).slice(0, 200)}: the volume says ${ours ?? 'ok'}, the kernel says ${real ?? 'ok'}`);
    if (real === undefined) this.stats.ok++;
    else this.stats.failed++;
    count(this.stats, op, real === undefined ? 0 : 1);
  }

  /** The volume's side of a namespace operation. */
  private async nsOurs(op: NsOp): Promise<void> {
    const v = this.v;
    switch (op.k) {
      case 'mkdir':
        return v.mkdir(op.p, op.mode, ROOT);
      case 'create': {
        const fh = await v.create(op.p, op.mode, O_CREAT | O_WRONLY | (op.excl ? O_EXCL : 0), ROOT);
        return this.closeOurs(fh, true);
      }
      case 'write': {
        const fh = await v.open(op.p, O_WRONLY);
        try {
          await v.write(fh, dataOf(op.len, op.seed), op.off);
        } finally {
          await this.closeOurs(fh, true);
        }
        return;
      }
      case 'truncate':
        return v.truncate(op.p, op.size);
      case 'rename':
        return v.rename(op.from, op.to, 0);
      case 'link':
        return v.link(op.from, op.to);
      case 'unlink':
        return v.unlink(op.p);
      case 'rmdir':
        return v.rmdir(op.p);
      case 'symlink':
        return v.symlink(op.target, op.p, ROOT);
      case 'chmod':
        return v.chmod(op.p, op.mode);
      case 'chown':
        return v.chown(op.p, op.uid, op.gid);
      case 'setxattr':
        return v.setxattr(op.p, op.name, xattrValueOf(op.seed), op.flags);
      case 'removexattr':
        return v.removexattr(op.p, op.name);
    }
  }

  /** close(2) of a volume handle: flush, then release. A close with closeSync commits (a durable point). */
  private async closeOurs(fh: number, writable: boolean): Promise<void> {
    await this.v.flush(fh);
    await this.v.release(fh);
    if (writable && this.o.config.closeSync) this.durable();
  }

  /** Runs one operation on both sides and checks that they agree. */
  async step(op: VolOp): Promise<void> {
    const started = Date.now();
    try {
      await this.runStep(op);
    } finally {
      (this.stats.byOp[op.k] ??= [0, 0, 0, 0])[3] += Date.now() - started;
    }
  }

  private async runStep(op: VolOp): Promise<void> {
    this.trace.push(JSON.stringify(op).slice(0, 160));
    if (op.k === 'stream') {
      for (let i = 0; i < op.blocks; i++) await this.step({ k: 'fdwrite', h: op.h, off: (op.block + i) * BLOCK, len: BLOCK, seed: op.seed + i });
      return;
    }
    const v = this.v;
    const ref = this.ref;
    const hi = 'h' in op ? (ref.handles.length ? op.h % ref.handles.length : 0) : -1;
    const rh = hi >= 0 ? ref.handles[hi] : undefined;
    const fh = hi >= 0 ? this.fhs[hi] : undefined;
    if (hi >= 0 && (rh === undefined || fh === undefined)) {
      this.stats.skipped++;
      count(this.stats, op, 2);
      return;
    }
    switch (op.k) {
      case 'open': {
        const creat = (op.flags & O_CREAT) !== 0;
        if (ref.viaSymlink(op.p, !(creat && op.flags & O_EXCL)) || ref.handles.length >= MAX_HANDLES) return;
        let h = -1;
        const real = attempt(() => {
          h = ref.open(op.p, op.flags, op.mode);
        });
        let ours: string | undefined;
        let got = -1;
        try {
          got = creat ? await v.create(op.p, op.mode, op.flags, ROOT) : await v.open(op.p, op.flags);
        } catch (e) {
          ours = codeOf(e);
        }
        if (real === undefined && ours !== undefined) ref.close(h);
        if (real !== undefined && ours === undefined) await v.release(got);
        this.agree(op, ours, real);
        if (real === undefined) {
          this.fhs.push(got);
          this.readEnds.push(0);
          this.changed();
        }
        break;
      }
      case 'fdwrite': {
        const data = dataOf(op.len, op.seed);
        // The reference writes the pieces the volume appends to its WAL one by one: a crash may keep a prefix.
        const real = attempt(() => {
          for (let done = 0; done < data.length; ) {
            const pos = rh!.flags & O_APPEND ? fs.fstatSync(rh!.fd).size : op.off + done;
            const n = Math.min(data.length - done, data.length - done > BLOCK ? BLOCK - (pos % BLOCK) : BLOCK);
            fs.writeSync(rh!.fd, data, done, n, op.off + done);
            done += n;
            if (done < data.length) this.changed();
          }
        });
        const ours = await attemptAsync(() => v.write(fh!, data, op.off));
        this.agree(op, ours, real);
        this.changed();
        break;
      }
      case 'parallel':
        await this.parallel(op);
        break;
      case 'fdread': {
        const off = op.off < 0 ? this.readEnds[hi]! : op.off;
        const buf = Buffer.alloc(op.len);
        let n = 0;
        const real = attempt(() => {
          n = fs.readSync(rh!.fd, buf, 0, op.len, off);
        });
        let got: Buffer = Buffer.alloc(0);
        const ours = await attemptAsync(async () => {
          got = await v.read(fh!, op.len, off);
        });
        this.agree(op, ours, real);
        if (real === undefined) {
          assert.equal(got.length, n, `${JSON.stringify(op)}: read length`);
          assert.ok(got.equals(buf.subarray(0, n)), `${JSON.stringify(op)}: read data`);
          this.readEnds[hi] = off + n;
        }
        break;
      }
      case 'ftruncate': {
        const real = attempt(() => fs.ftruncateSync(rh!.fd, op.size));
        const ours = await attemptAsync(() => v.ftruncate(fh!, op.size));
        this.agree(op, ours, real);
        this.changed();
        break;
      }
      case 'fstat': {
        const st = fs.fstatSync(rh!.fd);
        this.compareAttr(`fstat of handle ${hi}`, await v.fgetattr(fh!), st);
        count(this.stats, op, 0);
        break;
      }
      case 'fsync': {
        fs.fsyncSync(rh!.fd);
        await v.fsync(fh!, op.datasync);
        if (this.o.config.fsync === 'remote') this.durable();
        count(this.stats, op, 0);
        break;
      }
      case 'close': {
        await this.compareHandle(hi);
        ref.close(hi);
        this.fhs.splice(hi, 1);
        this.readEnds.splice(hi, 1);
        await this.closeOurs(fh!, (rh!.flags & O_ACCMODE) !== O_RDONLY);
        this.changed();
        count(this.stats, op, 0);
        break;
      }
      case 'utimens': {
        if (ref.viaSymlink(op.p, true)) return;
        const real = attempt(() => fs.utimesSync(ref.real(op.p), op.atime / 1000, op.mtime / 1000));
        const ours = await attemptAsync(() => v.utimens(op.p, op.atime, op.mtime));
        this.agree(op, ours, real);
        this.changed();
        break;
      }
      case 'stat': {
        if (ref.viaSymlink(op.p, false)) return;
        let st: fs.Stats | undefined;
        const real = attempt(() => {
          st = fs.lstatSync(ref.real(op.p));
        });
        let a: Attr | undefined;
        const ours = await attemptAsync(async () => {
          a = await v.getattr(op.p);
        });
        this.agree(op, ours, real);
        if (st && a) this.compareAttr(`stat ${op.p}`, a, st);
        break;
      }
      case 'readlink': {
        if (ref.viaSymlink(op.p, false)) return;
        let t1 = '';
        let t2 = '';
        const real = attempt(() => {
          t1 = fs.readlinkSync(ref.real(op.p));
        });
        const ours = await attemptAsync(async () => {
          t2 = await v.readlink(op.p);
        });
        this.agree(op, ours, real);
        assert.equal(t2, t1, `${op.p}: readlink`);
        break;
      }
      case 'readdir': {
        if (ref.viaSymlink(op.p, true)) return;
        let n1: string[] = [];
        let n2: string[] = [];
        const real = attempt(() => {
          n1 = fs.readdirSync(ref.real(op.p)).sort();
        });
        const ours = await attemptAsync(async () => {
          n2 = (await v.readdir(op.p)).map((e) => e.name).sort();
        });
        this.agree(op, ours, real);
        assert.deepEqual(n2, n1, `${op.p}: readdir`);
        break;
      }
      case 'getxattr': {
        if (ref.viaSymlink(op.p, false)) return;
        let x1: Buffer = Buffer.alloc(0);
        let x2: Buffer = Buffer.alloc(0);
        const real = attempt(() => {
          x1 = ref.getxattr(op.p, op.name);
        });
        const ours = await attemptAsync(async () => {
          x2 = await v.getxattr(op.p, op.name);
        });
        this.agree(op, ours, real);
        assert.ok(x2.equals(x1), `${op.p}: getxattr ${op.name}`);
        break;
      }
      case 'listxattr': {
        if (ref.viaSymlink(op.p, false)) return;
        let l1: string[] = [];
        let l2: string[] = [];
        const real = attempt(() => {
          l1 = ref.listxattr(op.p);
        });
        const ours = await attemptAsync(async () => {
          l2 = (await v.listxattr(op.p)).sort();
        });
        this.agree(op, ours, real);
        assert.deepEqual(l2, l1, `${op.p}: listxattr`);
        break;
      }
      case 'syncAll':
        await v.syncAll();
        this.durable();
        break;
      case 'fsyncdir': {
        let fd = -1;
        try {
          fd = fs.openSync(ref.real(op.p), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
        } catch {
          return; // the door only calls it on an open directory
        }
        fs.fsyncSync(fd);
        fs.closeSync(fd);
        await v.fsyncdir(op.p, false);
        if (this.o.config.fsync === 'remote') this.durable();
        count(this.stats, op, 0);
        break;
      }
      case 'checkpoint':
        await v.checkpointNow();
        this.durable();
        break;
      case 'wait':
        await sleep(op.ms);
        break;
      case 'restart':
        await this.restart();
        return;
      case 'crash':
        await this.crash(op.newHost, op.during);
        return;
      case 'peek':
        await this.peek();
        return;
      case 'return':
        await this.comeBack();
        return;
      default: {
        if (ref.skips(op)) {
          this.stats.skipped++;
          count(this.stats, op, 2);
          return;
        }
        const real = ref.run(op);
        const ours = await attemptAsync(() => this.nsOurs(op));
        this.agree(op, ours, real);
        this.changed();
      }
    }
    if (++this.steps % this.o.compareEvery === 0) await this.compareAll('');
  }

  private compareAttr(what: string, a: Attr, st: fs.Stats): void {
    assert.equal(a.mode, st.mode, `${what}: mode`);
    assert.equal(a.nlink, st.nlink, `${what}: nlink`);
    assert.equal(a.uid, st.uid, `${what}: uid`);
    assert.equal(a.gid, st.gid, `${what}: gid`);
    if (!st.isDirectory()) assert.equal(a.size, st.size, `${what}: size`);
  }

  /** Runs `op`'s writes (and fsync) at once; see VolOp. */
  private async parallel(op: Extract<VolOp, { k: 'parallel' }>): Promise<void> {
    const seen = new Set<number>();
    const writes: { p: string; ino: number; data: Buffer; off: number }[] = [];
    for (const w of op.writes) {
      if (this.ref.viaSymlink(w.p, true)) continue;
      let st: fs.Stats;
      try {
        st = fs.lstatSync(this.ref.real(w.p));
      } catch {
        continue;
      }
      if (!st.isFile() || seen.has(Number(st.ino))) continue;
      seen.add(Number(st.ino));
      writes.push({ p: w.p, ino: Number(st.ino), data: dataOf(w.len, w.seed), off: w.off });
    }
    if (writes.length < 2) {
      this.stats.skipped++;
      count(this.stats, op, 2);
      return;
    }
    const before = this.ref.shot();
    const fhs = await Promise.all(writes.map((w) => this.v.open(w.p, O_WRONLY)));
    const calls: Promise<unknown>[] = writes.map((w, i) => this.v.write(fhs[i]!, w.data, w.off));
    if (op.fsync) calls.push(this.v.fsync(fhs[0]!, false));
    for (const w of writes) {
      const fd = fs.openSync(this.ref.real(w.p), O_WRONLY);
      fs.writeSync(fd, w.data, 0, w.data.length, w.off);
      fs.closeSync(fd);
    }
    await Promise.all(calls);
    const after = this.ref.shot();
    // The fsync covers what was appended before it was called (none of these writes, for sure).
    if (op.fsync && this.o.config.fsync === 'remote') this.history = [before];
    // Every subset of the writes: the files they wrote as after, the others as before.
    const labels = writes.map((w) => after.get(w.p)!.inode);
    for (let mask = 1; mask < (1 << writes.length) - 1; mask++) {
      const mixed: TreeShot = new Map(before);
      for (const [p, node] of after) {
        const i = labels.indexOf(node.inode);
        if (i >= 0 && (mask >> i) & 1) mixed.set(p, node);
      }
      this.history.push(mixed);
    }
    this.history.push(after);
    await Promise.all(fhs.map((fh) => this.closeOurs(fh, true)));
    count(this.stats, op, 0);
  }

  /** Compares one open handle: attributes, and the whole contents when the handle can read. */
  private async compareHandle(hi: number): Promise<void> {
    const { fd, flags } = this.ref.handles[hi]!;
    const fh = this.fhs[hi]!;
    const st = fs.fstatSync(fd);
    this.compareAttr(`handle ${hi}`, await this.v.fgetattr(fh), st);
    if ((flags & O_ACCMODE) === O_WRONLY || !st.isFile()) return;
    const buf = Buffer.alloc(st.size);
    fs.readSync(fd, buf, 0, st.size, 0);
    const got = await this.v.read(fh, st.size + 1, 0);
    assert.ok(got.equals(buf), `contents of handle ${hi} (${got.length} bytes, expected ${st.size})`);
  }

  /** The picture of the tree as the volume shows it through VolumeFs. */
  private async volumeShot(v: Volume = this.v): Promise<TreeShot> {
    const b = new ShotBuilder();
    const visit = async (p: string, a: Attr): Promise<void> => {
      const xattrs: [string, string][] = [];
      for (const k of (await v.listxattr(p)).sort()) xattrs.push([k, (await v.getxattr(p, k)).toString('hex')]);
      const node = b.add(p, a.ino, a, xattrs);
      if (node.type === 'symlink') node.target = await v.readlink(p);
      if (node.type === 'file') {
        const fh = await v.open(p, O_RDONLY);
        try {
          node.data = await v.read(fh, a.size + 1, 0);
        } finally {
          await v.release(fh);
        }
      }
      if (node.type === 'dir') for (const e of byName(await v.readdir(p))) await visit(childPath(p, e.name), e.attr);
    };
    await visit('/', await v.getattr('/'));
    return b.shot;
  }

  /** Compares the whole tree, the open handles and the inode count with the reference. */
  async compareAll(when: string, v: Volume = this.v): Promise<void> {
    this.stats.treeCompares++;
    const expected = this.ref.shot();
    const diff = diffTrees(await this.volumeShot(v), expected, { mtimeToleranceMs: MTIME_TOLERANCE_MS });
    assert.deepEqual(diff, [], `the volume differs from the kernel${when ? ` ${when}` : ''}:\n${diff.join('\n')}`);
    if (v === this.v) for (let h = 0; h < this.fhs.length; h++) await this.compareHandle(h);
    const orphans = new Set<number>();
    for (const { fd } of this.ref.handles) {
      const st = fs.fstatSync(fd);
      if (st.nlink === 0) orphans.add(Number(st.ino));
    }
    const sf = await v.statfs();
    assert.equal(sf.files - sf.ffree, inodeCount(expected) + orphans.size, `inodes in use${when ? ` ${when}` : ''} (linked ones and open orphans)`);
    assert.deepEqual(this.log.errors, [], 'error-level log lines');
  }

  private dropHandles(): void {
    this.ref.closeAll();
    this.fhs.length = 0;
    this.readEnds.length = 0;
  }

  /** A clean close and open again with the same cache directory: exactly the same state. */
  private async restart(): Promise<void> {
    await this.v.close();
    this.dropHandles();
    this.v = await Volume.open(this.o.store, this.o.container, this.openOptions(this.cacheDir));
    this.stats.restarts++;
    this.durable();
    await this.compareAll('after a restart');
  }

  /**
   * Abandons the volume (possibly with `during` in flight) and opens it again, on the same cache directory or
   * on an empty one; the state must be one the reference went through (see the header).
   */
  private async crash(newHost: boolean, during: NsOp | null): Promise<void> {
    const before = this.ref.shot();
    const running = during && !this.ref.skips(during) ? during : null;
    let inflight: Promise<unknown> | null = null;
    let after = before;
    if (running) {
      inflight = this.nsOurs(running).catch(() => undefined);
      this.ref.run(running);
      after = this.ref.shot();
    }
    await this.v.close({ abandon: true });
    await inflight;
    this.dropHandles();
    let candidates: TreeShot[];
    if (newHost) {
      if (this.staleDir) await fsp.rm(this.staleDir, { recursive: true, force: true });
      this.staleDir = this.cacheDir;
      this.cacheDir = await this.newCacheDir();
      candidates = [...this.history, ...(running ? [after] : [])];
    } else {
      candidates = running ? [before, after] : [before];
    }
    this.v = await Volume.open(this.o.store, this.o.container, this.openOptions(this.cacheDir, { force: true }));
    const match = matchState(await this.volumeShot(), candidates, `after a crash (${newHost ? 'new host' : 'same cache directory'}${running ? ', one operation in flight' : ''})`);
    this.trace.push(`  -> recovered the state of ${candidates.length - 1 - match} operation(s) before the latest`);
    if (newHost) this.stats.crashesNewHost++;
    else this.stats.crashesSameDir++;
    if (newHost && match < candidates.length - 1) this.stats.newHostEarlier++;
    if (running) this.stats.inFlight++;
    if (running && candidates[match] !== after) this.stats.inFlightLost++;
    if (match !== candidates.length - 1) this.ref.resetTo(candidates[match]!);
    this.durable();
    await this.compareAll('after the crash recovery');
  }

  /**
   * A read-only mount on an empty cache directory beside the writer: it loads what is committed, which is the
   * reference's state at the last durable point or after one of the operations since.
   */
  private async peek(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const reader = await Volume.open(this.o.store, this.o.container, this.openOptions(await this.newCacheDir(), { readOnly: true }));
      try {
        const match = matchState(await this.volumeShot(reader), this.history, 'a read-only mount beside the writer');
        this.stats.peeks++;
        if (match < this.history.length - 1) this.stats.peeksEarlier++;
        this.trace.push(`  -> the reader saw the state of ${this.history.length - 1 - match} operation(s) before the latest`);
        return;
      } catch (err) {
        // DESIGN.md's limitation: a reader of an older state may meet an object the writer's GC deleted since.
        if (attempt >= 3 || codeOf(err) !== 'NotFound') throw err;
      } finally {
        await reader.close();
      }
    }
  }

  /**
   * The host of the last new-host crash comes back to its cache directory (after a clean close here): the
   * volume moved on without it, so its WAL's uncommitted entries, if any, go to lost+found (one error line,
   * the only one allowed) and the state is exactly the reference's.
   */
  private async comeBack(): Promise<void> {
    if (!this.staleDir) return;
    await this.v.close();
    this.dropHandles();
    await fsp.rm(this.cacheDir, { recursive: true, force: true });
    this.cacheDir = this.staleDir;
    this.staleDir = null;
    const errors = this.log.errors.length;
    this.v = await Volume.open(this.o.store, this.o.container, this.openOptions(this.cacheDir));
    const lines = this.log.errors.splice(errors);
    assert.deepEqual(lines.filter((l) => !l.includes('NOT applied')), [], 'error-level log lines when the old host came back');
    this.stats.returns++;
    this.durable();
    await this.compareAll('after the old host came back');
  }

  /** Closes every handle, closes the volume, and checks the store alone holds the reference's state. */
  async finish(): Promise<void> {
    await this.compareAll('at the end');
    while (this.fhs.length > 0) await this.step({ k: 'close', h: 0 });
    await this.v.close();
    const fresh = await Volume.open(this.o.store, this.o.container, this.openOptions(await this.newCacheDir(), { readOnly: true }));
    try {
      await this.compareAll('read from the store alone after close', fresh);
    } finally {
      await fresh.close();
    }
    assert.deepEqual(this.log.errors, [], 'error-level log lines');
  }

  /** Abandons whatever is open and removes the directories (after a failure too). */
  async dispose(): Promise<void> {
    await this.v?.close({ abandon: true }).catch(() => undefined);
    this.ref.remove();
    for (const d of this.cacheDirs) await fsp.rm(d, { recursive: true, force: true });
  }
}

/** The index of the latest of `candidates` that `got` shows (fails, with the differences, when there is none). */
function matchState(got: TreeShot, candidates: TreeShot[], what: string): number {
  for (let i = candidates.length - 1; i >= 0; i--) {
    if (diffTrees(got, candidates[i]!, { mtimeToleranceMs: MTIME_TOLERANCE_MS }).length === 0) return i;
  }
  const latest = diffTrees(got, candidates[candidates.length - 1]!, { mtimeToleranceMs: MTIME_TOLERANCE_MS });
  const durable = diffTrees(got, candidates[0]!, { mtimeToleranceMs: MTIME_TOLERANCE_MS });
  assert.fail(`${what}: the volume is in none of the ${candidates.length} states allowed\nvs the latest:\n${latest.join('\n')}\nvs the last durable one:\n${durable.join('\n')}`);
}

/** The run in progress, for the report of a run that got stuck (see runModel). */
let running: { model: VolumeModel; config: RunConfig } | null = null;

/**
 * Runs one sequence; on failure, the message ends with the operations that ran (the last one failed). If the
 * process runs out of work while a run waits on a promise that nothing will settle (a hang in the core: node's
 * test runner then only says "Promise resolution is still pending"), the operations are printed to stderr.
 */
export async function runModel(o: ModelRunOptions, ops: VolOp[], setup: NsOp[]): Promise<void> {
  const m = new VolumeModel(o);
  if (o.stats) o.stats.runs++;
  if (!process.listeners('beforeExit').includes(reportStuckRun)) process.on('beforeExit', reportStuckRun);
  running = { model: m, config: o.config };
  try {
    await m.start();
    for (const op of setup) await m.step(op);
    for (const op of ops) await m.step(op);
    await m.finish();
  } catch (err) {
    if (err instanceof Error) err.message += `\n  config ${JSON.stringify(o.config)}\n  ops:\n    ${m.trace.slice(-40).join('\n    ')}`;
    throw err;
  } finally {
    running = null;
    await m.dispose();
  }
}

function reportStuckRun(): void {
  if (!running) return;
  process.stderr.write(`volume-model: a run is stuck, waiting on a promise nothing will settle (the last operation never returned)\n  config ${JSON.stringify(running.config)}\n  ops:\n    ${running.model.trace.slice(-40).join('\n    ')}\n`);
  running = null;
}

/**
 * fast-check parameters from the environment: SWIFTFS_PROPERTY_RUNS, SWIFTFS_PROPERTY_SEED (+ _PATH) to replay a
 * failure, SWIFTFS_PROPERTY_SHRINK=1 to minimise it (off by default: every shrinking step is a whole run, and a
 * failing CI run should report at once; the seed and path it prints replay the failure).
 */
export function propertyParams<T>(defaultRuns: number): fc.Parameters<T> {
  const env = process.env;
  return {
    numRuns: Number(env['SWIFTFS_PROPERTY_RUNS'] ?? defaultRuns),
    endOnFailure: env['SWIFTFS_PROPERTY_SHRINK'] !== '1',
    ...(env['SWIFTFS_PROPERTY_SEED'] ? { seed: Number(env['SWIFTFS_PROPERTY_SEED']) } : {}),
    ...(env['SWIFTFS_PROPERTY_PATH'] ? { path: env['SWIFTFS_PROPERTY_PATH'] } : {}),
  };
}
