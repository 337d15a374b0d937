/**
 * The local cache of clean data objects (immutable, so any complete copy is valid forever):
 *  - a disk tier in `<cacheDir>/<volume uuid>/objects/<epoch>/<n>`, bounded in bytes by an LRU (`lru-cache`
 *    with sizeCalculation; eviction deletes the file), rebuilt from the directory on open (files are written
 *    to a temporary name and renamed, so every file found complete is a whole object);
 *  - a small memory tier of whole objects (the hot ones: a sequential reader touches the same object for many
 *    reads) so that most reads are a memcpy;
 *  - single-flight downloads (an object is never fetched twice at the same time) and bounded readahead.
 * Objects uploaded by this host are inserted directly (no download afterwards).
 */

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { LRUCache } from 'lru-cache';
import PQueue from 'p-queue';
import type { Logger } from './log.js';
import { FsError } from './errors.js';

export interface ObjectCacheOptions {
  /** Directory of the disk tier (created if missing). */
  dir: string;
  /** Bound of the disk tier in bytes. */
  maxBytes: number;
  /** Bound of the memory tier in bytes (default 64 MiB). */
  memoryBytes?: number;
  /** Downloads one whole object. */
  fetch: (id: string) => Promise<Buffer>;
  /**
   * Downloads a byte range of an object (for random readers: a 4 KiB read of a cold 4 MiB object costs a small
   * GET instead of the whole object). Without it, objects are always fetched whole.
   */
  fetchRange?: (id: string, offset: number, length: number) => Promise<Buffer>;
  /**
   * Ranged reads of one cold object before it is fetched whole (in the background) as well (default 3). While
   * the disk tier has free room for it (see objectBytes), the first one already starts the whole fetch.
   */
  rangedReadsBeforeWhole?: number;
  /**
   * The largest object (the volume's block size): a cold object read at random is fetched whole at once while
   * the disk tier has this much room per whole fetch under way (nothing is evicted for it). Without it, only
   * after rangedReadsBeforeWhole ranged reads.
   */
  objectBytes?: number;
  /** Parallel readahead downloads (default 4). */
  readaheadConcurrency?: number;
  logger?: Logger;
}

export interface ObjectCacheStats {
  diskBytes: number;
  diskObjects: number;
  memoryBytes: number;
  hits: number;
  misses: number;
  downloads: number;
  downloadedBytes: number;
  readaheads: number;
  /** Cold random reads served by a ranged GET. */
  rangedReads: number;
  /** Objects read at random often enough to be fetched whole in the background. */
  fills: number;
  /** Downloads or disk loads in progress. */
  loading: number;
}

let tmpCounter = 0;
const RANGE_ALIGN = 64 * 1024;

function copyRange(id: string, buf: Buffer, off: number, len: number, into: Buffer, at: number): void {
  if (off + len > buf.length) throw new FsError('EIO', `data object ${id} is ${buf.length} bytes; a file refers to bytes up to ${off + len}`);
  buf.copy(into, at, off, off + len);
}

export class ObjectCache {
  private readonly dir: string;
  private readonly disk: LRUCache<string, number>;
  private readonly memory: LRUCache<string, Buffer>;
  private readonly loading = new Map<string, Promise<Buffer>>();
  private readonly fetchObject: (id: string) => Promise<Buffer>;
  private readonly fetchRange: ((id: string, offset: number, length: number) => Promise<Buffer>) | undefined;
  private readonly rangedReadsBeforeWhole: number;
  private readonly maxBytes: number;
  private readonly objectBytes: number | undefined;
  /** Cold objects read by range so far (how many times), to fetch the often-read ones whole. */
  private readonly rangedReads = new LRUCache<string, number>({ max: 4096 });
  private readonly readahead: PQueue;
  private readonly log: Logger | undefined;
  private readonly madeDirs = new Set<string>();
  private readonly writing = new Map<string, Promise<void>>();
  /** Objects being fetched whole in the background for random readers (also in `loading`). */
  private readonly filling = new Set<string>();
  /** Open descriptors of cached files for ranged reads (closed on eviction once no read uses them). */
  private readonly fds: LRUCache<string, { fd: number; refs: number; dropped: boolean }>;
  private closed = false;
  private readonly counters = { hits: 0, misses: 0, downloads: 0, downloadedBytes: 0, readaheads: 0, rangedReads: 0, fills: 0 };

  private constructor(opts: ObjectCacheOptions) {
    this.dir = opts.dir;
    this.fetchObject = opts.fetch;
    this.fetchRange = opts.fetchRange;
    this.rangedReadsBeforeWhole = opts.rangedReadsBeforeWhole ?? 3;
    this.maxBytes = Math.max(1, opts.maxBytes);
    this.objectBytes = opts.objectBytes;
    this.log = opts.logger;
    this.disk = new LRUCache<string, number>({
      maxSize: Math.max(1, opts.maxBytes),
      sizeCalculation: (size) => Math.max(1, size),
      dispose: (_size, id, reason) => {
        if (reason === 'evict' || reason === 'delete') {
          this.fds?.delete(id);
          void fsp.unlink(this.fileOf(id)).catch(() => undefined);
        }
      },
    });
    this.memory = new LRUCache<string, Buffer>({
      maxSize: Math.max(1, opts.memoryBytes ?? 64 * 1024 * 1024),
      sizeCalculation: (b) => Math.max(1, b.length),
    });
    this.readahead = new PQueue({ concurrency: Math.max(1, opts.readaheadConcurrency ?? 4) });
    this.fds = new LRUCache<string, { fd: number; refs: number; dropped: boolean }>({
      max: 128,
      dispose: (entry) => {
        entry.dropped = true;
        if (entry.refs === 0) fs.close(entry.fd, () => undefined);
      },
    });
  }

  /** Opens the cache, adopting every complete object file found (oldest first, so the newest stay). */
  static async open(opts: ObjectCacheOptions): Promise<ObjectCache> {
    const cache = new ObjectCache(opts);
    await fsp.mkdir(opts.dir, { recursive: true });
    const found: { id: string; size: number; mtime: number }[] = [];
    for (const epochDir of await fsp.readdir(opts.dir)) {
      const sub = path.join(opts.dir, epochDir);
      let names: string[];
      try {
        names = await fsp.readdir(sub);
      } catch {
        continue;
      }
      cache.madeDirs.add(sub);
      for (const name of names) {
        const file = path.join(sub, name);
        if (name.includes('.tmp')) {
          await fsp.unlink(file).catch(() => undefined);
          continue;
        }
        try {
          const st = await fsp.stat(file);
          if (st.isFile()) found.push({ id: `${epochDir}/${name}`, size: st.size, mtime: st.mtimeMs });
        } catch {
          // vanished meanwhile
        }
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) cache.disk.set(f.id, f.size);
    return cache;
  }

  private fileOf(id: string): string {
    return path.join(this.dir, id);
  }

  /** True when the object is held locally (memory or disk). */
  has(id: string): boolean {
    return this.memory.has(id) || this.disk.has(id);
  }

  /** The whole object: from memory, from disk, or downloaded (one download per object at a time). */
  get(id: string): Promise<Buffer> {
    const mem = this.memory.get(id);
    if (mem) {
      this.counters.hits++;
      return Promise.resolve(mem);
    }
    const pending = this.loading.get(id);
    if (pending) return pending;
    const promise = this.load(id).finally(() => this.loading.delete(id));
    this.loading.set(id, promise);
    return promise;
  }

  private async load(id: string): Promise<Buffer> {
    if (this.closed) throw new FsError('EIO', 'object cache closed (volume unmounted)');
    if (this.disk.get(id) !== undefined) {
      try {
        const buf = await fsp.readFile(this.fileOf(id));
        this.counters.hits++;
        this.memory.set(id, buf);
        return buf;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log?.warn({ id, err: (err as Error).message }, 'object cache: cannot read a cached object; downloading it again');
        this.disk.delete(id);
      }
    }
    this.counters.misses++;
    const buf = await this.fetchObject(id);
    this.counters.downloads++;
    this.counters.downloadedBytes += buf.length;
    this.memory.set(id, buf);
    void this.store(id, buf);
    return buf;
  }

  /**
   * Copies bytes [off, off+len) of object `id` into `into[at..]`. Fails with EIO if the object is shorter
   * (a reference past its end is damage). A random reader (`whole` false) of an object that is only on disk
   * reads just the range from the file; a sequential reader loads the whole object into the memory tier (it
   * will read the rest next).
   */
  async read(id: string, off: number, len: number, into: Buffer, at: number, whole = true): Promise<void> {
    const mem = this.memory.get(id);
    if (mem) {
      this.counters.hits++;
      copyRange(id, mem, off, len, into, at);
      return;
    }
    if (!whole && (this.filling.has(id) || !this.loading.has(id))) {
      const size = this.disk.get(id);
      if (size !== undefined) {
        if (off + len > size) throw new FsError('EIO', `data object ${id} is ${size} bytes; a file refers to bytes up to ${off + len}`);
        if (await this.preadFile(id, off, len, into, at)) {
          this.counters.hits++;
          return;
        }
        this.disk.delete(id); // vanished: download again
      } else if (this.fetchRange) {
        // Cold and read at random: fetch just the range (64 KiB aligned). An object that proves popular (read
        // more than rangedReadsBeforeWhole times) is fetched whole in the background (the readahead queue), and
        // read by range meanwhile: a random reader never waits for a whole object (that wait was its p99).
        if (!this.filling.has(id)) {
          const n = (this.rangedReads.get(id) ?? 0) + 1;
          if (n <= this.rangedReadsBeforeWhole && !this.hasRoomForFill()) this.rangedReads.set(id, n);
          else {
            this.rangedReads.delete(id);
            this.fill(id);
          }
        }
        const from = Math.floor(off / RANGE_ALIGN) * RANGE_ALIGN;
        const to = Math.ceil((off + len) / RANGE_ALIGN) * RANGE_ALIGN;
        this.counters.misses++;
        this.counters.rangedReads++;
        const part = await this.fetchRange(id, from, to - from);
        this.counters.downloadedBytes += part.length;
        if (off - from + len > part.length) throw new FsError('EIO', `data object ${id} ends before byte ${off + len} that a file refers to`);
        part.copy(into, at, off - from, off - from + len);
        return;
      }
    }
    copyRange(id, await this.get(id), off, len, into, at);
  }

  /** Reads a range of a cached object file (through the open-file cache); false when the file is gone. */
  private async preadFile(id: string, off: number, len: number, into: Buffer, at: number): Promise<boolean> {
    let entry = this.fds.get(id);
    if (!entry) {
      let fd: number;
      try {
        fd = await new Promise<number>((resolve, reject) => fs.open(this.fileOf(id), 'r', (err, n) => (err ? reject(err) : resolve(n))));
      } catch {
        return false;
      }
      const raced = this.fds.get(id);
      if (raced) {
        fs.close(fd, () => undefined);
        entry = raced;
      } else {
        entry = { fd, refs: 0, dropped: false };
        this.fds.set(id, entry);
      }
    }
    entry.refs++;
    try {
      let done = 0;
      while (done < len) {
        const e = entry;
        const n = await new Promise<number>((resolve, reject) => fs.read(e.fd, into, at + done, len - done, off + done, (err, k) => (err ? reject(err) : resolve(k))));
        if (n <= 0) return false;
        done += n;
      }
      return true;
    } catch {
      return false;
    } finally {
      entry.refs--;
      if (entry.dropped && entry.refs === 0) fs.close(entry.fd, () => undefined);
    }
  }

  /** Adds an object this host has just uploaded (disk tier only: it is not necessarily about to be read). */
  insert(id: string, data: Buffer): Promise<void> {
    if (this.disk.has(id)) return Promise.resolve();
    return this.store(id, data);
  }

  /** Writes an object file (temporary name, then rename) and records it in the disk tier. */
  private store(id: string, data: Buffer): Promise<void> {
    if (this.closed) return Promise.resolve();
    const existing = this.writing.get(id);
    if (existing) return existing;
    const p = (async () => {
      const file = this.fileOf(id);
      const sub = path.dirname(file);
      const tmp = `${file}.tmp-${process.pid}-${++tmpCounter}`;
      try {
        if (!this.madeDirs.has(sub)) {
          await fsp.mkdir(sub, { recursive: true });
          this.madeDirs.add(sub);
        }
        await fsp.writeFile(tmp, data);
        await fsp.rename(tmp, file);
        this.disk.set(id, data.length);
      } catch (err) {
        await fsp.unlink(tmp).catch(() => undefined);
        this.log?.warn({ id, err: (err as Error).message }, 'object cache: cannot store an object on disk (kept in memory only)');
      }
    })().finally(() => this.writing.delete(id));
    this.writing.set(id, p);
    return p;
  }

  /** Starts downloading these objects in the background (bounded), unless held or already coming. */
  prefetch(ids: Iterable<string>): void {
    if (this.closed) return;
    for (const id of ids) {
      if (this.memory.has(id) || this.loading.has(id)) continue;
      this.counters.readaheads++;
      const promise = this.readahead
        .add(() => this.load(id))
        .then((b) => b as Buffer)
        .finally(() => this.loading.delete(id));
      promise.catch((err: unknown) => this.log?.debug({ id, err: (err as Error).message }, 'object cache: readahead failed'));
      this.loading.set(id, promise);
    }
  }

  /** True when the disk tier can take one more whole object fetched for random readers without evicting. */
  private hasRoomForFill(): boolean {
    if (this.objectBytes === undefined) return false;
    return this.disk.calculatedSize + (this.filling.size + 1) * this.objectBytes <= this.maxBytes;
  }

  /**
   * Fetches an object whole in the background for random readers (who keep reading it by range until it is
   * here: `filling`). Sequential readers wait for it as for any load.
   */
  private fill(id: string): void {
    if (this.closed || this.loading.has(id)) return;
    this.filling.add(id);
    this.counters.fills++;
    const promise = this.readahead
      .add(() => this.load(id))
      .then((b) => b as Buffer)
      .finally(() => {
        this.loading.delete(id);
        this.filling.delete(id);
      });
    promise.catch((err: unknown) => this.log?.debug({ id, err: (err as Error).message }, 'object cache: background fetch failed'));
    this.loading.set(id, promise);
  }

  /** Forgets an object (deleted by garbage collection). */
  remove(id: string): void {
    this.memory.delete(id);
    this.disk.delete(id);
    this.fds.delete(id);
  }

  stats(): ObjectCacheStats {
    return {
      diskBytes: this.disk.calculatedSize,
      diskObjects: this.disk.size,
      memoryBytes: this.memory.calculatedSize,
      loading: this.loading.size,
      ...this.counters,
    };
  }

  /** Waits for background writes and readaheads; the cache is unusable afterwards. */
  async close(): Promise<void> {
    this.closed = true; // queued readaheads now fail at once (clearing the queue would leave them unsettled)
    await this.readahead.onIdle().catch(() => undefined);
    await Promise.all([...this.writing.values()]);
    this.memory.clear();
    this.fds.clear();
  }
}
