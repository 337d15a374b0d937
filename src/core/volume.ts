/**
 * Volume: one swiftfs volume mounted from its container, implementing VolumeFs (the API every door drives).
 *
 *   Volume.format(store, container, opts)   creates the format record and the empty filesystem
 *   Volume.open(store, container, opts)     mounts: newest checkpoint + journal tail, then (read-write) takes
 *                                           ownership (the lease's settle wait), reads the journal tail again,
 *                                           replays the local WAL (crash recovery) and commits
 *   volume.close()                          commits everything, releases ownership
 *
 * Write path: validate + plan (FsState) -> append to the WAL (synchronous position) -> apply -> await the WAL
 * write. Read path: extents from FsState -> holes zero-filled, dirty data from the WAL, clean data from the
 * object cache (with readahead for sequential readers). Durability per DESIGN.md: fsync 'remote' waits for a
 * committed journal segment, 'local' for an fdatasync of the WAL; close waits for the commit when closeSync.
 */

import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ObjectStore } from '../store/object-store.js';
import { isStoreError, StoreErrorCode } from '../store/errors.js';
import { FsError } from './errors.js';
import { FsState } from './metadata.js';
import {
  DEFAULT_BLOCK_SIZE,
  FORMAT_VERSION,
  MAX_BLOCK_SIZE,
  MIN_BLOCK_SIZE,
  UUID_LABEL,
  VolumeFormatError,
  checkpointKey,
  dataKey,
  loadVolume,
  readFormat,
  readJournalTail,
  writeFormat,
  type FormatRecord,
} from './layout.js';
import { encodeCheckpoint } from './records.js';
import { DEFAULT_WAL_SEGMENT_SIZE, Wal, type WalAppend, type WalEntry } from './wal.js';
import { ObjectCache, type ObjectCacheStats } from './object-cache.js';
import { Committer, type CommitterHealth, type JournalHead } from './committer.js';
import { Ownership, VolumeBusyError, machineId, type OwnershipGuarantee } from './ownership.js';
import { HandleTable, type Handle } from './handles.js';
import { silentLogger, type Logger } from './log.js';
import {
  O_ACCMODE,
  O_EXCL,
  O_RDONLY,
  O_TRUNC,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  type Attr,
  type Caller,
  type DataRef,
  type DirEntry,
  type MetaRecord,
  type StatFs,
  type VolumeFs,
} from './types.js';

export { VolumeBusyError } from './ownership.js';
export { VolumeFormatError } from './layout.js';

export interface VolumeFormatOptions {
  /** Data block size (bytes, power of two between 64 KiB and 64 MiB). Default 4 MiB. */
  blockSize?: number;
  /** Create the container when it does not exist (else a missing container is an error). */
  createContainer?: boolean;
  /** Swift storage policy for a created container. */
  storagePolicy?: string;
  /** A free-form label stored in the format record. */
  label?: string;
  /** Owner and mode of the root directory. */
  root?: Caller;
  rootMode?: number;
}

export interface VolumeOpenOptions {
  /** Local cache directory (the volume uses `<cacheDir>/<uuid>/`). */
  cacheDir: string;
  /** Bytes of local disk the volume may use for clean objects plus the WAL. Default 2 GiB. */
  cacheSize?: number;
  /** Uncommitted data allowed before writers wait. Default min(256 MiB, cacheSize / 2). */
  dirtyLimit?: number;
  /** 'remote' (default): fsync returns once committed to the store; 'local': once in the WAL on disk. */
  fsync?: 'remote' | 'local';
  /** close() of a written file waits for the commit, like fsync in remote mode. Default false. */
  closeSync?: boolean;
  /** Commit at most this long after the first dirty change. Default 1000 ms. */
  commitIntervalMs?: number;
  readOnly?: boolean;
  /** Take the volume over from a live owner. */
  force?: boolean;
  logger?: Logger;
  /** Parallel uploads. Default 8. */
  uploadConcurrency?: number;
  /** Parallel readahead downloads. Default 8. */
  readaheadConcurrency?: number;
  /** Readahead window in blocks for sequential readers. Default 8 (32 MiB with 4 MiB blocks). */
  readaheadBlocks?: number;
  /** Memory tier of the object cache. Default max(32 MiB, twice the readahead window): 64 MiB with 4 MiB blocks. */
  memoryCacheBytes?: number;
  /** WAL segment size. Default 32 MiB (at least 4 blocks). */
  walSegmentSize?: number;
  /** Checkpoint every this many segments / journal bytes. Defaults 1000 / 64 MiB. */
  checkpointEvery?: number;
  checkpointBytes?: number;
  /** How long a holder that stopped renewing still counts as live, and the renewal (heartbeat) period. Defaults 120 s / 30 s. */
  leaseMs?: number;
  renewMs?: number;
  /**
   * The single-writer lease's settle delay S (ownership.ts, DESIGN.md "Single writer"): a read-write open waits it
   * out after writing the owner record (not where create-only puts are atomic), and a writer commits only within
   * S/2 of its last owner check. Every host of a volume should use the same; a takeover waits for the largest any
   * owner used. Must exceed twice the store's worst request delay. Default 4000 ms.
   */
  fenceSettleMs?: number;
  /** Keep the full blocks of big sequential writes in the cache after upload (see CommitterOptions). Default auto. */
  cacheFullBlocks?: boolean;
  /** Rewrite a file block held in more than this many data objects as one object (default 16; 0: never). */
  compactAbove?: number;
  /** Bytes compaction may rewrite beyond what commits packed (default 64 MiB; see CommitterOptions). */
  compactionAllowance?: number;
  /** How long open() may wait for its first commit (the store must be reachable). Default 60 s. */
  openTimeoutMs?: number;
}

export interface VolumeStatus {
  uuid: string;
  container: string;
  store: string;
  blockSize: number;
  readOnly: boolean;
  /** Why the volume is read-only when it was opened read-write (fenced by another owner, WAL failure). */
  readOnlyReason: string | null;
  fsync: 'remote' | 'local';
  journalSeq: number;
  checkpointSeq: number;
  dirtyBytes: number;
  pendingEntries: number;
  uploadsQueued: number;
  uploadsActive: number;
  uploadedBytes: number;
  /** Bytes rewritten by compaction of fragmented blocks. */
  compactedBytes: number;
  lastCommitAt: number | null;
  commits: number;
  health: CommitterHealth;
  cache: ObjectCacheStats & { walBytes: number };
  /** guarantee: 'lease' (settle delay settleMs) or 'fenced' (atomic create-only puts); see DESIGN.md "Single writer". */
  owner: { epoch: number; host: string; pid: number; since: number; guarantee: OwnershipGuarantee; settleMs: number } | null;
  openHandles: number;
}

export interface OpenResult {
  volume: Volume;
}

/** Cache directories held by this process (a second open of the same volume+cacheDir must fail). */
const heldCacheDirs = new Set<string>();

async function lockCacheDir(dir: string): Promise<() => Promise<void>> {
  await fsp.mkdir(dir, { recursive: true });
  const file = path.join(dir, 'lock');
  const resolved = path.resolve(file);
  if (heldCacheDirs.has(resolved)) throw new FsError('EBUSY', `cache directory ${dir} is in use by this process`);
  const me = { pid: process.pid, machine: machineId(), since: Date.now() };
  try {
    const other = JSON.parse(await fsp.readFile(file, 'utf8')) as { pid: number; machine: string };
    if (other.machine === me.machine && other.pid !== process.pid) {
      let alive = true;
      try {
        process.kill(other.pid, 0);
      } catch (err) {
        alive = (err as NodeJS.ErrnoException).code === 'EPERM';
      }
      if (alive) throw new FsError('EBUSY', `cache directory ${dir} is in use by process ${other.pid}`);
    }
  } catch (err) {
    if (err instanceof FsError) throw err;
  }
  await fsp.writeFile(file, JSON.stringify(me));
  heldCacheDirs.add(resolved);
  return async () => {
    heldCacheDirs.delete(resolved);
    await fsp.unlink(file).catch(() => undefined);
  };
}

function defaultCaller(): Caller {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/**
 * Readahead window of a sequential reader, in blocks. 8 x 4 MiB keeps 8 downloads in flight (the default
 * readaheadConcurrency), enough for a single stream from Swift, and bounds the memory tier (twice the window)
 * to 64 MiB: with 16 blocks and a 128 MiB tier the mount daemon peaked at 340 MiB RSS with a 1 GiB cache.
 */
const DEFAULT_READAHEAD_BLOCKS = 8;

const NO_HEAD: JournalHead = { seq: 0, epoch: 0, walId: '', walSeq: 0, maxEpoch: 0 };

export class Volume implements VolumeFs {
  readonly uuid: string;
  readonly container: string;
  readonly blockSize: number;
  readonly format: FormatRecord;
  private readonly store: ObjectStore;
  private readonly state: FsState;
  private readonly cache: ObjectCache;
  private readonly wal: Wal | null;
  private readonly committer: Committer | null;
  private readonly ownership: Ownership | null;
  private readonly releaseLock: (() => Promise<void>) | null;
  private readonly handles = new HandleTable();
  private readonly log: Logger;
  private readonly fsyncMode: 'remote' | 'local';
  private readonly closeSync: boolean;
  private readonly readaheadBytes: number;
  private readonly opts: VolumeOpenOptions;
  readonly readOnly: boolean;
  private readOnlyReason: string | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly roHead: JournalHead;

  private constructor(init: {
    store: ObjectStore;
    container: string;
    format: FormatRecord;
    state: FsState;
    cache: ObjectCache;
    wal: Wal | null;
    committer: Committer | null;
    ownership: Ownership | null;
    releaseLock: (() => Promise<void>) | null;
    opts: VolumeOpenOptions;
    head: JournalHead;
  }) {
    this.store = init.store;
    this.container = init.container;
    this.format = init.format;
    this.uuid = init.format.uuid;
    this.blockSize = init.format.blockSize;
    this.state = init.state;
    this.cache = init.cache;
    this.wal = init.wal;
    this.committer = init.committer;
    this.ownership = init.ownership;
    this.releaseLock = init.releaseLock;
    this.opts = init.opts;
    this.log = init.opts.logger ?? silentLogger;
    this.fsyncMode = init.opts.fsync ?? 'remote';
    this.closeSync = init.opts.closeSync ?? false;
    this.readOnly = init.wal === null;
    this.readaheadBytes = (init.opts.readaheadBlocks ?? DEFAULT_READAHEAD_BLOCKS) * this.blockSize;
    this.roHead = init.head;
  }

  // ===============================================================================================================
  // Format / open / close
  // ===============================================================================================================

  /** Formats `container` as a new, empty volume. Returns its format record. */
  static async format(store: ObjectStore, container: string, opts: VolumeFormatOptions = {}): Promise<FormatRecord> {
    const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
    if (!Number.isInteger(blockSize) || blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
      throw new RangeError(`block size must be a power of two between ${MIN_BLOCK_SIZE} and ${MAX_BLOCK_SIZE} bytes`);
    }
    if (opts.createContainer) {
      await store.createContainer(container, opts.storagePolicy ? { storagePolicy: opts.storagePolicy } : {});
    } else {
      try {
        await store.headContainer(container);
      } catch (err) {
        if (isStoreError(err, StoreErrorCode.NotFound)) throw new VolumeFormatError('no-container', container, `container ${container} does not exist (ask to create it)`);
        throw err;
      }
    }
    const caps = await store.capabilities(container);
    const now = Date.now();
    const record: FormatRecord = {
      format: FORMAT_VERSION,
      uuid: randomUUID(),
      blockSize,
      createdAt: now,
      createdBy: `swiftfs on ${os.hostname()}`,
      ...(opts.label ? { label: opts.label } : {}),
    };
    await writeFormat(store, container, record, caps.conditionalCreate, async () => {
      const state = FsState.create(now, opts.root ?? defaultCaller(), opts.rootMode ?? 0o755);
      const bytes = encodeCheckpoint({ v: 1, seq: 0, epoch: 0, walId: '', walSeq: 0, maxEpoch: 0, time: now }, state.snapshot());
      await store.put(container, checkpointKey(0), bytes, { contentType: 'application/octet-stream' });
    });
    await store.setLabels(container, { [UUID_LABEL]: record.uuid });
    return record;
  }

  /**
   * Mounts a volume. Read-write (the default) takes ownership (VolumeBusyError when another live session
   * holds it, unless force), recovers the local WAL, and commits a first segment that fences any older owner.
   */
  static async open(store: ObjectStore, container: string, opts: VolumeOpenOptions): Promise<Volume> {
    const log = opts.logger ?? silentLogger;
    const started = Date.now();
    const phase = (what: string) => log.debug({ container, ms: Date.now() - started }, `open: ${what}`);
    // The three reads are independent: do them at once (a failing format check is the error to report).
    const formatP = readFormat(store, container);
    const capsP = store.capabilities(container);
    const loadedP = loadVolume(store, container);
    capsP.catch(() => undefined);
    loadedP.catch(() => undefined);
    const format = await formatP;
    const caps = await capsP;
    const loaded = await loadedP;
    phase(`loaded checkpoint ${loaded.checkpoint.header.seq} and ${loaded.segments.length} segments`);
    for (const s of loaded.skippedCheckpoints) log.error({ container, checkpoint: s.seq, err: s.error }, 'skipped an unreadable checkpoint (using an older one)');
    const state = FsState.restore(loaded.checkpoint.snapshot);
    const ck = loaded.checkpoint.header;
    let head: JournalHead = { seq: ck.seq, epoch: ck.epoch, walId: ck.walId, walSeq: ck.walSeq, maxEpoch: ck.maxEpoch };
    for (const seg of loaded.segments) {
      for (const batch of seg.decoded.batches) state.apply(batch);
      const h = seg.decoded.header;
      head = { seq: h.seq, epoch: h.epoch, walId: h.walId, walSeq: h.walSeq, maxEpoch: Math.max(head.maxEpoch, h.epoch) };
    }

    const blockSize = format.blockSize;
    const cacheSize = opts.cacheSize ?? 2 * 1024 * 1024 * 1024;
    const dirtyLimit = Math.max(blockSize * 2, opts.dirtyLimit ?? Math.min(256 * 1024 * 1024, Math.floor(cacheSize / 2)));
    const segmentSize = Math.max(opts.walSegmentSize ?? DEFAULT_WAL_SEGMENT_SIZE, 4 * blockSize + 1024 * 1024);
    const volDir = path.join(opts.cacheDir, format.uuid);
    // cacheSize bounds the CLEAN data (README: "most bytes of clean data cached"); the WAL's dirty data is bounded
    // by dirtyLimit on top of it. It used to be cacheSize - dirtyLimit - 2 WAL segments (704 MiB of a 1 GiB
    // cache): a 1 GiB file read twice then found none of its blocks (a sequential scan through an LRU smaller
    // than the file evicts each block before it is read again), nor did random reads of a 1 GiB file.
    const objectsBytes = Math.max(4 * blockSize, cacheSize);

    const fetchObject = async (id: string): Promise<Buffer> => (await store.get(container, dataKey(id))).body;
    const fetchRange = async (id: string, offset: number, length: number): Promise<Buffer> =>
      (await store.get(container, dataKey(id), { range: { offset, length } })).body;
    const cache = await ObjectCache.open({
      dir: path.join(volDir, 'objects'),
      maxBytes: objectsBytes,
      // At least twice the readahead window, so that prefetched objects are still in memory when read.
      memoryBytes: opts.memoryCacheBytes ?? Math.max(32 * 1024 * 1024, 2 * (opts.readaheadBlocks ?? DEFAULT_READAHEAD_BLOCKS) * blockSize),
      fetch: fetchObject,
      fetchRange,
      objectBytes: blockSize,
      readaheadConcurrency: opts.readaheadConcurrency ?? 8,
      logger: log,
    });

    if (opts.readOnly) {
      return new Volume({ store, container, format, state, cache, wal: null, committer: null, ownership: null, releaseLock: null, opts, head });
    }

    let releaseLock: (() => Promise<void>) | null = null;
    let ownership: Ownership | null = null;
    let wal: Wal | null = null;
    let committer: Committer | null = null;
    try {
      releaseLock = await lockCacheDir(volDir);
      ownership = await Ownership.acquire(
        {
          store,
          container,
          conditionalCreate: caps.conditionalCreate,
          ...(caps.createOnlyAtomic ? { createOnlyAtomic: true } : {}),
          logger: log,
          ...(opts.force ? { force: true } : {}),
          ...(opts.leaseMs ? { leaseMs: opts.leaseMs } : {}),
          ...(opts.renewMs ? { renewMs: opts.renewMs } : {}),
          ...(opts.fenceSettleMs !== undefined ? { settleMs: opts.fenceSettleMs } : {}),
        },
        head.maxEpoch,
      );
      phase(`owner epoch ${ownership.epoch} (${ownership.guarantee})`);
      // The journal as the settle wait left it: whatever an earlier owner could still commit is in it by now, and
      // our first commit goes to the first number free after it.
      const tail = await readJournalTail(store, container, head.seq);
      for (const seg of tail) {
        const h = seg.decoded.header;
        if (h.epoch >= ownership.epoch) {
          throw new VolumeBusyError(ownership.record, `another session (epoch ${h.epoch}) committed to volume ${container} while it was being opened`);
        }
        for (const batch of seg.decoded.batches) state.apply(batch);
        head = { seq: h.seq, epoch: h.epoch, walId: h.walId, walSeq: h.walSeq, maxEpoch: Math.max(head.maxEpoch, h.epoch) };
        loaded.segments.push(seg);
      }
      if (tail.length) phase(`${tail.length} more segments after the takeover`);
      const walDir = path.join(volDir, 'wal');
      const walOpts = { dir: walDir, volume: format.uuid, segmentSize, maxSegments: Math.ceil(dirtyLimit / segmentSize) + 4, logger: log };
      let opened = await Wal.open(walOpts);
      wal = opened.wal;

      phase(`WAL opened with ${opened.entries.length} entries`);
      // Crash recovery: which local entries does the store already have?
      let ours = head.walId === wal.walId;
      const committedThrough = ours ? head.walSeq : opened.markedCommitted;
      let replay = opened.entries.filter((e) => e.seq > committedThrough);
      if (replay.length > 0 && !ours) {
        // The volume moved on under another writer after these entries: they cannot be applied any more.
        await wal.close();
        const dest = await Wal.moveAside(walDir, path.join(volDir, 'lost+found'));
        log.error(
          { container, entries: replay.length, firstSeq: replay[0]!.seq, lastSeq: replay[replay.length - 1]!.seq, keptAt: dest },
          `volume ${container} was written by another owner after this host's last uncommitted changes; they were NOT applied and are kept in ${dest}`,
        );
        opened = await Wal.open(walOpts);
        wal = opened.wal;
        replay = [];
        ours = false;
      }
      if (ours) wal.advanceSeq(head.walSeq);
      // Every entry this WAL knows of is committed, except the ones replayed now.
      wal.markCommitted(replay.length ? replay[0]!.seq - 1 : wal.lastSeq, false);
      for (const e of replay) state.apply(e.batch);
      if (replay.length) log.warn({ container, entries: replay.length }, 'recovered uncommitted changes from the local WAL; committing them');
      wal.setSession(ownership.epoch, head.seq);

      committer = new Committer({
        store,
        container,
        state,
        wal,
        cache,
        ownership,
        blockSize,
        conditionalCreate: caps.conditionalCreate,
        head,
        checkpoint: { seq: ck.seq, bytes: loaded.checkpoint.bytes },
        retained: loaded.segments.map((s) => ({ seq: s.seq, bytes: s.bytes })),
        dirtyLimit,
        ...(opts.uploadConcurrency ? { uploadConcurrency: opts.uploadConcurrency } : {}),
        ...(opts.commitIntervalMs !== undefined ? { commitIntervalMs: opts.commitIntervalMs } : {}),
        ...(opts.checkpointEvery ? { checkpointEvery: opts.checkpointEvery } : {}),
        ...(opts.checkpointBytes ? { checkpointBytes: opts.checkpointBytes } : {}),
        ...(opts.cacheFullBlocks !== undefined ? { cacheFullBlocks: opts.cacheFullBlocks } : {}),
        ...(opts.compactAbove !== undefined ? { compactAbove: opts.compactAbove } : {}),
        ...(opts.compactionAllowance !== undefined ? { compactionAllowance: opts.compactionAllowance } : {}),
        logger: log,
      });
      committer.adoptReplayed(replay);

      // The session's first commit: fences any previous owner and commits the recovered entries.
      const c = committer;
      const timeoutMs = opts.openTimeoutMs ?? 60_000;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new FsError('ETIMEDOUT', `open: no first commit within ${timeoutMs} ms (${c.status().health.lastError ?? 'store unreachable'})`)), timeoutMs);
      });
      try {
        await Promise.race([c.commitThrough(wal.lastSeq, true), timedOut]);
      } catch (err) {
        if (c.isFenced) {
          const holder = (await Ownership.read(store, container).catch(() => null)) ?? ownership.record;
          throw new VolumeBusyError(holder, `another session committed to volume ${container} while it was being opened (${holder.host}, pid ${holder.pid})`);
        }
        throw err;
      } finally {
        clearTimeout(timer);
      }

      phase('first commit done');
      const volume = new Volume({ store, container, format, state, cache, wal, committer, ownership, releaseLock, opts, head });
      committer.setOnFenced((err) => volume.turnReadOnly(`fenced: ${err.message}`));
      committer.setAppender((plan) => volume.appendEntry(() => plan(), null, 'compact'));
      ownership.startRenewal((err) => committer!.fenceFromOwnership(err));
      // Orphans left by a crash (unlinked while open): free them now.
      const orphans = state.planFreeOrphans();
      if (orphans.length) await volume.appendEntry(() => orphans, null, 'mount');
      return volume;
    } catch (err) {
      await committer?.close(true).catch(() => undefined);
      ownership?.end();
      await wal?.close().catch(() => undefined);
      await cache.close().catch(() => undefined);
      await releaseLock?.().catch(() => undefined);
      throw err;
    }
  }

  private turnReadOnly(reason: string): void {
    if (!this.readOnlyReason) this.readOnlyReason = reason;
  }

  /**
   * Unmount: commits everything (unless `abandon`: uncommitted changes then stay in the local WAL for the next
   * open), releases ownership, stops timers. Open handles are dropped. With `timeoutMs`, a store that stays
   * unreachable that long makes the close give up committing (logged; the local WAL keeps the changes).
   */
  async close(opts: { abandon?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      let abandon = opts.abandon === true;
      for (const h of this.handles.all()) {
        this.handles.close(h.fh);
        if (!this.readOnly && !this.readOnlyReason && !abandon) {
          const batch = this.state.planClosed(h.ino);
          if (batch.length) await this.appendEntry(() => batch, null, 'release').catch(() => undefined);
        }
      }
      try {
        if (this.committer) {
          const c = this.committer;
          if (abandon || this.wal?.broken) await c.close(true);
          else if (opts.timeoutMs === undefined) await c.close(false);
          else {
            let timer: NodeJS.Timeout | undefined;
            const done = await Promise.race([
              c.close(false).then(() => true),
              new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), opts.timeoutMs))),
            ]);
            clearTimeout(timer);
            if (!done) {
              abandon = true;
              const st = c.status();
              this.log.warn(
                { container: this.container, dirtyBytes: st.dirtyBytes, pendingEntries: st.pendingEntries, lastError: st.health.lastError },
                `close: could not commit within ${opts.timeoutMs} ms; the uncommitted changes stay in the local WAL and are committed by the next mount with this cache directory`,
              );
              await c.close(true);
            }
          }
        }
        if (this.ownership && !abandon && !this.committer?.isFenced) await this.ownership.release().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'cannot release the volume owner record'));
      } finally {
        this.ownership?.end();
        this.closed = true;
        await this.wal?.close();
        await this.cache.close();
        await this.releaseLock?.();
      }
    })();
    return this.closing;
  }

  status(): VolumeStatus {
    const c = this.committer?.status();
    const rec = this.ownership?.record;
    return {
      uuid: this.uuid,
      container: this.container,
      store: this.store.description,
      blockSize: this.blockSize,
      readOnly: this.readOnly || this.readOnlyReason !== null,
      readOnlyReason: this.readOnlyReason,
      fsync: this.fsyncMode,
      journalSeq: c?.journalSeq ?? this.roHead.seq,
      checkpointSeq: c?.checkpointSeq ?? 0,
      dirtyBytes: c?.dirtyBytes ?? 0,
      pendingEntries: c?.pendingEntries ?? 0,
      uploadsQueued: c?.uploadsQueued ?? 0,
      uploadsActive: c?.uploadsActive ?? 0,
      uploadedBytes: c?.uploadedBytes ?? 0,
      compactedBytes: c?.compactedBytes ?? 0,
      lastCommitAt: c?.lastCommitAt ?? null,
      commits: c?.commits ?? 0,
      health: c?.health ?? { state: 'ok', retries: 0 },
      cache: { ...this.cache.stats(), walBytes: this.wal?.liveBytes ?? 0 },
      owner: rec && this.ownership ? { epoch: rec.epoch, host: rec.host, pid: rec.pid, since: rec.since, guarantee: this.ownership.guarantee, settleMs: this.ownership.settleMs } : null,
      openHandles: this.handles.size,
    };
  }

  /** Writes a checkpoint now (tests and tools); the committer does it on its own every N segments. */
  async checkpointNow(): Promise<void> {
    if (!this.committer) return;
    await this.committer.commitThrough(this.wal!.lastSeq);
    await this.committer.idle();
    await this.committer.checkpoint();
  }

  // ===============================================================================================================
  // Internals of the write path
  // ===============================================================================================================

  private assertWritable(syscall: string, p?: string): void {
    if (this.closed) throw new FsError('EIO', 'volume is closed', { syscall });
    if (this.readOnly) throw new FsError('EROFS', undefined, { syscall, ...(p ? { path: p } : {}) });
    if (this.readOnlyReason) throw new FsError('EROFS', `volume is read-only (${this.readOnlyReason})`, { syscall, ...(p ? { path: p } : {}) });
    if (this.wal!.broken) {
      this.turnReadOnly(`WAL failure: ${this.wal!.broken.message}`);
      throw new FsError('EROFS', 'volume is read-only after a cache disk failure', { syscall });
    }
  }

  /** Waits until the WAL has a segment ready; a full cache disk fails with ENOSPC only if nothing can free room. */
  private async walRoom(): Promise<void> {
    const wal = this.wal!;
    for (;;) {
      try {
        await wal.ready(wal.maxEntrySize);
        return;
      } catch (err) {
        if (!(err instanceof FsError) || err.code !== 'ENOSPC') throw err;
        const c = this.committer!;
        if (c.status().pendingEntries === 0) throw err;
        await c.commitThrough(wal.lastSeq); // releasing committed segments makes room
      }
    }
  }

  /**
   * Plans, appends to the WAL, applies and waits for the WAL write. `plan` runs synchronously with the append
   * (it gets the WAL ref of `data`) and may throw an FsError: then nothing changes.
   */
  private async appendEntry(plan: (ref: DataRef | null) => MetaRecord[], data: Buffer | null, syscall: string, p?: string): Promise<WalEntry | null> {
    for (;;) {
      this.assertWritable(syscall, p);
      const r: WalAppend | 'empty' | 'full' = this.wal!.append(plan, data);
      if (r === 'empty') return null;
      if (r === 'full') {
        if (this.wal!.full) this.committer!.kick(); // only commits release segments
        await this.walRoom();
        continue;
      }
      this.state.apply(r.entry.batch);
      this.committer!.appended(r.entry);
      await r.written;
      return r.entry;
    }
  }

  private mutate(syscall: string, p: string | undefined, plan: () => MetaRecord[]): Promise<void> {
    return this.appendEntry(() => plan(), null, syscall, p).then(() => undefined);
  }

  private now(): number {
    return Date.now();
  }

  // ===============================================================================================================
  // VolumeFs: lookups
  // ===============================================================================================================

  async getattr(p: string): Promise<Attr> {
    return this.state.getattr(this.state.lookup(p));
  }

  async fgetattr(fh: number): Promise<Attr> {
    return this.state.getattr(this.handles.get(fh, 'fstat').ino);
  }

  async readdir(p: string): Promise<DirEntry[]> {
    return this.state.readdir(this.state.lookup(p));
  }

  async readlink(p: string): Promise<string> {
    return this.state.readlink(this.state.lookup(p));
  }

  async statfs(): Promise<StatFs> {
    return this.state.statfs();
  }

  // ===============================================================================================================
  // VolumeFs: files
  // ===============================================================================================================

  async open(p: string, flags: number): Promise<number> {
    if (this.closed) throw new FsError('EIO', 'volume is closed', { syscall: 'open' });
    const ino = this.state.lookup(p);
    const attr = this.state.getattr(ino);
    const acc = flags & O_ACCMODE;
    if ((attr.mode & S_IFMT) === S_IFDIR && acc !== O_RDONLY) throw new FsError('EISDIR', undefined, { syscall: 'open', path: p });
    if (acc !== O_RDONLY) this.assertWritable('open', p);
    if ((flags & O_TRUNC) && acc !== O_RDONLY && (attr.mode & S_IFMT) === S_IFREG) {
      await this.mutate('open', p, () => this.state.planTruncate(ino, 0, this.now()));
    }
    return this.openHandle(ino, flags);
  }

  private openHandle(ino: number, flags: number): number {
    const h = this.handles.open(ino, flags);
    this.state.opened(ino);
    return h.fh;
  }

  async create(p: string, mode: number, flags: number, caller?: Caller): Promise<number> {
    this.assertWritable('open', p);
    const exclusive = (flags & O_EXCL) !== 0;
    const created = (await this.appendEntry(() => this.state.planCreate(p, mode, caller ?? defaultCaller(), this.now(), exclusive), null, 'open', p)) !== null;
    const ino = this.state.lookup(p);
    // O_TRUNC of an existing regular file sets mtime/ctime even when it is empty already (as Linux does)
    if ((flags & O_TRUNC) && (flags & O_ACCMODE) !== O_RDONLY && !created && (this.state.getattr(ino).mode & S_IFMT) === S_IFREG) {
      await this.mutate('open', p, () => this.state.planTruncate(ino, 0, this.now()));
    }
    return this.openHandle(ino, flags);
  }

  async read(fh: number, length: number, position: number): Promise<Buffer> {
    const h = this.handles.get(fh, 'read');
    if (!h.readable) throw new FsError('EBADF', 'handle not open for reading', { syscall: 'read' });
    if (!Number.isSafeInteger(position) || position < 0 || !Number.isSafeInteger(length) || length < 0) throw new FsError('EINVAL', undefined, { syscall: 'read' });
    const size = this.state.getattr(h.ino).size;
    const n = Math.max(0, Math.min(length, size - position));
    const out = Buffer.allocUnsafe(n);
    const got = await this.readInto(fh, out, n, position);
    return got === n ? out : out.subarray(0, got);
  }

  /**
   * read() into a buffer the caller owns (the FUSE door passes the kernel's buffer: no allocation, no extra
   * copy). Reads at most min(length, target.length) bytes; returns how many (0 at or past the end).
   */
  async readInto(fh: number, target: Buffer, length: number, position: number): Promise<number> {
    const h = this.handles.get(fh, 'read');
    if (!h.readable) throw new FsError('EBADF', 'handle not open for reading', { syscall: 'read' });
    if (!Number.isSafeInteger(position) || position < 0 || !Number.isSafeInteger(length) || length < 0) throw new FsError('EINVAL', undefined, { syscall: 'read' });
    const attr = this.state.getattr(h.ino);
    if ((attr.mode & S_IFMT) === S_IFDIR) throw new FsError('EISDIR', undefined, { syscall: 'read' });
    length = Math.min(length, target.length);
    if (length === 0 || position >= attr.size) return 0;
    const pieces = this.state.extents(h.ino, position, length);
    const sequential = this.detectSequential(h, position, length);
    // Start every WAL read synchronously (they pin their segments before anything can release them).
    let reads: Promise<void>[] | null = null;
    let single: Promise<void> | null = null;
    let at = 0;
    for (const piece of pieces) {
      const ref = piece.ref;
      let p: Promise<void> | null = null;
      if (!ref) target.fill(0, at, at + piece.len);
      else if ('wal' in ref) p = this.wal ? this.wal.read(ref.wal, ref.off, piece.len, target, at) : Promise.reject(new FsError('EIO', 'WAL ref in a read-only volume'));
      else p = this.cache.read(ref.obj, ref.off, piece.len, target, at, sequential || piece.len >= this.blockSize / 2);
      if (p) {
        if (!single) single = p;
        else (reads ??= [single]).push(p);
      }
      at += piece.len;
    }
    if (sequential) this.readahead(h, position + at, attr.size);
    if (reads) await Promise.all(reads);
    else if (single) await single;
    return at;
  }

  /** Sequential reader detection: true from the second read that continues the previous one (or starts at 0). */
  private detectSequential(h: Handle, position: number, length: number): boolean {
    if (position === h.lastReadEnd || position === 0) h.sequentialReads++;
    else {
      h.sequentialReads = 0;
      h.readaheadUntil = 0;
    }
    h.lastReadEnd = position + length;
    return h.sequentialReads >= 2;
  }

  /** Prefetches the objects of the window after `end` for a sequential reader. */
  private readahead(h: Handle, end: number, size: number): void {
    if (end >= size) return;
    const window = this.readaheadBytes;
    if (h.readaheadUntil - end > window - this.blockSize) return; // top up once a block was consumed
    const from = Math.max(end, h.readaheadUntil);
    const until = Math.min(size, end + window);
    if (from >= until) return;
    h.readaheadUntil = until;
    const ids = new Set<string>();
    for (const piece of this.state.extents(h.ino, from, until - from)) {
      if (piece.ref && 'obj' in piece.ref && !this.cache.has(piece.ref.obj)) ids.add(piece.ref.obj);
    }
    if (ids.size) this.cache.prefetch(ids);
  }

  async write(fh: number, data: Buffer, position: number): Promise<number> {
    const h = this.handles.get(fh, 'write');
    if (!h.writable) throw new FsError('EBADF', 'handle not open for writing', { syscall: 'write' });
    this.assertWritable('write');
    if (!Number.isSafeInteger(position) || position < 0) throw new FsError('EINVAL', undefined, { syscall: 'write' });
    const total = data.length;
    if (total === 0) return 0;
    // One WAL entry per call, except for calls larger than a block (split on block boundaries).
    let done = 0;
    while (done < total) {
      const pos = h.append ? -1 : position + done;
      let n = total - done;
      if (n > this.blockSize) {
        const p = h.append ? this.state.getattr(h.ino).size : pos;
        n = Math.min(n, this.blockSize - (p % this.blockSize) || this.blockSize);
      }
      const chunk = done === 0 && n === total ? data : data.subarray(done, done + n);
      await this.committer!.waitForRoom(n);
      const ino = h.ino;
      await this.appendEntry(
        (ref) => {
          const off = pos >= 0 ? pos : this.state.getattr(ino).size;
          return this.state.planWrite(ino, off, n, ref!, this.now());
        },
        chunk,
        'write',
      );
      done += n;
    }
    return total;
  }

  async flush(fh: number): Promise<void> {
    const h = this.handles.get(fh, 'flush');
    if (!h.writable || this.readOnly || !this.committer) return;
    if (this.closeSync) await this.syncVolume();
    else await this.wal!.waitWritten(this.wal!.lastSeq);
  }

  async fsync(fh: number, datasync: boolean): Promise<void> {
    void datasync;
    this.handles.get(fh, 'fsync');
    if (this.readOnly || !this.committer) return;
    if (this.fsyncMode === 'local') await this.wal!.sync(this.wal!.lastSeq);
    else await this.syncVolume();
  }

  private async syncVolume(): Promise<void> {
    if (!this.committer) return;
    if (this.readOnlyReason && this.committer.isFenced) throw new FsError('EROFS', `volume is read-only (${this.readOnlyReason}); changes were not committed`);
    await this.committer.commitThrough(this.wal!.lastSeq);
  }

  async release(fh: number): Promise<void> {
    const h = this.handles.close(fh);
    const batch = this.state.planClosed(h.ino);
    if (batch.length === 0) return;
    if (this.readOnly || this.readOnlyReason) return; // the orphan is freed by the next read-write mount
    await this.appendEntry(() => batch, null, 'release');
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    const h = this.handles.get(fh, 'ftruncate');
    if (!h.writable) throw new FsError('EINVAL', 'handle not open for writing', { syscall: 'ftruncate' });
    await this.mutate('ftruncate', undefined, () => this.state.planTruncate(h.ino, size, this.now()));
  }

  async truncate(p: string, size: number): Promise<void> {
    await this.mutate('truncate', p, () => this.state.planTruncate(this.state.lookup(p), size, this.now()));
  }

  // ===============================================================================================================
  // VolumeFs: namespace and attributes
  // ===============================================================================================================

  async mknod(p: string, mode: number, rdev: number, caller?: Caller): Promise<void> {
    await this.mutate('mknod', p, () => this.state.planMknod(p, mode, rdev, caller ?? defaultCaller(), this.now()));
  }

  async mkdir(p: string, mode: number, caller?: Caller): Promise<void> {
    await this.mutate('mkdir', p, () => this.state.planMkdir(p, mode, caller ?? defaultCaller(), this.now()));
  }

  async symlink(target: string, p: string, caller?: Caller): Promise<void> {
    await this.mutate('symlink', p, () => this.state.planSymlink(target, p, caller ?? defaultCaller(), this.now()));
  }

  async link(existingPath: string, newPath: string): Promise<void> {
    await this.mutate('link', newPath, () => this.state.planLink(existingPath, newPath, this.now()));
  }

  async unlink(p: string): Promise<void> {
    await this.mutate('unlink', p, () => this.state.planUnlink(p, this.now()));
  }

  async rmdir(p: string): Promise<void> {
    await this.mutate('rmdir', p, () => this.state.planRmdir(p, this.now()));
  }

  async rename(from: string, to: string, flags = 0): Promise<void> {
    await this.mutate('rename', from, () => this.state.planRename(from, to, flags, this.now()));
  }

  async chmod(p: string, mode: number): Promise<void> {
    await this.mutate('chmod', p, () => this.state.planChmod(this.state.lookup(p), mode, this.now()));
  }

  async chown(p: string, uid: number, gid: number): Promise<void> {
    await this.mutate('chown', p, () => this.state.planChown(this.state.lookup(p), uid, gid, this.now()));
  }

  async utimens(p: string, atime: number, mtime: number): Promise<void> {
    await this.mutate('utimens', p, () => this.state.planUtimens(this.state.lookup(p), atime, mtime, this.now()));
  }

  async setxattr(p: string, name: string, value: Buffer, flags: number): Promise<void> {
    await this.mutate('setxattr', p, () => this.state.planSetxattr(this.state.lookup(p), name, value, flags, this.now()));
  }

  async getxattr(p: string, name: string): Promise<Buffer> {
    return this.state.getxattr(this.state.lookup(p), name);
  }

  /**
   * getxattr that answers a missing attribute with undefined instead of an ENODATA FsError (the FUSE adapter's
   * path for the kernel's `security.capability` query before every write). Other errors still throw.
   */
  xattrOf(p: string, name: string): Buffer | undefined {
    return this.state.xattrOf(this.state.lookup(p), name);
  }

  async listxattr(p: string): Promise<string[]> {
    return this.state.listxattr(this.state.lookup(p));
  }

  /** Whether any file of the volume has an xattr whose name `matches` (scans every inode). */
  anyXattr(matches: (name: string) => boolean): boolean {
    return this.state.anyXattr(matches);
  }

  async removexattr(p: string, name: string): Promise<void> {
    await this.mutate('removexattr', p, () => this.state.planRemovexattr(this.state.lookup(p), name, this.now()));
  }

  async syncAll(): Promise<void> {
    if (this.readOnly || !this.committer) return;
    await this.syncVolume();
  }

  /**
   * fsync(2) of a directory (FUSE fsyncdir): its entries are durable per the fsync mode, like fsync of a file.
   * Namespace changes are journaled in order with everything else, so nothing here is directory-specific:
   * 'local' syncs the WAL, 'remote' commits every change made before the call.
   */
  async fsyncdir(p: string, datasync: boolean): Promise<void> {
    void p;
    void datasync;
    if (this.readOnly || !this.committer) return;
    if (this.fsyncMode === 'local') await this.wal!.sync(this.wal!.lastSeq);
    else await this.syncVolume();
  }
}
