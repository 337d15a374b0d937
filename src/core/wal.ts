/**
 * The local write-ahead log of a read-write volume, in `<cacheDir>/<volume uuid>/wal/`.
 *
 * Every operation's record batch (with its write data inline) is appended here before the operation returns,
 * so that it survives a crash of the process (page cache) or, after sync(), of the host. Reads of dirty data
 * come from here until the committer has uploaded it. Properties:
 *  - Segment files are preallocated (zero-filled, or recycled from released segments) before they are used:
 *    a full cache disk shows up as ENOSPC from ready() *before* an operation changes the in-memory state,
 *    never as a half-applied operation.
 *  - append() is synchronous: it assigns the position (so that the batch can name its data's WAL ref) and
 *    starts one vectored positional write; `written` resolves when it is in the page cache.
 *  - Entries carry a CRC32, their segment number and a sequence number; replay stops at the first torn or
 *    invalid entry, and a later segment is only replayed if it continues the sequence without a gap.
 *  - sync() is one fdatasync per dirty segment, shared by every caller that needs it (group sync).
 *  - A segment is released (recycled as a spare, or deleted) once all its entries are committed and no
 *    reader has it pinned.
 */

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { FsError } from './errors.js';
import {
  WAL_ENTRY_HEADER_SIZE,
  WAL_SEGMENT_HEADER_SIZE,
  decodeWalEntryBody,
  decodeWalEntryHeader,
  decodeWalSegmentHeader,
  encodeBatchJson,
  encodeWalEntryHeader,
  encodeWalSegmentHeader,
} from './records.js';
import type { MetaRecord } from './types.js';
import type { Logger } from './log.js';

export const DEFAULT_WAL_SEGMENT_SIZE = 32 * 1024 * 1024;

export interface WalOptions {
  /** The WAL directory (created if missing). */
  dir: string;
  /** The volume's uuid (checked against the directory's identity file). */
  volume: string;
  /** Size of each preallocated segment file. Must exceed the largest entry (data + metadata) by far. */
  segmentSize?: number;
  /** Most segment files alive at once (live + spares); ready() waits for releases beyond it. Default 64. */
  maxSegments?: number;
  /** Preallocated spares kept ahead of the active segment. Default 1. */
  spareSegments?: number;
  logger?: Logger;
}

/** One appended entry: its position, its batch and when it is written. */
export interface WalEntry {
  seq: number;
  segment: number;
  /** Offset of the entry in its segment file. */
  offset: number;
  /** Entry size in the file (header + data + metadata). */
  total: number;
  /** Where its data starts: WAL refs of its write records point here (`{ wal: segment, off: dataOffset + k }`). */
  dataOffset: number;
  dataLength: number;
  batch: MetaRecord[];
}

export interface WalAppend {
  entry: WalEntry;
  /** Resolves when the entry is written (page cache); rejects with EIO if the write failed. */
  written: Promise<void>;
}

interface InflightWrite {
  start: number;
  end: number;
  promise: Promise<void>;
}

interface Segment {
  no: number;
  file: string;
  fd: number;
  /** Preallocated size of the file. */
  size: number;
  /** Next append position. */
  writeAt: number;
  firstSeq: number;
  lastSeq: number;
  pins: number;
  inflight: InflightWrite[];
  /** Completed writes not yet covered by an fdatasync. */
  unsynced: boolean;
  released: boolean;
}

interface WalIdentity {
  v: 1;
  volume: string;
  walId: string;
  createdAt: number;
}

const ZERO_CHUNK = Buffer.alloc(4 * 1024 * 1024);

let fallocateWorks: boolean | undefined;

/**
 * Reserves the blocks of a file with fallocate(1) (Node has no fallocate): fast, and on ext4/xfs the blocks are
 * really allocated, so later writes into them cannot fail with ENOSPC. False when unavailable (the caller then
 * writes zeros, which reserves them on any filesystem); ENOSPC is thrown as such.
 */
function fallocate(file: string, size: number): Promise<boolean> {
  if (fallocateWorks === false) return Promise.resolve(false);
  return new Promise((resolve, reject) => {
    execFile('fallocate', ['-l', String(size), file], { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (!err) {
        fallocateWorks = true;
        return resolve(true);
      }
      if (/No space left|Disk quota/i.test(String(stderr))) {
        const e = new Error(`fallocate: ${String(stderr).trim()}`) as NodeJS.ErrnoException;
        e.code = 'ENOSPC';
        return reject(e);
      }
      fallocateWorks = false; // missing binary or a filesystem without it: zero-fill from now on
      resolve(false);
    });
  });
}

function segmentFileName(no: number): string {
  return `seg-${no.toString(16).padStart(8, '0')}`;
}

function fsWritev(fd: number, buffers: Uint8Array[], position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.writev(fd, buffers as NodeJS.ArrayBufferView[], position, (err, n) => (err ? reject(err) : resolve(n))));
}
function fsWrite(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}
function fsRead(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}
function fsFdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}
function fsOpen(file: string, flags: string | number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flags, 0o600, (err, fd) => (err ? reject(err) : resolve(fd))));
}
function fsClose(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

async function fsyncDir(dir: string): Promise<void> {
  const fd = await fsOpen(dir, 'r');
  try {
    await fsFdatasync(fd).catch(() => undefined); // some filesystems refuse fsync on directories
  } finally {
    await fsClose(fd);
  }
}

async function writeAll(fd: number, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const n = await fsWrite(fd, buf, done, buf.length - done, position + done);
    if (n <= 0) throw new Error('short write');
    done += n;
  }
}

async function readAll(fd: number, buf: Buffer, bufOff: number, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const n = await fsRead(fd, buf, bufOff + done, length - done, position + done);
    if (n <= 0) throw new FsError('EIO', `WAL read past the end of the segment at ${position + done}`);
    done += n;
  }
}

export interface WalOpenResult {
  wal: Wal;
  /** Valid entries found on disk, in sequence order (not yet known to be committed or not). */
  entries: WalEntry[];
  /** True when the directory was created now (no previous WAL). */
  fresh: boolean;
  /** Entries dropped at the end because they were torn or broke the sequence (logged). */
  droppedTail: boolean;
  /**
   * The last entry this host knew to be committed (a local note written after each commit, not synced: it may
   * lag behind, never run ahead).
   */
  markedCommitted: number;
}

export class Wal {
  readonly dir: string;
  readonly walId: string;
  readonly volume: string;
  readonly segmentSize: number;
  private readonly maxSegments: number;
  private readonly spareTarget: number;
  private readonly log: Logger | undefined;

  private readonly segments = new Map<number, Segment>();
  private active: Segment | null = null;
  private readonly spares: Segment[] = [];
  /** Released files kept for recycling (closed; path only). */
  private readonly recyclable: string[] = [];
  private nextSegmentNo: number;
  private preparing: Promise<void> | null = null;
  private prepareError: Error | null = null;
  private readonly spaceWaiters: (() => void)[] = [];

  /** Highest sequence number assigned. */
  lastSeq: number;
  /** Every entry up to here is written (page cache). */
  completedSeq: number;
  /** Every entry up to here is fdatasync'd. */
  syncedSeq: number;
  /** Entries up to here are committed to the store (their segments may be released). */
  committedSeq: number;
  private readonly completedAbove = new Set<number>();
  private readonly completionWaiters: { seq: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  private syncing: { target: number; promise: Promise<void> } | null = null;
  private syncQueued: Promise<void> | null = null;
  /** Set when a write failed: the WAL can no longer take entries (the volume turns read-only). */
  broken: Error | null = null;
  private session = { epoch: 0, journalSeq: 0 };
  private closed = false;
  /** Bytes in live segments (for status). */
  get liveBytes(): number {
    let n = 0;
    for (const s of this.segments.values()) if (!s.released) n += s.size;
    return n;
  }

  private constructor(opts: WalOptions, identity: WalIdentity, nextSegmentNo: number, lastSeq: number) {
    this.dir = opts.dir;
    this.walId = identity.walId;
    this.volume = opts.volume;
    this.segmentSize = opts.segmentSize ?? DEFAULT_WAL_SEGMENT_SIZE;
    this.maxSegments = Math.max(3, opts.maxSegments ?? 64);
    this.spareTarget = Math.max(1, opts.spareSegments ?? 1);
    this.log = opts.logger;
    this.nextSegmentNo = nextSegmentNo;
    this.lastSeq = lastSeq;
    this.completedSeq = lastSeq;
    this.syncedSeq = lastSeq;
    this.committedSeq = 0;
  }

  /**
   * Opens (or creates) the WAL in `dir` and replays it: returns the valid entries in order. The caller decides
   * which are already committed (markCommitted) and re-applies the rest. The WAL then appends to fresh
   * segments; old segments stay until their entries are committed.
   */
  static async open(opts: WalOptions): Promise<WalOpenResult> {
    const segmentSize = opts.segmentSize ?? DEFAULT_WAL_SEGMENT_SIZE;
    if (segmentSize < 1024 * 1024 || segmentSize % 4096 !== 0) throw new Error('WAL segment size must be a multiple of 4 KiB and at least 1 MiB');
    await fsp.mkdir(opts.dir, { recursive: true });
    const idFile = path.join(opts.dir, 'wal.json');
    let identity: WalIdentity | null = null;
    let fresh = false;
    try {
      identity = JSON.parse(await fsp.readFile(idFile, 'utf8')) as WalIdentity;
      if (identity.volume !== opts.volume) throw new Error(`WAL directory ${opts.dir} belongs to volume ${identity.volume}, not ${opts.volume}`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (!identity) {
      fresh = true;
      identity = { v: 1, volume: opts.volume, walId: randomUUID(), createdAt: Date.now() };
      const tmp = `${idFile}.tmp`;
      await fsp.writeFile(tmp, JSON.stringify(identity));
      const fd = await fsOpen(tmp, 'r+');
      await fsFdatasync(fd);
      await fsClose(fd);
      await fsp.rename(tmp, idFile);
      await fsyncDir(opts.dir);
    }

    // Read every segment file's header; order by the header's number (the file name can lag a rename).
    const found: { file: string; no: number }[] = [];
    const junk: string[] = [];
    for (const name of await fsp.readdir(opts.dir)) {
      if (!name.startsWith('seg-')) continue;
      const file = path.join(opts.dir, name);
      const fd = await fsOpen(file, 'r');
      try {
        const head = Buffer.alloc(WAL_SEGMENT_HEADER_SIZE);
        const n = await fsRead(fd, head, 0, head.length, 0);
        const header = n === head.length ? decodeWalSegmentHeader(head) : null;
        if (header && header.walId === identity.walId) found.push({ file, no: header.segment });
        else junk.push(file);
      } finally {
        await fsClose(fd);
      }
    }
    found.sort((a, b) => a.no - b.no);
    const maxNo = found.length ? found[found.length - 1]!.no : 0;

    const entries: WalEntry[] = [];
    const live: Segment[] = [];
    let prevSeq = 0;
    let droppedTail = false;
    for (const f of found) {
      const fd = await fsOpen(f.file, 'r+');
      let keep = false;
      try {
        const stat = await fsp.stat(f.file);
        const buf = Buffer.allocUnsafe(stat.size);
        await readAll(fd, buf, 0, stat.size, 0);
        let at = WAL_SEGMENT_HEADER_SIZE;
        const segEntries: WalEntry[] = [];
        let expect = prevSeq;
        for (;;) {
          const h = decodeWalEntryHeader(buf, at);
          if (!h || h.segment !== f.no || at + h.total > buf.length) break;
          // A segment is only replayed if it continues the sequence: one that does not is a leftover written
          // after a torn entry (or a recycled file), and never holds anything acknowledged as synced.
          if (expect !== 0 && h.seq !== expect + 1) break;
          const batch = decodeWalEntryBody(buf, at, h);
          if (!batch) break;
          segEntries.push({ seq: h.seq, segment: f.no, offset: at, total: h.total, dataOffset: at + WAL_ENTRY_HEADER_SIZE, dataLength: h.dataLength, batch });
          expect = h.seq;
          at += h.total;
        }
        const after = decodeWalEntryHeader(buf, at);
        if (after && after.segment === f.no) droppedTail = true; // something entry-like that did not verify: torn
        if (segEntries.length > 0) {
          entries.push(...segEntries);
          prevSeq = expect;
          keep = true;
          live.push({
            no: f.no,
            file: f.file,
            fd,
            size: stat.size,
            writeAt: stat.size, // never appended to again
            firstSeq: segEntries[0]!.seq,
            lastSeq: expect,
            pins: 0,
            inflight: [],
            unsynced: false,
            released: false,
          });
        } else junk.push(f.file);
      } finally {
        if (!keep) await fsClose(fd);
      }
    }

    // Invalidate leftovers durably (zero their header) so that no later replay can mistake them for the start
    // of the log once the segments before them are released.
    for (const file of junk) {
      const fd = await fsOpen(file, 'r+');
      try {
        await writeAll(fd, Buffer.alloc(WAL_SEGMENT_HEADER_SIZE), 0);
        await fsFdatasync(fd);
      } finally {
        await fsClose(fd);
      }
    }

    let markedCommitted = 0;
    try {
      const m = JSON.parse(await fsp.readFile(path.join(opts.dir, 'committed.json'), 'utf8')) as { walSeq?: unknown };
      if (typeof m.walSeq === 'number') markedCommitted = m.walSeq;
    } catch {
      // none yet
    }

    const wal = new Wal(opts, identity, maxNo + 1, Math.max(prevSeq, markedCommitted));
    wal.markedCommitted = markedCommitted;
    for (const s of live) wal.segments.set(s.no, s);
    // Junk (invalid, empty, or past a broken chain) is recycled.
    for (const file of junk) wal.recyclable.push(file);
    if (droppedTail) opts.logger?.warn({ wal: opts.dir, lastSeq: prevSeq }, 'WAL: dropped a torn entry at the end of the log (never acknowledged as synced)');
    try {
      await wal.prepareSpares();
      wal.activateSpare();
    } catch (err) {
      await wal.close();
      throw err;
    }
    return { wal, entries, fresh, droppedTail, markedCommitted };
  }

  /**
   * Makes the next entries number above `seq` (the highest WAL seq the journal knows for this WAL): sequence
   * numbers must never repeat one that a committed segment already covers. Call before any append.
   */
  advanceSeq(seq: number): void {
    if (seq <= this.lastSeq) return;
    if (this.lastSeq !== this.completedSeq) throw new Error('WAL: advanceSeq with entries in flight');
    this.lastSeq = this.completedSeq = this.syncedSeq = seq;
  }

  /** Records which owner epoch and journal seq new segments continue from (written in their headers). */
  setSession(epoch: number, journalSeq: number): void {
    this.session = { epoch, journalSeq };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Space
  // -------------------------------------------------------------------------------------------------------------

  /** Largest entry (header + data + metadata) that can ever be appended. */
  get maxEntrySize(): number {
    return this.segmentSize - WAL_SEGMENT_HEADER_SIZE;
  }

  /** True when an entry of `size` bytes can be appended right now without waiting. */
  canAppend(size: number): boolean {
    if (this.broken || this.closed) return true; // append() reports it
    const a = this.active;
    if (a && a.writeAt + size <= a.size) return true;
    return this.spares.length > 0;
  }

  /**
   * Waits until an entry of `size` bytes can be appended (a spare segment is ready). Rejects with ENOSPC when
   * the cache disk cannot hold another segment; waits (for releases) when the WAL is at its segment limit.
   */
  async ready(size: number): Promise<void> {
    if (size > this.maxEntrySize) throw new FsError('EFBIG', `WAL entry of ${size} bytes exceeds the segment size`);
    while (!this.canAppend(size)) {
      if (this.prepareError) {
        const err = this.prepareError;
        this.prepareError = null;
        throw err;
      }
      if (this.liveCount() >= this.maxSegments) {
        await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
        continue;
      }
      await this.prepareSpares();
    }
  }

  /** True when the WAL is at its segment limit (only releases can make room). */
  get full(): boolean {
    return this.spares.length === 0 && this.liveCount() >= this.maxSegments;
  }

  private liveCount(): number {
    let n = this.spares.length;
    for (const s of this.segments.values()) if (!s.released) n++;
    return n;
  }

  private prepareSpares(): Promise<void> {
    if (this.preparing) return this.preparing;
    const p = (async () => {
      try {
        while (!this.closed && this.spares.length < this.spareTarget && this.liveCount() < this.maxSegments) {
          this.spares.push(await this.makeSegment());
        }
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        this.prepareError = e.code === 'ENOSPC' || e.code === 'EDQUOT' ? new FsError('ENOSPC', 'cache disk full: cannot preallocate a WAL segment', { cause: err }) : (err as Error);
        this.log?.error({ err: e.message, wal: this.dir }, 'WAL: cannot prepare a segment');
      }
    })();
    this.preparing = p;
    void p.finally(() => {
      if (this.preparing === p) this.preparing = null;
    });
    return p;
  }

  /** A preallocated segment with a fresh number: a recycled file, or a new zero-filled one. */
  private async makeSegment(): Promise<Segment> {
    const no = this.nextSegmentNo++;
    const file = path.join(this.dir, segmentFileName(no));
    const recycled = this.recyclable.shift();
    let fd: number;
    if (recycled !== undefined) {
      await fsp.rename(recycled, file);
      fd = await fsOpen(file, 'r+');
      const st = await fsp.stat(file);
      if (st.size < this.segmentSize) {
        for (let at = st.size; at < this.segmentSize; at += ZERO_CHUNK.length) {
          await writeAll(fd, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, this.segmentSize - at)), at);
        }
      } else if (st.size > this.segmentSize) {
        await fsp.truncate(file, this.segmentSize);
      }
    } else {
      fd = await fsOpen(file, 'w+');
      try {
        if (!(await fallocate(file, this.segmentSize))) {
          for (let at = 0; at < this.segmentSize; at += ZERO_CHUNK.length) {
            await writeAll(fd, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, this.segmentSize - at)), at);
          }
        }
      } catch (err) {
        await fsClose(fd);
        await fsp.unlink(file).catch(() => undefined);
        throw err;
      }
    }
    const header = encodeWalSegmentHeader({ v: 1, volume: this.volume, walId: this.walId, segment: no, epoch: this.session.epoch, journalSeq: this.session.journalSeq, createdAt: Date.now() });
    await writeAll(fd, header, 0);
    // Invalidate whatever a recycled file holds right after the header (its entries carry their old segment
    // number and would be rejected anyway; this makes a replay stop immediately).
    await writeAll(fd, Buffer.alloc(WAL_ENTRY_HEADER_SIZE), WAL_SEGMENT_HEADER_SIZE);
    await fsFdatasync(fd);
    await fsyncDir(this.dir);
    return { no, file, fd, size: this.segmentSize, writeAt: WAL_SEGMENT_HEADER_SIZE, firstSeq: 0, lastSeq: 0, pins: 0, inflight: [], unsynced: false, released: false };
  }

  private activateSpare(): void {
    const next = this.spares.shift();
    if (!next) throw new Error('WAL: no spare segment to activate');
    this.segments.set(next.no, next);
    const prev = this.active;
    this.active = next;
    if (prev) this.maybeRelease(prev);
    void this.prepareSpares();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Appending
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Appends one entry, synchronously choosing its position. `plan` is called with the WAL ref where `data` will
   * live (or null when there is no data) and returns the batch; it may throw (an FsError from validation), in
   * which case nothing is appended. The caller must have awaited ready(); if the entry does not fit anyway,
   * it returns 'full' (nothing appended: await ready() and try again). A plan that returns an empty batch
   * appends nothing ('empty').
   *
   * Returns the entry and the promise of its write (page cache).
   */
  append(plan: (ref: { wal: number; off: number } | null) => MetaRecord[], data: Uint8Array | null): WalAppend | 'empty' | 'full' {
    if (this.broken) throw new FsError('EIO', 'the WAL failed earlier; the volume is read-only', { cause: this.broken });
    if (this.closed) throw new FsError('EIO', 'WAL is closed');
    const dataLength = data ? data.length : 0;
    let seg = this.active!;
    let ref = dataLength > 0 ? { wal: seg.no, off: seg.writeAt + WAL_ENTRY_HEADER_SIZE } : null;
    let batch = plan(ref);
    if (batch.length === 0) return 'empty';
    let meta = encodeBatchJson(batch);
    let total = WAL_ENTRY_HEADER_SIZE + dataLength + meta.length;
    if (seg.writeAt + total > seg.size) {
      if (total > this.maxEntrySize) throw new FsError('EFBIG', `WAL entry of ${total} bytes exceeds the segment size`);
      if (this.spares.length === 0) return 'full';
      this.activateSpare();
      seg = this.active!;
      if (ref) {
        ref = { wal: seg.no, off: seg.writeAt + WAL_ENTRY_HEADER_SIZE };
        batch = plan(ref);
        meta = encodeBatchJson(batch);
        total = WAL_ENTRY_HEADER_SIZE + dataLength + meta.length;
        if (seg.writeAt + total > seg.size) throw new FsError('EFBIG', `WAL entry of ${total} bytes exceeds the segment size`);
      }
    }
    const seq = ++this.lastSeq;
    const offset = seg.writeAt;
    seg.writeAt += total;
    if (seg.firstSeq === 0) seg.firstSeq = seq;
    seg.lastSeq = seq;
    const header = encodeWalEntryHeader(seg.no, seq, data, meta);
    const buffers: Uint8Array[] = dataLength > 0 ? [header, data!, meta] : [header, meta];
    const entry: WalEntry = { seq, segment: seg.no, offset, total, dataOffset: offset + WAL_ENTRY_HEADER_SIZE, dataLength, batch };
    const inflight: InflightWrite = { start: offset, end: offset + total, promise: null as unknown as Promise<void> };
    const written = this.writeEntry(seg, buffers, offset, total, seq, inflight);
    inflight.promise = written;
    seg.inflight.push(inflight);
    return { entry, written };
  }

  private async writeEntry(seg: Segment, buffers: Uint8Array[], offset: number, total: number, seq: number, inflight: InflightWrite): Promise<void> {
    try {
      let n = await fsWritev(seg.fd, buffers, offset);
      if (n < total) {
        // Short write (rare): finish it piecewise.
        const all = Buffer.concat(buffers);
        while (n < total) n += await fsWrite(seg.fd, all, n, total - n, offset + n);
      }
    } catch (err) {
      this.fail(err as Error);
      throw new FsError('EIO', `WAL write failed: ${(err as Error).message}`, { cause: err });
    } finally {
      const i = seg.inflight.indexOf(inflight);
      if (i >= 0) seg.inflight.splice(i, 1);
    }
    seg.unsynced = true;
    this.completed(seq);
  }

  private fail(err: Error): void {
    if (this.broken) return;
    this.broken = err;
    this.log?.error({ err: err.message, wal: this.dir }, 'WAL write failed: the volume turns read-only');
    for (const w of this.completionWaiters.splice(0)) w.reject(new FsError('EIO', 'WAL write failed', { cause: err }));
  }

  private completed(seq: number): void {
    if (seq === this.completedSeq + 1) {
      this.completedSeq = seq;
      while (this.completedAbove.delete(this.completedSeq + 1)) this.completedSeq++;
      if (this.completionWaiters.length) {
        const still: typeof this.completionWaiters = [];
        for (const w of this.completionWaiters) {
          if (w.seq <= this.completedSeq) w.resolve();
          else still.push(w);
        }
        this.completionWaiters.length = 0;
        this.completionWaiters.push(...still);
      }
    } else this.completedAbove.add(seq);
  }

  /** Resolves when every entry up to `seq` is written (in the page cache: safe from a process crash). */
  waitWritten(seq: number): Promise<void> {
    if (seq <= this.completedSeq) return Promise.resolve();
    if (this.broken) return Promise.reject(new FsError('EIO', 'WAL write failed', { cause: this.broken }));
    return new Promise((resolve, reject) => this.completionWaiters.push({ seq, resolve, reject }));
  }

  /**
   * Makes every entry up to `seq` (default: all appended so far) durable on the cache disk. Concurrent
   * callers share fdatasyncs: a caller joins the running sync when it covers its entries, else the next one.
   */
  async sync(seq: number = this.lastSeq): Promise<void> {
    await this.waitWritten(seq);
    while (this.syncedSeq < seq) {
      if (this.syncing && this.syncing.target >= seq) {
        await this.syncing.promise;
        continue;
      }
      if (this.syncing) {
        // A sync is running that does not cover us: queue (one) follow-up that all later callers share.
        if (!this.syncQueued) {
          const running = this.syncing.promise;
          this.syncQueued = running.catch(() => undefined).then(() => {
            this.syncQueued = null;
          });
        }
        await this.syncQueued;
        continue;
      }
      const target = this.completedSeq;
      const promise = this.runSync(target);
      this.syncing = { target, promise };
      try {
        await promise;
      } finally {
        if (this.syncing?.promise === promise) this.syncing = null;
      }
    }
  }

  private async runSync(target: number): Promise<void> {
    const dirty = [...this.segments.values()].filter((s) => s.unsynced && !s.released);
    for (const s of dirty) s.unsynced = false;
    try {
      await Promise.all(dirty.map((s) => fsFdatasync(s.fd)));
    } catch (err) {
      for (const s of dirty) s.unsynced = true;
      this.fail(err as Error);
      throw new FsError('EIO', `WAL fdatasync failed: ${(err as Error).message}`, { cause: err });
    }
    if (target > this.syncedSeq) this.syncedSeq = target;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Reading dirty data
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Reads `length` bytes at `ref` into `into[at..]`. Call it synchronously after getting the ref from the state
   * (it pins the segment at once, so that a concurrent commit cannot release it); waits for an in-flight write
   * of that range.
   */
  read(segment: number, offset: number, length: number, into: Buffer, at: number): Promise<void> {
    const seg = this.segments.get(segment);
    if (!seg || seg.released) return Promise.reject(new FsError('EIO', `WAL segment ${segment} is gone (internal error: stale ref)`));
    seg.pins++;
    return this.readPinned(seg, offset, length, into, at).finally(() => {
      seg.pins--;
      if (seg.pins === 0) this.maybeRelease(seg);
    });
  }

  /**
   * Keeps a segment from being released until unpin() (for a reader that captured refs now and reads later).
   * Returns false when the segment is already gone.
   */
  pin(segment: number): boolean {
    const seg = this.segments.get(segment);
    if (!seg || seg.released) return false;
    seg.pins++;
    return true;
  }

  unpin(segment: number): void {
    const seg = this.segments.get(segment);
    if (!seg) return;
    seg.pins--;
    if (seg.pins === 0) this.maybeRelease(seg);
  }

  private async readPinned(seg: Segment, offset: number, length: number, into: Buffer, at: number): Promise<void> {
    const end = offset + length;
    for (const w of seg.inflight) {
      if (w.start < end && offset < w.end) await w.promise.catch(() => undefined);
    }
    await readAll(seg.fd, into, at, length, offset);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Releasing
  // -------------------------------------------------------------------------------------------------------------

  /** Entries up to `seq` are committed: their segments are released once unpinned. */
  markCommitted(seq: number, note = true): void {
    if (seq <= this.committedSeq) return;
    this.committedSeq = seq;
    for (const s of [...this.segments.values()]) this.maybeRelease(s);
    if (note) this.writeCommittedNote();
  }

  /** Last value found in (or written to) the local committed note. */
  markedCommitted = 0;
  private noteWriting: Promise<void> | null = null;
  private noteAgain = false;

  private writeCommittedNote(): void {
    if (this.closed) return;
    if (this.noteWriting) {
      this.noteAgain = true;
      return;
    }
    const value = this.committedSeq;
    const file = path.join(this.dir, 'committed.json');
    this.noteWriting = (async () => {
      try {
        await fsp.writeFile(`${file}.tmp`, JSON.stringify({ walSeq: value }));
        await fsp.rename(`${file}.tmp`, file);
        this.markedCommitted = value;
      } catch (err) {
        this.log?.debug({ err: (err as Error).message }, 'WAL: cannot write the committed note');
      }
    })().finally(() => {
      this.noteWriting = null;
      if (this.noteAgain) {
        this.noteAgain = false;
        this.writeCommittedNote();
      }
    });
  }

  private maybeRelease(seg: Segment): void {
    if (seg.released || seg === this.active || seg.pins > 0 || seg.inflight.length > 0) return;
    if (seg.lastSeq > this.committedSeq) return;
    seg.released = true;
    this.segments.delete(seg.no);
    void (async () => {
      const keep = !this.closed && this.recyclable.length < this.spareTarget + 1;
      if (keep) {
        // Its entries are committed: make sure no replay ever reads them again (not synced: a replay that still
        // finds them sees entries at or below the committed walSeq, which it skips).
        await writeAll(seg.fd, Buffer.alloc(WAL_SEGMENT_HEADER_SIZE), 0).catch(() => undefined);
      }
      await fsClose(seg.fd);
      if (keep) this.recyclable.push(seg.file);
      else await fsp.unlink(seg.file).catch(() => undefined);
      if (this.closed) return;
      for (const w of this.spaceWaiters.splice(0)) w();
      void this.prepareSpares();
    })();
  }

  /** Segment numbers still holding entries, for status/tests. */
  liveSegments(): number[] {
    return [...this.segments.values()].filter((s) => !s.released).map((s) => s.no).sort((a, b) => a - b);
  }

  /**
   * Closes the WAL. When every entry is committed, the segments are invalidated (their headers zeroed and
   * synced): a later open finds no entries, whatever happened to the volume meanwhile.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.noteWriting?.catch(() => undefined);
    this.closed = true;
    await this.preparing?.catch(() => undefined);
    const all = [...this.segments.values(), ...this.spares];
    await Promise.all(all.flatMap((s) => s.inflight.map((w) => w.promise.catch(() => undefined))));
    if (!this.broken && this.committedSeq >= this.lastSeq) {
      for (const s of all) {
        if (s.released) continue;
        try {
          await writeAll(s.fd, Buffer.alloc(WAL_SEGMENT_HEADER_SIZE), 0);
          await fsFdatasync(s.fd);
        } catch (err) {
          this.log?.warn({ err: (err as Error).message }, 'WAL: cannot invalidate a committed segment on close');
        }
      }
    }
    for (const s of all) if (!s.released) await fsClose(s.fd);
    for (const w of this.spaceWaiters.splice(0)) w();
    for (const w of this.completionWaiters.splice(0)) w.reject(new FsError('EIO', 'WAL closed'));
  }

  /**
   * Moves a WAL directory aside (after the volume moved on under another owner): `<dest>/wal-<time>`.
   * The WAL must be closed.
   */
  static async moveAside(dir: string, lostFoundDir: string): Promise<string> {
    await fsp.mkdir(lostFoundDir, { recursive: true });
    const dest = path.join(lostFoundDir, `wal-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    await fsp.rename(dir, dest);
    await fsyncDir(lostFoundDir);
    await fsyncDir(path.dirname(dir));
    return dest;
  }
}
