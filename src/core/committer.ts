/**
 * The commit pipeline (DESIGN.md "Write path"): turns the WAL entries applied since the last commit into one
 * journal segment in the store.
 *
 *  - Full blocks are uploaded as soon as they are dirty ("early uploads": a block of a file whose bytes all
 *    live in the WAL becomes one aligned object of blockSize bytes), so that big sequential writes stream to
 *    the store at the parallel PUT rate instead of waiting for an fsync.
 *  - A commit takes every entry appended so far (a prefix of the WAL), packs the data not covered by an early
 *    upload into objects of at most blockSize bytes (small writes of many files together), uploads them in
 *    parallel (p-queue, bounded), waits for the early uploads it uses, then puts the segment at the next number
 *    under the owner's lease (ownership.ts: started while the lease is fresh, one attempt, acknowledged only if
 *    answered while the lease held or confirmed after; create-only where the store has it). Only then are the
 *    in-memory refs rebased from the WAL to the objects and the WAL released.
 *  - Group commit: one commit at a time; callers that need their entries committed share the running commit
 *    when it covers them, else the next one.
 *  - Commits start on demand (fsync, syncAll), after the commit interval following the first dirty change, and
 *    when dirty bytes pass half the dirty limit. Writers wait (never fail) while dirty bytes are at the limit.
 *  - Store failures are retried forever with backoff (the store's own retries are per call) and reported in
 *    `health`; losing the lease, or finding another writer's segment at our number, means another owner took the
 *    volume: the committer turns fenced (the volume read-only, nothing more acknowledged) and says so once.
 *  - Every `checkpointEvery` segments or `checkpointBytes` of journal, a checkpoint of the committed state is
 *    built (from the previous checkpoint plus the segments since: the live state also holds uncommitted
 *    changes) and written, then garbage is collected (gc.ts).
 */

import PQueue from 'p-queue';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { ObjectStore } from '../store/object-store.js';
import { isStoreError, StoreError, StoreErrorCode } from '../store/errors.js';
import { FsError } from './errors.js';
import { FsState } from './metadata.js';
import { checkpointKey, dataKey, objectId, parseObjectId, segmentKey } from './layout.js';
import { decodeCheckpoint, decodeSegment, encodeCheckpoint, encodeSegment, type CheckpointHeader, type SegmentHeader } from './records.js';
import type { ExtentPiece, MetaRecord } from './types.js';
import type { Wal, WalEntry } from './wal.js';
import type { ObjectCache } from './object-cache.js';
import { FencedError, type Ownership } from './ownership.js';
import { collectGarbage } from './gc.js';
import type { Logger } from './log.js';

type WalRef = { wal: number; off: number };
type WriteRecord = Extract<MetaRecord, { t: 'write' }>;

export interface JournalHead {
  /** Last committed segment number. */
  seq: number;
  /** Epoch / WAL id / WAL seq of that segment's writer. */
  epoch: number;
  walId: string;
  walSeq: number;
  /** Highest epoch seen anywhere in the journal. */
  maxEpoch: number;
}

export interface CommitterOptions {
  store: ObjectStore;
  container: string;
  state: FsState;
  wal: Wal;
  cache: ObjectCache;
  ownership: Ownership;
  blockSize: number;
  conditionalCreate: boolean;
  head: JournalHead;
  /** The checkpoint mounted from and the encoded segments after it (for the next checkpoint). */
  checkpoint: { seq: number; bytes: Buffer | null };
  retained: { seq: number; bytes: Buffer }[];
  uploadConcurrency?: number;
  commitIntervalMs?: number;
  dirtyLimit: number;
  checkpointEvery?: number;
  checkpointBytes?: number;
  /**
   * Keep the full blocks of big sequential writes in the local cache after uploading them: true, false, or
   * undefined (default, "auto"): only when no other upload is queued. Writing a block to the cache disk a
   * second time (after the WAL) cut a streaming writer from 130 to 85 MiB/s on a 2-core host where the store
   * shares the CPU, so a writer that keeps the upload queue busy does not get its blocks cached (reading them
   * back downloads them), while a slower one does. Packed (small, random) writes are always cached.
   */
  cacheFullBlocks?: boolean;
  /**
   * Compaction: a block of a file whose bytes live in more than this many data objects is rewritten as one
   * object (default 16; 0 disables). Bounded: compaction uploads at most 64 MiB plus as much as commits packed
   * (small writes; not full blocks, which fragment nothing).
   */
  compactAbove?: number;
  /** Bytes compaction may upload beyond what commits packed (default 64 MiB). */
  compactionAllowance?: number;
  logger?: Logger;
  /** Called once when another owner fenced us. */
  onFenced?: (err: Error) => void;
}

export interface CommitterHealth {
  state: 'ok' | 'retrying' | 'fenced' | 'failed';
  /** Message of the last store failure while retrying. */
  lastError?: string;
  /** ms since the epoch when the current run of failures started. */
  failingSince?: number;
  retries: number;
}

export interface CommitterStatus {
  dirtyBytes: number;
  pendingEntries: number;
  uploadsQueued: number;
  uploadsActive: number;
  earlyUploads: number;
  journalSeq: number;
  checkpointSeq: number;
  lastCommitAt: number | null;
  commits: number;
  uploadedBytes: number;
  uploadedObjects: number;
  /** Bytes rewritten by compaction, and blocks waiting for it. */
  compactedBytes: number;
  compactionQueue: number;
  health: CommitterHealth;
}

interface EarlyUpload {
  id: string;
  n: number;
  ino: number;
  block: number;
  /** WAL seq at which the block's content was captured. */
  seq: number;
  done: Promise<void>;
  ok: boolean;
}

interface PackPiece {
  segment: number;
  off: number;
  len: number;
  at: number;
}

interface Pack {
  id: string;
  n: number;
  length: number;
  pieces: PackPiece[];
}

/** Upload buffers of one block are reused (a sequential writer would otherwise allocate one per block). */
class BufferPool {
  private readonly free: Buffer[] = [];
  constructor(
    private readonly size: number,
    private readonly keep: number,
  ) {}
  get(size: number): Buffer {
    if (size === this.size) {
      const b = this.free.pop();
      if (b) return b;
    }
    return Buffer.allocUnsafe(size);
  }
  put(buf: Buffer): void {
    if (buf.length === this.size && this.free.length < this.keep) this.free.push(buf);
  }
}

/** WAL pieces at most this far apart are read with one call (readWalPieces), up to this span. */
const WAL_READ_GAP = 4096;
const WAL_READ_SPAN = 1024 * 1024;
/** Longest a compaction upload waits for running commits before it goes anyway. */
const COMPACTION_YIELD_MS = 2000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * For the WAL write records of a commit's entries, the parts of each that survive the rest of the commit:
 * bytes overwritten by a later write of the same inode, cut off by a later truncate below them, or belonging to
 * an inode freed later are dead (the final state of the segment never shows them). Records absent from the
 * result are entirely alive.
 */
export function liveParts(entries: readonly { batch: readonly MetaRecord[] }[]): Map<MetaRecord, (readonly [number, number])[]> {
  const out = new Map<MetaRecord, (readonly [number, number])[]>();
  const perIno = new Map<number, { covered: [number, number][]; truncAt: number; freed: boolean }>();
  const stateOf = (ino: number) => {
    let st = perIno.get(ino);
    if (!st) {
      st = { covered: [], truncAt: Infinity, freed: false };
      perIno.set(ino, st);
    }
    return st;
  };
  for (let e = entries.length - 1; e >= 0; e--) {
    const batch = entries[e]!.batch;
    for (let i = batch.length - 1; i >= 0; i--) {
      const rec = batch[i]!;
      if (rec.t === 'free') stateOf(rec.ino).freed = true;
      else if (rec.t === 'trunc') {
        const st = stateOf(rec.ino);
        st.truncAt = Math.min(st.truncAt, rec.size);
      } else if (rec.t === 'write') {
        const st = perIno.get(rec.ino);
        if (st) {
          let parts: [number, number][] = [];
          if (!st.freed) {
            const end = Math.min(rec.off + rec.len, st.truncAt);
            if (end > rec.off) parts = subtract(rec.off, end, st.covered);
          }
          if (parts.length !== 1 || parts[0]![0] !== rec.off || parts[0]![1] !== rec.len) out.set(rec, parts);
          st.covered = addInterval(st.covered, rec.off, rec.off + rec.len);
        } else {
          perIno.set(rec.ino, { covered: [[rec.off, rec.off + rec.len]], truncAt: Infinity, freed: false });
        }
      }
    }
  }
  return out;
}

/**
 * Index of the first interval of `list` (sorted, disjoint) that ends after `at` (`orAt`: at or after), by
 * binary search.
 */
function firstEndingAfter(list: readonly (readonly [number, number])[], at: number, orAt = false): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const end = list[mid]![1];
    if (end < at || (end === at && !orAt)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * [from, to) minus sorted disjoint intervals, as [off, len] parts. Binary search to the first interval that
 * can overlap: a commit of thousands of random writes to one file (fsync mode local commits by time, not per
 * fsync) would otherwise scan the whole list for each write.
 */
export function subtract(from: number, to: number, covered: readonly (readonly [number, number])[]): [number, number][] {
  const parts: [number, number][] = [];
  let at = from;
  for (let i = firstEndingAfter(covered, from); i < covered.length; i++) {
    const [a, b] = covered[i]!;
    if (a >= to) break;
    if (a > at) parts.push([at, a - at]);
    at = Math.max(at, b);
    if (at >= to) break;
  }
  if (at < to) parts.push([at, to - at]);
  return parts;
}

/** Adds [a, b) to sorted disjoint intervals, in place, merging the ones it overlaps or touches; returns the list. */
export function addInterval(list: [number, number][], a: number, b: number): [number, number][] {
  const i = firstEndingAfter(list, a, true);
  let j = i;
  while (j < list.length && list[j]![0] <= b) j++;
  if (j > i) {
    a = Math.min(a, list[i]![0]);
    b = Math.max(b, list[j - 1]![1]);
  }
  list.splice(i, j - i, [a, b]);
  return list;
}

/** Splits a write record into pieces that each stay within one block. */
function blockPieces(rec: WriteRecord, blockSize: number): { off: number; len: number; skip: number }[] {
  const out: { off: number; len: number; skip: number }[] = [];
  let off = rec.off;
  const end = rec.off + rec.len;
  while (off < end) {
    const blockEnd = (Math.floor(off / blockSize) + 1) * blockSize;
    const len = Math.min(end, blockEnd) - off;
    out.push({ off, len, skip: off - rec.off });
    off += len;
  }
  return out;
}

export class Committer {
  private readonly o: CommitterOptions;
  private onFenced: ((err: Error) => void) | undefined;
  private readonly store: ObjectStore;
  private readonly container: string;
  private readonly state: FsState;
  private readonly wal: Wal;
  private readonly cache: ObjectCache;
  private readonly blockSize: number;
  private readonly log: Logger | undefined;
  private readonly uploads: PQueue;
  private readonly buffers: BufferPool;
  private readonly commitIntervalMs: number;
  private readonly dirtyLimit: number;
  private readonly checkpointEvery: number;
  private readonly checkpointBytesLimit: number;
  readonly epoch: number;

  /** Entries applied but not committed, in sequence order. */
  private pending: WalEntry[] = [];
  dirtyBytes = 0;
  head: JournalHead;
  /** WAL seq covered by the last commit. */
  committedSeq: number;
  private nextObjectN = 0;
  /** Object numbers of our epoch allocated but not yet committed or dropped. */
  private readonly uncommitted = new Set<number>();
  private readonly early = new Map<string, EarlyUpload[]>();
  private earlyCount = 0;
  private readonly blockFill = new Map<string, { covered: number; firstSeq: number }>();

  private running: { cutEnd: number; promise: Promise<void> } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private roomWaiters: (() => void)[] = [];
  private fenced: Error | null = null;
  private closing = false;
  private abandoned = false;
  private health: CommitterHealth = { state: 'ok', retries: 0 };
  private lastCommitAt: number | null = null;
  private commits = 0;
  private uploadedBytes = 0;
  /** Bytes of small writes packed together by commits (what fragments blocks: compaction's budget). */
  private packedBytes = 0;
  private uploadedObjects = 0;

  private readonly compactAbove: number;
  private readonly compactionAllowance: number;
  private readonly compactQueue = new Map<string, { ino: number; block: number }>();
  /** "ino:block" -> an upper bound of the data objects holding that block (noteCompactionCandidate). */
  private readonly objectBound = new Map<string, number>();
  /** Object numbers of compaction rewrites appended to the WAL, uncommitted until their entry is. */
  private readonly compactionObjects = new Map<number, number>();
  private compacting: Promise<void> | null = null;
  private compactedBytes = 0;
  private appender: ((plan: () => MetaRecord[]) => Promise<WalEntry | null>) | null = null;

  private checkpointSeq: number;
  private checkpointBytes: Buffer | null;
  private retained: { seq: number; bytes: Buffer }[];
  private retainedBytes = 0;
  private checkpointing: Promise<void> | null = null;

  constructor(opts: CommitterOptions) {
    this.o = opts;
    this.onFenced = opts.onFenced;
    this.store = opts.store;
    this.container = opts.container;
    this.state = opts.state;
    this.wal = opts.wal;
    this.cache = opts.cache;
    this.blockSize = opts.blockSize;
    this.log = opts.logger;
    this.epoch = opts.ownership.epoch;
    this.uploads = new PQueue({ concurrency: Math.max(1, opts.uploadConcurrency ?? 8) });
    this.buffers = new BufferPool(opts.blockSize, Math.max(1, opts.uploadConcurrency ?? 8) + 2);
    this.commitIntervalMs = opts.commitIntervalMs ?? 1000;
    this.dirtyLimit = opts.dirtyLimit;
    this.checkpointEvery = opts.checkpointEvery ?? 1000;
    this.checkpointBytesLimit = opts.checkpointBytes ?? 64 * 1024 * 1024;
    this.compactAbove = opts.compactAbove ?? 16;
    this.compactionAllowance = opts.compactionAllowance ?? 64 * 1024 * 1024;
    this.head = { ...opts.head };
    this.committedSeq = opts.wal.committedSeq;
    this.checkpointSeq = opts.checkpoint.seq;
    this.checkpointBytes = opts.checkpoint.bytes;
    this.retained = [...opts.retained];
    for (const r of this.retained) this.retainedBytes += r.bytes.length;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Intake
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Entries replayed from the WAL at open (already applied to the state), in order; the session's first commit
   * follows. All are pending before any commit can start: a commit cuts at the WAL's last seq, so one kicked
   * halfway through (appended()'s dirty-bytes trigger) would claim entries it does not hold, release their WAL
   * segment, and leave them to be lost by the next crash.
   */
  adoptReplayed(entries: WalEntry[]): void {
    for (const e of entries) {
      this.pending.push(e);
      this.dirtyBytes += e.dataLength;
    }
  }

  /** An entry was appended to the WAL and applied to the state (call synchronously after apply). */
  appended(entry: WalEntry, startUploads = true): void {
    this.pending.push(entry);
    this.dirtyBytes += entry.dataLength;
    if (entry.dataLength > 0 && startUploads) {
      for (const rec of entry.batch) {
        if (rec.t === 'write' && 'wal' in rec.ref) this.noteDirtyWrite(rec, entry.seq);
      }
    }
    if (this.timer === null && !this.closing) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.kick();
      }, this.commitIntervalMs);
      this.timer.unref?.();
    }
    if (this.dirtyBytes >= this.dirtyLimit / 2) this.kick();
  }

  private noteDirtyWrite(rec: WriteRecord, seq: number): void {
    for (const piece of blockPieces(rec, this.blockSize)) {
      const block = Math.floor(piece.off / this.blockSize);
      const key = `${rec.ino}:${block}`;
      let fill = this.blockFill.get(key);
      if (!fill) {
        fill = { covered: 0, firstSeq: seq };
        this.blockFill.set(key, fill);
      }
      fill.covered += piece.len;
      if (fill.covered >= this.blockSize) {
        this.blockFill.delete(key);
        // A running commit that already holds part of this block will pack it: do not upload it twice.
        if (this.running && fill.firstSeq <= this.running.cutEnd) continue;
        this.startEarlyUpload(rec.ino, block, seq);
      }
    }
  }

  /** Uploads block `block` of `ino` as one object if all its bytes are dirty data in the WAL. */
  private startEarlyUpload(ino: number, block: number, seq: number): void {
    if (this.fenced || this.closing) return;
    const start = block * this.blockSize;
    let pieces;
    try {
      pieces = this.state.extents(ino, start, this.blockSize);
    } catch {
      return;
    }
    let total = 0;
    for (const p of pieces) {
      if (!p.ref || !('wal' in p.ref)) return;
      total += p.len;
    }
    if (total !== this.blockSize) return;
    const segments = new Set<number>();
    for (const p of pieces) {
      const seg = (p.ref as WalRef).wal;
      if (!segments.has(seg)) {
        if (!this.wal.pin(seg)) {
          for (const s of segments) this.wal.unpin(s);
          return;
        }
        segments.add(seg);
      }
    }
    const n = this.allocateObject();
    const id = objectId(this.epoch, n);
    const up: EarlyUpload = { id, n, ino, block, seq, ok: false, done: Promise.resolve() };
    up.done = this.uploads
      .add(async () => {
        const buf = this.buffers.get(this.blockSize);
        try {
          await this.readWalPieces(
            pieces.map((p) => ({ segment: (p.ref as WalRef).wal, off: (p.ref as WalRef).off, len: p.len, at: p.off - start })),
            buf,
          );
        } finally {
          for (const s of segments) this.wal.unpin(s);
        }
        await this.putForever(dataKey(id), buf);
        this.uploadedBytes += buf.length;
        this.uploadedObjects++;
        up.ok = true;
        // 'auto': keep it unless uploads are queued behind (a streaming writer, whose throughput the second
        // write to the cache disk would cut); see CommitterOptions.cacheFullBlocks.
        const keep = this.o.cacheFullBlocks ?? this.uploads.size === 0;
        if (!keep) this.buffers.put(buf);
        else void this.cache.insert(id, buf).finally(() => this.buffers.put(buf));
      })
      .then(() => undefined);
    up.done.catch(() => undefined);
    const key = `${ino}:${block}`;
    const list = this.early.get(key);
    if (list) list.push(up);
    else this.early.set(key, [up]);
    this.earlyCount++;
  }

  /**
   * Reads WAL pieces into `into` (each at its `at`). Pieces that follow each other closely in one segment
   * (the data of consecutive entries, separated by their headers and metadata) are read with one call and
   * copied out: a commit of thousands of 4 KiB writes would otherwise make a thread-pool read per write.
   */
  private readWalPieces(pieces: readonly PackPiece[], into: Buffer): Promise<unknown> {
    const reads: Promise<void>[] = [];
    for (let i = 0; i < pieces.length; ) {
      const first = pieces[i]!;
      let end = first.off + first.len;
      let j = i + 1;
      for (; j < pieces.length; j++) {
        const next = pieces[j]!;
        if (next.segment !== first.segment || next.off < end || next.off - end > WAL_READ_GAP || next.off + next.len - first.off > WAL_READ_SPAN) break;
        end = next.off + next.len;
      }
      if (j === i + 1) {
        reads.push(this.wal.read(first.segment, first.off, first.len, into, first.at));
      } else {
        const group = pieces.slice(i, j);
        const span = Buffer.allocUnsafe(end - first.off);
        reads.push(
          this.wal.read(first.segment, first.off, span.length, span, 0).then(() => {
            for (const p of group) span.copy(into, p.at, p.off - first.off, p.off - first.off + p.len);
          }),
        );
      }
      i = j;
    }
    return Promise.all(reads);
  }

  private allocateObject(): number {
    const n = this.nextObjectN++;
    this.uncommitted.add(n);
    return n;
  }

  /** An early upload holding block content as of a seq in [from, cutEnd], the earliest such. */
  private findEarly(ino: number, block: number, from: number, cutEnd: number): EarlyUpload | null {
    const list = this.early.get(`${ino}:${block}`);
    if (!list) return null;
    let best: EarlyUpload | null = null;
    for (const up of list) if (up.seq >= from && up.seq <= cutEnd && (!best || up.seq < best.seq)) best = up;
    return best;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Backpressure and triggers
  // -------------------------------------------------------------------------------------------------------------

  /** Waits while dirty bytes are at the limit (never fails because of a slow or absent store). */
  async waitForRoom(bytes: number): Promise<void> {
    while (this.dirtyBytes > 0 && this.dirtyBytes + bytes > this.dirtyLimit) {
      if (this.fenced) throw this.fencedError();
      this.kick();
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
  }

  /** Starts a commit of everything appended so far unless one is running (errors are logged, not thrown). */
  kick(): void {
    if (this.running || this.fenced || this.pending.length === 0) return;
    this.commitThrough(this.wal.lastSeq).catch((err: unknown) => {
      if (!this.fenced && !this.abandoned) this.log?.error({ err: (err as Error).message }, 'background commit failed');
    });
  }

  private wakeRoomWaiters(): void {
    for (const w of this.roomWaiters.splice(0)) w();
  }

  private fencedError(): FsError {
    return new FsError('EROFS', `volume is read-only: ${this.fenced?.message ?? 'fenced'}`, { cause: this.fenced });
  }

  get isFenced(): boolean {
    return this.fenced !== null;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Commits
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Resolves once every entry up to `seq` is in a committed segment. `force` commits a segment even with
   * nothing pending (the session's first commit, which fences any previous owner).
   */
  async commitThrough(seq: number, force = false): Promise<void> {
    let forced = !force;
    while (this.committedSeq < seq || !forced) {
      if (this.fenced) throw this.fencedError();
      if (this.abandoned) throw new FsError('EIO', 'volume closed without committing');
      if (this.running) {
        await this.running.promise.catch(() => undefined);
        continue;
      }
      const cutEnd = this.wal.lastSeq;
      const promise = this.runCommit(cutEnd, !forced);
      forced = true;
      this.running = { cutEnd, promise };
      try {
        await promise;
      } finally {
        if (this.running?.promise === promise) this.running = null;
        if (this.pending.length === 0 && this.timer) {
          clearTimeout(this.timer);
          this.timer = null;
        }
        this.pumpCompaction(); // held back while the commit ran
      }
    }
  }

  private async runCommit(cutEnd: number, force: boolean): Promise<void> {
    let count = 0;
    while (count < this.pending.length && this.pending[count]!.seq <= cutEnd) count++;
    if (count === 0 && !force) {
      // Nothing pending up to cutEnd: every entry up to it is committed (pending holds all the others).
      this.committedSeq = Math.max(this.committedSeq, cutEnd);
      return;
    }
    const entries = this.pending.slice(0, count);
    if (count > 0) await this.wal.waitWritten(entries[count - 1]!.seq);

    const live = liveParts(entries);
    const batches: MetaRecord[][] = [];
    const rebases: { ino: number; off: number; len: number; from: WalRef; to: { obj: string; off: number } }[] = [];
    const packs: Pack[] = [];
    const usedEarly = new Set<EarlyUpload>();
    const newObjects = new Set<string>();
    let pack: Pack | null = null;
    for (const entry of entries) {
      let out: MetaRecord[] | null = null;
      for (let i = 0; i < entry.batch.length; i++) {
        const rec = entry.batch[i]!;
        if (rec.t !== 'write' || !('wal' in rec.ref)) {
          if (rec.t === 'write' && 'obj' in rec.ref) {
            const parsed = parseObjectId(rec.ref.obj);
            if (parsed && parsed.epoch === this.epoch && this.compactionObjects.has(parsed.n)) newObjects.add(rec.ref.obj);
          }
          out?.push(rec);
          continue;
        }
        out ??= entry.batch.slice(0, i);
        const ref = rec.ref;
        // Only the bytes no later record of this commit overwrites or truncates away are uploaded (a dead
        // record is dropped: the later records set size and times as the original sequence would).
        const parts = live.get(rec) ?? [[rec.off, rec.len] as const];
        for (const [partOff, partLen] of parts) {
          for (const piece of blockPieces({ ...rec, off: partOff, len: partLen }, this.blockSize)) {
            piece.skip += partOff - rec.off;
            const block = Math.floor(piece.off / this.blockSize);
            const from: WalRef = { wal: ref.wal, off: ref.off + piece.skip };
            let to: { obj: string; off: number };
            const up = this.findEarly(rec.ino, block, entry.seq, cutEnd);
            if (up) {
              usedEarly.add(up);
              to = { obj: up.id, off: piece.off - block * this.blockSize };
            } else {
              if (!pack || pack.length + piece.len > this.blockSize) {
                const n = this.allocateObject();
                pack = { id: objectId(this.epoch, n), n, length: 0, pieces: [] };
                packs.push(pack);
              }
              pack.pieces.push({ segment: from.wal, off: from.off, len: piece.len, at: pack.length });
              to = { obj: pack.id, off: pack.length };
              pack.length += piece.len;
            }
            newObjects.add(to.obj);
            out.push({ ...rec, off: piece.off, len: piece.len, ref: to });
            rebases.push({ ino: rec.ino, off: piece.off, len: piece.len, from, to });
          }
        }
      }
      batches.push(out ?? entry.batch);
    }

    // Data first: every object the segment names is acknowledged before the segment exists.
    const packUploads = packs.map((p) =>
      this.uploads.add(async () => {
        const buf = this.buffers.get(p.length);
        await this.readWalPieces(p.pieces, buf);
        await this.putForever(dataKey(p.id), buf);
        this.uploadedBytes += buf.length;
        this.packedBytes += buf.length;
        this.uploadedObjects++;
        void this.cache.insert(p.id, buf).finally(() => this.buffers.put(buf));
      }),
    );
    await Promise.all([...packUploads, ...[...usedEarly].map((u) => u.done)]);
    if (this.fenced) throw this.fencedError();

    const seq = this.head.seq + 1;
    const header: SegmentHeader = {
      v: 1,
      seq,
      epoch: this.epoch,
      walId: this.wal.walId,
      walSeq: cutEnd,
      time: Date.now(),
      objects: [...newObjects],
    };
    const bytes = encodeSegment(header, batches);
    await this.putSegment(seq, bytes);

    // Committed. Point the state at the objects, release the WAL.
    // (cutEnd may exceed the last entry taken: entries above it that are not pending were committed before.)
    this.head = { seq, epoch: this.epoch, walId: this.wal.walId, walSeq: cutEnd, maxEpoch: Math.max(this.head.maxEpoch, this.epoch) };
    for (const r of rebases) this.state.rebase(r.ino, r.off, r.len, r.from, r.to);
    this.pending.splice(0, count);
    for (const e of entries) this.dirtyBytes -= e.dataLength;
    this.committedSeq = Math.max(this.committedSeq, cutEnd);
    this.wal.markCommitted(cutEnd);
    for (const p of packs) this.uncommitted.delete(p.n);
    for (const [n, entrySeq] of this.compactionObjects) {
      if (entrySeq <= cutEnd) {
        this.compactionObjects.delete(n);
        this.uncommitted.delete(n);
      }
    }
    for (const [key, list] of this.early) {
      const keep = list.filter((u) => u.seq > cutEnd);
      for (const u of list) if (u.seq <= cutEnd) this.uncommitted.delete(u.n);
      if (keep.length) this.early.set(key, keep);
      else this.early.delete(key);
      this.earlyCount -= list.length - keep.length;
    }
    // Blocks whose filling started in this commit can no longer be uploaded whole (part of them is in objects now).
    for (const [key, fill] of this.blockFill) if (fill.firstSeq <= cutEnd) this.blockFill.delete(key);
    this.retained.push({ seq, bytes });
    this.retainedBytes += bytes.length;
    this.lastCommitAt = Date.now();
    this.commits++;
    this.wakeRoomWaiters();
    this.maybeCheckpoint();
    if (this.compactAbove > 0) {
      // Each block this commit wrote to, with the objects it added there.
      const added = new Map<string, { ino: number; block: number; objects: Set<string> }>();
      for (const r of rebases) {
        const block = Math.floor(r.off / this.blockSize);
        const key = `${r.ino}:${block}`;
        let a = added.get(key);
        if (!a) added.set(key, (a = { ino: r.ino, block, objects: new Set() }));
        a.objects.add(r.to.obj);
      }
      for (const [key, a] of added) this.noteCompactionCandidate(key, a.ino, a.block, a.objects.size);
      this.pumpCompaction();
    }
  }

  /**
   * Puts the segment under the owner's lease (Ownership.putUnderLease: started while the lease is fresh, one
   * attempt, an unknown outcome read back, acknowledged only while the lease holds). Losing the lease, or another
   * writer's segment at this number, fences the committer: the segment is not acknowledged.
   */
  private async putSegment(seq: number, bytes: Buffer): Promise<void> {
    await this.putLeased(segmentKey(seq), bytes, `journal segment ${seq}`, `journal segment ${seq} already exists: another owner committed to this volume`);
  }

  /** A put under the lease, retried until it lands (health reported); fences on a lost lease or another's object. */
  private async putLeased(key: string, bytes: Buffer, what: string, takenWhy: string): Promise<void> {
    let out;
    try {
      out = await this.retryForever(what, () => this.o.ownership.putUnderLease(key, bytes, { createOnly: this.o.conditionalCreate }));
    } catch (err) {
      if (err instanceof FencedError) {
        this.fence(err);
        throw this.fencedError();
      }
      throw err;
    }
    if (!out.ok) {
      this.fence(new FencedError(null), takenWhy);
      throw this.fencedError();
    }
  }

  private fence(err: Error, why?: string): void {
    if (this.fenced) return;
    this.fenced = err;
    this.health = { state: 'fenced', lastError: why ?? err.message, retries: this.health.retries };
    this.o.ownership.markLost();
    this.log?.error(
      { container: this.container, pendingEntries: this.pending.length, dirtyBytes: this.dirtyBytes },
      `volume ${this.container} was taken over by another owner (${why ?? err.message}); this mount is now read-only and its uncommitted changes stay in the local WAL`,
    );
    this.wakeRoomWaiters();
    this.onFenced?.(err);
  }

  setOnFenced(fn: (err: Error) => void): void {
    this.onFenced = fn;
    if (this.fenced) fn(this.fenced);
  }

  /** Marks this session fenced from outside (lease renewal found another owner). */
  fenceFromOwnership(err: FencedError): void {
    this.fence(err);
  }

  /**
   * Runs `fn` until it succeeds, with exponential backoff (0.5 s doubling to 10 s). PreconditionFailed,
   * FencedError and non-store errors end it; every other store failure is retried while reporting health.
   */
  private async retryForever<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let delay = 500;
    for (;;) {
      if (this.fenced) throw this.fencedError();
      if (this.abandoned) throw new FsError('EIO', 'volume closed without committing');
      try {
        const out = await fn();
        if (this.health.state === 'retrying') {
          this.log?.info({ container: this.container, after: this.health.lastError }, 'object store reachable again');
          this.health = { state: 'ok', retries: this.health.retries };
        }
        return out;
      } catch (err) {
        if (err instanceof FencedError) throw err;
        if (!(err instanceof StoreError) || err.code === StoreErrorCode.PreconditionFailed) throw err;
        const now = Date.now();
        if (this.health.state !== 'retrying') {
          this.health = { state: 'retrying', lastError: `${what}: ${err.message}`, failingSince: now, retries: this.health.retries + 1 };
          this.log?.warn({ container: this.container, err: err.message, code: err.code }, `cannot write ${what} to the object store; retrying until it is back`);
        } else {
          this.health = { ...this.health, lastError: `${what}: ${err.message}`, retries: this.health.retries + 1 };
        }
        await sleep(delay);
        delay = Math.min(10_000, delay * 2);
      }
    }
  }

  /**
   * Puts a data object until it lands. Data objects need no lease: their names are unique to our epoch and
   * nothing refers to them before a segment does, so the store's own retries are fine here.
   */
  private async putForever(key: string, body: Buffer): Promise<void> {
    let attempted = false;
    await this.retryForever(`data object ${key}`, async () => {
      try {
        await this.store.put(this.container, key, body, { contentType: 'application/octet-stream', ...(this.o.conditionalCreate ? { ifNoneMatch: '*' as const } : {}) });
      } catch (err) {
        if (isStoreError(err, StoreErrorCode.PreconditionFailed)) {
          if (attempted) {
            const existing = await this.store.get(this.container, key);
            if (existing.body.equals(body)) return;
          }
          // Our epoch's names are unique: someone else wrote under our epoch, i.e. took over with a broken record.
          this.fence(new FencedError(null), `${key} already exists: another writer is using epoch ${this.epoch}`);
          throw this.fencedError();
        }
        attempted = true;
        throw err;
      }
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Compaction
  // -------------------------------------------------------------------------------------------------------------

  /** How the volume appends a batch (plan runs synchronously with the WAL append; [] appends nothing). */
  setAppender(fn: (plan: () => MetaRecord[]) => Promise<WalEntry | null>): void {
    this.appender = fn;
  }

  /** Distinct data objects holding block `block` of `ino`, or -1 when it is dirty, sparse or gone. */
  private blockObjects(ino: number, block: number): { pieces: ExtentPiece[]; objects: number; start: number; len: number } | null {
    const start = block * this.blockSize;
    let size: number;
    try {
      const a = this.state.getattr(ino);
      if (a.nlink === 0) return null;
      size = a.size;
    } catch {
      return null;
    }
    const len = Math.min(this.blockSize, size - start);
    if (len <= 0) return null;
    const pieces = this.state.extents(ino, start, len);
    const ids = new Set<string>();
    for (const p of pieces) {
      if (!p.ref || !('obj' in p.ref)) return null;
      ids.add(p.ref.obj);
    }
    return { pieces, objects: ids.size, start, len };
  }

  /**
   * After a commit added `added` objects to block `block` of `ino`: queues it for compaction if it now lives in
   * more than compactAbove objects. Cheap for the common case (a commit of random writes touches many blocks):
   * `objectBound` keeps, per block, an upper bound of its objects (a commit can add at most the objects it
   * put there; overwrites and truncates only remove some); the block's extents are scanned only when that bound
   * passes the threshold, or is unknown.
   */
  private noteCompactionCandidate(key: string, ino: number, block: number, added: number): void {
    if (this.compactQueue.has(key)) return;
    const bound = this.objectBound.get(key);
    if (bound !== undefined && bound + added <= this.compactAbove) {
      this.objectBound.set(key, bound + added);
      return;
    }
    const objects = this.countBlockObjects(ino, block);
    if (objects > this.compactAbove) {
      this.compactQueue.set(key, { ino, block });
      this.objectBound.delete(key); // rescanned after compaction
    } else if (objects >= 0) {
      if (this.objectBound.size >= 100_000) this.objectBound.clear(); // bounded memory: unknown bounds are rescanned
      this.objectBound.set(key, objects);
    } else {
      this.objectBound.delete(key);
    }
  }

  /**
   * Distinct data objects holding block `block` of `ino`, counted up to compactAbove + 1; -1 when part of it is
   * dirty, sparse or the inode is gone (as blockObjects: such a block is not compacted).
   */
  private countBlockObjects(ino: number, block: number): number {
    const start = block * this.blockSize;
    let pieces: ExtentPiece[];
    try {
      const a = this.state.getattr(ino);
      if (a.nlink === 0) return -1;
      const len = Math.min(this.blockSize, a.size - start);
      if (len <= 0) return -1;
      pieces = this.state.extents(ino, start, len);
    } catch {
      return -1;
    }
    const ids = new Set<string>();
    let last: string | null = null;
    for (const p of pieces) {
      if (!p.ref || !('obj' in p.ref)) return -1;
      if (p.ref.obj === last || ids.size > this.compactAbove) continue; // past the threshold: only checks the rest
      last = p.ref.obj;
      ids.add(last);
    }
    return ids.size;
  }

  /**
   * Starts the next compaction when none runs, no commit runs, uploads are idle, and the budget allows.
   * Commits come first: a caller may be waiting for one (fsync in mode remote), and a 4 MiB compaction
   * upload running beside it would share the store's bandwidth (and, with a local store, the CPU).
   */
  private pumpCompaction(): void {
    if (this.compactAbove <= 0 || this.compacting || this.closing || this.fenced || !this.appender || this.compactQueue.size === 0) return;
    if (this.running || this.uploads.size > 0) return; // writers first; retried after the next commit
    // Budget: 64 MiB, plus as much as small writes packed. Not full blocks: a file written sequentially and then
    // updated at random would otherwise let compaction rewrite it whole, repeatedly (measured: 340 MiB of 4 MiB
    // rewrites for 20 MiB of 4 KiB random writes in 20 s, on a 256 MiB file).
    if (this.compactedBytes >= this.compactionAllowance + this.packedBytes) return;
    const [key, next] = this.compactQueue.entries().next().value as [string, { ino: number; block: number }];
    this.compactQueue.delete(key);
    this.compacting = this.compactBlock(next.ino, next.block)
      .catch((err: unknown) => {
        if (!this.fenced && !this.closing) this.log?.warn({ err: (err as Error).message, ino: next.ino, block: next.block }, 'compaction of a block failed (skipped)');
      })
      .finally(() => {
        this.compacting = null;
        this.pumpCompaction();
      });
  }

  /**
   * Waits until no commit runs, or for at most `maxMs` (so that back-to-back commits cannot hold compaction
   * off for ever: fragmentation must stay bounded too).
   */
  private async afterRunningCommits(maxMs: number): Promise<void> {
    const until = Date.now() + maxMs;
    while (this.running && !this.closing && !this.fenced) {
      const left = until - Date.now();
      if (left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.running.promise.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
    }
  }

  /**
   * Rewrites one fragmented block as a single object: reads it (from the cache or by ranged GETs), uploads it,
   * then appends a batch that points the block at the new object and restores the inode's attributes (times
   * unchanged) — only if the block still holds exactly what was read (else the object is left to GC).
   */
  private async compactBlock(ino: number, block: number): Promise<void> {
    const b = this.blockObjects(ino, block);
    if (!b || b.objects <= this.compactAbove) return;
    const buf = Buffer.allocUnsafe(b.len);
    await Promise.all(b.pieces.map((p) => this.cache.read((p.ref as { obj: string; off: number }).obj, (p.ref as { obj: string; off: number }).off, p.len, buf, p.off - b.start, false)));
    if (this.closing || this.fenced) return;
    await this.afterRunningCommits(COMPACTION_YIELD_MS);
    if (this.closing || this.fenced) return;
    const n = this.allocateObject();
    const id = objectId(this.epoch, n);
    let appended: WalEntry | null = null;
    try {
      await this.putForever(dataKey(id), buf);
      this.compactedBytes += buf.length;
      void this.cache.insert(id, buf);
      if (this.closing) return;
      appended = await this.appender!(() => {
        const now = this.blockObjects(ino, block);
        if (!now || now.len !== b.len || now.pieces.length !== b.pieces.length) return [];
        for (let i = 0; i < now.pieces.length; i++) {
          const x = now.pieces[i]!;
          const y = b.pieces[i]!;
          const xr = x.ref as { obj: string; off: number };
          const yr = y.ref as { obj: string; off: number };
          if (x.off !== y.off || x.len !== y.len || xr.obj !== yr.obj || xr.off !== yr.off) return [];
        }
        const attr = this.state.getattr(ino);
        return [
          { t: 'write', ino, off: b.start, len: b.len, ref: { obj: id, off: 0 }, mtime: attr.mtime },
          { t: 'inode', attr: { ...attr } },
        ];
      });
    } finally {
      if (appended) this.compactionObjects.set(n, appended.seq);
      else this.uncommitted.delete(n); // never referenced: garbage for the next GC
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Checkpoints and garbage
  // -------------------------------------------------------------------------------------------------------------

  private maybeCheckpoint(): void {
    if (this.checkpointing || this.fenced) return;
    if (this.retained.length < this.checkpointEvery && this.retainedBytes < this.checkpointBytesLimit) return;
    this.checkpoint().catch((err: unknown) => {
      if (!this.fenced && !this.abandoned) this.log?.error({ err: (err as Error).message }, 'checkpoint failed (will retry after the next commits)');
    });
  }

  /** Writes a checkpoint of the committed state (through the last committed segment) and collects garbage. */
  async checkpoint(): Promise<void> {
    while (this.checkpointing) await this.checkpointing.catch(() => undefined);
    const p: Promise<void> = this.runCheckpoint().finally(() => {
      if (this.checkpointing === p) this.checkpointing = null;
    });
    this.checkpointing = p;
    await p;
  }

  private async runCheckpoint(): Promise<void> {
    if (this.retained.length === 0) return;
    const segs = this.retained.slice();
    const head = { ...this.head };
    const keepFrom = this.uncommitted.size ? Math.min(...this.uncommitted) : this.nextObjectN;
    let base = this.checkpointBytes;
    if (!base) base = (await this.retryForever('read checkpoint', () => this.store.get(this.container, checkpointKey(this.checkpointSeq)))).body;
    const c = segs[segs.length - 1]!.seq;
    // Decoding, replaying and encoding a big state takes seconds of CPU: off the main thread.
    const built = await buildCheckpointOffThread({
      base,
      segments: segs.map((s) => s.bytes),
      header: { v: 1, seq: c, epoch: head.epoch, walId: head.walId, walSeq: head.walSeq, maxEpoch: head.maxEpoch, time: Date.now() },
    });
    const bytes = built.bytes;
    const referenced = new Set(built.referenced);
    await this.putLeased(checkpointKey(c), bytes, `checkpoint ${c}`, `checkpoint ${c} already exists with other content: another owner wrote to this volume`);
    this.checkpointSeq = c;
    this.checkpointBytes = bytes.length <= 64 * 1024 * 1024 ? bytes : null;
    this.retained.splice(0, segs.length);
    for (const s of segs) this.retainedBytes -= s.bytes.length;
    this.log?.info({ container: this.container, seq: c, bytes: bytes.length, inWorker: built.inWorker }, 'checkpoint written');
    try {
      await collectGarbage({
        store: this.store,
        container: this.container,
        checkpointSeq: c,
        referenced,
        epoch: this.epoch,
        keepFrom,
        beforeDelete: () => this.o.ownership.beforeWrite(),
        onObjectDeleted: (id) => this.cache.remove(id),
        ...(this.log ? { logger: this.log } : {}),
      });
    } catch (err) {
      if (err instanceof FencedError) this.fence(err);
      else this.log?.warn({ err: (err as Error).message }, 'garbage collection failed (will retry after the next checkpoint)');
    }
  }

  /** Waits for a running checkpoint (tests, close). */
  async idle(): Promise<void> {
    await this.checkpointing?.catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------------------------

  status(): CommitterStatus {
    return {
      dirtyBytes: this.dirtyBytes,
      pendingEntries: this.pending.length,
      uploadsQueued: this.uploads.size,
      uploadsActive: this.uploads.pending,
      earlyUploads: this.earlyCount,
      journalSeq: this.head.seq,
      checkpointSeq: this.checkpointSeq,
      lastCommitAt: this.lastCommitAt,
      commits: this.commits,
      uploadedBytes: this.uploadedBytes,
      uploadedObjects: this.uploadedObjects,
      compactedBytes: this.compactedBytes,
      compactionQueue: this.compactQueue.size,
      health: { ...this.health },
    };
  }

  /**
   * Stops: commits everything first unless `abandon` (then uncommitted entries stay in the WAL for the next
   * open), waits for a running checkpoint.
   */
  async close(abandon = false): Promise<void> {
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (abandon) this.abandoned = true;
    await this.compacting?.catch(() => undefined);
    if (abandon) {
      this.abandoned = true; // queued uploads fail at once; uncommitted entries stay in the WAL
    } else if (!this.fenced) {
      await this.commitThrough(this.wal.lastSeq);
      await this.checkpointing?.catch(() => undefined);
    }
    await this.running?.promise.catch(() => undefined);
    await this.uploads.onIdle().catch(() => undefined);
    this.wakeRoomWaiters();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoint building (pure), in a worker thread when possible
// ---------------------------------------------------------------------------------------------------------------

export interface CheckpointBuildInput {
  /** The previous checkpoint, encoded. */
  base: Uint8Array;
  /** The segments after it, encoded, in order. */
  segments: Uint8Array[];
  header: CheckpointHeader;
}

export interface CheckpointBuildOutput {
  bytes: Buffer;
  /** Data objects the new checkpoint references. */
  referenced: string[];
  inWorker: boolean;
}

/** Previous checkpoint + segments -> the next checkpoint (and what it references). Pure. */
export function buildCheckpoint(input: CheckpointBuildInput): { bytes: Buffer; referenced: string[] } {
  const { snapshot } = decodeCheckpoint(Buffer.from(input.base.buffer, input.base.byteOffset, input.base.byteLength));
  const st = FsState.restore(snapshot);
  for (const seg of input.segments) {
    for (const b of decodeSegment(Buffer.from(seg.buffer, seg.byteOffset, seg.byteLength)).batches) st.apply(b);
  }
  const bytes = encodeCheckpoint(input.header, st.snapshot());
  return { bytes, referenced: [...st.referencedObjects()] };
}

const WORKER_KIND = 'swiftfs-checkpoint-build';

/** Runs buildCheckpoint in a worker thread (this module is its entry); in-process if a worker cannot start. */
export function buildCheckpointOffThread(input: CheckpointBuildInput): Promise<CheckpointBuildOutput> {
  return new Promise((resolve, reject) => {
    let worker: Worker;
    try {
      worker = new Worker(new URL(import.meta.url), { workerData: { kind: WORKER_KIND, input } });
    } catch {
      try {
        resolve({ ...buildCheckpoint(input), inWorker: false });
      } catch (err) {
        reject(err as Error);
      }
      return;
    }
    let settled = false;
    worker.once('message', (m: { ok: true; bytes: Uint8Array; referenced: string[] } | { ok: false; error: string }) => {
      settled = true;
      if (m.ok) resolve({ bytes: Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength), referenced: m.referenced, inWorker: true });
      else reject(new Error(`checkpoint build failed: ${m.error}`));
      void worker.terminate();
    });
    worker.once('error', (err) => {
      if (!settled) {
        settled = true;
        reject(err);
      }
    });
    worker.once('exit', (code) => {
      if (!settled) {
        settled = true;
        reject(new Error(`checkpoint worker exited with code ${code}`));
      }
    });
  });
}

if (!isMainThread && (workerData as { kind?: string } | null)?.kind === WORKER_KIND) {
  const input = (workerData as { input: CheckpointBuildInput }).input;
  try {
    const out = buildCheckpoint(input);
    // Copied, not transferred: small results live in Buffer's shared pool, which cannot be transferred.
    parentPort!.postMessage({ ok: true, bytes: new Uint8Array(out.bytes.buffer, out.bytes.byteOffset, out.bytes.byteLength), referenced: out.referenced });
  } catch (err) {
    parentPort!.postMessage({ ok: false, error: (err as Error).message });
  }
}
